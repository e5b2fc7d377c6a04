//! Every Prometheus metric the worker exports, registered once in one registry.
//!
//! Names follow `s3sentinel_<what>_<unit>[_total]`, plus the two names the operations runbook queries
//! directly: `log_processing_duration_seconds` and `rate_limited_total`. Labels only ever take values from
//! fixed sets (`&'static str`): never a key, a URL or error text.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Latency buckets in seconds, from 5 ms to 2 min (covers the runbook's 500 ms, 1 s, 2 s, 5 s and 30 s
/// thresholds exactly).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Record-count buckets for batches.
const RECORD_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// Byte-size buckets for batches (up to the 1 MB request limit).
const BYTE_BUCKETS: &[f64] = &[
    1024.0,
    8192.0,
    32768.0,
    65536.0,
    131072.0,
    262144.0,
    524288.0,
    786432.0,
    1_000_000.0,
    1_048_576.0,
];

/// The worker's metrics. Cheap to clone (every field is an `Arc` inside).
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Per-column DCR schema mismatches (for the connector's status; not a Prometheus metric).
    pub schema_findings: super::schema_findings::SchemaFindings,
    /// Every metric's name, type, help and labels, in registration order (for the generated reference).
    pub catalog: Vec<MetricInfo>,

    /// Seconds from the start of an object's download until all its records were accepted or
    /// dead-lettered (runbook: "Batch processing time"; the name is the runbook's). Label: `format`.
    pub log_processing_duration: HistogramVec,
    /// S3 requests delayed by the token bucket (runbook: `rate_limited`).
    pub rate_limited: IntCounter,
    /// Seconds S3 requests waited for a token, per delayed request.
    pub rate_limit_wait: Histogram,

    /// S3 request latency (time to response headers). Label: `operation` (`list`, `get`, `put`).
    pub s3_request_duration: HistogramVec,
    /// S3 requests by `operation` and `outcome` (`ok`, `slowdown`, `not_found`, `error`).
    pub s3_requests: IntCounterVec,
    /// Compressed bytes downloaded from S3.
    pub s3_bytes_downloaded: IntCounter,

    /// Logs Ingestion request latency. Label: `outcome`.
    pub sentinel_request_duration: HistogramVec,
    /// Logs Ingestion requests by `outcome` (`accepted`, `throttled`, `server_error`, `timeout`,
    /// `connection`, `too_large`, `unauthorized`, `forbidden`, `rejected`).
    pub sentinel_requests: IntCounterVec,
    /// Batch retries by `reason` (`throttled`, `server_error`, `timeout`, `connection`, `unauthorized`,
    /// `forbidden`).
    pub sentinel_retries: IntCounterVec,
    /// Seconds spent waiting before retries (backoff or `Retry-After`).
    pub sentinel_retry_wait: Histogram,
    /// Batches split in two after a 413.
    pub sentinel_batch_splits: IntCounter,
    /// Entra ID token requests by `outcome` (`ok`, `error`).
    pub token_requests: IntCounterVec,

    /// Records per request sent.
    pub batch_records: Histogram,
    /// Uncompressed bytes per request sent.
    pub batch_bytes: Histogram,
    /// Bytes per request as sent (after compression).
    pub batch_sent_bytes: Histogram,
    /// Seconds from a batch's first record to its acceptance.
    pub batch_duration: Histogram,
    /// Requests to Logs Ingestion in flight.
    pub inflight_batches: IntGauge,

    /// Circuit breaker state: 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGauge,
    /// Breaker transitions by target `state`.
    pub breaker_transitions: IntCounterVec,

    /// Records (lines, or CloudTrail events) read from objects, by `format`, whether they parsed or not:
    /// read = accepted + dead-lettered once everything is delivered.
    pub records_read: IntCounterVec,
    /// Records accepted by Sentinel, by `format`.
    pub records_processed: IntCounterVec,
    /// Records that could not be parsed or delivered, by `reason` (they are dead-lettered).
    pub records_failed: IntCounterVec,
    /// Records written to the dead-letter sink, by `reason`.
    pub records_dead_lettered: IntCounterVec,
    /// Records read from objects that an earlier, interrupted run had started: possible duplicates.
    pub records_redelivered: IntCounter,
    /// Uncompressed (decoded) bytes read from objects, by `format`.
    pub bytes_processed: IntCounterVec,
    /// With `parser.format: auto`, objects whose format was detected from the key, by detected `format`
    /// (a format name, or `unknown` for objects dead-lettered with reason `unknown_format`).
    pub format_detections: IntCounterVec,
    /// Record field values over the Logs Ingestion API's 64 KiB field limit, by `action`: `counted`
    /// (sent as they are; the service truncates them) or `truncated` (cut by the worker, with a marker).
    pub fields_truncated: IntCounterVec,
    /// Record fields that do not match `sentinel.stream_columns`, by `kind`: `undeclared` (the DCR drops
    /// the field) or `type` (the value does not fit the declared type).
    pub schema_mismatches: IntCounterVec,
    /// Records checked against `sentinel.stream_columns` with at least one mismatch, by `action`
    /// (`sent` or `dead_lettered`, per `sentinel.schema_violations`).
    pub schema_mismatched_records: IntCounterVec,

    /// Objects finished, by `outcome` (`complete`, `skipped`, `dead_lettered`).
    pub objects_processed: IntCounterVec,
    /// Object attempts that failed, by `reason` (`download`, `decode`, `too_large`, `corrupt`,
    /// `parse`).
    pub objects_failed: IntCounterVec,
    /// Objects being downloaded, parsed or awaiting delivery.
    pub objects_in_progress: IntGauge,
    /// Objects listed but not yet started.
    pub objects_pending: IntGauge,

    /// Checkpoint writes by `outcome` (`ok`, `error`).
    pub checkpoint_writes: IntCounterVec,
    /// Seconds since the checkpoint last advanced (updated on each write).
    pub checkpoint_last_write_timestamp: IntGauge,
    /// Dead-letter sink writes by `outcome`.
    pub dead_letter_writes: IntCounterVec,
    /// Poll partitions this replica holds and reads (`coordination.mode: kubernetes`).
    pub partitions_held: IntGauge,
    /// Live replicas of the connector as seen by this one (membership Leases).
    pub coordination_members: IntGauge,
    /// Partition Lease events by `event` (`acquired`, `released`, `lost`).
    pub lease_events: IntCounterVec,
    /// Input field values not sent because the target table has no column for them, by `format`.
    pub fields_not_in_table: IntCounterVec,
    /// Writes of this pod's entry into the connector's status, by `outcome` (`ok`, `error`).
    pub status_reports: IntCounterVec,
    /// Pipeline stage queue depth, by `stage` (`objects`, `records`, `batches`).
    pub queue_depth: IntGaugeVec,
    /// Preflight check result by `check` (`config`, `s3_list`, `entra_token`, `dcr_stream`): 1 passed,
    /// 0 failed or not run. Set at start-up and on every retry until all pass.
    pub preflight_check: IntGaugeVec,

    /// Work waiting for this worker: in SQS mode the queue's approximate visible messages.
    pub backlog: IntGauge,
    /// SQS mode: `ApproximateNumberOfMessages` of the queue (visible, waiting).
    pub sqs_messages_visible: IntGauge,
    /// SQS mode: `ApproximateNumberOfMessagesNotVisible` of the queue (received, not yet deleted).
    pub sqs_messages_in_flight: IntGauge,
    /// SQS messages received (every receive of a message counts, redeliveries too).
    pub sqs_messages_received: IntCounter,
    /// SQS messages deleted, by `reason` (`processed`: every object finished; `ignored`: nothing in it
    /// to read; `poison`: dead-lettered).
    pub sqs_messages_deleted: IntCounterVec,
    /// S3 events in SQS messages that were not read, by `reason` (`test_event`, `not_created`,
    /// `other_bucket`, `outside_prefix`).
    pub sqs_events_ignored: IntCounterVec,
    /// Poison SQS messages, by `reason` (a body category such as `not_json`, or `max_receives`) and
    /// `action` (`dead_lettered`, `left`, `dead_letter_failed`).
    pub sqs_messages_poison: IntCounterVec,
    /// SQS messages made visible again because an object of them did not finish (or at shutdown).
    pub sqs_messages_retried: IntCounter,
    /// Visibility-timeout extensions (heartbeats) of messages whose objects are still in progress.
    pub sqs_visibility_extensions: IntCounter,
    /// SQS requests by `operation` and `outcome` (`ok`, `error`, `denied`, `receipt_gone`).
    pub sqs_requests: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let mut reg = Registrar {
            registry: &registry,
            catalog: Vec::new(),
        };

        let m = Metrics {
            registry: registry.clone(),
            schema_findings: Default::default(),
            log_processing_duration: reg.histogram_vec(
                "log_processing_duration_seconds",
                "Seconds from the start of an object's download until every record of it was accepted by Sentinel or dead-lettered",
                &["format"],
                LATENCY_BUCKETS,
            )?,
            rate_limited: reg.counter("rate_limited_total", "S3 requests delayed by the aws.rate_limit token bucket")?,
            rate_limit_wait: reg.histogram(
                "s3sentinel_rate_limit_wait_seconds",
                "Seconds an S3 request waited for a rate-limit token (only delayed requests)",
                LATENCY_BUCKETS,
            )?,
            s3_request_duration: reg.histogram_vec(
                "s3sentinel_s3_request_duration_seconds",
                "S3 request latency until response headers, by operation",
                &["operation"],
                LATENCY_BUCKETS,
            )?,
            s3_requests: reg.counter_vec("s3sentinel_s3_requests_total", "S3 requests by operation and outcome", &["operation", "outcome"])?,
            s3_bytes_downloaded: reg.counter("s3sentinel_s3_downloaded_bytes_total", "Bytes downloaded from S3 as stored (compressed)")?,
            sentinel_request_duration: reg.histogram_vec(
                "s3sentinel_sentinel_request_duration_seconds",
                "Azure Monitor Logs Ingestion request latency, by outcome",
                &["outcome"],
                LATENCY_BUCKETS,
            )?,
            sentinel_requests: reg.counter_vec(
                "s3sentinel_sentinel_requests_total",
                "Azure Monitor Logs Ingestion requests by outcome",
                &["outcome"],
            )?,
            sentinel_retries: reg.counter_vec("s3sentinel_sentinel_retries_total", "Batch retries by reason", &["reason"])?,
            sentinel_retry_wait: reg.histogram(
                "s3sentinel_sentinel_retry_wait_seconds",
                "Seconds waited before a batch retry (backoff or Retry-After)",
                LATENCY_BUCKETS,
            )?,
            sentinel_batch_splits: reg.counter("s3sentinel_sentinel_batch_splits_total", "Batches split in two after HTTP 413")?,
            token_requests: reg.counter_vec("s3sentinel_token_requests_total", "Entra ID token requests by outcome", &["outcome"])?,
            batch_records: reg.histogram("s3sentinel_batch_records", "Records per Logs Ingestion request", RECORD_BUCKETS)?,
            batch_bytes: reg.histogram("s3sentinel_batch_bytes", "Uncompressed bytes per Logs Ingestion request", BYTE_BUCKETS)?,
            batch_sent_bytes: reg.histogram(
                "s3sentinel_batch_sent_bytes",
                "Bytes per Logs Ingestion request as sent (after compression)",
                BYTE_BUCKETS,
            )?,
            batch_duration: reg.histogram(
                "s3sentinel_batch_duration_seconds",
                "Seconds from a batch's first record until Sentinel accepted it",
                LATENCY_BUCKETS,
            )?,
            inflight_batches: reg.gauge("s3sentinel_inflight_batches", "Logs Ingestion requests in flight")?,
            breaker_state: reg.gauge("s3sentinel_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open")?,
            breaker_transitions: reg.counter_vec(
                "s3sentinel_circuit_breaker_transitions_total",
                "Circuit breaker transitions by target state",
                &["state"],
            )?,
            records_read: reg.counter_vec("s3sentinel_records_read_total", "Records (lines or events) read from S3 objects, parsed or rejected", &["format"])?,
            records_processed: reg.counter_vec("s3sentinel_records_processed_total", "Records accepted by Sentinel", &["format"])?,
            records_failed: reg.counter_vec(
                "s3sentinel_records_failed_total",
                "Records that could not be parsed or delivered, by reason",
                &["reason"],
            )?,
            records_dead_lettered: reg.counter_vec(
                "s3sentinel_records_dead_lettered_total",
                "Records written to the dead-letter sink, by reason",
                &["reason"],
            )?,
            records_redelivered: reg.counter(
                "s3sentinel_records_redelivered_total",
                "Records re-read from objects an interrupted run had started (possible duplicates)",
            )?,
            bytes_processed: reg.counter_vec("s3sentinel_processed_bytes_total", "Decoded bytes read from S3 objects", &["format"])?,
            format_detections: reg.counter_vec(
                "s3sentinel_format_detections_total",
                "Objects whose format parser.format auto detected from the key, by detected format (unknown: dead-lettered as unknown_format)",
                &["format"],
            )?,
            fields_truncated: reg.counter_vec(
                "s3sentinel_fields_truncated_total",
                "Record field values over the 64 KiB Logs Ingestion field limit, by action (counted: the service truncates them; truncated: cut by the worker with a marker)",
                &["action"],
            )?,
            schema_mismatches: reg.counter_vec(
                "s3sentinel_schema_mismatches_total",
                "Record fields not matching sentinel.stream_columns, by kind (undeclared: the DCR drops the field; type: the value does not fit the declared type)",
                &["kind"],
            )?,
            schema_mismatched_records: reg.counter_vec(
                "s3sentinel_schema_mismatched_records_total",
                "Records with at least one sentinel.stream_columns mismatch, by action (sent or dead_lettered)",
                &["action"],
            )?,
            objects_processed: reg.counter_vec("s3sentinel_objects_processed_total", "Objects finished, by outcome", &["outcome"])?,
            objects_failed: reg.counter_vec("s3sentinel_objects_failed_total", "Object attempts that failed, by reason", &["reason"])?,
            objects_in_progress: reg.gauge("s3sentinel_objects_in_progress", "Objects being processed")?,
            objects_pending: reg.gauge("s3sentinel_objects_pending", "Objects discovered and not yet started")?,
            checkpoint_writes: reg.counter_vec("s3sentinel_checkpoint_writes_total", "Checkpoint writes by outcome", &["outcome"])?,
            checkpoint_last_write_timestamp: reg.gauge(
                "s3sentinel_checkpoint_last_write_timestamp_seconds",
                "Unix time of the last successful checkpoint write",
            )?,
            dead_letter_writes: reg.counter_vec("s3sentinel_dead_letter_writes_total", "Dead-letter sink writes by outcome", &["outcome"])?,
            partitions_held: reg.gauge("s3sentinel_partitions_held", "Poll partitions this replica holds and reads")?,
            coordination_members: reg.gauge("s3sentinel_coordination_members", "Live replicas of the connector seen through membership Leases")?,
            lease_events: reg.counter_vec("s3sentinel_lease_events_total", "Partition Lease events by event (acquired, released, lost)", &["event"])?,
            fields_not_in_table: reg.counter_vec(
                "s3sentinel_fields_not_in_table_total",
                "Input field values not sent because the target Sentinel table has no column for them (e.g. VPC flow log fields AWSVPCFlow lacks), by format; the field names are in the connector status",
                &["format"],
            )?,
            status_reports: reg.counter_vec("s3sentinel_status_reports_total", "Writes of this pod's entry into the connector status, by outcome", &["outcome"])?,
            queue_depth: reg.gauge_vec("s3sentinel_queue_depth", "Items waiting between pipeline stages", &["stage"])?,
            preflight_check: reg.gauge_vec(
                "s3sentinel_preflight_check",
                "Preflight check result by check: 1 passed, 0 failed or not run",
                &["check"],
            )?,
            backlog: reg.gauge(
                "s3sentinel_backlog",
                "Work waiting for this worker: poll mode, unfinished objects of its partitions found by the last listing; SQS mode, approximate visible messages in the queue",
            )?,
            sqs_messages_visible: reg.gauge(
                "s3sentinel_sqs_messages_visible",
                "SQS ApproximateNumberOfMessages: messages waiting in the queue",
            )?,
            sqs_messages_in_flight: reg.gauge(
                "s3sentinel_sqs_messages_in_flight",
                "SQS ApproximateNumberOfMessagesNotVisible: messages received and not yet deleted",
            )?,
            sqs_messages_received: reg.counter(
                "s3sentinel_sqs_messages_received_total",
                "SQS messages received, redeliveries included",
            )?,
            sqs_messages_deleted: reg.counter_vec(
                "s3sentinel_sqs_messages_deleted_total",
                "SQS messages deleted, by reason (processed, ignored, poison)",
                &["reason"],
            )?,
            sqs_events_ignored: reg.counter_vec(
                "s3sentinel_sqs_events_ignored_total",
                "S3 events from SQS not read, by reason (test_event, not_created, other_bucket, outside_prefix)",
                &["reason"],
            )?,
            sqs_messages_poison: reg.counter_vec(
                "s3sentinel_sqs_messages_poison_total",
                "Poison SQS messages (unparseable, or received more than sqs.max_receive_count times), by reason and action",
                &["reason", "action"],
            )?,
            sqs_messages_retried: reg.counter(
                "s3sentinel_sqs_messages_retried_total",
                "SQS messages made visible again because an object of them did not finish",
            )?,
            sqs_visibility_extensions: reg.counter(
                "s3sentinel_sqs_visibility_extensions_total",
                "Visibility-timeout extensions of SQS messages whose objects are in progress",
            )?,
            sqs_requests: reg.counter_vec(
                "s3sentinel_sqs_requests_total",
                "SQS requests by operation and outcome",
                &["operation", "outcome"],
            )?,
            catalog: Vec::new(),
        };
        Ok(Metrics {
            catalog: reg.catalog,
            ..m
        })
    }

    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encode error: {e}\n"))
    }
}

