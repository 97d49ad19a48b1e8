//! The operator's policy: which plugins exist and what each may do.
//!
//! ```toml
//! audit_log = "/var/log/omni-cpi/audit.jsonl"      # optional, relative to this file
//!
//! [plugins.runc]
//! source = "plugins/target/wasm32-wasip2/release/omni_cpi_runc.wasm"
//! sha256 = "9f2c…"                                  # optional pin
//! env = ["RUNC_DEBUG"]                              # variable names the plugin may see / pass
//!
//! [[plugins.runc.exec]]
//! program = "runc"                                  # resolved to an absolute path at load
//! args = ["state", "<value>"]                       # `<value>` one argument that is not an
//!                                                   # option, `*` any one, `**` the rest
//! detach = false                                    # true: may start what outlives a timeout
//!
//! [[plugins.runc.fs]]
//! host = "/var/lib/omni-cpi/runc"
//! guest = "/var/lib/omni-cpi/runc"
//! mode = "rw"                                       # or "ro"
//!
//! [plugins.runc.limits]
//! memory_mb = 64
//!
//! [plugins.runc.settings]                           # over the plugin's declared defaults
//! root = "/run/omni-cpi/runc"                       # (components of omni:cpi@0.2.0 on and JSON
//!                                                   # specs' `default_settings`)
//!
//! [plugins.aws_api]
//! source = "cpis/aws-api.json"                      # JSON specs are bound the same way
//! [[plugins.aws_api.network]]                       # request actions and components' wasi:http
//! host = "ec2.us-east-1.amazonaws.com"
//! port = 443                                        # optional: any port when absent
//! ```
//!
//! An entry binds to one file: its `source` (compared as a canonical path) and, when given, its
//! `sha256`. Never to a name: neither the file's name nor a spec's own `"name"` selects an entry.
//! Deny by default: under a policy, a CPI whose file no entry binds does not load, and a grant
//! covers only what it names. The checks here are pure functions of the grants, so they are tested
//! without any plugin.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::exec::resolve_program;

/// Where the policy file comes from when no `--policy` flag is given.
pub const POLICY_ENV: &str = "OMNI_CPI_POLICY";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub path: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub plugins: BTreeMap<String, PluginGrants>,
    /// Who may call `omni-cpi serve`, and its limits.
    pub serve: ServePolicy,
}

/// `[serve]`: the local users a server answers on its unix socket, and its limits. Deny by
/// default: with no list, only the user the server runs as may connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServePolicy {
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Calls running at once, over all CPIs; more wait their turn.
    pub max_in_flight: usize,
    /// Calls running at once on one CPI.
    pub max_in_flight_per_cpi: usize,
    /// Connections open at once on each listener (read at start): a flood of network
    /// connections cannot lock local callers out of the unix socket.
    pub max_connections: usize,
}

