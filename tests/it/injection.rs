//! No caller value ever becomes code (issue 10): every context where a shell or another program
//! reads text again is refused at load with its file, line and column, or the value stays data
//! in a real process. Each case here is one class of attack, run through the public loader and
//! real shells (dash as /bin/sh, and bash).

use omni_cpi::json::spec::{self, compat::Compat};
use omni_cpi::json::template::{Binding, Bindings, Mode, Template};
use omni_cpi::{CallOptions, ErrorKind, JsonCpi, Params};
use proptest::prelude::*;
use serde_json::{json, Value};

fn params(v: Value) -> Params {
    match v {
        Value::Object(map) => map,
        _ => unreachable!("object literal"),
    }
}

/// A one-action spec around `command`; `param` is the parameter's declaration.
fn spec_text(command: &str, shell: bool, param: Value) -> String {
    json!({
        "name": "probe",
        "type": "container",
        "validation": {"required_commands": ["sh", "printf", "cat", "ssh", "env", "flock", "python3", "awk", "sed", "pkill", "xargs", "find", "timeout", "podman"]},
        "actions": {"create_container": {"shell": shell, "command": command, "params": [param]}}
    })
    .to_string()
}

fn load(command: &str, shell: bool, param: Value) -> Result<spec::Spec, String> {
    spec::load_str("probe.json", spec_text(command, shell, param)).map_err(|e| e.to_string())
}

/// Every context that reads a value as code or lets it choose the program: a load error that
/// points at the placeholder and names the context, whatever pattern the parameter declares.
#[test]
fn contexts_that_run_a_value_are_refused_at_load_with_their_location() {
    let cases: &[(&str, bool, &str)] = &[
        // shell mode
        ("cat <<EOF\n{v}\nEOF", true, "here-document"),
        ("cat <<< {v}", true, "here-string"),
        ("printf x # {v}", true, "comment"),
        ("printf '%s' `printf {v}`", true, "backquotes"),
        ("{v} --version", true, "program"),
        ("true && {v}", true, "program"),
        ("printf x | {v}", true, "program"),
        ("printf x; {v} y", true, "program"),
        ("printf '%s' \"$({v})\"", true, "program"),
        ("eval {v}", true, "eval"),
        ("trap {v} EXIT", true, "trap"),
        (". {v}", true, "`.`"),
        ("sh -c {v}", true, "sh"),
        ("su -c {v}", true, "su"),
        ("xargs {v}", true, "xargs"),
        ("python3 -c {v}", true, "python3"),
        ("printf '%s' ${x:-{v}}", true, "expansion"),
        // argv mode
        ("{v} --version", false, "program"),
        ("env {v}", false, "program"),
        ("timeout 5 {v}", false, "program"),
        ("find / -exec {v} ';'", false, "program"),
        ("ssh host {v}", false, "program"),
        ("ssh -o {v} host true", false, "ssh -o"),
        ("sh -c {v}", false, "sh"),
        ("python3 -c {v}", false, "python3"),
        ("python3 -c 'print(\"{v}\")'", false, "python3"),
        ("awk '/x/ {{ print }} {v}'", false, "awk"),
        ("sed -e 's/a/{v}/' f", false, "sed"),
        ("xargs printf {v}", false, "xargs"),
        ("podman exec c1 sh -c {v}", false, "sh"),
    ];
    for (command, shell, context) in cases {
        // Even a pattern that admits only safe characters cannot make these safe.
        let err = load(command, *shell, json!({"name": "v", "pattern": "[a-z]+"}))
            .err()
            .unwrap_or_else(|| panic!("{command:?} must be refused"));
        assert!(err.contains("probe.json:1:"), "{command:?}: the error is located: {err}");
        assert!(err.contains("`{v}`") && err.contains(context), "{command:?}: {err}");
    }
}

