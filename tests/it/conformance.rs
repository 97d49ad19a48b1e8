//! The conformance kit against every shipped CPI and its real runtime, statically, and against
//! deliberately broken CPIs (each must be caught by the right check).

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;

use omni_cpi::conformance::{self, statics, Options, Report, Verdict};
use omni_cpi::{json::spec, Cpi, ErrorKind, JsonCpi};
use serde_json::json;

async fn kit(cpi: &Cpi) -> Report {
    kit_with(cpi, json!({})).await
}

/// The kit with extra parameters, as `--param` gives them.
async fn kit_with(cpi: &Cpi, params: serde_json::Value) -> Report {
    let params = match params {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("object literal"),
    };
    let options = Options { repeat: 2, parallel: 2, params, ..Options::default() };
    let mut progress = |r: &conformance::CheckResult| eprintln!("{}", conformance::report::progress_line(r));
    conformance::run(cpi, &options, &mut progress).await
}

/// Every check passed or was skipped for an action the CPI declares unsupported.
fn assert_fully_conformant(report: &Report) {
    let failed: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| match &r.verdict {
            Verdict::Failed(f) => Some(format!("{}: expected {}, got {}", r.id, f.expected, f.got)),
            _ => None,
        })
        .collect();
    assert!(failed.is_empty(), "{} failed checks:\n{}", report.cpi, failed.join("\n"));
    assert!(report.count(|v| matches!(v, Verdict::Passed)) >= 6, "{}: too few checks ran", report.cpi);
}

fn failed_ids(report: &Report) -> BTreeSet<&'static str> {
    report.results.iter().filter(|r| matches!(r.verdict, Verdict::Failed(_))).map(|r| r.id).collect()
}

