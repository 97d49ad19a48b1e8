//! The JSON spec format: the seed's CPI files plus safe extensions (reference: `cpis/REFERENCE.md`).
//!
//! Loading is two passes over one parse: [`json`] keeps spans, [`load`] decodes the tree into the
//! model below, checking every key, type and placeholder and reporting all problems with their
//! locations. Templates are parsed here, once, and only rendered per call.

pub mod compat;
pub mod json;
mod load;

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use crate::contract::catalogue;
use crate::contract::error::ErrorKind;
use crate::contract::params::ParamRule;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::json::template::Template;

// A spec's kind and its parameters' types are the catalogue's.
pub use crate::contract::catalogue::{CpiKind, ParamType};

pub use load::{
    load_file, load_file_granting, load_str, load_str_granting, read_text, EntryGrants, KEYS_BY_OBJECT, MAX_SPEC_BYTES,
};

/// The JSON Schema of the format without the standard actions; [`schema`] adds them.
const SCHEMA_BASE: &str = include_str!("cpi.schema.json");

/// The JSON Schema of the format, printed by `omni-cpi schema` for editors: the format's keys, and
/// under `actions` every standard action and alias from the catalogue (with its summary and
/// parameters), so editors complete and document action names.
pub fn schema() -> Value {
    let mut schema: Value = serde_json::from_str(SCHEMA_BASE).unwrap_or_else(|_| Value::Object(Default::default()));
    let mut actions = serde_json::Map::new();
    for kind in CpiKind::ALL {
        for action in catalogue::actions(kind) {
            let params: Vec<String> = action.params.iter().map(|p| format!("{} ({})", p.name, p.ty.as_str())).collect();
            let description = format!(
                "{} action: {}. Parameters: {}.",
                kind.as_str(),
                action.summary,
                if params.is_empty() { "none".to_string() } else { params.join(", ") }
            );
            actions.insert(
                action.name.to_string(),
                serde_json::json!({"$ref": "#/$defs/action", "description": description}),
            );
        }
    }
    for (alias, standard) in catalogue::DIRECTOR_ALIASES {
        let description = format!("director action: OmniCloud's name for `{standard}`");
        actions.insert(alias.to_string(), serde_json::json!({"$ref": "#/$defs/action", "description": description}));
    }
    if let Some(object) = schema.pointer_mut("/properties/actions").and_then(Value::as_object_mut) {
        object.insert("properties".to_string(), Value::Object(actions));
    }
    schema
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub kind: CpiKind,
    pub version: Option<String>,
    pub description: Option<String>,
    pub actions: Vec<Action>,
    pub default_settings: serde_json::Map<String, Value>,
    /// What the conformance kit passes to every call (`conformance.params`); `--param` overrides.
    pub conformance_params: serde_json::Map<String, Value>,
    pub validation: Validation,
    pub setup_commands: Vec<Template>,
    pub env: EnvPolicy,
    /// Error rules tried after an action's own rules.
    pub errors: Vec<ErrorRule>,
    /// Default timeout for every action and hook of this spec.
    pub timeout: Option<Duration>,
    pub working_dir: PathBuf,
    /// The file it came from, for messages.
    pub source: PathBuf,
    /// Where the `actions` object starts, for completeness diagnostics.
    pub actions_location: Option<Location>,
    /// Problems that do not stop the spec from loading (unused parameters, unknown action names).
    pub warnings: Vec<Diagnostic>,
}

impl Spec {
    /// The action a caller means by `name` (director aliases such as `create_worker` included).
    pub fn action(&self, name: &str) -> Option<&Action> {
        let name = catalogue::canonical_action(self.kind, name);
        self.actions.iter().find(|a| a.name == name)
    }

    /// Every program the spec may run: the exec gate for JSON specs.
    pub fn allowed_programs(&self) -> &[String] {
        &self.validation.required_commands
    }
}

#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub description: Option<String>,
    pub body: ActionBody,
}

#[derive(Debug, Clone)]
pub enum ActionBody {
    /// The spec says the runtime cannot do this, and why.
    Unsupported {
        reason: String,
    },
    Command(Box<CommandAction>),
    /// An HTTP request instead of a process (see [`crate::json::http`]).
    Request(Box<RequestAction>),
}

impl ActionBody {
    /// The declared parameters of an action that does something.
    pub fn params(&self) -> &[ParamDecl] {
        match self {
            ActionBody::Unsupported { .. } => &[],
            ActionBody::Command(command) => &command.params,
            ActionBody::Request(request) => &request.params,
        }
    }
}

