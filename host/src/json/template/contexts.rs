//! Where a caller's value lands in a command, decided from the words around it.
//!
//! This is the one table of programs that read an argument again as code, choose a program from
//! it, or parse it as a pattern. Both template modes use it: argv mode on its one command, shell
//! mode on every simple command of the parsed script. `cpis/REFERENCE.md` ("Where a value may
//! stand") lists the same table for spec authors; a test keeps the two in step.
//!
//! The classification fails closed: where the table cannot tell an option's argument from an
//! operand, it assumes the reading in which the value is code.

use super::shell;

/// What becomes of a value in one position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    /// One argument (or part of one) that the program reads as data.
    Data,
    /// Text that a shell or a pattern language reads again: safe only when the parameter's
    /// pattern admits nothing but `[A-Za-z0-9_./-]` (see [`super::safe`]).
    Reparsed(String),
    /// Never safe: the value would choose the program, or run as code in a language whose
    /// plain identifiers already act (interpreters, sed), or sits where no quoting holds.
    Refused(String),
}

impl Context {
    /// The stricter of two readings of the same value.
    pub fn worst(self, other: Context) -> Context {
        match (self, other) {
            (refused @ Context::Refused(_), _) | (_, refused @ Context::Refused(_)) => refused,
            (reparsed @ Context::Reparsed(_), _) | (_, reparsed @ Context::Reparsed(_)) => reparsed,
            _ => Context::Data,
        }
    }
}

/// One word of a simple command, as the classifier sees it.
#[derive(Debug, Clone)]
pub struct CmdWord {
    /// The word after quote removal, when it holds no placeholder and no expansion.
    pub literal: Option<String>,
    /// The placeholder occurrences in the word (indexes chosen by the caller), also those inside
    /// a command substitution in it, whose output lands here.
    pub vars: Vec<usize>,
    /// Those of `vars` that stand inside a command substitution: shell syntax surrounds them,
    /// not a data language of the program's.
    pub nested: Vec<usize>,
    /// The word after quote removal with every placeholder written as [`shell::sentinel`]; a
    /// shell that reads the word again sees this text.
    pub text: String,
}

impl CmdWord {
    fn is_option(&self) -> bool {
        self.literal.as_deref().is_some_and(|w| w.len() > 1 && w.starts_with('-'))
    }
}

/// How a program treats the words after it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `-c` (alone or in a cluster such as `-ec`) makes the first operand a script; without it
    /// the first operand is a script file. Later operands are positional parameters: data.
    Shell,
    /// Runs a program named by an operand, with the rest as its arguments.
    Wrapper {
        /// Options that consume the next word as data.
        with_arg: &'static [&'static str],
        /// Options whose argument is a shell command line.
        code: &'static [&'static str],
        /// Flags after which the operands form a shell command line (`sudo -s`).
        code_flags: &'static [&'static str],
        /// Operands before the program (timeout's DURATION, flock's FILE, chroot's NEWROOT).
        leading: usize,
        /// `NAME=VALUE` operands before the program (env).
        assignments: bool,
    },
    /// An interpreter: `code` options take program text; without one, the first operand is a
    /// script file. Operands after the program are data (its argv).
    Interpreter { code: &'static [&'static str], with_arg: &'static [&'static str] },
    /// Every operand is joined into one shell command line (ssh's remote command after the
    /// destination, `eval`, `watch`).
    JoinedShell { with_arg: &'static [&'static str], code: &'static [&'static str], leading: usize },
    /// Every argument is code, or names what runs: no value may stand anywhere after it.
    AllCode,
    /// Operands are patterns matched against other processes or text: all of them (`pkill -f`),
    /// or only the first, or the argument of `-e` (`grep`).
    Patterns { first_only: bool },
    /// `printf`: the format is a small language, and bash's `-v NAME` evaluates subscripts.
    Printf,
    /// `test` and `[`: bash evaluates the operand of `-v` and `-R` as a variable reference.
    Test,
    /// `ip`: `ip netns exec NS PROGRAM…` and `ip vrf exec` run a program; `-batch` reads commands.
    Ip,
    /// `find`: `-exec`, `-execdir`, `-ok`, `-okdir` start a command that ends at `;` or `+`.
    Find,
}