/// Text read again (another shell's script, a remote command, arithmetic, a JSON argument, a
/// pattern) is allowed only for a parameter whose pattern admits nothing but `[A-Za-z0-9_./-]`.
#[test]
fn contexts_that_read_a_value_again_need_a_restrictive_pattern() {
    let cases: &[(&str, bool)] = &[
        ("sh -c 'printf %s {v}'", false),
        ("eval printf %s {v}", true),
        ("sh -c 'printf %s '{v}; printf x # a later comment", true),
        ("sh -c -- 'printf %s {v}'", false),
        ("sh -c -e 'printf %s {v}'", false),
        ("sh -ec 'printf %s {v}'", false),
        ("flock /tmp/lock -c 'printf %s {v}'", false),
        ("env -S 'printf {v}'", false),
        ("ssh host 'virsh start {v}'", false),
        ("pkill -f qemu-{v}", false),
        ("printf '%s' '{\"name\": \"{v}\"}'", false),
        ("printf %s $(( {v} + 1 ))", true),
        ("sh -c 'printf %s '{v}", true),
        ("bash -c \"printf %s {v}\"", true),
        ("ssh host \"virsh start {v}\"", true),
        ("printf '%s' 'name = \"{v}\"' > /dev/null", true),
    ];
    for (command, shell) in cases {
        for loose in [json!("v"), json!({"name": "v", "pattern": ".*"}), json!({"name": "v", "pattern": "[a-z/ ]+"})] {
            let err = load(command, *shell, loose.clone()).err().unwrap_or_else(|| panic!("{command:?} with {loose}"));
            assert!(err.contains("read again as code") && err.contains("probe.json:1:"), "{command:?}: {err}");
        }
        load(command, *shell, json!({"name": "v", "pattern": "[A-Za-z0-9][A-Za-z0-9_.-]*"}))
            .unwrap_or_else(|e| panic!("{command:?} with a restrictive pattern: {e}"));
    }
}

/// Arithmetic with a restrictive pattern: the subscript attack never reaches the shell, and a
/// number is computed by the real shell.
#[tokio::test]
async fn arithmetic_takes_only_safe_values() {
    let spec = load("printf %s $(( {v} + 1 ))", true, json!({"name": "v", "pattern": "[0-9]+"})).expect("loads");
    let cpi = JsonCpi::unrestricted(spec);
    let out = cpi.call("create_container", &params(json!({"v": "41"})), &CallOptions::default()).await.expect("runs");
    assert_eq!(out.stdout, "42");
    for hostile in ["a[$(touch /tmp/omni-arith-pwned)]", "1+1", "x y"] {
        let err = cpi
            .call("create_container", &params(json!({"v": hostile})), &CallOptions::default())
            .await
            .expect_err(hostile);
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{hostile}");
    }
    assert!(!std::path::Path::new("/tmp/omni-arith-pwned").exists());
}

/// The leading-dash check holds at the start of every word, whatever precedes the placeholder.
#[test]
fn option_injection_is_caught_wherever_the_value_starts_a_word() {
    let two = |command: &str, shell: bool| {
        let text = json!({
            "name": "probe", "type": "container", "validation": {"required_commands": ["ls", "sh"]},
            "actions": {"create_container": {"shell": shell, "command": command, "params": ["a", "v"]}}
        });
        JsonCpi::unrestricted(spec::load_str("probe.json", text.to_string()).expect("loads"))
    };
    for (command, shell) in
        [("ls {a}{v}", false), ("ls \"\"{v} {a}", true), ("ls {a}{v}", true), ("ls '{v}' {a}", true)]
    {
        let plan = two(command, shell).plan(
            "create_container",
            &params(json!({"a": "", "v": "-la"})),
            &CallOptions::default(),
        );
        let err = plan.expect_err(command);
        assert_eq!(err.param.as_deref(), Some("v"), "{command}: {err:?}");
    }
    let plan = two("ls x{v} {a}", true).plan(
        "create_container",
        &params(json!({"a": "", "v": "-la"})),
        &CallOptions::default(),
    );
    assert!(plan.is_ok(), "after literal text a dash is data");
}

/// Map keys are held to the parameter's pattern, like its values.
#[test]
fn map_keys_match_the_pattern() {
    let text = json!({
        "name": "probe", "type": "container", "validation": {"required_commands": ["echo"]},
        "actions": {"create_container": {"command": "echo --env {vars}",
            "params": [{"name": "vars", "type": "map", "pattern": "[A-Z_]+|[a-z0-9]+"}]}}
    });
    let cpi = JsonCpi::unrestricted(spec::load_str("probe.json", text.to_string()).expect("loads"));
    let plan = |vars: Value| cpi.plan("create_container", &params(json!({ "vars": vars })), &CallOptions::default());
    assert!(plan(json!({"MODE": "prod"})).is_ok());
    let err = plan(json!({"LD_PRELOAD=/tmp/x.so x": "1"})).expect_err("a key outside the pattern");
    assert!(err.message.contains("does not match"), "{err:?}");
}

