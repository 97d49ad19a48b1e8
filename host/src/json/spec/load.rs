//! Decodes a spanned JSON tree into a [`Spec`], reporting every problem with its location.
//!
//! The decoder keeps going after an error so one run shows all of a file's problems. Semantic
//! checks that need the whole action (placeholders declared, programs allowed) run here too,
//! because only here are the spans of the template strings known.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use super::json::{self, Json, Member, Node, Span};
use super::*;
use crate::contract::catalogue;
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::json::http::{self, BodyTemplate, RequestTemplate, UrlTemplate};
use crate::json::template::{safe, Context, Mode, Template};
use crate::suggest;

/// Largest spec file accepted; the biggest real CPI file is under 100 KiB.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// Longest timeout a spec may set.
const MAX_TIMEOUT: Duration = crate::contract::duration::MAX;

const TOP_KEYS: &[&str] = &[
    "$schema",
    "name",
    "type",
    "version",
    "description",
    "shell",
    "timeout",
    "working_dir",
    "env",
    "actions",
    "default_settings",
    "validation",
    "setup_commands",
    "errors",
    "conformance",
];
const ACTION_KEYS: &[&str] = &[
    "description",
    "command",
    "request",
    "shell",
    "params",
    "optional_params",
    "timeout",
    "success_exit_codes",
    "output",
    "errors",
    "success_when",
    "rollback",
    "unsupported",
    "detach",
    "stdin",
];
const HOOK_KEYS: &[&str] = &["command", "ignore_failure", "timeout", "description", "detach"];
const PARAM_KEYS: &[&str] = &["name", "type", "allow_dash", "pattern", "description", "fragment", "secret"];
const OUTPUT_KEYS: &[&str] = &["format", "pattern", "multiple", "rules"];
const ERROR_RULE_KEYS: &[&str] = &["kind", "exit_code", "stderr", "stdout", "status", "body"];
const CONDITION_KEYS: &[&str] = &["exit_code", "stderr", "stdout", "status", "body"];
const REQUEST_KEYS: &[&str] = &["method", "url", "headers", "body"];
/// Keys of a command action that mean nothing to a request action.
const COMMAND_ONLY_KEYS: &[&str] = &["command", "shell", "success_exit_codes", "rollback"];
const VALIDATION_KEYS: &[&str] = &["required_commands", "version_requirements"];
const VERSION_KEYS: &[&str] = &["range", "command"];
const ENV_KEYS: &[&str] = &["inherit", "set"];
const CONFORMANCE_KEYS: &[&str] = &["params"];

/// Every key the format accepts, by object, for the schema and reference consistency test.
pub const KEYS_BY_OBJECT: &[(&str, &[&str])] = &[
    ("spec", TOP_KEYS),
    ("action", ACTION_KEYS),
    ("hook", HOOK_KEYS),
    ("param", PARAM_KEYS),
    ("output", OUTPUT_KEYS),
    ("error_rule", ERROR_RULE_KEYS),
    ("condition", CONDITION_KEYS),
    ("conformance", CONFORMANCE_KEYS),
    ("request", REQUEST_KEYS),
    ("validation", VALIDATION_KEYS),
    ("version_requirement", VERSION_KEYS),
    ("env", ENV_KEYS),
];

/// Reads and loads a spec file. Variables that hijack execution ([`crate::policy::hijacks_execution`])
/// are refused: only [`load_file_granting`], with the policy's exact grants, admits them.
pub fn load_file(path: &Path) -> Result<Spec, Diagnostics> {
    load_file_granting(path, EntryGrants::default())
}

/// What the operator's policy entry gives a spec at load: the variables it grants by exact name
/// (hijacking ones included), which the spec's `env` may then name, and the entry's
/// `[settings]`, which replace `default_settings` values before any check reads them (so a value
/// the operator sets is held to the same rules as the author's).
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryGrants<'a> {
    pub env: &'a [String],
    pub settings: Option<&'a std::collections::BTreeMap<String, String>>,
}

/// Reads and loads a spec file under its policy entry's grants.
pub fn load_file_granting(path: &Path, grants: EntryGrants<'_>) -> Result<Spec, Diagnostics> {
    load_str_granting(path, read_text(path)?, grants)
}

/// A spec file's text: at most [`MAX_SPEC_BYTES`], UTF-8. Read once: callers that check the
/// bytes (a policy's sha256 pin) load the same text they checked.
pub fn read_text(path: &Path) -> Result<String, Diagnostics> {
    let fail = |message: String| Err(Diagnostics(vec![Diagnostic::error(message)]));
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
    };
    if size > MAX_SPEC_BYTES {
        return fail(format!("{} is {size} bytes; a spec may be at most {MAX_SPEC_BYTES} bytes", path.display()));
    }
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
    };
    match String::from_utf8(bytes) {
        Ok(text) if text.len() as u64 <= MAX_SPEC_BYTES => Ok(text),
        Ok(text) => {
            fail(format!("{} is {} bytes; a spec may be at most {MAX_SPEC_BYTES} bytes", path.display(), text.len()))
        }
        Err(e) => {
            fail(format!("{} is not UTF-8 (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to()))
        }
    }
}

/// Loads a spec from text; `path` is used in messages.
pub fn load_str(path: impl Into<PathBuf>, text: String) -> Result<Spec, Diagnostics> {
    load_str_granting(path, text, EntryGrants::default())
}

/// [`load_str`] under a policy entry's grants (see [`EntryGrants`]).
pub fn load_str_granting(path: impl Into<PathBuf>, text: String, grants: EntryGrants<'_>) -> Result<Spec, Diagnostics> {
    let source = SourceFile::new(path, text);
    let root = json::parse(source.text()).map_err(|e| {
        let span = Span::new(e.offset, e.offset + 1);
        Diagnostics(vec![Diagnostic::error(format!("invalid JSON: {}", e.message)).at(source.locate(span))])
    })?;
    let mut decoder = Decoder {
        source: &source,
        errors: Vec::new(),
        warnings: Vec::new(),
        granted_env: grants.env,
        settings: grants.settings,
        kind: None,
    };
    let spec = decoder.spec(&root);
    match spec {
        Some(spec) if decoder.errors.is_empty() => Ok(Spec { warnings: decoder.warnings, ..spec }),
        _ => {
            let mut all = decoder.errors;
            all.extend(decoder.warnings);
            Err(Diagnostics(all))
        }
    }
}

fn first<'n>(members: &'n [Member], key: &str) -> Option<&'n Member> {
    members.iter().find(|m| m.key == key)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_hook_key(key: &str) -> bool {
    ["pre_", "post_"].iter().any(|p| key.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

/// What a template may refer to and run, fixed per action.
struct TemplateScope<'a> {
    mode: Mode,
    /// False when the action's parameter list itself was broken: undeclared-placeholder errors
    /// would then only echo that problem.
    params_complete: bool,
    params: &'a [ParamDecl],
    defaults: &'a serde_json::Map<String, Value>,
    programs: &'a [String],
}

impl TemplateScope<'_> {
    fn declares(&self, name: &str) -> bool {
        self.params.iter().any(|p| p.name == name) || self.defaults.contains_key(name)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| p.name.as_str()).chain(self.defaults.keys().map(String::as_str))
    }
}

struct Decoder<'s> {
    source: &'s SourceFile,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Variable names the operator's policy grants this spec by exact name.
    granted_env: &'s [String],
    /// The operator's values for `default_settings` keys.
    settings: Option<&'s std::collections::BTreeMap<String, String>>,
    /// The spec's kind, once decoded: bare-name parameters of standard actions take their shape
    /// from the catalogue ([`catalogue::standard_params`]).
    kind: Option<CpiKind>,
}

