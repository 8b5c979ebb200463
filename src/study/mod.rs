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
pub(crate) use durations::{limit_text, text_duration, DurationError, MAX_DURATION};
pub use error::ConfigError;
pub use types::{BackendConfig, Budget, Prompts, Protocol, Study};
pub(crate) use validate::MAX_WALL_TIME;

/// Metrics that are rates or durations, hence positive with multiplicative noise (the table
/// in src/domain/metrics.rs).
pub use crate::domain::metrics::is_positive as is_positive_metric;

use error::Locator;
use raw::RawFile;
use std::path::Path;

/// Read and check a study file.
pub fn load_study(path: &Path) -> Result<Study, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the study file: {e}"),
    })?;
    parse_study(path, &study_text(path, &bytes)?)
}

/// The text of a study file, which TOML requires to be UTF-8: a byte that is not is reported
/// at its own line and column.
pub fn study_text(path: &Path, bytes: &[u8]) -> Result<String, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(e) => {
            let at = e.valid_up_to();
            let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
            let loc = Locator { path, text: valid };
            Err(loc.err(
                at..at,
                "",
                format!(
                    "byte 0x{:02x} is not UTF-8; a study file must be UTF-8 text (re-save it as UTF-8)",
                    bytes[at]
                ),
            ))
        }
    }
}

/// Parse and check study text; `path` is only used in error messages.
pub fn parse_study(path: &Path, text: &str) -> Result<Study, ConfigError> {
    let loc = Locator { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        let field = field_from_message(&msg).unwrap_or_else(|| field_at(text, span.start));
        loc.err(span, &field, msg)
    })?;
    validate::validate(&loc, raw)
}

fn field_from_message(msg: &str) -> Option<String> {
    // toml's messages name the unknown field in backticks: "unknown field `lo`, expected ...".
    msg.starts_with("unknown field")
        .then(|| msg.split('`').nth(1).unwrap_or("").to_string())
}

/// The `table.key` of the line holding byte `offset` (a value of the wrong type): the key
/// before its `=`, under the nearest `[table]` header above it; "" when the line has no key.
fn field_at(text: &str, offset: usize) -> String {
    let offset = (0..=offset.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return String::new();
    };
    let key = key.trim().trim_matches('"');
    let table = before[..line_start].lines().rev().find_map(|l| {
        let t = l.trim();
        (t.starts_with('[') && !t.starts_with("[["))
            .then(|| t.trim_matches(['[', ']']).trim().to_string())
    });
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    }
}

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod tests;
