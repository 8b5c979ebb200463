//! Ranked reports of a run: the shared analysis lives here, one module per output format
//! (hyperfine's one-exporter-per-format design, style.md).
//!
//! `analyse` reads `run.json` and `trials.jsonl` and computes everything the formats print:
//! the ranking, statistical ties with rank 1, changes against the baseline, parameter importance
//! from the GP, the failure summary and the Pareto front of throughput against TTFT. The formats
//! only lay that out, so the Markdown, JSON and CSV never disagree. Output is deterministic:
//! stable sorts (ties broken by trial number), fixed float formatting, a fixed bootstrap seed
//! and no timestamps other than those in the data.

pub mod csv;
pub mod json;
pub mod markdown;
pub mod plots;

use crate::engine::optimizer::{Optimizer, ParamEffect};
use crate::engine::random::splitmix64;
use crate::engine::space::{config_key, format_float, Config, ParamKind, ParamValue};
use crate::engine::stats::{quantile_sorted, Summary};
use crate::store::{JournalRead, RunDir, RunMeta, StoreError, META_FILE};
use crate::study::{Comparison, Direction, OptimizerSettings, Stat};
use crate::trial::{tell_record, FailureKind, Origin, Status, TrialRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

pub const MARKDOWN_FILE: &str = "report.md";
pub const JSON_FILE: &str = "report.json";
pub const CSV_FILE: &str = "trials.csv";
pub const CONVERGENCE_FILE: &str = "convergence.svg";
pub const PARETO_FILE: &str = "pareto.svg";

/// Bootstrap resamples per interval. 2000 keeps the 2.5% / 97.5% percentiles stable to a few
/// tenths of a percent of the spread, and a 1000-trial report still takes well under a second.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Fixed seed of every bootstrap, so a report is identical every time it is regenerated.
const BOOTSTRAP_SEED: u64 = 0x7E55_E1A7_ED5E_ED01;

/// The metric the Pareto front and the TTFT columns use (client-side time to first token, s).
pub const TTFT_METRIC: &str = "ttft";
/// Decode throughput, shown as its own column when it is not the objective.
pub const DECODE_METRIC: &str = "decode_tps";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Markdown,
    Json,
    Csv,
}

impl ReportFormat {
    /// Name of the file `write_all` writes this format to.
    pub fn file_name(self) -> &'static str {
        match self {
            ReportFormat::Markdown => MARKDOWN_FILE,
            ReportFormat::Json => JSON_FILE,
            ReportFormat::Csv => CSV_FILE,
        }
    }
}

impl FromStr for ReportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(ReportFormat::Markdown),
            "json" => Ok(ReportFormat::Json),
            "csv" => Ok(ReportFormat::Csv),
            other => Err(format!(
                "unknown report format {other:?}: use md, json or csv"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: no {META_FILE} here, so this is not a run folder (or its run never started); pass the folder the `run` command printed, e.g. state/<run-id>", .0.display())]
    NotARun(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("drawing {file}: {message}")]
    Plot { file: &'static str, message: String },
}

/// Where a trial lands in the ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowClass {
    /// Ran, produced the objective, met every constraint.
    Feasible,
    /// Ran and produced the objective, but violated an outcome constraint.
    Infeasible,
    /// Did not run (out of memory, load failure, crash, timeout) or produced no objective.
    Failed,
}

/// How a configuration compares with rank 1 (or rank 1 with the baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tie {
    /// This is rank 1.
    Best,
    /// The 95% bootstrap interval of the difference contains zero: within measurement noise.
    Tied,
    /// The interval excludes zero: a real difference.
    Different,
    /// One side has fewer than two samples of the objective metric: spread unknown.
    Unknown,
}

impl Tie {
    pub fn as_str(self) -> &'static str {
        match self {
            Tie::Best => "best",
            Tie::Tied => "tied",
            Tie::Different => "different",
            Tie::Unknown => "unknown",
        }
    }
}

/// One trial of the ranking with everything the formats print about it.
#[derive(Clone, Debug)]
pub struct Row {
    pub record: TrialRecord,
    pub class: RowClass,
    /// 1-based position among the trials with an objective value (feasible first, then
    /// infeasible); None for failed trials. This is the rank `export` takes.
    pub rank: Option<usize>,
    /// Finite objective value, when the trial produced one.
    pub objective: Option<f64>,
    /// Raw per-request values of the objective metric (for spread and ties).
    pub objective_samples: Vec<f64>,
    /// Summary of the objective metric over the trial's requests.
    pub objective_summary: Option<Summary>,
    /// 95% percentile-bootstrap interval of the objective statistic (needs >= 2 samples).
    pub ci95: Option<(f64, f64)>,
    /// Signed change of the objective against the baseline, percent.
    pub vs_baseline_pct: Option<f64>,
    /// Signed change of the objective against rank 1, percent.
    pub vs_best_pct: Option<f64>,
    /// Comparison with rank 1 (feasible rows only).
    pub tie: Option<Tie>,
    /// Human descriptions of the violated constraints (infeasible rows).
    pub violations: Vec<String>,
    /// Why a failed row failed: a `FailureKind` name, "missing_objective" or "unknown".
    pub failure_kind: Option<String>,
    /// Later trials that measured the same configuration again (the optimizer re-measures
    /// leaders that are statistically tied); their samples are pooled into this row.
    pub also: Vec<usize>,
}