struct Entry {
    names: &'static [&'static str],
    kind: Kind,
    /// Met among another program's arguments (`podman exec NAME sh -c …`), the word starts a
    /// nested command. Shell builtins and common words (`.`, `test`, `printf`) are left out: as
    /// arguments of another program they are data.
    nested: bool,
    /// How the table in REFERENCE.md describes the rule.
    what: &'static str,
}

const NO: &[&str] = &[];

/// The programs that read arguments again. Matched on the program's base name.
const TABLE: &[Entry] = &[
    Entry {
        names: &[
            "sh", "bash", "dash", "ash", "ksh", "ksh93", "mksh", "pdksh", "zsh", "yash", "posh", "rbash", "fish",
            "csh", "tcsh",
        ],
        kind: Kind::Shell,
        nested: true,
        what: "a shell's script (-c, or its first operand)",
    },
    Entry {
        names: &["env"],
        kind: Kind::Wrapper {
            with_arg: &["-u", "--unset", "-C", "--chdir", "-a", "--argv0"],
            code: &["-S", "--split-string"],
            code_flags: NO,
            leading: 0,
            assignments: true,
        },
        nested: true,
        what: "env: the program, and -S",
    },
    Entry {
        names: &["sudo"],
        kind: Kind::Wrapper {
            with_arg: &[
                "-u",
                "--user",
                "-g",
                "--group",
                "-C",
                "--close-from",
                "-D",
                "--chdir",
                "-h",
                "--host",
                "-p",
                "--prompt",
                "-r",
                "--role",
                "-t",
                "--type",
                "-T",
                "--command-timeout",
                "-U",
                "--other-user",
                "-R",
                "--chroot",
            ],
            code: NO,
            code_flags: &["-s", "--shell", "-i", "--login"],
            leading: 0,
            assignments: true,
        },
        nested: true,
        what: "sudo: the program; with -s/-i the command line",
    },
    Entry {
        names: &["doas"],
        kind: Kind::Wrapper { with_arg: &["-u", "-C"], code: NO, code_flags: &["-s"], leading: 0, assignments: false },
        nested: true,
        what: "doas: the program; with -s the command line",
    },
    Entry {
        names: &["timeout"],
        kind: Kind::Wrapper {
            with_arg: &["-s", "--signal", "-k", "--kill-after"],
            code: NO,
            code_flags: NO,
            leading: 1,
            assignments: false,
        },
        nested: true,
        what: "timeout: the program after the duration",
    },
    Entry {
        names: &["nice"],
        kind: Kind::Wrapper {
            with_arg: &["-n", "--adjustment"],
            code: NO,
            code_flags: NO,
            leading: 0,
            assignments: false,
        },
        nested: true,
        what: "nice: the program",
    },
    Entry {
        names: &["nohup", "setsid", "command", "builtin", "exec", "time", "chronic", "unbuffer"],
        kind: Kind::Wrapper { with_arg: &["-a", "-f", "-o"], code: NO, code_flags: NO, leading: 0, assignments: false },
        nested: false,
        what: "the program they start",
    },
    Entry {
        names: &["stdbuf"],
        kind: Kind::Wrapper {
            with_arg: &["-i", "-o", "-e", "--input", "--output", "--error"],
            code: NO,
            code_flags: NO,
            leading: 0,
            assignments: false,
        },
        nested: true,
        what: "stdbuf: the program",
    },
    Entry {
        names: &["ionice"],
        kind: Kind::Wrapper {
            with_arg: &["-c", "--class", "-n", "--classdata", "-p", "--pid", "-P", "--pgid", "-u", "--uid"],
            code: NO,
            code_flags: NO,
            leading: 0,
            assignments: false,
        },
        nested: true,
        what: "ionice: the program",
    },
    Entry {
        names: &["chroot"],
        kind: Kind::Wrapper {
            with_arg: &["--userspec", "--groups"],
            code: NO,
            code_flags: NO,
            leading: 1,
            assignments: false,
        },
        nested: true,
        what: "chroot: the program after the new root",
    },
    Entry {
        names: &["taskset"],
        kind: Kind::Wrapper { with_arg: NO, code: NO, code_flags: NO, leading: 1, assignments: false },
        nested: true,
        what: "taskset: the program after the mask",
    },
    Entry {
        names: &["flock"],
        kind: Kind::Wrapper {
            with_arg: &["-w", "--timeout", "-E", "--conflict-exit-code"],
            code: &["-c", "--command"],
            code_flags: NO,
            leading: 1,
            assignments: false,
        },
        nested: true,
        what: "flock: the program after the lock file, and -c",
    },
    Entry {
        names: &["busybox", "toybox"],
        kind: Kind::Wrapper { with_arg: NO, code: NO, code_flags: NO, leading: 0, assignments: false },
        nested: true,
        what: "the applet they run",
    },
    Entry {
        names: &["ssh"],
        kind: Kind::JoinedShell {
            with_arg: &[
                "-B", "-b", "-c", "-D", "-E", "-e", "-I", "-i", "-L", "-l", "-m", "-p", "-Q", "-R", "-S", "-W", "-w",
            ],
            code: &["-o", "-F", "-J"],
            leading: 1,
        },
        nested: true,
        what: "ssh: the remote command, -o, -F and -J",
    },
    Entry {
        names: &["watch"],
        kind: Kind::JoinedShell {
            with_arg: &["-n", "--interval", "-d", "--differences", "-q", "--equexit"],
            code: NO,
            leading: 0,
        },
        nested: true,
        what: "watch: the command line",
    },
    Entry {
        names: &["eval", "trap"],
        kind: Kind::JoinedShell { with_arg: NO, code: NO, leading: 0 },
        nested: false,
        what: "the shell code they run",
    },
    Entry {
        names: &["su", "runuser", "xargs", "parallel", "nsenter", "unshare", "systemd-run", "script"],
        kind: Kind::AllCode,
        nested: true,
        what: "every argument: each may be a program or a command line",
    },
    Entry {
        names: &[
            "source",
            ".",
            "let",
            "alias",
            "declare",
            "typeset",
            "local",
            "export",
            "readonly",
            "unset",
            "read",
            "mapfile",
            "readarray",
            "getopts",
            "shift",
            "set",
        ],
        kind: Kind::AllCode,
        nested: false,
        what: "every argument: code, a file of code, or a name the shell evaluates",
    },
    Entry { names: &["printf"], kind: Kind::Printf, nested: false, what: "printf: the format and -v" },
    Entry { names: &["test", "["], kind: Kind::Test, nested: false, what: "test: the operand of -v and -R" },
    Entry { names: &["ip"], kind: Kind::Ip, nested: false, what: "ip: the program after netns/vrf exec, and -batch" },
    Entry {
        names: &[
            "python",
            "python2",
            "python3",
            "pypy",
            "pypy3",
            "perl",
            "ruby",
            "irb",
            "node",
            "nodejs",
            "deno",
            "bun",
            "php",
            "lua",
            "luajit",
            "tclsh",
            "wish",
            "expect",
            "Rscript",
            "pwsh",
            "osascript",
            "jshell",
            "gdb",
        ],
        kind: Kind::Interpreter {
            code: &["-c", "-e", "-E", "-r", "-m", "-M", "-x", "-ex", "--eval", "--print", "-p", "--command"],
            with_arg: &["-W", "-X", "-I", "-i", "-d"],
        },
        nested: true,
        what: "an interpreter's program (-c, -e, -m, or its script operand)",
    },
    Entry {
        names: &["awk", "gawk", "mawk", "nawk", "sed", "gsed", "ed", "vim", "vi", "nvim", "emacs"],
        kind: Kind::Interpreter {
            code: &["-e", "--expression", "-f", "--file", "--source", "-i", "--include", "-c", "--eval"],
            with_arg: &["-F", "--field-separator", "-v", "--assign", "-l", "--line-length"],
        },
        nested: true,
        what: "the program text of awk, sed and editors",
    },
    Entry {
        names: &["pkill", "pgrep", "killall"],
        kind: Kind::Patterns { first_only: false },
        nested: false,
        what: "patterns matched against processes",
    },
    Entry {
        names: &["grep", "egrep", "fgrep"],
        kind: Kind::Patterns { first_only: true },
        nested: false,
        what: "grep: the pattern (first operand, or -e)",
    },
    Entry {
        names: &["find"],
        kind: Kind::Find,
        nested: false,
        what: "find: the program after -exec/-execdir/-ok/-okdir",
    },
];

fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn lookup(program: &str) -> Option<&'static Entry> {
    let name = base_name(program);
    // python3.11, pip-installed perl5.36 and the like.
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    TABLE.iter().find(|e| e.names.contains(&name) || (!stem.is_empty() && e.names.contains(&stem)))
}

/// The table as `(programs, what they read again)` rows, for the reference documentation.
pub fn table_rows() -> impl Iterator<Item = (&'static [&'static str], &'static str)> {
    TABLE.iter().map(|e| (e.names, e.what))
}

/// Collects the context of every placeholder occurrence in a simple command whose first word is
/// the program. `out[var]` is made stricter, never looser.
pub fn classify(words: &[CmdWord], out: &mut [Context]) {
    let mut cx = Classifier { out };
    cx.command(words);
    for word in words {
        cx.structured(word);
    }
}

/// Characters that may surround a value in its word without making the word a small language
/// of its own: `--name=`, `/var/log/`, `.log`, `host:`, `a,b`.
fn is_plain_surrounding(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./:@%+,=-".contains(c)
}

struct Classifier<'o> {
    out: &'o mut [Context],
}

impl Classifier<'_> {
    fn mark(&mut self, word: &CmdWord, context: &Context) {
        for &var in &word.vars {
            if let Some(slot) = self.out.get_mut(var) {
                *slot = std::mem::replace(slot, Context::Data).worst(context.clone());
            }
        }
    }

    fn mark_all(&mut self, words: &[CmdWord], context: &Context) {
        for word in words {
            self.mark(word, context);
        }
    }

    /// A value embedded in text with quotes, braces, brackets, spaces or operators sits in a
    /// structured string (a JSON argument, a config line, a filter expression, a regex): the
    /// program parses it, so the value needs a restrictive pattern like code does.
    fn structured(&mut self, word: &CmdWord) {
        if word.vars.is_empty() {
            return;
        }
        let surrounding = shell::without_sentinels(&word.text);
        if surrounding.chars().all(is_plain_surrounding) {
            return;
        }
        let shown: String = surrounding.chars().take(40).collect();
        let context = Context::Reparsed(format!("a structured string (`{shown}`: JSON, a config line, an expression)"));
        for &var in word.vars.iter().filter(|v| !word.nested.contains(v)) {
            if let Some(slot @ Context::Data) = self.out.get_mut(var) {
                *slot = context.clone();
            }
        }
    }

    /// `words[0]` is in command position.
    fn command(&mut self, words: &[CmdWord]) {
        let Some((program, args)) = words.split_first() else { return };
        self.mark(program, &Context::Refused("the program's position: the value would choose what runs".into()));
        let Some(name) = program.literal.as_deref() else {
            // A program the shell computes at run time: nothing is known about its arguments.
            self.mark_all(args, &Context::Refused("an argument of a program chosen at run time".into()));
            return;
        };
        match lookup(name) {
            None => self.ordinary(args),
            Some(entry) => self.special(name, entry, args),
        }
    }

    /// A program outside the table reads its arguments as data, unless one of them starts a
    /// nested command the table knows (`podman exec NAME sh -c '…'`, `lxc-attach -- bash -c`).
    fn ordinary(&mut self, args: &[CmdWord]) {
        let nested = |w: &CmdWord| w.literal.as_deref().and_then(lookup).is_some_and(|e| e.nested);
        if let Some(at) = args.iter().position(nested) {
            self.command(&args[at..]);
        }
    }

    fn special(&mut self, name: &str, entry: &Entry, args: &[CmdWord]) {
        let base = base_name(name);
        match entry.kind {
            Kind::Shell => self.shell(base, args),
            Kind::Wrapper { with_arg, code, code_flags, leading, assignments } => {
                self.wrapper(base, args, with_arg, code, code_flags, leading, assignments)
            }
            Kind::Interpreter { code, with_arg } => self.interpreter(base, args, code, with_arg),
            Kind::JoinedShell { with_arg, code, leading } => self.joined_shell(base, args, with_arg, code, leading),
            Kind::AllCode => self.mark_all(
                args,
                &Context::Refused(format!("an argument of `{base}`, which runs it as code or evaluates it")),
            ),
            Kind::Patterns { first_only } => self.patterns(base, args, first_only),
            Kind::Printf => self.printf(args),
            Kind::Test => self.test(args),
            Kind::Ip => self.ip(args),
            Kind::Find => self.find(args),
        }
    }

    fn shell(&mut self, shell: &str, args: &[CmdWord]) {
        let code = |what: &str| Context::Refused(format!("{what} of `{shell}`"));
        let mut i = 0;
        while i < args.len() {
            let word = &args[i];
            match word.literal.as_deref() {
                Some("--") => {
                    i += 1;
                    break;
                }
                Some("-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") => {
                    self.mark(args.get(i + 1).unwrap_or(word), &code("an option"));
                    i += 2;
                }
                Some(w) if word.is_option() || (w.starts_with('+') && w.len() > 1) => i += 1,
                // The first operand; a value here cannot pose as an option (the dash check).
                Some(_) | None => break,
            }
        }
        // The first operand is the script (with -c) or the script file (without).
        if let Some(script) = args.get(i) {
            self.shell_text(script, &format!("the script of `{shell}`"));
        }
    }

    /// A word a shell reads again as a script: the value is safe only as a plain word in it.
    fn shell_text(&mut self, word: &CmdWord, what: &str) {
        if word.vars.is_empty() {
            return;
        }
        for (var, inner) in shell::reread_contexts(&word.text, &word.vars) {
            let context = match inner {
                Context::Data | Context::Reparsed(_) => Context::Reparsed(what.to_string()),
                Context::Refused(why) => Context::Refused(format!("{what}, at {why}")),
            };
            if let Some(slot) = self.out.get_mut(var) {
                *slot = std::mem::replace(slot, Context::Data).worst(context);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn wrapper(
        &mut self,
        name: &str,
        args: &[CmdWord],
        with_arg: &[&str],
        code: &[&str],
        code_flags: &[&str],
        leading: usize,
        assignments: bool,
    ) {
        let mut i = 0;
        let mut operands_before = 0;
        let mut options_ended = false;
        while i < args.len() {
            let word = &args[i];
            let literal = word.literal.as_deref();
            if !options_ended && word.is_option() {
                let w = literal.unwrap_or_default();
                if w == "--" {
                    options_ended = true;
                    i += 1;
                    continue;
                }
                let (flag, attached) = split_short(w, code).unwrap_or_else(|| split_option(w));
                if code.contains(&flag) {
                    let what = format!("the command line given to `{name} {flag}`");
                    match attached {
                        Some(_) => {
                            self.mark(word, &Context::Refused(format!("{what}, written attached to the option")))
                        }
                        None => {
                            if let Some(next) = args.get(i + 1) {
                                self.shell_text(next, &what);
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                    continue;
                }
                if code_flags.contains(&flag) {
                    self.joined(name, &args[i + 1..], &format!("the command line of `{name} {flag}`"));
                    return;
                }
                if with_arg.contains(&flag) && attached.is_none() {
                    i += 1;
                }
                i += 1;
                continue;
            }
            let is_assignment = assignments
                && operands_before == 0
                && match literal {
                    Some(w) => w.contains('='),
                    None => word.text.split_once('=').is_some_and(|(name, _)| is_plain_name(name)),
                };
            if is_assignment {
                i += 1;
                continue;
            }
            if operands_before < leading {
                operands_before += 1;
                i += 1;
                continue;
            }
            self.command(&args[i..]);
            return;
        }
    }

    fn interpreter(&mut self, name: &str, args: &[CmdWord], code: &[&str], with_arg: &[&str]) {
        let program_text = Context::Refused(format!(
            "the program text of `{name}`, which no pattern makes safe: pass the value as an argument after the program"
        ));
        let mut i = 0;
        let mut code_given = false;
        // Options the table does not know may take an argument: each one pushes the operand
        // that is certainly data one word further (fail closed).
        let mut unknown_options = 0;
        while i < args.len() {
            let word = &args[i];
            let Some(w) = word.literal.as_deref().filter(|_| word.is_option()) else { break };
            if w == "--" {
                i += 1;
                break;
            }
            let (flag, attached) = split_short(w, code).unwrap_or_else(|| split_option(w));
            if code.contains(&flag) {
                code_given = true;
                if attached.is_none() {
                    i += 1;
                    if let Some(next) = args.get(i) {
                        self.mark(next, &program_text);
                    }
                }
            } else if with_arg.contains(&flag) {
                if attached.is_none() {
                    i += 1;
                }
            } else {
                unknown_options += 1;
            }
            i += 1;
        }
        let program_operands = if code_given { unknown_options } else { unknown_options + 1 };
        // Values among the options, or where the program may be, are refused.
        for word in &args[..i.min(args.len())] {
            if word.literal.is_none() && !word.vars.is_empty() {
                self.mark(word, &program_text);
            }
        }
        for word in args.iter().skip(i).take(program_operands) {
            self.mark(word, &program_text);
        }
    }

    fn joined_shell(&mut self, name: &str, args: &[CmdWord], with_arg: &[&str], code: &[&str], leading: usize) {
        let mut i = 0;
        let mut operands = 0;
        while i < args.len() {
            let word = &args[i];
            if operands == 0 && word.is_option() {
                let w = word.literal.as_deref().unwrap_or_default();
                if w == "--" {
                    i += 1;
                    continue;
                }
                let (flag, attached) = split_short(w, code).unwrap_or_else(|| split_option(w));
                if code.contains(&flag) {
                    let target = if attached.is_some() { word } else { args.get(i + 1).unwrap_or(word) };
                    self.mark(target, &Context::Refused(format!("`{name} {flag}`, whose argument runs a command")));
                    i += if attached.is_some() { 1 } else { 2 };
                    continue;
                }
                i += if with_arg.contains(&flag) && attached.is_none() { 2 } else { 1 };
                continue;
            }
            if operands < leading {
                operands += 1;
                i += 1;
                continue;
            }
            break;
        }
        self.joined(name, &args[i.min(args.len())..], &format!("the command line `{name}` runs"));
    }

    /// Words joined with spaces into one shell command line.
    fn joined(&mut self, _name: &str, words: &[CmdWord], what: &str) {
        if words.iter().all(|w| w.vars.is_empty()) {
            return;
        }
        let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
        let vars: Vec<usize> = words.iter().flat_map(|w| w.vars.iter().copied()).collect();
        let joined = CmdWord { literal: None, vars, nested: Vec::new(), text };
        self.shell_text(&joined, what);
    }

    fn patterns(&mut self, name: &str, args: &[CmdWord], first_only: bool) {
        let pattern = Context::Reparsed(format!("a pattern of `{name}`"));
        if !first_only {
            self.mark_all(args, &pattern);
            return;
        }
        let mut i = 0;
        let mut pattern_given = false;
        while i < args.len() {
            let word = &args[i];
            match word.literal.as_deref() {
                Some("--") => {
                    i += 1;
                    break;
                }
                Some("-e" | "--regexp" | "-f" | "--file") => {
                    pattern_given = true;
                    if let Some(next) = args.get(i + 1) {
                        self.mark(next, &pattern);
                    }
                    i += 2;
                }
                Some(_) if word.is_option() => i += 1,
                // The first operand: the pattern, unless -e or -f gave one.
                Some(_) | None => break,
            }
        }
        if !pattern_given {
            if let Some(first) = args.get(i) {
                self.mark(first, &pattern);
            }
        }
    }

    fn printf(&mut self, args: &[CmdWord]) {
        let mut i = 0;
        if let Some("-v") = args.first().and_then(|w| w.literal.as_deref()) {
            if let Some(name) = args.get(1) {
                self.mark(name, &Context::Refused("the variable name of `printf -v`, which bash evaluates".into()));
            }
            i = 2;
        }
        if let Some("--") = args.get(i).and_then(|w| w.literal.as_deref()) {
            i += 1;
        }
        if let Some(format) = args.get(i) {
            self.mark(format, &Context::Reparsed("the format of `printf`".into()));
        }
    }

    fn test(&mut self, args: &[CmdWord]) {
        for pair in args.windows(2) {
            if matches!(pair[0].literal.as_deref(), Some("-v" | "-R")) {
                self.mark(&pair[1], &Context::Refused("the operand of `test -v`, which bash evaluates".into()));
            }
        }
    }

    fn ip(&mut self, args: &[CmdWord]) {
        for (i, word) in args.iter().enumerate() {
            match word.literal.as_deref() {
                Some("-b" | "-batch" | "--batch") => {
                    if let Some(file) = args.get(i + 1) {
                        self.mark(file, &Context::Refused("the command file of `ip -batch`".into()));
                    }
                }
                // `ip netns exec NAME PROGRAM…`, `ip vrf exec NAME PROGRAM…`.
                Some("exec") => {
                    self.command(args.get(i + 2..).unwrap_or_default());
                    return;
                }
                _ => {}
            }
        }
    }

    fn find(&mut self, args: &[CmdWord]) {
        let mut i = 0;
        while i < args.len() {
            let starts_command = matches!(args[i].literal.as_deref(), Some("-exec" | "-execdir" | "-ok" | "-okdir"));
            i += 1;
            if starts_command {
                let end = args[i..]
                    .iter()
                    .position(|w| matches!(w.literal.as_deref(), Some(";" | "+")))
                    .map_or(args.len(), |n| i + n);
                self.command(&args[i..end]);
                i = end + 1;
            }
        }
    }
}

/// `--opt=value` → (`--opt`, Some(value)); `-Sfoo` → (`-S`, Some(foo)); `-c` → (`-c`, None).
/// A short-option cluster such as `-ec` is reported by its last letter, which is the one that
/// takes the next word.
fn split_option(word: &str) -> (&str, Option<&str>) {
    if let Some(long) = word.strip_prefix("--") {
        return match long.split_once('=') {
            Some((flag, value)) => (&word[..2 + flag.len()], Some(value)),
            None => (word, None),
        };
    }
    (word, None)
}

/// `-Sfoo` → (`-S`, Some(foo)) when `-S` is one of `flags`.
fn split_short<'w>(word: &'w str, flags: &[&str]) -> Option<(&'w str, Option<&'w str>)> {
    flags
        .iter()
        .find(|f| f.len() == 2 && !f.starts_with("--") && word.len() > 2 && word.starts_with(**f))
        .map(|f| (&word[..f.len()], Some(&word[f.len()..])))
}

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
