//! The parameter cases of the threat model (cpis/REFERENCE.md, "Templates"), end to end: a value goes through a real
//! spec into a real process, which reports the exact argv it received (NUL-separated).

use crate::support;

use omni_cpi::{json::spec, CallOptions, ErrorKind, JsonCpi, Params};
use serde_json::{json, Value};

/// `show` prints each argument it got after the fixed ones, each NUL-terminated; `show_shell` does the
/// same through shell mode, where the host single-quotes values.
const SPEC: &str = r#"{
  "name": "argv_probe",
  "type": "container",
  "validation": {"required_commands": ["sh"]},
  "default_settings": {"secret_default": "from-spec"},
  "actions": {
    "show": {
      "command": "sh -c 'for a; do printf \"%s\\0\" \"$a\"; done' probe {value}",
      "params": ["value"]
    },
    "show_list": {
      "command": "sh -c 'for a; do printf \"%s\\0\" \"$a\"; done' probe --item {items}",
      "params": [{"name": "items", "type": "list"}]
    },
    "show_dash": {
      "command": "sh -c 'printf \"%s\\0\" \"$@\"' probe {value}",
      "params": [{"name": "value", "allow_dash": true}]
    },
    "show_default": {
      "command": "sh -c 'printf \"%s\\0\" \"$@\"' probe {secret_default}"
    },
    "show_shell": {
      "shell": true,
      "command": "printf '%s\\0' {value} | cat",
      "params": ["value"]
    }
  }
}"#;

fn probe() -> JsonCpi {
    JsonCpi::unrestricted(spec::load_str("probe.json", SPEC.to_string()).expect("probe spec loads"))
}

fn params(v: Value) -> Params {
    match v {
        Value::Object(map) => map,
        _ => unreachable!("object literal"),
    }
}

async fn received(action: &str, p: Value) -> Result<Vec<String>, omni_cpi::CpiError> {
    let outcome = probe().call(action, &params(p), &CallOptions::default()).await?;
    let Some(body) = outcome.stdout.strip_suffix('\0') else {
        assert_eq!(outcome.stdout, "", "output is NUL-terminated arguments");
        return Ok(Vec::new());
    };
    Ok(body.split('\0').map(str::to_string).collect())
}

const HOSTILE: &[&str] = &[
    "x; rm -rf /tmp/omni-should-not-exist",
    "a | cat /etc/passwd",
    "a & sleep 5",
    "$(touch /tmp/omni-pwned)",
    "`touch /tmp/omni-pwned`",
    "> /tmp/omni-pwned",
    "< /etc/shadow",
    "'single' \"double\" \\back",
    "line1\nline2\r\n",
    "{value} {secret_default}",
    "spaces   and\ttabs",
    "ünïcödé ✓",
    "",
];

#[tokio::test]
async fn hostile_values_arrive_as_exactly_one_argument() {
    for value in HOSTILE {
        let args = received("show", json!({ "value": value })).await.expect("runs");
        assert_eq!(args, [*value], "argv mode");
    }
    assert!(!std::path::Path::new("/tmp/omni-pwned").exists());
}

#[tokio::test]
async fn hostile_values_arrive_as_exactly_one_argument_in_shell_mode() {
    for value in HOSTILE {
        let args = received("show_shell", json!({ "value": value })).await.expect("runs");
        assert_eq!(args, [*value], "shell mode");
    }
    assert!(!std::path::Path::new("/tmp/omni-pwned").exists());
}

#[tokio::test]
async fn nul_bytes_are_refused() {
    for action in ["show", "show_shell"] {
        let err = received(action, json!({"value": "a\u{0}b"})).await.expect_err("NUL");
        assert_eq!((err.kind, err.param.as_deref()), (ErrorKind::InvalidArgument, Some("value")));
    }
}

#[tokio::test]
async fn leading_dash_is_refused_unless_the_parameter_allows_it() {
    for action in ["show", "show_shell"] {
        let err = received(action, json!({"value": "--privileged"})).await.expect_err("option injection");
        assert_eq!((err.kind, err.param.as_deref()), (ErrorKind::InvalidArgument, Some("value")));
        assert!(err.message.contains("allow_dash"), "{}", err.message);
    }
    assert_eq!(received("show_dash", json!({"value": "--privileged"})).await.expect("allowed"), ["--privileged"]);
    let err = received("show_list", json!({"items": ["ok", "-x"]})).await.expect_err("list item");
    assert_eq!(err.param.as_deref(), Some("items"));
}

