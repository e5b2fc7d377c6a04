//! The format parsers and their shared driver.
//!
//! Consumes a decoded object ([`BufRead`]) and a [`LogFormat`]; produces records and rejections on a
//! [`RecordSink`] and returns the object's [`ParseStats`]. A [`ParseError`] means the object as a
//! whole could not be read or parsed; anything wrong with a single line or record is a rejection and
//! the parse continues.

use std::io::{self, BufRead};

use chrono::{DateTime, Utc};
use s3_sentinel_api::LogFormat;

use crate::decode::too_large_cap;
use crate::emit::{ParseOptions, ParseStats, RecordSink, RejectReason, Rejection, SinkClosed};
use crate::lines::{Line, LineReader};

mod cef;
mod cef_columns;
mod cloudfront;
mod cloudtrail;
mod cloudtrail_event;
mod csv;
mod detect;
mod elb;
mod fields;
mod firewall;
mod guardduty;
mod jsonlines;
mod route53;
mod s3access;
mod syslog;
mod syslog_header;
mod vpcflow;
mod waf;

pub use cloudtrail::last_peak_buffer_bytes;
pub use detect::detect_format;

/// Why an object could not be parsed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Reading the decoded object failed. Kind [`io::ErrorKind::InvalidData`] means corrupt compressed
    /// data; an inner [`crate::DecodeError::TooLarge`] (see [`crate::decode::too_large_cap`]) means the
    /// decompression cap was hit; anything else is a read error of the source.
    #[error("unable to read the object")]
    Io(#[from] io::Error),
    /// The object does not have the structure of its format (e.g. a CloudTrail object that is not a
    /// JSON object, or is cut short). Records before the damage have been emitted.
    #[error("failed to parse the object structure: {detail}")]
    Structure {
        /// What was wrong and where.
        detail: String,
    },
    /// The sink went away; the parse stopped.
    #[error("record sink closed")]
    SinkClosed,
}

impl From<SinkClosed> for ParseError {
    fn from(_: SinkClosed) -> Self {
        ParseError::SinkClosed
    }
}

impl ParseError {
    /// Bounded category for metrics and dead-letter reasons: `corrupt`, `too_large`, `io`,
    /// `structure` or `closed`.
    pub fn category(&self) -> &'static str {
        match self {
            ParseError::Io(e) if too_large_cap(e).is_some() => "too_large",
            ParseError::Io(e) if e.kind() == io::ErrorKind::InvalidData => "corrupt",
            ParseError::Io(_) => "io",
            ParseError::Structure { .. } => "structure",
            ParseError::SinkClosed => "closed",
        }
    }

    /// True when retrying the same object cannot succeed (corrupt, too large, bad structure); false
    /// for read errors of the source and for a closed sink.
    pub fn is_permanent(&self) -> bool {
        matches!(self.category(), "corrupt" | "too_large" | "structure")
    }
}

/// Parses one decoded object in `format`, pushing records and rejections into `sink`.
///
/// Formats that need the current time (syslog and CEF year inference for BSD timestamps) use
/// [`Utc::now`] taken once at the call; see [`parse_object_at`] to inject it.
pub fn parse_object(
    format: LogFormat,
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<ParseStats, ParseError> {
    parse_object_at(format, input, opts, Utc::now(), sink)
}

/// [`parse_object`] with an explicit reference time for year-less timestamps: such a timestamp is
/// placed in the latest year that does not put it more than a day after `now`.
pub fn parse_object_at(
    format: LogFormat,
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    now: DateTime<Utc>,
    sink: &mut dyn RecordSink,
) -> Result<ParseStats, ParseError> {
    match format {
        LogFormat::Cloudtrail => cloudtrail::parse(input, opts, sink),
        LogFormat::Vpcflow => vpcflow::parse(input, opts, sink),
        LogFormat::Jsonlines => drive_lines(input, opts, sink, jsonlines::parse_line),
        LogFormat::Firewall => drive_lines(input, opts, sink, firewall::parse_line),
        LogFormat::Syslog => drive_lines(input, opts, sink, |line, out| syslog::parse_line(line, now, out)),
        LogFormat::Cef => drive_lines(input, opts, sink, |line, out| cef::parse_line(line, now, out)),
        LogFormat::Elb => drive_lines(input, opts, sink, elb::parse_line),
        LogFormat::S3access => drive_lines(input, opts, sink, s3access::parse_line),
        LogFormat::Cloudfront => cloudfront::parse(input, opts, sink),
        LogFormat::Route53 => drive_lines(input, opts, sink, route53::parse_line),
        LogFormat::Waf => drive_lines(input, opts, sink, waf::parse_line),
        LogFormat::Guardduty => guardduty::parse(input, opts, sink),
        LogFormat::Csv => csv::parse(input, opts, sink),
    }
}

/// What a line parser made of one line.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A record was written to the output buffer.
    Record,
    /// Not data (header, comment, NODATA): counted as skipped.
    Skip,
    /// Rejected, with the reason and a human-readable detail.
    Reject(RejectReason, String),
}

