//! Message bodies → S3 object events. Pure: no SQS, no S3, no clock.
//!
//! Three shapes reach a queue:
//!
//! - **S3 event notifications** sent straight to the queue: `{"Records":[{"eventSource":"aws:s3",
//!   "eventName":"ObjectCreated:Put","s3":{"bucket":{"name":…},"object":{"key":…,"size":…,"eTag":…}}}]}`,
//!   or the `s3:TestEvent` S3 sends when a notification configuration is saved
//!   (`{"Service":"Amazon S3","Event":"s3:TestEvent",…}`). AWS documents the key as URL-encoded
//!   ("red flower.jpg" becomes "red+flower.jpg", form encoding: `+` for space, `%XX` for UTF-8 bytes;
//!   docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html), so it is
//!   decoded here.
//! - **SNS-wrapped**: the same S3 event as the JSON string `Message` of an SNS envelope
//!   (`{"Type":"Notification","Message":"{\"Records\":…}",…}`). With SNS raw message delivery the body
//!   is the S3 event itself (first shape).
//! - **EventBridge**: `{"source":"aws.s3","detail-type":"Object Created","detail":{"bucket":{"name":…},
//!   "object":{"key":…,"size":…,"etag":…}}}` (docs.aws.amazon.com/AmazonS3/latest/userguide/
//!   ev-events.html). That page, unlike the notification one, says nothing of encoding, and its
//!   examples and events captured from AWS carry keys verbatim (`…/2023-08-08T14:03:40.532432.zip`,
//!   where a direct notification has `%3A`, as in aws/aws-sdk-js#837), so EventBridge keys are used
//!   as they are.
//!
//! Anything else is an error: the caller treats the message as poison.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// What a message body announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`: sent once when a notification configuration is saved; nothing to read.
    TestEvent,
    /// One or more object events (S3 puts several records in one message only rarely, but may).
    Events(Vec<ObjectEvent>),
}

/// Which envelope the event came in (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// An S3 event notification delivered to the queue directly (or through SNS raw delivery).
    Direct,
    /// An S3 event notification inside an SNS `Notification`.
    Sns,
    /// An EventBridge event from `aws.s3`.
    EventBridge,
}

/// One event about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// Whether the event announces a new object (the only kind that is read).
    pub created: bool,
    /// The event's own name: `ObjectCreated:Put`, `ObjectRemoved:Delete`, `Object Created`, …
    pub name: String,
    /// Bucket name.
    pub bucket: String,
    /// Object key, decoded.
    pub key: String,
    /// Size in bytes, when the event carries it (removal events do not).
    pub size: u64,
    /// ETag as given (without quotes), when present.
    pub etag: Option<String>,
    /// When the event happened, when given and well-formed.
    pub time: Option<DateTime<Utc>>,
    /// Envelope it arrived in.
    pub envelope: Envelope,
}

/// Why a body holds no usable event. The message is poison.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body (or an SNS `Message`) is not JSON.
    #[error("unable to parse the message body as json: {0}")]
    NotJson(String),
    /// JSON, but none of the known shapes.
    #[error("unrecognized message: {0}")]
    Unrecognized(&'static str),
    /// A known shape with a field missing or of the wrong type.
    #[error("malformed {envelope} message: {detail}")]
    Malformed {
        /// Which shape.
        envelope: &'static str,
        /// The deserializer's message.
        detail: String,
    },
    /// A record that is not from S3 (`eventSource` other than `aws:s3`).
    #[error("record {index} is from `{source_name}`, not aws:s3")]
    NotS3 {
        /// Index in `Records`.
        index: usize,
        /// Its `eventSource`.
        source_name: String,
    },
    /// The key's URL encoding is broken (a bad `%XX` escape, or bytes that are not UTF-8).
    #[error("object key `{key}` is not valid url encoding: {detail}")]
    BadKey {
        /// The key as received.
        key: String,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// A `Records` array with nothing in it.
    #[error("message has no records")]
    Empty,
}

impl BodyError {
    /// Bounded label for metrics.
    pub const fn category(&self) -> &'static str {
        match self {
            BodyError::NotJson(_) => "not_json",
            BodyError::Unrecognized(_) => "unrecognized",
            BodyError::Malformed { .. } => "malformed",
            BodyError::NotS3 { .. } => "not_s3",
            BodyError::BadKey { .. } => "bad_key",
            BodyError::Empty => "empty",
        }
    }
}

