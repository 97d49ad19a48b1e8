//! `omni-cpi build [DIR]`: builds a plugin project of any language into a component and prints
//! its path (as `spin build` does), so a plugin author needs one command whatever the language.
//!
//! A Rust project is a Cargo package (`cargo build --release --target wasm32-wasip2`). A Python
//! or JavaScript project has an `omni-plugin.toml` (written by `omni-cpi new --lang`) naming the
//! plugin, its kind, and where omni-cpi's guest kit and WIT are; the component is written next
//! to it as `NAME.wasm`, atomically: a failed build leaves the previous component, never half of one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The project file of Python and JavaScript plugins.
pub const MANIFEST: &str = "omni-plugin.toml";

/// The componentize-py the Python kit is written and tested against (plugins/sdk-py/requirements.txt).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    Js,
}

impl Language {
    /// As `--lang` and `omni-plugin.toml` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Container,
    Director,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// The plugin's name: the component's file name and its policy entry.
    name: String,
    kind: Kind,
    language: Language,
    /// omni-cpi's guest kit for the language (relative to this file or absolute).
    sdk: PathBuf,
    /// omni-cpi's WIT directory (relative to this file or absolute).
    wit: PathBuf,
}

/// Builds the project in `dir`; returns the component's path.
pub fn run(dir: &Path) -> Result<PathBuf> {
    // Absolute, because the build tools run in the project directory.
    let dir = &dir.canonicalize().with_context(|| format!("no project directory {}", dir.display()))?;
    let manifest_path = dir.join(MANIFEST);
    if manifest_path.is_file() {
        let manifest = read_manifest(&manifest_path)?;
        let resolve = |path: &Path| if path.is_absolute() { path.to_path_buf() } else { dir.join(path) };
        let sdk = resolve(&manifest.sdk);
        let wit = resolve(&manifest.wit);
        for (what, path) in [("sdk", &sdk), ("wit", &wit)] {
            if !path.is_dir() {
                bail!(
                    "{}: `{what}` is {}, which is not a directory; point it at omni-cpi's {}",
                    manifest_path.display(),
                    path.display(),
                    if what == "wit" { "wit/" } else { "guest kit (plugins/sdk-py or plugins/sdk-js)" }
                );
            }
        }
        let world = match manifest.kind {
            Kind::Container => "container-cpi",
            Kind::Director => "director-cpi",
        };
        let out = dir.join(format!("{}.wasm", manifest.name));
        return match manifest.language {
            Language::Python => python(dir, &sdk, &wit, world, &out),
            Language::Js => js(dir, &sdk, &wit, world, &out),
            Language::Rust => bail!(
                "{}: a Rust plugin is a Cargo package: remove `{MANIFEST}` and build from its Cargo.toml",
                manifest_path.display()
            ),
        };
    }
    if dir.join("Cargo.toml").is_file() {
        return rust(dir);
    }
    bail!(
        "{} is not a plugin project: it has neither {MANIFEST} (Python, JavaScript) nor Cargo.toml (Rust); \
         `omni-cpi new container NAME --lang rust|python|js` writes one",
        dir.display()
    )
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|span| {
            let line = text[..span.start].matches('\n').count() + 1;
            let column = span.start - text[..span.start].rfind('\n').map_or(0, |n| n + 1) + 1;
            format!(":{line}:{column}")
        });
        anyhow::anyhow!("{}{}: {}", path.display(), at.unwrap_or_default(), e.message())
    })?;
    super::new::check_name(&manifest.name).with_context(|| format!("{}: `name`", path.display()))?;
    Ok(manifest)
}

/// `cargo build --release --target wasm32-wasip2`; the component is the artifact cargo reports
/// for this package (wherever `CARGO_TARGET_DIR` puts it).
fn rust(dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = build.output().context("cannot run cargo (is Rust installed? https://rustup.rs)")?;
    if !output.status.success() {
        bail!("cargo build failed in {} (its errors are above)", dir.display());
    }
    let manifest = dir.join("Cargo.toml").canonicalize().context("Cargo.toml")?;
    let mut components = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let ours = message["manifest_path"].as_str().is_some_and(|p| Path::new(p) == manifest);
        if message["reason"] != "compiler-artifact" || !ours {
            continue;
        }
        let files = message["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str());
        components.extend(files.filter(|f| f.ends_with(".wasm")).map(PathBuf::from));
    }
    match components.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "cargo built no component for {}: the package needs `crate-type = [\"cdylib\"]` under [lib] \
             (rustup target add wasm32-wasip2 if cargo said the target is missing)",
            manifest.display()
        ),
        many => bail!("cargo built several components for {}: {many:?}", manifest.display()),
    }
}

