//! The run loop: ask -> measure through a backend -> journal -> tell, until a budget, a deadline
//! or a signal stops it. Journal first, then act: a finished trial is fsynced to trials.jsonl
//! before the optimizer hears of it, and the checkpoint names the trial in flight, so a run
//! killed at any point resumes without losing or repeating a finished trial.

use crate::backend::{Backend, BackendError, BackendInfo, Evaluation};
use crate::engine::optimizer::{AskContext, Optimizer};
use crate::engine::space::config_key;
use crate::engine::stats::summarize;
use crate::store::{
    BudgetOverrides, Checkpoint, RunDir, RunLock, RunMeta, RunProgress, StopReason, StoreError,
    STUDY_FILE,
};
use crate::study::{parse_study, Budget, ConfigError, Study};
use crate::trial::{tell_record, FailureKind, Origin, Status, Trial, TrialRecord};
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
    /// The report's rank 1: its first trial, with the objective over all its measurements.
    pub best: Option<TrialRecord>,
    /// Later trials that measured the best configuration again (pooled into `best`).
    pub best_also: Vec<usize>,
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

/// The objective of a feasible ok record, signed so that larger is better.
fn signed_objective(study: &Study, r: &TrialRecord) -> Option<f64> {
    let sign = match study.objective.direction {
        crate::study::Direction::Maximize => 1.0,
        crate::study::Direction::Minimize => -1.0,
    };
    r.objective
        .filter(|_| r.is_ok() && r.feasible)
        .map(|v| sign * v)
}

/// Whether `r` would be the best record instead of `best`.
fn ranks_above(study: &Study, r: &TrialRecord, best: Option<&TrialRecord>) -> bool {
    let Some(v) = signed_objective(study, r) else {
        return false;
    };
    match best.and_then(|b| signed_objective(study, b).map(|bv| (bv, b.trial))) {
        None => true,
        Some((bv, bt)) => v.total_cmp(&bv).then(bt.cmp(&r.trial)).is_gt(),
    }
}

/// What the run loop keeps of the journal: counts and the two records it reports on (best and
/// baseline). Not every record: with its samples and notes one takes about 3 KiB in memory,
/// and keeping them all made the daemon grow by ~6 MiB over a 2,000-trial run. The journal on
/// disk stays the record of everything measured.
#[derive(Debug, Default)]
struct Tally {
    done: usize,
    failed: usize,
    consecutive_failures: usize,
    best: Option<TrialRecord>,
    baseline: Option<TrialRecord>,
}

impl Tally {
    /// Count a journaled trial (in journal order, each trial number once).
    fn add(&mut self, study: &Study, rec: TrialRecord) {
        self.done += 1;
        if rec.is_ok() {
            self.consecutive_failures = 0;
        } else {
            self.failed += 1;
            self.consecutive_failures += 1;
        }
        if rec.origin == Origin::Baseline && self.baseline.is_none() {
            self.baseline = Some(rec.clone());
        }
        if ranks_above(study, &rec, self.best.as_ref()) {
            self.best = Some(rec);
        }
    }

    fn progress(&self, report_trials: usize) -> RunProgress {
        RunProgress {
            trials_done: self.done,
            trials_failed: self.failed,
            best_trial: self.best.as_ref().map(|b| b.trial),
            best_objective: self.best.as_ref().and_then(|b| b.objective),
            report_trials,
        }
    }
}

