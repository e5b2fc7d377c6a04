//! Dead-letter sinks: where records that cannot be delivered are kept, with the reason.
//!
//! Consumes [`DeadLetterEntry`]s (a record or object the pipeline gives up on, with the reason and its
//! raw bytes) and produces durable JSON lines in a local directory ([`LocalDirSink`]) or gzip objects
//! under an S3 prefix ([`S3PrefixSink`]). A [`DeadLetterSink::write`] returns only once the entries are
//! durable, so the pipeline acknowledges records only after that: nothing is dropped silently.
//!
//! # Line format
//!
//! One JSON object per line (UTF-8, `\n`-terminated); users replay from it, so the keys are stable:
//!
//! ```json
//! {"time":"2026-01-02T03:04:05.123456789Z","reason":"oversize","detail":"record is 600000 bytes",
//!  "source":{"bucket":"logs","key":"AWSLogs/1/CloudTrail/x.json.gz","position":17},
//!  "raw":"{\"eventName\":…}","raw_truncated":false,"status":null,"service_code":null,
//!  "format":"cloudtrail"}
//! ```
//!
//! - `time`: when the entry was written (RFC 3339, UTC).
//! - `reason`: a fixed code (`oversize`, `parse`, `rejected`, `retries_exhausted`, …); `detail`: text.
//! - `source.position`: the record's line number (or index) in the decoded object, `null` for a whole
//!   object.
//! - `raw`: the record as text when its bytes are valid UTF-8; otherwise `raw_base64` (standard
//!   alphabet, padded) holds them and `raw` is absent. Exactly one of the two is present.
//! - `raw_truncated`: whether `raw` holds only the beginning of the record.
//! - `status` / `service_code`: the HTTP status and service error code when Sentinel refused the
//!   record, else `null`.
//! - `format`: the configured log format of the source object.

pub mod local;
pub mod s3;

pub use local::LocalDirSink;
pub use s3::S3PrefixSink;

use crate::telemetry::Metrics;
use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use s3_sentinel_api::config::DeadLetterConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// One record (or whole object) the pipeline gives up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterEntry {
    /// Fixed reason code, e.g. `oversize`, `parse`, `rejected`, `retries_exhausted` (a metric label).
    pub reason: &'static str,
    /// Human-readable detail (error text).
    pub detail: String,
    /// Source bucket.
    pub bucket: String,
    /// Source object key.
    pub key: String,
    /// Record position (line number or index) in the decoded object; `None` for a whole object.
    pub position: Option<u64>,
    /// The raw record bytes, possibly only their beginning (see `raw_truncated`).
    pub raw: Vec<u8>,
    /// Whether `raw` was cut short.
    pub raw_truncated: bool,
    /// HTTP status when the destination refused the record.
    pub status: Option<u16>,
    /// The destination's error code when it gave one.
    pub service_code: Option<String>,
    /// The source's log format.
    pub format: &'static str,
}

/// One dead-letter line as read back (the owned form of the line format in the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterLine {
    /// When the entry was written.
    pub time: DateTime<Utc>,
    /// Reason code.
    pub reason: String,
    /// Detail text.
    pub detail: String,
    /// Where the record came from.
    pub source: DeadLetterSource,
    /// The record as text, when it was valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The record as base64, when it was not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// Whether the raw bytes were cut short.
    pub raw_truncated: bool,
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// Service error code, if any.
    pub service_code: Option<String>,
    /// Log format.
    pub format: String,
}

/// The `source` object of a dead-letter line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterSource {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// Record position, `null` for a whole object.
    pub position: Option<u64>,
}

impl DeadLetterLine {
    /// The raw record bytes, decoding `raw_base64` when that is what the line holds.
    pub fn raw_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        match (&self.raw, &self.raw_base64) {
            (Some(text), _) => Ok(text.as_bytes().to_vec()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64),
            (None, None) => Ok(Vec::new()),
        }
    }
}

#[derive(Serialize)]
struct LineRef<'a> {
    time: String,
    reason: &'a str,
    detail: &'a str,
    source: SourceRef<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    raw_truncated: bool,
    status: Option<u16>,
    service_code: Option<&'a str>,
    format: &'a str,
}

