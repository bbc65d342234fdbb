//! `wxgate reload`: asks the running deployment to read its configuration
//! file again (`POST /admin/reload` with the admin key). The file is checked
//! here first when this command reads it too: a file with problems is
//! reported, every problem, and the deployment is not asked (it would refuse
//! it the same way, and keeps running what it ran).

use std::process::ExitCode;

use super::admin_api::{print_refusal, AdminApi, Target};

/// Arguments of `wxgate reload`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: Target,
}

/// Prints what the deployment changed; fails when nothing was.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(path) = args.target.config_file() {
        if let Err(e) = super::load_config(path) {
            eprintln!("not reloaded: nothing was changed");
            eprintln!("{e:#}");
            return Ok(ExitCode::FAILURE);
        }
    }
    let api = AdminApi::new(args.target, "reloading")?;
    let (status, body) = api.call(reqwest::Method::POST, "/admin/reload").await?;
    if !status.is_success() {
        print_refusal("reload", status, &body);
        for problem in body["error"]["problems"].as_array().into_iter().flatten() {
            eprintln!(
                "  {}: {}",
                problem["field"].as_str().unwrap_or("?"),
                problem["problem"].as_str().unwrap_or("?")
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    let list = |name: &str| {
        let items: Vec<&str> = (body[name].as_array().into_iter().flatten())
            .filter_map(|v| v.as_str())
            .collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    println!(
        "reloaded {}: configuration {} -> {}",
        body["file"].as_str().unwrap_or("?"),
        body["previous"].as_str().unwrap_or("?"),
        body["fingerprint"].as_str().unwrap_or("?")
    );
    println!("added: {}", list("added"));
    println!("changed: {}", list("changed"));
    println!("removed: {}", list("removed"));
    println!("clients changed: {}", list("clients"));
    let restart = list("restart_required");
    if restart != "none" {
        println!("changed but applied only after a restart: {restart}");
    }
    Ok(ExitCode::SUCCESS)
}
