//! How results look: readable text for people, one JSON document for machines.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use omni_cpi::diagnostic::Diagnostics;
use omni_cpi::policy::Policy;
use omni_cpi::requirements::RequirementCheck;
use omni_cpi::spec::{self, ActionBody, Spec};
use omni_cpi::wasm::ComponentCpi;
use omni_cpi::{Cpi, CpiError, JsonCpi, Outcome, Plan};
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
                omni_cpi::template::shell_quote(a)
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
        let summary = match cpi {
            Cpi::Json(json) => summary(json.spec()),
            Cpi::Component(component) => component_summary(component),
        };
        ValidationReport { file, loaded: Some((cpi.name().to_string(), summary)), diagnostics, requirements }
    }

    pub fn failed(file: PathBuf, diagnostics: Diagnostics) -> Self {
        ValidationReport { file, loaded: None, diagnostics, requirements: Vec::new() }
    }
}

fn summary(spec: &Spec) -> String {
    let unsupported = spec.actions.iter().filter(|a| matches!(a.body, ActionBody::Unsupported { .. })).count();
    format!(
        "{}, {} CPI, {} actions ({} declared unsupported)",
        spec.name,
        spec.kind.as_str(),
        spec.actions.len(),
        unsupported
    )
}

fn component_summary(cpi: &ComponentCpi) -> String {
    let d = &cpi.description;
    let unsupported = d.actions.iter().filter(|a| a.unsupported.is_some()).count();
    format!(
        "{} {}, {} component, {} actions ({} declared unsupported)",
        d.name,
        d.version,
        d.kind.as_str(),
        d.actions.len(),
        unsupported
    )
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

pub fn list(entries: &[(PathBuf, Result<Spec, Diagnostics>)], policy: &Policy, output: Output) -> Result<()> {
    let plugins: Vec<(&String, Option<&PathBuf>)> =
        policy.plugins.iter().map(|(n, g)| (n, g.source.as_ref())).collect();
    // Under a policy, the entry binding each file (grants follow files); None: it does not load.
    let binding = |file: &PathBuf| policy.plugin_for_source(file).map(|p| p.name.clone());
    let form = |source: Option<&PathBuf>| {
        if source.is_some_and(|s| omni_cpi::cpi::is_wasm(s)) {
            "component"
        } else {
            "spec"
        }
    };
    if output == Output::Json {
        let mut items: Vec<Value> = entries
            .iter()
            .map(|(file, loaded)| {
                let mut item = match loaded {
                    Ok(spec) => json!({"file": file, "name": spec.name, "kind": spec.kind, "actions": spec.actions.len(), "loads": true}),
                    Err(d) => json!({"file": file, "loads": false, "errors": d.0.iter().filter(|x| x.is_error()).count()}),
                };
                if policy.is_enforced() {
                    item["entry"] = json!(binding(file));
                    if binding(file).is_none() {
                        item["loads"] = json!(false);
                    }
                }
                item
            })
            .collect();
        items
            .extend(plugins.iter().map(|(name, source)| json!({"file": source, "entry": name, "form": form(*source)})));
        return print_json(&items);
    }
    for (file, loaded) in entries {
        let bound = match (policy.is_enforced(), binding(file)) {
            (false, _) => String::new(),
            (true, Some(entry)) => format!("  [policy entry `{entry}`]"),
            (true, None) => "  [no policy entry binds it: does not load under this policy]".to_string(),
        };
        match loaded {
            Ok(spec) => println!("{:28} {}{bound}", file.display(), summary(spec)),
            Err(d) => println!(
                "{:28} does not load: {} errors (run `omni-cpi validate {}`)",
                file.display(),
                d.0.iter().filter(|x| x.is_error()).count(),
                file.display()
            ),
        }
    }
    for (name, source) in plugins {
        println!(
            "{:28} policy entry `{name}` ({})",
            source.map_or("(no source)".to_string(), |s| s.display().to_string()),
            form(source)
        );
    }
    Ok(())
}

pub fn info(cpi: &Cpi, output: Output) -> Result<()> {
    match cpi {
        Cpi::Json(json) => spec_info(json, output),
        Cpi::Component(component) => component_info(component, output),
    }
}

fn component_info(cpi: &ComponentCpi, output: Output) -> Result<()> {
    let d = &cpi.description;
    let sandbox = cpi.sandbox();
    let requested_exec: Vec<Value> = d.requests.exec.iter().map(|(p, a)| json!({"program": p, "args": a})).collect();
    let granted_exec: Vec<Value> =
        cpi.grants.exec.iter().map(|g| json!({"program": g.program, "args": g.args})).collect();
    let info = json!({
        "name": cpi.name,
        "plugin": {"name": d.name, "version": d.version},
        "kind": d.kind,
        "world": cpi.world,
        "source": cpi.source,
        "sha256": cpi.sha256,
        "actions": d.actions.iter().map(|a| json!({
            "name": a.name,
            "supported": a.unsupported.is_none(),
            "reason": a.unsupported,
            "params": a.params.iter().map(|(n, r, desc)| json!({"name": n, "required": r, "description": desc})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "default_settings": d.default_settings.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "capabilities": {
            "requested": {"exec": requested_exec, "dirs": d.requests.dirs, "env": d.requests.env},
            "granted": {"exec": granted_exec, "fs": cpi.grants.fs, "env": cpi.grants.env},
            "effective": {"exec": sandbox.exec, "dirs": sandbox.dirs, "env": sandbox.env.iter().map(|(k, _)| k).collect::<Vec<_>>()},
        },
        "limits": {
            "memory_bytes": sandbox.limits.memory_bytes,
            "call_timeout_ms": sandbox.limits.call_timeout.as_millis() as u64,
            "exec_timeout_ms": sandbox.limits.exec_timeout.as_millis() as u64,
            "output_bytes": sandbox.limits.output_bytes,
            "return_bytes": sandbox.limits.return_bytes,
        },
    });
    if output == Output::Json {
        return print_json(&info);
    }
    println!("{} ({} {}, {} component) from {}", cpi.name, d.name, d.version, d.kind.as_str(), cpi.source.display());
    println!("sha256: {}", cpi.sha256);
    println!("capabilities (requested → granted):");
    for (program, args) in &d.requests.exec {
        let shown: Vec<String> = args.iter().cloned().map(String::from).collect();
        let granted = sandbox.exec.iter().find(|e| e.requested == *args).map(|e| e.program.display().to_string());
        println!("  exec {program} {shown:?} → {}", granted.unwrap_or_else(|| "not granted".into()));
    }
    for (guest, writable) in &d.requests.dirs {
        let granted = sandbox.dirs.iter().find(|x| &x.guest == guest).map(|x| x.host.display().to_string());
        println!(
            "  dir {guest} ({}) → {}",
            if *writable { "rw" } else { "ro" },
            granted.unwrap_or_else(|| "not granted".into())
        );
    }
    for var in &d.requests.env {
        let granted = sandbox.env.iter().any(|(k, _)| k == var);
        println!("  env {var} → {}", if granted { "granted" } else { "not granted or unset on the host" });
    }
    let l = sandbox.limits;
    println!(
        "limits: memory {} MiB, call {:?}, exec {:?}, output {} bytes, return {} bytes",
        l.memory_bytes >> 20,
        l.call_timeout,
        l.exec_timeout,
        l.output_bytes,
        l.return_bytes
    );
    println!("actions:");
    for a in &d.actions {
        match &a.unsupported {
            Some(reason) => println!("  {:20} unsupported: {reason}", a.name),
            None => {
                let params: Vec<String> = a
                    .params
                    .iter()
                    .map(|(n, required, _)| if *required { n.clone() } else { format!("[{n}]") })
                    .collect();
                println!("  {:20} {}", a.name, params.join(" "));
            }
        }
    }
    Ok(())
}

/// What restricts a spec's processes, in one line.
fn policy_line(cpi: &JsonCpi) -> String {
    if cpi.gate().is_unrestricted() {
        "none in force: this spec runs unrestricted (every program it renders may run; pass --policy to restrict it)"
            .to_string()
    } else {
        format!("entry `{}`: only its exec, env and network grants", cpi.gate().plugin())
    }
}

fn spec_info(cpi: &JsonCpi, output: Output) -> Result<()> {
    let spec = cpi.spec();
    let actions: Vec<Value> = spec
        .actions
        .iter()
        .map(|action| match &action.body {
            ActionBody::Unsupported { reason } => json!({"name": action.name, "supported": false, "reason": reason}),
            ActionBody::Command(command) => json!({
                "name": action.name,
                "supported": true,
                "description": action.description,
                "command": command.command.source(),
                "params": command.params.iter().map(|p| json!({
                    "name": p.name,
                    "required": p.required,
                    "type": p.ty,
                    "allow_dash": p.allow_dash,
                    "pattern": p.pattern.as_ref().map(|r| r.as_str().trim_start_matches("^(?:").trim_end_matches(")$").to_string()),
                    "fragment": p.fragment.as_ref().map(|f| f.source()),
                    "secret": p.secret,
                })).collect::<Vec<_>>(),
                "hooks": command.hooks.iter().map(|h| json!({"name": h.name, "command": h.command.source(), "ignore_failure": h.ignore_failure, "detach": h.detach})).collect::<Vec<_>>(),
                "detach": command.detach,
                "timeout_ms": command.timeout.map(|t| t.as_millis() as u64),
            }),
            ActionBody::Request(request) => json!({
                "name": action.name,
                "supported": true,
                "description": action.description,
                "request": {"method": request.request.method, "url": request.request.url.source()},
                "params": request.params.iter().map(|p| json!({
                    "name": p.name,
                    "required": p.required,
                    "type": p.ty,
                    "pattern": p.pattern.as_ref().map(|r| r.as_str().trim_start_matches("^(?:").trim_end_matches(")$").to_string()),
                })).collect::<Vec<_>>(),
                "timeout_ms": request.timeout.map(|t| t.as_millis() as u64),
            }),
        })
        .collect();
    let info = json!({
        "name": spec.name,
        "kind": spec.kind,
        "version": spec.version,
        "description": spec.description,
        "source": spec.source,
        "actions": actions,
        "default_settings": spec.default_settings,
        "required_commands": spec.validation.required_commands,
        "version_requirements": spec.validation.version_requirements.iter()
            .map(|v| json!({"tool": v.tool, "range": v.range.to_string(), "command": v.command.source()})).collect::<Vec<_>>(),
        "environment": cpi.env().iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        "setup_commands": spec.setup_commands.iter().map(|t| t.source()).collect::<Vec<_>>(),
        "policy": policy_line(cpi),
        "unrestricted": cpi.gate().is_unrestricted(),
        "warnings": spec.warnings,
    });
    if output == Output::Json {
        return print_json(&info);
    }
    println!("{} ({} CPI) from {}", spec.name, spec.kind.as_str(), spec.source.display());
    if let Some(d) = &spec.description {
        println!("  {d}");
    }
    println!("policy: {}", policy_line(cpi));
    println!("requires: {}", spec.validation.required_commands.join(", "));
    for v in &spec.validation.version_requirements {
        println!("  {} {} (checked with `{}`)", v.tool, v.range, v.command.source());
    }
    println!("environment: {}", cpi.env().iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "));
    for setup in &spec.setup_commands {
        println!("setup: {}", setup.source());
    }
    println!("actions:");
    for action in &spec.actions {
        match &action.body {
            ActionBody::Unsupported { reason } => {
                println!("  {:20} unsupported: {reason}", action.name)
            }
            ActionBody::Request(request) => {
                println!("  {:20} {}", action.name, param_synopsis(&request.params));
                println!("  {:20}   request: {} {}", "", request.request.method, request.request.url.source());
            }
            ActionBody::Command(command) => {
                println!("  {:20} {}", action.name, param_synopsis(&command.params));
                for hook in command.pre_hooks() {
                    println!("  {:20}   {}: {}", "", hook.name, hook.command.source());
                }
                println!("  {:20}   command: {}", "", command.command.source());
                for hook in command.post_hooks() {
                    println!("  {:20}   {}: {}", "", hook.name, hook.command.source());
                }
            }
        }
    }
    for w in &spec.warnings {
        println!("{w}");
    }
    Ok(())
}

/// `name [optional] [list: list]`, as `info` shows an action's parameters.
fn param_synopsis(params: &[spec::ParamDecl]) -> String {
    let words: Vec<String> = params
        .iter()
        .map(|p| {
            let ty = if p.ty == spec::ParamType::String { String::new() } else { format!(": {}", p.ty.as_str()) };
            if p.required {
                format!("{}{ty}", p.name)
            } else {
                format!("[{}{ty}]", p.name)
            }
        })
        .collect();
    words.join(" ")
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
        if step.stage() == omni_cpi::plan::StepStage::Rollback {
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
