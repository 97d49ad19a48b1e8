//! omni-cpi: runs OmniCloud CPIs safely. See `ARCHITECTURE.md` for the path of a call.

pub mod diagnostic;
pub mod error;
pub mod exec;
pub mod json_cpi;
pub mod output;
pub mod plan;
pub mod requirements;
pub mod spec;
mod suggest;
pub mod template;

pub use error::{CpiError, ErrorKind};
pub use json_cpi::{CallOptions, JsonCpi, Params};
pub use plan::{Outcome, Plan};
