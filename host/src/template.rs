//! Command templates: parsed once at load, rendered per call without a shell.
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
//! # Rendering (see `cpis/REFERENCE.md` for the user-facing rules)
//! Every value lands inside the argument its placeholder belongs to and is never scanned again:
//! `x; rm -rf /` is one argv element. Values containing NUL are refused; so is a value that would
//! begin an argument with `-` (option injection) unless its parameter allows it or a literal `--`
//! came earlier. A list or map bound to a whole-word placeholder that follows a flag word repeats
//! the flag per item (`--env {env}` → `--env A=1 --env B=2`); elsewhere its items become separate
//! words. An absent optional value drops its word, and the flag word right before it.
//!
//! # Shell mode
//! Only for specs that opt in with `"shell": true`. The template is handed to `/bin/sh -c` with each
//! value single-quoted by the host, so a value is always exactly one shell word. Placeholders inside
//! the template's own quotes are refused: re-quoting there cannot be made safe in general.

use serde_json::Value;

/// Programs whose `-c` argument is shell code.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "busybox"];

/// Longest value (bytes) accepted for one placeholder; Linux refuses single arguments over 128 KiB.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub name: String,
    /// Byte offset of the `{` in the template source.
    pub offset: usize,
}

impl Placeholder {
    /// Length of `{name}` in the source.
    pub fn source_len(&self) -> usize {
        self.name.len() + 2
    }
}

/// A template that cannot be parsed; offsets are bytes in the template source.
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
    Script(String),
}

impl Rendered {
    /// Appends a rendered fragment of the same mode.
    pub fn append(&mut self, fragment: Rendered) {
        match (self, fragment) {
            (Rendered::Argv(argv), Rendered::Argv(more)) => argv.extend(more),
            (Rendered::Script(script), Rendered::Script(more)) => {
                script.push(' ');
                script.push_str(&more);
            }
            (Rendered::Argv(argv), Rendered::Script(more)) => argv.push(more),
            (Rendered::Script(script), Rendered::Argv(more)) => {
                for word in more {
                    script.push(' ');
                    script.push_str(&shell_quote(&word));
                }
            }
        }
    }