/// `request`: one HTTP call. No hooks: a hook is a process, and an API action that needs several
/// calls is several actions, or a component.
#[derive(Debug, Clone)]
pub struct RequestAction {
    pub request: crate::json::http::RequestTemplate,
    pub params: Vec<ParamDecl>,
    pub timeout: Option<Duration>,
    /// Applied to the response body.
    pub output: OutputFormat,
    pub errors: Vec<ErrorRule>,
    pub success_when: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub struct CommandAction {
    pub command: Template,
    /// Required parameters first, then optional ones, each in declaration order.
    pub params: Vec<ParamDecl>,
    pub hooks: Vec<Hook>,
    pub timeout: Option<Duration>,
    /// The command may start what outlives a timeout in its own session.
    pub detach: bool,
    /// Text written to the command's standard input (a way to hand a program a secret outside
    /// its argv, e.g. `podman login --password-stdin`).
    pub stdin: Option<crate::json::http::Text>,
    pub success_exit_codes: ExitCodes,
    pub output: OutputFormat,
    pub errors: Vec<ErrorRule>,
    /// Failed runs that still mean success (an idempotent repeat: disconnecting twice).
    pub success_when: Vec<Condition>,
}

impl CommandAction {
    pub fn param(&self, name: &str) -> Option<&ParamDecl> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn pre_hooks(&self) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(|h| h.stage == HookStage::Pre)
    }

    pub fn post_hooks(&self) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(|h| h.stage == HookStage::Post)
    }

    pub fn rollback_hooks(&self) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(|h| h.stage == HookStage::Rollback)
    }
}

#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub name: String,
    pub required: bool,
    pub ty: ParamType,
    pub allow_dash: bool,
    /// The whole value (each item, for lists and maps) must match.
    pub pattern: Option<Regex>,
    pub description: Option<String>,
    /// `optional_params` fragment appended to the command when the parameter is given.
    pub fragment: Option<Template>,
    /// Shown as `***` wherever omni-cpi shows or records the call; the program still gets it.
    pub secret: bool,
}