/// A process-CPI variant with its state in a private directory.
fn process_cpi(path: &Path, state: &Path) -> Cpi {
    let mut loaded = spec::load_file(path).unwrap_or_else(|e| panic!("{} loads:\n{e}", path.display()));
    loaded.default_settings.insert("state_dir".into(), json!(state));
    Cpi::from(JsonCpi::unrestricted(loaded))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_cpi_is_conformant() {
    let state = support::private_tempdir();
    assert_fully_conformant(&kit(&process_cpi(&support::cpi_path("process"), state.path())).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_cpi_is_conformant() {
    if !support::runtime_available(
        "podman with the busybox image",
        &["podman", "image", "exists", "localhost/busybox:latest"],
    ) {
        return;
    }
    let cpi = Cpi::from(JsonCpi::load_unrestricted(&support::cpi_path("podman")).expect("loads"));
    assert_fully_conformant(&kit(&cpi).await);
}

fn podman_available() -> bool {
    support::runtime_available(
        "podman with the busybox image",
        &["podman", "image", "exists", "localhost/busybox:latest"],
    )
}

/// A copy of the shipped spec `cpis/NAME.json` with each `(from, to)` edit made once, in a temp
/// dir: a deliberately broken CPI. Each `from` must occur exactly once, so that a change to the
/// spec makes the test say so instead of silently testing the intact spec.
fn broken_copy(name: &str, edits: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let mut text = std::fs::read_to_string(support::cpi_path(name)).expect("shipped spec");
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "cpis/{name}.json no longer holds exactly one {from:?}; update this test"
        );
        text = text.replacen(from, to, 1);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("broken_{name}.json"));
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

/// The kit with only `checks` (and the leak check).
async fn kit_only(cpi: &Cpi, checks: &[&str]) -> Report {
    let options = Options { only: checks.iter().map(|c| c.to_string()).collect(), ..Options::default() };
    let mut progress = |r: &conformance::CheckResult| eprintln!("{}", conformance::report::progress_line(r));
    conformance::run(cpi, &options, &mut progress).await
}

/// Exactly `id` failed, saying it expected `expected` and got `got` (substrings); every other
/// check that ran passed (none skipped: the defect is found among checks that did run).
fn assert_caught_by(report: &Report, id: &str, expected: &str, got: &str) {
    let mut caught = false;
    for result in &report.results {
        match &result.verdict {
            Verdict::Failed(f) if result.id == id => {
                assert!(
                    f.expected.contains(expected) && f.got.contains(got),
                    "{id} failed for another reason: expected {:?}, got {:?} (wanted {expected:?} / {got:?})",
                    f.expected,
                    f.got
                );
                caught = true;
            }
            Verdict::Passed => {}
            other => {
                panic!("{}: only {id} should fail, and every other check pass; {} is {other:?}", report.cpi, result.id)
            }
        }
    }
    assert!(caught, "{}: {id} did not catch the defect: {:?}", report.cpi, failed_ids(report));
}

/// The podman CPI without its rule that a network in use is `in_use` (podman's own error is then
/// an untyped `failed`): C-NETWORK-02 catches it, and nothing else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_network_in_use_reported_untyped() {
    if !podman_available() {
        return;
    }
    let rule = ",\n        { \"kind\": \"in_use\", \"stderr\": \"network is being used\" }";
    let (_dir, broken) = broken_copy("podman", &[(rule, "")]);
    let cpi = Cpi::from(JsonCpi::load_unrestricted(&broken).expect("loads"));
    let report = kit_only(&cpi, &["C-NETWORK-01", "C-NETWORK-02", "C-NETWORK-03"]).await;
    assert_caught_by(&report, "C-NETWORK-02", "delete_network fails with in_use", "error[failed]");
}

/// Two podman CPIs that cannot take a running container off a network: one refuses while it
/// runs (invalid_state, as runc must), one says it did and did nothing. C-NETWORK-03 catches
/// both; C-NETWORK-01, which disconnects a stopped container, passes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_running_container_that_cannot_leave_its_network() {
    if !podman_available() {
        return;
    }
    let command = r#""command": "podman network disconnect {network} {container}","#;
    let rules = r#""errors": [{ "kind": "not_found", "stderr": "unable to find network" }]"#;
    let refuses_running = [
        (
            command,
            concat!(
                r#""command": "podman network disconnect {network} {container}","#,
                "\n      ",
                r#""pre_check_stopped": "sh -c 'r=$(podman container inspect --format {{.State.Running}} \"$1\") || exit 1; [ \"$r\" != true ] || { echo \"podman_cpi: container $1 is running\" >&2; exit 4; }' sh {container}","#
            ),
        ),
        (
            rules,
            r#""errors": [{ "kind": "not_found", "stderr": "unable to find network" }, { "kind": "invalid_state", "exit_code": 4, "stderr": "is running" }]"#,
        ),
    ];
    let does_nothing = [(command, r#""command": "podman container exists {container}","#)];
    for (edits, expected, got) in [
        (
            &refuses_running[..],
            "container running, the first time: disconnect_network succeeds",
            "error[invalid_state]",
        ),
        (&does_nothing[..], "with the container running: delete_network succeeds", "error[in_use]"),
    ] {
        let (_dir, broken) = broken_copy("podman", edits);
        let cpi = Cpi::from(JsonCpi::load_unrestricted(&broken).expect("loads"));
        let report = kit_only(&cpi, &["C-NETWORK-01", "C-NETWORK-02", "C-NETWORK-03"]).await;
        assert_caught_by(&report, "C-NETWORK-03", expected, got);
    }
}

/// The podman CPI without its rule that a volume in use is `in_use`: C-VOLUME-04 catches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_volume_in_use_reported_untyped() {
    if !podman_available() {
        return;
    }
    let rule = ",\n        { \"kind\": \"in_use\", \"stderr\": \"volume is being used\" }";
    let (_dir, broken) = broken_copy("podman", &[(rule, "")]);
    let cpi = Cpi::from(JsonCpi::load_unrestricted(&broken).expect("loads"));
    let report = kit_only(&cpi, &["C-VOLUME-01", "C-VOLUME-04", "C-VOLUME-05"]).await;
    assert_caught_by(&report, "C-VOLUME-04", "container created: delete_volume fails with in_use", "error[failed]");
}

/// podman (and docker) create a missing named volume silently; the shipped specs check first.
/// Without that hook the create succeeds, and without the rule that types the hook's refusal it
/// is untyped: C-VOLUME-05 catches both, and its cleanup removes what the first one made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_container_created_with_a_missing_volume() {
    if !podman_available() {
        return;
    }
    let text = std::fs::read_to_string(support::cpi_path("podman")).expect("podman.json");
    let hook_start = text.find("      \"pre_check_volumes_exist\"").expect("podman.json checks volumes exist");
    let hook = &text[hook_start..hook_start + text[hook_start..].find('\n').expect("line") + 1];
    let rule =
        ",\n        { \"kind\": \"not_found\", \"exit_code\": 3, \"stderr\": \"\\\\Apodman_cpi: no such volume\" }";
    for (edit, got) in [((hook, ""), "success"), ((rule, ""), "error[failed]")] {
        let (_dir, broken) = broken_copy("podman", &[edit]);
        let cpi = Cpi::from(JsonCpi::load_unrestricted(&broken).expect("loads"));
        let report = kit_only(&cpi, &["C-VOLUME-01", "C-VOLUME-04", "C-VOLUME-05"]).await;
        assert_caught_by(&report, "C-VOLUME-05", "create_container fails with not_found", got);
        let volumes = std::process::Command::new("podman")
            .args(["volume", "ls", "--format", "{{.Name}}"])
            .output()
            .expect("podman volume ls");
        let left: Vec<String> = String::from_utf8_lossy(&volumes.stdout)
            .lines()
            .filter(|v| v.starts_with(&report.prefix))
            .map(str::to_string)
            .collect();
        assert!(left.is_empty(), "the check's cleanup removes the volume podman made: {left:?}");
    }
}

