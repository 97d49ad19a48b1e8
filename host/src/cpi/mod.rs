//! The boundary: one API over both forms of CPI, a JSON spec or a WebAssembly component. Callers
//! (the CLI, the conformance kit, embedders) describe, plan and call actions without knowing which
//! form they hold; the form is private to this module.

mod info;
mod inspect;
mod loader;
mod remote;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

pub use info::Info;
pub use inspect::{inspect, Inspection};
pub use loader::{is_wasm, CpiLoadError, Loader, Unbound};
pub use remote::RemoteCpi;

use crate::contract::catalogue::CpiKind;
use crate::contract::error::CpiError;
use crate::contract::options::CallOptions;
use crate::contract::params::Params;
use crate::contract::plan::{Outcome, Plan};
use crate::diagnostic::Diagnostic;
use crate::json::requirements::RequirementCheck;
use crate::json::spec::ActionBody;
use crate::json::JsonCpi;
use crate::wasm::ComponentCpi;

/// A loaded CPI of either form.
#[derive(Clone)]
pub struct Cpi {
    form: Inner,
}

#[derive(Clone)]
enum Inner {
    Json(JsonCpi),
    Component(Arc<ComponentCpi>),
    /// Served by `omni-cpi serve`, called over its API.
    Remote(Arc<RemoteCpi>),
}

/// Which form a CPI has, for display (callers never branch on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Spec,
    Component,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Spec => "spec",
            Form::Component => "component",
        }
    }
}

/// Whether a CPI can run an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionSupport {
    /// It implements it.
    Implemented,
    /// It declares it unsupported, for this reason.
    Unsupported(String),
    /// It neither implements nor declares it.
    Absent,
}

impl ActionSupport {
    /// Why the action cannot run, if it cannot.
    pub fn reason(&self) -> Option<String> {
        match self {
            ActionSupport::Implemented => None,
            ActionSupport::Unsupported(reason) => Some(reason.clone()),
            ActionSupport::Absent => Some("the CPI has no such action".to_string()),
        }
    }
}

/// A call that passed [`Cpi::check`]: for a JSON spec its rendered plan, which [`Cpi::run`]
/// executes as is (rendering once).
pub struct Checked(Option<Plan>);

impl From<JsonCpi> for Cpi {
    fn from(cpi: JsonCpi) -> Cpi {
        Cpi { form: Inner::Json(cpi) }
    }
}

impl From<ComponentCpi> for Cpi {
    fn from(cpi: ComponentCpi) -> Cpi {
        Cpi { form: Inner::Component(Arc::new(cpi)) }
    }
}

impl From<RemoteCpi> for Cpi {
    fn from(cpi: RemoteCpi) -> Cpi {
        Cpi { form: Inner::Remote(Arc::new(cpi)) }
    }
}

impl Cpi {
    /// The name calls and reports use: a spec's `name`, a component's policy entry.
    pub fn name(&self) -> &str {
        match &self.form {
            Inner::Json(cpi) => &cpi.spec().name,
            Inner::Component(cpi) => &cpi.name,
            Inner::Remote(cpi) => &cpi.name,
        }
    }

    pub fn kind(&self) -> CpiKind {
        match &self.form {
            Inner::Json(cpi) => cpi.spec().kind,
            Inner::Component(cpi) => cpi.kind(),
            Inner::Remote(cpi) => cpi.kind,
        }
    }

    pub fn form(&self) -> Form {
        match &self.form {
            Inner::Json(_) => Form::Spec,
            Inner::Component(_) => Form::Component,
            Inner::Remote(cpi) => cpi.form,
        }
    }

    /// The file it was loaded from.
    pub fn source(&self) -> &Path {
        match &self.form {
            Inner::Json(cpi) => &cpi.spec().source,
            Inner::Component(cpi) => &cpi.source,
            Inner::Remote(cpi) => &cpi.source,
        }
    }

    /// Every action it defines or describes, by standard name, with its support.
    pub fn actions(&self) -> Vec<(String, ActionSupport)> {
        match &self.form {
            Inner::Json(cpi) => spec_actions(cpi.spec()),
            Inner::Component(cpi) => component_actions(&cpi.description),
            Inner::Remote(cpi) => cpi.actions.clone(),
        }
    }

    /// Whether it can run `action` (a director alias such as `create_worker` included).
    pub fn support(&self, action: &str) -> ActionSupport {
        let action = crate::contract::catalogue::canonical_action(self.kind(), action);
        self.actions().into_iter().find(|(name, _)| name == action).map_or(ActionSupport::Absent, |(_, s)| s)
    }

    /// One line: name, version, kind, form, and how many actions it declares unsupported.
    pub fn summary(&self) -> String {
        let actions = self.actions();
        let unsupported = actions.iter().filter(|(_, s)| *s != ActionSupport::Implemented).count();
        let version = match &self.form {
            Inner::Json(cpi) => cpi.spec().version.clone(),
            Inner::Component(cpi) => Some(cpi.description.version.clone()),
            Inner::Remote(cpi) => cpi.version.clone(),
        };
        format!(
            "{}{}, {} {}, {} actions ({unsupported} declared unsupported)",
            self.declared_name(),
            version.map(|v| format!(" {v}")).unwrap_or_default(),
            self.kind().as_str(),
            match self.form() {
                Form::Spec => "CPI",
                Form::Component => "component",
            },
            actions.len(),
        )
    }

