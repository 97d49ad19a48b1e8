//! Command templates: parsed once at load, rendered per call.
//!
//! # Syntax
//! A template is split into words the way a POSIX shell splits a simple command: whitespace
//! separates words, `'...'` quotes literally, `"..."` quotes with `\"` and `\\` as the only escapes,
//! and a backslash outside quotes escapes the next character. Nothing else is shell syntax: pipes,
//! redirections, `;`, `&`, backticks and `$` expansions are load errors in a template that runs
//! without a shell, because the author almost certainly expected a shell to interpret them.
//!
//! A *placeholder* is `{` identifier `}` with identifier `[A-Za-z_][A-Za-z0-9_]*`. A `{{` always
//! passes through literally together with the text after it, so Go templates such as
//! `--format '{{json .}}'` or `'{{.ID}} {{.Names}}'` reach the program exactly as written. Any other
//! brace is literal too. A placeholder may stand alone as a word (`{name}`) or be embedded in one
//! (`--name={name}`, `/var/log/lxc/{name}.log`).
//!
//! # Where a value may stand
//! Every placeholder gets a [`Context`] at load, from the words around it ([`contexts`] holds
//! the one table of programs that read arguments again) and, in shell mode, from the parsed
//! script ([`shell`]):
//! - [`Context::Data`]: an argument the program reads as data;
//! - [`Context::Reparsed`]: text read again (the script of `sh -c`, an ssh remote command,
//!   arithmetic, a `pkill` pattern): allowed only when the parameter's pattern admits nothing but
//!   [`safe::SAFE_SET`], which the loader checks and rendering checks again per value;
//! - [`Context::Refused`]: the program's position, an interpreter's code, a comment, a
//!   here-document, backquotes: a load error, whatever the pattern.
//!
//! # Rendering (see `cpis/REFERENCE.md` for the user-facing rules)
//! Every value lands inside the argument its placeholder belongs to and is never scanned again:
//! `x; rm -rf /` is one argv element. Values containing NUL are refused; so is a value that would
//! begin an argument with `-` (option injection), wherever the placeholder stands in its word,
//! unless its parameter allows it or a literal `--` came earlier. A list or map bound to a
//! whole-word placeholder that follows a flag word repeats the flag per item (`--env {env}` →
//! `--env A=1 --env B=2`); elsewhere its items become separate words. An absent optional value
//! drops its word, and the flag word right before it.
//!
//! # Shell mode
//! Only for specs that opt in with `"shell": true`. The script is parsed at load; at render each
//! placeholder becomes a positional reference (`"${1}"`, `${1}` inside double quotes, `'"${1}"'`
//! inside single quotes) and the values follow the script as arguments:
//! `/bin/sh -c SCRIPT sh VALUE1 VALUE2 …`. No value is ever part of the script text.

mod contexts;
pub mod safe;
mod shell;

pub use contexts::Context;
pub use shell::Quoting;

use serde_json::Value;

/// Longest value (bytes) accepted for one placeholder; Linux refuses single arguments over 128 KiB.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The programs that read an argument again, as `(names, what is read again)`: the table
/// `cpis/REFERENCE.md` documents.
pub fn context_table() -> impl Iterator<Item = (&'static [&'static str], &'static str)> {
    contexts::table_rows()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub name: String,
    /// Byte offset of the `{` in the template source.
    pub offset: usize,
    /// Where its value lands.
    pub context: Context,
}

impl Placeholder {
    /// Length of `{name}` in the source.
    pub fn source_len(&self) -> usize {
        self.name.len() + 2
    }
}

/// A template (a command, or a request's URL, header or body) that cannot be parsed; `offset`/`len`
/// locate it in the string it came from, in bytes of the decoded string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
    pub help: Option<String>,
}

/// A value a caller or spec supplied that cannot be rendered safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {message}")]
pub struct RenderError {
    pub param: String,
    pub message: String,
}

/// What a placeholder is bound to at render time.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub value: &'a Value,
    /// The parameter declares `"allow_dash": true`: its values may begin with `-`.
    pub allow_dash: bool,
}

/// Resolves placeholder names; `None` means an optional value that was not given.
pub trait Bindings {
    fn get(&self, name: &str) -> Option<Binding<'_>>;
}

/// A rendered command before it becomes an argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Argv(Vec<String>),
    /// A shell script that refers to its values as `${1}`, `${2}`, …, and those values.
    Script {
        script: String,
        args: Vec<String>,
    },
}

/// `$0` of a shell-mode script: what the shell names itself in its error messages.
const SCRIPT_NAME: &str = "sh";

impl Rendered {
    pub fn into_argv(self) -> Vec<String> {
        match self {
            Rendered::Argv(argv) => argv,
            Rendered::Script { script, args } => {
                let mut argv = Vec::with_capacity(args.len() + 4);
                argv.extend(["/bin/sh".to_string(), "-c".to_string(), script, SCRIPT_NAME.to_string()]);
                argv.extend(args);
                argv
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Argv,
    Shell,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// Index into `Template::placeholders`.
    Var(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    pieces: Vec<Piece>,
}

impl Word {
    fn literal(&self) -> Option<String> {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(s) => Some(s.as_str()),
                Piece::Var(_) => None,
            })
            .collect()
    }

    fn whole_var(&self) -> Option<usize> {
        match self.pieces.as_slice() {
            [Piece::Var(i)] => Some(*i),
            _ => None,
        }
    }

    /// A literal word that looks like an option taking a value (`-p`, `--env`), but not `--`.
    fn is_flag(&self) -> bool {
        self.literal().is_some_and(|s| s.len() > 1 && s.starts_with('-') && s != "--" && !s.contains('='))
    }

    /// The word as the context table sees it.
    fn cmd_word(&self) -> contexts::CmdWord {
        let mut text = String::new();
        let mut vars = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => text.push_str(s),
                Piece::Var(i) => {
                    text.push_str(&shell::sentinel(*i));
                    vars.push(*i);
                }
            }
        }
        contexts::CmdWord { literal: self.literal(), vars, nested: Vec::new(), text }
    }
}

/// A piece of an argv word at render: its items, and the parameter (with its `allow_dash`) that
/// supplied them; `None` for literal text.
type WordPart<'a> = (Vec<String>, Option<(&'a str, bool)>);

