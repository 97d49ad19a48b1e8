//! A call's parameters and the one check both forms of CPI apply to them before anything runs:
//! presence, type, pattern, NUL bytes and (where the host cannot see how a value is used) a
//! leading `-`.

use regex::Regex;
use serde_json::Value;

use crate::contract::catalogue::ParamType;
use crate::contract::error::{CpiError, ErrorKind};

/// Parameters of a call, by name.
pub type Params = serde_json::Map<String, Value>;

/// How one parameter is declared, as the check sees it: a view of a spec's `ParamDecl` or of a
/// component action's catalogue parameter.
#[derive(Debug, Clone, Copy)]
pub struct ParamRule<'a> {
    pub name: &'a str,
    pub ty: ParamType,
    /// Missing is an error (unless `has_default`).
    pub required: bool,
    /// A default setting stands in when the caller gives none.
    pub has_default: bool,
    /// The whole value (each item of a list, each key and value of a map) must match.
    pub pattern: Option<&'a Regex>,
    /// Refuse values (items) that begin with `-`. JSON specs leave this to the renderer, which
    /// knows where each value stands (`--name={name}` is safe, a bare `{name}` argument is not);
    /// a component's values go where its code puts them, so the host refuses them up front unless
    /// the catalogue says the parameter is an argv of its own.
    pub refuse_leading_dash: bool,
    /// Shown as `***` in errors.
    pub secret: bool,
}

/// Checks `params` against the declared rules; the first problem is a typed `invalid_argument`
/// naming the action and the parameter.
pub fn check<'a>(
    action: &str,
    rules: impl IntoIterator<Item = ParamRule<'a>>,
    params: &Params,
) -> Result<(), CpiError> {
    for rule in rules {
        let Some(value) = params.get(rule.name).filter(|v| !v.is_null()) else {
            if rule.required && !rule.has_default {
                return Err(invalid(action, rule.name, format!("missing required parameter `{}`", rule.name)));
            }
            continue;
        };
        check_value(action, &rule, value)?;
    }
    Ok(())
}

fn check_value(action: &str, rule: &ParamRule<'_>, value: &Value) -> Result<(), CpiError> {
    let name = rule.name;
    if !rule.ty.accepts(value) {
        return Err(invalid(
            action,
            name,
            format!(
                "parameter `{name}` must be {} ({}), got {}{}",
                rule.ty.with_article(),
                rule.ty.expected(),
                describe(value),
                match rule.ty {
                    ParamType::List => format!(" (write {name}:='[...]')"),
                    ParamType::Map => format!(" (write {name}:='{{...}}')"),
                    _ => String::new(),
                }
            ),
        ));
    }
    // Items as text: a list's elements; a map's keys and values (a key becomes text too, `KEY=value`).
    let items: Vec<String> = match value {
        Value::Array(items) => items.iter().map(scalar_text).collect(),
        Value::Object(map) => map.iter().flat_map(|(k, v)| [k.clone(), scalar_text(v)]).collect(),
        other => vec![scalar_text(other)],
    };
    let shown = |item: &str| if rule.secret { crate::secrets::MASK.to_string() } else { format!("{item:?}") };
    for item in &items {
        if item.contains('\0') {
            return Err(invalid(
                action,
                name,
                format!("parameter `{name}` contains a NUL byte, which no program argument can carry"),
            ));
        }
        if rule.refuse_leading_dash && item.starts_with('-') {
            return Err(invalid(
                action,
                name,
                format!(
                    "parameter `{name}`: value {} begins with `-`, which a program could read as an option; \
                     pass the name without the dash",
                    shown(item)
                ),
            ));
        }
    }
    if let Some(pattern) = rule.pattern {
        if let Some(bad) = items.iter().find(|item| !pattern.is_match(item)) {
            let source = pattern.as_str().trim_start_matches("^(?:").trim_end_matches(")$");
            return Err(invalid(
                action,
                name,
                format!("parameter `{name}`: value {} does not match the pattern `{source}`", shown(bad)),
            ));
        }
    }
    Ok(())
}

fn invalid(action: &str, param: &str, message: String) -> CpiError {
    CpiError::for_param(ErrorKind::InvalidArgument, action, param, message)
}

/// A scalar as the text a program receives.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parameters the caller passed that the action does not declare, sorted.
pub fn ignored<'a>(declared: impl IntoIterator<Item = &'a str>, params: &Params) -> Vec<String> {
    let declared: Vec<&str> = declared.into_iter().collect();
    let mut ignored: Vec<String> = params.keys().filter(|k| !declared.contains(&k.as_str())).cloned().collect();
    ignored.sort();
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, ty: ParamType) -> ParamRule<'_> {
        ParamRule {
            name,
            ty,
            required: true,
            has_default: false,
            pattern: None,
            refuse_leading_dash: false,
            secret: false,
        }
    }

    fn params(value: Value) -> Params {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn type_presence_nul_dash_and_pattern_are_checked_in_that_order() {
        let err = check("a", [rule("n", ParamType::String)], &params(json!({}))).expect_err("missing");
        assert_eq!((err.kind, err.param.as_deref()), (ErrorKind::InvalidArgument, Some("n")));
        let with_default = ParamRule { has_default: true, ..rule("n", ParamType::String) };
        assert!(check("a", [with_default], &params(json!({}))).is_ok());
        let err = check("a", [rule("p", ParamType::List)], &params(json!({"p": "80"}))).expect_err("type");
        assert!(err.message.contains("p:='[...]'"), "{}", err.message);
        let err = check("a", [rule("n", ParamType::String)], &params(json!({"n": "a\0b"}))).expect_err("NUL");
        assert!(err.message.contains("NUL"), "{}", err.message);
        let dash = ParamRule { refuse_leading_dash: true, ..rule("n", ParamType::String) };
        assert!(check("a", [dash], &params(json!({"n": "--privileged"}))).is_err());
        assert!(check("a", [dash], &params(json!({"n": "x-y"}))).is_ok());
        let pattern = Regex::new("^(?:[a-z]+)$").expect("pattern");
        let patterned = ParamRule { pattern: Some(&pattern), ..rule("n", ParamType::Map) };
        let err = check("a", [patterned], &params(json!({"n": {"ok": "NO"}}))).expect_err("pattern");
        assert!(err.message.contains("\"NO\""), "{}", err.message);
        let secret = ParamRule { pattern: Some(&pattern), secret: true, ..rule("n", ParamType::String) };
        let err = check("a", [secret], &params(json!({"n": "Hunter2"}))).expect_err("pattern");
        assert!(!err.message.contains("Hunter2"), "{}", err.message);
    }

    #[test]
    fn a_map_is_held_to_the_dash_rule_by_its_keys_and_values() {
        let dash = ParamRule { refuse_leading_dash: true, ..rule("env", ParamType::Map) };
        assert!(check("a", [dash], &params(json!({"env": {"A": "1"}}))).is_ok());
        assert!(check("a", [dash], &params(json!({"env": {"A": "-1"}}))).is_err());
        assert!(check("a", [dash], &params(json!({"env": {"-A": "1"}}))).is_err());
    }
}
