//! `wxgate`: the command line. Each subcommand has one file in `cmd/` with an
//! `Args` struct and a `run` function; this file only dispatches.

use clap::{Parser, Subcommand};

mod cmd;

/// A self-hosted gateway for WeChat Official Accounts.
#[derive(Debug, Parser)]
#[command(name = "wxgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute a push signature (and msg_signature), for debugging a server by hand.
    Sign(cmd::sign::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sign(args) => cmd::sign::run(args, &mut std::io::stdout().lock()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wxgate: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
