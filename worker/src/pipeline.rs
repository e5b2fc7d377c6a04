//! The pipeline, read top to bottom:
//!
//! ```text
//! source ──WorkItem──▶ object readers (≤ aws.max_concurrent_downloads; rate-limited GetObject,
//!                      streaming decode + parse on blocking threads)
//!                        │ RecordChunk (bounded)              │ rejections
//!                        ▼                                    ▼
//!                      batcher (batch_size / 1 MB / timeout)  dead-letter writer ──▶ sink
//!                        │ Batch (bounded)                    ▲ refused records
//!                        ▼                                    │
//!                      delivery (≤ sentinel.max_concurrent_batches; breaker, retries, gzip)
//!                        │ acknowledgements
//!                        ▼
//!                      tracker ──ObjectOutcome──▶ source ──▶ checkpoint
//! ```
//!
//! Every channel is bounded; memory is set by configuration, not by object size. Shutdown: `stop` ends
//! discovery; objects already reading finish and their batches are delivered; after
//! `shutdown.drain_timeout` the `abort` token makes everything still in flight give up unacknowledged
//! (to be read again on restart); then the checkpoint is flushed.

mod dead_letters;
mod deliver;
mod object;
mod record_checks;

pub use object::ObjectError;

use crate::batch::Batch;
use crate::batch::batcher::{self, BatchLimits, RecordChunk};
use crate::checkpoint::{CheckpointHandle, CheckpointState, Checkpointer, FileCheckpointStore};
use crate::coordination::CoordinationSettings;
use crate::coordination::partitions::Checkpoints;
use crate::coordination::runtime::Coordination;
use crate::dead_letter::DeadLetterSink;
use crate::resilience::{BreakerState, CircuitBreaker, RateLimiter};
use crate::sink::{Delivery, EntraTokenProvider, LogsIngestionClient};
use crate::source::poll::{PollSettings, PollSource};
use crate::source::sqs::SqsSource;
use crate::source::{ObjectSource, WorkItem};
use crate::telemetry::Metrics;
use crate::tracker::Tracker;
use dead_letters::DeadLetterJob;
use object::Outlets;
use s3_sentinel_api::WorkerConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why the worker could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The checkpoint could not be loaded or belongs to another bucket.
    #[error("failed to load the checkpoint: {0}")]
    Checkpoint(String),
    /// Entra ID credentials are missing or unusable.
    #[error("failed to set up sentinel authentication: {0}")]
    Auth(String),
    /// The S3 client could not be built.
    #[error("failed to set up the s3 client: {0}")]
    S3(String),
    /// The HTTP client could not be built.
    #[error("failed to build the http client: {0}")]
    Http(String),
    /// The dead-letter sink could not be set up.
    #[error("failed to set up the dead-letter sink: {0}")]
    DeadLetter(String),
    /// A pipeline task panicked or was cancelled.
    #[error("failed to run the pipeline: {0}")]
    Task(String),
    /// The source stopped with an error.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// Coordination through the Kubernetes API could not start.
    #[error("failed to coordinate through the kubernetes api: {0}")]
    Coordination(String),
}

/// State every stage reads. Holds no channel senders, so channels close as their producers end.
pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    pub(crate) format: &'static str,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) limiter: RateLimiter,
    pub(crate) metrics: Metrics,
    pub(crate) tracker: Tracker,
    pub(crate) delivery: Delivery,
    pub(crate) dead_letter_sink: Arc<dyn DeadLetterSink>,
    /// Cancelled when the drain deadline passed: everything in flight gives up unacknowledged.
    pub(crate) abort: CancellationToken,
    /// Object readers running now (lets the batcher send a partial batch as soon as all are idle).
    pub(crate) active_readers: Arc<AtomicUsize>,
    /// Field-limit and DCR schema checks applied to every record.
    pub(crate) checks: record_checks::RecordChecks,
}

/// How a run should behave.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Read what is in the bucket now, finish it, and return (instead of polling forever).
    pub once: bool,
}

