//! Reads one object: rate-limited GetObject, streamed body, decode and parse on a blocking thread.
//!
//! The body is never held whole: the S3 byte stream is bridged into a synchronous reader, decompressed
//! with a fixed-size buffer and parsed record by record. Records leave in chunks of about 64 KiB through a
//! bounded channel, so a slow sink stops the download instead of filling memory.

use super::Shared;
use super::dead_letters::DeadLetterJob;
use super::record_checks::{Scratch, Verdict};
use crate::batch::ObjectId;
use crate::batch::batcher::RecordChunk;
use crate::dead_letter::DeadLetterEntry;
use crate::s3::{S3Failure, classify, describe};
use crate::source::{ObjectRef, WorkItem};
use crate::tracker::ReadEnd;
use s3_sentinel_api::FormatChoice;
use s3_sentinel_parse::{
    LogFormat, ParseError, ParseOptions, RecordSink, RejectReason, Rejection, SinkClosed, detect_format,
    open_decoded, parse_object,
};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span, warn};

/// Records are handed to the batcher in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// Why one attempt at an object failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// GetObject failed.
    #[error("unable to download s3://{bucket}/{key}: {detail}")]
    Download {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Classification.
        kind: S3Failure,
        /// Service code and message or transport cause.
        detail: String,
    },
    /// Decoding or parsing failed.
    #[error("failed to read s3://{bucket}/{key}: {source}")]
    Parse {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The parser's error.
        source: ParseError,
    },
    /// `parser.format` is `auto` and the key matches none of the known layouts: the object is
    /// dead-lettered (reason `unknown_format`) rather than parsed as a guess.
    #[error(
        "failed to detect the log format of s3://{bucket}/{key} from its key; set parser.format explicitly for this prefix"
    )]
    UnknownFormat {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The blocking parse task panicked or was cancelled.
    #[error("parse task for s3://{bucket}/{key} ended abnormally: {detail}")]
    Task {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Join error text.
        detail: String,
    },
}

impl ObjectError {
    /// Bounded label for `objects_failed{reason}`.
    pub fn category(&self) -> &'static str {
        match self {
            ObjectError::Download {
                kind: S3Failure::NotFound,
                ..
            } => "not_found",
            ObjectError::Download { .. } => "download",
            ObjectError::Parse { source, .. } => source.category(),
            ObjectError::UnknownFormat { .. } => "unknown_format",
            ObjectError::Task { .. } => "task",
        }
    }

    /// True when retrying cannot help: the object is dead-lettered (or, if gone, skipped).
    pub fn is_permanent(&self) -> bool {
        match self {
            ObjectError::Download { kind, .. } => *kind == S3Failure::NotFound,
            ObjectError::Parse { source, .. } => source.is_permanent(),
            ObjectError::UnknownFormat { .. } => true,
            ObjectError::Task { .. } => false,
        }
    }
}

