//! WebAssembly component CPIs, run in wasmtime with only what the operator granted.
//!
//! `engine` (shared engine, linker, epoch ticker, compile cache) → `component` (load: hash pin,
//! world check, describe, grants; call: fresh store per call) → `dispatch` (uniform call ↔ WIT
//! call) → `state` (per-call store data: WASI from grants, the capability-checked `process`
//! import) → `sandbox` (requested ∩ granted, pure checks); `http` (wasi:http requests under the
//! network grants).
pub mod bindings;
pub mod component;
pub mod dispatch;
pub mod engine;
pub mod http;
pub mod sandbox;
pub mod state;

pub use component::{ComponentCpi, Description, Interface, LoadError, World};
pub use engine::{sha256_hex, CompileProgress, ComponentHost};
