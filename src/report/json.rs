//! The JSON report (`report.json`): the same analysis as the Markdown, for scripts.
//!
//! The schema is documented field by field in docs/report-schema.md and versioned by
//! `schema_version`: fields may be added within a version, never renamed or removed. The structs
//! below are the schema; they deliberately do not reuse the journal or optimizer types, so a
//! change there cannot silently change this file's shape.

use super::format::unit_of;
use super::types::{
    ConvergencePoint, Counts, FailureSummary, Report, Row, RowClass, Tie, TTFT_METRIC,
};
use super::DecisionSection;
use crate::engine::decision::{Effect, Verdict};
use crate::engine::space::{Config, ParamValue};
use crate::engine::stats::Summary;
use crate::study::{Comparison, Direction};
use crate::trial::{LoadRecord, Origin, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// 2: `importance` is computed over the sampled region only, with intervals (see the schema).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    run: JsonRun<'a>,
    objective: JsonObjective<'a>,
    space: Vec<JsonParam<'a>>,
    counts: &'a Counts,
    best_trial: Option<usize>,
    baseline: Option<JsonBaseline>,
    tie_method: String,
    tied_with_best: Vec<usize>,
    undecided: Vec<usize>,
    trials: Vec<JsonTrial<'a>>,
    importance: Vec<JsonEffect<'a>>,
    failures: &'a FailureSummary,
    pareto: Option<JsonPareto>,
    convergence: &'a [ConvergencePoint],
    plots: Vec<&'static str>,
    skipped_journal_lines: Vec<JsonSkipped<'a>>,
    /// The decision phase (docs/report-schema.md, "decision"); absent when none started.
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<JsonDecision<'a>>,
}

/// An effect measured in paired rounds: percent change with its 95% interval.
#[derive(Serialize)]
struct JsonPairedEffect {
    pct: f64,
    lo: f64,
    hi: f64,
    rounds: usize,
    significant: bool,
}

#[derive(Serialize)]
struct JsonChange<'a> {
    param: &'a str,
    baseline: &'a ParamValue,
    value: &'a ParamValue,
    effect: Option<JsonPairedEffect>,
    kept: bool,
}

#[derive(Serialize)]
struct JsonOutputEffect<'a> {
    param: &'a str,
    user_value: &'a ParamValue,
    variant: &'a ParamValue,
    effect: Option<JsonPairedEffect>,
    applied: bool,
    skipped: bool,
}

#[derive(Serialize)]
struct JsonDecision<'a> {
    verdict: &'static str,
    done: bool,
    recommendation: &'a Config,
    vs_baseline: Option<JsonPairedEffect>,
    changes: Vec<JsonChange<'a>>,
    outputs: Vec<JsonOutputEffect<'a>>,
    tied: &'a [Config],
    eliminated: usize,
    race_trials: usize,
    race_skipped: bool,
    ablation_trials: usize,
    budget_trials: usize,
}

fn paired(e: &Option<Effect>) -> Option<JsonPairedEffect> {
    e.as_ref().map(|e| JsonPairedEffect {
        pct: e.pct,
        lo: e.lo,
        hi: e.hi,
        rounds: e.rounds,
        significant: e.significant,
    })
}

fn decision(d: &DecisionSection) -> JsonDecision<'_> {
    let res = &d.result;
    JsonDecision {
        verdict: match res.verdict {
            Verdict::Better => "better",
            Verdict::DefaultsBest => "defaults_best",
            Verdict::Undecided => "undecided",
        },
        done: res.done,
        recommendation: &res.recommendation,
        vs_baseline: paired(&res.vs_baseline),
        changes: res
            .changes
            .iter()
            .map(|c| JsonChange {
                param: &c.param,
                baseline: &c.baseline,
                value: &c.value,
                effect: paired(&c.effect),
                kept: c.kept,
            })
            .collect(),
        outputs: res
            .outputs
            .iter()
            .map(|x| JsonOutputEffect {
                param: &x.param,
                user_value: &x.user_value,
                variant: &x.variant,
                effect: paired(&x.effect),
                applied: x.applied,
                skipped: x.skipped,
            })
            .collect(),
        tied: &res.tied,
        eliminated: res.eliminated.len(),
        race_trials: d.race_trials,
        race_skipped: res.race_skipped,
        ablation_trials: d.ablation_trials,
        budget_trials: d.budget,
    }
}

