//! The ablation path (after Fawcett & Hoos 2016, simplified): the configuration the race chose,
//! that configuration with each change reverted, with each output setting varied, and the
//! baseline, in interleaved rounds; a change whose reversion is not significantly worse buys
//! nothing measurable and is dropped. When several are dropped the result is a configuration no
//! round measured, so a short confirmation leg measures it against the chosen one and the
//! baseline before it is recommended (docs/decision.md, "Ablation").

use super::block::{Block, RoundState};
use super::stats::holm;
use super::{
    changes_from, prefer_order, same_config, same_value, value_of, with_value, DecisionPhase, Plan,
    Step, TIE_MARGIN_PCT,
};
use crate::engine::space::{Config, ParamValue};
use std::cmp::Ordering;

/// The ablation leg. Arm 0 is the configuration the race chose.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Ablation {
    pub(super) block: Block,
    /// Each change against the baseline: the parameter and the arm with it reverted.
    pub(super) changes: Vec<(String, usize)>,
    /// Each output setting varied: the parameter, its variant and the arm.
    pub(super) variants: Vec<(String, ParamValue, usize)>,
    /// Output variants of the plan left out for the budget (`ablation_for`), for the report.
    pub(super) skipped: Vec<(String, ParamValue)>,
    /// The baseline's arm (None when the baseline failed in the race).
    pub(super) base: Option<usize>,
    /// Trials this leg may take (what is left of the budget, less a reserve for the
    /// confirmation leg when one may be needed), and took.
    pub(super) cap: usize,
    pub(super) spent: usize,
}

/// The confirmation leg. Arm 0 is the configuration the ablation arrived at.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Confirm {
    pub(super) block: Block,
    /// The arm of the configuration the race chose, and the baseline's.
    pub(super) p: usize,
    pub(super) base: Option<usize>,
    pub(super) spent: usize,
}

/// What the ablation's rounds so far decide.
pub(super) struct Leg {
    /// Per change: kept in the recommendation.
    pub(super) keep: Vec<bool>,
    /// The chosen configuration with the dropped changes reverted and the applied variants set.
    pub(super) target: Config,
}

/// The arms of an ablation of `p` (see `DecisionPhase::ablation_for`): p, p with each change
/// reverted, with `variants` p with each output variant of a parameter it does not change, and
/// with `baseline` the baseline. Arms equal to another are that arm (with one change, its
/// reversion is the baseline). Pure, so the race can size itself for the ablation to come.
pub(super) fn ablation_arms(plan: &Plan, p: &Config, variants: bool, baseline: bool) -> Arms {
    let base = &plan.baseline;
    let mut block = Block::new();
    block.add(p.clone());
    let changes: Vec<(String, usize)> = changes_from(base, p)
        .into_iter()
        .map(|name| {
            let arm = block.add(with_value(p, &name, base.get(&name)));
            (name, arm)
        })
        .collect();
    let mut varied: Vec<(String, ParamValue, usize)> = Vec::new();
    for (name, v) in plan.output_variants.iter().filter(|_| variants) {
        if changes.iter().any(|(c, _)| c == name)
            || varied.iter().any(|(n, _, _)| n == name)
            || same_value(&value_of(p, name), v)
        {
            continue;
        }
        let arm = block.add(with_value(p, name, Some(v)));
        varied.push((name.clone(), v.clone(), arm));
    }
    let base = baseline.then(|| block.add(base.clone()));
    // A reversion that failed in the search would fail again: it is needed to run, known
    // without a measurement.
    for (_, arm) in &changes {
        if plan
            .known_failed
            .iter()
            .any(|c| same_config(c, &block.arms[*arm]))
        {
            block.mark_failed(*arm);
        }
    }
    Arms {
        block,
        changes,
        variants: varied,
        base,
    }
}

/// An ablation's arms (`ablation_arms`), before its budget is set.
pub(super) struct Arms {
    pub(super) block: Block,
    pub(super) changes: Vec<(String, usize)>,
    pub(super) variants: Vec<(String, ParamValue, usize)>,
    pub(super) base: Option<usize>,
}

