//! The run directory: frozen study, append-only journal, atomic checkpoint, run metadata, lock.
//!
//! Layout of `<state-dir>/<run-id>/`:
//! - `study.toml`     the study file as it was when the run started (frozen copy)
//! - `trials.jsonl`   one `TrialRecord` per finished trial, fsynced before the next ask
//! - `checkpoint.json` optimizer state + the trial in flight (temp file, fsync, rename)
//! - `run.json`       `RunMeta`: what was run, against what, and why it stopped
//! - `lock`           flock-held while a daemon works on the run; holds its pid
//! - `report.md`, `report.json`, `trials.csv`, `*.svg`   regenerated as the run goes (see
//!   src/run/reports.rs) and whenever a session stops

use crate::backend::BackendInfo;
use crate::engine::optimizer::OptimizerState;
use crate::engine::space::{Config, SearchSpace};
use crate::study::{Budget, Objective, Protocol};
use crate::trial::{Trial, TrialRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STUDY_FILE: &str = "study.toml";
pub const JOURNAL_FILE: &str = "trials.jsonl";
/// Measurements taken by `recheck` after the run (one fsynced line each, like the journal).
pub const RECHECK_FILE: &str = "rechecks.jsonl";
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
pub const META_FILE: &str = "run.json";
pub const LOCK_FILE: &str = "lock";

pub mod crash;
mod journal;
mod reconcile;
mod runid;

use journal::ends_with_newline;
pub(crate) use journal::{read_journal_file, scan_journal_file};
pub use journal::{Duplicate, JournalRead, JournalScan};
pub use reconcile::{
    reconcile, CheckpointRead, Finding, Floors, JournalFacts, Reconciled, Severity,
};
pub use runid::{check_run_id, run_id_problem, MAX_RUN_ID_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid {what}: {message}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error("run {path} is in use by another ollama-tuner (pid {pid}); stop it first or pick another --run-id")]
    Locked { path: PathBuf, pid: String },
    #[error("{0} is not a run directory (no {JOURNAL_FILE} or {META_FILE}); pass the folder `run` printed, e.g. state/<run-id>")]
    NotARun(PathBuf),
    /// A run id that is not one safe path component (runid.rs).
    #[error("--run-id {id:?} cannot be a run id: {reason}; use one plain folder name, e.g. `gemma3-night1` (it goes under --state-dir)")]
    BadRunId { id: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why a run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The trial budget was used.
    Budget,
    /// The wall-time budget (`--time-budget`) ran out.
    WallTime,
    /// The wall-clock deadline (`--until`) passed.
    Deadline,
    /// SIGINT / SIGTERM.
    Interrupted,
    /// Nothing left to propose: every configuration of a finite space was measured.
    Converged,
    /// Too many consecutive failed trials that their settings do not explain.
    TooManyFailures,
    /// The backend stayed unreachable for `--max-outage`.
    Outage,
    /// The backend reported an error that makes continuing pointless.
    Fatal,
    /// The decision phase finished: the recommendation is decided (engine/decision/).
    Decided,
}

impl StopReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::Budget => "budget",
            StopReason::WallTime => "wall_time",
            StopReason::Deadline => "deadline",
            StopReason::Interrupted => "interrupted",
            StopReason::Converged => "converged",
            StopReason::TooManyFailures => "too_many_failures",
            StopReason::Outage => "outage",
            StopReason::Fatal => "fatal",
            StopReason::Decided => "decided",
        }
    }
}

/// Facts about a run that are not per trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: String,
    pub study_name: String,
    pub model: String,
    pub seed: u64,
    /// Path of the study file the run was started from.
    pub study_file: String,
    pub backend: BackendInfo,
    /// The search space after the backend's adjustments (bounds from the model).
    pub space: SearchSpace,
    pub objective: Objective,
    pub budget: Budget,
    pub protocol: Protocol,
    pub runner_params: Vec<String>,
    pub tuner_version: String,
    pub started_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    #[serde(default)]
    pub stop_message: Option<String>,
    /// Model (re)loads and the seconds they took, over the whole run.
    #[serde(default)]
    pub reloads: u64,
    #[serde(default)]
    pub reload_seconds: f64,
    /// Seconds spent waiting out outages (never counted against a configuration).
    #[serde(default)]
    pub outage_seconds: f64,
    /// Wall seconds spent on the run so far, over all sessions (resumes add up).
    #[serde(default)]
    pub elapsed_seconds: f64,
    /// The budget flags of the command lines that ran this run, so that `resume` keeps the
    /// budget the run was started with instead of the study file's. None in a run.json written
    /// before they were kept.
    #[serde(default)]
    pub budget_overrides: Option<BudgetOverrides>,
    /// Where the run stands, rewritten after every trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
    /// What resumes found wrong between checkpoint.json and trials.jsonl (reconcile.rs), the
    /// latest `MAX_INTEGRITY_NOTES` kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrity: Vec<IntegrityNote>,
}

