//! omni-cpi's integration tests, one binary: every module links the library (and wasmtime) once.
//! `cargo test --test it MODULE::` runs one module, e.g. `cargo test --test it components::`.
//! Support code shared by the modules is in `support`.

mod support;

mod aws;
mod baremetal;
mod cli;
mod compat;
mod components;
mod conformance;
mod fuzz_regressions;
mod golden;
mod injection;
mod requests;
mod runtimes;
mod security;
mod serve;
mod vsphere;
