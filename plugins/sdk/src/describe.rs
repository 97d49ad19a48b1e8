//! [`Describe`]: `describe()`'s answer built from the catalogue, so a CPI names only what it
//! implements and what it needs. Every action of its kind is listed with the parameter names the
//! host passes (the host refuses any other name at load); the ones not implemented are declared
//! unsupported with the reason you give.
//!
//! Exec requests are argument patterns: a literal matches itself, [`crate::VALUE`] one argument
//! that is not an option (a name, a path, a number), [`crate::ANY`] any one argument (options
//! too), [`crate::REST`] (last only) any remaining arguments. Ask for `VALUE` wherever a value
//! goes: the operator's grant then cannot be widened to `--all` or `--help` by a caller.

use crate::actions::{CatalogueEntry, CONTAINER_ACTIONS, DIRECTOR_ACTIONS};
use crate::{Capabilities, CpiKind, DirRequest, ExecRequest, PluginInfo};

/// The settings key prefix of conformance parameters (see [`Describe::conformance_param`]).
pub const CONFORMANCE_PREFIX: &str = "conformance.";

/// A builder of [`PluginInfo`]. Mistakes in it are the plugin author's, found at the first load
/// (`omni-cpi validate` or `conformance --static`): [`Describe::build`] panics naming them, and
/// the host reports the panic as `describe() failed`.
#[derive(Debug, Clone)]
pub struct Describe {
    name: String,
    kind: CpiKind,
    version: String,
    catalogue: &'static [CatalogueEntry],
    implemented: Vec<String>,
    why_not: String,
    descriptions: Vec<(String, String, String)>,
    capabilities: Capabilities,
    settings: Vec<(String, String)>,
    mistakes: Vec<String>,
}

impl Describe {
    /// A container CPI named `name` (the plugin's own name, shown by `info`).
    pub fn container(name: &str, version: &str) -> Describe {
        Describe::new(name, version, CpiKind::Container, CONTAINER_ACTIONS)
    }

    /// A director CPI named `name`.
    pub fn director(name: &str, version: &str) -> Describe {
        Describe::new(name, version, CpiKind::Director, DIRECTOR_ACTIONS)
    }

    fn new(name: &str, version: &str, kind: CpiKind, catalogue: &'static [CatalogueEntry]) -> Describe {
        Describe {
            name: name.to_string(),
            kind,
            version: version.to_string(),
            catalogue,
            implemented: Vec::new(),
            why_not: "not implemented by this CPI".to_string(),
            descriptions: Vec::new(),
            capabilities: Capabilities { exec: Vec::new(), dirs: Vec::new(), env: Vec::new() },
            settings: Vec::new(),
            mistakes: Vec::new(),
        }
    }

    fn knows(&self, action: &str) -> bool {
        self.catalogue.iter().any(|(name, _)| *name == action)
    }

    /// The actions this CPI implements (catalogue names, `create_container` or `create-container`).
    pub fn implements(mut self, actions: &[&str]) -> Describe {
        for action in actions {
            let action = action.replace('-', "_");
            if !self.knows(&action) {
                self.mistakes.push(format!("implements(): `{action}` is not an action of a {:?} CPI", self.kind));
            }
            self.implemented.push(action);
        }
        self
    }

    /// Every action of the kind: a CPI that implements the whole interface.
    pub fn implements_all(mut self) -> Describe {
        self.implemented = self.catalogue.iter().map(|(name, _)| name.to_string()).collect();
        self
    }

    /// Why the actions not implemented are unsupported (shown by `info`; the default says only
    /// that this CPI does not implement them).
    pub fn otherwise_unsupported(mut self, why: &str) -> Describe {
        self.why_not = why.to_string();
        self
    }

    /// What a parameter means for this CPI (shown by `info`): limits, defaults, what is refused.
    pub fn param(mut self, action: &str, param: &str, description: &str) -> Describe {
        let action = action.replace('-', "_");
        let known =
            self.catalogue.iter().any(|(name, params)| *name == action && params.iter().any(|(p, _)| *p == param));
        if !known {
            self.mistakes.push(format!("param(): action `{action}` has no parameter `{param}` the host passes"));
        }
        self.descriptions.push((action, param.to_string(), description.to_string()));
        self
    }

