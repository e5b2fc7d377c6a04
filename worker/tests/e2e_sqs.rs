//! SQS mode end to end, against a real `moto` server (S3, SQS, S3→SQS bucket notifications) and the
//! Logs Ingestion emulator. Each test starts its own moto; without moto installed the tests print a
//! skip notice (or fail, with `S3S_REQUIRE_MOTO=1`, as `./dev test` sets).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use common::moto::Moto;
use common::{BUCKET, expected, fixture, gzip, multiset, spawn_worker, wait_for, worker_yaml};
use s3_sentinel_api::WorkerConfig;
use s3_sentinel_emulator::{EmulatorConfig, Fault, FaultPlan, RunningEmulator};
use s3_sentinel_parse::LogFormat;
use s3_sentinel_worker::pipeline::{RunOptions, Worker};
use s3_sentinel_worker::telemetry::Metrics;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const STREAM: &str = "Custom-CloudTrail";
const PREFIX: &str = "AWSLogs/";
const QUEUE: &str = "s3-events";

struct SqsEnv {
    dir: tempfile::TempDir,
    moto: Moto,
    emulator: RunningEmulator,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsEnv {
    /// moto with the bucket and an empty queue, and the emulator with `faults`; `None` when moto is
    /// not installed (skip).
    async fn start(test: &str, faults: FaultPlan) -> Option<SqsEnv> {
        let moto = Moto::start_or_skip(test)?;
        let dir = tempfile::tempdir().unwrap();
        let s3 = moto.s3();
        let sqs = moto.sqs();
        let queue_url = moto.bucket_and_queue(BUCKET, QUEUE).await;
        let emulator = common::start_emulator(EmulatorConfig::default().with_faults(faults)).await;
        common::write_secrets(dir.path(), common::moto::ACCESS_KEY, common::moto::SECRET_KEY);
        Some(SqsEnv {
            dir,
            moto,
            emulator,
            s3,
            sqs,
            queue_url,
        })
    }

    /// S3 sends `s3:ObjectCreated:*` events of the bucket to the queue; the test event S3 (and moto)
    /// sends on saving the configuration is purged.
    async fn notify_on_create(&self) {
        self.moto.notify_on_create(BUCKET, QUEUE, &self.queue_url).await;
    }

    /// The worker config: SQS mode on this queue (`sqs_extra` appended to `sqs:`), cloudtrail under
    /// `AWSLogs/`.
    fn config(&self, sentinel_extra: &str, sqs_extra: &str) -> String {
        let sqs = format!(
            "sqs:\n  queue_url: {}\n  wait_time: 1s\n  backlog_interval: 200ms\n{sqs_extra}",
            self.queue_url
        );
        worker_yaml(
            self.dir.path(),
            &self.moto.endpoint_url(),
            &self.emulator.base_url(),
            "cloudtrail",
            PREFIX,
            STREAM,
            sentinel_extra,
            &sqs,
        )
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap();
    }

    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// (ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible).
    async fn depth(&self) -> (i64, i64) {
        let resp = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let get = |name| {
            resp.attributes()
                .and_then(|a| a.get(&name))
                .map_or(0, |v| v.parse().unwrap())
        };
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Asserts the emulator accepted every record of the CloudTrail sample exactly `times` times.
    fn assert_accepted(&self, times: u64, what: &str) {
        let got = common::accepted(&self.emulator, STREAM);
        let want = trail_records(times);
        assert!(
            got == want,
            "{what}: got {} distinct records with multiplicities {:?}, want {} records {times} times each",
            got.len(),
            got.values().collect::<Vec<_>>(),
            want.len()
        );
    }
}

fn trail() -> Vec<u8> {
    fixture("cloudtrail/clo_cloudtrail.json")
}

/// The records the parser makes of the CloudTrail sample, each `times` times.
fn trail_records(times: u64) -> BTreeMap<String, u64> {
    let records = expected(LogFormat::Cloudtrail, "k", &trail(), 512 * 1024).records;
    assert!(!records.is_empty());
    multiset(&records)
        .into_iter()
        .map(|(r, n)| (r, n * times))
        .collect()
}

fn direct_event(name: &str, bucket: &str, encoded_key: &str) -> String {
    serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T12:00:00.000Z", "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
               "object": {"key": encoded_key, "size": 100, "eTag": "e"}}}]})
    .to_string()
}

