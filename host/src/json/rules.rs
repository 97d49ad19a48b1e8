//! OmniCloud's output rules (`parse_rules`): named fields extracted from a command's text output by
//! regular expressions. Native specs use them as `"output": {"format": "parse_rules", "rules": …}`;
//! `--compat omnicloud` translates the corpus's `parse_rules` into that.
//!
//! - `object`: each pattern's `regex` is searched in the whole output; the field is capture
//!   `group` (0, the whole match, when absent). `transform: "boolean"` makes it whether the regex
//!   matched; `"number"` parses it as a number. A pattern that does not match is an error unless
//!   it is `optional` (then the field is absent) or boolean (then it is false).
//! - `array`: the output is split by the `separator` regex; each non-empty piece is parsed as an
//!   object; pieces that do not match every required pattern (headers, blank lines) are skipped.
//! - `properties`: an object, plus `array_patterns` whose fields collect every match.

use regex::Regex;
use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Text,
    Boolean,
    Number,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    pub field: String,
    pub regex: Regex,
    pub group: usize,
    pub transform: Transform,
    pub optional: bool,
}

#[derive(Debug, Clone)]
pub enum Rules {
    Object(Vec<Pattern>),
    Array { separator: Regex, item: Vec<Pattern> },
    Properties { patterns: Vec<Pattern>, arrays: Vec<Pattern> },
}

fn compile_patterns(value: Option<&Value>, what: &str) -> Result<Vec<Pattern>, String> {
    let Some(map) = value.and_then(Value::as_object) else { return Ok(Vec::new()) };
    let mut patterns = Vec::with_capacity(map.len());
    for (field, spec) in map {
        let regex_text = spec
            .get("regex")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{what} `{field}` needs a `regex` string"))?;
        let regex = Regex::new(regex_text)
            .map_err(|e| format!("{what} `{field}`: invalid regex: {}", e.to_string().lines().last().unwrap_or("")))?;
        let group = match spec.get("group") {
            None => 0,
            Some(g) => {
                g.as_u64().map(|g| g as usize).ok_or_else(|| format!("{what} `{field}`: `group` must be a number"))?
            }
        };
        if group >= regex.captures_len() {
            return Err(format!("{what} `{field}`: the regex has no group {group}"));
        }
        let transform = match spec.get("transform").and_then(Value::as_str) {
            None => Transform::Text,
            Some("boolean") => Transform::Boolean,
            Some("number") => Transform::Number,
            Some(other) => return Err(format!("{what} `{field}`: unknown transform `{other}` (boolean or number)")),
        };
        let optional = spec.get("optional").and_then(Value::as_bool).unwrap_or(false);
        patterns.push(Pattern { field: field.clone(), regex, group, transform, optional });
    }
    Ok(patterns)
}

impl Rules {
    /// Checks and compiles a rules object; the error says what is wrong, for the loader to locate.
    pub fn compile(value: &Value) -> Result<Rules, String> {
        let kind =
            value.get("type").and_then(Value::as_str).ok_or("rules need a `type`: object, array or properties")?;
        let patterns = compile_patterns(value.get("patterns"), "pattern")?;
        match kind {
            "object" => Ok(Rules::Object(patterns)),
            "array" => {
                let separator = value.get("separator").and_then(Value::as_str).unwrap_or("\n");
                let separator = Regex::new(separator).map_err(|e| format!("invalid separator: {e}"))?;
                Ok(Rules::Array { separator, item: patterns })
            }
            "properties" => {
                let arrays = compile_patterns(value.get("array_patterns"), "array pattern")?;
                Ok(Rules::Properties { patterns, arrays })
            }
            other => Err(format!("unknown rules type `{other}`: object, array or properties")),
        }
    }

