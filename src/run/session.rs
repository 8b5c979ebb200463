//! Starting or resuming a session of a run: the run directory and its lock, the checks that a
//! resume continues the same experiment, the budget in force, the optimizer rebuilt from the
//! journal and the checkpoint, and run.json as this session starts it.

use super::record::now_rfc3339;
use super::tally::Tally;
use super::{RunError, RunOptions};
use crate::backend::BackendInfo;
use crate::decided::DecisionReplay;
use crate::engine::decision::DecisionPhase;
use crate::engine::optimizer::Optimizer;
use crate::engine::space::SearchSpace;
use crate::store::{
    check_run_id, reconcile, BudgetOverrides, CheckpointRead, Finding, IntegrityNote, JournalFacts,
    Reconciled, RunDir, RunLock, RunMeta, Severity, StoreError, MAX_INTEGRITY_NOTES, STUDY_FILE,
};
use crate::study::{parse_study, Budget, Study};
use crate::trial::Trial;
use chrono::Local;
use std::path::Path;
use std::time::Duration;
use tracing::{info, warn};

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

/// Longest part of a default run id taken from the study name, in characters (ASCII after the
/// mapping below), so that the id stays a valid file name (store/runid.rs) for any name.
const RUN_ID_NAME_CHARS: usize = 200;

