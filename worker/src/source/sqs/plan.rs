//! What to do with one message, decided from its body, its receive count and the settings. Pure.

use super::SqsSettings;
use super::event::{self, Notification};
use super::queue::Message;
use crate::source::ObjectRef;
use s3_sentinel_api::config::PoisonMessages;

/// An event that is not read, with the reason (a metric label) and where it pointed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// `test_event`, `not_created`, `other_bucket`, `outside_prefix`.
    pub reason: &'static str,
    /// Bucket of the event (empty for a test event).
    pub bucket: String,
    /// Key of the event (empty for a test event).
    pub key: String,
}

/// The decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Read these objects; delete the message once all finished.
    Read {
        /// The objects, in message order, without repeats.
        objects: Vec<ObjectRef>,
        /// Events of the same message that are not read.
        ignored: Vec<Ignored>,
        /// The message was received more than `max_receive_count` times but `poison_messages` is
        /// `leave`: it is read once more and counted as poison left to the queue.
        over_max_receives: bool,
    },
    /// Nothing in it to read: delete it.
    Delete {
        /// Why each event is not read.
        ignored: Vec<Ignored>,
    },
    /// Poison: dead-letter and delete it, or (with `leave`) leave it to the queue's redrive policy.
    Poison {
        /// Bounded reason: a body error category or `max_receives`.
        reason: &'static str,
        /// Human-readable detail.
        detail: String,
    },
}

/// Decides what to do with `message`.
pub fn plan(message: &Message, settings: &SqsSettings) -> Plan {
    let events = match event::parse(&message.body) {
        Err(e) => {
            return Plan::Poison {
                reason: e.category(),
                detail: e.to_string(),
            };
        }
        Ok(Notification::TestEvent) => {
            return Plan::Delete {
                ignored: vec![Ignored {
                    reason: "test_event",
                    bucket: String::new(),
                    key: String::new(),
                }],
            };
        }
        Ok(Notification::Events(events)) => events,
    };
    let over_max_receives = message.receive_count > settings.max_receive_count;
    if over_max_receives && settings.poison == PoisonMessages::DeadLetter {
        return Plan::Poison {
            reason: "max_receives",
            detail: format!(
                "received {} times (sqs.max_receive_count is {}); its objects never finished",
                message.receive_count, settings.max_receive_count
            ),
        };
    }
    let mut objects: Vec<ObjectRef> = Vec::new();
    let mut ignored = Vec::new();
    for e in events {
        let prefix = settings.prefixes.iter().find(|p| e.key.starts_with(p.as_str()));
        let reason = match prefix {
            _ if !e.created => "not_created",
            _ if e.bucket != settings.bucket => "other_bucket",
            None => "outside_prefix",
            Some(prefix) => {
                if !objects.iter().any(|o| o.key == e.key) {
                    objects.push(ObjectRef {
                        prefix: prefix.clone(),
                        bucket: e.bucket,
                        key: e.key,
                        size: e.size,
                        etag: e.etag,
                        last_modified: e.time,
                    });
                }
                continue;
            }
        };
        ignored.push(Ignored {
            reason,
            bucket: e.bucket,
            key: e.key,
        });
    }
    if objects.is_empty() {
        Plan::Delete { ignored }
    } else {
        Plan::Read {
            objects,
            ignored,
            over_max_receives,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    pub(crate) fn settings() -> SqsSettings {
        SqsSettings {
            queue_url: "https://sqs.us-east-1.amazonaws.com/1/q".into(),
            bucket: "logs".into(),
            prefixes: vec!["AWSLogs/".into(), "elb/".into()],
            wait_time: Duration::from_secs(1),
            max_messages: 10,
            visibility_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            max_receive_count: 3,
            poison: PoisonMessages::DeadLetter,
            backlog_interval: Duration::from_secs(30),
            once: false,
            format: "cloudtrail",
        }
    }

    pub(crate) fn s3_body(records: &[(&str, &str, &str)]) -> String {
        let records: Vec<_> = records
            .iter()
            .map(|(name, bucket, key)| {
                serde_json::json!({"eventSource": "aws:s3", "eventName": name,
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10, "eTag": "e"}}})
            })
            .collect();
        serde_json::json!({ "Records": records }).to_string()
    }

    pub(crate) fn message(body: &str, receive_count: u32) -> Message {
        Message {
            id: "m-1".into(),
            receipt: "r-1".into(),
            body: body.into(),
            receive_count,
        }
    }

    #[test]
    fn created_events_under_a_prefix_are_read_and_the_rest_ignored() {
        let body = s3_body(&[
            ("ObjectCreated:Put", "logs", "AWSLogs/1/a.gz"),
            ("ObjectCreated:Put", "logs", "AWSLogs/1/a.gz"),
            ("ObjectRemoved:Delete", "logs", "AWSLogs/1/b.gz"),
            ("ObjectCreated:Put", "other", "AWSLogs/1/c.gz"),
            ("ObjectCreated:Put", "logs", "tmp/d.gz"),
            ("ObjectCreated:CompleteMultipartUpload", "logs", "elb/e+f.gz"),
        ]);
        let Plan::Read {
            objects,
            ignored,
            over_max_receives,
        } = plan(&message(&body, 1), &settings())
        else {
            panic!()
        };
        assert!(!over_max_receives);
        assert_eq!(
            objects
                .iter()
                .map(|o| (o.key.as_str(), o.prefix.as_str()))
                .collect::<Vec<_>>(),
            [("AWSLogs/1/a.gz", "AWSLogs/"), ("elb/e f.gz", "elb/")]
        );
        assert_eq!(
            ignored.iter().map(|i| i.reason).collect::<Vec<_>>(),
            ["not_created", "other_bucket", "outside_prefix"]
        );
    }

    #[test]
    fn the_empty_prefix_accepts_every_key() {
        let mut s = settings();
        s.prefixes = vec![String::new()];
        let body = s3_body(&[("ObjectCreated:Put", "logs", "anything/at/all")]);
        assert!(
            matches!(plan(&message(&body, 1), &s), Plan::Read { objects, .. } if objects[0].prefix.is_empty())
        );
    }

    #[test]
    fn messages_with_nothing_to_read_are_deleted() {
        let body = s3_body(&[("ObjectRemoved:Delete", "logs", "AWSLogs/x")]);
        assert!(
            matches!(plan(&message(&body, 1), &settings()), Plan::Delete { ignored } if ignored[0].reason == "not_created")
        );
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"logs"}"#;
        assert!(
            matches!(plan(&message(test, 9), &settings()), Plan::Delete { ignored } if ignored[0].reason == "test_event")
        );
    }

    #[test]
    fn poison_by_body_or_by_receive_count() {
        assert!(matches!(
            plan(&message("garbage", 1), &settings()),
            Plan::Poison {
                reason: "not_json",
                ..
            }
        ));
        let body = s3_body(&[("ObjectCreated:Put", "logs", "AWSLogs/x")]);
        assert!(matches!(
            plan(&message(&body, 3), &settings()),
            Plan::Read {
                over_max_receives: false,
                ..
            }
        ));
        assert!(matches!(
            plan(&message(&body, 4), &settings()),
            Plan::Poison {
                reason: "max_receives",
                ..
            }
        ));
        let mut leave = settings();
        leave.poison = PoisonMessages::Leave;
        assert!(matches!(
            plan(&message(&body, 4), &leave),
            Plan::Read {
                over_max_receives: true,
                ..
            }
        ));
        assert!(matches!(
            plan(&message("garbage", 1), &leave),
            Plan::Poison { .. }
        ));
    }
}