impl Outcome {
    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Outcome::Reject(RejectReason::Malformed, detail.into())
    }
}

/// Hands records and rejections to the sink, enforcing the record cap, and counts them.
pub(crate) struct Emitter<'s> {
    sink: &'s mut dyn RecordSink,
    pub(crate) stats: ParseStats,
    max: usize,
}

impl<'s> Emitter<'s> {
    pub(crate) fn new(sink: &'s mut dyn RecordSink, opts: &ParseOptions) -> Self {
        Emitter {
            sink,
            stats: ParseStats::default(),
            max: opts.max_record_bytes,
        }
    }

    /// Emits the serialised record `json` (or rejects it as oversize), made from `raw`.
    pub(crate) fn record(&mut self, json: &[u8], position: u64, raw: &[u8]) -> Result<(), ParseError> {
        if json.len() > self.max {
            let detail = format!(
                "serialised record is {} bytes, over the cap of {} bytes",
                json.len(),
                self.max
            );
            return self.reject(position, RejectReason::Oversize, detail, raw);
        }
        self.sink.record(json, position)?;
        self.stats.records += 1;
        Ok(())
    }

    /// Rejects `raw` (truncated to the cap if longer).
    pub(crate) fn reject(
        &mut self,
        position: u64,
        reason: RejectReason,
        detail: String,
        raw: &[u8],
    ) -> Result<(), ParseError> {
        let truncated = raw.len() > self.max;
        let raw = &raw[..raw.len().min(self.max)];
        self.reject_raw(position, reason, detail, raw, truncated)
    }

    /// Rejects with an explicit raw prefix.
    pub(crate) fn reject_raw(
        &mut self,
        position: u64,
        reason: RejectReason,
        detail: String,
        raw: &[u8],
        raw_truncated: bool,
    ) -> Result<(), ParseError> {
        self.sink.reject(Rejection {
            position,
            reason,
            detail,
            raw,
            raw_truncated,
        })?;
        self.stats.rejected += 1;
        Ok(())
    }
}

/// Runs a line parser over every line: blank lines are skipped, oversize lines rejected, and each
/// other line handed to `parse` with a cleared output buffer.
pub(crate) fn drive_lines<F>(
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
    mut parse: F,
) -> Result<ParseStats, ParseError>
where
    F: FnMut(&[u8], &mut Vec<u8>) -> Outcome,
{
    let mut emitter = Emitter::new(sink, opts);
    let mut lines = LineReader::new(input, opts.max_record_bytes);
    let mut out = Vec::with_capacity(4096);
    while let Some((line_no, line)) = lines.next_line()? {
        let line = match line {
            Line::Complete(l) => l,
            Line::Oversize { prefix, total_len } => {
                let detail = format!(
                    "line is {total_len} bytes, over the cap of {} bytes",
                    opts.max_record_bytes
                );
                emitter.reject_raw(line_no, RejectReason::Oversize, detail, prefix, true)?;
                continue;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            emitter.stats.skipped += 1;
            continue;
        }
        out.clear();
        match parse(line, &mut out) {
            Outcome::Record => emitter.record(&out, line_no, line)?,
            Outcome::Skip => emitter.stats.skipped += 1,
            Outcome::Reject(reason, detail) => emitter.reject(line_no, reason, detail, line)?,
        }
    }
    Ok(emitter.stats)
}

/// The line as text, or a rejection for formats that are plain ASCII/UTF-8 by definition.
pub(crate) fn utf8_line(line: &[u8]) -> Result<&str, Outcome> {
    std::str::from_utf8(line).map_err(|e| {
        Outcome::Reject(
            RejectReason::InvalidUtf8,
            format!("line is not valid UTF-8 at byte {}", e.valid_up_to()),
        )
    })
}

/// Column name from an AWS field name: `some_field-name` → `SomeFieldName`,
/// `cs(User-Agent)` → `CsUserAgent`.
pub(crate) fn pascal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}