/// One exported metric, for documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricInfo {
    /// Full metric name.
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Label names.
    pub labels: Vec<&'static str>,
}

/// Registers metrics and remembers what it registered.
struct Registrar<'a> {
    registry: &'a Registry,
    catalog: Vec<MetricInfo>,
}

impl Registrar<'_> {
    fn note(&mut self, name: &'static str, kind: &'static str, help: &'static str, labels: &[&'static str]) {
        self.catalog.push(MetricInfo {
            name,
            kind,
            help,
            labels: labels.to_vec(),
        });
    }

    fn counter(&mut self, name: &'static str, help: &'static str) -> Result<IntCounter, prometheus::Error> {
        let c = IntCounter::new(name, help)?;
        self.registry.register(Box::new(c.clone()))?;
        self.note(name, "counter", help, &[]);
        Ok(c)
    }

    fn counter_vec(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(c.clone()))?;
        self.note(name, "counter", help, labels);
        Ok(c)
    }

    fn gauge(&mut self, name: &'static str, help: &'static str) -> Result<IntGauge, prometheus::Error> {
        let g = IntGauge::new(name, help)?;
        self.registry.register(Box::new(g.clone()))?;
        self.note(name, "gauge", help, &[]);
        Ok(g)
    }

    fn gauge_vec(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(g.clone()))?;
        self.note(name, "gauge", help, labels);
        Ok(g)
    }

    fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        buckets: &[f64],
    ) -> Result<Histogram, prometheus::Error> {
        let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
        self.registry.register(Box::new(h.clone()))?;
        self.note(name, "histogram", help, &[]);
        Ok(h)
    }

    fn histogram_vec(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
        buckets: &[f64],
    ) -> Result<HistogramVec, prometheus::Error> {
        let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?;
        self.registry.register(Box::new(h.clone()))?;
        self.note(name, "histogram", help, labels);
        Ok(h)
    }
}