/// One piece of a shell-mode script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ScriptPiece {
    Literal(String),
    Ref(ScriptRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ScriptRef {
    /// Index into `Template::placeholders`.
    var: usize,
    quoting: Quoting,
    /// Refs with the same number share a shell word.
    word: usize,
    literal_before: bool,
    options_ended: bool,
    /// Nothing but this reference makes up its word, so a list may spread into several words.
    whole_word: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Argv(Vec<Word>),
    Shell(Vec<ScriptPiece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    placeholders: Vec<Placeholder>,
    body: Body,
}

impl Template {
    /// Parses a command: its first word names the program and must be literal.
    pub fn parse(source: &str, mode: Mode) -> Result<Template, TemplateError> {
        let mut template = match mode {
            Mode::Argv => Template::lex_argv(source)?,
            Mode::Shell => Template::lex_shell(source)?,
        };
        template.check_program()?;
        match &template.body {
            Body::Argv(words) => {
                let words: Vec<_> = words.iter().map(Word::cmd_word).collect();
                template.classify_argv(&words, 0)?;
            }
            Body::Shell(_) => template.classify_shell(source, None)?,
        }
        Ok(template)
    }

    /// Parses a fragment of arguments appended to `command` (an `optional_params` fragment).
    /// Its values are judged where they land: among the command's own arguments.
    pub fn parse_fragment(source: &str, mode: Mode, command: Option<&Template>) -> Result<Template, TemplateError> {
        let command = command.filter(|c| c.mode() == mode);
        let mut fragment = match mode {
            Mode::Argv => Template::lex_argv(source)?,
            Mode::Shell => Template::lex_shell(source)?,
        };
        match (&fragment.body, command.map(|c| &c.body)) {
            (Body::Argv(words), Some(Body::Argv(command_words))) => {
                // The command's placeholders are numbered after the fragment's; only the
                // fragment's contexts are kept.
                let shift = fragment.placeholders.len();
                let mut all: Vec<contexts::CmdWord> = command_words
                    .iter()
                    .map(|w| {
                        let mut word = w.cmd_word();
                        word.vars.iter_mut().for_each(|v| *v += shift);
                        word.text = word.literal.clone().unwrap_or_else(|| "x".into());
                        word
                    })
                    .collect();
                all.extend(words.iter().map(Word::cmd_word));
                fragment.classify_argv(&all, 0)?;
            }
            (Body::Argv(words), None) => {
                let mut all = vec![contexts::CmdWord {
                    literal: Some("program".into()),
                    vars: vec![],
                    nested: vec![],
                    text: "program".into(),
                }];
                all.extend(words.iter().map(Word::cmd_word));
                fragment.classify_argv(&all, 0)?;
            }
            (Body::Shell(_), _) => fragment.classify_shell(source, command.map(Template::source))?,
            (Body::Argv(_), Some(Body::Shell(_))) => {
                return Err(TemplateError {
                    offset: 0,
                    len: source.len(),
                    message: "a fragment must have its command's mode".into(),
                    help: None,
                })
            }
        }
        Ok(fragment)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn mode(&self) -> Mode {
        match self.body {
            Body::Argv(_) => Mode::Argv,
            Body::Shell(_) => Mode::Shell,
        }
    }

    pub fn placeholders(&self) -> &[Placeholder] {
        &self.placeholders
    }

    /// The program this template runs: its first word, or `sh` in shell mode.
    pub fn program(&self) -> &str {
        match &self.body {
            Body::Argv(words) => match words.first().map(|w| w.pieces.as_slice()) {
                Some([Piece::Literal(program)]) => program,
                _ => "",
            },
            Body::Shell(_) => "sh",
        }
    }

    fn lex_argv(source: &str) -> Result<Template, TemplateError> {
        let mut lexer = Lexer::new(source);
        let words = lexer.words()?;
        Ok(Template { source: source.to_string(), placeholders: lexer.placeholders, body: Body::Argv(words) })
    }

    fn lex_shell(source: &str) -> Result<Template, TemplateError> {
        let mut lexer = Lexer::new(source);
        let pieces = lexer.script_pieces()?;
        Ok(Template { source: source.to_string(), placeholders: lexer.placeholders, body: Body::Shell(pieces) })
    }

    fn check_program(&self) -> Result<(), TemplateError> {
        let Body::Argv(words) = &self.body else {
            if self.source.trim().is_empty() {
                return Err(empty_command());
            }
            return Ok(());
        };
        let Some(first) = words.first() else {
            return Err(empty_command());
        };
        if first.literal().is_none_or(|s| s.is_empty()) {
            let at = self.placeholders.first().map_or(0, |p| p.offset);
            let len = self.placeholders.first().map_or(1, Placeholder::source_len);
            let name = self.placeholders.first().map_or("", |p| p.name.as_str());
            return Err(TemplateError {
                offset: at,
                len,
                message: format!(
                    "placeholder `{{{name}}}` stands in the program's position: the program must be written \
                     literally, not built from a placeholder"
                ),
                help: Some(
                    "a placeholder in the program position would let callers choose what runs; \
                     name the program and pass values as arguments"
                        .into(),
                ),
            });
        }
        Ok(())
    }

    /// Argv mode: `words` is one simple command. Placeholder `i` of this template is var `i`.
    fn classify_argv(&mut self, words: &[contexts::CmdWord], _first: usize) -> Result<(), TemplateError> {
        let mut found = vec![Context::Data; words.iter().flat_map(|w| w.vars.iter()).max().map_or(0, |m| m + 1)];
        contexts::classify(words, &mut found);
        for (placeholder, context) in self.placeholders.iter_mut().zip(found) {
            placeholder.context = context;
        }
        self.refuse_refused()
    }

    /// Shell mode: parse the script (after `prefix`, the command a fragment is appended to)
    /// with every placeholder as a sentinel, and record what the walk found.
    fn classify_shell(&mut self, source: &str, prefix: Option<&str>) -> Result<(), TemplateError> {
        let own = self.placeholders.len();
        let mut script = String::with_capacity(source.len() + 32 * own);
        let mut extra = 0;
        if let Some(prefix) = prefix {
            // The command's own placeholders get numbers after the fragment's.
            let mut lexer = Lexer::new(prefix);
            let pieces = lexer.script_pieces().unwrap_or_default();
            for piece in &pieces {
                match piece {
                    ScriptPiece::Literal(s) => script.push_str(s),
                    ScriptPiece::Ref(r) => script.push_str(&shell::sentinel(own + r.var)),
                }
            }
            extra = lexer.placeholders.len();
            script.push(' ');
        }
        let Body::Shell(pieces) = &self.body else { return Ok(()) };
        for piece in pieces {
            match piece {
                ScriptPiece::Literal(s) => script.push_str(s),
                ScriptPiece::Ref(r) => script.push_str(&shell::sentinel(r.var)),
            }
        }
        let occurrences = shell::analyze(&script, own + extra).map_err(|e| TemplateError {
            offset: 0,
            len: self.source.len(),
            message: e.message,
            help: Some(
                "write a script that dash and bash both read, and keep values out of code: they reach it as \
                 \"$1\", \"$2\", …"
                    .into(),
            ),
        })?;
        let mut words_seen: Vec<(usize, usize)> = Vec::new();
        let Body::Shell(pieces) = &mut self.body else { return Ok(()) };
        for piece in pieces.iter_mut() {
            if let ScriptPiece::Ref(r) = piece {
                let found = &occurrences[r.var];
                r.quoting = found.quoting;
                r.word = found.word;
                r.literal_before = found.literal_before;
                r.options_ended = found.options_ended;
                words_seen.push((found.word, r.var));
                self.placeholders[r.var].context = found.context.clone();
            }
        }
        // A reference alone in its word, unquoted, may spread a list into several words.
        for piece in pieces.iter_mut() {
            if let ScriptPiece::Ref(r) = piece {
                let alone = words_seen.iter().filter(|(w, _)| *w == r.word).count() == 1;
                r.whole_word = alone && !r.literal_before && r.quoting == Quoting::Unquoted;
            }
        }
        self.refuse_refused()
    }

    fn refuse_refused(&self) -> Result<(), TemplateError> {
        for placeholder in &self.placeholders {
            if let Context::Refused(why) = &placeholder.context {
                return Err(TemplateError {
                    offset: placeholder.offset,
                    len: placeholder.source_len(),
                    message: format!("placeholder `{{{}}}` stands in {why}", placeholder.name),
                    help: Some(
                        "a value there would run as code or choose the program; pass it as a plain argument \
                         (in a shell script, after the script: sh -c '… \"$1\"' sh {value}), \
                         or see \"Where a value may stand\" in cpis/REFERENCE.md"
                            .into(),
                    ),
                });
            }
        }
        Ok(())
    }

    /// Renders an argv (argv mode) or a `/bin/sh -c` invocation (shell mode) for one call.
    pub fn render(&self, bindings: &dyn Bindings) -> Result<Vec<String>, RenderError> {
        Ok(self.render_parts(bindings)?.into_argv())
    }

    /// Renders without wrapping shell scripts, so fragments can be appended first.
    pub fn render_parts(&self, bindings: &dyn Bindings) -> Result<Rendered, RenderError> {
        let mut rendered = match self.body {
            Body::Argv(_) => Rendered::Argv(Vec::new()),
            Body::Shell(_) => Rendered::Script { script: String::new(), args: Vec::new() },
        };
        self.render_onto(&mut rendered, bindings)?;
        Ok(rendered)
    }

    /// Renders this template after what `rendered` already holds (a command, then its fragments).
    pub fn render_onto(&self, rendered: &mut Rendered, bindings: &dyn Bindings) -> Result<(), RenderError> {
        match (&self.body, rendered) {
            (Body::Argv(words), Rendered::Argv(argv)) => self.render_argv(words, bindings, argv),
            (Body::Shell(pieces), Rendered::Script { script, args }) => {
                if !script.is_empty() {
                    script.push(' ');
                }
                self.render_shell(pieces, bindings, script, args)
            }
            _ => Err(RenderError {
                param: String::new(),
                message: "a fragment's mode differs from its command's".into(),
            }),
        }
    }

    fn binding<'b>(&self, var: usize, bindings: &'b dyn Bindings) -> Option<(&str, Binding<'b>)> {
        let name = self.placeholders[var].name.as_str();
        bindings.get(name).map(|b| (name, b))
    }

    /// The items of a value, checked for where the placeholder stands.
    fn items(&self, var: usize, binding: Binding<'_>) -> Result<Vec<String>, RenderError> {
        let placeholder = &self.placeholders[var];
        let items = value_items(&placeholder.name, binding.value)?;
        if let Context::Reparsed(what) = &placeholder.context {
            if let Some(bad) = items.iter().find(|item| !safe::value_is_safe(item)) {
                return Err(RenderError {
                    param: placeholder.name.clone(),
                    message: format!(
                        "value {bad:?} lands in {what}, which is read again as code; only {} may stand there",
                        safe::SAFE_SET
                    ),
                });
            }
        }
        Ok(items)
    }

    fn render_argv(&self, words: &[Word], bindings: &dyn Bindings, argv: &mut Vec<String>) -> Result<(), RenderError> {
        argv.reserve(words.len());
        let mut options_ended = argv.iter().any(|a| a == "--");
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            let next_var = words.get(i + 1).and_then(Word::whole_var);
            if let (true, Some(var)) = (word.is_flag(), next_var) {
                let flag = word.literal().unwrap_or_default();
                if let Some((name, binding)) = self.binding(var, bindings) {
                    for item in self.items(var, binding)? {
                        check_option_injection(name, &item, binding.allow_dash || options_ended)?;
                        argv.push(flag.clone());
                        argv.push(item);
                    }
                }
                i += 2;
                continue;
            }
            if let Some(literal) = word.literal() {
                options_ended |= literal == "--";
                argv.push(literal);
            } else {
                self.render_word(word, bindings, options_ended, argv)?;
            }
            i += 1;
        }
        Ok(())
    }

    /// A word with placeholders: scalars are spliced in; one list or map value repeats the whole
    /// word per item (a whole-word list spreads into words); an absent optional value drops the
    /// word. Whatever value supplies an argument's first character is checked for a leading `-`.
    fn render_word(
        &self,
        word: &Word,
        bindings: &dyn Bindings,
        options_ended: bool,
        argv: &mut Vec<String>,
    ) -> Result<(), RenderError> {
        let mut parts: Vec<WordPart<'_>> = Vec::with_capacity(word.pieces.len());
        let mut repeated: Option<&str> = None;
        for piece in &word.pieces {
            match piece {
                Piece::Literal(s) => parts.push((vec![s.clone()], None)),
                Piece::Var(var) => {
                    let Some((name, binding)) = self.binding(*var, bindings) else {
                        return Ok(());
                    };
                    let items = self.items(*var, binding)?;
                    if !matches!(binding.value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                        if let Some(first) = repeated {
                            return Err(RenderError {
                                param: name.to_string(),
                                message: format!(
                                    "only one list or map may be embedded in an argument, and `{first}` already is"
                                ),
                            });
                        }
                        repeated = Some(name);
                    }
                    parts.push((items, Some((name, binding.allow_dash))));
                }
            }
        }
        let count = match repeated {
            Some(_) => parts.iter().map(|(items, _)| items.len()).find(|&n| n != 1).unwrap_or(1),
            None => 1,
        };
        for k in 0..count {
            let mut arg = String::new();
            for (items, source) in &parts {
                let item = if items.len() == 1 { &items[0] } else { &items[k] };
                if let (true, Some((name, allow_dash))) = (arg.is_empty(), source) {
                    check_option_injection(name, item, *allow_dash || options_ended)?;
                }
                arg.push_str(item);
            }
            argv.push(arg);
        }
        Ok(())
    }

    fn render_shell(
        &self,
        pieces: &[ScriptPiece],
        bindings: &dyn Bindings,
        script: &mut String,
        args: &mut Vec<String>,
    ) -> Result<(), RenderError> {
        script.reserve(self.source.len() + 8 * self.placeholders.len());
        // Words in which a value has already put text: a later value there cannot start it.
        let mut started: Vec<usize> = Vec::new();
        for piece in pieces {
            let reference = match piece {
                ScriptPiece::Literal(s) => {
                    script.push_str(s);
                    continue;
                }
                ScriptPiece::Ref(r) => r,
            };
            let Some((name, binding)) = self.binding(reference.var, bindings) else {
                continue;
            };
            let items = self.items(reference.var, binding)?;
            let is_list = !matches!(binding.value, Value::String(_) | Value::Number(_) | Value::Bool(_));
            if is_list && !reference.whole_word {
                return Err(RenderError {
                    param: name.to_string(),
                    message: "a list or map in a shell script must stand alone as an unquoted word".into(),
                });
            }
            let may_start_word = !reference.literal_before && !started.contains(&reference.word);
            for (k, item) in items.iter().enumerate() {
                if may_start_word || k > 0 {
                    check_option_injection(name, item, binding.allow_dash || reference.options_ended)?;
                }
                if k > 0 {
                    script.push(' ');
                }
                args.push(item.clone());
                let n = args.len();
                match reference.quoting {
                    Quoting::Unquoted => script.push_str(&format!("\"${{{n}}}\"")),
                    Quoting::Double | Quoting::Bare => script.push_str(&format!("${{{n}}}")),
                    Quoting::Single => script.push_str(&format!("'\"${{{n}}}\"'")),
                }
            }
            if items.iter().any(|i| !i.is_empty()) {
                started.push(reference.word);
            }
        }
        Ok(())
    }
}

fn empty_command() -> TemplateError {
    TemplateError {
        offset: 0,
        len: 0,
        message: "empty command".into(),
        help: Some("write the program to run and its arguments, for example \"podman start {name}\"".into()),
    }
}

/// Flattens a value into strings: a scalar is one item, a list one per element, a map one
/// `key=value` per entry, null none. Every item is checked for NUL and length.
fn value_items(name: &str, value: &Value) -> Result<Vec<String>, RenderError> {
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|item| scalar(name, item).map(|s| s.ok_or_else(|| nested(name, "list"))))
            .collect::<Result<Result<Vec<_>, _>, _>>()??,
        Value::Object(map) => {
            let mut items = Vec::with_capacity(map.len());
            for (key, v) in map {
                // A key starts its `KEY=value` item: `allow_dash` is about values, never keys.
                if key.is_empty() || key.contains('=') || key.starts_with('-') {
                    return Err(RenderError {
                        param: name.to_string(),
                        message: format!(
                            "map key {key:?} must be non-empty, must not contain `=` and must not begin with `-`"
                        ),
                    });
                }
                let v = scalar(name, v)?.ok_or_else(|| nested(name, "map"))?;
                items.push(format!("{key}={v}"));
            }
            items
        }
        other => vec![scalar(name, other)?.unwrap_or_default()],
    };
    for item in &items {
        if item.contains('\0') {
            return Err(RenderError {
                param: name.to_string(),
                message: "value contains a NUL byte, which no program argument can carry".into(),
            });
        }
        if item.len() > MAX_VALUE_LEN {
            return Err(RenderError {
                param: name.to_string(),
                message: format!("value is {} bytes; the limit is {MAX_VALUE_LEN}", item.len()),
            });
        }
    }
    Ok(items)
}

