//! Shell mode's analysis: a template's script is parsed once, at load, by a real POSIX/bash
//! parser (brush-parser), and every placeholder is located in the syntax tree.
//!
//! Each placeholder is first written into the script as a *sentinel*, a parameter expansion
//! `${__omni_cpi_value_N}` that parses wherever a word can stand. The walk then tells, for each
//! sentinel, how it is quoted, which word it belongs to, and the context it lands in: an argument
//! of a simple command (judged by [`super::contexts`]), a redirection's file name, or a place
//! where even a reference is read again as code (arithmetic, here-documents, backquotes,
//! comments, `${…}` operands). At render the sentinel becomes a positional reference (`"${1}"`),
//! which has the same shape, and the value travels as an argument of `sh -c`: it never enters
//! the script text.

use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions};

use super::contexts::{self, CmdWord, Context};

const SENTINEL_PREFIX: &str = "${__omni_cpi_value_";

/// The text that stands for placeholder occurrence `n` while the script is analysed.
pub fn sentinel(n: usize) -> String {
    format!("{SENTINEL_PREFIX}{n}}}")
}

/// Every sentinel in `text`, with its byte offset.
fn sentinels_in(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(SENTINEL_PREFIX) {
        let start = from + at;
        let digits_at = start + SENTINEL_PREFIX.len();
        let digits = text[digits_at..].bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && text[digits_at + digits..].starts_with('}') {
            if let Ok(n) = text[digits_at..digits_at + digits].parse() {
                found.push((n, start));
            }
        }
        from = digits_at;
    }
    found
}

/// `text` with every sentinel removed: the literal text around the values.
pub fn without_sentinels(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (n, at) in sentinels_in(text) {
        out.push_str(&text[from..at]);
        from = at + sentinel(n).len();
    }
    out.push_str(&text[from..]);
    out
}

fn sentinel_of(expr: &word::ParameterExpr) -> Option<usize> {
    match expr {
        word::ParameterExpr::Parameter { parameter: word::Parameter::Named(name), indirect: false } => {
            name.strip_prefix("__omni_cpi_value_")?.parse().ok()
        }
        _ => None,
    }
}

/// How a placeholder is quoted where it stands; it decides how its reference is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// Outside quotes: `"${N}"`.
    Unquoted,
    /// Inside `"…"`: `${N}`.
    Double,
    /// Inside `'…'`: the quotes are closed around it, `'"${N}"'`.
    Single,
    /// Inside arithmetic, where quotes are not allowed: `${N}` (only safe values reach it).
    Bare,
}

/// What the analysis learned about one placeholder occurrence.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub context: Context,
    pub quoting: Quoting,
    /// Occurrences with the same number share a shell word.
    pub word: usize,
    /// Literal text certainly precedes the value in its word, so it cannot start an option.
    pub literal_before: bool,
    /// A literal `--` came earlier in the same command: option parsing has ended.
    pub options_ended: bool,
}

/// Why a script cannot be used in shell mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellError {
    pub message: String,
}

fn options() -> ParserOptions {
    ParserOptions::default()
}

/// Runs the parser, turning a panic inside it into an error: brush-parser 0.4 unwraps integer
/// parses (an fd number such as `99999999999>x`, `${99999999999}`), and a hostile spec must get
/// a load error, never crash the host (found by `cargo xtask fuzz`).
fn guarded<T>(parse: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
        .unwrap_or_else(|_| Err("the shell parser could not read it (an out-of-range number?)".into()))
}

/// Longest script, and deepest nesting of `(`, `{`, `[`, handed to the parser. brush-parser 0.4
/// backtracks exponentially on deep unclosed nesting (`{ ((((…`) and grows without bound on
/// `$[` after a here-document operator (both found by `cargo xtask fuzz`): a spec must not be able
/// to stall or exhaust the loader, so such scripts are refused before parsing.
const MAX_SCRIPT_BYTES: usize = 16 * 1024;
const MAX_NESTING: usize = 12;

