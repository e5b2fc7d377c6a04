//! Microsoft Entra ID access tokens for the Logs Ingestion API (OAuth 2.0 client-credentials flow).
//!
//! Consumes the validated [`SentinelAuthConfig`] (with the `AZURE_*` environment fallbacks) and the
//! secret it points at; produces cached bearer tokens through the [`TokenSource`] trait. Two credential
//! kinds: a client secret (from an environment variable or a file) and Azure Workload Identity (a
//! federated token file used as client assertion, re-read on every request because the kubelet
//! rotates it). Secrets and tokens never appear in logs or `Debug` output.
//!
//! Refresh rule: a cached token is refreshed once less than `margin` of its life is left, where
//! `margin = min(max(5 min, lifetime / 10), lifetime / 2)`. For Entra's usual 60–90 minute tokens that is
//! 6–9 minutes; the `lifetime / 2` bound keeps short-lived tokens (tests, custom policies) cached for half
//! their life instead of being refreshed on every call. During the refresh window one caller refreshes
//! while the others keep using the still-valid token; once it has expired, callers wait for one shared
//! refresh (single flight).

use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use s3_sentinel_api::config::{AuthMethod, SentinelAuthConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Default Entra authority.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Client assertion type of a federated (workload identity) token.
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Timeout of one token request.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Lower bound of the refresh margin for long-lived tokens.
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Longest lifetime believed from a token response (guards against absurd `expires_in` values).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest error text kept from a token endpoint's answer.
const MAX_ERROR_TEXT: usize = 512;

/// A bearer token and when it expires. `Debug` does not show the token.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    expires_at: Instant,
    refresh_at: Instant,
}

impl AccessToken {
    /// A token valid for `lifetime` from now (refresh margin per the module's rule).
    pub fn new(secret: impl Into<Arc<str>>, lifetime: Duration) -> AccessToken {
        let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
        let now = Instant::now();
        AccessToken {
            secret: secret.into(),
            expires_at: now + lifetime,
            refresh_at: now + lifetime - margin(lifetime),
        }
    }

    /// The token, for the `Authorization: Bearer` header only.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the service will stop accepting it.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// When the provider starts refreshing it.
    pub fn refresh_at(&self) -> Instant {
        self.refresh_at
    }

    fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How long before expiry a token of `lifetime` is refreshed (see the module docs).
fn margin(lifetime: Duration) -> Duration {
    MIN_REFRESH_MARGIN.max(lifetime / 10).min(lifetime / 2)
}

/// Why no token could be had. Configuration problems say which setting, environment variable or path
/// is missing; none of them contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A required setting is neither in the config nor in its environment fallback.
    #[error("failed to configure entra id auth: sentinel.auth.{setting} is not set and neither is {env}")]
    MissingSetting {
        /// The config key under `sentinel.auth`.
        setting: &'static str,
        /// The environment variable consulted as fallback.
        env: &'static str,
    },
    /// The environment variable that should hold the client secret is unset or empty.
    #[error("failed to read the client secret: environment variable {var} is not set or empty")]
    MissingSecretEnv {
        /// Name of the variable.
        var: String,
    },
    /// A secret or federated token file could not be read.
    #[error("unable to read {what} file {}: {source}", path.display())]
    ReadFile {
        /// `client secret` or `federated token`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret or federated token file is empty.
    #[error("unable to use {what} file {}: it is empty", path.display())]
    EmptyFile {
        /// `client secret` or `federated token`.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The authority is not https and plain http was not allowed.
    #[error("failed to configure entra id auth: authority `{url}` must be https (or allow_insecure_http)")]
    InsecureAuthority {
        /// The authority URL.
        url: String,
    },
    /// The token request did not get an HTTP answer.
    #[error("unable to request a token from {url}: {message}")]
    Request {
        /// Token endpoint.
        url: String,
        /// What went wrong (timeout, connection, ...).
        message: String,
    },
    /// The token endpoint refused.
    #[error("unable to get a token from {url}: http {status}: {message}")]
    Refused {
        /// Token endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// Entra's `error` and `error_description`, bounded.
        message: String,
    },
    /// The token endpoint answered 2xx with something that is not a token.
    #[error("unable to parse the token response from {url}: {message}")]
    BadResponse {
        /// Token endpoint.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// Something that hands out bearer tokens for the Logs Ingestion API.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A token valid for now, from cache when possible.
    async fn token(&self) -> Result<AccessToken, AuthError>;
    /// Forget the cached token (the service answered 401): the next call fetches a new one.
    fn invalidate(&self);
}

/// The credential sent to the token endpoint.
enum Credential {
    /// A secret read once from an environment variable at start-up.
    SecretValue(String),
    /// A secret file, re-read on every request so a rotated Kubernetes secret is picked up.
    SecretFile(PathBuf),
    /// A federated token file (workload identity), re-read on every request.
    FederatedTokenFile(PathBuf),
}

impl Credential {
    fn describe(&self) -> String {
        match self {
            Credential::SecretValue(_) => "client secret (<redacted>)".to_owned(),
            Credential::SecretFile(p) => format!("client secret file {}", p.display()),
            Credential::FederatedTokenFile(p) => format!("federated token file {}", p.display()),
        }
    }
}

/// Entra ID client-credentials token provider with caching and single-flight refresh.
pub struct EntraTokenProvider {
    token_url: String,
    client_id: String,
    scope: String,
    credential: Credential,
    http: reqwest::Client,
    metrics: Metrics,
    cached: Mutex<Option<AccessToken>>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EntraTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraTokenProvider")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("credential", &self.credential.describe())
            .finish_non_exhaustive()
    }
}

impl EntraTokenProvider {
    /// Builds the provider from the validated config, resolving `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_AUTHORITY_HOST` and `AZURE_FEDERATED_TOKEN_FILE` fallbacks and checking that the secret or
    /// token file is there. Nothing is requested yet.
    pub fn from_config(
        cfg: &SentinelAuthConfig,
        allow_insecure_http: bool,
        http: reqwest::Client,
        metrics: Metrics,
    ) -> Result<Self, AuthError> {
        Self::from_config_with_env(cfg, allow_insecure_http, http, metrics, &|name| {
            std::env::var(name).ok()
        })
    }

    /// [`EntraTokenProvider::from_config`] with the environment given as a lookup function.
    pub fn from_config_with_env(
        cfg: &SentinelAuthConfig,
        allow_insecure_http: bool,
        http: reqwest::Client,
        metrics: Metrics,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthError> {
        let lookup = |value: &Option<String>, setting: &'static str, var: &'static str| {
            value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| env(var).filter(|v| !v.trim().is_empty()))
                .ok_or(AuthError::MissingSetting { setting, env: var })
        };
        let tenant = lookup(&cfg.tenant_id, "tenant_id", "AZURE_TENANT_ID")?;
        let client_id = lookup(&cfg.client_id, "client_id", "AZURE_CLIENT_ID")?;
        let authority = cfg
            .authority_host
            .clone()
            .or_else(|| env("AZURE_AUTHORITY_HOST").filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
        let authority = authority.trim().trim_end_matches('/').to_owned();
        if !(authority.starts_with("https://") || (allow_insecure_http && authority.starts_with("http://"))) {
            return Err(AuthError::InsecureAuthority { url: authority });
        }
        let credential = match cfg.method {
            AuthMethod::ClientSecret => match &cfg.client_secret_file {
                Some(path) => {
                    read_credential_file("client secret", path)?;
                    Credential::SecretFile(path.clone())
                }
                None => {
                    let var = cfg.client_secret_env.clone();
                    match env(&var) {
                        Some(v) if !v.trim().is_empty() => Credential::SecretValue(v.trim().to_owned()),
                        _ => return Err(AuthError::MissingSecretEnv { var }),
                    }
                }
            },
            AuthMethod::WorkloadIdentity => {
                let path = match &cfg.federated_token_file {
                    Some(p) => p.clone(),
                    None => env("AZURE_FEDERATED_TOKEN_FILE")
                        .filter(|v| !v.trim().is_empty())
                        .map(PathBuf::from)
                        .ok_or(AuthError::MissingSetting {
                            setting: "federated_token_file",
                            env: "AZURE_FEDERATED_TOKEN_FILE",
                        })?,
                };
                read_credential_file("federated token", &path)?;
                Credential::FederatedTokenFile(path)
            }
        };
        Ok(EntraTokenProvider {
            token_url: format!("{authority}/{tenant}/oauth2/v2.0/token"),
            client_id,
            scope: cfg.scope.clone(),
            credential,
            http,
            metrics,
            cached: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The token endpoint requests go to.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    fn cached(&self) -> Option<AccessToken> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn store(&self, token: Option<AccessToken>) {
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }

    /// Requests a new token and caches it, counting the outcome.
    async fn fetch_and_store(&self) -> Result<AccessToken, AuthError> {
        let result = self.fetch().await;
        match &result {
            Ok(token) => {
                self.metrics.token_requests.with_label_values(&["ok"]).inc();
                let lifetime = token.expires_at.saturating_duration_since(Instant::now());
                tracing::info!(expires_in_s = lifetime.as_secs(), client_id = %self.client_id, "entra id token acquired");
                self.store(Some(token.clone()));
            }
            Err(e) => {
                self.metrics.token_requests.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "unable to acquire an entra id token");
            }
        }
        result
    }

    async fn fetch(&self) -> Result<AccessToken, AuthError> {
        let secret_or_assertion = match &self.credential {
            Credential::SecretValue(v) => ("client_secret", v.clone()),
            Credential::SecretFile(p) => ("client_secret", read_credential_file("client secret", p)?),
            Credential::FederatedTokenFile(p) => {
                ("client_assertion", read_credential_file("federated token", p)?)
            }
        };
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("scope", &self.scope),
            (secret_or_assertion.0, &secret_or_assertion.1),
        ];
        if matches!(self.credential, Credential::FederatedTokenFile(_)) {
            form.push(("client_assertion_type", JWT_BEARER_ASSERTION));
        }
        let url = &self.token_url;
        let response = self
            .http
            .post(url)
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .form(&form)
            .send()
            .await
            .map_err(|e| AuthError::Request {
                url: url.clone(),
                message: error_chain(&e),
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| AuthError::Request {
            url: url.clone(),
            message: error_chain(&e),
        })?;
        if !status.is_success() {
            return Err(AuthError::Refused {
                url: url.clone(),
                status: status.as_u16(),
                message: entra_error(&body),
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| AuthError::BadResponse {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let lifetime = parsed
            .expires_in
            .seconds()
            .ok_or_else(|| AuthError::BadResponse {
                url: url.clone(),
                message: "expires_in is not a number".into(),
            })?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::BadResponse {
                url: url.clone(),
                message: "access_token is empty".into(),
            });
        }
        Ok(AccessToken::new(
            parsed.access_token,
            Duration::from_secs(lifetime),
        ))
    }
}

#[async_trait]
impl TokenSource for EntraTokenProvider {
    async fn token(&self) -> Result<AccessToken, AuthError> {
        let now = Instant::now();
        if let Some(token) = self.cached() {
            if now < token.refresh_at {
                return Ok(token);
            }
            if !token.is_expired(now) {
                // In the refresh window: one caller refreshes, the others keep the valid token.
                let Ok(_guard) = self.refresh.try_lock() else {
                    return Ok(token);
                };
                if let Some(fresh) = self.cached().filter(|t| Instant::now() < t.refresh_at) {
                    return Ok(fresh);
                }
                return match self.fetch_and_store().await {
                    Ok(fresh) => Ok(fresh),
                    // Still valid: use it and try again on the next call.
                    Err(_) if !token.is_expired(Instant::now()) => Ok(token),
                    Err(e) => Err(e),
                };
            }
        }
        // Nothing usable: wait for the one refresh in progress, or do it.
        let _guard = self.refresh.lock().await;
        if let Some(fresh) = self.cached().filter(|t| !t.is_expired(Instant::now())) {
            return Ok(fresh);
        }
        self.fetch_and_store().await
    }

    fn invalidate(&self) {
        self.store(None);
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: ExpiresIn,
}

/// `expires_in` is a number in v2.0 responses and a string in some older ones.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Number(u64),
    Text(String),
}

impl ExpiresIn {
    fn seconds(&self) -> Option<u64> {
        match self {
            ExpiresIn::Number(n) => Some(*n),
            ExpiresIn::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// Entra's `{"error": "...", "error_description": "..."}` as one bounded line.
fn entra_error(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct EntraError {
        error: Option<String>,
        error_description: Option<String>,
    }
    let text = match serde_json::from_slice::<EntraError>(body) {
        Ok(EntraError {
            error,
            error_description,
        }) => [error, error_description]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": "),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    bounded(text.lines().next().unwrap_or_default(), MAX_ERROR_TEXT)
}

/// Reads a secret or token file, trimmed; errors name the path, never the content.
fn read_credential_file(what: &'static str, path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(AuthError::EmptyFile {
            what,
            path: path.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// An error with its sources, e.g. `error sending request: connection refused`.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    bounded(&text, MAX_ERROR_TEXT)
}

/// At most `max` bytes of `text`, cut on a character boundary.
pub(crate) fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sink::test_server::{Reply, TestServer};
    use std::collections::HashMap;

    const SECRET: &str = "s3cr3t-value-never-logged";

    fn config(method: AuthMethod, authority: &str) -> SentinelAuthConfig {
        SentinelAuthConfig {
            method,
            tenant_id: Some("tenant-1".into()),
            client_id: Some("client-1".into()),
            client_secret_env: "TEST_SENTINEL_SECRET".into(),
            client_secret_file: None,
            federated_token_file: None,
            authority_host: Some(authority.to_owned()),
            scope: s3_sentinel_api::limits::LOGS_INGESTION_SCOPE.to_owned(),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn provider(cfg: &SentinelAuthConfig, env_pairs: &[(&str, &str)]) -> (EntraTokenProvider, Metrics) {
        let m = Metrics::new().unwrap();
        let p = EntraTokenProvider::from_config_with_env(
            cfg,
            true,
            reqwest::Client::new(),
            m.clone(),
            &env(env_pairs),
        )
        .unwrap();
        (p, m)
    }

    fn token_reply(n: usize, expires_in: u64) -> Reply {
        Reply::json(
            200,
            &format!(r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"tok-{n}"}}"#),
        )
    }

    #[tokio::test]
    async fn client_secret_flow_posts_the_form_and_caches() {
        let server = TestServer::start(|_, i| token_reply(i, 3600)).await;
        let (p, m) = provider(
            &config(AuthMethod::ClientSecret, &server.url()),
            &[("TEST_SENTINEL_SECRET", SECRET)],
        );
        for _ in 0..5 {
            assert_eq!(p.token().await.unwrap().secret(), "tok-0");
        }
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "cached token must be reused");
        let r = &requests[0];
        assert_eq!(r.path, "/tenant-1/oauth2/v2.0/token");
        let form = r.form();
        for part in [
            "grant_type=client_credentials",
            "client_id=client-1",
            &format!("client_secret={SECRET}"),
            "scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default",
        ] {
            assert!(form.contains(part), "{part} missing from {form}");
        }
        assert_eq!(m.token_requests.with_label_values(&["ok"]).get(), 1);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_request() {
        let server =
            TestServer::start(|_, i| Reply::Delay(Duration::from_millis(50), Box::new(token_reply(i, 3600))))
                .await;
        let (p, _) = provider(
            &config(AuthMethod::ClientSecret, &server.url()),
            &[("TEST_SENTINEL_SECRET", SECRET)],
        );
        let p = Arc::new(p);
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.token().await.map(|t| t.secret().to_owned()) })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap().unwrap(), "tok-0");
        }
        assert_eq!(server.count(), 1);
    }

    #[tokio::test]
    async fn token_is_refreshed_before_expiry_and_after_invalidate() {
        // Lifetime 1 s: refreshed after 0.5 s (margin = lifetime / 2 for short tokens).
        let server = TestServer::start(|_, i| token_reply(i, 1)).await;
        let (p, _) = provider(
            &config(AuthMethod::ClientSecret, &server.url()),
            &[("TEST_SENTINEL_SECRET", SECRET)],
        );
        let first = p.token().await.unwrap();
        assert_eq!(first.secret(), "tok-0");
        assert!(first.refresh_at() < first.expires_at());
        assert_eq!(p.token().await.unwrap().secret(), "tok-0");
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert_eq!(
            p.token().await.unwrap().secret(),
            "tok-1",
            "refreshed while the old one was still valid"
        );
        p.invalidate();
        assert_eq!(p.token().await.unwrap().secret(), "tok-2");
        assert_eq!(server.count(), 3);
    }

    #[test]
    fn refresh_margin_rule() {
        assert_eq!(margin(Duration::from_secs(3600)), Duration::from_secs(360));
        assert_eq!(margin(Duration::from_secs(1200)), Duration::from_secs(300));
        assert_eq!(margin(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(margin(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn workload_identity_rereads_the_federated_token_file() {
        let server = TestServer::start(|_, i| token_reply(i, 3600)).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("azure-identity-token");
        std::fs::write(&file, "assertion-one\n").unwrap();
        let mut cfg = config(AuthMethod::WorkloadIdentity, &server.url());
        cfg.tenant_id = None;
        cfg.client_id = None;
        let file_text = file.to_string_lossy().into_owned();
        let (p, _) = provider(
            &cfg,
            &[
                ("AZURE_TENANT_ID", "env-tenant"),
                ("AZURE_CLIENT_ID", "env-client"),
                ("AZURE_FEDERATED_TOKEN_FILE", &file_text),
            ],
        );
        p.token().await.unwrap();
        std::fs::write(&file, "assertion-two").unwrap();
        p.invalidate();
        p.token().await.unwrap();
        let requests = server.requests();
        assert_eq!(requests[0].path, "/env-tenant/oauth2/v2.0/token");
        let (a, b) = (requests[0].form(), requests[1].form());
        assert!(a.contains("client_assertion=assertion-one"), "{a}");
        assert!(b.contains("client_assertion=assertion-two"), "{b}");
        assert!(b.contains("client_id=env-client"), "{b}");
        assert!(
            b.contains(
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            ),
            "{b}"
        );
        assert!(!b.contains("client_secret"), "{b}");
    }

    #[tokio::test]
    async fn configuration_errors_name_the_variable_or_path_never_the_value() {
        let m = Metrics::new().unwrap();
        let http = reqwest::Client::new();
        let cfg = config(AuthMethod::ClientSecret, "https://login.example");
        let err = EntraTokenProvider::from_config_with_env(&cfg, false, http.clone(), m.clone(), &env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("TEST_SENTINEL_SECRET"), "{err}");

        let mut no_tenant = cfg.clone();
        no_tenant.tenant_id = None;
        let err =
            EntraTokenProvider::from_config_with_env(&no_tenant, false, http.clone(), m.clone(), &env(&[]))
                .unwrap_err();
        assert!(
            err.to_string().contains("AZURE_TENANT_ID") && err.to_string().contains("tenant_id"),
            "{err}"
        );

        let mut file_cfg = cfg.clone();
        file_cfg.client_secret_file = Some("/nonexistent/s3-sentinel/secret".into());
        let err =
            EntraTokenProvider::from_config_with_env(&file_cfg, false, http.clone(), m.clone(), &env(&[]))
                .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/s3-sentinel/secret"),
            "{err}"
        );

        let wi = config(AuthMethod::WorkloadIdentity, "https://login.example");
        let err = EntraTokenProvider::from_config_with_env(&wi, false, http.clone(), m.clone(), &env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"), "{err}");

        let insecure = config(AuthMethod::ClientSecret, "http://login.example");
        let err = EntraTokenProvider::from_config_with_env(
            &insecure,
            false,
            http,
            m,
            &env(&[("TEST_SENTINEL_SECRET", SECRET)]),
        )
        .unwrap_err();
        assert!(matches!(err, AuthError::InsecureAuthority { .. }), "{err}");
    }

    #[tokio::test]
    async fn debug_output_redacts_secrets() {
        let server = TestServer::start(|_, i| token_reply(i, 3600)).await;
        let (p, _) = provider(
            &config(AuthMethod::ClientSecret, &server.url()),
            &[("TEST_SENTINEL_SECRET", SECRET)],
        );
        let token = p.token().await.unwrap();
        let text = format!("{p:?} {token:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("tok-0"), "{text}");
        assert!(text.contains("client-1") && text.contains("<redacted>"), "{text}");
    }

    #[tokio::test]
    async fn refused_request_is_an_error_with_entra_message() {
        let server = TestServer::start(|_, _| {
            Reply::json(401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#)
        })
        .await;
        let (p, m) = provider(
            &config(AuthMethod::ClientSecret, &server.url()),
            &[("TEST_SENTINEL_SECRET", SECRET)],
        );
        let err = p.token().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, AuthError::Refused { status: 401, .. }), "{text}");
        assert!(text.contains("invalid_client: AADSTS7000215"), "{text}");
        assert!(!text.contains(SECRET));
        assert_eq!(m.token_requests.with_label_values(&["error"]).get(), 1);
    }
}
