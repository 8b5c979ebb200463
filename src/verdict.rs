//! The one rule that names a run's best configuration, and the one count of its trials.
//!
//! `status`, the run loop (run.json's `progress`, the progress bar, the end-of-run summary), the
//! report's rank 1 and `export` all read `Standings`, so they cannot name different bests or
//! different counts. The rule: the journal's trials are pooled by configuration as the server
//! ran it (`Grouping`: the trial's `effective` configuration, else its parameters, so two
//! requests the server ran identically are one configuration); a configuration's objective is
//! the study's statistic over all the samples of all its trials (a configuration measured once
//! keeps its trial's value), and it is feasible only when every measurement of it was; the
//! leader is the best feasible configuration in the objective's direction, equal values going
//! to the earliest trial. Failed trials are never pooled: each failure is its own evidence.
//!
//! Counts: `trials = configurations + remeasurements + failed`, where a re-measurement is a
//! trial of a configuration that had already produced the objective (origin `confirm`,
//! `decision` or `ablation` in practice, `Origin::is_remeasurement`, or a request the server
//! ran as an already measured configuration), pooled into it.
//!
//! Compact: per configuration only the objective metric's samples are kept (a few numbers), not
//! the records, so the run loop can hold the standings of a run of thousands of trials.
//!
//! When a decision phase ran (engine/decision/, rebuilt from the journal by src/decided.rs),
//! its recommendation is the leader, provided it was measured and met the constraints: the
//! phase measured it after the selection, in interleaved rounds with its rivals, which the
//! pooled values of the search cannot match. Every reader follows.

use crate::decided::DecisionReplay;
use crate::engine::objective::{Direction, Objective, Stat};
use crate::engine::space::{config_key, Config};
use crate::engine::stats::Summary;
use crate::trial::{Origin, TrialRecord};
use std::collections::{BTreeMap, HashMap};

/// One configuration as the run measured it, all its trials pooled.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    /// Its first trial that produced the objective: the trial its report row is named by.
    pub trial: usize,
    /// Later trials that measured it again, pooled into it (journal order).
    pub also: Vec<usize>,
    /// Why its first trial was measured.
    pub origin: Origin,
    /// The configuration as the server ran it (the pool's key).
    pub params: Config,
    /// Distinct requested configurations pooled into it (1 when it was always asked the same
    /// way; more when the server ran several requests identically, e.g. `-b 8 -ub 6156` and
    /// `-b 8 -ub 8192` both as `-b 8 -ub 8`).
    pub spellings: usize,
    /// The objective's statistic over all its samples (its trial's value when measured once).
    pub objective: f64,
    /// Samples of the objective metric behind `objective`.
    pub samples: usize,
    /// Every measurement of it met the constraints.
    pub feasible: bool,
}

impl Standing {
    /// Trials that measured it.
    pub fn measurements(&self) -> usize {
        1 + self.also.len()
    }

    /// "trial 4", "trial 4 (measured 3 times: trials 4, 9, 12)", or with several requests
    /// the server ran identically "trial 4 (measured 2 times: trials 4, 9; 2 requested
    /// configurations ran as it)".
    pub fn trials_text(&self) -> String {
        if self.also.is_empty() {
            return format!("trial {}", self.trial);
        }
        let all: Vec<String> = std::iter::once(self.trial)
            .chain(self.also.iter().copied())
            .map(|t| t.to_string())
            .collect();
        let spellings = if self.spellings > 1 {
            format!("; {} requested configurations ran as it", self.spellings)
        } else {
            String::new()
        };
        format!(
            "trial {} (measured {} times: trials {}{spellings})",
            self.trial,
            self.measurements(),
            all.join(", ")
        )
    }
}

