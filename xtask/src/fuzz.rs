//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets in host/fuzz/ with
//! libFuzzer (nightly), each for N seconds, and reports the executions and crashes of each.
//!
//! Each target starts from its committed seeds (host/fuzz/seeds/TARGET) and keeps what it finds in
//! a working corpus (host/fuzz/corpus/TARGET, not committed) that later runs continue from. A crash
//! input lands in host/fuzz/artifacts/TARGET; once minimised and copied into
//! host/fuzz/regressions/TARGET it is replayed by `cargo test` (tests/it/fuzz_regressions.rs).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::run_command;

/// The fuzz targets (host/fuzz/fuzz_targets/), in the order they run by default.
pub const TARGETS: [&str; 3] = ["spec_load", "compat_translate", "render"];

const DEFAULT_SECONDS: u64 = 60;

/// An input that takes longer than this (seconds) is reported as a hang (a `timeout-` artifact).
const INPUT_TIMEOUT_SECONDS: u64 = 20;

#[derive(Debug, PartialEq, Eq)]
struct Options {
    seconds: u64,
    targets: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--seconds") {
            Some("") => Some(args.next().context("--seconds needs a number")?.as_str()),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(value) = value {
            seconds = value
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("--seconds takes a positive whole number of seconds, not {value:?}"))?;
        } else if TARGETS.contains(&arg.as_str()) {
            targets.push(arg.clone());
        } else {
            bail!(
                "unknown fuzz target or option {arg:?}; usage: cargo xtask fuzz [--seconds N] [TARGET...]; targets: {}",
                TARGETS.join(", ")
            );
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok(Options { seconds, targets })
}

/// `cargo +nightly ...` through rustup, without the stable toolchain `cargo xtask` runs under.
fn nightly_cargo() -> Command {
    let mut command = Command::new("cargo");
    command.arg("+nightly").env_remove("CARGO").env_remove("RUSTUP_TOOLCHAIN").env_remove("RUSTC");
    command
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        println!("== installing cargo-fuzz ==");
        run_command(Command::new("cargo").env_remove("CARGO").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// What one run of one target did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Report {
    executions: Option<u64>,
    /// Inputs libFuzzer saved because they crashed, hung or ran out of memory.
    artifacts: Vec<PathBuf>,
}

impl Report {
    /// Takes in one line of libFuzzer's output.
    fn read_line(&mut self, line: &str) {
        // `stat::number_of_executed_units: N` (with -print_final_stats=1, also after a crash) and
        // `Done N runs in M second(s)` (at the time limit) both count the executions.
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            self.executions = n.trim().parse().ok().or(self.executions);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            if self.executions.is_none() {
                self.executions = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        }
        // `artifact_prefix='…'; Test unit written to PATH`
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            let path = PathBuf::from(path.trim());
            if !self.artifacts.contains(&path) {
                self.artifacts.push(path);
            }
        }
    }
}

/// libFuzzer's per-input progress lines (`#1234\tNEW cov: …`): many, and only in the log.
fn is_progress_line(line: &str) -> bool {
    line.starts_with('#') && (line.contains("\tNEW ") || line.contains("\tREDUCE "))
}

fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

