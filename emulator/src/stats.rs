//! What the emulator has seen: counters ([`Stats`], served at `GET /stats`) and the accepted records
//! (in memory and/or a JSONL file).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::EmulatorError;

/// A snapshot of the emulator's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Upload requests received (including faulted, rejected, hung and dropped ones).
    pub upload_requests: u64,
    /// Upload responses by HTTP status code.
    pub upload_responses_by_status: BTreeMap<u16, u64>,
    /// Token requests received.
    pub token_requests: u64,
    /// Token responses by HTTP status code.
    pub token_responses_by_status: BTreeMap<u16, u64>,
    /// Upload requests answered by never responding (hang fault).
    pub hung: u64,
    /// Upload connections closed without a response (drop fault).
    pub dropped: u64,
    /// Records in accepted (204) requests.
    pub records_accepted: u64,
    /// Accepted requests.
    pub requests_accepted: u64,
    /// Body bytes as sent (compressed when gzip) of accepted requests.
    pub bytes_sent_accepted: u64,
    /// Body bytes after decompression of accepted requests.
    pub bytes_uncompressed_accepted: u64,
    /// Body bytes as sent of every upload request whose body was read.
    pub bytes_sent_total: u64,
    /// Accepted traffic per stream name.
    pub per_stream: BTreeMap<String, StreamStats>,
}

/// Accepted traffic of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Accepted requests.
    pub requests: u64,
    /// Accepted records.
    pub records: u64,
    /// Uncompressed bytes accepted.
    pub bytes_uncompressed: u64,
}

/// One accepted record with where it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedRecord {
    /// The data collection rule immutable id from the URL.
    pub dcr: String,
    /// The stream name from the URL.
    pub stream: String,
    /// The record as sent.
    pub record: serde_json::Value,
}

/// Where accepted records go: memory, a JSONL file, both or neither.
#[derive(Debug)]
pub(crate) struct RecordSink {
    memory: Option<Vec<AcceptedRecord>>,
    file: Option<BufWriter<File>>,
}

#[derive(Serialize)]
struct JsonlLine<'a> {
    dcr: &'a str,
    stream: &'a str,
    record: &'a RawValue,
}

impl RecordSink {
    pub(crate) fn open(keep: bool, path: Option<&Path>) -> Result<Self, EmulatorError> {
        let file = path
            .map(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(BufWriter::new)
                    .map_err(|source| EmulatorError::RecordFile {
                        path: path.to_owned(),
                        source,
                    })
            })
            .transpose()?;
        Ok(Self {
            memory: keep.then(Vec::new),
            file,
        })
    }

    /// Whether anything stores records (otherwise the caller skips the work).
    pub(crate) fn stores(&self) -> bool {
        self.memory.is_some() || self.file.is_some()
    }

    /// Store the records of one accepted request; the file is flushed so readers see whole requests.
    pub(crate) fn store(&mut self, dcr: &str, stream: &str, records: &[&RawValue]) -> std::io::Result<()> {
        if let Some(file) = &mut self.file {
            for record in records {
                serde_json::to_writer(&mut *file, &JsonlLine { dcr, stream, record })?;
                file.write_all(b"\n")?;
            }
            file.flush()?;
        }
        if let Some(memory) = &mut self.memory {
            for record in records {
                let record = serde_json::from_str(record.get()).map_err(std::io::Error::other)?;
                memory.push(AcceptedRecord {
                    dcr: dcr.to_owned(),
                    stream: stream.to_owned(),
                    record,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn accepted(&self) -> Vec<AcceptedRecord> {
        self.memory.clone().unwrap_or_default()
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}
