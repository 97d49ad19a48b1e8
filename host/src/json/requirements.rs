//! `validate --check-requirements`: are the spec's programs installed, in versions it accepts?

use std::time::Duration;

use serde::Serialize;
use serde_json::Map;

use crate::json::template::{Binding, Bindings};
use crate::json::{GatedProcess, JsonCpi};
use crate::process::exec;

/// How long a version command may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequirementCheck {
    /// `command podman` or `version podman >=4.0.0`.
    pub requirement: String,
    pub satisfied: bool,
    /// Where the command was found, the version seen, or why it failed.
    pub detail: String,
}

/// Checks every required command and version requirement of a JSON CPI.
pub async fn check(cpi: &JsonCpi) -> Vec<RequirementCheck> {
    let spec = cpi.spec();
    let path = cpi.env().iter().find(|(k, _)| k == "PATH").map_or("", |(_, v)| v.as_str());
    let mut checks = Vec::new();
    for command in &spec.validation.required_commands {
        let found = exec::resolve_program(command, path).filter(|p| p.is_file());
        checks.push(RequirementCheck {
            requirement: format!("command {command}"),
            satisfied: found.is_some(),
            detail: match found {
                Some(p) => format!("found at {}", p.display()),
                None => format!("not found on PATH ({path})"),
            },
        });
    }
    for requirement in &spec.validation.version_requirements {
        let label = format!("version {} {}", requirement.tool, requirement.range);
        let defaults = Defaults(&spec.default_settings);
        let outcome = match requirement.command.render(&defaults) {
            Err(e) => Err(e.to_string()),
            Ok(argv) => {
                // Through the CPI's gate: a version command is a process like any other, allowed
                // only by the policy's grants and written to the audit log.
                let step = format!("version {}", requirement.tool);
                let process = GatedProcess {
                    action: "validate",
                    step: &step,
                    argv: &argv,
                    shown_argv: &argv,
                    timeout: VERSION_TIMEOUT,
                    detach: false,
                    stdin: None,
                    kill_grace: exec::DEFAULT_KILL_GRACE,
                    output_limit: 64 * 1024,
                };
                match cpi.run_gated(&process).await {
                    Err(e) => Err(format!("{}: {}", e.kind, e.message)),
                    Ok(out) => {
                        let text = format!("{}\n{}", out.stdout.text(), out.stderr.text());
                        match extract_version(&text) {
                            Some(version) => Ok(version),
                            None => {
                                Err(format!("no version number in the output of `{}`", requirement.command.source()))
                            }
                        }
                    }
                }
            }
        };
        checks.push(match outcome {
            Ok(version) => RequirementCheck {
                requirement: label,
                satisfied: requirement.range.matches(&version),
                detail: format!("found {version}"),
            },
            Err(detail) => RequirementCheck { requirement: label, satisfied: false, detail },
        });
    }
    checks
}

/// The first `X.Y[.Z]` in a version banner (`podman version 4.3.1`, `5.0.2`, `Docker version 28.2.2, build e6534b4`).
pub fn extract_version(text: &str) -> Option<semver::Version> {
    let re = regex::Regex::new(r"(\d+)\.(\d+)(?:\.(\d+))?").ok()?;
    let caps = re.captures(text)?;
    let part = |i: usize| caps.get(i).map_or(Some(0), |m| m.as_str().parse::<u64>().ok());
    Some(semver::Version::new(part(1)?, part(2)?, part(3)?))
}

struct Defaults<'a>(&'a Map<String, serde_json::Value>);

impl Bindings for Defaults<'_> {
    fn get(&self, name: &str) -> Option<Binding<'_>> {
        self.0.get(name).map(|value| Binding { value, allow_dash: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::spec;

    #[test]
    fn extracts_versions_from_banners() {
        assert_eq!(extract_version("podman version 4.3.1"), Some(semver::Version::new(4, 3, 1)));
        assert_eq!(extract_version("Docker version 28.2, build e6534b4"), Some(semver::Version::new(28, 2, 0)));
        assert_eq!(extract_version("no digits"), None);
    }

    #[tokio::test]
    async fn checks_commands_and_version_ranges() {
        let spec = spec::load_str(
            "t.json",
            r#"{"name": "t", "type": "container", "actions": {},
                "validation": {"required_commands": ["sh", "echo", "no-such-program-xyz"],
                  "version_requirements": {
                    "new": {"range": ">=4.0.0", "command": "echo tool version 4.2.0"},
                    "old": {"range": ">=9.0.0", "command": "echo tool version 4.2.0"}}}}"#
                .into(),
        )
        .expect("loads");
        let checks = check(&JsonCpi::unrestricted(spec)).await;
        let summary: Vec<(&str, bool)> = checks.iter().map(|c| (c.requirement.as_str(), c.satisfied)).collect();
        assert_eq!(
            summary,
            [
                ("command sh", true),
                ("command echo", true),
                ("command no-such-program-xyz", false),
                ("version new >=4.0.0", true),
                ("version old >=9.0.0", false)
            ]
        );
        assert_eq!(checks[4].detail, "found 4.2.0");
    }
}
