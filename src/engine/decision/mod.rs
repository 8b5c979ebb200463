//! The decision phase: after the search, the leading candidates and the baseline are measured
//! again in interleaved rounds (racing), the simplest configuration tied with the best is
//! chosen, and an ablation path says what each of its changes buys. Pure: ask/tell like the
//! optimizer, replayable from the journal (the same plan and the same values told in the same
//! order give the same decisions). Background: docs/decision.md.
//!
//! API contract (shared by the run loop, the report and `decide`/`recheck`):
//! - `DecisionPhase::new(plan)`; then repeatedly `next()` -> a configuration to measure (with
//!   its stage), `tell(config, value)`; `result()` at any time; `is_done()`.
//! - `Plan` is serializable: the run loop journals it with the first trial of the phase, and the
//!   report rebuilds the phase from the journal (`replay`).
//!
//! Files: this one holds the types and the stage machine; block.rs the interleaved rounds,
//! race.rs the race and the simplest-of-the-tied rule, ablation.rs the ablation path and its
//! confirmation, result.rs the answer, stats.rs the tests and the budget.

mod ablation;
mod block;
mod race;
mod result;
mod stats;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_budget;

pub use stats::{paired_effect, phase_budget};

use crate::engine::space::{Config, ParamValue, Prefer, Role};
use serde::{Deserialize, Serialize};

/// Knobs of the decision phase (the `[decision]` table of a study).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionSettings {
    /// Run a decision phase at the end of the budget.
    pub enabled: bool,
    /// The largest share of the trial budget the phase may take (sized from the noise below it).
    pub share: f64,
    /// Leading candidates from the search raced against the baseline.
    pub candidates: usize,
    /// Significance level of each elimination and of "a change buys something".
    pub alpha: f64,
    /// Rounds every arm is measured before anything is eliminated.
    pub min_rounds: usize,
    /// Whether the recommendation may change output settings (role `output`); off by default.
    pub allow_output_changes: bool,
}

impl Default for DecisionSettings {
    fn default() -> Self {
        DecisionSettings {
            enabled: true,
            share: 0.4,
            candidates: 3,
            alpha: 0.05,
            min_rounds: 3,
            allow_output_changes: false,
        }
    }
}

/// What the phase needs to know of one parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamInfo {
    pub name: String,
    pub role: Role,
    pub prefer: Option<Prefer>,
}

/// Everything the phase starts from; journaled, so a replay starts from the same plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// What the user runs today (may hold `auto` values).
    pub baseline: Config,
    /// Leading configurations of the search, best first (as measured; the phase projects
    /// output settings back to the baseline's unless `allow_output_changes`).
    pub candidates: Vec<Config>,
    /// For each output parameter, a value whose speed effect is worth measuring (from the
    /// search: the leaders' value, else the measured value the GP predicts fastest).
    pub output_variants: Vec<(String, crate::engine::space::ParamValue)>,
    pub params: Vec<ParamInfo>,
    /// Larger is better when true.
    pub maximize: bool,
    /// Compare on the logarithm (rates and durations): effects are relative.
    pub log_scale: bool,
    /// Trials the phase may spend.
    pub budget: usize,
    pub settings: DecisionSettings,
    /// The race is sized for the ablation after it (docs/decision.md, "Budget"). False in plans
    /// journaled before that rule, so their runs replay as they ran.
    #[serde(default)]
    pub plan_both_stages: bool,
    /// Configurations that failed in the search (a failed configuration is never proposed
    /// again): an ablation arm equal to one is known to fail and is not measured again
    /// (docs/decision.md, "Budget"). Empty in plans journaled before this rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_failed: Vec<Config>,
    /// The race keeps no reserve for an ablation that would measure only what the race does
    /// (the contender and the baseline: one change, or every reversion known to fail), so a
    /// race tied with the baseline goes on to the end of the budget (race.rs `extended_cap`).
    /// False in plans journaled before this rule, so their runs replay as they ran.
    #[serde(default)]
    pub race_uses_idle_reserve: bool,
}

/// Which part of the phase a measurement belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Candidates and the baseline, eliminating the significantly worse.
    Race,
    /// The chosen configuration with one change reverted or one output setting varied.
    Ablation,
}

