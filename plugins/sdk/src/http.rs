//! Outgoing HTTP through the host's `wasi:http`, for CPIs that speak to an IaaS API.
//!
//! The host sends a request only to a host and port the plugin requested in
//! [`crate::Plugin::network_requests`] AND the operator granted (`[[plugins.NAME.network]]`), and
//! only to an address the grant allows (a name reaches its public addresses only); it follows no
//! redirect (you get the 3xx), bounds both bodies by the plugin's `output_bytes` and each wait by
//! its `exec_timeout_ms`, and audits every request. In a dry run nothing is sent: every request
//! is refused, so plan from what you know.
//!
//! ```no_run
//! use omni_cpi_sdk::http;
//! # fn f() -> omni_cpi_sdk::CpiResult<()> {
//! let answer = http::Request::post("http://127.0.0.1:5000/", "application/x-www-form-urlencoded")
//!     .header("x-amz-date", "20261202T120000Z")
//!     .body("Action=DescribeInstances&Version=2016-11-15")
//!     .send()?;
//! if answer.status != 200 {
//!     return Err(answer.error("DescribeInstances"));
//! }
//! let xml = answer.text();
//! # let _ = xml; Ok(()) }
//! ```

use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

use crate::{CpiError, CpiResult, ErrorKind, NetworkRequest};

/// The [`NetworkRequest`] for the host and port of `url` (`http(s)://HOST[:PORT]/…`; the port
/// defaults to 443 or 80), to return from [`crate::Plugin::network_requests`]:
/// `network_request(&endpoint, "the EC2 Query API")`.
pub fn network_request(url: &str, description: &str) -> CpiResult<NetworkRequest> {
    let parsed = Url::parse(url)?;
    let bad = || CpiError::new(ErrorKind::InvalidArgument, format!("http: `{url}` has no valid HOST[:PORT]"));
    let (host, port) = match parsed.authority.rsplit_once(':') {
        // `[::1]` alone has colons too: a port follows only the closing bracket, or a name.
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            (host, port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?)
        }
        _ => (parsed.authority, if parsed.https { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(NetworkRequest { host: host.to_string(), port, description: description.to_string() })
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// `http://HOST[:PORT]/PATH[?QUERY]` or `https://…`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The error a failed answer means: `not_found` for 404, `already_exists` for 409,
    /// `denied` for 401/403, `unavailable` for 503, else `failed`; the message names `what`
    /// and the status, with the body's first line.
    pub fn error(&self, what: &str) -> CpiError {
        let kind = match self.status {
            401 | 403 => ErrorKind::Denied,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::AlreadyExists,
            503 => ErrorKind::Unavailable,
            _ => ErrorKind::Failed,
        };
        let text = self.text();
        let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        CpiError::new(kind, format!("{what}: HTTP {}: {first}", self.status))
    }
}

impl Request {
    pub fn new(method: &str, url: &str) -> Request {
        Request { method: method.to_string(), url: url.to_string(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    /// A POST with its `content-type`.
    pub fn post(url: &str, content_type: &str) -> Request {
        Request::new("POST", url).header("content-type", content_type)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sends the request through the host and reads the whole answer.
    pub fn send(&self) -> CpiResult<Response> {
        let url = Url::parse(&self.url)?;
        let headers = Fields::new();
        for (name, value) in &self.headers {
            headers.append(name, value.as_bytes()).map_err(|e| {
                CpiError::new(ErrorKind::InvalidArgument, format!("http: the header `{name}` is refused: {e:?}"))
            })?;
        }
        let request = OutgoingRequest::new(headers);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        };
        let invalid =
            |what: &str| CpiError::new(ErrorKind::InvalidArgument, format!("http: invalid {what} in {}", self.url));
        request.set_method(&method).map_err(|()| invalid("method"))?;
        let scheme = if url.https { Scheme::Https } else { Scheme::Http };
        request.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
        request.set_authority(Some(url.authority)).map_err(|()| invalid("host"))?;
        request.set_path_with_query(Some(&url.path_and_query)).map_err(|()| invalid("path"))?;
        let outgoing = request.body().map_err(|()| invalid("body"))?;
        if !self.body.is_empty() {
            let stream = outgoing.write().map_err(|()| invalid("body"))?;
            for chunk in self.body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).map_err(stream_error)?;
            }
            drop(stream);
        }
        let future = outgoing_handler::handle(request, None).map_err(error_code)?;
        OutgoingBody::finish(outgoing, None).map_err(error_code)?;
        future.subscribe().block();
        let response = future
            .get()
            .ok_or_else(|| CpiError::new(ErrorKind::Failed, "http: no answer"))?
            .map_err(|()| CpiError::new(ErrorKind::Failed, "http: the answer was taken twice"))?
            .map_err(error_code)?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|()| invalid("answer"))?;
        let stream = incoming.stream().map_err(|()| invalid("answer"))?;
        let mut body = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(bytes) => body.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error(e)),
            }
        }
        Ok(Response { status, headers, body })
    }
}

