//! Write a CPI in plain Rust, compile it to a WebAssembly component, run it in omni-cpi.
//!
//! Implement [`Plugin`] (what the CPI is and needs) and [`Container`] or [`Director`] with only
//! the actions your runtime supports: every other action answers `unsupported`, and
//! [`Describe`] declares it so, from the catalogue of standard actions with the parameter names
//! the host passes. A complete container CPI:
//!
//! ```
//! use omni_cpi_sdk::prelude::*;
//!
//! struct MyCpi;
//!
//! impl Plugin for MyCpi {
//!     fn describe() -> PluginInfo {
//!         Describe::container("my_cpi", env!("CARGO_PKG_VERSION"))
//!             .implements(&["create_container", "start_container", "delete_container", "list_containers"])
//!             .otherwise_unsupported("my runtime cannot do this")
//!             // `VALUE` is one argument that is not an option: a name can never be `--all`.
//!             .exec("runc", &["create", VALUE])
//!             .exec("runc", &["start", VALUE])
//!             .exec("runc", &["delete", "-f", VALUE])
//!             .exec("runc", &["list", "-q"])
//!             .setting("root", "/run/my-cpi")
//!             .conformance_param("image", "busybox")
//!             .build()
//!     }
//! }
//!
//! impl Container for MyCpi {
//!     fn create_container(spec: ContainerSpec) -> CpiResult<ContainerInfo> {
//!         exec("runc", &["create", &spec.name])?.ok_or_failed("runc create")?;
//!         Ok(ContainerInfo {
//!             name: spec.name.clone(),
//!             id: spec.name,
//!             image: spec.image,
//!             state: ContainerState::Created,
//!             pid: None,
//!             details: String::new(),
//!         })
//!     }
//!
//!     fn start_container(name: String) -> CpiResult<()> {
//!         exec("runc", &["start", &name])?.ok_or_failed("runc start")?;
//!         Ok(())
//!     }
//!
//!     fn delete_container(name: String) -> CpiResult<()> {
//!         let out = exec("runc", &["delete", "-f", &name])?;
//!         if out.stderr_text().contains("does not exist") {
//!             return Err(CpiError::new(ErrorKind::NotFound, format!("no container {name}")));
//!         }
//!         out.ok_or_failed("runc delete")?;
//!         Ok(())
//!     }
//!
//!     fn list_containers() -> CpiResult<Vec<String>> {
//!         // In a dry run (`omni-cpi call --dry-run`) `exec` runs nothing and answers empty
//!         // output: plan from what you know instead of parsing it.
//!         let out = exec("runc", &["list", "-q"])?.ok_or_failed("runc list")?;
//!         if dry_run() {
//!             return Ok(Vec::new());
//!         }
//!         Ok(out.stdout_text().lines().map(str::to_string).collect())
//!     }
//! }
//!
//! omni_cpi_sdk::export_container!(MyCpi);
//! # fn main() {}
//! ```
//!
//! A director CPI implements [`Director`] and exports with [`export_director!`]. Build with
//! `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component. `omni-cpi new container|director NAME`
//! writes such a project with its policy. The interface is `wit/` at the repository root
//! (`omni:cpi@0.3.0`); its comments say what each action must do.

/// The generated bindings of both worlds. `omni-cpi-sdk-base` generates the director world and
/// the interfaces both worlds share (`types`, `process`, `log`, `settings`); the container world
/// reuses them, so their types exist once. Only the world a plugin exports (with
/// [`export_container!`] or [`export_director!`]) ends up in its component.
pub mod bindings {
    pub use omni_cpi_sdk_base as director;

    pub mod container {
        wit_bindgen::generate!({
            world: "container-cpi",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "omni_cpi_sdk::bindings::container",
            with: {
                "omni:cpi/types@0.3.0": omni_cpi_sdk_base::omni::cpi::types,
                "omni:cpi/process@0.3.0": omni_cpi_sdk_base::omni::cpi::process,
                "omni:cpi/log@0.3.0": omni_cpi_sdk_base::omni::cpi::log,
                "omni:cpi/settings@0.3.0": omni_cpi_sdk_base::omni::cpi::settings,
            },
            generate_all,
        });
    }

    /// The interfaces both worlds share.
    pub use omni_cpi_sdk_base::omni::cpi as shared;
}

#[cfg(not(any(feature = "container", feature = "director")))]
compile_error!("enable at least one of the features `container` and `director` (both are on by default)");

pub use bindings::shared::log::Level;
pub use bindings::shared::process::{Command, Output};
pub use bindings::shared::types::*;

