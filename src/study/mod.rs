//! Study files (TOML): what to tune, against which backend, for how long, and how to measure.
//!
//! Parsing happens in two steps, ripgrep-style: serde reads a raw structure close to the file
//! (`raw`, with byte spans on every field), then `validate` turns it into a checked `Study`
//! (`types`) and reports the first mistake with the file, line, column and field it concerns
//! (`error`). The objective, optimizer and decision settings are the engine's types (re-exported here);
//! `backends` says what the study knows of each backend kind, `durations` how durations are read and written.

mod backends;
mod durations;
mod error;
mod raw;
mod types;
mod validate;

pub use crate::engine::decision::DecisionSettings;
/// The study parses into the engine's objective and optimizer settings: one definition each.
pub use crate::engine::objective::{
    parse_quantity, Comparison, Constraint, Direction, MetricRef, Objective, Stat, Transform,
};
pub use crate::engine::optimizer::OptimizerSettings;
pub use backends::{LLAMACPP_LOAD_OPTIONS, OLLAMA_RUNNER_OPTIONS, SERVER_CONFIRM};
pub use error::ConfigError;
pub use types::{BackendConfig, Budget, Prompts, Protocol, Study};

/// Metrics that are rates or durations, hence positive with multiplicative noise (the table
/// in src/domain/metrics.rs).
pub use crate::domain::metrics::is_positive as is_positive_metric;

use error::Locator;
use raw::RawFile;
use std::path::Path;

/// Read and check a study file.
pub fn load_study(path: &Path) -> Result<Study, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the study file: {e}"),
    })?;
    parse_study(path, &text)
}

/// Parse and check study text; `path` is only used in error messages.
pub fn parse_study(path: &Path, text: &str) -> Result<Study, ConfigError> {
    let loc = Locator { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        let field = field_from_message(&msg);
        loc.err(span, &field, msg)
    })?;
    validate::validate(&loc, raw)
}

fn field_from_message(msg: &str) -> String {
    // toml's messages name the unknown field in backticks: "unknown field `lo`, expected ...".
    msg.split('`').nth(1).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests;
