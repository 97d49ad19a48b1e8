//! What each fuzz target checks, for the fuzz targets in fuzz_targets/ (`cargo xtask fuzz`) and for
//! the stable test that replays the saved inputs, tests/it/fuzz_regressions.rs, which includes this
//! file with `#[path]`. Each check takes the raw input bytes and panics when something is wrong.

use std::collections::HashMap;

use arbitrary::{Arbitrary, Unstructured};
use omni_cpi::diagnostic::{Diagnostic, SourceFile};
use omni_cpi::json::spec::{self, compat, json};
use omni_cpi::json::template::{Binding, Bindings, Mode, Template};
use serde_json::Value;

/// A target's checks: they take the raw input and panic when something is wrong.
pub type Check = fn(&[u8]);

/// The targets by name: the fuzz_targets/ binaries and the seeds/ and regressions/ directories.
pub const TARGETS: [(&str, Check); 3] =
    [("spec_load", spec_load), ("compat_translate", compat_translate), ("render", render)];

/// Run once by each fuzz target before the first input. libfuzzer-sys installs a panic hook that
/// aborts on every panic, even one the host catches; this lets a panic raised inside brush-parser
/// unwind instead, to the host's guard (host/src/json/template/shell.rs, `guarded`), which turns it into
/// a load error. brush-parser 0.4 unwraps integer parses (`99999999999>x`, `~99999999999999999999`;
/// fixed upstream by reubeno/brush#1271): without this the fuzzer stops at them within a minute.
/// A panic the host does not catch still aborts, in libfuzzer-sys's wrapper around each input.
/// Drop this once the host uses a brush-parser release with the fix.
pub fn let_the_host_catch_shell_parser_panics() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.location().is_some_and(|at| at.file().contains("brush-parser")) {
            abort(info);
        }
    }));
}

/// Every diagnostic renders (the CLI prints them all).
fn render_all(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        let _ = diagnostic.to_string();
    }
}

/// The spec loader: never panics; a refusal carries at least one error, and every diagnostic
/// renders.
pub fn spec_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match spec::load_str("fuzz.json", text.to_string()) {
        Ok(spec) => {
            render_all(&spec.warnings);
            render_all(&spec::check_required_actions(&spec));
        }
        Err(diagnostics) => {
            assert!(diagnostics.has_errors(), "load_str refused the spec without an error: {diagnostics}");
            let _ = diagnostics.to_string();
        }
    }
}

/// `--compat omnicloud` as spec::load_file_compat runs it, from text: parse, translate, load the
/// native text. Never panics; the translation is JSON; every diagnostic renders.
pub fn compat_translate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = SourceFile::new("fuzz.json", text.to_string());
    let root = match json::parse(source.text()) {
        Ok(root) => root,
        Err(e) => {
            let at = source.locate(json::Span::new(e.offset, e.offset + 1));
            let _ = Diagnostic::error(format!("invalid JSON: {}", e.message)).at(at).to_string();
            return;
        }
    };
    let translation = compat::translate(&source, &root);
    render_all(&translation.warnings);
    assert!(
        serde_json::from_str::<Value>(&translation.native).is_ok(),
        "the translation is not JSON:\n{}",
        translation.native
    );
    match spec::load_str("fuzz.json (translated by --compat omnicloud)", translation.native) {
        Ok(spec) => render_all(&spec.warnings),
        Err(diagnostics) => render_all(&diagnostics.0),
    }
}

