//! The `omni-cpi` binary: exit statuses, machine output, and the documents it publishes.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
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
        omni_cpi::spec::KEYS_BY_OBJECT
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
    assert_eq!(props("/$defs/request/properties"), loader("request"));

    let reference = std::fs::read_to_string(support::repo_root().join("cpis/REFERENCE.md")).expect("reference");
    for (object, keys) in omni_cpi::spec::KEYS_BY_OBJECT {
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
