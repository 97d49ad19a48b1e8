//! `omni-cpi serve`: the host as a long-running local service for omni's Agent and Director.
//!
//! `registry` (the policy's CPIs, loaded once, replaced whole on SIGHUP, with the tokens and the
//! TLS certificate) → `listen` (accept loops: unix-socket peers checked by uid/gid before a
//! request is read, TCP and TLS requests by bearer token; `tls` makes the handshakes) → `api` (axum routes: the same JSON as `omni-cpi -o json`, statuses by error kind, call
//! limits and per-resource locks) → `Cpi` (the same calls as the CLI makes). `metrics` counts
//! what happens; `auth` says who asked, and every audit line names the caller.

mod api;
mod auth;
pub mod client;
mod listen;
mod metrics;
mod registry;
mod tls;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{signal, SignalKind};

pub use api::status_of;
pub use auth::{Identity, TokenError, Tokens};
pub use listen::Listen;
use metrics::Metrics;
use registry::Registry;
pub use tls::{TlsError, TlsFiles};

/// What `omni-cpi serve` was asked to do.
pub struct ServeConfig {
    /// The policy: the CPIs served and who may call (`[serve]`). Read again on SIGHUP.
    pub policy: PathBuf,
    pub listen: Vec<Listen>,
    /// `NAME TOKEN` lines; required with a `tcp:` or `tls:` listener. Read again on SIGHUP.
    pub token_file: Option<PathBuf>,
    /// Required with a `tls:` listener, refused without one. Read again on SIGHUP.
    pub tls: Option<TlsFiles>,
    pub cache_dir: Option<PathBuf>,
    /// After SIGTERM, how long calls in flight may take before their processes are killed.
    pub shutdown_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Load(String),
    #[error("cannot listen on {listen}: {source}")]
    Bind { listen: Listen, source: std::io::Error },
    #[error("{listen} needs --token-file: a network caller is known only by its bearer token")]
    NetworkWithoutTokens { listen: Listen },
    #[error("{listen} needs --tls-cert and --tls-key: the certificate it presents and its key")]
    TlsWithoutCertificate { listen: Listen },
    #[error("--tls-cert and --tls-key serve tls: listeners only, and none is given: a tcp: listener stays clear text (listen on tls:HOST:PORT instead)")]
    CertificateWithoutTls,
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("nothing to listen on: pass --listen unix:PATH or --listen tcp:HOST:PORT")]
    NoListener,
    #[error("cannot watch for signals: {0}")]
    Signals(std::io::Error),
}

/// The state every request shares.
pub struct Server {
    registry: RwLock<Arc<Registry>>,
    credentials: RwLock<Arc<Credentials>>,
    metrics: Metrics,
}