#[derive(Serialize)]
struct SourceRef<'a> {
    bucket: &'a str,
    key: &'a str,
    position: Option<u64>,
}

/// Appends `entries` as dead-letter lines (see the module docs) stamped with `time` to `out`.
pub fn encode_lines(
    entries: &[DeadLetterEntry],
    time: DateTime<Utc>,
    out: &mut Vec<u8>,
) -> Result<(), DeadLetterError> {
    let time = time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    for e in entries {
        let (raw, raw_base64) = match std::str::from_utf8(&e.raw) {
            Ok(text) => (Some(text), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&e.raw)),
            ),
        };
        let line = LineRef {
            time: time.clone(),
            reason: e.reason,
            detail: &e.detail,
            source: SourceRef {
                bucket: &e.bucket,
                key: &e.key,
                position: e.position,
            },
            raw,
            raw_base64,
            raw_truncated: e.raw_truncated,
            status: e.status,
            service_code: e.service_code.as_deref(),
            format: e.format,
        };
        serde_json::to_writer(&mut *out, &line).map_err(|source| DeadLetterError::Encode {
            bucket: e.bucket.clone(),
            key: e.key.clone(),
            source,
        })?;
        out.push(b'\n');
    }
    Ok(())
}

/// Why dead-letter entries could not be made durable. The caller must not acknowledge the records.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The dead-letter directory could not be created.
    #[error("unable to create dead-letter directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A dead-letter file could not be created or opened.
    #[error("unable to open dead-letter file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing or syncing a dead-letter file failed.
    #[error("unable to write dead-letter file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An entry could not be encoded as JSON.
    #[error("unable to encode dead-letter entry for s3://{bucket}/{key}: {source}")]
    Encode {
        /// Source bucket of the entry.
        bucket: String,
        /// Source key of the entry.
        key: String,
        /// The serialiser's error.
        source: serde_json::Error,
    },
    /// Compressing a dead-letter object failed.
    #[error("unable to compress dead-letter object s3://{bucket}/{key}: {source}")]
    Compress {
        /// Destination bucket.
        bucket: String,
        /// Destination key.
        key: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PUT of a dead-letter object failed.
    #[error("unable to write dead-letter object s3://{bucket}/{key}: {message}")]
    Put {
        /// Destination bucket.
        bucket: String,
        /// Destination key.
        key: String,
        /// The SDK's error with its causes.
        message: String,
    },
    /// `dead_letter.type` is `s3` but no S3 client was supplied.
    #[error("failed to create dead-letter sink for bucket {bucket}: no s3 client was given")]
    MissingS3Client {
        /// The configured dead-letter bucket.
        bucket: String,
    },
    /// A blocking I/O task did not complete.
    #[error("unable to run dead-letter i/o: {source}")]
    Task {
        /// The join error.
        #[from]
        source: tokio::task::JoinError,
    },
}

/// Durable storage for entries the pipeline gives up on.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Stores `entries`; returns only once they are durable. On error none of them may be assumed
    /// stored (a retry may store some twice).
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), DeadLetterError>;
}

/// Counts `dead_letter_writes{outcome}` per write and `records_dead_lettered{reason}` per stored entry
/// around another sink.
pub struct Instrumented {
    inner: Arc<dyn DeadLetterSink>,
    metrics: Metrics,
}

impl Instrumented {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn DeadLetterSink>, metrics: Metrics) -> Instrumented {
        Instrumented { inner, metrics }
    }
}

#[async_trait]
impl DeadLetterSink for Instrumented {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), DeadLetterError> {
        if entries.is_empty() {
            return Ok(());
        }
        match self.inner.write(entries).await {
            Ok(()) => {
                self.metrics.dead_letter_writes.with_label_values(&["ok"]).inc();
                for e in entries {
                    self.metrics
                        .records_dead_lettered
                        .with_label_values(&[e.reason])
                        .inc();
                }
                Ok(())
            }
            Err(error) => {
                self.metrics
                    .dead_letter_writes
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(%error, entries = entries.len(), "unable to write dead-letter entries");
                Err(error)
            }
        }
    }
}