/// How the journal's trials divide up: `trials = configurations + remeasurements + failed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrialCounts {
    /// Trials in the journal.
    pub trials: usize,
    /// Distinct configurations, as the server ran them, that produced the objective
    /// (`feasible + infeasible`).
    pub configurations: usize,
    /// Of which every measurement met the constraints.
    pub feasible: usize,
    /// Of which some measurement violated a constraint.
    pub infeasible: usize,
    /// Trials that measured an already measured configuration again (pooled into it), a
    /// request the server ran as one included.
    pub remeasurements: usize,
    /// The re-measurements by the origin of the trial (`confirm`, `decision`, `ablation`, ...).
    pub remeasured_by: BTreeMap<&'static str, usize>,
    /// Trials that failed or produced no objective (never pooled).
    pub failed: usize,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl TrialCounts {
    /// "(confirm 3, decision 5)", or empty without re-measurements.
    pub fn origins_text(&self) -> String {
        if self.remeasured_by.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .remeasured_by
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect();
        format!(" ({})", parts.join(", "))
    }

    /// One line every reader prints: "40 trials: 30 configurations, 8 re-measurements
    /// (confirm 3, decision 5), 2 failed".
    pub fn text(&self) -> String {
        let mut parts = vec![plural(
            self.configurations,
            "configuration",
            "configurations",
        )];
        if self.remeasurements > 0 {
            parts.push(format!(
                "{}{}",
                plural(self.remeasurements, "re-measurement", "re-measurements"),
                self.origins_text()
            ));
        }
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        format!(
            "{}: {}",
            plural(self.trials, "trial", "trials"),
            parts.join(", ")
        )
    }
}

/// The pooled statistic of a configuration's samples (None without any finite sample). The
/// report's rows use it too, so a row and its standing carry the same number.
pub fn pooled_objective(samples: &[f64], stat: Stat) -> Option<f64> {
    Summary::of(samples).map(|s| s.get(stat))
}

/// The objective a trial produced (it ran, with a finite value), or None: only such trials
/// are pooled; a failure is its own evidence.
pub fn produced_objective(rec: &TrialRecord) -> Option<f64> {
    rec.objective.filter(|v| rec.is_ok() && v.is_finite())
}

/// The `config_key` of the configuration a trial ran (`TrialRecord::effective_params`).
pub fn ran_key(rec: &TrialRecord) -> String {
    config_key(rec.effective_params())
}

/// Which configuration each trial measured, as the server ran it: the one grouping of the
/// journal's trials into configurations, shared by `Standings`, the report's rows
/// (report/analysis.rs) and the run loop (what a request ran as, for the decision phase's plan).
/// Fed every record in journal order.
///
/// A trial that produced the objective belongs to the configuration it ran (`ran_key`), so
/// requests the server ran identically are one configuration; except that a request measured
/// again stays with its first measurement, even when the server reported running it
/// differently this time (an `auto` layer count estimated from bytes can move by one): the
/// decision phase compares its arms by request, and the baseline must not split in two.
/// Failed trials are keyed by nothing: never pooled.
#[derive(Clone, Debug, Default)]
pub struct Grouping {
    /// `config_key` of each request that produced the objective -> the key of the configuration
    /// its first such trial ran as, when that differs (None: it ran as asked).
    first_ran: HashMap<String, Option<String>>,
}

/// Where `Grouping::add` put a trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouped {
    /// The key of the configuration (`config_key` text of it as the server ran it).
    pub key: String,
    /// The trial's request had not been seen before (a new spelling, or a new configuration).
    pub new_request: bool,
}

impl Grouping {
    /// The configuration of a trial (in journal order), or None for a trial that produced no
    /// objective.
    pub fn add(&mut self, rec: &TrialRecord) -> Option<Grouped> {
        produced_objective(rec)?;
        let asked = config_key(&rec.params);
        if let Some(first) = self.first_ran.get(&asked) {
            return Some(Grouped {
                key: first.clone().unwrap_or(asked),
                new_request: false,
            });
        }
        let ran = ran_key(rec);
        self.first_ran
            .insert(asked.clone(), (ran != asked).then(|| ran.clone()));
        Some(Grouped {
            key: ran,
            new_request: true,
        })
    }

    /// The key of the configuration whose measurements a request's trials are in (the decision
    /// phase's arms are requests): what its first trial ran as, else the request itself.
    pub fn key_of(&self, requested: &Config) -> String {
        let asked = config_key(requested);
        match self.first_ran.get(&asked) {
            Some(Some(ran)) => ran.clone(),
            _ => asked,
        }
    }

    /// What a request ran as, when its first trial that produced the objective ran differently.
    pub fn ran_as(&self, requested: &Config) -> Option<Config> {
        self.first_ran
            .get(&config_key(requested))?
            .as_ref()
            .and_then(|k| serde_json::from_str(k).ok())
    }
}

/// A configuration's pool: only what the rule needs.
#[derive(Clone, Debug)]
struct Pool {
    trial: usize,
    origin: Origin,
    also: Vec<usize>,
    spellings: usize,
    samples: Vec<f64>,
    objective: f64,
    feasible: bool,
}

