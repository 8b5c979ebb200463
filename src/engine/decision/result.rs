//! The phase's answer: which measured configuration is recommended, its effect against the
//! baseline from post-selection rounds, what each change and output setting buys, and the
//! verdict (a recommendation not significantly better than the baseline is the baseline).

use super::block::Block;
use super::{
    same_value, value_of, ChangeEffect, DecisionPhase, DecisionResult, Effect, OutputEffect,
    Verdict,
};
use crate::engine::space::Config;

/// A recommendation before the verdict: the configuration, its effect against the baseline
/// (from the rounds that measured it after the selection), and whether it ran in them.
struct Pick {
    config: Config,
    vs_baseline: Option<Effect>,
    ran: bool,
}

impl DecisionPhase {
    /// The phase's answer so far (`Verdict::Undecided` while it runs).
    pub fn result(&self) -> DecisionResult {
        let done = self.is_done();
        let race = &self.race;
        let tied: Vec<Config> = race
            .alive()
            .into_iter()
            .filter(|_| !race.direct)
            .map(|i| race.block.arms[i].clone())
            .collect();
        let eliminated = race
            .eliminated
            .iter()
            .map(|&(a, round)| (race.block.arms[a].clone(), round))
            .collect();
        let pick = self.pick();
        let baseline_failed = race.block.has_failed(0)
            || self
                .ablation
                .as_ref()
                .is_some_and(|a| a.base.is_some_and(|i| a.block.has_failed(i)))
            || self
                .confirm
                .as_ref()
                .is_some_and(|c| c.base.is_some_and(|i| c.block.has_failed(i)));
        let changed = !self.changed_params(&pick.config).is_empty();
        let better = pick.vs_baseline.as_ref().is_some_and(|e| {
            e.significant
                && if self.plan.maximize {
                    e.lo > 0.0
                } else {
                    e.hi < 0.0
                }
        });
        let accept = changed && pick.ran && (better || baseline_failed);
        let (recommendation, vs_baseline, rejected, rejected_vs_baseline) = if accept || !changed {
            (pick.config, pick.vs_baseline, None, None)
        } else {
            (
                self.plan.baseline.clone(),
                None,
                Some(pick.config),
                pick.vs_baseline,
            )
        };
        let verdict = match (done, accept) {
            (false, _) => Verdict::Undecided,
            (true, true) => Verdict::Better,
            (true, false) => Verdict::DefaultsBest,
        };
        let (changes, outputs) = self.effects(&recommendation);
        DecisionResult {
            recommendation,
            verdict,
            done,
            tied,
            eliminated,
            vs_baseline,
            changes,
            outputs,
            trials: self.told,
            race_trials: race.spent,
            ablation_trials: self.ablation.as_ref().map_or(0, |a| a.spent)
                + self.confirm.as_ref().map_or(0, |c| c.spent),
            ablation_rounds: self.ablation.as_ref().map_or(0, |a| a.block.n_rounds()),
            rejected,
            rejected_vs_baseline,
            race_skipped: race.direct,
        }
    }

