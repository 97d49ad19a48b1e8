//! `omni-cpi --remote ADDRESS …`: the same commands, answered by `omni-cpi serve` (call, info,
//! list, conformance), printed as they would be locally.

use anyhow::{bail, Result};
use omni_cpi::cpi::RemoteCpi;
use omni_cpi::serve::client::Remote;
use omni_cpi::{CallOptions, Cpi, ErrorKind};
use serde_json::Value;

use super::{params, show, Args, Command, Output, EXIT_FAILED, EXIT_OK, EXIT_USAGE};

pub async fn run(args: &Args, remote: Remote) -> Result<u8> {
    match &args.command {
        Command::Info { cpi } => {
            let cpi = Cpi::from(connect(&remote, cpi).await?);
            show::info(&cpi.info(), args.output)?;
            Ok(EXIT_OK)
        }
        Command::List { .. } => {
            let answer = remote.request("GET", "/v1/cpis", None).await?;
            if answer.status != 200 {
                bail!("{} answered {}: {}", remote.address, answer.status, answer.body);
            }
            if args.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&answer.body)?);
                return Ok(EXIT_OK);
            }
            for cpi in answer.body["cpis"].as_array().into_iter().flatten() {
                let text = |key: &str| cpi[key].as_str().unwrap_or_default().to_string();
                let actions = cpi["actions"].as_array().map_or(0, Vec::len);
                println!(
                    "{:16} {:9} {:9} {actions:2} actions  {}",
                    text("name"),
                    text("kind"),
                    text("form"),
                    text("source")
                );
            }
            Ok(EXIT_OK)
        }
        Command::Call { cpi, action, params, params_file, dry_run, timeout } => {
            let cpi = connect(&remote, cpi).await?;
            let params = params::collect(params, params_file.as_deref())?;
            let options = CallOptions { timeout: *timeout, ..CallOptions::default() };
            if *dry_run {
                return match cpi.plan_document(action, &params, &options).await {
                    Ok(plan) => {
                        print_plan(&plan, args.output)?;
                        Ok(EXIT_OK)
                    }
                    Err(e) => {
                        show::call_error(&e, args.output)?;
                        Ok(exit_for(e.kind))
                    }
                };
            }
            match cpi.call(action, &params, &options).await {
                Ok(outcome) => {
                    show::outcome(&outcome, args.output)?;
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    show::call_error(&e, args.output)?;
                    Ok(exit_for(e.kind))
                }
            }
        }
        Command::Conformance(c) => {
            let loader = super::loader(args)?;
            super::conformance::run(&loader, Some(&remote), c, &args.cpi_dir, args.output).await
        }
        _ => bail!("--remote serves call, info, list and conformance; run the other commands without it"),
    }
}

async fn connect(remote: &Remote, name: &str) -> Result<RemoteCpi> {
    RemoteCpi::connect(remote.clone(), name).await.map_err(anyhow::Error::msg)
}

/// As locally: 2 when the call itself was wrong and nothing ran, 1 when it failed.
fn exit_for(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::Unsupported => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// A served plan: the server's document, or for people its steps as argv lines.
fn print_plan(plan: &Value, output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    println!(
        "plan for {} {} (nothing was run):",
        plan["cpi"].as_str().unwrap_or_default(),
        plan["action"].as_str().unwrap_or_default()
    );
    for step in plan["steps"].as_array().into_iter().flatten() {
        let argv: Vec<&str> = step["argv"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!("  [{}] {}", step["name"].as_str().unwrap_or("step"), argv.join(" "));
    }
    Ok(())
}