impl Default for ServePolicy {
    fn default() -> Self {
        ServePolicy {
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            max_body_bytes: 1 << 20,
            max_in_flight: 256,
            max_in_flight_per_cpi: 64,
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginGrants {
    pub name: String,
    pub source: Option<PathBuf>,
    pub sha256: Option<String>,
    pub exec: Vec<ExecGrant>,
    pub fs: Vec<FsGrant>,
    pub env: Vec<String>,
    /// Hosts the `request` actions of a JSON spec, and a component's `wasi:http` requests, may
    /// reach (a component's also only at granted addresses: see `wasm::http`).
    pub network: Vec<NetworkGrant>,
    pub limits: Limits,
    /// The operator's values for settings the CPI declares (a spec's `default_settings`, a
    /// component's `default-settings`), as text; a key the CPI does not declare refuses the load.
    pub settings: BTreeMap<String, String>,
}

impl PluginGrants {
    /// What a plugin without a policy entry gets: nothing, and the default limits.
    pub fn none(name: &str) -> PluginGrants {
        PluginGrants {
            name: name.to_string(),
            source: None,
            sha256: None,
            exec: Vec::new(),
            fs: Vec::new(),
            env: Vec::new(),
            network: Vec::new(),
            limits: Limits::default(),
            settings: BTreeMap::new(),
        }
    }
}

/// May run `program` (an absolute path) with arguments matching `args`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecGrant {
    /// As written in the policy (for messages).
    pub program_name: String,
    pub program: PathBuf,
    pub args: Vec<ArgPattern>,
    /// What this exec starts in its own session may outlive a timeout (see [`crate::process::exec`]).
    pub detach: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum ArgPattern {
    /// Exactly this argument.
    Exact(String),
    /// `*`: any one argument.
    Any,
    /// `<value>`: one argument that is a value, not an option: non-empty, not starting with `-`.
    Value,
    /// `**`: any number of remaining arguments (last position only).
    Rest,
}

impl From<ArgPattern> for String {
    fn from(p: ArgPattern) -> String {
        match p {
            ArgPattern::Exact(s) => s,
            ArgPattern::Any => "*".into(),
            ArgPattern::Value => VALUE_PATTERN.into(),
            ArgPattern::Rest => "**".into(),
        }
    }
}

/// How a grant (or a plugin's request) writes "one value, not an option".
pub const VALUE_PATTERN: &str = "<value>";

impl ArgPattern {
    pub fn parse(text: &str) -> ArgPattern {
        match text {
            "*" => ArgPattern::Any,
            VALUE_PATTERN => ArgPattern::Value,
            "**" => ArgPattern::Rest,
            other => ArgPattern::Exact(other.to_string()),
        }
    }
}

/// Whether `args` match `patterns` one to one (`**` swallowing the rest).
pub fn args_match(patterns: &[ArgPattern], args: &[String]) -> bool {
    let mut i = 0;
    for pattern in patterns {
        match pattern {
            ArgPattern::Rest => return true,
            ArgPattern::Any => {
                if i >= args.len() {
                    return false;
                }
            }
            ArgPattern::Value => {
                if !args.get(i).is_some_and(|a| is_value(a)) {
                    return false;
                }
            }
            ArgPattern::Exact(expected) => {
                if args.get(i) != Some(expected) {
                    return false;
                }
            }
        }
        i += 1;
    }
    i == args.len()
}

/// What `<value>` accepts: a non-empty argument that no program reads as an option.
pub fn is_value(arg: &str) -> bool {
    !arg.is_empty() && !arg.starts_with('-')
}

/// Environment variables that make a program run code it was not asked to run: the dynamic
/// loader's (`LD_PRELOAD`), shells' start-up files and function imports (`BASH_ENV`,
/// `BASH_FUNC_name%%`), interpreters' option and library variables, the search path, and
/// programs that other programs start (pagers, editors, askpass helpers). A spec or plugin may set
/// or inherit one only when the policy grants it by exact name.
pub fn hijacks_execution(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "BASH_ENV",
        "ENV",
        "IFS",
        "PS4",
        "PROMPT_COMMAND",
        "SHELLOPTS",
        "BASHOPTS",
        "CDPATH",
        "GLOBIGNORE",
        "PATH",
        "RUBYOPT",
        "RUBYLIB",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RESOLV_HOST_CONF",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "TCLLIBPATH",
        "LESSOPEN",
        "LESSCLOSE",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "BROWSER",
    ];
    const PREFIXES: &[&str] = &["LD_", "DYLD_", "BASH_FUNC_", "PYTHON", "PERL", "NODE_", "MALLOC_", "LUA_", "GIT_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A name a process environment can hold and a shell can export: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsMode {
    Ro,
    Rw,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsGrant {
    pub host: PathBuf,
    pub guest: String,
    pub mode: FsMode,
}

/// Resource limits of one plugin. The defaults are deliberately small: a CPI orchestrates
/// programs, it does not compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Linear memory of the plugin (all memories together).
    pub memory_bytes: usize,
    /// Wall time of one call, host execs included.
    pub call_timeout: Duration,
    /// Default and maximum timeout of one exec.
    pub exec_timeout: Duration,
    /// Bytes kept of each stream of an exec, and of the plugin's own stdout/stderr.
    pub output_bytes: usize,
    /// Largest value a call may return (strings and lists, summed).
    pub return_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(120),
            exec_timeout: Duration::from_secs(60),
            output_bytes: 1 << 20,
            return_bytes: 4 << 20,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    audit_log: Option<PathBuf>,
    #[serde(default)]
    plugins: BTreeMap<String, PluginEntry>,
    #[serde(default)]
    serve: ServeEntry,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServeEntry {
    #[serde(default)]
    allow_uids: Vec<u32>,
    #[serde(default)]
    allow_gids: Vec<u32>,
    max_body_bytes: Option<usize>,
    max_in_flight: Option<usize>,
    max_in_flight_per_cpi: Option<usize>,
    max_connections: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginEntry {
    source: Option<PathBuf>,
    sha256: Option<String>,
    #[serde(default)]
    exec: Vec<ExecEntry>,
    #[serde(default)]
    fs: Vec<FsEntry>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    network: Vec<NetworkEntry>,
    #[serde(default)]
    limits: LimitsEntry,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkEntry {
    host: String,
    port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecEntry {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    detach: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsEntry {
    host: PathBuf,
    guest: String,
    mode: FsMode,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    memory_mb: Option<u64>,
    timeout_ms: Option<u64>,
    exec_timeout_ms: Option<u64>,
    output_bytes: Option<u64>,
    return_bytes: Option<u64>,
}

impl Policy {
    /// Reads a policy file; relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_path_buf(), source })?;
        let host_path = std::env::var("PATH").unwrap_or_default();
        Policy::parse(path, &text, &host_path)
    }

    /// Parses policy text; `host_path` is the PATH used to resolve granted programs.
    pub fn parse(path: &Path, text: &str, host_path: &str) -> Result<Policy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid { path: path.to_path_buf(), message };
        let file: PolicyFile = toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut plugins = BTreeMap::new();
        for (name, entry) in file.plugins {
            let mut exec = Vec::new();
            for grant in entry.exec {
                let program =
                    resolve_program(&grant.program, host_path).filter(|p| p.is_absolute()).ok_or_else(|| {
                        invalid(format!(
                            "plugins.{name}.exec: program `{}` is not on PATH ({host_path}); grant an absolute path",
                            grant.program
                        ))
                    })?;
                let args: Vec<ArgPattern> = grant.args.iter().map(|a| ArgPattern::parse(a)).collect();
                if args.iter().rev().skip(1).any(|a| *a == ArgPattern::Rest) {
                    return Err(invalid(format!(
                        "plugins.{name}.exec `{}`: `**` may only be the last pattern",
                        grant.program
                    )));
                }
                exec.push(ExecGrant { program_name: grant.program, program, args, detach: grant.detach });
            }
            let mut fs = Vec::new();
            for grant in entry.fs {
                if !grant.guest.starts_with('/') {
                    return Err(invalid(format!("plugins.{name}.fs: guest path `{}` must be absolute", grant.guest)));
                }
                let host = base.join(&grant.host);
                if !host.is_dir() {
                    return Err(invalid(format!("plugins.{name}.fs: {} is not a directory", host.display())));
                }
                fs.push(FsGrant { host, guest: grant.guest, mode: grant.mode });
            }
            let mut network = Vec::new();
            for grant in entry.network {
                let written = match grant.port {
                    Some(port) => format!("{}:{port}", grant.host),
                    None => grant.host.clone(),
                };
                let parsed =
                    NetworkGrant::parse(&written).map_err(|e| invalid(format!("plugins.{name}.network: {e}")))?;
                if parsed.port != grant.port || grant.host.contains([':', '/', '@']) && !grant.host.starts_with('[') {
                    return Err(invalid(format!(
                        "plugins.{name}.network: host `{}` must be a bare host name or address; give the port as `port`",
                        grant.host
                    )));
                }
                network.push(parsed);
            }
            if let Some(pin) = &entry.sha256 {
                if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(format!("plugins.{name}.sha256 must be 64 hex digits")));
                }
            }
            if let Some(bad) = entry.env.iter().find(|n| !is_env_name(n)) {
                return Err(invalid(format!(
                    "plugins.{name}.env: `{bad}` is not a variable name; grant each variable by its exact name"
                )));
            }
            let Some(source) = entry.source else {
                return Err(invalid(format!(
                    "plugins.{name} has no `source`: an entry grants to one file, so name it (source = \"path/to/cpi.json\" or .wasm, relative to this policy)"
                )));
            };
            let defaults = Limits::default();
            let l = entry.limits;
            let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
            let limits = Limits {
                memory_bytes: l.memory_mb.map_or(defaults.memory_bytes, |mb| (mb as usize) << 20),
                call_timeout: ms(l.timeout_ms, defaults.call_timeout),
                exec_timeout: ms(l.exec_timeout_ms, defaults.exec_timeout),
                output_bytes: l.output_bytes.map_or(defaults.output_bytes, |b| b as usize),
                return_bytes: l.return_bytes.map_or(defaults.return_bytes, |b| b as usize),
            };
            let mut settings = BTreeMap::new();
            for (key, value) in entry.settings {
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(invalid(format!(
                            "plugins.{name}.settings.{key} is {} {}; a setting is a string, number or boolean",
                            if matches!(other, toml::Value::Array(_)) { "an" } else { "a" },
                            other.type_str()
                        )))
                    }
                };
                settings.insert(key, text);
            }
            let grants = PluginGrants {
                name: name.clone(),
                source: Some(base.join(source)),
                sha256: entry.sha256.map(|s| s.to_ascii_lowercase()),
                exec,
                fs,
                env: entry.env,
                network,
                limits,
                settings,
            };
            plugins.insert(name, grants);
        }
        let defaults = ServePolicy::default();
        let positive = |value: Option<usize>, key: &str, default: usize| match value {
            Some(0) => Err(invalid(format!("serve.{key} must be at least 1"))),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let serve = ServePolicy {
            allow_uids: file.serve.allow_uids,
            allow_gids: file.serve.allow_gids,
            max_body_bytes: positive(file.serve.max_body_bytes, "max_body_bytes", defaults.max_body_bytes)?,
            max_in_flight: positive(file.serve.max_in_flight, "max_in_flight", defaults.max_in_flight)?,
            max_in_flight_per_cpi: positive(
                file.serve.max_in_flight_per_cpi,
                "max_in_flight_per_cpi",
                defaults.max_in_flight_per_cpi,
            )?,
            max_connections: positive(file.serve.max_connections, "max_connections", defaults.max_connections)?,
        };
        Ok(Policy { path: Some(path.to_path_buf()), audit_log: file.audit_log.map(|p| base.join(p)), plugins, serve })
    }

    /// Whether a policy is in force: one was loaded from a file or names plugins. Without one
    /// (local development), specs run unrestricted and components get nothing.
    pub fn is_enforced(&self) -> bool {
        self.path.is_some() || !self.plugins.is_empty()
    }

    /// The grants of a plugin, or none at all.
    pub fn grants_for(&self, name: &str) -> PluginGrants {
        self.plugins.get(name).cloned().unwrap_or_else(|| PluginGrants::none(name))
    }

    /// The entry whose `source` is this file (compared as canonical paths), if any.
    pub fn plugin_for_source(&self, source: &Path) -> Option<&PluginGrants> {
        let wanted = source.canonicalize().ok()?;
        self.plugins.values().find(|p| p.source.as_ref().and_then(|s| s.canonicalize().ok()).as_ref() == Some(&wanted))
    }

    /// An entry a file that no entry binds might be meant for: named like the file or like the
    /// spec's `"name"`, or whose source has the same file name. Only for messages: it grants
    /// nothing.
    pub fn resembling(&self, file: &Path, declared_name: Option<&str>) -> Option<&PluginGrants> {
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
        let file_name = file.file_name();
        self.plugins.values().find(|p| {
            Some(&p.name) == stem.as_ref()
                || Some(p.name.as_str()) == declared_name
                || p.source.as_ref().and_then(|s| s.file_name()).is_some_and(|n| Some(n) == file_name)
        })
    }

    /// A name for a new entry binding `file`: its stem made a TOML bare key, unused so far.
    pub fn free_entry_name(&self, file: &Path) -> String {
        let stem: String = file
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                    .collect()
            })
            .filter(|s: &String| !s.is_empty())
            .unwrap_or_else(|| "cpi".to_string());
        if !self.plugins.contains_key(&stem) {
            return stem;
        }
        (2..).map(|n| format!("{stem}_{n}")).find(|n| !self.plugins.contains_key(n)).unwrap_or(stem)
    }
}

/// The operator's permission to send requests to one host (any port when `port` is absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkGrant {
    pub host: String,
    pub port: Option<u16>,
}