    pub fn apply(&self, output: &str) -> Result<Value, String> {
        match self {
            Rules::Object(patterns) => object(patterns, output).map(Value::Object),
            Rules::Array { separator, item } => Ok(Value::Array(
                separator
                    .split(output)
                    .filter(|piece| !piece.trim().is_empty())
                    .filter_map(|piece| object(item, piece.trim_end_matches('\r')).ok().map(Value::Object))
                    .collect(),
            )),
            Rules::Properties { patterns, arrays } => {
                let mut map = object(patterns, output)?;
                for pattern in arrays {
                    let values: Vec<Value> = pattern
                        .regex
                        .captures_iter(output)
                        .filter_map(|caps| caps.get(pattern.group).map(|m| convert(pattern, m.as_str())))
                        .collect::<Result<_, _>>()?;
                    map.insert(pattern.field.clone(), Value::Array(values));
                }
                Ok(Value::Object(map))
            }
        }
    }
}

fn convert(pattern: &Pattern, text: &str) -> Result<Value, String> {
    match pattern.transform {
        Transform::Text => Ok(Value::String(text.trim().to_string())),
        Transform::Boolean => Ok(Value::Bool(true)),
        Transform::Number => {
            let number: f64 =
                text.trim().parse().map_err(|_| format!("field `{}`: {text:?} is not a number", pattern.field))?;
            Ok(Number::from_f64(number).map_or(Value::Null, Value::Number))
        }
    }
}

fn object(patterns: &[Pattern], output: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for pattern in patterns {
        match pattern.regex.captures(output).and_then(|caps| caps.get(pattern.group)) {
            Some(m) => {
                map.insert(pattern.field.clone(), convert(pattern, m.as_str())?);
            }
            None if pattern.transform == Transform::Boolean => {
                map.insert(pattern.field.clone(), Value::Bool(false));
            }
            None if pattern.optional => {}
            None => {
                return Err(format!(
                    "field `{}`: the output does not match `{}`",
                    pattern.field,
                    pattern.regex.as_str()
                ))
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_arrays_and_properties() {
        let object = Rules::compile(&json!({"type": "object", "patterns": {
            "version": {"regex": "version ([\\d.]+)", "group": 1},
            "ok": {"regex": "Formatting", "transform": "boolean"},
            "size": {"regex": "size=(\\d+)", "group": 1, "transform": "number"},
            "missing": {"regex": "nope (x)", "group": 1, "optional": true}}}))
        .expect("compiles");
        assert_eq!(
            object.apply("qemu-img version 10.0.2 size=1024").expect("applies"),
            json!({"version": "10.0.2", "ok": false, "size": 1024.0})
        );
        assert!(object.apply("no version").is_err());

        let array = Rules::compile(&json!({"type": "array", "separator": "\\n", "patterns": {
            "id": {"regex": "^(\\d+)\\s+", "group": 1}, "tag": {"regex": "^\\d+\\s+(\\S+)", "group": 1}}}))
        .expect("compiles");
        assert_eq!(
            array.apply("Snapshot list:\nID TAG\n1 first x\n2 second y\n").expect("applies"),
            json!([{"id": "1", "tag": "first"}, {"id": "2", "tag": "second"}])
        );

        let properties =
            Rules::compile(&json!({"type": "properties", "patterns": {"name": {"regex": "name: (\\S+)", "group": 1}},
            "array_patterns": {"ips": {"regex": "ip: (\\S+)", "group": 1}}}))
            .expect("compiles");
        assert_eq!(
            properties.apply("name: a\nip: 1\nip: 2\n").expect("applies"),
            json!({"name": "a", "ips": ["1", "2"]})
        );
    }

    #[test]
    fn refuses_malformed_rules() {
        assert!(Rules::compile(&json!({"type": "tree", "patterns": {}})).is_err());
        assert!(Rules::compile(&json!({"type": "object", "patterns": {"x": {"regex": "(a"}}})).is_err());
        assert!(Rules::compile(&json!({"type": "object", "patterns": {"x": {"regex": "a", "group": 1}}})).is_err());
        assert!(
            Rules::compile(&json!({"type": "object", "patterns": {"x": {"regex": "a", "transform": "date"}}})).is_err()
        );
    }
}