/// The LXC CPI with its volume root in a private directory.
fn lxc_cpi(path: &Path, volumes: &Path) -> Cpi {
    let mut loaded = spec::load_file(path).unwrap_or_else(|e| panic!("{} loads:\n{e}", path.display()));
    loaded.default_settings.insert("volume_root".into(), json!(volumes));
    Cpi::from(JsonCpi::unrestricted(loaded))
}

const VOLUME_CHECKS: [&str; 5] = ["C-VOLUME-01", "C-VOLUME-02", "C-VOLUME-03", "C-VOLUME-04", "C-VOLUME-05"];

/// LXC CPIs whose attach_volume leaves a missing volume untyped, or a second attach untyped:
/// C-VOLUME-02 catches each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_attach_volume_errors_reported_untyped() {
    if !support::runtime_available("LXC", &["lxc-create", "--version"]) {
        return;
    }
    let missing = "        { \"kind\": \"not_found\", \"stderr\": \"no such volume\" },\n";
    let again = ",\n        { \"kind\": \"already_exists\", \"stderr\": \"is already attached\" }";
    for (rule, expected) in [
        (missing, "attaching a volume that does not exist: attach_volume fails with not_found"),
        (again, "attaching the same volume again: attach_volume succeeds or fails with already_exists"),
    ] {
        let (_dir, broken) = broken_copy("lxc", &[(rule, "")]);
        let volumes = tempfile::tempdir().expect("volume root");
        let report = kit_only(&lxc_cpi(&broken, volumes.path()), &VOLUME_CHECKS).await;
        assert_caught_by(&report, "C-VOLUME-02", expected, "error[failed]");
    }
}