impl Decoder<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::error(message).at(self.source.locate(span));
        d.help = help;
        self.errors.push(d);
    }

    fn warn(&mut self, span: Span, message: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::warning(message).at(self.source.locate(span));
        d.help = help;
        self.warnings.push(d);
    }

    fn type_error(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(node.span, format!("{what} must be {expected}, found {}", node.value.type_name()), None);
    }

    /// The members of an object, after reporting unknown and duplicate keys.
    fn object<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
        also_allowed: fn(&str) -> bool,
    ) -> Option<&'n [Member]> {
        let Json::Object(members) = &node.value else {
            self.type_error(node, what, "an object");
            return None;
        };
        for (i, member) in members.iter().enumerate() {
            if !allowed.contains(&member.key.as_str()) && !also_allowed(&member.key) {
                let help = match suggest::closest(&member.key, allowed.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("the keys allowed here are: {}", allowed.join(", ")),
                };
                self.error(member.key_span, format!("unknown key `{}` in {what}", member.key), Some(help));
            }
            self.check_unique(members, i, &format!("key `{}` in {what}", member.key));
        }
        Some(members)
    }

    /// The entries of an object whose keys are names (actions, settings, variables): any key is
    /// allowed, but each only once.
    fn map<'n>(&mut self, node: &'n Node, what: &str, noun: &str) -> Option<&'n [Member]> {
        let Json::Object(members) = &node.value else {
            self.type_error(node, what, "an object");
            return None;
        };
        for (i, member) in members.iter().enumerate() {
            self.check_unique(members, i, &format!("{noun} `{}`", member.key));
        }
        Some(members)
    }

    /// Reports member `i` if an earlier member has the same key.
    fn check_unique(&mut self, members: &[Member], i: usize, what: &str) {
        let member = &members[i];
        if let Some(earlier) = members[..i].iter().find(|m| m.key == member.key) {
            let line = self.source.locate(earlier.key_span).line;
            self.error(
                member.key_span,
                format!("duplicate {what}"),
                Some(format!("the first one is on line {line}; JSON keeps only one, so remove or rename one of them")),
            );
        }
    }

    fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match &node.value {
            Json::String(s) => Some(s),
            _ => {
                self.type_error(node, what, "a string");
                None
            }
        }
    }

    fn non_empty_string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        let s = self.string(node, what)?;
        if s.trim().is_empty() {
            self.error(node.span, format!("{what} must not be empty"), None);
            return None;
        }
        Some(s)
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Json::Bool(b) => Some(b),
            _ => {
                self.type_error(node, what, "true or false");
                None
            }
        }
    }

    fn array<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Json::Array(items) => Some(items),
            _ => {
                self.type_error(node, what, "an array");
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, what: &str) -> Vec<String> {
        let Some(items) = self.array(node, what) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.non_empty_string(item, &format!("each item of {what}")).map(str::to_string))
            .collect()
    }

    /// The type a parameter declared by bare name takes: the catalogue's for a standard action's
    /// parameter (the seed's `"params": ["name", "ports", "env"]`: `ports` a list, `env` a map),
    /// else a string.
    fn standard_type(&self, action: &str, param: &str) -> ParamType {
        self.kind.and_then(|kind| catalogue::standard_param(kind, action, param)).map_or(ParamType::String, |p| p.ty)
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let parsed = match &node.value {
            Json::Number(n) => n.as_f64().and_then(|secs| Duration::try_from_secs_f64(secs).ok()),
            Json::String(s) => crate::contract::duration::parse(s),
            _ => None,
        };
        match parsed {
            Some(d) if !d.is_zero() && d <= MAX_TIMEOUT => Some(d),
            _ => {
                self.error(
                    node.span,
                    format!("{what} must be a positive duration of at most 24h"),
                    Some("write seconds as a number (30, 0.5) or a string with a unit (\"500ms\", \"30s\", \"2m\", \"1h\")".into()),
                );
                None
            }
        }
    }

    fn regex(&mut self, node: &Node, what: &str, anchored: bool) -> Option<Regex> {
        let pattern = self.string(node, what)?;
        let full = if anchored { format!("^(?:{pattern})$") } else { pattern.to_string() };
        match Regex::new(&full) {
            Ok(re) => Some(re),
            Err(e) => {
                let detail =
                    e.to_string().lines().last().unwrap_or_default().trim().trim_start_matches("error: ").to_string();
                self.error(node.span, format!("{what} is not a valid regular expression: {detail}"), None);
                None
            }
        }
    }

    /// The source span of bytes `start..start + len` of the string literal `node`.
    fn span_in_string(&self, node: &Node, start: usize, len: usize) -> Span {
        let text = self.source.text();
        Span::new(
            json::source_offset_in_string(text, node.span, start),
            json::source_offset_in_string(text, node.span, start + len),
        )
    }

    fn template(&mut self, node: &Node, what: &str, scope: &TemplateScope<'_>) -> Option<Template> {
        self.template_of(node, what, scope, None)
    }

    /// A command, or (with `fragment_of`) an `optional_params` fragment appended to that command.
    fn template_of(
        &mut self,
        node: &Node,
        what: &str,
        scope: &TemplateScope<'_>,
        fragment_of: Option<Option<&Template>>,
    ) -> Option<Template> {
        let text = self.string(node, what)?;
        let fragment = fragment_of.is_some();
        let parsed = match fragment_of {
            Some(command) => Template::parse_fragment(text, scope.mode, command),
            None => Template::parse(text, scope.mode),
        };
        let template = match parsed {
            Ok(t) => t,
            Err(e) => {
                let span = self.span_in_string(node, e.offset, e.len.max(1));
                self.error(span, format!("{what}: {}", e.message), e.help);
                return None;
            }
        };
        let mut ok = true;
        for placeholder in template.placeholders() {
            let span = self.span_in_string(node, placeholder.offset, placeholder.source_len());
            ok &= self.check_declared(&placeholder.name, span, what, scope);
            if let Context::Reparsed(context) = &placeholder.context {
                ok &= self.check_reparsed(&placeholder.name, context, span, what, scope);
            }
        }
        let program = template.program();
        if !fragment && !scope.programs.iter().any(|p| p == program) {
            ok = false;
            let lead = text.len() - text.trim_start().len();
            let span = self.span_in_string(node, lead, program.len().max(1));
            self.error(
                span,
                format!("{what} runs `{program}`, which is not listed in validation.required_commands"),
                Some(format!(
                    "add \"{program}\" to validation.required_commands: a spec may run only the programs it declares"
                )),
            );
        }
        ok.then_some(template)
    }

    /// The operator's `[plugins.NAME.settings]` over `default_settings`: only keys the spec
    /// declares, each parsed as its default's type (a number stays a number). Applied before any
    /// template is checked, so an operator's value meets the same checks as the author's.
    fn apply_operator_settings(&mut self, defaults: &mut serde_json::Map<String, Value>, span: Span) {
        let Some(settings) = self.settings else { return };
        for (key, text) in settings {
            let Some(default) = defaults.get(key) else {
                let near = crate::suggest::closest(key, defaults.keys().map(String::as_str))
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                let declared: Vec<String> = defaults.keys().map(|k| format!("`{k}`")).collect();
                self.error(
                    span,
                    format!("the policy's `[plugins.NAME.settings]` sets `{key}`, which `default_settings` does not declare{near}"),
                    Some(format!(
                        "set only declared settings ({})",
                        if declared.is_empty() { "this spec declares none".to_string() } else { declared.join(", ") }
                    )),
                );
                continue;
            };
            let value = match default {
                Value::String(_) => Some(Value::String(text.clone())),
                Value::Bool(_) => text.parse::<bool>().ok().map(Value::Bool),
                Value::Number(_) => serde_json::from_str::<serde_json::Number>(text).ok().map(Value::Number),
                _ => None,
            };
            match value {
                Some(value) => {
                    defaults.insert(key.clone(), value);
                }
                None => self.error(
                    span,
                    format!(
                        "the policy's `[plugins.NAME.settings]` sets `{key}` to {text:?}, but its default is {default}"
                    ),
                    Some("give a value of that type (a list or object default cannot be set from the policy)".into()),
                ),
            }
        }
    }

    /// A placeholder whose value is read again as code (the script of `sh -c`, arithmetic, a
    /// remote command): its parameter's pattern must admit only safe characters, or, for a
    /// default setting, its value must consist of them.
    fn check_reparsed(&mut self, name: &str, context: &str, span: Span, what: &str, scope: &TemplateScope<'_>) -> bool {
        let restrictive = match scope.params.iter().find(|p| p.name == name) {
            Some(decl) => decl.pattern.as_ref().is_some_and(|p| safe::pattern_is_restrictive(p.as_str())),
            None => match scope.defaults.get(name) {
                Some(Value::String(s)) => safe::value_is_safe(s),
                Some(Value::Number(_) | Value::Bool(_)) => true,
                _ => !scope.params_complete,
            },
        };
        if !restrictive {
            self.error(
                span,
                format!("placeholder `{{{name}}}` in {what} stands in {context}, which is read again as code"),
                Some(format!(
                    "declare a pattern for `{name}` that admits only {} (for example \"pattern\": \"{}\" or \
                     \"[0-9]+\"), or pass the value as a plain argument (sh -c '… \"$1\"' sh {{{name}}})",
                    safe::SAFE_SET,
                    safe::SAFE_EXAMPLE
                )),
            );
        }
        restrictive
    }

    /// Whether a placeholder names a declared parameter or default setting; reports it if not.
    fn check_declared(&mut self, name: &str, span: Span, what: &str, scope: &TemplateScope<'_>) -> bool {
        if scope.declares(name) || !scope.params_complete {
            return true;
        }
        let near =
            suggest::closest(name, scope.names()).map(|n| format!("did you mean `{{{n}}}`? ")).unwrap_or_default();
        self.error(
            span,
            format!("placeholder `{{{name}}}` in {what} is not a declared parameter"),
            Some(format!(
                "{near}declare it in \"params\" or \"optional_params\", or give it a value in \"default_settings\""
            )),
        );
        false
    }

    fn spec(&mut self, root: &Node) -> Option<Spec> {
        let members = match &root.value {
            Json::Object(_) => self.object(root, "the spec", TOP_KEYS, |_| false)?,
            _ => {
                self.type_error(root, "a spec", "a JSON object");
                return None;
            }
        };
        let root_start = Span::new(root.span.start, root.span.start + 1);
        let mut missing = |key: &str, example: &str| {
            self.error(root_start, format!("the spec has no `{key}`"), Some(format!("add {example}")));
        };
        let name_member = first(members, "name");
        let type_member = first(members, "type");
        let actions_member = first(members, "actions");
        if name_member.is_none() {
            missing("name", "\"name\": \"my_runtime_cpi\"");
        }
        if type_member.is_none() {
            missing("type", "\"type\": \"container\" or \"type\": \"director\"");
        }
        if actions_member.is_none() {
            missing("actions", "\"actions\": { ... }");
        }

        let name = name_member.and_then(|m| self.non_empty_string(&m.value, "`name`")).map(str::to_string);
        let kind = type_member.and_then(|m| self.kind(&m.value));
        self.kind = kind;
        let optional_string = |d: &mut Self, key: &str| {
            first(members, key).and_then(|m| d.string(&m.value, &format!("`{key}`")).map(str::to_string))
        };
        let version = optional_string(self, "version");
        let description = optional_string(self, "description");
        let shell = first(members, "shell").and_then(|m| self.bool(&m.value, "`shell`")).unwrap_or(false);
        let timeout = first(members, "timeout").and_then(|m| self.duration(&m.value, "`timeout`"));
        let working_dir = match first(members, "working_dir") {
            None => PathBuf::from("/"),
            Some(m) => match self.string(&m.value, "`working_dir`") {
                Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
                Some(_) => {
                    self.error(m.value.span, "`working_dir` must be an absolute path", None);
                    PathBuf::from("/")
                }
                None => PathBuf::from("/"),
            },
        };
        let env = first(members, "env").map(|m| self.env(&m.value)).unwrap_or_default();
        let settings_member = first(members, "default_settings");
        let mut default_settings = match settings_member {
            Some(m) => match self.map(&m.value, "`default_settings`", "setting") {
                Some(_) => match m.value.to_value() {
                    Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                },
                None => serde_json::Map::new(),
            },
            None => serde_json::Map::new(),
        };
        let settings_span = settings_member.map_or(root_start, |m| m.value.span);
        self.apply_operator_settings(&mut default_settings, settings_span);
        let validation = first(members, "validation").map(|m| self.validation(&m.value)).unwrap_or_default();
        let conformance_params =
            first(members, "conformance").map(|m| self.conformance_params(&m.value)).unwrap_or_default();
        let errors = first(members, "errors").map(|m| self.error_rules(&m.value, "the spec")).unwrap_or_default();

        let setup_scope = TemplateScope {
            params_complete: true,
            mode: mode(shell),
            params: &[],
            defaults: &default_settings,
            programs: &validation.required_commands,
        };
        let setup_commands = match first(members, "setup_commands") {
            Some(m) => self
                .array(&m.value, "`setup_commands`")
                .unwrap_or_default()
                .iter()
                .filter_map(|item| self.template(item, "a setup command", &setup_scope))
                .collect(),
            None => Vec::new(),
        };
        let version_requirements = self.version_commands(members, &validation, &default_settings, shell);

        let mut actions = Vec::new();
        if let Some(m) = actions_member {
            if let Some(action_members) = self.map(&m.value, "`actions`", "action") {
                for member in action_members {
                    let ctx = ActionContext {
                        spec_shell: shell,
                        defaults: &default_settings,
                        programs: &validation.required_commands,
                    };
                    if let Some(mut action) = self.action(member, &ctx) {
                        // Director aliases (`create_worker`) are stored under the standard name.
                        if let Some(kind) = kind {
                            action.name = catalogue::canonical_action(kind, &action.name).to_string();
                        }
                        if actions.iter().any(|a: &Action| a.name == action.name) {
                            self.error(
                                member.key_span,
                                format!(
                                    "action `{}` is another name for `{}`, which is already defined",
                                    member.key, action.name
                                ),
                                Some("define the action once, under either name".into()),
                            );
                            continue;
                        }
                        actions.push(action);
                    }
                }
            }
        }
        if let Some(kind) = kind {
            self.warn_unknown_actions(kind, actions_member);
        }
        Some(Spec {
            name: name?,
            kind: kind?,
            version,
            description,
            actions,
            default_settings,
            conformance_params,
            validation: Validation { version_requirements, ..validation },
            setup_commands,
            env,
            errors,
            timeout,
            working_dir,
            source: self.source.path().to_path_buf(),
            actions_location: actions_member.map(|m| self.source.locate(m.key_span)),
            warnings: Vec::new(),
        })
    }

    fn kind(&mut self, node: &Node) -> Option<CpiKind> {
        match self.string(node, "`type`")? {
            "container" => Some(CpiKind::Container),
            "director" => Some(CpiKind::Director),
            other => {
                self.error(
                    node.span,
                    format!("unknown CPI type `{other}`"),
                    Some(
                        "use \"container\" (manages containers on a node) or \"director\" (manages VMs on an IaaS)"
                            .into(),
                    ),
                );
                None
            }
        }
    }

    fn env(&mut self, node: &Node) -> EnvPolicy {
        let Some(members) = self.object(node, "`env`", ENV_KEYS, |_| false) else {
            return EnvPolicy::default();
        };
        let mut policy = EnvPolicy::default();
        if let Some(m) = first(members, "inherit") {
            for item in self.array(&m.value, "`env.inherit`").unwrap_or_default() {
                if let Some(var) = self.string(item, "each item of `env.inherit`") {
                    if self.env_name(var, item.span, "env.inherit") {
                        policy.inherit.push(var.to_string());
                        policy.named_at.push((var.to_string(), self.source.locate(item.span)));
                    }
                }
            }
        }
        if let Some(m) = first(members, "set") {
            if let Some(vars) = self.map(&m.value, "`env.set`", "variable") {
                for var in vars {
                    if !self.env_name(&var.key, var.key_span, "env.set") {
                        continue;
                    }
                    if let Some(value) = self.string(&var.value, &format!("`env.set.{}`", var.key)) {
                        policy.set.push((var.key.clone(), value.to_string()));
                        policy.named_at.push((var.key.clone(), self.source.locate(var.key_span)));
                    }
                }
            }
        }
        policy
    }

    /// Whether `name` may stand in `env.inherit` / `env.set`: a variable name, and not one that
    /// makes programs run other code unless the policy grants it by exact name.
    fn env_name(&mut self, name: &str, span: Span, key: &str) -> bool {
        if !crate::policy::is_env_name(name) {
            self.error(
                span,
                format!("`{name}` in `{key}` is not a valid environment variable name"),
                Some("names are letters, digits and `_`, not starting with a digit".into()),
            );
            return false;
        }
        if crate::policy::hijacks_execution(name) && !self.granted_env.iter().any(|g| g == name) {
            self.error(
                span,
                format!("`{key}` names `{name}`, which makes the programs this spec runs execute other code (loader, shell start-up, interpreter options or search path)"),
                Some(format!(
                    "remove it; if the operator really means it, the policy entry that binds this file grants it by exact name: env = [\"{name}\"]"
                )),
            );
            return false;
        }
        true
    }

    fn validation(&mut self, node: &Node) -> Validation {
        let Some(members) = self.object(node, "`validation`", VALIDATION_KEYS, |_| false) else {
            return Validation::default();
        };
        let required_commands = first(members, "required_commands")
            .map(|m| self.string_list(&m.value, "`validation.required_commands`"))
            .unwrap_or_default();
        for command in &required_commands {
            if command.contains('/') && !command.starts_with('/') {
                let span = first(members, "required_commands").map_or(node.span, |m| m.value.span);
                self.error(span, format!("required command `{command}` must be a bare name or an absolute path"), None);
            }
        }
        Validation { required_commands, version_requirements: Vec::new() }
    }

    /// `conformance.params`: what the conformance kit passes to every call of this CPI (an image
    /// its runtime has, a short stop timeout), so the kit needs no knowledge of particular CPIs.
    fn conformance_params(&mut self, node: &Node) -> serde_json::Map<String, Value> {
        let Some(members) = self.object(node, "`conformance`", CONFORMANCE_KEYS, |_| false) else {
            return serde_json::Map::new();
        };
        let Some(params) = first(members, "params") else {
            return serde_json::Map::new();
        };
        let Some(entries) = self.map(&params.value, "`conformance.params`", "parameter") else {
            return serde_json::Map::new();
        };
        let mut out = serde_json::Map::new();
        for entry in entries {
            let value = entry.value.to_value();
            let fits = ParamType::ALL.iter().any(|t| t.accepts(&value));
            if !fits {
                self.error(
                    entry.value.span,
                    format!(
                        "conformance parameter `{}` must be a string, number, boolean, list or map of those",
                        entry.key
                    ),
                    None,
                );
                continue;
            }
            out.insert(entry.key.clone(), value);
        }
        out
    }

    /// Decodes `validation.version_requirements`; needs the required commands to check programs.
    fn version_commands(
        &mut self,
        members: &[Member],
        validation: &Validation,
        defaults: &serde_json::Map<String, Value>,
        shell: bool,
    ) -> Vec<VersionRequirement> {
        let Some(requirements) = first(members, "validation").and_then(|v| match &v.value.value {
            Json::Object(vm) => first(vm, "version_requirements"),
            _ => None,
        }) else {
            return Vec::new();
        };
        let Some(tools) = self.map(&requirements.value, "`validation.version_requirements`", "tool") else {
            return Vec::new();
        };
        let scope = TemplateScope {
            mode: mode(shell),
            params_complete: true,
            params: &[],
            defaults,
            programs: &validation.required_commands,
        };
        let mut out = Vec::new();
        for tool in tools {
            let what = format!("the version requirement for `{}`", tool.key);
            let (range_node, command_node) = match &tool.value.value {
                Json::String(_) => (&tool.value, None),
                Json::Object(_) => {
                    let Some(fields) = self.object(&tool.value, &what, VERSION_KEYS, |_| false) else {
                        continue;
                    };
                    let Some(range) = first(fields, "range") else {
                        self.error(
                            tool.value.span,
                            format!("{what} has no `range`"),
                            Some("add \"range\": \">=1.0.0\"".into()),
                        );
                        continue;
                    };
                    (&range.value, first(fields, "command").map(|c| &c.value))
                }
                _ => {
                    self.type_error(
                        &tool.value,
                        &what,
                        "a version range string or an object with `range` and `command`",
                    );
                    continue;
                }
            };
            let Some(range_text) = self.string(range_node, &format!("the range of {what}")) else {
                continue;
            };
            let range = match semver::VersionReq::parse(range_text) {
                Ok(range) => range,
                Err(e) => {
                    self.error(
                        range_node.span,
                        format!("`{range_text}` is not a version range: {e}"),
                        Some("write a semver range such as \">=4.0.0\" or \">=1.2, <2\"".into()),
                    );
                    continue;
                }
            };
            let command = match command_node {
                Some(node) => self.template(node, &format!("the version command for `{}`", tool.key), &scope),
                None if validation.required_commands.contains(&tool.key) => {
                    Template::parse(&format!("{} --version", tool.key), Mode::Argv).ok()
                }
                None => {
                    self.error(
                        tool.key_span,
                        format!("`{}` has a version requirement but is not a required command", tool.key),
                        Some(format!(
                            "name the command that prints its version: \"{}\": {{\"range\": \"{range_text}\", \"command\": \"some-tool --version\"}}",
                            tool.key
                        )),
                    );
                    None
                }
            };
            if let Some(command) = command {
                out.push(VersionRequirement { tool: tool.key.clone(), range, command });
            }
        }
        out
    }

    fn error_rules(&mut self, node: &Node, owner: &str) -> Vec<ErrorRule> {
        let what = format!("`errors` of {owner}");
        let Some(items) = self.array(node, &what) else {
            return Vec::new();
        };
        let mut rules = Vec::new();
        for item in items {
            let Some(fields) = self.object(item, &format!("an error rule of {owner}"), ERROR_RULE_KEYS, |_| false)
            else {
                continue;
            };
            let Some(kind_member) = first(fields, "kind") else {
                self.error(item.span, format!("an error rule of {owner} has no `kind`"), Some(kinds_help()));
                continue;
            };
            let kind = match self.string(&kind_member.value, "`kind`").map(str::parse::<ErrorKind>) {
                Some(Ok(kind)) => kind,
                Some(Err(())) => {
                    self.error(kind_member.value.span, "unknown error kind", Some(kinds_help()));
                    continue;
                }
                None => continue,
            };
            if let Some(when) = self.condition(item, fields, &format!("an error rule of {owner}")) {
                rules.push(ErrorRule { kind, when });
            }
        }
        rules
    }

    fn success_conditions(&mut self, node: &Node, owner: &str) -> Vec<Condition> {
        let what = format!("`success_when` of {owner}");
        let Some(items) = self.array(node, &what) else {
            return Vec::new();
        };
        let mut conditions = Vec::new();
        for item in items {
            let Some(fields) = self.object(item, &format!("a condition in {what}"), CONDITION_KEYS, |_| false) else {
                continue;
            };
            conditions.extend(self.condition(item, fields, &format!("a condition in {what}")));
        }
        conditions
    }

    fn condition(&mut self, item: &Node, fields: &[Member], what: &str) -> Option<Condition> {
        let exit_codes = first(fields, "exit_code").and_then(|m| self.exit_codes(&m.value, "`exit_code`"));
        let stderr = first(fields, "stderr").and_then(|m| self.regex(&m.value, "`stderr`", false));
        let stdout = first(fields, "stdout").and_then(|m| self.regex(&m.value, "`stdout`", false));
        let statuses = first(fields, "status").and_then(|m| self.statuses(&m.value));
        let body = first(fields, "body").and_then(|m| self.regex(&m.value, "`body`", false));
        let given = CONDITION_KEYS.iter().any(|k| first(fields, k).is_some());
        if !given {
            self.error(
                item.span,
                format!("{what} has no condition"),
                Some(
                    "add \"exit_code\", \"stderr\" or \"stdout\" for commands, \"status\" or \"body\" for requests \
                     (regular expressions match anywhere)"
                        .into(),
                ),
            );
            return None;
        }
        let about_processes = ["exit_code", "stderr", "stdout"].iter().any(|k| first(fields, k).is_some());
        let about_responses = ["status", "body"].iter().any(|k| first(fields, k).is_some());
        if about_processes && about_responses {
            self.error(
                item.span,
                format!("{what} mixes process keys (exit_code, stdout, stderr) with response keys (status, body)"),
                Some("a condition describes either a finished process or an HTTP response; split it in two".into()),
            );
            return None;
        }
        // A condition that was given but invalid has been reported; the rule is dropped.
        (exit_codes.is_some() || stderr.is_some() || stdout.is_some() || statuses.is_some() || body.is_some())
            .then_some(Condition { exit_codes, stderr, stdout, statuses, body })
    }

    fn statuses(&mut self, node: &Node) -> Option<Vec<u16>> {
        let one = |d: &mut Self, n: &Node| match &n.value {
            Json::Number(num) => match num.as_i64() {
                Some(code @ 100..=599) => Some(code as u16),
                _ => {
                    d.error(n.span, "`status`: HTTP statuses are whole numbers from 100 to 599", None);
                    None
                }
            },
            _ => {
                d.type_error(n, "`status`", "an HTTP status or an array of them");
                None
            }
        };
        match &node.value {
            Json::Array(items) => items.iter().map(|n| one(self, n)).collect(),
            _ => one(self, node).map(|c| vec![c]),
        }
    }

    fn exit_codes(&mut self, node: &Node, what: &str) -> Option<Vec<i32>> {
        let one = |d: &mut Self, n: &Node| match &n.value {
            Json::Number(num) => match num.as_i64() {
                Some(code @ 0..=255) => Some(code as i32),
                _ => {
                    d.error(n.span, format!("{what}: exit codes are whole numbers from 0 to 255"), None);
                    None
                }
            },
            _ => {
                d.type_error(n, what, "an exit code or an array of exit codes");
                None
            }
        };
        match &node.value {
            Json::Array(items) => items.iter().map(|n| one(self, n)).collect(),
            _ => one(self, node).map(|c| vec![c]),
        }
    }

    fn output(&mut self, node: &Node) -> OutputFormat {
        let (format_node, fields) = match &node.value {
            Json::String(_) => (node, None),
            _ => {
                let Some(fields) = self.object(node, "`output`", OUTPUT_KEYS, |_| false) else {
                    return OutputFormat::Raw;
                };
                match first(fields, "format") {
                    Some(f) => (&f.value, Some(fields)),
                    None => {
                        self.error(node.span, "`output` has no `format`", Some(formats_help()));
                        return OutputFormat::Raw;
                    }
                }
            }
        };
        let Some(format) = self.string(format_node, "`output.format`") else {
            return OutputFormat::Raw;
        };
        let field = |key| fields.and_then(|f| first(f, key));
        match format {
            "raw" => OutputFormat::Raw,
            "text" => OutputFormat::Text,
            "lines" => OutputFormat::Lines,
            "json" => OutputFormat::Json,
            "json_lines" => OutputFormat::JsonLines,
            "parse_rules" => {
                let Some(rules) = field("rules") else {
                    self.error(
                        node.span,
                        "the parse_rules output format needs `rules`",
                        Some("add \"rules\": {\"type\": \"object\", \"patterns\": {...}}".into()),
                    );
                    return OutputFormat::Raw;
                };
                match crate::json::rules::Rules::compile(&rules.value.to_value()) {
                    Ok(compiled) => OutputFormat::Rules(compiled),
                    Err(message) => {
                        self.error(rules.value.span, format!("`output.rules`: {message}"), None);
                        OutputFormat::Raw
                    }
                }
            }
            "regex" => {
                let Some(pattern_member) = field("pattern") else {
                    self.error(
                        node.span,
                        "the regex output format needs a `pattern`",
                        Some("add \"pattern\": \"id: (?P<id>\\\\S+)\"".into()),
                    );
                    return OutputFormat::Raw;
                };
                let Some(pattern) = self.regex(&pattern_member.value, "`output.pattern`", false) else {
                    return OutputFormat::Raw;
                };
                if pattern.capture_names().flatten().next().is_none() {
                    self.error(
                        pattern_member.value.span,
                        "`output.pattern` has no named capture group",
                        Some("name what to capture, for example (?P<id>[0-9a-f]+)".into()),
                    );
                }
                let multiple =
                    field("multiple").and_then(|m| self.bool(&m.value, "`output.multiple`")).unwrap_or(false);
                OutputFormat::Regex { pattern, multiple }
            }
            _ => {
                self.error(format_node.span, format!("unknown output format `{format}`"), Some(formats_help()));
                OutputFormat::Raw
            }
        }
    }

    fn param(
        &mut self,
        node: &Node,
        name_override: Option<(&str, Span)>,
        required: bool,
        action: &str,
    ) -> Option<ParamDecl> {
        let what = format!("a parameter of action `{action}`");
        let mut decl = ParamDecl {
            name: String::new(),
            required,
            ty: ParamType::String,
            allow_dash: false,
            pattern: None,
            description: None,
            fragment: None,
            secret: false,
        };
        let name_span;
        match (&node.value, name_override) {
            // The seed's fragment form: the key names the parameter, the string is its fragment
            // (decoded with the other templates, once the action's parameters are known).
            (Json::String(_), Some((name, span))) => {
                decl.name = name.to_string();
                decl.ty = self.standard_type(action, name);
                name_span = span;
            }
            (Json::String(name), None) => {
                decl.name = name.clone();
                decl.ty = self.standard_type(action, name);
                name_span = node.span;
            }
            (Json::Object(_), _) => {
                let fields = self.object(node, &what, PARAM_KEYS, |_| false)?;
                match (name_override, first(fields, "name")) {
                    (Some((name, span)), None) => {
                        decl.name = name.to_string();
                        name_span = span;
                    }
                    (None, Some(m)) => {
                        decl.name = self.string(&m.value, "`name`")?.to_string();
                        name_span = m.value.span;
                    }
                    (Some(_), Some(m)) => {
                        self.error(
                            m.key_span,
                            "the parameter is already named by its key",
                            Some("remove `name`".into()),
                        );
                        return None;
                    }
                    (None, None) => {
                        self.error(node.span, format!("{what} has no `name`"), Some("add \"name\": \"...\"".into()));
                        return None;
                    }
                }
                if let Some(m) = first(fields, "type") {
                    let text = self.string(&m.value, "`type`")?;
                    decl.ty = match ParamType::parse(text) {
                        Some(ty) => ty,
                        None => {
                            let known: Vec<String> =
                                ParamType::ALL.iter().map(|t| format!("\"{}\"", t.as_str())).collect();
                            self.error(
                                m.value.span,
                                format!("unknown parameter type `{text}`"),
                                Some(format!("use one of {}", known.join(", "))),
                            );
                            return None;
                        }
                    };
                }
                if let Some(m) = first(fields, "allow_dash") {
                    decl.allow_dash = self.bool(&m.value, "`allow_dash`")?;
                }
                if let Some(m) = first(fields, "secret") {
                    decl.secret = self.bool(&m.value, "`secret`")?;
                }
                if let Some(m) = first(fields, "pattern") {
                    decl.pattern = Some(self.regex(&m.value, "`pattern`", true)?);
                }
                if let Some(m) = first(fields, "description") {
                    decl.description = Some(self.string(&m.value, "`description`")?.to_string());
                }
                if let (Some(m), true) = (first(fields, "fragment"), required) {
                    self.error(
                        m.key_span,
                        "only optional parameters have fragments",
                        Some("move the parameter to \"optional_params\"".into()),
                    );
                }
            }
            _ => {
                self.type_error(node, &what, "a name or an object with `name`");
                return None;
            }
        }
        if !is_identifier(&decl.name) {
            self.error(
                name_span,
                format!("`{}` is not a valid parameter name", decl.name),
                Some("use letters, digits and underscores, starting with a letter or underscore".into()),
            );
            return None;
        }
        Some(decl)
    }

    fn action(&mut self, member: &Member, ctx: &ActionContext<'_>) -> Option<Action> {
        let name = member.key.as_str();
        let what = format!("action `{name}`");
        let fields = self.object(&member.value, &what, ACTION_KEYS, is_hook_key)?;
        let description =
            first(fields, "description").and_then(|m| self.string(&m.value, "`description`")).map(str::to_string);

        if let Some(m) = first(fields, "unsupported") {
            let reason = self.non_empty_string(&m.value, &format!("`unsupported` of {what}"))?.to_string();
            if let Some(extra) = fields.iter().find(|f| f.key != "unsupported" && f.key != "description") {
                self.error(
                    extra.key_span,
                    format!("{what} is declared unsupported, so `{}` has no effect", extra.key),
                    Some("remove `unsupported` to implement the action, or remove the other keys".into()),
                );
            }
            return Some(Action { name: name.to_string(), description, body: ActionBody::Unsupported { reason } });
        }

        if let Some(request_member) = first(fields, "request") {
            let body = self.request_action(name, fields, request_member, ctx)?;
            return Some(Action { name: name.to_string(), description, body: ActionBody::Request(Box::new(body)) });
        }
        let Some(command_member) = first(fields, "command") else {
            self.error(
                member.key_span,
                format!("{what} has no `command`"),
                Some(
                    "add \"command\": \"...\" (or \"request\": {...} for an HTTP API), or declare the action with \
                     \"unsupported\": \"reason\""
                        .into(),
                ),
            );
            return None;
        };
        let shell = first(fields, "shell").and_then(|m| self.bool(&m.value, "`shell`")).unwrap_or(ctx.spec_shell);
        let errors_before = self.errors.len();
        let params = self.action_params(fields, name);
        let params_complete = self.errors.len() == errors_before;
        let scope = TemplateScope {
            mode: mode(shell),
            params_complete,
            params: &params,
            defaults: ctx.defaults,
            programs: ctx.programs,
        };

        let command = self.template(&command_member.value, &format!("the command of {what}"), &scope);
        let mut params = params.clone();
        if let Some(m) = first(fields, "optional_params") {
            if let Json::Object(entries) = &m.value.value {
                for entry in entries {
                    let fragment_node = match &entry.value.value {
                        Json::String(_) => Some(&entry.value),
                        Json::Object(obj) => first(obj, "fragment").map(|f| &f.value),
                        _ => None,
                    };
                    if let (Some(node), Some(decl)) = (fragment_node, params.iter().position(|p| p.name == entry.key)) {
                        let fragment = self.template_of(
                            node,
                            &format!("the fragment of `{}` in {what}", entry.key),
                            &scope,
                            Some(command.as_ref()),
                        );
                        params[decl].fragment = fragment;
                    }
                }
            }
        }
        let mut hooks = Vec::new();
        for hook_member in fields.iter().filter(|f| is_hook_key(&f.key) || f.key == "rollback") {
            hooks.extend(self.hooks(hook_member, name, &scope));
        }
        let timeout = first(fields, "timeout").and_then(|m| self.duration(&m.value, "`timeout`"));
        let success_exit_codes = match first(fields, "success_exit_codes") {
            None => ExitCodes::Only(vec![0]),
            Some(m) if matches!(&m.value.value, Json::String(s) if s == "any") => ExitCodes::Any,
            Some(m) => ExitCodes::Only(self.exit_codes(&m.value, "`success_exit_codes`").unwrap_or_else(|| vec![0])),
        };
        let output = first(fields, "output").map(|m| self.output(&m.value)).unwrap_or(OutputFormat::Raw);
        let errors = first(fields, "errors").map(|m| self.error_rules(&m.value, &what)).unwrap_or_default();
        let success_when =
            first(fields, "success_when").map(|m| self.success_conditions(&m.value, &what)).unwrap_or_default();
        let detach = first(fields, "detach").and_then(|m| self.bool(&m.value, "`detach`")).unwrap_or(false);
        let stdin = match first(fields, "stdin") {
            None => None,
            Some(m) => {
                let text = http::Text::parse(self.string(&m.value, "`stdin`")?);
                for placeholder in text.placeholders() {
                    let span = self.span_in_string(&m.value, placeholder.offset, placeholder.name.len() + 2);
                    self.check_declared(placeholder.name, span, &format!("the stdin of {what}"), &scope);
                }
                Some(text)
            }
        };
        let command = command?;
        self.warn_unused_params(&params, &command, &hooks, stdin.as_ref(), fields, name);
        Some(Action {
            name: name.to_string(),
            description,
            body: ActionBody::Command(Box::new(CommandAction {
                command,
                params,
                hooks,
                timeout,
                detach,
                stdin,
                success_exit_codes,
                output,
                errors,
                success_when,
            })),
        })
    }

    /// An action with `request`: an HTTP call (see [`crate::json::http`] for the escaping rules).
    fn request_action(
        &mut self,
        name: &str,
        fields: &[Member],
        request_member: &Member,
        ctx: &ActionContext<'_>,
    ) -> Option<RequestAction> {
        let what = format!("action `{name}`");
        for field in fields.iter().filter(|f| COMMAND_ONLY_KEYS.contains(&f.key.as_str()) || is_hook_key(&f.key)) {
            self.error(
                field.key_span,
                format!("{what} sends a `request`, so `{}` has no meaning here", field.key),
                Some("hooks, shells and exit codes belong to command actions; remove the key".into()),
            );
        }
        if let Some(m) = first(fields, "optional_params").filter(|m| matches!(m.value.value, Json::Object(_))) {
            self.error(
                m.key_span,
                format!("{what} sends a `request`; command fragments in `optional_params` do not apply"),
                Some("declare optional parameters as an array and use them as placeholders in the request".into()),
            );
        }
        let errors_before = self.errors.len();
        let params = self.action_params(fields, name);
        let scope = TemplateScope {
            mode: Mode::Argv,
            params_complete: self.errors.len() == errors_before,
            params: &params,
            defaults: ctx.defaults,
            programs: ctx.programs,
        };
        let request = self.request_template(&request_member.value, &what, &scope);
        let timeout = first(fields, "timeout").and_then(|m| self.duration(&m.value, "`timeout`"));
        let output = first(fields, "output").map(|m| self.output(&m.value)).unwrap_or(OutputFormat::Raw);
        let errors = first(fields, "errors").map(|m| self.error_rules(&m.value, &what)).unwrap_or_default();
        let success_when =
            first(fields, "success_when").map(|m| self.success_conditions(&m.value, &what)).unwrap_or_default();
        for (key, conditions) in [
            ("errors", errors.iter().map(|r| &r.when).collect::<Vec<_>>()),
            ("success_when", success_when.iter().collect()),
        ] {
            if conditions.iter().any(|c| !c.is_about_responses()) {
                let span = first(fields, key).map_or(request_member.key_span, |m| m.key_span);
                self.error(
                    span,
                    format!("`{key}` of {what} tests exit_code/stdout/stderr, but the action sends a request"),
                    Some("test the response with \"status\" (HTTP status codes) and \"body\" (a regex)".into()),
                );
            }
        }
        let request = request?;
        let used = request.placeholders();
        for param in params.iter().filter(|p| !used.contains(&p.name.as_str())) {
            let span = first(fields, "params")
                .or_else(|| first(fields, "optional_params"))
                .map_or(Span::new(0, 0), |m| m.key_span);
            self.warn(
                span,
                format!("parameter `{}` of action `{name}` is declared but not used", param.name),
                Some(
                    "callers may pass it and it is ignored; remove it unless it documents an accepted parameter".into(),
                ),
            );
        }
        Some(RequestAction { request, params, timeout, output, errors, success_when })
    }

    fn request_template(&mut self, node: &Node, what: &str, scope: &TemplateScope<'_>) -> Option<RequestTemplate> {
        let what = format!("the request of {what}");
        let fields = self.object(node, &what, REQUEST_KEYS, |_| false)?;
        let mut ok = true;
        let method = match first(fields, "method") {
            None => "GET".to_string(),
            Some(m) => match self.string(&m.value, "`method`").map(str::to_ascii_uppercase) {
                Some(method) if http::METHODS.contains(&method.as_str()) => method,
                Some(method) => {
                    self.error(
                        m.value.span,
                        format!("unknown HTTP method `{method}`"),
                        Some(format!("use one of {}", http::METHODS.join(", "))),
                    );
                    return None;
                }
                None => return None,
            },
        };
        let Some(url_member) = first(fields, "url") else {
            self.error(node.span, format!("{what} has no `url`"), Some("add \"url\": \"https://HOST/PATH\"".into()));
            return None;
        };
        let url_text = self.non_empty_string(&url_member.value, "`url`")?;
        let url = match UrlTemplate::parse(url_text) {
            Ok(url) => url,
            Err(e) => {
                let span = self.span_in_string(&url_member.value, e.offset, e.len.max(1));
                self.error(span, format!("`url` of {what}: {}", e.message), e.help);
                return None;
            }
        };
        for placeholder in url.placeholders() {
            let span = self.span_in_string(&url_member.value, placeholder.offset, placeholder.name.len() + 2);
            ok &= self.check_declared(placeholder.name, span, &format!("the url of {what}"), scope);
        }
        let mut headers = Vec::new();
        if let Some(m) = first(fields, "headers") {
            for entry in self.map(&m.value, "`headers`", "header").unwrap_or_default() {
                if !http::is_header_name(&entry.key) {
                    self.error(entry.key_span, format!("`{}` is not a valid HTTP header name", entry.key), None);
                    ok = false;
                    continue;
                }
                let Some(value) = self.string(&entry.value, &format!("header `{}`", entry.key)) else {
                    ok = false;
                    continue;
                };
                let text = http::Text::parse(value);
                for placeholder in text.placeholders() {
                    let span = self.span_in_string(&entry.value, placeholder.offset, placeholder.name.len() + 2);
                    ok &= self.check_declared(placeholder.name, span, &format!("header `{}`", entry.key), scope);
                }
                headers.push((entry.key.clone(), text));
            }
        }
        let body = match first(fields, "body") {
            None => None,
            Some(m) if matches!(method.as_str(), "GET" | "HEAD") => {
                self.error(
                    m.key_span,
                    format!("a {method} request has no body"),
                    Some("use POST, PUT or PATCH".into()),
                );
                return None;
            }
            Some(m) => match BodyTemplate::from_value(&m.value.to_value()) {
                Ok(body) => {
                    for name in body.placeholders() {
                        ok &= self.check_declared(name, m.value.span, "the body", scope);
                    }
                    Some(body)
                }
                Err(e) => {
                    self.error(m.value.span, format!("`body` of {what}: {}", e.message), e.help);
                    return None;
                }
            },
        };
        ok.then_some(RequestTemplate { method, url, headers, body })
    }

    /// `params` then `optional_params`; a name declared twice is reported and its second
    /// declaration dropped, so the rest of the action is still checked.
    fn action_params(&mut self, fields: &[Member], action: &str) -> Vec<ParamDecl> {
        let mut decls: Vec<(ParamDecl, Span)> = Vec::new();
        if let Some(m) = first(fields, "params") {
            for item in self.array(&m.value, &format!("`params` of action `{action}`")).unwrap_or_default() {
                decls.extend(self.param(item, None, true, action).map(|d| (d, item.span)));
            }
        }
        if let Some(m) = first(fields, "optional_params") {
            match &m.value.value {
                Json::Array(items) => {
                    for item in items {
                        decls.extend(self.param(item, None, false, action).map(|d| (d, item.span)));
                    }
                }
                Json::Object(entries) => {
                    for (i, entry) in entries.iter().enumerate() {
                        self.check_unique(entries, i, &format!("optional parameter `{}`", entry.key));
                        if !matches!(entry.value.value, Json::String(_) | Json::Object(_)) {
                            self.type_error(
                                &entry.value,
                                &format!("optional parameter `{}`", entry.key),
                                "a fragment string or a parameter object",
                            );
                            continue;
                        }
                        decls.extend(
                            self.param(&entry.value, Some((&entry.key, entry.key_span)), false, action)
                                .map(|d| (d, entry.key_span)),
                        );
                    }
                }
                _ => self.type_error(&m.value, "`optional_params`", "an array of parameters or an object of fragments"),
            }
        }
        let mut unique: Vec<ParamDecl> = Vec::with_capacity(decls.len());
        for (decl, span) in decls {
            if unique.iter().any(|d| d.name == decl.name) {
                self.error(span, format!("parameter `{}` of action `{action}` is declared twice", decl.name), None);
            } else {
                unique.push(decl);
            }
        }
        unique
    }

    fn hooks(&mut self, member: &Member, action: &str, scope: &TemplateScope<'_>) -> Vec<Hook> {
        let stage = match member.key.as_str() {
            "rollback" => HookStage::Rollback,
            key if key.starts_with("pre_") => HookStage::Pre,
            _ => HookStage::Post,
        };
        let what = format!("hook `{}` of action `{action}`", member.key);
        let nodes: Vec<&Node> = match &member.value.value {
            Json::Array(items) => items.iter().collect(),
            _ => vec![&member.value],
        };
        let mut hooks = Vec::new();
        for node in nodes {
            let (command_node, ignore_failure, timeout, detach) = match &node.value {
                Json::String(_) => (node, false, None, false),
                Json::Object(_) => {
                    let Some(fields) = self.object(node, &what, HOOK_KEYS, |_| false) else {
                        continue;
                    };
                    let Some(command) = first(fields, "command") else {
                        self.error(node.span, format!("{what} has no `command`"), None);
                        continue;
                    };
                    let ignore = first(fields, "ignore_failure")
                        .and_then(|m| self.bool(&m.value, "`ignore_failure`"))
                        .unwrap_or(false);
                    let timeout = first(fields, "timeout").and_then(|m| self.duration(&m.value, "`timeout`"));
                    let detach = first(fields, "detach").and_then(|m| self.bool(&m.value, "`detach`")).unwrap_or(false);
                    (&command.value, ignore, timeout, detach)
                }
                _ => {
                    self.type_error(node, &what, "a command string, an object with `command`, or an array of them");
                    continue;
                }
            };
            if let Some(command) = self.template(command_node, &what, scope) {
                hooks.push(Hook { name: member.key.clone(), stage, command, ignore_failure, timeout, detach });
            }
        }
        hooks
    }

    fn warn_unused_params(
        &mut self,
        params: &[ParamDecl],
        command: &Template,
        hooks: &[Hook],
        stdin: Option<&http::Text>,
        fields: &[Member],
        action: &str,
    ) {
        let used = |name: &str| {
            let in_template = |t: &Template| t.placeholders().iter().any(|p| p.name == name);
            in_template(command)
                || stdin.is_some_and(|t| t.placeholders().any(|p| p.name == name))
                || hooks.iter().any(|h| in_template(&h.command))
                || params.iter().any(|p| p.fragment.as_ref().is_some_and(in_template))
        };
        for param in params.iter().filter(|p| !used(&p.name) && p.fragment.is_none()) {
            let span = ["params", "optional_params"]
                .iter()
                .find_map(|k| first(fields, k))
                .map_or(Span::new(0, 0), |m| m.key_span);
            self.warn(
                span,
                format!("parameter `{}` of action `{action}` is declared but not used", param.name),
                Some(
                    "callers may pass it and it is ignored; remove it unless it documents an accepted parameter".into(),
                ),
            );
        }
    }

    fn warn_unknown_actions(&mut self, kind: CpiKind, actions: Option<&Member>) {
        let Some(Json::Object(members)) = actions.map(|m| &m.value.value) else {
            return;
        };
        for member in members {
            let standard = catalogue::canonical_action(kind, &member.key);
            if catalogue::known_actions(kind).any(|k| k == standard) {
                continue;
            }
            let help = match suggest::closest(&member.key, catalogue::known_actions(kind)) {
                Some(near) => format!("did you mean `{near}`? Otherwise this is a custom action, callable by name"),
                None => "custom actions are allowed and callable by name".to_string(),
            };
            self.warn(
                member.key_span,
                format!("`{}` is not a standard {} action", member.key, kind.as_str()),
                Some(help),
            );
        }
    }
}

