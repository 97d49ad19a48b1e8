//! `request` actions: an HTTP call to an IaaS API instead of a process.
//!
//! Like command templates, request templates are parsed once at load and rendered per call, and
//! a value can never change the structure it lands in. Each placeholder is escaped for its
//! context:
//! - the *base* (a URL that starts with a placeholder, `{api_url}/pool`): the value must itself be
//!   an `http`/`https` URL without query or fragment, and is inserted as such;
//! - the *authority* (`https://{host}:8443/...`): the value must be a host name or address, with an
//!   optional port;
//! - a *path* or *query*: the value is percent-encoded, so `/`, `?`, `&`, `#` and `%` in it stay
//!   data; `.` and `..` are refused as path values (they would climb the path);
//! - a *header* value: inserted as is, but CR, LF and NUL are refused (no header injection);
//! - the *body*, a JSON document: a string that is exactly one placeholder (`"{disks}"`) becomes the
//!   parameter's JSON value (a list stays a list); a placeholder inside a longer string is
//!   JSON-escaped there. The body is built as a JSON value, so it is always well formed.
//!
//! An absent optional parameter drops what it belongs to: its query pair, its header, its object
//! member or array item. In a base, authority or path it is an error.
//!
//! Sending happens only after the operator's network grants allow the URL's host and port, and
//! only to an address they allow (`NetworkGrant::allows_address`: a name grant reaches public
//! addresses, an address grant that address), so DNS cannot re-point a granted name inward.
//! Redirects are not followed (a redirect could leave the granted host) and no proxy from the
//! environment is used.

use std::io::Read;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::Value;

use crate::json::template::Bindings;
use crate::policy::NetworkGrant;
use crate::process::exec::Captured;

/// Everything but RFC 3986's unreserved characters is encoded in a path or query value.
const VALUE_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Methods a request action may use.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

// Request templates fail to parse and render with the same errors as command templates.
pub use crate::json::template::{RenderError, TemplateError};

/// Text with placeholders: `{identifier}`; every other brace is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// The name, and the byte offset of its `{` in the source text.
    Placeholder(String, usize),
}

/// One placeholder as written, for load-time checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderRef<'a> {
    pub name: &'a str,
    pub offset: usize,
}

impl Text {
    pub fn parse(text: &str) -> Text {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'{') {
                let rest = &text[i + 1..];
                let ident_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
                let starts_ok = rest.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
                if starts_ok && rest.as_bytes().get(ident_len) == Some(&b'}') {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder(rest[..ident_len].to_string(), i));
                    i += ident_len + 2;
                    continue;
                }
            }
            let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
            literal.push(ch);
            i += ch.len_utf8();
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Text { pieces }
    }

    pub fn placeholders(&self) -> impl Iterator<Item = PlaceholderRef<'_>> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Placeholder(name, offset) => Some(PlaceholderRef { name, offset: *offset }),
            Piece::Literal(_) => None,
        })
    }

    /// The text with each value as it is (for a process's standard input, which no program
    /// parses as a template); `Ok(None)` when a value is absent.
    pub fn render_plain(&self, bindings: &dyn Bindings) -> Result<Option<String>, RenderError> {
        self.render(bindings, &|_, value| Ok(value.to_string()))
    }

    /// The text is exactly one placeholder.
    fn sole_placeholder(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Placeholder(name, _)] => Some(name),
            _ => None,
        }
    }

    fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Renders with `escape` applied to every value; `Ok(None)` when a value is absent.
    fn render(
        &self,
        bindings: &dyn Bindings,
        escape: &dyn Fn(&str, &str) -> Result<String, RenderError>,
    ) -> Result<Option<String>, RenderError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Placeholder(name, _) => {
                    let Some(binding) = bindings.get(name) else { return Ok(None) };
                    let value = scalar(name, binding.value)?;
                    out.push_str(&escape(name, &value)?);
                }
            }
        }
        Ok(Some(out))
    }
}

/// A scalar's text; lists and maps have no single text to put in a URL or header.
fn scalar(name: &str, value: &Value) -> Result<String, RenderError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Array(_) | Value::Object(_) => {
            return Err(RenderError {
                param: name.to_string(),
                message: "a list or map cannot go into a URL or header; pass a single value".into(),
            });
        }
    };
    if text.contains('\0') {
        return Err(RenderError { param: name.to_string(), message: "the value contains a NUL byte".into() });
    }
    Ok(text)
}

