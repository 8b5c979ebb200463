//! The race: the baseline and the leading candidates in interleaved rounds, eliminating the
//! significantly worse (paired t-tests against the current best, Holm-corrected), and the rule
//! choosing the simplest configuration among those left.

use super::ablation::ablation_arms;
use super::block::{Block, RoundState};
use super::stats::holm;
use super::{
    prefer_order, value_of, with_value, DecisionPhase, Plan, Role, Step, RACE_SHARE, TIE_MARGIN_PCT,
};
use crate::engine::space::Config;
use std::cmp::Ordering;

/// The race's state. Arm 0 is the baseline.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Race {
    pub(super) block: Block,
    /// Arms that can still win (the baseline stays measured after it loses this).
    pub(super) contender: Vec<bool>,
    /// Arm and the 1-based round that eliminated it.
    pub(super) eliminated: Vec<(usize, usize)>,
    /// Trials the race may take, and took.
    pub(super) cap: usize,
    pub(super) spent: usize,
    /// Whether the ablation to come was sized with the output variants' arms.
    pub(super) variants: bool,
    /// No race (`Sizing::direct`): the leader, arm 1, goes straight to the ablation.
    pub(super) direct: bool,
}

/// A candidate with its output settings set back to the baseline's (unless the study allows
/// output changes): the recommendation never changes what the model writes by accident.
fn project(plan: &Plan, candidate: &Config) -> Config {
    if plan.settings.allow_output_changes {
        return candidate.clone();
    }
    plan.params
        .iter()
        .filter(|p| p.role == Role::Output)
        .fold(candidate.clone(), |c, p| {
            with_value(&c, &p.name, plan.baseline.get(&p.name))
        })
}

/// How the race fits its phase's budget beside the ablation that follows (`Race::new`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sizing {
    /// Candidates raced (the baseline is the other arm).
    candidates: usize,
    /// The trials kept for the ablation: `min_rounds` rounds of the largest one a raced
    /// candidate would need.
    reserve: usize,
    /// Whether that reserve covers the output variants' arms.
    variants: bool,
    /// No race: the search's leader goes straight to the ablation.
    direct: bool,
}

/// The largest race that leaves `min_rounds` rounds of the ablation after it, in this order of
/// preference: fewer candidates (down to one) with the output variants measured; fewer
/// candidates without them; no race (the leader's ablation alone measures it against the
/// baseline) with them, then without. None when not even that fits: the race then takes every
/// candidate and the budget as before, and the ablation gets what is left.
fn size(plan: &Plan, candidates: &[Config]) -> Option<Sizing> {
    let mr = plan.settings.min_rounds.max(2);
    let need = |c: &Config, variants: bool| {
        mr * ablation_arms(plan, c, variants, true)
            .block
            .round_size(|_| true)
    };
    let reserve = |k: usize, variants: bool| {
        candidates
            .iter()
            .take(k)
            .map(|c| need(c, variants))
            .max()
            .unwrap_or(0)
    };
    for variants in [true, false] {
        for k in (1..=candidates.len()).rev() {
            let r = reserve(k, variants);
            if mr * (k + 1) + r <= plan.budget {
                return Some(Sizing {
                    candidates: k,
                    reserve: r,
                    variants,
                    direct: false,
                });
            }
        }
    }
    for variants in [true, false] {
        let r = reserve(1, variants);
        if !candidates.is_empty() && r <= plan.budget {
            return Some(Sizing {
                candidates: 1,
                reserve: r,
                variants,
                direct: true,
            });
        }
    }
    None
}

impl Race {
    /// The baseline and up to `settings.candidates` distinct projected candidates, best first
    /// (a candidate equal to the baseline, or to an earlier one, after projection is that
    /// arm), as many as leave the ablation its rounds (`size`).
    pub(super) fn new(plan: &Plan) -> Race {
        let baseline = plan.baseline.clone();
        let mut distinct = Block::new();
        distinct.add(baseline.clone());
        for c in &plan.candidates {
            if distinct.arms.len() > plan.settings.candidates {
                break;
            }
            distinct.add(project(plan, c));
        }
        let candidates = &distinct.arms[1..];
        let min_rounds = plan.settings.min_rounds.max(2);
        let share = (plan.budget as f64 * RACE_SHARE).floor() as usize;
        let sizing = if plan.plan_both_stages {
            size(plan, candidates)
        } else {
            None
        };
        let k = sizing.map_or(candidates.len(), |s| s.candidates);
        let mut block = Block::new();
        block.add(baseline);
        for c in &candidates[..k] {
            block.add(c.clone());
        }
        let n = block.arms.len();
        let cap = match sizing {
            Some(s) if s.direct => 0,
            Some(s) => share
                .min(plan.budget - s.reserve)
                .max(min_rounds * n)
                .min(plan.budget),
            None => share.max(min_rounds * n).min(plan.budget),
        };
        Race {
            block,
            contender: vec![true; n],
            eliminated: vec![],
            cap,
            spent: 0,
            variants: sizing.is_none_or(|s| s.variants),
            direct: sizing.is_some_and(|s| s.direct),
        }
    }