/// What a run did, for the end-of-run summary.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Wall-clock duration.
    pub elapsed: Duration,
    /// Objects finished (completed, skipped or dead-lettered).
    pub objects_finished: u64,
    /// Object attempts that ended unfinished (offered again, or left for the next run).
    pub objects_unfinished: u64,
    /// Records parsed.
    pub records_read: u64,
    /// Records accepted by Sentinel.
    pub records_accepted: u64,
    /// Records (and unreadable objects) dead-lettered.
    pub records_dead_lettered: u64,
    /// Records re-read from objects an interrupted run had started.
    pub records_redelivered: u64,
    /// Bytes downloaded (as stored).
    pub bytes_downloaded: u64,
    /// Bytes after decompression.
    pub bytes_decoded: u64,
    /// Circuit breaker state at the end.
    pub breaker: BreakerState,
}

/// A fully built worker: every component constructed from one validated configuration.
pub struct Worker {
    shared: Arc<Shared>,
    checkpoint: CheckpointHandle,
    checkpoint_task: tokio::task::JoinHandle<Result<(), crate::checkpoint::CheckpointError>>,
    breaker: CircuitBreaker,
    ready: Option<oneshot::Sender<()>>,
    /// Kubernetes client and identity for `coordination.mode: kubernetes`, when given by the caller
    /// (tests); otherwise built from the environment (in-cluster or `KUBECONFIG`).
    kube: Option<(kube::Client, String)>,
}

impl Worker {
    /// Builds the worker. `ready` fires after the first discovery pass.
    pub async fn build(
        config: WorkerConfig,
        metrics: Metrics,
        ready: Option<oneshot::Sender<()>>,
    ) -> Result<Worker, PipelineError> {
        let format = config.parser.format.as_str();
        let s3 = crate::s3::build_client(&config.aws)
            .await
            .map_err(|e| PipelineError::S3(e.to_string()))?;
        let limiter = RateLimiter::from_config(&config.aws, metrics.clone());

        let store = Arc::new(FileCheckpointStore::new(config.checkpoint.path.clone()));
        let state = match crate::checkpoint::CheckpointStore::load(store.as_ref()).await {
            Ok(Some(state)) if state.bucket != config.aws.bucket => {
                return Err(PipelineError::Checkpoint(format!(
                    "{} records progress for bucket `{}`, not `{}`; point checkpoint.path elsewhere",
                    config.checkpoint.path.display(),
                    state.bucket,
                    config.aws.bucket
                )));
            }
            Ok(Some(state)) => state,
            Ok(None) => CheckpointState::new(config.aws.bucket.clone()),
            Err(e) => return Err(PipelineError::Checkpoint(e.to_string())),
        };
        let (checkpoint, checkpoint_task) = Checkpointer::spawn(
            store,
            state,
            config.checkpoint.flush_interval.get(),
            metrics.clone(),
        );

        let http = crate::sink::client::http_client(&config.sentinel)
            .map_err(|e| PipelineError::Http(e.to_string()))?;
        let tokens = EntraTokenProvider::from_config(
            &config.sentinel.auth,
            config.sentinel.allow_insecure_http,
            http.clone(),
            metrics.clone(),
        )
        .map_err(|e| PipelineError::Auth(e.to_string()))?;
        let breaker = CircuitBreaker::new(&config.circuit_breaker, metrics.clone());
        let client = LogsIngestionClient::new(&config.sentinel, http, metrics.clone())
            .map_err(|e| PipelineError::Http(e.to_string()))?;
        let delivery = Delivery::new(
            client,
            Arc::new(tokens),
            breaker.clone(),
            &config.sentinel,
            metrics.clone(),
        );
        let dead_letter_sink =
            crate::dead_letter::from_config(&config.dead_letter, Some(s3.clone()), metrics.clone())
                .map_err(|e| PipelineError::DeadLetter(e.to_string()))?;

        let shared = Arc::new(Shared {
            format,
            s3,
            limiter,
            tracker: Tracker::new(metrics.clone(), format),
            checks: record_checks::RecordChecks::new(&config, metrics.clone()),
            metrics,
            delivery,
            dead_letter_sink,
            abort: CancellationToken::new(),
            active_readers: Arc::new(AtomicUsize::new(0)),
            config,
        });
        Ok(Worker {
            shared,
            checkpoint,
            checkpoint_task,
            breaker,
            ready,
            kube: None,
        })
    }

    /// Uses `client` and `identity` for `coordination.mode: kubernetes` instead of the in-cluster
    /// client and the identity environment variable (several workers in one test process).
    pub fn with_kube(mut self, client: kube::Client, identity: impl Into<String>) -> Worker {
        self.kube = Some((client, identity.into()));
        self
    }

