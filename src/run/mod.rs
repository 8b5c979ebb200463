//! The run loop: ask -> measure through a backend -> journal -> tell, until a budget, a deadline
//! or a signal stops it. Journal first, then act: a finished trial is fsynced to trials.jsonl
//! before the optimizer hears of it, and the checkpoint names the trial in flight, so a run
//! killed at any point resumes without losing or repeating a finished trial.
//!
//! Files: `session.rs` opens or resumes a run (lock, checks, budget, replay of the journal);
//! `outage.rs` waits out an unreachable backend; `trials.rs` is the loop and the end of a
//! session; `offload.rs` moves its blocking work off the async workers; `record.rs` builds
//! the journal record of a trial; `tally.rs` counts the journal and keeps its standings (src/verdict.rs); `reports.rs` schedules the
//! report files; `stop.rs` records the stop of a session that ends before its first trial.
//!
//! Stop signals (their count is `Shutdown`): after the first, no new trial starts and the one in
//! flight may finish within `--grace`, counted from the signal; a second abandons it at once
//! and skips the report still being written. Either way run.json gets its stop reason before
//! the session ends.

mod decision;
mod offload;
mod outage;
mod recheck;
mod record;
mod reports;
mod session;
mod stop;
mod tally;
mod trials;

pub use recheck::{recheck, RecheckOutcome};
pub use record::make_record;
pub use session::{default_run_id, effective_budget, frozen_study, study_fingerprint};

use crate::backend::{Backend, Fatal};
use crate::store::{crash, StopReason, StoreError};
use crate::study::{ConfigError, Study};
use crate::verdict::{Standing, TrialCounts};
use chrono::{DateTime, Local};
use outage::Prepared;
use reports::ReportSchedule;
use session::Session;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::info;
use trials::{Books, Context};

/// How a run is started or continued (the CLI's flags, validated).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    pub run_id: Option<String>,
    /// Total trials of the run (overrides budget.trials).
    pub trials: Option<usize>,
    pub seed: Option<u64>,
    /// Wall-time budget over the whole run, resumes included (overrides budget.wall_time).
    pub time_budget: Option<Duration>,
    /// Stop asking for trials after this moment.
    pub until: Option<DateTime<Local>>,
    /// Resume even though the study changed.
    pub force: bool,
    /// How long an in-flight measurement may finish after a stop signal.
    pub grace: Duration,
    /// Longest continuous outage waited out before giving up.
    pub max_outage: Duration,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
    /// Where the final report is copied when the run ends (reports/).
    pub reports_dir: Option<PathBuf>,
    /// `decide --trials N`: start a decision phase of N trials at once (beyond the budget).
    pub decide: Option<usize>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            state_dir: PathBuf::from("state"),
            run_id: None,
            trials: None,
            seed: None,
            time_budget: None,
            until: None,
            force: false,
            grace: Duration::from_secs(60),
            max_outage: Duration::from_secs(30 * 60),
            progress: true,
            reports_dir: None,
            decide: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fatal(#[from] Fatal),
    #[error("{0}")]
    Refused(String),
}

/// What a finished (or stopped) run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub stop: StopReason,
    pub stop_message: String,
    pub trials: usize,
    /// How the trials divide up (configurations, re-measurements, failures), as everywhere.
    pub counts: TrialCounts,
    /// The best configuration (src/verdict.rs, the rule the report's rank 1 follows): its
    /// first trial, the trials pooled into it and the objective over all its measurements.
    pub best: Option<Standing>,
    /// The baseline configuration, pooled the same way.
    pub baseline: Option<Standing>,
    pub simulated: bool,
    pub objective_label: String,
}

/// A stop signal: the number of SIGINT/SIGTERM received so far.
pub type Shutdown = watch::Receiver<u32>;

/// Run (or continue) a study to the end of its budget.
pub async fn run(
    mut study: Study,
    study_text: &str,
    study_path: &Path,
    opts: RunOptions,
    mut backend: Box<dyn Backend>,
    mut shutdown: Shutdown,
) -> Result<RunOutcome, RunError> {
    if let Some(seed) = opts.seed {
        study.seed = seed;
    }
    let mut session = Session::open(&study, study_text, study_path, &opts)?;
    crash::point("session-open");
    let prepared = outage::prepare(
        backend.as_mut(),
        &study.space,
        opts.max_outage,
        &mut shutdown,
    )
    .await;
    let (space, info) = match prepared {
        Ok(Prepared::Ready(space, info)) => (space, info),
        Ok(Prepared::Interrupted) => {
            backend.shutdown().await;
            return stop::stopped_at_start(&study, study_path, &mut session).await;
        }
        Ok(Prepared::Unreachable(fatal)) => {
            backend.shutdown().await;
            return Err(stop::at_start(
                &study,
                study_path,
                &mut session,
                StopReason::Outage,
                fatal,
            )
            .await);
        }
        Err(fatal) => {
            backend.shutdown().await;
            return Err(
                stop::at_start(&study, study_path, &mut session, StopReason::Fatal, fatal).await,
            );
        }
    };
    info!(backend = %info.backend, version = ?info.server_version, "backend ready");
    let (mut optimizer, tally, pending, phase) = session.replay(&study, &space)?;
    crash::point("after-replay");
    // Proposals are asked as the server will run them (engine/optimizer/effective.rs).
    optimizer.set_runs_as(backend.runs_as());
    let mut decider = decision::Decider::new(phase, opts.decide);

    let started = Instant::now();
    let meta = session.start_meta(&study, study_path, &info, &space);
    let cx = Context {
        study: &study,
        opts: &opts,
        run: &session.run,
        fingerprint: &session.fingerprint,
        started,
        elapsed_before: meta.elapsed_seconds,
        reloads_before: (meta.reloads, meta.reload_seconds),
    };
    let mut books = Books {
        meta,
        tally,
        reports: ReportSchedule::default(),
    };
    books.begin(&cx).await?;
    crash::point("after-begin");
    let (stop, stop_message) = trials::run_trials(
        &cx,
        &mut books,
        optimizer,
        pending,
        &mut decider,
        backend.as_mut(),
        &mut shutdown,
    )
    .await?;
    backend.shutdown().await;
    crash::point("before-finish");
    books
        .finish(&cx, &stop, &stop_message, &mut shutdown)
        .await?;
    crash::point("after-finish");

    let run = &session.run;
    if let Some(dir) = &opts.reports_dir {
        reports::copy_report_set(run, dir, &session.run_id);
    }
    let standings = &books.tally.standings;
    Ok(RunOutcome {
        run_dir: run.path.clone(),
        stop,
        stop_message,
        trials: books.tally.done,
        counts: standings.counts(),
        best: standings.leader(),
        baseline: standings.baseline(),
        simulated: info.simulated,
        objective_label: study.objective.metric.label(),
    })
}
