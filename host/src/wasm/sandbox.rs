//! What one plugin may do: the intersection of what it requested in `describe` and what the
//! operator granted. Computed once at load, consulted on every exec (the first thing the
//! `process` import does), and pure, so it is tested without any plugin.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::audit::AuditLog;
use crate::policy::{args_match, ArgPattern, FsMode, Limits, NetworkGrant, PluginGrants};
use crate::process::exec::resolve_program;

/// A capability request from a plugin's `describe`, in host terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub exec: Vec<(String, Vec<ArgPattern>)>,
    /// Guest path and whether it must be writable.
    pub dirs: Vec<(String, bool)>,
    pub env: Vec<String>,
    /// The hosts its `wasi:http` requests need (`network-requests()`, omni:cpi@0.3.0 on).
    /// `None` for a component of an older version, which cannot say: its requests reach what
    /// the operator grants, by the grants alone.
    pub network: Option<Vec<NetworkRequest>>,
}

impl Requests {
    /// A component that asks for nothing (what `describe` runs under).
    pub fn nothing() -> Requests {
        Requests { exec: Vec::new(), dirs: Vec::new(), env: Vec::new(), network: Some(Vec::new()) }
    }
}

/// One host and port a plugin's `wasi:http` requests need, with its reason for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkRequest {
    /// As the policy writes it: lowercase, an IPv6 address in brackets.
    pub host: String,
    pub port: u16,
    pub description: String,
}

impl NetworkRequest {
    /// Checks a request as the plugin wrote it: a bare DNS name or IP address (IPv6 with or
    /// without brackets) in the form the policy writes it, and a port other than 0.
    pub fn parse(host: &str, port: u16, description: String) -> Result<NetworkRequest, String> {
        let bracketed =
            if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
        let lowercase = bracketed.to_ascii_lowercase();
        let usable = port != 0
            && !host.contains(['/', '@', '?', '#', '%', ' '])
            && NetworkGrant::parse(&format!("{bracketed}:{port}")).is_ok_and(|g| g.host == lowercase);
        if !usable {
            return Err(format!(
                "network-requests() asks for host `{host}` port {port}: give a bare DNS name or IP address as written \
                 in a policy (\"ec2.us-east-1.amazonaws.com\", \"127.0.0.1\", \"::1\") and a port from 1 to 65535"
            ));
        }
        Ok(NetworkRequest { host: lowercase, port, description })
    }
}

/// How a sandbox's reachable hosts were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkGates {
    /// At load: nothing is reachable.
    Loading,
    /// What the plugin requested AND the operator granted (omni:cpi@0.3.0 on).
    RequestedAndGranted,
    /// What the operator granted (a component that cannot request hosts).
    GrantedAlone,
}

/// One program the plugin may run: granted (absolute path, patterns) and requested (patterns).
#[derive(Debug, Clone, Serialize)]
pub struct AllowedExec {
    pub program: PathBuf,
    pub granted: Vec<ArgPattern>,
    pub requested: Vec<ArgPattern>,
    /// The grant says `detach = true`.
    pub detach: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AllowedDir {
    /// Resolved once, when the sandbox is made (symlinks and `..` gone), so each exec's working
    /// directory is compared with it without touching the filesystem again.
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    pub plugin: String,
    pub exec: Vec<AllowedExec>,
    pub dirs: Vec<AllowedDir>,
    /// Variables the plugin sees (and may pass to programs), with the host's values.
    pub env: Vec<(String, String)>,
    pub limits: Limits,
    pub audit: AuditLog,
    /// PATH of the programs the plugin runs (the host's).
    pub path: String,
    /// What the plugin asked for in `describe()`, to say which gate refused an exec.
    pub requests: Requests,
    /// What the `settings` import answers: each declared setting with the operator's value or
    /// its default (see `settings::resolve`).
    pub settings: Vec<(String, String)>,
    /// The sandbox of `describe()` and `network-requests()`: nothing is granted whatever the
    /// policy says, and a refusal says so (rather than blaming the plugin's requests).
    pub loading: bool,
    /// Hosts the plugin's `wasi:http` requests may reach: what it requested AND the operator
    /// granted (`[[plugins.NAME.network]]`), each narrowed to the requested port; for a component
    /// that cannot request (before omni:cpi@0.3.0), the grants.
    pub network: std::sync::Arc<[NetworkGrant]>,
}

/// Every request the grants do not cover, with what would grant it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingGrants {
    pub plugin: String,
    pub missing: Vec<String>,
    /// `[[plugins.NAME.exec]]` / `[[plugins.NAME.fs]]` array tables: they paste anywhere in a
    /// policy, the entry's own table included, without reopening it.
    pub tables: String,
    /// The entry's complete `env` list when a variable is missing (its grants plus the missing
    /// ones): a key of the entry's own `[plugins.NAME]` table, which TOML cannot reopen, so it is
    /// set there rather than pasted.
    pub env: Option<Vec<String>>,
}

