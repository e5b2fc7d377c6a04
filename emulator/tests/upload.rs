//! The Upload operation: the happy paths and each rejection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use s3_sentinel_emulator::{EmulatorConfig, Limits, RateLimit};

#[tokio::test]
async fn plain_json_array_is_accepted_with_204_and_request_ids() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    let response = upload_request(&emu, &token, records(3))
        .header("x-ms-client-request-id", "11111111-2222-3333-4444-555555555555")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["x-ms-request-id"].len(), 36);
    assert_eq!(
        response.headers()["x-ms-client-request-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert!(response.bytes().await.unwrap().is_empty());
    let stats = emu.stats();
    assert_eq!(stats.records_accepted, 3);
    assert_eq!(stats.upload_responses_by_status[&204], 1);
}

#[tokio::test]
async fn gzip_body_is_decompressed_and_counted() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    let body = records(500);
    let response = upload_gzip(&emu, &token, &body).await;
    assert_eq!(response.status(), 204);
    let stats = emu.stats();
    assert_eq!(stats.records_accepted, 500);
    assert_eq!(stats.bytes_uncompressed_accepted, body.len() as u64);
    assert_eq!(stats.bytes_sent_accepted, gzip(&body).len() as u64);
    assert!(stats.bytes_sent_accepted < stats.bytes_uncompressed_accepted);
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_are_401() {
    let emu = start(EmulatorConfig::default().with_token_lifetime(Duration::from_millis(150))).await;
    let no_token = client()
        .post(emu.upload_url(DCR, STREAM))
        .header("content-type", "application/json")
        .body(records(1))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    assert!(
        no_token.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    assert_eq!(error_code(no_token).await, "AuthenticationFailed");

    let unknown = upload(&emu, "made-up", records(1)).await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(error_code(unknown).await, "InvalidAuthenticationToken");

    let token = token(&emu).await;
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let expired = upload(&emu, &token, records(1)).await;
    assert_eq!(expired.status(), 401);
    assert_eq!(error_code(expired).await, "ExpiredAuthenticationToken");
}

#[tokio::test]
async fn api_version_is_required_and_checked() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    let url = format!("{}/dataCollectionRules/{DCR}/streams/{STREAM}", emu.base_url());
    for (query, code) in [
        ("", "MissingApiVersionParameter"),
        ("?api-version=2021-11-01-preview", "UnsupportedApiVersion"),
    ] {
        let response = client()
            .post(format!("{url}{query}"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(records(1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(error_code(response).await, code);
    }
}

#[tokio::test]
async fn body_must_be_a_non_empty_json_array_of_objects() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    for (body, code) in [
        (&br#"{"a":1}"#[..], "InvalidPayload"),
        (b"[1,2]", "InvalidPayload"),
        (b"[{\"a\":1},[]]", "InvalidPayload"),
        (b"[{\"a\":1}", "InvalidPayload"),
        (b"not json", "InvalidPayload"),
        (b"[]", "EmptyPayload"),
    ] {
        let response = upload(&emu, &token, body.to_vec()).await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(error_code(response).await, code);
    }
    assert_eq!(emu.stats().records_accepted, 0);
}

#[tokio::test]
async fn empty_array_can_be_allowed() {
    let limits = Limits {
        allow_empty_array: true,
        ..Limits::default()
    };
    let emu = start(EmulatorConfig::default().with_limits(limits)).await;
    let token = token(&emu).await;
    assert_eq!(upload(&emu, &token, b"[]".to_vec()).await.status(), 204);
}

#[tokio::test]
async fn content_type_and_encoding_are_checked() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    let with_type = |content_type: &'static str| {
        client()
            .post(emu.upload_url(DCR, STREAM))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(records(1))
    };
    let text = with_type("text/plain").send().await.unwrap();
    assert_eq!(text.status(), 415);
    assert_eq!(error_code(text).await, "UnsupportedMediaType");
    let charset = with_type("application/json; charset=utf-8").send().await.unwrap();
    assert_eq!(charset.status(), 204);
    let missing = client()
        .post(emu.upload_url(DCR, STREAM))
        .bearer_auth(&token)
        .body(records(1))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 415);
    let brotli = upload_request(&emu, &token, records(1))
        .header("content-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.status(), 415);
    assert_eq!(error_code(brotli).await, "UnsupportedContentEncoding");
}

#[tokio::test]
async fn corrupt_gzip_is_400() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    let mut body = gzip(&records(10));
    let middle = body.len() / 2;
    body[middle] ^= 0xff;
    let corrupt = upload_request(&emu, &token, body)
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(corrupt.status(), 400);
    assert_eq!(error_code(corrupt).await, "InvalidContentEncoding");
    let not_gzip = upload_request(&emu, &token, records(1))
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(not_gzip.status(), 400);
}

fn padded_array(total: usize) -> Vec<u8> {
    // [{"p":"xxxx…"}] of exactly `total` bytes.
    let overhead = br#"[{"p":""}]"#.len();
    let mut body = br#"[{"p":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', total - overhead));
    body.extend_from_slice(br#""}]"#);
    assert_eq!(body.len(), total);
    body
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;

    let at_limit = upload(&emu, &token, padded_array(1_000_000)).await;
    assert_eq!(at_limit.status(), 204);

    let sent = upload(&emu, &token, padded_array(1_048_577)).await;
    assert_eq!(sent.status(), 413);
    let body: serde_json::Value = sent.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ContentLengthLimitExceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Provided content length: 1048577 bytes")
    );

    let uncompressed_plain = upload(&emu, &token, padded_array(1_000_001)).await;
    assert_eq!(uncompressed_plain.status(), 413);

    let uncompressed_gzip = upload_gzip(&emu, &token, &padded_array(1_000_001)).await;
    assert_eq!(uncompressed_gzip.status(), 413);
    assert!(
        error_code(uncompressed_gzip)
            .await
            .contains("ContentLengthLimitExceeded")
    );
    assert_eq!(emu.stats().upload_responses_by_status[&413], 3);
}

#[tokio::test]
async fn unknown_rules_and_streams_are_404_when_rules_are_configured() {
    let emu = start(EmulatorConfig::default().with_rule(DCR, [STREAM])).await;
    let token = token(&emu).await;
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
    for url in [
        emu.upload_url("dcr-ffffffffffffffffffffffffffffffff", STREAM),
        emu.upload_url(DCR, "Custom-Other"),
    ] {
        let response = client()
            .post(url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(records(1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let emu = start(EmulatorConfig::default().with_rate_limit(RateLimit {
        requests_per_second: 0.5,
        burst: 2,
    }))
    .await;
    let token = token(&emu).await;
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
    let throttled = upload(&emu, &token, records(1)).await;
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(throttled).await, "TooManyRequests");
}
