//! The wasmtime engine shared by every plugin of a host, its linker, the epoch ticker that makes
//! runaway guests trap, and the on-disk cache of compiled components.
//!
//! `Component::deserialize` trusts its input completely (it is native code), so the cache is only
//! ever read from a directory this host created for itself: owned by the current user and not
//! writable by anyone else. Artifacts are keyed by the SHA-256 of the component and of the
//! engine's compatibility hash, so a wasmtime upgrade or a changed plugin compiles anew.

use std::hash::Hasher;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{v0_1, v0_2, v0_3};
use super::state::CallState;

/// How often the epoch advances; a call's deadline is counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The engine: component model, epoch interruption, a bounded wasm stack and, when `pooled`, the
/// instance pool.
fn engine(pooled: bool) -> Result<Engine, EngineError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    if pooled {
        // Instances come from a pool: a call's fresh instance reuses slots of memory, tables and
        // fiber stacks (memories start as copy-on-write images of the component's data) instead
        // of mapping and unmapping them per call. The pool bounds how many calls run at once.
        //
        // A slot is reset for the next call by copying back only the pages the call dirtied,
        // found with Linux's PAGEMAP_SCAN (6.7+; older kernels fall back to madvise), up to the
        // keep-resident sizes below. Without this every call paid a page fault per page touched
        // and a TLB shootdown per reset: instantiate + no-op took 33-40 µs instead of 17-20.
        // The cost is memory: an idle warm slot keeps the pages its last call dirtied resident,
        // at most MEMORY_KEEP_RESIDENT each, and at most WARM_SLOTS slots stay warm.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 4)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 4)
            .total_stacks(POOLED_INSTANCES)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .max_unused_warm_slots(WARM_SLOTS);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(|e| EngineError::Setup(format!("{e:#}")))
}

/// Component instances alive at once (calls and `describe`s in flight, over all plugins).
const POOLED_INSTANCES: u32 = 1000;
/// Bytes of a pooled linear memory reset in place (dirtied pages copied back from the image)
/// rather than handed back to the kernel; a Rust plugin's call dirties well under this.
const MEMORY_KEEP_RESIDENT: usize = 16 << 20;
/// The same for a pooled table.
const TABLE_KEEP_RESIDENT: usize = 1 << 20;
/// Slots kept warm (resident, ready for the same component) when unused; bounds the memory an
/// idle server keeps after a burst of concurrent calls.
const WARM_SLOTS: u32 = 32;
/// Wasm stack a plugin may use; deep recursion past it traps with a stack overflow.
const MAX_WASM_STACK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Setup(String),
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
}

pub struct ComponentHost {
    engine: Engine,
    linker: Linker<CallState>,
    cache_dir: Option<PathBuf>,
    progress: Option<Arc<dyn CompileProgress>>,
}

/// Told when a component is compiled rather than loaded from the cache: a large component (an
/// interpreter such as CPython inside) takes seconds to compile, and whoever waits should know
/// why. Without one, the host logs the compilation (`info`).
pub trait CompileProgress: Send + Sync {
    /// `component` (a file name), `bytes` long, begins compiling; the returned guard is dropped
    /// when compilation ends, successfully or not.
    fn begin(&self, component: &str, bytes: usize) -> Box<dyn Send>;
}

