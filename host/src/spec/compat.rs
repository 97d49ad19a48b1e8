//! `--compat omnicloud`: loads the CPI files the OmniCloud project shipped (its v0 format, the
//! seed's, and its v2 format with `target.Command` / `target.Endpoint`) by translating them into
//! the native format. Never silent: every defect and every difference from the original engine is
//! a warning that points at the original file, line and column.
//!
//! Safety differences from the original engine, on purpose:
//! - commands run in shell mode (they use pipes and redirections), but every value is
//!   single-quoted by the host; a placeholder the original quoted (`'{x}'`, `"… {x} …"`) is moved
//!   outside the quotes, so the host's quoting applies instead of the author's (which was
//!   injectable);
//! - a placeholder missing from `params` becomes a declared optional parameter (the original
//!   filled it from any caller parameter), with a warning;
//! - HTTP `Endpoint` actions become native `request` actions: values are escaped for where they
//!   land (URL-encoded in paths and queries, JSON-escaped in bodies, where the original pasted
//!   them in raw), and nothing is sent without a network grant for the host;
//! - `parse_rules` are applied (the native `parse_rules` output format).

use serde_json::{json, Map, Value};

use super::json::{Json, Member, Node};
use crate::diagnostic::{Diagnostic, SourceFile};

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

/// Moves placeholders out of the author's quotes so the host's quoting applies:
/// `"vm {name} x"` → `"vm "{name}" x"`, `'{x}'` → `''{x}''`. Both are one shell word once the
/// host single-quotes the value.
pub fn unquote_placeholders(command: &str) -> String {
    let mut out = String::with_capacity(command.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = command.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (None, '\'') | (None, '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (None, '\\') | (Some('"'), '\\') => {
                out.push(c);
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            (Some(_), '{') if command[i..].starts_with("{{") => {
                // `{{` is literal text for the template engine, together with what follows.
                out.push_str("{{");
                chars.next();
            }
            (Some(q), '{') => {
                let rest = &command[i + 1..];
                match rest.find('}').filter(|&end| is_identifier(&rest[..end])) {
                    Some(end) => {
                        out.push(q);
                        out.push_str(&command[i..i + end + 2]);
                        out.push(q);
                        for _ in 0..end + 1 {
                            chars.next();
                        }
                    }
                    None => out.push(c),
                }
            }
            (_, c) => out.push(c),
        }
    }
    out
}

impl Translator<'_> {
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
        let default_names: Vec<String> = defaults.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();

        let mut actions = Map::new();
        let action_members = field(root, "actions").map(members).unwrap_or(&[]);
        let kind_value = if kind == "container" { super::CpiKind::Container } else { super::CpiKind::Director };
        for member in action_members {
            let standard = super::kinds::canonical_action(kind_value, &member.key);
            if standard != member.key && action_members.iter().any(|m| m.key == standard) {
                self.warn(
                    member.key_span,
                    format!("`{}` and `{standard}` name the same action; `{standard}` is kept", member.key),
                    "omni-cpi treats OmniCloud's *_worker / *_volume names as aliases of *_vm / *_disk",
                );
                continue;
            }
            if let Some(action) = self.action(member, &default_names) {
                actions.insert(member.key.clone(), action);
            }
        }
        spec.insert("actions".into(), Value::Object(actions));
        spec.insert("validation".into(), json!({"required_commands": ["sh"]}));
        Value::Object(spec)
    }

    fn action(&mut self, member: &Member, defaults: &[String]) -> Option<Value> {
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
        let command = unquote_placeholders(original);
        if command != original {
            self.warn(
                command_node.span,
                format!("`{name}` quotes a placeholder; the host's quoting is used instead"),
                "the original's own quotes around placeholders were injectable",
            );
        }

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
        if let Some(opt) = field(node, "optional_params") {
            for m in members(opt) {
                if let (Some(fragment), true) = (string(&m.value), is_identifier(&m.key)) {
                    let fragment = unquote_placeholders(fragment);
                    fragment_placeholders.extend(placeholders(&fragment));
                    optional.insert(m.key.clone(), json!({"fragment": fragment}));
                }
            }
        }
        let mut hooks: Vec<(String, Value)> = Vec::new();
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
            let commands: Vec<String> =
                commands.iter().filter(|c| !c.trim().is_empty()).map(|c| unquote_placeholders(c)).collect();
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
            hooks.push((m.key.clone(), json!(commands)));
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
        let required: Vec<Value> = params.iter().filter(|p| !optional.contains_key(*p)).map(|p| json!(p)).collect();
        action.insert("command".into(), json!(command));
        action.insert("params".into(), Value::Array(required));
        if !optional.is_empty() {
            action.insert("optional_params".into(), Value::Object(optional));
        }
        for (key, commands) in hooks {
            action.insert(key, commands);
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

impl Translator<'_> {
    /// The action's `parse_rules` as the native output format, if they compile; otherwise a
    /// warning, and the action returns its raw output.
    fn parse_rules(&mut self, name: &str, node: &Node) -> Option<Value> {
        let rules = field(node, "parse_rules")?;
        match crate::rules::Rules::compile(&rules.to_value()) {
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
        if let Err(e) = crate::request::UrlTemplate::parse(url) {
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
                    if let Err(e) = crate::request::BodyTemplate::from_value(&template) {
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
        let mut action = Map::new();
        action.insert("request".into(), Value::Object(request));
        action.insert("params".into(), json!(params));
        if !undeclared.is_empty() {
            action.insert("optional_params".into(), json!(undeclared));
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
    let mut translator = Translator { source, warnings: Vec::new(), endpoint_noted: false };
    let native = translator.translate(root);
    Translation { native: serde_json::to_string_pretty(&native).unwrap_or_default(), warnings: translator.warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_placeholders_out_of_the_authors_quotes() {
        assert_eq!(
            unquote_placeholders(r#"vm --name "{name}" '{x}' plain {y}"#),
            r#"vm --name ""{name}"" ''{x}'' plain {y}"#
        );
        assert_eq!(unquote_placeholders(r#"echo "vm {name} ok""#), r#"echo "vm "{name}" ok""#);
        assert_eq!(unquote_placeholders(r#"fmt '{{json .}}' "a\"{b}""#), r#"fmt '{{json .}}' "a\""{b}"""#);
        assert_eq!(unquote_placeholders(r#"go '{{x}}'"#), r#"go '{{x}}'"#);
    }

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
