//! `cargo xtask demo`: the product in a few minutes, on any Linux machine.
//!
//! It drives the real `omni-cpi` binary the way an operator would: list and validate the shipped
//! CPIs, show the plan of a container lifecycle, show that hostile values stay data (and that a
//! spec placing them where they would run as code does not load), then run a
//! real lifecycle with the runtime-free process CPI and with every container runtime installed,
//! a sandboxed component, and an HTTP API action that is shown but not sent without a grant.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::{cargo, run_command};

struct Omni<'a> {
    binary: &'a Path,
    root: &'a Path,
}

impl Omni<'_> {
    /// Shows and runs `omni-cpi ARGS`, returning its exit status.
    fn show(&self, args: &[&str]) -> Result<i32> {
        let shown: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
        println!("\n$ omni-cpi {}", shown.join(" "));
        let status = Command::new(self.binary).args(args).current_dir(self.root).status()?;
        Ok(status.code().unwrap_or(-1))
    }

    fn expect(&self, args: &[&str], expected: i32) -> Result<()> {
        let code = self.show(args)?;
        if code != expected {
            bail!("`omni-cpi {}` exited with {code}, expected {expected}", args.join(" "));
        }
        Ok(())
    }
}

fn shell_word(arg: &str) -> String {
    if arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn section(title: &str) {
    println!("\n==== {title} ====");
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

pub fn run(root: &Path) -> Result<()> {
    run_build(root)?;
    let binary = root.join("target/debug/omni-cpi");
    let omni = Omni { binary: &binary, root };

    section("1. The shipped CPIs load and validate");
    omni.expect(&["list", "cpis"], 0)?;
    omni.expect(&["validate", "cpis"], 0)?;

    section("2. A container lifecycle, planned without running anything (--dry-run)");
    let command = r#"command:=["sh","-c","echo hello from omni-cpi; exec sleep 3600"]"#;
    omni.expect(
        &[
            "call",
            "podman",
            "create_container",
            "name=demo-web",
            "image=localhost/busybox:latest",
            command,
            r#"env:={"GREETING":"hi there"}"#,
            r#"ports:=["8080:80"]"#,
            "--dry-run",
        ],
        0,
    )?;
    omni.expect(&["call", "podman", "delete_container", "name=demo-web", "--dry-run"], 0)?;
    omni.expect(&["call", "lxc", "create_container", "name=demo-web", "image=busybox", command, "--dry-run"], 0)?;

    section("3. Hostile values stay data: one argument each, or refused (exit 2, nothing runs)");
    omni.expect(&["call", "podman", "logs", "name=web; rm -rf / #", "--dry-run"], 0)?;
    omni.expect(&["call", "podman", "stop_container", "name=--all", "--dry-run"], 2)?;
    omni.expect(&["call", "podman", "start_container", "--dry-run"], 2)?;
    // A spec whose values would run as code is refused at load, each place named.
    omni.expect(&["validate", "tests/golden/spec-errors/shell-mode-value-as-code.json"], 1)?;

    section("4. A real lifecycle with the process CPI (no runtime needed)");
    lifecycle(&omni, "process", "none", &[])?;

    section("5. Real lifecycles with the container runtimes installed here");
    let mut ran = 0;
    if succeeds("podman", &["image", "exists", "localhost/busybox:latest"]) {
        lifecycle(&omni, "podman", "localhost/busybox:latest", &["stop_timeout=0"])?;
        ran += 1;
    } else {
        println!("podman with the busybox image is not installed here (`cargo xtask test` installs it)");
    }
    if succeeds("lxc-create", &["--version"]) && succeeds("test", &["-e", "/usr/share/lxc/templates/lxc-busybox"]) {
        lifecycle(&omni, "lxc", "busybox", &[])?;
        ran += 1;
    } else {
        println!("LXC is not installed here (`cargo xtask test` installs it)");
    }
    section("6. A WebAssembly component in its sandbox (plugins/adversarial)");
    components(&omni, root)?;
    section("7. An HTTP API action: the whole request, each value escaped; nothing sent without a grant");
    http_request(&omni)?;
    println!(
        "\ndemo finished: {ran} real runtime(s) besides the process CPI, a sandboxed component, and an HTTP API \
         action held back by its missing grant"
    );
    Ok(())
}

/// A `request` action of a spec written here: the dry run shows the request with hostile values
/// percent-encoded in the URL and JSON-escaped in the body; the real call is refused because no
/// network grant names the host (so nothing leaves this machine).
fn http_request(omni: &Omni<'_>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("omni-cpi-demo-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let spec = dir.join("demo_api.json");
    std::fs::write(
        &spec,
        r#"{
  "name": "demo_api",
  "type": "director",
  "default_settings": {"api_url": "http://127.0.0.1:9/v1"},
  "actions": {
    "create_vm": {
      "request": {
        "method": "POST",
        "url": "{api_url}/projects/{project}/vms?zone={zone}",
        "headers": {"Authorization": "Bearer {token}"},
        "body": {"name": "{name}", "disks": "{disks}"}
      },
      "params": ["project", "name", {"name": "token", "secret": true}],
      "optional_params": ["zone", {"name": "disks", "type": "list"}]
    }
  }
}
"#,
    )?;
    let spec = spec.to_string_lossy().into_owned();
    let call = ["call", &spec, "create_vm", "project=team/../other", r#"name=vm","admin":true"#, "token=t0k"];
    let extra = ["zone=eu&zone=us", r#"disks:=["d1","d2"]"#];
    let dry: Vec<&str> = call.iter().chain(&extra).copied().chain(["--dry-run"]).collect();
    omni.expect(&dry, 0)?;
    let real: Vec<&str> = call.iter().chain(&extra).copied().collect();
    omni.expect(&real, 1)?;
    println!("(denied before sending: grant the host with --allow-host 127.0.0.1:9 or a policy `network` entry;");
    println!(
        " `token` is declared \"secret\": true, so the plan and the error show *** and only the request carries it)"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Builds the plugins, grants the adversary exactly what it requests, and shows a granted exec,
/// a denied one (in the audit log too), a runaway loop stopped by its time limit, and a copy of
/// the plugin saved elsewhere refused (grants follow the file, not its name).
fn components(omni: &Omni<'_>, root: &Path) -> Result<()> {
    crate::build_plugins(root)?;
    let dir = std::env::temp_dir().join(format!("omni-cpi-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sandbox"))?;
    std::fs::create_dir_all(dir.join("scratch"))?;
    let wasm = root.join("plugins/target/wasm32-wasip2/release/omni_cpi_adversary.wasm");
    let policy = dir.join("omni-cpi.toml");
    std::fs::write(
        &policy,
        format!(
            r#"audit_log = "audit.jsonl"

[plugins.adversary]
source = "{}"
env = ["GRANTED_VAR"]

[[plugins.adversary.exec]]
program = "sh"
args = ["-c", "echo granted"]

[[plugins.adversary.exec]]
program = "echo"
args = ["**"]

[[plugins.adversary.fs]]
host = "sandbox"
guest = "/sandbox"
mode = "ro"

[[plugins.adversary.fs]]
host = "scratch"
guest = "/scratch"
mode = "rw"

[plugins.adversary.limits]
timeout_ms = 1000
"#,
            wasm.display()
        ),
    )?;
    println!("policy {}:\n{}", policy.display(), std::fs::read_to_string(&policy)?);
    let policy_arg = policy.display().to_string();
    let with_policy = |args: &[&str]| -> Vec<String> {
        ["--policy", policy_arg.as_str()].iter().chain(args).map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str], expected: i32| -> Result<()> {
        let full = with_policy(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        omni.expect(&refs, expected)
    };
    run(&["info", "adversary"], 0)?;
    run(&["call", "adversary", "exec", "name=x", r#"cmd:=["exec-granted"]"#], 0)?;
    run(&["call", "adversary", "exec", "name=x", r#"cmd:=["exec-ungranted"]"#], 1)?;
    run(&["call", "adversary", "exec", "name=x", r#"cmd:=["read","/sandbox/../../etc/passwd"]"#], 1)?;
    run(&["call", "adversary", "exec", "name=x", r#"cmd:=["loop"]"#], 1)?;
    run(&["call", "adversary", "list_containers"], 0)?;
    // Grants follow the file, not its name: the same bytes saved elsewhere get nothing.
    let squatter = dir.join("elsewhere/omni_cpi_adversary.wasm");
    std::fs::create_dir_all(dir.join("elsewhere"))?;
    std::fs::copy(&wasm, &squatter)?;
    run(&["call", &squatter.display().to_string(), "list_containers"], 2)?;
    println!("\naudit log {}:", dir.join("audit.jsonl").display());
    print!("{}", std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn run_build(root: &Path) -> Result<()> {
    println!("building omni-cpi ...");
    run_command(cargo().current_dir(root).args(["build", "--quiet", "-p", "omni-cpi"]))
}

/// create → start → exec (exit 3) → logs → stop → delete → inspect (typed not_found, exit 1).
fn lifecycle(omni: &Omni<'_>, cpi: &str, image: &str, extra: &[&str]) -> Result<()> {
    let name = format!("omni-demo-{}", std::process::id());
    let name_param = format!("name={name}");
    let with = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    };
    let call = |action: &str, args: &[&str], expected: i32| -> Result<()> {
        let mut full = vec!["call".to_string(), cpi.to_string(), action.to_string(), name_param.clone()];
        full.extend(with(args));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        omni.expect(&refs, expected)
    };
    let image_param = format!("image={image}");
    let result = (|| -> Result<()> {
        call(
            "create_container",
            &[&image_param, r#"command:=["sh","-c","echo hello from omni-cpi; exec sleep 3600"]"#],
            0,
        )?;
        call("start_container", &[], 0)?;
        call("exec", &[r#"cmd:=["sh","-c","echo inside the container; exit 3"]"#], 0)?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        call("logs", &[], 0)?;
        call("stop_container", &[], 0)?;
        call("delete_container", &[], 0)?;
        call("inspect_container", &[], 1)
    })();
    if result.is_err() {
        // Leave nothing behind, whatever failed.
        let _ = Command::new(omni.binary)
            .args(["call", cpi, "delete_container", &name_param])
            .args(extra)
            .current_dir(omni.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    result
}