impl Row {
    pub fn trial(&self) -> usize {
        self.record.trial
    }

    pub fn is_baseline(&self) -> bool {
        self.record.origin == Origin::Baseline
    }

    pub fn metric(&self, name: &str) -> Option<&Summary> {
        self.record.metrics.get(name)
    }

    /// Seconds of the model (re)load this trial paid, when it reloaded.
    pub fn reload_seconds(&self) -> Option<f64> {
        self.record
            .load
            .as_ref()
            .filter(|l| l.reloaded)
            .map(|l| l.seconds)
    }
}

/// Trial counts by class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: usize,
    pub feasible: usize,
    pub infeasible: usize,
    pub failed: usize,
}

/// The values a parameter took within a group of trials.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ValueSpread {
    /// Ordered (numeric) parameters: smallest and largest value.
    Range { min: ParamValue, max: ParamValue },
    /// Categorical / bool parameters: the distinct values, in the order of the domain.
    Values { values: Vec<ParamValue> },
}

impl ValueSpread {
    pub fn text(&self) -> String {
        match self {
            ValueSpread::Range { min, max } if min == max => min.to_string(),
            ValueSpread::Range { min, max } => format!("{min} to {max}"),
            ValueSpread::Values { values } => values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Where a kind of failure happened, parameter by parameter, next to where trials ran fine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSpread {
    pub name: String,
    /// Values among the failed trials of the group.
    pub failed: Option<ValueSpread>,
    /// Values among the trials that ran (ok status), for contrast.
    pub ok: Option<ValueSpread>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureGroup {
    /// `FailureKind` name (out_of_memory, load_failed, crashed, timeout, error),
    /// "missing_objective" (ran but the objective metric was not measured) or "unknown".
    pub kind: String,
    pub trials: Vec<usize>,
    /// The first error message of the group (shortened).
    pub example_error: Option<String>,
    pub params: Vec<ParamSpread>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConstraintViolations {
    pub constraint: String,
    pub trials: Vec<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FailureSummary {
    pub groups: Vec<FailureGroup>,
    /// Trials that ran but violated a constraint, per constraint.
    pub violations: Vec<ConstraintViolations>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParetoPoint {
    pub trial: usize,
    pub rank: usize,
    pub objective: f64,
    /// Median TTFT of the trial's requests, seconds.
    pub ttft_p50: f64,
    pub on_front: bool,
}

/// Objective against median TTFT over the feasible trials, with the non-dominated ones marked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pareto {
    /// Points in ranking order.
    pub points: Vec<ParetoPoint>,
}

impl Pareto {
    /// Front points ordered by TTFT, fastest first.
    pub fn front(&self) -> Vec<&ParetoPoint> {
        let mut f: Vec<&ParetoPoint> = self.points.iter().filter(|p| p.on_front).collect();
        f.sort_by(|a, b| {
            a.ttft_p50
                .total_cmp(&b.ttft_p50)
                .then(a.trial.cmp(&b.trial))
        });
        f
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConvergencePoint {
    pub trial: usize,
    pub class: RowClass,
    pub objective: Option<f64>,
    /// Best feasible objective among trials up to and including this one.
    pub best_so_far: Option<f64>,
}

/// An analysed run: everything the report formats need.
#[derive(Clone, Debug)]
pub struct Report {
    pub meta: RunMeta,
    /// Unreadable journal lines that were skipped: (1-based line, reason).
    pub skipped_lines: Vec<(usize, String)>,
    /// Parameters in the order of the study file, then any extra names found in the journal.
    pub param_names: Vec<String>,
    /// Every metric name measured by some trial, sorted.
    pub metric_names: Vec<String>,
    /// Every trial in ranking order: feasible by objective, infeasible by objective, failed by
    /// trial number; equal objectives keep trial order.
    pub rows: Vec<Row>,
    pub counts: Counts,
    /// Index in `rows` of rank 1 when it is feasible (the recommended configuration).
    pub best: Option<usize>,
    /// Index in `rows` of the baseline trial (the study's defaults), when it was measured.
    pub baseline: Option<usize>,
    /// Rank 1 against the baseline (None when either is missing or they are the same trial).
    pub best_vs_baseline: Option<Tie>,
    /// Parameter importance from a GP fitted to every ok trial, largest share first.
    pub importance: Vec<ParamEffect>,
    pub failures: FailureSummary,
    /// Present when TTFT was measured on at least two feasible trials and is not the objective.
    pub pareto: Option<Pareto>,
    pub convergence: Vec<ConvergencePoint>,
}

impl Report {
    pub fn best_row(&self) -> Option<&Row> {
        self.best.map(|i| &self.rows[i])
    }

    pub fn baseline_row(&self) -> Option<&Row> {
        self.baseline.map(|i| &self.rows[i])
    }

    /// Rows with a rank (feasible and infeasible), in rank order.
    pub fn ranked(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.rank.is_some())
    }

    /// The row at a 1-based rank.
    pub fn by_rank(&self, rank: usize) -> Option<&Row> {
        self.rows.iter().find(|r| r.rank == Some(rank))
    }

    /// Trials tied with rank 1, in rank order.
    pub fn tied(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.tie == Some(Tie::Tied))
            .collect()
    }

    /// Feasible trials whose comparison with rank 1 is unknown (single samples), rank order.
    pub fn undecided(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.tie == Some(Tie::Unknown))
            .collect()
    }

    /// Label of the objective, e.g. `decode_tps` or `ttft_p95`.
    pub fn objective_label(&self) -> String {
        self.meta.objective.metric.label()
    }

    pub fn maximize(&self) -> bool {
        self.meta.objective.direction == Direction::Maximize
    }

    /// Whether any trial measured TTFT.
    pub fn has_ttft(&self) -> bool {
        self.metric_names.iter().any(|m| m == TTFT_METRIC)
    }

    /// Whether any trial recorded a model load.
    pub fn has_load(&self) -> bool {
        self.rows.iter().any(|r| r.record.load.is_some())
    }

    /// The plot files that `write_all` writes for this report.
    pub fn plot_files(&self) -> Vec<&'static str> {
        let mut v = vec![CONVERGENCE_FILE];
        if self.pareto.is_some() {
            v.push(PARETO_FILE);
        }
        v
    }

    /// What one measurement of a trial is called: a request to a server, or a sample of the
    /// command backend's program.
    pub fn sample_noun(&self) -> &'static str {
        if self.meta.backend.backend == "command" {
            "sample"
        } else {
            "request"
        }
    }

    /// One sentence: how ties with rank 1 are decided.
    pub fn tie_method(&self) -> String {
        let noun = self.sample_noun();
        format!(
            "A configuration is tied with rank 1 when the 95% percentile-bootstrap interval \
             ({BOOTSTRAP_RESAMPLES} resamples of the per-{noun} values, fixed seed) of the \
             difference in {} {} between the two contains zero, i.e. the gap is within the \
             {noun}-to-{noun} noise; with fewer than two {noun}s on either side the spread is \
             unknown and no call is made.",
            self.meta.objective.metric.stat.as_str(),
            self.meta.objective.metric.metric
        )
    }
}

/// Read a run folder (run.json + trials.jsonl, skipping torn journal lines) and analyse it,
/// including parameter importance from a freshly fitted GP.
pub fn analyse(run: &RunDir) -> Result<Report, ReportError> {
    let (meta, journal) = load(run)?;
    Ok(analyse_journal(meta, journal, true))
}

/// Read run.json and the journal; a missing run.json is the user's mistake, not a crash.
pub(crate) fn load(run: &RunDir) -> Result<(RunMeta, JournalRead), ReportError> {
    let meta = run
        .read_meta()?
        .ok_or_else(|| ReportError::NotARun(run.path.clone()))?;
    let journal = run.read_journal()?;
    Ok((meta, journal))
}

/// Render an analysed run in one format.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Markdown => markdown::render(report),
        ReportFormat::Json => json::render(report),
        ReportFormat::Csv => csv::render(report),
    }
}

/// Write every report file into the run folder, each atomically: trials.csv, report.json,
/// convergence.svg, pareto.svg (when TTFT was measured) and report.md, which links the plots.
/// Returns the paths written.
pub fn write_all(run: &RunDir) -> Result<Vec<PathBuf>, ReportError> {
    write_all_with(run, true)
}

/// `write_all`, optionally without the parameter importance (which fits a GP: seconds on runs
/// of thousands of trials, too slow to redo after every trial).
pub fn write_all_with(run: &RunDir, with_importance: bool) -> Result<Vec<PathBuf>, ReportError> {
    let (meta, journal) = load(run)?;
    let report = analyse_journal(meta, journal, with_importance);
    write_report(run, &report)
}

/// Write the files of an analysed run one at a time, so that at most one rendered file is in
/// memory (report.json, megabytes on a long run, is streamed to its file); the Markdown last,
/// so that when it appears the files it links exist.
pub fn write_report(run: &RunDir, report: &Report) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    run.write_file(CSV_FILE, csv::render(report).as_bytes())?;
    written.push(run.file(CSV_FILE));
    run.write_file_with(JSON_FILE, |w| json::write(report, w))?;
    written.push(run.file(JSON_FILE));
    run.write_file(CONVERGENCE_FILE, plots::convergence_svg(report)?.as_bytes())?;
    written.push(run.file(CONVERGENCE_FILE));
    if let Some(svg) = plots::pareto_svg(report)? {
        run.write_file(PARETO_FILE, svg.as_bytes())?;
        written.push(run.file(PARETO_FILE));
    }
    run.write_file(MARKDOWN_FILE, markdown::render(report).as_bytes())?;
    written.push(run.file(MARKDOWN_FILE));
    Ok(written)
}

