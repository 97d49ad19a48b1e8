//! Write a CPI in plain Rust, compile it to a WebAssembly component, run it in omni-cpi.
//!
//! Implement only the actions your runtime supports: the others answer `unsupported`, and
//! `describe_actions` declares them so from the catalogue (with the parameter names the host
//! passes).
//!
//! ```ignore
//! use omni_cpi_sdk::prelude::*;
//!
//! struct MyCpi;
//!
//! impl Plugin for MyCpi {
//!     fn describe() -> PluginInfo {
//!         PluginInfo {
//!             name: "my_cpi".into(),
//!             kind: CpiKind::Container,
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             actions: describe_actions(CONTAINER_ACTIONS, &["start_container"], "my runtime cannot"),
//!             default_settings: vec![("conformance.image".into(), "busybox".into())],
//!             capabilities: Capabilities {
//!                 exec: vec![ExecRequest { program: "runc".into(), args: vec!["start".into(), VALUE.into()] }],
//!                 dirs: vec![],
//!                 env: vec![],
//!             },
//!         }
//!     }
//! }
//!
//! impl Container for MyCpi {
//!     fn start_container(name: String) -> Result<(), CpiError> {
//!         exec("runc", &["start", &name])?.ok_or_failed("runc start")?;
//!         Ok(())
//!     }
//! }
//!
//! omni_cpi_sdk::export_container!(MyCpi);
//! ```
//!
//! (A plugin may instead implement the generated `ContainerCpi`/`DirectorCpi` traits, every
//! function written out, and export with `export_cpi!`.)
//!
//! A director CPI depends on the SDK with `default-features = false, features = ["director"]`,
//! implements `Director` and exports with `export_director!`. Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component. The interface is `wit/` at the repository
//! root; its comments say what each action must do.

#[cfg(all(feature = "container", feature = "director"))]
compile_error!("a plugin is a container CPI or a director CPI: enable one of the features `container` or `director`");

/// The generated bindings of the plugin's world (`container-cpi` by default, `director-cpi` with
/// the `director` feature), including the shared `types`, `process` and `log` interfaces.
pub mod bindings {
    #[cfg(feature = "container")]
    wit_bindgen::generate!({
        world: "container-cpi",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "omni_cpi_sdk::bindings",
        generate_all,
    });

    #[cfg(feature = "director")]
    wit_bindgen::generate!({
        world: "director-cpi",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "omni_cpi_sdk::bindings",
        generate_all,
    });
}

pub use bindings::omni::cpi::log::Level;
pub use bindings::omni::cpi::process::{Command, Output};
pub use bindings::omni::cpi::types::*;

pub mod actions;
pub mod state;

/// Everything a CPI implementation needs in scope.
pub mod prelude {
    #[cfg(feature = "container")]
    pub use crate::actions::Container;
    #[cfg(feature = "director")]
    pub use crate::actions::Director;
    pub use crate::actions::{describe_actions, not_implemented, CONTAINER_ACTIONS, DIRECTOR_ACTIONS};
    #[cfg(feature = "container")]
    pub use crate::bindings::exports::omni::cpi::container::Guest as ContainerCpi;
    #[cfg(feature = "director")]
    pub use crate::bindings::exports::omni::cpi::director::Guest as DirectorCpi;
    pub use crate::bindings::exports::omni::cpi::plugin::Guest as Plugin;
    pub use crate::{exec, log, run, unsupported, CpiResult, Level, OutputExt, ANY, REST, VALUE};
    pub use crate::{
        ActionInfo, Capabilities, Command, ContainerInfo, ContainerSpec, ContainerState, CpiError, CpiKind, DirRequest,
        DiskInfo, DiskSpec, ErrorKind, ExecRequest, ExecResult, Output, ParamInfo, PluginInfo, VmInfo, VmSpec, VmState,
    };
}

/// Exports a type implementing [`prelude::Plugin`] and the world's CPI trait
/// ([`prelude::ContainerCpi`] or `DirectorCpi`) as the component's implementation.
#[macro_export]
macro_rules! export_cpi {
    ($t:ident) => {
        $crate::bindings::export!($t with_types_in $crate::bindings);
    };
}

pub type CpiResult<T> = Result<T, CpiError>;

impl CpiError {
    pub fn new(kind: ErrorKind, message: impl ToString) -> CpiError {
        CpiError { kind, message: message.to_string() }
    }
}

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
    bindings::omni::cpi::process::run(command)
}

/// Sends a message to the operator's log.
pub fn log(level: Level, message: &str) {
    bindings::omni::cpi::log::log(level, message);
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