/// The journal pooled by configuration, fed one trial at a time in journal order.
#[derive(Clone, Debug)]
pub struct Standings {
    metric: String,
    stat: Stat,
    maximize: bool,
    grouping: Grouping,
    pools: HashMap<String, Pool>,
    trials: usize,
    failed: usize,
    remeasured_by: BTreeMap<&'static str, usize>,
    decision: DecisionReplay,
}

impl Standings {
    pub fn new(objective: &Objective) -> Standings {
        Standings {
            metric: objective.metric.metric.clone(),
            stat: objective.metric.stat,
            maximize: objective.direction == Direction::Maximize,
            grouping: Grouping::default(),
            pools: HashMap::new(),
            trials: 0,
            failed: 0,
            remeasured_by: BTreeMap::new(),
            decision: DecisionReplay::default(),
        }
    }

    /// The standings of a whole journal.
    pub fn of<'a>(
        objective: &Objective,
        records: impl IntoIterator<Item = &'a TrialRecord>,
    ) -> Standings {
        let mut s = Standings::new(objective);
        for r in records {
            s.add(r);
        }
        s
    }

    /// Count a journaled trial (in journal order). Returns the first trial of the
    /// configuration it was pooled into when it re-measured one.
    pub fn add(&mut self, rec: &TrialRecord) -> Option<usize> {
        self.trials += 1;
        self.decision.add(rec);
        let (Some(value), Some(grouped)) = (produced_objective(rec), self.grouping.add(rec)) else {
            self.failed += 1;
            return None;
        };
        let samples = rec
            .samples
            .iter()
            .filter_map(|s| s.get(&self.metric).copied())
            .filter(|v| v.is_finite());
        match self.pools.get_mut(&grouped.key) {
            None => {
                self.pools.insert(
                    grouped.key,
                    Pool {
                        trial: rec.trial,
                        origin: rec.origin,
                        also: vec![],
                        spellings: 1,
                        samples: samples.collect(),
                        objective: value,
                        feasible: rec.feasible,
                    },
                );
                None
            }
            Some(pool) => {
                pool.also.push(rec.trial);
                pool.spellings += grouped.new_request as usize;
                pool.samples.extend(samples);
                pool.feasible &= rec.feasible;
                if let Some(v) = pooled_objective(&pool.samples, self.stat) {
                    pool.objective = v;
                }
                *self.remeasured_by.entry(rec.origin.as_str()).or_default() += 1;
                Some(pool.trial)
            }
        }
    }

    /// Whether `a` ranks above `b`: better objective in the direction, then the earlier trial.
    fn above(&self, a: &Pool, b: &Pool) -> bool {
        let by_value = if self.maximize {
            a.objective.total_cmp(&b.objective)
        } else {
            b.objective.total_cmp(&a.objective)
        };
        by_value.then(b.trial.cmp(&a.trial)).is_gt()
    }

    fn lead(&self) -> Option<(&String, &Pool)> {
        if let Some(phase) = self.decision.phase() {
            let key = self.grouping.key_of(&phase.result().recommendation);
            if let Some((k, p)) = self.pools.get_key_value(&key).filter(|(_, p)| p.feasible) {
                return Some((k, p));
            }
        }
        let mut best: Option<(&String, &Pool)> = None;
        for (k, p) in self.pools.iter().filter(|(_, p)| p.feasible) {
            if best.is_none_or(|(_, b)| self.above(p, b)) {
                best = Some((k, p));
            }
        }
        best
    }

    fn standing(key: &str, p: &Pool) -> Standing {
        Standing {
            trial: p.trial,
            also: p.also.clone(),
            origin: p.origin,
            params: serde_json::from_str(key).unwrap_or_default(),
            spellings: p.spellings,
            objective: p.objective,
            samples: p.samples.len(),
            feasible: p.feasible,
        }
    }

    /// THE best configuration of the run so far (see the module comment): what every reader
    /// names as the best, the report's rank 1 and what `export` writes by default.
    pub fn leader(&self) -> Option<Standing> {
        self.lead().map(|(k, p)| Self::standing(k, p))
    }

    /// The leader's first trial and objective, without building its parameters.
    pub fn leader_value(&self) -> Option<(usize, f64)> {
        self.lead().map(|(_, p)| (p.trial, p.objective))
    }

    /// The baseline configuration (the first whose first trial has origin `baseline`), pooled,
    /// when it produced the objective.
    pub fn baseline(&self) -> Option<Standing> {
        self.pools
            .iter()
            .filter(|(_, p)| p.origin == Origin::Baseline)
            .min_by_key(|(_, p)| p.trial)
            .map(|(k, p)| Self::standing(k, p))
    }

    /// How the trials so far group into configurations (what each request ran as).
    pub fn grouping(&self) -> &Grouping {
        &self.grouping
    }

    pub fn counts(&self) -> TrialCounts {
        let feasible = self.pools.values().filter(|p| p.feasible).count();
        TrialCounts {
            trials: self.trials,
            configurations: self.pools.len(),
            feasible,
            infeasible: self.pools.len() - feasible,
            remeasurements: self.remeasured_by.values().sum(),
            remeasured_by: self.remeasured_by.clone(),
            failed: self.failed,
        }
    }
}