/// Processes one work item to its end (the tracker reports the outcome once deliveries finish).
pub(super) async fn process(item: WorkItem, shared: Arc<Shared>, outlets: Outlets) {
    let (id, object, possible_duplicate) = shared.tracker.register(item);
    shared.metrics.objects_pending.dec();
    let span = info_span!("object", bucket = %object.bucket, key = %object.key, size = object.size);
    async move {
        let attempts = shared.config.aws.object_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut emitted = 0u64;
            let result = read_once(id, &object, possible_duplicate || attempt > 1, &shared, &outlets, &mut emitted).await;
            match result {
                Ok(stats) => {
                    debug!(records = stats.records, rejected = stats.rejected, skipped = stats.skipped, "object parsed");
                    shared.tracker.read_ended(id, ReadEnd::Parsed { skipped: stats.object_skipped });
                    return;
                }
                Err(err) => {
                    shared.metrics.objects_failed.with_label_values(&[err.category()]).inc();
                    if let ObjectError::Parse { source: ParseError::SinkClosed, .. } = err {
                        shared.tracker.read_ended(id, ReadEnd::RetryLater);
                        return;
                    }
                    if err.is_permanent() {
                        warn!(error = %err, reason = err.category(), "object cannot be read; dead-lettering it");
                        dead_letter_object(id, &object, &err, &shared, &outlets).await;
                        shared.tracker.read_ended(id, ReadEnd::PermanentFailure);
                        return;
                    }
                    // Retrying in place is only safe while nothing of this attempt was handed on;
                    // otherwise the source offers the object again later (its records count as
                    // possible duplicates then).
                    if emitted == 0 && attempt < attempts && !shared.abort.is_cancelled() {
                        let wait = Duration::from_millis(250 * (1 << attempt.min(6)));
                        warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "unable to read object; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => continue,
                            () = shared.abort.cancelled() => {}
                        }
                    } else {
                        warn!(error = %err, attempt, "unable to read object; it will be offered again");
                    }
                    shared.tracker.read_ended(id, ReadEnd::RetryLater);
                    return;
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn dead_letter_object(
    id: ObjectId,
    object: &ObjectRef,
    err: &ObjectError,
    shared: &Shared,
    outlets: &Outlets,
) {
    let entry = DeadLetterEntry {
        reason: err.category(),
        detail: error_chain(err),
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        position: None,
        raw: Vec::new(),
        raw_truncated: false,
        status: None,
        service_code: None,
        format: shared.format,
    };
    shared.tracker.add_pending(id, 1);
    shared
        .metrics
        .records_failed
        .with_label_values(&[err.category()])
        .inc();
    if outlets
        .dead_letters
        .send(DeadLetterJob {
            entry,
            object: Some(id),
        })
        .await
        .is_err()
    {
        // The dead-letter writer is gone (abort): the object stays unfinished and is read again.
        shared.tracker.abandoned(&[crate::batch::ObjectSpan {
            object: id,
            records: 1,
        }]);
    }
}

async fn read_once(
    id: ObjectId,
    object: &ObjectRef,
    possible_duplicate: bool,
    shared: &Arc<Shared>,
    outlets: &Outlets,
    emitted: &mut u64,
) -> Result<s3_sentinel_parse::ParseStats, ObjectError> {
    // Resolved before the download: an object of unknown format costs no GetObject.
    let format = resolve_format(shared, object)?;
    shared.limiter.acquire().await;
    let started = Instant::now();
    let resp = shared
        .s3
        .get_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await;
    shared
        .metrics
        .s3_request_duration
        .with_label_values(&["get"])
        .observe(started.elapsed().as_secs_f64());
    let resp = match resp {
        Ok(r) => {
            shared.metrics.s3_requests.with_label_values(&["get", "ok"]).inc();
            shared.limiter.recovered();
            r
        }
        Err(e) => {
            let kind = classify(&e);
            shared
                .metrics
                .s3_requests
                .with_label_values(&["get", kind.as_str()])
                .inc();
            if kind == S3Failure::SlowDown {
                warn!(
                    rate_limited = true,
                    "s3 answered SlowDown; backing off all s3 requests"
                );
                shared.limiter.slow_down();
            }
            return Err(ObjectError::Download {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                kind,
                detail: describe(&e),
            });
        }
    };
    debug!(
        latency = started.elapsed().as_secs_f64(),
        "s3 get_object headers received"
    );

    let body = CountingRead {
        inner: resp.body.into_async_read(),
        counter: shared.metrics.s3_bytes_downloaded.clone(),
    };
    let reader = tokio_util::io::SyncIoBridge::new(body);
    let shared_for_parse = Arc::clone(shared);
    let key = object.key.clone();
    let outlets = outlets.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let shared = shared_for_parse;
        let cfg = &shared.config.parser;
        let mut sink = ChunkSink::new(id, &shared, &outlets, possible_duplicate, format);
        let result = (|| {
            let mut decoded =
                open_decoded(reader, cfg.compression, cfg.max_decompressed_bytes).map_err(decode_error)?;
            let opts = ParseOptions {
                max_record_bytes: cfg.max_size_bytes as usize,
                object_key: key,
            };
            let stats = parse_object(format, &mut decoded, &opts, &mut sink);
            shared
                .metrics
                .bytes_processed
                .with_label_values(&[shared.format])
                .inc_by(decoded.decoded_bytes());
            stats
        })();
        let flushed = sink.flush();
        let emitted = sink.emitted;
        let stats = result.and_then(|s| flushed.map(|()| s).map_err(|_| ParseError::SinkClosed));
        (stats, emitted)
    })
    .await;
    match joined {
        Ok((result, n)) => {
            *emitted = n;
            result.map_err(|source| ObjectError::Parse {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                source,
            })
        }
        Err(e) => Err(ObjectError::Task {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            detail: e.to_string(),
        }),
    }
}

/// The format to parse `object` in: the configured one, or with `auto` the one its key implies.
/// Detections are counted per attempt, by detected format name or `unknown`.
fn resolve_format(shared: &Shared, object: &ObjectRef) -> Result<LogFormat, ObjectError> {
    match shared.config.parser.format {
        FormatChoice::Fixed(format) => Ok(format),
        FormatChoice::Auto => {
            let detected = detect_format(&object.key);
            shared
                .metrics
                .format_detections
                .with_label_values(&[detected.map_or("unknown", LogFormat::as_str)])
                .inc();
            detected.ok_or_else(|| ObjectError::UnknownFormat {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
            })
        }
    }
}

/// An error and all its causes, for dead-letter details and logs.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Keeps the decoder's classification: an unreadable stream header is corrupt data (permanent), a
/// read error from S3 keeps its own kind (retried), and the size cap stays recognisable.
fn decode_error(err: s3_sentinel_parse::DecodeError) -> ParseError {
    use s3_sentinel_parse::DecodeError;
    match err {
        DecodeError::Read(e) => ParseError::Io(e),
        DecodeError::Init { source, .. } if source.kind() == std::io::ErrorKind::InvalidData => {
            ParseError::Io(source)
        }
        other => ParseError::Io(std::io::Error::other(other)),
    }
}

/// The parser's [`RecordSink`]: runs the per-record checks, packs records into chunks for the
/// batcher and rejections into dead-letter jobs, registering each with the tracker before handing it on.
struct ChunkSink<'a> {
    id: ObjectId,
    /// The object's format (detected or configured): the `format` of its dead-letter entries.
    format: LogFormat,
    scratch: Scratch,
    shared: &'a Shared,
    outlets: &'a Outlets,
    chunk: RecordChunk,
    possible_duplicate: bool,
    emitted: u64,
    object: ObjectRef,
}

