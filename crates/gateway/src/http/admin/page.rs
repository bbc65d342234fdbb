//! The status page's HTML, rendered from a [`Snapshot`] so that it reads
//! without JavaScript. This is its only renderer: `app.js` fetches the live
//! part ([`live`], `GET /admin/live.html`) every 5 s and swaps it in, and
//! only moves its countdowns and relative times on between fetches (the
//! `data-countdown`, `data-remaining` and `data-at` attributes, with
//! [`duration`] and [`relative`]'s formats). Every value goes through [`esc`].

use std::borrow::Cow;

use super::status::{AppStatus, CredentialStatus, PlatformStatus, Snapshot};
use crate::clock::utc;
use crate::message::stats::{PushStats, WebhookStatus};
use crate::token::FailureRecord;

/// Escapes text for HTML content and double-quoted attribute values.
pub(super) fn esc(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `1h 59m 58s`, `4m 2s`, `9s`: a countdown's text.
fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// `in 1h 44m`, `3m 5s ago`, `now`: a time relative to `now`, to the minute past an hour.
fn relative(at: u64, now: u64) -> String {
    let span = |d: u64| match d {
        0..3600 => duration(d),
        _ => format!("{}h {}m", d / 3600, d % 3600 / 60),
    };
    match at.cmp(&now) {
        std::cmp::Ordering::Equal => "now".to_owned(),
        std::cmp::Ordering::Greater => format!("in {}", span(at - now)),
        std::cmp::Ordering::Less => format!("{} ago", span(now - at)),
    }
}

/// A `<time>` that `app.js` keeps relative to the server's clock.
fn time(at: Option<u64>, now: u64) -> String {
    match at {
        Some(at) => format!(
            r#"<time data-at="{at}" title="{}">{}</time>"#,
            utc(at),
            relative(at, now)
        ),
        None => r#"<span class="muted">—</span>"#.to_owned(),
    }
}

pub(super) fn document(title: &str, body_attrs: &str, body: &str, script: bool) -> String {
    let script = if script {
        r#"<script src="/admin/app.js" defer></script>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<link rel="stylesheet" href="/admin/app.css">
{script}
</head>
<body{body_attrs}>
{body}
</body>
</html>
"#,
        title = esc(title)
    )
}

const BRAND: &str = r#"<span class="brand"><span class="logo">wx</span>gate</span>"#;

/// The login form; `error` when a wrong key was just typed.
pub(super) fn login(error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" role="alert">{}</p>"#, esc(e))
    });
    let body = format!(
        r#"<main class="login">
<h1>{BRAND} <span class="muted">status</span></h1>
<form method="post" action="/admin/login">
<label for="key">Admin key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
{error}
<button type="submit">Sign in</button>
</form>
<p class="muted small">The key set by <code>[admin] key_env</code> in wxgate.toml.</p>
</main>"#
    );
    document("wxgate · sign in", r#" class="center""#, &body, false)
}