/// What network callers are checked against, read from the operator's files.
struct Credentials {
    tokens: Option<Tokens>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Credentials {
    fn load(config: &ServeConfig) -> Result<Credentials, ServeError> {
        Ok(Credentials {
            tokens: config.token_file.as_deref().map(Tokens::load).transpose()?,
            tls: config.tls.as_ref().map(tls::acceptor).transpose()?,
        })
    }
}

impl Server {
    /// The current registry; a call keeps the one it got for its whole life.
    fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The current tokens and certificate.
    fn credentials(&self) -> Arc<Credentials> {
        self.credentials.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Refuses a configuration that would serve something other than what the operator meant: a
/// network listener anyone could call, a `tls:` listener without a certificate, or a certificate
/// given for clear-text listeners only (whose operator believes them encrypted).
fn check(config: &ServeConfig) -> Result<(), ServeError> {
    if config.listen.is_empty() {
        return Err(ServeError::NoListener);
    }
    if let Some(listen) = config.listen.iter().find(|l| l.needs_tokens()) {
        if config.token_file.is_none() {
            return Err(ServeError::NetworkWithoutTokens { listen: listen.clone() });
        }
    }
    let tls_listener = config.listen.iter().find(|l| matches!(l, Listen::Tls(_)));
    match (tls_listener, &config.tls) {
        (Some(listen), None) => Err(ServeError::TlsWithoutCertificate { listen: listen.clone() }),
        (None, Some(_)) => Err(ServeError::CertificateWithoutTls),
        _ => Ok(()),
    }
}

/// Serves until SIGTERM or SIGINT, then stops accepting, lets calls in flight finish within the
/// grace period, and kills the processes of those that did not.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    check(&config)?;
    let credentials = Credentials::load(&config)?;
    let registry = Registry::load(&config.policy, config.cache_dir.clone()).await.map_err(ServeError::Load)?;
    tracing::info!(policy = %config.policy.display(), cpis = registry.cpis.len(), "serving");
    let server = Arc::new(Server {
        registry: RwLock::new(Arc::new(registry)),
        credentials: RwLock::new(Arc::new(credentials)),
        metrics: Metrics::default(),
    });
    let router = api::router(server.clone());

    // Signals first: a SIGTERM right after the sockets appear must not kill us unhandled.
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(ServeError::Signals)?;

    let graceful = Arc::new(GracefulShutdown::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    raise_descriptor_limit();
    let max_connections = server.registry().policy.serve.max_connections;
    let mut loops = Vec::new();
    for listen in &config.listen {
        let bound = listen::bind(listen).await.map_err(|source| ServeError::Bind { listen: listen.clone(), source })?;
        tracing::info!(%listen, "listening");
        let graceful = graceful.clone();
        loops.push(tokio::spawn(listen::accept(
            listen.clone(),
            bound,
            router.clone(),
            server.clone(),
            move || graceful.watcher(),
            stopped.clone(),
            listen::connection_limit(max_connections),
        )));
    }
    // Readiness for supervisors and tests: every socket is bound.
    println!("omni-cpi serve: ready ({})", config.listen.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", "));

    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&server, &config).await,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    tracing::info!(grace = ?config.shutdown_grace, "stopping: no new connections; waiting for calls in flight");
    let _ = stop.send(true);
    for accept_loop in loops {
        let _ = accept_loop.await;
    }
    let graceful = match Arc::try_unwrap(graceful) {
        Ok(graceful) => graceful,
        Err(_) => return Ok(()),
    };
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await.is_err() {
        let killed = crate::process::spawn::end_all_now();
        tracing::warn!(killed, "calls still in flight after the grace period: their processes were killed");
    }
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard one (as Go's runtime does for every
/// server): at the usual soft limit of 1024, connections and the calls' pipes together would run
/// out long before `[serve] max_connections` on each listener does. The programs CPIs run get
/// the original limit back.
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let original = limit.current;
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => {
                if let Some(original) = original {
                    crate::process::spawn::restore_descriptor_limit_for_programs(original);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-descriptor limit"),
        }
    }
    tracing::info!(open_descriptors = ?getrlimit(Resource::Nofile).current, "descriptor limit");
}

/// Loads the policy, its CPIs, the tokens and the certificate again and swaps them in, all or
/// nothing; calls in flight finish on the set they started with. If any of them does not load,
/// the server goes on serving exactly what it served.
async fn reload(server: &Server, config: &ServeConfig) {
    let loaded = match Credentials::load(config) {
        Ok(credentials) => {
            Registry::load(&config.policy, config.cache_dir.clone()).await.map(|registry| (registry, credentials))
        }
        Err(e) => Err(e.to_string()),
    };
    match loaded {
        Ok((registry, credentials)) => {
            let cpis = registry.cpis.len();
            *server.registry.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(registry);
            *server.credentials.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(credentials);
            tracing::info!(cpis, "reloaded the policy");
            println!("omni-cpi serve: reloaded ({cpis} CPIs)");
        }
        Err(reason) => {
            tracing::error!(%reason, "reload refused: still serving the previous policy, tokens and certificate");
            eprintln!(
                "omni-cpi serve: reload refused, still serving the previous policy, tokens and certificate: {reason}"
            );
        }
    }
}