impl NetworkGrant {
    /// `HOST` or `HOST:PORT` (IPv6 in brackets), as the CLI's `--allow-host` takes it.
    pub fn parse(text: &str) -> Result<NetworkGrant, String> {
        let url = url::Url::parse(&format!("http://{text}/"))
            .map_err(|e| format!("`{text}` is not HOST or HOST:PORT: {e}"))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("`{text}` names no host"))?;
        if url.path() != "/" || !url.username().is_empty() || url.query().is_some() {
            return Err(format!("`{text}` is not HOST or HOST:PORT"));
        }
        let explicit_port =
            text.rsplit_once(':').is_some_and(|(h, p)| !p.is_empty() && (!h.contains(':') || h.ends_with(']')));
        let port = if explicit_port { url.port().or(Some(80)) } else { None };
        Ok(NetworkGrant { host: host.to_ascii_lowercase(), port })
    }

    /// Whether this grant names `host` (an IPv6 address with or without brackets) and `port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let bare = |h: &str| h.trim_start_matches('[').trim_end_matches(']').to_string();
        bare(&self.host).eq_ignore_ascii_case(&bare(host)) && self.port.is_none_or(|p| p == port)
    }

    /// Whether this grant lets a connection go to `address` (once [`NetworkGrant::allows`] said
    /// the name may be asked for): a grant of an address reaches that address; a grant of a name
    /// reaches the public addresses it resolves to, never a special-purpose one, so DNS cannot
    /// re-point a granted name at this machine, the LAN or a cloud's metadata service.
    pub fn allows_address(&self, address: IpAddr) -> bool {
        match self.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(granted) => canonical(granted) == canonical(address),
            Err(_) => !is_special_purpose(address),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses a name granted for the internet must never lead to: this machine, private and
/// shared networks, link-local (a cloud's metadata service), and ranges that are not unicast on
/// the internet (RFC 6890 and its IPv6 counterparts).
pub fn is_special_purpose(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => is_special_v6(v6),
    }
}