impl DecisionPhase {
    /// The ablation of `p` (`ablation_arms`). The output variants are left out when the budget
    /// left cannot hold `min_rounds` rounds with them but can without: what each change buys
    /// decides the recommendation, a variant's speed effect only informs (docs/decision.md,
    /// "Budget").
    pub(super) fn ablation_for(&self, p: Config) -> Ablation {
        let with_base = !self.race.block.has_failed(0);
        let remaining = self.plan.budget.saturating_sub(self.told);
        let mr = self.min_rounds();
        let full = ablation_arms(&self.plan, &p, true, with_base);
        let lean = ablation_arms(&self.plan, &p, false, with_base);
        let Arms {
            block,
            changes,
            variants,
            base,
        } = if self.plan.plan_both_stages
            && remaining < mr * full.block.round_size(|_| true)
            && remaining >= mr * lean.block.round_size(|_| true)
        {
            lean
        } else {
            full
        };
        let skipped = self
            .plan
            .output_variants
            .iter()
            .filter(|(name, v)| {
                !variants.iter().any(|(n, _, _)| n == name)
                    && !changes.iter().any(|(c, _)| c == name)
                    && !same_value(&value_of(&p, name), v)
            })
            .cloned()
            .collect();
        let free = changes.len()
            + if self.plan.settings.allow_output_changes {
                variants.len()
            } else {
                0
            };
        let reserve = 3 * mr;
        let cap = if free >= 2 && remaining >= mr * block.round_size(|_| true) + reserve {
            remaining - reserve
        } else {
            remaining
        };
        Ablation {
            block,
            changes,
            variants,
            skipped,
            base,
            cap,
            spent: 0,
        }
    }

    /// One step of the ablation leg (see `advance`): false while waiting for a measurement.
    /// The leg is a fixed-size experiment: rounds go on while its budget takes another, and
    /// nothing is decided before it ends, so each of its tests is a single look at the data.
    /// When the leg's budget is spent and its decisions lead to an arm it measured, the reserve
    /// kept for a confirmation leg is not needed and the leg goes on with it.
    pub(super) fn ablation_step(&mut self) -> bool {
        let out_of_budget = self.told >= self.plan.budget;
        let Some(a) = self.ablation.as_mut() else {
            self.step = Step::Done;
            return true;
        };
        if a.block.settle(out_of_budget) == RoundState::Waiting {
            return false;
        }
        let Some(a) = self.ablation.as_ref() else {
            return true;
        };
        let more = a.block.arms.len() >= 2 && !a.block.has_failed(0);
        let size = a.block.round_size(|_| true);
        let whole = a.spent + self.plan.budget.saturating_sub(self.told);
        let mut fits = self.round_fits(a.spent, a.cap, size);
        if more && !fits && a.cap < whole && self.round_fits(a.spent, whole, size) {
            let measured = self
                .leg()
                .is_some_and(|l| a.block.find(&l.target).is_some());
            if measured {
                fits = true;
                if let Some(a) = self.ablation.as_mut() {
                    a.cap = whole;
                }
            }
        }
        if more && fits {
            if let Some(a) = self.ablation.as_mut() {
                a.block.start_round(|_| true);
            }
            return false;
        }
        self.after_ablation();
        true
    }

    /// Whether a change of `name` in `p` moves the parameter in its preferred direction (a
    /// larger num_ctx when `prefer = "high"`): such a change is what the user asked for, so it
    /// is kept unless reverting it is significantly better.
    fn preferred_change(&self, name: &str, p: &Config) -> bool {
        self.param(name)
            .and_then(|info| info.prefer)
            .is_some_and(|prefer| {
                prefer_order(
                    prefer,
                    &value_of(p, name),
                    &value_of(&self.plan.baseline, name),
                ) == Ordering::Greater
            })
    }