/// componentize-py: the app module `app` in `dir`, the kit on the Python path, the world from `wit`.
fn python(dir: &Path, sdk: &Path, wit: &Path, world: &str, out: &Path) -> Result<PathBuf> {
    if !dir.join("app.py").is_file() {
        bail!("{} has no app.py: the Python plugin's module (see `omni-cpi new --lang python`)", dir.display());
    }
    let tool = componentize_py(sdk)?;
    let partial = partial_path(out);
    let mut command = Command::new(&tool);
    command
        .arg("-d")
        .arg(wit)
        .args(["-w", world, "componentize", "app", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(sdk)
        .arg("-o")
        .arg(&partial)
        .current_dir(dir)
        .stdout(tool_output()?)
        .stderr(Stdio::inherit());
    finish(command, &tool, &partial, out)
}

/// The kit's build script (node): esbuild bundles the app with the kit, componentize-js makes the
/// component. The kit's node_modules come from `npm ci` in the kit (`cargo xtask build-plugins`).
fn js(dir: &Path, sdk: &Path, wit: &Path, world: &str, out: &Path) -> Result<PathBuf> {
    if !dir.join("app.js").is_file() {
        bail!("{} has no app.js: the JavaScript plugin's module (see `omni-cpi new --lang js`)", dir.display());
    }
    if !sdk.join("node_modules/@bytecodealliance/componentize-js").is_dir() {
        bail!(
            "the JavaScript kit in {} has no node_modules: run `npm ci` there (cargo xtask build-plugins does)",
            sdk.display()
        );
    }
    let partial = partial_path(out);
    let mut command = Command::new("node");
    command
        .arg(sdk.join("build.mjs"))
        .arg("--app")
        .arg(dir.join("app.js"))
        .arg("--wit")
        .arg(wit)
        .args(["--world", world])
        .arg("--out")
        .arg(&partial)
        .current_dir(dir)
        .stdout(tool_output()?)
        .stderr(Stdio::inherit());
    finish(command, Path::new("node (componentize-js)"), &partial, out)
}

/// Where a build tool's own output goes: stderr, so that `omni-cpi build`'s stdout is only the
/// component's path (`omni-cpi validate "$(omni-cpi build)"`).
fn tool_output() -> Result<Stdio> {
    use std::os::fd::AsFd;
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned().context("duplicating stderr")?))
}

fn partial_path(out: &Path) -> PathBuf {
    out.with_extension(format!("wasm.partial-{}", std::process::id()))
}

/// Runs the build tool; on success renames its output into place, on failure removes it.
fn finish(mut command: Command, tool: &Path, partial: &Path, out: &Path) -> Result<PathBuf> {
    let status = command.status().with_context(|| format!("cannot run {}", tool.display()));
    let built = match status {
        Ok(status) if status.success() && partial.is_file() => Ok(()),
        Ok(status) => Err(anyhow::anyhow!("{} failed ({status}); its errors are above", tool.display())),
        Err(e) => Err(e),
    };
    if let Err(e) = built {
        let _ = std::fs::remove_file(partial);
        return Err(e);
    }
    std::fs::rename(partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out.to_path_buf())
}

/// `$OMNI_CPI_COMPONENTIZE_PY`, else the kit's own virtual environment (`cargo xtask guest-tools`
/// makes it), else `componentize-py` on PATH.
fn componentize_py(sdk: &Path) -> Result<PathBuf> {
    if let Some(tool) = std::env::var_os("OMNI_CPI_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(tool));
    }
    let in_kit = sdk.join(".venv/bin/componentize-py");
    if in_kit.is_file() {
        return Ok(in_kit);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|d| d.join("componentize-py")).find(|p| p.is_file()));
    on_path.flatten().with_context(|| {
        format!(
            "componentize-py is not installed: `python3 -m venv {venv} && {venv}/bin/pip install -r {req}` \
             (componentize-py {COMPONENTIZE_PY_VERSION}; `cargo xtask guest-tools` does the same), or set \
             $OMNI_CPI_COMPONENTIZE_PY",
            venv = sdk.join(".venv").display(),
            req = sdk.join("requirements.txt").display(),
        )
    })
}