/// Analyse a run already in memory. `with_importance` fits a GP for parameter importance,
/// which is the only expensive step (export leaves it out).
pub fn analyse_journal(meta: RunMeta, journal: JournalRead, with_importance: bool) -> Report {
    let JournalRead { records, skipped } = journal;
    let objective = &meta.objective;
    let maximize = objective.direction == Direction::Maximize;

    let mut param_names: Vec<String> = meta.space.params.iter().map(|p| p.name.clone()).collect();
    let extra: BTreeSet<&String> = records
        .iter()
        .flat_map(|r| r.params.keys())
        .filter(|k| !param_names.contains(k))
        .collect();
    param_names.extend(extra.into_iter().cloned());
    let metric_names: Vec<String> = records
        .iter()
        .flat_map(|r| r.metrics.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();

    // Importance first, while the records are in journal order (the GP keeps the most recent).
    let importance = if with_importance {
        importance(&meta, &records)
    } else {
        vec![]
    };

    // Classify every record; the rows take the records over rather than copying them, so a
    // report holds one copy of the journal, not two. Repeated measurements of one configuration
    // become one row.
    let rows: Vec<Row> = records
        .into_iter()
        .map(|rec| classify(rec, &meta))
        .collect();
    let mut rows = pool_repeats(rows, objective.metric.stat);

    // Rank: feasible by objective, infeasible by objective, failed by trial number.
    rows.sort_by(|a, b| {
        a.class
            .cmp(&b.class)
            .then_with(|| match (a.objective, b.objective) {
                (Some(x), Some(y)) if maximize => y.total_cmp(&x),
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => std::cmp::Ordering::Equal,
            })
            .then(a.trial().cmp(&b.trial()))
    });
    let mut next = 1;
    for r in rows.iter_mut() {
        if r.class != RowClass::Failed {
            r.rank = Some(next);
            next += 1;
        }
    }

    let counts = Counts {
        total: rows.len(),
        feasible: rows
            .iter()
            .filter(|r| r.class == RowClass::Feasible)
            .count(),
        infeasible: rows
            .iter()
            .filter(|r| r.class == RowClass::Infeasible)
            .count(),
        failed: rows.iter().filter(|r| r.class == RowClass::Failed).count(),
    };

    let best = rows
        .first()
        .filter(|r| r.class == RowClass::Feasible)
        .map(|_| 0);
    // The first baseline trial (a resumed run never measures it twice, but be robust).
    let baseline = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_baseline())
        .min_by_key(|(_, r)| r.trial())
        .map(|(i, _)| i);

    // Spread, intervals, changes against the baseline and rank 1, ties.
    let stat = objective.metric.stat;
    for r in rows.iter_mut() {
        r.ci95 = bootstrap_ci(&r.objective_samples, stat, seed_for(r.trial(), r.trial()));
    }
    if let Some(b) = baseline.and_then(|i| rows[i].objective) {
        for r in rows.iter_mut() {
            r.vs_baseline_pct = r.objective.and_then(|v| pct_change(v, b));
        }
    }
    let mut best_vs_baseline = None;
    if let Some(bi) = best {
        let best_value = rows[bi].objective;
        let best_samples = rows[bi].objective_samples.clone();
        let best_trial = rows[bi].trial();
        for (i, r) in rows.iter_mut().enumerate() {
            r.vs_best_pct = match (r.objective, best_value) {
                (Some(v), Some(b)) if r.class != RowClass::Failed => pct_change(v, b),
                _ => None,
            };
            if r.class != RowClass::Feasible {
                continue;
            }
            r.tie = Some(if i == bi {
                Tie::Best
            } else {
                compare(
                    &best_samples,
                    &r.objective_samples,
                    stat,
                    seed_for(best_trial, r.trial()),
                )
            });
        }
        if let Some(base) = baseline.filter(|&b| b != bi) {
            let base_row = &rows[base];
            if base_row.class != RowClass::Failed {
                best_vs_baseline = Some(compare(
                    &best_samples,
                    &base_row.objective_samples,
                    stat,
                    seed_for(best_trial, base_row.trial()),
                ));
            }
        }
    }

    let failures = failure_summary(&meta, &rows, &param_names);
    let pareto = pareto(&meta, &rows, maximize);
    let convergence = convergence(&rows, maximize);

    Report {
        meta,
        skipped_lines: skipped,
        param_names,
        metric_names,
        rows,
        counts,
        best,
        baseline,
        best_vs_baseline,
        importance,
        failures,
        pareto,
        convergence,
    }
}

