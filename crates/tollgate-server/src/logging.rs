//! The process's logs: [`init_logging`] installs the subscriber every command logs through,
//! in text or JSON lines ([`LogFormat`]), on standard error, at the level `RUST_LOG` sets
//! (`info` unless set).
//!
//! What is logged: each listener's address at start (`listening`, with `listener` and
//! `addr`), each reload (`configuration reloaded`, or `configuration not reloaded` with its
//! `reason`; both with their `trigger`), each storage switch (`storage`: `fallback` or `primary`), and at debug level
//! each denial (`denied`, with `policy` and the escaped, truncated `key`, from the engine's
//! admission: the same line for the check API, the proxy and the Envoy service).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written: `--log-format text|json`.
///
/// ```
/// use clap::ValueEnum;
/// use tollgate_server::LogFormat;
///
/// assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
/// assert_eq!(LogFormat::default(), LogFormat::Text);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`).
    Json,
}

/// Installs the global subscriber: `format` lines on standard error, filtered by `RUST_LOG`
/// (such as `RUST_LOG=debug` or `RUST_LOG=info,tollgate=debug`; `info` when unset or
/// invalid). Calling it twice keeps the first.
///
/// ```
/// use tollgate_server::{LogFormat, init_logging};
///
/// init_logging(LogFormat::Json);
/// tracing::info!(addr = "127.0.0.1:8080", "listening"); // {"timestamp":...,"level":"INFO",...}
/// ```
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already installed; the first one stays.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
