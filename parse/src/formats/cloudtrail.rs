//! CloudTrail log files, streamed.
//!
//! Consumes one CloudTrail object, `{"Records":[{...},{...}]}` (compact as AWS writes it, or
//! pretty-printed), and produces one `AWSCloudTrail`-shaped record per element of `Records`
//! (see [`super::cloudtrail_event`]). The object is never held whole: a byte scanner that tracks
//! string, escape and nesting state cuts the array into elements, buffering at most
//! `max_record_bytes` of each; a longer element is skipped to its end and rejected with its prefix.
//!
//! Objects without a `Records` key (digest files) and keys under `CloudTrail-Digest/` are skipped
//! whole. A malformed element is rejected and the scan goes on; damage to the surrounding structure
//! (not JSON, truncated) ends the parse with [`ParseError::Structure`] after the valid elements.

use std::io::{self, BufRead};

use crate::emit::{ParseOptions, ParseStats, RecordSink, RejectReason};

use super::cloudtrail_event::{EventError, write_event};
use super::{Emitter, ParseError};

/// Key prefix segment of CloudTrail digest files.
const DIGEST_KEY_MARKER: &str = "CloudTrail-Digest/";

/// Longest top-level key kept for comparison; longer keys cannot be `Records`.
const MAX_KEY_BYTES: usize = 64;