    pub fn into_argv(self) -> Vec<String> {
        match self {
            Rendered::Argv(argv) => argv,
            Rendered::Script(script) => vec!["/bin/sh".into(), "-c".into(), script],
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ShellPiece {
    piece: Piece,
    /// The placeholder begins a shell word, so its value could be read as an option.
    starts_word: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Argv(Vec<Word>),
    Shell(Vec<ShellPiece>),
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
        let template = Template::parse_arguments(source, mode)?;
        template.check_program()?;
        template.check_shell_scripts()?;
        Ok(template)
    }

    /// Parses a fragment of arguments appended to a command (an `optional_params` fragment).
    pub fn parse_arguments(source: &str, mode: Mode) -> Result<Template, TemplateError> {
        let mut lexer = Lexer::new(source, mode);
        let body = match mode {
            Mode::Argv => Body::Argv(lexer.words()?),
            Mode::Shell => Body::Shell(lexer.shell_pieces()?),
        };
        Ok(Template { source: source.to_string(), placeholders: lexer.placeholders, body })
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
            return Err(TemplateError {
                offset: at,
                len,
                message: "the program must be written literally, not built from a placeholder".into(),
                help: Some(
                    "a placeholder in the program position would let callers choose what runs; \
                     name the program and pass values as arguments"
                        .into(),
                ),
            });
        }
        Ok(())
    }

    /// `sh -c 'SCRIPT' ...` in argv mode: SCRIPT is shell code, so a placeholder inside it would
    /// be read as code, defeating every other rule here. Values must follow the script as
    /// positional parameters (`"$1"`), or the action must use shell mode.
    fn check_shell_scripts(&self) -> Result<(), TemplateError> {
        let Body::Argv(words) = &self.body else { return Ok(()) };
        let literal = |i: usize| words.get(i).and_then(Word::literal);
        let is_shell = |word: &str| {
            let base = word.rsplit('/').next().unwrap_or(word);
            SHELLS.contains(&base)
        };
        // The shell may run here or elsewhere (`env sh -c`, `podman exec NAME sh -c`).
        let Some(shell_at) = (0..words.len()).find(|&i| literal(i).is_some_and(|w| is_shell(&w))) else {
            return Ok(());
        };
        let takes_script = |w: &str| w.starts_with('-') && !w.starts_with("--") && w.contains('c');
        let Some(flag_at) = (shell_at + 1..words.len()).find(|&i| literal(i).is_some_and(|w| takes_script(&w))) else {
            return Ok(());
        };
        // A script that is a whole placeholder is code the caller supplies on purpose (like
        // exec's command); a script mixing code and a placeholder means data inside code.
        let Some(script) = words.get(flag_at + 1).filter(|w| w.whole_var().is_none()) else { return Ok(()) };
        let Some(var) = script.pieces.iter().find_map(|p| match p {
            Piece::Var(i) => Some(*i),
            Piece::Literal(_) => None,
        }) else {
            return Ok(());
        };
        let placeholder = &self.placeholders[var];
        Err(TemplateError {
            offset: placeholder.offset,
            len: placeholder.source_len(),
            message: format!(
                "placeholder `{{{}}}` is inside the script of a shell's -c, where its value would run as shell code",
                placeholder.name
            ),
            help: Some(format!(
                "pass the value after the script and use \"$1\" inside it: sh -c 'echo \"$1\"' sh {{{}}}; \
                 or set \"shell\": true so the host quotes it",
                placeholder.name
            )),
        })
    }

    /// Renders an argv (argv mode) or a `/bin/sh -c` script (shell mode) for one call.
    pub fn render(&self, bindings: &dyn Bindings) -> Result<Vec<String>, RenderError> {
        Ok(self.render_parts(bindings)?.into_argv())
    }

    /// Renders without wrapping shell scripts, so fragments can be appended first.
    pub fn render_parts(&self, bindings: &dyn Bindings) -> Result<Rendered, RenderError> {
        match &self.body {
            Body::Argv(words) => self.render_argv(words, bindings).map(Rendered::Argv),
            Body::Shell(pieces) => self.render_shell(pieces, bindings).map(Rendered::Script),
        }
    }

    fn render_argv(&self, words: &[Word], bindings: &dyn Bindings) -> Result<Vec<String>, RenderError> {
        let mut argv = Vec::with_capacity(words.len());
        let mut options_ended = false;
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            let next_var = words.get(i + 1).and_then(Word::whole_var);
            if let (true, Some(var)) = (word.is_flag(), next_var) {
                let flag = word.literal().unwrap_or_default();
                let name = &self.placeholders[var].name;
                if let Some(binding) = bindings.get(name) {
                    for item in standalone_items(name, binding, options_ended)? {
                        argv.push(flag.clone());
                        argv.push(item);
                    }
                }
                i += 2;
                continue;
            }
            if let Some(var) = word.whole_var() {
                let name = &self.placeholders[var].name;
                if let Some(binding) = bindings.get(name) {
                    argv.extend(standalone_items(name, binding, options_ended)?);
                }
            } else if let Some(literal) = word.literal() {
                options_ended |= literal == "--";
                argv.push(literal);
            } else {
                self.render_embedded(word, bindings, options_ended, &mut argv)?;
            }
            i += 1;
        }
        Ok(argv)
    }