fn deleted(m: &Metrics, reason: &str) -> u64 {
    m.sqs_messages_deleted.with_label_values(&[reason]).get()
}

/// Objects uploaded to a bucket whose notifications go to the queue arrive exactly once (keys with a
/// space, `+`, `%` and non-ASCII characters prove the URL decoding), and no message is deleted while
/// Sentinel refuses its records: only after they were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notified_objects_arrive_once_and_messages_are_deleted_only_after_ingest() {
    let faults = FaultPlan::none().then(
        6,
        Fault::Status {
            status: 503,
            retry_after_secs: Some(1),
        },
    );
    let Some(env) = SqsEnv::start("notified_objects_arrive_once", faults).await else {
        return;
    };
    env.notify_on_create().await;
    let keys = [
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/trail file+1 ü.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/100%:b.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/16/c.json.gz",
    ];
    for key in keys {
        env.put(key, gzip(&trail())).await;
    }
    assert_eq!(
        env.depth().await,
        (3, 0),
        "moto did not notify the queue of every upload"
    );

    let running = spawn_worker(&env.config("", ""), true).await;
    wait_for(
        "the emulator to refuse a request",
        Duration::from_secs(30),
        || {
            env.emulator
                .stats()
                .upload_responses_by_status
                .get(&503)
                .is_some_and(|n| *n > 0)
        },
    )
    .await;
    // Read the queue first, then the emulator: if nothing was accepted by the second read, nothing
    // was before the first, so no message may have been deleted.
    let (visible, in_flight) = env.depth().await;
    let deleted_early = deleted(&running.metrics, "processed");
    assert_eq!(
        env.emulator.stats().records_accepted,
        0,
        "the fault window closed too early"
    );
    assert_eq!(
        (visible + in_flight, deleted_early),
        (3, 0),
        "a message was deleted before its records were accepted"
    );
    assert!(in_flight > 0);

    let metrics = running.metrics.clone();
    let summary = running.finish().await;
    env.assert_accepted(3, "records lost or duplicated");
    assert_eq!((summary.objects_finished, summary.records_redelivered), (3, 0));
    assert_eq!(
        metrics.sqs_messages_received.get(),
        3,
        "a message was received twice"
    );
    assert_eq!(deleted(&metrics, "processed"), 3);
    assert_eq!(env.depth().await, (0, 0), "messages left in the queue");
}

/// The test event, removal events, events for another bucket and keys outside `aws.prefixes` are
/// deleted without reading anything, each counted by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_events_and_events_not_for_this_worker_are_deleted_unread() {
    let Some(env) = SqsEnv::start("test_events_and_events_not_for_this_worker", FaultPlan::none()).await
    else {
        return;
    };
    env.put("AWSLogs/1/CloudTrail/a.json.gz", gzip(&trail())).await;
    env.put("tmp/b.json.gz", gzip(&trail())).await;
    env.send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z","Bucket":"e2e-logs","RequestId":"r","HostId":"h"}"#).await;
    env.send(&direct_event(
        "ObjectRemoved:Delete",
        BUCKET,
        "AWSLogs/1/CloudTrail/a.json.gz",
    ))
    .await;
    env.send(&direct_event(
        "ObjectCreated:Put",
        "someone-elses-bucket",
        "AWSLogs/1/CloudTrail/a.json.gz",
    ))
    .await;
    env.send(&direct_event("ObjectCreated:Put", BUCKET, "tmp/b.json.gz"))
        .await;

    let running = spawn_worker(&env.config("", ""), true).await;
    let metrics = running.metrics.clone();
    let summary = running.finish().await;
    assert_eq!(summary.records_read, 0);
    assert_eq!(env.emulator.stats().upload_requests, 0);
    for reason in ["test_event", "not_created", "other_bucket", "outside_prefix"] {
        assert_eq!(
            metrics.sqs_events_ignored.with_label_values(&[reason]).get(),
            1,
            "{reason}"
        );
    }
    assert_eq!(deleted(&metrics, "ignored"), 4);
    assert_eq!(env.depth().await, (0, 0));
}

