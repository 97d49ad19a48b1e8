//! omni-cpi: runs OmniCloud CPIs safely. See `ARCHITECTURE.md` for the path of a call.

pub mod audit;
pub mod conformance;
pub mod cpi;
pub mod diagnostic;
pub mod duration;
pub mod error;
pub mod exec;
pub mod json_cpi;
pub mod output;
pub mod plan;
pub mod policy;
pub mod process_tree;
pub mod request;
pub mod requirements;
pub mod rules;
pub mod secrets;
pub mod spawn;
pub mod spec;
pub(crate) mod suggest;
pub mod template;
pub mod wasm;

pub use cpi::{Checked, Cpi, CpiLoadError, Loader};
pub use error::{CpiError, ErrorKind};
pub use json_cpi::{CallOptions, JsonCpi, Params};
pub use plan::{Outcome, Plan};
