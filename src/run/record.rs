//! The journal record of a measured trial: metrics summarized, objective and feasibility read.
//! Every failed trial's error text passes through `make_record`, so it is bounded here
//! (`bound_error`), whichever backend or server built it: a runaway server answer or program
//! output cannot grow the journal, report.json or trials.csv (issue 14, class 4).

use crate::backend::output::{bound_text, ERROR_TEXT_MAX};
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
        rec.error = Some(bound_error(&f.message));
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
            rec.error = Some(bound_error(&format!(
                "the objective metric `{}` was not measured (metrics seen: {seen:?}); check objective.metric",
                m.metric
            )));
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

/// A failed trial's error text as journaled: at most `ERROR_TEXT_MAX` bytes of it, its head
/// and tail around a "[... N bytes cut ...]" marker, cut on character boundaries
/// (src/backend/output.rs). The command backend bounds its captures already; the server
/// backends' texts (an error body, a stream's last line) are bounded only here.
pub(crate) fn bound_error(text: &str) -> String {
    bound_text(text, ERROR_TEXT_MAX)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Failure;
    use crate::engine::space::Config;
    use crate::trial::Origin;

    fn study() -> Study {
        crate::study::parse_study(
            std::path::Path::new("t.toml"),
            "[study]\nname = \"t\"\nmodel = \"gemma3:4b\"\n[backend]\nkind = \"simulator\"\n\
             [params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n",
        )
        .unwrap()
    }

    /// A 10 MB error (a server's error body, say, with multi-byte characters) is journaled cut
    /// to the cap, both ends kept, with a marker saying how much was cut.
    #[test]
    fn a_ten_megabyte_error_is_cut_to_the_cap_with_a_marker() {
        let message = format!("start {} end", "é".repeat(5_000_000));
        assert!(message.len() > 10_000_000);
        let eval = Evaluation {
            failure: Some(Failure {
                kind: FailureKind::Error,
                message,
            }),
            ..Default::default()
        };
        let trial = Trial {
            number: 0,
            config: Config::new(),
            origin: Origin::Initial,
            acquisition: None,
        };
        let rec = make_record(&study(), &trial, eval, now_rfc3339(), 1.0);
        let error = rec.error.unwrap();
        assert!(error.len() <= 4096, "{} bytes", error.len());
        assert!(
            error.starts_with("start é"),
            "{}",
            error.chars().take(20).collect::<String>()
        );
        assert!(error.ends_with("é end"));
        assert!(error.contains("bytes cut ...]"), "no marker");
        let short = bound_error("refused: out of memory");
        assert_eq!(short, "refused: out of memory");
    }
}
