//! Log output: a `tracing` subscriber writing to stderr as text or JSON lines.
//!
//! Consumes the [`LoggingConfig`] (format and filter) and the `RUST_LOG` environment variable, and
//! produces the process-wide subscriber. In JSON, an event's fields are flattened to top-level keys
//! (`{"timestamp":…,"level":"INFO","message":…,"duration":…,"batch_size":…,"rate_limited":…,
//! "target":…}`), so log pipelines can query `duration`, `latency`, `batch_size` and `rate_limited`
//! directly.

use s3_sentinel_api::config::{LogOutput, LoggingConfig};
use std::io::IsTerminal;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter directive is invalid.
    #[error("invalid log filter in {origin} `{directive}`: {source}")]
    Filter {
        /// Where the directive came from: `RUST_LOG` or `logging.level`.
        origin: &'static str,
        /// The directive as given.
        directive: String,
        /// The parser's error.
        source: tracing_subscriber::filter::ParseError,
    },
}

/// Installs the global subscriber: filter from `RUST_LOG` when set and not empty, else `cfg.level`;
/// `text` or `json` lines on stderr. A second call is a no-op (the first subscriber stays), which keeps
/// tests and embedded use safe.
pub fn init(cfg: &LoggingConfig) -> Result<(), LoggingError> {
    let filter = filter(cfg, std::env::var("RUST_LOG").ok())?;
    let result = match cfg.format {
        LogOutput::Text => {
            text_subscriber(filter, std::io::stderr, std::io::stderr().is_terminal()).try_init()
        }
        LogOutput::Json => json_subscriber(filter, std::io::stderr).try_init(),
    };
    // The only error is "a global subscriber (or `log` logger) is already set".
    let _ = result;
    Ok(())
}

/// The filter: `rust_log` when it is set and not blank, otherwise `cfg.level`.
fn filter(cfg: &LoggingConfig, rust_log: Option<String>) -> Result<EnvFilter, LoggingError> {
    let (origin, directive) = match rust_log {
        Some(v) if !v.trim().is_empty() => ("RUST_LOG", v),
        _ => ("logging.level", cfg.level.clone()),
    };
    EnvFilter::try_new(&directive).map_err(|source| LoggingError::Filter {
        origin,
        directive,
        source,
    })
}

fn text_subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .finish()
}

fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn cfg(level: &str) -> LoggingConfig {
        LoggingConfig {
            format: LogOutput::Json,
            level: level.to_owned(),
            ..LoggingConfig::default()
        }
    }

    #[test]
    fn json_lines_have_event_fields_at_the_top_level() {
        let buf = Buffer::default();
        let sub = json_subscriber(filter(&cfg("info"), None).unwrap(), buf.clone());
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                duration = 0.25,
                latency = 0.1,
                batch_size = 500u64,
                rate_limited = true,
                "batch sent"
            );
            tracing::debug!("filtered out at info");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["message"], "batch sent");
        assert_eq!(v["duration"], 0.25);
        assert_eq!(v["latency"], 0.1);
        assert_eq!(v["batch_size"], 500);
        assert_eq!(v["rate_limited"], true);
        assert_eq!(v["level"], "INFO");
        assert!(v.get("fields").is_none(), "{text}");
    }

    #[test]
    fn text_lines_are_written() {
        let buf = Buffer::default();
        let sub = text_subscriber(filter(&cfg("debug"), None).unwrap(), buf.clone(), false);
        tracing::subscriber::with_default(sub, || tracing::debug!(batch_size = 3, "hello"));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("hello") && text.contains("batch_size=3"), "{text}");
    }

    #[test]
    fn rust_log_overrides_the_config_and_bad_directives_name_their_origin() {
        let f = filter(&cfg("info"), Some("debug".into())).unwrap();
        assert_eq!(f.to_string(), "debug");
        let f = filter(&cfg("warn"), Some("  ".into())).unwrap();
        assert_eq!(f.to_string(), "warn");
        let err = filter(&cfg("info,foo=notalevel"), None).unwrap_err().to_string();
        assert!(
            err.contains("logging.level") && err.contains("notalevel"),
            "{err}"
        );
        let err = filter(&cfg("info"), Some("x=bogus".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RUST_LOG"), "{err}");
    }

    #[test]
    fn init_twice_is_safe() {
        init(&LoggingConfig::default()).unwrap();
        init(&cfg("debug")).unwrap();
    }
}
