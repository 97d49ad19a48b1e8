//! The HTTP API (`openapi.json` at the repository root documents it): JSON in and out, the same
//! documents `omni-cpi -o json` prints, errors as `{"error": {kind, message, action, param}}`
//! with a status chosen by the kind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Identity;
use super::registry::resource_of;
use super::Server;
use crate::contract::error::{CpiError, ErrorKind};
use crate::contract::options::CallOptions;
use crate::contract::params::Params;
use crate::cpi::ActionSupport;

/// How long a call waits for a free slot (`[serve] max_in_flight`, `max_in_flight_per_cpi`)
/// before it is answered 503.
const QUEUE_WAIT: Duration = Duration::from_secs(60);
/// The longest `?timeout=` a caller may ask for: it may shorten a call, and lengthen a spec's
/// step timeouts only this far, so one caller cannot hold a slot for hours.
const MAX_CALLER_TIMEOUT: Duration = Duration::from_secs(600);

/// No body is read past this, whatever the policy says: `[serve] max_body_bytes`, which a reload
/// may change, is checked per call below it.
const BODY_READ_LIMIT: usize = 64 << 20;

pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/cpis", get(list))
        .route("/v1/cpis/{cpi}", get(info))
        .route("/v1/cpis/{cpi}/actions/{action}", post(call))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error(StatusCode::NOT_FOUND, "not_found", "", "no such endpoint; see openapi.json for the API")
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_READ_LIMIT))
        .with_state(server)
}

/// One log line per call that ran or planned (the audit log has each process; this has the call).
/// The names are the CPI's own (the call passed its check), so a caller cannot put text of its
/// choosing in the log.
fn log_call(caller: &Identity, cpi: &str, action: &str, outcome: &str, took: Duration, dry_run: bool) {
    tracing::info!(caller = %caller, cpi, action, outcome, dry_run, micros = took.as_micros() as u64, "call");
}

/// The status a call's error kind answers with.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Denied => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::InUse | ErrorKind::InvalidState => StatusCode::CONFLICT,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Failed | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error(status: StatusCode, kind: &str, action: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"kind": kind, "message": message, "action": action}}))).into_response()
}

/// A TCP request without a valid bearer token.
pub fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "denied",
        "",
        "a valid bearer token is required (Authorization: Bearer TOKEN, from the server's token file)",
    );
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

fn call_error(e: &CpiError) -> Response {
    (status_of(e.kind), Json(json!({ "error": e }))).into_response()
}

async fn health(State(server): State<Arc<Server>>) -> Response {
    let registry = server.registry();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "cpis": registry.cpis.len(),
    }))
    .into_response()
}

async fn list(State(server): State<Arc<Server>>) -> Response {
    let registry = server.registry();
    let cpis: Vec<Value> = registry
        .cpis
        .iter()
        .map(|(name, served)| {
            let cpi = &served.cpi;
            json!({
                "name": name,
                "kind": cpi.kind().as_str(),
                "form": cpi.form().as_str(),
                "source": cpi.source(),
                "actions": cpi.actions().into_iter()
                    .filter(|(_, support)| support.reason().is_none())
                    .map(|(action, _)| action)
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "cpis": cpis })).into_response()
}

fn unknown_cpi(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "", &format!("no CPI `{name}` is served (GET /v1/cpis lists them)"))
}

async fn info(State(server): State<Arc<Server>>, Path(name): Path<String>) -> Response {
    match server.registry().cpis.get(&name) {
        Some(served) => Json(served.cpi.info().document).into_response(),
        None => unknown_cpi(&name),
    }
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], server.metrics.render()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallQuery {
    #[serde(default)]
    dry_run: bool,
    /// Shortens the call's timeouts, as `--timeout` does ("30s", "500ms").
    timeout: Option<String>,
}

async fn call(
    State(server): State<Arc<Server>>,
    Extension(identity): Extension<Identity>,
    Path((name, action)): Path<(String, String)>,
    query: Result<Query<CallQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            &action,
            "the query may hold only dry_run=true|false and timeout=DURATION",
        );
    };
    // The set the call starts with is the set it finishes on, whatever a reload does meanwhile.
    let registry = server.registry();
    let max_body = registry.policy.serve.max_body_bytes;
    if body.len() > max_body {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_argument",
            &action,
            &format!("the body is {} bytes; the server's [serve] max_body_bytes is {max_body}", body.len()),
        );
    }
    let params: Params = if body.iter().all(u8::is_ascii_whitespace) {
        Params::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    &action,
                    "the body must be a JSON object of parameters",
                )
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    &action,
                    &format!("the body is not JSON: {e}"),
                )
            }
        }
    };
    let timeout = match query.timeout.as_deref().map(crate::contract::duration::parse_positive).transpose() {
        Ok(Some(timeout)) if timeout > MAX_CALLER_TIMEOUT => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &action,
                &format!("timeout: at most {MAX_CALLER_TIMEOUT:?} through the server"),
            )
        }
        Ok(timeout) => timeout,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_argument", &action, &format!("timeout: {e}")),
    };
    let Some(served) = registry.cpis.get(&name).cloned() else { return unknown_cpi(&name) };
    let options = CallOptions { timeout, ..CallOptions::default() };
    let checked = match served.cpi.check(&action, &params, &options) {
        Ok(checked) => checked,
        Err(e) => {
            // A caller chooses the action's name: only the CPI's own names become metric labels.
            let label = if served.cpi.support(&action) == ActionSupport::Absent { "unknown" } else { action.as_str() };
            server.metrics.record(&name, label, e.kind.as_str(), Duration::ZERO);
            return call_error(&e);
        }
    };

    let waited = tokio::time::timeout(QUEUE_WAIT, async {
        let global = registry.permits.clone().acquire_owned().await;
        let local = served.permits.clone().acquire_owned().await;
        (global, local)
    })
    .await;
    let Ok((Ok(_global), Ok(_local))) = waited else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(json!({"error": {"kind": "unavailable", "action": action,
                "message": format!("too many calls in flight; none finished within {QUEUE_WAIT:?}")}})),
        )
            .into_response();
    };
    let _in_flight = server.metrics.start();
    let started = Instant::now();
    let caller = identity.to_string();
    if query.dry_run {
        let planned =
            crate::audit::as_caller(caller, served.cpi.plan_checked(checked, &action, &params, &options)).await;
        let outcome = planned.as_ref().map_or_else(|e| e.kind.as_str(), |_| "planned");
        server.metrics.record(&name, &action, outcome, started.elapsed());
        log_call(&identity, &name, &action, outcome, started.elapsed(), true);
        return match planned {
            Ok(plan) => Json(plan).into_response(),
            Err(e) => call_error(&e),
        };
    }
    // Calls naming the same resource of this CPI run one after the other.
    let _resource = match resource_of(&params) {
        Some(resource) => Some(served.locks.lock(&resource).await),
        None => None,
    };
    let ran = crate::audit::as_caller(caller, served.cpi.run(checked, &action, &params, &options)).await;
    let outcome = ran.as_ref().map_or_else(|e| e.kind.as_str(), |_| "ok");
    server.metrics.record(&name, &action, outcome, started.elapsed());
    log_call(&identity, &name, &action, outcome, started.elapsed(), false);
    match ran {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => call_error(&e),
    }
}
