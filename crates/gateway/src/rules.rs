//! Reply rules (`[[apps.rules]]`): static replies chosen by event, keyword,
//! regex or message type; the first rule whose conditions all hold wins.

use regex::Regex;
use wxgate_proto::{Article, Push, PushKind, ReplyBody};

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    event: Option<String>,
    event_key: Option<String>,
    keyword: Option<String>,
    regex: Option<Regex>,
    msg_type: Option<String>,
    /// What to answer.
    pub reply: ReplyBody,
}

impl Rule {
    /// Reads a rule as written in the configuration; the error says what is wrong.
    pub fn compile(table: &toml::Table) -> Result<Self, String> {
        const KNOWN: [&str; 6] = [
            "event",
            "event_key",
            "keyword",
            "regex",
            "msg_type",
            "reply",
        ];
        if let Some(unknown) = table.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "unknown field {unknown:?}; a rule has {}",
                KNOWN.join(", ")
            ));
        }
        let text = |name: &str| -> Result<Option<String>, String> {
            match table.get(name) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(format!("{name} must be a non-empty string")),
            }
        };
        let regex = text("regex")?
            .map(|r| Regex::new(&r).map_err(|e| format!("regex {r:?}: {e}")))
            .transpose()?;
        let rule = Rule {
            event: text("event")?,
            event_key: text("event_key")?,
            keyword: text("keyword")?,
            regex,
            msg_type: text("msg_type")?,
            reply: reply(table.get("reply").ok_or("missing reply")?)?,
        };
        if rule.event.is_none()
            && rule.keyword.is_none()
            && rule.regex.is_none()
            && rule.msg_type.is_none()
        {
            return Err("give at least one of event, keyword, regex, msg_type".into());
        }
        Ok(rule)
    }

    /// Whether every condition of the rule holds for `push`.
    pub fn matches(&self, push: &Push) -> bool {
        let event = match &push.kind {
            PushKind::Event(e) => Some(e),
            _ => None,
        };
        let content = match &push.kind {
            PushKind::Text { content, .. } => Some(content.trim()),
            _ => None,
        };
        let key = event_key(push);
        self.event
            .as_ref()
            .is_none_or(|want| event.is_some_and(|e| e.name().eq_ignore_ascii_case(want)))
            && self
                .event_key
                .as_ref()
                .is_none_or(|want| key == Some(want.as_str()))
            && self
                .keyword
                .as_ref()
                .is_none_or(|want| content.is_some_and(|c| c.eq_ignore_ascii_case(want)))
            && self
                .regex
                .as_ref()
                .is_none_or(|re| content.is_some_and(|c| re.is_match(c)))
            && self
                .msg_type
                .as_ref()
                .is_none_or(|want| push.kind.msg_type().eq_ignore_ascii_case(want))
    }
}

/// The `EventKey` of an event push, typed or not.
fn event_key(push: &Push) -> Option<&str> {
    use wxgate_proto::Event;
    match &push.kind {
        PushKind::Event(Event::Click { event_key } | Event::Scan { event_key, .. }) => {
            Some(event_key)
        }
        PushKind::Event(Event::Subscribe { event_key, .. }) => event_key.as_deref(),
        PushKind::Event(Event::View { url, .. }) => Some(url),
        _ => push
            .extra
            .iter()
            .find(|e| e.name == "EventKey")
            .map(|e| e.text.as_str()),
    }
}

/// `reply = { text = "…" }`, `{ image = "MEDIA_ID" }`, `{ voice = "MEDIA_ID" }`,
/// `{ news = [{ title, description, pic_url, url }] }`,
/// `{ transfer_customer_service = true }` (or the account's name instead of
/// `true`), or the tagged form webhooks use (`{ type = "video", media_id = "…", title = "…" }`).
fn reply(value: &toml::Value) -> Result<ReplyBody, String> {
    let table = value
        .as_table()
        .ok_or("reply must be a table, e.g. { text = \"Welcome!\" }")?;
    if table.contains_key("type") {
        return value.clone().try_into().map_err(|e| format!("reply: {e}"));
    }
    let only = |name: &str| table.len() == 1 && table.contains_key(name);
    let string = |name: &str| table.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    match () {
        () if only("text") => string("text").map(|content| ReplyBody::Text { content }),
        () if only("image") => string("image").map(|media_id| ReplyBody::Image { media_id }),
        () if only("voice") => string("voice").map(|media_id| ReplyBody::Voice { media_id }),
        () if only("transfer_customer_service") => match &table["transfer_customer_service"] {
            toml::Value::Boolean(true) => Some(ReplyBody::TransferCustomerService { kf_account: None }),
            toml::Value::String(account) => Some(ReplyBody::TransferCustomerService {
                kf_account: Some(account.clone()),
            }),
            _ => None,
        },
        () if only("news") => {
            let articles: Vec<Article> = table["news"].clone().try_into().map_err(|e| format!("reply.news: {e}"))?;
            Some(ReplyBody::News { articles })
        }
        () => None,
    }
    .ok_or_else(|| "reply must be { text = \"…\" }, { image = \"…\" }, { voice = \"…\" }, { news = [...] }, { transfer_customer_service = true } or { type = \"…\", … }".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Result<Rule, String> {
        Rule::compile(&text.parse::<toml::Table>().unwrap())
    }

    fn text_push(content: &str) -> Push {
        Push {
            to_user_name: "gh".into(),
            from_user_name: "o".into(),
            create_time: 1,
            kind: PushKind::Text {
                msg_id: 1,
                content: content.into(),
            },
            extra: vec![],
        }
    }

    #[test]
    fn conditions_all_have_to_hold() {
        let help = rule("keyword = \"help\"\nreply = { text = \"menu\" }").unwrap();
        assert!(help.matches(&text_push(" HELP ")));
        assert!(!help.matches(&text_push("helpless")));
        let digits =
            rule("regex = '^\\d+$'\nmsg_type = \"text\"\nreply = { image = \"m\" }").unwrap();
        assert!(digits.matches(&text_push("42")));
        assert!(!digits.matches(&text_push("4 2")));
        assert_eq!(
            digits.reply,
            ReplyBody::Image {
                media_id: "m".into()
            }
        );
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert!(rule("reply = { text = \"x\" }")
            .unwrap_err()
            .contains("at least one"));
        assert!(rule("keyword = \"k\"")
            .unwrap_err()
            .contains("missing reply"));
        assert!(rule("regex = \"(\"\nreply = { text = \"x\" }")
            .unwrap_err()
            .contains("regex"));
        assert!(rule("keyword = \"k\"\nreply = { fax = \"x\" }")
            .unwrap_err()
            .contains("reply must be"));
        assert!(rule("keywords = \"k\"\nreply = { text = \"x\" }")
            .unwrap_err()
            .contains("unknown field"));
        let news = rule(
            "event = \"subscribe\"\nreply = { news = [{ title = \"t\", url = \"https://a/\" }] }",
        )
        .unwrap();
        assert!(matches!(news.reply, ReplyBody::News { ref articles } if articles.len() == 1));
        let transfer =
            rule("msg_type = \"text\"\nreply = { transfer_customer_service = true }").unwrap();
        assert_eq!(
            transfer.reply,
            ReplyBody::TransferCustomerService { kf_account: None }
        );
        let to_one =
            rule("msg_type = \"text\"\nreply = { transfer_customer_service = \"kf1@gh\" }")
                .unwrap();
        assert_eq!(
            to_one.reply,
            ReplyBody::TransferCustomerService {
                kf_account: Some("kf1@gh".into())
            }
        );
        assert!(rule("reply = { transfer_customer_service = false }").is_err());
    }
}
