//! The worker's own resource usage (CPU seconds, peak RSS), read from `/proc/self` on Linux.
//!
//! Logged in the end-of-run summary so benchmarks and operators see the process's real cost without
//! sampling it from outside.

/// CPU time and memory high-water mark of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessUsage {
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size in bytes (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// Reads the usage, or `None` where `/proc` is not available.
pub fn current() -> Option<ProcessUsage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 after the ')'.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every supported architecture.
    let cpu_seconds = (utime + stime) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(ProcessUsage {
        cpu_seconds,
        peak_rss_bytes: peak_kib * 1024,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_plausible_values_on_linux() {
        let start = super::current().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let end = super::current().unwrap();
        assert!(end.cpu_seconds >= start.cpu_seconds);
        assert!(
            end.peak_rss_bytes > 1024 * 1024,
            "peak RSS of {} bytes",
            end.peak_rss_bytes
        );
    }
}
