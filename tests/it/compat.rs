//! `--compat omnicloud`: the CPI files the OmniCloud project shipped (../shared/compat/omnicloud)
//! load through an explicit translation, never silently, and their injectable quoting is replaced
//! by the host's.

use crate::support;

use std::path::PathBuf;

use omni_cpi::json::spec::{self, compat::Compat};
use omni_cpi::{CallOptions, JsonCpi, Params};
use serde_json::{json, Value};

fn corpus() -> Option<PathBuf> {
    let dir = support::repo_root().parent().map(|p| p.join("shared/compat/omnicloud"))?;
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(!support::runtimes_required(), "{} is missing (CI runs with shared/ beside the clone)", dir.display());
    eprintln!("SKIPPED: the OmniCloud corpus is not at {}", dir.display());
    None
}

#[test]
fn every_file_of_the_corpus_loads_in_compat_mode_with_located_warnings() {
    let Some(dir) = corpus() else { return };
    let mut loaded = 0;
    let mut warning_texts = Vec::new();
    for sub in ["v0", "v2"] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir.join(sub)).expect("corpus dir").flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let spec = spec::load_file_compat(&file, Compat::OmniCloud)
                .unwrap_or_else(|e| panic!("{} does not load in compat mode:\n{e}", file.display()));
            assert!(!spec.actions.is_empty(), "{}", file.display());
            for w in &spec.warnings {
                let at = w.location.as_ref().expect("every compat warning has a location");
                let translated = at.file.to_string_lossy().ends_with("(translated by --compat omnicloud)");
                assert!(at.file == file || translated, "warnings point at the original file (or name the translation)");
                warning_texts.push(w.message.clone());
            }
            loaded += 1;
        }
    }
    assert_eq!(loaded, 56, "the corpus has 26 v0 and 30 v2 files");
    let count = |needle: &str| warning_texts.iter().filter(|w| w.contains(needle)).count();
    assert!(count("without declaring them in `params`") > 0, "undeclared placeholders are reported");
    assert!(count("inferred pattern") > 0, "values read again get the inferred pattern, located");
    assert_eq!(count("summary: "), 56, "one summary line per file");
    assert!(count("sends HTTP requests") > 0, "endpoint actions are reported, with the grant they need");
    assert!(count("is not applied") > 0, "output rules are reported");
}

#[test]
fn native_loading_of_an_omnicloud_file_is_refused_with_errors() {
    let Some(dir) = corpus() else { return };
    assert!(spec::load_file(&dir.join("v2/cpi-qemu.json")).is_err(), "never silently: the native loader refuses it");
}

#[tokio::test]
async fn quoted_placeholders_become_references_and_stay_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cpi-echo.json");
    // The original engine substituted these by plain text replacement into a shell command.
    std::fs::write(
        &file,
        r#"{"name": "echo_cpi", "type": "virt", "actions": {
             "create_vm": {"command": "printf '%s|%s|%s\\n' \"vm-{name}\" '{tag}' {plain} | cat", "params": ["name", "tag"]},
             "describe_vm": {"command": "printf '%s\\n' \"vm {name} ok\"", "params": ["name"]}}}"#,
    )
    .expect("write");
    let loaded = spec::load_file_compat(&file, Compat::OmniCloud).expect("loads");
    assert!(loaded.warnings.iter().any(|w| w.message.contains("{plain}")));
    let cpi = JsonCpi::unrestricted(loaded);
    let hostile = "a'; touch /tmp/omni-compat-pwned; echo '$(id)\"";
    let params = |v: Value| -> Params {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    };
    let out = cpi
        .call(
            "create_vm",
            &params(json!({"name": hostile, "tag": "$(reboot)", "plain": "`id`"})),
            &CallOptions::default(),
        )
        .await
        .expect("runs");
    assert_eq!(out.stdout, format!("vm-{hostile}|$(reboot)|`id`\n"));
    assert!(!std::path::Path::new("/tmp/omni-compat-pwned").exists());
    // Text with spaces around a value is a small language of its own: the inferred pattern holds.
    let err = cpi.call("describe_vm", &params(json!({"name": hostile})), &CallOptions::default()).await;
    assert!(err.is_err(), "{err:?}");
    let ok = cpi.call("describe_vm", &params(json!({"name": "web-1"})), &CallOptions::default()).await.expect("runs");
    assert_eq!(ok.stdout, "vm web-1 ok\n");
}

#[test]
fn the_cli_names_the_compat_mode() {
    let Some(dir) = corpus() else { return };
    let file = dir.join("v0/cpi-vb.json");
    let omni = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_omni-cpi")).args(args).output().expect("omni-cpi runs")
    };
    let native = omni(&["info", file.to_str().expect("utf-8")]);
    assert_eq!(native.status.code(), Some(2), "without --compat the file does not load");
    let compat = omni(&["--compat", "omnicloud", "info", file.to_str().expect("utf-8")]);
    assert_eq!(compat.status.code(), Some(0), "{}", String::from_utf8_lossy(&compat.stderr));
    let out = omni(&["--compat", "omnicloud", "validate", file.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("warning: ") && text.contains("cpi-vb.json:"), "{text}");
}