fn nested(name: &str, container: &str) -> RenderError {
    RenderError {
        param: name.to_string(),
        message: format!("a {container} may hold only strings, numbers and booleans"),
    }
}

fn scalar(_name: &str, value: &Value) -> Result<Option<String>, RenderError> {
    Ok(match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    })
}

fn check_option_injection(name: &str, arg: &str, allowed: bool) -> Result<(), RenderError> {
    if !allowed && arg.starts_with('-') {
        return Err(RenderError {
            param: name.to_string(),
            message: format!(
                "value {arg:?} begins with `-` and would be read as an option; \
                 if this parameter really takes such values, declare it with \"allow_dash\": true"
            ),
        });
    }
    Ok(())
}

/// Quotes a value as one POSIX shell word.
pub fn shell_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

struct Lexer<'a> {
    source: &'a str,
    pos: usize,
    placeholders: Vec<Placeholder>,
}

impl<'a> Lexer<'a> {
    fn new(source: &'a str) -> Self {
        Lexer { source, pos: 0, placeholders: Vec::new() }
    }

    fn rest(&self) -> &'a str {
        &self.source[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error(&self, offset: usize, len: usize, message: String, help: &str) -> TemplateError {
        TemplateError { offset, len, message, help: Some(help.to_string()) }
    }

    /// At a `{`: consumes `{{` as literal text, a placeholder as a var, or a lone `{` as literal.
    fn brace(&mut self) -> Piece {
        let rest = self.rest();
        if rest.starts_with("{{") {
            self.pos += 2;
            return Piece::Literal("{{".into());
        }
        let ident_len = rest[1..]
            .char_indices()
            .take_while(|&(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
            .count();
        if ident_len > 0 && rest[1 + ident_len..].starts_with('}') {
            let name = rest[1..1 + ident_len].to_string();
            self.placeholders.push(Placeholder { name, offset: self.pos, context: Context::Data });
            self.pos += ident_len + 2;
            return Piece::Var(self.placeholders.len() - 1);
        }
        self.pos += 1;
        Piece::Literal("{".into())
    }

    fn shell_syntax_error(&self, c: char) -> TemplateError {
        let shown = if c == '$' { self.rest().chars().take(2).collect::<String>() } else { c.to_string() };
        self.error(
            self.pos,
            shown.len(),
            format!("shell syntax `{shown}` in a command that runs without a shell"),
            "quote it if the program should receive it literally, or set \"shell\": true on the action \
             (the script is then parsed, and values reach it as \"$1\", \"$2\", …)",
        )
    }

    fn words(&mut self) -> Result<Vec<Word>, TemplateError> {
        let mut words = Vec::new();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = String::new();
        let mut in_word = false;
        let mut quote = Quote::None;
        let mut quote_start = 0;
        let flush = |literal: &mut String, pieces: &mut Vec<Piece>| {
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(literal)));
            }
        };
        while let Some(c) = self.peek() {
            match (quote, c) {
                (_, '{') => {
                    in_word = true;
                    match self.brace() {
                        Piece::Literal(s) => literal.push_str(&s),
                        var => {
                            flush(&mut literal, &mut pieces);
                            pieces.push(var);
                        }
                    }
                    continue;
                }
                (Quote::None, c) if c.is_whitespace() => {
                    if in_word {
                        flush(&mut literal, &mut pieces);
                        words.push(Word { pieces: std::mem::take(&mut pieces) });
                        in_word = false;
                    }
                }
                (Quote::None, '\'') | (Quote::None, '"') => {
                    quote = if c == '\'' { Quote::Single } else { Quote::Double };
                    quote_start = self.pos;
                    in_word = true;
                }
                (Quote::None, '\\') | (Quote::Double, '\\') => {
                    let escaped = self.rest()[1..].chars().next();
                    let escapable = quote == Quote::None || matches!(escaped, Some('"' | '\\'));
                    match escaped {
                        Some(e) if escapable => {
                            literal.push(e);
                            self.pos += 1 + e.len_utf8();
                            in_word = true;
                            continue;
                        }
                        None if quote == Quote::None => {
                            return Err(self.error(
                                self.pos,
                                1,
                                "trailing backslash".into(),
                                "remove it or escape it as \\\\",
                            ))
                        }
                        _ => literal.push('\\'),
                    }
                }
                (Quote::None, '|' | ';' | '&' | '<' | '>' | '`') => return Err(self.shell_syntax_error(c)),
                (Quote::None, '$')
                    if self.rest()[1..]
                        .chars()
                        .next()
                        .is_some_and(|n| n == '(' || n == '{' || n == '_' || n.is_ascii_alphanumeric()) =>
                {
                    return Err(self.shell_syntax_error(c))
                }
                (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
                (_, c) => {
                    literal.push(c);
                    in_word = true;
                }
            }
            self.pos += c.len_utf8();
        }
        self.check_closed(quote, quote_start)?;
        if in_word {
            flush(&mut literal, &mut pieces);
            words.push(Word { pieces });
        }
        Ok(words)
    }

    /// Shell mode: the script as literal text and placeholders, wherever they stand; the shell
    /// parser decides later what each one is.
    fn script_pieces(&mut self) -> Result<Vec<ScriptPiece>, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        while let Some(c) = self.peek() {
            if c != '{' {
                literal.push(c);
                self.pos += c.len_utf8();
                continue;
            }
            let start = self.pos;
            match self.brace() {
                Piece::Literal(s) => literal.push_str(&s),
                Piece::Var(var) => {
                    if literal.ends_with('$') {
                        let name = &self.placeholders[var].name;
                        return Err(self.error(
                            start - 1,
                            name.len() + 3,
                            format!("`${{{name}}}` in a shell script is ambiguous"),
                            "write `$NAME` for a shell variable, or the placeholder `{name}` alone",
                        ));
                    }
                    if !literal.is_empty() {
                        pieces.push(ScriptPiece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(ScriptPiece::Ref(ScriptRef {
                        var,
                        quoting: Quoting::Unquoted,
                        word: 0,
                        literal_before: false,
                        options_ended: false,
                        whole_word: false,
                    }));
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(ScriptPiece::Literal(literal));
        }
        Ok(pieces)
    }
    fn check_closed(&self, quote: Quote, start: usize) -> Result<(), TemplateError> {
        match quote {
            Quote::None => Ok(()),
            Quote::Single | Quote::Double => Err(self.error(
                start,
                1,
                "unterminated quote".into(),
                "close the quote, or escape it with a backslash if it is meant literally",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Map(HashMap<String, (Value, bool)>);

    impl Bindings for Map {
        fn get(&self, name: &str) -> Option<Binding<'_>> {
            self.0.get(name).map(|(value, allow_dash)| Binding { value, allow_dash: *allow_dash })
        }
    }

    fn bind(values: Value) -> Map {
        let Value::Object(obj) = values else { panic!("object") };
        Map(obj.into_iter().map(|(k, v)| (k, (v, false))).collect())
    }

    fn render(template: &str, values: Value) -> Result<Vec<String>, RenderError> {
        Template::parse(template, Mode::Argv).expect("template parses").render(&bind(values))
    }

    fn argv(template: &str, values: Value) -> Vec<String> {
        render(template, values).expect("renders")
    }

    fn parse_err(template: &str) -> TemplateError {
        Template::parse(template, Mode::Argv).expect_err("template must not parse")
    }

    #[test]
    fn splits_words_and_quotes_like_a_shell() {
        assert_eq!(
            argv(r#"podman ps -a --format '{{.ID}} {{.Names}}' "x y" a\ b"#, json!({})),
            ["podman", "ps", "-a", "--format", "{{.ID}} {{.Names}}", "x y", "a b"]
        );
        assert_eq!(argv("p ''", json!({})), ["p", ""]);
    }

    #[test]
    fn go_templates_pass_through_untouched() {
        let t = Template::parse("docker inspect --format '{{json .}}' {name}", Mode::Argv).expect("parses");
        assert_eq!(t.placeholders().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["name"]);
        assert_eq!(
            t.render(&bind(json!({"name": "c1"}))).expect("renders"),
            ["docker", "inspect", "--format", "{{json .}}", "c1"]
        );
        assert_eq!(argv("p '{{name}}' {.x} {a-b} {}", json!({})), ["p", "{{name}}", "{.x}", "{a-b}", "{}"]);
    }

    #[test]
    fn shell_metacharacters_stay_inside_one_argument() {
        for value in ["x; rm -rf /", "a | b", "a && b", "$(reboot)", "`id`", "> /etc/passwd", "< x", "'q\"", "a\nb"] {
            assert_eq!(argv("podman start {name}", json!({ "name": value })), ["podman", "start", value]);
        }
    }

    #[test]
    fn values_are_never_rescanned_for_placeholders() {
        assert_eq!(argv("p {a} {b}", json!({"a": "{b}", "b": "x"})), ["p", "{b}", "x"]);
    }

    #[test]
    fn refuses_option_injection_unless_allowed() {
        let err = render("podman rm {name}", json!({"name": "-fa"})).expect_err("option injection");
        assert_eq!(err.param, "name");
        assert!(err.message.contains("allow_dash"), "{err}");
        let err = render("cat /logs/{name}.log", json!({"name": "x"})).map(|_| ());
        assert!(err.is_ok());
        assert!(render("p {name}.log", json!({"name": "--help"})).is_err(), "a value starting a word is checked");
        assert_eq!(argv("p --name={name}", json!({"name": "-x"})), ["p", "--name=-x"]);
        let t = Template::parse("p {cmd}", Mode::Argv).expect("parses");
        let allowed = Map([("cmd".to_string(), (json!(["-c", "x"]), true))].into());
        assert_eq!(t.render(&allowed).expect("allowed"), ["p", "-c", "x"]);
    }

    #[test]
    fn values_after_double_dash_may_start_with_dash() {
        assert_eq!(
            argv("lxc-attach -n {name} -- {cmd}", json!({"name": "c", "cmd": ["sh", "-c", "exit 3"]})),
            ["lxc-attach", "-n", "c", "--", "sh", "-c", "exit 3"]
        );
    }

    #[test]
    fn refuses_nul_and_huge_values() {
        assert!(render("p {a}", json!({"a": "x\0y"})).expect_err("NUL").message.contains("NUL"));
        assert!(render("p x{a}", json!({"a": "x\0y"})).is_err());
        assert!(render("p {a}", json!({"a": "x".repeat(MAX_VALUE_LEN + 1)})).is_err());
    }

    #[test]
    fn lists_after_a_flag_repeat_the_flag() {
        assert_eq!(
            argv("podman create -p {ports} --name {name} img", json!({"ports": ["80:80", "443:443"], "name": "c"})),
            ["podman", "create", "-p", "80:80", "-p", "443:443", "--name", "c", "img"]
        );
        assert_eq!(argv("p -p {ports} img", json!({"ports": []})), ["p", "img"]);
    }

    #[test]
    fn maps_render_as_key_value_pairs() {
        assert_eq!(
            argv("p --env {env} img", json!({"env": {"A": "1", "B": "x y"}})),
            ["p", "--env", "A=1", "--env", "B=x y", "img"]
        );
        assert!(render("p --env {env}", json!({"env": {"A=B": "1"}})).is_err());
        assert!(render("p --env {env}", json!({"env": {"A": ["x"]}})).is_err());
    }

    #[test]
    fn lists_elsewhere_spread_into_words_or_repeat_embedded_words() {
        assert_eq!(argv("p {cmd}", json!({"cmd": ["ls", "/"]})), ["p", "ls", "/"]);
        assert_eq!(argv("p --env={env}", json!({"env": ["A=1", "B=2"]})), ["p", "--env=A=1", "--env=B=2"]);
        assert!(render("p {a}:{b}", json!({"a": ["1"], "b": ["2"]})).is_err());
    }

    #[test]
    fn absent_optional_drops_its_word_and_flag() {
        assert_eq!(argv("p stop -t {timeout} {name}", json!({"name": "c"})), ["p", "stop", "c"]);
        assert_eq!(argv("p --memory={mem} x", json!({})), ["p", "x"]);
        assert_eq!(argv("p -t {t} x", json!({"t": null})), ["p", "x"]);
    }

    #[test]
    fn numbers_and_booleans_render_as_text() {
        assert_eq!(argv("p -t {t} {b}", json!({"t": 5, "b": true})), ["p", "-t", "5", "true"]);
    }

    #[test]
    fn refuses_shell_syntax_without_shell_mode() {
        for (template, shown) in [
            ("p a | q", "|"),
            ("p a; q", ";"),
            ("p a && q", "&"),
            ("p > out", ">"),
            ("p `id`", "`"),
            ("p $(id)", "$("),
            ("p $HOME", "$H"),
        ] {
            let err = parse_err(template);
            assert!(err.message.contains(&format!("`{shown}`")), "{template}: {}", err.message);
        }
        assert_eq!(argv("p 'a | b' \"$x\" 5$", json!({})), ["p", "a | b", "$x", "5$"]);
    }

    #[test]
    fn refuses_empty_commands_and_placeholder_programs() {
        assert_eq!(parse_err("   ").message, "empty command");
        let err = parse_err("{target} --now");
        assert!(err.message.contains("program must be written literally") && err.message.contains("`{target}`"));
        assert_eq!((err.offset, err.len), (0, 8));
        assert!(parse_err("{x}").message.contains("program"));
        assert!(parse_err("x{y} a").message.contains("program"));
    }

    fn context_of(template: &str, mode: Mode, name: &str) -> Context {
        let t = Template::parse(template, mode).unwrap_or_else(|e| panic!("{template}: {}", e.message));
        t.placeholders().iter().find(|p| p.name == name).expect("placeholder").context.clone()
    }

    fn reparsed(template: &str, mode: Mode, name: &str) {
        assert!(matches!(context_of(template, mode, name), Context::Reparsed(_)), "{template}");
    }

    #[test]
    fn argv_mode_finds_shell_code_in_every_position() {
        for template in [
            "sh -c 'echo {name}' sh",
            "/bin/bash -ec \"rm -rf /x/{name}\"",
            "env sh -c 'x {name}'",
            "sh -c -- 'echo {name}'",
            "sh -c -e 'echo {name}'",
            "rbash -c 'echo {name}'",
            "flock /run/lock -c 'echo {name}'",
            "env -S 'printf {name}'",
            "timeout 5 bash -c 'echo {name}'",
            "podman exec c1 sh -c 'ls {name}'",
            "ssh host 'virsh start {name}'",
            "ssh host virsh start {name}",
            "watch -n 1 ls {name}",
            "pkill -f qemu-{name}",
        ] {
            reparsed(template, Mode::Argv, "name");
        }
        // Values as positional parameters after the script are the safe form.
        assert_eq!(context_of("sh -c 'echo \"$1\"' sh {name}", Mode::Argv, "name"), Context::Data);
        assert_eq!(
            argv("sh -c 'echo \"$1\"' sh {name}", json!({"name": "x; reboot"})),
            ["sh", "-c", "echo \"$1\"", "sh", "x; reboot"]
        );
        assert_eq!(context_of("python3 -c 'import sys' {v}", Mode::Argv, "v"), Context::Data);
        assert_eq!(context_of("grep -e pat {file}", Mode::Argv, "file"), Context::Data);
    }

    #[test]
    fn argv_mode_refuses_values_that_choose_a_program_or_are_interpreter_code() {
        for template in [
            "podman exec {name} sh -c {script}",
            "sh -c {script}",
            "env {prog} x",
            "env A=1 {prog}",
            "sudo -u root {prog}",
            "timeout 5 {prog}",
            "xargs {x}",
            "find . -exec {prog} ';'",
            "ssh host {cmd}",
            "ssh -o {opt} host true",
            "su -c {cmd}",
            "python3 -c {code}",
            "python3 -c 'print(\"{code}\")'",
            "perl -ne 'print {code}' f",
            "node -e 'x{code}'",
            "awk '{{print}} {code}'",
            "sed -e 's/a/{code}/' f",
            "sed 's/a/{code}/' f",
            "php -r {code}",
            "ruby -e {code}",
            "ip netns exec ns1 {prog}",
            "bash -c 'echo ok; {prog} x'",
        ] {
            let bad = Template::parse(template, Mode::Argv).expect_err(template);
            assert!(bad.message.contains("stands in"), "{template}: {}", bad.message);
            assert_eq!(&template[bad.offset..bad.offset + bad.len].chars().next(), &Some('{'), "{template}");
        }
    }

    #[test]
    fn shell_mode_refuses_every_context_that_reads_a_value_as_code() {
        for (template, why) in [
            ("cat <<EOF\n{v}\nEOF", "here-document"),
            ("cat <<'EOF'\n{v}\nEOF", "here-document"),
            ("cat <<< {v}", "here-string"),
            ("echo x # {v}", "comment"),
            ("echo x\n# note {v}\necho y", "comment"),
            ("echo `echo {v}`", "backquotes"),
            ("echo \"`echo {v}`\"", "backquotes"),
            ("{prog} {arg}", "program"),
            ("true && {prog}", "program"),
            ("true || {prog}; false", "program"),
            ("echo | {prog}", "program"),
            ("echo $({prog} x)", "program"),
            ("{target}", "program"),
            ("eval {v}", "eval"),
            ("trap {v} EXIT", "trap"),
            (". {v}", "`.`"),
            ("source {v}", "source"),
            ("sh -c {v}", "sh"),
            ("bash -c \"$(echo x) {v}\"; x", ""),
            ("su -c {v}", "su"),
            ("xargs {v}", "xargs"),
            ("find . -exec {v} \\;", "program"),
            ("python3 -c {v}", "python3"),
            ("echo ${x:-{v}}", "expansion"),
            ("f() { echo {v}; }; f", "function"),
            ("echo $'{v}'", "ANSI-C"),
        ] {
            let message = match Template::parse(template, Mode::Shell) {
                Err(err) => err.message,
                Ok(t) => format!("{:?}", t.placeholders()),
            };
            assert!(message.contains("stands in") || message.contains("ambiguous"), "{template}: {message}");
            assert!(message.contains(why), "{template}: {message}");
        }
    }

    #[test]
    fn shell_mode_reparsed_contexts_need_safe_values() {
        for template in [
            "echo $(( {v} + 1 ))",
            "(( {v} > 1 )) && echo big",
            "sh -c 'echo '{v}",
            "bash -c \"echo {v}\"",
            "ssh host \"cmd {v}\"",
            "flock /tmp/l -c \"echo {v}\"",
            "x={v}; echo \"$x\"",
            "for i in {v}; do echo $i; done",
            "[[ $x == {v} ]] && echo y",
        ] {
            reparsed(template, Mode::Shell, "v");
        }
        let t = Template::parse("echo $(( {v} + 1 ))", Mode::Shell).expect("parses");
        assert!(t.render(&bind(json!({"v": "a[$(id)]"}))).is_err(), "a subscript is not a safe value");
        let argv = t.render(&bind(json!({"v": "41"}))).expect("a number is");
        assert_eq!(argv[2], "echo $(( ${1} + 1 ))");
        assert_eq!(run_sh("/bin/dash", &argv), "42\n");
        assert_eq!(run_sh("/bin/bash", &argv), "42\n");
    }

    #[test]
    fn shell_mode_values_travel_as_positional_parameters() {
        let t = Template::parse("printf '%s|' {a} x{b} \"in-{c}-dq\" 'in-{d}-sq' >/dev/stdout", Mode::Shell)
            .expect("parses");
        let values = json!({"a": "$(id)", "b": "`x`;|&", "c": "\"$HOME\"", "d": "'q'\n"});
        let argv = t.render(&bind(values)).expect("renders");
        assert_eq!(argv[2], "printf '%s|' \"${1}\" x\"${2}\" \"in-${3}-dq\" 'in-'\"${4}\"'-sq' >/dev/stdout");
        assert_eq!(&argv[3..], ["sh", "$(id)", "`x`;|&", "\"$HOME\"", "'q'\n"]);
        for shell in ["/bin/dash", "/bin/bash"] {
            assert_eq!(run_sh(shell, &argv), "$(id)|x`x`;|&|in-\"$HOME\"-dq|in-'q'\n-sq|", "{shell}");
        }
        // Text with spaces or quotes around a value is a small language of its own.
        reparsed("printf '%s' \"in {c} dq\"", Mode::Shell, "c");
        reparsed("printf '%s' 'name = \"{c}\"'", Mode::Argv, "c");
    }

    #[test]
    fn shell_mode_lists_spread_only_as_whole_words_and_absent_values_vanish() {
        let t = Template::parse("printf '<%s>' {xs} | cat", Mode::Shell).expect("parses");
        let argv = t.render(&bind(json!({"xs": ["a b", "$c"]}))).expect("renders");
        assert_eq!(argv[2], "printf '<%s>' \"${1}\" \"${2}\" | cat");
        assert_eq!(run_sh("/bin/dash", &argv), "<a b><$c>");
        assert!(Template::parse("echo x{xs}", Mode::Shell)
            .expect("parses")
            .render(&bind(json!({"xs": ["a"]})))
            .is_err());
        let argv = t.render(&bind(json!({}))).expect("absent");
        assert_eq!(argv[2], "printf '<%s>'  | cat");
    }

    #[test]
    fn a_script_the_parser_chokes_on_is_a_load_error_not_a_crash() {
        // brush-parser 0.4 unwraps these integer parses (found by `cargo xtask fuzz`).
        for script in ["echo {v} 99999999999>x", "echo ${99999999999} {v}", "echo ~+99999999999999999999 {v}"] {
            if let Err(err) = Template::parse(script, Mode::Shell) {
                assert!(!err.message.is_empty(), "{script}");
            }
        }
    }

    #[test]
    fn scripts_that_would_stall_the_parser_are_refused_quickly() {
        // Found by `cargo xtask fuzz`: exponential backtracking, and unbounded memory, in brush-parser.
        let deep = format!("{{ {}d", "(".repeat(30));
        for script in [deep.as_str(), "<<E$[\t\t", &"x".repeat(20 * 1024)] {
            // Without the bound this call runs for minutes or exhausts memory.
            assert!(Template::parse(script, Mode::Shell).is_err(), "{script:.40}");
        }
        assert!(Template::parse("echo $(( (1 + {v}) * 2 ))", Mode::Shell).is_ok(), "ordinary nesting");
    }

    #[test]
    fn shell_mode_refuses_scripts_that_move_the_positional_parameters() {
        for template in ["shift; echo {v}", "set -- a b; echo {v}", "set x; echo {v}"] {
            let err = Template::parse(template, Mode::Shell).expect_err(template);
            assert!(err.message.contains("positional"), "{template}: {}", err.message);
        }
        assert!(Template::parse("set -eu; set -o pipefail; echo {v}", Mode::Shell).is_ok());
        assert!(Template::parse("shift; echo done", Mode::Shell).is_ok(), "no values, nothing moves");
    }

    #[test]
    fn the_dash_check_holds_whatever_precedes_the_value_in_its_word() {
        assert!(render("ls {a}{b}", json!({"a": "", "b": "-rf"})).is_err());
        assert!(render("ls {a}{b}", json!({"b": "-rf"})).is_ok(), "an absent value drops the word");
        assert_eq!(argv("ls {a}{b}", json!({"a": "x", "b": "-rf"})), ["ls", "x-rf"]);
        assert!(render("ls {a}.x", json!({"a": "--help"})).is_err());
        for template in ["ls \"\"{v}", "ls ''{v}", "ls {a}{v}", "ls \"{v}\"", "ls '{v}'"] {
            let t = Template::parse(template, Mode::Shell).expect(template);
            let err = t.render(&bind(json!({"v": "-la", "a": ""}))).expect_err(template);
            assert_eq!(err.param, "v", "{template}");
        }
        let t = Template::parse("ls x{v} -- {w}", Mode::Shell).expect("parses");
        assert!(t.render(&bind(json!({"v": "-la", "w": "-w"}))).is_ok(), "after literal text, and after --");
    }

    #[test]
    fn map_keys_are_checked_like_values() {
        assert!(render("p --env {env}", json!({"env": {"-x": "1"}})).is_err());
        assert!(render("p --env {env}", json!({"env": {"A\u{0}B": "1"}})).is_err());
        let t = Template::parse("p --env {env}", Mode::Argv).expect("parses");
        let allowed = Map([("env".to_string(), (json!({"-x": "1"}), true))].into());
        assert!(t.render(&allowed).is_err(), "allow_dash is about values, not keys");
    }

    fn run_sh(shell: &str, argv: &[String]) -> String {
        assert_eq!(argv[0], "/bin/sh");
        let out = std::process::Command::new(shell).args(&argv[1..]).output().expect("shell runs");
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn refuses_unterminated_quotes_at_the_quote() {
        let err = parse_err("p 'abc");
        assert_eq!((err.offset, err.message.as_str()), (2, "unterminated quote"));
    }

    #[test]
    fn records_placeholder_offsets() {
        let t = Template::parse("p --name {name} x{id}", Mode::Argv).expect("parses");
        let offsets: Vec<_> = t.placeholders().iter().map(|p| (p.name.as_str(), p.offset)).collect();
        assert_eq!(offsets, [("name", 9), ("id", 17)]);
    }

    #[test]
    fn shell_mode_executes_values_as_data() {
        let t = Template::parse("printf %s {v}", Mode::Shell).expect("parses");
        let hostile = "$(echo pwned)`id`;|&'\"\n";
        let argv = t.render(&bind(json!({ "v": hostile }))).expect("renders");
        assert!(!argv[2].contains("pwned"), "the value is not in the script: {}", argv[2]);
        for shell in ["/bin/dash", "/bin/bash"] {
            assert_eq!(run_sh(shell, &argv), hostile, "{shell}");
        }
    }
}

#[cfg(test)]
mod reference_tests {
    /// `cpis/REFERENCE.md` lists the context table row for row.
    #[test]
    fn the_reference_lists_every_program_of_the_context_table() {
        let reference = include_str!("../../../../cpis/REFERENCE.md");
        let section = reference.split("### Where a value may stand").nth(1).expect("the section exists");
        for (names, what) in super::context_table() {
            let row = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            assert!(section.contains(&format!("| {row} | {what} |")), "REFERENCE.md lacks the row for {row}");
        }
    }
}