/// The best configuration of a journal (`Standings::leader` over all its records).
pub fn leader<'a>(
    objective: &Objective,
    records: impl IntoIterator<Item = &'a TrialRecord>,
) -> Option<Standing> {
    Standings::of(objective, records).leader()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::objective::{MetricRef, Transform};
    use crate::engine::space::ParamValue;
    use crate::trial::Status;

    fn objective(direction: Direction) -> Objective {
        Objective {
            metric: MetricRef {
                metric: "decode_tps".into(),
                stat: Stat::Median,
            },
            direction,
            constraints: vec![],
            transform: Transform::Auto,
        }
    }

    fn rec(trial: usize, origin: Origin, ctx: i64, samples: &[f64]) -> TrialRecord {
        let params = Config::from([("num_ctx".to_string(), ParamValue::Int(ctx))]);
        TrialRecord {
            trial,
            origin,
            params,
            effective: None,
            status: if samples.is_empty() {
                Status::Failed
            } else {
                Status::Ok
            },
            objective: pooled_objective(samples, Stat::Median),
            feasible: !samples.is_empty(),
            metrics: Default::default(),
            samples: samples
                .iter()
                .map(|v| BTreeMap::from([("decode_tps".to_string(), *v)]))
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

    /// Trial 2 has the best single value, but its re-measurement pulls it below trial 1.
    fn journal() -> Vec<TrialRecord> {
        vec![
            rec(0, Origin::Baseline, 512, &[40.0, 41.0, 42.0]),
            rec(1, Origin::Initial, 1024, &[50.0, 51.0, 52.0]),
            rec(2, Origin::Initial, 2048, &[54.0, 55.0, 56.0]),
            rec(3, Origin::Model, 4096, &[]),
            rec(4, Origin::Confirm, 2048, &[44.0, 45.0, 46.0]),
            rec(5, Origin::Confirm, 1024, &[50.0, 51.0, 52.0]),
            rec(6, Origin::Decision, 512, &[42.0, 43.0, 44.0]),
        ]
    }

    #[test]
    fn the_leader_is_the_pooled_best_not_the_luckiest_trial() {
        let j = journal();
        let s = Standings::of(&objective(Direction::Maximize), &j);
        let l = s.leader().unwrap();
        assert_eq!((l.trial, l.also.clone(), l.objective), (1, vec![5], 51.0));
        assert_eq!(l.params["num_ctx"], ParamValue::Int(1024));
        assert_eq!(l.samples, 6);
        assert_eq!(s.leader_value(), Some((1, 51.0)));
        assert_eq!(l.trials_text(), "trial 1 (measured 2 times: trials 1, 5)");
        // The baseline is pooled as well: median of 40..44.
        let b = s.baseline().unwrap();
        assert_eq!((b.trial, b.objective, b.also), (0, 42.0, vec![6]));
        // Minimizing: the lowest pooled value.
        let s = Standings::of(&objective(Direction::Minimize), &j);
        assert_eq!(s.leader_value(), Some((0, 42.0)));
    }

    #[test]
    fn equal_values_go_to_the_earliest_trial_and_infeasible_never_leads() {
        let mut j = vec![
            rec(0, Origin::Initial, 512, &[50.0]),
            rec(1, Origin::Initial, 1024, &[50.0]),
            rec(2, Origin::Initial, 2048, &[60.0]),
            rec(3, Origin::Confirm, 2048, &[61.0]),
        ];
        j[3].feasible = false;
        let s = Standings::of(&objective(Direction::Maximize), &j);
        assert_eq!(s.leader_value(), Some((0, 50.0)));
        assert_eq!(
            leader(&objective(Direction::Maximize), &j[..1])
                .unwrap()
                .trial,
            0
        );
        assert_eq!(leader(&objective(Direction::Maximize), &[]), None);
    }

    #[test]
    fn trials_are_configurations_plus_remeasurements_plus_failures() {
        let s = Standings::of(&objective(Direction::Maximize), &journal());
        let c = s.counts();
        assert_eq!(
            (c.trials, c.configurations, c.remeasurements, c.failed),
            (7, 3, 3, 1)
        );
        assert_eq!(c.trials, c.configurations + c.remeasurements + c.failed);
        assert_eq!((c.feasible, c.infeasible), (3, 0));
        assert_eq!(
            c.text(),
            "7 trials: 3 configurations, 3 re-measurements (confirm 2, decision 1), 1 failed"
        );
        let one = Standings::of(&objective(Direction::Maximize), &journal()[..1]).counts();
        assert_eq!(one.text(), "1 trial: 1 configuration");
    }

    /// A trial of `num_ctx = asked` that the server ran as `ran`.
    fn ran_as(trial: usize, origin: Origin, asked: i64, ran: i64, samples: &[f64]) -> TrialRecord {
        let mut r = rec(trial, origin, asked, samples);
        if ran != asked {
            r.effective = Some(Config::from([(
                "num_ctx".to_string(),
                ParamValue::Int(ran),
            )]));
        }
        r
    }

    #[test]
    fn requests_the_server_ran_identically_are_one_configuration() {
        // Trials 1 and 2 asked 4096 and 8192; the server ran both as 2048, which trial 3 asked.
        // Trial 4 asked 8192 again and failed: a failure is never pooled.
        let j = vec![
            rec(0, Origin::Baseline, 512, &[40.0, 41.0, 42.0]),
            ran_as(1, Origin::Model, 4096, 2048, &[50.0, 51.0]),
            ran_as(2, Origin::Model, 8192, 2048, &[52.0, 53.0]),
            rec(3, Origin::Model, 2048, &[49.0, 50.0]),
            rec(4, Origin::Model, 8192, &[]),
        ];
        let s = Standings::of(&objective(Direction::Maximize), &j);
        let l = s.leader().unwrap();
        assert_eq!((l.trial, l.also.clone(), l.samples), (1, vec![2, 3], 6));
        assert_eq!(
            l.params["num_ctx"],
            ParamValue::Int(2048),
            "what the server ran"
        );
        assert_eq!(l.spellings, 3);
        assert_eq!(l.objective, 50.5);
        assert_eq!(
            l.trials_text(),
            "trial 1 (measured 3 times: trials 1, 2, 3; 3 requested configurations ran as it)"
        );
        let c = s.counts();
        assert_eq!((c.configurations, c.remeasurements, c.failed), (2, 2, 1));
        assert_eq!(c.remeasured_by, BTreeMap::from([("model", 2)]));
        // The grouping answers for requests.
        let g = s.grouping();
        let at = |n: i64| Config::from([("num_ctx".to_string(), ParamValue::Int(n))]);
        assert_eq!(g.key_of(&at(8192)), config_key(&at(2048)));
        assert_eq!(g.ran_as(&at(4096)), Some(at(2048)));
        assert_eq!(g.ran_as(&at(2048)), None, "ran as asked");
        assert_eq!(g.key_of(&at(1024)), config_key(&at(1024)), "never measured");
    }

    #[test]
    fn a_request_measured_again_stays_with_its_first_measurement() {
        // The baseline asked 512 and ran as 500; its re-measurement reported 501 (an estimate
        // that moved): still the baseline's configuration, not a second one.
        let j = vec![
            ran_as(0, Origin::Baseline, 512, 500, &[40.0, 42.0]),
            ran_as(1, Origin::Decision, 512, 501, &[41.0, 43.0]),
        ];
        let s = Standings::of(&objective(Direction::Maximize), &j);
        let b = s.baseline().unwrap();
        assert_eq!((b.trial, b.also, b.spellings), (0, vec![1], 1));
        assert_eq!(b.params["num_ctx"], ParamValue::Int(500));
        assert_eq!(s.counts().configurations, 1);
    }
}
