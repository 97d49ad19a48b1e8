//! Golden files: the exact text of spec errors, and the exact dry-run plans of the shipped specs.
//! Run with `UPDATE_GOLDEN=1` to rewrite them after a deliberate change, then review the diff.

use crate::support;

use std::fs;
use std::path::Path;

use omni_cpi::diagnostic::Diagnostics;
use omni_cpi::json::spec::{self, ActionBody};
use omni_cpi::{CallOptions, JsonCpi, Params};
use serde_json::json;

fn check_golden(golden: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(golden, actual).expect("write golden file");
        return;
    }
    let expected = fs::read_to_string(golden)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", golden.display()));
    assert!(
        expected == actual,
        "{} differs from the actual output (UPDATE_GOLDEN=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}",
        golden.display()
    );
}

/// Everything `validate` would say about a spec: load errors, or warnings and missing actions.
fn validation_text(display_name: &str, text: String) -> String {
    match spec::load_str(display_name, text) {
        Err(diagnostics) => diagnostics.to_string(),
        Ok(loaded) => {
            let mut all = loaded.warnings.clone();
            all.extend(spec::check_required_actions(&loaded));
            Diagnostics(all).to_string()
        }
    }
}

#[test]
fn spec_errors_match_golden_files() {
    let dir = support::repo_root().join("tests/golden/spec-errors");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).expect("fixture");
        let actual = validation_text(&format!("spec-errors/{name}"), text);
        assert!(!actual.is_empty(), "{name} is a bad spec but produced no diagnostics");
        check_golden(&path.with_extension("txt"), &actual);
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} golden spec-error files found");
}

/// One parameter set that covers every shipped spec's actions, with per-CPI values where a
/// runtime names things differently (LXC templates, VirtualBox disk names).
fn standard_params(cpi: &str) -> Params {
    let mut params = object(json!({
        "name": "omni-c1",
        "image": "localhost/busybox:latest",
        "command": ["sh", "-c", "echo hello; exec sleep 3600"],
        "cmd": ["sh", "-c", "echo out; exit 3"],
        "env": {"GREETING": "hi there", "MODE": "test"},
        "ports": ["8080:80"],
        "volumes": ["omni-v1:/data"],
        "volume": "omni-v1",
        "mount_point": "data",
        "network": "omni-n1",
        "container": "omni-c1",
        "stop_timeout": 0,
        "vm": "omni-vm1",
        "vm_name": "omni-vm1",
        "os_type": "Linux_64",
        "cpus": 2,
        "memory_mb": 1024,
        "disk": "/var/lib/omni/disks/omni-d1.vdi",
        "disk_path": "/var/lib/omni/disks/omni-d1.vdi",
        "size_mb": 2048,
        "key": "role",
        "value": "worker",
        "snapshot": "omni-s1",
        "snapshot_name": "omni-s1",
        "controller": "SATA",
        "port": 1,
        "target": "/data"
    }));
    let overrides = match cpi {
        "lxc" => json!({"image": "busybox", "volumes": ["omni-v1:/data"]}),
        "process" => json!({"image": "none"}),
        "qemu" => json!({"image": "empty", "disk": "omni-d1", "metadata": {"role": "worker"}}),
        "aws-ec2" => json!({"image": "ami-760aaa0f", "disk": "omni-d1", "metadata": {"role": "worker"}}),
        "vsphere" => json!({"image": "ubuntu-template", "disk": "omni-d1", "metadata": {"role": "worker"}}),
        "baremetal" => json!({"image": "pxe", "machine": "node1", "boot_mode": "uefi", "metadata": {"role": "worker"}}),
        "virtualbox" => json!({
            "image": "debian-12-base",
            "disk": "omni-d1",
            "metadata": {"role": "worker", "zone": "a"}
        }),
        _ => json!({}),
    };
    params.extend(object(overrides));
    params
}

fn object(value: serde_json::Value) -> Params {
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

#[test]
fn shipped_spec_plans_match_golden_files() {
    let root = support::repo_root();
    let mut names: Vec<String> = std::fs::read_dir(root.join("cpis"))
        .expect("cpis/")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 7, "only {} shipped specs found", names.len());
    for name in &names {
        let name = name.as_str();
        let cpi = JsonCpi::unrestricted(
            spec::load_file(&root.join(format!("cpis/{name}.json"))).expect("shipped spec loads"),
        )
        .with_host_env(|var| (var == "PATH").then(|| "/usr/bin:/bin".to_string()));
        let mut text = String::new();
        for action in &cpi.spec().actions {
            text.push_str(&format!("## {}\n", action.name));
            if let ActionBody::Unsupported { reason } = &action.body {
                text.push_str(&format!("unsupported: {reason}\n"));
                continue;
            }
            match cpi.plan(&action.name, &standard_params(name), &CallOptions::default()) {
                Ok(plan) => {
                    for step in plan.steps() {
                        let ignore = if step.ignore_failure() { " (failure ignored)" } else { "" };
                        text.push_str(&format!("[{}]{ignore} {:?}\n", step.name(), step.argv()));
                    }
                }
                Err(e) => text.push_str(&format!("error[{}]: {}\n", e.kind, e.message)),
            }
        }
        check_golden(&root.join(format!("tests/golden/plans/{name}.txt")), &text);
    }
}
