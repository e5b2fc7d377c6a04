//! Bounded line splitting.
//!
//! Consumes a [`BufRead`] and produces its lines one at a time, each without its `\n` or `\r\n`, with
//! its 1-based line number. A line longer than the record cap is never buffered whole: the reader keeps
//! its first `max_record_bytes` bytes, skips to the next newline, and reports it as
//! [`Line::Oversize`]. Lines that sit whole in the reader's buffer are handed out without copying;
//! only lines that straddle two reads are assembled in one reused buffer.

use std::io::{self, BufRead};

/// One line of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A whole line, without its terminator.
    Complete(&'a [u8]),
    /// A line longer than the cap.
    Oversize {
        /// Its first `max_record_bytes` bytes.
        prefix: &'a [u8],
        /// Its full length in bytes, without its terminator.
        total_len: u64,
    },
}

/// Splits a [`BufRead`] into bounded lines.
#[derive(Debug)]
pub struct LineReader<R> {
    input: R,
    /// Assembly buffer for lines that straddle reads; never grows beyond `max + 1` bytes.
    buf: Vec<u8>,
    max: usize,
    line_no: u64,
    /// Bytes of `input`'s buffer handed out by the previous call and not yet consumed.
    pending: usize,
}

impl<R: BufRead> LineReader<R> {
    /// A reader yielding lines of at most `max_record_bytes` bytes.
    pub fn new(input: R, max_record_bytes: usize) -> Self {
        LineReader {
            input,
            buf: Vec::new(),
            max: max_record_bytes,
            line_no: 0,
            pending: 0,
        }
    }

    /// Capacity of the assembly buffer: stays at or below `max_record_bytes + 1` whatever the input.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next line and its 1-based number, or `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        if self.pending > 0 {
            self.input.consume(self.pending);
            self.pending = 0;
        }
        self.buf.clear();
        // Keep one byte beyond the cap so a line of exactly `max` bytes plus `\r` still fits.
        let keep = self.max.saturating_add(1);
        let mut total: u64 = 0;
        let mut saw_any = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            match memchr::memchr(b'\n', chunk) {
                Some(pos) if total == 0 && pos <= keep => {
                    // Fast path: the whole line sits in the reader's buffer.
                    self.pending = pos + 1;
                    self.line_no += 1;
                    let chunk = self.input.fill_buf()?;
                    return Ok(Some((self.line_no, finish(&chunk[..pos], pos as u64, self.max))));
                }
                Some(pos) => {
                    let room = keep.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..pos.min(room)]);
                    total += pos as u64;
                    self.input.consume(pos + 1);
                    break;
                }
                None => {
                    let n = chunk.len();
                    let room = keep.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                    total += n as u64;
                    self.input.consume(n);
                }
            }
        }
        self.line_no += 1;
        Ok(Some((self.line_no, finish(&self.buf, total, self.max))))
    }
}

/// Strips a trailing `\r` and classifies the line by size. `kept` holds at most `max + 1` bytes of a
/// line whose full length is `total`.
fn finish(kept: &[u8], total: u64, max: usize) -> Line<'_> {
    let (kept, total) = if total as usize == kept.len() && kept.last() == Some(&b'\r') {
        (&kept[..kept.len() - 1], total - 1)
    } else {
        (kept, total)
    };
    if total > max as u64 {
        Line::Oversize {
            prefix: &kept[..kept.len().min(max)],
            total_len: total,
        }
    } else {
        Line::Complete(kept)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize, cap: usize) -> Vec<(u64, String, Option<u64>)> {
        let reader = io::BufReader::with_capacity(cap, input);
        let mut lines = LineReader::new(reader, max);
        let mut out = Vec::new();
        while let Some((n, line)) = lines.next_line().unwrap_or(None) {
            match line {
                Line::Complete(l) => out.push((n, String::from_utf8_lossy(l).into_owned(), None)),
                Line::Oversize { prefix, total_len } => {
                    out.push((n, String::from_utf8_lossy(prefix).into_owned(), Some(total_len)))
                }
            }
            assert!(lines.buffer_capacity() <= max + 1 + 64);
        }
        out
    }

    #[test]
    fn splits_lf_crlf_and_last_line_without_newline() {
        for cap in [1, 2, 3, 7, 64] {
            let got = collect(b"a\r\nbb\n\nccc", 10, cap);
            assert_eq!(
                got,
                vec![
                    (1, "a".into(), None),
                    (2, "bb".into(), None),
                    (3, "".into(), None),
                    (4, "ccc".into(), None)
                ],
                "cap {cap}"
            );
        }
    }

    #[test]
    fn oversize_lines_are_truncated_and_skipped() {
        for cap in [1, 4, 64] {
            let got = collect(b"0123456789abc\nok\n12345\r\n123456\n", 5, cap);
            assert_eq!(
                got,
                vec![
                    (1, "01234".into(), Some(13)),
                    (2, "ok".into(), None),
                    (3, "12345".into(), None),
                    (4, "12345".into(), Some(6))
                ],
                "cap {cap}"
            );
        }
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(collect(b"", 10, 8).is_empty());
        assert_eq!(collect(b"\n", 10, 8), vec![(1, "".into(), None)]);
    }
}
