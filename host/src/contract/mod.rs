//! The contract both forms of CPI implement and every caller relies on: the catalogue of standard
//! actions, how parameters are checked, the typed errors, the per-call options, and what a call
//! produces (a plan, an outcome). Neither backend's types appear here.

pub mod catalogue;
pub mod duration;
pub mod error;
pub mod options;
pub mod params;
pub mod plan;
