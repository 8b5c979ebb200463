//! From the raw file to a checked `Study`: one function per section, called in the order the
//! file is checked, so the mistake reported is always the first one. Every field is checked
//! against the range the run can honour (`limits`), so that a file `validate` accepts is one
//! `run` accepts too.

mod backend;
mod limits;
mod metrics;
mod numeric;
mod params;
mod sections;

pub(crate) use limits::MAX_WALL_TIME;

use super::durations::{duration_value, DurationError};
use super::error::{ConfigError, Locator};
use super::raw::{RawFile, RawStudy};
use super::types::Study;
use std::time::Duration;
use toml::Spanned;

pub(crate) fn validate(loc: &Locator, raw: RawFile) -> Result<Study, ConfigError> {
    let study_span = raw.study.span();
    let (name, model, model_span, seed) = study_header(loc, raw.study.into_inner())?;
    let (backend, runner_params) = backend::validate_backend(loc, raw.backend, &study_span)?;
    backend::check_model(
        loc,
        &backend,
        &model,
        model_span.unwrap_or(study_span.clone()),
    )?;
    let budget = sections::validate_budget(loc, raw.budget)?;
    let objective = sections::validate_objective(loc, raw.objective, &backend)?;
    let protocol = sections::validate_protocol(loc, raw.protocol, &backend)?;
    let optimizer = sections::validate_optimizer(loc, raw.optimizer, &backend)?;
    let decision = sections::validate_decision(loc, raw.decision)?;
    let space = params::validate_params(loc, raw.params, study_span, &backend)?;
    Ok(Study {
        name,
        model,
        seed,
        backend,
        budget,
        objective,
        protocol,
        optimizer,
        decision,
        space,
        runner_params,
    })
}

/// `[study]` checked: name, model (and where the file writes it) and seed.
type Header = (String, String, Option<std::ops::Range<usize>>, u64);

/// `[study]`: name, model and seed.
fn study_header(loc: &Locator, rs: RawStudy) -> Result<Header, ConfigError> {
    let name = rs.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(loc.err(rs.name.span(), "study.name", "must not be empty"));
    }
    // The run id is the name, a '-' and a 15-character timestamp, and it names a directory:
    // one path component, at most 255 bytes on every common filesystem.
    if name.chars().count() > limits::MAX_NAME_CHARS {
        return Err(loc.err(
            rs.name.span(),
            "study.name",
            format!(
                "is {} characters long; at most {} are allowed, because the run folder is named after it (a file name has at most 255 bytes)",
                name.chars().count(),
                limits::MAX_NAME_CHARS
            ),
        ));
    }
    let _ = rs.description;
    let seed = match &rs.seed {
        Some(s) if *s.get_ref() < 0 => {
            return Err(loc.err(s.span(), "study.seed", "must be >= 0 (any whole number)"))
        }
        Some(s) => *s.get_ref() as u64,
        None => 0,
    };
    let model = rs
        .model
        .as_ref()
        .map(|m| m.get_ref().trim().to_string())
        .unwrap_or_default();
    Ok((name, model, rs.model.as_ref().map(|m| m.span()), seed))
}

/// An integer field that must lie in `min..=max`; `what` says what the field counts, for the
/// message of a value above the maximum.
fn bounded_int(
    loc: &Locator,
    v: &Spanned<i64>,
    field: &str,
    min: i64,
    max: i64,
    what: &str,
) -> Result<usize, ConfigError> {
    let x = *v.get_ref();
    if x < min {
        return Err(loc.err(v.span(), field, format!("must be at least {min}, got {x}")));
    }
    if x > max {
        return Err(loc.err(
            v.span(),
            field,
            format!("must be at most {max}, got {x} ({what})"),
        ));
    }
    Ok(x as usize)
}

/// An optional duration field, `default` seconds when absent, at most `max` and longer than
/// zero; `example` shows a good value in the message.
fn duration_field(
    loc: &Locator,
    v: &Option<Spanned<toml::Value>>,
    field: &str,
    default: u64,
    max: Duration,
    example: &str,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(Duration::from_secs(default)),
        Some(s) => duration_value(s.get_ref(), max, false)
            .map_err(|e: DurationError| loc.err(s.span(), field, e.message(example))),
    }
}
