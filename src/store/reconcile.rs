//! Resume's cross-check of checkpoint.json against trials.jsonl. The journal is the single
//! source of truth: what it holds was measured and fsynced; the checkpoint only carries what
//! the journal cannot (the optimizer's counters and warm starts, the trial in flight). Where
//! the two disagree the journal wins, the optimizer's counters are rebuilt from it so that no
//! trial number is ever used twice, and every disagreement becomes a `Finding`: logged, and
//! kept in run.json (`integrity`). A checkpoint that counts more trials than the journal holds
//! means measurements were lost outside the tuner (the journal deleted, cut or replaced): that
//! one is `Lost`, and resume refuses it unless forced.

use super::journal::{Duplicate, JournalScan};
use super::Checkpoint;
use crate::engine::optimizer::OptimizerState;
use crate::trial::{Origin, Trial, TrialRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// checkpoint.json as resume found it.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // read once per resume; boxing buys nothing
pub enum CheckpointRead {
    Missing,
    /// It exists but is not a checkpoint (empty, garbage, another shape): why.
    Unreadable(String),
    Read(Checkpoint),
}

/// What a scan of the journal showed, for the cross-check.
#[derive(Debug, Default)]
pub struct JournalFacts {
    /// Whether trials.jsonl exists.
    pub exists: bool,
    /// The distinct trial numbers read.
    pub numbers: BTreeSet<usize>,
    /// Records from the quasi-random initial design (each used at least one Sobol point).
    pub design_points: u32,
    /// The last trial that re-measured a tied leader.
    pub last_confirm: Option<usize>,
    pub unreadable: Vec<(usize, String)>,
    pub duplicates: Vec<Duplicate>,
    /// Non-empty lines of the file.
    pub lines: usize,
}

impl JournalFacts {
    /// Count one record handed on by the scan (each trial number once).
    pub fn add(&mut self, r: &TrialRecord) {
        self.numbers.insert(r.trial);
        if matches!(r.origin, Origin::Initial | Origin::Random) {
            self.design_points = self.design_points.saturating_add(1);
        }
        if r.origin == Origin::Confirm {
            self.last_confirm = self.last_confirm.max(Some(r.trial));
        }
    }

    /// Take what the scan found besides the records.
    pub fn finish(&mut self, scan: JournalScan) {
        self.exists = scan.exists;
        self.unreadable = scan.skipped;
        self.duplicates = scan.duplicates;
        self.lines = scan.lines;
    }

    pub fn trials(&self) -> usize {
        self.numbers.len()
    }

    /// The lowest number a new trial may take: one past the highest journaled.
    pub fn next_free(&self) -> usize {
        self.numbers.last().map_or(0, |m| m + 1)
    }
}

/// How bad a disagreement is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Nothing measured is lost; the run continues from the journal (the checkpoint rebuilt).
    Repaired,
    /// Trials the checkpoint counts are not in the journal: lost before this resume.
    Lost,
}

/// One disagreement found at resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    fn repaired(message: String) -> Finding {
        Finding {
            severity: Severity::Repaired,
            message,
        }
    }
}

/// The cross-check's result: the optimizer state to continue from (counters rebuilt from the
/// journal), the trial in flight to measure again, and what disagreed.
#[derive(Debug)]
pub struct Reconciled {
    /// `None`: no usable checkpoint; start from a fresh state raised to `floors`.
    pub state: Option<OptimizerState>,
    pub pending: Option<Trial>,
    pub findings: Vec<Finding>,
    /// The smallest values the optimizer's counters may have (apply with `raise`).
    pub floors: Floors,
}

/// Lower bounds for the optimizer's counters, from the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Floors {
    pub n_asked: usize,
    pub sobol_index: u32,
    pub last_confirm: Option<usize>,
}

impl Floors {
    /// Raise `state`'s counters to these floors.
    pub fn raise(&self, state: &mut OptimizerState) {
        state.n_asked = state.n_asked.max(self.n_asked);
        state.sobol_index = state.sobol_index.max(self.sobol_index);
        state.last_confirm = state.last_confirm.max(self.last_confirm);
    }
}

/// A trial counter beyond this much past the journal is not believed: counters that large can
/// only come from a damaged file, and would overflow.
const MAX_COUNTER_LEAD: usize = 1 << 20;

