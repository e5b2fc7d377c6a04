//! Batches: records serialised once into one JSON-array request body that respects the request limits.
//!
//! A [`Batch`] owns the uncompressed body (`[rec,rec,...]`) plus the boundaries of every record and which
//! object each record came from, so the sink can split it in two after a 413, dead-letter individual
//! records after a 4xx, and tell the object tracker how many records of each object it delivered.

pub mod batcher;

use std::time::Instant;

/// Identifier the object tracker gives each object attempt in flight.
pub type ObjectId = u64;

/// A run of consecutive records in a batch that came from one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSpan {
    /// The object.
    pub object: ObjectId,
    /// How many consecutive records of it.
    pub records: u32,
}

/// One record inside a batch, with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct BatchRecord<'a> {
    /// The serialised JSON object.
    pub json: &'a [u8],
    /// The object it came from.
    pub object: ObjectId,
    /// Its position (line or record index) in the object.
    pub position: u64,
}

/// A request body under construction or ready to send.
#[derive(Debug)]
pub struct Batch {
    body: Vec<u8>,
    /// Exclusive end offset of each record in `body`.
    record_ends: Vec<u32>,
    /// Position of each record in its object.
    positions: Vec<u64>,
    spans: Vec<ObjectSpan>,
    created: Instant,
}

impl Batch {
    /// An empty batch with room for `capacity` bytes of body.
    pub fn with_capacity(capacity: usize) -> Batch {
        let mut body = Vec::with_capacity(capacity);
        body.push(b'[');
        Batch {
            body,
            record_ends: Vec::new(),
            positions: Vec::new(),
            spans: Vec::new(),
            created: Instant::now(),
        }
    }

    /// Body size in bytes once closed, if `extra` more record bytes were appended.
    pub fn size_with(&self, extra: usize) -> usize {
        // Opening '[' is in `body`; one ',' per record after the first; one closing ']'.
        let comma = usize::from(!self.record_ends.is_empty());
        self.body.len() + comma + extra + 1
    }

    /// Appends one serialised record. The caller checks limits first with [`Batch::size_with`].
    pub fn push(&mut self, json: &[u8], object: ObjectId, position: u64) {
        if self.record_ends.is_empty() {
            self.created = Instant::now();
        } else {
            self.body.push(b',');
        }
        self.body.extend_from_slice(json);
        self.record_ends.push(self.body.len() as u32);
        self.positions.push(position);
        match self.spans.last_mut() {
            Some(span) if span.object == object => span.records += 1,
            _ => self.spans.push(ObjectSpan { object, records: 1 }),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.record_ends.len()
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.record_ends.is_empty()
    }

    /// When the first record was pushed.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Which objects' records this batch carries, in order.
    pub fn spans(&self) -> &[ObjectSpan] {
        &self.spans
    }

    /// Closes the JSON array and returns the finished body. Idempotent.
    pub fn finish(&mut self) -> &[u8] {
        if self.body.last() != Some(&b']') || self.body.len() == 1 {
            self.body.push(b']');
        }
        &self.body
    }

    /// The finished body (call [`Batch::finish`] first).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Every record with its origin.
    pub fn records(&self) -> impl Iterator<Item = BatchRecord<'_>> + '_ {
        let mut span_idx = 0usize;
        let mut left_in_span = self.spans.first().map_or(0, |s| s.records);
        (0..self.record_ends.len()).map(move |i| {
            while left_in_span == 0 {
                span_idx += 1;
                left_in_span = self.spans[span_idx].records;
            }
            left_in_span -= 1;
            let start = if i == 0 {
                1
            } else {
                self.record_ends[i - 1] as usize + 1
            };
            let end = self.record_ends[i] as usize;
            BatchRecord {
                json: &self.body[start..end],
                object: self.spans[span_idx].object,
                position: self.positions[i],
            }
        })
    }

    /// Splits into two halves by record count (after a 413). `Err(self)` when there is only one record.
    pub fn split(self) -> Result<(Batch, Batch), Batch> {
        if self.len() < 2 {
            return Err(self);
        }
        let half = self.len() / 2;
        let mut first = Batch::with_capacity(self.body.len() / 2 + 16);
        let mut second = Batch::with_capacity(self.body.len() / 2 + 16);
        for (i, rec) in self.records().enumerate() {
            let target = if i < half { &mut first } else { &mut second };
            target.push(rec.json, rec.object, rec.position);
        }
        first.created = self.created;
        second.created = self.created;
        first.finish();
        second.finish();
        Ok((first, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[(&str, ObjectId)]) -> Batch {
        let mut b = Batch::with_capacity(64);
        for (i, (json, obj)) in records.iter().enumerate() {
            b.push(json.as_bytes(), *obj, i as u64 + 1);
        }
        b.finish();
        b
    }

    #[test]
    fn body_is_a_json_array_and_size_is_predicted() {
        let mut b = Batch::with_capacity(64);
        assert_eq!(b.size_with(7), 9);
        b.push(br#"{"a":1}"#, 1, 1);
        let predicted = b.size_with(7);
        b.push(br#"{"a":2}"#, 1, 2);
        b.finish();
        assert_eq!(b.body(), br#"[{"a":1},{"a":2}]"#);
        assert_eq!(b.body().len(), predicted);
        let v: serde_json::Value = serde_json::from_slice(b.body()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    #[test]
    fn spans_group_consecutive_records_by_object() {
        let b = batch(&[("{}", 1), ("{}", 1), ("{}", 2), ("{}", 1)]);
        assert_eq!(
            b.spans(),
            [
                ObjectSpan {
                    object: 1,
                    records: 2
                },
                ObjectSpan {
                    object: 2,
                    records: 1
                },
                ObjectSpan {
                    object: 1,
                    records: 1
                }
            ]
        );
        let origins: Vec<ObjectId> = b.records().map(|r| r.object).collect();
        assert_eq!(origins, [1, 1, 2, 1]);
    }

    #[test]
    fn split_keeps_every_record_once_in_order() {
        let b = batch(&[(r#"{"i":1}"#, 1), (r#"{"i":2}"#, 1), (r#"{"i":3}"#, 2)]);
        let (x, y) = b.split().unwrap();
        assert_eq!(x.body(), br#"[{"i":1}]"#);
        assert_eq!(y.body(), br#"[{"i":2},{"i":3}]"#);
        assert_eq!(
            y.spans(),
            [
                ObjectSpan {
                    object: 1,
                    records: 1
                },
                ObjectSpan {
                    object: 2,
                    records: 1
                }
            ]
        );
        let single = batch(&[("{}", 1)]);
        assert!(single.split().is_err());
    }

    #[test]
    fn empty_batch_finishes_as_empty_array() {
        let mut b = Batch::with_capacity(4);
        assert_eq!(b.finish(), b"[]");
        assert_eq!(b.finish(), b"[]");
    }
}
