//! What a parser produces: records (serialised JSON objects) and rejections, pushed into a [`RecordSink`].

/// Where a parser pushes its output. The worker's implementation forwards records to the batcher and
/// rejections to the dead-letter sink; tests collect them in memory.
pub trait RecordSink {
    /// One record, as a complete serialised JSON object (`{...}`), at `position` in the object:
    /// the 1-based line number for line formats, the 1-based index in `Records` for CloudTrail.
    ///
    /// The slice is only valid for the call; the sink copies what it keeps.
    fn record(&mut self, json: &[u8], position: u64) -> Result<(), SinkClosed>;

    /// Something that could not become a record. The parser continues after it.
    fn reject(&mut self, rejection: Rejection<'_>) -> Result<(), SinkClosed>;

    /// After the object: `values` values of the input field `field` were not written because the
    /// target table has no column for it (e.g. a VPC flow log field `AWSVPCFlow` lacks). Reported so
    /// the drop is counted and visible, never silent. The default ignores it.
    fn field_not_in_table(&mut self, field: &str, values: u64) {
        let _ = (field, values);
    }
}

/// The consumer has gone away (the pipeline is shutting down): the parser stops at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("record sink closed")]
pub struct SinkClosed;

/// A line or record that could not become a Sentinel record.
#[derive(Debug, Clone)]
pub struct Rejection<'a> {
    /// 1-based line number (or record index for CloudTrail) in the decompressed object.
    pub position: u64,
    /// Bounded reason category; used as a metric label.
    pub reason: RejectReason,
    /// Human-readable detail, e.g. "field 7 (dst_port) `http` is not a port number". Never used as a
    /// metric label.
    pub detail: String,
    /// The raw input (for oversize input: its first `max_record_bytes` bytes).
    pub raw: &'a [u8],
    /// True when `raw` is only a prefix of the input.
    pub raw_truncated: bool,
}

/// Why input was rejected. A fixed set so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The input is larger than `max_record_bytes` (as read or as serialised).
    Oversize,
    /// The line does not match the format.
    Malformed,
    /// The record has no usable timestamp.
    BadTimestamp,
    /// The line is not valid UTF-8 where the format needs text.
    InvalidUtf8,
    /// The record does not match the DCR stream declaration (`sentinel.stream_columns`) and
    /// `sentinel.schema_violations` is `dead_letter`. Raised by the worker, not by a parser.
    SchemaMismatch,
}

impl RejectReason {
    /// Stable snake_case name: metric label and dead-letter `reason` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversize => "oversize",
            RejectReason::Malformed => "malformed",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::SchemaMismatch => "schema_mismatch",
        }
    }
}

/// Knobs that bound a parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Largest record accepted, as read and as serialised (`parser.max_size_bytes`).
    pub max_record_bytes: usize,
    /// The object key; parsers use it only to recognise special objects (CloudTrail digest files).
    pub object_key: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_record_bytes: 512 * 1024,
            object_key: String::new(),
        }
    }
}

/// Counts from one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Records handed to [`RecordSink::record`].
    pub records: u64,
    /// Rejections handed to [`RecordSink::reject`].
    pub rejected: u64,
    /// Lines or values skipped on purpose (headers, comments, blank lines, NODATA/SKIPDATA flow
    /// records, digest files): not data, so neither records nor rejections.
    pub skipped: u64,
    /// True when the whole object was skipped (e.g. a CloudTrail digest file).
    pub object_skipped: bool,
}