/// The `render` target's input, decoded from the fuzzer's bytes by `arbitrary`.
#[derive(Arbitrary, Debug)]
pub struct RenderInput {
    pub mode: FuzzMode,
    pub allow_dash: bool,
    /// The values, bound in turn to the template's placeholders; only the first 4 are used.
    pub values: Vec<FuzzValue>,
    /// Last, so it takes the rest of the input: a seed is a short header and then the template.
    pub template: String,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzMode {
    Argv,
    Shell,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum FuzzValue {
    Str(String),
    List(Vec<String>),
    Map(Vec<(String, String)>),
    Int(i64),
    Null,
    /// An optional parameter the caller did not give.
    Absent,
}

impl FuzzValue {
    fn to_json(&self) -> Option<Value> {
        Some(match self {
            FuzzValue::Str(s) => Value::String(s.clone()),
            FuzzValue::List(items) => items.iter().cloned().map(Value::String).collect(),
            FuzzValue::Map(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
            }
            FuzzValue::Int(n) => Value::from(*n),
            FuzzValue::Null => Value::Null,
            FuzzValue::Absent => return None,
        })
    }

    /// The text a scalar renders as; None for lists, maps, null and absent values.
    fn scalar_text(&self) -> Option<String> {
        match self {
            FuzzValue::Str(s) => Some(s.clone()),
            FuzzValue::Int(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

struct Bound {
    values: HashMap<String, Option<Value>>,
    allow_dash: bool,
}

impl Bindings for Bound {
    fn get(&self, name: &str) -> Option<Binding<'_>> {
        let value = self.values.get(name)?.as_ref()?;
        Some(Binding { value, allow_dash: self.allow_dash })
    }
}

/// Marks where placeholder `k` lands in the `render` check: private-use characters, so neither a
/// template nor a value holding them is checked this way.
fn marker(k: usize) -> String {
    format!("\u{E000}{k}\u{E001}")
}

fn has_marker_chars(text: &str) -> bool {
    text.contains(['\u{E000}', '\u{E001}'])
}

/// Replaces every marker in `text` by the text of its value.
fn substitute(text: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\u{E000}') {
        out.push_str(&rest[..start]);
        let after = &rest[start + '\u{E000}'.len_utf8()..];
        let end = after.find('\u{E001}').expect("a marker is closed");
        out.push_str(&values[after[..end].parse::<usize>().expect("a marker holds its index")]);
        rest = &after[end + '\u{E001}'.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// The template renderer: parses, and when that succeeds renders with every placeholder bound.
/// Never panics, and no rendered argument holds a NUL the template did not. With scalar values,
/// compared with a rendering that binds each placeholder to a unique marker: each value lands
/// whole where its marker did, with nothing else changed; in argv mode once per occurrence, in the
/// argument the placeholder belongs to; in shell mode as an argument of its own, never in the
/// script.
pub fn render(data: &[u8]) {
    let Ok(input) = RenderInput::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mode = match input.mode {
        FuzzMode::Argv => Mode::Argv,
        FuzzMode::Shell => Mode::Shell,
    };
    let Ok(template) = Template::parse(&input.template, mode) else { return };
    let mut names: Vec<&str> = Vec::new();
    for placeholder in template.placeholders() {
        if !names.contains(&placeholder.name.as_str()) {
            names.push(&placeholder.name);
        }
    }
    let values = &input.values[..input.values.len().min(4)];
    let given: Vec<&FuzzValue> = (0..names.len())
        .map(|k| if values.is_empty() { &FuzzValue::Absent } else { &values[k % values.len()] })
        .collect();
    let bound = Bound {
        values: names.iter().zip(&given).map(|(name, value)| (name.to_string(), value.to_json())).collect(),
        allow_dash: input.allow_dash,
    };
    let rendered = template.render(&bound);
    let Ok(argv) = rendered else { return };
    if !input.template.contains('\0') {
        assert!(!argv.iter().any(|arg| arg.contains('\0')), "a rendered argument holds a NUL: {argv:?}");
    }

    if has_marker_chars(&input.template) {
        return;
    }
    let Some(texts) = given.iter().map(|value| value.scalar_text()).collect::<Option<Vec<String>>>() else {
        return;
    };
    if texts.iter().any(|text| has_marker_chars(text)) {
        return;
    }
    let markers = Bound {
        values: names.iter().enumerate().map(|(k, name)| (name.to_string(), Some(Value::String(marker(k))))).collect(),
        allow_dash: input.allow_dash,
    };
    let Ok(shape) = template.render(&markers) else { return };
    for (k, name) in names.iter().enumerate() {
        let occurrences = template.placeholders().iter().filter(|p| p.name == *name).count();
        let landed: usize = shape.iter().map(|arg| arg.matches(&marker(k)).count()).sum();
        match mode {
            Mode::Argv => assert_eq!(
                landed, occurrences,
                "`{{{name}}}` occurs {occurrences} times but lands {landed} times: {shape:?}"
            ),
            Mode::Shell => assert!(landed > 0, "the value of `{{{name}}}` is not passed: {shape:?}"),
        }
    }
    if mode == Mode::Shell {
        let in_script = shape.iter().find(|arg| has_marker_chars(arg) && (0..names.len()).all(|k| **arg != marker(k)));
        assert!(in_script.is_none(), "a value is part of a larger argument, such as the script: {shape:?}");
    }
    let expected: Vec<String> = shape.iter().map(|arg| substitute(arg, &texts)).collect();
    assert_eq!(argv, expected, "values {texts:?} did not land exactly where the placeholders are ({shape:?})");
}