fn classify(rec: TrialRecord, meta: &RunMeta) -> Row {
    let objective = &meta.objective;
    let metric = &objective.metric.metric;
    let objective_samples: Vec<f64> = rec
        .samples
        .iter()
        .filter_map(|s| s.get(metric).copied())
        .filter(|v| v.is_finite())
        .collect();
    let objective_summary = rec
        .metrics
        .get(metric)
        .cloned()
        .or_else(|| Summary::of(&objective_samples));
    let value = rec.objective.filter(|v| v.is_finite());
    let (class, failure_kind) = match (rec.status, value) {
        (Status::Ok, Some(_)) if rec.feasible => (RowClass::Feasible, None),
        (Status::Ok, Some(_)) => (RowClass::Infeasible, None),
        (Status::Ok, None) => (RowClass::Failed, Some("missing_objective".to_string())),
        (Status::Failed, _) => (
            RowClass::Failed,
            Some(
                rec.failure
                    .map(|k| k.as_str())
                    .unwrap_or("unknown")
                    .to_string(),
            ),
        ),
    };
    let violations = if class == RowClass::Infeasible {
        let mut v: Vec<String> = objective
            .constraints
            .iter()
            .filter_map(|c| {
                match rec
                    .metrics
                    .get(&c.metric.metric)
                    .map(|s| s.get(c.metric.stat))
                {
                    Some(x) if c.violation(x) <= 0.0 => None,
                    Some(x) => Some(format!(
                        "{} {} {} {}",
                        c.metric.label(),
                        fmt_num(x),
                        match c.op {
                            Comparison::AtMost => ">",
                            Comparison::AtLeast => "<",
                        },
                        format_float(c.bound).trim_end_matches(".0")
                    )),
                    None => Some(format!("{} not measured", c.metric.label())),
                }
            })
            .collect();
        if v.is_empty() {
            v.push("constraints not met".to_string());
        }
        v
    } else {
        vec![]
    };
    Row {
        record: rec,
        class,
        rank: None,
        objective: if class == RowClass::Failed {
            None
        } else {
            value
        },
        objective_samples,
        objective_summary,
        ci95: None,
        vs_baseline_pct: None,
        vs_best_pct: None,
        tie: None,
        violations,
        failure_kind,
        also: vec![],
    }
}

