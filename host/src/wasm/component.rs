//! A CPI compiled to a WebAssembly component: loaded once (hash pin, compile or cache, world and
//! version check, `describe`, grants), then called with a fresh `Store` per call from a reused
//! `InstancePre`, under the plugin's memory, time, output and return-size limits.
//!
//! A fresh store per call is what makes a trap, a panic or a limit hit in one call unable to
//! affect the next: instantiating from an `InstancePre` costs microseconds, and the guest's state
//! (memory, open files) is exactly what a CPI must not carry between calls anyway.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Store;

use super::bindings::{types, v0_1, v0_2, v0_3};
use super::dispatch::{self, Reply, WitCall};
use super::engine::{sha256_hex, ComponentHost, EPOCH_TICK};
use super::sandbox::{MissingGrants, NetworkRequest, Requests, Sandbox};
use super::state::{CallState, ExecRecord, MemoryLimitExceeded};
use crate::audit::AuditLog;
use crate::contract::catalogue::{self, CpiKind};
use crate::contract::error::{CpiError, ErrorKind};
use crate::contract::options::CallOptions;
use crate::contract::params::{self, Params};
use crate::contract::plan::{Outcome, Plan, PlannedStep, StepReport, StepStage};
use crate::policy::{ArgPattern, Limits, PluginGrants};
use crate::secrets::{looks_like_credential, Secrets};

/// The interface version plugins are built against today (`wit/`, the SDK's).
pub const INTERFACE_VERSION: semver::Version = semver::Version::new(0, 3, 0);

/// The interface versions this host links. A component exports one of them; for each, the host
/// accepts any later patch release of the same minor (0.x) version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interface {
    /// `omni:cpi@0.1.0`, frozen in `wit/0.1.0/`: no settings, no dry-run flag, no
    /// `detach-volume`, `list-volumes` or `list-networks`.
    #[serde(rename = "omni:cpi@0.1.0")]
    V0_1,
    /// `omni:cpi@0.2.0`, frozen in `wit/0.2.0/`: no `network-requests` (its `wasi:http` requests
    /// reach the hosts the operator grants, by the grants alone).
    #[serde(rename = "omni:cpi@0.2.0")]
    V0_2,
    /// `omni:cpi@0.3.0`, the current `wit/`.
    #[serde(rename = "omni:cpi@0.3.0")]
    V0_3,
}

impl Interface {
    const ALL: [Interface; 3] = [Interface::V0_1, Interface::V0_2, Interface::V0_3];

    pub fn version(self) -> semver::Version {
        match self {
            Interface::V0_1 => semver::Version::new(0, 1, 0),
            Interface::V0_2 => semver::Version::new(0, 2, 0),
            Interface::V0_3 => INTERFACE_VERSION,
        }
    }

    fn of(version: &semver::Version) -> Option<Interface> {
        Interface::ALL.into_iter().find(|i| {
            let linked = i.version();
            version.major == linked.major && version.minor == linked.minor && version.patch >= linked.patch
        })
    }

    /// Whether a component of this version can read settings the operator gives it.
    pub fn has_settings(self) -> bool {
        self != Interface::V0_1
    }

    /// Whether a component of this version says which hosts it needs (`network-requests`). One
    /// of an older version cannot: its requests reach what the operator grants, by the grants
    /// alone, as they did before 0.3.0.
    pub fn requests_network(self) -> bool {
        self == Interface::V0_3
    }
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "omni:cpi@{}", self.version())
    }
}

/// Default settings named `conformance.PARAM` are the plugin's conformance parameters.
pub const CONFORMANCE_SETTING_PREFIX: &str = "conformance.";

