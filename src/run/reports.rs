//! When the run loop regenerates the full report set, and what it does with the report when a
//! session ends (copy to reports/).

use crate::store::RunDir;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::warn;

/// Share of the run's wall time that regenerating the full report set may take.
const REPORT_TIME_SHARE: f64 = 0.05;
/// Past this many trials, parameter importance (a GP fit) is recomputed every
/// `IMPORTANCE_EVERY` trials rather than in every report.
const IMPORTANCE_ALWAYS_UNTIL: usize = 100;
const IMPORTANCE_EVERY: usize = 25;

/// The report set files copied to the reports directory, so the Markdown's relative links to
/// the plots keep working.
const REPORT_FILES: [&str; 5] = [
    "report.md",
    "report.json",
    "trials.csv",
    "convergence.svg",
    "pareto.svg",
];

/// Why the report set could not be written (logged; never fatal to the run).
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error("{0}")]
    Report(#[from] crate::report::ReportError),
    #[error("the report task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How long the run loop waits for a full report mid-run, and at the end of a session. A
/// report past its deadline is left to finish on its blocking thread while the loop goes on
/// (it cannot be cut short); no other report starts until it has finished, and the next one
/// leaves out parameter importance (the GP fit, the one part whose time grows fast).
const LOOP_DEADLINE: Duration = Duration::from_secs(20);
const FINAL_DEADLINE: Duration = Duration::from_secs(120);

/// When the run loop regenerates the full report set. A full report re-reads and re-renders
/// the whole journal: time, memory and disk writes grow with the run. It is redone after a
/// trial only when the time since the last one is at least 19 times what the last one took
/// (at most `REPORT_TIME_SHARE` of the run): after every trial whenever trials take seconds, as
/// on any real server, and every few seconds on the simulator's millisecond trials. The start
/// of a session, its end and a stop by signal or error always write it; run.json's `progress`
/// is rewritten after every trial and says how many trials the report files cover. No report
/// holds up the loop for longer than `LOOP_DEADLINE` (`FINAL_DEADLINE` at the end).
#[derive(Debug)]
pub(super) struct ReportSchedule {
    /// End of the last full report and how long it took.
    last: Option<(Instant, Duration)>,
    /// Trials covered by the report files.
    pub covered: usize,
    /// Trials covered by the last report with parameter importance.
    importance_at: Option<usize>,
    /// A report still being written after its deadline passed.
    running: Option<Running>,
    /// The deadlines: mid-run, at the end (constants but for tests).
    deadlines: (Duration, Duration),
    /// Some report of this session outlived its deadline: the final one leaves out the
    /// importance.
    overran: bool,
}

impl Default for ReportSchedule {
    fn default() -> Self {
        ReportSchedule {
            last: None,
            covered: 0,
            importance_at: None,
            running: None,
            deadlines: (LOOP_DEADLINE, FINAL_DEADLINE),
            overran: false,
        }
    }
}

type Written = Result<(), crate::report::ReportError>;

/// A report that outlived its deadline: its task, the trials it covers, whether it has the
/// importance, when it started.
#[derive(Debug)]
struct Running {
    task: tokio::task::JoinHandle<Written>,
    done: usize,
    with_importance: bool,
    started: Instant,
}

impl ReportSchedule {
    pub fn due(&self, now: Instant) -> bool {
        match self.last {
            None => true,
            Some((at, took)) => {
                now.duration_since(at).as_secs_f64() * REPORT_TIME_SHARE
                    >= took.as_secs_f64() * (1.0 - REPORT_TIME_SHARE)
            }
        }
    }

    pub fn wants_importance(&self, done: usize) -> bool {
        done <= IMPORTANCE_ALWAYS_UNTIL
            || self
                .importance_at
                .is_none_or(|at| done >= at + IMPORTANCE_EVERY)
    }

    /// Write the full report set for `done` trials, waiting for it at most the mid-run
    /// deadline; a failure is logged, never fatal to the run. Returns whether the files were
    /// written.
    ///
    /// The report is built on a blocking-pool thread: besides not stalling the runtime, its
    /// allocations (the whole parsed journal) then come from that thread's malloc arena, apart
    /// from the run loop's long-lived data, so freeing them leaves whole free pages that
    /// `release_free_memory` can hand back, rather than holes between the optimizer's records.
    pub async fn refresh(&mut self, run: &RunDir, done: usize, with_importance: bool) -> bool {
        let dir = run.clone();
        let deadline = self.deadlines.0;
        self.refresh_with(done, with_importance, deadline, move || {
            write_report_set(&dir, with_importance)
        })
        .await
    }

    /// `refresh` at the end of a session: waits for a report still running from earlier, then
    /// writes the full set, each within the final deadline.
    pub async fn refresh_final(&mut self, run: &RunDir, done: usize) -> bool {
        let deadline = self.deadlines.1;
        if let Some(mut r) = self.running.take() {
            match tokio::time::timeout(deadline, &mut r.task).await {
                Ok(finished) => {
                    self.record(finished, r.done, r.with_importance, r.started);
                }
                Err(_) => {
                    warn!(
                        trials = r.done,
                        "a report is still being written; the final one is left out \
                         (`ollama-tuner report RUN_DIR` writes it)"
                    );
                    self.running = Some(r);
                    return false;
                }
            }
        }
        let dir = run.clone();
        let importance = !self.overran;
        self.refresh_with(done, importance, deadline, move || {
            write_report_set(&dir, importance)
        })
        .await
    }

    async fn refresh_with(
        &mut self,
        done: usize,
        with_importance: bool,
        deadline: Duration,
        work: impl FnOnce() -> Written + Send + 'static,
    ) -> bool {
        if let Some(r) = self.running.take() {
            if !r.task.is_finished() {
                // Still writing: no second writer of the same files.
                self.running = Some(r);
                return false;
            }
            let finished = r.task.await;
            self.record(finished, r.done, r.with_importance, r.started);
            if done <= self.covered {
                return true;
            }
        }
        let t0 = Instant::now();
        let mut task = tokio::task::spawn_blocking(work);
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(finished) => self.record(finished, done, with_importance, t0),
            Err(_) => {
                warn!(
                    trials = done,
                    deadline = %humantime::format_duration(deadline),
                    "the report is taking longer than its deadline; the run goes on and the \
                     report files are updated when it finishes (run.json's progress says how \
                     far they lag)"
                );
                // Space the next reports by what this one took so far, and leave the
                // importance fit out of the next one.
                self.last = Some((Instant::now(), deadline));
                self.importance_at = Some(done);
                self.overran = true;
                self.running = Some(Running {
                    task,
                    done,
                    with_importance,
                    started: t0,
                });
                false
            }
        }
    }

    /// Book a finished report; returns whether it wrote the files.
    fn record(
        &mut self,
        finished: Result<Written, tokio::task::JoinError>,
        done: usize,
        with_importance: bool,
        started: Instant,
    ) -> bool {
        let now = Instant::now();
        self.last = Some((now, now - started));
        match finished
            .map_err(RefreshError::from)
            .and_then(|w| w.map_err(RefreshError::from))
        {
            Ok(()) => {
                self.covered = self.covered.max(done);
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

/// The report set of a run, on the blocking thread (see `refresh`).
fn write_report_set(dir: &RunDir, with_importance: bool) -> Written {
    crate::store::crash::point("in-report");
    let written = crate::report::write_all_with(dir, with_importance).map(|_| ());
    release_free_memory();
    written
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

/// Copy the whole report set of a run to `dir/<run_id>/`; best effort.
pub(super) fn copy_report_set(run: &RunDir, dir: &Path, run_id: &str) {
    let dest = dir.join(run_id);
    if std::fs::create_dir_all(&dest).is_ok() {
        for name in REPORT_FILES {
            if let Ok(bytes) = std::fs::read(run.file(name)) {
                let _ = crate::store::write_atomic(&dest.join(name), &bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