fn is_special_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    v4.is_unspecified()
        || v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_special_v6(v6: Ipv6Addr) -> bool {
    let segments = v6.segments();
    v6.is_unspecified()
        || v6.is_loopback()
        || v6.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x0064 && segments[1] == 0xff9b) // NAT64: an IPv4 address inside
        || (segments[0] == 0x2002) // 6to4: an IPv4 address inside
        || segments[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_grant_reaches_public_addresses_only_and_an_address_grant_itself() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        let name = NetworkGrant::parse("api.example").expect("grant");
        for special in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(is_special_purpose(ip(special)), "{special}");
            assert!(!name.allows_address(ip(special)), "{special}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_special_purpose(ip(public)), "{public}");
            assert!(name.allows_address(ip(public)), "{public}");
        }
        let loopback = NetworkGrant::parse("127.0.0.1:8080").expect("grant");
        assert!(loopback.allows_address(ip("127.0.0.1")));
        assert!(loopback.allows_address(ip("::ffff:127.0.0.1")));
        assert!(!loopback.allows_address(ip("127.0.0.2")));
        assert!(!loopback.allows_address(ip("8.8.8.8")), "an address grant is that address only");
        let v6 = NetworkGrant::parse("[::1]").expect("grant");
        assert!(v6.allows_address(ip("::1")));
        assert!(v6.allows("::1", 80) && v6.allows("[::1]", 80), "a host is named with or without brackets");
    }

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn patterns(list: &[&str]) -> Vec<ArgPattern> {
        list.iter().map(|s| ArgPattern::parse(s)).collect()
    }

    #[test]
    fn argument_patterns_match_one_to_one() {
        assert!(args_match(&patterns(&["state", "*"]), &args(&["state", "c1"])));
        assert!(!args_match(&patterns(&["state", "*"]), &args(&["state"])));
        assert!(!args_match(&patterns(&["state", "*"]), &args(&["state", "c1", "--root=/"])));
        assert!(!args_match(&patterns(&["state", "*"]), &args(&["delete", "c1"])));
        assert!(args_match(&patterns(&["exec", "*", "**"]), &args(&["exec", "c1"])));
        assert!(args_match(&patterns(&["exec", "*", "**"]), &args(&["exec", "c1", "sh", "-c", "x"])));
        assert!(args_match(&patterns(&[]), &args(&[])));
        assert!(!args_match(&patterns(&[]), &args(&["x"])));
    }

    /// `*` admits an option where a value was meant; `<value>` does not.
    #[test]
    fn value_patterns_admit_one_value_and_no_option() {
        assert!(args_match(&patterns(&["state", "*"]), &args(&["state", "--help"])));
        assert!(args_match(&patterns(&["state", "<value>"]), &args(&["state", "c1"])));
        assert!(args_match(&patterns(&["state", "<value>"]), &args(&["state", "/var/lib/x"])));
        for option in ["--help", "--all", "-a", "-", ""] {
            assert!(!args_match(&patterns(&["state", "<value>"]), &args(&["state", option])), "{option:?}");
        }
        assert!(!args_match(&patterns(&["state", "<value>"]), &args(&["state"])));
    }

    #[test]
    fn an_entry_binds_a_file_and_grants_variables_by_exact_name() {
        let path = Path::new("/etc/omni/p.toml");
        let err = |text: &str| Policy::parse(path, text, "/usr/bin:/bin").expect_err("invalid").to_string();
        assert!(err("[plugins.x]\nenv = []\n").contains("has no `source`"));
        assert!(err("[plugins.x]\nsource = \"x.json\"\nenv = [\"LD_*\"]\n").contains("exact name"));
        let policy = Policy::parse(path, "[plugins.x]\nsource = \"x.json\"\n", "/bin").expect("valid");
        assert_eq!(policy.plugins["x"].source.as_deref(), Some(Path::new("/etc/omni/x.json")));
        assert!(policy.is_enforced() && !Policy::default().is_enforced());
        assert_eq!(policy.free_entry_name(Path::new("/a/x.json")), "x_2");
        assert_eq!(policy.resembling(Path::new("/b/x.json"), None).map(|p| p.name.as_str()), Some("x"));
        assert_eq!(policy.resembling(Path::new("/b/y.json"), Some("x")).map(|p| p.name.as_str()), Some("x"));
        assert!(policy.resembling(Path::new("/b/y.json"), Some("z")).is_none());
    }

    #[test]
    fn variables_that_run_other_code_are_recognised() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_FUNC_x",
            "BASH_ENV",
            "PYTHONPATH",
            "PERL5OPT",
            "NODE_OPTIONS",
            "PATH",
            "GLIBC_TUNABLES",
            "GIT_SSH_COMMAND",
        ] {
            assert!(hijacks_execution(name), "{name}");
        }
        for name in ["DOCKER_HOST", "AWS_ACCESS_KEY_ID", "LC_ALL", "HOME"] {
            assert!(!hijacks_execution(name), "{name}");
        }
        assert!(!is_env_name("BASH_FUNC_true%%") && !is_env_name("1X") && is_env_name("_X1"));
    }

    #[test]
    fn parses_grants_and_resolves_programs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!(
            r#"
            audit_log = "audit.jsonl"
            [plugins.runc]
            source = "runc.wasm"
            sha256 = "{}"
            env = ["RUNC_DEBUG"]
            [[plugins.runc.exec]]
            program = "sh"
            args = ["-c", "**"]
            [[plugins.runc.fs]]
            host = "{}"
            guest = "/state"
            mode = "ro"
            [plugins.runc.limits]
            memory_mb = 16
            timeout_ms = 500
            "#,
            "ab".repeat(32),
            dir.path().display()
        );
        let policy = Policy::parse(&dir.path().join("omni-cpi.toml"), &text, "/usr/bin:/bin").expect("parses");
        let runc = policy.grants_for("runc");
        assert!(runc.exec[0].program.is_absolute());
        assert_eq!(runc.exec[0].args, patterns(&["-c", "**"]));
        assert_eq!(runc.fs[0].mode, FsMode::Ro);
        assert_eq!(runc.limits.memory_bytes, 16 << 20);
        assert_eq!(runc.limits.call_timeout, Duration::from_millis(500));
        assert_eq!(runc.source, Some(dir.path().join("runc.wasm")));
        assert_eq!(policy.audit_log, Some(dir.path().join("audit.jsonl")));
        assert_eq!(policy.grants_for("other"), PluginGrants::none("other"));
    }

    #[test]
    fn refuses_bad_policies_with_the_reason() {
        let path = Path::new("p.toml");
        let err = |text: &str| Policy::parse(path, text, "/usr/bin:/bin").expect_err("invalid").to_string();
        assert!(err("[plugins.x]\nsorce = \"a\"").contains("unknown field `sorce`"));
        assert!(err("[[plugins.x.exec]]\nprogram = \"no-such-program-xyz\"").contains("not on PATH"));
        assert!(err("[[plugins.x.exec]]\nprogram = \"sh\"\nargs = [\"**\", \"x\"]").contains("last pattern"));
        assert!(err("[plugins.x]\nsha256 = \"abc\"").contains("64 hex digits"));
        assert!(err("[[plugins.x.fs]]\nhost = \"/\"\nguest = \"rel\"\nmode = \"rw\"").contains("must be absolute"));
        assert!(err("[[plugins.x.fs]]\nhost = \"/\"\nguest = \"/g\"\nmode = \"rwx\"").contains("unknown variant"));
    }
}