pub(crate) fn parse(
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<ParseStats, ParseError> {
    if opts.object_key.contains(DIGEST_KEY_MARKER) {
        return Ok(ParseStats {
            object_skipped: true,
            ..ParseStats::default()
        });
    }
    let mut parser = Parser {
        scan: Scanner { input },
        emitter: Emitter::new(sink, opts),
        max: opts.max_record_bytes,
        element: Vec::new(),
        out: Vec::new(),
    };
    let result = parser.object();
    PEAK_BUFFER_BYTES.set(parser.element.capacity() + parser.out.capacity());
    let found_records = result?;
    let mut stats = parser.emitter.stats;
    if !found_records {
        stats.object_skipped = true;
    }
    Ok(stats)
}

thread_local! {
    static PEAK_BUFFER_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Capacity of the element and record buffers at the end of the last CloudTrail parse on this thread.
/// The buffers only grow, so this is their peak: a diagnostic probe for the memory bound.
pub fn last_peak_buffer_bytes() -> usize {
    PEAK_BUFFER_BYTES.get()
}

pub(crate) fn structure(detail: impl Into<String>) -> ParseError {
    ParseError::Structure {
        detail: detail.into(),
    }
}

struct Parser<'i, 's> {
    scan: Scanner<'i>,
    emitter: Emitter<'s>,
    max: usize,
    /// The current element (at most `max` bytes); reused.
    element: Vec<u8>,
    /// The serialised record; reused.
    out: Vec<u8>,
}

impl Parser<'_, '_> {
    /// Walks the top-level object; returns whether it had a `Records` array.
    fn object(&mut self) -> Result<bool, ParseError> {
        match self.scan.peek_non_ws()? {
            Some(b'{') => self.scan.bump(),
            Some(b) => {
                return Err(structure(format!(
                    "expected a JSON object, found byte 0x{b:02x} at the start"
                )));
            }
            None => return Err(structure("object is empty, expected a JSON object")),
        }
        let mut found = false;
        let mut key = Vec::with_capacity(MAX_KEY_BYTES);
        if self.scan.peek_non_ws()? == Some(b'}') {
            self.scan.bump();
            return self.end(found);
        }
        loop {
            key.clear();
            match self.scan.peek_non_ws()? {
                Some(b'"') => {}
                Some(_) => return Err(structure("expected a key in the top-level object")),
                None => return Err(structure("object is truncated")),
            }
            self.scan.value(&mut key, MAX_KEY_BYTES)?;
            self.scan.expect(b':', "`:` after a top-level key")?;
            if key == b"\"Records\"" {
                found = true;
                self.records()?;
            } else {
                self.scan.value(&mut Vec::new(), 0)?;
            }
            match self.scan.peek_non_ws()? {
                Some(b',') => self.scan.bump(),
                Some(b'}') => {
                    self.scan.bump();
                    return self.end(found);
                }
                Some(_) => return Err(structure("expected `,` or `}` in the top-level object")),
                None => return Err(structure("object is truncated")),
            }
        }
    }

    fn end(&mut self, found: bool) -> Result<bool, ParseError> {
        match self.scan.peek_non_ws()? {
            None => Ok(found),
            Some(_) => Err(structure("unexpected data after the top-level object")),
        }
    }

    /// Walks the `Records` array, emitting one record per element.
    fn records(&mut self) -> Result<(), ParseError> {
        match self.scan.peek_non_ws()? {
            Some(b'[') => self.scan.bump(),
            Some(b'n') => {
                // `"Records": null`: no records.
                return self.scan.value(&mut Vec::new(), 0).map(drop);
            }
            _ => return Err(structure("`Records` is not an array")),
        }
        if self.scan.peek_non_ws()? == Some(b']') {
            self.scan.bump();
            return Ok(());
        }
        let mut index: u64 = 0;
        loop {
            index += 1;
            if self.scan.peek_non_ws()?.is_none() {
                return Err(structure(format!("object is truncated at record {index}")));
            }
            self.element.clear();
            let total = self
                .scan
                .value(&mut self.element, self.max)
                .map_err(|e| match e {
                    ParseError::Structure { detail } => structure(format!("record {index}: {detail}")),
                    other => other,
                })?;
            self.element_done(index, total)?;
            match self.scan.peek_non_ws()? {
                Some(b',') => self.scan.bump(),
                Some(b']') => {
                    self.scan.bump();
                    return Ok(());
                }
                Some(_) => {
                    return Err(structure(format!("expected `,` or `]` after record {index}")));
                }
                None => return Err(structure(format!("object is truncated after record {index}"))),
            }
        }
    }

    fn element_done(&mut self, index: u64, total: u64) -> Result<(), ParseError> {
        if total > self.max as u64 {
            let detail = format!("record is {total} bytes, over the cap of {} bytes", self.max);
            return self
                .emitter
                .reject_raw(index, RejectReason::Oversize, detail, &self.element, true);
        }
        self.out.clear();
        match write_event(&self.element, &mut self.out) {
            Ok(()) => self.emitter.record(&self.out, index, &self.element),
            Err(EventError::Malformed(detail)) => {
                self.emitter
                    .reject(index, RejectReason::Malformed, detail, &self.element)
            }
            Err(EventError::BadTimestamp(detail)) => {
                self.emitter
                    .reject(index, RejectReason::BadTimestamp, detail, &self.element)
            }
        }
    }
}

/// Byte-level JSON scanner over a [`BufRead`].
pub(crate) struct Scanner<'i> {
    pub(crate) input: &'i mut dyn BufRead,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An object or array: ends when nesting returns to zero.
    Container,
    /// A string: ends at its closing quote.
    Str,
    /// A number or literal: ends before a delimiter.
    Atom,
}

impl Scanner<'_> {
    fn fill(&mut self) -> io::Result<&[u8]> {
        // Retry interruptions on a first call whose borrow ends here; the second call only returns
        // what is already buffered.
        loop {
            match self.input.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        self.input.fill_buf()
    }

    /// The next byte that is not JSON whitespace, without consuming it.
    pub(crate) fn peek_non_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            let chunk = self.fill()?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let ws = chunk
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
                .count();
            if ws < chunk.len() {
                let b = chunk[ws];
                self.input.consume(ws);
                return Ok(Some(b));
            }
            let n = chunk.len();
            self.input.consume(n);
        }
    }

    pub(crate) fn bump(&mut self) {
        self.input.consume(1);
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<(), ParseError> {
        match self.peek_non_ws()? {
            Some(b) if b == want => {
                self.bump();
                Ok(())
            }
            _ => Err(structure(format!("expected {what}"))),
        }
    }

    /// Consumes one JSON value starting at the next non-whitespace byte, appending at most `cap` of
    /// its bytes to `buf`. Returns its full length. Only the framing is checked here (strings,
    /// nesting); the content is validated by whoever parses `buf`.
    pub(crate) fn value(&mut self, buf: &mut Vec<u8>, cap: usize) -> Result<u64, ParseError> {
        let kind = match self.peek_non_ws()? {
            Some(b'{' | b'[') => Kind::Container,
            Some(b'"') => Kind::Str,
            Some(_) => Kind::Atom,
            None => return Err(structure("truncated before a value")),
        };
        let mut depth: u32 = 0;
        let mut in_str = false;
        let mut escaped = false;
        let mut total: u64 = 0;
        loop {
            let chunk = self.fill()?;
            if chunk.is_empty() {
                if kind == Kind::Atom {
                    return Ok(total);
                }
                return Err(structure("truncated inside a value"));
            }
            let mut i = 0;
            let mut done = false;
            while i < chunk.len() {
                if escaped {
                    escaped = false;
                    i += 1;
                    continue;
                }
                if in_str {
                    match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                        None => i = chunk.len(),
                        Some(p) => {
                            i += p;
                            if chunk[i] == b'\\' {
                                escaped = true;
                            } else {
                                in_str = false;
                                if kind == Kind::Str {
                                    i += 1;
                                    done = true;
                                    break;
                                }
                            }
                            i += 1;
                        }
                    }
                    continue;
                }
                match chunk[i] {
                    b'"' => in_str = true,
                    b'{' | b'[' if kind == Kind::Container => depth += 1,
                    b'}' | b']' if kind == Kind::Container => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            i += 1;
                            done = true;
                            break;
                        }
                    }
                    b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t' | b':' if kind == Kind::Atom => {
                        done = true;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            let room = cap.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..i.min(room)]);
            total += i as u64;
            self.input.consume(i);
            if done {
                return Ok(total);
            }
        }
    }
}
