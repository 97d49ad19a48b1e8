//! omni-cpi: runs OmniCloud CPIs safely. See `ARCHITECTURE.md` for the path of a call.

pub mod diagnostic;
pub mod error;
pub mod spec;
mod suggest;
pub mod template;