/// S3 events wrapped by SNS (a JSON string `Message`) and EventBridge events (verbatim keys) are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sns_and_eventbridge_wrapped_events_are_read() {
    let Some(env) = SqsEnv::start("sns_and_eventbridge_wrapped_events_are_read", FaultPlan::none()).await
    else {
        return;
    };
    let sns_key = "AWSLogs/1/CloudTrail/sns file.json.gz";
    let bridge_key = "AWSLogs/1/CloudTrail/bridge file+x:y.json.gz";
    env.put(sns_key, gzip(&trail())).await;
    env.put(bridge_key, gzip(&trail())).await;
    let sns = serde_json::json!({"Type": "Notification", "MessageId": "1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
        "Subject": "Amazon S3 Notification", "Timestamp": "2024-05-01T12:00:01.000Z",
        "Message": direct_event("ObjectCreated:Put", BUCKET, "AWSLogs/1/CloudTrail/sns+file.json.gz")});
    let bridge = serde_json::json!({"version": "0", "id": "x", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": "2024-05-01T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:s3:::e2e-logs"],
        "detail": {"version": "0", "bucket": {"name": BUCKET},
                   "object": {"key": bridge_key, "size": 100, "etag": "e"}, "reason": "PutObject"}});
    env.send(&sns.to_string()).await;
    env.send(&bridge.to_string()).await;

    let running = spawn_worker(&env.config("", ""), true).await;
    let metrics = running.metrics.clone();
    let summary = running.finish().await;
    env.assert_accepted(2, "records lost or duplicated");
    assert_eq!(summary.objects_finished, 2);
    assert_eq!(deleted(&metrics, "processed"), 2);
    assert_eq!(env.depth().await, (0, 0));
}

/// An unparseable body is dead-lettered at once; a message received more than `max_receive_count`
/// times is dead-lettered without reading its object; both are deleted. With `poison_messages: leave`
/// an unparseable message stays in the queue for its redrive policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_are_dead_lettered_and_deleted_or_left() {
    let Some(env) = SqsEnv::start("poison_messages_are_dead_lettered", FaultPlan::none()).await else {
        return;
    };
    let key = "AWSLogs/1/CloudTrail/never-finishes.json.gz";
    env.put(key, gzip(&trail())).await;
    let redelivered = direct_event("ObjectCreated:Put", BUCKET, key);
    env.send(&redelivered).await;
    // Two receives that never delete it (as two crashed workers would), each making it visible again.
    for count in 1..=2 {
        let got = env
            .sqs
            .receive_message()
            .queue_url(&env.queue_url)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        assert_eq!(got.messages().len(), 1, "receive {count}");
    }
    env.send("this is not an s3 event").await;

    let yaml = env.config("", "  max_receive_count: 2\n");
    let running = spawn_worker(&yaml, true).await;
    let metrics = running.metrics.clone();
    let summary = running.finish().await;
    assert_eq!(summary.records_read, 0, "the poison message's object was read");
    assert_eq!(env.depth().await, (0, 0));
    assert_eq!(deleted(&metrics, "poison"), 2);
    let lines = common::dead_letters(env.dir.path(), "cloudtrail");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let by_body = |body: &str| {
        lines
            .iter()
            .find(|l| l["raw"] == body)
            .unwrap_or_else(|| panic!("no dead letter holds {body}: {lines:?}"))
            .clone()
    };
    let redelivered_line = by_body(&redelivered);
    assert_eq!(redelivered_line["reason"], "sqs_poison_message");
    assert!(
        redelivered_line["detail"]
            .as_str()
            .unwrap()
            .starts_with("max_receives:"),
        "{redelivered_line}"
    );
    let garbage_line = by_body("this is not an s3 event");
    assert!(
        garbage_line["detail"].as_str().unwrap().starts_with("not_json:"),
        "{garbage_line}"
    );
    for (reason, n) in [("max_receives", 1), ("not_json", 1)] {
        assert_eq!(
            metrics
                .sqs_messages_poison
                .with_label_values(&[reason, "dead_lettered"])
                .get(),
            n
        );
    }

    env.send("still not an s3 event").await;
    let yaml = env.config("", "  poison_messages: leave\n  visibility_timeout: 30s\n");
    let running = spawn_worker(&yaml, true).await;
    let metrics = running.metrics.clone();
    running.finish().await;
    assert_eq!(
        metrics
            .sqs_messages_poison
            .with_label_values(&["not_json", "left"])
            .get(),
        1
    );
    assert_eq!(
        env.depth().await,
        (0, 1),
        "a poison message was deleted under poison_messages: leave"
    );
    assert_eq!(common::dead_letters(env.dir.path(), "cloudtrail").len(), 2);
}

