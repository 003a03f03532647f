//! Log and audit output: the journal when the daemon's stderr is connected to it
//! (`JOURNAL_STREAM`, as under systemd) or when asked, else stderr.
//!
//! `SHIPOTE_LOG` is a list of `target=level` directives with an optional default
//! level (`warn,audit=info`). Journal fields are prefixed `SHIPOTE_`, so the audit
//! fields `uid`, `action` and `detail` become `SHIPOTE_UID`, `SHIPOTE_ACTION` and
//! `SHIPOTE_DETAIL`.

use std::str::FromStr;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter when `SHIPOTE_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    /// The journal if stderr is connected to it, else stderr.
    Auto,
    /// The journal (falls back to stderr if there is none).
    Journal,
    /// Standard error.
    Stderr,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `SHIPOTE_LOG` does not parse.
    #[error("SHIPOTE_LOG={value:?} is not a valid filter (example: warn,audit=info): {reason}")]
    BadFilter {
        /// The value.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// Parses a `SHIPOTE_LOG` value.
pub fn parse_filter(value: &str) -> Result<Targets, LoggingError> {
    Targets::from_str(value).map_err(|e| LoggingError::BadFilter {
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// Installs the global subscriber. Returns where logs went.
pub fn init(target: LogTarget, filter: Option<&str>) -> Result<&'static str, LoggingError> {
    let filter = parse_filter(filter.unwrap_or(DEFAULT_FILTER))?;
    let journal_wanted = match target {
        LogTarget::Journal => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    if journal_wanted {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer
                .with_field_prefix(Some("SHIPOTE".into()))
                .with_syslog_identifier("shipoted".into());
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .init();
            return Ok("journal");
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true);
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .init();
    Ok("stderr")
}

use tracing_subscriber::Layer as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parses_levels_per_target() {
        let t = parse_filter("warn,audit=info").unwrap();
        assert!(t.would_enable("audit", &tracing::Level::INFO));
        assert!(!t.would_enable("shipote::daemon", &tracing::Level::INFO));
        assert!(t.would_enable("shipote::daemon", &tracing::Level::WARN));
    }

    #[test]
    fn bad_filter_names_the_value() {
        let e = parse_filter("audit=loud").unwrap_err().to_string();
        assert!(e.contains("audit=loud"), "{e}");
    }
}