/// A difference measured in paired rounds: `pct` is the change in percent of the reference
/// (positive = the arm is better when maximizing... see `better`), with a 95% interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// Percent change of the arm's objective against the reference (in the metric's sign:
    /// +5 means 5% more tokens/s, or 5% more seconds).
    pub pct: f64,
    pub lo: f64,
    pub hi: f64,
    /// Paired rounds behind it.
    pub rounds: usize,
    /// Whether the interval excludes zero.
    pub significant: bool,
}

/// One change of the recommendation against the baseline, and what reverting it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeEffect {
    pub param: String,
    pub baseline: crate::engine::space::ParamValue,
    pub value: crate::engine::space::ParamValue,
    /// The configuration the ablation started from against it with this change reverted, from
    /// the ablation rounds, in the metric's sign (for a maximized metric positive = the change
    /// helps; for a minimized one negative = it helps). None when the reverted configuration
    /// failed (the change is needed to run) or too few rounds ran.
    pub effect: Option<Effect>,
    /// Kept in the recommendation (it buys something measurable, or it is needed to run).
    pub kept: bool,
}

/// The measured speed effect of an output setting the recommendation does not change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputEffect {
    pub param: String,
    pub user_value: crate::engine::space::ParamValue,
    pub variant: crate::engine::space::ParamValue,
    /// The configuration the ablation started from with the variant, against it, in the
    /// metric's sign (as `ChangeEffect::effect`). None when the variant failed or too few rounds ran.
    pub effect: Option<Effect>,
    /// Applied to the recommendation (only with `allow_output_changes` and a significant gain).
    pub applied: bool,
    /// Not measured on purpose: the phase's budget could not hold `min_rounds` rounds of the
    /// ablation with a variant arm for every output setting, and the changes came first.
    #[serde(default)]
    pub skipped: bool,
}

/// What the decision says, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The recommendation is significantly better than the baseline.
    Better,
    /// Nothing measured is significantly better than the baseline: keep the defaults.
    DefaultsBest,
    /// The phase has not finished (or never started): provisional.
    Undecided,
}

/// The phase's answer so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionResult {
    pub recommendation: Config,
    pub verdict: Verdict,
    pub done: bool,
    /// Arms still in the race when it ended, tied with the best (the configuration the ablation
    /// starts from is among them; the recommendation is it with the useless changes dropped).
    pub tied: Vec<Config>,
    /// Arms eliminated from the race, with the (1-based) round that eliminated them: a failed
    /// measurement eliminates at once. The baseline is listed here once it can no longer win,
    /// although it is still measured every round as the reference.
    pub eliminated: Vec<(Config, usize)>,
    /// The recommendation against the baseline, from the phase's paired rounds.
    pub vs_baseline: Option<Effect>,
    pub changes: Vec<ChangeEffect>,
    pub outputs: Vec<OutputEffect>,
    /// Trials told to the phase.
    pub trials: usize,
    /// Of those, trials told during the race and during the ablation (with its confirmation).
    #[serde(default)]
    pub race_trials: usize,
    #[serde(default)]
    pub ablation_trials: usize,
    /// Complete rounds of the ablation leg. Below `min_rounds` the changes were not ablated
    /// (the budget ended first): they are all kept, and `vs_baseline` comes from the race's
    /// rounds, which also served to choose among the tied (a small selection bias).
    #[serde(default)]
    pub ablation_rounds: usize,
    /// When the verdict is `DefaultsBest` although the phase arrived at another configuration
    /// (its gain over the baseline was not significant): that configuration and its measured
    /// effect against the baseline, for the report ("X would be +1.2% [-0.5, 2.9]: defaults kept").
    #[serde(default)]
    pub rejected: Option<Config>,
    #[serde(default)]
    pub rejected_vs_baseline: Option<Effect>,
    /// The phase's budget could hold the ablation of the search's leader but not a race before
    /// it: the leader went straight to the ablation, whose rounds also measure it against the
    /// baseline (docs/decision.md, "Budget").
    #[serde(default)]
    pub race_skipped: bool,
}

/// The race may take this share of the phase's budget (more when `min_rounds` rounds of every
/// arm need more); the ablation takes the rest, including what the race did not use.
const RACE_SHARE: f64 = 0.6;

