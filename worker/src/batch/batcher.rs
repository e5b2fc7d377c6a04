//! Turns chunks of parsed records into request-sized [`Batch`]es.
//!
//! Consumes [`RecordChunk`]s (records of one object, serialised once by the parser) and produces batches
//! closed at `sentinel.batch_size` records, at `sentinel.max_request_bytes` of JSON body, or when the first
//! record has waited `sentinel.batch_timeout`. Both channels are bounded, so a slow sink slows parsing
//! rather than growing memory.

use super::{Batch, ObjectId};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Records of one object, serialised back to back, as the parser hands them over.
#[derive(Debug, Default)]
pub struct RecordChunk {
    /// The object they came from.
    pub object: ObjectId,
    /// Concatenated JSON objects.
    pub buf: Vec<u8>,
    /// Exclusive end offset of each record in `buf`.
    pub ends: Vec<u32>,
    /// Position (line or record index) of each record in its object.
    pub positions: Vec<u64>,
}

impl RecordChunk {
    /// An empty chunk for `object`.
    pub fn new(object: ObjectId, capacity: usize) -> RecordChunk {
        RecordChunk {
            object,
            buf: Vec::with_capacity(capacity),
            ends: Vec::new(),
            positions: Vec::new(),
        }
    }

    /// Appends one record.
    pub fn push(&mut self, json: &[u8], position: u64) {
        self.buf.extend_from_slice(json);
        self.ends.push(self.buf.len() as u32);
        self.positions.push(position);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Iterates `(json, position)`.
    pub fn records(&self) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        self.ends.iter().enumerate().map(move |(i, &end)| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            (&self.buf[start..end as usize], self.positions[i])
        })
    }
}

/// How often a partial batch checks whether every reader is idle.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// When a batch is closed.
#[derive(Debug, Clone)]
pub struct BatchLimits {
    /// `sentinel.batch_size`.
    pub max_records: usize,
    /// `sentinel.max_request_bytes` (uncompressed body).
    pub max_bytes: usize,
    /// `sentinel.batch_timeout`.
    pub timeout: Duration,
    /// Object readers currently running. When it is zero and no chunk is waiting, no more records can
    /// arrive soon, so a partial batch is sent at once instead of waiting for the timeout.
    pub active_readers: Option<Arc<AtomicUsize>>,
}

impl BatchLimits {
    fn readers_idle(&self) -> bool {
        self.active_readers
            .as_ref()
            .is_some_and(|n| n.load(Ordering::Acquire) == 0)
    }
}

/// Runs until `input` closes (then flushes the last partial batch) or `output` is gone.
pub async fn run(mut input: mpsc::Receiver<RecordChunk>, output: mpsc::Sender<Batch>, limits: BatchLimits) {
    let mut current = Batch::with_capacity(limits.max_bytes);
    let mut deadline: Option<Instant> = None;
    loop {
        let chunk = match deadline {
            Some(at) => tokio::select! {
                biased;
                c = input.recv() => c,
                () = tokio::time::sleep_until(at) => {
                    if !flush(&mut current, &output, &limits).await { return; }
                    deadline = None;
                    continue;
                }
                () = tokio::time::sleep(IDLE_CHECK), if limits.active_readers.is_some() => {
                    if input.is_empty() && limits.readers_idle() {
                        if !flush(&mut current, &output, &limits).await { return; }
                        deadline = None;
                    }
                    continue;
                }
            },
            None => input.recv().await,
        };
        let Some(chunk) = chunk else {
            flush(&mut current, &output, &limits).await;
            return;
        };
        for (json, position) in chunk.records() {
            let full =
                current.len() >= limits.max_records || current.size_with(json.len()) > limits.max_bytes;
            if full && !current.is_empty() {
                if !flush(&mut current, &output, &limits).await {
                    return;
                }
                deadline = None;
            }
            current.push(json, chunk.object, position);
            if deadline.is_none() {
                deadline = Some(Instant::now() + limits.timeout);
            }
        }
        if current.len() >= limits.max_records {
            if !flush(&mut current, &output, &limits).await {
                return;
            }
            deadline = None;
        }
    }
}

