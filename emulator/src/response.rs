//! The shapes of the error responses, one function per family, so every rejection looks the same.
//!
//! Upload errors follow the Azure core error body of the 2023-01-01 spec:
//! `{"error":{"code":"…","message":"…"}}` plus an `x-ms-error-code` header. Token endpoint errors follow
//! the Microsoft identity platform: `{"error":"…","error_description":"AADSTS…: …","error_codes":[…],…}`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Header carrying the service's request id on every upload response.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
/// Header the client may send and the service echoes.
pub(crate) const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");
/// Header repeating the error code of an upload error.
pub(crate) const ERROR_CODE: HeaderName = HeaderName::from_static("x-ms-error-code");

/// A new random request id in GUID form.
pub(crate) fn request_id() -> String {
    let bits: u128 = rand::random();
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Headers every upload response carries: the request id and the echoed client request id.
pub(crate) fn upload_headers(request_id: &str, request: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Some(client_id) = request.get(CLIENT_REQUEST_ID) {
        headers.insert(CLIENT_REQUEST_ID, client_id.clone());
    }
    headers
}

/// An upload error: status, Azure error body and `x-ms-error-code`.
#[derive(Debug)]
pub(crate) struct UploadError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after_secs: Option<u64>,
    pub(crate) www_authenticate: Option<String>,
}

impl UploadError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            www_authenticate: None,
        }
    }

    pub(crate) fn retry_after(mut self, secs: Option<u64>) -> Self {
        self.retry_after_secs = secs;
        self
    }

    pub(crate) fn into_response(self, mut headers: HeaderMap) -> Response {
        if let Ok(code) = HeaderValue::from_str(self.code) {
            headers.insert(ERROR_CODE, code);
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, headers, axum::Json(body)).into_response()
    }
}

/// The default error code for a status chosen by a fault.
pub(crate) fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "InvalidAuthenticationToken",
        403 => "OperationFailed",
        404 => "NotFound",
        408 => "RequestTimeout",
        413 => "ContentLengthLimitExceeded",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "OperationFailed",
    }
}

/// A token endpoint error in the identity platform's shape.
pub(crate) fn token_error(status: StatusCode, error: &str, aadsts: u32, description: &str) -> Response {
    let trace_id = request_id();
    let correlation_id = request_id();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{aadsts}: {description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}"
        ),
        "error_codes": [aadsts],
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={aadsts}"),
    });
    (status, no_store_headers(), axum::Json(body)).into_response()
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, as the token endpoint sends.
pub(crate) fn no_store_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers
}