/// An arm alive at the end of the race wins on fewer changes only when its mean falls short of
/// the best mean by less than this many percent (see `race.rs` `race_choice`).
const TIE_MARGIN_PCT: f64 = 1.0;

/// Where the phase is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Race,
    Ablation,
    /// A short leg measuring the recommendation after several drops (ablation.rs).
    Confirm,
    Done,
}

/// The decision phase: ask/tell over a `Plan` (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionPhase {
    plan: Plan,
    told: usize,
    step: Step,
    race: race::Race,
    ablation: Option<ablation::Ablation>,
    confirm: Option<ablation::Confirm>,
}

impl DecisionPhase {
    pub fn new(plan: Plan) -> DecisionPhase {
        let race = race::Race::new(&plan);
        let mut phase = DecisionPhase {
            plan,
            told: 0,
            step: Step::Race,
            race,
            ablation: None,
            confirm: None,
        };
        phase.advance();
        phase
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The next configuration to measure and its stage; None when done or the budget is spent.
    /// Pure: calling it twice without `tell` returns the same answer.
    pub fn next(&self) -> Option<(Config, Stage)> {
        if self.told >= self.plan.budget {
            return None;
        }
        let (block, stage) = match self.step {
            Step::Race => (&self.race.block, Stage::Race),
            Step::Ablation => (&self.ablation.as_ref()?.block, Stage::Ablation),
            Step::Confirm => (&self.confirm.as_ref()?.block, Stage::Ablation),
            Step::Done => return None,
        };
        block.pending().map(|i| (block.arms[i].clone(), stage))
    }

    /// A measurement of `config`: Some(objective value) when it ran and met the constraints,
    /// None when it failed or was infeasible (that arm is not measured again and can no longer
    /// be recommended). A configuration other than the one `next` returned fills the slot of an
    /// equal arm still to be measured in the current round; one that fits no such slot is
    /// ignored, but every tell counts against the budget (so the phase always ends).
    pub fn tell(&mut self, config: &Config, value: Option<f64>) {
        self.told += 1;
        match self.step {
            Step::Race => self.race.record(config, value),
            Step::Ablation => {
                if let Some(a) = &mut self.ablation {
                    a.spent += 1;
                    a.block.record(config, value);
                }
            }
            Step::Confirm => {
                if let Some(c) = &mut self.confirm {
                    c.spent += 1;
                    c.block.record(config, value);
                }
            }
            Step::Done => {}
        }
        self.advance();
    }

    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// Tells received.
    pub fn trials(&self) -> usize {
        self.told
    }

    /// Rebuild from a plan and the told sequence (what the report does from the journal).
    pub fn replay(
        plan: Plan,
        told: impl IntoIterator<Item = (Config, Option<f64>)>,
    ) -> DecisionPhase {
        let mut phase = DecisionPhase::new(plan);
        for (config, value) in told {
            phase.tell(&config, value);
        }
        phase
    }

    /// Move through the stages until a measurement is needed or the phase is done.
    fn advance(&mut self) {
        loop {
            let moved = match self.step {
                Step::Race => self.race_step(),
                Step::Ablation => self.ablation_step(),
                Step::Confirm => self.confirm_step(),
                Step::Done => return,
            };
            if !moved {
                return;
            }
        }
    }

    /// Whether a round of `size` arms fits in a stage that spent `spent` of its `cap`, and in
    /// the phase's budget.
    fn round_fits(&self, spent: usize, cap: usize, size: usize) -> bool {
        size > 0 && spent + size <= cap && self.told + size <= self.plan.budget
    }

    /// Rounds before anything is tested (a paired test needs two).
    fn min_rounds(&self) -> usize {
        self.plan.settings.min_rounds.max(2)
    }

    /// Level of each one-sided test: alpha is read as a two-sided level, so that a decision
    /// agrees with the 95% interval printed beside it (docs/decision.md, "The test").
    fn alpha_one_sided(&self) -> f64 {
        self.plan.settings.alpha / 2.0
    }

    /// One-sided p-value that arm `a` beats arm `b` in `block` (paired rounds).
    fn p_better(&self, block: &block::Block, a: usize, b: usize) -> f64 {
        let (x, y) = block.paired(a, b);
        stats::p_better(&x, &y, self.plan.log_scale, self.plan.maximize)
    }

    /// Effect of arm `a` against arm `reference` in `block`; None for the same arm.
    fn effect(&self, block: &block::Block, a: usize, reference: usize) -> Option<Effect> {
        if a == reference {
            return None;
        }
        let (x, y) = block.paired(a, reference);
        paired_effect(&x, &y, self.plan.log_scale)
    }

    /// Whether arm `a` is slower than arm `b` by more than `margin_pct` percent, by at least one
    /// standard error of the paired rounds (the estimated cost less its standard error is above
    /// the margin). This is what "not as fast" means for a preferred direction: a larger
    /// context that truly costs nothing passes almost always, one that measures several times
    /// the margin slower does not (docs/decision.md). False with fewer than 2 paired rounds.
    fn costs_beyond_margin(
        &self,
        block: &block::Block,
        a: usize,
        b: usize,
        margin_pct: f64,
    ) -> bool {
        let (x, y) = block.paired(b, a);
        let Some((mean, se, log, level)) = stats::paired_mean_se(&x, &y, self.plan.log_scale)
        else {
            return false;
        };
        let gain = if self.plan.maximize { mean } else { -mean };
        let threshold = if log {
            (1.0 + margin_pct / 100.0).ln()
        } else {
            margin_pct / 100.0 * level.abs()
        };
        gain - se > threshold
    }

    /// Mean over an arm's rounds on the comparison scale, larger = better.
    fn mean_score(&self, block: &block::Block, arm: usize) -> f64 {
        let v = block.values(arm);
        if v.is_empty() {
            return f64::NEG_INFINITY;
        }
        let log = self.plan.log_scale && v.iter().all(|x| *x > 0.0);
        let m = v.iter().map(|x| if log { x.ln() } else { *x }).sum::<f64>() / v.len() as f64;
        if self.plan.maximize {
            m
        } else {
            -m
        }
    }

    fn param(&self, name: &str) -> Option<&ParamInfo> {
        self.plan.params.iter().find(|p| p.name == name)
    }

    /// Parameters where `config` differs from the baseline, in name order.
    fn changed_params(&self, config: &Config) -> Vec<String> {
        changes_from(&self.plan.baseline, config)
    }
}

/// Parameters where `config` differs from `baseline`, in name order.
fn changes_from(baseline: &Config, config: &Config) -> Vec<String> {
    let mut names: Vec<&String> = config.keys().chain(baseline.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !same_value(&value_of(config, n), &value_of(baseline, n)))
        .cloned()
        .collect()
}

/// A parameter's value in a configuration; a missing one is not sent, which is `auto`.
fn value_of(config: &Config, name: &str) -> ParamValue {
    config.get(name).cloned().unwrap_or_else(ParamValue::auto)
}

/// `config` with `name` set to `value` (removed when `value` is None).
fn with_value(config: &Config, name: &str, value: Option<&ParamValue>) -> Config {
    let mut c = config.clone();
    match value {
        Some(v) => c.insert(name.to_string(), v.clone()),
        None => c.remove(name),
    };
    c
}

/// Equal values, with integers and floats compared as numbers (4 == 4.0).
fn same_value(a: &ParamValue, b: &ParamValue) -> bool {
    match (a, b) {
        (ParamValue::Int(_) | ParamValue::Float(_), ParamValue::Int(_) | ParamValue::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        _ => a == b,
    }
}

/// Equal configurations: `same_value` values for every parameter (a missing one is `auto`).
fn same_config(a: &Config, b: &Config) -> bool {
    a.keys()
        .chain(b.keys())
        .all(|k| same_value(&value_of(a, k), &value_of(b, k)))
}

/// Order of two values by a preferred direction: Greater when `a` is preferred. Only numbers
/// are ordered; `auto` (the server decides) and other words are not ordered against anything.
fn prefer_order(prefer: Prefer, a: &ParamValue, b: &ParamValue) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let numeric = |v: &ParamValue| match v {
        ParamValue::Int(_) | ParamValue::Float(_) => v.as_f64(),
        _ => None,
    };
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
            match prefer {
                Prefer::High => o,
                Prefer::Low => o.reverse(),
            }
        }
        _ => Ordering::Equal,
    }
}
