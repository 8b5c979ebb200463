//! What an analysed run is: the `Report` and its rows, ties, failure summary, Pareto front and
//! convergence, plus the names of the files the formats write. Plain data; the analysis that
//! fills it is in analysis.rs, the layout of each output format in its own file.

use super::bootstrap::BOOTSTRAP_RESAMPLES;
use super::error::ReportError;
use crate::engine::optimizer::ParamEffect;
use crate::engine::space::ParamValue;
use crate::engine::stats::Summary;
use crate::store::RunMeta;
use crate::study::Direction;
use crate::trial::{Origin, TrialRecord};
use serde::Serialize;
use std::collections::BTreeMap;
use std::str::FromStr;

pub const MARKDOWN_FILE: &str = "report.md";
pub const JSON_FILE: &str = "report.json";
pub const CSV_FILE: &str = "trials.csv";
pub const CONVERGENCE_FILE: &str = "convergence.svg";
pub const PARETO_FILE: &str = "pareto.svg";

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
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, ReportError> {
        match s.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(ReportFormat::Markdown),
            "json" => Ok(ReportFormat::Json),
            "csv" => Ok(ReportFormat::Csv),
            other => Err(ReportError::UnknownFormat(other.to_string())),
        }
    }
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
    /// leaders that are statistically tied, or the server ran another request identically);
    /// their samples are pooled into this row.
    pub also: Vec<usize>,
    /// The requested configurations pooled into this row with the trials that asked each, in
    /// the order of their first trial, when there are two or more (several requests the server
    /// ran identically); empty when every trial asked the same.
    pub requested: Vec<Requested>,
}

/// One requested configuration among those pooled into a row.
#[derive(Clone, Debug, PartialEq)]
pub struct Requested {
    pub params: crate::engine::space::Config,
    pub trials: Vec<usize>,
}

impl Row {
    pub fn trial(&self) -> usize {
        self.record.trial
    }

    /// The configuration the server ran: the row's configuration (verdict.rs `Grouping`).
    pub fn ran(&self) -> &crate::engine::space::Config {
        self.record.effective_params()
    }

    /// The requested configurations pooled into the row (its first trial's alone when every
    /// trial asked the same).
    pub fn requests(&self) -> Vec<&crate::engine::space::Config> {
        if self.requested.is_empty() {
            vec![&self.record.params]
        } else {
            self.requested.iter().map(|r| &r.params).collect()
        }
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

/// How the journal's trials divide up (src/verdict.rs, the count every reader prints):
/// `total = feasible + infeasible + remeasurements + failed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Trials in the journal.
    pub total: usize,
    /// Distinct configurations that met the constraints in every measurement (rows).
    pub feasible: usize,
    /// Distinct configurations that violated a constraint in some measurement (rows).
    pub infeasible: usize,
    /// Failed trials (each its own row).
    pub failed: usize,
    /// `feasible + infeasible`.
    pub configurations: usize,
    /// Trials that measured a configuration again, pooled into its row (`also`).
    pub remeasurements: usize,
    /// The re-measurements by the origin of their trial (`confirm`, `decision`, `ablation`).
    pub remeasured_by_origin: BTreeMap<&'static str, usize>,
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

/// One trial of the convergence curve (every trial, re-measurements included).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConvergencePoint {
    pub trial: usize,
    pub origin: Origin,
    /// This trial's own class (feasible, infeasible or failed), by its own measurement.
    pub class: RowClass,
    /// This trial's own objective value.
    pub objective: Option<f64>,
    /// For a re-measurement, the first trial of the configuration it measured again (the row
    /// its samples are pooled into); None for a configuration's first measurement.
    pub remeasures: Option<usize>,
    /// The best configuration's pooled objective after this trial (src/verdict.rs, the rule of
    /// rank 1), and its first trial.
    pub best_so_far: Option<f64>,
    pub best_trial: Option<usize>,
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
    /// Index in `rows` of rank 1 when it is feasible (the recommended configuration): the
    /// leader of src/verdict.rs, the best that `status`, the run's summary and export name.
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
    /// The decision phase, when one started: it names rank 1 (docs/decision.md).
    pub decision: Option<DecisionSection>,
}

impl Report {
    /// The gain over the baseline with its interval, measured after the selection (the decision
    /// phase); None when no phase ran (the ranking's percentages are then the selection's).
    pub fn recorded_gain(&self) -> Option<crate::engine::decision::Effect> {
        self.decision
            .as_ref()
            .and_then(|d| d.result.vs_baseline.clone())
    }

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

/// What the report shows of the decision phase.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionSection {
    pub result: crate::engine::decision::DecisionResult,
    #[serde(skip)]
    pub plan: crate::engine::decision::Plan,
    /// Trials the phase measured: racing rounds and ablation rounds.
    pub race_trials: usize,
    pub ablation_trials: usize,
    /// Trials the phase may take in all.
    pub budget: usize,
}

impl DecisionSection {
    pub fn verdict(&self) -> crate::engine::decision::Verdict {
        self.result.verdict
    }
}