/// A URL template, split at load into the parts that escape differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    source: String,
    origin: Origin,
    path: Text,
    /// `key=value` items, each dropped when one of its values is absent.
    query: Vec<Text>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// `{api_url}`: the value is a base URL.
    Base(String),
    /// `http(s)://` + authority text (host placeholders allowed).
    Written { scheme: String, authority: Text },
}

impl UrlTemplate {
    pub fn parse(text: &str) -> Result<UrlTemplate, TemplateError> {
        let error = |message: String, help: &str, offset: usize, len: usize| TemplateError {
            message,
            help: Some(help.to_string()),
            offset,
            len,
        };
        if let Some(at) = text.find('#') {
            return Err(error(
                "a request URL has no fragment (`#`)".into(),
                "remove the fragment: servers never see it",
                at,
                1,
            ));
        }
        let (before_query, query_text, query_offset) = match text.find('?') {
            Some(at) => (&text[..at], Some(&text[at + 1..]), at + 1),
            None => (text, None, text.len()),
        };
        let (origin, path_start) = if let Some(rest) =
            ["https://", "http://"].iter().find_map(|s| before_query.strip_prefix(s).map(|r| (s, r)))
        {
            let (scheme, rest) = rest;
            let authority_len = rest.find('/').unwrap_or(rest.len());
            let authority_text = &rest[..authority_len];
            if authority_text.is_empty() {
                return Err(error(
                    "the URL has no host".into(),
                    "write it as https://HOST/PATH",
                    0,
                    before_query.len().max(1),
                ));
            }
            let scheme_len = before_query.len() - rest.len();
            let mut authority = Text::parse(authority_text);
            shift(&mut authority, scheme_len);
            let scheme = scheme.trim_end_matches("://").to_string();
            (Origin::Written { scheme, authority }, scheme_len + authority_len)
        } else {
            let parsed = Text::parse(before_query);
            match parsed.pieces.first() {
                Some(Piece::Placeholder(name, 0)) => (Origin::Base(name.clone()), name.len() + 2),
                _ => {
                    return Err(error(
                        "a request URL must start with http://, https:// or a placeholder holding the base URL".into(),
                        "write \"https://api.example.com/v1/...\" or \"{api_url}/...\" with api_url a parameter",
                        0,
                        text.len().clamp(1, 8),
                    ));
                }
            }
        };
        let path_text = &before_query[path_start..];
        let mut path = Text::parse(path_text);
        shift(&mut path, path_start);
        if !path_text.is_empty() && !path_text.starts_with('/') {
            return Err(error(
                "the path after the URL's origin must start with `/`".into(),
                "write \"{api_url}/items\", not \"{api_url}items\"",
                path_start,
                1,
            ));
        }
        let mut query = Vec::new();
        if let Some(query_text) = query_text {
            let mut offset = query_offset;
            for item in query_text.split('&') {
                if !item.is_empty() {
                    let mut pair = Text::parse(item);
                    shift(&mut pair, offset);
                    query.push(pair);
                }
                offset += item.len() + 1;
            }
        }
        Ok(UrlTemplate { source: text.to_string(), origin, path, query })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn placeholders(&self) -> Vec<PlaceholderRef<'_>> {
        let mut all = Vec::new();
        match &self.origin {
            Origin::Base(name) => all.push(PlaceholderRef { name, offset: 0 }),
            Origin::Written { authority, .. } => all.extend(authority.placeholders()),
        }
        all.extend(self.path.placeholders());
        for pair in &self.query {
            all.extend(pair.placeholders());
        }
        all
    }

    pub fn render(&self, bindings: &dyn Bindings) -> Result<String, RenderError> {
        let absent = |name: &str| RenderError {
            param: name.to_string(),
            message: "is required here: it is part of the request URL".into(),
        };
        let mut url = match &self.origin {
            Origin::Base(name) => {
                let binding = bindings.get(name).ok_or_else(|| absent(name))?;
                base_url(name, &scalar(name, binding.value)?)?
            }
            Origin::Written { scheme, authority } => {
                let rendered = authority.render(bindings, &host_value)?;
                let rendered = rendered.ok_or_else(|| absent(first_absent(authority, bindings)))?;
                format!("{scheme}://{rendered}")
            }
        };
        let path =
            self.path.render(bindings, &path_value)?.ok_or_else(|| absent(first_absent(&self.path, bindings)))?;
        url.push_str(&path);
        let mut first = true;
        for pair in &self.query {
            if let Some(item) = pair.render(bindings, &|_, v| Ok(encode(v)))? {
                url.push(if first { '?' } else { '&' });
                url.push_str(&item);
                first = false;
            }
        }
        Ok(url)
    }
}