/// Largest component file accepted.
pub const MAX_COMPONENT_BYTES: u64 = 128 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is {size} bytes; a component may be at most {MAX_COMPONENT_BYTES} bytes")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}: SHA-256 is {actual}, but the policy pins {pinned}; refusing to load it")]
    HashMismatch { path: PathBuf, actual: String, pinned: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    WrongWorld { path: PathBuf, message: String },
    #[error("{0}")]
    MissingGrants(MissingGrants),
    #[error("{path}: describe() failed: {message}")]
    Describe { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    NetworkRequests { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Settings { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum World {
    ContainerCpi,
    DirectorCpi,
}

/// What the plugin says about itself, in host terms (for `info` and validation).
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub name: String,
    pub kind: CpiKind,
    pub version: String,
    pub actions: Vec<ActionDescription>,
    pub default_settings: Vec<(String, String)>,
    pub requests: Requests,
}

impl Description {
    /// Every parameter `describe()` lists must be one the host passes for that action (the
    /// catalogue's names: `info` shows them and callers use them); otherwise a call would fail
    /// with a name nobody can pass, or be reported as ignoring one.
    fn check_parameter_names(&self) -> Result<(), String> {
        for action in self.actions.iter().filter(|a| a.unsupported.is_none()) {
            let standard = crate::contract::catalogue::standard_params(self.kind, &action.name);
            if standard.is_empty() {
                continue;
            }
            for (name, _, _) in &action.params {
                if standard.iter().any(|p| p.name == name) {
                    continue;
                }
                let names: Vec<&str> = standard.iter().map(|p| p.name).collect();
                let near = crate::suggest::closest(name, names.iter().copied())
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                return Err(format!(
                    "action `{}` describes parameter `{name}`, which the host never passes{near} (the host passes {})",
                    action.name,
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionDescription {
    pub name: String,
    pub params: Vec<(String, bool, String)>,
    pub unsupported: Option<String>,
}

/// A component linked and ready to instantiate, by world and interface version.
enum WorldPre {
    Container(v0_3::container::ContainerCpiPre<CallState>),
    Director(v0_3::director::DirectorCpiPre<CallState>),
    ContainerV0_2(v0_2::container::ContainerCpiPre<CallState>),
    DirectorV0_2(v0_2::director::DirectorCpiPre<CallState>),
    ContainerV0_1(v0_1::container::ContainerCpiPre<CallState>),
    DirectorV0_1(v0_1::director::DirectorCpiPre<CallState>),
}

pub struct ComponentCpi {
    /// The plugin's name in the policy (or its file name).
    pub name: String,
    pub source: PathBuf,
    pub sha256: String,
    pub world: World,
    /// The `omni:cpi` version the component was built against.
    pub interface: Interface,
    pub description: Description,
    pub grants: PluginGrants,
    sandbox: Arc<Sandbox>,
    pre: WorldPre,
    engine: wasmtime::Engine,
}

/// Reads the exports of a component's type to find its world and interface version, before
/// anything is instantiated.
/// Reads a component (bounded in size), checks it against the policy's pinned hash, and compiles
/// it or loads it from the cache. Returns it with its SHA-256 and whether the cache had it.
fn compile_file(
    host: &ComponentHost,
    source: &Path,
    grants: &PluginGrants,
) -> Result<(Component, String, bool), LoadError> {
    let path = source.to_path_buf();
    let size = std::fs::metadata(source).map_err(|e| LoadError::Read { path: path.clone(), source: e })?.len();
    if size > MAX_COMPONENT_BYTES {
        return Err(LoadError::TooLarge { path, size });
    }
    let bytes = std::fs::read(source).map_err(|e| LoadError::Read { path: path.clone(), source: e })?;
    let sha256 = sha256_hex(&bytes);
    if let Some(pinned) = &grants.sha256 {
        if *pinned != sha256 {
            return Err(LoadError::HashMismatch { path, actual: sha256, pinned: pinned.clone() });
        }
    }
    let cached = host.is_cached(&sha256);
    let component = host
        .compile(&bytes, &sha256, &label_of(source))
        .map_err(|e| LoadError::Invalid { path: path.clone(), message: e.to_string() })?;
    Ok((component, sha256, cached))
}

/// What `omni-cpi compile` did for one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precompiled {
    /// Compiled now and written to the cache.
    Compiled,
    /// The cache had it already.
    Cached,
    /// Compiled, but there is no cache to keep it in (the next process compiles it again).
    Uncached,
}

/// Compiles `source` into the host's cache without instantiating it, so that no call has to:
/// `omni-cpi compile`. The pinned hash is checked first, as at load.
pub fn precompile(host: &ComponentHost, source: &Path, grants: &PluginGrants) -> Result<Precompiled, LoadError> {
    let (_, _, cached) = compile_file(host, source, grants)?;
    Ok(match (cached, host.cache_dir().is_some()) {
        (true, _) => Precompiled::Cached,
        (false, true) => Precompiled::Compiled,
        (false, false) => Precompiled::Uncached,
    })
}

/// A component's file name, as progress and logs name it.
fn label_of(source: &Path) -> String {
    source.file_name().map_or_else(|| source.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn detect_world(host: &ComponentHost, component: &Component) -> Result<(World, Interface), String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(host.engine())
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    let ours: Vec<(&str, semver::Version)> = exports
        .iter()
        .filter_map(|name| {
            let rest = name.strip_prefix("omni:cpi/")?;
            let (interface, version) = rest.split_once('@')?;
            Some((interface, semver::Version::parse(version).ok()?))
        })
        .collect();
    if ours.is_empty() {
        return Err(format!(
            "not an omni-cpi component: it exports no omni:cpi interface (exports: {}); build it against the WIT in wit/ (world container-cpi or director-cpi)",
            if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
        ));
    }
    let linked = || {
        let all: Vec<String> = Interface::ALL.iter().map(|i| i.to_string()).collect();
        match all.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    };
    if let Some((interface, version)) = ours.iter().find(|(_, v)| Interface::of(v).is_none()) {
        return Err(format!(
            "exports omni:cpi/{interface}@{version}, but this host links {}; rebuild the plugin against the host's WIT (wit/, omni:cpi@{INTERFACE_VERSION}) or use a host that supports {version}",
            linked()
        ));
    }
    let versions: Vec<Interface> = ours.iter().filter_map(|(_, v)| Interface::of(v)).collect();
    let interface = versions[0];
    if versions.iter().any(|v| *v != interface) {
        return Err(format!(
            "exports interfaces of different versions ({}); a CPI is built against one omni:cpi version",
            ours.iter().map(|(i, v)| format!("omni:cpi/{i}@{v}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let has = |interface: &str| ours.iter().any(|(i, _)| *i == interface);
    match (has("plugin"), has("container"), has("director")) {
        (true, true, false) => Ok((World::ContainerCpi, interface)),
        (true, false, true) => Ok((World::DirectorCpi, interface)),
        _ => Err(format!(
            "exports {} but a CPI exports `plugin` and exactly one of `container` (world container-cpi) or `director` (world director-cpi)",
            ours.iter().map(|(i, v)| format!("omni:cpi/{i}@{v}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A component read, checked and described, before any grant.
struct Inspected {
    sha256: String,
    world: World,
    interface: Interface,
    pre: WorldPre,
    description: Description,
    /// What the `settings` import answers: the operator's values over the declared defaults.
    settings: Vec<(String, String)>,
}

impl Inspected {
    async fn read(
        host: &ComponentHost,
        source: &Path,
        grants: &PluginGrants,
        audit: AuditLog,
    ) -> Result<Inspected, LoadError> {
        let path = source.to_path_buf();
        let (component, sha256, _) = compile_file(host, source, grants)?;
        let (world, interface) =
            detect_world(host, &component).map_err(|message| LoadError::WrongWorld { path: path.clone(), message })?;
        let instance_pre = host
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Invalid { path: path.clone(), message: format!("cannot link: {e:#}") })?;
        let pre = match (world, interface) {
            (World::ContainerCpi, Interface::V0_3) => {
                v0_3::container::ContainerCpiPre::new(instance_pre).map(WorldPre::Container)
            }
            (World::DirectorCpi, Interface::V0_3) => {
                v0_3::director::DirectorCpiPre::new(instance_pre).map(WorldPre::Director)
            }
            (World::ContainerCpi, Interface::V0_2) => {
                v0_2::container::ContainerCpiPre::new(instance_pre).map(WorldPre::ContainerV0_2)
            }
            (World::DirectorCpi, Interface::V0_2) => {
                v0_2::director::DirectorCpiPre::new(instance_pre).map(WorldPre::DirectorV0_2)
            }
            (World::ContainerCpi, Interface::V0_1) => {
                v0_1::container::ContainerCpiPre::new(instance_pre).map(WorldPre::ContainerV0_1)
            }
            (World::DirectorCpi, Interface::V0_1) => {
                v0_1::director::DirectorCpiPre::new(instance_pre).map(WorldPre::DirectorV0_1)
            }
        }
        .map_err(|e| LoadError::WrongWorld { path: path.clone(), message: format!("{e:#}") })?;

        // describe() runs with no capabilities at all: it must only say what the plugin needs.
        let nothing = Sandbox {
            plugin: grants.name.clone(),
            exec: Vec::new(),
            dirs: Vec::new(),
            env: Vec::new(),
            limits: grants.limits,
            audit,
            path: String::new(),
            requests: Requests::nothing(),
            settings: Vec::new(),
            network: Arc::from(Vec::new()),
            loading: true,
        };
        let mut loading = LoadInstance::new(host.engine(), &pre, Arc::new(nothing))
            .await
            .map_err(|e| LoadError::Describe { path: path.clone(), message: e.message })?;
        let info =
            loading.describe().await.map_err(|e| LoadError::Describe { path: path.clone(), message: e.message })?;
        let mut description = Description::from_wit(info);
        let expected_kind = match world {
            World::ContainerCpi => CpiKind::Container,
            World::DirectorCpi => CpiKind::Director,
        };
        if description.kind != expected_kind {
            return Err(LoadError::WrongWorld {
                path,
                message: format!("describe() says kind {:?}, but the component implements {world:?}", description.kind),
            });
        }
        if let Err(message) = description.check_parameter_names() {
            return Err(LoadError::Describe { path, message });
        }
        let settings = resolve_settings(grants, interface, &description.default_settings)
            .map_err(|message| LoadError::Settings { path: path.clone(), message })?;

        // network-requests() sees the settings (a plugin asks for the endpoint it is configured
        // with) and still nothing else.
        description.requests.network = if interface.requests_network() {
            let requested =
                loading.network_requests(settings.clone()).await.map_err(|e| LoadError::NetworkRequests {
                    path: path.clone(),
                    message: format!("network-requests() failed: {}", e.message),
                })?;
            let parsed: Result<Vec<NetworkRequest>, String> =
                requested.into_iter().map(|r| NetworkRequest::parse(&r.host, r.port, r.description)).collect();
            Some(parsed.map_err(|message| LoadError::NetworkRequests { path: path.clone(), message })?)
        } else {
            None
        };
        Ok(Inspected { sha256, world, interface, pre, description, settings })
    }
}

impl ComponentCpi {
    /// Loads a component for the plugin named in `grants`.
    pub async fn load(
        host: &ComponentHost,
        source: &Path,
        grants: PluginGrants,
        audit: AuditLog,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ComponentCpi, LoadError> {
        let inspected = Inspected::read(host, source, &grants, audit.clone()).await?;
        let mut sandbox = Sandbox::new(&grants, &inspected.description.requests, audit, host_env)
            .map_err(LoadError::MissingGrants)?;
        sandbox.settings = inspected.settings;
        Ok(ComponentCpi {
            name: grants.name.clone(),
            source: source.to_path_buf(),
            sha256: inspected.sha256,
            world: inspected.world,
            interface: inspected.interface,
            description: inspected.description,
            grants,
            sandbox: Arc::new(sandbox),
            pre: inspected.pre,
            engine: host.engine().clone(),
        })
    }

    /// What a component is and says about itself, without granting it anything (static checks).
    pub async fn describe_file(
        host: &ComponentHost,
        source: &Path,
    ) -> Result<(World, Interface, Description), LoadError> {
        let name = source.file_stem().map_or("plugin".to_string(), |s| s.to_string_lossy().into_owned());
        ComponentCpi::describe_under(host, source, &PluginGrants::none(&name)).await
    }

    /// What a component says about itself under a policy entry's settings (its network requests
    /// may depend on them), without granting it anything: what `info` shows of a component whose
    /// entry lacks grants.
    pub async fn describe_under(
        host: &ComponentHost,
        source: &Path,
        grants: &PluginGrants,
    ) -> Result<(World, Interface, Description), LoadError> {
        let inspected = Inspected::read(host, source, grants, AuditLog::default()).await?;
        Ok((inspected.world, inspected.interface, inspected.description))
    }

    pub fn kind(&self) -> CpiKind {
        self.description.kind
    }

    /// What the conformance kit should pass to every call: the plugin lists them among its default
    /// settings as `conformance.PARAM` (the value is JSON if it parses as JSON, else text:
    /// `conformance.image = "busybox"`).
    pub fn conformance_params(&self) -> Params {
        self.description
            .default_settings
            .iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(CONFORMANCE_SETTING_PREFIX)?;
                let parsed = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.clone()));
                Some((name.to_string(), parsed))
            })
            .collect()
    }

    pub fn limits(&self) -> Limits {
        self.sandbox.limits
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Checks a call's parameters and options without running anything.
    pub fn check(&self, action: &str, params: &Params, options: &CallOptions) -> Result<(), CpiError> {
        self.call_limits(action, options)?;
        self.wit_call(action, params).map(|_| ())
    }

    /// The limits of one call: the operator's, with `--timeout` shortening the call and every
    /// exec in it. A caller may shorten what the operator granted, never lengthen it.
    fn call_limits(&self, action: &str, options: &CallOptions) -> Result<Limits, CpiError> {
        let mut limits = self.sandbox.limits;
        if let Some(timeout) = options.timeout {
            if timeout > limits.call_timeout {
                return Err(CpiError::new(
                    ErrorKind::InvalidArgument,
                    action,
                    format!(
                        "a timeout of {timeout:?} is longer than the {:?} the policy allows plugin `{}` per call; \
                         pass at most that, or raise `limits.call_timeout` in its policy entry",
                        limits.call_timeout, self.name
                    ),
                ));
            }
            limits.call_timeout = timeout;
            limits.exec_timeout = limits.exec_timeout.min(timeout);
        }
        Ok(limits)
    }

    fn wit_call(&self, action: &str, params: &Params) -> Result<WitCall, CpiError> {
        let standard = catalogue::canonical_action(self.kind(), action);
        if let Some(reason) =
            self.description.actions.iter().find(|a| a.name == standard).and_then(|a| a.unsupported.clone())
        {
            return Err(CpiError::new(
                ErrorKind::Unsupported,
                action,
                format!("plugin `{}` declares this action unsupported: {reason}", self.name),
            ));
        }
        WitCall::parse(self.kind(), action, params)
    }

    /// The values of parameters named like credentials (WIT 0.1's `describe` has no secret flag).
    fn secrets_of(params: &Params) -> Secrets {
        Secrets::of(params.iter().filter(|(name, _)| looks_like_credential(name)).map(|(_, v)| v))
    }

    /// Parameters a caller passed that the action does not take.
    fn ignored(&self, action: &str, params: &Params) -> Vec<String> {
        params::ignored(catalogue::standard_params(self.kind(), action).iter().map(|p| p.name), params)
    }

    /// Runs an action.
    pub async fn call(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Outcome, CpiError> {
        let secrets = Self::secrets_of(params);
        match self.call_unredacted(action, params, options, &secrets).await {
            Ok(outcome) => Ok(secrets.redact_outcome(outcome)),
            Err(e) => Err(secrets.redact_error(e)),
        }
    }

    async fn call_unredacted(
        &self,
        action: &str,
        params: &Params,
        options: &CallOptions,
        secrets: &Secrets,
    ) -> Result<Outcome, CpiError> {
        let limits = self.call_limits(action, options)?;
        let call = self.wit_call(action, params)?;
        let (reply, execs) = self.invoke(action, &call, limits, false, secrets).await?;
        Ok(Outcome {
            cpi: self.name.clone(),
            action: action.to_string(),
            exit_code: Some(reply.exit_code),
            http_status: None,
            stdout: reply.stdout,
            stderr: reply.stderr,
            stdout_truncated: false,
            stderr_truncated: false,
            result: reply.result,
            steps: execs
                .into_iter()
                .map(|e| StepReport {
                    name: "exec".into(),
                    argv: e.argv,
                    exit_code: e.exit_code,
                    http_status: None,
                    timed_out: e.timed_out,
                    failure_ignored: false,
                    duration: e.duration,
                })
                .collect(),
            ignored_params: self.ignored(action, params),
        })
    }

    /// The dry run: the plugin runs with every exec recorded and answered by an empty success,
    /// so the plan lists what it would run if each program succeeded.
    pub async fn plan(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Plan, CpiError> {
        let secrets = Self::secrets_of(params);
        let limits = self.call_limits(action, options)?;
        let call = self.wit_call(action, params).map_err(|e| secrets.redact_error(e))?;
        let (_, execs) =
            self.invoke(action, &call, limits, true, &secrets).await.map_err(|e| secrets.redact_error(e))?;
        Ok(Plan {
            cpi: self.name.clone(),
            action: action.to_string(),
            steps: execs
                .into_iter()
                .map(|e| {
                    let mut step = PlannedStep::new("exec", StepStage::Command, e.argv, limits.exec_timeout);
                    step.redact_with(&secrets);
                    step
                })
                .collect(),
            ignored_params: self.ignored(action, params),
            secrets,
            // A component's plan shows what it would run; the component, not the plan, runs.
            issuer: 0,
        })
    }

    async fn invoke(
        &self,
        action: &str,
        call: &WitCall,
        limits: Limits,
        dry_run: bool,
        secrets: &Secrets,
    ) -> Result<(Reply, Vec<ExecRecord>), CpiError> {
        // The sandbox as granted, with this call's (possibly shortened) limits.
        let sandbox = if limits == self.sandbox.limits {
            self.sandbox.clone()
        } else {
            Arc::new(Sandbox { limits, ..(*self.sandbox).clone() })
        };
        let state = CallState::new(sandbox, action, dry_run, secrets.clone())
            .map_err(|e| CpiError::new(ErrorKind::Internal, action, format!("cannot prepare the sandbox: {e:#}")))?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(ticks(limits.call_timeout));
        store.epoch_deadline_trap();

        let work = async {
            match &self.pre {
                WorldPre::Container(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    dispatch::call_container(&instance, &mut store, call).await
                }
                WorldPre::Director(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    dispatch::call_director(&instance, &mut store, call).await
                }
                WorldPre::ContainerV0_2(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    dispatch::call_container_v0_2(&instance, &mut store, call).await
                }
                WorldPre::DirectorV0_2(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    dispatch::call_director_v0_2(&instance, &mut store, call).await
                }
                WorldPre::ContainerV0_1(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    dispatch::call_container_v0_1(&instance, &mut store, call).await
                }
                WorldPre::DirectorV0_1(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    dispatch::call_director_v0_1(&instance, &mut store, call).await
                }
            }
        };
        // The epoch deadline stops guest code; this also bounds time spent in host calls.
        let outcome = tokio::time::timeout(limits.call_timeout + Duration::from_secs(1), work).await;
        let plugin_stderr = String::from_utf8_lossy(&store.data().stderr.contents()).into_owned();
        let output_full = [&store.data().stdout, &store.data().stderr]
            .iter()
            .any(|pipe| pipe.contents().len() >= limits.output_bytes);
        let execs = std::mem::take(&mut store.data_mut().execs);
        let reply = match outcome {
            Err(_) => {
                return Err(self.limit_error(
                    action,
                    ErrorKind::Timeout,
                    format!("did not finish within {:?}", limits.call_timeout),
                ))
            }
            Ok(Err(_)) if output_full => {
                // A full pipe reads as closed to the guest, whose print then fails (Rust panics).
                return Err(self.limit_error(
                    action,
                    ErrorKind::Internal,
                    format!("printed more than {} bytes to stdout or stderr", limits.output_bytes),
                ));
            }
            Ok(Err(trap)) => return Err(self.trap_error(action, limits, trap, &plugin_stderr)),
            Ok(Ok(Err(e))) => return Err(CpiError::new(dispatch::error_kind(e.kind), action, e.message)),
            Ok(Ok(Ok(reply))) => reply,
        };
        if reply.size() > limits.return_bytes {
            return Err(self.limit_error(
                action,
                ErrorKind::Internal,
                format!("returned {} bytes; the limit is {}", reply.size(), limits.return_bytes),
            ));
        }
        Ok((reply, execs))
    }

    fn limit_error(&self, action: &str, kind: ErrorKind, what: String) -> CpiError {
        CpiError::new(kind, action, format!("plugin `{}` {what}", self.name))
    }

    /// Turns a trap (or a host-side failure) into a typed error that says which limit was hit.
    fn trap_error(&self, action: &str, limits: Limits, error: wasmtime::Error, plugin_stderr: &str) -> CpiError {
        if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
            return self.limit_error(
                action,
                ErrorKind::Internal,
                format!("exceeded its memory limit of {} MiB", limits.memory_bytes >> 20),
            );
        }
        if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            match trap {
                wasmtime::Trap::Interrupt => {
                    return self.limit_error(
                        action,
                        ErrorKind::Timeout,
                        format!("exceeded its time limit of {:?} and was stopped", limits.call_timeout),
                    )
                }
                wasmtime::Trap::StackOverflow => {
                    return self.limit_error(
                        action,
                        ErrorKind::Internal,
                        "overflowed its stack (unbounded recursion?)".into(),
                    )
                }
                wasmtime::Trap::UnreachableCodeReached => {
                    return self.limit_error(
                        action,
                        ErrorKind::Internal,
                        format!("panicked: {}", panic_message(plugin_stderr)),
                    );
                }
                _ => {}
            }
        }
        self.limit_error(action, ErrorKind::Internal, format!("failed: {error:#}"))
    }
}

/// The message of a Rust panic as printed to stderr: the lines after "panicked at FILE:LINE:COL:",
/// without the backtrace note; or the last line of whatever else was printed.
fn panic_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.iter().rposition(|l| l.contains("panicked at ")) {
        Some(at) => {
            let location = lines[at].rsplit("panicked at ").next().unwrap_or("").trim_end_matches(':');
            let message: Vec<&str> = lines[at + 1..].iter().copied().filter(|l| !l.starts_with("note: ")).collect();
            format!("{} (at {location})", message.join(" "))
        }
        None => lines.last().map_or_else(|| "no message".to_string(), |l| l.to_string()),
    }
}

/// The settings a component reads: each key it declared in `default-settings` with the operator's
/// value (`[plugins.NAME.settings]`) or the default. Deny by default: a key the plugin did not
/// declare is refused (a typo would otherwise be silently ignored), and so is any setting for a
/// 0.1.0 component, which has no way to read it.
fn resolve_settings(
    grants: &PluginGrants,
    interface: Interface,
    defaults: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let plugin = &grants.name;
    if !grants.settings.is_empty() && !interface.has_settings() {
        return Err(format!(
            "plugin `{plugin}` is built against {interface}, which cannot read settings; remove `[plugins.{plugin}.settings]` or rebuild the plugin against omni:cpi@{INTERFACE_VERSION}"
        ));
    }
    for key in grants.settings.keys() {
        if !defaults.iter().any(|(k, _)| k == key) {
            let declared: Vec<&str> = defaults.iter().map(|(k, _)| k.as_str()).collect();
            let near = crate::suggest::closest(key, declared.iter().copied())
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(format!(
                "`[plugins.{plugin}.settings]` sets `{key}`, which the plugin does not declare{near} (it declares {})",
                if declared.is_empty() {
                    "no settings".to_string()
                } else {
                    declared.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                }
            ));
        }
    }
    let mut settings: Vec<(String, String)> = defaults
        .iter()
        .map(|(key, default)| (key.clone(), grants.settings.get(key).cloned().unwrap_or_else(|| default.clone())))
        .collect();
    settings.sort();
    settings.dedup_by(|a, b| a.0 == b.0);
    Ok(settings)
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// One instance of a component at load, in a store with no capabilities: `describe()` is called
/// on it, then (omni:cpi@0.3.0 on) `network-requests()`, each within the plugin's call limits.
/// One instance for both: a large component (Python's) is instantiated once per load.
struct LoadInstance {
    store: Store<CallState>,
    exports: LoadExports,
    call_timeout: Duration,
}

/// The instance, by world and interface version.
enum LoadExports {
    Container(v0_3::container::ContainerCpi),
    Director(v0_3::director::DirectorCpi),
    ContainerV0_2(v0_2::container::ContainerCpi),
    DirectorV0_2(v0_2::director::DirectorCpi),
    ContainerV0_1(v0_1::container::ContainerCpi),
    DirectorV0_1(v0_1::director::DirectorCpi),
}

impl LoadInstance {
    async fn new(engine: &wasmtime::Engine, pre: &WorldPre, sandbox: Arc<Sandbox>) -> Result<LoadInstance, CpiError> {
        let call_timeout = sandbox.limits.call_timeout;
        let state = CallState::new(sandbox, "describe", false, Secrets::default())
            .map_err(|e| CpiError::new(ErrorKind::Internal, "describe", format!("{e:#}")))?;
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(ticks(call_timeout));
        store.epoch_deadline_trap();
        let instantiate = async {
            let store = &mut store;
            match pre {
                WorldPre::Container(pre) => pre.instantiate_async(store).await.map(LoadExports::Container),
                WorldPre::Director(pre) => pre.instantiate_async(store).await.map(LoadExports::Director),
                WorldPre::ContainerV0_2(pre) => pre.instantiate_async(store).await.map(LoadExports::ContainerV0_2),
                WorldPre::DirectorV0_2(pre) => pre.instantiate_async(store).await.map(LoadExports::DirectorV0_2),
                WorldPre::ContainerV0_1(pre) => pre.instantiate_async(store).await.map(LoadExports::ContainerV0_1),
                WorldPre::DirectorV0_1(pre) => pre.instantiate_async(store).await.map(LoadExports::DirectorV0_1),
            }
        };
        let exports = bounded("describe", call_timeout, instantiate).await?;
        Ok(LoadInstance { store, exports, call_timeout })
    }

    async fn describe(&mut self) -> Result<types::PluginInfo, CpiError> {
        let (store, exports) = (&mut self.store, &self.exports);
        let work = async move {
            match exports {
                LoadExports::Container(i) => i.omni_cpi_plugin().call_describe(store).await,
                LoadExports::Director(i) => i.omni_cpi_plugin().call_describe(store).await,
                LoadExports::ContainerV0_2(i) => i.omni_cpi_plugin().call_describe(store).await,
                LoadExports::DirectorV0_2(i) => i.omni_cpi_plugin().call_describe(store).await,
                LoadExports::ContainerV0_1(i) => i.omni_cpi_plugin().call_describe(store).await,
                LoadExports::DirectorV0_1(i) => i.omni_cpi_plugin().call_describe(store).await,
            }
        };
        bounded("describe", self.call_timeout, work).await
    }

    /// The hosts the plugin requests, with `settings` readable; none from a version without
    /// `network-requests` (see `Interface::requests_network`).
    async fn network_requests(
        &mut self,
        settings: Vec<(String, String)>,
    ) -> Result<Vec<types::NetworkRequest>, CpiError> {
        self.store.data_mut().reveal_settings("network-requests", settings);
        self.store.set_epoch_deadline(ticks(self.call_timeout));
        let (store, exports) = (&mut self.store, &self.exports);
        let work = async move {
            match exports {
                LoadExports::Container(i) => i.omni_cpi_plugin().call_network_requests(store).await,
                LoadExports::Director(i) => i.omni_cpi_plugin().call_network_requests(store).await,
                _ => Ok(Vec::new()),
            }
        };
        bounded("network-requests", self.call_timeout, work).await
    }
}

/// A load-time step's outcome as a typed error: a trap is `internal`; a step that outlives the
/// plugin's call limit (the epoch deadline stops guest code; this, time spent in host calls) is
/// `timeout`.
async fn bounded<T>(
    action: &str,
    call_timeout: Duration,
    work: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Result<T, CpiError> {
    match tokio::time::timeout(call_timeout + Duration::from_secs(1), work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(CpiError::new(ErrorKind::Internal, action, format!("{e:#}"))),
        Err(_) => Err(CpiError::new(ErrorKind::Timeout, action, format!("{action}() did not return in time"))),
    }
}

impl Description {
    fn from_wit(info: types::PluginInfo) -> Description {
        Description {
            name: info.name,
            kind: match info.kind {
                types::CpiKind::Container => CpiKind::Container,
                types::CpiKind::Director => CpiKind::Director,
            },
            version: info.version,
            actions: info
                .actions
                .into_iter()
                .map(|a| ActionDescription {
                    name: a.name.replace('-', "_"),
                    params: a.params.into_iter().map(|p| (p.name, p.required, p.description)).collect(),
                    unsupported: a.unsupported,
                })
                .collect(),
            default_settings: info.default_settings,
            requests: Requests {
                exec: info
                    .capabilities
                    .exec
                    .into_iter()
                    .map(|e| (e.program, e.args.iter().map(|a| ArgPattern::parse(a)).collect()))
                    .collect(),
                dirs: info.capabilities.dirs.into_iter().map(|d| (d.guest_path, d.writable)).collect(),
                env: info.capabilities.env,
                // Asked for separately, once the settings are known (`Inspected::read`).
                network: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{panic_message, ActionDescription, CpiKind, Description, Requests};

    #[test]
    fn extracts_rust_panic_messages() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:108:20:\nboom: it broke\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(panic_message(stderr), "boom: it broke (at src/lib.rs:108:20)");
        assert_eq!(panic_message("abort\n"), "abort");
        assert_eq!(panic_message(""), "no message");
    }

    fn description(action: &str, params: &[&str]) -> Description {
        Description {
            name: "p".into(),
            kind: CpiKind::Container,
            version: "1".into(),
            actions: vec![ActionDescription {
                name: action.into(),
                params: params.iter().map(|p| (p.to_string(), true, String::new())).collect(),
                unsupported: None,
            }],
            default_settings: vec![],
            requests: Requests::nothing(),
        }
    }

    /// A name the host never passes is a load error naming the one it does.
    #[test]
    fn describe_must_use_the_parameter_names_the_host_passes() {
        assert!(description("stop_container", &["name", "stop_timeout"]).check_parameter_names().is_ok());
        let err = description("stop_container", &["name", "timeout_secs"]).check_parameter_names().expect_err("name");
        assert!(err.contains("`timeout_secs`") && err.contains("`stop_timeout`"), "{err}");
        let err = description("exec", &["name", "command"]).check_parameter_names().expect_err("exec's is cmd");
        assert!(err.contains("`cmd`"), "{err}");
    }
}
