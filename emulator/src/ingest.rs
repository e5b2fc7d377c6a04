//! The Logs Ingestion "Upload" operation, `POST /dataCollectionRules/{ruleId}/streams/{stream}`.
//!
//! Consumes a request as the 2023-01-01 spec describes it and produces 204 (accepted) or an Azure error.
//! The checks run in this order, the first failing one answering: fault plan (latency, then the drawn
//! fault), api-version (400), bearer token (401), known rule/stream (404), rate limit (429), Content-Type
//! (415), Content-Encoding (415), size as sent (413), gzip (400), size uncompressed (413), JSON array of
//! objects (400).

use std::collections::HashMap;
use std::future::poll_fn;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, HttpBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::read::MultiGzDecoder;
use serde_json::value::RawValue;

use crate::faults::Fault;
use crate::rate_limit::retry_after_secs;
use crate::response::{UploadError, code_for_status, request_id, upload_headers};
use crate::server::ConnectionControl;
use crate::state::{Shared, TokenProblem};

/// How long a `hang` fault holds a request before the connection is finally closed, so that hung
/// connections do not pile up in a long-running emulator.
pub const HANG_LIMIT: Duration = Duration::from_secs(300);

/// How many body bytes beyond the limit are still read (and discarded) before answering 413, so that
/// the client reads the answer instead of a reset while it is still writing.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    Path((dcr, stream)): Path<(String, String)>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    connection: Option<Extension<ConnectionControl>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    shared.with_stats(|s| s.upload_requests += 1);
    let request_id = request_id();
    let out_headers = upload_headers(&request_id, &headers);

    let (latency, fault) = shared.draw_fault();
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(Fault::Hang) => {
            shared.with_stats(|s| s.hung += 1);
            tracing::info!(dcr, stream, request_id, "fault: hanging the request");
            tokio::time::sleep(HANG_LIMIT).await;
            return abandon(connection).await;
        }
        Some(Fault::Drop) => {
            shared.with_stats(|s| s.dropped += 1);
            tracing::info!(dcr, stream, request_id, "fault: dropping the connection");
            return abandon(connection).await;
        }
        _ => {}
    }

    let body = read_body(body, shared.config.limits.max_body_bytes_sent).await;
    shared.with_stats(|s| s.bytes_sent_total += body.total as u64);
    let result = match fault {
        Some(fault) => Err(fault_response(&shared, &fault, &headers)),
        None => {
            let query = query.map(|Query(q)| q).unwrap_or_default();
            accept(&shared, &dcr, &stream, &query, &headers, body)
        }
    };
    let response = match result {
        Ok(()) => (StatusCode::NO_CONTENT, out_headers).into_response(),
        Err(error) => {
            tracing::info!(
                dcr,
                stream,
                request_id,
                status = error.status.as_u16(),
                code = error.code,
                "upload rejected"
            );
            error.into_response(out_headers)
        }
    };
    shared.count_upload(response.status());
    response
}

/// Close the connection without a response (or, outside our server, never answer).
async fn abandon(connection: Option<Extension<ConnectionControl>>) -> Response {
    if let Some(Extension(control)) = connection {
        control.abort();
    }
    std::future::pending::<Response>().await
}

/// The body as read: the bytes up to the limit, and how many bytes arrived in total.
struct ReadBody {
    bytes: Vec<u8>,
    total: usize,
    failed: bool,
}

async fn read_body(mut body: Body, limit: usize) -> ReadBody {
    let mut read = ReadBody {
        bytes: Vec::new(),
        total: 0,
        failed: false,
    };
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(frame) = frame else {
            read.failed = true;
            break;
        };
        if let Ok(data) = frame.into_data() {
            read.total += data.len();
            if read.total <= limit {
                read.bytes.extend_from_slice(&data);
            } else if read.total > limit.saturating_add(DRAIN_LIMIT) {
                break;
            }
        }
    }
    read
}

fn fault_response(shared: &Shared, fault: &Fault, headers: &HeaderMap) -> UploadError {
    match fault {
        Fault::Status {
            status,
            retry_after_secs,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            UploadError::new(status, code_for_status(status), "Injected fault.")
                .retry_after(*retry_after_secs)
        }
        Fault::Throttle { retry_after_secs } => UploadError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests (injected fault).",
        )
        .retry_after(Some(*retry_after_secs)),
        Fault::TooLarge => UploadError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ContentLengthLimitExceeded",
            format!(
                "Maximum allowed content length: {} bytes (1 MB) (injected fault).",
                shared.config.limits.max_body_bytes_sent
            ),
        ),
        Fault::RevokeToken => {
            if let Some(token) = bearer(headers) {
                shared.revoke_token(token);
            }
            unauthorized(
                shared,
                "InvalidAuthenticationToken",
                "The access token has been revoked.",
            )
        }
        // Handled before the body is read.
        Fault::Hang | Fault::Drop => {
            UploadError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "")
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized(shared: &Shared, code: &'static str, message: &str) -> UploadError {
    let mut error = UploadError::new(StatusCode::UNAUTHORIZED, code, message);
    error.www_authenticate = Some(format!(
        "Bearer realm=\"\", resource=\"{}\", error=\"invalid_token\", error_description=\"{message}\"",
        shared.config.audience
    ));
    error
}

