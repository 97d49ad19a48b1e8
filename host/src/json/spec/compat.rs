//! `--compat omnicloud`: loads the CPI files the OmniCloud project shipped (its v0 format, the
//! seed's, and its v2 format with `target.Command` / `target.Endpoint`) by translating them into
//! the native format. Never silent: every defect and every difference from the original engine is
//! a warning that points at the original file, line and column.
//!
//! Safety differences from the original engine, on purpose:
//! - commands run in shell mode (they use pipes and redirections) through the same parser and
//!   renderer as native specs: every value reaches the script as a positional parameter, never as
//!   text. Where the original's placeholder lands in a context that reads it again (a JSON or
//!   config string, a remote command, a pattern, arithmetic), the parameter gets the inferred
//!   pattern [`INFERRED_PATTERN`]; where no pattern can make it safe (the program's position, an
//!   interpreter's code, a here-document), the action is declared unsupported. Every such
//!   decision is a warning at the placeholder's file, line and column, and each file ends with a
//!   summary line;
//! - a placeholder missing from `params` becomes a declared optional parameter (the original
//!   filled it from any caller parameter), with a warning;
//! - HTTP `Endpoint` actions become native `request` actions: values are escaped for where they
//!   land (URL-encoded in paths and queries, JSON-escaped in bodies, where the original pasted
//!   them in raw), and nothing is sent without a network grant for the host;
//! - `parse_rules` are applied (the native `parse_rules` output format).

use serde_json::{json, Map, Value};

use super::json::{Json, Member, Node, Span};
use crate::diagnostic::{Diagnostic, SourceFile};
use crate::json::template::{safe, Context, Mode, Template};
use crate::secrets::looks_like_credential;

/// The pattern a parameter gets when its value lands where text is read again.
pub const INFERRED_PATTERN: &str = safe::SAFE_EXAMPLE;

/// The same for a parameter named like a path, a directory or a file.
pub const INFERRED_PATH_PATTERN: &str = safe::SAFE_PATH_EXAMPLE;

fn inferred_pattern(param: &str) -> &'static str {
    let name = param.to_ascii_lowercase();
    if ["path", "dir", "file"].iter().any(|w| name.contains(w)) {
        INFERRED_PATH_PATTERN
    } else {
        INFERRED_PATTERN
    }
}

/// The compatibility modes the CLI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    OmniCloud,
}

/// A translated spec: native JSON text and the warnings about the original.
pub struct Translation {
    pub native: String,
    pub warnings: Vec<Diagnostic>,
}

struct Translator<'s> {
    source: &'s SourceFile,
    warnings: Vec<Diagnostic>,
    /// Per file: actions that run, those with inferred patterns, those declared unsupported.
    runnable: usize,
    with_patterns: Vec<String>,
    unsupported: usize,
    /// The file's note about network grants was given (once per file).
    endpoint_noted: bool,
}

fn members(node: &Node) -> &[Member] {
    match &node.value {
        Json::Object(m) => m,
        _ => &[],
    }
}

fn field<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    members(node).iter().find(|m| m.key == key).map(|m| &m.value)
}

fn string(node: &Node) -> Option<&str> {
    match &node.value {
        Json::String(s) => Some(s),
        _ => None,
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Placeholder names in a template, by the native rule (`{{` is literal).
fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            if bytes.get(i + 1) == Some(&b'{') {
                i += 2;
                continue;
            }
            if let Some(end) = template[i + 1..].find('}') {
                let name = &template[i + 1..i + 1 + end];
                if is_identifier(name) {
                    names.push(name.to_string());
                    i += end + 2;
                    continue;
                }
            }
        }
        i += 1;
    }
    names
}

