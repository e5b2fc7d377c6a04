//! An in-process S3-compatible server on loopback, for the `demo` subcommand, tests and benchmarks.
//!
//! It is the real `s3s-fs` S3 implementation (objects are files under a root directory) served over
//! HTTP with SigV4 verification, so the worker talks to it with the real AWS SDK exactly as it talks to S3. A thin layer in front
//! can answer `503 SlowDown` to chosen requests, to exercise the worker's back-off.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Faults and counters shared with the serving task.
#[derive(Debug, Default)]
pub struct S3Faults {
    slowdown_next: AtomicU32,
    requests: AtomicU64,
    slowdowns_sent: AtomicU64,
}

impl S3Faults {
    /// The next `n` requests are answered `503 SlowDown`.
    pub fn slow_down_next(&self, n: u32) {
        self.slowdown_next.store(n, Ordering::SeqCst);
    }

    /// Requests received so far (including refused ones).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// `SlowDown` answers sent so far.
    pub fn slowdowns_sent(&self) -> u64 {
        self.slowdowns_sent.load(Ordering::SeqCst)
    }

    fn take_slowdown(&self) -> bool {
        self.slowdown_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A running local S3 server.
pub struct LocalS3 {
    addr: SocketAddr,
    root: PathBuf,
    faults: Arc<S3Faults>,
    stop: CancellationToken,
}

impl LocalS3 {
    /// Serves the directory `root` (one sub-directory per bucket) on `127.0.0.1` at an ephemeral port,
    /// accepting only requests signed (SigV4) with this access key and secret.
    pub async fn start(root: &Path, access_key: &str, secret_key: &str) -> std::io::Result<LocalS3> {
        std::fs::create_dir_all(root)?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(S3Faults::default());
        let stop = CancellationToken::new();
        let (task_faults, task_stop) = (Arc::clone(&faults), stop.clone());
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = tokio::select! {
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                    () = task_stop.cancelled() => return,
                };
                let service = service.clone();
                let faults = Arc::clone(&task_faults);
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    let faults = Arc::clone(&faults);
                    async move {
                        faults.requests.fetch_add(1, Ordering::SeqCst);
                        if faults.take_slowdown() {
                            faults.slowdowns_sent.fetch_add(1, Ordering::SeqCst);
                            return Ok(slow_down_response());
                        }
                        hyper::service::Service::call(&service, req).await
                    }
                });
                let conn = http.serve_connection(TokioIo::new(socket), svc).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(LocalS3 {
            addr,
            root: root.to_path_buf(),
            faults,
            stop,
        })
    }

    /// `http://127.0.0.1:<port>`, for `aws.endpoint_url` (with `force_path_style: true`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fault controls and counters.
    pub fn faults(&self) -> &S3Faults {
        &self.faults
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join(bucket))
    }

    /// Stores an object directly on disk (faster than a PUT for seeding large data sets).
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.object_path(bucket, key)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)
    }

    /// Path where an object's bytes live (for writers that stream large objects to disk).
    pub fn object_path(&self, bucket: &str, key: &str) -> std::io::Result<PathBuf> {
        if key.split('/').any(|part| part == ".." || part == ".") || key.starts_with('/') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("unsafe key `{key}`"),
            ));
        }
        Ok(self.root.join(bucket).join(key))
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn slow_down_response() -> s3s::HttpResponse {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let mut resp = hyper::Response::new(s3s::Body::from(body.to_owned()));
    *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    resp
}