/// The page when no admin key is configured.
pub(super) fn closed() -> String {
    let body = format!(
        r#"<main class="login">
<h1>{BRAND} <span class="muted">status</span></h1>
<p>The status page is closed.</p>
<p class="muted">To open it, set <code>[admin] key_env</code> (or <code>key_file</code>) in wxgate.toml and restart wxgate.</p>
</main>"#
    );
    document("wxgate · closed", r#" class="center""#, &body, false)
}

/// The hidden field that carries the session's form token in a form that
/// posts (see `guard`); nothing for a bearer caller, who needs none.
pub(super) fn token_field(form_token: Option<&str>) -> String {
    form_token.map_or_else(String::new, |token| {
        format!(
            r#"<input type="hidden" name="form_token" value="{}">"#,
            esc(token)
        )
    })
}

/// The live part of the status page, `#root` (its `data-now` the server's
/// clock): the header, the app cards and the recent errors. In the page, and
/// alone at `GET /admin/live.html` for `app.js` to swap in.
pub(super) fn live(s: &Snapshot) -> String {
    let apps: String = s.apps.iter().map(|a| app(a, s.now)).collect();
    format!(
        r#"<div id="root" data-now="{now}">
{header}
<main>
<section class="apps">{apps}</section>
{platforms}
{errors}
{config}
</main>
</div>"#,
        now = s.now,
        header = header(s),
        platforms = platforms(s),
        config = config(s),
        errors = recent_errors(&s.recent_errors, s.now),
    )
}

/// The status page; `form_token` goes into its forms that post.
pub(super) fn status(s: &Snapshot, form_token: Option<&str>) -> String {
    let body = format!(
        r#"{live}
<div class="below">
{timelines}
{tools}
</div>"#,
        live = live(s),
        timelines = timelines(s),
        tools = tools(s, form_token),
    );
    document(
        "wxgate · status",
        &format!(r#" data-now="{}""#, s.now),
        &body,
        true,
    )
}

/// The last 24 h of each owner's credentials (WeCom apps' too, their
/// `corpid/name` as one path segment): images `app.js` reloads every minute.
fn timelines(s: &Snapshot) -> String {
    let images: String = s
        .apps
        .iter()
        .map(|a| {
            let appid = esc(&a.appid);
            let src = format!("/admin/apps/{}/timeline.svg", esc(&a.appid.replace('/', "%2F")));
            format!(
                r#"<figure class="timeline"><figcaption><code>{appid}</code></figcaption><img src="{src}" data-timeline="{src}" alt="credentials of {appid} over the last 24 hours" width="960"></figure>"#
            )
        })
        .collect();
    format!(
        r#"<section class="panel timelines" id="timelines"><h2>Last 24 hours</h2>
<p class="muted small">From the audit log (<code>GET /v1/audit</code>): each bar is one value, from its fetch to its replacement.</p>
{images}</section>"#
    )
}

/// Per app: revoke the access token, look a rid up, the token API's quota.
/// Outside the live part, so what is typed is not replaced.
fn tools(s: &Snapshot, form_token: Option<&str>) -> String {
    let token = token_field(form_token);
    let rows: String = s
        .apps
        .iter()
        .filter(|a| a.app_type != "wecom")
        .map(|a| {
            let appid = esc(&a.appid);
            format!(
                r#"<div class="tool-row" data-appid="{appid}"><code>{appid}</code>
<form method="get" action="/admin/apps/{appid}/rid" class="inline"><input name="rid" placeholder="rid from an errmsg" required pattern="[A-Za-z0-9-]{{1,64}}" aria-label="rid of {appid}"><button type="submit">Look up rid</button></form>
<a class="button" href="/admin/apps/{appid}/quota">Token API quota</a>
<form method="post" action="/admin/apps/{appid}/revoke" class="inline">{token}<button type="submit" class="danger">Revoke access token…</button></form>
</div>"#
            )
        })
        .collect();
    let reload = match &s.config.file {
        Some(file) => format!(
            r#"<div class="tool-row"><form method="post" action="/admin/reload" class="inline">{token}<button type="submit">Reload the configuration</button></form> <span class="muted small">reads <code>{}</code> again (also <code>SIGHUP</code>, <code>wxgate reload</code>); a file with problems changes nothing</span></div>"#,
            esc(file)
        ),
        None => String::new(),
    };
    format!(
        r#"<section class="panel tools" id="tools"><h2>Operations</h2>
<p class="muted small">Revoking and resetting the quota ask for a confirmation first.</p>
{reload}{rows}</section>"#
    )
}

/// The configuration: its fingerprint, its last reload, and the instances
/// sharing the store with theirs (any that differs is flagged).
fn config(s: &Snapshot) -> String {
    let c = &s.config;
    let failure = match &c.last_failure {
        Some((at, why)) => format!(
            r#"<p class="error" role="alert">The last reload ({}) changed nothing: {}</p>"#,
            time(Some(*at), s.now),
            esc(why)
        ),
        None => String::new(),
    };
    let restart = if c.restart_required.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p class="hint">Changed in the file, applied only after a restart: [{}].</p>"#,
            esc(&c.restart_required.join("], ["))
        )
    };
    let rows: String = s
        .instances
        .iter()
        .map(|i| {
            let same = i.fingerprint == c.fingerprint;
            format!(
                r#"<tr data-instance="{name}"><td><code>{name}</code></td><td><code>{fp}</code> {badge}</td><td>{seen}</td></tr>"#,
                name = esc(&i.instance),
                fp = esc(&i.fingerprint),
                badge = if same { String::new() } else { badge(false, "", "differs") },
                seen = time(Some(i.seen_at), s.now),
            )
        })
        .collect();
    format!(
        r#"<section class="panel config" id="config"><h2>Configuration</h2>
<p><span class="label">fingerprint</span> <code id="fingerprint">{fp}</code> · {file} · loaded {loaded} · {reloads} reload(s)</p>
{failure}{restart}
<table class="instances"><thead><tr><th>instance</th><th>configuration</th><th>seen</th></tr></thead><tbody>{rows}</tbody></table>
</section>"#,
        fp = esc(&c.fingerprint),
        file = c.file.as_deref().map_or_else(
            || "no file (built in code)".to_owned(),
            |f| format!("<code>{}</code>", esc(f))
        ),
        loaded = time(Some(c.loaded_at), s.now),
        reloads = c.reloads,
    )
}