/// LXC CPIs whose detach_volume does nothing (yet succeeds), or fails for a volume no longer
/// attached: C-VOLUME-03 catches each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_detach_volume_that_lies_or_is_not_idempotent() {
    if !support::runtime_available("LXC", &["lxc-create", "--version"]) {
        return;
    }
    let guard = "grep -q -F -e \\\"$e\\\" \\\"$c\\\" || exit 0;";
    let not_attached = "grep -q -F -e \\\"$e\\\" \\\"$c\\\" || { echo \\\"lxc_cpi: volume $4 is not attached to $2\\\" >&2; exit 1; };";
    for (edit, expected, got) in [
        ("exit 0;", "the volume's file is gone from /data", "stdout \"present\\n\""),
        (not_attached, "detaching again: detach_volume succeeds", "error[failed]"),
    ] {
        let (_dir, broken) = broken_copy("lxc", &[(guard, edit)]);
        let volumes = tempfile::tempdir().expect("volume root");
        let report = kit_only(&lxc_cpi(&broken, volumes.path()), &VOLUME_CHECKS).await;
        assert_caught_by(&report, "C-VOLUME-03", expected, got);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_cpi_is_conformant_against_podmans_socket() {
    if !support::runtime_available(
        "podman with the busybox image",
        &["podman", "image", "exists", "localhost/busybox:latest"],
    ) || !support::runtime_available("docker CLI", &["docker", "--version"])
    {
        return;
    }
    let service = support::PodmanService::start();
    let docker_host = service.docker_host();
    let loaded = spec::load_file(&support::cpi_path("docker")).expect("loads");
    let cpi = Cpi::from(JsonCpi::unrestricted(loaded).with_host_env(move |var| {
        if var == "DOCKER_HOST" {
            Some(docker_host.clone())
        } else {
            std::env::var(var).ok()
        }
    }));
    assert_fully_conformant(&kit(&cpi).await);
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lxc_cpi_is_conformant() {
    if !support::runtime_available("LXC", &["lxc-create", "--version"]) {
        return;
    }
    let volumes = tempfile::tempdir().expect("volume root");
    let mut loaded = spec::load_file(&support::cpi_path("lxc")).expect("loads");
    loaded.default_settings.insert("volume_root".into(), json!(volumes.path()));
    assert_fully_conformant(&kit(&Cpi::from(JsonCpi::unrestricted(loaded))).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runc_component_is_conformant() {
    if !support::runtime_available("runc", &["runc", "--version"]) {
        return;
    }
    let Some(_) = support::plugin_wasm("omni_cpi_runc") else { return };
    let policy =
        omni_cpi::policy::Policy::load(&support::repo_root().join("plugins/runc/policy.toml")).expect("policy");
    let source = policy.plugins["runc"].source.clone().expect("source");
    let cache = tempfile::tempdir().expect("cache");
    let loader = omni_cpi::Loader::new(policy, Some(cache.path().to_path_buf())).expect("loader");
    let cpi = loader.load(&source).await.unwrap_or_else(|e| panic!("runc loads: {e}"));
    assert_runc_conformant(&kit(&cpi).await, &[]);
}

/// The Python example (plugins/podman-py, componentize-py and the Python kit) passes the live kit
/// under the policy it ships with; only the volume checks that need `attach_volume` (podman
/// mounts volumes at create only) are skipped. Then the values a hostile caller passes are
/// refused, by the host or by the plugin, before podman runs, each with its kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_podman_component_is_conformant_and_checks_what_callers_pass() {
    if !podman_available() {
        return;
    }
    let Some(_) = support::example_component("plugins/podman-py") else { return };
    let policy =
        omni_cpi::policy::Policy::load(&support::repo_root().join("plugins/podman-py/policy.toml")).expect("policy");
    assert_guest_example(
        policy,
        "podman_py",
        &[
            (json!({"volumes": ["/etc:/host-etc"]}), ErrorKind::Denied, "host paths are not mounted"),
            (json!({"network": "host"}), ErrorKind::Denied, "would share another namespace"),
            (json!({"network": "container:other"}), ErrorKind::Denied, "would share another namespace"),
            // The host refuses a value that begins with a dash before any plugin sees it.
            (json!({"image": "--privileged"}), ErrorKind::InvalidArgument, "begins with `-`"),
            (json!({"name": "--all"}), ErrorKind::InvalidArgument, "begins with `-`"),
            (json!({"env": {"A=B --privileged": "x"}}), ErrorKind::InvalidArgument, "env key"),
            (json!({"ports": ["80:80 --privileged"]}), ErrorKind::InvalidArgument, "port"),
            (json!({"volumes": ["vol:/data --privileged"]}), ErrorKind::InvalidArgument, "use NAME:/path"),
        ],
    )
    .await;
}

/// The JavaScript example (plugins/docker-js, componentize-js and the JavaScript kit) passes the
/// live kit against the docker CLI and a podman API service the test starts, under the policy it
/// ships with (the daemon's address set as its `docker_host`); only the checks that need
/// `attach_volume` are skipped. A caller's host path and host network are refused before docker runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_docker_component_is_conformant_and_checks_what_callers_pass() {
    if !podman_available() || !support::runtime_available("docker CLI", &["docker", "--version"]) {
        return;
    }
    let Some(_) = support::example_component("plugins/docker-js") else { return };
    let service = support::PodmanService::start();
    let mut policy =
        omni_cpi::policy::Policy::load(&support::repo_root().join("plugins/docker-js/policy.toml")).expect("policy");
    policy.plugins.get_mut("docker_js").expect("entry").settings.insert("docker_host".into(), service.docker_host());
    assert_guest_example(
        policy,
        "docker_js",
        &[
            (json!({"volumes": ["/etc:/host-etc"]}), ErrorKind::Denied, "host paths are not mounted"),
            (json!({"network": "host"}), ErrorKind::Denied, "would share another namespace"),
            (json!({"env": {"A=B --privileged": "x"}}), ErrorKind::InvalidArgument, "env key"),
        ],
    )
    .await;
    drop(service);
}

/// A guest kit's example container CPI, loaded through `policy`'s entry `entry`: every check of
/// the live kit passes but the two that need `attach_volume`, and each `create_container` with a
/// hostile value (`(params over a valid create, kind, words of the message)`) is refused with
/// its kind before the runtime's `create` runs (the audit log shows none).
async fn assert_guest_example(
    mut policy: omni_cpi::policy::Policy,
    entry: &str,
    hostile: &[(serde_json::Value, ErrorKind, &str)],
) {
    let source = policy.plugins[entry].source.clone().expect("source");
    let audit = tempfile::NamedTempFile::new().expect("audit log");
    policy.audit_log = Some(audit.path().to_path_buf());
    let loader = omni_cpi::Loader::new(policy, None).expect("loader");
    let cpi = loader.load(&source).await.unwrap_or_else(|e| panic!("{entry} loads: {e}"));
    let report = kit(&cpi).await;
    assert_fully_conformant(&report);
    let skipped: BTreeSet<&str> =
        report.results.iter().filter(|r| matches!(r.verdict, Verdict::Skipped { .. })).map(|r| r.id).collect();
    assert_eq!(skipped, BTreeSet::from(["C-VOLUME-02", "C-VOLUME-03"]), "{entry}");

    let name = support::unique_name("hostile");
    let before = std::fs::read_to_string(audit.path()).unwrap_or_default();
    for (extra, kind, needle) in hostile {
        let mut params = json!({"name": name, "image": "localhost/busybox:latest"});
        params.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        let params: omni_cpi::Params = serde_json::from_value(params).expect("params");
        let error = match cpi.call("create_container", &params, &omni_cpi::CallOptions::default()).await {
            Ok(outcome) => panic!("{entry}: create_container {params:?} was refused, yet: {outcome:?}"),
            Err(e) => e,
        };
        assert_eq!(error.kind, *kind, "{entry}: {params:?}: {error}");
        assert!(error.message.contains(needle), "{entry}: {params:?}: {error}");
    }
    let after = std::fs::read_to_string(audit.path()).expect("audit");
    let new_lines = &after[before.len()..];
    assert!(!new_lines.contains("\"create\""), "{entry}: no hostile create reached the runtime:\n{new_lines}");
}

/// runc fixes a container's network namespace when it starts: a running container cannot leave
/// its network (invalid_state), which fails the SHOULD check C-NETWORK-03 and nothing else. The
/// run stays conformant: every MUST passes; only `skips` are skipped.
fn assert_runc_conformant(report: &Report, skips: &[&str]) {
    let network_03 = report.results.iter().find(|r| r.id == "C-NETWORK-03").expect("C-NETWORK-03 ran");
    match &network_03.verdict {
        Verdict::Failed(f) => assert!(f.got.starts_with("error[invalid_state]"), "{f:?}"),
        other => panic!("runc cannot disconnect a running container, yet C-NETWORK-03 is {other:?}"),
    }
    assert_eq!(network_03.level, conformance::Level::Should);
    assert!(report.conformant());
    let others = Report {
        results: report.results.iter().filter(|r| r.id != "C-NETWORK-03").cloned().collect(),
        ..report.clone()
    };
    assert_fully_conformant(&others);
    let skipped: BTreeSet<&str> =
        others.results.iter().filter(|r| matches!(r.verdict, Verdict::Skipped { .. })).map(|r| r.id).collect();
    assert_eq!(skipped, skips.iter().copied().collect::<BTreeSet<_>>(), "{}", report.cpi);
}

/// The runc plugin as built against omni:cpi@0.1.0 (a prebuilt fixture), under the same grants:
/// the host still links 0.1.0, so it passes the live kit unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runc_component_built_against_0_1_0_is_still_conformant() {
    if !support::runtime_available("runc", &["runc", "--version"]) {
        return;
    }
    let mut policy =
        omni_cpi::policy::Policy::load(&support::repo_root().join("plugins/runc/policy.toml")).expect("policy");
    let fixture = support::repo_root().join("tests/fixtures/components/runc-wit-0.1.0.wasm");
    if let Some(entry) = policy.plugins.get_mut("runc") {
        entry.source = Some(fixture.clone());
    }
    let cache = tempfile::tempdir().expect("cache");
    let loader = omni_cpi::Loader::new(policy, Some(cache.path().to_path_buf())).expect("loader");
    let cpi = loader.load(&fixture).await.unwrap_or_else(|e| panic!("the 0.1.0 runc loads: {e}"));
    assert_eq!(cpi.info().document["interface"], "omni:cpi@0.1.0");
    // omni:cpi@0.1.0 has no detach-volume: C-VOLUME-03 is skipped, as it was before 0.2.0.
    assert_runc_conformant(&kit(&cpi).await, &["C-VOLUME-03"]);
}

/// A real IaaS: QEMU (TCG) with qemu-img and QMP, the director checks in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_cpi_is_conformant() {
    if !support::qemu_available() {
        return;
    }
    let cpi = Cpi::from(JsonCpi::load_unrestricted(&support::cpi_path("qemu")).expect("loads"));
    let report = kit(&cpi).await;
    assert_fully_conformant(&report);
    assert_eq!(report.count(|v| matches!(v, Verdict::Skipped { .. })), 0, "QEMU supports every director check");
    let snapshots = std::fs::read_dir("/var/lib/omni-cpi/qemu/snapshots")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&report.prefix)).count())
        .unwrap_or(0);
    assert_eq!(snapshots, 0, "the kit removes the snapshots it made");
}