#[derive(Deserialize)]
struct DirectRecord {
    #[serde(rename = "eventSource", default)]
    event_source: Option<String>,
    #[serde(rename = "eventName")]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<String>,
    s3: DirectEntity,
}

#[derive(Deserialize)]
struct DirectEntity {
    bucket: NamedBucket,
    object: DirectObject,
}

#[derive(Deserialize)]
struct NamedBucket {
    name: String,
}

#[derive(Deserialize)]
struct DirectObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "eTag", default)]
    etag: Option<String>,
}

#[derive(Deserialize)]
struct BridgeEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    time: Option<String>,
    detail: BridgeDetail,
}

#[derive(Deserialize)]
struct BridgeDetail {
    bucket: NamedBucket,
    object: BridgeObject,
}

#[derive(Deserialize)]
struct BridgeObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    etag: Option<String>,
}

/// Parses a message body.
pub fn parse(body: &str) -> Result<Notification, BodyError> {
    let value: Value = serde_json::from_str(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    parse_value(value, true)
}

fn parse_value(value: Value, allow_sns: bool) -> Result<Notification, BodyError> {
    let Value::Object(map) = &value else {
        return Err(BodyError::Unrecognized("the body is not a json object"));
    };
    if map.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    if map.contains_key("Records") {
        return parse_direct(value, Envelope::Direct);
    }
    if map.get("Type").and_then(Value::as_str) == Some("Notification") {
        if !allow_sns {
            return Err(BodyError::Unrecognized(
                "an sns notification inside an sns notification",
            ));
        }
        let Some(message) = map.get("Message").and_then(Value::as_str) else {
            return Err(BodyError::Malformed {
                envelope: "sns",
                detail: "no string `Message`".into(),
            });
        };
        let inner: Value =
            serde_json::from_str(message).map_err(|e| BodyError::NotJson(format!("sns Message: {e}")))?;
        return match parse_value(inner, false)? {
            Notification::Events(mut events) => {
                for e in &mut events {
                    if e.envelope == Envelope::Direct {
                        e.envelope = Envelope::Sns;
                    }
                }
                Ok(Notification::Events(events))
            }
            other => Ok(other),
        };
    }
    if map.contains_key("detail-type") {
        if map.get("source").and_then(Value::as_str) != Some("aws.s3") {
            return Err(BodyError::Unrecognized(
                "an eventbridge event whose source is not aws.s3",
            ));
        }
        return parse_bridge(value);
    }
    Err(BodyError::Unrecognized(
        "neither an s3 event notification, an sns notification nor an eventbridge event",
    ))
}

fn parse_direct(value: Value, envelope: Envelope) -> Result<Notification, BodyError> {
    #[derive(Deserialize)]
    struct Direct {
        #[serde(rename = "Records")]
        records: Vec<DirectRecord>,
    }
    let direct: Direct = serde_json::from_value(value).map_err(|e| BodyError::Malformed {
        envelope: "s3 event",
        detail: e.to_string(),
    })?;
    if direct.records.is_empty() {
        return Err(BodyError::Empty);
    }
    let mut events = Vec::with_capacity(direct.records.len());
    for (index, r) in direct.records.into_iter().enumerate() {
        if let Some(source) = r.event_source.as_deref()
            && source != "aws:s3"
        {
            return Err(BodyError::NotS3 {
                index,
                source_name: source.to_owned(),
            });
        }
        events.push(ObjectEvent {
            created: r.event_name.starts_with("ObjectCreated:"),
            key: decode_key(&r.s3.object.key)?,
            bucket: r.s3.bucket.name,
            size: r.s3.object.size.unwrap_or(0),
            etag: r.s3.object.etag.map(|t| t.trim_matches('"').to_owned()),
            time: r.event_time.as_deref().and_then(parse_time),
            name: r.event_name,
            envelope,
        });
    }
    Ok(Notification::Events(events))
}

fn parse_bridge(value: Value) -> Result<Notification, BodyError> {
    let event: BridgeEvent = serde_json::from_value(value).map_err(|e| BodyError::Malformed {
        envelope: "eventbridge",
        detail: e.to_string(),
    })?;
    Ok(Notification::Events(vec![ObjectEvent {
        created: event.detail_type == "Object Created",
        bucket: event.detail.bucket.name,
        key: event.detail.object.key,
        size: event.detail.object.size.unwrap_or(0),
        etag: event.detail.object.etag.map(|t| t.trim_matches('"').to_owned()),
        time: event.time.as_deref().and_then(parse_time),
        name: event.detail_type,
        envelope: Envelope::EventBridge,
    }]))
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Decodes a key as S3 event notifications encode it (`application/x-www-form-urlencoded`): `+` is a
/// space, `%XX` a byte; the bytes must form UTF-8.
pub fn decode_key(encoded: &str) -> Result<String, BodyError> {
    let bad = |detail| BodyError::BadKey {
        key: encoded.to_owned(),
        detail,
    };
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or_else(|| bad("`%` not followed by two hex digits"))?;
                let text = std::str::from_utf8(hex).map_err(|_| bad("`%` not followed by two hex digits"))?;
                let byte =
                    u8::from_str_radix(text, 16).map_err(|_| bad("`%` not followed by two hex digits"))?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad("the decoded bytes are not utf-8"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn direct(name: &str, bucket: &str, key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-05-01T12:00:00.000Z", "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                   "object": {"key": key, "size": 1234, "eTag": "0123456789abcdef", "sequencer": "0A"}}
        }]})
        .to_string()
    }

    fn events(body: &str) -> Vec<ObjectEvent> {
        match parse(body).unwrap() {
            Notification::Events(e) => e,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn direct_notification_gives_bucket_key_size_etag_and_time() {
        let e = events(&direct("ObjectCreated:Put", "logs", "AWSLogs/1/a.json.gz"));
        assert_eq!(
            e,
            vec![ObjectEvent {
                created: true,
                name: "ObjectCreated:Put".into(),
                bucket: "logs".into(),
                key: "AWSLogs/1/a.json.gz".into(),
                size: 1234,
                etag: Some("0123456789abcdef".into()),
                time: Some("2024-05-01T12:00:00Z".parse().unwrap()),
                envelope: Envelope::Direct,
            }]
        );
    }

    #[test]
    fn keys_are_url_decoded() {
        for (encoded, decoded) in [
            ("red+flower.jpg", "red flower.jpg"),
            ("a%2Fb%3A10%3A47.log", "a/b:10:47.log"),
            ("c%2B%2B/x.gz", "c++/x.gz"),
            ("caf%C3%A9/%E6%97%A5%E6%9C%AC.json", "café/日本.json"),
            ("plain/key-1_2.3", "plain/key-1_2.3"),
            ("100%25", "100%"),
        ] {
            let e = events(&direct("ObjectCreated:Put", "logs", encoded));
            assert_eq!(e[0].key, decoded, "{encoded}");
        }
    }

    #[test]
    fn broken_escapes_are_errors() {
        for bad in ["a%2", "a%zz", "%C3", "%"] {
            let err = parse(&direct("ObjectCreated:Put", "logs", bad)).unwrap_err();
            assert_eq!(err.category(), "bad_key", "{bad}: {err}");
        }
    }

    #[test]
    fn removal_and_other_events_are_not_created() {
        for name in [
            "ObjectRemoved:Delete",
            "ObjectRestore:Completed",
            "s3:ReducedRedundancyLostObject",
        ] {
            let e = events(&direct(name, "logs", "k"));
            assert!(!e[0].created, "{name}");
        }
        for name in [
            "ObjectCreated:Put",
            "ObjectCreated:CompleteMultipartUpload",
            "ObjectCreated:Copy",
        ] {
            assert!(events(&direct(name, "logs", "k"))[0].created, "{name}");
        }
    }

    #[test]
    fn removal_events_without_size_parse() {
        let body = r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete",
            "s3":{"bucket":{"name":"logs"},"object":{"key":"gone","sequencer":"1"}}}]}"#;
        let e = events(body);
        assert_eq!((e[0].size, e[0].etag.as_deref(), e[0].created), (0, None, false));
    }

    #[test]
    fn multi_record_messages_keep_every_record_in_order() {
        let mut value: Value = serde_json::from_str(&direct("ObjectCreated:Put", "logs", "a")).unwrap();
        let mut second = value["Records"][0].clone();
        second["s3"]["object"]["key"] = "b+c".into();
        second["eventName"] = "ObjectRemoved:Delete".into();
        value["Records"].as_array_mut().unwrap().push(second);
        let e = events(&value.to_string());
        assert_eq!(
            e.iter().map(|e| (e.key.as_str(), e.created)).collect::<Vec<_>>(),
            [("a", true), ("b c", false)]
        );
    }

    #[test]
    fn sns_wrapped_notifications_are_unwrapped() {
        let body = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Subject": "Amazon S3 Notification",
            "Message": direct("ObjectCreated:Put", "logs", "dir/my+file.gz"),
            "Timestamp": "2024-05-01T12:00:01.000Z", "SignatureVersion": "1"
        })
        .to_string();
        let e = events(&body);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].key.as_str(), e[0].envelope),
            ("dir/my file.gz", Envelope::Sns)
        );
        // A test event delivered through SNS.
        let test = serde_json::json!({"Type": "Notification",
            "Message": r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00Z","Bucket":"logs"}"#});
        assert_eq!(parse(&test.to_string()).unwrap(), Notification::TestEvent);
    }

    #[test]
    fn eventbridge_events_are_read_with_verbatim_keys() {
        let body = serde_json::json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
            "source": "aws.s3", "account": "111122223333", "time": "2021-11-12T00:00:00Z",
            "region": "ca-central-1", "resources": ["arn:aws:s3:::logs"],
            "detail": {"version": "0", "bucket": {"name": "logs"},
                       "object": {"key": "raw/2023-08-08T14:03:40 a+b.gz", "size": 5,
                                  "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "617f08299329d189"},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject"}
        });
        let e = events(&body.to_string());
        assert_eq!(e[0].key, "raw/2023-08-08T14:03:40 a+b.gz");
        assert_eq!(
            (e[0].size, e[0].created, e[0].envelope),
            (5, true, Envelope::EventBridge)
        );
        assert_eq!(e[0].etag.as_deref(), Some("b1946ac92492d2347c6235b4d2611184"));

        let mut deleted = body.clone();
        deleted["detail-type"] = "Object Deleted".into();
        assert!(!events(&deleted.to_string())[0].created);

        let mut other = body;
        other["source"] = "aws.ec2".into();
        assert_eq!(parse(&other.to_string()).unwrap_err().category(), "unrecognized");
    }

    #[test]
    fn test_event_is_recognised() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z",
            "Bucket":"logs","RequestId":"r","HostId":"h"}"#;
        assert_eq!(parse(body).unwrap(), Notification::TestEvent);
    }

    #[test]
    fn garbage_is_an_error_with_a_bounded_category() {
        for (body, category) in [
            ("", "not_json"),
            ("not json at all", "not_json"),
            ("[1,2,3]", "unrecognized"),
            ("{\"hello\":\"world\"}", "unrecognized"),
            ("{\"Records\":[]}", "empty"),
            (
                "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\"}]}",
                "malformed",
            ),
            ("{\"Records\":\"x\"}", "malformed"),
            ("{\"Type\":\"Notification\",\"Message\":\"{oops\"}", "not_json"),
            ("{\"Type\":\"Notification\"}", "malformed"),
            (
                "{\"source\":\"aws.s3\",\"detail-type\":\"Object Created\",\"detail\":{}}",
                "malformed",
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.category(), category, "{body}: {err}");
        }
        let other_source = r#"{"Records":[{"eventSource":"aws:dynamodb","eventName":"INSERT",
            "s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert_eq!(parse(other_source).unwrap_err().category(), "not_s3");
        let nested = serde_json::json!({"Type": "Notification",
            "Message": serde_json::json!({"Type": "Notification", "Message": "{}"}).to_string()});
        assert_eq!(parse(&nested.to_string()).unwrap_err().category(), "unrecognized");
    }
}
