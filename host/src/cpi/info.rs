//! What `info` shows about a CPI, built by the form that knows it: a JSON document for machines
//! and text for people, with the same facts.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::contract::catalogue::{self, ParamType};
use crate::json::spec::{self, ActionBody};
use crate::json::JsonCpi;
use crate::wasm::ComponentCpi;

/// `info`'s output.
#[derive(Debug, Clone)]
pub struct Info {
    pub document: Value,
    pub text: String,
}

/// `writeln!` into a String, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

pub(super) fn of_component(cpi: &ComponentCpi) -> Info {
    let mut text = String::new();
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
        "interface": cpi.interface,
        "source": cpi.source,
        "sha256": cpi.sha256,
        "actions": d.actions.iter().map(|a| json!({
            "name": a.name,
            "supported": a.unsupported.is_none(),
            "reason": a.unsupported,
            "params": a.params.iter().map(|(n, r, desc)| json!({
                "name": n,
                "required": r,
                "type": catalogue_type(cpi, &a.name, n),
                "description": desc,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "default_settings": d.default_settings.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "conformance_params": cpi.conformance_params(),
        "settings": sandbox.settings.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "capabilities": {
            "requested": {"exec": requested_exec, "dirs": d.requests.dirs, "env": d.requests.env, "network": d.requests.network},
            "granted": {"exec": granted_exec, "fs": cpi.grants.fs, "env": cpi.grants.env, "network": cpi.grants.network},
            "effective": {
                "exec": sandbox.exec,
                "dirs": sandbox.dirs,
                "env": sandbox.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                "network": &*sandbox.network,
            },
        },
        "limits": {
            "memory_bytes": sandbox.limits.memory_bytes,
            "call_timeout_ms": sandbox.limits.call_timeout.as_millis() as u64,
            "exec_timeout_ms": sandbox.limits.exec_timeout.as_millis() as u64,
            "output_bytes": sandbox.limits.output_bytes,
            "return_bytes": sandbox.limits.return_bytes,
        },
    });
    w!(text, "{} ({} {}, {} component) from {}", cpi.name, d.name, d.version, d.kind.as_str(), cpi.source.display());
    w!(text, "sha256: {}", cpi.sha256);
    w!(text, "interface: {}", cpi.interface);
    if !sandbox.settings.is_empty() {
        w!(text, "settings (the operator's over the plugin's defaults):");
        for (key, value) in &sandbox.settings {
            let from = if cpi.grants.settings.contains_key(key) { "policy" } else { "default" };
            w!(text, "  {key} = {value:?} ({from})");
        }
    }
    w!(text, "capabilities (requested → granted):");
    for (program, args) in &d.requests.exec {
        let shown: Vec<String> = args.iter().cloned().map(String::from).collect();
        let granted = sandbox.exec.iter().find(|e| e.requested == *args).map(|e| e.program.display().to_string());
        w!(text, "  exec {program} {shown:?} → {}", granted.unwrap_or_else(|| "not granted".into()));
    }
    for (guest, writable) in &d.requests.dirs {
        let granted = sandbox.dirs.iter().find(|x| &x.guest == guest).map(|x| x.host.display().to_string());
        w!(
            text,
            "  dir {guest} ({}) → {}",
            if *writable { "rw" } else { "ro" },
            granted.unwrap_or_else(|| "not granted".into())
        );
    }
    for var in &d.requests.env {
        let granted = sandbox.env.iter().any(|(k, _)| k == var);
        w!(text, "  env {var} → {}", if granted { "granted" } else { "not granted or unset on the host" });
    }
    match &d.requests.network {
        // Every request is granted, or the component would not have loaded.
        Some(requested) => {
            for r in requested {
                w!(text, "  network {} port {} ({}) → granted (wasi:http)", r.host, r.port, r.description);
            }
        }
        // Before omni:cpi@0.3.0 a component cannot request hosts: the grants alone apply.
        None => {
            for grant in sandbox.network.iter() {
                let port = grant.port.map_or_else(|| "any port".to_string(), |p| format!("port {p}"));
                w!(
                    text,
                    "  network {} ({port}) → granted by the policy alone (wasi:http; {} cannot request hosts)",
                    grant.host,
                    cpi.interface
                );
            }
        }
    }
    let l = sandbox.limits;
    w!(
        text,
        "limits: memory {} MiB, call {:?}, exec {:?}, output {} bytes, return {} bytes",
        l.memory_bytes >> 20,
        l.call_timeout,
        l.exec_timeout,
        l.output_bytes,
        l.return_bytes
    );
    w!(text, "actions:");
    for a in &d.actions {
        match &a.unsupported {
            Some(reason) => w!(text, "  {:20} unsupported: {reason}", a.name),
            None => {
                let params: Vec<String> = a
                    .params
                    .iter()
                    .map(|(n, required, _)| {
                        let ty = match catalogue_type(cpi, &a.name, n) {
                            ParamType::String => String::new(),
                            other => format!(": {}", other.as_str()),
                        };
                        if *required {
                            format!("{n}{ty}")
                        } else {
                            format!("[{n}{ty}]")
                        }
                    })
                    .collect();
                w!(text, "  {:20} {}", a.name, params.join(" "));
            }
        }
    }
    Info { document: info, text }
}

/// A served CPI: the document its server answered, and that document as text.
pub(super) fn of_remote(cpi: &super::RemoteCpi) -> Info {
    let text = serde_json::to_string_pretty(&cpi.document).unwrap_or_default() + "\n";
    Info { document: cpi.document.clone(), text }
}

/// A component parameter's type: the catalogue's (describe() names only catalogue parameters).
fn catalogue_type(cpi: &ComponentCpi, action: &str, param: &str) -> ParamType {
    catalogue::standard_param(cpi.kind(), action, param).map_or(ParamType::String, |p| p.ty)
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

pub(super) fn of_spec(cpi: &JsonCpi) -> Info {
    let mut text = String::new();
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
        "conformance_params": spec.conformance_params,
        "required_commands": spec.validation.required_commands,
        "version_requirements": spec.validation.version_requirements.iter()
            .map(|v| json!({"tool": v.tool, "range": v.range.to_string(), "command": v.command.source()})).collect::<Vec<_>>(),
        "environment": cpi.env().iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        "setup_commands": spec.setup_commands.iter().map(|t| t.source()).collect::<Vec<_>>(),
        "policy": policy_line(cpi),
        "unrestricted": cpi.gate().is_unrestricted(),
        "warnings": spec.warnings,
    });
    w!(text, "{} ({} CPI) from {}", spec.name, spec.kind.as_str(), spec.source.display());
    if let Some(d) = &spec.description {
        w!(text, "  {d}");
    }
    w!(text, "policy: {}", policy_line(cpi));
    w!(text, "requires: {}", spec.validation.required_commands.join(", "));
    for v in &spec.validation.version_requirements {
        w!(text, "  {} {} (checked with `{}`)", v.tool, v.range, v.command.source());
    }
    w!(text, "environment: {}", cpi.env().iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "));
    for setup in &spec.setup_commands {
        w!(text, "setup: {}", setup.source());
    }
    w!(text, "actions:");
    for action in &spec.actions {
        match &action.body {
            ActionBody::Unsupported { reason } => {
                w!(text, "  {:20} unsupported: {reason}", action.name)
            }
            ActionBody::Request(request) => {
                w!(text, "  {:20} {}", action.name, param_synopsis(&request.params));
                w!(text, "  {:20}   request: {} {}", "", request.request.method, request.request.url.source());
            }
            ActionBody::Command(command) => {
                w!(text, "  {:20} {}", action.name, param_synopsis(&command.params));
                for hook in command.pre_hooks() {
                    w!(text, "  {:20}   {}: {}", "", hook.name, hook.command.source());
                }
                w!(text, "  {:20}   command: {}", "", command.command.source());
                for hook in command.post_hooks() {
                    w!(text, "  {:20}   {}: {}", "", hook.name, hook.command.source());
                }
            }
        }
    }
    for w in &spec.warnings {
        w!(text, "{w}");
    }
    Info { document: info, text }
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

/// What `info` shows about a component its policy does not let load (no entry binds it, or the
/// entry lacks grants it requests): what it is and asks for, what is missing, and the TOML that
/// would grant it. Nothing ran but `describe()`, with no capabilities.
pub(super) fn of_ungranted_component(
    source: &std::path::Path,
    world: crate::wasm::World,
    interface: crate::wasm::Interface,
    description: &crate::wasm::Description,
    entry: &str,
    missing: Option<&crate::wasm::sandbox::MissingGrants>,
    new_entry_head: Option<&str>,
) -> Info {
    let mut text = String::new();
    let d = description;
    let missing_list: Vec<String> = missing.map(|m| m.missing.clone()).unwrap_or_default();
    let toml = match (new_entry_head, missing) {
        (Some(head), Some(m)) => m.new_entry_toml(head),
        (Some(head), None) => head.trim_end().to_string() + "\n",
        // The entry exists: tables that paste after it, and `env` as a comment (it belongs in the
        // entry's own table, which TOML cannot reopen).
        (None, Some(m)) => {
            let mut toml = m.tables.clone();
            if let Some(env) = &m.env {
                let list: Vec<String> = env.iter().map(|v| format!("{v:?}")).collect();
                toml.push_str(&format!("# in [plugins.{entry}], set: env = [{}]\n", list.join(", ")));
            }
            toml
        }
        (None, None) => String::new(),
    };
    let requested_exec: Vec<Value> = d.requests.exec.iter().map(|(p, a)| json!({"program": p, "args": a})).collect();
    let document = json!({
        "name": entry,
        "plugin": {"name": d.name, "version": d.version},
        "kind": d.kind,
        "world": world,
        "interface": interface,
        "source": source,
        "loads": false,
        "bound": new_entry_head.is_none(),
        "actions": d.actions.iter().map(|a| json!({"name": a.name, "supported": a.unsupported.is_none(), "reason": a.unsupported})).collect::<Vec<_>>(),
        "capabilities": {"requested": {"exec": requested_exec, "dirs": d.requests.dirs, "env": d.requests.env, "network": d.requests.network}},
        "missing": missing_list,
        "toml": toml,
    });
    w!(text, "{} ({} {}, {} component) from {}", entry, d.name, d.version, d.kind.as_str(), source.display());
    match new_entry_head {
        Some(_) => w!(text, "not granted: no policy entry binds this file, so it does not load"),
        None => w!(text, "not granted: policy entry `{entry}` lacks what it requests below, so it does not load"),
    }
    w!(text, "interface: {interface}");
    w!(text, "requests:");
    for (program, args) in &d.requests.exec {
        let shown: Vec<String> = args.iter().cloned().map(String::from).collect();
        w!(text, "  exec {program} {shown:?}");
    }
    for (guest, writable) in &d.requests.dirs {
        w!(text, "  dir {guest} ({})", if *writable { "rw" } else { "ro" });
    }
    for var in &d.requests.env {
        w!(text, "  env {var}");
    }
    for r in d.requests.network.iter().flatten() {
        w!(text, "  network {} port {} ({})", r.host, r.port, r.description);
    }
    if !missing_list.is_empty() {
        w!(text, "missing:");
        for m in &missing_list {
            w!(text, "  - {m}");
        }
    }
    w!(text, "actions:");
    for a in &d.actions {
        match &a.unsupported {
            Some(reason) => w!(text, "  {:20} unsupported: {reason}", a.name),
            None => w!(text, "  {}", a.name),
        }
    }
    if !toml.is_empty() {
        w!(text, "to grant it what it requests:\n\n{}", toml.trim_end());
    }
    Info { document, text }
}
