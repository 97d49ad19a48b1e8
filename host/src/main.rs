//! The `omni-cpi` command line. Exit status: 0 success, 1 the action or validation failed,
//! 2 a usage or load error (bad arguments, a spec that does not load, an unknown action or an
//! invalid parameter, found before anything ran).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    exit_quietly_on_closed_stdout();
    let args = cli::Args::parse();
    init_logs(&args);
    // A server uses every core; a command-line call starts fastest on the thread it has.
    let runtime = if args.serves() {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

/// Logs go to stderr (stdout carries results), filtered by $RUST_LOG: a server says what it
/// serves and every call it answers (info), a command only what went wrong (warn).
fn init_logs(args: &cli::Args) {
    let default = if args.serves() { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: a log file or collector gets plain text.
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match args.log_format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
}

/// `omni-cpi info | head` closes stdout early; a command-line tool should then end quietly, as
/// every Unix filter does. SIGPIPE itself stays ignored (Rust's default): restoring it would also
/// kill the host whenever a child exits before reading the stdin a component passes it. Instead,
/// the panic `println!` raises on a closed stdout ends the process with the status a SIGPIPE
/// death has in the shell.
fn exit_quietly_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
}
