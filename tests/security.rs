//! The parameter cases of `../shared/design/SECURITY.md`, end to end: a value goes through a real
//! spec into a real process, which reports the exact argv it received (NUL-separated).

mod support;

use omni_cpi::{spec, CallOptions, ErrorKind, JsonCpi, Params};
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
    JsonCpi::new(spec::load_str("probe.json", SPEC.to_string()).expect("probe spec loads"))
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