impl MissingGrants {
    /// The grants as one TOML document for a new entry binding `source` (its first table holds
    /// `source`, `sha256` and `env`; the array tables follow).
    pub fn new_entry_toml(&self, entry_head: &str) -> String {
        let mut toml = entry_head.trim_end().to_string();
        toml.push('\n');
        if let Some(env) = &self.env {
            toml.push_str(&format!("env = {}\n", toml_list(env)));
        }
        if !self.tables.is_empty() {
            toml.push('\n');
            toml.push_str(&self.tables);
        }
        toml
    }
}

impl std::fmt::Display for MissingGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "plugin `{}` requests capabilities the policy does not grant:", self.plugin)?;
        for m in &self.missing {
            writeln!(f, "  - {m}")?;
        }
        if !self.tables.is_empty() {
            write!(
                f,
                "to grant them, add to the policy file (anywhere after `[plugins.{}]`):\n\n{}",
                self.plugin, self.tables
            )?;
        }
        if let Some(env) = &self.env {
            if !self.tables.is_empty() {
                writeln!(f)?;
            }
            write!(f, "in the table `[plugins.{}]`, set:\n\nenv = {}\n", self.plugin, toml_list(env))?;
        }
        Ok(())
    }
}

fn toml_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|v| toml_string(v)).collect::<Vec<_>>().join(", "))
}

/// Whether every argument list `requested` accepts is also accepted by `granted`.
pub fn covers(granted: &[ArgPattern], requested: &[ArgPattern]) -> bool {
    for (i, g) in granted.iter().enumerate() {
        let r = requested.get(i);
        match (g, r) {
            (ArgPattern::Rest, _) => return true,
            (_, None) | (_, Some(ArgPattern::Rest)) => return false,
            (ArgPattern::Any, Some(_)) => {}
            (ArgPattern::Value, Some(ArgPattern::Value)) => {}
            (ArgPattern::Value, Some(ArgPattern::Exact(b))) if crate::policy::is_value(b) => {}
            (ArgPattern::Value, Some(_)) => return false,
            (ArgPattern::Exact(a), Some(ArgPattern::Exact(b))) if a == b => {}
            (ArgPattern::Exact(_), Some(_)) => return false,
        }
    }
    requested.len() == granted.len()
}

fn toml_string(s: &str) -> String {
    format!("{s:?}")
}

