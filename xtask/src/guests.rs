//! The guest kit for Python: its pinned build tool (componentize-py, from PyPI, into the kit's
//! own plugins/sdk-py/.venv) and the kit's own tests. Idempotent: a tool already at its pinned
//! version is not installed again. The example plugins are built with `omni-cpi build` by the
//! tests and the benchmark themselves (their omni-cpi binary; building another here would
//! compile the host twice, as `cargo test` unifies other features).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::run_command;

pub fn ensure_tools(root: &Path) -> Result<()> {
    ensure_componentize_py(root)
}

/// A virtual environment in plugins/sdk-py/.venv with requirements.txt installed.
fn ensure_componentize_py(root: &Path) -> Result<()> {
    let kit = root.join("plugins/sdk-py");
    let requirements =
        std::fs::read_to_string(kit.join("requirements.txt")).context("plugins/sdk-py/requirements.txt")?;
    let pinned = requirements
        .lines()
        .find_map(|l| l.trim().strip_prefix("componentize-py=="))
        .context("plugins/sdk-py/requirements.txt pins no componentize-py version")?
        .to_string();
    let tool = kit.join(".venv/bin/componentize-py");
    let installed = Command::new(&tool).arg("--version").output().ok().filter(|o| o.status.success());
    if installed.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(&pinned)) {
        return Ok(());
    }
    println!("== installing componentize-py {pinned} into plugins/sdk-py/.venv (PyPI) ==");
    run_command(Command::new("python3").args(["-m", "venv"]).arg(kit.join(".venv")))
        .context("python3 -m venv (Debian: apt-get install --no-install-recommends python3-venv)")?;
    run_command(
        Command::new(kit.join(".venv/bin/pip"))
            .args(["install", "--quiet", "--no-input", "--disable-pip-version-check", "-r"])
            .arg(kit.join("requirements.txt")),
    )
}

/// The kit's unit tests on this machine's CPython, against the bindings componentize-py generates.
pub fn test_python_kit(root: &Path) -> Result<()> {
    let kit = root.join("plugins/sdk-py");
    let bindings = std::env::temp_dir().join(format!("omni-cpi-sdk-py-bindings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&bindings);
    run_command(
        Command::new(kit.join(".venv/bin/componentize-py"))
            .arg("-d")
            .arg(root.join("wit"))
            .args(["-w", "container-cpi", "--quiet", "bindings"])
            .arg(&bindings),
    )?;
    let path = std::env::join_paths([&bindings, &kit]).context("PYTHONPATH")?;
    let tested = run_command(
        Command::new("python3")
            .args(["-m", "unittest", "discover", "-s", "tests"])
            .current_dir(&kit)
            .env("PYTHONPATH", path),
    );
    let _ = std::fs::remove_dir_all(&bindings);
    tested
}
