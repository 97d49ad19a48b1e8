//! Loading a CPI of either form under the operator's policy: which entry binds the file, its pin,
//! and the grants it runs with.

use std::path::{Path, PathBuf};

use super::Cpi;
use crate::audit::AuditLog;
use crate::diagnostic::Diagnostics;
use crate::json::{ExecGate, JsonCpi};
use crate::policy::{PluginGrants, Policy};
use crate::wasm::{ComponentCpi, ComponentHost, LoadError};

/// Why a CPI could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CpiLoadError {
    #[error("{0}")]
    Spec(Diagnostics),
    #[error(transparent)]
    Component(#[from] LoadError),
    #[error("{0}")]
    Unbound(Unbound),
    #[error("{path}: SHA-256 is {actual}, but the policy entry `{entry}` pins {pinned}; refusing to load it")]
    HashMismatch { path: PathBuf, entry: String, actual: String, pinned: String },
}

/// A file no policy entry binds, under a policy: it gets nothing, so it does not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbound {
    pub path: PathBuf,
    pub policy: Option<PathBuf>,
    /// An entry it may have been meant for (same name or file name), which binds another file.
    pub resembles: Option<(String, Option<PathBuf>)>,
    /// The entry that would bind it, to paste into the policy.
    pub toml: String,
}

impl std::fmt::Display for Unbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let policy = self.policy.as_ref().map_or("the policy".to_string(), |p| format!("the policy {}", p.display()));
        writeln!(
            f,
            "{} is not bound by {policy}: no entry's `source` is this file, so it is granted nothing and does not load",
            self.path.display()
        )?;
        if let Some((name, source)) = &self.resembles {
            let bound = source.as_ref().map_or("no file".to_string(), |s| s.display().to_string());
            writeln!(f, "it resembles entry `{name}`, which binds {bound}; grants follow the file, never its name")?;
        }
        write!(
            f,
            "to grant it anything, first see what it asks for (omni-cpi validate {} without a policy), then bind it:\n\n{}",
            self.path.display(),
            self.toml
        )
    }
}

