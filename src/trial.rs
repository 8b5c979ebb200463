//! Trials and their journaled records: the one data format every other module reads.
//!
//! A `TrialRecord` is one line of `trials.jsonl`. Its field names are a stable contract for
//! reports, scripts and resume; add fields, never rename them. This is also the journal
//! adapter of the engine: what a record tells the optimizer (`TrialRecord::outcome`,
//! `tell_record`).

use crate::engine::objective::Objective;
use crate::engine::optimizer::{Optimizer, Outcome};
use crate::engine::space::Config;
use crate::engine::stats::{Sample, Summary};
pub use crate::engine::trial::{Origin, Trial};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

/// What kind of failure a failed trial was: all of them mark the configuration infeasible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Out of memory (GPU or host).
    OutOfMemory,
    /// The model or server did not load / start with these options.
    LoadFailed,
    /// The server or program crashed while measuring.
    Crashed,
    /// The trial exceeded its time limit.
    Timeout,
    /// The program exited non-zero or printed no usable result.
    Error,
}

impl FailureKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::LoadFailed => "load_failed",
            FailureKind::Crashed => "crashed",
            FailureKind::Timeout => "timeout",
            FailureKind::Error => "error",
        }
    }
}

/// A model (re)load paid before a trial's measurements, timed separately from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadRecord {
    pub reloaded: bool,
    pub seconds: f64,
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub trial: usize,
    pub origin: Origin,
    pub params: Config,
    /// The configuration as the server ran it, when that differs from `params`: values the
    /// server resolved (`auto`) or changed (ubatch clamped to batch, a layer count capped at
    /// the model's), as far as the server tells (docs/ollama-options.md, "What the backend sends and
    /// records"; docs/llama-server.md, "What the server chose").
    /// The optimizer learns this one; `params` stays what was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<Config>,
    pub status: Status,
    /// Objective value (the configured statistic of the objective metric) when ok.
    pub objective: Option<f64>,
    /// Whether every outcome constraint held (true when there are none).
    pub feasible: bool,
    /// Per-metric summaries over the measured samples.
    pub metrics: BTreeMap<String, Summary>,
    /// Raw samples, one per measured request (warm-ups excluded).
    pub samples: Vec<Sample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadRecord>,
    /// Backend facts worth keeping (size_vram, server stderr tail, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, serde_json::Value>,
    /// RFC 3339 wall-clock times.
    pub started_at: String,
    pub finished_at: String,
    /// Wall time of the whole trial including any reload and warm-up, seconds.
    pub duration_s: f64,
    /// Acquisition value at proposal time, when model-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquisition: Option<f64>,
}

impl TrialRecord {
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// The configuration the server ran: `effective` when recorded, else `params`.
    pub fn effective_params(&self) -> &Config {
        self.effective.as_ref().unwrap_or(&self.params)
    }

    /// Summary of a metric, if measured.
    pub fn metric(&self, name: &str) -> Option<&Summary> {
        self.metrics.get(name)
    }

