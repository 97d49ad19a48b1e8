//! The EC2 Query API over the host's wasi:http: a form POSTed to the endpoint, signed with SigV4,
//! answered in XML. EC2's error codes become the contract's kinds here, once.

use omni_cpi_sdk::http::Request;
use omni_cpi_sdk::{setting, CpiError, CpiResult, ErrorKind};

use crate::clock::amz_date_now;
use crate::sigv4::{authorization, encode, Credentials, Signable};

const API_VERSION: &str = "2016-11-15";

/// Where requests go and how they are signed: the plugin's settings and granted environment.
pub struct Ec2 {
    endpoint: String,
    host: String,
    region: String,
    credentials: Credentials,
}

/// The setting `endpoint`, or the region's public endpoint when it is empty.
pub fn endpoint() -> String {
    match setting("endpoint").filter(|e| !e.is_empty()) {
        Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
        None => format!("https://ec2.{}.amazonaws.com", setting("region").unwrap_or_default()),
    }
}

impl Ec2 {
    /// From the settings `endpoint` and `region` and the variables AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN when set), which the operator grants.
    pub fn from_settings() -> CpiResult<Ec2> {
        let region = setting("region").unwrap_or_default();
        let endpoint = endpoint();
        let host = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| {
                CpiError::new(
                    ErrorKind::InvalidArgument,
                    format!("the setting endpoint must be http(s)://HOST[:PORT], not {endpoint:?}"),
                )
            })?
            .to_string();
        let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(key_id), Some(secret)) = (variable("AWS_ACCESS_KEY_ID"), variable("AWS_SECRET_ACCESS_KEY")) else {
            return Err(CpiError::new(
                ErrorKind::Denied,
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in omni-cpi's environment \
                 and grant them (env = [\"AWS_ACCESS_KEY_ID\", \"AWS_SECRET_ACCESS_KEY\"])",
            ));
        };
        let credentials = Credentials { key_id, secret, session_token: variable("AWS_SESSION_TOKEN") };
        Ok(Ec2 { endpoint, host, region, credentials })
    }

    /// Calls `action` with `params` (names as the Query API spells them); the answer's XML.
    pub fn call(&self, action: &str, params: &[(String, String)]) -> CpiResult<String> {
        let mut form = vec![("Action".to_string(), action.to_string()), ("Version".into(), API_VERSION.into())];
        form.extend(params.iter().cloned());
        let body: String = form
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let amz_date = amz_date_now();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut signed: Vec<(&str, &str)> = vec![("content-type", content_type), ("x-amz-date", &amz_date)];
        if let Some(token) = &self.credentials.session_token {
            signed.push(("x-amz-security-token", token));
        }
        let signable = Signable {
            method: "POST",
            host: &self.host,
            path: "/",
            query: "",
            headers: &signed,
            body: body.as_bytes(),
        };
        let authorization = authorization(&self.credentials, &signable, &amz_date, &self.region, "ec2");
        let mut request = Request::post(&format!("{}/", self.endpoint), content_type)
            .header("x-amz-date", &amz_date)
            .header("authorization", &authorization)
            .body(body);
        if let Some(token) = &self.credentials.session_token {
            request = request.header("x-amz-security-token", token);
        }
        let answer = request.send()?;
        let text = answer.text();
        if answer.status == 200 {
            return Ok(text);
        }
        Err(match error_code(&text) {
            Some((code, message)) => CpiError::new(kind_of(&code), format!("EC2 {action}: {code}: {message}")),
            None => answer.error(&format!("EC2 {action}")),
        })
    }
}

/// `<Errors><Error><Code>…</Code><Message>…</Message>` of an error answer.
fn error_code(xml: &str) -> Option<(String, String)> {
    let document = roxmltree::Document::parse(xml).ok()?;
    let error = document.descendants().find(|n| n.has_tag_name("Error"))?;
    let child = |name: &str| error.children().find(|n| n.has_tag_name(name)).and_then(|n| n.text()).map(str::to_string);
    Some((child("Code")?, child("Message").unwrap_or_default()))
}

/// What an EC2 error code means to the caller.
pub fn kind_of(code: &str) -> ErrorKind {
    match code {
        c if c.ends_with(".NotFound") || c.ends_with(".Malformed") => ErrorKind::NotFound,
        "VolumeInUse" => ErrorKind::InUse,
        "IncorrectState" | "IncorrectInstanceState" => ErrorKind::InvalidState,
        "AuthFailure" | "UnauthorizedOperation" | "SignatureDoesNotMatch" | "InvalidClientTokenId" => ErrorKind::Denied,
        "RequestLimitExceeded" | "Unavailable" | "InternalError" | "ServiceUnavailable" => ErrorKind::Unavailable,
        c if c.starts_with("InvalidParameter") || c == "MissingParameter" => ErrorKind::InvalidArgument,
        "InsufficientInstanceCapacity" | "InstanceLimitExceeded" | "VolumeLimitExceeded" => ErrorKind::Unavailable,
        _ => ErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_become_kinds() {
        let xml = "<?xml version=\"1.0\"?><Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>\
                   <Message>The instance ID 'i-1' does not exist</Message></Error></Errors><RequestID>x</RequestID></Response>";
        assert_eq!(
            error_code(xml),
            Some(("InvalidInstanceID.NotFound".into(), "The instance ID 'i-1' does not exist".into()))
        );
        assert_eq!(kind_of("InvalidInstanceID.NotFound"), ErrorKind::NotFound);
        assert_eq!(kind_of("InvalidAMIID.Malformed"), ErrorKind::NotFound);
        assert_eq!(kind_of("VolumeInUse"), ErrorKind::InUse);
        assert_eq!(kind_of("IncorrectState"), ErrorKind::InvalidState);
        assert_eq!(kind_of("AuthFailure"), ErrorKind::Denied);
        assert_eq!(kind_of("InvalidParameterValue"), ErrorKind::InvalidArgument);
        assert_eq!(kind_of("Whatever"), ErrorKind::Failed);
        assert_eq!(error_code("not xml"), None);
    }
}