/// A page answering an operation: a title, what happened (HTML), a way back.
pub(super) fn outcome(title: &str, body: &str) -> String {
    let body = format!(
        r#"<main class="outcome">
<h1>{BRAND} <span class="muted">{title}</span></h1>
{body}
<p><a href="/admin">← Back to the status page</a></p>
</main>"#,
        title = esc(title),
    );
    document(&format!("wxgate · {title}"), "", &body, false)
}

fn badge(good: bool, yes: &str, no: &str) -> String {
    let (class, text) = if good { ("ok", yes) } else { ("bad", no) };
    format!(r#"<span class="badge {class}">{}</span>"#, esc(text))
}

/// ` sentinel, master at 10.0.0.5:6379, 1 failover, last reconnect 12 s ago`.
fn redis_topology(t: &crate::store::StoreTopology) -> String {
    let mut text = format!(" {}", t.mode);
    if let Some(role) = &t.role {
        text += &format!(", {role}");
    }
    if let Some(primary) = &t.primary {
        text += &format!(" at {primary}");
    }
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    text += &format!(
        ", {} failover{} seen, {} reconnect{}",
        t.failovers,
        plural(t.failovers),
        t.reconnects,
        plural(t.reconnects)
    );
    if let Some(ago) = t.last_reconnect_secs_ago {
        text += &format!(" (last {ago} s ago)");
    }
    format!(
        r#"<span class="muted" id="store-topology">{}</span>"#,
        esc(&text)
    )
}

fn header(s: &Snapshot) -> String {
    format!(
        r#"<header class="top">
<h1>{BRAND} <span class="muted">status</span></h1>
<div class="summary">
<span class="fact"><span class="label">instance</span> <code>{instance}</code></span>
<span class="fact"><span class="label">store</span> {backend} {reachable}{write}{topology}</span>
<span class="fact" id="ready">{ready}</span>
<span class="fact" title="proxied uploads in temporary files now, of proxy.max_spool_bytes"><span class="label">spool</span> {spool} of {spool_limit}</span>
<span class="fact" id="connections" title="connections closed since the start: to make room (server.max_connections), at once when every one was busy, and for headers later than server.header_read_timeout_ms"><span class="label">connections closed</span> {evicted} for room, {refused} refused, {header_timeouts} slow headers</span>
<span class="live" id="live" title="{at}">snapshot</span>
</div>
</header>"#,
        instance = esc(&s.instance),
        backend = esc(s.store.backend),
        topology = s
            .store
            .topology
            .as_ref()
            .map_or_else(String::new, redis_topology),
        reachable = badge(s.store.reachable, "reachable", "unreachable"),
        write = match &s.store.write_error {
            Some(e) => format!(
                r#" <span class="badge bad" title="{}">cannot write</span>"#,
                esc(e)
            ),
            None => String::new(),
        },
        ready = badge(s.ready, "ready", "not ready"),
        spool = mib(s.spool.bytes),
        spool_limit = mib(s.spool.limit),
        evicted = s.connections.evicted,
        refused = s.connections.refused,
        header_timeouts = s.connections.header_timeouts,
        at = utc(s.now),
    )
}

/// Bytes in MiB, one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn app(a: &AppStatus, now: u64) -> String {
    let credentials: String = if a.credentials.is_empty() {
        r#"<p class="muted">No credential yet.</p>"#.to_owned()
    } else {
        a.credentials.iter().map(|c| credential(c, now)).collect()
    };
    format!(
        r#"<article class="card" data-appid="{appid}">
<header class="card-head"><h2><code>{appid}</code></h2><span class="chip">{family}</span><span class="chip">{api} token API</span><span class="chip">push: {mode}</span></header>
<div class="creds">{credentials}</div>
<div class="sub">{pushes}{webhook}</div>
</article>"#,
        appid = esc(&a.appid),
        api = esc(a.token_api),
        family = esc(a.app_type),
        mode = esc(a.push_mode),
        pushes = pushes(&a.pushes),
        webhook = webhook(a.webhook.as_ref(), now),
    )
}