fn check_bounds(script: &str) -> Result<(), String> {
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(format!("the script is {} bytes; the limit is {MAX_SCRIPT_BYTES}", script.len()));
    }
    if script.contains("$[") {
        return Err("`$[…]` is obsolete bash arithmetic: write `$((…))`".into());
    }
    let mut depth: usize = 0;
    for c in script.chars() {
        match c {
            '(' | '{' | '[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!("brackets nest more than {MAX_NESTING} deep"));
                }
            }
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_program(script: &str) -> Result<ast::Program, String> {
    check_bounds(script)?;
    guarded(|| {
        let mut parser = Parser::new(std::io::BufReader::new(script.as_bytes()), &options());
        parser.parse_program().map_err(|e| e.to_string())
    })
}

fn parse_word(word: &str) -> Result<Vec<WordPieceWithSource>, String> {
    guarded(|| word::parse(word, &options()).map_err(|e| e.to_string()))
}

/// Analyses a script in which placeholder occurrence `n` is written as `sentinel(n)` for every
/// `n < count`. An occurrence the walk never meets stands in a comment.
pub fn analyze(script: &str, count: usize) -> Result<Vec<Occurrence>, ShellError> {
    let program = parse_program(script)
        .map_err(|e| ShellError { message: format!("the script does not parse as a shell script: {e}") })?;
    let mut walker = Walker::new(count);
    walker.program(&program);
    if count > 0 {
        if let Some(why) = walker.positionals_changed.take() {
            return Err(ShellError {
                message: format!(
                    "the script {why}, but placeholder values travel as the script's positional parameters"
                ),
            });
        }
    }
    let comment = || Context::Refused("a comment, or text the shell never reads as a word".into());
    Ok(walker
        .found
        .into_iter()
        .zip(walker.contexts)
        .map(|(found, context)| match found {
            Some(found) => Occurrence { context, ..found },
            None => Occurrence {
                context: comment(),
                quoting: Quoting::Unquoted,
                word: usize::MAX,
                literal_before: false,
                options_ended: false,
            },
        })
        .collect())
}

/// The contexts of `vars` in `text`, a word that a shell will read again as a script (the
/// argument of `sh -c`, an ssh remote command). The sentinels in `text` carry the outer numbers.
pub fn reread_contexts(text: &str, vars: &[usize]) -> Vec<(usize, Context)> {
    let unreadable = |why: String| vars.iter().map(|&v| (v, Context::Refused(why.clone()))).collect();
    let program = match parse_program(text) {
        Ok(program) => program,
        Err(e) => return unreadable(format!("a script that does not parse ({e})")),
    };
    let size = vars.iter().max().map_or(0, |m| m + 1);
    let mut walker = Walker::new(size);
    walker.program(&program);
    vars.iter()
        .map(|&v| match walker.found.get(v).and_then(Option::as_ref) {
            Some(_) => (v, walker.contexts[v].clone()),
            None => (v, Context::Refused("a comment".into())),
        })
        .collect()
}

struct Walker {
    found: Vec<Option<Occurrence>>,
    contexts: Vec<Context>,
    next_word: usize,
    in_function: bool,
    /// Set when the script runs `shift`, `set --` or `set ARG…`.
    positionals_changed: Option<String>,
}

/// What one word is made of, collected piece by piece.
struct WordState {
    id: usize,
    text: String,
    literal: bool,
    vars: Vec<usize>,
    /// Vars inside a command substitution of this word.
    nested: Vec<usize>,
    literal_before: bool,
    options_ended: bool,
}

impl Walker {
    fn new(count: usize) -> Walker {
        Walker {
            found: vec![None; count],
            contexts: vec![Context::Data; count],
            next_word: 0,
            in_function: false,
            positionals_changed: None,
        }
    }

    fn set(&mut self, n: usize, context: Context) {
        if let Some(slot) = self.contexts.get_mut(n) {
            *slot = std::mem::replace(slot, Context::Data).worst(context);
        }
    }

    /// Marks every sentinel in raw text, and records it as met.
    fn mark_text(&mut self, text: &str, context: &Context) -> Vec<usize> {
        let ids: Vec<usize> = sentinels_in(text).into_iter().map(|(n, _)| n).collect();
        for &n in &ids {
            self.meet(n, Quoting::Unquoted, false, false);
            self.set(n, context.clone());
        }
        ids
    }