/// Everything needed to load CPIs of either form: the operator's policy, the audit log and, for
/// components, the engine (created on first use: JSON-only hosts never pay for it).
pub struct Loader {
    pub policy: Policy,
    pub audit: AuditLog,
    host: std::sync::OnceLock<Result<ComponentHost, String>>,
    cache_dir: Option<std::path::PathBuf>,
    /// Load JSON files through this compatibility translation (`--compat`).
    pub compat: Option<crate::json::spec::compat::Compat>,
    /// Hosts every JSON spec's request actions may reach, on top of its policy entry's grants
    /// (the CLI's `--allow-host`).
    pub allowed_hosts: Vec<crate::policy::NetworkGrant>,
    /// Components' instances from a pool ([`ComponentHost::pooled`]): for long-running hosts.
    pub instance_pool: bool,
    /// Told of every component compiled (not found in the cache); the log otherwise.
    pub compile_progress: Option<std::sync::Arc<dyn crate::wasm::CompileProgress>>,
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
            instance_pool: false,
            compile_progress: None,
        })
    }

    pub fn component_host(&self) -> Result<&ComponentHost, String> {
        self.host
            .get_or_init(|| {
                let cache = self.cache_dir.clone();
                let host = if self.instance_pool { ComponentHost::pooled(cache) } else { ComponentHost::new(cache) };
                host.map(|host| host.with_progress(self.compile_progress.clone())).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads `path` as a component if it is WebAssembly (by content), else as a JSON spec, with
    /// the grants of the policy entry that binds this file.
    pub async fn load(&self, path: &Path) -> Result<Cpi, CpiLoadError> {
        let entry = self.bind(path)?;
        if !is_wasm(path) {
            return self.load_spec(path, entry).map(Cpi::from);
        }
        let grants = match entry {
            Some(grants) => grants.clone(),
            // No policy: a component gets nothing (it loads only if it asks for nothing).
            None => PluginGrants::none(&self.policy.free_entry_name(path)),
        };
        let host = self.component_host().map_err(|message| LoadError::Invalid { path: path.to_path_buf(), message })?;
        let env = |name: &str| std::env::var(name).ok();
        let cpi = ComponentCpi::load(host, path, grants, self.audit.clone(), &env).await?;
        Ok(Cpi::from(cpi))
    }

    /// Compiles the component at `path` into the cache without loading it (`omni-cpi compile`);
    /// `None` for a JSON spec, which has nothing to compile. Bound and pin-checked as at load.
    pub fn precompile(&self, path: &Path) -> Result<Option<crate::wasm::component::Precompiled>, CpiLoadError> {
        let entry = self.bind(path)?;
        if !is_wasm(path) {
            return Ok(None);
        }
        let grants = match entry {
            Some(grants) => grants.clone(),
            None => PluginGrants::none(&self.policy.free_entry_name(path)),
        };
        let host = self.component_host().map_err(|message| LoadError::Invalid { path: path.to_path_buf(), message })?;
        Ok(Some(crate::wasm::component::precompile(host, path, &grants)?))
    }

    /// The policy entry whose `source` is this file; `None` when no policy is in force. Under a
    /// policy, a file no entry binds is refused, whatever its name or its spec's `"name"`.
    pub fn bind(&self, path: &Path) -> Result<Option<&PluginGrants>, CpiLoadError> {
        // A missing file is named as missing, not as unbound (a policy entry's component that
        // was not built yet would otherwise read as a grant problem).
        if let Err(source) = std::fs::metadata(path) {
            return Err(CpiLoadError::Component(LoadError::Read { path: path.to_path_buf(), source }));
        }
        if !self.policy.is_enforced() {
            return Ok(None);
        }
        if let Some(entry) = self.policy.plugin_for_source(path) {
            // A pin is checked on the bytes that are then loaded (a component in
            // `ComponentCpi::load`, a spec in `load_spec`), so the file cannot change in between.
            return Ok(Some(entry));
        }
        Err(CpiLoadError::Unbound(self.unbound(path)))
    }

    fn unbound(&self, path: &Path) -> Unbound {
        let declared = if is_wasm(path) { None } else { crate::json::spec::declared_name(path) };
        let resembles = self.policy.resembling(path, declared.as_deref()).map(|p| (p.name.clone(), p.source.clone()));
        let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let sha = std::fs::read(path).map(|b| crate::wasm::sha256_hex(&b)).unwrap_or_default();
        let name = self.policy.free_entry_name(path);
        let mut toml = format!("[plugins.{name}]\nsource = {:?}\n", absolute.display().to_string());
        if !sha.is_empty() {
            toml.push_str(&format!("sha256 = \"{sha}\"\n"));
        }
        Unbound { path: path.to_path_buf(), policy: self.policy.path.clone(), resembles, toml }
    }

    /// A JSON spec behind its entry's grants, or unrestricted when no policy is in force.
    fn load_spec(&self, path: &Path, entry: Option<&PluginGrants>) -> Result<JsonCpi, CpiLoadError> {
        let grants = crate::json::spec::EntryGrants {
            env: entry.map_or(&[][..], |e| e.env.as_slice()),
            settings: entry.map(|e| &e.settings),
        };
        let text = crate::json::spec::read_text(path).map_err(CpiLoadError::Spec)?;
        if let Some(PluginGrants { sha256: Some(pinned), name, .. }) = entry {
            let actual = crate::wasm::sha256_hex(text.as_bytes());
            if &actual != pinned {
                return Err(CpiLoadError::HashMismatch {
                    path: path.to_path_buf(),
                    entry: name.clone(),
                    actual,
                    pinned: pinned.clone(),
                });
            }
        }
        let spec = match self.compat {
            Some(mode) => crate::json::spec::load_str_compat_granting(path, text, mode, grants),
            None => crate::json::spec::load_str_granting(path, text, grants),
        }
        .map_err(CpiLoadError::Spec)?;
        let gate = match entry {
            Some(grants) => {
                check_env_grants(&spec, grants).map_err(CpiLoadError::Spec)?;
                ExecGate::granting(grants, self.audit.clone())
            }
            None => ExecGate::allow_all(&spec.name, self.audit.clone()),
        };
        Ok(JsonCpi::gated(spec, gate.with_hosts(self.allowed_hosts.iter().cloned())))
    }
}

impl Loader {
    /// `info` for a component the policy does not let load (unbound, or missing grants): what it
    /// is and requests, what is missing, and the TOML that would grant it. `None` for anything
    /// else (a spec, or a component that loads or fails for another reason).
    pub async fn info_ungranted(&self, path: &Path) -> Option<super::Info> {
        if !is_wasm(path) {
            return None;
        }
        let (grants, new_entry_head) = match self.bind(path) {
            Ok(Some(grants)) => (grants.clone(), None),
            // No policy, or none binding it: a new entry would grant it.
            Ok(None) => (PluginGrants::none(&self.policy.free_entry_name(path)), Some(self.unbound(path).toml)),
            Err(CpiLoadError::Unbound(unbound)) => {
                (PluginGrants::none(&self.policy.free_entry_name(path)), Some(unbound.toml))
            }
            Err(_) => return None,
        };
        let host = self.component_host().ok()?;
        let (world, interface, description) = ComponentCpi::describe_under(host, path, &grants).await.ok()?;
        let env = |name: &str| std::env::var(name).ok();
        let missing =
            crate::wasm::sandbox::Sandbox::new(&grants, &description.requests, AuditLog::default(), &env).err();
        if missing.is_none() && new_entry_head.is_none() {
            return None;
        }
        Some(super::info::of_ungranted_component(
            path,
            world,
            interface,
            &description,
            &grants.name,
            missing.as_ref(),
            new_entry_head.as_deref(),
        ))
    }
}

/// Under a policy, every variable a spec sets or inherits must be granted by name (`env`).
fn check_env_grants(spec: &crate::json::spec::Spec, grants: &PluginGrants) -> Result<(), Diagnostics> {
    let missing: Vec<&(String, crate::diagnostic::Location)> =
        spec.env.named_at.iter().filter(|(name, _)| !grants.env.contains(name)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut all: Vec<String> = grants.env.clone();
    all.extend(missing.iter().map(|(name, _)| name.clone()));
    let toml = format!(
        "[plugins.{}]\nenv = [{}]",
        grants.name,
        all.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
    );
    Err(Diagnostics(
        missing
            .iter()
            .map(|(name, location)| {
                let mut d = crate::diagnostic::Diagnostic::error(format!(
                    "`env` names `{name}`, which the policy entry `{}` does not grant",
                    grants.name
                ))
                .at(location.clone());
                d.help = Some(format!("if the spec should see it, grant it in the policy: {toml}"));
                d
            })
            .collect(),
    ))
}

/// WebAssembly files start with `\0asm`.
pub fn is_wasm(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\0asm"
}