    pub(super) fn record(&mut self, config: &Config, value: Option<f64>) {
        self.spent += 1;
        if let Some(arm) = self.block.record(config, value) {
            if let Some(round) = self.block.failed[arm] {
                if self.contender[arm] {
                    self.contender[arm] = false;
                    self.eliminated.push((arm, round));
                }
            }
        }
    }

    /// Arms that can still win, in index order.
    pub(super) fn alive(&self) -> Vec<usize> {
        (0..self.block.arms.len())
            .filter(|&i| self.contender[i] && !self.block.has_failed(i))
            .collect()
    }
}

impl DecisionPhase {
    /// One step of the race (see `advance`): false while waiting for a measurement.
    pub(super) fn race_step(&mut self) -> bool {
        let out_of_budget = self.told >= self.plan.budget;
        match self.race.block.settle(out_of_budget) {
            RoundState::Waiting => return false,
            RoundState::Closed => self.eliminate(),
            RoundState::Idle => {}
        }
        if self.race.alive().len() >= 2 {
            let contender = self.race.contender.clone();
            let measure = |i: usize| i == 0 || contender[i];
            let size = self.race.block.round_size(measure);
            if self.round_fits(self.race.spent, self.race.cap, size)
                || self.round_fits(self.race.spent, self.extended_cap(), size)
            {
                self.race.block.start_round(measure);
                return false;
            }
        }
        self.start_ablation();
        true
    }

    /// While the baseline is still tied, ending the race would end the phase (the baseline
    /// wins, there is nothing to ablate) and leave the ablation's share unused: the race may
    /// then go on into it, keeping `min_rounds` rounds of the largest ablation a contender
    /// would need. 0 when the baseline is no longer a contender.
    fn extended_cap(&self) -> usize {
        if self.race.direct || !self.race.alive().contains(&0) {
            return 0;
        }
        let variants = if self.race.variants {
            self.plan.output_variants.len()
        } else {
            0
        };
        let plan = &self.plan;
        let largest = self
            .race
            .alive()
            .into_iter()
            .filter(|&a| a != 0)
            .map(|a| {
                let arm = &self.race.block.arms[a];
                if plan.race_uses_idle_reserve {
                    // The arms the ablation would measure; with only the contender and the
                    // baseline it measures what the race does, and needs no reserve.
                    let n = ablation_arms(plan, arm, self.race.variants, true)
                        .block
                        .round_size(|_| true);
                    if n <= 2 {
                        0
                    } else {
                        n
                    }
                } else {
                    self.changed_params(arm).len() + variants + 2
                }
            })
            .max()
            .unwrap_or(0);
        let reserve = self.min_rounds() * largest;
        self.race.spent + self.plan.budget.saturating_sub(self.told + reserve)
    }

    /// After a complete round (from `min_rounds` on): every contender is compared with the
    /// contender of best mean on their paired rounds, and those significantly worse are
    /// eliminated (one-sided paired t-tests, Holm's correction over the comparisons of the round).
    fn eliminate(&mut self) {
        let rounds = self.race.block.n_rounds();
        let alive = self.race.alive();
        if rounds < self.min_rounds() || alive.len() < 2 {
            return;
        }
        let block = &self.race.block;
        let best = alive.iter().copied().fold(alive[0], |b, a| {
            if self.mean_score(block, a) > self.mean_score(block, b) {
                a
            } else {
                b
            }
        });
        let others: Vec<usize> = alive.into_iter().filter(|&a| a != best).collect();
        let p: Vec<f64> = others
            .iter()
            .map(|&o| self.p_better(block, best, o))
            .collect();
        let rejected = holm(&p, self.alpha_one_sided());
        for (o, out) in others.into_iter().zip(rejected) {
            if out {
                self.race.contender[o] = false;
                self.race.eliminated.push((o, rounds));
            }
        }
    }