    /// A program the CPI runs, with its argument patterns (see the module's documentation).
    pub fn exec(mut self, program: &str, args: &[&str]) -> Describe {
        if let Some(at) = args.iter().position(|a| *a == crate::REST) {
            if at + 1 != args.len() {
                self.mistakes.push(format!("exec(): `{}` must be the last pattern for `{program}`", crate::REST));
            }
        }
        self.capabilities
            .exec
            .push(ExecRequest { program: program.to_string(), args: args.iter().map(|a| a.to_string()).collect() });
        self
    }

    /// A directory at `guest_path` inside the sandbox; the operator maps it to a host directory.
    pub fn dir(mut self, guest_path: &str, writable: bool, description: &str) -> Describe {
        if !guest_path.starts_with('/') {
            self.mistakes.push(format!("dir(): `{guest_path}` must be an absolute path"));
        }
        self.capabilities.dirs.push(DirRequest {
            guest_path: guest_path.to_string(),
            writable,
            description: description.to_string(),
        });
        self
    }

    /// An environment variable the CPI reads (the operator grants it by name).
    pub fn env(mut self, name: &str) -> Describe {
        self.capabilities.env.push(name.to_string());
        self
    }

    /// A setting the CPI reads with [`crate::setting`], and its default; the operator may set it
    /// in `[plugins.NAME.settings]`.
    pub fn setting(mut self, key: &str, default: &str) -> Describe {
        if self.settings.iter().any(|(k, _)| k == key) {
            self.mistakes.push(format!("setting(): `{key}` is declared twice"));
        }
        self.settings.push((key.to_string(), default.to_string()));
        self
    }

    /// What `omni-cpi conformance` passes as parameter `param` to every call (e.g. an `image`
    /// the runtime has): JSON if `value` parses as JSON, else text.
    pub fn conformance_param(self, param: &str, value: &str) -> Describe {
        self.setting(&format!("{CONFORMANCE_PREFIX}{param}"), value)
    }

    /// The [`PluginInfo`]; panics naming every mistake made while building it.
    pub fn build(self) -> PluginInfo {
        if !self.mistakes.is_empty() {
            panic!("describe() of `{}`: {}", self.name, self.mistakes.join("; "));
        }
        let implemented: Vec<&str> = self.implemented.iter().map(String::as_str).collect();
        let mut actions = crate::actions::describe_actions(self.catalogue, &implemented, &self.why_not);
        for action in &mut actions {
            for param in &mut action.params {
                if let Some((_, _, description)) =
                    self.descriptions.iter().find(|(a, p, _)| *a == action.name && *p == param.name)
                {
                    param.description = description.clone();
                }
            }
        }
        PluginInfo {
            name: self.name,
            kind: self.kind,
            version: self.version,
            actions,
            default_settings: self.settings,
            capabilities: self.capabilities,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_action_of_the_kind_and_marks_the_rest_unsupported() {
        let info = Describe::container("c", "1")
            .implements(&["create-container", "list_containers"])
            .otherwise_unsupported("no")
            .param("create_container", "image", "an image")
            .exec("runc", &["state", crate::VALUE])
            .conformance_param("image", "busybox")
            .build();
        assert_eq!(info.actions.len(), CONTAINER_ACTIONS.len());
        let create = info.actions.iter().find(|a| a.name == "create_container").expect("listed");
        assert!(create.unsupported.is_none());
        assert_eq!(create.params.iter().find(|p| p.name == "image").map(|p| p.description.as_str()), Some("an image"));
        let start = info.actions.iter().find(|a| a.name == "start_container").expect("listed");
        assert_eq!(start.unsupported.as_deref(), Some("no"));
        assert_eq!(info.default_settings, vec![("conformance.image".to_string(), "busybox".to_string())]);
    }

    #[test]
    #[should_panic(expected = "`create_contaner` is not an action")]
    fn a_misspelt_action_is_named() {
        Describe::container("c", "1").implements(&["create_contaner"]).build();
    }

    #[test]
    #[should_panic(expected = "no parameter `timeout_secs`")]
    fn a_parameter_the_host_never_passes_is_named() {
        Describe::container("c", "1").param("stop_container", "timeout_secs", "x").build();
    }
}
