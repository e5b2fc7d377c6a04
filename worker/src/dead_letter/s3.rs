//! [`S3PrefixSink`]: dead-letter lines as gzip objects under an S3 prefix.
//!
//! Consumes batches of [`DeadLetterEntry`]s and produces one object per `write` call,
//! `<prefix>YYYY/MM/DD/HH/<unix-nanos>-<pid>-<seq>.jsonl.gz` (UTC), holding the gzip-compressed JSON
//! lines with `Content-Type: application/x-ndjson` and `Content-Encoding: gzip`. The caller batches
//! entries; the PUT's success is the durability point.

use super::{DeadLetterEntry, DeadLetterError, DeadLetterSink, encode_lines};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::display::DisplayErrorContext;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes dead-letter batches as objects under one S3 prefix.
#[derive(Debug)]
pub struct S3PrefixSink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    seq: AtomicU64,
}

impl S3PrefixSink {
    /// A sink writing to `bucket` under `prefix` (a `/` is added when the prefix is not empty and does
    /// not end with one).
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> S3PrefixSink {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        S3PrefixSink {
            client,
            bucket: bucket.into(),
            prefix,
            seq: AtomicU64::new(0),
        }
    }

    /// The key of the next object written at `now`.
    fn object_key(&self, now: DateTime<Utc>) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        format!(
            "{}{}/{nanos}-{}-{seq}.jsonl.gz",
            self.prefix,
            now.format("%Y/%m/%d/%H"),
            std::process::id()
        )
    }
}

#[async_trait]
impl DeadLetterSink for S3PrefixSink {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), DeadLetterError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let key = self.object_key(now);
        let mut lines = Vec::new();
        encode_lines(entries, now, &mut lines)?;
        let body = tokio::task::spawn_blocking(move || gzip(&lines))
            .await?
            .map_err(|source| DeadLetterError::Compress {
                bucket: self.bucket.clone(),
                key: key.clone(),
                source,
            })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .content_encoding("gzip")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| DeadLetterError::Put {
                bucket: self.bucket.clone(),
                key: key.clone(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4 + 64), Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterLine;
    use crate::dead_letter::tests::entry;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    use std::io::Read;

    /// A private in-process S3 (s3s-fs over a temporary directory) on 127.0.0.1.
    async fn s3_server(root: &std::path::Path) -> String {
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        // Without an auth provider s3s refuses signed requests (501), so accept the test credentials.
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single("test", "test"));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn client(endpoint: &str) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(creds)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    #[tokio::test]
    async fn each_write_is_one_gzip_object_that_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let endpoint = s3_server(root.path()).await;
        let client = client(&endpoint);
        client
            .create_bucket()
            .bucket("dead-letters")
            .send()
            .await
            .unwrap();

        let sink = S3PrefixSink::new(client.clone(), "dead-letters", "dead/letters");
        sink.write(&[
            entry("parse", "k1", b"one"),
            entry("rejected", "k2", &[0xff, 0x00]),
        ])
        .await
        .unwrap();
        sink.write(&[entry("oversize", "k3", b"three")]).await.unwrap();

        let listed = client
            .list_objects_v2()
            .bucket("dead-letters")
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        assert_eq!(keys.len(), 2, "{keys:?}");
        let now = Utc::now();
        for key in &keys {
            assert!(key.starts_with("dead/letters/"), "{key}");
            assert!(key.ends_with(".jsonl.gz"), "{key}");
            let parts: Vec<&str> = key.trim_start_matches("dead/letters/").split('/').collect();
            assert_eq!(parts.len(), 5, "{key}");
            assert_eq!(parts[0], now.format("%Y").to_string());
        }

        let mut lines: Vec<DeadLetterLine> = Vec::new();
        for key in &keys {
            let obj = client
                .get_object()
                .bucket("dead-letters")
                .key(key)
                .send()
                .await
                .unwrap();
            assert_eq!(obj.content_type(), Some("application/x-ndjson"));
            assert_eq!(obj.content_encoding(), Some("gzip"));
            let gz = obj.body.collect().await.unwrap().into_bytes();
            let mut text = String::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut text)
                .unwrap();
            lines.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<DeadLetterLine>(l).unwrap()),
            );
        }
        let mut got: Vec<_> = lines
            .iter()
            .map(|l| (l.source.key.clone(), l.raw_bytes().unwrap()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("k1".to_owned(), b"one".to_vec()),
                ("k2".to_owned(), vec![0xff, 0x00]),
                ("k3".to_owned(), b"three".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn put_failure_names_bucket_and_key() {
        let root = tempfile::tempdir().unwrap();
        let endpoint = s3_server(root.path()).await;
        // Bucket names shorter than three characters are refused by S3 (and s3s).
        let sink = S3PrefixSink::new(client(&endpoint), "no", "");
        let err = sink.write(&[entry("parse", "k", b"x")]).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DeadLetterError::Put { .. }), "{err:?}");
        assert!(text.contains("s3://no/"), "{text}");
    }
}
