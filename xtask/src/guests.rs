//! The guest kits for Python and JavaScript: their pinned build tools (componentize-py from
//! PyPI into plugins/sdk-py/.venv; componentize-js and esbuild from npm into
//! plugins/sdk-js/node_modules, as package-lock.json says) and the kits' own tests. Idempotent:
//! a tool already at its pinned version is not installed again. The example plugins are built with `omni-cpi build` by the
//! tests and the benchmark themselves (their omni-cpi binary; building another here would
//! compile the host twice, as `cargo test` unifies other features).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::run_command;

pub fn ensure_tools(root: &Path) -> Result<()> {
    ensure_componentize_py(root)?;
    ensure_componentize_js(root)
}

/// `npm ci` in plugins/sdk-js unless node_modules holds the versions package.json pins.
fn ensure_componentize_js(root: &Path) -> Result<()> {
    let kit = root.join("plugins/sdk-js");
    let manifest = std::fs::read_to_string(kit.join("package.json")).context("plugins/sdk-js/package.json")?;
    let pinned = dependencies(&manifest);
    if pinned.is_empty() {
        anyhow::bail!("plugins/sdk-js/package.json pins no dependencies");
    }
    let installed = pinned.iter().all(|(package, version)| {
        let found = std::fs::read_to_string(kit.join("node_modules").join(package).join("package.json"));
        found.is_ok_and(|text| text.contains(&format!("\"version\": \"{version}\"")))
    });
    if installed {
        return Ok(());
    }
    println!("== installing componentize-js and esbuild into plugins/sdk-js/node_modules (npm ci) ==");
    run_command(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&kit))
        .context("npm ci in plugins/sdk-js (needs node and npm: Debian's nodejs and npm)")
}

/// `"name": "version"` lines of package.json's `dependencies` (xtask stays free of a JSON parser;
/// the file is ours and one dependency per line).
fn dependencies(manifest: &str) -> Vec<(String, String)> {
    let Some(start) = manifest.find("\"dependencies\"") else { return Vec::new() };
    let block = &manifest[start..];
    let block = &block[..block.find('}').unwrap_or(block.len())];
    block
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut quoted = line.split('"').skip(1).step_by(2);
            Some((quoted.next()?.to_string(), quoted.next()?.to_string()))
        })
        .collect()
}

/// The JavaScript kit's unit tests on this machine's node.
pub fn test_js_kit(root: &Path) -> Result<()> {
    run_command(Command::new("npm").args(["test", "--silent"]).current_dir(root.join("plugins/sdk-js")))
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

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_pinned_dependencies() {
        let manifest = "{\n  \"scripts\": {\"test\": \"x\"},\n  \"dependencies\": {\n    \"@a/b\": \"1.2.3\",\n    \"c\": \"0.1.0\"\n  }\n}\n";
        assert_eq!(
            super::dependencies(manifest),
            vec![("@a/b".to_string(), "1.2.3".to_string()), ("c".to_string(), "0.1.0".to_string())]
        );
    }
}
