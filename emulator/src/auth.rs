//! The Microsoft identity platform client-credentials token endpoint, `POST /{tenant}/oauth2/v2.0/token`.
//!
//! Consumes a form body (`grant_type=client_credentials`, `client_id`, `scope`, and either `client_secret`
//! or `client_assertion_type` + `client_assertion`) and produces `{"token_type":"Bearer",…}` with an opaque
//! random access token, or an identity-platform error. Client assertions are decoded and their `aud`,
//! `exp`, `iss`/`sub` claims checked loosely; their signature is NOT verified.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use tokio::time::Instant;

use crate::response::{no_store_headers, token_error};
use crate::state::{IssuedToken, Shared};

/// The only client assertion type the identity platform accepts.
pub const JWT_BEARER_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    shared.with_stats(|s| s.token_requests += 1);
    let issued = match form {
        Ok(Form(form)) => issue(&shared, &tenant, &form),
        Err(rejection) => Err(bad_request(
            "invalid_request",
            900144,
            format!(
                "The request body must be an application/x-www-form-urlencoded form: {}",
                rejection.body_text()
            ),
        )),
    };
    let response = match issued {
        Ok(response) => response,
        Err(rejection) => rejection.into_response(),
    };
    shared.count_token(response.status());
    tracing::info!(tenant, status = response.status().as_u16(), "token request");
    response
}

/// A rejected token request: status, OAuth error, AADSTS number, description.
struct Rejection(StatusCode, &'static str, u32, String);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        token_error(self.0, self.1, self.2, &self.3)
    }
}

fn bad_request(error: &'static str, aadsts: u32, description: impl Into<String>) -> Rejection {
    Rejection(StatusCode::BAD_REQUEST, error, aadsts, description.into())
}

fn invalid_client(aadsts: u32, description: impl Into<String>) -> Rejection {
    Rejection(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        aadsts,
        description.into(),
    )
}

fn issue(shared: &Shared, tenant: &str, form: &HashMap<String, String>) -> Result<Response, Rejection> {
    let config = &shared.config;
    if let Some(expected) = &config.tenant
        && expected != tenant
    {
        return Err(bad_request(
            "invalid_request",
            90002,
            format!("Tenant '{tenant}' not found."),
        ));
    }
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(bad_request(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            ));
        }
        None => {
            return Err(bad_request(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ));
        }
    }
    let client_id = field("client_id").ok_or_else(|| {
        bad_request(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    })?;
    let scope = field("scope").ok_or_else(|| {
        bad_request(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    })?;
    let audience = scope_audience(scope).ok_or_else(|| {
        bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope \
                 value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    })?;
    let Some(secret) = config.clients.get(client_id) else {
        return Err(bad_request(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        ));
    };
    match (
        field("client_secret"),
        field("client_assertion_type"),
        field("client_assertion"),
    ) {
        (Some(given), None, None) => {
            if given != secret {
                return Err(invalid_client(
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                ));
            }
        }
        (None, Some(kind), Some(assertion)) => {
            if kind != JWT_BEARER_ASSERTION_TYPE {
                return Err(bad_request(
                    "invalid_request",
                    700025,
                    format!(
                        "Client assertion type '{kind}' is not supported; use '{JWT_BEARER_ASSERTION_TYPE}'."
                    ),
                ));
            }
            check_assertion(assertion, client_id, tenant)?;
        }
        (None, None, None) => {
            return Err(invalid_client(
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
        _ => {
            return Err(bad_request(
                "invalid_request",
                90014,
                "Send either 'client_secret', or both 'client_assertion_type' and 'client_assertion'.",
            ));
        }
    }
    let lifetime = config.token_lifetime;
    let access_token = random_token();
    shared.issue_token(
        access_token.clone(),
        IssuedToken {
            client_id: client_id.to_owned(),
            audience,
            expires_at: Instant::now() + lifetime,
        },
    );
    // expires_in is whole seconds; a sub-second test lifetime still reports 1 rather than 0.
    let expires_in = lifetime.as_secs().max(1);
    let body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    });
    Ok((StatusCode::OK, no_store_headers(), axum::Json(body)).into_response())
}

/// The resource a client-credentials scope names: `https://monitor.azure.com//.default` and
/// `https://monitor.azure.com/.default` both give `https://monitor.azure.com`. `None` when the scope does
/// not end with `/.default` or names more than one scope.
pub(crate) fn scope_audience(scope: &str) -> Option<String> {
    let scope = scope.trim();
    if scope.contains(' ') {
        return None;
    }
    let resource = scope.strip_suffix("/.default")?.trim_end_matches('/');
    (!resource.is_empty()).then(|| resource.to_owned())
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("emu.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Loose checks of a client assertion JWT: three base64url segments, JSON header and claims, `exp` in the
/// future, `aud` naming the tenant (any of the identity platform's token endpoint URL forms), and
/// `iss`/`sub` (when present) equal to the client id. The signature is not verified.
fn check_assertion(assertion: &str, client_id: &str, tenant: &str) -> Result<(), Rejection> {
    let malformed = |why: &str| invalid_client(50027, format!("JWT token is invalid or malformed: {why}."));
    let segments: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = segments.as_slice() else {
        return Err(malformed("a client assertion has three dot-separated segments"));
    };
    if signature.is_empty() {
        return Err(malformed("the signature segment is empty"));
    }
    let decode = |segment: &str| -> Option<serde_json::Value> {
        let bytes = URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    decode(header)
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| malformed("the header is not base64url JSON"))?;
    let claims = decode(claims)
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| malformed("the claims are not base64url JSON"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match claims.get("exp").and_then(serde_json::Value::as_u64) {
        Some(exp) if exp > now => {}
        Some(_) => {
            return Err(invalid_client(
                700024,
                "Client assertion is not within its valid time range.",
            ));
        }
        None => return Err(malformed("the 'exp' claim is missing")),
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => vec![aud.as_str()],
        Some(serde_json::Value::Array(auds)) => auds.iter().filter_map(serde_json::Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.iter().any(|aud| aud.contains(tenant)) {
        return Err(invalid_client(
            700016,
            format!("Client assertion audience claim does not match the tenant '{tenant}'."),
        ));
    }
    for claim in ["iss", "sub"] {
        if let Some(value) = claims.get(claim).and_then(serde_json::Value::as_str)
            && value != client_id
        {
            return Err(invalid_client(
                700021,
                format!(
                    "Client assertion application identifier doesn't match 'client_id' parameter ({claim})."
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn scope_audience_accepts_default_scopes_only() {
        assert_eq!(
            scope_audience("https://monitor.azure.com//.default").as_deref(),
            Some("https://monitor.azure.com")
        );
        assert_eq!(
            scope_audience("https://monitor.azure.com/.default").as_deref(),
            Some("https://monitor.azure.com")
        );
        assert_eq!(
            scope_audience("https://graph.microsoft.com/.default").as_deref(),
            Some("https://graph.microsoft.com")
        );
        assert_eq!(
            scope_audience("https://monitor.azure.com/user_impersonation"),
            None
        );
        assert_eq!(scope_audience("/.default"), None);
        assert_eq!(scope_audience("a/.default b/.default"), None);
    }
}