/// Merge the rows of trials that measured the same configuration into the first one: its
/// objective becomes the statistic over all their samples, so a re-measured leader is ranked
/// on every measurement instead of on its luckiest trial. Feasible only when every measurement
/// was. Failed trials are never merged (each failure is its own evidence).
fn pool_repeats(rows: Vec<Row>, stat: Stat) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut first_of: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows {
        if row.class == RowClass::Failed {
            out.push(row);
            continue;
        }
        let key = config_key(&row.record.params);
        let Some(&i) = first_of.get(&key) else {
            first_of.insert(key, out.len());
            out.push(row);
            continue;
        };
        let first = &mut out[i];
        first.also.push(row.trial());
        first.objective_samples.extend(row.objective_samples);
        if row.class == RowClass::Infeasible {
            first.class = RowClass::Infeasible;
            first.violations.extend(row.violations);
        }
        if !first.objective_samples.is_empty() {
            let mut v = first.objective_samples.clone();
            first.objective = Some(stat_of(&mut v, stat));
            first.objective_summary = Summary::of(&first.objective_samples);
        }
    }
    out
}

/// Percent change of `v` against `base`; None when the base is zero.
fn pct_change(v: f64, base: f64) -> Option<f64> {
    if base == 0.0 || !base.is_finite() || !v.is_finite() {
        None
    } else {
        Some((v - base) / base.abs() * 100.0)
    }
}

