//! `omni-cpi conformance`: the kit from the command line, with CI-ready reports.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use omni_cpi::conformance::{self, report, statics, Options};
use omni_cpi::json::spec::CpiKind;
use omni_cpi::{CallOptions, ErrorKind, Loader};

use super::{params, ConformanceArgs, KindArg, Output, EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// The kit against a CPI loaded here, or (with `remote`) against the CPI as a server serves it.
pub async fn run(
    loader: &Loader,
    remote: Option<&omni_cpi::serve::client::Remote>,
    args: &ConformanceArgs,
    cpi_dir: &Path,
    output: Output,
) -> Result<u8> {
    if args.list {
        return list(output);
    }
    if args.static_only {
        return static_checks(loader, args, cpi_dir, output).await;
    }
    let [target] = args.targets.as_slice() else {
        bail!("name one CPI to check (or use --static / --list)");
    };
    let cpi = match remote {
        Some(remote) => omni_cpi::Cpi::from(
            omni_cpi::cpi::RemoteCpi::connect(remote.clone(), target).await.map_err(anyhow::Error::msg)?,
        ),
        None => super::load_cpi(loader, target, cpi_dir, output).await?,
    };
    if let Some(kind) = args.kind {
        let wanted = match kind {
            KindArg::Container => CpiKind::Container,
            KindArg::Director => CpiKind::Director,
        };
        if cpi.kind() != wanted {
            bail!("{} is a {} CPI, not a {} CPI", cpi.name(), cpi.kind().as_str(), wanted.as_str());
        }
    }
    let known: Vec<&str> = conformance::catalogue().iter().map(|c| c.id).collect();
    if let Some(unknown) = args.only.iter().chain(&args.skip).find(|id| !known.contains(&id.as_str())) {
        bail!("no check `{unknown}` (omni-cpi conformance --list shows them)");
    }
    let options = Options {
        only: args.only.clone(),
        skip: args.skip.clone(),
        repeat: args.repeat,
        parallel: args.parallel,
        params: params::collect(&args.params, None)?,
    };

    // Exit 2 when the runtime is missing: the kit could not run, which says nothing of the CPI.
    let mut probe = conformance::defaults_for(&cpi);
    probe.extend(options.params.clone());
    let list_action = match cpi.kind() {
        CpiKind::Container => "list_containers",
        CpiKind::Director => "list_vms",
    };
    if let Err(e) = cpi.call(list_action, &probe, &CallOptions::default()).await {
        if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Denied) {
            eprintln!("error: the runtime of {} cannot be used: {}: {}", cpi.name(), e.kind, e.message);
            return Ok(EXIT_USAGE);
        }
    }

    let json_output = output == Output::Json;
    let mut progress = |result: &conformance::CheckResult| {
        let line = report::progress_line(result);
        if json_output {
            eprintln!("{line}");
        } else {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    };
    let run = conformance::run(&cpi, &options, &mut progress).await;
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&run)).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&run)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json_output {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{}", report::summary(&run));
    }
    Ok(if run.conformant() { EXIT_OK } else { EXIT_FAILED })
}

fn list(output: Output) -> Result<u8> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(conformance::catalogue())?);
        return Ok(EXIT_OK);
    }
    for c in conformance::catalogue() {
        let level = match c.level {
            conformance::Level::Must => "MUST",
            conformance::Level::Should => "SHOULD",
        };
        println!("{:16} {level:6} {:9} {}", c.id, c.kind.as_str(), c.statement);
    }
    Ok(EXIT_OK)
}

async fn static_checks(loader: &Loader, args: &ConformanceArgs, cpi_dir: &Path, output: Output) -> Result<u8> {
    let mut files: Vec<PathBuf> = Vec::new();
    let targets: Vec<PathBuf> = if args.targets.is_empty() {
        let plugins = Path::new("plugins/target/wasm32-wasip2/release");
        std::iter::once(cpi_dir.to_path_buf()).chain(plugins.is_dir().then(|| plugins.to_path_buf())).collect()
    } else {
        args.targets.iter().map(|t| super::resolve(t, cpi_dir, &loader.policy)).collect::<Result<_>>()?
    };
    for target in targets {
        if target.is_dir() {
            files.extend(super::cpi_files(&target)?);
        } else {
            files.push(target);
        }
    }
    let host = loader.component_host().map_err(anyhow::Error::msg)?;
    let mut reports = Vec::new();
    for file in &files {
        reports.push(statics::check_file(host, file).await);
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            println!("{} ({})", r.file.display(), r.cpi.as_deref().unwrap_or("does not load"));
            for result in &r.results {
                println!("  {}", report::progress_line(result).replace('\n', "\n  "));
            }
        }
    }
    Ok(if reports.iter().all(|r| r.conformant()) { EXIT_OK } else { EXIT_FAILED })
}
