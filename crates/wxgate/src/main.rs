//! `wxgate`: the command line. Each subcommand has one file in `cmd/` with an
//! `Args` struct and a `run` function; this file only parses and dispatches.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod cmd;

/// jemalloc: under push load (many short-lived allocations from many tasks)
/// glibc's malloc spent a quarter of the CPU in its slow paths (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A self-hosted gateway for WeChat Official Accounts.
#[derive(Debug, Parser)]
#[command(name = "wxgate", version, about)]
struct Cli {
    /// Log format on stderr: `human` lines or `json` (one object per line). `RUST_LOG` filters.
    #[arg(long, global = true, env = "WXGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line; a request's lines carry its id (`span.request_id`).
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded default: the gateway in front of a simulated WeChat, no account needed.
    Dev(cmd::dev::Args),
    /// Run the production server.
    Serve(cmd::serve::Args),
    /// Print the current access_token as the deployment's store holds it.
    Token(cmd::token::Args),
    /// Revoke an app's leaked access token, through the running deployment.
    Revoke(cmd::revoke::Args),
    /// Make the running deployment read its configuration file again (as SIGHUP does).
    Reload(cmd::reload::Args),
    /// Look up a WeChat request id (the `rid` ending an errmsg), through the running deployment.
    Rid(cmd::rid::Args),
    /// Validate a configuration, and check its credentials with WeChat.
    Check(cmd::check::Args),
    /// Run the WeChat platform simulator as a standalone server.
    Sim(cmd::sim::Args),
    /// Act as WeChat: sign (and encrypt) a push, POST it to a server, retry, print the decoded reply.
    Push(cmd::push::Args),
    /// Compute a push signature (and msg_signature), for debugging a server by hand.
    Sign(cmd::sign::Args),
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    if let Some(refusal) = cmd::admin_api::key_on_command_line(&matches) {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, refusal)
            .exit();
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Sign(args) => cmd::sign::run(args, &mut std::io::stdout().lock()),
        Command::Dev(args) => runtime().and_then(|rt| rt.block_on(cmd::dev::run(args))),
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(cmd::serve::run(args))),
        Command::Token(args) => runtime().and_then(|rt| rt.block_on(cmd::token::run(args))),
        Command::Revoke(args) => runtime().and_then(|rt| rt.block_on(cmd::revoke::run(args))),
        Command::Reload(args) => runtime().and_then(|rt| rt.block_on(cmd::reload::run(args))),
        Command::Rid(args) => runtime().and_then(|rt| rt.block_on(cmd::rid::run(args))),
        Command::Check(args) => runtime().and_then(|rt| rt.block_on(cmd::check::run(args))),
        Command::Sim(args) => runtime().and_then(|rt| rt.block_on(cmd::sim::run(args))),
        Command::Push(args) => runtime().and_then(|rt| rt.block_on(cmd::push::run(args))),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("wxgate: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs go to stderr; `RUST_LOG` filters, `--log-format json` switches to JSON lines.
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("wxgate=info,wxgate_sim=info,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if format == LogFormat::Json {
        builder
            .json()
            .event_format(wxgate_gateway::logs::Lines::json())
            .try_init()
    } else {
        builder
            .fmt_fields(wxgate_gateway::logs::fields())
            .event_format(wxgate_gateway::logs::Lines::human())
            .try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
