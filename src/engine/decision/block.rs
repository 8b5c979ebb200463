//! A block of arms measured in interleaved rounds: each round measures every active arm once,
//! in an order rotated by one position per round, so that drift hits all arms alike; paired
//! values of two arms are those of the complete rounds where both ran.

use super::same_config;
use crate::engine::space::Config;

/// See `Block::settle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RoundState {
    Waiting,
    Closed,
    Idle,
}

/// What became of an arm's slot in the current round.
#[derive(Clone, Debug, PartialEq)]
enum Slot {
    Pending,
    Ran(f64),
    Failed,
}

/// Arms measured in interleaved rounds.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Block {
    pub(super) arms: Vec<Config>,
    /// The round (1-based) in which an arm failed, 0 when it was known to fail before the
    /// first; a failed arm is not measured again.
    pub(super) failed: Vec<Option<usize>>,
    /// Complete rounds: per arm its value, None when it was not measured (or failed) in it.
    pub(super) rounds: Vec<Vec<Option<f64>>>,
    /// The round being measured: arms in measurement order with what became of each.
    current: Vec<(usize, Slot)>,
}

impl Block {
    pub(super) fn new() -> Block {
        Block {
            arms: vec![],
            failed: vec![],
            rounds: vec![],
            current: vec![],
        }
    }

    /// The index of `config` among the arms, adding it when it is new (arms are distinct).
    pub(super) fn add(&mut self, config: Config) -> usize {
        if let Some(i) = self.find(&config) {
            return i;
        }
        self.arms.push(config);
        self.failed.push(None);
        self.arms.len() - 1
    }

    pub(super) fn find(&self, config: &Config) -> Option<usize> {
        self.arms.iter().position(|a| same_config(a, config))
    }

    /// Mark an arm failed before any round (it failed in the search): it is never measured.
    pub(super) fn mark_failed(&mut self, arm: usize) {
        self.failed[arm] = Some(0);
    }

    pub(super) fn has_failed(&self, arm: usize) -> bool {
        self.failed[arm].is_some()
    }

    /// Complete rounds so far.
    pub(super) fn n_rounds(&self) -> usize {
        self.rounds.len()
    }

    /// Start a round over the arms for which `measure` holds (and that have not failed), in
    /// index order rotated left by the number of rounds done. Returns its size (0: no round).
    pub(super) fn start_round(&mut self, measure: impl Fn(usize) -> bool) -> usize {
        let mut order: Vec<usize> = (0..self.arms.len())
            .filter(|&i| !self.has_failed(i) && measure(i))
            .collect();
        if !order.is_empty() {
            let k = self.rounds.len() % order.len();
            order.rotate_left(k);
        }
        self.current = order.into_iter().map(|i| (i, Slot::Pending)).collect();
        self.current.len()
    }

    /// The arm to measure next in the current round.
    pub(super) fn pending(&self) -> Option<usize> {
        self.current
            .iter()
            .find(|(_, s)| *s == Slot::Pending)
            .map(|(i, _)| *i)
    }

    /// Record a measurement of `config`: the pending arm when it equals it, else any arm of the
    /// round still pending that equals it. Returns the arm, or None when the measurement fits
    /// no pending slot (it is then ignored).
    pub(super) fn record(&mut self, config: &Config, value: Option<f64>) -> Option<usize> {
        let slot = self
            .current
            .iter()
            .position(|(i, s)| *s == Slot::Pending && same_config(&self.arms[*i], config))?;
        let arm = self.current[slot].0;
        self.current[slot].1 = match value {
            Some(v) if v.is_finite() => Slot::Ran(v),
            _ => {
                self.failed[arm] = Some(self.rounds.len() + 1);
                Slot::Failed
            }
        };
        Some(arm)
    }

    /// Where the current round stands: still waiting for a measurement (unless the budget is
    /// spent, which discards the incomplete round: only complete rounds are paired), or just
    /// closed into `rounds`, or idle (no round under way).
    pub(super) fn settle(&mut self, out_of_budget: bool) -> RoundState {
        if self.pending().is_some() {
            if !out_of_budget {
                return RoundState::Waiting;
            }
            self.current.clear();
            return RoundState::Idle;
        }
        if self.current.is_empty() {
            return RoundState::Idle;
        }
        self.close_round();
        RoundState::Closed
    }

    /// Arms a new round would measure among those for which `measure` holds.
    pub(super) fn round_size(&self, measure: impl Fn(usize) -> bool) -> usize {
        (0..self.arms.len())
            .filter(|&i| !self.has_failed(i) && measure(i))
            .count()
    }

    /// Close the current (complete) round into `rounds`.
    fn close_round(&mut self) {
        let mut row = vec![None; self.arms.len()];
        for (i, s) in self.current.drain(..) {
            if let Slot::Ran(v) = s {
                row[i] = Some(v);
            }
        }
        self.rounds.push(row);
    }

    /// Paired values of arms `a` and `b`: the complete rounds where both ran.
    pub(super) fn paired(&self, a: usize, b: usize) -> (Vec<f64>, Vec<f64>) {
        self.rounds
            .iter()
            .filter_map(|r| Some((r[a]?, r[b]?)))
            .unzip()
    }

    /// Every value of arm `a` in the complete rounds.
    pub(super) fn values(&self, a: usize) -> Vec<f64> {
        self.rounds.iter().filter_map(|r| r[a]).collect()
    }
}