fn run_target(host: &Path, target: &str, seconds: u64) -> Result<Report> {
    let fuzz_dir = host.join("fuzz");
    let seeds = fuzz_dir.join("seeds").join(target);
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let logs = fuzz_dir.join("target");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("fuzz-{target}.log"));
    let mut log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let before = files_in(&artifacts);

    println!("== fuzzing {target} for {seconds} s (the first build compiles the host with sanitizers: minutes) ==");
    // libFuzzer writes new inputs into the first corpus directory: the working one, not the seeds.
    let mut command = nightly_cargo();
    command
        .current_dir(host)
        .args(["fuzz", "run", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    let shown = format!("{command:?}");
    let mut child = command.spawn().with_context(|| format!("cannot start {shown}"))?;
    let mut report = Report::default();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut buffer = Vec::new();
    while stderr.read_until(b'\n', &mut buffer)? > 0 {
        let line = String::from_utf8_lossy(&buffer);
        log.write_all(&buffer)?;
        let line = line.trim_end();
        report.read_line(line);
        if !is_progress_line(line) {
            eprintln!("{line}");
        }
        buffer.clear();
    }
    let status = child.wait()?;
    for path in files_in(&artifacts).difference(&before) {
        if !report.artifacts.contains(path) {
            report.artifacts.push(path.clone());
        }
    }
    if !status.success() && report.artifacts.is_empty() {
        bail!("{shown} failed with {status} and saved no crash input; the output is in {}", log_path.display());
    }
    Ok(report)
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    ensure_cargo_fuzz()?;
    let host = root.join("host");
    let mut reports = Vec::new();
    for target in &options.targets {
        reports.push((target, run_target(&host, target, options.seconds)?));
    }

    println!("\n== fuzzing summary ({} s per target) ==", options.seconds);
    let mut crashed = Vec::new();
    for (target, report) in &reports {
        let executions = report.executions.map_or("unknown".to_string(), |n| n.to_string());
        println!("{target:<18} {executions:>12} executions   {} crashes", report.artifacts.len());
        for artifact in &report.artifacts {
            let shown = artifact.strip_prefix(root).unwrap_or(artifact);
            println!("{:<18} {}", "", shown.display());
            crashed.push((target, artifact));
        }
    }
    if crashed.is_empty() {
        return Ok(());
    }
    println!("\nreproduce (from host/), minimise, then keep the minimised input as a regression test:");
    for (target, artifact) in &crashed {
        let shown = artifact.strip_prefix(&host).unwrap_or(artifact).display();
        println!("  cargo +nightly fuzz run {target} {shown}");
        println!(
            "  cargo +nightly fuzz tmin {target} {shown}   # then copy the result into fuzz/regressions/{target}/"
        );
    }
    bail!("{} fuzz target(s) crashed", reports.iter().filter(|(_, r)| !r.artifacts.is_empty()).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_choose_the_time_and_the_targets() {
        let all: Vec<String> = TARGETS.iter().map(|t| t.to_string()).collect();
        assert_eq!(parse_args(&[]).unwrap(), Options { seconds: 60, targets: all.clone() });
        assert_eq!(parse_args(&args(&["--seconds", "5"])).unwrap(), Options { seconds: 5, targets: all });
        assert_eq!(
            parse_args(&args(&["render", "--seconds=7", "spec_load"])).unwrap(),
            Options { seconds: 7, targets: args(&["render", "spec_load"]) }
        );
        assert!(parse_args(&args(&["--seconds"])).is_err());
        assert!(parse_args(&args(&["--seconds", "0"])).is_err());
        assert!(parse_args(&args(&["--seconds", "x"])).is_err());
        assert!(parse_args(&args(&["no_such_target"])).is_err());
        assert!(parse_args(&args(&["--jobs", "2"])).is_err());
    }

    #[test]
    fn executions_and_artifacts_are_read_from_libfuzzers_output() {
        let mut done = Report::default();
        for line in ["#2\tINITED cov: 10 ft: 10 corp: 1/1b exec/s: 0 rss: 30Mb", "Done 123456 runs in 61 second(s)"] {
            done.read_line(line);
        }
        assert_eq!(done, Report { executions: Some(123456), artifacts: vec![] });

        let mut crash = Report::default();
        for line in [
            "==123== ERROR: libFuzzer: deadly signal",
            "artifact_prefix='/r/host/fuzz/artifacts/render/'; Test unit written to /r/host/fuzz/artifacts/render/crash-0a1b",
            "stat::number_of_executed_units: 4242",
            "stat::average_exec_per_sec:     70",
        ] {
            crash.read_line(line);
        }
        assert_eq!(
            crash,
            Report {
                executions: Some(4242),
                artifacts: vec![PathBuf::from("/r/host/fuzz/artifacts/render/crash-0a1b")]
            }
        );
        assert!(is_progress_line(
            "#1024\tNEW    cov: 120 ft: 300 corp: 20/1Kb lim: 14 exec/s: 0 rss: 40Mb L: 9/9 MS: 1 ChangeBit-"
        ));
        assert!(!is_progress_line("#65536\tpulse  cov: 120 ft: 300 corp: 20/1Kb lim: 14 exec/s: 0 rss: 40Mb"));
    }
}
