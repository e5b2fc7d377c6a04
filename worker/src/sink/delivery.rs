//! Delivery of one batch: compress, then send until the service accepts it, rejects it or we give up.
//!
//! Consumes a [`Batch`] from the batcher; produces one or more [`Delivered`] verdicts (more than one
//! when a 413 split the batch) for the object tracker and the dead-letter sink. The retry table (STYLE
//! pattern 8) lives here, in one place:
//!
//! | answer                                   | action                                        | breaker  |
//! |------------------------------------------|-----------------------------------------------|----------|
//! | 2xx                                      | `Accepted`                                    | success  |
//! | 408, 5xx except 501, timeout, connection | retry with backoff (`Retry-After` honoured)   | failure  |
//! | 429                                      | retry after `Retry-After` (or backoff)        | neither  |
//! | 413                                      | split in two and deliver each half            | success  |
//! | 413 on a single record                   | `Failed { too_large }`                        | success  |
//! | 401 (first)                              | invalidate the token, retry at once           | neither  |
//! | 401 again, 403, token errors             | retry with backoff, never dead-lettered       | failure  |
//! | other 4xx, 501                           | `Failed { rejected }`                         | success  |
//!
//! After `retry.max_attempts` attempts (0 = unlimited) a retryable batch is `Failed { retries_exhausted }`.
//!
//! Why 429 is not a breaker failure: throttling says the service is healthy but we are too fast; its
//! `Retry-After` already slows every batch down, and opening the breaker on top would turn a polite
//! throttle into a 30 s stall. Why 4xx answers count as successes: the breaker guards against an
//! unavailable service, and a definite answer proves it is available.
//!
//! Why authentication problems are never dead-lettered and do not use up `max_attempts`: a refused
//! token or a missing role assignment affects every batch equally and is fixed by an operator, not by
//! the data. Dead-lettering would drain the whole backlog into the dead-letter store while the secret
//! is rotated or the role propagates; instead the breaker opens, the pipeline backs up (backpressure
//! holds S3 reading) and the breaker state, `s3sentinel_sentinel_retries_total{reason="unauthorized"}`
//! and the warn logs tell the operator.
//!
//! Cancellation (shutdown): once `cancel` has fired, delivery starts no new request and stops waiting
//! (breaker, token, backoff); the batch, or what is left of a split one, comes back as `Abandoned` and
//! its records stay unacknowledged. A request already on the wire is allowed to finish (it is bounded
//! by `sentinel.request_timeout`), so a batch the service accepted is reported as such. The pipeline
//! therefore drains its batches first and fires `cancel` when the shutdown grace period is over.

use crate::batch::Batch;
use crate::resilience::{Backoff, CircuitBreaker};
use crate::sink::auth::TokenSource;
use crate::sink::client::{LogsIngestionClient, RequestBody, SendOutcome};
use crate::telemetry::metrics::Metrics;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::future::BoxFuture;
use s3_sentinel_api::config::{RetryConfig, SentinelConfig, SinkCompression};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What became of (part of) a batch.
#[derive(Debug)]
pub enum Delivered {
    /// The service accepted every record of this batch.
    Accepted(Batch),
    /// The batch will not be delivered; give its records to the dead-letter sink with `failure`.
    Failed {
        /// The records.
        batch: Batch,
        /// Why.
        failure: DeliveryFailure,
    },
    /// Shutdown interrupted delivery before acceptance: the records stay unacknowledged so their
    /// objects are read again by the next run.
    Abandoned(Batch),
}

/// Why a batch could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// `rejected`, `too_large` or `retries_exhausted` (a bounded label).
    pub reason: &'static str,
    /// The last HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// The service's error code, e.g. `InvalidStream`.
    pub code: Option<String>,
    /// The service's message or the last error, bounded.
    pub message: String,
}