    /// Starts coordination when `coordination.mode: kubernetes`.
    async fn start_coordination(&mut self, partitioned: bool) -> Result<Option<Coordination>, PipelineError> {
        let cfg = &self.shared.config;
        let given = self.kube.take();
        let identity = match &given {
            Some((_, identity)) => Some(identity.clone()),
            None => std::env::var(&cfg.coordination.identity_env).ok(),
        };
        let Some(settings) = CoordinationSettings::from_config(cfg, identity)
            .map_err(|e| PipelineError::Coordination(e.to_string()))?
        else {
            return Ok(None);
        };
        let client = match given {
            Some((client, _)) => client,
            None => kube::Client::try_default().await.map_err(|e| {
                PipelineError::Coordination(format!(
                    "unable to build a Kubernetes client (in-cluster or KUBECONFIG): {e}"
                ))
            })?,
        };
        Coordination::start(client, settings, self.shared.metrics.clone(), partitioned)
            .await
            .map(Some)
            .map_err(|e| PipelineError::Coordination(e.to_string()))
    }

    /// The breaker, for status reporting.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Runs the poll source over the configured prefixes until `stop` (or, with `once`, until the
    /// bucket's current content is done), then drains and flushes the checkpoint.
    pub async fn run(
        mut self,
        options: RunOptions,
        stop: CancellationToken,
    ) -> Result<RunSummary, PipelineError> {
        if let Some(source) = self.sqs_source(options).await? {
            // The queue spreads the work; coordination only reports status (no partitions).
            let coordination = self.start_coordination(false).await?;
            let result = self.run_source(Box::new(source), stop).await;
            if let Some(coordination) = coordination {
                coordination.shutdown().await;
            }
            return result;
        }
        let cfg = &self.shared.config;
        let settings = PollSettings {
            bucket: cfg.aws.bucket.clone(),
            prefixes: cfg.aws.prefixes.clone(),
            page_size: cfg.aws.batch_size as i32,
            poll_interval: cfg.aws.poll_interval.get(),
            resume_after_last_key: cfg.aws.resume_after_last_key,
            lookback: cfg.checkpoint.last_modified_lookback.get(),
            once: options.once,
            once_rounds: cfg.aws.object_attempts,
            start_batch: cfg.aws.max_concurrent_downloads as usize,
        };
        let coordination = self.start_coordination(true).await?;
        let checkpoints = coordination
            .as_ref()
            .and_then(Coordination::checkpoints)
            .unwrap_or_else(|| Checkpoints::Single(self.checkpoint.clone()));
        let source = PollSource::new(
            self.shared.s3.clone(),
            settings,
            self.shared.limiter.clone(),
            checkpoints,
            self.shared.metrics.clone(),
            self.ready.take(),
        );
        let result = self.run_source(Box::new(source), stop).await;
        if let Some(coordination) = coordination {
            coordination.shutdown().await;
        }
        result
    }

    /// SQS mode (`sqs` configured): the source that reads S3 event notifications from the queue. There
    /// is no listing checkpoint then; a message is deleted once its objects are finished.
    async fn sqs_source(&mut self, options: RunOptions) -> Result<Option<SqsSource>, PipelineError> {
        let Some(sqs) = &self.shared.config.sqs else {
            return Ok(None);
        };
        let source = crate::source::sqs::sqs_source(
            &self.shared.config,
            sqs,
            self.shared.format,
            options.once,
            Arc::clone(&self.shared.dead_letter_sink),
            self.shared.metrics.clone(),
            self.ready.take(),
        )
        .await
        .map_err(|e| PipelineError::S3(e.to_string()))?;
        Ok(Some(source))
    }