/// The parts of a URL `wasi:http` takes.
struct Url<'a> {
    https: bool,
    authority: &'a str,
    path_and_query: String,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> CpiResult<Url<'a>> {
        let bad =
            || CpiError::new(ErrorKind::InvalidArgument, format!("http: `{url}` is not http(s)://HOST[:PORT]/PATH"));
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(split);
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return Err(bad());
        }
        // wasi:http wants the path to start with `/`, also before a bare query.
        let path_and_query =
            if path_and_query.starts_with('/') { path_and_query.to_string() } else { format!("/{path_and_query}") };
        Ok(Url { https, authority, path_and_query })
    }
}

/// The error a `wasi:http` error code means for a CPI.
fn error_code(code: ErrorCode) -> CpiError {
    let kind = match code {
        ErrorCode::HttpRequestDenied => ErrorKind::Denied,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => ErrorKind::Timeout,
        ErrorCode::DestinationNotFound | ErrorCode::ConnectionRefused | ErrorCode::DestinationUnavailable => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Failed,
    };
    let hint = if kind == ErrorKind::Denied {
        " (not granted by the operator; the host's log and audit log say why)"
    } else {
        ""
    };
    CpiError::new(kind, format!("http: {code:?}{hint}"))
}

fn stream_error(e: StreamError) -> CpiError {
    match e {
        StreamError::LastOperationFailed(e) => match wasi::http::types::http_error_code(&e) {
            Some(code) => error_code(code),
            // The host's own message, first line only (a host may append a backtrace).
            None => {
                let text = e.to_debug_string();
                CpiError::new(ErrorKind::Failed, format!("http: {}", text.lines().next().unwrap_or_default()))
            }
        },
        StreamError::Closed => CpiError::new(ErrorKind::Failed, "http: the connection closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_what_wasi_http_takes() {
        let url = Url::parse("http://127.0.0.1:5000/a/b?x=1").expect("parses");
        assert_eq!((url.https, url.authority, url.path_and_query.as_str()), (false, "127.0.0.1:5000", "/a/b?x=1"));
        let url = Url::parse("HTTPS://api.example?x=1").expect("parses");
        assert_eq!((url.https, url.authority, url.path_and_query.as_str()), (true, "api.example", "/?x=1"));
        assert_eq!(Url::parse("https://api.example").expect("parses").path_and_query, "/");
        for bad in ["ftp://h/", "h/x", "http:///x", "http://user@h/", "http://a b/"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_name_the_host_and_port_to_request() {
        let request = |url| network_request(url, "why").map(|r| (r.host, r.port));
        assert_eq!(request("http://127.0.0.1:5000/x").expect("ok"), ("127.0.0.1".into(), 5000));
        assert_eq!(
            request("https://ec2.us-east-1.amazonaws.com").expect("ok"),
            ("ec2.us-east-1.amazonaws.com".into(), 443)
        );
        assert_eq!(request("http://api.example/").expect("ok"), ("api.example".into(), 80));
        assert_eq!(request("http://[::1]:8080/").expect("ok"), ("[::1]".into(), 8080));
        assert_eq!(request("https://[::1]/").expect("ok"), ("[::1]".into(), 443));
        for bad in ["http://h:0/", "http://h:x/", "http://:80/", "ftp://h/"] {
            assert!(request(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failed_answers_become_typed_errors() {
        let answer = |status| Response { status, headers: Vec::new(), body: b"\n  no such instance\nmore".to_vec() };
        assert_eq!(answer(404).error("describe").kind, ErrorKind::NotFound);
        assert_eq!(answer(409).error("create").kind, ErrorKind::AlreadyExists);
        assert_eq!(answer(403).error("x").kind, ErrorKind::Denied);
        assert_eq!(answer(500).error("x").message, "x: HTTP 500: no such instance");
        assert_eq!(error_code(ErrorCode::HttpRequestDenied).kind, ErrorKind::Denied);
        assert_eq!(error_code(ErrorCode::HttpResponseTimeout).kind, ErrorKind::Timeout);
    }
}
