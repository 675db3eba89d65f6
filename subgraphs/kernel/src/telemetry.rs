//! Tracing set-up: pretty output for a developer's terminal, JSON lines for production log
//! collectors. `RUST_LOG` overrides the configured filter.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;

use crate::config::{LogFormat, TelemetrySettings};

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match settings.format {
        LogFormat::Pretty => fmt().with_env_filter(filter).with_target(false).try_init(),
        LogFormat::Json => fmt().json().with_env_filter(filter).with_current_span(true).try_init(),
    };
    // Already installed (several servers in one test process): keep the first one.
    let _ = result;
}
