//! `wasi:http/outgoing-handler` for components, under the policy's network grants
//! (`[[plugins.NAME.network]]`, the grants a JSON spec's request actions use). Deny by default: a
//! plugin without a network grant reaches nothing.
//!
//! A request goes out only if
//! 1. a grant names its host and port (checked before anything is resolved or sent), and
//! 2. the address the host connects to is granted as well: a grant of an IP address allows that
//!    address; a grant of a name allows the public addresses the name resolves to, never a
//!    special-purpose one (loopback, private, link-local such as a cloud's metadata service,
//!    ...). So a granted name that resolves, or is re-pointed, to an internal address (DNS
//!    rebinding) is refused; to reach such an address the operator grants the address itself.
//!
//! The host sends the request itself, on the connection it opened to the address it checked: no
//! proxy from the environment, no redirect followed (the plugin sees the 3xx), each body bounded
//! by the plugin's `output_bytes`, connecting and waiting for each part of the answer bounded like
//! an exec (`exec_timeout_ms`, and never past the call's `timeout_ms`). Every request is one audit
//! line: method, scheme, host, port and path (the call's secrets masked), the status or the reason
//! it was refused; never the query, headers or bodies (they carry credentials). A dry run sends
//! nothing.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::sandbox::NetworkGates;
use crate::audit::{AuditEntry, AuditLog, Decision};
use crate::policy::NetworkGrant;

/// Requests of one call open at once (from sending until the answer's body is read or dropped).
/// `wasi:http` hands a plugin a future per request, so without a bound one call could open
/// thousands of connections: the host's descriptors, and a flood aimed at the granted host.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 32;

/// The gate of one call's outgoing requests.
pub struct HttpGate {
    pub log: Arc<RequestLog>,
    /// What the plugin may reach (`Sandbox::network`).
    pub grants: Arc<[NetworkGrant]>,
    /// How `grants` were decided, which the reason for a refusal names.
    pub gates: NetworkGates,
    /// [`MAX_REQUESTS_IN_FLIGHT`] permits, one held by each request until its answer is done.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Largest request or response body.
    pub body_limit: usize,
    /// Connecting, and waiting for the answer's head and for each part of its body.
    pub timeout: Duration,
    pub dry_run: bool,
}

/// Where the requests of one call are audited.
#[derive(Clone)]
pub struct RequestLog {
    pub plugin: String,
    pub action: String,
    pub audit: AuditLog,
    /// The call's credential values, masked in every line.
    pub secrets: crate::secrets::Secrets,
}

/// Where a request goes, as the audit log shows it.
#[derive(Debug, Clone)]
struct Target {
    method: String,
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn of(request: &http::Request<WasiBody>) -> Result<Target, String> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("the request names no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let port = match (uri.port_u16(), scheme.as_str()) {
            (Some(port), _) => port,
            (None, "http") => 80,
            (None, "https") => 443,
            (None, other) => return Err(format!("the scheme `{other}` is not http or https")),
        };
        Ok(Target { method: request.method().to_string(), scheme, host, port, path: uri.path().to_string() })
    }

    /// `METHOD scheme://host:port/path`, without the query.
    fn argv(&self) -> Vec<String> {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        vec![self.method.clone(), format!("{}://{host}:{}{}", self.scheme, self.port, self.path)]
    }
}

impl RequestLog {
    fn record(&self, target: &Target, decision: Decision, reason: Option<String>, status: Option<(u16, Duration)>) {
        let argv = self.secrets.redact_all(&target.argv());
        let reason = reason.map(|r| self.secrets.redact(&r));
        let mut entry = AuditEntry::exec(&self.plugin, &self.action, &argv, decision, reason, None);
        entry.program = "http".into();
        entry.http_status = status.map(|(s, _)| s);
        entry.duration_ms = status.map(|(_, d)| d.as_millis() as u64);
        self.audit.record(&entry);
    }