    /// The configuration the race chose among the arms alive (tied): the baseline when it is
    /// among them. Otherwise the fewest changes from the baseline, where an arm with fewer
    /// changes wins only when its mean is within `TIE_MARGIN_PCT` of the best mean of the tied
    /// (so a simpler arm that is measurably, if not yet significantly, slower does not win on
    /// parsimony alone: the ablation removes the useless changes of the better one); then among
    /// the tied with that many changes, `simplest` (preferred directions, then the best mean).
    /// The baseline when nothing is alive; the search's leader when there was no race.
    pub(super) fn race_choice(&self) -> usize {
        let block = &self.race.block;
        if self.race.direct && block.arms.len() > 1 {
            return 1;
        }
        let alive = self.race.alive();
        if alive.is_empty() || alive.contains(&0) {
            return 0;
        }
        let best = alive
            .iter()
            .map(|&a| self.mean_score(block, a))
            .fold(f64::NEG_INFINITY, f64::max);
        let changes = |a: usize| self.changed_params(&block.arms[a]).len();
        let fewest = alive
            .iter()
            .filter(|&&a| self.shortfall_pct(block, a, best) < TIE_MARGIN_PCT)
            .map(|&a| changes(a))
            .min();
        let pool: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&a| fewest.is_none_or(|k| changes(a) == k))
            .collect();
        // The preferred directions (the largest context) decide only among the arms that are
        // as fast as the fastest of the pool within the margin: a tied context that measures
        // several percent slower is not "as fast" (`costs_beyond_margin`).
        let fastest = pool.iter().copied().max_by(|&a, &b| {
            self.mean_score(block, a)
                .partial_cmp(&self.mean_score(block, b))
                .unwrap_or(Ordering::Equal)
        });
        let pool: Vec<usize> = match fastest {
            Some(f) => pool
                .iter()
                .copied()
                .filter(|&a| !self.costs_beyond_margin(block, a, f, TIE_MARGIN_PCT))
                .collect(),
            None => pool,
        };
        self.simplest(block, &pool).unwrap_or(0)
    }

    /// How far, in percent, arm `a`'s mean falls short of the mean score `best`.
    fn shortfall_pct(&self, block: &Block, a: usize, best: f64) -> f64 {
        let s = self.mean_score(block, a);
        let values = block.values(a);
        let log = self.plan.log_scale && values.iter().all(|x| *x > 0.0);
        if log {
            100.0 * (1.0 - (s - best).exp())
        } else {
            let level = best.abs();
            if level > 0.0 {
                100.0 * (best - s) / level
            } else {
                0.0
            }
        }
    }

    /// The simplest of `arms` (indices into `block`): fewest parameters changed from the
    /// baseline (so the baseline, with none, wins whenever it is among them); then each
    /// parameter's preferred direction, in the order of `plan.params`; then the best mean;
    /// then the earlier arm (the search's order). None for no arms.
    pub(super) fn simplest(&self, block: &Block, arms: &[usize]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for &a in arms {
            best = match best {
                Some(b) if self.compare_simplicity(block, a, b) != Ordering::Greater => Some(b),
                _ => Some(a),
            };
        }
        best
    }

    /// Greater when arm `a` is preferred to arm `b` by the rule of `simplest` (before the
    /// index tie-break).
    fn compare_simplicity(&self, block: &Block, a: usize, b: usize) -> Ordering {
        let (ca, cb) = (&block.arms[a], &block.arms[b]);
        let by_changes = self
            .changed_params(cb)
            .len()
            .cmp(&self.changed_params(ca).len());
        if by_changes != Ordering::Equal {
            return by_changes;
        }
        for p in &self.plan.params {
            if let Some(prefer) = p.prefer {
                let o = prefer_order(prefer, &value_of(ca, &p.name), &value_of(cb, &p.name));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
        self.mean_score(block, a)
            .partial_cmp(&self.mean_score(block, b))
            .unwrap_or(Ordering::Equal)
    }

    /// The race is over: the configuration the ablation starts from is the simplest of the
    /// arms still alive (the baseline when none is).
    fn start_ablation(&mut self) {
        let p = self.race.block.arms[self.race_choice()].clone();
        self.ablation = Some(self.ablation_for(p));
        self.step = Step::Ablation;
    }
}