impl<'a> ChunkSink<'a> {
    fn new(
        id: ObjectId,
        shared: &'a Shared,
        outlets: &'a Outlets,
        possible_duplicate: bool,
        format: LogFormat,
    ) -> ChunkSink<'a> {
        let object = shared.tracker.object(id).unwrap_or_else(|| ObjectRef {
            bucket: String::new(),
            key: String::new(),
            prefix: String::new(),
            size: 0,
            etag: None,
            last_modified: None,
        });
        ChunkSink {
            id,
            format,
            scratch: Scratch::default(),
            shared,
            outlets,
            chunk: RecordChunk::new(id, CHUNK_BYTES + 4096),
            possible_duplicate,
            emitted: 0,
            object,
        }
    }

    fn flush(&mut self) -> Result<(), SinkClosed> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, RecordChunk::new(self.id, CHUNK_BYTES + 4096));
        let n = chunk.len() as u64;
        self.shared.tracker.add_pending(self.id, n);
        self.shared
            .metrics
            .records_read
            .with_label_values(&[self.shared.format])
            .inc_by(n);
        if self.possible_duplicate {
            self.shared.metrics.records_redelivered.inc_by(n);
        }
        if self.outlets.records.blocking_send(chunk).is_err() {
            // Never delivered: take them back off the books so the attempt can end.
            self.shared.tracker.abandoned(&[crate::batch::ObjectSpan {
                object: self.id,
                records: n as u32,
            }]);
            return Err(SinkClosed);
        }
        self.emitted += n;
        Ok(())
    }
}

impl RecordSink for ChunkSink<'_> {
    fn record(&mut self, json: &[u8], position: u64) -> Result<(), SinkClosed> {
        if self.shared.abort.is_cancelled() {
            return Err(SinkClosed);
        }
        match self.shared.checks.inspect(json, &mut self.scratch) {
            Verdict::Send => self.chunk.push(json, position),
            Verdict::SendRewritten => self.chunk.push(&self.scratch.record, position),
            Verdict::DeadLetter(detail) => {
                return self.reject(Rejection {
                    position,
                    reason: RejectReason::SchemaMismatch,
                    detail,
                    raw: json,
                    raw_truncated: false,
                });
            }
        }
        if self.chunk.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn field_not_in_table(&mut self, field: &str, values: u64) {
        self.shared
            .metrics
            .fields_not_in_table
            .with_label_values(&[self.shared.format])
            .inc_by(values);
        self.shared
            .metrics
            .schema_findings
            .record_n(field, "not_in_table", values, chrono::Utc::now);
    }

    fn reject(&mut self, rejection: Rejection<'_>) -> Result<(), SinkClosed> {
        let reason = rejection.reason.as_str();
        self.shared
            .metrics
            .records_failed
            .with_label_values(&[reason])
            .inc();
        // A rejected line was still read: read = accepted + dead-lettered.
        self.shared
            .metrics
            .records_read
            .with_label_values(&[self.shared.format])
            .inc();
        let entry = DeadLetterEntry {
            reason,
            detail: rejection.detail,
            bucket: self.object.bucket.clone(),
            key: self.object.key.clone(),
            position: Some(rejection.position),
            raw: rejection.raw.to_vec(),
            raw_truncated: rejection.raw_truncated,
            status: None,
            service_code: None,
            format: self.format.as_str(),
        };
        self.shared.tracker.add_pending(self.id, 1);
        if self
            .outlets
            .dead_letters
            .blocking_send(DeadLetterJob {
                entry,
                object: Some(self.id),
            })
            .is_err()
        {
            self.shared.tracker.abandoned(&[crate::batch::ObjectSpan {
                object: self.id,
                records: 1,
            }]);
            return Err(SinkClosed);
        }
        self.emitted += 1;
        Ok(())
    }
}

/// Counts bytes as they arrive from S3.
struct CountingRead<R> {
    inner: R,
    counter: prometheus::IntCounter,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingRead<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counter.inc_by(n as u64);
        }
        res
    }
}

/// Where an object reader sends its output. Held only by readers (and the dispatcher that spawns
/// them), so the channels close exactly when the last reader ends.
#[derive(Clone)]
pub(super) struct Outlets {
    /// To the batcher.
    pub records: mpsc::Sender<RecordChunk>,
    /// To the dead-letter writer.
    pub dead_letters: mpsc::Sender<DeadLetterJob>,
}