pub mod actions;
pub mod describe;
pub mod http;
pub mod names;
pub mod state;

#[cfg(feature = "container")]
pub use actions::Container;
#[cfg(feature = "director")]
pub use actions::Director;
pub use describe::Describe;

/// What every CPI says about itself: its name, kind, actions, settings and the capabilities it
/// needs. Called once at load, with no capabilities: it must not run programs.
pub trait Plugin {
    fn describe() -> PluginInfo;

    /// The hosts and ports the CPI's [`http`] requests reach; none by default. Called once at
    /// load, after `describe`, with [`setting`] answering (so request the endpoint you are
    /// configured with: [`http::network_request`]) and no other capability. A request goes
    /// only to what is requested here AND granted by the operator.
    fn network_requests() -> Vec<NetworkRequest> {
        Vec::new()
    }
}

/// Everything a CPI implementation needs in scope.
pub mod prelude {
    pub use crate::actions::{describe_actions, not_implemented, CONTAINER_ACTIONS, DIRECTOR_ACTIONS};
    #[cfg(feature = "container")]
    pub use crate::Container;
    #[cfg(feature = "director")]
    pub use crate::Director;
    pub use crate::{
        dry_run, exec, log, run, setting, settings, unsupported, CpiResult, Describe, Level, OutputExt, Plugin, ANY,
        REST, VALUE,
    };
    pub use crate::{
        ActionInfo, Capabilities, Command, ContainerInfo, ContainerSpec, ContainerState, CpiError, CpiKind, DirRequest,
        DiskInfo, DiskSpec, ErrorKind, ExecRequest, ExecResult, NetworkRequest, Output, ParamInfo, PluginInfo, VmInfo,
        VmSpec, VmState,
    };
}

pub type CpiResult<T> = Result<T, CpiError>;

/// In an exec request's arguments: one value that is not an option (non-empty, not starting
/// with `-`). Prefer it to `*` wherever a name, a path or a number goes: `validate` then suggests
/// the same pattern to the operator, so `--all` or `--help` can never take the value's place.
pub const VALUE: &str = "<value>";
/// In an exec request's arguments: any one argument, options included.
pub const ANY: &str = "*";
/// In an exec request's arguments, last only: any number of remaining arguments.
pub const REST: &str = "**";

/// The error every unimplemented action returns.
pub fn unsupported<T>(why: &str) -> CpiResult<T> {
    Err(CpiError::new(ErrorKind::Unsupported, why))
}

/// Runs `program args...` through the host (which checks it against the plugin's grants).
pub fn exec(program: &str, args: &[&str]) -> CpiResult<Output> {
    run(&Command {
        program: program.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        cwd: None,
        stdin: None,
        timeout_ms: None,
    })
}

/// Runs a fully specified command through the host.
pub fn run(command: &Command) -> CpiResult<Output> {
    bindings::shared::process::run(command)
}

/// Whether this call only plans (`omni-cpi call --dry-run`). Then [`exec`] and [`run`] run
/// nothing: each command is checked and recorded for the plan, and answered with exit code 0 and
/// empty output. Plan from what you know: skip parsing output, assume the resources the call
/// names are in the state the action needs, and run every command the real call would.
pub fn dry_run() -> bool {
    bindings::shared::process::dry_run()
}

/// A setting's value: the operator's (`[plugins.NAME.settings]` in the policy) or the default
/// your `describe` declared; `None` for a key you did not declare.
pub fn setting(key: &str) -> Option<String> {
    bindings::shared::settings::get(key)
}

/// Every setting with its value, sorted by key.
pub fn settings() -> Vec<(String, String)> {
    bindings::shared::settings::all()
}

/// Sends a message to the operator's log.
pub fn log(level: Level, message: &str) {
    bindings::shared::log::log(level, message);
}

/// Reading a process's output.
pub trait OutputExt {
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
    fn success(&self) -> bool;
    /// `Ok(self)` on exit 0; otherwise a `failed` error naming `what` with the last stderr line.
    fn ok_or_failed(self, what: &str) -> CpiResult<Output>;
}

impl OutputExt for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    fn ok_or_failed(self, what: &str) -> CpiResult<Output> {
        if self.success() {
            return Ok(self);
        }
        if self.timed_out {
            return Err(CpiError::new(ErrorKind::Timeout, format!("{what} timed out")));
        }
        let stderr = self.stderr_text();
        let reason = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let status = self.exit_code.map_or(String::from("a signal"), |c| format!("status {c}"));
        Err(CpiError::new(ErrorKind::Failed, format!("{what} exited with {status}: {reason}")))
    }
}
