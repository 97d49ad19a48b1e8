//! Turns an action's stdout into a structured result, as its spec's `output` says.

use serde_json::{Map, Value};

use crate::json::spec::OutputFormat;

/// `Ok(None)` for raw output (the caller keeps stdout as it is).
pub fn parse(format: &OutputFormat, stdout: &str) -> Result<Option<Value>, String> {
    let value = match format {
        OutputFormat::Raw => return Ok(None),
        OutputFormat::Text => Value::String(stdout.trim().to_string()),
        OutputFormat::Lines => non_empty_lines(stdout).map(|l| Value::String(l.to_string())).collect(),
        OutputFormat::Json => {
            if stdout.trim().is_empty() {
                return Err("expected JSON, got empty output".into());
            }
            serde_json::from_str(stdout).map_err(|e| format!("output is not valid JSON: {e}"))?
        }
        OutputFormat::JsonLines => non_empty_lines(stdout)
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str::<Value>(line).map_err(|e| format!("output line {} is not valid JSON: {e}", i + 1))
            })
            .collect::<Result<Value, _>>()?,
        OutputFormat::Rules(rules) => rules.apply(stdout)?,
        OutputFormat::Regex { pattern, multiple } => {
            let captures_to_object = |caps: regex::Captures<'_>| {
                pattern
                    .capture_names()
                    .flatten()
                    .map(|name| {
                        let v = caps.name(name).map_or(Value::Null, |m| Value::String(m.as_str().to_string()));
                        (name.to_string(), v)
                    })
                    .collect::<Map<_, _>>()
            };
            if *multiple {
                pattern.captures_iter(stdout).map(|c| Value::Object(captures_to_object(c))).collect()
            } else {
                let caps = pattern
                    .captures(stdout)
                    .ok_or_else(|| format!("output does not match the pattern `{}`", pattern.as_str()))?;
                Value::Object(captures_to_object(caps))
            }
        }
    };
    Ok(Some(value))
}

fn non_empty_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;
    use serde_json::json;

    #[test]
    fn parses_each_format() {
        assert_eq!(parse(&OutputFormat::Raw, "x").expect("raw"), None);
        assert_eq!(parse(&OutputFormat::Text, " running\n").expect("text"), Some(json!("running")));
        assert_eq!(parse(&OutputFormat::Lines, "a\n\n b \n").expect("lines"), Some(json!(["a", "b"])));
        assert_eq!(parse(&OutputFormat::Json, "[{\"a\":1}]").expect("json"), Some(json!([{"a": 1}])));
        assert_eq!(
            parse(&OutputFormat::JsonLines, "{\"a\":1}\n{\"a\":2}\n").expect("jsonl"),
            Some(json!([{"a": 1}, {"a": 2}]))
        );
        let one = OutputFormat::Regex { pattern: Regex::new(r"State: (?P<state>\w+)").expect("re"), multiple: false };
        assert_eq!(parse(&one, "Name: x\nState: RUNNING\n").expect("regex"), Some(json!({"state": "RUNNING"})));
        let many = OutputFormat::Regex { pattern: Regex::new(r"(?m)^(?P<name>\S+)$").expect("re"), multiple: true };
        assert_eq!(parse(&many, "a\nb\n").expect("regex"), Some(json!([{"name": "a"}, {"name": "b"}])));
    }

    #[test]
    fn reports_unparseable_output() {
        assert!(parse(&OutputFormat::Json, "").expect_err("empty").contains("empty"));
        assert!(parse(&OutputFormat::Json, "{").expect_err("bad").contains("not valid JSON"));
        assert!(parse(&OutputFormat::JsonLines, "{}\nx\n").expect_err("bad").contains("line 2"));
        let one = OutputFormat::Regex { pattern: Regex::new(r"(?P<id>\d+)").expect("re"), multiple: false };
        assert!(parse(&one, "none").is_err());
    }
}