/// Sends the current batch if it has records. False when the receiver is gone.
async fn flush(current: &mut Batch, output: &mpsc::Sender<Batch>, limits: &BatchLimits) -> bool {
    if current.is_empty() {
        return true;
    }
    let mut batch = std::mem::replace(current, Batch::with_capacity(limits.max_bytes));
    batch.finish();
    output.send(batch).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(object: ObjectId, records: &[&str]) -> RecordChunk {
        let mut c = RecordChunk::new(object, 64);
        for (i, r) in records.iter().enumerate() {
            c.push(r.as_bytes(), i as u64 + 1);
        }
        c
    }

    fn limits(max_records: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_records,
            max_bytes,
            timeout: Duration::from_secs(5),
            active_readers: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closes_batches_at_the_record_limit_and_flushes_the_rest_on_close() {
        let (tx, rx) = mpsc::channel(4);
        let (btx, mut brx) = mpsc::channel(8);
        let task = tokio::spawn(run(rx, btx, limits(2, 1000)));
        tx.send(chunk(1, &["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]))
            .await
            .unwrap();
        drop(tx);
        task.await.unwrap();
        let first = brx.recv().await.unwrap();
        assert_eq!(first.body(), b"[{\"a\":1},{\"a\":2}]");
        let second = brx.recv().await.unwrap();
        assert_eq!(second.body(), b"[{\"a\":3}]");
        assert!(brx.recv().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_byte_limit() {
        let (tx, rx) = mpsc::channel(4);
        let (btx, mut brx) = mpsc::channel(64);
        let task = tokio::spawn(run(rx, btx, limits(1000, 100)));
        let record = format!("{{\"v\":\"{}\"}}", "x".repeat(20)); // 28 bytes
        let records: Vec<&str> = (0..50).map(|_| record.as_str()).collect();
        tx.send(chunk(7, &records)).await.unwrap();
        drop(tx);
        task.await.unwrap();
        let mut total = 0;
        while let Some(b) = brx.recv().await {
            assert!(b.body().len() <= 100, "body of {} bytes", b.body().len());
            let parsed: Vec<serde_json::Value> = serde_json::from_slice(b.body()).unwrap();
            total += parsed.len();
        }
        assert_eq!(total, 50);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_is_sent_when_the_timeout_expires() {
        let (tx, rx) = mpsc::channel(4);
        let (btx, mut brx) = mpsc::channel(8);
        let _task = tokio::spawn(run(rx, btx, limits(100, 1000)));
        tx.send(chunk(1, &["{}"])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(4900)).await;
        assert!(brx.try_recv().is_err(), "sent before the timeout");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = brx.recv().await.unwrap();
        assert_eq!(b.len(), 1);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_is_sent_early_once_every_reader_is_idle() {
        let (tx, rx) = mpsc::channel(4);
        let (btx, mut brx) = mpsc::channel(8);
        let readers = Arc::new(AtomicUsize::new(1));
        let mut l = limits(100, 1000);
        l.active_readers = Some(Arc::clone(&readers));
        let _task = tokio::spawn(run(rx, btx, l));
        tx.send(chunk(1, &["{}"])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(brx.try_recv().is_err(), "a reader is still active");
        readers.store(0, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(brx.try_recv().unwrap().len(), 1);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn records_of_several_objects_share_a_batch_with_spans() {
        let (tx, rx) = mpsc::channel(4);
        let (btx, mut brx) = mpsc::channel(8);
        let task = tokio::spawn(run(rx, btx, limits(10, 1000)));
        tx.send(chunk(1, &["{}", "{}"])).await.unwrap();
        tx.send(chunk(2, &["{}"])).await.unwrap();
        drop(tx);
        task.await.unwrap();
        let b = brx.recv().await.unwrap();
        assert_eq!(
            b.spans(),
            [
                super::super::ObjectSpan {
                    object: 1,
                    records: 2
                },
                super::super::ObjectSpan {
                    object: 2,
                    records: 1
                }
            ]
        );
    }
}
