//! `cargo xtask bench`: omni-cpi's own cost next to the alternatives, measured in one run and
//! written to BENCHMARKS.md (issue 6 names the measurements and the budget).
//!
//! The harness is small on purpose. Every comparison runs its two sides interleaved (A, B, A,
//! B, ...) after a warm-up, so drift in the machine (frequency, page cache, other load) hits both
//! sides alike; it reports medians, with the 10th and 90th percentiles to show the spread.
//! Whole-process figures spawn the release binary; in-process figures call the library.
//!
//! Needs the release binary (cargo builds it for benches) and the benchmark component,
//! plugins/target/wasm32-wasip2/release/omni_cpi_bench.wasm (`cargo xtask build-plugins`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use omni_cpi::policy::Policy;
use omni_cpi::{json::spec, CallOptions, Cpi, JsonCpi, Loader, Params};
use serde_json::{json, Value};

/// The JSON action every comparison uses: `true start NAME`, the argv of the component's exec.
const SPEC: &str = r#"{
  "name": "bench_json",
  "type": "director",
  "validation": {"required_commands": ["true"]},
  "actions": {"start_vm": {"command": "true start {vm}", "params": ["vm"]}}
}"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// Samples of one measured thing.
struct Samples(Vec<Duration>);

impl Samples {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[index]
    }
    fn median(&self) -> Duration {
        self.percentile(0.5)
    }
    fn spread(&self) -> String {
        format!("p10 {} / p90 {}", show(self.percentile(0.1)), show(self.percentile(0.9)))
    }
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// Runs `a` and `b` alternately `runs` times after `warmup` rounds.
fn interleaved(runs: usize, warmup: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Samples, Samples) {
    for _ in 0..warmup {
        a();
        b();
    }
    let (mut sa, mut sb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let t = Instant::now();
        a();
        sa.push(t.elapsed());
        let t = Instant::now();
        b();
        sb.push(t.elapsed());
    }
    (Samples(sa), Samples(sb))
}