    /// Runs any source (poll or SQS) through the pipeline.
    pub async fn run_source(
        self,
        source: Box<dyn ObjectSource>,
        stop: CancellationToken,
    ) -> Result<RunSummary, PipelineError> {
        let started = Instant::now();
        let shared = Arc::clone(&self.shared);
        let cfg = &shared.config;
        let downloads = cfg.aws.max_concurrent_downloads as usize;
        let in_flight_batches = cfg.sentinel.max_concurrent_batches as usize;

        let (work_tx, work_rx) = mpsc::channel::<WorkItem>(downloads);
        let (record_tx, record_rx) = mpsc::channel::<RecordChunk>(downloads * 4);
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(in_flight_batches);
        let (dl_tx, dl_rx) = mpsc::channel::<DeadLetterJob>(1024);

        // After `stop`, in-flight work has `drain_timeout` to finish before it is abandoned.
        let drain = cfg.shutdown.drain_timeout.get();
        let watchdog = {
            let stop = stop.clone();
            let abort = shared.abort.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                info!(drain_timeout = ?drain, "stopping discovery; draining in-flight objects and batches");
                tokio::time::sleep(drain).await;
                warn!("drain timeout reached; abandoning unfinished work (it will be read again)");
                abort.cancel();
            })
        };

        let stats_stop = CancellationToken::new();
        let stats_task = tokio::spawn(crate::telemetry::stats::log_periodically(
            shared.metrics.clone(),
            cfg.logging.stats_interval.get(),
            stats_stop.clone(),
        ));
        let source_task = tokio::spawn(source.run(work_tx, stop.clone()));
        let dl_task = tokio::spawn(dead_letters::run(dl_rx, Arc::clone(&shared)));
        let batch_limits = BatchLimits {
            max_records: cfg.sentinel.batch_size as usize,
            max_bytes: cfg.sentinel.max_request_bytes as usize,
            timeout: cfg.sentinel.batch_timeout.get(),
            active_readers: Some(Arc::clone(&shared.active_readers)),
        };
        let batcher_task = tokio::spawn(batcher::run(record_rx, batch_tx, batch_limits));
        let deliver_task = tokio::spawn(deliver::run(batch_rx, Arc::clone(&shared), dl_tx.clone()));

        let outlets = Outlets {
            records: record_tx,
            dead_letters: dl_tx,
        };
        dispatch_objects(work_rx, Arc::clone(&shared), outlets, downloads, &stop).await;

        // Readers are done and their senders dropped: the batcher flushes, delivery drains, then the
        // dead-letter writer sees its channel close.
        let _ = batcher_task.await;
        let _ = deliver_task.await;
        let _ = dl_task.await;
        let source_result = source_task.await;
        watchdog.abort();
        stats_stop.cancel();
        let _ = stats_task.await;

        if let Err(e) = self.checkpoint.flush().await {
            warn!(error = %e, "final checkpoint flush failed; the last objects may be read again");
        }
        // The checkpointer makes a final save and stops when its last handle is gone.
        drop(self.checkpoint);
        match self.checkpoint_task.await {
            Ok(Err(e)) => warn!(error = %e, "checkpoint writer ended with an error"),
            Err(e) => warn!(error = %e, "checkpoint writer task failed"),
            Ok(Ok(())) => {}
        }

        let summary = summarize(&shared, started.elapsed(), self.breaker.state());
        match source_result {
            Ok(Ok(())) => Ok(summary),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(PipelineError::Task(format!("source task ended abnormally: {e}"))),
        }
    }
}

/// Spawns a reader per work item, at most `limit` at a time; returns when the source closed the
/// channel and every reader ended. After `stop`, queued items are dropped (offered again next run).
async fn dispatch_objects(
    mut work: mpsc::Receiver<WorkItem>,
    shared: Arc<Shared>,
    outlets: Outlets,
    limit: usize,
    stop: &CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limit));
    let mut readers = JoinSet::new();
    while let Some(item) = work.recv().await {
        if stop.is_cancelled() {
            shared.metrics.objects_pending.dec();
            drop(item);
            continue;
        }
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let shared = Arc::clone(&shared);
        let outlets = outlets.clone();
        shared.active_readers.fetch_add(1, Ordering::AcqRel);
        readers.spawn(async move {
            let _permit = permit;
            object::process(item, Arc::clone(&shared), outlets).await;
            shared.active_readers.fetch_sub(1, Ordering::AcqRel);
        });
        while readers.try_join_next().is_some() {}
    }
    while readers.join_next().await.is_some() {}
}

fn summarize(shared: &Shared, elapsed: Duration, breaker: BreakerState) -> RunSummary {
    let m = &shared.metrics;
    let totals = shared.tracker.totals();
    RunSummary {
        elapsed,
        objects_finished: totals.objects_finished,
        objects_unfinished: totals.objects_retried,
        records_read: m.records_read.with_label_values(&[shared.format]).get(),
        records_accepted: totals.records_accepted,
        records_dead_lettered: totals.records_dead_lettered,
        records_redelivered: m.records_redelivered.get(),
        bytes_downloaded: m.s3_bytes_downloaded.get(),
        bytes_decoded: m.bytes_processed.with_label_values(&[shared.format]).get(),
        breaker,
    }
}