    fn meet(&mut self, n: usize, quoting: Quoting, literal_before: bool, options_ended: bool) {
        let word = self.next_word;
        if let Some(slot) = self.found.get_mut(n) {
            if slot.is_none() {
                *slot = Some(Occurrence { context: Context::Data, quoting, word, literal_before, options_ended });
            }
        }
        if self.in_function {
            self.set(n, Context::Refused("a function body, where $1 is the function's own argument".into()));
        }
    }

    fn program(&mut self, program: &ast::Program) {
        for list in &program.complete_commands {
            self.list(list);
        }
    }

    fn list(&mut self, list: &ast::CompoundList) {
        for ast::CompoundListItem(and_or, _) in &list.0 {
            self.pipeline(&and_or.first);
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p),
                }
            }
        }
    }

    fn pipeline(&mut self, pipeline: &ast::Pipeline) {
        for command in &pipeline.seq {
            self.command(command);
        }
    }

    fn command(&mut self, command: &ast::Command) {
        match command {
            ast::Command::Simple(simple) => self.simple(simple),
            ast::Command::Compound(compound, redirects) => {
                self.compound(compound);
                self.redirects(redirects.as_ref());
            }
            ast::Command::Function(function) => {
                self.whole_word(&function.fname, &Context::Refused("a function's name".into()));
                let was = std::mem::replace(&mut self.in_function, true);
                self.compound(&function.body.0);
                self.redirects(function.body.1.as_ref());
                self.in_function = was;
            }
            ast::Command::ExtendedTest(test, redirects) => {
                self.extended_test(&test.expr);
                self.redirects(redirects.as_ref());
            }
        }
    }

    fn extended_test(&mut self, expr: &ast::ExtendedTestExpr) {
        let context = Context::Reparsed("a `[[ ]]` test, whose operands bash may evaluate".into());
        match expr {
            ast::ExtendedTestExpr::And(a, b) | ast::ExtendedTestExpr::Or(a, b) => {
                self.extended_test(a);
                self.extended_test(b);
            }
            ast::ExtendedTestExpr::Not(a) | ast::ExtendedTestExpr::Parenthesized(a) => self.extended_test(a),
            ast::ExtendedTestExpr::UnaryTest(_, w) => self.whole_word(w, &context),
            ast::ExtendedTestExpr::BinaryTest(_, a, b) => {
                self.whole_word(a, &context);
                self.whole_word(b, &context);
            }
        }
    }

    fn compound(&mut self, compound: &ast::CompoundCommand) {
        let arithmetic = || Context::Reparsed("arithmetic, where bash evaluates the value".into());
        match compound {
            ast::CompoundCommand::Arithmetic(a) => {
                self.arithmetic_text(&a.expr.value, &arithmetic());
            }
            ast::CompoundCommand::ArithmeticForClause(f) => {
                for expr in [&f.initializer, &f.condition, &f.updater].into_iter().flatten() {
                    self.arithmetic_text(&expr.value, &arithmetic());
                }
                self.list(&f.body.list);
            }
            ast::CompoundCommand::BraceGroup(b) => self.list(&b.list),
            ast::CompoundCommand::Subshell(s) => self.list(&s.list),
            ast::CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.whole_word(w, &Context::Reparsed("the word list of `for`".into()));
                }
                self.list(&f.body.list);
            }
            ast::CompoundCommand::CaseClause(c) => {
                self.whole_word(&c.value, &Context::Reparsed("the word of `case`".into()));
                for item in &c.cases {
                    for pattern in &item.patterns {
                        self.whole_word(pattern, &Context::Reparsed("a `case` pattern".into()));
                    }
                    if let Some(cmd) = &item.cmd {
                        self.list(cmd);
                    }
                }
            }
            ast::CompoundCommand::IfClause(i) => {
                self.list(&i.condition);
                self.list(&i.then);
                for e in i.elses.iter().flatten() {
                    if let Some(condition) = &e.condition {
                        self.list(condition);
                    }
                    self.list(&e.body);
                }
            }
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                self.list(&w.0);
                self.list(&w.1.list);
            }
            ast::CompoundCommand::Coprocess(c) => {
                if let Some(name) = &c.name {
                    self.whole_word(name, &Context::Refused("a coprocess name".into()));
                }
                self.command(&c.body);
            }
        }
    }

    fn arithmetic_text(&mut self, text: &str, context: &Context) {
        for (n, _) in sentinels_in(text) {
            self.meet(n, Quoting::Bare, false, false);
            self.set(n, context.clone());
        }
    }

    fn redirects(&mut self, redirects: Option<&ast::RedirectList>) {
        for redirect in redirects.iter().flat_map(|r| r.0.iter()) {
            self.redirect(redirect);
        }
    }

    fn redirect(&mut self, redirect: &ast::IoRedirect) {
        match redirect {
            ast::IoRedirect::File(_, _, target) => match target {
                ast::IoFileRedirectTarget::Filename(w) => {
                    self.whole_word(w, &Context::Data);
                }
                ast::IoFileRedirectTarget::Duplicate(w) => {
                    self.whole_word(w, &Context::Refused("a file descriptor to duplicate".into()));
                }
                ast::IoFileRedirectTarget::ProcessSubstitution(_, s) => self.list(&s.list),
                ast::IoFileRedirectTarget::Fd(_) => {}
            },
            ast::IoRedirect::OutputAndError(w, _) => {
                self.whole_word(w, &Context::Data);
            }
            ast::IoRedirect::HereDocument(_, doc) => {
                let refused = Context::Refused("a here-document, whose text its reader may run as code".into());
                self.mark_text(&doc.doc.value, &refused);
                self.mark_text(&doc.here_end.value, &refused);
            }
            ast::IoRedirect::HereString(_, w) => {
                let refused = Context::Refused("a here-string, whose text its reader may run as code".into());
                self.mark_text(&w.value, &refused);
            }
        }
    }

    /// A word outside a simple command's arguments; every value in it gets `context` (or
    /// worse, from what is inside the word).
    fn whole_word(&mut self, word: &ast::Word, context: &Context) {
        let state = self.word(word, false);
        for n in state.vars {
            self.set(n, context.clone());
        }
    }

    fn simple(&mut self, simple: &ast::SimpleCommand) {
        let assignment = Context::Reparsed("a variable assignment".into());
        for item in simple.prefix.iter().flat_map(|p| p.0.iter()) {
            match item {
                ast::CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r),
                ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w) => self.whole_word(w, &assignment),
                ast::CommandPrefixOrSuffixItem::Word(w) => {
                    self.whole_word(w, &Context::Refused("the program's position".into()))
                }
                ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, s) => self.list(&s.list),
            }
        }
        let mut words: Vec<CmdWord> = Vec::new();
        let mut options_ended = false;
        if let Some(program) = &simple.word_or_name {
            let state = self.word(program, false);
            words.push(cmd_word(state));
        }
        for item in simple.suffix.iter().flat_map(|s| s.0.iter()) {
            match item {
                ast::CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r),
                ast::CommandPrefixOrSuffixItem::Word(w) | ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                    let state = self.word(w, options_ended);
                    options_ended |= state.literal && state.text == "--";
                    words.push(cmd_word(state));
                }
                ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, s) => self.list(&s.list),
            }
        }
        self.note_positional_changes(&words);
        contexts::classify(&words, &mut self.contexts);
    }

    fn note_positional_changes(&mut self, words: &[CmdWord]) {
        let Some(program) = words.first().and_then(|w| w.literal.as_deref()) else { return };
        let args = &words[1..];
        let changes = match program {
            "shift" => true,
            "set" => {
                let mut takes_name = false;
                args.iter().any(|w| {
                    let text = w.literal.as_deref().unwrap_or("x");
                    let operand = !takes_name && (text == "--" || !(text.starts_with('-') || text.starts_with('+')));
                    takes_name = matches!(text, "-o" | "+o");
                    operand
                })
            }
            _ => false,
        };
        if changes && self.positionals_changed.is_none() {
            self.positionals_changed = Some(format!("runs `{program}`, which changes $1, $2, …"));
        }
    }

    /// Walks one word's pieces.
    fn word(&mut self, word: &ast::Word, options_ended: bool) -> WordState {
        self.next_word += 1;
        let mut state = WordState {
            id: self.next_word,
            text: String::new(),
            literal: true,
            vars: Vec::new(),
            nested: Vec::new(),
            literal_before: false,
            options_ended,
        };
        match parse_word(&word.value) {
            Ok(pieces) => {
                for piece in &pieces {
                    self.piece(piece, &word.value, Quoting::Unquoted, &mut state);
                }
            }
            Err(e) => {
                let ids = self.mark_text(&word.value, &Context::Refused(format!("a word that does not parse ({e})")));
                state.vars.extend(ids);
                state.literal = false;
            }
        }
        state
    }

    fn piece(&mut self, piece: &WordPieceWithSource, raw_word: &str, quoting: Quoting, state: &mut WordState) {
        let raw = raw_word.get(piece.start_index..piece.end_index).unwrap_or(raw_word);
        match &piece.piece {
            WordPiece::Text(text) => {
                state.text.push_str(text);
                state.literal_before |= !text.is_empty();
            }
            WordPiece::EscapeSequence(escaped) => {
                state.text.push_str(escaped.strip_prefix('\\').unwrap_or(escaped));
                state.literal_before = true;
            }
            WordPiece::SingleQuotedText(text) => {
                let mut last = 0;
                for (n, at) in sentinels_in(text) {
                    let before = state.literal_before || at > last;
                    self.meet(n, Quoting::Single, before, state.options_ended);
                    self.found_in_word(n, state);
                    state.literal_before = true;
                    last = at + sentinel(n).len();
                }
                state.literal_before |= text.len() > last;
                state.text.push_str(text);
                if !sentinels_in(text).is_empty() {
                    state.literal = false;
                }
            }
            WordPiece::AnsiCQuotedText(text) => {
                let ids = self.mark_text(text, &Context::Refused("ANSI-C quotes $'…'".into()));
                state.vars.extend(ids);
                state.text.push_str(text);
                state.literal_before |= !text.is_empty();
            }
            WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
                for p in inner {
                    self.piece(p, raw_word, Quoting::Double, state);
                }
            }
            WordPiece::ParameterExpansion(expr) => {
                state.literal = false;
                if let Some(n) = sentinel_of(expr) {
                    self.meet(n, quoting, state.literal_before, state.options_ended);
                    self.found_in_word(n, state);
                    state.text.push_str(&sentinel(n));
                } else {
                    let ids = self.mark_text(raw, &Context::Refused("an operand of a `${…}` expansion".into()));
                    state.vars.extend(ids);
                    state.text.push_str(raw);
                }
            }
            WordPiece::CommandSubstitution(inner) => {
                state.literal = false;
                state.text.push_str(raw);
                let before = sentinels_in(inner).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
                match parse_program(inner) {
                    Ok(program) => {
                        let was = self.next_word;
                        self.program(&program);
                        self.next_word = self.next_word.max(was);
                    }
                    Err(e) => {
                        self.mark_text(
                            inner,
                            &Context::Refused(format!("a command substitution that does not parse ({e})")),
                        );
                    }
                }
                // The substitution's output is part of this word, so the word's own context
                // applies to its values too.
                state.nested.extend(&before);
                state.vars.extend(before);
            }
            WordPiece::BackquotedCommandSubstitution(inner) => {
                state.literal = false;
                state.text.push_str(raw);
                let ids = self
                    .mark_text(inner, &Context::Refused("backquotes, which shells parse differently: use $( )".into()));
                state.vars.extend(ids);
            }
            WordPiece::ArithmeticExpression(expr) => {
                state.literal = false;
                state.text.push_str(raw);
                for (n, _) in sentinels_in(&expr.value) {
                    self.meet(n, Quoting::Bare, false, false);
                    self.set(n, Context::Reparsed("arithmetic, where bash evaluates the value".into()));
                    state.vars.push(n);
                }
            }
            WordPiece::TildeExpansion(_) => {
                state.literal = false;
                state.text.push_str(raw);
                let ids = self.mark_text(raw, &Context::Refused("a tilde expansion".into()));
                state.vars.extend(ids);
            }
        }
    }

    fn found_in_word(&mut self, n: usize, state: &mut WordState) {
        if let Some(Some(found)) = self.found.get_mut(n) {
            found.word = state.id;
        }
        state.vars.push(n);
    }
}

fn cmd_word(state: WordState) -> CmdWord {
    CmdWord {
        literal: (state.literal && state.vars.is_empty()).then(|| state.text.clone()),
        vars: state.vars,
        nested: state.nested,
        text: state.text,
    }
}