#[derive(Serialize)]
struct JsonRun<'a> {
    run_id: &'a str,
    study_name: &'a str,
    study_file: &'a str,
    model: &'a str,
    model_digest: Option<&'a str>,
    backend: &'a str,
    server_version: Option<&'a str>,
    simulated: bool,
    details: &'a BTreeMap<String, serde_json::Value>,
    seed: u64,
    tuner_version: &'a str,
    started_at: &'a str,
    updated_at: &'a str,
    finished_at: Option<&'a str>,
    stop_reason: Option<&'static str>,
    stop_message: Option<&'a str>,
    budget_trials: usize,
    budget_wall_time_s: Option<f64>,
    repeats: usize,
    warmup: usize,
    num_predict: u32,
    reloads: u64,
    reload_seconds: f64,
    outage_seconds: f64,
    elapsed_seconds: f64,
}

#[derive(Serialize)]
struct JsonObjective<'a> {
    metric: &'a str,
    stat: &'static str,
    label: String,
    direction: &'static str,
    unit: &'static str,
    constraints: Vec<JsonConstraint<'a>>,
}

#[derive(Serialize)]
struct JsonConstraint<'a> {
    text: &'a str,
    metric: &'a str,
    stat: &'static str,
    op: &'static str,
    bound: f64,
}

#[derive(Serialize)]
struct JsonParam<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    domain: String,
    default: Option<serde_json::Value>,
    reloads_model: bool,
}

#[derive(Serialize)]
struct JsonBaseline {
    trial: usize,
    class: RowClass,
    objective: Option<f64>,
    /// Change of rank 1 against the baseline, percent.
    best_vs_baseline_pct: Option<f64>,
    best_vs_baseline: Option<Tie>,
}

#[derive(Serialize)]
struct JsonTrial<'a> {
    rank: Option<usize>,
    trial: usize,
    /// Later trials that re-measured this configuration, pooled into this entry.
    #[serde(skip_serializing_if = "<[usize]>::is_empty")]
    also: &'a [usize],
    /// The requests pooled into this entry, when the server ran two or more identically.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    requested: Vec<JsonRequested<'a>>,
    origin: Origin,
    status: Status,
    class: RowClass,
    params: &'a Config,
    objective: Option<f64>,
    objective_n: usize,
    objective_std: Option<f64>,
    objective_cv: Option<f64>,
    objective_ci95: Option<[f64; 2]>,
    vs_best_pct: Option<f64>,
    vs_baseline_pct: Option<f64>,
    tie: Option<Tie>,
    violations: &'a [String],
    failure: Option<&'a str>,
    error: Option<&'a str>,
    metrics: &'a BTreeMap<String, Summary>,
    load: Option<&'a LoadRecord>,
    duration_s: f64,
    started_at: &'a str,
    finished_at: &'a str,
    notes: &'a BTreeMap<String, serde_json::Value>,
    effective: Option<&'a Config>,
}

/// One requested configuration of an entry, and the trials that asked it.
#[derive(Serialize)]
struct JsonRequested<'a> {
    params: &'a Config,
    trials: &'a [usize],
}

#[derive(Serialize)]
struct JsonEffect<'a> {
    name: &'a str,
    share: f64,
    effect: f64,
    effect_ci95: [f64; 2],
    detectable: bool,
    best_value: Option<&'a ParamValue>,
    worst_value: Option<&'a ParamValue>,
    evaluated_at: &'a [ParamValue],
    noise_sd: f64,
    lengthscale: f64,
}

#[derive(Serialize)]
struct JsonPareto {
    x_metric: &'static str,
    x_stat: &'static str,
    /// Trials on the front, lowest TTFT first.
    front: Vec<usize>,
    points: Vec<super::ParetoPoint>,
}

#[derive(Serialize)]
struct JsonSkipped<'a> {
    line: usize,
    reason: &'a str,
}

fn trial(row: &Row) -> JsonTrial<'_> {
    let s = row
        .objective_summary
        .as_ref()
        .filter(|_| row.class != RowClass::Failed);
    let rec = &row.record;
    JsonTrial {
        rank: row.rank,
        trial: rec.trial,
        also: &row.also,
        requested: row
            .requested
            .iter()
            .map(|r| JsonRequested {
                params: &r.params,
                trials: &r.trials,
            })
            .collect(),
        origin: rec.origin,
        status: rec.status,
        class: row.class,
        params: &rec.params,
        objective: row.objective,
        objective_n: s.map(|s| s.n).unwrap_or(0),
        objective_std: s.filter(|s| s.n >= 2).map(|s| s.std),
        objective_cv: s.filter(|s| s.n >= 2).map(|s| s.cv()),
        objective_ci95: row.ci95.map(|(a, b)| [a, b]),
        vs_best_pct: row.vs_best_pct,
        vs_baseline_pct: row.vs_baseline_pct,
        tie: row.tie,
        violations: &row.violations,
        failure: row.failure_kind.as_deref(),
        error: rec.error.as_deref(),
        metrics: &rec.metrics,
        load: rec.load.as_ref(),
        duration_s: rec.duration_s,
        started_at: &rec.started_at,
        finished_at: &rec.finished_at,
        notes: &rec.notes,
        effective: rec.effective.as_ref(),
    }
}