/// The Open Platform platforms: when the last verify ticket came, the
/// component token, and the authorizers (each also has its card).
fn platforms(s: &Snapshot) -> String {
    if s.platforms.is_empty() {
        return String::new();
    }
    let now = s.now;
    let platforms: String = s.platforms.iter().map(|p| platform(p, now)).collect();
    format!(
        r#"<section class="panel platforms" id="platforms"><h2>Open Platform</h2>
<p class="muted small">WeChat pushes a verify ticket every 10 minutes; the component token is fetched with it. Each authorizer has its own card above and its last 24 hours below.</p>
{platforms}</section>"#
    )
}

fn platform(p: &PlatformStatus, now: u64) -> String {
    let ticket = match p.ticket_fetched_at {
        // Pushed every 10 minutes: one older than 20 is overdue.
        Some(at) => {
            let late = now.saturating_sub(at) > 20 * 60;
            let badge = if late {
                r#" <span class="badge bad">overdue</span>"#
            } else {
                ""
            };
            format!("{}{badge}", time(Some(at), now))
        }
        None => format!(
            r#"<span class="badge bad">none yet</span> <span class="muted small">is the 授权事件接收URL set to <code>/component/{}</code>?</span>"#,
            esc(&p.component_appid)
        ),
    };
    let token = p.token.as_ref().map_or_else(
        || r#"<p class="muted">No component token yet.</p>"#.to_owned(),
        |c| credential(c, now),
    );
    let rows: String = p
        .authorizers
        .iter()
        .map(|a| {
            let class = if a.state == "authorized" { "ok" } else { "bad" };
            format!(
                r#"<tr data-authorizer="{appid}"><td><code>{appid}</code></td><td>{family}</td><td><span class="badge {class}">{state}</span></td><td>{since}</td></tr>"#,
                appid = esc(&a.appid),
                family = esc(a.family),
                state = esc(a.state),
                since = time((a.since > 0).then_some(a.since), now),
            )
        })
        .collect();
    let authorizers = if rows.is_empty() {
        r#"<p class="muted">No authorizer yet.</p>"#.to_owned()
    } else {
        format!(
            r#"<table class="authorizers"><thead><tr><th>authorizer</th><th>family</th><th>state</th><th>since</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    format!(
        r#"<article class="platform" data-component="{component}">
<h3><code>{component}</code></h3>
<dl class="facts"><div><dt>last verify ticket</dt><dd class="ticket">{ticket}</dd></div></dl>
<div class="creds">{token}</div>
{authorizers}
</article>"#,
        component = esc(&p.component_appid),
    )
}

fn credential(c: &CredentialStatus, now: u64) -> String {
    let result_class = match c.last_result {
        "ok" => "ok",
        "failing" | "rejected" => "bad",
        _ => "idle",
    };
    let countdown = match c.expires_at {
        Some(at) => {
            let left = at.saturating_sub(now);
            let text = if left == 0 {
                "expired".to_owned()
            } else {
                duration(left)
            };
            format!(
                r#"<span class="countdown" data-countdown="{at}" data-remaining="{left}" title="expires {}">{text}</span>"#,
                utc(at)
            )
        }
        None => r#"<span class="countdown none">no value</span>"#.to_owned(),
    };
    let masked = c.masked.as_deref().map_or_else(String::new, |m| {
        format!(r#"<code class="masked">{}</code>"#, esc(m))
    });
    let quota = match c.daily_quota {
        Some(q) => format!(
            r#"{} / {q} <meter min="0" max="{q}" low="{}" high="{}" optimum="0" value="{}"></meter>"#,
            c.fetches_today,
            q / 2,
            q * 9 / 10,
            c.fetches_today
        ),
        None => c.fetches_today.to_string(),
    };
    let lease = c.lease_holder.as_deref().map_or_else(
        || r#"<span class="muted">—</span>"#.to_owned(),
        |h| format!("<code>{}</code>", esc(h)),
    );
    let failure = c.last_failure.as_ref().map_or_else(String::new, failure);
    format!(
        r#"<section class="cred" data-kind="{kind}">
<div class="cred-head"><h3>{kind}</h3><span class="badge {result_class}">{result}</span></div>
<div class="cred-main">{countdown}{masked}</div>
<dl class="facts">
<div><dt>next refresh</dt><dd>{next}</dd></div>
<div><dt>fetched</dt><dd>{fetched}</dd></div>
<div><dt>fetches today</dt><dd>{quota}</dd></div>
<div><dt>lease holder</dt><dd>{lease}</dd></div>
</dl>
{failure}
</section>"#,
        kind = esc(c.kind),
        result = esc(c.last_result),
        next = time(c.next_refresh_at, now),
        fetched = time(c.fetched_at, now),
    )
}

fn errcode(code: Option<i64>) -> String {
    code.map_or_else(String::new, |c| format!("errcode {c}"))
}

fn hint(hint: Option<&str>) -> String {
    hint.map_or_else(String::new, |h| {
        format!(r#"<p class="hint">{}</p>"#, esc(h))
    })
}

fn failure(f: &FailureRecord) -> String {
    format!(
        r#"<div class="failure"><p><strong>{code}</strong> {message}</p>{hint}</div>"#,
        code = errcode(f.errcode),
        message = esc(&f.message),
        hint = hint(f.hint.as_deref()),
    )
}

fn pushes(p: &PushStats) -> String {
    let counts = [
        ("rule", p.rule, false),
        ("webhook", p.webhook, false),
        ("late", p.late, false),
        ("no reply", p.no_reply, false),
        ("webhook failed", p.webhook_failed, true),
        ("duplicate", p.duplicate, false),
        ("rejected", p.rejected, true),
        ("previous key", p.previous_key, false),
    ];
    let items: String = counts
        .iter()
        .map(|(label, n, alarming)| {
            let class = if *alarming && *n > 0 {
                r#" class="alarm""#
            } else {
                ""
            };
            format!("<div{class}><dt>{label}</dt><dd>{n}</dd></div>")
        })
        .collect();
    format!(r#"<section class="pushes"><h3>Pushes</h3><dl class="counts">{items}</dl></section>"#)
}

fn webhook(w: Option<&WebhookStatus>, now: u64) -> String {
    let Some(w) = w else {
        return r#"<section class="webhook"><h3>Webhook</h3><p class="muted">Not configured.</p></section>"#.to_owned();
    };
    let last = match (&w.last_error, w.last_failure_at) {
        (Some(error), at) => format!(
            r#"<div class="failure"><p><strong>last failure</strong> {}</p><p class="muted">{}</p></div>"#,
            esc(error),
            time(at, now),
        ),
        (None, _) => String::new(),
    };
    format!(
        r#"<section class="webhook"><h3>Webhook {health}</h3><p><code>{target}</code></p>
<p class="muted">{ok} answered · {failed} failed</p>{last}</section>"#,
        // Failing while its last failure is newer than its last answer in time.
        health = badge(
            w.last_failure_at
                .is_none_or(|f| w.last_ok_at.is_some_and(|ok| f < ok)),
            "healthy",
            "failing",
        ),
        target = esc(&w.target),
        ok = w.ok,
        failed = w.failed,
    )
}

fn recent_errors(errors: &[FailureRecord], now: u64) -> String {
    if errors.is_empty() {
        return r#"<section class="panel errors"><h2>Recent upstream errors</h2><p class="muted">None recorded.</p></section>"#.to_owned();
    }
    let rows: String = errors
        .iter()
        .map(|f| {
            format!(
                "<tr><td>{at}</td><td><code>{appid}</code></td><td>{kind}</td><td>{code}</td><td>{message}</td><td>{hint}</td></tr>",
                at = time(Some(f.at), now),
                appid = esc(&f.appid),
                kind = esc(f.kind),
                code = f.errcode.map_or_else(String::new, |c| c.to_string()),
                message = esc(&f.message),
                hint = esc(f.hint.as_deref().unwrap_or("")),
            )
        })
        .collect();
    format!(
        r#"<section class="panel errors"><h2>Recent upstream errors</h2>
<table><thead><tr><th>when</th><th>app</th><th>credential</th><th>errcode</th><th>message</th><th>hint</th></tr></thead>
<tbody>{rows}</tbody></table></section>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::admin::status::{ConnectionsStatus, SpoolStatus, StoreStatus};

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(matches!(esc("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn formats_durations_like_the_script() {
        assert_eq!(duration(7198), "1h 59m 58s");
        assert_eq!(duration(242), "4m 2s");
        assert_eq!(duration(9), "9s");
        assert_eq!(relative(1000 + 6300, 1000), "in 1h 45m");
        assert_eq!(relative(1000, 1185), "3m 5s ago");
        assert_eq!(relative(5, 5), "now");
    }

    fn snapshot() -> Snapshot {
        let failure = FailureRecord {
            at: 1_000,
            appid: "wx<1>".into(),
            kind: "access_token",
            errcode: Some(40164),
            message: "invalid ip <script>alert(1)</script>".into(),
            hint: Some("add the IP to the whitelist".into()),
        };
        Snapshot {
            instance: "host:1".into(),
            now: 1_000,
            store: StoreStatus {
                backend: "sqlite",
                reachable: true,
                write_error: Some("disk <full>".into()),
                topology: None,
            },
            ready: false,
            spool: SpoolStatus {
                bytes: 3 << 19,
                limit: 256 << 20,
            },
            connections: ConnectionsStatus {
                evicted: 7,
                refused: 0,
                header_timeouts: 12,
            },
            apps: vec![AppStatus {
                appid: "wx<1>".into(),
                token_api: "stable",
                app_type: "official",
                push_mode: "safe",
                credentials: vec![CredentialStatus {
                    kind: "access_token",
                    masked: Some("ACCESS…(136 chars)".into()),
                    expires_at: Some(8_198),
                    expires_in: Some(7_198),
                    next_refresh_at: Some(7_300),
                    fetched_at: Some(998),
                    last_result: "failing",
                    last_failure: Some(failure.clone()),
                    fetches_today: 3,
                    daily_quota: Some(2000),
                    lease_holder: None,
                }],
                pushes: PushStats::default(),
                webhook: None,
            }],
            platforms: Vec::new(),
            recent_errors: vec![failure],
            config: crate::reload::ConfigStatus {
                fingerprint: "0123456789ab".into(),
                file: Some("/etc/wx<gate>.toml".into()),
                loaded_at: 900,
                reloads: 2,
                last_failure: Some((950, "apps[0].secret: <missing>".into())),
                restart_required: vec!["server"],
            },
            instances: vec![
                crate::reload::InstanceConfig {
                    instance: "host:1".into(),
                    fingerprint: "0123456789ab".into(),
                    seen_at: 1000,
                },
                crate::reload::InstanceConfig {
                    instance: "other:2".into(),
                    fingerprint: "ffffffffffff".into(),
                    seen_at: 990,
                },
            ],
        }
    }

    #[test]
    fn shows_the_configuration_its_reloads_and_every_instances_fingerprint() {
        let html = status(&snapshot(), Some("tok"));
        assert!(
            html.contains(r#"<code id="fingerprint">0123456789ab</code>"#),
            "{html}"
        );
        assert!(html.contains("/etc/wx&lt;gate&gt;.toml"), "{html}");
        assert!(html.contains("apps[0].secret: &lt;missing&gt;"), "{html}");
        assert!(
            html.contains("applied only after a restart: [server]"),
            "{html}"
        );
        // The other instance runs another file: flagged; this one is not.
        let other = html.split(r#"data-instance="other:2""#).nth(1).unwrap();
        assert!(
            other.split("</tr>").next().unwrap().contains("differs"),
            "{html}"
        );
        let me = html.split(r#"data-instance="host:1""#).nth(1).unwrap();
        assert!(
            !me.split("</tr>").next().unwrap().contains("differs"),
            "{html}"
        );
        // The reload button posts with the form token.
        let reload = html.split(r#"action="/admin/reload""#).nth(1).unwrap();
        assert!(
            reload.starts_with(
                r#" class="inline"><input type="hidden" name="form_token" value="tok">"#
            ),
            "{html}"
        );
    }

    #[test]
    fn renders_cards_countdowns_and_escaped_values() {
        let html = status(&snapshot(), Some("ab<12>"));
        assert!(
            html.contains(r#"<article class="card" data-appid="wx&lt;1&gt;">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-countdown="8198" data-remaining="7198""#),
            "{html}"
        );
        assert!(html.contains(">1h 59m 58s</span>"), "{html}");
        assert!(html.contains("errcode 40164"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
        assert!(html.contains(r#"<body data-now="1000">"#), "{html}");
        assert!(
            html.contains(r#"title="disk &lt;full&gt;">cannot write</span>"#),
            "{html}"
        );
        assert!(html.contains("spool</span> 1.5 MiB of 256.0 MiB"), "{html}");
        assert!(
            html.contains("connections closed</span> 7 for room, 0 refused, 12 slow headers"),
            "{html}"
        );
        assert!(
            html.contains(r#"<input type="hidden" name="form_token" value="ab&lt;12&gt;"><button type="submit" class="danger">Revoke"#),
            "every form that posts carries the form token: {html}"
        );
    }

    #[test]
    fn shows_the_redis_topology_beside_the_store() {
        let mut s = snapshot();
        s.store.backend = "redis";
        s.store.topology = Some(crate::store::StoreTopology {
            mode: "sentinel",
            role: Some("master".into()),
            primary: Some("10.0.0.5:6379".into()),
            failovers: 1,
            reconnects: 2,
            last_reconnect_secs_ago: Some(12),
        });
        let html = status(&s, None);
        assert!(
            html.contains(
                "sentinel, master at 10.0.0.5:6379, 1 failover seen, 2 reconnects (last 12 s ago)"
            ),
            "{html}"
        );
    }

    #[test]
    fn shows_each_platforms_ticket_age_token_and_authorizers() {
        let mut s = snapshot();
        assert!(
            !status(&s, None).contains("Open Platform"),
            "none configured"
        );
        let token = CredentialStatus {
            kind: "component_access_token",
            masked: Some("COMPON…(40 chars)".into()),
            expires_at: Some(8_200),
            expires_in: Some(7_200),
            next_refresh_at: Some(7_000),
            fetched_at: Some(1_000),
            last_result: "ok",
            last_failure: None,
            fetches_today: 1,
            daily_quota: None,
            lease_holder: None,
        };
        let authorizer = |appid: &str, family, state, since| crate::platform::AuthorizerStatus {
            appid: appid.into(),
            family,
            state,
            since,
        };
        s.platforms = vec![
            PlatformStatus {
                component_appid: "wxc<1>".into(),
                ticket_fetched_at: Some(880),
                ticket_expires_at: Some(880 + 43_200),
                token: Some(token),
                authorizers: vec![
                    authorizer("wxa1", "official", "authorized", 900),
                    authorizer("wxb1", "miniprogram", "revoked", 950),
                ],
            },
            PlatformStatus {
                component_appid: "wxc2".into(),
                ticket_fetched_at: None,
                ticket_expires_at: None,
                token: None,
                authorizers: Vec::new(),
            },
        ];
        let html = live(&s);
        let first = html
            .split(r#"<article class="platform" data-component="wxc&lt;1&gt;">"#)
            .nth(1)
            .unwrap_or_else(|| panic!("{html}"))
            .split("</article>")
            .next()
            .unwrap();
        assert!(first.contains(r#"<time data-at="880""#), "{first}");
        assert!(first.contains(">2m 0s ago</time>"), "{first}");
        assert!(!first.contains("overdue"), "{first}");
        assert!(
            first.contains(r#"data-kind="component_access_token""#),
            "{first}"
        );
        assert!(first.contains("COMPON…(40 chars)"), "{first}");
        assert!(
            first.contains(r#"data-countdown="8200" data-remaining="7200""#),
            "{first}"
        );
        assert!(
            first.contains(r#"<tr data-authorizer="wxa1"><td><code>wxa1</code></td><td>official</td><td><span class="badge ok">authorized</span>"#),
            "{first}"
        );
        assert!(
            first.contains(r#"<tr data-authorizer="wxb1"><td><code>wxb1</code></td><td>miniprogram</td><td><span class="badge bad">revoked</span>"#),
            "{first}"
        );
        let second = html.split(r#"data-component="wxc2""#).nth(1).unwrap();
        assert!(second.contains("none yet"), "{second}");
        assert!(second.contains("No component token yet."), "{second}");
        assert!(second.contains("No authorizer yet."), "{second}");
        // An overdue ticket is flagged.
        s.now = 880 + 21 * 60;
        assert!(live(&s).contains("overdue"));
    }

    #[test]
    fn the_live_part_is_the_pages_own_root() {
        let s = snapshot();
        let live = live(&s);
        assert!(
            live.starts_with(r#"<div id="root" data-now="1000">"#),
            "{live}"
        );
        assert!(status(&s, None).contains(&live), "the page holds it as is");
        assert!(!live.contains("form_token"), "no form in the live part");
        assert!(!live.contains("timeline"), "the images stay put");
    }

    #[test]
    fn the_login_form_posts_the_key() {
        let html = login(Some("wrong <key>"));
        assert!(html.contains(r#"<form method="post" action="/admin/login">"#));
        assert!(html.contains(r#"name="key" type="password""#));
        assert!(html.contains("wrong &lt;key&gt;"));
        assert!(!html.contains("app.js"));
    }
}