    /// What the optimizer learns from this record. An ok record that lacks the objective
    /// metric counts as failed: there is nothing to learn from it.
    pub fn outcome(&self, objective: &Objective) -> Outcome {
        if self.status != Status::Ok {
            return Outcome::Failed;
        }
        let Some(value) = self.objective.filter(|v| v.is_finite()) else {
            return Outcome::Failed;
        };
        let constraint_values = objective
            .constraints
            .iter()
            .map(|c| {
                self.metrics
                    .get(&c.metric.metric)
                    .map(|s| s.get(c.metric.stat))
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let reload_s = self.load.as_ref().filter(|l| l.reloaded).map(|l| l.seconds);
        Outcome::Ok {
            value,
            constraint_values,
            duration_s: self.duration_s,
            reload_s,
        }
    }
}

/// Tell the optimizer a journaled trial (resume, replays and the run loop after each trial).
/// A record with an `effective` configuration teaches that one (configurations that run
/// identically are one point) and marks the requested one measured too.
pub fn tell_record(optimizer: &mut Optimizer, rec: &TrialRecord) {
    let outcome = rec.outcome(optimizer.objective());
    optimizer.tell_origin(rec.origin, matches!(outcome, Outcome::Failed));
    match &rec.effective {
        Some(effective) if *effective != rec.params => {
            optimizer.tell_effective(&rec.params, effective, outcome)
        }
        _ => optimizer.tell_config(&rec.params, outcome),
    }
    // What the trial showed of memory (docs/memory.md): it loaded, or it ran out of memory.
    // A trial that failed another way (a crash, a timeout) says nothing of memory.
    if rec.is_ok() {
        optimizer.tell_memory(rec.effective_params(), true);
    } else if rec.failure == Some(FailureKind::OutOfMemory) {
        optimizer.tell_memory(rec.effective_params(), false);
    }
}

/// A successful trial with no metrics, for tests across the crate to adjust.
#[cfg(test)]
impl TrialRecord {
    pub(crate) fn for_test(trial: usize, params: Config, objective: f64) -> TrialRecord {
        TrialRecord {
            trial,
            origin: Origin::Model,
            params,
            effective: None,
            status: Status::Ok,
            objective: Some(objective),
            feasible: true,
            metrics: BTreeMap::new(),
            samples: vec![],
            failure: None,
            error: None,
            load: None,
            notes: BTreeMap::new(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_s: 1.0,
            acquisition: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::objective::{Direction, MetricRef, Transform};
    use crate::engine::optimizer::OptimizerSettings;
    use crate::engine::space::{Param, ParamKind, ParamValue, SearchSpace};

    fn int(name: &str, low: i64, high: i64, log: bool) -> Param {
        Param {
            name: name.into(),
            kind: ParamKind::Int {
                low,
                high,
                log,
                step: 1,
            },
            default: None,
            role: Default::default(),
            prefer: None,
            memory: Default::default(),
        }
    }

    fn optimizer(params: Vec<Param>) -> Optimizer {
        let objective = Objective {
            metric: MetricRef::parse("decode_tps"),
            direction: Direction::Maximize,
            constraints: vec![],
            transform: Transform::None,
        };
        Optimizer::new(
            SearchSpace { params },
            objective,
            |_| true,
            OptimizerSettings::default(),
            vec![],
            1,
        )
    }

    fn cfg(pairs: &[(&str, i64)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ParamValue::Int(*v)))
            .collect()
    }

    fn record(params: Config, effective: Option<Config>) -> TrialRecord {
        TrialRecord {
            effective,
            ..TrialRecord::for_test(1, params, 50.0)
        }
    }

    #[test]
    fn the_optimizer_learns_what_the_server_ran() {
        let mut opt = optimizer(vec![
            int("batch_size", 8, 8192, true),
            int("ubatch_size", 8, 8192, true),
        ]);
        // Asked -b 8 -ub 8192, launched as -b 8 -ub 8.
        let asked = cfg(&[("batch_size", 8), ("ubatch_size", 8192)]);
        let ran = cfg(&[("batch_size", 8), ("ubatch_size", 8)]);
        let rec = record(asked.clone(), Some(ran.clone()));
        assert_eq!(rec.effective_params(), &ran);
        tell_record(&mut opt, &rec);
        assert_eq!(opt.n_observations(), 1, "one point");
        assert!(opt.was_measured(&ran), "the point the model learns");
        assert!(
            opt.was_measured(&asked),
            "and the request is not new either"
        );
        // Measuring (8, 8) directly later is a repeat of the same point, not a new one.
        tell_record(&mut opt, &record(ran.clone(), None));
        assert_eq!(opt.n_observations(), 2);
        assert!(!opt.was_measured(&cfg(&[("batch_size", 8), ("ubatch_size", 16)])));
    }

    #[test]
    fn layer_counts_above_the_model_are_one_point() {
        let mut opt = optimizer(vec![int("num_gpu", 0, 999, false)]);
        let rec = record(cfg(&[("num_gpu", 999)]), Some(cfg(&[("num_gpu", 35)])));
        tell_record(&mut opt, &rec);
        assert!(opt.was_measured(&cfg(&[("num_gpu", 35)])));
        assert!(opt.was_measured(&cfg(&[("num_gpu", 999)])));
        assert_eq!(opt.n_observations(), 1);
    }

    #[test]
    fn an_effective_value_the_space_does_not_admit_teaches_the_request() {
        // num_ctx auto resolved to 4096, outside a study range of [8192, 32768]: the model
        // is not taught a point at the clamped bound.
        let mut opt = optimizer(vec![int("num_ctx", 8192, 32768, true)]);
        let asked = cfg(&[("num_ctx", 8192)]);
        let rec = record(asked.clone(), Some(cfg(&[("num_ctx", 4096)])));
        tell_record(&mut opt, &rec);
        assert!(opt.was_measured(&asked));
        assert_eq!(opt.n_observations(), 1);
        // A failed trial marks both failed: neither is proposed again.
        let mut failed = record(cfg(&[("num_ctx", 16384)]), Some(cfg(&[("num_ctx", 9000)])));
        failed.status = Status::Failed;
        failed.objective = None;
        tell_record(&mut opt, &failed);
        assert!(opt.was_measured(&cfg(&[("num_ctx", 16384)])));
        assert!(opt.was_measured(&cfg(&[("num_ctx", 9000)])));
    }

    #[test]
    fn records_without_effective_read_as_before() {
        let text = r#"{"trial":0,"origin":"baseline","params":{"num_gpu":35},"status":"ok",
            "objective":1.0,"feasible":true,"metrics":{},"samples":[],"started_at":"",
            "finished_at":"","duration_s":1.0}"#;
        let rec: TrialRecord = serde_json::from_str(text).unwrap();
        assert_eq!(rec.effective, None);
        assert_eq!(rec.effective_params(), &rec.params);
        let back = serde_json::to_string(&rec).unwrap();
        assert!(!back.contains("effective"), "{back}");
        let with = record(cfg(&[("num_gpu", 999)]), Some(cfg(&[("num_gpu", 35)])));
        let text = serde_json::to_string(&with).unwrap();
        assert!(text.contains(r#""effective":{"num_gpu":35}"#), "{text}");
    }
}