#[tokio::test]
async fn huge_values_are_refused() {
    let err = received("show", json!({"value": "x".repeat(1 << 20)})).await.expect_err("huge");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn lists_repeat_their_flag_and_cannot_smuggle_arguments_into_strings() {
    assert_eq!(
        received("show_list", json!({"items": ["a b", "c;d"]})).await.expect("runs"),
        ["--item", "a b", "--item", "c;d"]
    );
    assert_eq!(received("show_list", json!({"items": []})).await.expect("runs"), Vec::<String>::new());
    let err = received("show", json!({"value": ["two", "args"]})).await.expect_err("list for a string");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn callers_cannot_fill_placeholders_the_action_does_not_declare() {
    let outcome = probe()
        .call("show_default", &params(json!({"secret_default": "from-caller"})), &CallOptions::default())
        .await
        .expect("runs");
    assert_eq!(outcome.stdout, "from-spec\0");
    assert_eq!(outcome.ignored_params, ["secret_default"]);
}

#[tokio::test]
async fn missing_parameter_names_action_and_parameter() {
    let err = received("show", json!({})).await.expect_err("missing");
    assert_eq!(
        (err.kind, err.action.as_str(), err.param.as_deref()),
        (ErrorKind::InvalidArgument, "show", Some("value"))
    );
}

// ---------------------------------------------------------------------------------------------
// The shipped specs: what their own scripts and hooks refuse (issue 10, "shipped specs hardened").
// ---------------------------------------------------------------------------------------------

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Who runs the tests: pre-creating a directory "owned by another user" needs root's chown.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// cpis/NAME.json with `settings` merged into its default settings, seeing only PATH and `env`
/// of the environment (plus what the spec inherits of those).
fn shipped(name: &str, settings: Value, env: &[(&str, &str)]) -> JsonCpi {
    let mut loaded =
        spec::load_file(&support::cpi_path(name)).unwrap_or_else(|e| panic!("cpis/{name}.json loads:\n{e}"));
    if let Value::Object(settings) = settings {
        loaded.default_settings.extend(settings);
    }
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    JsonCpi::unrestricted(loaded).with_host_env(move |var| {
        env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()).or_else(|| {
            if var == "PATH" {
                std::env::var("PATH").ok()
            } else {
                None
            }
        })
    })
}

fn process_with_state(state: &Path) -> JsonCpi {
    shipped("process", json!({ "state_dir": state }), &[])
}

async fn call(cpi: &JsonCpi, action: &str, p: Value) -> Result<omni_cpi::Outcome, omni_cpi::CpiError> {
    cpi.call(action, &params(p), &CallOptions::default()).await
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// A container someone else wrote into a state directory: its command creates `marker`.
fn plant_container(state: &Path, name: &str, marker: &Path) {
    let dir = state.join(name);
    std::fs::create_dir_all(&dir).expect("plant a container");
    std::fs::write(dir.join("image"), "none").expect("image");
    std::fs::write(dir.join("cmd"), format!("touch\0{}\0", marker.display())).expect("cmd");
    std::fs::write(dir.join("log"), "").expect("log");
    std::fs::write(dir.join("state"), "created\n").expect("state");
}

/// Every action against an unsafe state directory is `denied` with a message naming `state_dir`,
/// and nothing planted there runs.
async fn assert_state_dir_refused(state: &Path, marker: &Path, why: &str, reason_says: &str) {
    let cpi = process_with_state(state);
    for (action, p) in [
        ("start_container", json!({"name": "planted"})),
        ("restart_container", json!({"name": "planted"})),
        ("exec", json!({"name": "planted", "cmd": ["touch", marker]})),
        ("list_containers", json!({})),
        ("inspect_container", json!({"name": "planted"})),
        ("logs", json!({"name": "planted"})),
        ("stop_container", json!({"name": "planted"})),
        ("create_container", json!({"name": "fresh", "image": "none", "command": ["touch", marker]})),
        ("delete_container", json!({"name": "planted"})),
    ] {
        let err = call(&cpi, action, p).await.expect_err(&format!("{why}: {action} must be refused"));
        assert_eq!(err.kind, ErrorKind::Denied, "{why}: {action}: {err:?}");
        let reason = err.failed_step.as_ref().map(|s| s.stderr.clone()).unwrap_or_default();
        assert!(
            reason.contains("state directory refused") && reason.contains("state_dir") && reason.contains(reason_says),
            "{why}: {action}: the refusal says {reason_says:?} and names the setting: {reason}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "{why}: a command from the refused state directory ran");
}

#[tokio::test]
async fn process_cpi_refuses_a_state_dir_another_user_prepared() {
    let root = tempfile::tempdir().expect("temp dir");
    let marker = root.path().join("ran");
    if !running_as_root() {
        assert!(!support::runtimes_required(), "this test chowns to another user and must run as root under CI");
        eprintln!("SKIPPED: chown to another user needs root");
        return;
    }
    // Owned by nobody (65534), mode 0700: what another local user makes of a path we would use.
    let foreign = root.path().join("foreign");
    plant_container(&foreign, "planted", &marker);
    for entry in walk(&foreign) {
        std::os::unix::fs::lchown(&entry, Some(65534), Some(65534)).expect("chown");
    }
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert_state_dir_refused(&foreign, &marker, "state dir owned by uid 65534", "owned by uid 65534").await;

    // Our own 0700 state dir below a parent another user owns (who could rename it away).
    let parent = root.path().join("their-parent");
    std::fs::create_dir(&parent).expect("mkdir");
    let inner = parent.join("state");
    plant_container(&inner, "planted", &marker);
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::lchown(&parent, Some(65534), Some(65534)).expect("chown");
    assert_state_dir_refused(&inner, &marker, "parent owned by uid 65534", "their-parent is owned by uid 65534").await;

    // A missing state dir below a parent another user owns is not created there either.
    let missing = parent.join("never-created");
    assert_state_dir_refused(&missing, &marker, "missing below a foreign parent", "owned by uid 65534").await;
    assert!(!missing.exists(), "nothing was created below a directory another user owns");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            all.extend(walk(&path));
        } else {
            all.push(path);
        }
    }
    all
}

#[tokio::test]
async fn process_cpi_refuses_a_state_dir_open_to_others_a_symlink_or_an_odd_path() {
    let root = tempfile::tempdir().expect("temp dir");
    let marker = root.path().join("ran");

    for open in [0o777, 0o755, 0o710, 0o701, 0o1777] {
        let dir = root.path().join(format!("open-{open:o}"));
        plant_container(&dir, "planted", &marker);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(open)).expect("chmod");
        let says = if open == 0o777 { "writable by other users" } else { "open to other users" };
        assert_state_dir_refused(&dir, &marker, &format!("mode {open:o}"), says).await;
        assert_eq!(mode(&dir), open, "the refused directory is left as it was");
    }

    // A symlink to a directory that is itself fine.
    let real = root.path().join("real");
    plant_container(&real, "planted", &marker);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    assert_state_dir_refused(&link, &marker, "a symlink", "symbolic link").await;
    let with_slash = PathBuf::from(format!("{}/", link.display()));
    assert_state_dir_refused(&with_slash, &marker, "a symlink with a trailing slash", "symbolic link").await;
    // A dangling symlink is not followed to create its target.
    let dangling = root.path().join("dangling");
    std::os::unix::fs::symlink(root.path().join("target-of-dangling"), &dangling).expect("symlink");
    assert_state_dir_refused(&dangling, &marker, "a dangling symlink", "symbolic link").await;
    assert!(!root.path().join("target-of-dangling").exists());

    // A file, a relative path, `..`, and a parent anyone may write to (without the sticky bit).
    let file = root.path().join("file");
    std::fs::write(&file, "").expect("file");
    assert_state_dir_refused(&file, &marker, "a regular file", "not a directory").await;
    assert_state_dir_refused(Path::new("relative/state"), &marker, "a relative path", "not an absolute path").await;
    assert_state_dir_refused(&root.path().join("real/../real"), &marker, "a path with ..", ". or .. component").await;
    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    let below_shared = shared.join("state");
    plant_container(&below_shared, "planted", &marker);
    std::fs::set_permissions(&below_shared, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert_state_dir_refused(
        &below_shared,
        &marker,
        "parent writable by everyone",
        "shared is writable by other users",
    )
    .await;
}

/// A missing state directory is created 0700 (with its parents), and the containers it holds work;
/// the per-user default follows XDG_STATE_HOME, then HOME, and the container sees neither.
#[tokio::test]
async fn process_cpi_creates_its_state_dir_0700_and_defaults_to_a_per_user_path() {
    let root = tempfile::tempdir().expect("temp dir");
    let nested = root.path().join("a/b/state");
    let cpi = process_with_state(&nested);
    assert_eq!(call(&cpi, "list_containers", json!({})).await.expect("list").result, Some(json!([])));
    assert_eq!(mode(&nested), 0o700, "created private");

    let home = root.path().join("home");
    let by_home = shipped("process", json!({}), &[("HOME", home.to_str().expect("utf-8"))]);
    let name = "envcheck";
    call(&by_home, "create_container", json!({"name": name, "image": "none", "command": ["env"]}))
        .await
        .expect("create");
    let state = home.join(".local/state/omni-cpi/process");
    assert_eq!(mode(&state), 0o700, "the default state dir is {}", state.display());
    assert!(state.join(name).join("cmd").is_file());
    call(&by_home, "start_container", json!({ "name": name })).await.expect("start");
    let mut log = String::new();
    for _ in 0..50 {
        log = call(&by_home, "logs", json!({ "name": name })).await.expect("logs").stdout;
        if log.contains("PATH=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log.contains("PATH="), "the container ran: {log:?}");
    assert!(!log.contains("HOME="), "the container's environment is unchanged (PATH only): {log:?}");
    call(&by_home, "delete_container", json!({ "name": name, "stop_timeout": 0 })).await.expect("delete");

    let xdg = root.path().join("xdg");
    let by_xdg = shipped(
        "process",
        json!({}),
        &[("HOME", home.to_str().expect("utf-8")), ("XDG_STATE_HOME", xdg.to_str().expect("utf-8"))],
    );
    call(&by_xdg, "list_containers", json!({})).await.expect("list");
    assert_eq!(mode(&xdg.join("omni-cpi/process")), 0o700);

    let nowhere = shipped("process", json!({}), &[]);
    let err = call(&nowhere, "list_containers", json!({})).await.expect_err("no HOME, no state_dir");
    assert_eq!(err.kind, ErrorKind::Denied, "{err:?}");
}

/// The check lives in one text that every script of the spec starts with.
#[test]
fn every_process_cpi_script_starts_with_the_same_state_dir_check() {
    let text = std::fs::read_to_string(support::cpi_path("process")).expect("read");
    let spec: Value = serde_json::from_str(&text).expect("json");
    let mut scripts = Vec::new();
    for (action, body) in spec["actions"].as_object().expect("actions") {
        for (key, value) in body.as_object().expect("action") {
            let command = match value {
                Value::String(s) if key == "command" || key.starts_with("pre_") || key.starts_with("post_") => s,
                Value::Object(hook) if key.starts_with("pre_") || key.starts_with("post_") => {
                    hook["command"].as_str().expect("hook command")
                }
                _ => continue,
            };
            scripts.push((format!("{action}.{key}"), command.to_string()));
        }
    }
    assert!(scripts.len() >= 10, "{scripts:?}");
    let end = "chain \"${sd%/*}\"; ";
    let first = &scripts[0].1;
    let prelude = &first[..first.find(end).expect("the check ends with the parent chain") + end.len()];
    assert!(prelude.starts_with("sh -c 'refuse() {"), "{prelude}");
    for (name, script) in &scripts {
        assert!(script.starts_with(prelude), "{name} does not start with the shared state_dir check");
        assert!(script.contains("' sh {state_dir}"), "{name}: the state dir is $1, a positional parameter");
        assert!(!script.contains("$(($"), "{name}: no positional parameter inside $(( ))");
    }
}

#[tokio::test]
async fn process_cpi_stop_timeout_is_a_number_or_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let cpi = process_with_state(root.path());
    for action in ["stop_container", "delete_container", "restart_container"] {
        for hostile in ["1+1", "a[$(id)]", "x[$(touch /tmp/omni-pwned)]", "12345", "-1", "", " 1"] {
            let err = cpi
                .plan(action, &params(json!({"name": "c", "stop_timeout": hostile})), &CallOptions::default())
                .expect_err(&format!("{action} stop_timeout={hostile:?}"));
            assert_eq!((err.kind, err.param.as_deref()), (ErrorKind::InvalidArgument, Some("stop_timeout")), "{err:?}");
        }
        cpi.plan(action, &params(json!({"name": "c", "stop_timeout": 0})), &CallOptions::default()).expect("a number");
    }
    // A setting is not checked by a pattern; the script refuses it before any arithmetic.
    let marker = root.path().join("ran");
    let state = root.path().join("state");
    let bad = shipped(
        "process",
        json!({"state_dir": state, "stop_timeout": format!("a[$(touch {})]", marker.display())}),
        &[],
    );
    call(&bad, "create_container", json!({"name": "c", "image": "none", "command": ["sleep", "60"]}))
        .await
        .expect("create");
    call(&bad, "start_container", json!({"name": "c"})).await.expect("start");
    let err = call(&bad, "stop_container", json!({"name": "c"})).await.expect_err("bad setting");
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err:?}");
    assert!(!marker.exists());
    call(&bad, "delete_container", json!({"name": "c", "stop_timeout": 0})).await.expect("delete with a good value");
    assert!(!marker.exists());
    assert!(!Path::new("/tmp/omni-pwned").exists());
}

/// An image that cannot exist: if a check let a value through, the runtime fails instead of
/// creating a container with the host mounted.
const NO_IMAGE: &str = "localhost/omni-cpi-no-such-image:never";

async fn oci_create(cpi: &JsonCpi, extra: Value) -> Result<omni_cpi::Outcome, omni_cpi::CpiError> {
    let mut p = json!({"name": support::unique_name("hostaccess"), "image": NO_IMAGE});
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    call(cpi, "create_container", p).await
}

fn refused_by(err: &omni_cpi::CpiError, hook: &str, words: &[&str]) -> bool {
    let Some(step) = &err.failed_step else { return false };
    err.kind == ErrorKind::Denied && step.step == hook && words.iter().all(|w| step.stderr.contains(w))
}

/// Past the checks: whatever the runtime says next (no such image, no daemon), not our refusal.
fn passed_the_checks(result: Result<omni_cpi::Outcome, omni_cpi::CpiError>, what: &str) {
    let err = result.expect_err("the image does not exist");
    assert_eq!(err.failed_step.as_ref().map(|s| s.step.as_str()), Some("command"), "{what}: {err:?}");
    assert_ne!(err.kind, ErrorKind::Denied, "{what}: {err:?}");
}

#[tokio::test]
async fn podman_and_docker_mount_host_paths_only_inside_the_operators_prefixes() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    std::fs::create_dir_all(data.join("sub")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("data2")).expect("mkdir");
    std::os::unix::fs::symlink("/", data.join("to-root")).expect("symlink");
    std::os::unix::fs::symlink(data.join("sub"), data.join("to-sub")).expect("symlink");
    let d = data.display();
    for name in ["podman", "docker"] {
        // Default settings: named volumes only.
        let cpi = shipped(name, json!({}), &[]);
        for host in ["/:/host", "/etc:/etc:ro", "/tmp:/x", &format!("{d}/sub:/data")] {
            let err = oci_create(&cpi, json!({ "volumes": ["ok-volume:/ok", host] })).await.expect_err(host);
            assert!(
                refused_by(&err, "pre_check_volumes", &["volumes", "host_volume_prefixes"]),
                "{name}: {host}: {err:?}"
            );
        }
        // Named volumes pass the host-path check; whether they exist is the next hook's question
        // (podman and docker would create a missing one silently, so the CPI refuses it there).
        let err = oci_create(&cpi, json!({"volumes": ["omni-v1:/data", "v.2_x:/a/b:ro,z"]})).await.expect_err("named");
        let step = err.failed_step.as_ref().map(|s| s.step.as_str());
        assert!(
            matches!(step, Some("pre_check_volumes_exist" | "command")) && err.kind != ErrorKind::Denied,
            "{name}: named volumes passed the host-path check: {err:?}"
        );
        // Not a mount of a named volume or a host path: refused by the pattern before anything runs.
        for bad in
            ["../x:/d", "./x:/d", "~/x:/d", "vol", "vol:rel", "vol:/d:rshared", "vol:/d:ro:z", "v:/d\n", "-v:/d", ":/d"]
        {
            let err = cpi
                .plan(
                    "create_container",
                    &params(json!({"name": "c", "image": NO_IMAGE, "volumes": [bad]})),
                    &CallOptions::default(),
                )
                .expect_err(bad);
            assert_eq!(
                (err.kind, err.param.as_deref()),
                (ErrorKind::InvalidArgument, Some("volumes")),
                "{name}: {bad:?}"
            );
        }

        // The operator lists a prefix: paths inside it (after resolving symlinks) only.
        let cpi = shipped(name, json!({ "host_volume_prefixes": [data] }), &[]);
        for inside in
            [format!("{d}/sub:/data"), format!("{d}:/data:ro"), format!("{d}/sub/:/data"), format!("{d}/to-sub:/data")]
        {
            passed_the_checks(oci_create(&cpi, json!({ "volumes": [inside] })).await, &inside);
        }
        for outside in [
            "/:/host".to_string(),
            format!("{}/data2:/d", root.path().display()),
            format!("{d}/../data2:/d"),
            format!("{d}/sub/..:/d"),
            format!("{d}/to-root:/d"),
            format!("{d}/to-root/etc:/d"),
            format!("{d}/missing:/d"),
        ] {
            let err = oci_create(&cpi, json!({ "volumes": [outside] })).await.expect_err(&outside);
            assert!(refused_by(&err, "pre_check_volumes", &["volumes"]), "{name}: {outside}: {err:?}");
        }
        // A prefix with a trailing slash means the same directory; `/data` never admits `/data2`.
        let cpi = shipped(name, json!({ "host_volume_prefixes": [format!("{d}/")] }), &[]);
        passed_the_checks(oci_create(&cpi, json!({ "volumes": [format!("{d}/sub:/x")] })).await, "trailing slash");
        let err = oci_create(&cpi, json!({ "volumes": [format!("{}/data2:/x", root.path().display())] }))
            .await
            .expect_err("data2");
        assert!(refused_by(&err, "pre_check_volumes", &["host_volume_prefixes"]), "{err:?}");
        // A prefix that is not an absolute plain path is an operator error, named as such.
        for prefix in ["relative", "/a/../b"] {
            let cpi = shipped(name, json!({ "host_volume_prefixes": [prefix] }), &[]);
            let err = oci_create(&cpi, json!({ "volumes": ["v:/d"] })).await.expect_err(prefix);
            assert!(refused_by(&err, "pre_check_volumes", &["host_volume_prefixes", "default_settings"]), "{err:?}");
        }
    }
}

#[tokio::test]
async fn podman_and_docker_share_the_hosts_network_only_when_the_operator_allows_it() {
    for name in ["podman", "docker"] {
        let cpi = shipped(name, json!({}), &[]);
        let mut refused = vec!["host", "HOST", "container:other"];
        if name == "podman" {
            refused.push("ns:/proc/1/ns/net");
        }
        for network in &refused {
            let err = oci_create(&cpi, json!({ "network": network })).await.expect_err(network);
            assert!(
                refused_by(&err, "pre_check_network", &["network", "allow_host_network"]),
                "{name}: {network}: {err:?}"
            );
        }
        for bad in ["--network=host", "host,other", "slirp4netns:allow_host_loopback=true", "pasta:-T,22"] {
            let err = cpi
                .plan(
                    "create_container",
                    &params(json!({"name": "c", "image": NO_IMAGE, "network": bad})),
                    &CallOptions::default(),
                )
                .expect_err(bad);
            assert_eq!(
                (err.kind, err.param.as_deref()),
                (ErrorKind::InvalidArgument, Some("network")),
                "{name}: {bad}"
            );
        }
        passed_the_checks(oci_create(&cpi, json!({"network": "omni-n1"})).await, "a network name");
        passed_the_checks(oci_create(&cpi, json!({})).await, "no network");

        let allowed = shipped(name, json!({"allow_host_network": true}), &[]);
        for network in &refused {
            passed_the_checks(oci_create(&allowed, json!({ "network": network })).await, network);
        }
        let odd = shipped(name, json!({"allow_host_network": "yes"}), &[]);
        let err = oci_create(&odd, json!({"network": "host"})).await.expect_err("odd setting");
        assert!(refused_by(&err, "pre_check_network", &["allow_host_network"]), "{err:?}");
    }
}
