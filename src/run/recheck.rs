//! `recheck RUN_DIR`: measure the recommendation and the baseline again now, in interleaved
//! rounds, and say whether the recorded gain still holds and whether the recommendation got
//! slower than it was recorded (a server upgrade that regressed it). The measurements go to
//! rechecks.jsonl (fsynced, journal first); the run's journal is left as it is.

use super::outage::{measure_with_grace, prepare, Measured, Prepared};
use super::record::{make_record, now_rfc3339};
use super::{RunError, RunOptions, Shutdown};
use crate::backend::{Backend, Fatal};
use crate::decided::decision_value;
use crate::engine::decision::{paired_effect, Effect};
use crate::engine::space::Config;
use crate::report::{bootstrap_diff_pct, Report};
use crate::store::{RunDir, RunLock};
use crate::study::{Direction, Study};
use crate::trial::{Origin, Trial};
use std::time::Instant;

/// What a recheck found.
#[derive(Debug)]
pub struct RecheckOutcome {
    pub rounds: usize,
    /// The recommendation is the baseline: only its level was rechecked.
    pub recommendation_is_baseline: bool,
    /// The gain the report recorded (the decision phase's interval when it ran).
    pub recorded_gain: Option<Effect>,
    /// The recommendation against the baseline in this recheck's paired rounds.
    pub gain_now: Option<Effect>,
    /// The recommendation now against its recorded measurements (percent, 95% interval).
    pub level_now: Option<(f64, f64, f64)>,
    /// The recommendation is now significantly worse than recorded (in the objective's direction).
    pub regressed: bool,
    /// Trials of this recheck that failed.
    pub failed: usize,
    pub objective_label: String,
}

/// The configurations a recheck compares, from the report: (recommendation, baseline).
fn arms(report: &Report) -> Result<(Config, Option<Config>), RunError> {
    let best = report.best.map(|i| report.rows[i].record.params.clone());
    let base = report
        .baseline
        .map(|i| report.rows[i].record.params.clone());
    match best {
        Some(b) => Ok((b, base)),
        None => Err(RunError::Refused(
            "the run has no feasible configuration to recheck; run or resume it first".into(),
        )),
    }
}

/// Measure `rounds` rounds of (recommendation, baseline), alternating their order.
pub async fn recheck(
    run: &RunDir,
    study: &Study,
    report: &Report,
    rounds: usize,
    mut backend: Box<dyn Backend>,
    mut shutdown: Shutdown,
) -> Result<RecheckOutcome, RunError> {
    let _lock = RunLock::acquire(run)?;
    let (rec_config, base_config) = arms(report)?;
    let is_base = base_config.as_ref() == Some(&rec_config);
    let opts = RunOptions::default();
    let interrupted = match prepare(
        backend.as_mut(),
        &study.space,
        opts.max_outage,
        &mut shutdown,
    )
    .await
    {
        Ok(Prepared::Ready(..)) => false,
        Ok(Prepared::Interrupted) => true,
        Ok(Prepared::Unreachable(f)) | Err(f) => {
            backend.shutdown().await;
            return Err(RunError::Fatal(f));
        }
    };
    // After the highest number read (not the count: a skipped line must not make two
    // measurements share a number).
    let start_number = run
        .read_rechecks()?
        .records
        .iter()
        .map(|r| r.trial + 1)
        .max()
        .unwrap_or(0);
    let mut number = start_number;
    let (mut rec_vals, mut base_vals) = (Vec::new(), Vec::new());
    let mut failed = 0;
    let mut outage = 0.0;
    let rounds = if interrupted { 0 } else { rounds };
    'rounds: for round in 0..rounds {
        let mut order: Vec<(bool, &Config)> = vec![(true, &rec_config)];
        if let Some(b) = base_config.as_ref().filter(|_| !is_base) {
            order.push((false, b));
        }
        if round % 2 == 1 {
            order.reverse();
        }
        let mut got: (Option<f64>, Option<f64>) = (None, None);
        for (is_rec, config) in order {
            let trial = Trial {
                number,
                config: config.clone(),
                origin: Origin::Decision,
                acquisition: None,
            };
            number += 1;
            let started_at = now_rfc3339();
            let t0 = Instant::now();
            let eval = match measure_with_grace(
                backend.as_mut(),
                &trial,
                &mut shutdown,
                &opts,
                &mut outage,
            )
            .await
            {
                Measured::Done(e) => e,
                Measured::Fatal(f) => {
                    backend.shutdown().await;
                    return Err(RunError::Fatal(f));
                }
                Measured::Outage(m) => {
                    backend.shutdown().await;
                    return Err(RunError::Fatal(Fatal::new(
                        format!("the backend stayed unreachable during the recheck: {m}"),
                        "start the server (or check backend.url) and run the recheck again",
                    )));
                }
                Measured::Abandoned => break 'rounds,
            };
            let mut rec = make_record(study, &trial, eval, started_at, t0.elapsed().as_secs_f64());
            rec.notes
                .insert("recheck_round".into(), serde_json::json!(round));
            run.append_recheck(&rec)?;
            let v = decision_value(&rec);
            if v.is_none() {
                failed += 1;
            }
            if is_rec {
                got.0 = v;
            } else {
                got.1 = v;
            }
        }
        // Only complete rounds are paired.
        match got {
            (Some(r), Some(b)) => {
                rec_vals.push(r);
                base_vals.push(b);
            }
            (Some(r), None) if is_base || base_config.is_none() => rec_vals.push(r),
            _ => {}
        }
    }
    backend.shutdown().await;
    let log_scale = crate::study::is_positive_metric(&study.objective.metric.metric);
    let gain_now = if is_base {
        None
    } else {
        paired_effect(&rec_vals, &base_vals, log_scale)
    };
    let recorded: Vec<f64> = recorded_values(run, &rec_config)?;
    let level_now = bootstrap_diff_pct(&rec_vals, &recorded, study.objective.metric.stat);
    let maximize = study.objective.direction == Direction::Maximize;
    let regressed = level_now.is_some_and(|(_, lo, hi)| if maximize { hi < 0.0 } else { lo > 0.0 });
    Ok(RecheckOutcome {
        rounds: rec_vals.len(),
        recommendation_is_baseline: is_base,
        recorded_gain: report.recorded_gain(),
        gain_now,
        level_now,
        regressed,
        failed,
        objective_label: study.objective.metric.label(),
    })
}

/// The recommendation's per-trial objective values in the run's journal.
fn recorded_values(run: &RunDir, config: &Config) -> Result<Vec<f64>, RunError> {
    Ok(run
        .read_journal()?
        .records
        .iter()
        .filter(|r| &r.params == config)
        .filter_map(decision_value)
        .collect())
}
