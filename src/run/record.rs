//! The journal record of a measured trial: metrics summarized, objective and feasibility read.

use crate::backend::Evaluation;
use crate::engine::stats::summarize;
use crate::study::Study;
use crate::trial::{FailureKind, Status, Trial, TrialRecord};
use chrono::Utc;
use tracing::{info, warn};

pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Build the journal record of a measured trial.
pub fn make_record(
    study: &Study,
    trial: &Trial,
    eval: Evaluation,
    started_at: String,
    duration_s: f64,
) -> TrialRecord {
    let metrics = summarize(&eval.samples);
    let mut rec = TrialRecord {
        trial: trial.number,
        origin: trial.origin,
        params: trial.config.clone(),
        effective: eval.effective,
        status: Status::Ok,
        objective: None,
        feasible: false,
        metrics,
        samples: eval.samples,
        failure: None,
        error: None,
        load: eval.load,
        notes: eval.notes,
        started_at,
        finished_at: now_rfc3339(),
        duration_s,
        acquisition: trial.acquisition,
    };
    if let Some(f) = eval.failure {
        rec.status = Status::Failed;
        rec.failure = Some(f.kind);
        rec.error = Some(f.message);
        rec.metrics.clear();
        rec.samples.clear();
        return rec;
    }
    let m = &study.objective.metric;
    match rec.metrics.get(&m.metric) {
        Some(s) => rec.objective = Some(s.get(m.stat)),
        None => {
            rec.status = Status::Failed;
            rec.failure = Some(FailureKind::Error);
            let seen: Vec<&String> = rec.metrics.keys().collect();
            rec.error = Some(format!(
                "the objective metric `{}` was not measured (metrics seen: {seen:?}); check objective.metric",
                m.metric
            ));
            return rec;
        }
    }
    rec.feasible = study.objective.constraints.iter().all(|c| {
        rec.metrics
            .get(&c.metric.metric)
            .map(|s| c.violation(s.get(c.metric.stat)) <= 0.0)
            .unwrap_or(false)
    });
    rec
}

/// Log a journaled trial's outcome.
pub(super) fn log_trial(rec: &TrialRecord) {
    if !rec.is_ok() {
        warn!(trial = rec.trial, failure = ?rec.failure, error = ?rec.error, "trial failed");
    }
    match (rec.objective, &rec.error) {
        (Some(v), _) => info!(
            trial = rec.trial,
            objective = v,
            feasible = rec.feasible,
            "trial done"
        ),
        (None, Some(e)) => info!(trial = rec.trial, error = %e, "trial failed"),
        _ => {}
    }
}