/// A bootstrap seed per pair of trials, mixed by splitmix64: the result for a pair does not
/// depend on which other trials exist or in which order they are compared.
fn seed_for(a: usize, b: usize) -> u64 {
    splitmix64(BOOTSTRAP_SEED ^ splitmix64(a as u64) ^ splitmix64(b as u64).rotate_left(17))
}

/// The statistic of a sample, as `Summary::get` defines it.
fn stat_of(values: &mut [f64], stat: Stat) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    match stat {
        Stat::Median => quantile_sorted(values, 0.5),
        Stat::P95 => quantile_sorted(values, 0.95),
        Stat::Min => values[0],
        Stat::Max => values[values.len() - 1],
        Stat::Mean => values.iter().sum::<f64>() / n,
        Stat::Std => {
            if values.len() < 2 {
                return 0.0;
            }
            let m = values.iter().sum::<f64>() / n;
            (values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        }
    }
}

fn resample(rng: &mut ChaCha8Rng, from: &[f64], into: &mut [f64]) {
    for slot in into.iter_mut() {
        *slot = from[rng.random_range(0..from.len())];
    }
}

/// 95% percentile-bootstrap interval of a statistic; None with fewer than two values.
pub fn bootstrap_ci(values: &[f64], stat: Stat, seed: u64) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0.0; values.len()];
    let mut stats: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            resample(&mut rng, values, &mut buf);
            stat_of(&mut buf, stat)
        })
        .collect();
    stats.sort_by(|a, b| a.total_cmp(b));
    Some((
        quantile_sorted(&stats, 0.025),
        quantile_sorted(&stats, 0.975),
    ))
}

/// 95% percentile-bootstrap interval of stat(a) - stat(b), resampling each side independently.
pub fn bootstrap_diff(a: &[f64], b: &[f64], stat: Stat, seed: u64) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ba = vec![0.0; a.len()];
    let mut bb = vec![0.0; b.len()];
    let mut diffs: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            resample(&mut rng, a, &mut ba);
            resample(&mut rng, b, &mut bb);
            stat_of(&mut ba, stat) - stat_of(&mut bb, stat)
        })
        .collect();
    diffs.sort_by(|x, y| x.total_cmp(y));
    Some((
        quantile_sorted(&diffs, 0.025),
        quantile_sorted(&diffs, 0.975),
    ))
}

/// Tied when the bootstrap interval of the difference contains zero.
fn compare(best: &[f64], other: &[f64], stat: Stat, seed: u64) -> Tie {
    match bootstrap_diff(best, other, stat, seed) {
        None => Tie::Unknown,
        Some((lo, hi)) if lo <= 0.0 && 0.0 <= hi => Tie::Tied,
        Some(_) => Tie::Different,
    }
}

/// Parameter importance from a GP fitted on the journal, the same model the optimizer uses.
fn importance(meta: &RunMeta, records: &[TrialRecord]) -> Vec<ParamEffect> {
    if meta.space.params.is_empty()
        || records
            .iter()
            .filter(|r| r.is_ok() && r.objective.is_some())
            .count()
            < 2
    {
        return vec![];
    }
    let mut opt = Optimizer::new(
        meta.space.clone(),
        meta.objective.clone(),
        crate::study::is_positive_metric,
        OptimizerSettings::default(),
        meta.runner_params.clone(),
        meta.seed,
    );
    for r in records {
        tell_record(&mut opt, r);
    }
    let mut effects: Vec<ParamEffect> = opt
        .explain()
        .into_iter()
        .filter(|e| e.effect.is_finite() && e.share.is_finite())
        .collect();
    effects.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.name.cmp(&b.name))
    });
    effects
}

/// The spread of a parameter's values over some trials: a range for ordered parameters,
/// the distinct values (in the domain's order) for categorical and bool ones.
fn spread(meta: &RunMeta, name: &str, configs: &[&Config]) -> Option<ValueSpread> {
    let values: Vec<&ParamValue> = configs.iter().filter_map(|c| c.get(name)).collect();
    if values.is_empty() {
        return None;
    }
    let ordered = match meta.space.get(name).map(|p| &p.kind) {
        Some(ParamKind::Int { .. } | ParamKind::Float { .. }) => true,
        Some(_) => false,
        None => values
            .iter()
            .all(|v| matches!(v, ParamValue::Int(_) | ParamValue::Float(_))),
    };
    if ordered {
        let cmp = |a: &&&ParamValue, b: &&&ParamValue| {
            a.as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&b.as_f64().unwrap_or(f64::NAN))
        };
        let min = values.iter().min_by(cmp)?;
        let max = values.iter().max_by(cmp)?;
        return Some(ValueSpread::Range {
            min: (*min).clone(),
            max: (*max).clone(),
        });
    }
    let mut distinct: Vec<ParamValue> = Vec::new();
    for v in &values {
        if !distinct.contains(v) {
            distinct.push((*v).clone());
        }
    }
    let order = |v: &ParamValue| -> (usize, String) {
        let idx = match meta.space.get(name).map(|p| &p.kind) {
            Some(ParamKind::Categorical { choices }) => {
                choices.iter().position(|c| c == v).unwrap_or(usize::MAX)
            }
            _ => usize::MAX,
        };
        (idx, v.to_string())
    };
    distinct.sort_by_key(order);
    Some(ValueSpread::Values { values: distinct })
}