pub fn render(r: &Report) -> String {
    let mut buf = Vec::new();
    match write(r, &mut buf) {
        Ok(()) => String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        // Writing plain structs of strings, numbers and maps into memory cannot fail.
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// Serialize the report straight into `w`: on a long run report.json is megabytes, and
/// streaming it to its file keeps that text out of memory.
pub fn write(r: &Report, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &document(r))?;
    w.write_all(b"\n")
}

fn document(r: &Report) -> JsonReport<'_> {
    let m = &r.meta;
    let o = &m.objective;
    JsonReport {
        schema_version: SCHEMA_VERSION,
        run: JsonRun {
            run_id: &m.run_id,
            study_name: &m.study_name,
            study_file: &m.study_file,
            model: &m.model,
            model_digest: m.backend.model_digest.as_deref(),
            backend: &m.backend.backend,
            server_version: m.backend.server_version.as_deref(),
            simulated: m.backend.simulated,
            details: &m.backend.details,
            seed: m.seed,
            tuner_version: &m.tuner_version,
            started_at: &m.started_at,
            updated_at: &m.updated_at,
            finished_at: m.finished_at.as_deref(),
            stop_reason: m.stop_reason.as_ref().map(|s| s.as_str()),
            stop_message: m.stop_message.as_deref(),
            budget_trials: m.budget.trials,
            budget_wall_time_s: m.budget.wall_time.map(|d| d.as_secs_f64()),
            repeats: m.protocol.repeats,
            warmup: m.protocol.warmup,
            num_predict: m.protocol.num_predict,
            reloads: m.reloads,
            reload_seconds: m.reload_seconds,
            outage_seconds: m.outage_seconds,
            elapsed_seconds: m.elapsed_seconds,
        },
        objective: JsonObjective {
            metric: &o.metric.metric,
            stat: o.metric.stat.as_str(),
            label: o.metric.label(),
            direction: match o.direction {
                Direction::Maximize => "maximize",
                Direction::Minimize => "minimize",
            },
            unit: unit_of(&o.metric.metric),
            constraints: o
                .constraints
                .iter()
                .map(|c| JsonConstraint {
                    text: &c.text,
                    metric: &c.metric.metric,
                    stat: c.metric.stat.as_str(),
                    op: match c.op {
                        Comparison::AtMost => "<=",
                        Comparison::AtLeast => ">=",
                    },
                    bound: c.bound,
                })
                .collect(),
        },
        space: m
            .space
            .params
            .iter()
            .map(|p| JsonParam {
                name: &p.name,
                kind: match p.kind {
                    crate::engine::space::ParamKind::Int { .. } => "int",
                    crate::engine::space::ParamKind::Float { .. } => "float",
                    crate::engine::space::ParamKind::Categorical { .. } => "categorical",
                    crate::engine::space::ParamKind::Bool => "bool",
                },
                domain: p.domain_text(),
                default: p.default.as_ref().map(|d| d.to_json()),
                reloads_model: m.runner_params.contains(&p.name),
            })
            .collect(),
        counts: &r.counts,
        best_trial: r.best_row().map(|b| b.trial()),
        baseline: r.baseline_row().map(|b| JsonBaseline {
            trial: b.trial(),
            class: b.class,
            objective: b.objective,
            best_vs_baseline_pct: r.best_row().and_then(|best| best.vs_baseline_pct),
            best_vs_baseline: r.best_vs_baseline,
        }),
        tie_method: r.tie_method(),
        tied_with_best: r.tied().iter().map(|x| x.trial()).collect(),
        undecided: r.undecided().iter().map(|x| x.trial()).collect(),
        trials: r.rows.iter().map(trial).collect(),
        importance: r
            .importance
            .iter()
            .map(|e| JsonEffect {
                name: &e.name,
                share: e.share,
                effect: e.effect,
                effect_ci95: [e.ci95.0, e.ci95.1],
                detectable: e.detectable,
                best_value: e.best_value.as_ref(),
                worst_value: e.worst_value.as_ref(),
                evaluated_at: &e.evaluated,
                noise_sd: e.noise_sd,
                lengthscale: e.lengthscale,
            })
            .collect(),
        failures: &r.failures,
        pareto: r.pareto.as_ref().map(|p| JsonPareto {
            x_metric: TTFT_METRIC,
            x_stat: "median",
            front: p.front().iter().map(|x| x.trial).collect(),
            points: p.points.clone(),
        }),
        convergence: &r.convergence,
        plots: r.plot_files(),
        skipped_journal_lines: r
            .skipped_lines
            .iter()
            .map(|(line, reason)| JsonSkipped {
                line: *line,
                reason,
            })
            .collect(),
        decision: r.decision.as_ref().map(decision),
    }
}
