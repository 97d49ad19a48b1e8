//! Parameters from the command line: `key=value` (a string), `key:=json` (any JSON value, for
//! lists and maps), and `--params-file FILE` (a JSON object). Command-line pairs win over the file.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context, Result};
use omni_cpi::Params;
use serde_json::Value;

pub fn collect(pairs: &[OsString], file: Option<&Path>) -> Result<Params> {
    let mut params = match file {
        None => Params::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => bail!("{}: the parameters file must hold one JSON object", path.display()),
                Err(e) => bail!("{}:{}:{}: invalid JSON: {e}", path.display(), e.line(), e.column()),
            }
        }
    };
    for pair in pairs {
        let (key, value) = parse_pair(pair)?;
        params.insert(key, value);
    }
    Ok(params)
}

fn parse_pair(pair: &OsString) -> Result<(String, Value)> {
    let Some(text) = pair.to_str() else {
        let shown = pair.to_string_lossy();
        let key = shown.split('=').next().unwrap_or_default();
        bail!("parameter `{key}` is not valid UTF-8; CPI parameters are text (pass bytes base64-encoded if you must)");
    };
    if let Some((key, json)) = text.split_once(":=") {
        if !key.contains('=') {
            check_key(key, text)?;
            let value = serde_json::from_str(json).with_context(|| {
                format!("parameter `{key}`: `{json}` is not valid JSON (use key=value for plain text)")
            })?;
            return Ok((key.to_string(), value));
        }
    }
    let Some((key, value)) = text.split_once('=') else {
        bail!("`{text}` is not a parameter: write key=value, or key:=JSON for lists and maps");
    };
    check_key(key, text)?;
    Ok((key.to_string(), Value::String(value.to_string())))
}

fn check_key(key: &str, text: &str) -> Result<()> {
    if key.is_empty() {
        bail!("`{text}` has an empty parameter name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_strings_and_json_values() {
        let params =
            collect(&args(&["name=a=b", "cmd:=[\"sh\",\"-c\",\"exit 3\"]", "env:={\"A\":\"1\"}", "empty="]), None)
                .expect("parses");
        assert_eq!(
            Value::Object(params),
            json!({"name": "a=b", "cmd": ["sh", "-c", "exit 3"], "env": {"A": "1"}, "empty": ""})
        );
    }

    #[test]
    fn rejects_malformed_pairs() {
        assert!(collect(&args(&["novalue"]), None).is_err());
        assert!(collect(&args(&["=x"]), None).is_err());
        assert!(collect(&args(&["x:=nope"]), None).is_err());
    }

    #[test]
    fn rejects_non_utf8_values_naming_the_parameter() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"name=\xff".to_vec());
        let err = collect(&[bad], None).expect_err("non-UTF-8").to_string();
        assert!(err.contains("parameter `name`"), "{err}");
    }
}