impl ParamDecl {
    /// The declaration as the shared parameter check sees it (`defaults`: the spec's
    /// `default_settings`, which stand in for a missing value).
    pub fn rule<'a>(&'a self, defaults: &serde_json::Map<String, Value>) -> ParamRule<'a> {
        ParamRule {
            name: &self.name,
            ty: self.ty,
            required: self.required,
            has_default: defaults.contains_key(&self.name),
            pattern: self.pattern.as_ref(),
            // The renderer checks a leading `-` where the value stands as a whole argument.
            refuse_leading_dash: false,
            secret: self.secret,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStage {
    /// `pre_*`: before the command; a failure aborts the action.
    Pre,
    /// `post_*`: after the command succeeded; a failure fails the action and triggers rollback.
    Post,
    /// `rollback`: undoes the command when a post hook fails, so nothing half-created remains.
    Rollback,
}

#[derive(Debug, Clone)]
pub struct Hook {
    /// The key it was declared under, such as `pre_delete`.
    pub name: String,
    pub stage: HookStage,
    pub command: Template,
    pub ignore_failure: bool,
    pub timeout: Option<Duration>,
    /// What it starts in its own session may outlive a timeout (see [`crate::process::exec`]).
    pub detach: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitCodes {
    Any,
    Only(Vec<i32>),
}

impl ExitCodes {
    pub fn accepts(&self, code: i32) -> bool {
        match self {
            ExitCodes::Any => true,
            ExitCodes::Only(codes) => codes.contains(&code),
        }
    }
}

#[derive(Debug, Clone)]
pub enum OutputFormat {
    /// No parsing: the result is stdout, stderr and the exit code.
    Raw,
    /// stdout, trimmed, as a string.
    Text,
    /// Non-empty trimmed lines of stdout as an array of strings.
    Lines,
    /// stdout as one JSON document.
    Json,
    /// One JSON document per non-empty line, as an array.
    JsonLines,
    /// Named captures of a regex as an object; with `multiple`, an array of one object per match.
    Regex { pattern: Regex, multiple: bool },
    /// OmniCloud's `parse_rules` (see [`crate::json::rules`]).
    Rules(crate::json::rules::Rules),
}

/// Maps a failed command to a typed error.
#[derive(Debug, Clone)]
pub struct ErrorRule {
    pub kind: ErrorKind,
    pub when: Condition,
}

/// What a finished run looked like: every part given must hold (regexes match anywhere).
/// `exit_code`, `stdout` and `stderr` describe processes; `status` and `body` HTTP responses. A
/// condition of one kind never matches a run of the other.
#[derive(Debug, Clone)]
pub struct Condition {
    pub exit_codes: Option<Vec<i32>>,
    pub stderr: Option<Regex>,
    pub stdout: Option<Regex>,
    pub statuses: Option<Vec<u16>>,
    pub body: Option<Regex>,
}

impl Condition {
    pub fn matches(&self, exit_code: Option<i32>, stdout: &str, stderr: &str) -> bool {
        !self.is_about_responses()
            && self.exit_codes.as_ref().is_none_or(|codes| exit_code.is_some_and(|c| codes.contains(&c)))
            && self.stderr.as_ref().is_none_or(|re| re.is_match(stderr))
            && self.stdout.as_ref().is_none_or(|re| re.is_match(stdout))
    }

    pub fn matches_response(&self, status: u16, body: &str) -> bool {
        self.is_about_responses()
            && self.statuses.as_ref().is_none_or(|codes| codes.contains(&status))
            && self.body.as_ref().is_none_or(|re| re.is_match(body))
    }

    pub fn is_about_responses(&self) -> bool {
        self.statuses.is_some() || self.body.is_some()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Programs the spec runs; also the only programs it may run.
    pub required_commands: Vec<String>,
    pub version_requirements: Vec<VersionRequirement>,
}

#[derive(Debug, Clone)]
pub struct VersionRequirement {
    pub tool: String,
    pub range: semver::VersionReq,
    /// The command printing the version; `TOOL --version` unless the spec says otherwise.
    pub command: Template,
}

/// The environment a spec's processes see: always `PATH`, plus what is named here.
#[derive(Debug, Clone, Default)]
pub struct EnvPolicy {
    /// Variables copied from the host's environment when set there.
    pub inherit: Vec<String>,
    /// Variables set to fixed values.
    pub set: Vec<(String, String)>,
    /// Where each name was written, for the policy's checks.
    pub named_at: Vec<(String, Location)>,
}

/// Reads a file in a compatibility format and translates it into the native format.
fn translate_file(path: &Path, mode: compat::Compat) -> Result<compat::Translation, Diagnostics> {
    translate_text(path, load::read_text(path)?, mode)
}

fn translate_text(path: &Path, text: String, mode: compat::Compat) -> Result<compat::Translation, Diagnostics> {
    let compat::Compat::OmniCloud = mode;
    let source = crate::diagnostic::SourceFile::new(path, text);
    let root = json::parse(source.text()).map_err(|e| {
        Diagnostics(vec![Diagnostic::error(format!("invalid JSON: {}", e.message))
            .at(source.locate(json::Span::new(e.offset, e.offset + 1)))])
    })?;
    Ok(compat::translate(&source, &root))
}

/// Converts a file in a compatibility format into native spec JSON (`omni-cpi convert`), with the
/// warnings about the original. The result loads without `--compat`.
pub fn convert_file(path: &Path, mode: compat::Compat) -> Result<(String, Vec<Diagnostic>), Diagnostics> {
    let translation = translate_file(path, mode)?;
    Ok((translation.native + "\n", translation.warnings))
}

/// Loads a file in a compatibility format (`--compat`): translated to the native format, with
/// warnings about the original attached to the spec.
pub fn load_file_compat(path: &Path, mode: compat::Compat) -> Result<Spec, Diagnostics> {
    load_file_compat_granting(path, mode, EntryGrants::default())
}

/// [`load_file_compat`] admitting the variables the policy grants by exact name.
pub fn load_file_compat_granting(
    path: &Path,
    mode: compat::Compat,
    grants: EntryGrants<'_>,
) -> Result<Spec, Diagnostics> {
    load_str_compat_granting(path, load::read_text(path)?, mode, grants)
}

/// [`load_file_compat_granting`] on text already read from `path`.
pub fn load_str_compat_granting(
    path: &Path,
    text: String,
    mode: compat::Compat,
    grants: EntryGrants<'_>,
) -> Result<Spec, Diagnostics> {
    let translation = translate_text(path, text, mode)?;
    let label = PathBuf::from(format!("{} (translated by --compat omnicloud)", path.display()));
    match load::load_str_granting(label, translation.native, grants) {
        Ok(mut spec) => {
            let mut warnings = translation.warnings;
            warnings.append(&mut spec.warnings);
            spec.warnings = warnings;
            spec.source = path.to_path_buf();
            Ok(spec)
        }
        Err(Diagnostics(mut errors)) => {
            let mut all = translation.warnings;
            all.append(&mut errors);
            Err(Diagnostics(all))
        }
    }
}

/// Loads a spec file and also runs the completeness checks of `validate`.
pub fn validate_file(path: &Path) -> Result<(Spec, Diagnostics), Diagnostics> {
    let spec = load_file(path)?;
    let mut diagnostics = spec.warnings.clone();
    diagnostics.extend(check_required_actions(&spec));
    Ok((spec, Diagnostics(diagnostics)))
}

/// The `"name"` a spec file declares, read without loading it (for messages about a file no
/// policy entry binds; a name never selects grants).
pub fn declared_name(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get("name")?.as_str().map(str::to_string)
}

/// One error per required action that is neither implemented nor declared unsupported.
pub fn check_required_actions(spec: &Spec) -> Vec<Diagnostic> {
    catalogue::required_actions(spec.kind)
        .filter(|name| spec.action(name).is_none())
        .map(|name| {
            let d = Diagnostic::error(format!(
                "{} CPI `{}` lacks the required action `{name}`",
                spec.kind.as_str(),
                spec.name
            ))
            .help(format!(
                "implement it, or declare it explicitly: \"{name}\": {{\"unsupported\": \"why the runtime cannot do it\"}}"
            ));
            match &spec.actions_location {
                Some(location) => d.at(location.clone()),
                None => d,
            }
        })
        .collect()
}