fn timed(runs: usize, warmup: usize, mut f: impl FnMut()) -> Samples {
    for _ in 0..warmup {
        f();
    }
    Samples(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn params(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

/// One line of the results table.
struct Row {
    id: &'static str,
    what: String,
    ours: String,
    baseline: String,
    ratio: String,
    budget: &'static str,
    met: Option<bool>,
    spread: String,
}

fn run_ok(command: &mut Command) {
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status().expect("spawn");
    assert!(status.success(), "{command:?} failed");
}

fn main() {
    // `cargo bench` passes `--bench`; anything else selects a mode.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("memory-probe") {
        return memory_probe();
    }
    if args.first().map(String::as_str) == Some("noop-loop") {
        return noop_loop(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10));
    }
    let wasm = repo_root().join("plugins/target/wasm32-wasip2/release/omni_cpi_bench.wasm");
    assert!(wasm.is_file(), "{} is missing: run `cargo xtask build-plugins` (cargo xtask bench does)", wasm.display());
    let policy_path = repo_root().join("plugins/bench/policy.toml");
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_omni-cpi"));
    let work = tempfile::tempdir().expect("temp dir");
    let spec_path = work.path().join("bench_json.json");
    std::fs::write(&spec_path, SPEC).expect("write spec");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let json_only = JsonCpi::unrestricted(spec::load_str("bench_json.json", SPEC.to_string()).expect("spec"));
    let json_cpi = Cpi::from(json_only.clone());
    let cache = work.path().join("cache");
    let policy = Policy::load(&policy_path).expect("bench policy");
    let mut loader = Loader::new(policy, Some(cache.clone())).expect("loader");
    // A long-running host, as `omni-cpi serve` is: instances from the pool.
    loader.instance_pool = true;
    let component = runtime.block_on(loader.load(&wasm)).expect("bench component loads");
    let options = CallOptions::default();
    let start = params(json!({"vm": "vm-1"}));
    let mut rows = Vec::new();

    // (1) and (2): the JSON action vs a direct spawn vs the original engine's `sh -c`.
    eprintln!("(1)(2) JSON action vs std::process::Command vs sh -c ...");
    let call_json = || {
        runtime.block_on(json_cpi.call("start_vm", &start, &options)).expect("json action");
    };
    let raw = || {
        let out = Command::new("true").args(["start", "vm-1"]).output().expect("spawn");
        assert!(out.status.success());
    };
    let (host, direct) = interleaved(400, 40, call_json, raw);
    let ratio = host.median().as_secs_f64() / direct.median().as_secs_f64();
    rows.push(Row {
        id: "1",
        what: "JSON action `true start {vm}` through the host vs the same argv with std::process::Command::output"
            .into(),
        ours: show(host.median()),
        baseline: show(direct.median()),
        ratio: format!("{ratio:.3}×"),
        budget: "≤ 1.10×",
        met: Some(ratio <= 1.10),
        spread: format!("host {}; direct {}", host.spread(), direct.spread()),
    });
    let shell = || {
        let name = "vm-1";
        let out = Command::new("/bin/sh").args(["-c", &format!("true start {name}")]).output().expect("spawn");
        assert!(out.status.success());
    };
    let (host, sh) = interleaved(400, 40, call_json, shell);
    let ratio = host.median().as_secs_f64() / sh.median().as_secs_f64();
    rows.push(Row {
        id: "2",
        what: "the same JSON action vs `/bin/sh -c \"true start vm-1\"` (string substitution, as OmniCloud's engine ran it)".into(),
        ours: show(host.median()),
        baseline: show(sh.median()),
        ratio: format!("{ratio:.3}× (saves {:.0}%)", (1.0 - ratio) * 100.0),
        budget: "(no budget)",
        met: None,
        spread: format!("host {}; sh {}", host.spread(), sh.spread()),
    });

    // (3) the component's exec through the host import vs the JSON action.
    eprintln!("(3) component action vs JSON action ...");
    let call_component = || {
        runtime.block_on(component.call("start_vm", &start, &options)).expect("component action");
    };
    let (comp, json_side) = interleaved(400, 40, call_component, call_json);
    let ratio = comp.median().as_secs_f64() / json_side.median().as_secs_f64();
    rows.push(Row {
        id: "3",
        what: "component action running the same exec through the host's `process` import vs the JSON action".into(),
        ours: show(comp.median()),
        baseline: show(json_side.median()),
        ratio: format!("{ratio:.3}×"),
        budget: "≤ 1.15×",
        met: Some(ratio <= 1.15),
        spread: format!("component {}; JSON {}", comp.spread(), json_side.spread()),
    });

    // (4) component start: a new process each time, with an empty and with a warm cache.
    eprintln!("(4) component start, cold and warm cache ...");
    let cli_call = |cache_dir: &Path| {
        run_ok(
            Command::new(&cli)
                .arg("--policy")
                .arg(&policy_path)
                .arg("--cache-dir")
                .arg(cache_dir)
                .args(["call", "bench", "has_vm", "vm=x"]),
        )
    };
    let cold_dirs = tempfile::tempdir().expect("temp dir");
    let mut n = 0;
    let cold = timed(8, 0, || {
        n += 1;
        cli_call(&cold_dirs.path().join(n.to_string()));
    });
    let warm_cache = work.path().join("warm-cache");
    cli_call(&warm_cache);
    let (warm, truth) = interleaved(60, 5, || cli_call(&warm_cache), || run_ok(&mut Command::new("true")));
    let ratio_warm = warm.median();
    rows.push(Row {
        id: "4a",
        what: "first call of a component in a new process, empty compilation cache (compiles)".into(),
        ours: show(cold.median()),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "(no budget)",
        met: None,
        spread: cold.spread(),
    });
    rows.push(Row {
        id: "4b",
        what: "first call of a component in a new process, warm on-disk cache (whole process, vs `true`)".into(),
        ours: show(warm.median()),
        baseline: show(truth.median()),
        ratio: format!("{:.1}×", ratio_warm.as_secs_f64() / truth.median().as_secs_f64()),
        budget: "≤ 20 ms",
        met: Some(ratio_warm <= Duration::from_millis(20)),
        spread: warm.spread(),
    });
    let noop = params(json!({"vm": "x"}));
    let steady = timed(2000, 200, || {
        runtime.block_on(component.call("has_vm", &noop, &options)).expect("no-op call");
    });
    rows.push(Row {
        id: "4c",
        what: "steady state: instantiate + no-op call (`has_vm`) of a loaded component (pooled)".into(),
        ours: show(steady.median()),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "≤ 20 µs",
        met: Some(steady.median() <= Duration::from_micros(20)),
        spread: steady.spread(),
    });

    // (10) a large component: the Python example (CPython inside, about 19 MB).
    eprintln!("(10) the Python component: compile once, then calls ...");
    let python_policy = repo_root().join("plugins/podman-py/policy.toml");
    let python_wasm = repo_root().join("plugins/podman-py/podman_py.wasm");
    run_ok(Command::new(&cli).arg("build").arg(repo_root().join("plugins/podman-py")));
    let python_cache = work.path().join("python-cache");
    let compile_once = timed(1, 0, || {
        run_ok(
            Command::new(&cli).arg("--policy").arg(&python_policy).arg("--cache-dir").arg(&python_cache).arg("compile"),
        )
    });
    // A dry run of list_containers: the plugin runs, its `podman ps` is recorded, nothing is started.
    let python_cli_call = || {
        run_ok(Command::new(&cli).arg("--policy").arg(&python_policy).arg("--cache-dir").arg(&python_cache).args([
            "call",
            "podman_py",
            "list_containers",
            "--dry-run",
        ]))
    };
    let (python_cli, python_truth) = interleaved(30, 3, python_cli_call, || run_ok(&mut Command::new("true")));
    let mut python_loader =
        Loader::new(Policy::load(&python_policy).expect("python policy"), Some(python_cache.clone())).expect("loader");
    python_loader.instance_pool = true;
    let python = runtime.block_on(python_loader.load(&python_wasm)).expect("the Python component loads");
    let nothing = params(json!({}));
    let python_steady = timed(300, 30, || {
        std::hint::black_box(runtime.block_on(python.plan("list_containers", &nothing, &options)).expect("plan"));
    });
    rows.push(Row {
        id: "10a",
        what: "Python component (podman_py, 19 MB): `omni-cpi compile`, empty cache, once per machine".into(),
        ours: show(compile_once.median()),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "(no budget)",
        met: None,
        spread: "one run".into(),
    });
    rows.push(Row {
        id: "10b",
        what:
            "Python component: `call --dry-run list_containers` in a new process, compiled (whole process, vs `true`)"
                .into(),
        ours: show(python_cli.median()),
        baseline: show(python_truth.median()),
        ratio: format!("{:.1}×", python_cli.median().as_secs_f64() / python_truth.median().as_secs_f64()),
        budget: "(no budget)",
        met: None,
        spread: python_cli.spread(),
    });
    rows.push(Row {
        id: "10c",
        what: "Python component, steady state: instantiate + `list_containers` planned (pooled, as `serve`)".into(),
        ours: show(python_steady.median()),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "≤ 10 ms",
        met: Some(python_steady.median() <= Duration::from_millis(10)),
        spread: python_steady.spread(),
    });

    // (5) dry-run throughput on one core.
    eprintln!("(5) dry-run throughput ...");
    let json_only = &json_only;
    let plans_per_second = |mut plan: Box<dyn FnMut()>| {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut count = 0u64;
        while Instant::now() < deadline {
            for _ in 0..100 {
                plan();
            }
            count += 100;
        }
        count as f64
    };
    let json_rate = plans_per_second(Box::new(|| {
        std::hint::black_box(json_only.plan("start_vm", &start, &options).expect("plan"));
    }));
    let component_rate = plans_per_second(Box::new(|| {
        std::hint::black_box(runtime.block_on(component.plan("start_vm", &start, &options)).expect("plan"));
    }));
    rows.push(Row {
        id: "5a",
        what: "dry-run plans per second, JSON spec, one thread".into(),
        ours: format!("{json_rate:.0}/s"),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "≥ 100,000/s",
        met: Some(json_rate >= 100_000.0),
        spread: format!("{:.2} µs per plan", 1e6 / json_rate),
    });
    rows.push(Row {
        id: "5b",
        what: "dry-run plans per second, component (instantiates, runs with execs recorded)".into(),
        ours: format!("{component_rate:.0}/s"),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "(no budget)",
        met: None,
        spread: format!("{:.1} µs per plan", 1e6 / component_rate),
    });

    // (6) 64 concurrent actions on distinct names vs the same 64 one after another.
    eprintln!("(6) 64 concurrent actions vs sequential ...");
    let names: Vec<Params> = (0..64).map(|i| params(json!({"vm": format!("vm-{i}")}))).collect();
    let json_arc = Arc::new(json_cpi);
    let sequential = || {
        for p in &names {
            runtime.block_on(json_arc.call("start_vm", p, &options)).expect("action");
        }
    };
    let concurrent = || {
        runtime.block_on(async {
            let tasks: Vec<_> = names
                .iter()
                .map(|p| {
                    let cpi = Arc::clone(&json_arc);
                    let p = p.clone();
                    tokio::spawn(async move { cpi.call("start_vm", &p, &CallOptions::default()).await })
                })
                .collect();
            for task in tasks {
                task.await.expect("task").expect("action");
            }
        })
    };
    let (seq, conc) = interleaved(15, 2, sequential, concurrent);
    let speedup = seq.median().as_secs_f64() / conc.median().as_secs_f64();
    rows.push(Row {
        id: "6",
        what: "64 JSON actions on distinct names: concurrently (tokio, 2 workers) vs one after another".into(),
        ours: format!("{:.0} actions/s", 64.0 / conc.median().as_secs_f64()),
        baseline: format!("{:.0} actions/s", 64.0 / seq.median().as_secs_f64()),
        ratio: format!("{speedup:.2}× throughput"),
        budget: "≥ 1.6×",
        met: Some(speedup >= 1.6),
        spread: format!("batch of 64: concurrent {}, sequential {}", show(conc.median()), show(seq.median())),
    });

    // (7) memory, in a fresh process so nothing measured here inflates it.
    eprintln!("(7) memory ...");
    let probe = Command::new(std::env::current_exe().expect("own path"))
        .arg("memory-probe")
        .arg(&wasm)
        .arg(&policy_path)
        .arg(&cache)
        .stderr(Stdio::inherit())
        .output()
        .expect("memory probe runs");
    assert!(probe.status.success(), "the memory probe failed");
    let memory: Value = serde_json::from_slice(&probe.stdout).expect("probe prints JSON");
    let mib = |kib: &Value| kib.as_f64().unwrap_or(0.0) / 1024.0;
    let loaded = mib(&memory["rss_with_10_components_kib"]);
    rows.push(Row {
        id: "7a",
        what: "resident memory of a host process with 10 components loaded".into(),
        ours: format!("{loaded:.1} MiB"),
        baseline: format!("{:.1} MiB before loading", mib(&memory["rss_host_kib"])),
        ratio: "-".into(),
        budget: "≤ 100 MiB",
        met: Some(loaded <= 100.0),
        spread: "VmRSS from /proc/self/status".into(),
    });
    rows.push(Row {
        id: "7b",
        what: "resident memory per additional live instance (50 calls in flight)".into(),
        ours: format!("{:.0} KiB", memory["per_live_instance_kib"].as_f64().unwrap_or(0.0)),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "(no budget)",
        met: None,
        spread: format!("{:.1} MiB with 50 live", mib(&memory["rss_with_50_live_kib"])),
    });

    // (8) the CLI's start-up: a dry run as a whole process vs `true`.
    eprintln!("(8) CLI dry run vs true ...");
    let spec_arg = spec_path.to_str().expect("utf-8").to_string();
    let (dry, truth) = interleaved(
        200,
        20,
        || run_ok(Command::new(&cli).args(["call", &spec_arg, "start_vm", "vm=x", "--dry-run"])),
        || run_ok(&mut Command::new("true")),
    );
    rows.push(Row {
        id: "8",
        what: "`omni-cpi call SPEC start_vm vm=x --dry-run`, whole process, vs `true`".into(),
        ours: show(dry.median()),
        baseline: show(truth.median()),
        ratio: format!("{:.1}×", dry.median().as_secs_f64() / truth.median().as_secs_f64()),
        budget: "≤ 10 ms",
        met: Some(dry.median() <= Duration::from_millis(10)),
        spread: format!("omni-cpi {}", dry.spread()),
    });

    served_rows(&runtime, &cli, work.path(), &spec_path, &mut rows);

    // In the table's order: by number, then letter (measurements run in whatever order is cheapest).
    rows.sort_by_key(|row| {
        let digits = row.id.find(|c: char| !c.is_ascii_digit()).unwrap_or(row.id.len());
        (row.id[..digits].parse::<u32>().unwrap_or(u32::MAX), row.id[digits..].to_string())
    });
    let report = render(&rows);
    print!("{report}");
    let out = repo_root().join("BENCHMARKS.md");
    std::fs::write(&out, &report).expect("write BENCHMARKS.md");
    eprintln!("wrote {}", out.display());
}

/// One keep-alive HTTP/1.1 connection to `omni-cpi serve`, as an Agent would hold it.
struct ServedConnection {
    stream: tokio::io::BufReader<tokio::net::UnixStream>,
}

impl ServedConnection {
    async fn open(socket: &Path) -> ServedConnection {
        let stream = tokio::net::UnixStream::connect(socket).await.expect("connect to the server");
        ServedConnection { stream: tokio::io::BufReader::new(stream) }
    }

    /// POSTs `body` to `path`; the status.
    async fn post(&mut self, path: &str, body: &str) -> u16 {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: omni\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await.expect("write");
        let mut status = 0;
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("read");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some(code) = trimmed.strip_prefix("HTTP/1.1 ") {
                status = code.split(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0);
            } else if let Some((name, value)) = trimmed.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.expect("body");
        status
    }
}

/// (9) `omni-cpi serve`: a served dry run over the unix socket against the same call through the
/// CLI, and served dry runs per second with 32 clients on keep-alive connections.
fn served_rows(runtime: &tokio::runtime::Runtime, cli: &Path, work: &Path, spec: &Path, rows: &mut Vec<Row>) {
    eprintln!("(9) omni-cpi serve ...");
    let policy = work.join("serve.toml");
    std::fs::write(
        &policy,
        format!(
            "[serve]\nmax_in_flight = 256\nmax_in_flight_per_cpi = 256\n[plugins.bench_json]\nsource = \"{}\"\n\
             [[plugins.bench_json.exec]]\nprogram = \"true\"\nargs = [\"**\"]\n",
            spec.display()
        ),
    )
    .expect("policy");
    let socket = work.join("serve.sock");
    let mut server = Command::new(cli)
        .args(["--policy", policy.to_str().expect("utf-8"), "serve", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("omni-cpi serve starts");
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.as_mut().expect("stdout")), &mut ready)
        .expect("ready line");
    assert!(ready.starts_with("omni-cpi serve: ready"), "{ready}");
    let path = "/v1/cpis/bench_json/actions/start_vm?dry_run=true";
    let body = r#"{"vm": "vm-1"}"#;

    let mut connection = runtime.block_on(ServedConnection::open(&socket));
    let remote = format!("unix:{}", socket.display());
    let (served, through_cli) = interleaved(
        300,
        30,
        || assert_eq!(runtime.block_on(connection.post(path, body)), 200),
        || run_ok(Command::new(cli).args(["--remote", &remote, "call", "bench_json", "start_vm", "vm=x", "--dry-run"])),
    );
    rows.push(Row {
        id: "9a",
        what: "served dry run `start_vm` over the unix socket (keep-alive) vs the same through `omni-cpi --remote … call --dry-run`".into(),
        ours: show(served.median()),
        baseline: show(through_cli.median()),
        ratio: format!("{:.3}×", served.median().as_secs_f64() / through_cli.median().as_secs_f64()),
        budget: "p50 ≤ 1 ms",
        met: Some(served.median() <= Duration::from_millis(1)),
        spread: format!("served {}; CLI {}", served.spread(), through_cli.spread()),
    });

    let clients = 32;
    let per_client = 250;
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let socket = socket.clone();
                tokio::spawn(async move {
                    let mut connection = ServedConnection::open(&socket).await;
                    for _ in 0..per_client {
                        assert_eq!(connection.post(path, body).await, 200);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("client");
        }
    });
    let took = started.elapsed();
    let rate = (clients * per_client) as f64 / took.as_secs_f64();
    rows.push(Row {
        id: "9b",
        what: format!(
            "served dry runs per second, {clients} clients on keep-alive connections, 2 cores shared with the clients"
        ),
        ours: format!("{rate:.0}/s"),
        baseline: "-".into(),
        ratio: "-".into(),
        budget: "≥ 2,000/s",
        met: Some(rate >= 2000.0),
        spread: format!("{} calls in {took:.2?}", clients * per_client),
    });
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `cargo bench --bench overhead -- noop-loop SECONDS`: row 4c's call (instantiate + `has_vm`)
/// in a loop, for a profiler (`perf record -g -p PID`); prints the calls per second.
fn noop_loop(seconds: u64) {
    let wasm = repo_root().join("plugins/target/wasm32-wasip2/release/omni_cpi_bench.wasm");
    let work = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let policy = Policy::load(&repo_root().join("plugins/bench/policy.toml")).expect("bench policy");
    let mut loader = Loader::new(policy, Some(work.path().join("cache"))).expect("loader");
    loader.instance_pool = true;
    let component = runtime.block_on(loader.load(&wasm)).expect("bench component loads");
    let (noop, options) = (params(json!({"vm": "x"})), CallOptions::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut per_call = Vec::new();
    while Instant::now() < deadline {
        let batch = Instant::now();
        for _ in 0..100 {
            runtime.block_on(component.call("has_vm", &noop, &options)).expect("no-op call");
        }
        per_call.push(batch.elapsed() / 100);
    }
    per_call.sort();
    println!("{:.1?} per call (median of {} batches of 100)", per_call[per_call.len() / 2], per_call.len());
}

/// Run in its own process: RSS of the host with the engine up, with 10 components loaded (the
/// benchmark component under 10 names, each compiled and instantiated separately), and with 50
/// calls in flight on one of them.
fn memory_probe() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (wasm, policy_path, cache) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]), PathBuf::from(&args[3]));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let grants = std::fs::read_to_string(&policy_path).expect("policy");
    let mut text = String::new();
    let mut sources = Vec::new();
    for i in 0..10 {
        // Distinct files: a host keeps one compiled component per loaded plugin.
        let copy = dir.path().join(format!("bench{i}.wasm"));
        std::fs::copy(&wasm, &copy).expect("copy");
        text.push_str(&grants.replace("[plugins.bench", &format!("[plugins.bench{i}")).replace(
            "source = \"../target/wasm32-wasip2/release/omni_cpi_bench.wasm\"",
            &format!("source = \"{}\"", copy.display()),
        ));
        text.push('\n');
        sources.push(copy);
    }
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, text).expect("policy");
    let loader = Loader::new(Policy::load(&policy_file).expect("policy"), Some(cache)).expect("loader");
    loader.component_host().expect("engine");
    let rss_host = rss_kib();
    let loaded: Vec<Cpi> = sources.iter().map(|s| runtime.block_on(loader.load(s)).expect("loads")).collect();
    // One call each, so every component has been instantiated once.
    for cpi in &loaded {
        runtime.block_on(cpi.call("has_vm", &params(json!({"vm": "x"})), &CallOptions::default())).expect("call");
    }
    let rss_loaded = rss_kib();
    let cpi = Arc::new(loaded.into_iter().next().expect("one"));
    let live = 50;
    let rss_live = runtime.block_on(async {
        let tasks: Vec<_> = (0..live)
            .map(|i| {
                let cpi = Arc::clone(&cpi);
                tokio::spawn(async move {
                    cpi.call("stop_vm", &params(json!({"vm": format!("v{i}")})), &CallOptions::default()).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = rss_kib();
        for task in tasks {
            task.await.expect("task").expect("call");
        }
        during
    });
    let out = json!({
        "rss_host_kib": rss_host,
        "rss_with_10_components_kib": rss_loaded,
        "rss_with_50_live_kib": rss_live,
        "per_live_instance_kib": (rss_live.saturating_sub(rss_loaded)) as f64 / live as f64,
    });
    println!("{out}");
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.trim_start_matches("MemTotal:").trim().to_string()))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {memory} RAM, Linux {}", kernel.trim())
}

fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str("Reproduce with `cargo xtask bench` (release build; rewrites this file). Each pair is measured\n");
    out.push_str("in the same run, interleaved; figures are medians (spread: 10th/90th percentiles).\n\n");
    out.push_str(&format!("Machine: {}.\n\n", machine()));
    out.push_str("| # | measurement | omni-cpi | baseline | ratio | budget | met |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.id, r.what, r.ours, r.baseline, r.ratio, r.budget, met
        ));
    }
    out.push_str("\nSpread and details:\n\n");
    for r in rows {
        out.push_str(&format!("- ({}) {}\n", r.id, r.spread));
    }
    out
}
