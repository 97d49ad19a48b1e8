//! omni-cpi: runs OmniCloud CPIs safely. See `ARCHITECTURE.md` for the code map and the path of a
//! call.
//!
//! - [`cpi`]: the boundary: [`Cpi`] (either form behind one API) and [`Loader`] (policy binding).
//! - [`contract`]: what both forms share: the action catalogue, parameter checks, errors, options,
//!   plans and outcomes.
//! - [`json`]: the JSON spec backend (spec format, templates, HTTP requests, output parsing).
//! - [`wasm`]: the WebAssembly component backend (engine, sandbox, WIT dispatch).
//! - [`policy`]: the operator's grants, independent of either backend.
//! - [`process`]: starting and ending processes for both.

pub mod audit;
pub mod conformance;
pub mod contract;
pub mod cpi;
pub mod diagnostic;
pub mod json;
pub mod policy;
pub mod process;
pub mod secrets;
pub mod serve;
pub(crate) mod suggest;
pub mod wasm;

pub use contract::error::{CpiError, ErrorKind};
pub use contract::options::CallOptions;
pub use contract::params::Params;
pub use contract::plan::{Outcome, Plan};
pub use cpi::{Checked, Cpi, CpiLoadError, Loader};
pub use json::JsonCpi;
