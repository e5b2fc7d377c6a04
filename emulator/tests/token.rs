//! The client-credentials token endpoint: both credential kinds and the identity-platform errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use s3_sentinel_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, JWT_BEARER_ASSERTION_TYPE,
};
use serde_json::{Value, json};

async fn aad_error(response: reqwest::Response) -> (u16, String, u64) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS"));
    (
        status,
        body["error"].as_str().unwrap().to_owned(),
        body["error_codes"][0].as_u64().unwrap(),
    )
}

fn secret_form<'a>(secret: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", secret),
        ("scope", scope),
    ]
}

#[tokio::test]
async fn client_secret_issues_a_bearer_token() {
    let emu = start(EmulatorConfig::default()).await;
    let response = token_response(&emu, &secret_form(DEFAULT_CLIENT_SECRET, SCOPE)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store, no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(emu.stats().token_responses_by_status[&200], 1);
}

#[tokio::test]
async fn client_assertion_issues_a_token_that_uploads() {
    let emu = start(EmulatorConfig::default()).await;
    let aud = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        emu.tenant()
    );
    let assertion = jwt(
        &json!({"aud": aud, "iss": DEFAULT_CLIENT_ID, "sub": DEFAULT_CLIENT_ID, "exp": now_secs() + 600}),
    );
    let response = token_response(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("scope", "https://monitor.azure.com/.default"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let upload = upload(&emu, token["access_token"].as_str().unwrap(), records(1)).await;
    assert_eq!(upload.status(), 204);
}

#[tokio::test]
async fn bad_assertions_are_invalid_client() {
    let emu = start(EmulatorConfig::default()).await;
    let aud = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        emu.tenant()
    );
    let expired = jwt(&json!({"aud": aud, "exp": now_secs() - 10}));
    let wrong_aud = jwt(
        &json!({"aud": "https://login.microsoftonline.com/other/oauth2/v2.0/token", "exp": now_secs() + 600}),
    );
    let wrong_sub = jwt(&json!({"aud": aud, "sub": "someone-else", "exp": now_secs() + 600}));
    for (assertion, aadsts) in [
        ("not-a-jwt", 50027),
        (expired.as_str(), 700024),
        (wrong_aud.as_str(), 700016),
        (wrong_sub.as_str(), 700021),
    ] {
        let response = token_response(
            &emu,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
                ("client_assertion", assertion),
                ("scope", SCOPE),
            ],
        )
        .await;
        assert_eq!(
            aad_error(response).await,
            (401, "invalid_client".to_owned(), aadsts),
            "{assertion}"
        );
    }
    let wrong_type = token_response(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_assertion_type", "urn:something-else"),
            ("client_assertion", &expired),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(aad_error(wrong_type).await.0, 400);
}

#[tokio::test]
async fn token_errors_follow_the_identity_platform() {
    let emu = start(EmulatorConfig::default()).await;
    let wrong_secret = token_response(&emu, &secret_form("nope", SCOPE)).await;
    assert_eq!(
        aad_error(wrong_secret).await,
        (401, "invalid_client".to_owned(), 7000215)
    );

    let bad_scope = token_response(
        &emu,
        &secret_form(
            DEFAULT_CLIENT_SECRET,
            "https://monitor.azure.com/user_impersonation",
        ),
    )
    .await;
    assert_eq!(
        aad_error(bad_scope).await,
        (400, "invalid_scope".to_owned(), 1002012)
    );

    let grant = token_response(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(
        aad_error(grant).await,
        (400, "unsupported_grant_type".to_owned(), 70003)
    );

    let unknown = token_response(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "who"),
            ("client_secret", "x"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(
        aad_error(unknown).await,
        (400, "unauthorized_client".to_owned(), 700016)
    );

    let no_credential = token_response(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(
        aad_error(no_credential).await,
        (401, "invalid_client".to_owned(), 7000218)
    );

    let wrong_tenant = client()
        .post(format!("{}/other-tenant/oauth2/v2.0/token", emu.base_url()))
        .form(&secret_form(DEFAULT_CLIENT_SECRET, SCOPE))
        .send()
        .await
        .unwrap();
    assert_eq!(
        aad_error(wrong_tenant).await,
        (400, "invalid_request".to_owned(), 90002)
    );
    assert_eq!(emu.stats().token_requests, 6);
}

#[tokio::test]
async fn token_for_another_resource_is_rejected_by_upload() {
    let emu = start(EmulatorConfig::default()).await;
    let response = token_response(
        &emu,
        &secret_form(DEFAULT_CLIENT_SECRET, "https://graph.microsoft.com/.default"),
    )
    .await;
    let token: Value = response.json().await.unwrap();
    let upload = upload(&emu, token["access_token"].as_str().unwrap(), records(1)).await;
    assert_eq!(upload.status(), 401);
    assert_eq!(error_code(upload).await, "InvalidAuthenticationTokenAudience");
}