    /// A word mixing literal text and placeholders: scalars are spliced in; one list or map value
    /// repeats the whole word per item; an absent optional value drops the word.
    fn render_embedded(
        &self,
        word: &Word,
        bindings: &dyn Bindings,
        options_ended: bool,
        argv: &mut Vec<String>,
    ) -> Result<(), RenderError> {
        let mut parts: Vec<Vec<String>> = Vec::with_capacity(word.pieces.len());
        let mut repeated: Option<&str> = None;
        for piece in &word.pieces {
            match piece {
                Piece::Literal(s) => parts.push(vec![s.clone()]),
                Piece::Var(var) => {
                    let name = &self.placeholders[*var].name;
                    let Some(binding) = bindings.get(name) else {
                        return Ok(());
                    };
                    let items = value_items(name, binding.value)?;
                    if !matches!(binding.value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                        if let Some(first) = repeated {
                            return Err(RenderError {
                                param: name.clone(),
                                message: format!(
                                    "only one list or map may be embedded in an argument, and `{first}` already is"
                                ),
                            });
                        }
                        repeated = Some(name);
                    }
                    parts.push(items);
                }
            }
        }
        let leading_var = match word.pieces.first() {
            Some(Piece::Var(var)) => bindings.get(&self.placeholders[*var].name).map(|b| (var, b.allow_dash)),
            _ => None,
        };
        let count = parts.iter().map(Vec::len).find(|&n| n != 1).unwrap_or(1);
        for k in 0..count {
            let arg: String = parts.iter().map(|p| if p.len() == 1 { &p[0] } else { &p[k] }).cloned().collect();
            if let Some((var, allow_dash)) = leading_var {
                check_option_injection(&self.placeholders[*var].name, &arg, allow_dash || options_ended)?;
            }
            argv.push(arg);
        }
        Ok(())
    }

