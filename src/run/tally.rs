//! What the run loop keeps of the journal: counts, the best record and the baseline.

use crate::store::RunProgress;
use crate::study::{Direction, Study};
use crate::trial::{Origin, TrialRecord};

/// The objective of a feasible ok record, signed so that larger is better.
fn signed_objective(study: &Study, r: &TrialRecord) -> Option<f64> {
    let sign = match study.objective.direction {
        Direction::Maximize => 1.0,
        Direction::Minimize => -1.0,
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
pub(super) struct Tally {
    pub done: usize,
    pub failed: usize,
    pub consecutive_failures: usize,
    pub best: Option<TrialRecord>,
    pub baseline: Option<TrialRecord>,
}

impl Tally {
    /// Count a journaled trial (in journal order, each trial number once).
    pub fn add(&mut self, study: &Study, rec: TrialRecord) {
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

    pub fn progress(&self, report_trials: usize) -> RunProgress {
        RunProgress {
            trials_done: self.done,
            trials_failed: self.failed,
            best_trial: self.best.as_ref().map(|b| b.trial),
            best_objective: self.best.as_ref().and_then(|b| b.objective),
            report_trials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::parse_study;
    use crate::trial::Status;
    use std::path::Path;

    fn study() -> Study {
        let text = "[study]\nname = \"t\"\nmodel = \"m\"\n[backend]\nkind = \"simulator\"\n\
                    [budget]\ntrials = 5\n[params.num_ctx]\ntype = \"int\"\nlow = 512\nhigh = 4096\n";
        parse_study(Path::new("t.toml"), text).unwrap()
    }

    fn rec(trial: usize, objective: Option<f64>, ok: bool, origin: Origin) -> TrialRecord {
        TrialRecord {
            trial,
            origin,
            params: Default::default(),
            effective: None,
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
        let s = study();
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
}
