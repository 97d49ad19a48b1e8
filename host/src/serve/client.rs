//! The client side of `omni-cpi serve`, for `omni-cpi --remote ADDRESS …`: one HTTP/1.1 request
//! per connection (`Connection: close`), over the unix socket or loopback TCP with a bearer token.
//! Small on purpose: the server's answers have a length, and nothing else is needed.

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Listen;

/// Largest answer read (a CPI's outcome is bounded far below this).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// A server to call.
#[derive(Debug, Clone)]
pub struct Remote {
    pub address: Listen,
    /// The bearer token for a `tcp:` address.
    pub token: Option<String>,
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
    /// `method path` with `body` as JSON.
    pub async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response, RemoteError> {
        match &self.address {
            Listen::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| self.connect_error(e))?;
                self.exchange(stream, method, path, body).await
            }
            Listen::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| self.connect_error(e))?;
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
        let remote = Remote { address: Listen::Unix("/x".into()), token: None };
        let plain = remote.parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 11\r\n\r\n{\"a\": true}").expect("parses");
        assert_eq!((plain.status, plain.body["a"].as_bool()), (404, Some(true)));
        let chunked = remote
            .parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"b\"\r\n4\r\n: 1}\r\n0\r\n\r\n")
            .expect("parses");
        assert_eq!(chunked.body["b"], 1);
        assert!(remote.parse(b"garbage").is_err());
    }
}
