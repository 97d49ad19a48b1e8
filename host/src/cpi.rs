//! One API over both forms of CPI: a JSON spec or a WebAssembly component. Callers (the CLI, the
//! conformance kit, embedders) plan and call actions without knowing which form they hold.

use std::path::Path;
use std::sync::Arc;

use crate::audit::AuditLog;
use crate::diagnostic::Diagnostics;
use crate::error::CpiError;
use crate::json_cpi::{CallOptions, JsonCpi, Params};
use crate::plan::{Outcome, Plan};
use crate::policy::Policy;
use crate::spec::CpiKind;
use crate::wasm::{ComponentCpi, ComponentHost, LoadError};

/// A call that passed [`Cpi::check`].
pub enum Checked {
    /// A JSON spec's rendered plan.
    Plan(Plan),
    /// A component call whose parameters are valid.
    Ready,
}

#[derive(Clone)]
pub enum Cpi {
    Json(JsonCpi),
    Component(Arc<ComponentCpi>),
}

/// Why a CPI could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CpiLoadError {
    #[error("{0}")]
    Spec(Diagnostics),
    #[error(transparent)]
    Component(#[from] LoadError),
}

/// Everything needed to load CPIs of either form: the operator's policy, the audit log and, for
/// components, the engine (created on first use: JSON-only hosts never pay for it).
pub struct Loader {
    pub policy: Policy,
    pub audit: AuditLog,
    host: std::sync::OnceLock<Result<ComponentHost, String>>,
    cache_dir: Option<std::path::PathBuf>,
    /// Load JSON files through this compatibility translation (`--compat`).
    pub compat: Option<crate::spec::compat::Compat>,
    /// Hosts every JSON spec's request actions may reach, on top of its policy entry's grants
    /// (the CLI's `--allow-host`).
    pub allowed_hosts: Vec<crate::request::NetworkGrant>,
}

impl Loader {
    pub fn new(policy: Policy, cache_dir: Option<std::path::PathBuf>) -> std::io::Result<Loader> {
        let audit = match &policy.audit_log {
            Some(path) => AuditLog::open(path)?,
            None => AuditLog::default(),
        };
        Ok(Loader {
            policy,
            audit,
            host: std::sync::OnceLock::new(),
            cache_dir,
            compat: None,
            allowed_hosts: Vec::new(),
        })
    }

    pub fn component_host(&self) -> Result<&ComponentHost, String> {
        self.host
            .get_or_init(|| ComponentHost::new(self.cache_dir.clone()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads `path` as a component if it is WebAssembly (by content), else as a JSON spec.
    pub async fn load(&self, path: &Path) -> Result<Cpi, CpiLoadError> {
        if !is_wasm(path) {
            let loaded = match self.compat {
                Some(mode) => crate::spec::load_file_compat(path, mode),
                None => crate::spec::load_file(path),
            };
            let cpi = JsonCpi::new(loaded.map_err(CpiLoadError::Spec)?);
            // Same gate as plugins: the policy entry named like the spec restricts it further.
            let entry = self.policy.plugins.get(&cpi.spec().name);
            let grants = entry.map(|g| g.exec.clone());
            let mut network = entry.map(|g| g.network.clone()).unwrap_or_default();
            network.extend(self.allowed_hosts.iter().cloned());
            let gate = crate::json_cpi::ExecGate { grants, network, audit: self.audit.clone() };
            let cpi = cpi.with_gate(gate);
            return Ok(Cpi::Json(cpi));
        }
        let grants = match self.policy.plugin_for_source(path) {
            Some(grants) => grants.clone(),
            None => {
                let name = path.file_stem().map_or("plugin".to_string(), |s| s.to_string_lossy().into_owned());
                self.policy.grants_for(&name)
            }
        };
        let host = self.component_host().map_err(|message| LoadError::Invalid { path: path.to_path_buf(), message })?;
        let env = |name: &str| std::env::var(name).ok();
        let cpi = ComponentCpi::load(host, path, grants, self.audit.clone(), &env).await?;
        Ok(Cpi::Component(Arc::new(cpi)))
    }
}

/// WebAssembly files start with `\0asm`.
pub fn is_wasm(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\0asm"
}

impl Cpi {
    pub fn name(&self) -> &str {
        match self {
            Cpi::Json(cpi) => &cpi.spec().name,
            Cpi::Component(cpi) => &cpi.name,
        }
    }

    pub fn kind(&self) -> CpiKind {
        match self {
            Cpi::Json(cpi) => cpi.spec().kind,
            Cpi::Component(cpi) => cpi.kind(),
        }
    }

    /// Checks an action call without running anything. For a JSON spec this renders the plan,
    /// which [`Cpi::run`] then executes as is (rendering once).
    pub fn check(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Checked, CpiError> {
        match self {
            Cpi::Json(cpi) => cpi.plan(action, params, options).map(Checked::Plan),
            Cpi::Component(cpi) => cpi.check(action, params).map(|()| Checked::Ready),
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
        match (self, checked) {
            (Cpi::Json(cpi), Checked::Plan(plan)) => cpi.execute(&plan, options).await,
            _ => self.call(action, params, options).await,
        }
    }

    /// The dry run: what the call would run.
    pub async fn plan(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Plan, CpiError> {
        match self {
            Cpi::Json(cpi) => cpi.plan(action, params, options),
            Cpi::Component(cpi) => cpi.plan(action, params).await,
        }
    }

    pub async fn call(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Outcome, CpiError> {
        match self {
            Cpi::Json(cpi) => cpi.call(action, params, options).await,
            Cpi::Component(cpi) => cpi.call(action, params).await,
        }
    }
}
