//! The JSON spec backend: a CPI written as data (the seed format).
//!
//! `spec` (the format: parse with spans, decode, check, compat translation) → `template` (argv and
//! shell-mode templates, rendered per call without a shell) and `http` (request actions) →
//! `cpi` (plan a call, run it through the exec gate, parse `output`, classify errors by `rules`)
//! → `crate::process` (the processes). `requirements` checks a spec's version requirements.

pub mod cpi;
pub mod http;
pub mod output;
pub mod requirements;
pub mod rules;
pub mod spec;
pub mod template;

pub(crate) use cpi::GatedProcess;
pub use cpi::{ExecGate, JsonCpi, DEFAULT_TIMEOUT};
