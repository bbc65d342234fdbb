//! `wxgate sign`: the signatures WeChat would put on a push, for checking a
//! server by hand (protocol reference §1.3, §3.5).

use std::io::Write;
use std::process::ExitCode;

/// Arguments of `wxgate sign`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The token typed into WeChat's server configuration.
    #[arg(long)]
    token: String,
    /// Unix seconds, exactly as in the query string.
    #[arg(long)]
    timestamp: String,
    /// The nonce, exactly as in the query string.
    #[arg(long)]
    nonce: String,
    /// The base64 `Encrypt` text of an encrypted push: also print its msg_signature.
    #[arg(long)]
    encrypt: Option<String>,
}

/// Prints `signature=…` and, with `--encrypt`, `msg_signature=…`.
pub(crate) fn run(args: Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let signature = wxgate_proto::signature(&args.token, &args.timestamp, &args.nonce);
    writeln!(out, "signature={signature}")?;
    if let Some(encrypt) = &args.encrypt {
        let msg_signature =
            wxgate_proto::msg_signature(&args.token, &args.timestamp, &args.nonce, encrypt);
        writeln!(out, "msg_signature={msg_signature}")?;
    }
    Ok(ExitCode::SUCCESS)
}