    /// Refuses, audited.
    fn deny(&self, target: &Target, reason: String) -> HttpError {
        // The plugin sees only `HttpRequestDenied` (wasi:http carries no reason); the operator
        // sees why here and in the audit log.
        tracing::warn!(plugin = %self.plugin, request = ?self.secrets.redact_all(&target.argv()),
            reason = %self.secrets.redact(&reason), "an outgoing request was refused");
        self.record(target, Decision::Denied, Some(reason), None);
        HttpError::HttpRequestDenied
    }
}

impl HttpGate {
    /// The grants naming `target`'s host and port.
    fn grants_for(&self, target: &Target) -> Vec<NetworkGrant> {
        self.grants.iter().filter(|g| g.allows(&target.host, target.port)).cloned().collect()
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
            match config {
                Ok(config) => Arc::new(config),
                // ring's default provider supports the default versions; this cannot fail.
                Err(e) => panic!("rustls rejected its own defaults: {e}"),
            }
        })
        .clone()
}

/// The answer's head and the future that reports errors of its body's connection.
type Sent = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>), HttpError>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let target = match Target::of(&request) {
            Ok(target) => target,
            Err(reason) => {
                tracing::warn!(plugin = %self.log.plugin, %reason, "an outgoing request was refused");
                return Box::new(std::future::ready(Err(HttpError::HttpRequestUriInvalid)));
            }
        };
        if self.dry_run {
            let reason = "a dry run sends nothing".to_string();
            return Box::new(std::future::ready(Err(self.log.deny(&target, reason))));
        }
        let grants = self.grants_for(&target);
        if grants.is_empty() {
            let reason = match self.gates {
                NetworkGates::Loading => format!(
                    "plugin `{}` sends nothing while it is loaded: describe() and network-requests() only say \
                     what it needs; send requests in actions",
                    self.log.plugin
                ),
                NetworkGates::RequestedAndGranted => format!(
                    "not requested by the plugin: {}:{} is not among its network-requests(); plugin `{}` reaches \
                     only what it requests (and the operator grants): rebuild it requesting this, then grant it",
                    target.host, target.port, self.log.plugin
                ),
                NetworkGates::GrantedAlone => format!(
                    "no network grant names {}:{}; the operator grants it in the policy \
                     ([[plugins.{}.network]] host = \"{}\", port = {})",
                    target.host, target.port, self.log.plugin, target.host, target.port
                ),
            };
            return Box::new(std::future::ready(Err(self.log.deny(&target, reason))));
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            let reason = format!("more than {MAX_REQUESTS_IN_FLIGHT} requests of one call in flight");
            self.log.record(&target, Decision::Denied, Some(reason), None);
            return Box::new(std::future::ready(Err(HttpError::ConnectionLimitReached)));
        };
        let request_bound = Bound {
            permit,
            log: self.log.clone(),
            body_limit: self.body_limit,
            // The plugin may ask for less time, never for more.
            timeout: options.and_then(|o| o.connect_timeout).map_or(self.timeout, |asked| asked.min(self.timeout)),
        };
        Box::new(request_bound.send(target, grants, request))
    }
}

/// What a request's future keeps of the gate: it runs after the store's borrow ends.
struct Bound {
    /// Its place among the call's requests in flight; the answer's body keeps it.
    permit: tokio::sync::OwnedSemaphorePermit,
    log: Arc<RequestLog>,
    body_limit: usize,
    timeout: Duration,
}