/// Shorten an error message for a summary line (first line, at most 200 characters).
pub(crate) fn short_error(e: &str) -> String {
    let first = e
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut s: String = first.chars().take(200).collect();
    if first.chars().count() > 200 || e.trim().lines().count() > 1 {
        s.push_str(" ...");
    }
    s
}

fn failure_summary(meta: &RunMeta, rows: &[Row], param_names: &[String]) -> FailureSummary {
    let ok_configs: Vec<&Config> = rows
        .iter()
        .filter(|r| r.record.status == Status::Ok)
        .map(|r| &r.record.params)
        .collect();
    let kind_order = |k: &str| -> usize {
        [
            FailureKind::OutOfMemory,
            FailureKind::LoadFailed,
            FailureKind::Crashed,
            FailureKind::Timeout,
            FailureKind::Error,
        ]
        .iter()
        .position(|f| f.as_str() == k)
        .unwrap_or(usize::MAX)
    };
    let mut kinds: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.failure_kind.as_deref())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    kinds.sort_by_key(|k| (kind_order(k), k.to_string()));
    let groups = kinds
        .into_iter()
        .map(|kind| {
            let mut members: Vec<&Row> = rows
                .iter()
                .filter(|r| r.failure_kind.as_deref() == Some(kind))
                .collect();
            members.sort_by_key(|r| r.trial());
            let configs: Vec<&Config> = members.iter().map(|r| &r.record.params).collect();
            FailureGroup {
                kind: kind.to_string(),
                trials: members.iter().map(|r| r.trial()).collect(),
                example_error: members
                    .iter()
                    .find_map(|r| r.record.error.as_deref())
                    .map(short_error),
                params: param_names
                    .iter()
                    .map(|n| ParamSpread {
                        name: n.clone(),
                        failed: spread(meta, n, &configs),
                        ok: spread(meta, n, &ok_configs),
                    })
                    .collect(),
            }
        })
        .collect();

    let mut violations = Vec::new();
    for c in &meta.objective.constraints {
        let mut trials: Vec<usize> = rows
            .iter()
            .filter(|r| r.class == RowClass::Infeasible)
            .filter(|r| match r.metric(&c.metric.metric) {
                Some(s) => c.violation(s.get(c.metric.stat)) > 0.0,
                None => true,
            })
            .map(|r| r.trial())
            .collect();
        trials.sort_unstable();
        if !trials.is_empty() {
            violations.push(ConstraintViolations {
                constraint: c.text.clone(),
                trials,
            });
        }
    }
    FailureSummary { groups, violations }
}

fn pareto(meta: &RunMeta, rows: &[Row], maximize: bool) -> Option<Pareto> {
    if meta.objective.metric.metric == TTFT_METRIC {
        return None;
    }
    let mut points: Vec<ParetoPoint> = rows
        .iter()
        .filter(|r| r.class == RowClass::Feasible)
        .filter_map(|r| {
            let ttft = r.metric(TTFT_METRIC)?.median;
            let obj = r.objective?;
            ttft.is_finite().then_some(ParetoPoint {
                trial: r.trial(),
                rank: r.rank?,
                objective: obj,
                ttft_p50: ttft,
                on_front: false,
            })
        })
        .collect();
    if points.len() < 2 {
        return None;
    }
    // Better objective (per direction) and lower TTFT; a point is on the front when no other
    // point is at least as good on both and strictly better on one.
    let better = |a: f64, b: f64| if maximize { a > b } else { a < b };
    let dominated: Vec<bool> = points
        .iter()
        .map(|p| {
            points.iter().any(|q| {
                let obj_ge = q.objective == p.objective || better(q.objective, p.objective);
                let ttft_le = q.ttft_p50 <= p.ttft_p50;
                obj_ge && ttft_le && (better(q.objective, p.objective) || q.ttft_p50 < p.ttft_p50)
            })
        })
        .collect();
    for (p, d) in points.iter_mut().zip(dominated) {
        p.on_front = !d;
    }
    Some(Pareto { points })
}

