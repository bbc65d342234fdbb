//! Issue #24, items 7 and 8: the status page's forms against another page of
//! the same host. A signed-in browser sends its `SameSite=Strict` cookie with
//! any form posted from the same *site*: another port, a sibling subdomain,
//! an SSH tunnel's localhost. Such a post acts only with the form token the
//! page rendered and from the page's own origin; and no one's failed logins
//! lock a signed-in operator out.

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

use crate::{Env, Setup, APPID};

const ADMIN_KEY: &str = "admin-forms-key-0123456789";

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `Origin` of the gateway itself, as a browser on its page sends it.
fn own_origin(env: &Env) -> String {
    env.url.trim_end_matches('/').to_owned()
}

/// Logs in through the form, as the page does: the session cookie (`name=value`).
async fn log_in(env: &Env) -> String {
    let response = browser()
        .post(format!("{}/admin/login", env.url))
        .header(ORIGIN, own_origin(env))
        .header("sec-fetch-site", "same-origin")
        .form(&[("key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/admin");
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The form token a page renders into its forms, if any.
fn token_in(page: &str) -> Option<String> {
    let marker = r#"name="form_token" value=""#;
    let start = page.find(marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].to_owned())
}

/// The form token a page renders into its forms.
fn form_token(page: &str) -> String {
    token_in(page).unwrap_or_else(|| panic!("no form token in the page:\n{page}"))
}

/// A post another page makes the operator's browser send.
struct Forgery {
    what: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

impl Forgery {
    fn new(what: &'static str, headers: &'static [(&'static str, &'static str)]) -> Self {
        Self { what, headers }
    }
}

/// GETs an admin page with the session cookie: (status, HTML).
async fn get_page(env: &Env, cookie: &str, path: &str) -> (u16, String) {
    let response = browser()
        .get(format!("{}{path}", env.url))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// POSTs a form with the session cookie and extra headers: (status, HTML).
async fn post_form(
    env: &Env,
    cookie: &str,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> (u16, String) {
    let mut request = browser()
        .post(format!("{}{path}", env.url))
        .header(COOKIE, cookie)
        .form(fields);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_form_posted_from_another_page_of_the_same_host_does_nothing() {
    let env = Setup::new().admin(ADMIN_KEY).start().await;
    let cookie = log_in(&env).await;
    let (status, page) = get_page(&env, &cookie, "/admin").await;
    assert_eq!(status, 200, "{page}");
    let before = env.token_calls();
    let revoke = format!("/admin/apps/{APPID}/revoke");
    let clear = format!("/admin/apps/{APPID}/clear_quota");
    // What a page on another port (or a sibling subdomain) can make the
    // operator's browser send: the cookie, `confirm=APPID`, and its own
    // Origin or Sec-Fetch-Site. The first three even carry the page's form
    // token (as if it had leaked): the origin alone refuses them.
    let page_token = token_in(&page).unwrap_or_default();
    let forged = [
        Forgery::new("another origin", &[("origin", "http://127.0.0.1:1")]),
        Forgery::new("a same-site fetch", &[("sec-fetch-site", "same-site")]),
        Forgery::new("a cross-site fetch", &[("sec-fetch-site", "cross-site")]),
        Forgery::new("an opaque origin", &[("origin", "null")]),
    ];
    let no_token = [
        (None, "no form token"),
        (Some("00ff"), "a wrong form token"),
    ];
    for path in [&revoke, &clear] {
        for forgery in &forged {
            let fields = [("confirm", APPID), ("form_token", page_token.as_str())];
            let (status, answer) = post_form(&env, &cookie, path, forgery.headers, &fields).await;
            assert_eq!(status, 403, "{} on {path}: {answer}", forgery.what);
        }
        for (token, what) in no_token {
            let mut fields = vec![("confirm", APPID)];
            fields.extend(token.map(|t| ("form_token", t)));
            let (status, answer) = post_form(&env, &cookie, path, &[], &fields).await;
            assert_eq!(status, 403, "{what} on {path}: {answer}");
        }
    }
    assert_eq!(env.token_calls(), before, "nothing was revoked");
    assert_eq!(
        env.sim.stats().endpoint_calls("/cgi-bin/clear_quota/v2"),
        0,
        "no quota was reset"
    );

    // The page's own forms: the token it rendered, from its own origin.
    let token = form_token(&page);
    let own = [
        ("origin", own_origin(&env)),
        ("sec-fetch-site", "same-origin".to_owned()),
    ];
    let own: Vec<(&str, &str)> = own.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, asked) = post_form(&env, &cookie, &revoke, &own, &[("form_token", &token)]).await;
    assert_eq!(status, 200, "{asked}");
    assert!(asked.contains(r#"name="confirm""#), "{asked}");
    assert_eq!(form_token(&asked), token, "the confirmation carries it on");
    assert_eq!(env.token_calls(), before, "asked first");
    let (status, done) = post_form(
        &env,
        &cookie,
        &revoke,
        &own,
        &[("confirm", APPID), ("form_token", &token)],
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Revoked."), "{done}");
    assert_eq!(env.token_calls(), before + 1);
    // A browser that sends neither header (older ones, or typed by hand): the token suffices.
    let (status, quota) = get_page(&env, &cookie, &format!("/admin/apps/{APPID}/quota")).await;
    assert_eq!(status, 200, "{quota}");
    let (status, done) = post_form(
        &env,
        &cookie,
        &clear,
        &[],
        &[("confirm", APPID), ("form_token", &form_token(&quota))],
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(env.sim.stats().endpoint_calls("/cgi-bin/clear_quota/v2"), 1);
}

#[tokio::test]
async fn failed_logins_never_lock_out_a_signed_in_operator() {
    let env = Setup::new().admin(ADMIN_KEY).start().await;
    let cookie = log_in(&env).await;
    let login = |origin: Option<String>| {
        let mut request = browser()
            .post(format!("{}/admin/login", env.url))
            .form(&[("key", "not-the-admin-key-0000")]);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Another site cannot post logins at all: none counts against this address.
    for _ in 0..12 {
        assert_eq!(login(Some("http://127.0.0.1:1".into())).await, 403);
    }
    assert_eq!(log_in(&env).await, cookie, "the right key still signs in");

    // Wrong keys from this very address (a script, a colleague's typos): the
    // address is throttled, the signed-in browser is not.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(login(Some(own_origin(&env))).await);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let (status, page) = get_page(&env, &cookie, "/admin").await;
    assert_eq!(status, 200, "{page}");
    let (status, json) = get_page(&env, &cookie, "/admin/status.json").await;
    assert_eq!(status, 200, "{json}");
    let (status, asked) = post_form(
        &env,
        &cookie,
        &format!("/admin/apps/{APPID}/revoke"),
        &[],
        &[("form_token", &form_token(&page))],
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    // The key itself is still throttled: guessing gets nowhere.
    let (status, _) = env.admin_get("/admin/status.json", ADMIN_KEY).await;
    assert_eq!(status, 429);
}
