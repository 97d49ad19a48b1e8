//! Installs the IaaS stand-ins the director tests use (the list is in README, "Set-up"):
//! `govc` + `vcsim` (vSphere), built from Debian's govmomi source package because no registry
//! ships the binaries; and a Python virtual environment with moto's EC2 emulator and the `aws`
//! CLI. Idempotent: it only does what is missing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::run_command;

/// Where the tests look for the Python tools (tests/it/support.rs: `venv_bin`).
pub const VENV: &str = "/var/lib/omni-cpi/venv";
/// The PyPI packages of the AWS stand-in, pinned to the versions the tests were written against.
const VENV_PACKAGES: &[&str] = &["moto[server,ec2]==5.2.5", "awscli==1.46.3"];

/// Debian's govmomi -dev package leaves govc/ and vcsim/ out, but its source package has both;
/// they build offline against Debian's Go libraries (GOPATH mode, no module proxy).
const BUILD_GOVC: &str = r#"set -eu
cat > /etc/apt/sources.list.d/omni-debian-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt-get update -qq
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cd "$d"
apt-get source -qq golang-github-vmware-govmomi
mkdir -p gopath/src/github.com/vmware
mv golang-github-vmware-govmomi-*/ gopath/src/github.com/vmware/govmomi
export GO111MODULE=off GOPATH="$d/gopath:/usr/share/gocode" GOCACHE="$d/cache" GOFLAGS= GOPROXY=off
go build -o /usr/local/bin/govc github.com/vmware/govmomi/govc
go build -o /usr/local/bin/vcsim github.com/vmware/govmomi/vcsim
"#;

/// Debian packages the govc build needs.
const GOVC_BUILD_PACKAGES: &[&str] =
    &["golang-go", "golang-github-google-uuid-dev", "golang-github-kr-pretty-dev", "dpkg-dev"];

pub fn ensure() -> Result<()> {
    ensure_govc()?;
    ensure_venv()?;
    Ok(())
}

fn ensure_govc() -> Result<()> {
    if Path::new("/usr/local/bin/govc").exists() && Path::new("/usr/local/bin/vcsim").exists() {
        return Ok(());
    }
    println!("building govc and vcsim from Debian's govmomi source (about a minute)");
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(GOVC_BUILD_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get could not install the Go toolchain for govc")?;
    run_command(Command::new("sh").args(["-c", BUILD_GOVC])).context("building govc/vcsim failed")
}

fn ensure_venv() -> Result<()> {
    let bin = Path::new(VENV).join("bin");
    if bin.join("moto_server").exists() && bin.join("aws").exists() {
        return Ok(());
    }
    println!("creating {VENV} with {}", VENV_PACKAGES.join(" "));
    if !bin.join("pip").exists() {
        run_command(Command::new("python3").args(["-m", "venv", VENV])).context("python3 -m venv failed")?;
    }
    run_command(
        Command::new(bin.join("pip")).args(["install", "-q", "--disable-pip-version-check"]).args(VENV_PACKAGES),
    )
    .context("pip could not install moto and the aws CLI")
}