struct ActionContext<'a> {
    spec_shell: bool,
    defaults: &'a serde_json::Map<String, Value>,
    programs: &'a [String],
}

fn mode(shell: bool) -> Mode {
    if shell {
        Mode::Shell
    } else {
        Mode::Argv
    }
}

fn kinds_help() -> String {
    let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    format!("error kinds are: {}", names.join(", "))
}

fn formats_help() -> String {
    "output formats are: raw, text, lines, json, json_lines, regex, parse_rules".into()
}

/// `"500ms"`, `"30s"`, `"2m"`, `"1h"`, or a bare number of seconds.
#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Spec, Diagnostics> {
        load_str("t.json", text.to_string())
    }

    fn errors(text: &str) -> Vec<String> {
        load(text).expect_err("must not load").0.iter().filter(|d| d.is_error()).map(|d| d.message.clone()).collect()
    }

    const MINIMAL: &str = r#"{"name": "t", "type": "container", "validation": {"required_commands": ["podman"]},
        "actions": {"start_container": {"command": "podman start {name}", "params": ["name"]}}}"#;

    #[test]
    fn request_actions_are_checked_at_load() {
        let spec = |action: &str| format!(r#"{{"name": "t", "type": "director", "actions": {{"has_vm": {action}}}}}"#);
        let ok = load(&spec(
            r#"{"request": {"url": "https://api.example.com/vms/{vm}", "headers": {"X-Token": "{token}"}},
                "params": ["vm", "token"], "errors": [{"kind": "not_found", "status": [404, 410]}]}"#,
        ));
        assert!(ok.is_ok(), "{:?}", ok.err());
        let errs = errors(&spec(
            r#"{"request": {"method": "GET", "url": "https://h/vms/{vmm}", "body": {"a": 1}},
                "params": ["vm"], "pre_check": "true", "success_exit_codes": 0,
                "errors": [{"kind": "failed", "exit_code": 1}], "success_when": [{"status": 200, "stdout": "x"}]}"#,
        ));
        for needle in [
            "a GET request has no body",
            "so `pre_check` has no meaning here",
            "so `success_exit_codes` has no meaning here",
            "tests exit_code/stdout/stderr, but the action sends a request",
            "mixes process keys",
        ] {
            assert_eq!(errors_containing(&errs, needle), 1, "{needle} in {errs:#?}");
        }
        let errs = errors(&spec(r#"{"request": {"url": "https://h/vms/{vmm}"}, "params": ["vm"]}"#));
        assert_eq!(errors_containing(&errs, "placeholder `{vmm}` in the url"), 1, "{errs:#?}");
        let errs = errors(&spec(r#"{"request": {"method": "FETCH", "url": "/vms"}}"#));
        assert_eq!(errors_containing(&errs, "unknown HTTP method `FETCH`"), 1, "{errs:#?}");
        let errs = errors(&spec(r#"{"request": {"url": "/vms"}}"#));
        assert_eq!(errors_containing(&errs, "must start with http://"), 1, "{errs:#?}");
        let errs = errors(&spec(r#"{"request": {"url": "https://h/x", "headers": {"Bad Name": "v"}}}"#));
        assert_eq!(errors_containing(&errs, "not a valid HTTP header name"), 1, "{errs:#?}");
    }

    #[test]
    fn loads_a_minimal_spec() {
        let spec = load(MINIMAL).expect("loads");
        assert_eq!(spec.name, "t");
        assert_eq!(spec.kind, CpiKind::Container);
        let Some(ActionBody::Command(action)) = spec.action("start_container").map(|a| &a.body) else { panic!() };
        assert_eq!(action.params[0].name, "name");
        assert!(action.params[0].required);
    }

    #[test]
    fn parses_durations() {}

    #[test]
    fn reports_every_problem_in_one_pass() {
        let errs = errors(
            r#"{"name": "t", "type": "container", "validation": {"required_commands": ["podman"]},
            "actions": {
              "start_container": {"comand": "podman start {name}"},
              "stop_container": {"command": "podman stop {nme}", "params": ["name"]},
              "logs": {"command": "cat /x", "params": ["name"]}
            }}"#,
        );
        assert_eq!(errors_containing(&errs, "unknown key `comand`"), 1);
        assert_eq!(errors_containing(&errs, "has no `command`"), 1);
        assert_eq!(errors_containing(&errs, "placeholder `{nme}`"), 1);
        assert_eq!(errors_containing(&errs, "runs `cat`"), 1);
    }

    fn errors_containing(errs: &[String], needle: &str) -> usize {
        errs.iter().filter(|e| e.contains(needle)).count()
    }

    #[test]
    fn hooks_accept_strings_objects_and_arrays_in_order() {
        let spec = load(
            r#"{"name": "t", "type": "container", "validation": {"required_commands": ["p"]},
            "actions": {"delete_container": {"command": "p rm {name}", "params": ["name"],
               "pre_stop": {"command": "p stop {name}", "ignore_failure": true},
               "pre_delete": ["p a {name}", "p b"], "post_delete": "p c"}}}"#,
        )
        .expect("loads");
        let Some(ActionBody::Command(action)) = spec.action("delete_container").map(|a| &a.body) else { panic!() };
        let hooks: Vec<_> =
            action.hooks.iter().map(|h| (h.name.as_str(), h.command.source(), h.ignore_failure)).collect();
        assert_eq!(
            hooks,
            [
                ("pre_stop", "p stop {name}", true),
                ("pre_delete", "p a {name}", false),
                ("pre_delete", "p b", false),
                ("post_delete", "p c", false)
            ]
        );
    }

    #[test]
    fn optional_params_accept_fragment_maps_and_declarations() {
        let spec = load(
            r#"{"name": "t", "type": "director", "validation": {"required_commands": ["p"]},
            "actions": {"create_vm": {"command": "p create {name} --mem {memory}", "params": ["name"],
               "optional_params": {"memory": {"type": "string", "pattern": "[0-9]+"}, "tags": "--tag {tags}"}}}}"#,
        )
        .expect("loads");
        let Some(ActionBody::Command(action)) = spec.action("create_vm").map(|a| &a.body) else { panic!() };
        assert!(!action.param("memory").expect("memory").required);
        assert_eq!(action.param("tags").and_then(|p| p.fragment.as_ref()).map(|f| f.source()), Some("--tag {tags}"));
    }

    #[test]
    fn setup_commands_may_use_only_default_settings_and_declared_programs() {
        let ok = load(
            r#"{"name": "t", "type": "container", "validation": {"required_commands": ["mkdir"]},
               "default_settings": {"root": "/var/lib/x"}, "setup_commands": ["mkdir -p {root}"], "actions": {}}"#,
        )
        .expect("loads");
        assert_eq!(ok.setup_commands[0].source(), "mkdir -p {root}");
        let errs = errors(
            r#"{"name": "t", "type": "container", "validation": {"required_commands": ["mkdir"]},
               "setup_commands": ["mkdir -p {root}", "apt-get install lxc"], "actions": {}}"#,
        );
        assert_eq!(errors_containing(&errs, "placeholder `{root}` in a setup command"), 1);
        assert_eq!(errors_containing(&errs, "runs `apt-get`"), 1);
    }

    #[test]
    fn director_aliases_satisfy_and_answer_for_the_standard_names() {
        let spec = load(
            r#"{"name": "t", "type": "director", "validation": {"required_commands": ["p"]},
               "actions": {"create_worker": {"command": "p create {name}", "params": ["name"]},
                           "attach_volume": {"command": "p attach {vm} {disk}", "params": ["vm", "disk"]}}}"#,
        )
        .expect("loads");
        assert!(spec.warnings.is_empty(), "{:?}", spec.warnings);
        assert_eq!(spec.action("create_vm").map(|a| a.name.as_str()), Some("create_vm"));
        assert_eq!(spec.action("create_worker").map(|a| a.name.as_str()), Some("create_vm"));
        assert_eq!(spec.action("attach_disk").map(|a| a.name.as_str()), Some("attach_disk"));
        let errs = errors(
            r#"{"name": "t", "type": "director", "validation": {"required_commands": ["p"]},
               "actions": {"create_vm": {"command": "p a"}, "create_worker": {"command": "p b"}}}"#,
        );
        assert_eq!(errs, ["action `create_worker` is another name for `create_vm`, which is already defined"]);
    }

    #[test]
    fn version_requirement_needs_a_runnable_command() {
        let errs = errors(
            r#"{"name": "t", "type": "container", "validation": {"required_commands": ["lxc-create"],
               "version_requirements": {"lxc": ">=4.0.0"}}, "actions": {}}"#,
        );
        assert_eq!(errs, ["`lxc` has a version requirement but is not a required command"]);
        assert!(load(
            r#"{"name": "t", "type": "container", "validation": {"required_commands": ["lxc-create"],
               "version_requirements": {"lxc": {"range": ">=4.0.0", "command": "lxc-create --version"}}}, "actions": {}}"#
        )
        .is_ok());
    }
}
