//! Subcommands of `omni-cpi`. Each returns the process exit status; errors that escape as
//! `anyhow` are usage or load errors (status 2).

mod build;
mod conformance;
mod new;
mod params;
mod progress;
mod remote;
mod show;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use omni_cpi::diagnostic::{Diagnostic, Diagnostics};
use omni_cpi::json::spec;
use omni_cpi::policy::{Policy, POLICY_ENV};
use omni_cpi::wasm::{ComponentHost, LoadError};
use omni_cpi::{CallOptions, Cpi, CpiLoadError, Loader};

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
    /// The operator's policy (TOML): plugins, their grants and limits, the audit log. Without
    /// one, plugins get no capabilities at all.
    #[arg(long, global = true, env = POLICY_ENV)]
    policy: Option<PathBuf>,
    /// Load JSON files in another project's format through an explicit translation
    /// (omnicloud: the OmniCloud v0/v2 CPI files), reporting every difference as a warning.
    #[arg(long, global = true, value_enum)]
    compat: Option<CompatArg>,
    /// Lets the request actions of JSON specs reach HOST (any port) or HOST:PORT, on top of the
    /// policy's network grants. Repeatable. Without a grant no request is sent.
    #[arg(long = "allow-host", global = true, value_name = "HOST[:PORT]", value_parser = parse_network_grant)]
    allow_host: Vec<omni_cpi::policy::NetworkGrant>,
    /// Send call, info, list and conformance to `omni-cpi serve` at ADDRESS (unix:PATH,
    /// tcp:IP:PORT or tls:HOST:PORT, the last two with the token in $OMNI_CPI_TOKEN) instead of
    /// loading CPIs here.
    #[arg(long, global = true, env = "OMNI_CPI_REMOTE", value_parser = parse_remote, value_name = "ADDRESS")]
    remote: Option<omni_cpi::serve::client::Address>,
    /// With --remote tls:…: the CA certificate(s), PEM, the server's certificate must chain to
    /// (default: Mozilla's roots).
    #[arg(long, global = true, env = "OMNI_CPI_REMOTE_CA", value_name = "FILE")]
    remote_ca: Option<PathBuf>,
    /// Diagnostic logs on stderr as text or as one JSON object per line (for a log collector).
    /// $RUST_LOG filters them (default: info for serve, warn otherwise).
    #[arg(long, global = true, env = "OMNI_CPI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where compiled components are cached (default: $XDG_CACHE_HOME/omni-cpi).
    #[arg(long, global = true, env = "OMNI_CPI_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Args {
    /// Whether this run is a long-running server (its runtime, its default log level).
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve { .. })
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check spec files and components: syntax, keys, types, placeholders, programs, required
    /// actions; for components the world, version, describe() and the grants.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also check that required commands are installed in accepted versions.
        #[arg(long)]
        check_requirements: bool,
    },
    /// Show a CPI's actions, parameters, hooks and requirements (for components: requested vs
    /// granted capabilities and limits).
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
        /// Override the spec's timeout for every step ("500ms", "30s", "2m", "1h", or seconds).
        #[arg(long, value_parser = parse_timeout)]
        timeout: Option<Duration>,
    },
    /// Print the JSON Schema of the spec format, for editors.
    Schema,
    /// Check that a CPI honours the contract, against its real runtime (or statically).
    Conformance(ConformanceArgs),
    /// Start a plugin project: a component CPI in Rust with the SDK, the policy that grants what
    /// it requests, and a README with the build and test commands.
    New {
        #[arg(value_enum)]
        kind: KindArg,
        /// The CPI's name (lowercase letters, digits, `_`): the crate, the component, the policy entry.
        name: String,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The language: rust (cargo and the Rust SDK), python (componentize-py and the Python
        /// kit) or js (esbuild, componentize-js and the JavaScript kit).
        #[arg(long, value_enum, default_value_t = build::Language::Rust)]
        lang: build::Language,
        /// The omni-cpi kit to use (default: the language's kit in the repository omni-cpi was
        /// built from: plugins/sdk, plugins/sdk-py or plugins/sdk-js).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin project (Rust, Python or JavaScript) into a component; prints its path.
    Build {
        /// The project (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Compile components for this machine into the cache, so that no call has to (a Python or
    /// JavaScript component takes seconds). Names are policy entries or paths; none: every
    /// component the policy binds.
    Compile { plugins: Vec<String> },
    /// Serve the policy's CPIs over HTTP (see openapi.json): on a unix socket to the users the
    /// policy's [serve] allows, on loopback TCP or on TLS to holders of a bearer token. SIGHUP
    /// reloads the policy, the tokens and the certificate; SIGTERM stops after the calls in flight.
    Serve {
        /// unix:PATH, tcp:IP:PORT (loopback only: clear text) or tls:IP:PORT; repeatable.
        #[arg(long = "listen", value_parser = parse_listen, default_value = "unix:/run/omni-cpi/omni-cpi.sock")]
        listen: Vec<omni_cpi::serve::Listen>,
        /// `NAME TOKEN` lines, mode 0600: the bearer tokens TCP and TLS callers present.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// PEM certificate chain for tls: listeners.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert, mode 0600.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// After SIGTERM, how long calls in flight may run before their processes are killed.
        #[arg(long, value_parser = parse_timeout, default_value = "30s")]
        shutdown_grace: Duration,
    },
    /// Rewrite an OmniCloud v0/v2 CPI file into the native format (printed, or written to --out);
    /// every difference from the original is reported as a warning.
    Convert {
        file: PathBuf,
        /// Write the native spec here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct ConformanceArgs {
    /// The CPI to check; with --static, any number of spec files, components or directories
    /// (default: cpis/ and the built plugins).
    targets: Vec<String>,
    /// Fail unless the CPI is of this kind.
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Run only these checks (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Skip these checks (repeatable).
    #[arg(long)]
    skip: Vec<String>,
    /// Rounds of C-ROBUST-01.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Concurrent lifecycles of C-ROBUST-02.
    #[arg(long, default_value_t = 3)]
    parallel: usize,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A parameter every call gets (key=value or key:=JSON), e.g. --param image=busybox.
    #[arg(long = "param")]
    params: Vec<OsString>,
    /// List the checks and exit.
    #[arg(long)]
    list: bool,
    /// Static checks only (no runtime): required actions, parameters, requirements.
    #[arg(long = "static")]
    static_only: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompatArg {
    Omnicloud,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum KindArg {
    Container,
    Director,
}

/// `--timeout`: the same durations a spec's `timeout` accepts.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    omni_cpi::contract::duration::parse_positive(text)
}

fn parse_listen(text: &str) -> Result<omni_cpi::serve::Listen, String> {
    omni_cpi::serve::Listen::parse(text)
}

fn parse_remote(text: &str) -> Result<omni_cpi::serve::client::Address, String> {
    omni_cpi::serve::client::Address::parse(text)
}

fn parse_network_grant(text: &str) -> Result<omni_cpi::policy::NetworkGrant, String> {
    omni_cpi::policy::NetworkGrant::parse(text)
}

fn loader(args: &Args) -> Result<Loader> {
    let policy = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    let cache_dir = args.cache_dir.clone().or_else(ComponentHost::default_cache_dir);
    let mut loader = Loader::new(policy, cache_dir).context("cannot open the audit log named by the policy")?;
    loader.compat = args.compat.map(|CompatArg::Omnicloud| omni_cpi::json::spec::compat::Compat::OmniCloud);
    loader.allowed_hosts = args.allow_host.clone();
    if !args.serves() {
        // A server logs its compilations; a person at the CLI sees them happen.
        loader.compile_progress = Some(std::sync::Arc::new(progress::StderrProgress));
    }
    Ok(loader)
}

pub async fn run(args: Args) -> Result<u8> {
    if let Some(address) = &args.remote {
        let token = std::env::var("OMNI_CPI_TOKEN").ok().filter(|t| !t.is_empty());
        let remote = omni_cpi::serve::client::Remote::new(address.clone(), token, args.remote_ca.as_deref())?;
        return remote::run(&args, remote).await;
    }
    let loader = loader(&args)?;
    match &args.command {
        Command::Validate { paths, check_requirements } => {
            validate(&loader, paths, *check_requirements, args.output).await
        }
        Command::Info { cpi } => {
            let path = resolve(cpi, &args.cpi_dir, &loader.policy)?;
            let info = match loader.load(&path).await {
                Ok(cpi) => cpi.info(),
                // A component the policy does not (fully) grant is still shown: what it requests,
                // what is missing, and the TOML that would grant it.
                Err(e @ (CpiLoadError::Unbound(_) | CpiLoadError::Component(LoadError::MissingGrants(_)))) => {
                    match loader.info_ungranted(&path).await {
                        Some(info) => info,
                        None => return Err(load_error(&path, e, args.output)),
                    }
                }
                Err(e) => return Err(load_error(&path, e, args.output)),
            };
            show::info(&info, args.output)?;
            Ok(EXIT_OK)
        }
        Command::List { dir } => list(&loader, dir.as_deref().unwrap_or(&args.cpi_dir), args.output).await,
        Command::Call { cpi, action, params, params_file, dry_run, timeout } => {
            let cpi = load_cpi(&loader, cpi, &args.cpi_dir, args.output).await?;
            let params = params::collect(params, params_file.as_deref())?;
            let options = CallOptions { timeout: *timeout, ..CallOptions::default() };
            let checked = match cpi.check(action, &params, &options) {
                Ok(checked) => checked,
                Err(e) => {
                    show::call_error(&e, args.output)?;
                    // Nothing ran: the request itself was wrong.
                    return Ok(EXIT_USAGE);
                }
            };
            if *dry_run {
                return match cpi.plan_checked(checked, action, &params, &options).await {
                    Ok(plan) => {
                        show::plan(&plan, args.output)?;
                        Ok(EXIT_OK)
                    }
                    Err(e) => {
                        show::call_error(&e, args.output)?;
                        Ok(EXIT_FAILED)
                    }
                };
            }
            match cpi.run(checked, action, &params, &options).await {
                Ok(outcome) => {
                    show::outcome(&outcome, args.output)?;
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    show::call_error(&e, args.output)?;
                    Ok(EXIT_FAILED)
                }
            }
        }
        Command::Serve { listen, token_file, tls_cert, tls_key, shutdown_grace } => {
            let Some(policy) = args.policy.clone() else {
                bail!("serve needs a policy (--policy FILE or ${POLICY_ENV}): it serves exactly the CPIs the policy binds");
            };
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(omni_cpi::serve::TlsFiles { cert: cert.clone(), key: key.clone() }),
                _ => None,
            };
            let cache_dir = args.cache_dir.clone().or_else(ComponentHost::default_cache_dir);
            omni_cpi::serve::serve(omni_cpi::serve::ServeConfig {
                policy,
                listen: listen.clone(),
                token_file: token_file.clone(),
                tls,
                cache_dir,
                shutdown_grace: *shutdown_grace,
            })
            .await?;
            Ok(EXIT_OK)
        }
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&omni_cpi::json::spec::schema())?);
            Ok(EXIT_OK)
        }
        Command::Conformance(c) => conformance::run(&loader, None, c, &args.cpi_dir, args.output).await,
        Command::New { kind, name, dir, lang, sdk } => {
            let dir = new::run(*kind, name, dir.as_deref(), sdk.as_deref(), *lang)?;
            let word = match kind {
                KindArg::Container => "container",
                KindArg::Director => "director",
            };
            println!("wrote the {word} CPI `{name}` in {}; next: {}/README.md", dir.display(), dir.display());
            Ok(EXIT_OK)
        }
        Command::Build { dir } => {
            let component = build::run(dir.as_deref().unwrap_or(Path::new(".")))?;
            println!("{}", component.canonicalize().unwrap_or(component).display());
            Ok(EXIT_OK)
        }
        Command::Compile { plugins } => compile(&loader, plugins, &args.cpi_dir, args.output),
        Command::Convert { file, out } => {
            let mode = loader.compat.unwrap_or(omni_cpi::json::spec::compat::Compat::OmniCloud);
            match spec::convert_file(file, mode) {
                Err(diagnostics) => {
                    show::diagnostics(file, &diagnostics, args.output)?;
                    Ok(EXIT_USAGE)
                }
                Ok((native, warnings)) => {
                    for w in &warnings {
                        eprintln!("{w}");
                    }
                    match out {
                        Some(path) => {
                            std::fs::write(path, native).with_context(|| format!("writing {}", path.display()))?
                        }
                        None => print!("{native}"),
                    }
                    // A converted spec must load natively; say so now rather than at first use.
                    let check = out.as_ref().map(|p| spec::load_file(p).map(|_| ()));
                    if let Some(Err(diagnostics)) = check {
                        eprint!("{diagnostics}");
                        return Ok(EXIT_FAILED);
                    }
                    Ok(EXIT_OK)
                }
            }
        }
    }
}

/// `omni-cpi compile`: each component into the cache, with progress; a JSON spec has nothing to
/// compile. Fails (1) when any does not compile or is refused by the policy.
fn compile(loader: &Loader, plugins: &[String], cpi_dir: &Path, output: Output) -> Result<u8> {
    use omni_cpi::wasm::component::Precompiled;
    let targets: Vec<(String, PathBuf)> = if plugins.is_empty() {
        let mut bound: Vec<(String, PathBuf)> =
            loader.policy.plugins.values().filter_map(|p| p.source.clone().map(|s| (p.name.clone(), s))).collect();
        bound.sort();
        if bound.is_empty() {
            bail!("nothing to compile: name components (policy entries or paths), or pass a --policy that binds some");
        }
        bound
    } else {
        plugins
            .iter()
            .map(|name| resolve(name, cpi_dir, &loader.policy).map(|path| (name.clone(), path)))
            .collect::<Result<_>>()?
    };
    if loader.component_host().ok().and_then(|h| h.cache_dir()).is_none() {
        eprintln!("warning: no compilation cache (see --cache-dir): compiled components are not kept");
    }
    let mut failed = false;
    let mut report = Vec::new();
    for (name, path) in targets {
        let outcome = match loader.precompile(&path) {
            Ok(None) => "a JSON spec: nothing to compile".to_string(),
            Ok(Some(Precompiled::Compiled)) => "compiled into the cache".to_string(),
            Ok(Some(Precompiled::Cached)) => "already in the cache".to_string(),
            Ok(Some(Precompiled::Uncached)) => "compiled, not cached".to_string(),
            Err(e) => {
                failed = true;
                format!("error: {e}")
            }
        };
        report.push(serde_json::json!({"plugin": name, "source": path, "outcome": outcome}));
        if output == Output::Text {
            println!("{name}: {outcome}");
        }
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// A CPI named by a plugin name in the policy (first: the operator's name wins over a file that
/// happens to be called the same), by path, or by name in the CPI directory.
pub(crate) fn resolve(name: &str, dir: &Path, policy: &Policy) -> Result<PathBuf> {
    if let Some(source) = policy.plugins.get(name).and_then(|p| p.source.clone()) {
        return Ok(source);
    }
    let direct = PathBuf::from(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let in_dir = dir.join(format!("{name}.json"));
    if in_dir.is_file() {
        return Ok(in_dir);
    }
    let mut known: Vec<String> = spec_files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    known.extend(policy.plugins.keys().cloned());
    bail!(
        "no CPI `{name}`: not a file, not a plugin in the policy, and not in {} (available: {})",
        dir.display(),
        if known.is_empty() { "none".to_string() } else { known.join(", ") }
    )
}

pub(crate) async fn load_cpi(loader: &Loader, name: &str, dir: &Path, output: Output) -> Result<Cpi> {
    let path = resolve(name, dir, &loader.policy)?;
    loader.load(&path).await.map_err(|e| load_error(&path, e, output))
}

/// A load failure as the CLI reports it: a spec's diagnostics printed, the error to return.
fn load_error(path: &Path, error: CpiLoadError, output: Output) -> anyhow::Error {
    match error {
        CpiLoadError::Spec(diagnostics) => {
            if let Err(e) = show::diagnostics(path, &diagnostics, output) {
                return e;
            }
            anyhow::anyhow!(
                "{} does not load ({} errors)",
                path.display(),
                diagnostics.0.iter().filter(|d| d.is_error()).count()
            )
        }
        other => anyhow::anyhow!("{other}"),
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

/// Spec files and components in a directory.
pub(crate) fn cpi_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = spec_files(dir)?;
    files.extend(
        std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file()),
    );
    files.sort();
    Ok(files)
}

async fn validate(loader: &Loader, paths: &[PathBuf], check_requirements: bool, output: Output) -> Result<u8> {
    let mut reports = Vec::new();
    for path in paths {
        let files = if path.is_dir() { cpi_files(path)? } else { vec![path.clone()] };
        for file in files {
            // The file as the policy sees it: its entry's grants, or refused when none binds it.
            let report = match loader.load(&file).await {
                Err(CpiLoadError::Spec(diagnostics)) => show::ValidationReport::failed(file, diagnostics),
                Err(e) => show::ValidationReport::failed(file, Diagnostics(vec![Diagnostic::error(e.to_string())])),
                Ok(cpi) => {
                    let checks = if check_requirements { cpi.check_requirements().await } else { Vec::new() };
                    show::ValidationReport::loaded(file, &cpi, Diagnostics(cpi.diagnostics()), checks)
                }
            };
            reports.push(report);
        }
    }
    let failed = reports.iter().any(|r| r.diagnostics.has_errors() || r.requirements.iter().any(|c| !c.satisfied));
    show::validation(&reports, output)?;
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// Every CPI in `dir` and every policy entry's file, each loaded as `call` would load it.
async fn list(loader: &Loader, dir: &Path, output: Output) -> Result<u8> {
    let mut files = cpi_files(dir)?;
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    for source in loader.policy.plugins.values().filter_map(|p| p.source.clone()) {
        if !files.iter().any(|f| canonical(f) == canonical(&source)) {
            files.push(source);
        }
    }
    let mut listed = Vec::new();
    for file in files {
        let entry = loader.policy.plugin_for_source(&file).map(|p| p.name.clone());
        let loaded = loader.load(&file).await;
        listed.push(show::Listed { file, entry, loaded });
    }
    show::list(&listed, loader.policy.is_enforced(), output)?;
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
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3600)), "as in a spec");
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
