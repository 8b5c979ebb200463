//! What the run loop keeps of the journal: counts, consecutive failures and the standings
//! (verdict.rs) that name the best configuration and count the trials.

use crate::engine::objective::Objective;
use crate::engine::space::Config;
use crate::store::RunProgress;
use crate::trial::{FailureKind, Origin, TrialRecord};
use crate::verdict::Standings;

/// What the run loop keeps of the journal: counts and the standings (per configuration, the
/// pooled samples of the objective only). Not every record: with its samples and notes one
/// takes about 3 KiB in memory, and keeping them all made the daemon grow by ~6 MiB over a
/// 2,000-trial run. The journal on disk stays the record of everything measured.
#[derive(Debug)]
pub(super) struct Tally {
    pub done: usize,
    /// Failures in a row that the configuration does not explain: an out-of-memory failure
    /// once something has loaded is the memory wall, which the optimizer learns and retreats
    /// from (docs/memory.md); it neither counts nor resets this. The stop on
    /// `max_consecutive_failures` is for a broken server.
    pub consecutive_failures: usize,
    /// Some trial ran: the server works, so an out-of-memory failure is the configuration's.
    pub any_ok: bool,
    /// The one rule for the best and the counts, shared with `status`, the report and export;
    /// its grouping says what each request ran as (`Standings::grouping`).
    pub standings: Standings,
    /// The configuration the server ran for the baseline (its `effective` configuration), once
    /// the baseline ran: a candidate the server runs identically is the baseline.
    pub baseline_ran: Option<Config>,
}

impl Tally {
    pub fn new(objective: &Objective) -> Tally {
        Tally {
            done: 0,
            consecutive_failures: 0,
            any_ok: false,
            standings: Standings::new(objective),
            baseline_ran: None,
        }
    }

    /// Count a journaled trial (in journal order, each trial number once).
    pub fn add(&mut self, rec: &TrialRecord) {
        self.done += 1;
        if rec.is_ok() {
            self.consecutive_failures = 0;
            self.any_ok = true;
        } else if !(self.any_ok && rec.failure == Some(FailureKind::OutOfMemory)) {
            self.consecutive_failures += 1;
        }
        self.standings.add(rec);
        if rec.origin == Origin::Baseline && rec.is_ok() && self.baseline_ran.is_none() {
            self.baseline_ran = Some(rec.effective_params().clone());
        }
    }

    pub fn progress(&self, report_trials: usize) -> RunProgress {
        let counts = self.standings.counts();
        let leader = self.standings.leader();
        RunProgress {
            trials_done: self.done,
            trials_failed: counts.failed,
            best_trial: leader.as_ref().map(|b| b.trial),
            best_objective: leader.as_ref().map(|b| b.objective),
            report_trials,
            configurations: counts.configurations,
            remeasurements: counts.remeasurements,
            remeasured_by_origin: counts
                .remeasured_by
                .iter()
                .map(|(o, n)| (o.to_string(), *n))
                .collect(),
            best_also: leader.map(|b| b.also).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::ParamValue;
    use crate::study::{parse_study, Study};
    use crate::trial::Status;
    use std::path::Path;

    fn study() -> Study {
        let text = "[study]\nname = \"t\"\nmodel = \"gemma3:4b\"\n[backend]\nkind = \"simulator\"\n\
                    [budget]\ntrials = 5\n[params.num_ctx]\ntype = \"int\"\nlow = 512\nhigh = 4096\n";
        parse_study(Path::new("t.toml"), text).unwrap()
    }

    /// A trial of `num_ctx = ctx` whose one sample is its objective (failed without one).
    fn rec(trial: usize, ctx: i64, objective: Option<f64>, origin: Origin) -> TrialRecord {
        TrialRecord {
            trial,
            origin,
            params: [("num_ctx".to_string(), ParamValue::Int(ctx))].into(),
            effective: None,
            status: if objective.is_some() {
                Status::Ok
            } else {
                Status::Failed
            },
            objective,
            feasible: objective.is_some(),
            metrics: Default::default(),
            samples: objective
                .iter()
                .map(|v| [("decode_tps".to_string(), *v)].into())
                .collect(),
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
            rec(0, 512, Some(2.0), Origin::Baseline),
            rec(1, 1024, Some(5.0), Origin::Initial),
            rec(2, 2048, Some(5.0), Origin::Model),
            rec(3, 4096, None, Origin::Model),
            rec(4, 4096, None, Origin::Model),
        ];
        let mut t = Tally::new(&s.objective);
        for r in &records {
            t.add(r);
        }
        let p = t.progress(5);
        assert_eq!((t.done, p.trials_failed, t.consecutive_failures), (5, 2, 2));
        // Out of memory once something ran is the configuration's wall: it does not count.
        let mut oom = rec(6, 8192, None, Origin::Model);
        oom.failure = Some(FailureKind::OutOfMemory);
        let mut t2 = Tally::new(&s.objective);
        for r in records.iter().chain([&oom, &oom]) {
            t2.add(r);
        }
        assert_eq!(t2.consecutive_failures, 2, "the two earlier failures only");
        let mut t3 = Tally::new(&s.objective);
        t3.add(&oom);
        assert_eq!(t3.consecutive_failures, 1, "nothing loaded yet: it counts");
        // Equal objectives: the earlier trial.
        assert_eq!((p.best_trial, p.best_objective), (Some(1), Some(5.0)));
        assert_eq!((p.configurations, p.remeasurements), (3, 0));
        // A re-measurement of trial 1's configuration pulls it below trial 2's: the pooled
        // value (median of 5 and 1) leads, not the best single trial.
        t.add(&rec(5, 1024, Some(1.0), Origin::Confirm));
        assert_eq!(t.consecutive_failures, 0);
        let p = t.progress(6);
        assert_eq!((p.best_trial, p.best_objective), (Some(2), Some(5.0)));
        assert_eq!((p.configurations, p.remeasurements), (3, 1));
        assert_eq!(p.remeasured_by_origin, [("confirm".to_string(), 1)].into());
        assert_eq!(
            p.trials_done,
            p.configurations + p.remeasurements + p.trials_failed
        );
    }
}
