//! A one-line progress display for people waiting at a terminal (`demo`, `run --once` backfills):
//! objects, records accepted and dead-lettered, MB/s, retries and the breaker, rewritten in place.
//!
//! The figures are read from the same metrics `/metrics` exports, so the line and the dashboards agree.

use super::Metrics;
use super::stats::sum_counters;
use crate::resilience::BreakerState;
use std::io::Write;
use std::time::{Duration, Instant};

/// What the line shows, summed over one or more pipelines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Objects finished (complete, skipped or dead-lettered).
    pub objects: u64,
    /// Objects found and not finished yet.
    pub waiting: u64,
    /// Records accepted by Sentinel.
    pub accepted: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Decoded bytes read.
    pub bytes: u64,
    /// Logs Ingestion retries.
    pub retries: u64,
    /// Worst breaker state (gauge value).
    pub breaker: i64,
}

/// Reads the figures from `metrics`.
pub fn figures(metrics: &[Metrics]) -> Figures {
    let mut f = Figures::default();
    for m in metrics {
        f.objects += ["complete", "skipped", "dead_lettered"]
            .iter()
            .map(|o| m.objects_processed.with_label_values(&[o]).get())
            .sum::<u64>();
        f.waiting += (m.objects_pending.get() + m.objects_in_progress.get()).max(0) as u64;
        f.accepted += sum_counters(&m.records_processed) as u64;
        f.dead_lettered += sum_counters(&m.records_dead_lettered) as u64;
        f.bytes += sum_counters(&m.bytes_processed) as u64;
        f.retries += sum_counters(&m.sentinel_retries) as u64;
        f.breaker = f.breaker.max(m.breaker_state.get());
    }
    f
}

/// The line (without the carriage return). `objects_total`, when known, is shown as `done/total`.
pub fn line(f: &Figures, objects_total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let objects = match objects_total {
        Some(total) => format!("{}/{total}", f.objects),
        None => format!("{} done, {} waiting", f.objects, f.waiting),
    };
    format!(
        "  objects {objects} · records accepted {} · dead-lettered {} · {:.2} MB/s · retries {} · breaker {}   ",
        f.accepted,
        f.dead_lettered,
        f.bytes as f64 / 1e6 / secs,
        f.retries,
        BreakerState::from_gauge_value(f.breaker).as_str()
    )
}

/// Rewrites the line on `out` every `every` until the task is aborted.
pub async fn show<W: Write + Send>(
    metrics: Vec<Metrics>,
    objects_total: Option<u64>,
    started: Instant,
    every: Duration,
    mut out: impl FnMut() -> W + Send,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        draw(&metrics, objects_total, started, &mut out());
    }
}

/// Draws the line once (also used for the final state after [`show`] is aborted).
pub fn draw(metrics: &[Metrics], objects_total: Option<u64>, started: Instant, out: &mut impl Write) {
    let text = line(&figures(metrics), objects_total, started.elapsed());
    let _ = write!(out, "\r{text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_sums_pipelines_and_shows_rates() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.objects_processed.with_label_values(&["complete"]).inc_by(3);
        b.objects_processed.with_label_values(&["dead_lettered"]).inc();
        a.records_processed.with_label_values(&["cloudtrail"]).inc_by(100);
        b.records_dead_lettered.with_label_values(&["oversize"]).inc_by(2);
        a.bytes_processed
            .with_label_values(&["cloudtrail"])
            .inc_by(4_000_000);
        a.objects_pending.set(5);
        b.breaker_state.set(2);
        let f = figures(&[a, b]);
        assert_eq!(
            (f.objects, f.waiting, f.accepted, f.dead_lettered),
            (4, 5, 100, 2)
        );
        let text = line(&f, None, Duration::from_secs(2));
        assert!(text.contains("objects 4 done, 5 waiting"), "{text}");
        assert!(text.contains("2.00 MB/s"), "{text}");
        assert!(text.contains("breaker open"), "{text}");
        assert!(line(&f, Some(10), Duration::from_secs(2)).contains("objects 4/10"));
    }
}