/// QEMU CPIs that leave a refused delete of an attached disk, a second attach, or a second
/// detach untyped or failing: D-DISK-02, D-DISK-03 and D-DISK-04 catch one each, and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_disk_errors_reported_untyped() {
    if !support::qemu_available() {
        return;
    }
    let rule = |kind: &str, code: u8, stderr: &str| {
        format!("    {{\n      \"kind\": \"{kind}\",\n      \"exit_code\": {code},\n      \"stderr\": \"{stderr}\"\n    }},\n")
    };
    let in_use = rule("in_use", 16, "qemu_cpi: .*in use");
    let already = rule("already_exists", 17, "qemu_cpi: .*already (exists|attached)");
    let detach_idempotent = r#"die 3 \"no such disk: $disk\"; exit 0; fi;"#;
    let detach_not_attached = r#"die 3 \"no such disk: $disk\"; die 1 \"disk $disk is not attached to vm $vm\"; fi;"#;
    for ((from, to), id, expected) in [
        ((in_use.as_str(), ""), "D-DISK-02", "delete_disk fails with in_use"),
        (
            (already.as_str(), ""),
            "D-DISK-03",
            "attaching the disk to the same VM again: attach_disk succeeds or fails with already_exists",
        ),
        ((detach_idempotent, detach_not_attached), "D-DISK-04", "detaching the disk again: detach_disk succeeds"),
    ] {
        let (_dir, broken) = broken_copy("qemu", &[(from, to)]);
        let cpi = Cpi::from(JsonCpi::load_unrestricted(&broken).expect("loads"));
        let report = kit_only(&cpi, &["D-DISK-01", "D-DISK-02", "D-DISK-03", "D-DISK-04"]).await;
        assert_caught_by(&report, id, expected, "error[failed]");
    }
}