fn convergence(rows: &[Row], maximize: bool) -> Vec<ConvergencePoint> {
    let mut by_trial: Vec<&Row> = rows.iter().collect();
    by_trial.sort_by_key(|r| r.trial());
    let mut best: Option<f64> = None;
    by_trial
        .into_iter()
        .map(|r| {
            if r.class == RowClass::Feasible {
                if let Some(v) = r.objective {
                    best = Some(match best {
                        Some(b) if (maximize && b >= v) || (!maximize && b <= v) => b,
                        _ => v,
                    });
                }
            }
            ConvergencePoint {
                trial: r.trial(),
                class: r.class,
                objective: r.objective,
                best_so_far: best,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Fixed number formatting shared by the formats.

/// A measured value with about four significant digits and a fixed number of decimals for its
/// magnitude: 1352, 102.3, 52.10, 4.40, 0.180, 0.00123. "-" for missing or non-finite.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    let a = x.abs();
    let decimals = if a >= 1000.0 {
        0
    } else if a >= 100.0 {
        1
    } else if a >= 1.0 || a == 0.0 {
        2
    } else if a >= 0.01 {
        3
    } else {
        (2 - a.log10().floor() as i64).clamp(3, 9) as usize
    };
    no_negative_zero(format!("{x:.decimals$}"))
}

/// A signed percentage with one decimal: "+12.3%", "-0.4%", "+0.0%".
pub fn fmt_pct(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    let s = format!("{x:+.1}%");
    if s == "-0.0%" {
        "+0.0%".to_string()
    } else {
        s
    }
}

/// An unsigned percentage with one decimal: "0.8%".
pub fn fmt_share(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    no_negative_zero(format!("{:.1}%", x * 100.0))
}

fn no_negative_zero(s: String) -> String {
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.' || c == '%') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Unit of a metric by naming convention, for column headers.
pub fn unit_of(metric: &str) -> &'static str {
    if metric.ends_with("_tps") || matches!(metric, "tps" | "throughput") {
        "tok/s"
    } else if metric.ends_with("_s")
        || matches!(
            metric,
            "ttft" | "load" | "total" | "latency" | "e2e" | "server_load"
        )
    {
        "s"
    } else {
        ""
    }
}

/// Whole seconds as a short human duration ("1h 3m 20s").
pub fn fmt_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    let s = seconds.round() as u64;
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats_are_fixed() {
        assert_eq!(fmt_num(1352.4), "1352");
        assert_eq!(fmt_num(102.31), "102.3");
        assert_eq!(fmt_num(52.1), "52.10");
        assert_eq!(fmt_num(0.18), "0.180");
        assert_eq!(fmt_num(0.00123), "0.00123");
        assert_eq!(fmt_num(-0.0001), "-0.000100");
        assert_eq!(fmt_num(-0.0), "0.00");
        assert_eq!(fmt_num(f64::NAN), "-");
        assert_eq!(fmt_pct(12.345), "+12.3%");
        assert_eq!(fmt_pct(-0.04), "+0.0%");
        assert_eq!(fmt_pct(-3.0), "-3.0%");
        assert_eq!(fmt_share(0.1234), "12.3%");
        assert_eq!(fmt_duration(3800.4), "1h 3m 20s");
    }

    #[test]
    fn bootstrap_ties_overlapping_and_separates_distinct_samples() {
        let a = [51.5, 51.8, 52.0, 52.4, 52.9];
        let b = [51.6, 51.9, 52.1, 52.3, 52.7];
        let c = [47.7, 48.0, 48.1, 48.3, 48.6];
        assert_eq!(compare(&b, &a, Stat::Median, 1), Tie::Tied);
        assert_eq!(compare(&b, &c, Stat::Median, 1), Tie::Different);
        assert_eq!(compare(&b, &[50.0], Stat::Median, 1), Tie::Unknown);
        // Deterministic for a seed.
        assert_eq!(
            bootstrap_ci(&a, Stat::Median, 3),
            bootstrap_ci(&a, Stat::Median, 3)
        );
        let (lo, hi) = bootstrap_ci(&a, Stat::Median, 3).unwrap();
        assert!(lo >= 51.5 && hi <= 52.9 && lo < hi);
    }

    #[test]
    fn stat_of_matches_summary() {
        let v = [1.0, 2.0, 3.0, 6.0, 10.0];
        let s = Summary::of(&v).unwrap();
        for stat in [
            Stat::Median,
            Stat::Mean,
            Stat::P95,
            Stat::Std,
            Stat::Min,
            Stat::Max,
        ] {
            let mut w = v.to_vec();
            assert!(
                (stat_of(&mut w, stat) - s.get(stat)).abs() < 1e-12,
                "{stat:?}"
            );
        }
    }
}
