//! Which columns of the records do not match the DCR stream declaration, for the connector's status.
//!
//! The metrics count mismatches by kind; operators also need to know *which* column the DCR drops or
//! refuses, and since when, without the value (it may hold personal data). This table keeps, per
//! (column, kind), a count and the first time it was seen. Column names come from the data (an
//! undeclared field can be any key), so the table holds at most [`MAX_COLUMNS`] entries; further
//! columns are counted under [`OTHER`].

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Most distinct (column, kind) entries kept.
pub const MAX_COLUMNS: usize = 50;
/// The column name under which mismatches beyond [`MAX_COLUMNS`] are counted.
pub const OTHER: &str = "(other columns)";

/// One column's mismatches of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The column (field) name, or [`OTHER`].
    pub column: String,
    /// `undeclared` (the DCR drops the field), `type` (the value does not fit the declared type) or
    /// `not_in_table` (the parser did not send the field: the target table has no column for it).
    pub kind: &'static str,
    /// Mismatches seen.
    pub count: u64,
    /// When the first was seen.
    pub first_seen: DateTime<Utc>,
}

/// kind → column → (count, first seen). Keyed by kind first so a lookup by `&str` column needs no
/// allocation: this is on the record path whenever records mismatch.
type Table = BTreeMap<&'static str, BTreeMap<String, (u64, DateTime<Utc>)>>;

/// The shared table (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct SchemaFindings {
    inner: Arc<Mutex<Table>>,
}

impl SchemaFindings {
    /// Records one mismatch of `column`; `now` is called only for a column not seen before.
    pub fn record(&self, column: &str, kind: &'static str, now: impl FnOnce() -> DateTime<Utc>) {
        self.record_n(column, kind, 1, now);
    }

    /// Records `n` mismatches of `column`; `now` is called only for a column not seen before.
    pub fn record_n(&self, column: &str, kind: &'static str, n: u64, now: impl FnOnce() -> DateTime<Utc>) {
        let Ok(mut table) = self.inner.lock() else { return };
        if let Some(entry) = table.get_mut(kind).and_then(|columns| columns.get_mut(column)) {
            entry.0 += n;
            return;
        }
        let entries: usize = table.values().map(BTreeMap::len).sum();
        let column = if entries < MAX_COLUMNS { column } else { OTHER };
        let entry = table
            .entry(kind)
            .or_default()
            .entry(column.to_owned())
            .or_insert_with(|| (0, now()));
        entry.0 += n;
    }

    /// Every finding, most frequent first.
    pub fn snapshot(&self) -> Vec<Finding> {
        let Ok(table) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out: Vec<Finding> = table
            .iter()
            .flat_map(|(kind, columns)| {
                columns.iter().map(|(column, (count, first_seen))| Finding {
                    column: column.clone(),
                    kind,
                    count: *count,
                    first_seen: *first_seen,
                })
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.column.cmp(&b.column)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_column_and_kind_keeps_first_seen_and_caps_the_table() {
        let f = SchemaFindings::default();
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::seconds(5);
        f.record("SourceIp", "undeclared", || t0);
        f.record("SourceIp", "undeclared", || t1);
        f.record("Bytes", "type", || t1);
        let s = f.snapshot();
        assert_eq!(s[0].column, "SourceIp");
        assert_eq!((s[0].count, s[0].first_seen), (2, t0));
        assert_eq!(
            (s[1].column.as_str(), s[1].kind, s[1].count),
            ("Bytes", "type", 1)
        );
        for i in 0..100 {
            f.record(&format!("junk{i}"), "undeclared", || t1);
        }
        let s = f.snapshot();
        assert_eq!(s.len(), MAX_COLUMNS + 1, "capped, plus the overflow entry");
        let other = s.iter().find(|x| x.column == OTHER).unwrap();
        assert_eq!(other.count, 100 - (MAX_COLUMNS as u64 - 2));
        // Known columns keep counting after the cap.
        f.record("SourceIp", "undeclared", || t1);
        assert_eq!(
            f.snapshot()
                .iter()
                .find(|x| x.column == "SourceIp")
                .unwrap()
                .count,
            3
        );
    }
}