/// Builds the configured sink, instrumented with `metrics`. `s3` is required for `type: s3` (the
/// source's client, so the same credentials and endpoint apply).
pub fn from_config(
    cfg: &DeadLetterConfig,
    s3: Option<aws_sdk_s3::Client>,
    metrics: Metrics,
) -> Result<Arc<dyn DeadLetterSink>, DeadLetterError> {
    let inner: Arc<dyn DeadLetterSink> = match cfg {
        DeadLetterConfig::Local { directory } => Arc::new(LocalDirSink::new(directory.clone())),
        DeadLetterConfig::S3 { bucket, prefix } => {
            let client = s3.ok_or_else(|| DeadLetterError::MissingS3Client {
                bucket: bucket.clone(),
            })?;
            Arc::new(S3PrefixSink::new(client, bucket.clone(), prefix.clone()))
        }
    };
    Ok(Arc::new(Instrumented::new(inner, metrics)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(reason: &'static str, key: &str, raw: &[u8]) -> DeadLetterEntry {
        DeadLetterEntry {
            reason,
            detail: format!("detail for {key}"),
            bucket: "logs".into(),
            key: key.into(),
            position: Some(7),
            raw: raw.to_vec(),
            raw_truncated: false,
            status: Some(400),
            service_code: Some("InvalidRecord".into()),
            format: "cloudtrail",
        }
    }

    #[test]
    fn line_has_every_field_and_parses_back() {
        let mut out = Vec::new();
        let e = entry("rejected", "a/b.json", b"{\"x\":1}");
        encode_lines(std::slice::from_ref(&e), Utc::now(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "time",
            "reason",
            "detail",
            "source",
            "raw",
            "raw_truncated",
            "status",
            "service_code",
            "format",
        ] {
            assert!(value.get(key).is_some(), "missing {key} in {text}");
        }
        assert!(value.get("raw_base64").is_none());
        let line: DeadLetterLine = serde_json::from_str(&text).unwrap();
        assert_eq!(line.reason, "rejected");
        assert_eq!(line.detail, e.detail);
        assert_eq!(
            line.source,
            DeadLetterSource {
                bucket: "logs".into(),
                key: "a/b.json".into(),
                position: Some(7)
            }
        );
        assert_eq!(line.raw.as_deref(), Some("{\"x\":1}"));
        assert_eq!(
            (line.status, line.service_code.as_deref()),
            (Some(400), Some("InvalidRecord"))
        );
        assert_eq!(line.format, "cloudtrail");
        assert!(!line.raw_truncated);
    }

    #[test]
    fn non_utf8_raw_is_base64() {
        let mut out = Vec::new();
        let raw = [0xff, 0xfe, b'a', 0x00];
        encode_lines(&[entry("parse", "k", &raw)], Utc::now(), &mut out).unwrap();
        let line: DeadLetterLine = serde_json::from_slice(&out).unwrap();
        assert!(line.raw.is_none());
        assert!(line.raw_base64.is_some());
        assert_eq!(line.raw_bytes().unwrap(), raw);
    }

    #[tokio::test]
    async fn from_config_requires_a_client_for_s3_and_counts_writes() {
        let metrics = Metrics::new().unwrap();
        let cfg = DeadLetterConfig::S3 {
            bucket: "dl".into(),
            prefix: "p/".into(),
        };
        assert!(matches!(
            from_config(&cfg, None, metrics.clone()),
            Err(DeadLetterError::MissingS3Client { .. })
        ));

        let dir = tempfile::tempdir().unwrap();
        let cfg = DeadLetterConfig::Local {
            directory: dir.path().to_path_buf(),
        };
        let sink = from_config(&cfg, None, metrics.clone()).unwrap();
        sink.write(&[
            entry("parse", "a", b"1"),
            entry("parse", "b", b"2"),
            entry("oversize", "c", b"3"),
        ])
        .await
        .unwrap();
        assert_eq!(metrics.dead_letter_writes.with_label_values(&["ok"]).get(), 1);
        assert_eq!(
            metrics.records_dead_lettered.with_label_values(&["parse"]).get(),
            2
        );
        assert_eq!(
            metrics
                .records_dead_lettered
                .with_label_values(&["oversize"])
                .get(),
            1
        );
    }
}
