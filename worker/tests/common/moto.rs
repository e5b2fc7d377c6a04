//! A real `moto` server (S3, SQS, SNS; S3 bucket notifications to SQS) as a child process, for tests
//! that need AWS behaviour the in-process S3 server does not have.
//!
//! The binary is `S3S_MOTO_SERVER`, else `.venv/bin/moto_server` at the workspace root (what `./dev`
//! installs from `tests/requirements-moto.txt`), else `moto_server` on `PATH`. When none is found a
//! test calling [`Moto::start_or_skip`] prints a skip notice and returns early, unless
//! `S3S_REQUIRE_MOTO=1` (set by `./dev`), when it fails. Each [`Moto`] is its own process on its own
//! port (state is not shared between tests); it is killed when dropped.
//!
//! The SDK clients built here use fixed credentials: never the default AWS credential chain, which
//! would probe instance metadata.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Account moto uses for everything.
pub const ACCOUNT: &str = "123456789012";
/// Region the tests use.
pub const REGION: &str = "us-east-1";
/// Credentials moto accepts (it accepts any).
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

/// A running moto server.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Where the `moto_server` binary is, if anywhere.
    pub fn binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("S3S_MOTO_SERVER") {
            let path = PathBuf::from(path);
            return path.is_file().then_some(path);
        }
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
        if venv.is_file() {
            return Some(venv);
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("moto_server"))
                .find(|p| p.is_file())
        })
    }

    /// Starts moto, or returns `None` after printing a skip notice when it is not installed (and
    /// `S3S_REQUIRE_MOTO` is not `1`). Panics when it is required but missing, or does not come up.
    pub fn start_or_skip(test: &str) -> Option<Moto> {
        match Moto::binary() {
            Some(binary) => Some(Moto::start(&binary)),
            None if std::env::var("S3S_REQUIRE_MOTO").as_deref() == Ok("1") => panic!(
                "{test}: moto_server not found (S3S_MOTO_SERVER={:?}) and S3S_REQUIRE_MOTO=1; install it \
                 with `.venv/bin/pip install -r tests/requirements-moto.txt` (./dev does)",
                std::env::var_os("S3S_MOTO_SERVER")
            ),
            None => {
                eprintln!(
                    "SKIPPED {test}: moto_server not found; install it with \
                     `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements-moto.txt` \
                     (./dev test does) or set S3S_MOTO_SERVER"
                );
                None
            }
        }
    }

    /// Starts `binary` on a free loopback port and waits until it accepts connections.
    pub fn start(binary: &Path) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", binary.display()));
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An S3 client for this server (path-style, fixed credentials).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(self.endpoint_url())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "moto",
            ))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An SQS client for this server (fixed credentials).
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .endpoint_url(self.endpoint_url())
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "moto",
            ))
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    /// `arn:aws:sqs:<region>:<account>:<queue>`.
    pub fn queue_arn(queue: &str) -> String {
        format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}")
    }

    /// Creates `bucket` and an empty `queue`; returns the queue URL.
    pub async fn bucket_and_queue(&self, bucket: &str, queue: &str) -> String {
        self.s3().create_bucket().bucket(bucket).send().await.unwrap();
        self.sqs()
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned()
    }

    /// Makes S3 send `s3:ObjectCreated:*` events of `bucket` to `queue`, then purges the test event S3
    /// (and moto) sends on saving the configuration.
    pub async fn notify_on_create(&self, bucket: &str, queue: &str, queue_url: &str) {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        let target = QueueConfiguration::builder()
            .queue_arn(Moto::queue_arn(queue))
            .events(Event::S3ObjectCreated)
            .build()
            .unwrap();
        self.s3()
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(target)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        self.sqs()
            .purge_queue()
            .queue_url(queue_url)
            .send()
            .await
            .unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
