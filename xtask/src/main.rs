//! Project automation: `cargo xtask demo`, `cargo xtask test`, `cargo xtask fuzz` (see README.md).
//!
//! xtask has almost no dependencies on purpose: it must build fast on a fresh machine, and it
//! drives the product only through its command line, as a user would.

mod demo;
mod fuzz;
mod guests;
mod iaas;
mod runtimes;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(&root),
        Some("test") => test(&root, &args[1..]),
        Some("install-runtimes") => runtimes::ensure(&root),
        Some("build-plugins") => build_plugins(&root),
        Some("bench") => bench(&root),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 demo               validate the shipped CPIs, show plans, run real lifecycles\n  \
                 test [ARGS...]     install what the tests need, build the plugins, run every test (ARGS go to cargo test)\n  \
                 build-plugins      build the Rust plugins in plugins/; install the Python and JS kits' tools\n  \
                 bench              measure omni-cpi against the alternatives; writes BENCHMARKS.md\n  \
                 fuzz [--seconds N] [TARGET...]  run the fuzz targets with cargo-fuzz, N seconds each (60)\n  \
                 install-runtimes   only install and prepare the runtimes and IaaS stand-ins the tests use"
            );
            bail!("unknown or missing command");
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Runs a command, failing with its command line when it does not succeed.
pub fn run_command(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The target plugins are compiled for; rustup adds it when missing.
const PLUGIN_TARGET: &str = "wasm32-wasip2";

/// `cargo xtask bench`: the plugins (for the benchmark component), then the release-built
/// harness in host/benches/overhead.rs, which prints the table and writes BENCHMARKS.md.
fn bench(root: &Path) -> Result<()> {
    build_plugins(root)?;
    println!("== benchmarks (release build; about 2 minutes of measuring) ==");
    run_command(cargo().current_dir(root).args(["bench", "-p", "omni-cpi", "--bench", "overhead"]))
}

pub fn build_plugins(root: &Path) -> Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let has_target =
        installed.as_ref().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == PLUGIN_TARGET));
    if !has_target {
        println!("== adding the {PLUGIN_TARGET} target ==");
        run_command(Command::new("rustup").args(["target", "add", PLUGIN_TARGET]))?;
    }
    // One build of every plugin package: the SDK's features are additive, so they share it.
    let packages = plugin_packages(root)?;
    println!("== building plugins {} ({PLUGIN_TARGET}) ==", packages.join(", "));
    let mut build = cargo();
    build.current_dir(root.join("plugins")).args(["build", "--release", "--target", PLUGIN_TARGET]);
    for package in &packages {
        build.args(["-p", package]);
    }
    run_command(&mut build)?;
    let out = root.join("plugins/target").join(PLUGIN_TARGET).join("release");
    let mut built: Vec<String> = std::fs::read_dir(&out)
        .with_context(|| format!("reading {}", out.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    built.sort();
    println!("components in {}: {}", out.display(), built.join(", "));
    guests::ensure_tools(root)
}

/// The packages of the plugins workspace that build components (every member but the SDK).
fn plugin_packages(root: &Path) -> Result<Vec<String>> {
    let mut packages = Vec::new();
    for entry in std::fs::read_dir(root.join("plugins"))? {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        if !text.contains("crate-type = [\"cdylib\"]") {
            continue;
        }
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = \"").and_then(|rest| rest.strip_suffix('"')))
            .with_context(|| format!("{} has no package name", manifest.display()))?;
        packages.push(name.to_string());
    }
    packages.sort();
    Ok(packages)
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    // Each phase is stamped with the minutes since the start, so a CI log shows where time goes.
    let started = std::time::Instant::now();
    let stamp = || format!("[{:.1} min]", started.elapsed().as_secs_f64() / 60.0);
    println!("== checking formatting == {}", stamp());
    run_command(cargo().current_dir(root).args(["fmt", "--all", "--", "--check"]))
        .context("code is not formatted: run `cargo fmt --all` (and in plugins/)")?;
    run_command(cargo().current_dir(root.join("plugins")).args(["fmt", "--all", "--", "--check"]))
        .context("plugins are not formatted: run `cargo fmt --all` in plugins/")?;
    warn_if_disk_is_short(root);

    // The host's tests take most of a cold run to build; they build while the runtimes are
    // installed and the plugins and kits built (downloads wait on the network, not the CPU).
    // The plugins have their own target directory, so the two cargo runs do not wait on a lock.
    println!("== building the host's tests (in the background) == {}", stamp());
    let cargo_options: Vec<String> = extra.iter().take_while(|a| *a != "--").cloned().collect();
    let mut build = host_tests(root, &cargo_options);
    build.arg("--no-run");
    let background = std::thread::spawn(move || run_command(&mut build));
    let prepared = prepare(root, &stamp);
    let built = background.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the background build panicked")));
    prepared?;
    built.map_err(|error| disk_context(root, error))?;

    println!("== running every test (runtimes required: a missing one fails) == {}", stamp());
    let mut cargo_test = host_tests(root, extra);
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        // Most tests wait on runtimes, servers and timeouts rather than on the CPU: three at a
        // time on two cores keeps both busy.
        cargo_test.env("RUST_TEST_THREADS", "3");
    }
    let tested = run_command(&mut cargo_test).map_err(|error| disk_context(root, error));
    println!("== done == {}", stamp());
    tested
}

