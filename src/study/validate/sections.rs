//! `[budget]`, `[objective]`, `[protocol]`, `[optimizer]` and `[decision]`: each section absent
//! means its defaults, some of which depend on the backend kind.

use super::limits::*;
use super::metrics::check_metric;
use super::{bounded_int, duration_field};
use crate::engine::optimizer::Strategy;
use crate::study::backends::SERVER_CONFIRM;
use crate::study::durations::duration_value;
use crate::study::error::{ConfigError, Locator};
use crate::study::raw::{RawBudget, RawDecision, RawObjective, RawOptimizer, RawProtocol};
use crate::study::types::{BackendConfig, Budget, Prompts, Protocol};
use crate::study::{
    Constraint, DecisionSettings, Direction, MetricRef, Objective, OptimizerSettings, Transform,
};
use std::path::Path;
use toml::Spanned;

pub(super) fn validate_budget(
    loc: &Locator,
    raw: Option<Spanned<RawBudget>>,
) -> Result<Budget, ConfigError> {
    let (trials, wall_time, max_consecutive_failures) = match raw {
        None => (30, None, 10),
        Some(b) => {
            let b = b.into_inner();
            let trials = match &b.trials {
                Some(t) => {
                    bounded_int(loc, t, "budget.trials", 1, MAX_TRIALS, "trials of one run")?
                }
                None => 30,
            };
            let wall = match &b.wall_time {
                Some(w) => Some(duration_value(w.get_ref(), MAX_WALL_TIME, false).map_err(
                    |e| loc.err(w.span(), "budget.wall_time", e.message("\"8h\" or \"90m\"")),
                )?),
                None => None,
            };
            let mf = match &b.max_consecutive_failures {
                Some(m) => bounded_int(
                    loc,
                    m,
                    "budget.max_consecutive_failures",
                    1,
                    MAX_FAILURES,
                    "failed trials in a row before the run gives up",
                )?,
                None => 10,
            };
            (trials, wall, mf)
        }
    };
    Ok(Budget {
        trials,
        wall_time,
        max_consecutive_failures,
    })
}

pub(super) fn validate_objective(
    loc: &Locator,
    raw: Option<Spanned<RawObjective>>,
    backend: &BackendConfig,
) -> Result<Objective, ConfigError> {
    let Some(o) = raw else {
        let default_metric = match backend {
            BackendConfig::Command { .. } => "value",
            _ => "decode_tps",
        };
        return Ok(Objective {
            metric: MetricRef::parse(default_metric),
            direction: Direction::Maximize,
            constraints: vec![],
            transform: Transform::Auto,
        });
    };
    let o = o.into_inner();
    let m = o.metric.get_ref().trim();
    if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(loc.err(
            o.metric.span(),
            "objective.metric",
            "must be a metric name such as \"decode_tps\"",
        ));
    }
    let direction = match o.direction.as_ref().map(|d| d.get_ref().as_str()) {
        None | Some("maximize") | Some("max") => Direction::Maximize,
        Some("minimize") | Some("min") => Direction::Minimize,
        Some(other) => {
            return Err(loc.err(
                o.direction.as_ref().unwrap().span(),
                "objective.direction",
                format!("{other:?} is neither \"maximize\" nor \"minimize\""),
            ))
        }
    };
    let metric = MetricRef::parse(m);
    check_metric(
        loc,
        o.metric.span(),
        "objective.metric",
        m,
        &metric,
        backend,
    )?;
    let mut constraints = vec![];
    for c in &o.constraints {
        let constraint = Constraint::parse(c.get_ref())
            .map_err(|m| loc.err(c.span(), "objective.constraints", m.to_string()))?;
        check_metric(
            loc,
            c.span(),
            "objective.constraints",
            c.get_ref(),
            &constraint.metric,
            backend,
        )?;
        constraints.push(constraint);
    }
    let transform = match o.transform.as_ref().map(|t| t.get_ref().as_str()) {
        None | Some("auto") => Transform::Auto,
        Some("log") => Transform::Log,
        Some("none") => Transform::None,
        Some(other) => {
            return Err(loc.err(
                o.transform.as_ref().unwrap().span(),
                "objective.transform",
                format!("{other:?} is not one of \"auto\", \"log\", \"none\""),
            ))
        }
    };
    Ok(Objective {
        metric,
        direction,
        constraints,
        transform,
    })
}

pub(super) fn validate_protocol(
    loc: &Locator,
    raw: Option<Spanned<RawProtocol>>,
    backend: &BackendConfig,
) -> Result<Protocol, ConfigError> {
    let mut protocol = Protocol::default();
    if matches!(backend, BackendConfig::Command { .. }) {
        // A black-box program is usually deterministic or does its own averaging.
        protocol.repeats = 1;
        protocol.warmup = 0;
    }
    let Some(p) = raw else {
        return Ok(protocol);
    };
    let p = p.into_inner();
    if let Some(r) = &p.repeats {
        protocol.repeats = bounded_int(
            loc,
            r,
            "protocol.repeats",
            1,
            MAX_REPEATS,
            "measured requests per trial",
        )?;
    }
    if let Some(w) = &p.warmup {
        protocol.warmup = bounded_int(
            loc,
            w,
            "protocol.warmup",
            0,
            MAX_WARMUP,
            "discarded requests after each load",
        )?;
    }
    if let Some(n) = &p.num_predict {
        protocol.num_predict = bounded_int(
            loc,
            n,
            "protocol.num_predict",
            1,
            MAX_NUM_PREDICT,
            "tokens generated per request; more than any context window, and a request would take hours",
        )? as u32;
    }
    if let Some(pr) = &p.prompts {
        protocol.prompts = prompts(loc, pr)?;
    }
    if let Some(n) = p.nonce {
        protocol.nonce = n;
    }
    protocol.request_timeout = duration_field(
        loc,
        &p.request_timeout,
        "protocol.request_timeout",
        120,
        MAX_TIMEOUT,
        "\"120s\" or \"10m\"",
    )?;
    if let Some(m) = &p.max_retries {
        protocol.max_retries = bounded_int(
            loc,
            m,
            "protocol.max_retries",
            0,
            MAX_RETRIES,
            "retries of a transient fault",
        )?;
    }
    Ok(protocol)
}

