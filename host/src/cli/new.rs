//! `omni-cpi new container|director NAME [--lang rust|python|js]`: a plugin project that builds
//! as generated (`omni-cpi build`), passes `conformance --static`, and loads under the policy it
//! comes with.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::build::{Language, MANIFEST};
use super::KindArg;

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const CONTAINER_RS: &str = include_str!("templates/container.rs.tmpl");
const DIRECTOR_RS: &str = include_str!("templates/director.rs.tmpl");
const README_MD: &str = include_str!("templates/README.md.tmpl");
const CONTAINER_PY: &str = include_str!("templates/python/container.py.tmpl");
const DIRECTOR_PY: &str = include_str!("templates/python/director.py.tmpl");
const README_PY_MD: &str = include_str!("templates/python/README.md.tmpl");
const CONTAINER_JS: &str = include_str!("templates/js/container.js.tmpl");
const DIRECTOR_JS: &str = include_str!("templates/js/director.js.tmpl");
const README_JS_MD: &str = include_str!("templates/js/README.md.tmpl");
const POLICY_TOML: &str = include_str!("templates/policy.toml.tmpl");
const PLUGIN_TOML: &str = include_str!("templates/omni-plugin.toml.tmpl");

/// The repository this omni-cpi was built from: its kits and its WIT.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The kit of `language` in the repository omni-cpi was built from.
fn default_sdk(language: Language) -> PathBuf {
    repository().join(match language {
        Language::Rust => "plugins/sdk",
        Language::Python => "plugins/sdk-py",
        Language::Js => "plugins/sdk-js",
    })
}

/// A CPI name: the crate, the component, the policy entry.
pub fn check_name(name: &str) -> Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!(
            "`{name}` is not a CPI name: use lowercase letters, digits and `_`, starting with a letter (e.g. my_cpi)"
        );
    }
    Ok(())
}

/// Writes the project; returns its directory.
pub fn run(kind: KindArg, name: &str, dir: Option<&Path>, sdk: Option<&Path>, language: Language) -> Result<PathBuf> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty; choose another --dir", dir.display());
    }
    let sdk = sdk.map_or_else(|| default_sdk(language), Path::to_path_buf);
    let sdk = sdk.canonicalize().with_context(|| {
        format!("no {} kit at {} (pass --sdk PATH to omni-cpi's plugins/ kit)", language.as_str(), sdk.display())
    })?;
    let marker = match language {
        Language::Rust => "Cargo.toml",
        Language::Python => "omni_cpi_sdk/__init__.py",
        Language::Js => "build.mjs",
    };
    if !sdk.join(marker).is_file() {
        bail!("{} is not omni-cpi's {} kit (no {marker}); pass --sdk PATH", sdk.display(), language.as_str());
    }
    let (kind_word, probe) = match kind {
        KindArg::Container => ("container", "list_containers"),
        KindArg::Director => ("director", "list_vms"),
    };
    let wasm = match language {
        Language::Rust => format!("target/wasm32-wasip2/release/{name}.wasm"),
        Language::Python | Language::Js => format!("{name}.wasm"),
    };
    let wit = repository().join("wit").canonicalize().context("omni-cpi's wit/ directory")?;
    let quoted = |path: &Path| format!("{:?}", path.display().to_string());
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{crate}", name)
            .replace("{kind}", kind_word)
            .replace("{language}", language.as_str())
            .replace("{sdk}", &quoted(&sdk))
            .replace("{wit}", &quoted(&wit))
            .replace("{wasm}", &wasm)
            .replace("{probe}", probe)
    };
    let container = kind == KindArg::Container;
    let mut files = vec![("policy.toml", fill(POLICY_TOML))];
    match language {
        Language::Rust => {
            files.push(("Cargo.toml", fill(CARGO_TOML)));
            files.push(("src/lib.rs", fill(if container { CONTAINER_RS } else { DIRECTOR_RS })));
            files.push(("README.md", fill(README_MD)));
            files.push((".gitignore", "/target\n/audit.jsonl\n/state/\n".to_string()));
        }
        Language::Python => {
            files.push((MANIFEST, fill(PLUGIN_TOML)));
            files.push(("app.py", fill(if container { CONTAINER_PY } else { DIRECTOR_PY })));
            files.push(("README.md", fill(README_PY_MD)));
            files.push((".gitignore", format!("/{name}.wasm\n/audit.jsonl\n/state/\n__pycache__/\n")));
        }
        Language::Js => {
            files.push((MANIFEST, fill(PLUGIN_TOML)));
            files.push(("app.js", fill(if container { CONTAINER_JS } else { DIRECTOR_JS })));
            files.push(("README.md", fill(README_JS_MD)));
            files.push((".gitignore", format!("/{name}.wasm\n/audit.jsonl\n/state/\n")));
        }
    }
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    // The host directory policy.toml grants as the plugin's state.
    std::fs::create_dir_all(dir.join("state")).with_context(|| format!("creating {}/state", dir.display()))?;
    Ok(dir)
}
