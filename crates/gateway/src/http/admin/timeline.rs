//! The 24-hour timeline of one app's credentials, drawn as SVG from the audit
//! log: one row per credential, each value's lifetime a bar from its fetch
//! (or adoption) to the next, and marks for fetches, failures, probe
//! rejections, revocations and quota resets. Served as an image
//! (`/admin/apps/{appid}/timeline.svg`), so the page's CSP needs no inline
//! code and the drawing exists once, here.

use std::fmt::Write;

use super::page::esc;
use crate::store::AuditEntry;

/// The window drawn, seconds.
pub(super) const WINDOW: u64 = 86_400;

const WIDTH: u64 = 960;
const LEFT: u64 = 130;
const RIGHT: u64 = 20;
const TOP: u64 = 28;
const ROW: u64 = 40;
const BAR: u64 = 14;

/// What a mark on the timeline says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Fetched,
    Failed,
    ProbeRejected,
    Revoked,
    QuotaCleared,
}

impl Mark {
    fn of(entry: &AuditEntry) -> Option<Self> {
        Some(match (entry.event.as_str(), entry.result.as_str()) {
            ("fetch", "ok") => Mark::Fetched,
            ("fetch", _) => Mark::Failed,
            ("probe_rejection", _) => Mark::ProbeRejected,
            ("revoke", _) => Mark::Revoked,
            ("clear_quota", _) => Mark::QuotaCleared,
            _ => return None,
        })
    }

    fn color(self) -> &'static str {
        match self {
            Mark::Fetched => "#1f6feb",
            Mark::Failed => "#cf222e",
            Mark::ProbeRejected => "#bf8700",
            Mark::Revoked => "#8250df",
            Mark::QuotaCleared => "#1b7c83",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mark::Fetched => "fetched",
            Mark::Failed => "failed",
            Mark::ProbeRejected => "probe rejection",
            Mark::Revoked => "revoked",
            Mark::QuotaCleared => "quota reset",
        }
    }

    /// The shape at `x` on a row whose bar is centred at `y`.
    fn shape(self, x: u64, y: u64) -> String {
        let color = self.color();
        match self {
            Mark::Fetched => format!(
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{color}" stroke-width="2"/>"#,
                y - 11,
                y + 11
            ),
            Mark::Failed => format!(r#"<circle cx="{x}" cy="{y}" r="5" fill="{color}"/>"#),
            Mark::ProbeRejected => format!(
                r#"<path d="M{x} {} l6 6 l-6 6 l-6 -6 z" fill="{color}"/>"#,
                y - 6
            ),
            Mark::Revoked | Mark::QuotaCleared => format!(
                r#"<rect x="{}" y="{}" width="4" height="24" fill="{color}"/>"#,
                x.saturating_sub(2),
                y - 12
            ),
        }
    }
}