impl Sandbox {
    /// Intersects requests with grants; fails listing every request that is not granted.
    pub fn new(
        grants: &PluginGrants,
        requests: &Requests,
        audit: AuditLog,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Sandbox, MissingGrants> {
        let path =
            host_env("PATH").unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        let name = &grants.name;
        let mut missing = Vec::new();
        let mut toml = String::new();

        let mut exec = Vec::new();
        for (program, patterns) in &requests.exec {
            let resolved = resolve_program(program, &path).filter(|p| p.is_absolute());
            let grant = resolved
                .as_ref()
                .and_then(|r| grants.exec.iter().find(|g| &g.program == r && covers(&g.args, patterns)));
            match (grant, resolved) {
                (Some(g), Some(r)) => exec.push(AllowedExec {
                    program: r,
                    granted: g.args.clone(),
                    requested: patterns.clone(),
                    detach: g.detach,
                }),
                _ => {
                    let shown: Vec<String> = patterns.iter().cloned().map(String::from).collect();
                    missing.push(format!("exec `{program}` with arguments {shown:?}"));
                    let _ = write!(
                        toml,
                        "[[plugins.{name}.exec]]\nprogram = {}\nargs = [{}]\n\n",
                        toml_string(program),
                        shown.iter().map(|a| toml_string(a)).collect::<Vec<_>>().join(", ")
                    );
                }
            }
        }

        let mut dirs = Vec::new();
        for (guest, writable) in &requests.dirs {
            let grant = grants.fs.iter().find(|g| &g.guest == guest && (!writable || g.mode == FsMode::Rw));
            match grant {
                Some(g) => dirs.push(AllowedDir {
                    host: std::fs::canonicalize(&g.host).unwrap_or_else(|_| g.host.clone()),
                    guest: guest.clone(),
                    writable: *writable,
                }),
                None => {
                    let mode = if *writable { "rw" } else { "ro" };
                    missing.push(format!("directory `{guest}` ({mode})"));
                    let _ = write!(
                        toml,
                        "[[plugins.{name}.fs]]\nhost = {}  # choose: the directory on this machine it sees as {guest}\nguest = {}\nmode = \"{mode}\"\n\n",
                        toml_string(guest),
                        toml_string(guest)
                    );
                }
            }
        }

        let mut env = Vec::new();
        let mut missing_env = Vec::new();
        for var in &requests.env {
            if grants.env.contains(var) {
                if let Some(value) = host_env(var) {
                    env.push((var.clone(), value));
                }
            } else {
                missing.push(format!("environment variable `{var}`"));
                missing_env.push(var.clone());
            }
        }
        let network = match &requests.network {
            None => grants.network.clone(),
            Some(requested) => {
                let mut network = Vec::new();
                for request in requested {
                    if grants.network.iter().any(|g| g.allows(&request.host, request.port)) {
                        network.push(NetworkGrant { host: request.host.clone(), port: Some(request.port) });
                    } else {
                        missing.push(format!(
                            "network host `{}` port {} ({})",
                            request.host, request.port, request.description
                        ));
                        let _ = write!(
                            toml,
                            "[[plugins.{name}.network]]\nhost = {}\nport = {}\n\n",
                            toml_string(&request.host),
                            request.port
                        );
                    }
                }
                network
            }
        };

        let env_list = (!missing_env.is_empty()).then(|| grants.env.iter().chain(&missing_env).cloned().collect());

        if !missing.is_empty() {
            let tables = if toml.is_empty() { String::new() } else { toml.trim_end().to_string() + "\n" };
            return Err(MissingGrants { plugin: name.clone(), missing, tables, env: env_list });
        }
        Ok(Sandbox {
            plugin: name.clone(),
            exec,
            dirs,
            env,
            limits: grants.limits,
            audit,
            path,
            requests: requests.clone(),
            settings: Vec::new(),
            network: network.into(),
            loading: false,
        })
    }

    /// Which gates `network` passed, so a refused request names the one that refused it.
    pub fn network_gates(&self) -> NetworkGates {
        match (self.loading, &self.requests.network) {
            (true, _) => NetworkGates::Loading,
            (false, Some(_)) => NetworkGates::RequestedAndGranted,
            (false, None) => NetworkGates::GrantedAlone,
        }
    }

    /// Decides one exec. `Ok` carries the absolute program to run and the working directory
    /// (resolved: no `..`, no symlinks); `Err` the reason for denial.
    pub fn authorize(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
        cwd: Option<&str>,
    ) -> Result<Authorized, String> {
        if self.loading {
            return Err(format!(
                "plugin `{}` runs nothing while it is loaded: describe() and network-requests() only say what it \
                 needs; run programs in actions",
                self.plugin
            ));
        }
        let resolved = if program.contains('/') {
            Some(PathBuf::from(program)).filter(|p| p.is_absolute())
        } else {
            resolve_program(program, &self.path)
        };
        // Every exec in `self.exec` is requested by the plugin AND granted by the operator (a load
        // fails otherwise), so a call-time refusal is always the plugin's own describe(): say so,
        // and what the plugin would have to request.
        let not_requested = |what: String| {
            format!(
                "not requested by the plugin: {what}; plugin `{}` can run only what its describe() requests \
                 (and the operator grants): rebuild it requesting this, then grant it",
                self.plugin
            )
        };
        let Some(resolved) = resolved else {
            return Err(not_requested(format!("program `{program}` is not among its requests (or not on PATH)")));
        };
        let candidates: Vec<&AllowedExec> = self.exec.iter().filter(|e| e.program == resolved).collect();
        if candidates.is_empty() {
            return Err(not_requested(format!(
                "program `{program}` ({}) is not among its requests",
                resolved.display()
            )));
        }
        let Some(allowed) = candidates.iter().find(|e| args_match(&e.granted, args) && args_match(&e.requested, args))
        else {
            let requested: Vec<String> = candidates
                .iter()
                .map(|e| format!("{:?}", e.requested.iter().cloned().map(String::from).collect::<Vec<_>>()))
                .collect();
            return Err(not_requested(format!(
                "arguments {args:?} of `{program}` match none of its requests {}",
                requested.join(", ")
            )));
        };
        if let Some((name, _)) = env.iter().find(|(name, _)| !self.env.iter().any(|(granted, _)| granted == name)) {
            return Err(if self.requests.env.contains(name) {
                format!(
                    "environment variable `{name}` is requested and granted but not set on the host, so the plugin \
                     cannot pass it; set it in omni-cpi's environment"
                )
            } else {
                not_requested(format!("environment variable `{name}` is not among its requests"))
            });
        }
        let cwd = match cwd {
            None => None,
            Some(dir) => {
                // Resolved before comparing: `Path::starts_with` compares components as written,
                // so `/granted/../etc` or a symlink the plugin made inside its directory would
                // otherwise pass. The resolved path is also the one the process gets.
                let outside = || format!("working directory `{dir}` is outside the granted directories");
                let resolved = std::fs::canonicalize(dir).map_err(|_| outside())?;
                if !self.dirs.iter().any(|d| resolved.starts_with(&d.host)) {
                    return Err(outside());
                }
                Some(resolved)
            }
        };
        Ok(Authorized { program: resolved, cwd, detach: allowed.detach })
    }
}

/// An exec the sandbox allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The absolute program.
    pub program: PathBuf,
    /// The working directory, resolved, inside a granted directory.
    pub cwd: Option<PathBuf>,
    /// The grant lets what this exec starts in its own session outlive a timeout.
    pub detach: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ExecGrant, FsGrant};

    fn p(list: &[&str]) -> Vec<ArgPattern> {
        list.iter().map(|s| ArgPattern::parse(s)).collect()
    }

    fn grants() -> PluginGrants {
        PluginGrants {
            exec: vec![ExecGrant {
                program_name: "sh".into(),
                program: "/bin/sh".into(),
                args: p(&["-c", "*"]),
                detach: false,
            }],
            fs: vec![FsGrant { host: "/srv/state".into(), guest: "/state".into(), mode: FsMode::Ro }],
            env: vec!["GRANTED".into()],
            ..PluginGrants::none("demo")
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "PATH" => Some("/bin:/usr/bin".into()),
            "GRANTED" => Some("yes".into()),
            _ => None,
        }
    }

    #[test]
    fn pattern_coverage() {
        assert!(covers(&p(&["**"]), &p(&["state", "*"])));
        assert!(covers(&p(&["state", "*"]), &p(&["state", "*"])));
        assert!(covers(&p(&["state", "*"]), &p(&["state", "c1"])));
        assert!(!covers(&p(&["state", "c1"]), &p(&["state", "*"])));
        assert!(!covers(&p(&["state", "*"]), &p(&["state", "**"])));
        assert!(!covers(&p(&["state"]), &p(&["state", "*"])));
        assert!(covers(&p(&["state", "*"]), &p(&["state", "<value>"])));
        assert!(covers(&p(&["state", "<value>"]), &p(&["state", "<value>"])));
        assert!(covers(&p(&["state", "<value>"]), &p(&["state", "c1"])));
        assert!(!covers(&p(&["state", "<value>"]), &p(&["state", "--all"])));
        assert!(!covers(&p(&["state", "<value>"]), &p(&["state", "*"])), "`*` also admits options");
    }

    #[test]
    fn requests_beyond_the_grants_list_each_missing_grant_as_toml() {
        let requests = Requests {
            exec: vec![("sh".into(), p(&["-c", "*"])), ("sh".into(), p(&["-x", "**"])), ("true".into(), vec![])],
            dirs: vec![("/state".into(), false), ("/state".into(), true), ("/other".into(), false)],
            env: vec!["GRANTED".into(), "SECRET".into()],
            network: Some(vec![net("api.example", 443)]),
        };
        let missing = Sandbox::new(&grants(), &requests, AuditLog::default(), &env).expect_err("exceeds");
        assert_eq!(
            missing.missing,
            [
                "exec `sh` with arguments [\"-x\", \"**\"]",
                "exec `true` with arguments []",
                "directory `/state` (rw)",
                "directory `/other` (ro)",
                "environment variable `SECRET`",
                "network host `api.example` port 443 (why)"
            ]
        );
        assert!(
            missing.tables.contains("[[plugins.demo.network]]\nhost = \"api.example\"\nport = 443\n"),
            "{}",
            missing.tables
        );
        assert!(
            missing.tables.contains("[[plugins.demo.exec]]\nprogram = \"true\"\nargs = []\n"),
            "{}",
            missing.tables
        );
        assert!(missing.tables.contains("[[plugins.demo.fs]]\nhost = \"/state\"  # choose: the directory on this machine it sees as /state\nguest = \"/state\"\nmode = \"rw\"\n"), "{}", missing.tables);
        assert_eq!(missing.env, Some(vec!["GRANTED".to_string(), "SECRET".to_string()]));
        // Pasted into a policy that already has the entry, the tables merge: no table is reopened.
        let existing = "[plugins.demo]\nsource = \"/x.wasm\"\nenv = [\"GRANTED\"]\n\n[[plugins.demo.exec]]\nprogram = \"sh\"\nargs = [\"-c\", \"*\"]\n";
        let merged = format!("{existing}\n{}", missing.tables);
        let parsed: toml::Table = merged.parse().unwrap_or_else(|e| panic!("pasted TOML parses: {e}\n{merged}"));
        let entry = &parsed["plugins"]["demo"];
        assert_eq!(entry["exec"].as_array().map(Vec::len), Some(3), "{merged}");
        assert_eq!(entry["fs"].as_array().map(Vec::len), Some(2), "{merged}");
        assert_eq!(entry["network"].as_array().map(Vec::len), Some(1), "{merged}");
        // The network table as pasted is a grant the policy accepts (the fs one names a directory
        // for the operator to choose, so it is left out here).
        let network_table = &missing.tables[missing.tables.find("[[plugins.demo.network]]").expect("network table")..];
        let with_network = format!("{existing}\n{network_table}");
        let policy = crate::policy::Policy::parse(std::path::Path::new("/p.toml"), &with_network, "/bin:/usr/bin")
            .unwrap_or_else(|e| panic!("the pasted grant is a valid policy: {e}\n{with_network}"));
        let granted = &policy.plugins["demo"].network;
        assert!(granted.iter().any(|g| g.allows("api.example", 443)), "{granted:?}");
        assert!(missing.to_string().contains("in the table `[plugins.demo]`, set:\n\nenv = [\"GRANTED\", \"SECRET\"]"));
        // For a new entry, one document: the head, env, then the tables.
        let whole = missing.new_entry_toml("[plugins.demo]\nsource = \"/x.wasm\"");
        let parsed: toml::Table = whole.parse().unwrap_or_else(|e| panic!("new entry parses: {e}\n{whole}"));
        assert_eq!(parsed["plugins"]["demo"]["env"].as_array().map(Vec::len), Some(2));
    }

    fn net(host: &str, port: u16) -> NetworkRequest {
        NetworkRequest::parse(host, port, "why".into()).expect("a valid request")
    }

    /// A component of 0.3.0 reaches what it requested AND the operator granted, narrowed to the
    /// requested port; one of an older version (no requests) reaches what is granted.
    #[test]
    fn the_network_needs_both_the_grant_and_the_request() {
        let grants = PluginGrants {
            network: vec![
                NetworkGrant::parse("api.example").expect("grant"),
                NetworkGrant::parse("127.0.0.1:8080").expect("grant"),
                NetworkGrant::parse("other.example").expect("grant"),
            ],
            ..PluginGrants::none("demo")
        };
        let requests =
            Requests { network: Some(vec![net("API.example", 443), net("127.0.0.1", 8080)]), ..Requests::nothing() };
        let sandbox = Sandbox::new(&grants, &requests, AuditLog::default(), &env).expect("granted");
        let reach = |host: &str, port: u16| sandbox.network.iter().any(|g| g.allows(host, port));
        assert!(reach("api.example", 443) && reach("127.0.0.1", 8080));
        assert!(!reach("api.example", 80), "narrowed to the requested port");
        assert!(!reach("other.example", 443), "granted but not requested");

        let older = Requests { network: None, ..Requests::nothing() };
        let sandbox = Sandbox::new(&grants, &older, AuditLog::default(), &env).expect("granted");
        assert_eq!(sandbox.network.len(), 3, "before 0.3.0 the grants alone apply");

        let beyond = Requests { network: Some(vec![net("127.0.0.1", 8081)]), ..Requests::nothing() };
        let missing = Sandbox::new(&grants, &beyond, AuditLog::default(), &env).expect_err("another port");
        assert_eq!(missing.missing, ["network host `127.0.0.1` port 8081 (why)"]);
    }

    /// A request is a bare name or address as a policy writes it, so what the operator reads in
    /// `info` is what the host compares.
    #[test]
    fn network_requests_are_bare_hosts_and_real_ports() {
        assert_eq!(net("EC2.us-east-1.amazonaws.com", 443).host, "ec2.us-east-1.amazonaws.com");
        assert_eq!(net("::1", 8080).host, "[::1]");
        assert_eq!(net("[::1]", 8080).host, "[::1]");
        assert_eq!(net("127.0.0.1", 1).host, "127.0.0.1");
        for (host, port) in [
            ("", 80),
            ("api.example", 0),
            ("api.example:80", 80),
            ("api.example/path", 80),
            ("user@api.example", 80),
            ("api example", 80),
            ("api.example?x", 80),
            ("0x7f.1", 80),
            ("1.2.3", 80),
            ("xn--bcher-kva.example%2f", 80),
        ] {
            let err = NetworkRequest::parse(host, port, String::new()).expect_err(host);
            assert!(err.contains(&format!("host `{host}` port {port}")), "{err}");
        }
    }

    #[test]
    fn exec_needs_both_the_grant_and_the_request() {
        let requests = Requests {
            exec: vec![("sh".into(), p(&["-c", "echo hi"]))],
            env: vec!["GRANTED".into()],
            ..Requests::nothing()
        };
        let sandbox = Sandbox::new(&grants(), &requests, AuditLog::default(), &env).expect("granted");
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(sandbox.authorize("sh", &args(&["-c", "echo hi"]), &[], None).is_ok());
        assert!(sandbox.authorize("/bin/sh", &args(&["-c", "echo hi"]), &[], None).is_ok());
        let err = sandbox.authorize("sh", &args(&["-c", "reboot"]), &[], None).expect_err("not requested");
        assert!(err.contains("not requested by the plugin") && err.contains("[\"-c\", \"echo hi\"]"), "{err}");
        let err = sandbox.authorize("bash", &args(&["-c", "echo hi"]), &[], None).expect_err("program");
        assert!(err.contains("not requested by the plugin") && err.contains("`bash`"), "{err}");
        assert!(sandbox.authorize("./sh", &args(&["-c", "echo hi"]), &[], None).is_err(), "relative paths");
        let env_err = sandbox.authorize("sh", &args(&["-c", "echo hi"]), &[("LD_PRELOAD".into(), "x".into())], None);
        assert!(env_err.expect_err("env").contains("LD_PRELOAD"));
        assert!(sandbox.authorize("sh", &args(&["-c", "echo hi"]), &[], Some("/etc")).is_err(), "cwd outside grants");
        assert_eq!(sandbox.env, [("GRANTED".to_string(), "yes".to_string())]);
    }

    /// The working directory is resolved before it is compared: neither `..` nor a symlink the
    /// plugin placed in its own directory leads out of the grants.
    #[test]
    fn working_directories_cannot_climb_out_of_the_grants() {
        let root = tempfile::tempdir().expect("temp dir");
        let granted = root.path().join("state");
        std::fs::create_dir_all(granted.join("vms")).expect("dirs");
        std::os::unix::fs::symlink("/etc", granted.join("escape")).expect("symlink");
        let grants = PluginGrants {
            exec: vec![ExecGrant {
                program_name: "sh".into(),
                program: "/bin/sh".into(),
                args: p(&["-c", "*"]),
                detach: false,
            }],
            fs: vec![FsGrant { host: granted.clone(), guest: "/state".into(), mode: FsMode::Rw }],
            ..PluginGrants::none("demo")
        };
        let requests = Requests {
            exec: vec![("sh".into(), p(&["-c", "*"]))],
            dirs: vec![("/state".into(), true)],
            ..Requests::nothing()
        };
        let sandbox = Sandbox::new(&grants, &requests, AuditLog::default(), &env).expect("granted");
        let cwd = |dir: &std::path::Path| {
            let args = vec!["-c".to_string(), "pwd".to_string()];
            sandbox.authorize("sh", &args, &[], Some(dir.to_str().expect("utf-8")))
        };
        let inside = cwd(&granted.join("vms")).expect("inside");
        assert_eq!(inside.cwd, granted.join("vms").canonicalize().ok());
        for escape in [granted.join("vms/../../.."), granted.join("../"), granted.join("escape"), granted.join("gone")]
        {
            let err = cwd(&escape).expect_err("outside");
            assert!(err.contains("outside the granted directories"), "{}: {err}", escape.display());
        }
    }
}