impl ComponentHost {
    /// An engine whose compiled components are cached in `cache_dir` (created if missing);
    /// `None` compiles in memory every time. Instances are allocated per call: right for a
    /// process that makes a few calls (the CLI), where reserving a pool would cost more.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<ComponentHost, EngineError> {
        ComponentHost::with_engine(engine(false)?, cache_dir)
    }

    /// [`ComponentHost::new`] for a long-running host (`omni-cpi serve`): instances come from a
    /// pool, which makes each call's instantiation several times cheaper. The pool reserves
    /// address space up front; where that is refused (a `ulimit -v`), instances are allocated
    /// per call instead, and the log says so.
    pub fn pooled(cache_dir: Option<PathBuf>) -> Result<ComponentHost, EngineError> {
        let engine = engine(true).or_else(|pooled| {
            tracing::warn!(error = %pooled, "no instance pool; allocating per call");
            engine(false)
        })?;
        ComponentHost::with_engine(engine, cache_dir)
    }

    fn with_engine(engine: Engine, cache_dir: Option<PathBuf>) -> Result<ComponentHost, EngineError> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| EngineError::Setup(format!("{e:#}")))?;
        // Outgoing HTTP for any component that imports it; every request meets the network grants.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| EngineError::Setup(format!("{e:#}")))?;
        // Both worlds of a version import the same interfaces, so adding one world's serves both.
        // Every version's imports are named with their version, so one linker holds them all.
        let setup = |e: wasmtime::Error| EngineError::Setup(format!("{e:#}"));
        v0_3::container::ContainerCpi::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        v0_2::process::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        v0_2::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        v0_2::settings::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        v0_1::process::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        v0_1::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;

        start_epoch_ticker(&engine);
        let cache_dir = cache_dir.and_then(|dir| match prepare_cache_dir(&dir) {
            Ok(()) => Some(dir),
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), %reason, "not using the compilation cache");
                None
            }
        });
        Ok(ComponentHost { engine, linker, cache_dir, progress: None })
    }

    /// Reports every compilation to `progress` instead of the log.
    pub fn with_progress(mut self, progress: Option<Arc<dyn CompileProgress>>) -> ComponentHost {
        self.progress = progress;
        self
    }

    /// `$OMNI_CPI_CACHE_DIR`, else `$XDG_CACHE_HOME/omni-cpi`, else `~/.cache/omni-cpi`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("OMNI_CPI_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("omni-cpi"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/omni-cpi"))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// Compiles a component, or loads the artifact this host compiled for it before. `label`
    /// names it to whoever watches the compilation.
    pub fn compile(&self, bytes: &[u8], content_sha256: &str, label: &str) -> Result<Component, EngineError> {
        let Some(dir) = &self.cache_dir else {
            return self.compile_now(bytes, label);
        };
        let path = dir.join(format!("{content_sha256}-{}.cwasm", self.compatibility_key()));
        if path.is_file() {
            // SAFETY: the file is in a directory only this user can write, under a name derived
            // from the component's hash and this engine's compatibility hash, and was written by
            // `Component::serialize` of this host (see the module documentation).
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "loaded compiled component from cache");
                    return Ok(component);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry"),
            }
        }
        let component = self.compile_now(bytes, label)?;
        match component.serialize() {
            Ok(artifact) => {
                if let Err(e) = write_private(dir, &path, &artifact) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the compilation cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize the compiled component"),
        }
        Ok(component)
    }

    /// Whether `compile` would load this component from the cache (no compilation).
    pub fn is_cached(&self, content_sha256: &str) -> bool {
        self.cache_path(content_sha256).is_some_and(|path| path.is_file())
    }

    fn cache_path(&self, content_sha256: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        Some(dir.join(format!("{content_sha256}-{}.cwasm", self.compatibility_key())))
    }

    /// Compiles with Cranelift, telling the progress observer (or the log) how long it took.
    fn compile_now(&self, bytes: &[u8], label: &str) -> Result<Component, EngineError> {
        let started = std::time::Instant::now();
        let guard = match &self.progress {
            Some(progress) => Some(progress.begin(label, bytes.len())),
            None => {
                tracing::info!(component = label, bytes = bytes.len(), "compiling component for this machine");
                None
            }
        };
        let compiled = Component::new(&self.engine, bytes).map_err(|e| EngineError::Invalid(format!("{e:#}")));
        drop(guard);
        if self.progress.is_none() {
            tracing::info!(component = label, millis = started.elapsed().as_millis() as u64, "compiled component");
        }
        compiled
    }

    fn compatibility_key(&self) -> String {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut hasher);
        hex(&hasher.0.finalize()[..12])
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes and Rust versions.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Creates the cache directory (0700) or checks that an existing one is ours and private.
fn prepare_cache_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| e.to_string())?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    let uid = nix::unistd::getuid().as_raw();
    if meta.uid() != uid {
        return Err(format!("owned by uid {}, not by this user ({uid})", meta.uid()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err("writable by other users".into());
    }
    Ok(())
}

/// Writes a file readable only by this user, atomically (temporary name, then rename).
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(format!(".tmp-{}-{}", std::process::id(), crate::audit::now_ms()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("omni-cpi-epoch".into()).spawn(move || loop {
        std::thread::sleep(EPOCH_TICK);
        match weak.upgrade() {
            Some(engine) => engine.increment_epoch(),
            None => return,
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch ticker; plugin time limits rely on the call timeout only");
    }
}