/// The SVG of `kinds`' last 24 h at `now`, from `entries` (any order, any
/// app: only `appid`'s are drawn).
pub(super) fn svg(appid: &str, kinds: &[&str], entries: &[AuditEntry], now: u64) -> String {
    let start = now.saturating_sub(WINDOW);
    let span = WIDTH - LEFT - RIGHT;
    let x = |at: u64| LEFT + (at.clamp(start, now) - start) * span / WINDOW;
    let height = TOP + ROW * kinds.len() as u64 + 44;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="credentials of {app} over the last 24 hours">"##,
        app = esc(appid),
    );
    // Hours: a line every 3 h, labelled every 6 h.
    for h in 0..=8u64 {
        let at = start + h * 3 * 3600;
        let gx = x(at);
        let _ = write!(
            out,
            r##"<line x1="{gx}" y1="{TOP}" x2="{gx}" y2="{}" stroke="#8c959f" stroke-opacity="0.35"/>"##,
            height - 40
        );
        if h % 2 == 0 {
            let label = if h == 8 {
                "now".to_owned()
            } else {
                format!("−{}h", 24 - h * 3)
            };
            let _ = write!(
                out,
                r##"<text x="{gx}" y="{}" text-anchor="middle" fill="#6e7781">{label}</text>"##,
                TOP - 10
            );
        }
    }
    for (row, kind) in kinds.iter().enumerate() {
        let y = TOP + ROW * row as u64 + ROW / 2;
        let _ = write!(
            out,
            r##"<text x="8" y="{}" fill="#6e7781">{}</text>"##,
            y + 4,
            esc(kind)
        );
        let mut mine: Vec<&AuditEntry> = entries
            .iter()
            .filter(|e| e.appid == appid && e.kind == *kind)
            .collect();
        mine.sort_by_key(|e| e.at);
        // Lifetimes: from each value taken (fetched or adopted) to the next.
        let taken: Vec<u64> = mine
            .iter()
            .filter(|e| matches!(e.event.as_str(), "fetch" | "adoption") && e.result == "ok")
            .map(|e| e.at)
            .collect();
        for (i, &from) in taken.iter().enumerate() {
            let to = taken.get(i + 1).copied().unwrap_or(now);
            if to < start {
                continue;
            }
            let (x1, x2) = (x(from), x(to));
            let fill = if i % 2 == 0 { "#2da44e" } else { "#4ac26b" };
            let _ = write!(
                out,
                r#"<rect class="life" x="{x1}" y="{}" width="{}" height="{BAR}" rx="3" fill="{fill}" fill-opacity="0.75"/>"#,
                y - BAR / 2,
                (x2 - x1).max(2),
            );
        }
        for entry in mine.iter().filter(|e| e.at >= start) {
            if let Some(mark) = Mark::of(entry) {
                let _ = write!(
                    out,
                    r#"<g class="mark {}">{}</g>"#,
                    mark.label().replace(' ', "-"),
                    mark.shape(x(entry.at), y)
                );
            }
        }
    }
    // The legend.
    let ly = height - 14;
    let mut lx = LEFT;
    let _ = write!(
        out,
        r##"<rect x="{lx}" y="{}" width="18" height="{BAR}" rx="3" fill="#2da44e" fill-opacity="0.75"/><text x="{}" y="{}" fill="#6e7781">value held</text>"##,
        ly - BAR / 2 - 4,
        lx + 24,
        ly
    );
    lx += 110;
    for mark in [
        Mark::Fetched,
        Mark::Failed,
        Mark::ProbeRejected,
        Mark::Revoked,
        Mark::QuotaCleared,
    ] {
        let _ = write!(
            out,
            r##"{}<text x="{}" y="{ly}" fill="#6e7781">{}</text>"##,
            mark.shape(lx + 6, ly - 4),
            lx + 18,
            mark.label()
        );
        lx += 24 + 8 * mark.label().len() as u64;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: u64, kind: &str, event: &str, result: &str) -> AuditEntry {
        AuditEntry {
            at,
            appid: "wx1".into(),
            kind: kind.into(),
            event: event.into(),
            cause: "schedule".into(),
            instance: "h:1".into(),
            result: result.into(),
            errcode: None,
            rid: None,
        }
    }

    #[test]
    fn draws_one_bar_per_value_and_a_mark_per_event() {
        let now = 100_000;
        let entries = [
            // Before the window: its value is drawn from the window's start.
            entry(now - 90_000, "access_token", "fetch", "ok"),
            entry(now - 50_000, "access_token", "fetch", "transient"),
            entry(now - 49_000, "access_token", "fetch", "ok"),
            entry(
                now - 20_000,
                "access_token",
                "probe_rejection",
                "token_rejected",
            ),
            entry(now - 20_000, "access_token", "fetch", "ok"),
            entry(now - 1_000, "jsapi_ticket", "adoption", "ok"),
            AuditEntry {
                appid: "wx2".into(),
                ..entry(now - 10, "access_token", "fetch", "ok")
            },
        ];
        let svg = svg("wx1", &["access_token", "jsapi_ticket"], &entries, now);
        assert_eq!(svg.matches(r#"class="life""#).count(), 3 + 1, "{svg}");
        assert_eq!(svg.matches(r#"class="mark fetched""#).count(), 2, "{svg}");
        assert_eq!(svg.matches(r#"class="mark failed""#).count(), 1, "{svg}");
        assert_eq!(
            svg.matches(r#"class="mark probe-rejection""#).count(),
            1,
            "{svg}"
        );
        // The first bar starts at the window's left edge.
        assert!(
            svg.contains(&format!(r#"class="life" x="{LEFT}""#)),
            "{svg}"
        );
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
    }

    #[test]
    fn escapes_names() {
        let svg = svg("wx<1>", &["access_token"], &[], 10);
        assert!(svg.contains("wx&lt;1&gt;"));
        assert!(!svg.contains("wx<1>"));
    }
}