#[tokio::test]
async fn director_checks_run_against_a_director_component() {
    let Some(wasm) = support::plugin_wasm("omni_cpi_testdirector") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("vms")).expect("vms");
    let policy = omni_cpi::policy::Policy::parse(
        &dir.path().join("p.toml"),
        &format!("[plugins.testdirector]\nsource = \"{}\"\n[[plugins.testdirector.fs]]\nhost = \"vms\"\nguest = \"/vms\"\nmode = \"rw\"\n", wasm.display()),
        "/usr/bin:/bin",
    )
    .expect("policy");
    let loader = omni_cpi::Loader::new(policy, None).expect("loader");
    let cpi = loader.load(&wasm).await.expect("loads");
    let report = kit(&cpi).await;
    assert_fully_conformant(&report);
    let skipped: BTreeSet<&str> =
        report.results.iter().filter(|r| matches!(r.verdict, Verdict::Skipped { .. })).map(|r| r.id).collect();
    assert_eq!(
        skipped,
        BTreeSet::from(["D-DISK-01", "D-DISK-02", "D-DISK-03", "D-DISK-04", "D-SNAP-01"]),
        "disks are declared unsupported"
    );
    assert!(report.results.iter().all(|r| r.id.starts_with("D-")), "only director checks run on a director");
}

