//! `wxgate push`: act as WeChat towards any WeChat server — sign (and encrypt) a
//! push, POST it with WeChat's timeout and retries, check and print the reply.

use std::process::ExitCode;

use anyhow::Context as _;
use wxgate_gateway::clock::{Clock, SystemClock};
use wxgate_proto::BodyFormat;
use wxgate_sim::push::{self, Compose, Family, PushAs, PushRequest};
use wxgate_sim::PushAnswer;

/// Arguments of `wxgate push`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("message").required(true).args(["text", "event", "xml", "verify_url"])))]
pub(crate) struct Args {
    /// The server URL, as configured in WeChat's console.
    #[arg(long)]
    url: String,
    /// The server token, as configured in WeChat's console.
    #[arg(long)]
    token: String,
    /// AppID (needed with --aes-key).
    #[arg(long, conflicts_with = "corpid")]
    appid: Option<String>,
    /// Push as WeCom to this corp's callback URL (always encrypted, needs --aes-key).
    #[arg(long, requires = "aes_key")]
    corpid: Option<String>,
    /// Push as WeCom (implied by --corpid).
    #[arg(long, requires = "corpid", conflicts_with = "miniprogram")]
    wecom: bool,
    /// WeCom: the app's agentid, put in the envelope and the message.
    #[arg(long, requires = "corpid")]
    agentid: Option<u64>,
    /// Push as a Mini Program (only unencrypted `success` or transfer_customer_service is a valid answer).
    #[arg(long)]
    miniprogram: bool,
    /// Body format: xml or json (Mini Programs and WeCom may use JSON).
    #[arg(long, default_value = "xml", value_parser = parse_format)]
    format: BodyFormat,
    /// The 43-character EncodingAESKey; implies --mode safe unless --mode is given.
    #[arg(long)]
    aes_key: Option<String>,
    /// plain, compat or safe.
    #[arg(long)]
    mode: Option<String>,
    /// Push a text message.
    #[arg(long)]
    text: Option<String>,
    /// Push an event (subscribe, CLICK, …).
    #[arg(long)]
    event: Option<String>,
    /// EventKey of the event.
    #[arg(long, requires = "event")]
    event_key: Option<String>,
    /// Push this plaintext XML file as it is.
    #[arg(long, value_name = "FILE")]
    xml: Option<std::path::PathBuf>,
    /// Send the console's URL check (GET with echostr; encrypted for WeCom) instead of a push.
    #[arg(long)]
    verify_url: bool,
    /// With --verify-url: identical GETs sent at once (WeCom sends up to 3).
    #[arg(long, default_value_t = 1, requires = "verify_url")]
    fanout: u32,
    /// The sender's OpenID.
    #[arg(long, default_value = "oUser_wxgate_cli_0001")]
    from: String,
    /// The account's original id (gh_…).
    #[arg(long, default_value = "gh_wxgate_cli01")]
    to: String,
    /// How long to wait for an answer, milliseconds (WeChat: 5000).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Deliveries after the first when there is no answer (WeChat: 2).
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Print the whole outcome as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_format(s: &str) -> Result<BodyFormat, String> {
    match s {
        "xml" => Ok(BodyFormat::Xml),
        "json" => Ok(BodyFormat::Json),
        _ => Err(format!("{s:?} is neither xml nor json")),
    }
}

impl Args {
    fn push_as(&self) -> PushAs {
        let family = if self.wecom || self.corpid.is_some() {
            Family::Wecom
        } else if self.miniprogram {
            Family::Miniprogram
        } else {
            Family::Official
        };
        PushAs {
            family,
            format: self.format,
            agent_id: self.agentid,
        }
    }

    fn request(&self) -> anyhow::Result<PushRequest> {
        if self.verify_url {
            return Ok(self.request_with(Compose::VerifyUrl {
                fanout: self.fanout,
            }));
        }
        let message = match (&self.text, &self.event, &self.xml) {
            (Some(content), _, _) => Compose::Text {
                content: content.clone(),
            },
            (_, Some(event), _) => Compose::Event {
                event: event.clone(),
                event_key: self.event_key.clone(),
            },
            (_, _, Some(file)) => Compose::Xml {
                xml: std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?,
            },
            _ => anyhow::bail!("give --text, --event, --xml or --verify-url"),
        };
        Ok(self.request_with(message))
    }

    fn request_with(&self, message: Compose) -> PushRequest {
        let mode = self.mode.clone().unwrap_or_else(|| {
            if self.aes_key.is_some() {
                "safe"
            } else {
                "plain"
            }
            .to_owned()
        });
        PushRequest {
            url: self.url.clone(),
            token: self.token.clone(),
            mode,
            appid: self.corpid.clone().or_else(|| self.appid.clone()),
            encoding_aes_key: self.aes_key.clone(),
            message,
            from: self.from.clone(),
            to: self.to.clone(),
            timeout_ms: self.timeout_ms,
            retries: self.retries,
        }
    }
}

/// Pushes once (with retries) and prints what happened; fails unless WeChat
/// would have accepted the answer.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let request = args.request()?;
    // Pushes carry the real time, as WeChat's do.
    let now = SystemClock.now();
    let outcome = push::send_as(&push::client(), &request, &args.push_as(), now).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        for (i, attempt) in outcome.attempts.iter().enumerate() {
            let what = match (&attempt.error, attempt.status) {
                (Some(error), _) => error.clone(),
                (None, Some(status)) => format!("HTTP {status}"),
                (None, None) => "no answer".to_owned(),
            };
            println!("delivery {}: {what} after {} ms", i + 1, attempt.elapsed_ms);
        }
        match &outcome.answer {
            PushAnswer::NoReply => println!("answer: no reply (success or empty)"),
            PushAnswer::Reply { msg_type, xml } => println!("answer: {msg_type} reply\n{xml}"),
            PushAnswer::Invalid { reason, body } => {
                println!(
                    "answer: INVALID, WeChat would show an error to the user: {reason}\n{body}"
                )
            }
            PushAnswer::Unanswered => println!("answer: none, every delivery failed"),
            PushAnswer::Verified { echo } => println!("answer: URL check passed (echo {echo})"),
        }
    }
    Ok(match outcome.answer {
        PushAnswer::NoReply | PushAnswer::Reply { .. } | PushAnswer::Verified { .. } => {
            ExitCode::SUCCESS
        }
        PushAnswer::Invalid { .. } | PushAnswer::Unanswered => ExitCode::FAILURE,
    })
}