fn shift(text: &mut Text, by: usize) {
    for piece in &mut text.pieces {
        if let Piece::Placeholder(_, offset) = piece {
            *offset += by;
        }
    }
}

fn first_absent<'t>(text: &'t Text, bindings: &dyn Bindings) -> &'t str {
    text.placeholders().find(|p| bindings.get(p.name).is_none()).map_or("", |p| p.name)
}

pub(crate) fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, VALUE_ENCODE).to_string()
}

fn path_value(name: &str, value: &str) -> Result<String, RenderError> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(RenderError {
            param: name.to_string(),
            message: format!("{value:?} cannot be a URL path value (it would change which resource is named)"),
        });
    }
    Ok(encode(value))
}

/// A host name, IPv4 address or bracketed IPv6 address, with an optional port.
fn host_value(name: &str, value: &str) -> Result<String, RenderError> {
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) if !value.ends_with(']') && !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (value, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
            })
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok {
        Ok(value.to_string())
    } else {
        Err(RenderError {
            param: name.to_string(),
            message: format!("{value:?} is not a host name or address with an optional :port"),
        })
    }
}

/// A base URL value: http(s), a host, an optional path; no credentials, query or fragment.
fn base_url(name: &str, value: &str) -> Result<String, RenderError> {
    let bad = |why: &str| RenderError {
        param: name.to_string(),
        message: format!("{value:?} is not a usable base URL: {why} (expected like https://api.example.com/v1)"),
    };
    let url = url::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https are allowed"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials belong in a header parameter, not in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || value.contains(['?', '#']) {
        return Err(bad("it has a query or fragment"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// A JSON body with placeholders in its strings.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    /// A JSON value without placeholders.
    Fixed(Value),
    /// `"{name}"`: the parameter's value, whatever its JSON type.
    Param(String),
    /// A string with placeholders among other text: values are JSON-escaped in it.
    Text(Text),
    Array(Vec<BodyTemplate>),
    Object(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// Builds the template from the body as written in the spec. Placeholders in object keys are
    /// refused: a caller must not choose the structure.
    pub fn from_value(value: &Value) -> Result<BodyTemplate, TemplateError> {
        Ok(match value {
            Value::String(s) => {
                let text = Text::parse(s);
                if let Some(name) = text.sole_placeholder() {
                    BodyTemplate::Param(name.to_string())
                } else if text.literal().is_some() {
                    BodyTemplate::Fixed(value.clone())
                } else {
                    BodyTemplate::Text(text)
                }
            }
            Value::Array(items) => {
                BodyTemplate::Array(items.iter().map(BodyTemplate::from_value).collect::<Result<_, _>>()?)
            }
            Value::Object(members) => {
                let mut out = Vec::with_capacity(members.len());
                for (key, member) in members {
                    if let Some(p) = Text::parse(key).placeholders().next() {
                        return Err(TemplateError {
                            message: format!("placeholder `{{{}}}` in the body key {key:?}", p.name),
                            help: Some("object keys of a request body are fixed; put the value in a member".into()),
                            offset: 0,
                            len: 0,
                        });
                    }
                    out.push((key.clone(), BodyTemplate::from_value(member)?));
                }
                BodyTemplate::Object(out)
            }
            other => BodyTemplate::Fixed(other.clone()),
        })
    }

    pub fn placeholders(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.collect_placeholders(&mut names);
        names
    }

    fn collect_placeholders<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            BodyTemplate::Fixed(_) => {}
            BodyTemplate::Param(name) => names.push(name),
            BodyTemplate::Text(text) => names.extend(text.placeholders().map(|p| p.name)),
            BodyTemplate::Array(items) => items.iter().for_each(|i| i.collect_placeholders(names)),
            BodyTemplate::Object(members) => members.iter().for_each(|(_, m)| m.collect_placeholders(names)),
        }
    }

    /// The body's JSON value; `None` when it depends on an absent value.
    pub fn render(&self, bindings: &dyn Bindings) -> Result<Option<Value>, RenderError> {
        Ok(match self {
            BodyTemplate::Fixed(value) => Some(value.clone()),
            BodyTemplate::Param(name) => bindings.get(name).map(|b| b.value.clone()),
            BodyTemplate::Text(text) => text.render(bindings, &|_, v| Ok(v.to_string()))?.map(Value::String),
            BodyTemplate::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.extend(item.render(bindings)?);
                }
                Some(Value::Array(out))
            }
            BodyTemplate::Object(members) => {
                let mut out = serde_json::Map::with_capacity(members.len());
                for (key, member) in members {
                    if let Some(value) = member.render(bindings)? {
                        out.insert(key.clone(), value);
                    }
                }
                Some(Value::Object(out))
            }
        })
    }
}