/// OmniCloud files go through the same parser: a JSON argument gets the inferred pattern, a
/// placeholder in the program's position makes its action unsupported, and a summary closes
/// the file.
#[tokio::test]
async fn compat_judges_every_placeholder_with_the_native_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cpi-attack.json");
    std::fs::write(
        &file,
        r#"{"name": "attack_cpi", "type": "virt", "actions": {
  "create_vm": {"command": "printf '%s\n' '{\"name\": \"{name}\"}'", "params": ["name"]},
  "start_vm": {"command": "{qemu_binary} -name {name}", "params": ["qemu_binary", "name"]},
  "stop_vm": {"command": "printf '%s' \"{name}\" | cat", "params": ["name"]},
  "delete_vm": {"command": "cat <<EOF\n{name}\nEOF", "params": ["name"]}
}}"#,
    )
    .expect("write");
    let loaded = spec::load_file_compat(&file, Compat::OmniCloud).expect("loads");
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    let all = warnings.join("\n");
    assert!(all.contains("inferred pattern `[A-Za-z0-9][A-Za-z0-9_.-]*`"), "{all}");
    assert!(all.contains("cpi-attack.json:2:"), "located at the original line: {all}");
    assert!(
        all.contains("summary: 2 actions runnable (1 with inferred patterns: create_vm (name)), 2 unsupported"),
        "{all}"
    );
    let cpi = JsonCpi::unrestricted(loaded);
    let call = |action: &'static str, name: &'static str| {
        let cpi = cpi.clone();
        async move { cpi.call(action, &params(json!({ "name": name })), &CallOptions::default()).await }
    };
    assert_eq!(call("create_vm", "web-1").await.expect("a safe name runs").stdout, "{\"name\": \"web-1\"}\n");
    let err = call("create_vm", "x\", \"admin\": true, \"y\": \"").await.expect_err("keys cannot be added");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert_eq!(call("start_vm", "x").await.expect_err("unsupported").kind, ErrorKind::Unsupported);
    assert_eq!(call("delete_vm", "x").await.expect_err("unsupported").kind, ErrorKind::Unsupported);
    let hostile = "a'; touch /tmp/omni-compat-pwned; echo '$(id)\"";
    assert_eq!(call("stop_vm", hostile).await.expect("a whole quoted word is data").stdout, hostile);
    assert!(!std::path::Path::new("/tmp/omni-compat-pwned").exists());
}

struct Values<'a>(&'a [(&'a str, Value)]);

impl Bindings for Values<'_> {
    fn get(&self, name: &str) -> Option<Binding<'_>> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, value)| Binding { value, allow_dash: false })
    }
}

/// Runs a rendered argv, with `/bin/sh` replaced by `shell`, and splits what `printf '%s\0'`
/// printed.
fn run(argv: &[String], shell: &str) -> Vec<String> {
    let program = if argv[0] == "/bin/sh" { shell } else { argv[0].as_str() };
    let out = std::process::Command::new(program).args(&argv[1..]).output().expect("runs");
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8 back");
    text.strip_suffix('\0').map(|t| t.split('\0').map(str::to_string).collect()).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// For arbitrary strings, every placeholder's value reaches the program as exactly the
    /// bytes given, in one argument, in argv mode and in shell mode, under dash and bash.
    #[test]
    fn every_value_arrives_as_exactly_one_argument(
        a in "[^\\x00-][^\\x00]{0,40}",
        b in "[^\\x00]{0,40}",
        c in "[^\\x00]{0,40}",
    ) {
        let values = [("a", json!(a.clone())), ("b", json!(b.clone())), ("c", json!(c.clone()))];
        let expected = vec![a.clone(), format!("x{b}"), format!("y{c}z")];
        let argv_mode = Template::parse("printf '%s\\0' {a} x{b}", Mode::Argv).expect("parses");
        let argv = argv_mode.render(&Values(&values)).expect("renders");
        prop_assert_eq!(&run(&argv, "/bin/sh")[..], &expected[..2]);
        let shell_mode =
            Template::parse("printf '%s\\0' {a} \"x{b}\" 'y{c}z' | cat", Mode::Shell).expect("parses");
        let argv = shell_mode.render(&Values(&values)).expect("renders");
        // The script is the template's text with references; the values are arguments.
        prop_assert_eq!(&argv[2], "printf '%s\\0' \"${1}\" \"x${2}\" 'y'\"${3}\"'z' | cat");
        for shell in ["/bin/dash", "/bin/bash"] {
            prop_assert_eq!(&run(&argv, shell), &expected, "{}", shell);
        }
    }
}