/// The kit knows no CPI by name: what it passes comes from the CPI (a spec's
/// `conformance.params`, a component's `conformance.*` default settings), and a spec that declares
/// none gets none, whatever it is called.
#[tokio::test]
async fn each_cpi_declares_its_own_conformance_parameters() {
    let process = Cpi::from(JsonCpi::load_unrestricted(&support::cpi_path("process")).expect("loads"));
    assert_eq!(
        conformance::defaults_for(&process),
        json!({"image": "none", "stop_timeout": 0}).as_object().cloned().expect("map")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = std::fs::read_to_string(support::cpi_path("podman")).expect("podman");
    let declared = text.find("  \"conformance\"").expect("podman declares conformance params");
    let line_end = text[declared..].find('\n').expect("line") + declared + 1;
    text.replace_range(declared..line_end, "");
    let copy = dir.path().join("podman.json");
    std::fs::write(&copy, text).expect("write");
    let bare = Cpi::from(JsonCpi::load_unrestricted(&copy).expect("loads without them"));
    assert_eq!(bare.name(), "podman_cpi");
    assert!(conformance::defaults_for(&bare).is_empty(), "nothing by name");

    let Some(wasm) = support::plugin_wasm("omni_cpi_testdirector") else { return };
    std::fs::create_dir_all(dir.path().join("vms")).expect("vms");
    let policy = omni_cpi::policy::Policy::parse(
        &dir.path().join("p.toml"),
        &format!(
            "[plugins.td]\nsource = \"{}\"\n[[plugins.td.fs]]\nhost = \"vms\"\nguest = \"/vms\"\nmode = \"rw\"\n",
            wasm.display()
        ),
        "/usr/bin:/bin",
    )
    .expect("policy");
    let loader = omni_cpi::Loader::new(policy, None).expect("loader");
    let component = loader.load(&wasm).await.expect("loads");
    assert_eq!(conformance::defaults_for(&component).get("image"), Some(&json!("debian")));
}

/// A check that fails because the kit passed no value for a required parameter says how to pass it.
#[tokio::test]
async fn a_missing_required_parameter_says_which_param_to_pass() {
    let state = support::private_tempdir();
    let path = support::cpi_path("process");
    let mut loaded = spec::load_file(&path).unwrap_or_else(|e| panic!("{} loads:\n{e}", path.display()));
    loaded.default_settings.insert("state_dir".into(), json!(state.path()));
    loaded.conformance_params.clear();
    let cpi = Cpi::from(JsonCpi::unrestricted(loaded));
    let options = Options { only: vec!["C-CREATE-01".into()], ..Options::default() };
    let mut progress = |_: &conformance::CheckResult| {};
    let report = conformance::run(&cpi, &options, &mut progress).await;
    let failure = report
        .results
        .iter()
        .find_map(|r| match &r.verdict {
            Verdict::Failed(f) if r.id == "C-CREATE-01" => Some(f.got.clone()),
            _ => None,
        })
        .expect("C-CREATE-01 fails without an image");
    assert!(failure.contains("--param image=VALUE") && failure.contains("conformance"), "{failure}");
}

/// Deliberately broken CPIs: the kit must catch each with the check that covers the defect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_broken_cpis_with_the_right_check() {
    for (fixture, must_fail) in [
        ("broken_delete_keeps", ["C-DELETE-01", "C-LEAK-01"].as_slice()),
        ("broken_inspect_missing_ok", ["C-NOTFOUND-01", "C-DELETE-01"].as_slice()),
        ("broken_untyped_errors", ["C-NOTFOUND-01", "C-DELETE-02", "C-EXEC-02"].as_slice()),
    ] {
        let state = support::private_tempdir();
        let path = support::repo_root().join(format!("tests/fixtures/broken/{fixture}.json"));
        let report = kit_with(&process_cpi(&path, state.path()), json!({"image": "none", "stop_timeout": 0})).await;
        kill_processes_left_in(state.path());
        let failed = failed_ids(&report);
        for id in must_fail {
            assert!(failed.contains(id), "{fixture}: {id} should fail; failed: {failed:?}");
        }
        assert!(!report.conformant(), "{fixture} must not be conformant");
    }
}