/// An HTTP request template, as a spec's `request` declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    pub method: String,
    pub url: UrlTemplate,
    pub headers: Vec<(String, Text)>,
    pub body: Option<BodyTemplate>,
}

impl RequestTemplate {
    pub fn placeholders(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.url.placeholders().into_iter().map(|p| p.name).collect();
        for (_, value) in &self.headers {
            names.extend(value.placeholders().map(|p| p.name));
        }
        if let Some(body) = &self.body {
            names.extend(body.placeholders());
        }
        names
    }

    pub fn render(&self, bindings: &dyn Bindings) -> Result<HttpRequest, RenderError> {
        let url = self.url.render(bindings)?;
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (name, template) in &self.headers {
            if let Some(value) = template.render(bindings, &header_value)? {
                headers.push((name.clone(), value));
            }
        }
        let body = match &self.body {
            None => None,
            Some(template) => {
                let value = template.render(bindings)?.unwrap_or(Value::Null);
                if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
                    headers.push(("Content-Type".into(), "application/json".into()));
                }
                Some(value.to_string())
            }
        };
        Ok(HttpRequest { method: self.method.clone(), url, headers, body })
    }
}

fn header_value(name: &str, value: &str) -> Result<String, RenderError> {
    if value.contains(['\r', '\n']) {
        return Err(RenderError {
            param: name.to_string(),
            message: "a header value cannot contain a line break (it would add headers)".into(),
        });
    }
    Ok(value.to_string())
}

/// Whether `name` is a valid header name (an RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A rendered request: what `--dry-run` shows and what is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl std::fmt::Display for HttpRequest {
    /// The request as it goes on the wire (without the headers the client adds).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.url)?;
        for (name, value) in &self.headers {
            write!(f, "\n{name}: {value}")?;
        }
        if let Some(body) = &self.body {
            write!(f, "\n\n{body}")?;
        }
        Ok(())
    }
}

/// Checks `url` against the grants of the CPI named `cpi`: the host must be named by one, with
/// its port if it has one.
pub fn check_grants(url: &str, grants: &[NetworkGrant], cpi: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    let port = parsed.port_or_known_default().unwrap_or(0);
    if grants.iter().any(|g| g.allows(host, port)) {
        Ok(())
    } else {
        Err(format!(
            "not granted by the operator: no network grant names {host}:{port}; the operator grants it in \
             the policy ([[plugins.{cpi}.network]] host = \"{host}\") or with --allow-host {host}"
        ))
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Captured,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the request failed: {0}")]
    Failed(String),
    /// The host's name resolved only to addresses no grant allows.
    #[error("{0}")]
    AddressRefused(String),
}

/// A request's agent: it resolves names only to the addresses `grants` allow. One per request
/// (request actions are few; the grants differ per CPI), so no connection outlives its grants.
fn agent(grants: Vec<NetworkGrant>) -> ureq::Agent {
    let config = ureq::config::Config::builder()
        // A proxy from the environment would send the request somewhere nobody granted.
        .proxy(None)
        // A redirect could leave the granted host; the caller sees the 3xx instead.
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("omni-cpi/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        GrantedAddresses { grants },
    )
}

/// Resolves like the system does, then keeps only addresses a grant of the host allows.
/// (ureq's resolver interface is outside its semver promise; Cargo.lock pins the version.)
#[derive(Debug)]
struct GrantedAddresses {
    grants: Vec<NetworkGrant>,
}

#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {addresses}, which no grant allows: a grant of a name reaches public addresses only; to reach this one, the operator grants the address itself")]
struct AddressRefused {
    host: String,
    addresses: String,
}

impl ureq::unversioned::resolver::Resolver for GrantedAddresses {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        use ureq::unversioned::resolver::DefaultResolver;
        let found = DefaultResolver::default().resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let mut kept = self.empty();
        for address in found.iter() {
            let named = |g: &&NetworkGrant| g.allows(host, address.port());
            if self.grants.iter().filter(named).any(|g| g.allows_address(address.ip())) {
                kept.push(*address);
            }
        }
        if kept.is_empty() {
            let addresses = found.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
            return Err(ureq::Error::Other(Box::new(AddressRefused { host: host.to_string(), addresses })));
        }
        Ok(kept)
    }
}

