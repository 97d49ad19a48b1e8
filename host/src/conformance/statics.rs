//! Static conformance: what can be checked without a runtime, for JSON specs and components.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{CheckResult, Failure, Level, Verdict};
use crate::contract::catalogue::{self, CpiKind};
use crate::cpi::inspect;
use crate::wasm::ComponentHost;

#[derive(Debug, Clone, Serialize)]
pub struct StaticReport {
    pub file: PathBuf,
    pub cpi: Option<String>,
    pub results: Vec<CheckResult>,
}

impl StaticReport {
    pub fn conformant(&self) -> bool {
        !self.results.iter().any(|r| r.level == Level::Must && matches!(r.verdict, Verdict::Failed(_)))
    }
}

const LOADS: (&str, Level, &str) = (
    "S-LOAD-01",
    Level::Must,
    "the CPI loads: valid keys and types, declared placeholders and programs, a known world and version",
);
const ACTIONS: (&str, Level, &str) = (
    "S-ACTIONS-01",
    Level::Must,
    "every required action of its kind is implemented or declared unsupported with a reason",
);
const PARAMS: (&str, Level, &str) = (
    "S-PARAMS-01",
    Level::Should,
    "every declared parameter is used, or documented (a description) as accepted and ignored",
);
const REQUIREMENTS: (&str, Level, &str) = (
    "S-REQS-01",
    Level::Should,
    "requirements are stated: the programs it runs and their versions (capabilities, for components)",
);

fn result(check: (&'static str, Level, &'static str), problems: Vec<String>, started: Instant) -> CheckResult {
    let verdict = if problems.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(Failure { expected: check.2.to_string(), got: problems.join("; "), call: None })
    };
    CheckResult { id: check.0, level: check.1, statement: check.2, verdict, duration: started.elapsed() }
}

fn missing_actions(kind: CpiKind, present: impl Fn(&str) -> bool) -> Vec<String> {
    catalogue::required_actions(kind).filter(|a| !present(a)).map(|a| format!("`{a}` is missing")).collect()
}

/// Checks one spec file or component.
pub async fn check_file(host: &ComponentHost, file: &Path) -> StaticReport {
    let started = Instant::now();
    let file_buf = file.to_path_buf();
    match inspect(host, file).await {
        Err(problems) => StaticReport { file: file_buf, cpi: None, results: vec![result(LOADS, problems, started)] },
        Ok(cpi) => {
            let loads = result(LOADS, vec![], started);
            let actions = result(ACTIONS, missing_actions(cpi.kind, |a| cpi.supports(a)), started);
            let params = result(PARAMS, cpi.undocumented, started);
            let requirements = result(REQUIREMENTS, cpi.unstated_requirements, started);
            StaticReport { file: file_buf, cpi: Some(cpi.name), results: vec![loads, actions, params, requirements] }
        }
    }
}
