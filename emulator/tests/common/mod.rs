//! Helpers shared by the emulator's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use s3_sentinel_emulator::{EmulatorConfig, RunningEmulator};

pub const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";
pub const STREAM: &str = "Custom-Test";
pub const SCOPE: &str = "https://monitor.azure.com//.default";

pub async fn start(config: EmulatorConfig) -> RunningEmulator {
    s3_sentinel_emulator::start(config)
        .await
        .expect("emulator starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

pub async fn token_response(emu: &RunningEmulator, form: &[(&str, &str)]) -> reqwest::Response {
    client().post(emu.token_url()).form(form).send().await.unwrap()
}

pub async fn token(emu: &RunningEmulator) -> String {
    let response = token_response(
        emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", s3_sentinel_emulator::DEFAULT_CLIENT_ID),
            ("client_secret", s3_sentinel_emulator::DEFAULT_CLIENT_SECRET),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub fn upload_request(emu: &RunningEmulator, token: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    client()
        .post(emu.upload_url(DCR, STREAM))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
}

pub async fn upload(emu: &RunningEmulator, token: &str, body: Vec<u8>) -> reqwest::Response {
    upload_request(emu, token, body).send().await.unwrap()
}

pub async fn upload_gzip(emu: &RunningEmulator, token: &str, body: &[u8]) -> reqwest::Response {
    upload_request(emu, token, gzip(body))
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn records(n: usize) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| serde_json::json!({"TimeGenerated": "2026-01-01T00:00:00Z", "n": i}))
        .collect();
    serde_json::to_vec(&records).unwrap()
}

/// An unsigned-but-well-formed client assertion.
pub fn jwt(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","x5t":"abc"}"#);
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The Azure error code of an upload error, checked against the `x-ms-error-code` header.
pub async fn error_code(response: reqwest::Response) -> String {
    let header = response
        .headers()
        .get("x-ms-error-code")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().unwrap().to_owned();
    assert!(body["error"]["message"].is_string());
    assert_eq!(header.as_deref(), Some(code.as_str()));
    code
}
