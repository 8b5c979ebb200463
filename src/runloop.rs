//! The run loop: ask -> measure through a backend -> journal -> tell, until a budget, a deadline
//! or a signal stops it. Journal first, then act: a finished trial is fsynced to trials.jsonl
//! before the optimizer hears of it, and the checkpoint names the trial in flight, so a run
//! killed at any point resumes without losing or repeating a finished trial.

use crate::backend::{Backend, BackendError, BackendInfo, Evaluation};
use crate::optimizer::{AskContext, Optimizer};
use crate::space::config_key;
use crate::stats::summarize;
use crate::store::{Checkpoint, RunDir, RunLock, RunMeta, StopReason, StoreError, STUDY_FILE};
use crate::study::{parse_study, ConfigError, Study};
use crate::trial::{FailureKind, Status, Trial, TrialRecord};
use chrono::{DateTime, Local, Utc};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{message}\nhint: {hint}")]
    Fatal { message: String, hint: String },
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
    pub best: Option<TrialRecord>,
    pub baseline: Option<TrialRecord>,
    pub simulated: bool,
    pub objective_label: String,
}

/// A stop signal: the number of SIGINT/SIGTERM received so far.
pub type Shutdown = watch::Receiver<u32>;

/// Fingerprint of what makes two studies the same experiment: search space and objective.
pub fn study_fingerprint(study: &Study) -> String {
    let text = serde_json::to_string(&(&study.space, &study.objective)).unwrap_or_default();
    // FNV-1a 64: stable across versions and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn default_run_id(study: &Study) -> String {
    let name: String = study
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{name}-{}", Local::now().format("%Y%m%d-%H%M%S"))
}

fn now_rfc3339() -> String {
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

/// Best feasible ok record by objective value.
pub fn best_record<'a>(study: &Study, records: &'a [TrialRecord]) -> Option<&'a TrialRecord> {
    let sign = match study.objective.direction {
        crate::study::Direction::Maximize => 1.0,
        crate::study::Direction::Minimize => -1.0,
    };
    records
        .iter()
        .filter(|r| r.is_ok() && r.feasible && r.objective.is_some())
        .max_by(|a, b| {
            (sign * a.objective.unwrap())
                .total_cmp(&(sign * b.objective.unwrap()))
                .then(b.trial.cmp(&a.trial))
        })
}

/// Load the study a run directory was started with (its frozen copy).
pub fn frozen_study(run: &RunDir) -> Result<(Study, String), RunError> {
    let path = run.file(STUDY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        RunError::Store(StoreError::Io {
            path: path.clone(),
            source: e,
        })
    })?;
    Ok((parse_study(&path, &text)?, text))
}

/// Regenerate the reports of a run; a failure is logged, never fatal to the run.
pub fn refresh_reports(run: &RunDir) {
    refresh_reports_with(run, true)
}

/// Regenerate the reports, with or without the GP-based parameter importance.
pub fn refresh_reports_with(run: &RunDir, with_importance: bool) {
    if let Err(e) = crate::report::write_all_with(run, with_importance) {
        warn!(error = %e, "could not write the report");
    }
}

struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(enabled: bool, total: usize, done: usize) -> Progress {
        // One factory that returns a hidden bar when output is not a terminal (hyperfine).
        let bar = if enabled && std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} trials  {msg}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_position(done as u64);
        Progress { bar }
    }
}

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
    let run_id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| default_run_id(&study));
    let run = RunDir::new(opts.state_dir.join(&run_id));
    let resuming = run.exists();
    run.create_dir()?;
    let _lock = RunLock::acquire(&run)?;

    if resuming {
        let (frozen, _) = frozen_study(&run)?;
        if study_fingerprint(&frozen) != study_fingerprint(&study) {
            if !opts.force {
                return Err(RunError::Refused(format!(
                    "the search space or objective of {} differs from the one run {} was started with; \
                     resume with the original file (`ollama-tuner resume {}`), pick a new --run-id, or pass --force to continue anyway",
                    study_path.display(),
                    run.path.display(),
                    run.path.display()
                )));
            }
            warn!("study changed since the run started; continuing because of --force");
            run.write_file(STUDY_FILE, study_text.as_bytes())?;
        }
    } else {
        run.write_file(STUDY_FILE, study_text.as_bytes())?;
    }
    let mut checkpoint = run.read_checkpoint()?;
    if let Some(c) = &checkpoint {
        if c.study_fingerprint != study_fingerprint(&study) && !opts.force {
            return Err(RunError::Refused(format!(
                "the checkpoint of {} belongs to a different study; pass --force to continue anyway",
                run.path.display()
            )));
        }
    }
    let fingerprint = study_fingerprint(&study);

    // Connect to the backend; an outage at start is waited out like one mid-run.
    let budget_trials = opts.trials.unwrap_or(study.budget.trials);
    let mut space = study.space.clone();
    let info: BackendInfo = {
        let t0 = Instant::now();
        let mut delay = Duration::from_secs(1);
        loop {
            let mut s = space.clone();
            match backend.prepare(&mut s).await {
                Ok(info) => {
                    space = s;
                    break info;
                }
                Err(BackendError::Fatal { message, hint }) => {
                    return Err(RunError::Fatal { message, hint })
                }
                Err(BackendError::Transient(m)) => {
                    if t0.elapsed() >= opts.max_outage {
                        return Err(RunError::Fatal {
                            message: format!("the backend stayed unreachable: {m}"),
                            hint: "start the server (or check backend.url) and run the same command again".into(),
                        });
                    }
                    warn!(error = %m, retry_in_s = delay.as_secs_f64(), "backend unavailable; waiting");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return Err(RunError::Fatal {
                            message: "interrupted before the backend answered".into(),
                            hint: "nothing was measured; start the run again when the server is up".into(),
                        }),
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
        }
    };
    info!(backend = %info.backend, version = ?info.server_version, "backend ready");

    // Rebuild the optimizer from the journal and the checkpoint.
    let mut optimizer = Optimizer::new(
        space.clone(),
        study.objective.clone(),
        study.optimizer.clone(),
        study.runner_params.clone(),
        study.seed,
    );
    let journal = run.read_journal()?;
    for (line, reason) in &journal.skipped {
        warn!(line, reason = %reason, "skipping an unreadable journal line (a write cut short by a crash or power loss)");
    }
    let mut records = journal.records;
    let mut done_numbers: BTreeSet<usize> = BTreeSet::new();
    records.retain(|r| done_numbers.insert(r.trial));
    for r in &records {
        optimizer.tell_record(r);
    }
    let mut pending: Option<Trial> = None;
    if let Some(c) = checkpoint.take() {
        optimizer.restore(c.optimizer);
        pending = c.pending.filter(|p| !done_numbers.contains(&p.number));
    }
    if resuming {
        info!(
            trials = records.len(),
            pending = pending.is_some(),
            "resuming run"
        );
    }

    let started = Instant::now();
    let mut meta = match run.read_meta()? {
        Some(m) => m,
        None => RunMeta {
            run_id: run_id.clone(),
            study_name: study.name.clone(),
            model: study.model.clone(),
            seed: study.seed,
            study_file: study_path.display().to_string(),
            backend: info.clone(),
            space: space.clone(),
            objective: study.objective.clone(),
            budget: study.budget.clone(),
            protocol: study.protocol.clone(),
            runner_params: study.runner_params.clone(),
            tuner_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: now_rfc3339(),
            updated_at: now_rfc3339(),
            finished_at: None,
            stop_reason: None,
            stop_message: None,
            reloads: 0,
            reload_seconds: 0.0,
            outage_seconds: 0.0,
            elapsed_seconds: 0.0,
        },
    };
    meta.backend = info.clone();
    meta.space = space.clone();
    meta.objective = study.objective.clone();
    meta.budget.trials = budget_trials;
    if let Some(t) = opts.time_budget {
        meta.budget.wall_time = Some(t);
    }
    meta.finished_at = None;
    meta.stop_reason = None;
    meta.stop_message = None;
    let elapsed_before = meta.elapsed_seconds;
    let reloads_before = (meta.reloads, meta.reload_seconds);
    run.write_meta(&meta)?;
    refresh_reports(&run);

    let wall_budget = meta.budget.wall_time;
    let progress = Progress::new(opts.progress, budget_trials, records.len());
    let mut consecutive_failures = records.iter().rev().take_while(|r| !r.is_ok()).count();
    let measured_keys: BTreeSet<String> = records.iter().map(|r| config_key(&r.params)).collect();
    let mut measured_keys = measured_keys;

    let (stop, stop_message) = loop {
        let elapsed_total = elapsed_before + started.elapsed().as_secs_f64();
        meta.elapsed_seconds = elapsed_total;
        if *shutdown.borrow() > 0 {
            break (StopReason::Interrupted, "stopped by a signal".to_string());
        }
        if records.len() >= budget_trials {
            break (StopReason::Budget, format!("{budget_trials} trials done"));
        }
        if let Some(w) = wall_budget {
            if elapsed_total >= w.as_secs_f64() {
                break (
                    StopReason::WallTime,
                    format!("wall-time budget of {} used", humantime::format_duration(w)),
                );
            }
        }
        if let Some(u) = opts.until {
            if Local::now() >= u {
                break (
                    StopReason::Deadline,
                    format!("deadline {} reached", u.format("%Y-%m-%d %H:%M")),
                );
            }
        }
        if consecutive_failures >= study.budget.max_consecutive_failures {
            break (
                StopReason::TooManyFailures,
                format!("{consecutive_failures} trials in a row failed (budget.max_consecutive_failures); see the errors in the report"),
            );
        }

        let t_ask = Instant::now();
        let trial = match pending.take() {
            Some(t) => t,
            None => {
                let ctx = AskContext {
                    loaded_runner: backend.loaded_runner(),
                };
                optimizer.ask(&ctx)
            }
        };
        let ask_s = t_ask.elapsed().as_secs_f64();
        if !study.optimizer.allow_repeats
            && trial.origin != crate::trial::Origin::Confirm
            && measured_keys.contains(&config_key(&trial.config))
        {
            break (
                StopReason::Converged,
                "every configuration of the search space has been measured".to_string(),
            );
        }
        run.write_checkpoint(&Checkpoint {
            optimizer: optimizer.state().clone(),
            pending: Some(trial.clone()),
            trials_done: records.len(),
            loaded_runner: backend.loaded_runner(),
            study_fingerprint: fingerprint.clone(),
        })?;
        info!(trial = trial.number, origin = ?trial.origin, config = %config_key(&trial.config), "measuring");

        let started_at = now_rfc3339();
        let t0 = Instant::now();
        let outage0 = meta.outage_seconds;
        let eval = match measure_with_grace(
            &mut backend,
            &trial,
            &mut shutdown,
            &opts,
            &mut meta.outage_seconds,
        )
        .await
        {
            Measured::Done(e) => e,
            Measured::Fatal(message, hint) => {
                meta.stop_reason = Some(StopReason::Fatal);
                meta.stop_message = Some(format!("{message} ({hint})"));
                meta.finished_at = Some(now_rfc3339());
                run.write_meta(&meta)?;
                refresh_reports(&run);
                backend.shutdown().await;
                return Err(RunError::Fatal { message, hint });
            }
            Measured::Outage(m) => {
                break (
                    StopReason::TooManyFailures,
                    format!("the backend stayed unreachable: {m}"),
                )
            }
            Measured::Abandoned => {
                break (
                    StopReason::Interrupted,
                    "stopped by a signal; the trial in flight will be measured again on resume"
                        .to_string(),
                )
            }
        };
        // Outage time is not the configuration's: leave it out of the trial's duration.
        let duration = (t0.elapsed().as_secs_f64() - (meta.outage_seconds - outage0)).max(0.0);
        let mut rec = make_record(&study, &trial, eval, started_at, duration);
        rec.notes.insert("ask_s".into(), serde_json::json!(ask_s));

        // Journal first, then act.
        run.append_trial(&rec)?;
        optimizer.tell_record(&rec);
        measured_keys.insert(config_key(&rec.params));
        if rec.is_ok() {
            consecutive_failures = 0;
        } else {
            consecutive_failures += 1;
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
        records.push(rec);
        run.write_checkpoint(&Checkpoint {
            optimizer: optimizer.state().clone(),
            pending: None,
            trials_done: records.len(),
            loaded_runner: backend.loaded_runner(),
            study_fingerprint: fingerprint.clone(),
        })?;
        let counters = backend.counters();
        meta.reloads = reloads_before.0 + counters.get("reloads").copied().unwrap_or(0.0) as u64;
        meta.reload_seconds =
            reloads_before.1 + counters.get("reload_seconds").copied().unwrap_or(0.0);
        meta.updated_at = now_rfc3339();
        meta.elapsed_seconds = elapsed_before + started.elapsed().as_secs_f64();
        run.write_meta(&meta)?;
        // Importance refits a GP: after every trial while runs are short, every 25th later.
        refresh_reports_with(&run, records.len() <= 100 || records.len() % 25 == 0);
        progress.bar.set_position(records.len() as u64);
        if let Some(b) = best_record(&study, &records) {
            progress.bar.set_message(format!(
                "best {} = {:.4}",
                study.objective.metric.label(),
                b.objective.unwrap_or(f64::NAN)
            ));
        }
    };
    progress.bar.finish_and_clear();
    backend.shutdown().await;

    info!(reason = stop.as_str(), message = %stop_message, "run stopped");
    meta.stop_reason = Some(stop.clone());
    meta.stop_message = Some(stop_message.clone());
    meta.finished_at = Some(now_rfc3339());
    meta.updated_at = now_rfc3339();
    meta.elapsed_seconds = elapsed_before + started.elapsed().as_secs_f64();
    run.write_meta(&meta)?;
    refresh_reports(&run);
    if let Some(dir) = &opts.reports_dir {
        // The whole report set, so the Markdown's relative links to the plots keep working.
        let dest = dir.join(&run_id);
        if std::fs::create_dir_all(&dest).is_ok() {
            for name in [
                "report.md",
                "report.json",
                "trials.csv",
                "convergence.svg",
                "pareto.svg",
            ] {
                if let Ok(bytes) = std::fs::read(run.file(name)) {
                    let _ = crate::store::write_atomic(&dest.join(name), &bytes);
                }
            }
        }
    }
    let best = best_record(&study, &records).cloned();
    let baseline = records
        .iter()
        .find(|r| r.origin == crate::trial::Origin::Baseline)
        .cloned();
    Ok(RunOutcome {
        run_dir: run.path.clone(),
        stop,
        stop_message,
        trials: records.len(),
        best,
        baseline,
        simulated: info.simulated,
        objective_label: study.objective.metric.label(),
    })
}

enum Measured {
    Done(Evaluation),
    Fatal(String, String),
    Outage(String),
    Abandoned,
}

/// Measure a trial, retrying outages; after a stop signal the measurement may finish within
/// the grace period, else it is abandoned (and measured again on resume).
async fn measure_with_grace(
    backend: &mut Box<dyn Backend>,
    trial: &Trial,
    shutdown: &mut Shutdown,
    opts: &RunOptions,
    outage_seconds: &mut f64,
) -> Measured {
    let t_outage = Instant::now();
    let mut delay = Duration::from_secs(1);
    let mut signalled = *shutdown.borrow() > 0;
    let deadline = tokio::time::Instant::now() + opts.grace;
    loop {
        let attempt = backend.evaluate(&trial.config);
        tokio::pin!(attempt);
        let result = loop {
            tokio::select! {
                r = &mut attempt => break Some(r),
                _ = shutdown.changed(), if !signalled => {
                    signalled = true;
                    info!(grace_s = opts.grace.as_secs_f64(), "stop requested; letting the trial in flight finish");
                }
                _ = tokio::time::sleep_until(deadline), if signalled => break None,
            }
        };
        let Some(result) = result else {
            return Measured::Abandoned;
        };
        match result {
            Ok(e) => return Measured::Done(e),
            Err(BackendError::Fatal { message, hint }) => return Measured::Fatal(message, hint),
            Err(BackendError::Transient(m)) => {
                if signalled {
                    return Measured::Abandoned;
                }
                if t_outage.elapsed() >= opts.max_outage {
                    return Measured::Outage(m);
                }
                warn!(error = %m, retry_in_s = delay.as_secs_f64(), trial = trial.number, "backend unavailable; the trial will be retried");
                let t = Instant::now();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return Measured::Abandoned,
                }
                *outage_seconds += t.elapsed().as_secs_f64();
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
}
