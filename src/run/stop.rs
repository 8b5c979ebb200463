//! A session that stops before its first trial: a stop signal while waiting for the backend,
//! or a backend that failed or stayed unreachable at the start. The stop still goes into
//! run.json, so every session that opened a run leaves a stop reason behind.

use super::offload;
use super::record::now_rfc3339;
use super::session::Session;
use super::{RunError, RunOutcome};
use crate::backend::{BackendInfo, Fatal};
use crate::store::{RunMeta, StopReason};
use crate::study::{BackendConfig, Study};
use crate::verdict::Standings;
use std::path::Path;
use tracing::info;

/// Write run.json with the stop of a session that measured nothing: the saved run.json of a
/// resumed run (its backend facts and space kept), or a new one for a new run.
pub(super) async fn record_stop_at_start(
    study: &Study,
    study_path: &Path,
    session: &mut Session,
    reason: StopReason,
    message: String,
) -> Result<RunMeta, RunError> {
    let mut meta = match session.saved_meta.take() {
        Some(mut m) => {
            m.budget = session.budget.clone();
            m.budget_overrides = Some(session.budget_overrides.clone());
            m
        }
        None => {
            let info = BackendInfo {
                backend: study.backend.kind().to_string(),
                simulated: matches!(study.backend, BackendConfig::Simulator { .. }),
                ..Default::default()
            };
            session.start_meta(study, study_path, &info, &study.space)
        }
    };
    let now = now_rfc3339();
    meta.stop_reason = Some(reason);
    meta.stop_message = Some(message);
    meta.finished_at = Some(now.clone());
    meta.updated_at = now;
    offload::write_meta(&session.run, &meta).await?;
    Ok(meta)
}

/// The backend failed (or stayed unreachable) before the first trial: the stop goes into
/// run.json and the failure comes back as the session's error.
pub(super) async fn at_start(
    study: &Study,
    study_path: &Path,
    session: &mut Session,
    reason: StopReason,
    fatal: Fatal,
) -> RunError {
    let message = format!("{} ({})", fatal.message, fatal.hint);
    match record_stop_at_start(study, study_path, session, reason, message).await {
        Ok(_) => RunError::Fatal(fatal),
        Err(e) => e,
    }
}

/// A stop signal came before the backend answered: nothing was measured in this session. The
/// stop goes into run.json (the report files stay as they were: nothing new to report) and the
/// session ends as interrupted.
pub(super) async fn stopped_at_start(
    study: &Study,
    study_path: &Path,
    session: &mut Session,
) -> Result<RunOutcome, RunError> {
    let message =
        "stopped by a signal before the backend answered; nothing was measured in this session"
            .to_string();
    info!(reason = "interrupted", message = %message, "run stopped");
    let meta = record_stop_at_start(
        study,
        study_path,
        session,
        StopReason::Interrupted,
        message.clone(),
    )
    .await?;
    let journal = session.run.read_journal()?;
    let standings = Standings::of(&meta.objective, &journal.records);
    let counts = standings.counts();
    Ok(RunOutcome {
        run_dir: session.run.path.clone(),
        stop: StopReason::Interrupted,
        stop_message: message,
        trials: counts.trials,
        counts,
        best: standings.leader(),
        baseline: standings.baseline(),
        simulated: meta.backend.simulated,
        objective_label: study.objective.metric.label(),
    })
}
