//! Static conformance: what can be checked without a runtime, for JSON specs and components.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{CheckResult, Failure, Level, Verdict};
use crate::contract::catalogue;
use crate::cpi::is_wasm;
use crate::json::spec::{self, ActionBody, CpiKind};
use crate::wasm::{ComponentCpi, ComponentHost};

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
    if is_wasm(file) {
        return match ComponentCpi::describe_file(host, file).await {
            Err(e) => {
                StaticReport { file: file_buf, cpi: None, results: vec![result(LOADS, vec![e.to_string()], started)] }
            }
            Ok((_, description)) => {
                let loads = result(LOADS, vec![], started);
                let actions = result(
                    ACTIONS,
                    missing_actions(description.kind, |a| description.actions.iter().any(|d| d.name == a)),
                    started,
                );
                let undocumented: Vec<String> = description
                    .actions
                    .iter()
                    .filter(|a| a.unsupported.as_deref().is_some_and(|r| r.trim().is_empty()))
                    .map(|a| format!("`{}` is unsupported without a reason", a.name))
                    .collect();
                let params = result(PARAMS, undocumented, started);
                let requests = &description.requests;
                let stated = if requests.exec.is_empty() && requests.dirs.is_empty() {
                    vec!["describe() requests no capabilities: a CPI that runs nothing cannot manage a runtime"
                        .to_string()]
                } else {
                    vec![]
                };
                let requirements = result(REQUIREMENTS, stated, started);
                StaticReport {
                    file: file_buf,
                    cpi: Some(description.name),
                    results: vec![loads, actions, params, requirements],
                }
            }
        };
    }
    match spec::load_file(file) {
        Err(diagnostics) => {
            let problems = diagnostics.0.iter().filter(|d| d.is_error()).map(|d| d.message.clone()).collect();
            StaticReport { file: file_buf, cpi: None, results: vec![result(LOADS, problems, started)] }
        }
        Ok(loaded) => {
            let loads = result(LOADS, vec![], started);
            let actions = result(ACTIONS, missing_actions(loaded.kind, |a| loaded.action(a).is_some()), started);
            let unused: Vec<String> = loaded
                .warnings
                .iter()
                .filter(|w| w.message.contains("is declared but not used"))
                .map(|w| w.message.clone())
                .collect();
            let params = result(PARAMS, unused, started);
            let mut unstated = Vec::new();
            if loaded.validation.required_commands.is_empty() {
                unstated.push("validation.required_commands is empty".to_string());
            }
            let runs_commands = loaded.actions.iter().any(|a| matches!(a.body, ActionBody::Command(_)));
            if runs_commands && loaded.validation.version_requirements.is_empty() {
                unstated.push("validation.version_requirements names no version".to_string());
            }
            let requirements = result(REQUIREMENTS, unstated, started);
            StaticReport { file: file_buf, cpi: Some(loaded.name), results: vec![loads, actions, params, requirements] }
        }
    }
}