/// Notes kept in run.json's `integrity`.
pub const MAX_INTEGRITY_NOTES: usize = 50;

/// One disagreement a resume found (and how it continued), with when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrityNote {
    pub at: String,
    pub severity: Severity,
    pub message: String,
}

/// A cheap summary of a run, kept current after every trial. The full report set re-renders
/// the whole journal, so on runs of fast trials it is regenerated only every few seconds (and
/// always at the end); this says how far it lags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Trials in the journal: `configurations + remeasurements + trials_failed`.
    pub trials_done: usize,
    /// Of which failed (out of memory, crash, ...) or produced no objective.
    pub trials_failed: usize,
    /// The best configuration so far, by the rule every reader uses (src/verdict.rs: trials
    /// of one configuration pooled): its first trial and its pooled objective value. The
    /// report's rank 1 and `status` name the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_trial: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_objective: Option<f64>,
    /// Trials the report files (report.md, report.json, trials.csv, plots) cover.
    pub report_trials: usize,
    /// Distinct configurations that produced the objective.
    #[serde(default)]
    pub configurations: usize,
    /// Trials that measured an already measured configuration again (pooled into it).
    #[serde(default)]
    pub remeasurements: usize,
    /// The re-measurements by the origin of their trial (`confirm`, `decision`, `ablation`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remeasured_by_origin: BTreeMap<String, usize>,
    /// Later trials that re-measured the best configuration, pooled into `best_objective`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub best_also: Vec<usize>,
}

/// Budget flags given on a command line (`--trials`, `--time-budget`); each overrides the
/// study's `[budget]` for the whole run until a later command line gives it again.
/// (`--until` is not kept: it is a deadline for the session it was given to.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<usize>,
    /// Wall-time budget over the whole run, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_s: Option<f64>,
}

/// State needed to continue a run exactly, written atomically after every ask and tell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub optimizer: OptimizerState,
    /// The trial being measured when the checkpoint was written (measured again on resume
    /// unless the journal already has it).
    pub pending: Option<Trial>,
    /// Trials in the journal when the checkpoint was written.
    pub trials_done: usize,
    pub loaded_runner: Option<Config>,
    /// Fingerprint of search space + objective, to refuse resuming a changed study.
    pub study_fingerprint: String,
}

#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// Open an existing run directory.
    pub fn open(path: &Path) -> Result<RunDir, StoreError> {
        let rd = RunDir::new(path);
        if !rd.file(JOURNAL_FILE).exists() && !rd.file(META_FILE).exists() {
            return Err(StoreError::NotARun(path.to_path_buf()));
        }
        Ok(rd)
    }

    pub fn create_dir(&self) -> Result<(), StoreError> {
        fs::create_dir_all(&self.path).map_err(io(&self.path))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn exists(&self) -> bool {
        self.file(META_FILE).exists() || self.file(JOURNAL_FILE).exists()
    }

    /// Append one trial to the journal and fsync it: nothing measured is lost after this returns.
    pub fn append_trial(&self, rec: &TrialRecord) -> Result<(), StoreError> {
        self.append_record(JOURNAL_FILE, rec)
    }

    /// Append one `recheck` measurement to rechecks.jsonl, fsynced like the journal.
    pub fn append_recheck(&self, rec: &TrialRecord) -> Result<(), StoreError> {
        self.append_record(RECHECK_FILE, rec)
    }

    /// Every `recheck` measurement of the run (none when it was never rechecked).
    pub fn read_rechecks(&self) -> Result<JournalRead, StoreError> {
        let path = self.file(RECHECK_FILE);
        if !path.exists() {
            return Ok(JournalRead::default());
        }
        read_journal_file(&path)
    }

    fn append_record(&self, name: &str, rec: &TrialRecord) -> Result<(), StoreError> {
        let path = self.file(name);
        let mut line = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            what: "trial record",
            message: e.to_string(),
        })?;
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        // A torn previous write (power loss) leaves a line without newline: start on a new one
        // so the good record is not glued to the broken one.
        let len = f.metadata().map_err(io(&path))?.len();
        if len > 0 && !ends_with_newline(&path)? {
            f.write_all(b"\n").map_err(io(&path))?;
        }
        if name == JOURNAL_FILE && crash::due("journal-torn") {
            // Crash test: the line half written and on disk, as after a power loss.
            let _ = f.write_all(&line.as_bytes()[..line.len() / 2]);
            let _ = f.sync_data();
            crash::die();
        }
        f.write_all(line.as_bytes()).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))?;
        Ok(())
    }

    /// Read every journaled trial. Unreadable lines (a torn last write) are reported and skipped.
    pub fn read_journal(&self) -> Result<JournalRead, StoreError> {
        read_journal_file(&self.file(JOURNAL_FILE))
    }

    /// Hand the journaled trials to `each` one at a time, in journal order, without holding
    /// them all; returns the skipped lines as `read_journal` does.
    pub fn scan_journal(&self, each: impl FnMut(TrialRecord)) -> Result<JournalScan, StoreError> {
        scan_journal_file(&self.file(JOURNAL_FILE), each)
    }

    pub fn write_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        write_json_atomic(&self.file(CHECKPOINT_FILE), c)
    }

    pub fn read_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        read_json_opt(&self.file(CHECKPOINT_FILE), "checkpoint")
    }

    /// The checkpoint for a resume: one that cannot be parsed is `Unreadable` (the journal
    /// then rebuilds it), not an error; only a file that cannot be read at all is.
    pub fn read_checkpoint_for_resume(&self) -> Result<CheckpointRead, StoreError> {
        match self.read_checkpoint() {
            Ok(Some(c)) => Ok(CheckpointRead::Read(c)),
            Ok(None) => Ok(CheckpointRead::Missing),
            Err(StoreError::Corrupt { message, .. }) => Ok(CheckpointRead::Unreadable(message)),
            Err(e) => Err(e),
        }
    }

    pub fn write_meta(&self, m: &RunMeta) -> Result<(), StoreError> {
        write_json_atomic(&self.file(META_FILE), m)
    }

    pub fn read_meta(&self) -> Result<Option<RunMeta>, StoreError> {
        read_json_opt(&self.file(META_FILE), "run.json")
    }

    /// Remove the temporary files of atomic writes cut short by a crash (`.<name>.tmp.<pid>`):
    /// only while holding the run's lock, when no other writer can be at work. Returns how many.
    pub fn remove_stale_temp_files(&self, _lock: &RunLock) -> usize {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with('.') && name.contains(".tmp.")
            })
            .filter(|e| fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Write any file of the run atomically (reports, plots).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.file(name), bytes)
    }

    /// Write a file of the run atomically from a writer, without its whole text in memory.
    pub fn write_file_with(
        &self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), StoreError> {
        write_atomic_with(&self.file(name), fill)
    }
}

