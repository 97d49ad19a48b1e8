//! Replays every saved fuzz input through the fuzz targets' own checks (host/fuzz/src/lib.rs), on
//! stable: the crash inputs kept in host/fuzz/regressions/<target>/ and the seeds in
//! host/fuzz/seeds/<target>/. Whatever `cargo xtask fuzz` finds becomes a permanent test here.

#[path = "../../host/fuzz/src/lib.rs"]
mod fuzz;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn saved_inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.file_name().is_some_and(|name| name != "README.md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_saved_fuzz_input_passes_its_targets_checks() {
    fuzz::let_the_host_catch_shell_parser_panics();
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, check) in fuzz::TARGETS {
        for kind in ["regressions", "seeds"] {
            for file in saved_inputs(&fuzz_dir.join(kind).join(target)) {
                let data = std::fs::read(&file).expect("a saved input is readable");
                replayed += 1;
                if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)");
                    failures.push(format!("{target}: {}: {message}", file.display()));
                }
            }
        }
    }
    assert!(replayed > 0, "no saved inputs under {}", fuzz_dir.display());
    assert!(failures.is_empty(), "{} of {replayed} saved fuzz inputs fail:\n{}", failures.len(), failures.join("\n"));
}
