//! Where a server listens and how it accepts: our own accept loops, so that a unix-socket peer is
//! checked (`SO_PEERCRED`) before a byte of its request is read, a TLS handshake cannot hold up
//! the loop, and a TCP request carries a valid bearer token before it reaches the API.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, UnixListener};
use tower::ServiceExt;

use super::auth::{peer_allowed, Identity};
use super::Server;

/// One `--listen` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `unix:PATH`: local callers, identified by their uid.
    Unix(PathBuf),
    /// `tcp:HOST:PORT`: clear text, so loopback addresses only; callers need a bearer token.
    Tcp(SocketAddr),
    /// `tls:HOST:PORT`: TLS (`--tls-cert`/`--tls-key`) on any address; callers need a bearer token.
    Tls(SocketAddr),
}

impl Listen {
    pub fn parse(text: &str) -> Result<Listen, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            return unix_socket(path).map(Listen::Unix);
        }
        let ip_and_port = |scheme: &str, address: &str| {
            address.parse::<SocketAddr>().map_err(|_| {
                format!("{scheme}:{address} is not HOST:PORT with an IP address, e.g. {scheme}:127.0.0.1:8480")
            })
        };
        if let Some(address) = text.strip_prefix("tcp:") {
            let address = ip_and_port("tcp", address)?;
            if !address.ip().is_loopback() {
                return Err(format!(
                    "tcp:{address} is not a loopback address, and tcp: is clear text: tokens would cross the \
                     network readable. Listen on tls:{address} with --tls-cert and --tls-key, or on 127.0.0.1/::1, \
                     or use a unix socket"
                ));
            }
            return Ok(Listen::Tcp(address));
        }
        if let Some(address) = text.strip_prefix("tls:") {
            return Ok(Listen::Tls(ip_and_port("tls", address)?));
        }
        Err(format!("`{text}`: listen on unix:PATH, tcp:HOST:PORT (loopback) or tls:HOST:PORT"))
    }

    /// Whether callers here prove themselves with a bearer token (every network listener).
    pub fn needs_tokens(&self) -> bool {
        !matches!(self, Listen::Unix(_))
    }
}

/// The path of a `unix:PATH` address, for listeners and clients alike.
pub(super) fn unix_socket(path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("unix: needs a socket path, e.g. unix:/run/omni-cpi/omni-cpi.sock".into());
    }
    Ok(PathBuf::from(path))
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
            Listen::Tcp(address) => write!(f, "tcp:{address}"),
            Listen::Tls(address) => write!(f, "tls:{address}"),
        }
    }
}

/// A bound listener.
pub enum Bound {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
    Tls(TcpListener),
}

/// Binds `listen`. A unix socket's directory is created; a stale socket file (nobody answers
/// on it) is replaced, a live one is not; the socket is made 0660.
pub async fn bind(listen: &Listen) -> std::io::Result<Bound> {
    match listen {
        Listen::Unix(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            if path.exists() {
                if tokio::net::UnixStream::connect(path).await.is_ok() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!("{} is already served by another process", path.display()),
                    ));
                }
                remove_stale_socket(path)?;
            }
            let listener = UnixListener::bind(path)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
            Ok(Bound::Unix(listener, path.clone()))
        }
        Listen::Tcp(address) => Ok(Bound::Tcp(TcpListener::bind(address).await?)),
        Listen::Tls(address) => Ok(Bound::Tls(TcpListener::bind(address).await?)),
    }
}

/// Removes a socket file nobody answers on; refuses anything else (a regular file is not ours).
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path)?.file_type().is_socket() {
        return std::fs::remove_file(path);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{} exists and is not a socket; remove it or listen elsewhere", path.display()),
    ))
}

/// A client must finish its TLS handshake, and then send each request's headers, within this long
/// (also an idle keep-alive's limit).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one connection whose caller is known (a unix peer) or proves itself per request (TCP).
fn serve_connection<S>(
    stream: S,
    caller: Caller,
    router: Router,
    server: Arc<Server>,
    watcher: Watcher,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let router = router.clone();
        let identity = match &caller {
            Caller::Known(identity) => Some(identity.clone()),
            // The tokens of now, not of when the connection opened: a token revoked by a reload is
            // refused on a kept-alive connection too.
            Caller::Bearer => server.credentials().tokens.as_ref().and_then(|tokens| {
                tokens.identify(request.headers().get(hyper::header::AUTHORIZATION).map(|v| v.as_bytes()))
            }),
        };
        let server = server.clone();
        async move {
            let Some(identity) = identity else {
                server.metrics.unauthorized();
                return Ok::<_, Infallible>(super::api::unauthorized());
            };
            request.extensions_mut().insert(identity);
            Ok(router.oneshot(request).await.unwrap_or_else(|never: Infallible| match never {}))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::spawn(async move {
        let _ = watcher.watch(connection).await;
        drop(permit);
    });
}

#[derive(Clone)]
enum Caller {
    /// A unix-socket peer, known by its uid.
    Known(Identity),
    /// A network client: each request must carry a current bearer token.
    Bearer,
}

/// One listener's bound on open connections (`[serve] max_connections`); more are closed at once
/// (each holds a descriptor and a task, and a client may open them without sending anything).
/// Each listener has its own, so a flood on one cannot lock callers out of another.
pub fn connection_limit(max: usize) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(max))
}