/// Write a file so that readers see either the old or the new content, never a mix:
/// temporary file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// `write_atomic` with the content produced by `fill` into a buffered writer on the
/// temporary file.
pub(crate) fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let written = File::create(&tmp).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    crash::point(&format!("atomic:{name}"));
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        what: "JSON value",
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

fn read_json_opt<T: for<'de> Deserialize<'de>>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                what,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// An exclusive lock on a run directory, held for the life of the value. The kernel releases
/// a flock when its process dies, so a lock file left by a killed daemon is not an obstacle:
/// the next daemon simply takes it over.
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

impl RunLock {
    pub fn acquire(run: &RunDir) -> Result<RunLock, StoreError> {
        let path = run.file(LOCK_FILE);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Err(StoreError::Locked {
                    path: run.path.clone(),
                    pid,
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        f.set_len(0).map_err(io(&path))?;
        writeln!(f, "{}", std::process::id()).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        Ok(RunLock { _file: f, path })
    }

    /// Whether some live process holds the lock of a run (for `status`).
    pub fn holder(run: &RunDir) -> Option<String> {
        let path = run.file(LOCK_FILE);
        let f = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        match f.try_lock() {
            Ok(()) => {
                let _ = f.unlock();
                None
            }
            _ => Some(
                fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::Origin;
    use std::collections::BTreeMap;

    fn rec(n: usize) -> TrialRecord {
        TrialRecord {
            origin: Origin::Initial,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            ..TrialRecord::for_test(n, BTreeMap::new(), n as f64)
        }
    }

    #[test]
    fn torn_last_line_is_skipped_and_appending_continues() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        run.append_trial(&rec(0)).unwrap();
        run.append_trial(&rec(1)).unwrap();
        // Simulate power loss in the middle of writing trial 2.
        let mut f = OpenOptions::new()
            .append(true)
            .open(run.file(JOURNAL_FILE))
            .unwrap();
        f.write_all(br#"{"trial":2,"origin":"ini"#).unwrap();
        drop(f);
        let j = run.read_journal().unwrap();
        assert_eq!(j.records.len(), 2);
        assert_eq!(j.skipped.len(), 1);
        assert_eq!(j.skipped[0].0, 3);
        run.append_trial(&rec(2)).unwrap();
        let j = run.read_journal().unwrap();
        assert_eq!(
            j.records.iter().map(|r| r.trial).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let l = RunLock::acquire(&run).unwrap();
        assert!(matches!(
            RunLock::acquire(&run),
            Err(StoreError::Locked { .. })
        ));
        assert_eq!(RunLock::holder(&run), Some(std::process::id().to_string()));
        drop(l);
        assert!(RunLock::holder(&run).is_none());
        RunLock::acquire(&run).unwrap();
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_json_atomic(&p, &vec![1, 2]).unwrap();
        write_json_atomic(&p, &vec![3]).unwrap();
        let v: Vec<i32> = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v, [3]);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