impl std::fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(status) = self.status {
            write!(f, " (http {status}")?;
            if let Some(code) = &self.code {
                write!(f, " {code}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Delivers batches to one DCR stream.
pub struct Delivery {
    client: LogsIngestionClient,
    tokens: Arc<dyn TokenSource>,
    breaker: CircuitBreaker,
    compression: Option<Compression>,
    retry: RetryConfig,
    metrics: Metrics,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("url", &self.client.url())
            .field("breaker", &self.breaker)
            .field("compression", &self.compression.map(|c| c.level()))
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What one attempt left us to do.
enum Step {
    /// Final verdicts (accepted, failed, abandoned, or the halves of a split).
    Done(Vec<Delivered>),
    /// Retry after `delay`; `counts` says whether the attempt uses up `max_attempts`.
    Retry {
        batch: Batch,
        reason: &'static str,
        delay: Duration,
        counts: bool,
        status: Option<u16>,
        message: String,
    },
}

impl Delivery {
    /// A delivery service for the configured stream.
    pub fn new(
        client: LogsIngestionClient,
        tokens: Arc<dyn TokenSource>,
        breaker: CircuitBreaker,
        cfg: &SentinelConfig,
        metrics: Metrics,
    ) -> Self {
        let compression = match cfg.compression {
            SinkCompression::Gzip => Some(Compression::new(cfg.compression_level.clamp(1, 9))),
            SinkCompression::None => None,
        };
        Delivery {
            client,
            tokens,
            breaker,
            compression,
            retry: cfg.retry.clone(),
            metrics,
        }
    }

    /// The breaker the deliveries go through.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Delivers `batch`, returning one verdict per part (a 413 splits it). Never panics or errors: every
    /// record of the batch is in exactly one returned verdict.
    pub async fn deliver(&self, batch: Batch, cancel: &CancellationToken) -> Vec<Delivered> {
        self.deliver_boxed(batch, cancel).await
    }

    fn deliver_boxed<'a>(
        &'a self,
        batch: Batch,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Vec<Delivered>> {
        Box::pin(self.deliver_one(batch, cancel))
    }

    async fn deliver_one(&self, mut batch: Batch, cancel: &CancellationToken) -> Vec<Delivered> {
        if batch.is_empty() {
            return vec![Delivered::Accepted(batch)];
        }
        batch.finish();
        let body = self.encode(&batch).await;
        let mut backoff = Backoff::from_config(&self.retry);
        let mut counted_attempts: u32 = 0;
        let mut unauthorized_before = false;
        loop {
            let (retry_batch, reason, delay, status, message) = match self
                .attempt(batch, &body, cancel, &mut backoff, &mut unauthorized_before)
                .await
            {
                Step::Done(verdicts) => return verdicts,
                Step::Retry {
                    batch,
                    reason,
                    delay,
                    counts,
                    status,
                    message,
                } => {
                    if counts {
                        counted_attempts = counted_attempts.saturating_add(1);
                    }
                    (batch, reason, delay, status, message)
                }
            };
            batch = retry_batch;
            if self.retry.max_attempts != 0 && counted_attempts >= self.retry.max_attempts {
                tracing::warn!(
                    batch_size = batch.len(),
                    attempts = counted_attempts,
                    status,
                    error = %message,
                    "failed to deliver batch: retries exhausted"
                );
                let failure = DeliveryFailure {
                    reason: "retries_exhausted",
                    status,
                    code: None,
                    message,
                };
                return vec![Delivered::Failed { batch, failure }];
            }
            self.metrics.sentinel_retries.with_label_values(&[reason]).inc();
            self.metrics.sentinel_retry_wait.observe(delay.as_secs_f64());
            tracing::warn!(
                reason,
                status,
                attempt = counted_attempts,
                delay_ms = delay.as_millis() as u64,
                batch_size = batch.len(),
                error = %message,
                "unable to deliver batch; retrying"
            );
            if !delay.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => return vec![Delivered::Abandoned(batch)],
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    /// One attempt: breaker permit, token, request, verdict.
    async fn attempt(
        &self,
        batch: Batch,
        body: &RequestBody,
        cancel: &CancellationToken,
        backoff: &mut Backoff,
        unauthorized_before: &mut bool,
    ) -> Step {
        let Ok(permit) = self.breaker.ready(cancel).await else {
            return Step::Done(vec![Delivered::Abandoned(batch)]);
        };
        let token = tokio::select! {
            () = cancel.cancelled() => return Step::Done(vec![Delivered::Abandoned(batch)]),
            token = self.tokens.token() => token,
        };
        let token = match token {
            Ok(token) => token,
            Err(e) => {
                permit.failure();
                let delay = backoff.next_delay();
                return Step::Retry {
                    batch,
                    reason: "unauthorized",
                    delay,
                    counts: false,
                    status: None,
                    message: e.to_string(),
                };
            }
        };
        if cancel.is_cancelled() {
            // Shutdown: start no new request (one already on the wire is allowed to finish).
            return Step::Done(vec![Delivered::Abandoned(batch)]);
        }
        let outcome = self.client.send(body, &token).await;
        let status = outcome.status();
        let (reason, delay, counts, message) = match outcome {
            SendOutcome::Accepted => {
                permit.success();
                self.observe_accepted(&batch, body);
                return Step::Done(vec![Delivered::Accepted(batch)]);
            }
            SendOutcome::TooLarge => {
                permit.success();
                return Step::Done(self.split(batch, cancel).await);
            }
            SendOutcome::Rejected {
                status,
                code,
                message,
            } => {
                permit.success();
                tracing::warn!(
                    status,
                    code = code.as_deref(),
                    batch_size = batch.len(),
                    error = %message,
                    "logs ingestion rejected batch"
                );
                let failure = DeliveryFailure {
                    reason: "rejected",
                    status: Some(status),
                    code,
                    message,
                };
                return Step::Done(vec![Delivered::Failed { batch, failure }]);
            }
            SendOutcome::Throttled { retry_after } => {
                // Not a breaker failure (see the module docs): the permit is dropped unreported.
                drop(permit);
                (
                    "throttled",
                    backoff.delay_for(retry_after),
                    true,
                    "throttled (http 429)".to_owned(),
                )
            }
            SendOutcome::ServerError { status, retry_after } => {
                permit.failure();
                (
                    "server_error",
                    backoff.delay_for(retry_after),
                    true,
                    format!("server error (http {status})"),
                )
            }
            SendOutcome::Timeout => {
                permit.failure();
                (
                    "timeout",
                    backoff.next_delay(),
                    true,
                    "request timed out".to_owned(),
                )
            }
            SendOutcome::Connection(msg) => {
                permit.failure();
                ("connection", backoff.next_delay(), true, msg)
            }
            SendOutcome::Unauthorized if !*unauthorized_before => {
                // Most likely the token expired or was revoked: fetch a new one and retry at once.
                *unauthorized_before = true;
                drop(permit);
                self.tokens.invalidate();
                (
                    "unauthorized",
                    Duration::ZERO,
                    false,
                    "token refused (http 401); fetching a new one".to_owned(),
                )
            }
            SendOutcome::Unauthorized => {
                permit.failure();
                self.tokens.invalidate();
                (
                    "unauthorized",
                    backoff.next_delay(),
                    false,
                    "token refused again (http 401)".to_owned(),
                )
            }
            SendOutcome::Forbidden => {
                permit.failure();
                let message =
                    "forbidden (http 403): does the identity have Monitoring Metrics Publisher on the DCR?";
                ("forbidden", backoff.next_delay(), false, message.to_owned())
            }
        };
        Step::Retry {
            batch,
            reason,
            delay,
            counts,
            status,
            message,
        }
    }

    /// A 413: deliver each half on its own, or give up on a single record.
    async fn split(&self, batch: Batch, cancel: &CancellationToken) -> Vec<Delivered> {
        match batch.split() {
            Ok((first, second)) => {
                self.metrics.sentinel_batch_splits.inc();
                tracing::info!(
                    batch_size = first.len() + second.len(),
                    halves = ?(first.len(), second.len()),
                    "logs ingestion answered 413; splitting batch"
                );
                // One half after the other: the caller bounds concurrency by counting deliver() calls.
                let mut verdicts = self.deliver_boxed(first, cancel).await;
                verdicts.extend(self.deliver_boxed(second, cancel).await);
                verdicts
            }
            Err(single) => {
                let failure = DeliveryFailure {
                    reason: "too_large",
                    status: Some(413),
                    code: None,
                    message: format!(
                        "a single record of {} bytes is too large for the service",
                        single.body().len()
                    ),
                };
                tracing::warn!(
                    bytes = single.body().len(),
                    "logs ingestion refused a single record as too large"
                );
                vec![Delivered::Failed {
                    batch: single,
                    failure,
                }]
            }
        }
    }

    /// The request body: the finished batch, gzip-compressed on a blocking thread unless disabled.
    async fn encode(&self, batch: &Batch) -> RequestBody {
        let raw = Bytes::copy_from_slice(batch.body());
        let records = batch.len();
        let Some(level) = self.compression else {
            return RequestBody {
                bytes: raw,
                gzip: false,
                records,
            };
        };
        let input = raw.clone();
        match tokio::task::spawn_blocking(move || gzip(&input, level)).await {
            Ok(Ok(compressed)) => RequestBody {
                bytes: Bytes::from(compressed),
                gzip: true,
                records,
            },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "unable to gzip batch; sending it uncompressed");
                RequestBody {
                    bytes: raw,
                    gzip: false,
                    records,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "gzip task failed; sending batch uncompressed");
                RequestBody {
                    bytes: raw,
                    gzip: false,
                    records,
                }
            }
        }
    }

    fn observe_accepted(&self, batch: &Batch, body: &RequestBody) {
        let m = &self.metrics;
        m.batch_records.observe(batch.len() as f64);
        m.batch_bytes.observe(batch.body().len() as f64);
        m.batch_sent_bytes.observe(body.bytes.len() as f64);
        m.batch_duration.observe(batch.created().elapsed().as_secs_f64());
    }
}

fn gzip(input: &[u8], level: Compression) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(input.len() / 4 + 64), level);
    encoder.write_all(input)?;
    encoder.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resilience::BreakerState;
    use crate::sink::auth::{AccessToken, AuthError};
    use crate::sink::test_server::{Reply, Request, TestServer};
    use async_trait::async_trait;
    use s3_sentinel_api::config::{AuthMethod, CircuitBreakerConfig, SentinelAuthConfig};
    use s3_sentinel_api::duration::HumanDuration;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";

    /// Hands out `token-<n>`, where n counts invalidations.
    #[derive(Default)]
    struct FakeTokens {
        generation: AtomicUsize,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl TokenSource for FakeTokens {
        async fn token(&self) -> Result<AccessToken, AuthError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let n = self.generation.load(Ordering::SeqCst);
            Ok(AccessToken::new(format!("token-{n}"), Duration::from_secs(3600)))
        }
        fn invalidate(&self) {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn sentinel_config(endpoint: &str) -> SentinelConfig {
        SentinelConfig {
            endpoint: endpoint.to_owned(),
            dcr_immutable_id: DCR.into(),
            stream_name: "Custom-Test".into(),
            batch_size: 1000,
            batch_timeout: HumanDuration::from_secs(1),
            max_concurrent_batches: 4,
            compression: SinkCompression::Gzip,
            compression_level: 6,
            max_request_bytes: 1_000_000,
            request_timeout: HumanDuration::from_millis(2000),
            retry: RetryConfig {
                max_attempts: 5,
                initial_backoff: HumanDuration::from_millis(5),
                max_backoff: HumanDuration::from_millis(50),
            },
            auth: SentinelAuthConfig {
                method: AuthMethod::ClientSecret,
                tenant_id: None,
                client_id: None,
                client_secret_env: "X".into(),
                client_secret_file: None,
                federated_token_file: None,
                authority_host: None,
                scope: "s".into(),
            },
            allow_insecure_http: true,
            stream_columns: None,
            schema_violations: Default::default(),
        }
    }

    struct Harness {
        delivery: Delivery,
        tokens: Arc<FakeTokens>,
        metrics: Metrics,
    }

    fn harness(cfg: &SentinelConfig, breaker_failures: u32, breaker_reset_ms: u64) -> Harness {
        let metrics = Metrics::new().unwrap();
        let client =
            LogsIngestionClient::new(cfg, crate::sink::http_client(cfg).unwrap(), metrics.clone()).unwrap();
        let tokens = Arc::new(FakeTokens::default());
        let breaker = CircuitBreaker::new(
            &CircuitBreakerConfig {
                failure_threshold: breaker_failures,
                reset_timeout: HumanDuration::from_millis(breaker_reset_ms),
                success_threshold: 1,
            },
            metrics.clone(),
        );
        let delivery = Delivery::new(client, tokens.clone(), breaker, cfg, metrics.clone());
        Harness {
            delivery,
            tokens,
            metrics,
        }
    }

    fn batch(records: usize) -> Batch {
        let mut b = Batch::with_capacity(64);
        for i in 0..records {
            b.push(
                format!(r#"{{"i":{i},"msg":"hello world {i}"}}"#).as_bytes(),
                (i / 4) as u64,
                i as u64,
            );
        }
        b
    }

    fn accepted_records(verdicts: &[Delivered]) -> usize {
        verdicts
            .iter()
            .map(|v| {
                if let Delivered::Accepted(b) = v {
                    b.len()
                } else {
                    0
                }
            })
            .sum()
    }

    fn retries(m: &Metrics, reason: &str) -> u64 {
        m.sentinel_retries.with_label_values(&[reason]).get()
    }

    async fn deliver(h: &Harness, b: Batch) -> Vec<Delivered> {
        h.delivery.deliver(b, &CancellationToken::new()).await
    }

    #[tokio::test]
    async fn accepted_batch_is_gzip_with_the_right_url_and_headers() {
        let server = TestServer::start(|_, _| Reply::status(204)).await;
        let h = harness(&sentinel_config(&server.url()), 5, 1000);
        let mut expected = batch(10);
        expected.finish();
        let verdicts = deliver(&h, batch(10)).await;
        assert!(matches!(&verdicts[..], [Delivered::Accepted(b)] if b.len() == 10));

        let r = &server.requests()[0];
        assert_eq!(
            r.path,
            format!("/dataCollectionRules/{DCR}/streams/Custom-Test?api-version=2023-01-01")
        );
        assert_eq!(r.header("authorization"), Some("Bearer token-0"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(&r.body[..2], &[0x1f, 0x8b], "body must really be gzip");
        assert_eq!(r.decoded_body(), expected.body());

        let m = &h.metrics;
        assert_eq!(m.sentinel_requests.with_label_values(&["accepted"]).get(), 1);
        assert_eq!(m.batch_records.get_sample_sum(), 10.0);
        assert_eq!(m.batch_bytes.get_sample_sum(), expected.body().len() as f64);
        assert_eq!(m.batch_sent_bytes.get_sample_sum(), r.body.len() as f64);
        assert_eq!(m.batch_duration.get_sample_count(), 1);
        assert_eq!(m.inflight_batches.get(), 0);
    }

    #[tokio::test]
    async fn uncompressed_when_compression_is_none() {
        let server = TestServer::start(|_, _| Reply::status(204)).await;
        let mut cfg = sentinel_config(&server.url());
        cfg.compression = SinkCompression::None;
        let h = harness(&cfg, 5, 1000);
        let verdicts = deliver(&h, batch(3)).await;
        assert_eq!(accepted_records(&verdicts), 3);
        let r = &server.requests()[0];
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.records().len(), 3);
    }

    #[tokio::test]
    async fn throttling_honours_retry_after_and_does_not_trip_the_breaker() {
        let server = TestServer::start(|_, i| match i {
            0 => Reply::status(429).header("retry-after-ms", "150"),
            1 => Reply::status(429).header("Retry-After", "30"), // capped at max_backoff (200 ms)
            _ => Reply::status(204),
        })
        .await;
        let mut cfg = sentinel_config(&server.url());
        cfg.retry.max_backoff = HumanDuration::from_millis(200);
        let h = harness(&cfg, 1, 60_000);
        let started = Instant::now();
        let verdicts = deliver(&h, batch(2)).await;
        let elapsed = started.elapsed();
        assert_eq!(accepted_records(&verdicts), 2);
        assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert_eq!(retries(&h.metrics, "throttled"), 2);
        assert!((h.metrics.sentinel_retry_wait.get_sample_sum() - 0.35).abs() < 1e-9);
        assert_eq!(h.delivery.breaker().state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn server_error_then_success() {
        let server = TestServer::start(|_, i| {
            if i == 0 {
                Reply::status(503)
            } else {
                Reply::status(204)
            }
        })
        .await;
        let h = harness(&sentinel_config(&server.url()), 5, 1000);
        let verdicts = deliver(&h, batch(4)).await;
        assert_eq!(accepted_records(&verdicts), 4);
        assert_eq!(retries(&h.metrics, "server_error"), 1);
        assert_eq!(server.count(), 2);
    }

    #[tokio::test]
    async fn too_large_splits_until_every_record_is_accepted() {
        // The server takes at most 3 records per request.
        let server = TestServer::start(|r: &Request, _| {
            if r.records().len() > 3 {
                Reply::status(413)
            } else {
                Reply::status(204)
            }
        })
        .await;
        let h = harness(&sentinel_config(&server.url()), 5, 1000);
        let verdicts = deliver(&h, batch(10)).await;
        assert!(verdicts.iter().all(|v| matches!(v, Delivered::Accepted(_))));
        assert_eq!(accepted_records(&verdicts), 10);
        let order: Vec<u64> = verdicts
            .iter()
            .flat_map(|v| match v {
                Delivered::Accepted(b) => b.records().map(|r| r.position).collect(),
                _ => vec![],
            })
            .collect();
        assert_eq!(
            order,
            (0..10).collect::<Vec<u64>>(),
            "every record once, in order"
        );
        let received: usize = server
            .requests()
            .iter()
            .filter(|r| r.records().len() <= 3)
            .map(|r| r.records().len())
            .sum();
        assert_eq!(received, 10);
        assert!(h.metrics.sentinel_batch_splits.get() >= 3);
    }

    #[tokio::test]
    async fn single_record_too_large_is_failed() {
        let server = TestServer::start(|_, _| Reply::status(413)).await;
        let h = harness(&sentinel_config(&server.url()), 5, 1000);
        let verdicts = deliver(&h, batch(1)).await;
        match &verdicts[..] {
            [Delivered::Failed { batch, failure }] => {
                assert_eq!(batch.len(), 1);
                assert_eq!((failure.reason, failure.status), ("too_large", Some(413)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_request_is_rejected_with_the_service_code_and_not_retried() {
        let server = TestServer::start(|_, _| {
            Reply::json(
                400,
                r#"{"error":{"code":"InvalidStream","message":"Stream Custom-Test is not in the DCR"}}"#,
            )
        })
        .await;
        let h = harness(&sentinel_config(&server.url()), 5, 1000);
        let verdicts = deliver(&h, batch(3)).await;
        match &verdicts[..] {
            [Delivered::Failed { batch, failure }] => {
                assert_eq!(batch.len(), 3);
                assert_eq!(failure.reason, "rejected");
                assert_eq!(failure.status, Some(400));
                assert_eq!(failure.code.as_deref(), Some("InvalidStream"));
                assert!(failure.message.contains("not in the DCR"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.count(), 1);
        assert_eq!(
            h.metrics.sentinel_requests.with_label_values(&["rejected"]).get(),
            1
        );
    }

    #[tokio::test]
    async fn not_implemented_is_rejected_not_retried() {
        let server = TestServer::start(|_, _| Reply::status(501)).await;
        let h = harness(&sentinel_config(&server.url()), 5, 1000);
        let verdicts = deliver(&h, batch(1)).await;
        assert!(
            matches!(&verdicts[..], [Delivered::Failed { failure, .. }] if failure.status == Some(501) && failure.reason == "rejected")
        );
        assert_eq!(server.count(), 1);
    }

    #[tokio::test]
    async fn unauthorized_once_refreshes_the_token_and_retries_at_once() {
        let server = TestServer::start(|r: &Request, _| {
            if r.header("authorization") == Some("Bearer token-0") {
                Reply::status(401)
            } else {
                Reply::status(204)
            }
        })
        .await;
        let h = harness(&sentinel_config(&server.url()), 1, 60_000);
        let verdicts = deliver(&h, batch(2)).await;
        assert_eq!(accepted_records(&verdicts), 2);
        assert_eq!(
            h.tokens.generation.load(Ordering::SeqCst),
            1,
            "token invalidated once"
        );
        assert_eq!(
            server.requests()[1].header("authorization"),
            Some("Bearer token-1")
        );
        assert_eq!(retries(&h.metrics, "unauthorized"), 1);
        assert_eq!(
            h.delivery.breaker().state(),
            BreakerState::Closed,
            "a first 401 is not a breaker failure"
        );
    }

    #[tokio::test]
    async fn forbidden_is_retried_until_shutdown_never_dead_lettered() {
        let server = TestServer::start(|_, _| Reply::status(403)).await;
        let mut cfg = sentinel_config(&server.url());
        cfg.retry.max_attempts = 1;
        let h = harness(&cfg, 2, 60_000);
        let cancel = CancellationToken::new();
        let stopper = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                cancel.cancel();
            })
        };
        let verdicts = h.delivery.deliver(batch(2), &cancel).await;
        stopper.await.unwrap();
        assert!(
            matches!(&verdicts[..], [Delivered::Abandoned(b)] if b.len() == 2),
            "{verdicts:?}"
        );
        assert_eq!(server.count(), 2, "the breaker opened after two auth failures");
        assert_eq!(h.delivery.breaker().state(), BreakerState::Open);
        assert!(h.tokens.calls.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn connection_drop_and_timeout_are_retried() {
        let server = TestServer::start(|_, i| match i {
            0 => Reply::Drop,
            1 => Reply::Delay(Duration::from_millis(400), Box::new(Reply::status(204))),
            _ => Reply::status(204),
        })
        .await;
        let mut cfg = sentinel_config(&server.url());
        cfg.request_timeout = HumanDuration::from_millis(150);
        let h = harness(&cfg, 5, 1000);
        let verdicts = deliver(&h, batch(3)).await;
        assert_eq!(accepted_records(&verdicts), 3);
        assert_eq!(retries(&h.metrics, "connection"), 1);
        assert_eq!(retries(&h.metrics, "timeout"), 1);
        assert_eq!(
            h.metrics.sentinel_requests.with_label_values(&["timeout"]).get(),
            1
        );
        assert_eq!(h.metrics.inflight_batches.get(), 0);
    }

    #[tokio::test]
    async fn retries_are_exhausted_after_max_attempts() {
        let server = TestServer::start(|_, _| Reply::status(500)).await;
        let mut cfg = sentinel_config(&server.url());
        cfg.retry.max_attempts = 3;
        let h = harness(&cfg, 100, 1000);
        let verdicts = deliver(&h, batch(2)).await;
        match &verdicts[..] {
            [Delivered::Failed { failure, .. }] => {
                assert_eq!((failure.reason, failure.status), ("retries_exhausted", Some(500)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.count(), 3);
        assert_eq!(retries(&h.metrics, "server_error"), 2);
    }

    #[tokio::test]
    async fn breaker_opens_and_the_next_attempt_waits_for_the_reset() {
        let server = TestServer::start(|_, i| {
            if i < 2 {
                Reply::status(500)
            } else {
                Reply::status(204)
            }
        })
        .await;
        let mut cfg = sentinel_config(&server.url());
        cfg.retry.max_attempts = 0;
        let h = harness(&cfg, 2, 300);
        let mut state = h.delivery.breaker().subscribe();
        let started = Instant::now();
        let verdicts = deliver(&h, batch(2)).await;
        assert_eq!(accepted_records(&verdicts), 2);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.count(), 3);
        assert!(state.has_changed().unwrap());
        assert_eq!(*state.borrow_and_update(), BreakerState::Closed);
        let t = |s: &str| h.metrics.breaker_transitions.with_label_values(&[s]).get();
        assert_eq!((t("open"), t("half_open"), t("closed")), (1, 1, 1));
    }

    #[tokio::test]
    async fn cancellation_while_backing_off_abandons_the_batch() {
        let server = TestServer::start(|_, _| Reply::status(503).header("retry-after", "10")).await;
        let mut cfg = sentinel_config(&server.url());
        cfg.retry.max_backoff = HumanDuration::from_secs(10);
        let h = harness(&cfg, 100, 1000);
        let cancel = CancellationToken::new();
        let stopper = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                cancel.cancel();
            })
        };
        let started = Instant::now();
        let verdicts = h.delivery.deliver(batch(5), &cancel).await;
        stopper.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(&verdicts[..], [Delivered::Abandoned(b)] if b.len() == 5),
            "{verdicts:?}"
        );
        assert_eq!(server.count(), 1);
    }

    #[tokio::test]
    async fn no_new_request_after_cancellation() {
        let server = TestServer::start(|_, _| Reply::status(413)).await;
        let h = harness(&sentinel_config(&server.url()), 5, 1000);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let verdicts = h.delivery.deliver(batch(4), &cancel).await;
        assert!(
            matches!(&verdicts[..], [Delivered::Abandoned(b)] if b.len() == 4),
            "{verdicts:?}"
        );
        assert_eq!(server.count(), 0);
    }

    #[tokio::test]
    async fn cancellation_while_the_breaker_is_open_sends_nothing() {
        let server = TestServer::start(|_, _| Reply::status(204)).await;
        let h = harness(&sentinel_config(&server.url()), 1, 60_000);
        let cancel = CancellationToken::new();
        h.delivery.breaker().ready(&cancel).await.unwrap().failure();
        assert_eq!(h.delivery.breaker().state(), BreakerState::Open);
        cancel.cancel();
        let verdicts = h.delivery.deliver(batch(1), &cancel).await;
        assert!(matches!(&verdicts[..], [Delivered::Abandoned(_)]));
        assert_eq!(server.count(), 0);
    }
}