/// Accepts until `stop` says so.
pub async fn accept(
    listen: Listen,
    bound: Bound,
    router: Router,
    server: Arc<Server>,
    watcher: impl Fn() -> Watcher,
    mut stop: tokio::sync::watch::Receiver<bool>,
    connections: Arc<tokio::sync::Semaphore>,
) {
    loop {
        let accepted = match &bound {
            Bound::Unix(listener, _) => tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => accepted.map(|(stream, _)| {
                    let peer = stream.peer_cred();
                    (Connection::Unix(stream), peer.ok())
                }),
            },
            Bound::Tcp(listener) => tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => accepted.map(|(stream, _)| (Connection::Tcp(stream), None)),
            },
            Bound::Tls(listener) => tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => accepted.map(|(stream, _)| (Connection::Tls(stream), None)),
            },
        };
        let (connection, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept: keep serving the others.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(listener = %listen, "too many open connections: closed a new one ([serve] max_connections)");
            continue;
        };
        match connection {
            Connection::Unix(stream) => {
                let registry = server.registry();
                match peer {
                    Some(cred) if peer_allowed(&registry.policy.serve, cred.uid(), cred.gid()) => {
                        let caller = Caller::Known(Identity::Uid(cred.uid()));
                        serve_connection(stream, caller, router.clone(), server.clone(), watcher(), permit);
                    }
                    other => {
                        // Closed before a byte of the request is read.
                        server.metrics.refused_connection();
                        tracing::warn!(uid = ?other.map(|c| c.uid()), gid = ?other.map(|c| c.gid()),
                            "refused a connection: the policy's [serve] allow_uids/allow_gids do not list the peer");
                    }
                }
            }
            Connection::Tcp(stream) => {
                let _ = stream.set_nodelay(true);
                serve_connection(stream, Caller::Bearer, router.clone(), server.clone(), watcher(), permit);
            }
            Connection::Tls(stream) => {
                let _ = stream.set_nodelay(true);
                // The certificate of now: a reload's renewed certificate serves new connections.
                let Some(acceptor) = server.credentials().tls.clone() else { continue };
                let (router, server, watcher) = (router.clone(), server.clone(), watcher());
                // Handshakes run beside the loop, each bounded, so a client that connects and stays
                // silent holds one connection slot for at most the header timeout, never the loop.
                tokio::spawn(async move {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(tls, Caller::Bearer, router, server, watcher, permit),
                        Ok(Err(e)) => tracing::warn!(error = %e, "a TLS handshake failed"),
                        Err(_) => tracing::warn!("a TLS handshake did not finish within the header timeout"),
                    }
                });
            }
        }
    }
    if let Bound::Unix(_, path) = &bound {
        let _ = std::fs::remove_file(path);
    }
}

enum Connection {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    Tls(tokio::net::TcpStream),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_and_clear_text_tcp_is_loopback_only() {
        assert_eq!(Listen::parse("unix:/run/x.sock"), Ok(Listen::Unix("/run/x.sock".into())));
        assert_eq!(Listen::parse("tcp:127.0.0.1:8480"), Ok(Listen::Tcp("127.0.0.1:8480".parse().expect("addr"))));
        assert!(Listen::parse("tcp:[::1]:8480").is_ok());
        assert!(Listen::parse("tcp:0.0.0.0:8480").expect_err("refused").contains("tls:0.0.0.0:8480"));
        assert!(Listen::parse("tcp:10.1.2.3:80").is_err());
        assert_eq!(Listen::parse("tls:0.0.0.0:8443"), Ok(Listen::Tls("0.0.0.0:8443".parse().expect("addr"))));
        assert!(Listen::parse("tls:omni.example:8443").expect_err("names").contains("IP address"));
        assert!(Listen::parse("tcp:localhost:80").expect_err("names").contains("IP address"));
        assert!(Listen::parse("http://x").is_err());
        assert!(Listen::parse("unix:").is_err());
    }
}