    /// The decisions of the ablation's complete rounds so far. Changes: a change whose
    /// reversion failed is needed to run and kept; otherwise one hypothesis per change ("p is
    /// better than p with it reverted", or for a change in the preferred direction "the reverted
    /// one is better than p"), one-sided paired t-tests with Holm's correction over the changes;
    /// a change is kept when its hypothesis is accepted (respectively not). Output variants: one
    /// hypothesis each ("the variant is better than p"), Holm over the variants; applied only
    /// with `allow_output_changes`.
    pub(super) fn leg(&self) -> Option<Leg> {
        let a = self.ablation.as_ref()?;
        let b = &a.block;
        let alpha = self.alpha_one_sided();
        let p_failed = b.has_failed(0);
        let mut keep = vec![true; a.changes.len()];
        // (change, p-value, preferred direction)
        let mut family: Vec<(usize, f64, bool)> = Vec::new();
        for (k, (name, r)) in a.changes.iter().enumerate() {
            if p_failed || b.has_failed(*r) {
                continue;
            }
            if self.preferred_change(name, &b.arms[0]) {
                family.push((k, self.p_better(b, *r, 0), true));
            } else {
                family.push((k, self.p_better(b, 0, *r), false));
            }
        }
        let p: Vec<f64> = family.iter().map(|f| f.1).collect();
        for ((k, _, preferred), rejected) in family.iter().zip(holm(&p, alpha)) {
            keep[*k] = if *preferred {
                // A change in the preferred direction is kept while reverting it is neither
                // significantly better nor faster beyond the margin (`costs_beyond_margin`): a
                // larger context that costs 3% is not "tied" with the one the user said suffices.
                let r = a.changes[*k].1;
                !rejected && !self.costs_beyond_margin(b, 0, r, TIE_MARGIN_PCT)
            } else {
                rejected
            };
        }
        let mut apply = vec![false; a.variants.len()];
        let mut tested: Vec<(usize, f64)> = Vec::new();
        for (j, (_, _, arm)) in a.variants.iter().enumerate() {
            if p_failed || b.has_failed(*arm) {
                continue;
            }
            tested.push((j, self.p_better(b, *arm, 0)));
        }
        let p: Vec<f64> = tested.iter().map(|t| t.1).collect();
        for ((j, _), rejected) in tested.iter().zip(holm(&p, alpha)) {
            apply[*j] = rejected && self.plan.settings.allow_output_changes;
        }
        let mut target = b.arms[0].clone();
        for ((name, _), kept) in a.changes.iter().zip(&keep) {
            if !kept {
                target = with_value(&target, name, self.plan.baseline.get(name));
            }
        }
        for ((name, v, _), applied) in a.variants.iter().zip(&apply) {
            if *applied {
                target = with_value(&target, name, Some(v));
            }
        }
        Some(Leg { keep, target })
    }

    /// The ablation leg is over. When its decisions lead to a configuration no arm measured
    /// (several changes dropped, or a variant applied on top of a drop) and the budget still
    /// holds `min_rounds` rounds, a confirmation leg measures it with the chosen configuration
    /// and the baseline; otherwise the phase is done.
    fn after_ablation(&mut self) {
        self.step = Step::Done;
        let Some(a) = self.ablation.as_ref() else {
            return;
        };
        let mr = self.min_rounds();
        if a.block.n_rounds() < mr || a.block.has_failed(0) {
            return;
        }
        let Some(leg) = self.leg() else {
            return;
        };
        if a.block.find(&leg.target).is_some() {
            return;
        }
        let mut block = Block::new();
        block.add(leg.target);
        let p = block.add(a.block.arms[0].clone());
        let base = a
            .base
            .filter(|&i| !a.block.has_failed(i))
            .map(|_| block.add(self.plan.baseline.clone()));
        if self.plan.budget.saturating_sub(self.told) >= mr * block.arms.len() {
            self.confirm = Some(Confirm {
                block,
                p,
                base,
                spent: 0,
            });
            self.step = Step::Confirm;
        }
    }

    /// One step of the confirmation leg: a fixed-size experiment too, rounds while the budget
    /// takes another (and both the new and the chosen configuration run).
    pub(super) fn confirm_step(&mut self) -> bool {
        let out_of_budget = self.told >= self.plan.budget;
        let Some(c) = self.confirm.as_mut() else {
            self.step = Step::Done;
            return true;
        };
        if c.block.settle(out_of_budget) == RoundState::Waiting {
            return false;
        }
        let Some(c) = self.confirm.as_ref() else {
            return true;
        };
        let ran = !c.block.has_failed(0) && !c.block.has_failed(c.p);
        let size = c.block.round_size(|_| true);
        if ran && self.round_fits(c.spent, self.plan.budget, size) {
            if let Some(c) = self.confirm.as_mut() {
                c.block.start_round(|_| true);
            }
            return false;
        }
        self.step = Step::Done;
        true
    }
}