/// A broken delete leaves its containers' process groups running: end them. Each container's
/// `pid` file names its group leader and `started` the leader's start time; a pid whose process
/// started at another time was reused by a stranger and is left alone.
fn kill_processes_left_in(state: &Path) {
    for container in std::fs::read_dir(state).into_iter().flatten().flatten().map(|e| e.path()) {
        let read = |file: &str| std::fs::read_to_string(container.join(file)).unwrap_or_default().trim().to_string();
        let (pid, started) = (read("pid"), read("started"));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name start with the state (field 3); the start
        // time is field 22.
        let start_time = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(19));
        let leader = pid.parse::<i32>().ok().filter(|&leader| leader > 1);
        if let (Some(leader), true) = (leader, !started.is_empty() && start_time == Some(started.as_str())) {
            // The syscall, not /usr/bin/kill: procps-ng 4.0.2 reads `kill -KILL -19633` as
            // kill(-1, SIGKILL), which as root ends every process on the machine.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(leader), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[tokio::test]
async fn every_shipped_spec_and_built_plugin_passes_static_conformance() {
    let host = omni_cpi::wasm::ComponentHost::new(None).expect("engine");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(support::repo_root().join("cpis"))
        .expect("cpis")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    for plugin in ["omni_cpi_runc", "omni_cpi_testdirector", "omni_cpi_adversary", "omni_cpi_qemu", "omni_cpi_bench"] {
        files.extend(support::plugin_wasm(plugin));
    }
    assert!(files.len() >= 5);
    for file in files {
        let report = statics::check_file(&host, &file).await;
        let problems: Vec<String> = report
            .results
            .iter()
            .filter_map(|r| match &r.verdict {
                Verdict::Failed(f) => Some(format!("{}: {}", r.id, f.got)),
                _ => None,
            })
            .collect();
        assert!(problems.is_empty(), "{}: {problems:?}", file.display());
        assert_eq!(report.results.len(), 4, "{}", file.display());
    }
    let broken = statics::check_file(
        &host,
        &support::repo_root().join("tests/golden/spec-errors/missing-required-actions.json"),
    )
    .await;
    assert!(!broken.conformant(), "a spec lacking required actions fails S-ACTIONS-01");
}

#[test]
fn the_cli_reports_for_ci() {
    let dir = tempfile::tempdir().expect("temp dir");
    let omni = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_omni-cpi"))
            .args(args)
            .current_dir(support::repo_root())
            .output()
            .expect("omni-cpi runs")
    };
    let junit = dir.path().join("junit.xml");
    let json_report = dir.path().join("report.json");
    let out = omni(&[
        "conformance",
        "tests/fixtures/broken/broken_untyped_errors.json",
        "--only",
        "C-NOTFOUND-01",
        "--only",
        "C-CREATE-01",
        "--junit",
        junit.to_str().expect("utf-8"),
        "--json",
        json_report.to_str().expect("utf-8"),
        "--param",
        "image=none",
        "--param",
        "stop_timeout:=0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL C-NOTFOUND-01"), "{stdout}");
    assert!(stdout.contains("PASS C-CREATE-01"), "{stdout}");
    assert!(stdout.contains("got:      error[failed]"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_report).expect("json written")).expect("json");
    assert_eq!(report["results"][1]["id"], "C-NOTFOUND-01");
    assert_eq!(report["results"][1]["status"], "failed");

    let out = omni(&["conformance", "--list"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("C-LEAK-01        MUST"));
    assert_eq!(omni(&["conformance", "process", "--only", "C-NOPE-01"]).status.code(), Some(2), "unknown check");
    assert_eq!(omni(&["conformance", "process", "--kind", "director"]).status.code(), Some(2), "wrong kind");
    assert_eq!(omni(&["conformance", "no-such-cpi"]).status.code(), Some(2), "CPI does not load");
    let out = omni(&[
        "conformance",
        "--static",
        "cpis/podman.json",
        "tests/golden/spec-errors/missing-required-actions.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}

/// The QEMU director as a WebAssembly component (plugins/qemu), loaded with plugins/qemu/policy.toml
/// as an operator would: the director checks in full against real QEMU, and nothing of the run
/// left behind (no VM, disk or snapshot directory, no QEMU process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_component_is_conformant() {
    const STATE: &str = "/var/lib/omni-cpi/qemu-component";
    if !support::qemu_available()
        || !support::runtime_available("the QEMU component's state directory", &["mkdir", "-p", STATE])
    {
        return;
    }
    let Some(_) = support::plugin_wasm("omni_cpi_qemu") else { return };
    let policy =
        omni_cpi::policy::Policy::load(&support::repo_root().join("plugins/qemu/policy.toml")).expect("policy");
    let source = policy.plugins["qemu"].source.clone().expect("source");
    let cache = tempfile::tempdir().expect("cache");
    let loader = omni_cpi::Loader::new(policy, Some(cache.path().to_path_buf())).expect("loader");
    let cpi = loader.load(&source).await.unwrap_or_else(|e| panic!("the QEMU component loads: {e}"));
    let started = std::time::Instant::now();
    let report = kit(&cpi).await;
    eprintln!("qemu component: one kit run took {:.1} s", started.elapsed().as_secs_f64());
    assert_fully_conformant(&report);
    assert_eq!(
        report.count(|v| matches!(v, Verdict::Skipped { .. })),
        0,
        "the component supports every director check"
    );
    assert!(report.results.iter().all(|r| r.id.starts_with("D-")), "only director checks run on a director");

    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let state = Path::new(STATE);
    let mut left: Vec<String> = Vec::new();
    for kind in ["vms", "disks"] {
        left.extend(
            names(&state.join(kind))
                .into_iter()
                .filter(|n| n.starts_with(&report.prefix))
                .map(|n| format!("{kind}/{n}")),
        );
    }
    for disk in names(&state.join("disks")) {
        let snapshots = state.join("disks").join(&disk).join("snapshots");
        left.extend(
            names(&snapshots)
                .into_iter()
                .filter(|n| n.starts_with(&report.prefix))
                .map(|n| format!("disks/{disk}/snapshots/{n}")),
        );
    }
    assert!(left.is_empty(), "the run left behind: {left:?}");
    let running: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| c.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>())
        .filter(|argv| {
            argv.iter().any(|a| a.contains("qemu-system")) && argv.iter().any(|a| a.starts_with(&report.prefix))
        })
        .map(|argv| argv.join(" "))
        .collect();
    assert!(running.is_empty(), "QEMU processes of the run still run: {running:?}");
}