/// Renders the metrics reference (`docs/metrics.md`) from the catalog.
pub fn reference(metrics: &Metrics) -> String {
    let mut out = String::from(
        "# Worker metrics reference\n\n\
         Generated from `worker/src/telemetry/metrics.rs` by `cargo test -p s3-sentinel-worker --lib metrics` \
         (`UPDATE_GENERATED=1` rewrites this file). Served on `admin.listen` at `/metrics`. Label values come \
         from fixed sets only.\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for m in &metrics.catalog {
        let name = match m.kind {
            "histogram" => format!("`{}` (`_bucket`, `_sum`, `_count`)", m.name),
            _ => format!("`{}`", m.name),
        };
        let labels = m
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("| {name} | {} | {labels} | {} |\n", m.kind, m.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_metrics_reference_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
        let generated = reference(&Metrics::new().unwrap());
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/metrics.md is stale: run `UPDATE_GENERATED=1 cargo test -p s3-sentinel-worker --lib metrics`"
        );
    }

    #[test]
    fn runbook_metric_names_are_exported() {
        let m = Metrics::new().unwrap();
        m.rate_limited.inc();
        m.log_processing_duration
            .with_label_values(&["cloudtrail"])
            .observe(0.1);
        let text = m.render();
        assert!(text.contains("rate_limited_total 1"), "{text}");
        assert!(
            text.contains("log_processing_duration_seconds_bucket{format=\"cloudtrail\""),
            "{text}"
        );
    }
}
