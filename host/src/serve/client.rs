//! The client side of `omni-cpi serve`, for `omni-cpi --remote ADDRESS …`: one HTTP/1.1 request
//! per connection (`Connection: close`), over the unix socket, loopback TCP or TLS, with a bearer
//! token on the network. Small on purpose: the server's answers have a length, and nothing else
//! is needed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tls::{self, TlsError};

/// Where a server is, as `--remote` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `tcp:IP:PORT`: clear text (a server listens so on loopback only).
    Tcp(SocketAddr),
    /// `tls:HOST:PORT`: HOST (a DNS name or an IP address) is what the certificate must name.
    Tls { host: String, port: u16 },
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            return super::listen::unix_socket(path).map(Address::Unix);
        }
        if let Some(address) = text.strip_prefix("tcp:") {
            let address: SocketAddr =
                address.parse().map_err(|_| format!("tcp:{address} is not IP:PORT, e.g. tcp:127.0.0.1:8480"))?;
            // The token would cross the network readable, whoever answers there.
            if !address.ip().is_loopback() {
                return Err(format!(
                    "tcp:{address} is clear text and not a loopback address: reach a server on the network \
                     with tls:HOST:PORT"
                ));
            }
            return Ok(Address::Tcp(address));
        }
        if let Some(address) = text.strip_prefix("tls:") {
            let bad = || format!("tls:{address} is not HOST:PORT, e.g. tls:omni.example:8443 or tls:[::1]:8443");
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let port = port.parse::<u16>().map_err(|_| bad())?;
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            tls::server_name(host)?;
            return Ok(Address::Tls { host: host.to_string(), port });
        }
        Err(format!("`{text}`: a server is at unix:PATH, tcp:IP:PORT or tls:HOST:PORT"))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp(address) => write!(f, "tcp:{address}"),
            Address::Tls { host, port } if host.contains(':') => write!(f, "tls:[{host}]:{port}"),
            Address::Tls { host, port } => write!(f, "tls:{host}:{port}"),
        }
    }
}

/// Largest answer read (a CPI's outcome is bounded far below this).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// A server to call.
#[derive(Clone)]
pub struct Remote {
    pub address: Address,
    /// The bearer token for a `tcp:` or `tls:` address.
    token: Option<String>,
    /// For a `tls:` address: the roots its certificate must chain to.
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Remote").field("address", &self.address).field("token", &self.token.is_some()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach omni-cpi serve at {address}: {source}")]
    Connect { address: String, source: std::io::Error },
    #[error("omni-cpi serve at {address}: {message}")]
    Protocol { address: String, message: String },
}

/// A response: its status and its body (JSON when it parses, else text).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Remote {
    /// A server at `address`; `ca` (PEM) is the only trust anchor for a `tls:` address, else
    /// Mozilla's roots are.
    pub fn new(address: Address, token: Option<String>, ca: Option<&Path>) -> Result<Remote, TlsError> {
        let tls = match address {
            Address::Tls { .. } => Some(tls::connector(ca)?),
            _ => None,
        };
        Ok(Remote { address, token, tls })
    }

    /// `method path` with `body` as JSON.
    pub async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response, RemoteError> {
        match &self.address {
            Address::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| self.connect_error(e))?;
                self.exchange(stream, method, path, body).await
            }
            Address::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| self.connect_error(e))?;
                self.exchange(stream, method, path, body).await
            }
            Address::Tls { host, port } => {
                let (Some(connector), Ok(name)) = (&self.tls, tls::server_name(host)) else {
                    return Err(self.protocol("no TLS configuration for a tls: address"));
                };
                let stream =
                    tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(|e| self.connect_error(e))?;
                // A certificate that does not verify is a connection failure that says why.
                let stream = connector.connect(name, stream).await.map_err(|e| self.connect_error(e))?;
                self.exchange(stream, method, path, body).await
            }
        }
    }

    fn connect_error(&self, source: std::io::Error) -> RemoteError {
        RemoteError::Connect { address: self.address.to_string(), source }
    }

    fn protocol(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::Protocol { address: self.address.to_string(), message: message.into() }
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, RemoteError> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: omni\r\nConnection: close\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = &self.token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes()).await.map_err(|e| self.connect_error(e))?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| self.connect_error(e))?;
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(self.protocol(format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes")));
        }
        if raw.is_empty() {
            return Err(self.protocol(
                "the server closed the connection without an answer (is this user allowed by its policy's [serve] allow_uids?)",
            ));
        }
        self.parse(&raw)
    }

    fn parse(&self, raw: &[u8]) -> Result<Response, RemoteError> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| self.protocol("no end of headers"))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| self.protocol("no status line"))?;
        let chunked = lines.any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
        let mut body = raw[split + 4..].to_vec();
        if chunked {
            body = dechunk(&body).ok_or_else(|| self.protocol("a malformed chunked body"))?;
        }
        let body =
            serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        Ok(Response { status, body })
    }
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_delimited_and_chunked_answers() {
        let remote = Remote::new(Address::Unix("/x".into()), None, None).expect("no TLS");
        let plain = remote.parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 11\r\n\r\n{\"a\": true}").expect("parses");
        assert_eq!((plain.status, plain.body["a"].as_bool()), (404, Some(true)));
        let chunked = remote
            .parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"b\"\r\n4\r\n: 1}\r\n0\r\n\r\n")
            .expect("parses");
        assert_eq!(chunked.body["b"], 1);
        assert!(remote.parse(b"garbage").is_err());
    }

    #[test]
    fn addresses_parse_and_print_back() {
        for text in
            ["unix:/run/x.sock", "tcp:127.0.0.1:8480", "tls:omni.example:8443", "tls:[::1]:8443", "tls:10.0.0.1:1"]
        {
            assert_eq!(Address::parse(text).expect(text).to_string(), text);
        }
        assert_eq!(Address::parse("tls:[::1]:8443"), Ok(Address::Tls { host: "::1".into(), port: 8443 }));
        assert!(Address::parse("tcp:omni.example:80").is_err());
        assert!(Address::parse("tcp:10.0.0.5:8480").expect_err("clear text").contains("tls:HOST:PORT"));
        assert!(Address::parse("tls:omni.example").is_err());
        assert!(Address::parse("tls:bad name:1").is_err());
        assert!(Address::parse("https://omni").is_err());
    }
}
