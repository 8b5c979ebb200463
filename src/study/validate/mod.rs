//! From the raw file to a checked `Study`: one function per section, called in the order the
//! file is checked, so the mistake reported is always the first one.

mod backend;
mod params;
mod sections;

use super::durations::duration_value;
use super::error::{ConfigError, Locator};
use super::raw::{RawFile, RawStudy};
use super::types::Study;
use std::time::Duration;
use toml::Spanned;

pub(crate) fn validate(loc: &Locator, raw: RawFile) -> Result<Study, ConfigError> {
    let study_span = raw.study.span();
    let (name, model, seed) = study_header(loc, raw.study.into_inner())?;
    let (backend, runner_params) = backend::validate_backend(loc, raw.backend, &study_span)?;
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

/// `[study]`: name, model and seed.
fn study_header(loc: &Locator, rs: RawStudy) -> Result<(String, String, u64), ConfigError> {
    let name = rs.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(loc.err(rs.name.span(), "study.name", "must not be empty"));
    }
    let _ = rs.description;
    let seed = match &rs.seed {
        Some(s) if *s.get_ref() < 0 => return Err(loc.err(s.span(), "study.seed", "must be >= 0")),
        Some(s) => *s.get_ref() as u64,
        None => 0,
    };
    let model = rs
        .model
        .as_ref()
        .map(|m| m.get_ref().clone())
        .unwrap_or_default();
    Ok((name, model, seed))
}

/// An integer field that must be at least `min`.
fn positive_int(
    loc: &Locator,
    v: &Spanned<i64>,
    field: &str,
    min: i64,
) -> Result<usize, ConfigError> {
    if *v.get_ref() < min {
        return Err(loc.err(
            v.span(),
            field,
            format!("must be at least {min}, got {}", v.get_ref()),
        ));
    }
    Ok(*v.get_ref() as usize)
}

/// An optional duration field, `default` seconds when absent.
fn duration_field(
    loc: &Locator,
    v: &Option<Spanned<toml::Value>>,
    field: &str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(Duration::from_secs(default)),
        Some(s) => duration_value(s.get_ref()).ok_or_else(|| {
            loc.err(
                s.span(),
                field,
                "must be a duration such as 30, \"90s\" or \"2m\"",
            )
        }),
    }
}