/// Everything the tests need besides the host's build: runtimes, plugins, the kits' tools, and
/// the plugins' and kits' own tests.
fn prepare(root: &Path, stamp: &dyn Fn() -> String) -> Result<()> {
    runtimes::ensure(root)?;
    build_plugins(root)?;
    println!("== the plugins' unit tests and the SDK's rustdoc example (on this machine) == {}", stamp());
    run_command(cargo().current_dir(root.join("plugins")).args(["test", "--workspace"]))?;
    println!("== the Python and JavaScript kits' unit tests == {}", stamp());
    guests::test_python_kit(root)?;
    guests::test_js_kit(root)
}

/// `cargo test --workspace` as the tests run it (the same flags and environment for the build
/// ahead and the run, so the run reuses the build).
fn host_tests(root: &Path, extra: &[String]) -> Command {
    let mut cargo_test = cargo();
    cargo_test
        .current_dir(root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .env("OMNI_CPI_REQUIRE_RUNTIMES", "1");
    if in_ci() {
        // A CI clone builds once: incremental state would only take disk (hundreds of MB).
        cargo_test.env("CARGO_INCREMENTAL", "0");
    }
    cargo_test
}

/// A failed build or run, with the disk named when it is nearly full.
fn disk_context(root: &Path, error: anyhow::Error) -> anyhow::Error {
    match free_disk_mib(root) {
        Some(free) if free < LOW_DISK_MIB => error.context(format!(
            "only {free} MiB are left on the disk holding {}: a full disk makes the linker fail",
            root.display()
        )),
        _ => error,
    }
}

/// What a cold `cargo test --workspace` writes to target/ (measured: 1.5 GB from clean), with room
/// for the plugin builds and the tests' own temporary VMs and images.
const COLD_TEST_BUILD_MIB: u64 = 2_500;
/// Below this, a failed build is most likely the disk's fault, and we say so.
const LOW_DISK_MIB: u64 = 200;

/// A full disk shows up as a linker error minutes into the build; name it before we start.
fn warn_if_disk_is_short(root: &Path) {
    match free_disk_mib(root) {
        Some(free) if free < COLD_TEST_BUILD_MIB => println!(
            "warning: {free} MiB free on the disk holding {}; a cold test build needs about {COLD_TEST_BUILD_MIB} MiB",
            root.display()
        ),
        _ => {}
    }
}

/// Free space on the file system holding `path`, from POSIX `df -Pk`; None when df cannot tell.
fn free_disk_mib(path: &Path) -> Option<u64> {
    let output = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let available_kib: u64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(available_kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_disk_is_read_from_df() {
        let free = free_disk_mib(Path::new("/")).expect("df -Pk / is parsed");
        assert!(free > 0, "a machine running tests has some free space");
        assert_eq!(free_disk_mib(Path::new("/no/such/directory")), None);
    }
}
