//! Subcommands of `omni-cpi`. Each returns the process exit status; errors that escape as
//! `anyhow` are usage or load errors (status 2).

mod params;
mod show;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use omni_cpi::diagnostic::Diagnostics;
use omni_cpi::{requirements, spec, CallOptions, ErrorKind, JsonCpi};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "omni-cpi", version, about = "Run OmniCloud CPIs safely", long_about = None)]
pub struct Args {
    /// Output for people (text) or machines (json).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Where CPIs named without a path are looked up (NAME → DIR/NAME.json).
    #[arg(long, global = true, env = "OMNI_CPI_DIR", default_value = "cpis")]
    cpi_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check spec files: syntax, keys, types, placeholders, programs, required actions.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also check that required commands are installed in accepted versions.
        #[arg(long)]
        check_requirements: bool,
    },
    /// Show a CPI's actions, parameters, hooks and requirements.
    Info { cpi: String },
    /// List the CPIs in a directory and whether each loads.
    List { dir: Option<PathBuf> },
    /// Run an action (or, with --dry-run, show every process it would start).
    Call {
        cpi: String,
        action: String,
        /// Parameters: key=value for text, key:=JSON for lists and maps.
        params: Vec<OsString>,
        /// A JSON object of parameters; command-line pairs override it.
        #[arg(long)]
        params_file: Option<PathBuf>,
        /// Print the plan (every hook and the command as argv arrays) without running anything.
        #[arg(long)]
        dry_run: bool,
        /// Override the spec's timeout for every step ("30s", "500ms", or seconds).
        #[arg(long, value_parser = parse_timeout)]
        timeout: Option<Duration>,
    },
    /// Print the JSON Schema of the spec format, for editors.
    Schema,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => match text.strip_suffix('s') {
            Some(n) => (n, 1.0),
            None => match text.strip_suffix('m') {
                Some(n) => (n, 60.0),
                None => (text, 1.0),
            },
        },
    };
    number
        .parse::<f64>()
        .ok()
        .and_then(|n| Duration::try_from_secs_f64(n * scale).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}` is not a duration; write 30s, 500ms, 2m or a number of seconds"))
}

pub async fn run(args: Args) -> Result<u8> {
    match args.command {
        Command::Validate { paths, check_requirements } => validate(&paths, check_requirements, args.output).await,
        Command::Info { cpi } => {
            let cpi = load_cpi(&cpi, &args.cpi_dir, args.output)?;
            show::info(&cpi, args.output)?;
            Ok(EXIT_OK)
        }
        Command::List { dir } => list(dir.as_deref().unwrap_or(&args.cpi_dir), args.output),
        Command::Call { cpi, action, params, params_file, dry_run, timeout } => {
            let cpi = load_cpi(&cpi, &args.cpi_dir, args.output)?;
            let params = params::collect(&params, params_file.as_deref())?;
            let options = CallOptions { timeout, ..CallOptions::default() };
            let plan = match cpi.plan(&action, &params, &options) {
                Ok(plan) => plan,
                Err(e) => {
                    show::call_error(&e, args.output)?;
                    // Nothing ran: the request itself was wrong.
                    return Ok(EXIT_USAGE);
                }
            };
            if dry_run {
                show::plan(&plan, args.output)?;
                return Ok(EXIT_OK);
            }
            match cpi.execute(&plan, &options).await {
                Ok(outcome) => {
                    show::outcome(&outcome, args.output)?;
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    show::call_error(&e, args.output)?;
                    Ok(if e.kind == ErrorKind::Internal { EXIT_USAGE } else { EXIT_FAILED })
                }
            }
        }
        Command::Schema => {
            println!("{}", omni_cpi::spec::SCHEMA.trim_end());
            Ok(EXIT_OK)
        }
    }
}

/// A CPI named by path, or by name in the CPI directory.
fn resolve(name: &str, dir: &Path) -> Result<PathBuf> {
    let direct = PathBuf::from(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let in_dir = dir.join(format!("{name}.json"));
    if in_dir.is_file() {
        return Ok(in_dir);
    }
    let known: Vec<String> = spec_files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    bail!(
        "no CPI `{name}`: not a file, and not in {} (available: {})",
        dir.display(),
        if known.is_empty() { "none".to_string() } else { known.join(", ") }
    )
}

fn load_cpi(name: &str, dir: &Path, output: Output) -> Result<JsonCpi> {
    let path = resolve(name, dir)?;
    match JsonCpi::load(&path) {
        Ok(cpi) => Ok(cpi),
        Err(diagnostics) => {
            show::diagnostics(&path, &diagnostics, output)?;
            bail!("{} does not load ({} errors)", path.display(), diagnostics.0.iter().filter(|d| d.is_error()).count())
        }
    }
}

fn spec_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

async fn validate(paths: &[PathBuf], check_requirements: bool, output: Output) -> Result<u8> {
    let mut reports = Vec::new();
    for path in paths {
        let files = if path.is_dir() { spec_files(path)? } else { vec![path.clone()] };
        for file in files {
            let report = match spec::validate_file(&file) {
                Err(diagnostics) => show::ValidationReport { file, spec: None, diagnostics, requirements: Vec::new() },
                Ok((loaded, diagnostics)) => {
                    let requirements = if check_requirements {
                        requirements::check(&JsonCpi::new(loaded.clone())).await
                    } else {
                        Vec::new()
                    };
                    show::ValidationReport { file, spec: Some(loaded), diagnostics, requirements }
                }
            };
            reports.push(report);
        }
    }
    let failed = reports.iter().any(|r| r.diagnostics.has_errors() || r.requirements.iter().any(|c| !c.satisfied));
    show::validation(&reports, output)?;
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

fn list(dir: &Path, output: Output) -> Result<u8> {
    let entries: Vec<(PathBuf, Result<spec::Spec, Diagnostics>)> =
        spec_files(dir)?.into_iter().map(|p| (p.clone(), spec::load_file(&p))).collect();
    show::list(&entries, output)?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timeouts() {
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("3"), Ok(Duration::from_secs(3)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
