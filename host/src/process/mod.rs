//! Starting and ending processes, for both forms of CPI: `exec` runs one argv with a timeout and
//! bounded output; `spawn` starts it (its own process group, a child subreaper, no inherited
//! descriptors); `tree` finds and ends whatever it left behind.

pub mod exec;
pub mod spawn;
pub mod tree;