impl Translator<'_> {
    /// The parameters among `params` named like credentials, each announced by a warning: the
    /// original files cannot mark a secret, so the name decides (`"secret": true`).
    fn credential_params(&mut self, action: &str, span: super::json::Span, params: &[String]) -> Vec<String> {
        let secrets: Vec<String> = params.iter().filter(|p| looks_like_credential(p)).cloned().collect();
        for secret in &secrets {
            self.warn(
                span,
                format!("parameter `{secret}` of `{action}` is named like a credential, so it is treated as `\"secret\": true`"),
                "its value is shown as *** in plans, errors, -o json and the audit log; the program still receives it",
            );
        }
        secrets
    }

    fn warn(&mut self, node_span: super::json::Span, message: String, help: &str) {
        self.warnings.push(Diagnostic::warning(message).at(self.source.locate(node_span)).help(help));
    }

    fn translate(&mut self, root: &Node) -> Value {
        let mut spec = Map::new();
        let name = field(root, "name").and_then(string).unwrap_or("omnicloud_cpi").to_string();
        spec.insert("name".into(), json!(name));
        let kind = match field(root, "type").and_then(string) {
            Some("container") => "container",
            other => {
                if let Some(node) = field(root, "type") {
                    self.warn(
                        node.span,
                        format!("CPI type {:?} is loaded as a director CPI", other.unwrap_or("")),
                        "omni-cpi knows the types container and director",
                    );
                }
                "director"
            }
        };
        spec.insert("type".into(), json!(kind));
        spec.insert("shell".into(), json!(true));
        spec.insert("description".into(), json!(format!("OmniCloud CPI loaded with --compat omnicloud")));
        for ignored in ["authentication", "mode"] {
            if let Some(node) = field(root, ignored) {
                self.warn(node.span, format!("`{ignored}` is ignored"), "the original engine never read it either");
            }
        }
        let defaults = field(root, "default_settings").map(Node::to_value).unwrap_or_else(|| json!({}));
        spec.insert("default_settings".into(), defaults.clone());
        let default_values = defaults.as_object().cloned().unwrap_or_default();

        let mut actions = Map::new();
        let action_members = field(root, "actions").map(members).unwrap_or(&[]);
        let kind_value = if kind == "container" { super::CpiKind::Container } else { super::CpiKind::Director };
        for member in action_members {
            let standard = crate::contract::catalogue::canonical_action(kind_value, &member.key);
            if standard != member.key && action_members.iter().any(|m| m.key == standard) {
                self.warn(
                    member.key_span,
                    format!("`{}` and `{standard}` name the same action; `{standard}` is kept", member.key),
                    "omni-cpi treats OmniCloud's *_worker / *_volume names as aliases of *_vm / *_disk",
                );
                continue;
            }
            if let Some(action) = self.action(member, &default_values) {
                actions.insert(member.key.clone(), action);
            }
        }
        spec.insert("actions".into(), Value::Object(actions));
        spec.insert("validation".into(), json!({"required_commands": ["sh"]}));
        Value::Object(spec)
    }

    fn action(&mut self, member: &Member, default_values: &Map<String, Value>) -> Option<Value> {
        let default_names: Vec<String> = default_values.keys().cloned().collect();
        let defaults = default_names.as_slice();
        let node = &member.value;
        let name = &member.key;
        let mut action = Map::new();
        // v2: target.Command / target.Endpoint; v0: command.
        let command_node = match field(node, "target") {
            Some(target) => {
                if let Some(endpoint) = field(target, "Endpoint") {
                    return Some(self.endpoint(name, node, endpoint, defaults));
                }
                let command = field(target, "Command");
                if let Some(in_vm) = command.and_then(|c| field(c, "in_vm")) {
                    if matches!(in_vm.value, Json::Bool(true)) {
                        self.warn(
                            in_vm.span,
                            format!("action `{name}` runs `in_vm`; it runs on the host here"),
                            "the original engine ran it over SSH in the VM",
                        );
                    }
                }
                command.and_then(|c| field(c, "command"))
            }
            None => field(node, "command"),
        };
        let Some(command_node) = command_node else {
            self.warn(
                node.span,
                format!("action `{name}` has no command; it is declared unsupported"),
                "give it a command",
            );
            return Some(json!({"unsupported": "the original spec has no command"}));
        };
        let Some(original) = string(command_node) else {
            self.warn(
                command_node.span,
                format!("the command of `{name}` is not a string; declared unsupported"),
                "write the command as one string",
            );
            return Some(json!({"unsupported": "the original command is not a string"}));
        };
        if original.trim().is_empty() {
            self.warn(
                command_node.span,
                format!("the command of `{name}` is empty; declared unsupported"),
                "a template stub: write the command",
            );
            return Some(json!({"unsupported": "the original command is empty"}));
        }
        if !original.trim_start().starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/' || c == '.') {
            self.warn(
                command_node.span,
                format!("the command of `{name}` does not start with a program"),
                "pseudo-code bodies cannot run",
            );
        }
        let command = original.to_string();

        let mut params: Vec<String> = Vec::new();
        if let Some(list) = field(node, "params") {
            if let Json::Array(items) = &list.value {
                for item in items {
                    if let Some(p) = string(item).filter(|p| is_identifier(p)) {
                        if !params.iter().any(|x| x == p) {
                            params.push(p.to_string());
                        }
                    }
                }
            }
        }
        // optional_params: name → fragment (v0).
        let mut optional: Map<String, Value> = Map::new();
        let mut fragment_placeholders = Vec::new();
        let mut fragment_nodes: Vec<(String, &Node)> = Vec::new();
        if let Some(opt) = field(node, "optional_params") {
            for m in members(opt) {
                if let (Some(fragment), true) = (string(&m.value), is_identifier(&m.key)) {
                    fragment_placeholders.extend(placeholders(fragment));
                    fragment_nodes.push((m.key.clone(), &m.value));
                    optional.insert(m.key.clone(), json!({"fragment": fragment}));
                }
            }
        }
        let mut hooks: Vec<(String, &Node, Vec<String>)> = Vec::new();
        let mut hook_placeholders = Vec::new();
        for m in members(node).iter().filter(|m| m.key.starts_with("pre_") || m.key.starts_with("post_")) {
            let commands: Vec<String> = match &m.value.value {
                Json::String(s) => vec![s.clone()],
                Json::Array(items) => items
                    .iter()
                    .filter_map(|i| {
                        string(i).map(str::to_string).or_else(|| {
                            field(i, "target")
                                .and_then(|t| field(t, "Command"))
                                .and_then(|c| field(c, "command"))
                                .and_then(string)
                                .map(str::to_string)
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let commands: Vec<String> = commands.into_iter().filter(|c| !c.trim().is_empty()).collect();
            if commands.is_empty() {
                self.warn(
                    m.value.span,
                    format!("hook `{}` of `{name}` has no runnable command; dropped", m.key),
                    "hooks are commands",
                );
                continue;
            }
            for c in &commands {
                hook_placeholders.extend(placeholders(c));
            }
            hooks.push((m.key.clone(), &m.value, commands));
        }

        // Placeholders the original filled from any caller parameter: declared optional here.
        let mut undeclared: Vec<String> =
            placeholders(&command).into_iter().chain(fragment_placeholders).chain(hook_placeholders).collect();
        undeclared.retain(|p| !params.contains(p) && !optional.contains_key(p) && !defaults.contains(p));
        undeclared.sort();
        undeclared.dedup();
        for p in &undeclared {
            optional.entry(p.clone()).or_insert(json!({}));
        }
        if !undeclared.is_empty() {
            let shown: Vec<String> = undeclared.iter().map(|p| format!("{{{p}}}")).collect();
            self.warn(
                command_node.span,
                format!("`{name}` uses {} without declaring them in `params`", shown.join(", ")),
                "they are accepted as optional parameters; the original filled them from any caller parameter",
            );
        }
        // Where each value lands, judged by the native parser and context table.
        let caller_params: Vec<String> = params.iter().chain(optional.keys()).cloned().collect();
        let settings: Map<String, Value> = default_values
            .iter()
            .filter(|(k, _)| !caller_params.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let inferred = match self.judge(name, command_node, &command, &fragment_nodes, &hooks, &settings) {
            Ok(inferred) => inferred,
            Err(reason) => {
                self.unsupported += 1;
                return Some(json!({ "unsupported": reason }));
            }
        };
        if !inferred.is_empty() {
            self.with_patterns.push(format!("{name} ({})", inferred.join(", ")));
        }
        self.runnable += 1;
        let all_params: Vec<String> = params.iter().chain(optional.keys()).cloned().collect();
        let secrets = self.credential_params(name, command_node.span, &all_params);
        let with_pattern = |p: &str, decl: Value| -> Value {
            let secret = secrets.iter().any(|s| s == p);
            if !inferred.iter().any(|i| i == p) && !secret {
                return decl;
            }
            let mut decl = match decl {
                Value::Object(m) => m,
                Value::String(fragment) => Map::from_iter([("fragment".to_string(), json!(fragment))]),
                _ => Map::new(),
            };
            if inferred.iter().any(|i| i == p) {
                decl.insert("pattern".into(), json!(inferred_pattern(p)));
            }
            if secret {
                decl.insert("secret".into(), json!(true));
            }
            Value::Object(decl)
        };
        let required: Vec<Value> = params
            .iter()
            .filter(|p| !optional.contains_key(*p))
            .map(|p| match with_pattern(p, Value::Null) {
                Value::Object(mut m) => {
                    m.insert("name".into(), json!(p));
                    Value::Object(m)
                }
                _ => json!(p),
            })
            .collect();
        let optional: Map<String, Value> =
            optional.into_iter().map(|(k, v)| (k.clone(), with_pattern(&k, v))).collect();
        action.insert("command".into(), json!(command));
        action.insert("params".into(), Value::Array(required));
        if !optional.is_empty() {
            action.insert("optional_params".into(), Value::Object(optional));
        }
        for (key, _, commands) in hooks {
            action.insert(key, json!(commands));
        }
        if let Some(code) = field(node, "success_exit_code").map(Node::to_value) {
            action.insert("success_exit_codes".into(), code);
        }
        if let Some(output) = self.parse_rules(name, node) {
            action.insert("output".into(), output);
        }
        for key in ["output_parser", "parse_output", "format", "remove_network", "default_settings"] {
            if let Some(n) = field(node, key) {
                self.warn(
                    n.span,
                    format!("`{key}` of `{name}` is not applied: the action returns its raw output"),
                    "omni-cpi does not apply OmniCloud output rules yet",
                );
            }
        }
        for m in members(node) {
            let known = [
                "target",
                "command",
                "params",
                "optional_params",
                "success_exit_code",
                "parse_rules",
                "output_parser",
                "parse_output",
                "format",
                "remove_network",
                "default_settings",
            ];
            if !known.contains(&m.key.as_str()) && !m.key.starts_with("pre_") && !m.key.starts_with("post_") {
                self.warn(
                    m.key_span,
                    format!("unknown key `{}` in `{name}` is ignored", m.key),
                    "the original engine ignored unknown keys silently",
                );
            }
        }
        Some(Value::Object(action))
    }
}

/// A template of an action, with where its text sits in the original file.
struct Judged<'n> {
    what: String,
    node: &'n Node,
    /// Whether `node` is the template's own string (placeholders can then be located exactly).
    exact: bool,
    parsed: Result<Template, crate::json::template::TemplateError>,
}

impl Translator<'_> {
    /// Where `offset` of the string literal `node` is in the original file.
    fn span_in(&self, node: &Node, exact: bool, offset: usize, len: usize) -> Span {
        if !exact || !matches!(node.value, Json::String(_)) {
            return node.span;
        }
        let text = self.source.text();
        Span::new(
            super::json::source_offset_in_string(text, node.span, offset),
            super::json::source_offset_in_string(text, node.span, offset + len),
        )
    }

    /// Parses every template of an action as a native shell-mode template would be, and decides:
    /// (`settings` are the default settings no caller can fill)
    /// the parameters that need [`INFERRED_PATTERN`] (each reported where it stands), or why the
    /// action cannot run safely at all.
    fn judge(
        &mut self,
        action: &str,
        command_node: &Node,
        command: &str,
        fragments: &[(String, &Node)],
        hooks: &[(String, &Node, Vec<String>)],
        settings: &Map<String, Value>,
    ) -> Result<Vec<String>, String> {
        let parsed_command = Template::parse(command, Mode::Shell);
        let mut templates = Vec::new();
        for (param, node) in fragments {
            let text = string(node).unwrap_or_default();
            templates.push(Judged {
                what: format!("the fragment of `{param}`"),
                node,
                exact: true,
                parsed: Template::parse_fragment(text, Mode::Shell, parsed_command.as_ref().ok()),
            });
        }
        for (hook, node, commands) in hooks {
            for text in commands {
                templates.push(Judged {
                    what: format!("hook `{hook}`"),
                    node,
                    exact: false,
                    parsed: Template::parse(text, Mode::Shell),
                });
            }
        }
        templates
            .insert(0, Judged { what: "the command".into(), node: command_node, exact: true, parsed: parsed_command });
        let mut inferred: Vec<String> = Vec::new();
        for judged in &templates {
            let template = match &judged.parsed {
                Ok(template) => template,
                Err(e) => {
                    let span = self.span_in(judged.node, judged.exact, e.offset, e.len.max(1));
                    self.warn(
                        span,
                        format!("{} of `{action}`: {}; the action is declared unsupported", judged.what, e.message),
                        "a caller's value there could run as code; rewrite the command natively (omni-cpi convert)",
                    );
                    return Err(format!("{} of the original cannot run safely: {}", judged.what, e.message));
                }
            };
            for placeholder in template.placeholders() {
                let Context::Reparsed(context) = &placeholder.context else { continue };
                let span = self.span_in(judged.node, judged.exact, placeholder.offset, placeholder.source_len());
                let name = &placeholder.name;
                if let Some(value) = settings.get(name) {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if !safe::value_is_safe(&text) {
                        self.warn(
                            span,
                            format!(
                                "`{{{name}}}` in {} of `{action}` stands in {context}, and its default setting                                  {text:?} is not a safe value there; the action is declared unsupported",
                                judged.what
                            ),
                            "change the setting to letters, digits, `_`, `.` and `-`, or rewrite the command",
                        );
                        return Err(format!("the default setting `{name}` lands in {context}"));
                    }
                    continue;
                }
                if !inferred.contains(name) {
                    self.warn(
                        span,
                        format!(
                            "`{{{name}}}` in {} of `{action}` stands in {context}: it is accepted only when it \
                             matches the inferred pattern `{}`",
                            judged.what,
                            inferred_pattern(name)
                        ),
                        "its text is read again there (as code, a structured string or a pattern)",
                    );
                    inferred.push(name.clone());
                }
            }
        }
        Ok(inferred)
    }

    /// The action's `parse_rules` as the native output format, if they compile; otherwise a
    /// warning, and the action returns its raw output.
    fn parse_rules(&mut self, name: &str, node: &Node) -> Option<Value> {
        let rules = field(node, "parse_rules")?;
        match crate::json::rules::Rules::compile(&rules.to_value()) {
            Ok(_) => Some(json!({"format": "parse_rules", "rules": rules.to_value()})),
            Err(message) => {
                self.warn(
                    rules.span,
                    format!(
                        "`parse_rules` of `{name}` cannot be applied ({message}); the action returns its raw output"
                    ),
                    "fix the rules",
                );
                None
            }
        }
    }

    /// A v2 `Endpoint` action as a native `request` action.
    fn endpoint(&mut self, name: &str, node: &Node, endpoint: &Node, defaults: &[String]) -> Value {
        let unsupported = |why: &str| json!({ "unsupported": format!("the original endpoint {why}") });
        let Some(url) = field(endpoint, "url").and_then(string) else {
            self.warn(endpoint.span, format!("endpoint `{name}` has no url; declared unsupported"), "give it a url");
            return unsupported("has no url");
        };
        if let Err(e) = crate::json::http::UrlTemplate::parse(url) {
            self.warn(endpoint.span, format!("the url of `{name}` cannot be used: {}", e.message), "fix the url");
            return unsupported("has an unusable url");
        }
        let method = field(endpoint, "method").and_then(string).unwrap_or("Get").to_ascii_uppercase();
        let mut request = Map::new();
        request.insert("method".into(), json!(method));
        request.insert("url".into(), json!(url));
        let mut used = placeholders(url);
        if let Some(headers) = field(endpoint, "headers") {
            let mut out = Map::new();
            for m in members(headers) {
                if let Some(value) = string(&m.value) {
                    used.extend(placeholders(value));
                    out.insert(m.key.clone(), json!(value));
                }
            }
            request.insert("headers".into(), Value::Object(out));
        }
        if let Some(body) = field(endpoint, "body") {
            let template = match &body.value {
                Json::String(text) => json_body_template(text),
                _ => Ok(body.to_value()),
            };
            match template {
                Err(why) => {
                    self.warn(body.span, format!("the body of `{name}` is not JSON ({why})"), "write a JSON body");
                    return unsupported("has a body that is not JSON");
                }
                Ok(_) if matches!(method.as_str(), "GET" | "HEAD") => self.warn(
                    body.span,
                    format!("`{name}` is a {method} request with a body; the body is dropped"),
                    "servers ignore the body of a GET; use POST if the API needs it",
                ),
                Ok(template) => {
                    if let Err(e) = crate::json::http::BodyTemplate::from_value(&template) {
                        self.warn(
                            body.span,
                            format!("the body of `{name}` cannot be sent safely: {}; declared unsupported", e.message),
                            "a caller-supplied value would choose the body's structure",
                        );
                        return unsupported("lets a parameter choose the body's structure");
                    }
                    collect_string_placeholders(&template, &mut used);
                    request.insert("body".into(), template);
                }
            }
        }
        if !self.endpoint_noted {
            self.endpoint_noted = true;
            self.warn(
                endpoint.span,
                format!("`{name}` (and every other endpoint here) sends HTTP requests"),
                "they are sent only to hosts the operator grants: --allow-host HOST or [[plugins.NAME.network]]",
            );
        }
        let mut params: Vec<String> = Vec::new();
        if let Some(Json::Array(items)) = field(node, "params").map(|n| &n.value) {
            for p in items.iter().filter_map(string).filter(|p| is_identifier(p)) {
                if !params.iter().any(|x| x == p) {
                    params.push(p.to_string());
                }
            }
        }
        let mut undeclared: Vec<String> =
            used.into_iter().filter(|p| !params.contains(p) && !defaults.contains(p)).collect();
        undeclared.sort();
        undeclared.dedup();
        if !undeclared.is_empty() {
            let shown: Vec<String> = undeclared.iter().map(|p| format!("{{{p}}}")).collect();
            self.warn(
                endpoint.span,
                format!("`{name}` uses {} without declaring them in `params`", shown.join(", ")),
                "they are accepted as optional parameters; the original filled them from any caller parameter",
            );
        }
        let all_params: Vec<String> = params.iter().chain(&undeclared).cloned().collect();
        let secrets = self.credential_params(name, endpoint.span, &all_params);
        let declare = |p: &String| {
            if secrets.contains(p) {
                json!({"name": p, "secret": true})
            } else {
                json!(p)
            }
        };
        let mut action = Map::new();
        action.insert("request".into(), Value::Object(request));
        action.insert("params".into(), Value::Array(params.iter().map(declare).collect()));
        if !undeclared.is_empty() {
            action.insert("optional_params".into(), Value::Array(undeclared.iter().map(declare).collect()));
        }
        if let Some(output) = self.parse_rules(name, node) {
            action.insert("output".into(), output);
        }
        for m in members(node) {
            if !["target", "params", "parse_rules"].contains(&m.key.as_str()) {
                self.warn(
                    m.key_span,
                    format!("`{}` of endpoint `{name}` is ignored", m.key),
                    "an endpoint action is one HTTP request",
                );
            }
        }
        Value::Object(action)
    }
}

/// The original bodies are JSON text with placeholders pasted in raw, inside strings
/// (`"name":"{name}"`) and outside (`"disks":{disk_names}`). A placeholder outside a string
/// becomes a whole-value placeholder (`"{disk_names}"`), which the native body renders as the
/// parameter's JSON value; then the text parses as the body template.
fn json_body_template(text: &str) -> Result<Value, String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '{' {
            let name: String = rest[1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if is_identifier(&name) && rest[1 + name.len()..].starts_with('}') {
                out.push_str(&format!("\"{{{name}}}\""));
                rest = &rest[name.len() + 2..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&out).map_err(|e| e.to_string())
}

fn collect_string_placeholders(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::String(s) => names.extend(placeholders(s)),
        Value::Array(items) => items.iter().for_each(|v| collect_string_placeholders(v, names)),
        Value::Object(members) => members.values().for_each(|v| collect_string_placeholders(v, names)),
        _ => {}
    }
}

/// Translates an OmniCloud CPI file into the native format.
pub fn translate(source: &SourceFile, root: &Node) -> Translation {
    let mut translator = Translator {
        source,
        warnings: Vec::new(),
        runnable: 0,
        with_patterns: Vec::new(),
        unsupported: 0,
        endpoint_noted: false,
    };
    let native = translator.translate(root);
    let summary = format!(
        "summary: {} actions runnable ({} with inferred patterns{}), {} unsupported",
        translator.runnable,
        translator.with_patterns.len(),
        if translator.with_patterns.is_empty() {
            String::new()
        } else {
            format!(": {}", translator.with_patterns.join("; "))
        },
        translator.unsupported
    );
    translator.warnings.push(
        Diagnostic::warning(summary)
            .at(source.locate(root.span))
            .help("every decision above is a warning at its placeholder; `omni-cpi convert` writes the result"),
    );
    Translation { native: serde_json::to_string_pretty(&native).unwrap_or_default(), warnings: translator.warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_json_bodies_become_body_templates() {
        let body = json_body_template(r#"{"name":"{name}","n":{count},"disks":{disk_names},"s":"a\"{x}}"}"#);
        assert_eq!(body, Ok(json!({"name": "{name}", "n": "{count}", "disks": "{disk_names}", "s": "a\"{x}}"})));
        assert!(json_body_template("name={name}").is_err());
    }

    #[test]
    fn finds_placeholders_like_the_template_engine() {
        assert_eq!(placeholders("a {x} {{y}} {not valid} {z_1}"), ["x", "z_1"]);
    }
}