    /// The name the CPI gives itself (a component's may differ from its policy entry's).
    pub fn declared_name(&self) -> &str {
        match &self.form {
            Inner::Json(cpi) => &cpi.spec().name,
            Inner::Component(cpi) => &cpi.description.name,
            Inner::Remote(cpi) => &cpi.declared_name,
        }
    }

    /// What `info` shows: a JSON document for machines and text for people.
    pub fn info(&self) -> Info {
        match &self.form {
            Inner::Json(cpi) => info::of_spec(cpi),
            Inner::Component(cpi) => info::of_component(cpi),
            Inner::Remote(cpi) => info::of_remote(cpi),
        }
    }

    /// Problems that did not stop it from loading, and required actions it lacks.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match &self.form {
            Inner::Json(cpi) => {
                let mut all = cpi.spec().warnings.clone();
                all.extend(crate::json::spec::check_required_actions(cpi.spec()));
                all
            }
            // A component's actions were checked against the catalogue at load; a served CPI's
            // by the server.
            Inner::Component(_) | Inner::Remote(_) => Vec::new(),
        }
    }

    /// Runs its version checks (through the same gate and audit log as its actions). A
    /// component declares no version requirements: its execs are checked per call.
    pub async fn check_requirements(&self) -> Vec<RequirementCheck> {
        match &self.form {
            Inner::Json(cpi) => crate::json::requirements::check(cpi).await,
            Inner::Component(_) | Inner::Remote(_) => Vec::new(),
        }
    }

    /// The parameters the conformance kit passes to every call, as the CPI declares them (a
    /// spec's `conformance.params`; a component's `conformance.`-prefixed default settings).
    pub fn conformance_params(&self) -> Params {
        match &self.form {
            Inner::Json(cpi) => cpi.spec().conformance_params.clone(),
            Inner::Component(cpi) => cpi.conformance_params(),
            Inner::Remote(cpi) => cpi.conformance_params.clone(),
        }
    }

    /// The default settings it declares (informational for components under WIT 0.1).
    pub fn default_settings(&self) -> Params {
        match &self.form {
            Inner::Json(cpi) => cpi.spec().default_settings.clone(),
            Inner::Component(cpi) => {
                cpi.description.default_settings.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
            }
            Inner::Remote(cpi) => cpi.default_settings.clone(),
        }
    }

    /// Checks a call without running anything: parameters (with the same check for both forms)
    /// and options. For a JSON spec this also renders the plan.
    pub fn check(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Checked, CpiError> {
        match &self.form {
            Inner::Json(cpi) => cpi.plan(action, params, options).map(|plan| Checked(Some(plan))),
            Inner::Component(cpi) => cpi.check(action, params, options).map(|()| Checked(None)),
            // The server checks, with the same check, before it runs anything.
            Inner::Remote(_) => Ok(Checked(None)),
        }
    }

    /// Runs a call that [`Cpi::check`] accepted.
    pub async fn run(
        &self,
        checked: Checked,
        action: &str,
        params: &Params,
        options: &CallOptions,
    ) -> Result<Outcome, CpiError> {
        match (&self.form, checked) {
            (Inner::Json(cpi), Checked(Some(plan))) => cpi.execute(&plan, options).await,
            _ => self.call(action, params, options).await,
        }
    }

    /// The dry run of a call that [`Cpi::check`] accepted.
    pub async fn plan_checked(
        &self,
        checked: Checked,
        action: &str,
        params: &Params,
        options: &CallOptions,
    ) -> Result<Plan, CpiError> {
        match checked {
            Checked(Some(plan)) => Ok(plan),
            Checked(None) => self.plan(action, params, options).await,
        }
    }

    /// The dry run: what the call would run.
    pub async fn plan(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Plan, CpiError> {
        match &self.form {
            Inner::Json(cpi) => cpi.plan(action, params, options),
            Inner::Component(cpi) => cpi.plan(action, params, options).await,
            Inner::Remote(_) => Err(CpiError::new(
                crate::contract::error::ErrorKind::Unsupported,
                action,
                "a served CPI's plan stays on its server: ask it with `call --dry-run` (POST …?dry_run=true)",
            )),
        }
    }

    pub async fn call(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Outcome, CpiError> {
        match &self.form {
            Inner::Json(cpi) => cpi.call(action, params, options).await,
            Inner::Component(cpi) => cpi.call(action, params, options).await,
            Inner::Remote(cpi) => cpi.call(action, params, options).await,
        }
    }
}

/// A spec's actions with their support.
fn spec_actions(spec: &crate::json::spec::Spec) -> Vec<(String, ActionSupport)> {
    let support = |body: &ActionBody| match body {
        ActionBody::Unsupported { reason } => ActionSupport::Unsupported(reason.clone()),
        ActionBody::Command(_) | ActionBody::Request(_) => ActionSupport::Implemented,
    };
    spec.actions.iter().map(|a| (a.name.clone(), support(&a.body))).collect()
}

/// A component's described actions with their support.
fn component_actions(description: &crate::wasm::Description) -> Vec<(String, ActionSupport)> {
    let support = |unsupported: &Option<String>| match unsupported {
        Some(reason) => ActionSupport::Unsupported(reason.clone()),
        None => ActionSupport::Implemented,
    };
    description.actions.iter().map(|a| (a.name.clone(), support(&a.unsupported))).collect()
}
