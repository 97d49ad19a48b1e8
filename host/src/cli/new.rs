//! `omni-cpi new container|director NAME`: a plugin project that builds for wasm32-wasip2 as
//! generated, passes `conformance --static`, and loads under the policy it comes with.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::KindArg;

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const CONTAINER_RS: &str = include_str!("templates/container.rs.tmpl");
const DIRECTOR_RS: &str = include_str!("templates/director.rs.tmpl");
const POLICY_TOML: &str = include_str!("templates/policy.toml.tmpl");
const README_MD: &str = include_str!("templates/README.md.tmpl");

/// The SDK of the repository this omni-cpi was built from.
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk")
}

/// Writes the project; returns its directory.
pub fn run(kind: KindArg, name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> Result<PathBuf> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!(
            "`{name}` is not a CPI name: use lowercase letters, digits and `_`, starting with a letter (e.g. my_cpi)"
        );
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty; choose another --dir", dir.display());
    }
    let sdk = sdk.map_or_else(default_sdk, Path::to_path_buf);
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("no SDK at {} (pass --sdk PATH to omni-cpi's plugins/sdk)", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("{} is not the omni-cpi SDK (no Cargo.toml); pass --sdk PATH to omni-cpi's plugins/sdk", sdk.display());
    }
    let (kind_word, source, probe) = match kind {
        KindArg::Container => ("container", CONTAINER_RS, "list_containers"),
        KindArg::Director => ("director", DIRECTOR_RS, "list_vms"),
    };
    let wasm = format!("target/wasm32-wasip2/release/{name}.wasm");
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{crate}", name)
            .replace("{kind}", kind_word)
            .replace("{sdk}", &format!("{:?}", sdk.display().to_string()))
            .replace("{wasm}", &wasm)
            .replace("{probe}", probe)
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(source)),
        ("policy.toml", fill(POLICY_TOML)),
        ("README.md", fill(README_MD)),
        (".gitignore", "/target\n/audit.jsonl\n/state/\n".to_string()),
    ];
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