fn bad_request(code: &'static str, message: impl Into<String>) -> UploadError {
    UploadError::new(StatusCode::BAD_REQUEST, code, message)
}

fn too_large(message: String) -> UploadError {
    UploadError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ContentLengthLimitExceeded",
        message,
    )
}

fn accept(
    shared: &Shared,
    dcr: &str,
    stream: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: ReadBody,
) -> Result<(), UploadError> {
    let config = &shared.config;
    let limits = &config.limits;

    match query.get("api-version") {
        None => {
            return Err(bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        Some(version) if !limits.api_versions.contains(version) => {
            return Err(bad_request(
                "UnsupportedApiVersion",
                format!(
                    "The api-version '{version}' is not supported. Supported versions: {}.",
                    limits.api_versions.join(", ")
                ),
            ));
        }
        Some(_) => {}
    }

    let Some(token) = bearer(headers) else {
        let message = if headers.contains_key(header::AUTHORIZATION) {
            "The 'Authorization' header is not a Bearer token."
        } else {
            "Authentication failed. The 'Authorization' header is missing."
        };
        return Err(unauthorized(shared, "AuthenticationFailed", message));
    };
    match shared.check_token(token) {
        Ok(issued) if issued.audience != config.audience => {
            return Err(unauthorized(
                shared,
                "InvalidAuthenticationTokenAudience",
                &format!(
                    "The access token was issued for audience '{}' (client '{}'); expected '{}'.",
                    issued.audience, issued.client_id, config.audience
                ),
            ));
        }
        Ok(_) => {}
        Err(TokenProblem::Expired) => {
            return Err(unauthorized(
                shared,
                "ExpiredAuthenticationToken",
                "The access token has expired.",
            ));
        }
        Err(TokenProblem::Unknown) => {
            return Err(unauthorized(
                shared,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            ));
        }
    }

    if !config.known_rules.is_empty() {
        let Some(streams) = config.known_rules.get(dcr) else {
            return Err(UploadError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Data collection rule with immutable Id '{dcr}' not found."),
            ));
        };
        if !streams.is_empty() && !streams.contains(stream) {
            return Err(UploadError::new(
                StatusCode::NOT_FOUND,
                "InvalidStream",
                format!("Stream '{stream}' is not declared in data collection rule '{dcr}'."),
            ));
        }
    }

    if let Err(wait) = shared.acquire_rate() {
        return Err(UploadError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request rate limit was exceeded; retry after the Retry-After interval.",
        )
        .retry_after(Some(retry_after_secs(wait))));
    }

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(UploadError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("Content-Type '{content_type}' is not supported; use 'application/json'."),
        ));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let gzip = match encoding {
        None | Some("") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            return Err(UploadError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedContentEncoding",
                format!("Content-Encoding '{other}' is not supported; use 'gzip' or none."),
            ));
        }
    };

    if body.failed {
        return Err(bad_request(
            "InvalidRequestBody",
            "The request body could not be read.",
        ));
    }
    if body.total > limits.max_body_bytes_sent {
        return Err(too_large(format!(
            "Maximum allowed content length: {} bytes (1 MB). Provided content length: {} bytes.",
            limits.max_body_bytes_sent, body.total
        )));
    }
    let sent = body.bytes.len();
    let data = if gzip {
        let mut out = Vec::with_capacity(sent.saturating_mul(8).min(limits.max_body_bytes_uncompressed + 1));
        let cap = u64::try_from(limits.max_body_bytes_uncompressed).unwrap_or(u64::MAX) + 1;
        MultiGzDecoder::new(body.bytes.as_slice())
            .take(cap)
            .read_to_end(&mut out)
            .map_err(|e| {
                bad_request(
                    "InvalidContentEncoding",
                    format!("The gzip body could not be decompressed: {e}."),
                )
            })?;
        out
    } else {
        body.bytes
    };
    if data.len() > limits.max_body_bytes_uncompressed {
        return Err(too_large(format!(
            "Maximum allowed uncompressed content length: {} bytes. Provided uncompressed content length: more than that.",
            limits.max_body_bytes_uncompressed
        )));
    }

    let records: Vec<&RawValue> = serde_json::from_slice(&data).map_err(|e| {
        bad_request(
            "InvalidPayload",
            format!("The request body must be a JSON array of objects: {e}."),
        )
    })?;
    if let Some(index) = records.iter().position(|r| !r.get().starts_with('{')) {
        return Err(bad_request(
            "InvalidPayload",
            format!("The request body must be a JSON array of objects; element {index} is not an object."),
        ));
    }
    if records.is_empty() && !limits.allow_empty_array {
        return Err(bad_request(
            "EmptyPayload",
            "The request body is an empty JSON array.",
        ));
    }
    if shared.stores_records() {
        shared.store_records(dcr, stream, &records).map_err(|e| {
            tracing::error!(error = %e, "unable to store accepted records");
            UploadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Records could not be stored.",
            )
        })?;
    }
    shared.with_stats(|s| {
        let count = records.len() as u64;
        s.requests_accepted += 1;
        s.records_accepted += count;
        s.bytes_sent_accepted += sent as u64;
        s.bytes_uncompressed_accepted += data.len() as u64;
        let per = s.per_stream.entry(stream.to_owned()).or_default();
        per.requests += 1;
        per.records += count;
        per.bytes_uncompressed += data.len() as u64;
    });
    Ok(())
}