/// Cross-check a checkpoint against the journal; see the module comment. `meta_trials` is
/// what run.json's progress counts (written after the journal, so never ahead of it): a
/// second witness when the checkpoint is gone too.
pub fn reconcile(
    checkpoint: CheckpointRead,
    j: &JournalFacts,
    meta_trials: Option<usize>,
) -> Reconciled {
    let mut findings = Vec::new();
    let next_free = j.next_free();
    let mut floors = Floors {
        n_asked: next_free,
        sobol_index: j.design_points,
        last_confirm: j.last_confirm,
    };
    let (state, pending) = match checkpoint {
        CheckpointRead::Missing => {
            if j.trials() > 0 {
                findings.push(Finding::repaired(format!(
                    "checkpoint.json is missing; rebuilt from the {} trial(s) of trials.jsonl \
                     (the next trial is number {next_free})",
                    j.trials()
                )));
            }
            (None, None)
        }
        CheckpointRead::Unreadable(why) => {
            findings.push(Finding::repaired(format!(
                "checkpoint.json is unreadable ({why}); rebuilt from the {} trial(s) of \
                 trials.jsonl (the next trial is number {next_free})",
                j.trials()
            )));
            (None, None)
        }
        CheckpointRead::Read(c) => check_counts(c, j, &mut floors, &mut findings),
    };
    // Every trial has its own number below the counter: the counter is at least the count.
    if let Some(m) = meta_trials.filter(|m| *m <= next_free.saturating_add(MAX_COUNTER_LEAD)) {
        floors.n_asked = floors.n_asked.max(m);
    }
    let lost = findings.iter().any(|f| f.severity == Severity::Lost);
    if let Some(m) = meta_trials.filter(|m| *m > j.trials() && !lost) {
        findings.push(Finding {
            severity: Severity::Lost,
            message: format!(
                "run.json says {m} trial(s) were done, but {}: {} measured trial(s) are lost \
                 (the journal was deleted, cut short or replaced)",
                if j.exists {
                    format!("trials.jsonl holds {}", j.trials())
                } else {
                    "trials.jsonl is missing".to_string()
                },
                m - j.trials()
            ),
        });
    }
    if !j.duplicates.is_empty() {
        let first = &j.duplicates[0];
        let reused = j.duplicates.iter().filter(|d| !d.identical).count();
        findings.push(Finding::repaired(format!(
            "{} line(s) of trials.jsonl repeat a trial number already journaled (first: line {}, \
             trial {}, journaled on line {}){}; only the first record of each number is used",
            j.duplicates.len(),
            first.line,
            first.trial,
            first.first_line,
            if reused > 0 {
                format!(", {reused} of them a different record under a reused number")
            } else {
                String::new()
            }
        )));
    }
    if !j.unreadable.is_empty() {
        let lines: Vec<String> = j
            .unreadable
            .iter()
            .take(10)
            .map(|(l, _)| l.to_string())
            .collect();
        let at_end = j.unreadable.len() == 1 && j.unreadable[0].0 == j.lines;
        findings.push(Finding::repaired(format!(
            "skipping {} unreadable journal line(s) (line {}{}; {}): {}",
            j.unreadable.len(),
            lines.join(", "),
            if j.unreadable.len() > 10 { ", ..." } else { "" },
            if at_end {
                "the last line: a write cut short by a crash or power loss"
            } else {
                "a write cut short by a crash or power loss, or a damaged file"
            },
            j.unreadable[0].1
        )));
    }
    Reconciled {
        state,
        pending,
        findings,
        floors,
    }
}

/// A readable checkpoint against the journal: counts, the trial counter, the trial in flight.
fn check_counts(
    c: Checkpoint,
    j: &JournalFacts,
    floors: &mut Floors,
    findings: &mut Vec<Finding>,
) -> (Option<OptimizerState>, Option<Trial>) {
    let next_free = j.next_free();
    let mut state = c.optimizer;
    let pending_journaled = c
        .pending
        .as_ref()
        .is_some_and(|p| j.numbers.contains(&p.number));
    // A checkpoint is written after each ask (naming the trial in flight) and after each
    // journaled trial; killed between the journal write and the next checkpoint, the journal
    // holds the trial in flight too.
    let expected = c.trials_done.saturating_add(usize::from(pending_journaled));
    let behind = expected < j.trials();
    if expected > j.trials() {
        let missing: Vec<String> = (0..state.n_asked.min(next_free.max(expected)))
            .filter(|n| !j.numbers.contains(n))
            .take(20)
            .map(|n| n.to_string())
            .collect();
        let journal = if !j.exists {
            "trials.jsonl is missing".to_string()
        } else {
            format!("trials.jsonl holds {}", j.trials())
        };
        findings.push(Finding {
            severity: Severity::Lost,
            message: format!(
                "checkpoint.json says {expected} trial(s) were journaled, but {journal}: {} \
                 measured trial(s) are lost (the journal was deleted, cut short or replaced){}{}",
                expected - j.trials(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; trial numbers not in the journal: {}", missing.join(", "))
                },
                if j.unreadable.is_empty() {
                    String::new()
                } else {
                    format!("; {} line(s) of it are unreadable", j.unreadable.len())
                }
            ),
        });
    } else if behind {
        findings.push(Finding::repaired(format!(
            "checkpoint.json is behind the journal (it counts {} trial(s), trials.jsonl holds {}): \
             an older checkpoint; continuing from the journal",
            c.trials_done,
            j.trials()
        )));
    }
    if state.n_asked < next_free {
        findings.push(Finding::repaired(format!(
            "checkpoint.json would number the next trial {}, but trial {} is journaled; numbering \
             continues at {next_free} so that no trial number is used twice",
            state.n_asked,
            next_free - 1
        )));
    }
    let lead = next_free.max(expected).saturating_add(MAX_COUNTER_LEAD);
    if state.n_asked > lead || state.sobol_index > (1 << 30) {
        findings.push(Finding::repaired(format!(
            "checkpoint.json's counters are implausible (next trial {}, design point {}); \
             renumbered from the journal (next trial {next_free})",
            state.n_asked, state.sobol_index
        )));
        state.n_asked = next_free;
        state.sobol_index = floors.sobol_index;
    }
    // The trial in flight is measured again, under its number, unless the journal has it or
    // the checkpoint is older than the journal (then it was proposed long ago).
    let pending = c
        .pending
        .filter(|p| !pending_journaled && !behind && p.number < lead);
    if let Some(p) = &pending {
        floors.n_asked = floors.n_asked.max(p.number + 1);
    }
    (Some(state), pending)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