/// Log a journaled trial's outcome.
fn log_trial(rec: &TrialRecord) {
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

/// Share of the run's wall time that regenerating the full report set may take.
const REPORT_TIME_SHARE: f64 = 0.05;
/// Past this many trials, parameter importance (a GP fit) is recomputed every
/// `IMPORTANCE_EVERY` trials rather than in every report.
const IMPORTANCE_ALWAYS_UNTIL: usize = 100;
const IMPORTANCE_EVERY: usize = 25;

/// When the run loop regenerates the full report set. A full report re-reads and re-renders
/// the whole journal: time, memory and disk writes grow with the run. It is redone after a
/// trial only when the time since the last one is at least 19 times what the last one took
/// (at most `REPORT_TIME_SHARE` of the run): after every trial whenever trials take seconds, as
/// on any real server, and every few seconds on the simulator's millisecond trials. The start
/// of a session, its end and a stop by signal or error always write it; run.json's `progress`
/// is rewritten after every trial and says how many trials the report files cover.
#[derive(Debug, Default)]
struct ReportSchedule {
    /// End of the last full report and how long it took.
    last: Option<(Instant, Duration)>,
    /// Trials covered by the report files.
    covered: usize,
    /// Trials covered by the last report with parameter importance.
    importance_at: Option<usize>,
}

impl ReportSchedule {
    fn due(&self, now: Instant) -> bool {
        match self.last {
            None => true,
            Some((at, took)) => {
                now.duration_since(at).as_secs_f64() * REPORT_TIME_SHARE
                    >= took.as_secs_f64() * (1.0 - REPORT_TIME_SHARE)
            }
        }
    }

    fn wants_importance(&self, done: usize) -> bool {
        done <= IMPORTANCE_ALWAYS_UNTIL
            || self
                .importance_at
                .is_none_or(|at| done >= at + IMPORTANCE_EVERY)
    }

    /// Write the full report set for `done` trials; a failure is logged, never fatal to the
    /// run. Returns whether the files were written.
    ///
    /// The report is built on a blocking-pool thread: besides not stalling the runtime, its
    /// allocations (the whole parsed journal) then come from that thread's malloc arena, apart
    /// from the run loop's long-lived data, so freeing them leaves whole free pages that
    /// `release_free_memory` can hand back, rather than holes between the optimizer's records.
    async fn refresh(&mut self, run: &RunDir, done: usize, with_importance: bool) -> bool {
        let t0 = Instant::now();
        let dir = run.clone();
        let written = tokio::task::spawn_blocking(move || {
            let written = crate::report::write_all_with(&dir, with_importance)
                .map(|_| ())
                .map_err(|e| e.to_string());
            release_free_memory();
            written
        })
        .await
        .unwrap_or_else(|e| Err(format!("the report task failed: {e}")));
        let now = Instant::now();
        self.last = Some((now, now - t0));
        match written {
            Ok(_) => {
                self.covered = done;
                if with_importance {
                    self.importance_at = Some(done);
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "could not write the report");
                false
            }
        }
    }
}

/// Give the heap's free pages back to the system after a full report. The report parses the
/// whole journal (about 3 KiB per trial) and frees it at once; glibc keeps freed memory mapped
/// whenever a small allocation made meanwhile sits above it, so without this the daemon's
/// resident memory ratcheted up with the journal's size (measured in BENCHMARKS.md, section 4).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only returns unused pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// The budget of this session and the overrides to keep in run.json: a flag on this command
/// line wins, then a flag kept from an earlier command line of the run, then the study's
/// `[budget]`. A resume thus keeps the `--trials` / `--time-budget` the run was started with.
pub fn effective_budget(
    study: &Budget,
    saved: Option<&RunMeta>,
    opts: &RunOptions,
) -> (Budget, BudgetOverrides) {
    let kept = saved
        .map(|m| {
            m.budget_overrides
                .clone()
                .unwrap_or_else(|| legacy_overrides(&m.budget, study))
        })
        .unwrap_or_default();
    let overrides = BudgetOverrides {
        trials: opts.trials.or(kept.trials),
        wall_time_s: opts
            .time_budget
            .map(|d| d.as_secs_f64())
            .or(kept.wall_time_s),
    };
    let mut budget = study.clone();
    if let Some(t) = overrides.trials {
        budget.trials = t;
    }
    if let Some(s) = overrides.wall_time_s.filter(|s| s.is_finite() && *s >= 0.0) {
        budget.wall_time = Some(Duration::from_secs_f64(s));
    }
    (budget, overrides)
}

/// A run.json written before the overrides were kept holds the budget its last session ran
/// with; where that differs from the study, it came from a flag.
fn legacy_overrides(ran: &Budget, study: &Budget) -> BudgetOverrides {
    BudgetOverrides {
        trials: (ran.trials != study.trials).then_some(ran.trials),
        wall_time_s: ran
            .wall_time
            .filter(|_| ran.wall_time != study.wall_time)
            .map(|d| d.as_secs_f64()),
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

    let saved_meta = run.read_meta()?;
    let (budget, budget_overrides) = effective_budget(&study.budget, saved_meta.as_ref(), &opts);
    let budget_trials = budget.trials;

    // Connect to the backend; an outage at start is waited out like one mid-run.
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
        crate::study::is_positive_metric,
        study.optimizer.clone(),
        study.runner_params.clone(),
        study.seed,
    );
    // One pass over the journal: tell the optimizer, keep the tally, drop the record.
    let mut tally = Tally::default();
    let mut done_numbers: BTreeSet<usize> = BTreeSet::new();
    let skipped = run.scan_journal(|r| {
        if done_numbers.insert(r.trial) {
            tell_record(&mut optimizer, &r);
            tally.add(&study, r);
        }
    })?;
    for (line, reason) in &skipped {
        warn!(line, reason = %reason, "skipping an unreadable journal line (a write cut short by a crash or power loss)");
    }
    let mut pending: Option<Trial> = None;
    if let Some(c) = checkpoint.take() {
        optimizer.restore(c.optimizer);
        pending = c.pending.filter(|p| !done_numbers.contains(&p.number));
    }
    drop(done_numbers);
    if resuming {
        info!(
            trials = tally.done,
            pending = pending.is_some(),
            "resuming run"
        );
    }

    let started = Instant::now();
    let mut meta = match saved_meta {
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
            budget_overrides: None,
            progress: None,
        },
    };
    meta.backend = info.clone();
    meta.space = space.clone();
    meta.objective = study.objective.clone();
    meta.budget = budget;
    meta.budget_overrides = Some(budget_overrides);
    meta.finished_at = None;
    meta.stop_reason = None;
    meta.stop_message = None;
    let elapsed_before = meta.elapsed_seconds;
    let reloads_before = (meta.reloads, meta.reload_seconds);
    meta.progress = Some(tally.progress(tally.done));
    run.write_meta(&meta)?;
    let mut reports = ReportSchedule::default();
    reports.refresh(&run, tally.done, true).await;

    let wall_budget = meta.budget.wall_time;
    let progress = Progress::new(opts.progress, budget_trials, tally.done);

    let (stop, stop_message) = loop {
        let elapsed_total = elapsed_before + started.elapsed().as_secs_f64();
        meta.elapsed_seconds = elapsed_total;
        if *shutdown.borrow() > 0 {
            break (StopReason::Interrupted, "stopped by a signal".to_string());
        }
        if tally.done >= budget_trials {
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
        if tally.consecutive_failures >= study.budget.max_consecutive_failures {
            break (
                StopReason::TooManyFailures,
                format!("{} trials in a row failed (budget.max_consecutive_failures); see the errors in the report", tally.consecutive_failures),
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
            && optimizer.was_measured(&trial.config)
        {
            break (
                StopReason::Converged,
                "every configuration of the search space has been measured".to_string(),
            );
        }
        run.write_checkpoint(&Checkpoint {
            optimizer: optimizer.state().clone(),
            pending: Some(trial.clone()),
            trials_done: tally.done,
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
                reports.refresh(&run, tally.done, true).await;
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
        tell_record(&mut optimizer, &rec);
        log_trial(&rec);
        tally.add(&study, rec);
        run.write_checkpoint(&Checkpoint {
            optimizer: optimizer.state().clone(),
            pending: None,
            trials_done: tally.done,
            loaded_runner: backend.loaded_runner(),
            study_fingerprint: fingerprint.clone(),
        })?;
        let counters = backend.counters();
        meta.reloads = reloads_before.0 + counters.get("reloads").copied().unwrap_or(0.0) as u64;
        meta.reload_seconds =
            reloads_before.1 + counters.get("reload_seconds").copied().unwrap_or(0.0);
        meta.updated_at = now_rfc3339();
        meta.elapsed_seconds = elapsed_before + started.elapsed().as_secs_f64();
        let full_report = reports.due(Instant::now());
        let covered = if full_report {
            tally.done
        } else {
            reports.covered
        };
        meta.progress = Some(tally.progress(covered));
        run.write_meta(&meta)?;
        let importance = reports.wants_importance(tally.done);
        if full_report && !reports.refresh(&run, tally.done, importance).await {
            // Say truthfully how far the report files lag.
            meta.progress = Some(tally.progress(reports.covered));
            run.write_meta(&meta)?;
        }
        progress.bar.set_position(tally.done as u64);
        if let Some(b) = &tally.best {
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
    meta.progress = Some(tally.progress(tally.done));
    run.write_meta(&meta)?;
    reports.refresh(&run, tally.done, true).await;
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
    let (best, best_also) = pooled_best(&run, tally.best);
    Ok(RunOutcome {
        run_dir: run.path.clone(),
        stop,
        stop_message,
        trials: tally.done,
        best,
        best_also,
        baseline: tally.baseline,
        simulated: info.simulated,
        objective_label: study.objective.metric.label(),
    })
}

/// The best configuration as the report ranks it (re-measurements pooled), falling back to
/// the best single trial when the report cannot be built.
/// The ranking alone: no parameter importance, which would fit a GP again.
fn pooled_best(run: &RunDir, single: Option<TrialRecord>) -> (Option<TrialRecord>, Vec<usize>) {
    let ranked = crate::report::load(run)
        .map(|(meta, journal)| crate::report::analyse_journal(meta, journal, false));
    match ranked {
        Ok(report) => match report.best_row() {
            Some(row) => {
                let mut rec = row.record.clone();
                rec.objective = row.objective;
                (Some(rec), row.also.clone())
            }
            None => (None, vec![]),
        },
        Err(e) => {
            warn!(error = %e, "could not rank the trials; reporting the best single trial");
            (single, vec![])
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::parse_study;

    fn study(trials: usize, wall_time: Option<&str>) -> Study {
        let wall = wall_time
            .map(|w| format!("wall_time = \"{w}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "[study]\nname = \"t\"\nmodel = \"m\"\n[backend]\nkind = \"simulator\"\n\
             [budget]\ntrials = {trials}\n{wall}[params.num_ctx]\ntype = \"int\"\nlow = 512\nhigh = 4096\n"
        );
        parse_study(Path::new("t.toml"), &text).unwrap()
    }

    fn meta_with(budget: Budget, overrides: Option<BudgetOverrides>) -> RunMeta {
        let s = study(1, None);
        RunMeta {
            run_id: "r".into(),
            study_name: s.name.clone(),
            model: s.model.clone(),
            seed: 0,
            study_file: "t.toml".into(),
            backend: BackendInfo::default(),
            space: s.space.clone(),
            objective: s.objective.clone(),
            budget,
            protocol: s.protocol.clone(),
            runner_params: vec![],
            tuner_version: "0".into(),
            started_at: String::new(),
            updated_at: String::new(),
            finished_at: None,
            stop_reason: None,
            stop_message: None,
            reloads: 0,
            reload_seconds: 0.0,
            outage_seconds: 0.0,
            elapsed_seconds: 0.0,
            budget_overrides: overrides,
            progress: None,
        }
    }

    #[test]
    fn budget_flags_are_kept_until_given_again() {
        let s = study(50, Some("1h"));
        let first = RunOptions {
            trials: Some(10),
            ..RunOptions::default()
        };
        let (b, kept) = effective_budget(&s.budget, None, &first);
        assert_eq!(
            (b.trials, b.wall_time),
            (10, Some(Duration::from_secs(3600)))
        );
        let saved = meta_with(b, Some(kept));
        // Resume without flags: the run's 10 trials, not the study's 50.
        let (b, _) = effective_budget(&s.budget, Some(&saved), &RunOptions::default());
        assert_eq!(b.trials, 10);
        // A flag on the resume wins.
        let again = RunOptions {
            trials: Some(20),
            time_budget: Some(Duration::from_secs(60)),
            ..RunOptions::default()
        };
        let (b, kept) = effective_budget(&s.budget, Some(&saved), &again);
        assert_eq!((b.trials, b.wall_time), (20, Some(Duration::from_secs(60))));
        assert_eq!(kept.wall_time_s, Some(60.0));
    }

    #[test]
    fn an_old_run_json_keeps_the_budget_it_ran_with() {
        let s = study(50, None);
        let mut ran = s.budget.clone();
        ran.trials = 10;
        ran.wall_time = Some(Duration::from_secs(600));
        let old = meta_with(ran, None);
        let (b, kept) = effective_budget(&s.budget, Some(&old), &RunOptions::default());
        assert_eq!(
            (b.trials, b.wall_time),
            (10, Some(Duration::from_secs(600)))
        );
        assert_eq!(kept.trials, Some(10));
        // Nothing differs from the study: nothing was a flag.
        let plain = meta_with(s.budget.clone(), None);
        let (_, kept) = effective_budget(&s.budget, Some(&plain), &RunOptions::default());
        assert_eq!(kept, BudgetOverrides::default());
    }

    #[test]
    fn a_run_json_without_the_new_fields_still_reads() {
        let mut v = serde_json::to_value(meta_with(study(5, None).budget, None)).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("budget_overrides");
        o.remove("progress");
        let m: RunMeta = serde_json::from_value(v).unwrap();
        assert_eq!((m.budget_overrides, m.progress), (None, None));
    }

    fn rec(trial: usize, objective: Option<f64>, ok: bool, origin: Origin) -> TrialRecord {
        TrialRecord {
            trial,
            origin,
            params: Default::default(),
            status: if ok { Status::Ok } else { Status::Failed },
            objective,
            feasible: ok,
            metrics: Default::default(),
            samples: vec![],
            failure: None,
            error: None,
            load: None,
            notes: Default::default(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_s: 0.0,
            acquisition: None,
        }
    }

    #[test]
    fn the_tally_agrees_with_the_records() {
        let s = study(5, None);
        let records = vec![
            rec(0, Some(2.0), true, Origin::Baseline),
            rec(1, Some(5.0), true, Origin::Initial),
            rec(2, Some(5.0), true, Origin::Model),
            rec(3, None, false, Origin::Model),
            rec(4, None, false, Origin::Model),
        ];
        let mut t = Tally::default();
        for r in &records {
            t.add(&s, r.clone());
        }
        assert_eq!((t.done, t.failed, t.consecutive_failures), (5, 2, 2));
        assert_eq!(t.baseline.as_ref().map(|b| b.trial), Some(0));
        // Equal objectives: the earlier trial.
        assert_eq!(t.best.as_ref().map(|b| b.trial), Some(1));
        t.add(&s, rec(5, Some(1.0), true, Origin::Model));
        assert_eq!(t.consecutive_failures, 0);
    }

    #[test]
    fn full_reports_take_at_most_a_twentieth_of_the_time() {
        let t0 = Instant::now();
        let mut r = ReportSchedule::default();
        assert!(r.due(t0));
        r.last = Some((t0, Duration::from_millis(100)));
        assert!(!r.due(t0 + Duration::from_millis(1800)));
        assert!(r.due(t0 + Duration::from_millis(1900)));
        assert!(r.wants_importance(100));
        r.importance_at = Some(200);
        assert!(!r.wants_importance(224));
        assert!(r.wants_importance(225));
    }
}