    /// The measured configuration to recommend, by the stage the phase reached:
    /// - in the race: the simplest of the arms alive, with the race's rounds;
    /// - the ablation had fewer than `min_rounds` rounds (budget): the chosen configuration
    ///   with all its changes, untested, with the race's rounds; if it failed in the ablation,
    ///   it cannot be recommended;
    /// - the ablation's decisions lead to an arm it measured: that arm, with the ablation's rounds;
    /// - they lead to a configuration the confirmation leg measured and found not significantly
    ///   worse than the chosen one: it, with the confirmation's rounds;
    /// - otherwise (no budget for the confirmation, the dropped changes interact, or every change
    ///   was dropped although the chosen configuration beat the baseline in the same rounds):
    ///   the simplest among the chosen configuration and its single reversions that dropped a
    ///   change and are not significantly worse than it, with the ablation's rounds.
    fn pick(&self) -> Pick {
        let race = &self.race;
        let from = |block: &Block, arm: usize, base: Option<usize>| Pick {
            config: block.arms[arm].clone(),
            vs_baseline: base.and_then(|x| self.effect(block, arm, x)),
            ran: !block.has_failed(arm),
        };
        let Some(a) = &self.ablation else {
            return from(&race.block, self.race_choice(), Some(0));
        };
        let b = &a.block;
        if b.arms.len() < 2 || b.n_rounds() < self.min_rounds() || b.has_failed(0) {
            let arm = race.block.find(&b.arms[0]).unwrap_or(0);
            let mut pick = from(&race.block, arm, Some(0));
            pick.ran &= !b.has_failed(0);
            return pick;
        }
        let Some(leg) = self.leg() else {
            return from(b, 0, a.base);
        };
        let alpha = self.alpha_one_sided();
        // Every change dropped although P beat the baseline in the same rounds: each change's
        // test lacked the power that their joint effect had (few rounds, several changes),
        // which is no evidence that they buy nothing. Fall through to the simplest of P and the
        // reversions not significantly worse than it.
        let joint_gain = a
            .base
            .is_some_and(|x| !b.has_failed(x) && self.p_better(b, 0, x) < alpha);
        if let Some(i) = b.find(&leg.target) {
            if Some(i) == a.base && !b.has_failed(i) && !joint_gain {
                // Nothing buys anything, P included: P is what the phase arrived at, and the
                // verdict keeps the defaults with P's measured effect beside them.
                return from(b, 0, a.base);
            }
            if !b.has_failed(i) && Some(i) != a.base {
                return from(b, i, a.base);
            }
        }
        if let Some(c) = &self.confirm {
            let cb = &c.block;
            if cb.n_rounds() >= self.min_rounds()
                && !cb.has_failed(0)
                && !cb.has_failed(c.p)
                && self.p_better(cb, c.p, 0) > alpha
            {
                return from(cb, 0, c.base);
            }
        }
        let mut arms = vec![0];
        for ((_, r), kept) in a.changes.iter().zip(&leg.keep) {
            if !kept && !b.has_failed(*r) && self.p_better(b, 0, *r) > alpha {
                arms.push(*r);
            }
        }
        let arm = self.simplest(b, &arms).unwrap_or(0);
        from(b, arm, a.base)
    }

    /// `a` against `reference` in the race's rounds, when both were raced and ran: a change
    /// whose reversion is the baseline was measured by the race itself when the ablation had no
    /// round of its own (its reserve went to the race, race.rs `extended_cap`).
    fn race_effect(&self, a: &Config, reference: &Config) -> Option<Effect> {
        let block = &self.race.block;
        let (i, j) = (block.find(a)?, block.find(reference)?);
        if block.has_failed(i) || block.has_failed(j) {
            return None;
        }
        self.effect(block, i, j)
    }

    /// What each change of the chosen configuration and each output variant measured in the
    /// ablation, with whether `recommendation` keeps (applies) it.
    fn effects(&self, recommendation: &Config) -> (Vec<ChangeEffect>, Vec<OutputEffect>) {
        let Some(a) = &self.ablation else {
            return (vec![], vec![]);
        };
        let b = &a.block;
        let p = &b.arms[0];
        let baseline = &self.plan.baseline;
        let changes = a
            .changes
            .iter()
            .map(|(name, r)| ChangeEffect {
                param: name.clone(),
                baseline: value_of(baseline, name),
                value: value_of(p, name),
                // Too few ablation rounds to decide (the pick then rests on the race's
                // rounds): a change the race measured is told from the race's rounds too.
                effect: if b.has_failed(*r) {
                    None
                } else if b.n_rounds() >= self.min_rounds() {
                    self.effect(b, 0, *r)
                } else {
                    self.race_effect(p, &b.arms[*r])
                        .or_else(|| self.effect(b, 0, *r))
                },
                kept: !same_value(&value_of(recommendation, name), &value_of(baseline, name)),
            })
            .collect();
        let outputs = a
            .variants
            .iter()
            .map(|(name, v, arm)| OutputEffect {
                param: name.clone(),
                user_value: value_of(p, name),
                variant: v.clone(),
                effect: self.effect(b, *arm, 0),
                applied: same_value(&value_of(recommendation, name), v),
                skipped: false,
            })
            .chain(a.skipped.iter().map(|(name, v)| OutputEffect {
                param: name.clone(),
                user_value: value_of(p, name),
                variant: v.clone(),
                effect: None,
                applied: false,
                skipped: true,
            }))
            .collect();
        (changes, outputs)
    }
}
