//! The generated guest bindings of the `director-cpi` world of `omni:cpi@0.3.0`, with the
//! interfaces both worlds share (`types`, `process`, `log`, `settings`). Use `omni-cpi-sdk`,
//! which re-exports these.
//!
//! A crate of its own because wit-bindgen defines each world's export macros at the root of the
//! crate that generates it: the `plugin` interface's macro of two worlds would clash in one crate.
//! `omni-cpi-sdk` generates the container world and reuses the shared interfaces from here.

wit_bindgen::generate!({
    world: "director-cpi",
    path: "../../../wit",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "omni_cpi_sdk::bindings::director",
    generate_all,
});

impl omni::cpi::types::CpiError {
    /// An error of `kind` with a one-line message for people.
    pub fn new(kind: omni::cpi::types::ErrorKind, message: impl ToString) -> Self {
        Self { kind, message: message.to_string() }
    }
}
