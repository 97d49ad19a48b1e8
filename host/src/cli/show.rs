//! How results look: readable text for people, one JSON document for machines.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use omni_cpi::diagnostic::Diagnostics;
use omni_cpi::json::requirements::RequirementCheck;
use omni_cpi::{Cpi, CpiError, CpiLoadError, Outcome, Plan};
use serde_json::{json, Value};

use super::Output;

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Quotes an argv for display so it can be pasted into a shell.
fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain {
                a.clone()
            } else {
                omni_cpi::json::template::shell_quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn diagnostics(path: &Path, diagnostics: &Diagnostics, output: Output) -> Result<()> {
    match output {
        Output::Json => print_json(&json!({"file": path, "diagnostics": diagnostics.0})),
        Output::Text => {
            eprint!("{diagnostics}");
            Ok(())
        }
    }
}

pub struct ValidationReport {
    pub file: PathBuf,
    /// Name and a one-line summary, when the CPI loaded.
    pub loaded: Option<(String, String)>,
    pub diagnostics: Diagnostics,
    pub requirements: Vec<RequirementCheck>,
}

impl ValidationReport {
    pub fn loaded(file: PathBuf, cpi: &Cpi, diagnostics: Diagnostics, requirements: Vec<RequirementCheck>) -> Self {
        ValidationReport { file, loaded: Some((cpi.name().to_string(), cpi.summary())), diagnostics, requirements }
    }

    pub fn failed(file: PathBuf, diagnostics: Diagnostics) -> Self {
        ValidationReport { file, loaded: None, diagnostics, requirements: Vec::new() }
    }
}

pub fn validation(reports: &[ValidationReport], output: Output) -> Result<()> {
    if output == Output::Json {
        let items: Vec<Value> = reports
            .iter()
            .map(|r| {
                json!({
                    "file": r.file,
                    "valid": !r.diagnostics.has_errors() && r.requirements.iter().all(|c| c.satisfied),
                    "name": r.loaded.as_ref().map(|(name, _)| name.clone()),
                    "diagnostics": r.diagnostics.0,
                    "requirements": r.requirements,
                })
            })
            .collect();
        return print_json(&items);
    }
    for r in reports {
        let status = if r.diagnostics.has_errors() { "invalid" } else { "ok" };
        match &r.loaded {
            Some((_, summary)) => println!("{status:7} {} ({summary})", r.file.display()),
            None => println!("{status:7} {}", r.file.display()),
        }
        for d in &r.diagnostics.0 {
            println!("{d}");
        }
        for check in &r.requirements {
            let mark = if check.satisfied { "ok" } else { "MISSING" };
            println!("        {mark:7} {}: {}", check.requirement, check.detail);
        }
    }
    Ok(())
}

/// One file `list` looked at, loaded through the loader as `call` would load it.
pub struct Listed {
    pub file: PathBuf,
    /// The policy entry binding it, under a policy.
    pub entry: Option<String>,
    pub loaded: Result<Cpi, CpiLoadError>,
}

pub fn list(listed: &[Listed], policy_enforced: bool, output: Output) -> Result<()> {
    if output == Output::Json {
        let items: Vec<Value> = listed
            .iter()
            .map(|item| {
                let mut value = match &item.loaded {
                    Ok(cpi) => json!({
                        "file": item.file, "name": cpi.name(), "kind": cpi.kind(), "form": cpi.form(),
                        "actions": cpi.actions().len(), "loads": true,
                    }),
                    Err(e) => json!({"file": item.file, "loads": false, "error": load_error_line(e)}),
                };
                if policy_enforced {
                    value["entry"] = json!(item.entry);
                }
                value
            })
            .collect();
        return print_json(&items);
    }
    for item in listed {
        let bound = match &item.entry {
            Some(entry) if policy_enforced => format!("  [policy entry `{entry}`]"),
            _ => String::new(),
        };
        match &item.loaded {
            Ok(cpi) => println!("{:28} {}{bound}", item.file.display(), cpi.summary()),
            Err(e) => println!("{:28} does not load: {}", item.file.display(), load_error_line(e)),
        }
    }
    Ok(())
}

/// A load error in one line, for `list`.
fn load_error_line(error: &CpiLoadError) -> String {
    match error {
        CpiLoadError::Spec(d) => {
            format!("{} errors (run `omni-cpi validate`)", d.0.iter().filter(|x| x.is_error()).count())
        }
        CpiLoadError::Unbound(_) => "no policy entry binds it".to_string(),
        other => other.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

pub fn info(info: &omni_cpi::cpi::Info, output: Output) -> Result<()> {
    match output {
        Output::Json => print_json(&info.document),
        Output::Text => {
            print!("{}", info.text);
            Ok(())
        }
    }
}

pub fn plan(plan: &Plan, output: Output) -> Result<()> {
    if output == Output::Json {
        return print_json(plan);
    }
    println!("plan for {} {} (nothing was run):", plan.cpi(), plan.action());
    for step in plan.steps() {
        let mut notes = vec![format!("timeout {:?}", step.timeout())];
        if step.ignore_failure() {
            notes.push("failure ignored".into());
        }
        if step.detach() {
            notes.push("detach: its own sessions may outlive a timeout".into());
        }
        if step.stage() == omni_cpi::contract::plan::StepStage::Rollback {
            notes.push("only if a post hook fails".into());
        }
        match step.request() {
            Some(request) => {
                println!("  [{}] ({})", step.name(), notes.join(", "));
                for line in request.to_string().lines() {
                    if line.is_empty() {
                        println!();
                    } else {
                        println!("    {line}");
                    }
                }
            }
            None => println!("  [{}] {}  ({})", step.name(), shell_line(step.argv()), notes.join(", ")),
        }
        if let Some(stdin) = step.stdin() {
            println!("    stdin: {stdin:?}");
        }
    }
    if !plan.ignored_params().is_empty() {
        println!("ignored parameters (not declared by the action): {}", plan.ignored_params().join(", "));
    }
    Ok(())
}

pub fn outcome(outcome: &Outcome, output: Output) -> Result<()> {
    if output == Output::Json {
        return print_json(outcome);
    }
    match &outcome.result {
        Some(result) => println!("{}", serde_json::to_string_pretty(result)?),
        None => print!("{}", outcome.stdout),
    }
    if outcome.result.is_none() && !outcome.stderr.is_empty() {
        eprint!("{}", outcome.stderr);
    }
    if outcome.stdout_truncated || outcome.stderr_truncated {
        eprintln!("note: output was truncated at the capture limit");
    }
    if outcome.http_status.is_none() && outcome.exit_code != Some(0) {
        eprintln!("exit status: {}", outcome.exit_code.map_or("none (signal)".to_string(), |c| c.to_string()));
    }
    Ok(())
}

pub fn call_error(error: &CpiError, output: Output) -> Result<()> {
    if output == Output::Json {
        return print_json(&json!({"error": error}));
    }
    eprintln!("error[{}]: {}: {}", error.kind, error.action, error.message);
    if let Some(step) = &error.failed_step {
        eprintln!("  step: {}: {}", step.step, shell_line(&step.argv));
        if let Some(code) = step.exit_code {
            eprintln!("  exit status: {code}");
        }
        if let Some(status) = step.http_status {
            eprintln!("  HTTP status: {status}");
        }
        let stderr = step.stderr.trim();
        if !stderr.is_empty() {
            eprintln!("  stderr:");
            for line in stderr.lines() {
                eprintln!("    {line}");
            }
        }
    }
    Ok(())
}