/// An object that takes longer than the visibility timeout (four sequential slow requests against a
/// 2 s timeout) is not redelivered mid-flight: the heartbeat extends the message's visibility.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeat_keeps_a_slow_object_from_being_redelivered() {
    let slow = FaultPlan::none().with_latency(Duration::from_millis(800));
    let Some(env) = SqsEnv::start("heartbeat_keeps_a_slow_object", slow).await else {
        return;
    };
    env.notify_on_create().await;
    env.put("AWSLogs/1/CloudTrail/slow.json.gz", gzip(&trail())).await;
    let yaml = env.config(
        "  batch_size: 1\n  max_concurrent_batches: 1",
        "  visibility_timeout: 2s\n",
    );
    let running = spawn_worker(&yaml, true).await;
    let metrics = running.metrics.clone();
    let started = std::time::Instant::now();
    let summary = running.finish().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed > Duration::from_secs(3),
        "the object was not slow enough to need a heartbeat ({elapsed:?})"
    );
    env.assert_accepted(1, "the slow object was read twice");
    assert_eq!(
        metrics.sqs_messages_received.get(),
        1,
        "the message was redelivered mid-flight"
    );
    assert!(
        metrics.sqs_visibility_extensions.get() >= 2,
        "{}",
        metrics.sqs_visibility_extensions.get()
    );
    assert_eq!((summary.objects_finished, deleted(&metrics, "processed")), (1, 1));
    assert_eq!(env.depth().await, (0, 0));
}

/// The backlog gauges read the queue depth: three waiting messages before anything is received, none
/// after a run that consumed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backlog_gauges_follow_queue_depth() {
    let Some(env) = SqsEnv::start("backlog_gauges_follow_queue_depth", FaultPlan::none()).await else {
        return;
    };
    for _ in 0..3 {
        env.send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"e2e-logs"}"#)
            .await;
    }
    let yaml = env.config("", "");
    // A run stopped before it starts only reads the depth.
    let metrics = Metrics::new().unwrap();
    let worker = Worker::build(WorkerConfig::from_yaml(&yaml).unwrap(), metrics.clone(), None)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    stop.cancel();
    worker.run(RunOptions { once: false }, stop).await.unwrap();
    assert_eq!(metrics.sqs_messages_visible.get(), 3);
    assert_eq!(metrics.backlog.get(), 3);
    assert_eq!(metrics.sqs_messages_in_flight.get(), 0);
    assert_eq!(metrics.sqs_messages_received.get(), 0);

    let running = spawn_worker(&yaml, true).await;
    let metrics = running.metrics.clone();
    running.finish().await;
    assert_eq!(deleted(&metrics, "ignored"), 3);
    assert_eq!(
        (metrics.sqs_messages_visible.get(), metrics.backlog.get()),
        (0, 0)
    );
}
