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

use crate::engine::space::{Config, Prefer, Role};
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
            share: 0.3,
            candidates: 4,
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
    /// The recommendation against the recommendation with this change reverted (positive: the
    /// change helps, in the objective's direction), from the ablation rounds.
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
    /// The recommendation with the variant against the recommendation (positive: faster in the
    /// objective's direction).
    pub effect: Option<Effect>,
    /// Applied to the recommendation (only with `allow_output_changes` and a significant gain).
    pub applied: bool,
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
    /// Arms still in the race when it ended, tied with the best (the recommendation among them).
    pub tied: Vec<Config>,
    /// Arms eliminated, with the round that eliminated them.
    pub eliminated: Vec<(Config, usize)>,
    /// The recommendation against the baseline, from the phase's paired rounds.
    pub vs_baseline: Option<Effect>,
    pub changes: Vec<ChangeEffect>,
    pub outputs: Vec<OutputEffect>,
    /// Trials told to the phase.
    pub trials: usize,
}

// STUB (integrator's branch only; replaced by the real implementation).
pub struct DecisionPhase {
    plan: Plan,
}
impl DecisionPhase {
    pub fn new(plan: Plan) -> DecisionPhase {
        DecisionPhase { plan }
    }
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    pub fn next(&self) -> Option<(Config, Stage)> {
        todo!()
    }
    pub fn tell(&mut self, _config: &Config, _value: Option<f64>) {
        todo!()
    }
    pub fn is_done(&self) -> bool {
        todo!()
    }
    pub fn trials(&self) -> usize {
        todo!()
    }
    pub fn result(&self) -> DecisionResult {
        todo!()
    }
    pub fn replay(
        plan: Plan,
        _told: impl IntoIterator<Item = (Config, Option<f64>)>,
    ) -> DecisionPhase {
        DecisionPhase { plan }
    }
}
pub fn paired_effect(_arm: &[f64], _reference: &[f64], _log_scale: bool) -> Option<Effect> {
    todo!()
}
pub fn phase_budget(
    _settings: &DecisionSettings,
    _total_trials: usize,
    _arms: usize,
    _noise_rel_sd: f64,
    _detect_pct: f64,
) -> usize {
    todo!()
}