/// Sends a request the grants allowed (by name: `check_grants`; by address: here), keeping at
/// most `limit` bytes of the response body.
pub async fn send(
    request: &HttpRequest,
    grants: &[NetworkGrant],
    timeout: Duration,
    limit: usize,
) -> Result<HttpResponse, SendError> {
    let request = request.clone();
    let grants = grants.to_vec();
    tokio::task::spawn_blocking(move || send_blocking(&request, grants, timeout, limit))
        .await
        .map_err(|e| SendError::Failed(format!("the request task failed: {e}")))?
}

fn send_blocking(
    request: &HttpRequest,
    grants: Vec<NetworkGrant>,
    timeout: Duration,
    limit: usize,
) -> Result<HttpResponse, SendError> {
    let started = Instant::now();
    let mut builder = ureq::http::Request::builder().method(request.method.as_str()).uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let failed = |e: ureq::http::Error| SendError::Failed(e.to_string());
    let agent = agent(grants);
    let result = match &request.body {
        Some(body) => {
            let built = builder.body(body.as_bytes().to_vec()).map_err(failed)?;
            agent.run(agent.configure_request(built).timeout_global(Some(timeout)).build())
        }
        None => {
            let built = builder.body(()).map_err(failed)?;
            agent.run(agent.configure_request(built).timeout_global(Some(timeout)).build())
        }
    };
    let mut response = result.map_err(|e| match e {
        ureq::Error::Timeout(_) => SendError::Timeout(timeout),
        ureq::Error::Other(refused) if refused.is::<AddressRefused>() => SendError::AddressRefused(refused.to_string()),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Io(_) => {
            SendError::Unreachable { url: request.url.clone(), reason: e.to_string() }
        }
        other => SendError::Failed(other.to_string()),
    })?;
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut chunk = [0u8; 16 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(SendError::Timeout(timeout)),
            Err(e) => return Err(SendError::Failed(format!("reading the response: {e}"))),
        };
        total += n as u64;
        let room = limit.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..n.min(room)]);
    }
    Ok(HttpResponse { status, body: Captured { bytes, total_bytes: total }, duration: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::template::Binding;
    use serde_json::json;

    struct Values(Value);

    impl Bindings for Values {
        fn get(&self, name: &str) -> Option<Binding<'_>> {
            self.0.get(name).map(|value| Binding { value, allow_dash: false })
        }
    }

    fn url(template: &str, values: Value) -> Result<String, RenderError> {
        UrlTemplate::parse(template).expect("parses").render(&Values(values))
    }

    #[test]
    fn path_and_query_values_are_percent_encoded() {
        let got = url(
            "{api}/pool/id/{id}?type={kind}&name={name}",
            json!({"api": "http://127.0.0.1:8080/v2", "id": "a/../b?x=1#f", "kind": "a&b=c", "name": "ä %"}),
        );
        assert_eq!(
            got.as_deref(),
            Ok("http://127.0.0.1:8080/v2/pool/id/a%2F..%2Fb%3Fx%3D1%23f?type=a%26b%3Dc&name=%C3%A4%20%25")
        );
    }

    #[test]
    fn dot_segments_and_empty_path_values_are_refused() {
        for bad in ["..", ".", ""] {
            let err = url("https://h/items/{id}", json!({"id": bad})).expect_err(bad);
            assert_eq!(err.param, "id");
        }
    }

    #[test]
    fn a_base_url_must_be_plain_http_or_https() {
        assert_eq!(
            url("{api}/x", json!({"api": "https://api.example.com/"})).as_deref(),
            Ok("https://api.example.com/x")
        );
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@h/",
            "https://h/?q=1",
            "https://h/#f",
            "h/x",
            "",
        ] {
            assert!(url("{api}/x", json!({"api": bad})).is_err(), "{bad} accepted as a base");
        }
    }

    #[test]
    fn authority_placeholders_take_only_hosts_and_ports() {
        let t = "https://{host}/v1";
        assert_eq!(url(t, json!({"host": "api.example.com:8443"})).as_deref(), Ok("https://api.example.com:8443/v1"));
        assert_eq!(url(t, json!({"host": "[::1]:80"})).as_deref(), Ok("https://[::1]:80/v1"));
        for bad in ["evil.com/x", "a@b", "h:99999", "h:x", "-h", "h#", ""] {
            assert!(url(t, json!({"host": bad})).is_err(), "{bad} accepted as a host");
        }
    }

    #[test]
    fn absent_optionals_drop_their_query_pair_but_are_required_in_the_path() {
        let t = "https://h/items/{id}?limit={limit}&all=1";
        assert_eq!(url(t, json!({"id": "x"})).as_deref(), Ok("https://h/items/x?all=1"));
        assert_eq!(url(t, json!({"limit": 5})).map_err(|e| e.param), Err("id".to_string()));
    }

    #[test]
    fn url_templates_without_an_origin_or_with_a_fragment_are_load_errors() {
        assert!(UrlTemplate::parse("/items").is_err());
        assert!(UrlTemplate::parse("ftp://h/items").is_err());
        assert!(UrlTemplate::parse("https://h/items#top").is_err());
        assert!(UrlTemplate::parse("{api}items").is_err());
    }

    #[test]
    fn body_values_are_json_escaped_and_whole_placeholders_keep_their_type() {
        let body = BodyTemplate::from_value(&json!({
            "name": "{name}",
            "label": "vm-{name}",
            "disks": "{disks}",
            "size": "{size}",
            "optional": "{absent}",
            "list": ["{absent}", "fixed"]
        }))
        .expect("template");
        let hostile = "x\",\"admin\":true,\"y\":\"\\\n";
        let rendered =
            body.render(&Values(json!({"name": hostile, "disks": ["sda", "sdb"], "size": 10}))).expect("renders");
        assert_eq!(
            rendered,
            Some(
                json!({"name": hostile, "label": format!("vm-{hostile}"), "disks": ["sda", "sdb"], "size": 10, "list": ["fixed"]})
            )
        );
        let text = rendered.map(|v| v.to_string()).unwrap_or_default();
        let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(reparsed.get("admin"), None, "the value did not add a member");
    }

    #[test]
    fn body_keys_cannot_be_placeholders() {
        assert!(BodyTemplate::from_value(&json!({"{key}": 1})).is_err());
    }

    #[test]
    fn header_values_cannot_smuggle_headers() {
        let template = RequestTemplate {
            method: "GET".into(),
            url: UrlTemplate::parse("https://h/x").expect("url"),
            headers: vec![("Authorization".into(), Text::parse("Bearer {token}"))],
            body: None,
        };
        let err = template.render(&Values(json!({"token": "t\r\nX-Admin: 1"}))).expect_err("refused");
        assert_eq!(err.param, "token");
        let ok = template.render(&Values(json!({"token": "abc"}))).expect("renders");
        assert_eq!(ok.headers, vec![("Authorization".to_string(), "Bearer abc".to_string())]);
        let none = template.render(&Values(json!({}))).expect("renders");
        assert!(none.headers.is_empty(), "an absent value drops its header");
    }

    #[test]
    fn grants_name_hosts_and_optionally_ports() {
        let grants = [
            NetworkGrant::parse("127.0.0.1:8080").expect("grant"),
            NetworkGrant::parse("API.example.com").expect("grant"),
        ];
        assert!(check_grants("http://127.0.0.1:8080/x", &grants, "t").is_ok());
        assert!(check_grants("http://127.0.0.1:8081/x", &grants, "t").is_err());
        assert!(check_grants("https://api.example.com/x", &grants, "t").is_ok());
        assert!(check_grants("https://api.example.com:444/x", &grants, "t").is_ok());
        assert!(check_grants("https://api.example.com.evil.net/x", &grants, "t").is_err());
        assert!(check_grants("https://evil.net/api.example.com", &grants, "t").is_err());
        assert_eq!(NetworkGrant::parse("[::1]:9").map(|g| (g.host, g.port)), Ok(("[::1]".to_string(), Some(9))));
        assert!(NetworkGrant::parse("h/x").is_err());
    }
}