impl Bound {
    async fn send(self, target: Target, grants: Vec<NetworkGrant>, request: http::Request<WasiBody>) -> Sent {
        let log = &self.log;
        let started = Instant::now();
        let addresses = match resolve(&target, self.timeout).await {
            Ok(addresses) => addresses,
            Err(reason) => {
                log.record(&target, Decision::Denied, Some(reason), None);
                return Err(HttpError::DestinationNotFound);
            }
        };
        let allowed: Vec<SocketAddr> =
            addresses.iter().copied().filter(|a| grants.iter().any(|g| g.allows_address(a.ip()))).collect();
        if allowed.is_empty() {
            let shown: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            let reason = format!(
                "{} resolves to {}, which no grant allows: a grant of a name reaches public addresses only; \
                 to reach this one, the operator grants the address itself",
                target.host,
                shown.join(", ")
            );
            return Err(log.deny(&target, reason));
        }
        let sent = tokio::time::timeout(self.timeout, self.exchange(&target, &allowed, request)).await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err((error, reason))) => {
                log.record(&target, Decision::Allowed, Some(reason), None);
                return Err(error);
            }
            Err(_) => {
                let reason = format!("no answer within {:?}", self.timeout);
                log.record(&target, Decision::Allowed, Some(reason), None);
                return Err(HttpError::HttpResponseTimeout);
            }
        };
        log.record(&target, Decision::Allowed, None, Some((response.status().as_u16(), started.elapsed())));
        let (limit, idle, permit) = (self.body_limit, self.timeout, self.permit);
        let response = response.map(|body| {
            let mut body = Bounded::new(body, limit, HttpError::HttpResponseBodySize, idle);
            body.permit = Some(permit);
            body.boxed_unsync()
        });
        Ok((response, Box::new(std::future::ready(Ok(())))))
    }

    /// Connects to the first address that answers and sends the request on that connection.
    async fn exchange(
        &self,
        target: &Target,
        addresses: &[SocketAddr],
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, (HttpError, String)> {
        let mut stream = None;
        let mut last_error = String::new();
        for address in addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(e) => last_error = format!("{address}: {e}"),
            }
        }
        let stream = stream.ok_or_else(|| (HttpError::ConnectionRefused, format!("cannot connect: {last_error}")))?;
        let (mut parts, body) = request.into_parts();
        // On the wire the request line carries the path only; the Host header names the host.
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = http::Uri::try_from(path).map_err(|e| (HttpError::HttpRequestUriInvalid, e.to_string()))?;
        let body = Bounded::new(body, self.body_limit, HttpError::HttpRequestBodySize, self.timeout).boxed_unsync();
        let request = http::Request::from_parts(parts, body);
        if target.scheme == "https" {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| (HttpError::HttpRequestUriInvalid, e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, stream)
                .await
                .map_err(|e| (HttpError::TlsCertificateError, format!("TLS: {e}")))?;
            send_on(TokioIo::new(tls), request).await
        } else {
            send_on(TokioIo::new(stream), request).await
        }
    }
}

/// One HTTP/1.1 exchange on an open connection.
async fn send_on<S>(io: S, request: http::Request<WasiBody>) -> Result<http::Response<WasiBody>, (HttpError, String)>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |what: &'static str| move |e: hyper::Error| (HttpError::HttpProtocolError, format!("{what}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(failed("handshake"))?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(failed("send"))?;
    Ok(response.map(|body| body.map_err(HttpError::from).boxed_unsync()))
}

/// The addresses of the target's host (itself, when it is an address).
async fn resolve(target: &Target, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    if let Ok(address) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(address, target.port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((target.host.as_str(), target.port))).await {
        Ok(Ok(found)) => {
            let found: Vec<SocketAddr> = found.collect();
            if found.is_empty() {
                Err(format!("{} has no address", target.host))
            } else {
                Ok(found)
            }
        }
        Ok(Err(e)) => Err(format!("cannot resolve {}: {e}", target.host)),
        Err(_) => Err(format!("resolving {} took longer than {timeout:?}", target.host)),
    }
}

/// A body that fails once more than `limit` bytes went through, or when no part arrives for
/// `idle`.
struct Bounded {
    inner: WasiBody,
    seen: usize,
    limit: usize,
    too_big: fn(Option<u64>) -> HttpError,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// An answer's body holds its request's place in flight until it is dropped.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Bounded {
    fn new(inner: WasiBody, limit: usize, too_big: fn(Option<u64>) -> HttpError, idle: Duration) -> Bounded {
        Bounded { inner, seen: 0, limit, too_big, idle, timer: None, permit: None }
    }
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer = None;
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len());
                    if this.seen > this.limit {
                        return Poll::Ready(Some(Err((this.too_big)(Some(this.limit as u64)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}
