//! What a CPI file says about itself, without granting it anything or running it: for static
//! checks (`conformance --static`) of files no policy binds yet. Each form answers from its own
//! declarations; callers see one shape.

use std::path::Path;

use super::{ActionSupport, Form};
use crate::contract::catalogue::CpiKind;
use crate::json::spec::{self, ActionBody};
use crate::wasm::{ComponentCpi, ComponentHost};

/// A CPI as declared.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub name: String,
    pub kind: CpiKind,
    pub form: Form,
    pub actions: Vec<(String, ActionSupport)>,
    /// Parameters declared but never used, actions declared unsupported without a reason.
    pub undocumented: Vec<String>,
    /// What it fails to state about what it needs (programs, versions, capabilities).
    pub unstated_requirements: Vec<String>,
}

impl Inspection {
    pub fn supports(&self, action: &str) -> bool {
        let action = crate::contract::catalogue::canonical_action(self.kind, action);
        self.actions.iter().any(|(name, _)| name == action)
    }
}

/// Reads and checks `path` (a spec by content, or a component), running nothing but a
/// component's `describe()` with no capabilities; the errors say why it does not load.
pub async fn inspect(host: &ComponentHost, path: &Path) -> Result<Inspection, Vec<String>> {
    if super::is_wasm(path) {
        let (_, _, description) = ComponentCpi::describe_file(host, path).await.map_err(|e| vec![e.to_string()])?;
        let requests = &description.requests;
        let mut unstated = Vec::new();
        if requests.exec.is_empty() && requests.dirs.is_empty() {
            unstated
                .push("describe() requests no capabilities: a CPI that runs nothing cannot manage a runtime".into());
        }
        let actions = super::component_actions(&description);
        let unused = actions
            .iter()
            .filter(|(_, support)| matches!(support, ActionSupport::Unsupported(reason) if reason.trim().is_empty()))
            .map(|(name, _)| format!("`{name}` is unsupported without a reason"))
            .collect();
        return Ok(Inspection {
            name: description.name,
            kind: description.kind,
            form: Form::Component,
            actions,
            undocumented: unused,
            unstated_requirements: unstated,
        });
    }
    let loaded = spec::load_file(path)
        .map_err(|d| d.0.iter().filter(|d| d.is_error()).map(|d| d.message.clone()).collect::<Vec<_>>())?;
    let unused = loaded
        .warnings
        .iter()
        .filter(|w| w.message.contains("is declared but not used"))
        .map(|w| w.message.clone())
        .collect();
    let mut unstated = Vec::new();
    if loaded.validation.required_commands.is_empty() {
        unstated.push("validation.required_commands is empty".to_string());
    }
    let runs_commands = loaded.actions.iter().any(|a| matches!(a.body, ActionBody::Command(_)));
    if runs_commands && loaded.validation.version_requirements.is_empty() {
        unstated.push("validation.version_requirements names no version".to_string());
    }
    let actions = super::spec_actions(&loaded);
    Ok(Inspection {
        name: loaded.name,
        kind: loaded.kind,
        form: Form::Spec,
        actions,
        undocumented: unused,
        unstated_requirements: unstated,
    })
}