/// `<study name>-<local time>`, the name mapped to letters, digits, '-' and '_' and cut to
/// `RUN_ID_NAME_CHARS`: always one safe path component.
pub fn default_run_id(study: &Study) -> String {
    let name: String = study
        .name
        .chars()
        .take(RUN_ID_NAME_CHARS)
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
    // A kept value comes from run.json: one beyond the limit of `--time-budget` (an edited
    // or damaged file) is held to it, never a panic.
    if let Some(d) = overrides
        .wall_time_s
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    {
        budget.wall_time = Some(d.min(crate::study::MAX_WALL_TIME));
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

/// A session holding its run directory: locked, checked, with what the previous sessions left.
pub(super) struct Session {
    pub run_id: String,
    pub run: RunDir,
    pub resuming: bool,
    _lock: RunLock,
    pub fingerprint: String,
    /// The checkpoint cross-checked against the journal (store/reconcile.rs).
    reconciled: Option<Reconciled>,
    pub saved_meta: Option<RunMeta>,
    pub budget: Budget,
    pub budget_overrides: BudgetOverrides,
    /// What the cross-check of checkpoint and journal found, for run.json.
    findings: Vec<Finding>,
}

impl Session {
    /// Take the run directory (created if new) and refuse to resume a different experiment
    /// unless `--force`; a new run, or a forced one, gets the study file frozen.
    pub fn open(
        study: &Study,
        study_text: &str,
        study_path: &Path,
        opts: &RunOptions,
    ) -> Result<Session, RunError> {
        let run_id = opts.run_id.clone().unwrap_or_else(|| default_run_id(study));
        check_run_id(&run_id)?;
        let run = RunDir::new(opts.state_dir.join(&run_id));
        let resuming = run.exists();
        run.create_dir()?;
        let lock = RunLock::acquire(&run)?;
        let stale = run.remove_stale_temp_files(&lock);
        if stale > 0 {
            info!(
                files = stale,
                "removed temporary files of writes cut short by a crash"
            );
        }

        if resuming {
            let (frozen, _) = frozen_study(&run)?;
            if study_fingerprint(&frozen) != study_fingerprint(study) {
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
        let checkpoint = run.read_checkpoint_for_resume()?;
        if let CheckpointRead::Read(c) = &checkpoint {
            if c.study_fingerprint != study_fingerprint(study) && !opts.force {
                return Err(RunError::Refused(format!(
                    "the checkpoint of {} belongs to a different study; pass --force to continue anyway",
                    run.path.display()
                )));
            }
        }
        let saved_meta = run.read_meta()?;
        let meta_trials = saved_meta
            .as_ref()
            .and_then(|m| m.progress.as_ref())
            .map(|p| p.trials_done);
        let mut reconciled = cross_check(&run, checkpoint, meta_trials, opts.force)?;
        let findings = std::mem::take(&mut reconciled.findings);
        let fingerprint = study_fingerprint(study);
        let (budget, budget_overrides) = effective_budget(&study.budget, saved_meta.as_ref(), opts);
        Ok(Session {
            run_id,
            run,
            resuming,
            _lock: lock,
            fingerprint,
            reconciled: Some(reconciled),
            saved_meta,
            budget,
            budget_overrides,
            findings,
        })
    }

    /// Rebuild the optimizer from the journal and the checkpoint, in one pass over the
    /// journal: tell the optimizer, keep the tally, drop the record. Returns the trial that was
    /// in flight when the last session stopped, unless the journal has it.
    pub fn replay(
        &mut self,
        study: &Study,
        space: &SearchSpace,
    ) -> Result<(Optimizer, Tally, Option<Trial>, Option<DecisionPhase>), RunError> {
        let mut optimizer = Optimizer::new(
            space.clone(),
            study.objective.clone(),
            crate::study::is_positive_metric,
            study.optimizer.clone(),
            study.runner_params.clone(),
            study.seed,
        );
        let mut tally = Tally::new(&study.objective);
        let mut decision = DecisionReplay::default();
        // The scan hands on each trial number once (store/journal.rs); what else it found
        // was reported when the session opened.
        self.run.scan_journal(|r| {
            crate::trial::tell_record(&mut optimizer, &r);
            decision.add(&r);
            tally.add(&r);
        })?;
        let mut pending: Option<Trial> = None;
        if let Some(r) = self.reconciled.take() {
            let mut state = r.state.unwrap_or_else(|| optimizer.state().clone());
            r.floors.raise(&mut state);
            optimizer.restore(state);
            pending = r.pending;
        }
        if self.resuming {
            info!(
                trials = tally.done,
                pending = pending.is_some(),
                "resuming run"
            );
        }
        Ok((optimizer, tally, pending, decision.finish()))
    }

    /// run.json as this session starts: the saved one (or a new one) with this session's
    /// backend, space, objective and budget, and no stop yet.
    pub fn start_meta(
        &mut self,
        study: &Study,
        study_path: &Path,
        info: &BackendInfo,
        space: &SearchSpace,
    ) -> RunMeta {
        let mut meta = match self.saved_meta.take() {
            Some(m) => m,
            None => RunMeta {
                run_id: self.run_id.clone(),
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
                integrity: vec![],
            },
        };
        let at = now_rfc3339();
        meta.integrity
            .extend(self.findings.drain(..).map(|f| IntegrityNote {
                at: at.clone(),
                severity: f.severity,
                message: f.message,
            }));
        let excess = meta.integrity.len().saturating_sub(MAX_INTEGRITY_NOTES);
        meta.integrity.drain(..excess);
        meta.backend = info.clone();
        meta.space = space.clone();
        meta.objective = study.objective.clone();
        meta.budget = self.budget.clone();
        meta.budget_overrides = Some(self.budget_overrides.clone());
        meta.finished_at = None;
        meta.stop_reason = None;
        meta.stop_message = None;
        meta
    }
}

/// Cross-check the checkpoint against the journal (store/reconcile.rs) and report every
/// disagreement; refuse a resume that lost journaled trials unless `force`.
fn cross_check(
    run: &RunDir,
    checkpoint: CheckpointRead,
    meta_trials: Option<usize>,
    force: bool,
) -> Result<Reconciled, RunError> {
    let mut facts = JournalFacts::default();
    let scan = run.scan_journal(|r| facts.add(&r))?;
    facts.finish(scan);
    let reconciled = reconcile(checkpoint, &facts, meta_trials);
    for f in &reconciled.findings {
        match f.severity {
            Severity::Repaired => warn!(run = %run.path.display(), "{}", f.message),
            Severity::Lost if force => warn!(
                run = %run.path.display(),
                "{}; continuing because of --force (trial numbers continue after the \
                 checkpoint's, so none is reused)",
                f.message
            ),
            Severity::Lost => {
                return Err(RunError::Refused(format!(
                    "{}: {}. Restore trials.jsonl from a backup, or resume with --force to \
                     continue with the trials it holds (numbering continues after the \
                     checkpoint's, so no trial number is reused)",
                    run.path.display(),
                    f.message
                )))
            }
        }
    }
    Ok(reconciled)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
