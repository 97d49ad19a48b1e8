//! The `omni-cpi` binary: exit statuses, machine output, and the documents it publishes.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn omni(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
        .args(args)
        .current_dir(support::repo_root())
        .env_remove("OMNI_CPI_DIR")
        .output()
        .expect("omni-cpi runs")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SHIPPED: [&str; 9] =
    ["aws-ec2", "baremetal", "docker", "lxc", "podman", "process", "qemu", "virtualbox", "vsphere"];

#[test]
fn every_shipped_spec_validates_without_warnings() {
    let out = omni(&["validate", "--output", "json", "cpis"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let reports = json_of(&out);
    let files: BTreeSet<String> = reports
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            assert_eq!(r["valid"], true, "{r}");
            assert_eq!(r["diagnostics"], Value::Array(vec![]), "{r}");
            Path::new(r["file"].as_str().expect("file")).file_stem().expect("stem").to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(files, SHIPPED.iter().map(|s| s.to_string()).collect());
}

#[test]
fn validate_fails_with_status_1_and_located_errors() {
    let out = omni(&["validate", "tests/golden/spec-errors/unknown-key.json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unknown-key.json:6:26: unknown key `comand`"), "{text}");
    assert!(text.contains("did you mean `command`?"), "{text}");
}

#[test]
fn call_reports_load_errors_with_status_2() {
    let out = omni(&["call", "tests/golden/spec-errors/duplicate-action.json", "start_container", "name=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("duplicate action `start_container`"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(omni(&["call"]).status.code(), Some(2), "missing arguments");
    assert_eq!(omni(&["call", "no-such-cpi", "logs"]).status.code(), Some(2), "unknown CPI");
    let out = omni(&["call", "podman", "start_container", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "missing parameter");
    assert!(stderr(&out).contains("missing required parameter `name`"), "{}", stderr(&out));
    let out = omni(&["call", "podman", "start_containr", "name=x", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("did you mean `start_container`?"), "{}", stderr(&out));
}

#[test]
fn non_utf8_parameter_is_a_usage_error_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
        .args(["call", "podman", "start_container", "--dry-run"])
        .arg(std::ffi::OsStr::from_bytes(b"name=\xff\xfe"))
        .current_dir(support::repo_root())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("parameter `name` is not valid UTF-8"), "{}", stderr(&out));
}

#[test]
fn dry_run_prints_the_full_plan_as_json() {
    let out =
        omni(&["-o", "json", "call", "podman", "create_container", "name=web; rm -rf /", "image=busybox", "--dry-run"]);
    // The pattern on `name` refuses the value before anything could run.
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out)["error"]["kind"], "invalid_argument");

    let out = omni(&["-o", "json", "call", "podman", "logs", "name=web; rm -rf /", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["steps"][0]["argv"], serde_json::json!(["podman", "logs", "web; rm -rf /"]));

    let out = omni(&[
        "-o",
        "json",
        "call",
        "podman",
        "delete_container",
        "name=web",
        "stop_timeout=0",
        "extra=1",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = json_of(&out);
    assert_eq!(plan["steps"][0]["argv"], serde_json::json!(["podman", "stop", "-t", "0", "web"]));
    assert_eq!(plan["steps"][0]["ignore_failure"], true);
    assert_eq!(plan["steps"][1]["argv"], serde_json::json!(["podman", "rm", "web"]));
    assert_eq!(plan["ignored_params"], serde_json::json!(["extra"]));
}

#[test]
fn call_runs_the_action_and_reports_typed_failures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("probe.json");
    std::fs::write(
        &spec,
        r#"{"name": "probe", "type": "container", "validation": {"required_commands": ["sh"]},
            "actions": {
              "inspect_container": {"command": "sh -c 'echo \"no such container: $1\" >&2; exit 1' sh {name}", "params": ["name"],
                 "errors": [{"kind": "not_found", "stderr": "no such container"}]},
              "list_containers": {"command": "sh -c 'echo a; echo b'", "output": "lines"}}}"#,
    )
    .expect("write spec");
    let spec = spec.to_str().expect("utf-8 path");

    let out = omni(&["call", spec, "list_containers"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[\n  \"a\",\n  \"b\"\n]\n");

    let out = omni(&["-o", "json", "call", spec, "inspect_container", "name=c1"]);
    assert_eq!(out.status.code(), Some(1));
    let error = &json_of(&out)["error"];
    assert_eq!(error["kind"], "not_found");
    assert_eq!(error["failed_step"]["exit_code"], 1);
    assert_eq!(error["failed_step"]["argv"][4], "c1");

    let out = omni(&["call", spec, "inspect_container", "name=c1"]);
    assert!(stderr(&out).starts_with("error[not_found]: inspect_container:"), "{}", stderr(&out));
}

#[test]
fn info_and_list_describe_the_shipped_specs() {
    let out = omni(&["-o", "json", "info", "podman"]);
    assert_eq!(out.status.code(), Some(0));
    let info = json_of(&out);
    assert_eq!(info["name"], "podman_cpi");
    assert_eq!(info["environment"], serde_json::json!(["PATH"]));
    let out = omni(&["-o", "json", "list"]);
    assert_eq!(json_of(&out).as_array().map(Vec::len), Some(SHIPPED.len()));
}

/// The schema, the loader and the reference must describe the same keys.
#[test]
fn schema_reference_and_loader_agree_on_every_key() {
    let out = omni(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema = json_of(&out);
    let props = |pointer: &str| -> BTreeSet<String> {
        schema.pointer(pointer).and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default()
    };
    let loader = |object: &str| -> BTreeSet<String> {
        omni_cpi::json::spec::KEYS_BY_OBJECT
            .iter()
            .find(|(name, _)| *name == object)
            .map(|(_, keys)| keys.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(props("/properties"), loader("spec"));
    assert_eq!(props("/$defs/action/properties"), loader("action"));
    assert_eq!(props("/$defs/hook_command/oneOf/1/properties"), loader("hook"));
    assert_eq!(props("/$defs/param/oneOf/1/properties"), loader("param"));
    assert_eq!(props("/$defs/output/oneOf/1/properties"), loader("output"));
    assert_eq!(props("/$defs/error_rules/items/properties"), loader("error_rule"));
    assert_eq!(props("/$defs/action/properties/success_when/items/properties"), loader("condition"));
    assert_eq!(props("/properties/validation/properties"), loader("validation"));
    assert_eq!(props("/properties/env/properties"), loader("env"));
    assert_eq!(props("/properties/conformance/properties"), loader("conformance"));
    // Editors complete action names from the catalogue.
    let actions = props("/properties/actions/properties");
    for kind in omni_cpi::contract::catalogue::CpiKind::ALL {
        for name in omni_cpi::contract::catalogue::known_actions(kind) {
            assert!(actions.contains(name), "the schema lacks the standard action `{name}`");
        }
    }
    assert!(actions.contains("create_worker"), "and the aliases");
    assert_eq!(props("/$defs/request/properties"), loader("request"));

    let reference = std::fs::read_to_string(support::repo_root().join("cpis/REFERENCE.md")).expect("reference");
    for (object, keys) in omni_cpi::json::spec::KEYS_BY_OBJECT {
        for key in *keys {
            assert!(reference.contains(&format!("`{key}`")), "cpis/REFERENCE.md does not document `{key}` ({object})");
        }
    }
}

#[test]
fn check_requirements_reports_missing_programs_with_status_1() {
    let out = omni(&["validate", "--check-requirements", "cpis/process.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("needs.json");
    std::fs::write(
        &spec,
        r#"{"name": "needs", "type": "director", "actions": {},
            "validation": {"required_commands": ["sh", "omni-no-such-tool"],
              "version_requirements": {"sh": {"range": ">=999.0.0", "command": "sh -c 'echo sh 1.2.3'"}}}}"#,
    )
    .expect("write spec");
    let out = omni(&["-o", "json", "validate", "--check-requirements", spec.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let report = &json_of(&out)[0];
    let checks: Vec<(String, bool)> = report["requirements"]
        .as_array()
        .expect("requirements")
        .iter()
        .map(|c| (c["requirement"].as_str().unwrap_or_default().to_string(), c["satisfied"] == true))
        .collect();
    assert_eq!(
        checks,
        [
            ("command sh".to_string(), true),
            ("command omni-no-such-tool".to_string(), false),
            ("version sh >=999.0.0".to_string(), false)
        ]
    );
}

/// Like any Unix filter, a closed stdout (`omni-cpi ... | head -c0`) ends the run quietly, with the
/// status a SIGPIPE death has, not with a panic.
#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("slow.json");
    std::fs::write(
        &spec,
        r#"{"name": "slow", "type": "container", "validation": {"required_commands": ["sh"]},
            "actions": {"logs": {"command": "sh -c 'sleep 0.3; echo late'"}}}"#,
    )
    .expect("spec");
    let mut child = Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
        .args(["call", spec.to_str().expect("utf-8"), "logs"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("omni-cpi runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(141), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------------------------
// The policy model end to end: what an entry binds, deny by default, environment, audit, secrets.
// ---------------------------------------------------------------------------------------------

/// A directory with a spec `probe.json` and a policy `policy.toml` (binding it as entry `probe`
/// with `grants`, auditing to `audit.jsonl`).
struct PolicyCase {
    dir: tempfile::TempDir,
}

const PROBE_SPEC: &str = r#"{
  "name": "probe",
  "type": "container",
  "validation": {
    "required_commands": ["touch", "ls", "echo", "tee"],
    "version_requirements": {"echo": {"range": ">=4.0.0", "command": "echo tool version 4.2.0"}}
  },
  "actions": {
    "create_container": {"command": "touch {dir}/{token}",
      "params": ["dir", {"name": "token", "secret": true}]},
    "start_container": {"command": "ls {dir}/missing-{token}",
      "params": ["dir", {"name": "token", "secret": true}]},
    "logs": {"command": "ls {name}", "params": [{"name": "name", "allow_dash": true}], "output": "text"},
    "inspect_container": {"command": "tee {dir}/received", "stdin": "{token}\n",
      "params": ["dir", {"name": "token", "secret": true}], "output": "text"}
  }
}"#;

impl PolicyCase {
    fn new(grants: &str) -> PolicyCase {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("probe.json"), PROBE_SPEC).expect("spec");
        std::fs::write(
            dir.path().join("policy.toml"),
            format!("audit_log = \"audit.jsonl\"\n[plugins.probe]\nsource = \"probe.json\"\n{grants}"),
        )
        .expect("policy");
        PolicyCase { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn omni(&self, args: &[&str]) -> Output {
        let policy = self.path("policy.toml");
        let mut all = vec!["--policy", policy.as_str()];
        all.extend_from_slice(args);
        omni(&all)
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default()
    }
}

#[test]
fn a_renamed_copy_of_a_bound_spec_gets_nothing_and_the_error_says_how_to_bind_it() {
    let case = PolicyCase::new("[[plugins.probe.exec]]\nprogram = \"ls\"\nargs = [\"**\"]\n");
    // The same spec under another file name (its "name" still says probe): no grants follow it.
    std::fs::copy(case.dir.path().join("probe.json"), case.dir.path().join("renamed.json")).expect("copy");
    let out = case.omni(&["call", &case.path("renamed.json"), "logs", "name=x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("is not bound by the policy"), "{text}");
    assert!(text.contains("resembles entry `probe`"), "{text}");
    assert!(text.contains("[plugins.renamed]\nsource = "), "{text}");
    assert!(text.contains("sha256 = \""), "{text}");
    // The bound file, called by its entry's name, loads.
    let out = case.omni(&["call", "probe", "logs", "name=/"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn under_a_policy_a_spec_no_entry_binds_does_not_load_and_without_one_it_runs_unrestricted() {
    let case = PolicyCase::new("");
    let out = case.omni(&["call", "cpis/process.json", "list_containers"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not bound by the policy"), "{}", stderr(&out));

    let out = omni(&["info", "cpis/process.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unrestricted"), "info says plainly that a spec runs unrestricted:\n{text}");
}

#[test]
fn a_pinned_sha256_refuses_a_changed_spec() {
    let case = PolicyCase::new("sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n");
    let out = case.omni(&["call", "probe", "logs", "name=/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pins 0000"), "{}", stderr(&out));
}

#[test]
fn value_patterns_refuse_options_where_a_value_is_granted() {
    let case = PolicyCase::new("[[plugins.probe.exec]]\nprogram = \"ls\"\nargs = [\"<value>\"]\n");
    let out = case.omni(&["call", "probe", "logs", "name=/"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for option in ["--help", "-la"] {
        let out = case.omni(&["call", "probe", "logs", &format!("name={option}")]);
        assert_eq!(out.status.code(), Some(1), "{option}: {}", stderr(&out));
        assert!(stderr(&out).contains("error[denied]"), "{option}: {}", stderr(&out));
        // The denial names the gate that refused, what it grants, and the entry that would allow it.
        let said = stderr(&out);
        assert!(
            said.contains("not granted by the operator") && said.contains("only with the arguments [\"<value>\"]"),
            "{said}"
        );
        assert!(
            said.contains(&format!("[[plugins.probe.exec]] program = \"/usr/bin/ls\" args = [\"{option}\"]"))
                || said.contains(&format!("args = [\"{option}\"]")),
            "{said}"
        );
    }
    let audit = case.audit();
    assert_eq!(audit.lines().filter(|l| l.contains("\"denied\"")).count(), 2, "{audit}");
}

#[test]
fn hijacking_variables_are_refused_unless_granted_by_exact_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = |env: &str| {
        format!(
            r#"{{"name": "e", "type": "container", "validation": {{"required_commands": ["env"]}}, "env": {env},
                "actions": {{"logs": {{"command": "env", "output": "text"}}}}}}"#
        )
    };
    let write = |name: &str, env: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, spec(env)).expect("spec");
        path.display().to_string()
    };
    let preload = write("preload.json", r#"{"set": {"LD_PRELOAD": "/tmp/evil.so"}}"#);
    let out = omni(&["validate", &preload]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("preload.json:1:") && text.contains("`LD_PRELOAD`"), "{text}");
    let function = write("function.json", r#"{"set": {"BASH_FUNC_true%%": "() { id; }"}}"#);
    let text = String::from_utf8_lossy(&omni(&["validate", &function]).stdout).into_owned();
    assert!(text.contains("not a valid environment variable name"), "{text}");
    let inherit = write("inherit.json", r#"{"inherit": ["PYTHONSTARTUP"]}"#);
    assert_eq!(omni(&["validate", &inherit]).status.code(), Some(1));

    // Granted by exact name, it loads; other names must be granted too under a policy.
    let policy = dir.path().join("policy.toml");
    let grant = |env: &str| {
        std::fs::write(&policy, format!("[plugins.p]\nsource = \"preload.json\"\nenv = {env}\n")).expect("policy");
        omni(&["--policy", policy.to_str().expect("utf-8"), "call", &preload, "logs", "--dry-run"])
    };
    assert_eq!(grant("[\"LD_PRELOAD\"]").status.code(), Some(0));
    let out = grant("[]");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`LD_PRELOAD`") && stderr(&out).contains("preload.json:1:"), "{}", stderr(&out));

    // Under a policy an ordinary name must be granted too, by name.
    let inherit = write("docker.json", r#"{"inherit": ["DOCKER_HOST"]}"#);
    let bind = |env: &str| {
        std::fs::write(&policy, format!("[plugins.d]\nsource = \"docker.json\"\nenv = {env}\n")).expect("policy");
        omni(&["--policy", policy.to_str().expect("utf-8"), "call", &inherit, "logs", "--dry-run"])
    };
    let out = bind("[]");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`DOCKER_HOST`, which the policy entry `d` does not grant"), "{}", stderr(&out));
    assert_eq!(bind("[\"DOCKER_HOST\"]").status.code(), Some(0));
}

#[test]
fn version_commands_pass_the_gate_and_are_audited() {
    let case =
        PolicyCase::new("[[plugins.probe.exec]]\nprogram = \"echo\"\nargs = [\"tool\", \"version\", \"4.2.0\"]\n");
    // The probe lacks required actions, so validate fails; the requirement itself is what matters.
    let requirement = |out: &Output| {
        let report = json_of(out);
        let all = report[0]["requirements"].as_array().cloned().unwrap_or_default();
        all.into_iter()
            .find(|r| r["requirement"].as_str().is_some_and(|t| t.starts_with("version")))
            .unwrap_or_default()
    };
    let out = case.omni(&["-o", "json", "validate", "--check-requirements", &case.path("probe.json")]);
    assert_eq!(requirement(&out)["satisfied"], true, "{}", requirement(&out));
    let audit = case.audit();
    assert!(audit.contains("\"action\":\"validate\"") && audit.contains("\"allowed\""), "{audit}");

    let ungranted = PolicyCase::new("");
    let out = ungranted.omni(&["-o", "json", "validate", "--check-requirements", &ungranted.path("probe.json")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(requirement(&out)["satisfied"], false);
    assert!(requirement(&out)["detail"].as_str().is_some_and(|d| d.contains("denied")), "{}", requirement(&out));
    assert!(ungranted.audit().contains("\"denied\""), "{}", ungranted.audit());
}

#[test]
fn a_secret_reaches_the_program_but_no_plan_error_json_output_or_audit_line() {
    let case = PolicyCase::new(
        "[[plugins.probe.exec]]\nprogram = \"touch\"\nargs = [\"*\"]\n[[plugins.probe.exec]]\nprogram = \"ls\"\nargs = [\"*\"]\n\
         [[plugins.probe.exec]]\nprogram = \"tee\"\nargs = [\"*\"]\n",
    );
    let secret = "hunter2-Z9q";
    let work = tempfile::tempdir().expect("work dir");
    let dir = format!("dir={}", work.path().display());
    let token = format!("token={secret}");
    let mut seen = String::new();
    for args in [
        vec!["-o", "json", "call", "probe", "create_container", &dir, &token, "--dry-run"],
        vec!["call", "probe", "create_container", &dir, &token, "--dry-run"],
        vec!["-o", "json", "call", "probe", "create_container", &dir, &token],
        vec!["-o", "json", "call", "probe", "start_container", &dir, &token],
        vec!["call", "probe", "start_container", &dir, &token],
        // Through standard input: in no argv at all, and echoed back by tee (redacted too).
        vec!["-o", "json", "call", "probe", "inspect_container", &dir, &token, "--dry-run"],
        vec!["call", "probe", "inspect_container", &dir, &token, "--dry-run"],
        vec!["-o", "json", "call", "probe", "inspect_container", &dir, &token],
    ] {
        let out = case.omni(&args);
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&stderr(&out));
    }
    assert!(work.path().join(secret).exists(), "the program received the secret");
    let received = std::fs::read_to_string(work.path().join("received")).expect("tee wrote its stdin");
    assert_eq!(received, format!("{secret}\n"), "stdin carried the secret");
    assert!(seen.contains("\"stdin\": \"***\\n\""), "the plan shows stdin redacted: {seen}");
    assert!(seen.contains("***"), "{seen}");
    assert!(seen.contains("missing-***"), "the failing ls's error is shown, redacted: {seen}");
    assert!(!seen.contains(secret), "the secret leaked into the output:\n{seen}");
    let audit = case.audit();
    assert!(audit.contains("***") && !audit.contains(secret), "{audit}");
}

/// Processes whose command line contains `needle` (zombies excluded).
fn living(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            found.push(pid);
        }
    }
    found
}

const BOUNDARY_SPEC: &str = r#"{
  "name": "boundary", "type": "container",
  "validation": {"required_commands": ["sh"]},
  "actions": {
    "logs": {"command": "sh -c 'for fd in 0 1 2 57; do [ -e /proc/$$/fd/$fd ] && printf %s, $fd; done; true'",
      "output": "text"},
    "stop_container": {"timeout": "400ms",
      "command": "sh -c 'setsid sleep 313.1 & perl -e \"setpgrp(0,0); sleep 313.2\" & (setsid sleep 313.3 &); sleep 313.4'"}
  }
}"#;

#[test]
fn a_timed_out_call_leaves_no_descendant_even_one_that_left_the_group_or_session() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("boundary.json");
    std::fs::write(&spec, BOUNDARY_SPEC).expect("spec");
    let out = omni(&["call", spec.to_str().expect("utf-8"), "stop_container"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error[timeout]"), "{}", stderr(&out));
    for needle in ["sleep 313.1", "sleep 313.2", "sleep 313.3", "sleep 313.4"] {
        let mut left = living(needle);
        for _ in 0..50 {
            if left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            left = living(needle);
        }
        assert!(left.is_empty(), "`{needle}` ({left:?}) outlived the timed-out call");
    }
}

#[test]
fn a_process_the_cli_starts_gets_descriptors_0_1_2_only() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("boundary.json");
    std::fs::write(&spec, BOUNDARY_SPEC).expect("spec");
    let open = std::fs::File::open(&spec).expect("open");
    let fd = open.as_raw_fd();
    let mut command = Command::new(env!("CARGO_BIN_EXE_omni-cpi"));
    command.args(["call", spec.to_str().expect("utf-8"), "logs"]).current_dir(support::repo_root());
    // SAFETY: dup2 onto a fixed number in the child before exec: what a careless caller leaves open.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 57) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().expect("omni-cpi runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim().trim_matches('"'),
        "0,1,2,",
        "descriptor 57 reached the program"
    );
}

/// The seed's own form: parameters declared by bare name. Those the catalogue of standard actions
/// knows as lists or maps take that shape, so `--ports {ports}` repeats the flag per item and
/// `--env {env}` gives one `KEY=value` per entry; a string is refused where a list is meant.
#[test]
fn a_seed_format_spec_renders_bare_name_lists_and_maps_as_the_catalogue_says() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("seed.json");
    std::fs::write(
        &spec,
        r#"{"name": "seed_cpi", "type": "container", "validation": {"required_commands": ["echo"]},
            "actions": {
              "create_container": {"command": "echo create --name {name} --ports {ports} --env {env} {image}",
                                   "params": ["name", "image", "ports", "env"]},
              "stop_container": {"command": "echo stop -t {stop_timeout} {name}", "params": ["name", "stop_timeout"]},
              "exec": {"command": "echo attach -n {name} -- {cmd}", "params": ["name", "cmd"]}}}"#,
    )
    .expect("spec");
    let spec = spec.to_str().expect("utf-8");
    let plan = |args: &[&str]| {
        let mut all = vec!["-o", "json", "call", spec];
        all.extend_from_slice(args);
        all.push("--dry-run");
        omni(&all)
    };
    let out = plan(&[
        "create_container",
        "name=web",
        "image=busybox",
        r#"ports:=["8080:80","8443:443"]"#,
        r#"env:={"A":"1","B":"two words"}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        json_of(&out)["steps"][0]["argv"],
        serde_json::json!([
            "echo",
            "create",
            "--name",
            "web",
            "--ports",
            "8080:80",
            "--ports",
            "8443:443",
            "--env",
            "A=1",
            "--env",
            "B=two words",
            "busybox"
        ])
    );
    let out = plan(&["exec", "name=web", r#"cmd:=["ls","-la","/"]"#]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        json_of(&out)["steps"][0]["argv"],
        serde_json::json!(["echo", "attach", "-n", "web", "--", "ls", "-la", "/"])
    );
    let out = plan(&["create_container", "name=web", "image=busybox", "ports=8080:80"]);
    assert_eq!(out.status.code(), Some(2));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(said.contains("`ports` must be a list"), "{said}");
    // `stop_timeout` is an integer in the catalogue: decimal text from the command line is one.
    let out = plan(&["stop_container", "name=web", "stop_timeout=10"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["steps"][0]["argv"], serde_json::json!(["echo", "stop", "-t", "10", "web"]));
    let out = plan(&["stop_container", "name=web", "stop_timeout=soon"]);
    assert_eq!(out.status.code(), Some(2));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(said.contains("`stop_timeout` must be an integer"), "{said}");
}

/// REFERENCE.md's action tables are the catalogue's, as generated. `OMNI_CPI_BLESS=1 cargo test
/// --test it the_reference_action_tables` rewrites them after a change to the catalogue.
#[test]
fn the_reference_action_tables_are_generated_from_the_catalogue() {
    let path = support::repo_root().join("cpis/REFERENCE.md");
    let text = std::fs::read_to_string(&path).expect("reference");
    let begin = "<!-- catalogue:begin (generated from the catalogue; a test keeps it current) -->\n";
    let end = "<!-- catalogue:end -->";
    let start = text.find(begin).expect("REFERENCE.md has the catalogue:begin marker") + begin.len();
    let stop = text[start..].find(end).expect("REFERENCE.md has the catalogue:end marker") + start;
    let generated = omni_cpi::contract::catalogue::reference_tables();
    if text[start..stop] != generated {
        if std::env::var_os("OMNI_CPI_BLESS").is_some() {
            std::fs::write(&path, format!("{}{generated}{}", &text[..start], &text[stop..])).expect("write");
            return;
        }
        panic!("cpis/REFERENCE.md's action tables differ from the catalogue: run OMNI_CPI_BLESS=1 cargo test --test it the_reference_action_tables");
    }
}

/// plugins/README.md's table of parameter names is the catalogue's, row for row.
#[test]
fn the_plugin_guide_lists_the_catalogue_parameter_names() {
    use omni_cpi::contract::catalogue::{self, CpiKind};
    let guide = std::fs::read_to_string(support::repo_root().join("plugins/README.md")).expect("guide");
    let table = guide.split("## Parameter names").nth(1).expect("section").split("\n## ").next().expect("table");
    let mut listed = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let names =
            |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>() };
        let params = names(cells[2]);
        for action in names(cells[1]) {
            let kind = if catalogue::known_actions(CpiKind::Director).any(|a| a == action) {
                CpiKind::Director
            } else {
                CpiKind::Container
            };
            let standard: Vec<&str> = catalogue::standard_params(kind, &action).iter().map(|p| p.name).collect();
            assert_eq!(params, standard, "plugins/README.md row of `{action}`");
            listed.push(action);
        }
    }
    for kind in [CpiKind::Container, CpiKind::Director] {
        for action in catalogue::wit_actions(kind) {
            assert!(listed.iter().any(|a| a == action), "plugins/README.md does not list `{action}`");
        }
    }
}

/// `"detach": true` is the one way to let a process outlive a timeout: only the step's group is
/// killed, what it started in its own session survives, and the audit line says `detach`.
#[test]
fn a_detached_step_keeps_its_own_session_at_a_timeout_and_the_audit_log_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("detached.json"),
        r#"{"name": "detached", "type": "container", "validation": {"required_commands": ["sh"]},
            "actions": {"start_container": {"timeout": "400ms", "detach": true,
              "command": "sh -c 'setsid sleep 315.1 & sleep 315.2'"}}}"#,
    )
    .expect("spec");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "audit_log = \"audit.jsonl\"\n[plugins.detached]\nsource = \"detached.json\"\n\
         [[plugins.detached.exec]]\nprogram = \"sh\"\nargs = [\"**\"]\n",
    )
    .expect("policy");
    let policy = policy.to_str().expect("utf-8");
    let out = omni(&["--policy", policy, "-o", "json", "call", "detached", "start_container", "--dry-run"]);
    assert_eq!(json_of(&out)["steps"][0]["detach"], true, "the plan says so");
    let out = omni(&["--policy", policy, "call", "detached", "start_container"]);
    assert!(stderr(&out).contains("error[timeout]"), "{}", stderr(&out));
    let mut group_left = living("sleep 315.2");
    for _ in 0..50 {
        if group_left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        group_left = living("sleep 315.2");
    }
    let survivors = living("sleep 315.1");
    for pid in &survivors {
        // SAFETY: a plain signal to a process this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    assert!(group_left.is_empty(), "the group is killed: {group_left:?}");
    assert_eq!(survivors.len(), 1, "what the detached step started in its own session survives");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    assert!(audit.contains("\"detach\":true"), "{audit}");
}

/// `list` loads every file as `call` would, through the loader: under a policy a spec no entry
/// binds is listed as not loading, a bound one with its entry, and an entry's component outside
/// the directory is listed too, with its form.
#[test]
fn list_loads_through_the_loader_and_shows_each_binding() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tiny = |name: &str| {
        format!(
            r#"{{"name": "{name}", "type": "container", "validation": {{"required_commands": ["echo"]}},
                "actions": {{"logs": {{"command": "echo {{name}}", "params": ["name"]}}}}}}"#
        )
    };
    std::fs::write(dir.path().join("bound.json"), tiny("bound_cpi")).expect("spec");
    std::fs::write(dir.path().join("stray.json"), tiny("stray_cpi")).expect("spec");
    let mut policy = format!("[plugins.mine]\nsource = {:?}\n", dir.path().join("bound.json").display().to_string());
    let component = support::plugin_wasm("omni_cpi_testdirector");
    if let Some(wasm) = &component {
        std::fs::create_dir_all(dir.path().join("vms")).expect("vms");
        policy.push_str(&format!(
            "[plugins.td]\nsource = {:?}\n[[plugins.td.fs]]\nhost = \"vms\"\nguest = \"/vms\"\nmode = \"rw\"\n",
            wasm.display().to_string()
        ));
    }
    let policy_path = dir.path().join("omni-cpi.toml");
    std::fs::write(&policy_path, policy).expect("policy");
    let listed_dir = dir.path().to_str().expect("utf-8");
    let out = omni(&["-o", "json", "--policy", policy_path.to_str().expect("utf-8"), "list", listed_dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let items = json_of(&out);
    let item = |file: &str| -> Value {
        items
            .as_array()
            .and_then(|a| a.iter().find(|i| i["file"].as_str().is_some_and(|f| f.ends_with(file))).cloned())
            .unwrap_or_else(|| panic!("{file} is not listed: {items}"))
    };
    assert_eq!(item("bound.json")["entry"], "mine");
    assert_eq!(item("bound.json")["loads"], true);
    assert_eq!(item("stray.json")["loads"], false);
    assert_eq!(item("stray.json")["error"], "no policy entry binds it");
    if component.is_some() {
        let td = item("omni_cpi_testdirector.wasm");
        assert_eq!(
            (td["entry"].as_str(), td["form"].as_str(), td["kind"].as_str()),
            (Some("td"), Some("component"), Some("director"))
        );
    }
}

/// `omni-cpi new` writes a project that builds for wasm32-wasip2 as generated, passes
/// `conformance --static`, loads and answers under the policy it comes with, and passes the live
/// kit (which skips what it does not implement yet); for both kinds.
#[test]
fn a_new_plugin_project_builds_passes_static_conformance_and_loads_under_its_policy() {
    let wasm_target = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"));
    if wasm_target.ok() != Some(true) {
        assert!(!support::runtimes_required(), "the wasm32-wasip2 target is missing (cargo xtask test installs it)");
        eprintln!("SKIPPED: the wasm32-wasip2 target is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // One target directory for both projects: the second reuses the first's dependencies.
    let target = dir.path().join("target");
    for (kind, name, probe) in
        [("container", "demo_container", "list_containers"), ("director", "demo_director", "list_vms")]
    {
        let project = dir.path().join(name);
        let out = omni(&["new", kind, name, "--dir", project.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = omni(&["new", kind, name, "--dir", project.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(2), "an existing project is never overwritten");
        // `omni-cpi build`, as the project's README says (cargo offline: the SDK's dependencies
        // are in the local registry since the plugins were built).
        let built = Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .arg("build")
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true")
            .output()
            .expect("omni-cpi runs");
        assert!(built.status.success(), "{name} builds as generated:\n{}", String::from_utf8_lossy(&built.stderr));
        let printed = PathBuf::from(String::from_utf8_lossy(&built.stdout).trim());
        assert_eq!(printed, target.join(format!("wasm32-wasip2/release/{name}.wasm")), "the path cargo built");
        let wasm = project.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
        std::fs::create_dir_all(wasm.parent().expect("dir")).expect("dir");
        std::fs::copy(&printed, &wasm).expect("component");

        let out = omni(&["conformance", "--static", wasm.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        let policy = project.join("policy.toml");
        let out = Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .args(["-o", "json", "--policy", policy.to_str().expect("utf-8"), "call", name, probe])
            .current_dir(&project)
            .output()
            .expect("omni-cpi runs");
        assert_eq!(out.status.code(), Some(0), "{name} loads under its policy: {}", stderr(&out));
        assert_eq!(json_of(&out)["result"], serde_json::json!([]), "{name}: nothing yet");
        // The README's last command: the live kit runs what the plugin supports and skips the rest.
        let out = Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .args(["--policy", policy.to_str().expect("utf-8"), "conformance", name])
            .current_dir(&project)
            .output()
            .expect("omni-cpi runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: live conformance as generated: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
}

/// `omni-cpi new --lang python` writes a project that `omni-cpi build` turns into a component
/// (componentize-py with the Python kit), that passes `conformance --static`, is compiled once by
/// `omni-cpi compile` (the next compile finds it cached, and no call compiles again), loads and
/// answers under the policy it comes with, and passes the live kit as generated. (The director
/// template is run by the kit's own tests, plugins/sdk-py/tests, against the kit: compiling a
/// second 19 MB component here would only cost CI time.) A broken app fails the build and keeps
/// the last component.
#[test]
fn a_new_python_plugin_project_builds_compiles_once_and_passes_conformance() {
    guest_project_lifecycle(
        "python",
        "app.py",
        "def list_containers(self):",
        "def list_containers(self) oops:",
        "SyntaxError",
    );
}

/// The same for `--lang js` (esbuild and componentize-js with the JavaScript kit).
#[test]
fn a_new_javascript_plugin_project_builds_compiles_once_and_passes_conformance() {
    guest_project_lifecycle("js", "app.js", "listContainers() {", "listContainers() {{", "build.mjs");
}

fn guest_project_lifecycle(lang: &str, app: &str, line: &str, broken_line: &str, build_error: &str) {
    let project_dir = if lang == "js" { "plugins/docker-js" } else { "plugins/podman-py" };
    let tool = support::guest_build_tool(project_dir);
    if !tool.is_file() {
        assert!(!support::runtimes_required(), "{} is missing (cargo xtask test installs it)", tool.display());
        eprintln!("SKIPPED: {} is not installed", tool.display());
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let omni_in = |project: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .args(args)
            .current_dir(project)
            .env("OMNI_CPI_CACHE_DIR", &cache)
            .output()
            .expect("omni-cpi runs")
    };
    let new = |kind: &str, name: &str| {
        let project = dir.path().join(name);
        let out = omni(&["new", kind, name, "--lang", lang, "--dir", project.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = omni_in(&project, &["build"]);
        assert_eq!(out.status.code(), Some(0), "{name} builds as generated: {}", stderr(&out));
        let wasm = project.join(format!("{name}.wasm"));
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(printed, wasm.canonicalize().expect("built").display().to_string(), "stdout is only the path");
        (project, wasm)
    };
    let name = format!("{lang}_container");
    let (project, wasm) = new("container", &name);
    let out = omni_in(&project, &["--policy", "policy.toml", "compile", &name]);
    assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{name}: compiled into the cache"));
    assert!(stderr(&out).contains(&format!("compiled {name}.wasm")), "progress is shown: {}", stderr(&out));
    let out = omni_in(&project, &["--policy", "policy.toml", "compile"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{name}: already in the cache"));

    let out = omni_in(&project, &["conformance", "--static", wasm.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{name}: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let out = omni_in(&project, &["-o", "json", "--policy", "policy.toml", "call", &name, "list_containers"]);
    assert_eq!(out.status.code(), Some(0), "{name} loads under its policy: {}", stderr(&out));
    assert_eq!(json_of(&out)["result"], serde_json::json!([]));
    assert!(!stderr(&out).contains("compiling"), "a call after `compile` compiles nothing: {}", stderr(&out));
    let out = omni_in(&project, &["-o", "json", "--policy", "policy.toml", "call", &name, "start_container", "name=x"]);
    assert_eq!(out.status.code(), Some(2), "refused before the plugin runs: {}", stderr(&out));
    assert_eq!(json_of(&out)["error"]["kind"], "unsupported", "describe() declared what the app does not define");
    let out = omni_in(&project, &["--policy", "policy.toml", "conformance", &name]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: live conformance as generated: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );

    // A syntax error: the build fails with the tool's message; the last component stays.
    let built = std::fs::read(&wasm).expect("component");
    let app = project.join(app);
    let source = std::fs::read_to_string(&app).expect("app");
    assert!(source.contains(line), "the template has `{line}`");
    std::fs::write(&app, source.replace(line, broken_line)).expect("edit");
    let out = omni_in(&project, &["build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(build_error), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no path is printed for a failed build");
    assert_eq!(std::fs::read(&wasm).expect("kept"), built, "the last component is kept");
    let leftovers: Vec<_> = std::fs::read_dir(&project)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial component is left behind: {leftovers:?}");
}

/// The operator's `[plugins.NAME.settings]` override a spec's `default_settings` (the same table
/// gives a component its settings): only keys the spec declares, each of its default's type.
#[test]
fn policy_settings_override_a_specs_default_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("settled.json"),
        r#"{"name": "settled", "type": "container", "validation": {"required_commands": ["echo", "sh"]},
            "default_settings": {"greeting": "hello", "count": 2},
            "actions": {"logs": {"command": "echo {greeting} {count} {name}", "params": ["name"], "output": "text"},
                        "inspect_container": {"command": "sh -c 'echo {greeting}'", "output": "text"}}}"#,
    )
    .expect("spec");
    let run = |settings: &str| {
        std::fs::write(
            dir.path().join("policy.toml"),
            format!(
                "[plugins.settled]\nsource = \"settled.json\"\n{settings}\n[[plugins.settled.exec]]\nprogram = \"echo\"\nargs = [\"**\"]\n"
            ),
        )
        .expect("policy");
        let policy = dir.path().join("policy.toml");
        omni(&["--policy", policy.to_str().expect("utf-8"), "call", "settled", "logs", "name=x"])
    };
    let out = run("");
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(0), "\"hello 2 x\"\n"));
    let out = run("[plugins.settled.settings]\ngreeting = \"hi\"\ncount = 3");
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()),
        (Some(0), "\"hi 3 x\"\n"),
        "{}",
        stderr(&out)
    );
    let out = run("[plugins.settled.settings]\ngreting = \"hi\"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`greting`") && stderr(&out).contains("did you mean `greeting`"), "{}", stderr(&out));
    let out = run("[plugins.settled.settings]\ncount = \"many\"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give a value of that type"), "{}", stderr(&out));
    // The operator's value meets the author's rules: where the text is read again as code, only
    // safe characters (the default `hello` passes; this does not, and the spec does not load).
    let out = run("[plugins.settled.settings]\ngreeting = \"$(id)\"");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr(&out).contains("read again as code"), "{}", stderr(&out));
}