/// OmniCloud's own v2 QEMU CPI, its `parse_rules` applied to real `qemu-img` output.
#[tokio::test]
async fn parse_rules_structure_real_qemu_img_output() {
    let Some(dir) = corpus() else { return };
    if !support::runtime_available("qemu-img", &["qemu-img", "--version"]) {
        return;
    }
    let cpi =
        JsonCpi::unrestricted(spec::load_file_compat(&dir.join("v2/cpi-qemu.json"), Compat::OmniCloud).expect("loads"));
    let images = tempfile::tempdir().expect("image dir");
    let base = json!({"image_dir": images.path(), "disk_name": "d1", "disk_format": "qcow2"});
    let call = |action: &'static str, extra: Value| {
        let mut params = base.as_object().cloned().unwrap_or_default();
        params.extend(extra.as_object().cloned().unwrap_or_default());
        let cpi = cpi.clone();
        async move { cpi.call(action, &params, &CallOptions::default()).await.unwrap_or_else(|e| panic!("{action}: {e:?}")) }
    };
    let version = call("test_install", json!({})).await;
    assert!(version
        .result
        .as_ref()
        .and_then(|r| r["version"].as_str())
        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())));
    assert_eq!(call("create_volume", json!({"disk_size_gb": 1})).await.result, Some(json!({"success": true})));
    let info = call("get_volume_info", json!({})).await.result.expect("structured info");
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual_size"], "1");
    assert!(info["filename"].as_str().is_some_and(|f| f.ends_with("d1.qcow2")));
    call("create_snapshot", json!({"snapshot_name": "first"})).await;
    call("create_snapshot", json!({"snapshot_name": "second"})).await;
    let snapshots = call("list_snapshots", json!({})).await.result.expect("structured list");
    let tags: Vec<&str> = snapshots.as_array().expect("array").iter().filter_map(|s| s["tag"].as_str()).collect();
    assert_eq!(tags, ["first", "second"], "{snapshots}");
    assert_eq!(snapshots[0]["id"], "1");
}

/// `omni-cpi convert` writes a native spec that loads without --compat and keeps the actions.
#[test]
fn convert_writes_a_native_spec() {
    let Some(dir) = corpus() else { return };
    let out_dir = tempfile::tempdir().expect("temp dir");
    for original in ["v0/cpi-vb.json", "v2/cpi-qemu.json", "v2/cpi-truenas.json"] {
        let out = out_dir.path().join(original.replace('/', "-"));
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .args(["convert", dir.join(original).to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")])
            .output()
            .expect("omni-cpi runs");
        assert_eq!(run.status.code(), Some(0), "{original}: {}", String::from_utf8_lossy(&run.stderr));
        assert!(String::from_utf8_lossy(&run.stderr).contains("warning: "), "differences are reported");
        let native =
            spec::load_file(&out).unwrap_or_else(|e| panic!("{original} converted does not load natively:\n{e}"));
        let compat = spec::load_file_compat(&dir.join(original), Compat::OmniCloud).expect("compat loads");
        let names = |s: &spec::Spec| s.actions.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&native), names(&compat), "{original}");
        if original == "v2/cpi-truenas.json" {
            let requests = native.actions.iter().filter(|a| matches!(a.body, spec::ActionBody::Request(_))).count();
            assert!(requests >= 30, "its Endpoint actions became request actions ({requests})");
        }
    }
}

/// The corpus stays useful: at least 85% of its 953 actions remain runnable after every
/// placeholder is judged by the native rules (the rest are declared unsupported, with reasons).
#[test]
fn most_of_the_corpus_stays_runnable() {
    let Some(dir) = corpus() else { return };
    let (mut total, mut runnable, mut inferred) = (0, 0, 0);
    for sub in ["v0", "v2"] {
        for file in std::fs::read_dir(dir.join(sub)).expect("corpus dir").flatten().map(|e| e.path()) {
            let spec = spec::load_file_compat(&file, Compat::OmniCloud).expect("loads");
            total += spec.actions.len();
            runnable += spec.actions.iter().filter(|a| !matches!(a.body, spec::ActionBody::Unsupported { .. })).count();
            inferred += spec.warnings.iter().filter(|w| w.message.contains("inferred pattern")).count();
        }
    }
    eprintln!("corpus: {total} actions, {runnable} runnable, {inferred} placeholders with inferred patterns");
    assert_eq!(total, 953);
    assert!(runnable * 100 >= total * 85, "{runnable} of {total} runnable");
}

/// The original files cannot mark a credential; every parameter named like one is treated as
/// `"secret": true`, with a warning, so a TrueNAS password never reaches a plan or a log.
#[test]
fn parameters_named_like_credentials_become_secrets_with_a_warning() {
    let Some(dir) = corpus() else { return };
    let file = dir.join("v2/cpi-truenas.json");
    let loaded = spec::load_file_compat(&file, Compat::OmniCloud).expect("loads");
    let secret_params: Vec<(String, String)> = loaded
        .actions
        .iter()
        .flat_map(|a| a.body.params().iter().filter(|p| p.secret).map(|p| (a.name.clone(), p.name.clone())))
        .collect();
    assert!(secret_params.iter().any(|(_, p)| p == "password"), "{secret_params:?}");
    assert!(secret_params.iter().all(|(_, p)| omni_cpi::secrets::looks_like_credential(p)), "{secret_params:?}");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("`password`") && w.message.contains("named like a credential")),
        "a located warning says so"
    );
}