/// `protocol.prompts`: "builtin", or a file relative to the study file that must exist.
fn prompts(loc: &Locator, pr: &Spanned<String>) -> Result<Prompts, ConfigError> {
    Ok(match pr.get_ref().as_str() {
        "builtin" => Prompts::Builtin,
        file => {
            let base = loc.path.parent().unwrap_or(Path::new("."));
            let full = base.join(file);
            if !full.is_file() {
                return Err(loc.err(pr.span(), "protocol.prompts", format!("no prompt file at {} (use \"builtin\" or a path relative to the study file)", full.display())));
            }
            Prompts::File(full)
        }
    })
}

pub(super) fn validate_optimizer(
    loc: &Locator,
    raw: Option<Spanned<RawOptimizer>>,
    backend: &BackendConfig,
) -> Result<OptimizerSettings, ConfigError> {
    let mut optimizer = OptimizerSettings::default();
    // Inference servers measure with a few percent of noise (docs/ollama-options.md), so a run
    // against one re-measures statistically tied leaders by default; a command is taken as
    // exact unless the study says otherwise.
    if !matches!(backend, BackendConfig::Command { .. }) {
        optimizer.confirm = SERVER_CONFIRM;
    }
    let Some(o) = raw else {
        return Ok(optimizer);
    };
    let o = o.into_inner();
    if let Some(i) = &o.initial_trials {
        optimizer.initial_trials = bounded_int(
            loc,
            i,
            "optimizer.initial_trials",
            0,
            MAX_INITIAL_TRIALS,
            "quasi-random trials before the GP",
        )?;
    }
    if let Some(c) = &o.candidates {
        optimizer.candidates = bounded_int(
            loc,
            c,
            "optimizer.candidates",
            16,
            MAX_CANDIDATES,
            "points scored per proposal, each held in memory; the default is 2048",
        )?;
    }
    if let Some(a) = o.allow_repeats {
        optimizer.allow_repeats = a;
    }
    if let Some(r) = o.reload_aware {
        optimizer.reload_aware = r;
    }
    if let Some(c) = &o.confirm {
        optimizer.confirm = bounded_int(
            loc,
            c,
            "optimizer.confirm",
            1,
            MAX_CONFIRM,
            "measurements of one leading configuration",
        )?;
    }
    if let Some(s) = &o.strategy {
        match Strategy::parse(s.get_ref()) {
            Some(strategy) => optimizer.strategy = strategy,
            None => {
                let other = s.get_ref();
                return Err(loc.err(
                    s.span(),
                    "optimizer.strategy",
                    format!("{other:?} is not \"gp\" or \"random\""),
                ));
            }
        }
    }
    Ok(optimizer)
}

/// `[decision]`: the decision phase at the end of the budget (engine/decision).
pub(super) fn validate_decision(
    loc: &Locator,
    raw: Option<Spanned<RawDecision>>,
) -> Result<DecisionSettings, ConfigError> {
    let mut decision = DecisionSettings::default();
    let Some(d) = raw else {
        return Ok(decision);
    };
    let d = d.into_inner();
    if let Some(e) = d.enabled {
        decision.enabled = e;
    }
    // A share or a significance level outside its open interval.
    let open = |v: &Spanned<f64>, field: &str, hi: f64, what: &str| {
        let x = *v.get_ref();
        if x > 0.0 && x < hi {
            Ok(x)
        } else {
            Err(loc.err(
                v.span(),
                field,
                format!("must be between 0 and {hi} (exclusive), {what}; got {x}"),
            ))
        }
    };
    if let Some(s) = &d.share {
        decision.share = open(
            s,
            "decision.share",
            1.0,
            "the largest share of the trial budget the decision phase may take (0.3 = 30%)",
        )?;
    }
    if let Some(a) = &d.alpha {
        decision.alpha = open(
            a,
            "decision.alpha",
            0.5,
            "a significance level such as 0.05",
        )?;
    }
    if let Some(c) = &d.candidates {
        decision.candidates = bounded_int(
            loc,
            c,
            "decision.candidates",
            1,
            MAX_DECISION_CANDIDATES,
            "configurations raced against the baseline",
        )?;
    }
    if let Some(m) = &d.min_rounds {
        decision.min_rounds = bounded_int(
            loc,
            m,
            "decision.min_rounds",
            2,
            MAX_MIN_ROUNDS,
            "rounds before an elimination",
        )?;
    }
    if let Some(a) = d.allow_output_changes {
        decision.allow_output_changes = a;
    }
    Ok(decision)
}