    fn render_shell(&self, pieces: &[ShellPiece], bindings: &dyn Bindings) -> Result<String, RenderError> {
        let mut script = String::with_capacity(self.source.len() + 64);
        for ShellPiece { piece, starts_word } in pieces {
            match piece {
                Piece::Literal(s) => script.push_str(s),
                Piece::Var(var) => {
                    let name = &self.placeholders[*var].name;
                    let Some(binding) = bindings.get(name) else {
                        continue;
                    };
                    let items = value_items(name, binding.value)?;
                    for (k, item) in items.iter().enumerate() {
                        if *starts_word || k > 0 {
                            check_option_injection(name, item, binding.allow_dash)?;
                        }
                        if k > 0 {
                            script.push(' ');
                        }
                        script.push_str(&shell_quote(item));
                    }
                }
            }
        }
        Ok(script)
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

/// The argv items of a value bound to a whole word.
fn standalone_items(name: &str, binding: Binding<'_>, options_ended: bool) -> Result<Vec<String>, RenderError> {
    let items = value_items(name, binding.value)?;
    for item in &items {
        check_option_injection(name, item, binding.allow_dash || options_ended)?;
    }
    Ok(items)
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
                if key.is_empty() || key.contains('=') {
                    return Err(RenderError {
                        param: name.to_string(),
                        message: format!("map key {key:?} must be non-empty and must not contain `=`"),
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
    mode: Mode,
    pos: usize,
    placeholders: Vec<Placeholder>,
}

impl<'a> Lexer<'a> {
    fn new(source: &'a str, mode: Mode) -> Self {
        Lexer { source, mode, pos: 0, placeholders: Vec::new() }
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
            self.placeholders.push(Placeholder { name, offset: self.pos });
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
             (values are then single-quoted by the host)",
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

    fn shell_pieces(&mut self) -> Result<Vec<ShellPiece>, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut quote = Quote::None;
        let mut quote_start = 0;
        let mut at_word_start = true;
        while let Some(c) = self.peek() {
            if c == '{' {
                let start = self.pos;
                match self.brace() {
                    Piece::Literal(s) => literal.push_str(&s),
                    var => {
                        if quote != Quote::None {
                            let name = &self.placeholders[self.placeholders.len() - 1].name;
                            return Err(self.error(
                                start,
                                name.len() + 2,
                                format!("placeholder `{{{name}}}` inside quotes in a shell command"),
                                "remove the quotes around it: the host single-quotes every value, \
                                 so it is always exactly one shell word",
                            ));
                        }
                        if !literal.is_empty() {
                            pieces.push(ShellPiece {
                                piece: Piece::Literal(std::mem::take(&mut literal)),
                                starts_word: false,
                            });
                        }
                        pieces.push(ShellPiece { piece: var, starts_word: at_word_start });
                    }
                }
                at_word_start = false;
                continue;
            }
            match (quote, c) {
                (Quote::None, '\'') => (quote, quote_start) = (Quote::Single, self.pos),
                (Quote::None, '"') => (quote, quote_start) = (Quote::Double, self.pos),
                (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
                (Quote::None, '\\') | (Quote::Double, '\\') => {
                    if let Some(e) = self.rest()[1..].chars().next() {
                        literal.push('\\');
                        literal.push(e);
                        self.pos += 1 + e.len_utf8();
                        at_word_start = false;
                        continue;
                    }
                }
                _ => {}
            }
            literal.push(c);
            self.pos += c.len_utf8();
            at_word_start = quote == Quote::None && (c.is_whitespace() || "|;&<>()".contains(c));
        }
        self.check_closed(quote, quote_start)?;
        if !literal.is_empty() {
            pieces.push(ShellPiece { piece: Piece::Literal(literal), starts_word: false });
        }
        debug_assert_eq!(self.mode, Mode::Shell);
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
        assert!(err.message.contains("program must be written literally"));
        assert_eq!((err.offset, err.len), (0, 8));
        assert!(parse_err("{x}").message.contains("program"));
        assert!(parse_err("x{y} a").message.contains("program"));
    }

    #[test]
    fn refuses_placeholders_inside_a_shell_script_argument() {
        for template in ["sh -c 'echo {name}' sh", "/bin/bash -ec \"rm -rf /x/{name}\"", "env sh -c 'x {name}'"] {
            let err = parse_err(template);
            assert!(err.message.contains("inside the script of a shell's -c"), "{template}: {}", err.message);
            assert_eq!(&template[err.offset..err.offset + err.len], "{name}");
        }
        // Values as positional parameters after the script are the safe form.
        assert_eq!(
            argv("sh -c 'echo \"$1\"' sh {name}", json!({"name": "x; reboot"})),
            ["sh", "-c", "echo \"$1\"", "sh", "x; reboot"]
        );
        assert!(
            Template::parse("podman exec {name} sh -c {script}", Mode::Argv).is_ok(),
            "a whole script is deliberate"
        );
        assert!(
            Template::parse("podman exec {name} sh -c 'ls {dir}'", Mode::Argv).is_err(),
            "a shell inside a container"
        );
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

    fn shell(template: &str, values: Value) -> Result<String, RenderError> {
        let t = Template::parse(template, Mode::Shell).expect("parses");
        t.render(&bind(values)).map(|argv| {
            assert_eq!(&argv[..2], ["/bin/sh", "-c"]);
            argv[2].clone()
        })
    }

    #[test]
    fn shell_mode_single_quotes_every_value() {
        assert_eq!(
            shell("cat /var/log/lxc/{name}.log | tail -n 5", json!({"name": "a'b; rm -rf /"})).expect("renders"),
            "cat /var/log/lxc/'a'\\''b; rm -rf /'.log | tail -n 5"
        );
        assert_eq!(shell("echo {xs}", json!({"xs": ["a b", "$c"]})).expect("renders"), "echo 'a b' '$c'");
        assert!(shell("rm {name}", json!({"name": "-rf"})).is_err());
        assert_eq!(shell("echo x{name}", json!({"name": "-rf"})).expect("embedded"), "echo x'-rf'");
    }

    #[test]
    fn shell_mode_executes_values_as_data() {
        let script = shell("printf %s {v}", json!({"v": "$(echo pwned)`id`;|&'\"\n"})).expect("renders");
        let out = std::process::Command::new("/bin/sh").arg("-c").arg(&script).output().expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "$(echo pwned)`id`;|&'\"\n");
    }

    #[test]
    fn shell_mode_refuses_placeholders_inside_quotes() {
        for t in ["echo '{x}'", "echo \"a {x}\""] {
            let err = Template::parse(t, Mode::Shell).expect_err("quoted placeholder");
            assert!(err.message.contains("inside quotes"), "{t}");
        }
        assert!(Template::parse("echo '{{.ID}}' {x}", Mode::Shell).is_ok());
    }
}
