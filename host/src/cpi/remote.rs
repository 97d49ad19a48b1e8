//! A CPI served by `omni-cpi serve`, called over its API: the third form behind [`super::Cpi`],
//! so the conformance kit (and the CLI with `--remote`) certify a CPI as it is served. What the
//! CPI is (kind, actions, conformance parameters) is read once from the server; checking and
//! running happen there.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{ActionSupport, Form};
use crate::contract::catalogue::CpiKind;
use crate::contract::error::{CpiError, ErrorKind};
use crate::contract::options::CallOptions;
use crate::contract::params::Params;
use crate::contract::plan::Outcome;
use crate::serve::client::{Remote, RemoteError};

pub struct RemoteCpi {
    remote: Remote,
    /// The CPI's name on the server (its policy entry).
    pub name: String,
    pub kind: CpiKind,
    pub form: Form,
    pub source: PathBuf,
    pub declared_name: String,
    pub version: Option<String>,
    pub actions: Vec<(String, ActionSupport)>,
    pub conformance_params: Params,
    pub default_settings: Params,
    /// What the server's `GET /v1/cpis/{cpi}` answered: the CPI's `info` document.
    pub document: Value,
}

impl RemoteCpi {
    /// Asks the server what `name` is.
    pub async fn connect(remote: Remote, name: &str) -> Result<RemoteCpi, String> {
        let fetch = |path: String| {
            let remote = remote.clone();
            async move {
                let answer = remote.request("GET", &path, None).await.map_err(|e| e.to_string())?;
                if answer.status != 200 {
                    let message = answer.body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
                    return Err(format!("{} answered {path} with {}: {message}", remote.address, answer.status));
                }
                Ok(answer.body)
            }
        };
        let listing = fetch("/v1/cpis".to_string()).await?;
        let entry =
            listing["cpis"].as_array().and_then(|cpis| cpis.iter().find(|c| c["name"] == name)).cloned().ok_or_else(
                || {
                    let served: Vec<&str> = listing["cpis"]
                        .as_array()
                        .map(|cpis| cpis.iter().filter_map(|c| c["name"].as_str()).collect())
                        .unwrap_or_default();
                    format!("{} serves no CPI `{name}` (it serves: {})", remote.address, served.join(", "))
                },
            )?;
        let document = fetch(format!("/v1/cpis/{}", path_segment(name))).await?;
        let kind = match entry["kind"].as_str() {
            Some("director") => CpiKind::Director,
            _ => CpiKind::Container,
        };
        let form = if entry["form"] == "component" { Form::Component } else { Form::Spec };
        let actions = document["actions"]
            .as_array()
            .map(|actions| {
                actions
                    .iter()
                    .filter_map(|a| {
                        let name = a["name"].as_str()?.to_string();
                        let support = if a["supported"].as_bool().unwrap_or(false) {
                            ActionSupport::Implemented
                        } else {
                            ActionSupport::Unsupported(a["reason"].as_str().unwrap_or("unsupported").to_string())
                        };
                        Some((name, support))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let object = |v: &Value| v.as_object().cloned().unwrap_or_default();
        Ok(RemoteCpi {
            name: name.to_string(),
            kind,
            form,
            source: PathBuf::from(entry["source"].as_str().unwrap_or_default()),
            declared_name: document
                .pointer("/plugin/name")
                .or_else(|| document.get("name"))
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string(),
            version: document
                .pointer("/plugin/version")
                .or_else(|| document.get("version"))
                .and_then(Value::as_str)
                .map(str::to_string),
            actions,
            conformance_params: object(&document["conformance_params"]),
            default_settings: object(&document["default_settings"]),
            document,
            remote,
        })
    }

    /// `POST /v1/cpis/{cpi}/actions/{action}`: the outcome, or the server's typed error.
    pub async fn call(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Outcome, CpiError> {
        let body = self.post(action, params, options, false).await?;
        serde_json::from_value(body).map_err(|e| {
            CpiError::new(
                ErrorKind::Internal,
                action,
                format!("{}: an outcome this client cannot read: {e}", self.remote.address),
            )
        })
    }

    /// The plan of a call, as the server's JSON (a plan is made and kept by the host that runs it).
    pub async fn plan_document(&self, action: &str, params: &Params, options: &CallOptions) -> Result<Value, CpiError> {
        self.post(action, params, options, true).await
    }

    async fn post(
        &self,
        action: &str,
        params: &Params,
        options: &CallOptions,
        dry_run: bool,
    ) -> Result<Value, CpiError> {
        let mut path =
            format!("/v1/cpis/{}/actions/{}?dry_run={dry_run}", path_segment(&self.name), path_segment(action));
        if let Some(timeout) = options.timeout {
            path.push_str(&format!("&timeout={}ms", timeout.as_millis().max(1)));
        }
        let answer = self.remote.request("POST", &path, Some(&Value::Object(params.clone()))).await.map_err(|e| {
            let kind = match e {
                RemoteError::Connect { .. } => ErrorKind::Unavailable,
                RemoteError::Protocol { .. } => ErrorKind::Internal,
            };
            CpiError::new(kind, action, e.to_string())
        })?;
        if answer.status == 200 {
            return Ok(answer.body);
        }
        match serde_json::from_value::<CpiError>(answer.body["error"].clone()) {
            Ok(error) => Err(error),
            Err(_) => Err(CpiError::new(
                ErrorKind::Internal,
                action,
                format!(
                    "{} answered {} without a typed error: {}",
                    self.remote.address,
                    answer.status,
                    json!(answer.body)
                ),
            )),
        }
    }
}

/// A name as one path segment: the names are catalogue and policy names, but a `/` or `?` must
/// never change which endpoint is called.
fn path_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}
