//! The decision phase in the run loop: when it starts (the share of the budget the measured
//! noise calls for), its plan (the optimizer's leaders, the output settings worth measuring),
//! the trials it asks, and the plan note that lets a resume or a report rebuild it
//! (src/decided.rs). The phase itself is engine/decision/ (docs/decision.md).

use crate::decided::{decision_value, is_decision_trial, origin_of, PLAN_NOTE};
use crate::engine::decision::{phase_budget, DecisionPhase, ParamInfo, Plan};
use crate::engine::optimizer::Optimizer;
use crate::engine::space::{config_key, Config, Role};
use crate::study::{Direction, Study};
use crate::trial::{Trial, TrialRecord};
use crate::verdict::Grouping;
use tracing::info;

/// The smallest effect (percent) the phase is sized to detect: the "within 1%".
const DETECT_PCT: f64 = 1.0;

/// A phase needs at least this many rounds of its arms to say anything.
const MIN_PHASE_ROUNDS: usize = 2;

/// The run loop's view of the decision phase.
pub(super) struct Decider {
    phase: Option<DecisionPhase>,
    /// The plan still has to be written into the notes of the phase's next journaled trial.
    plan_unjournaled: bool,
    /// `decide --trials N`: start a new phase at once with this budget.
    forced: Option<usize>,
}

/// How much of the run is left, for the start rule, and what the baseline ran as, for the plan.
pub(super) struct Left<'a> {
    pub trials_done: usize,
    pub trials_budget: usize,
    /// Trials that fit in the wall time left at the mean trial duration so far (None: no limit).
    pub trials_by_time: Option<usize>,
    /// The configuration the server ran for the baseline (None: it has not run).
    pub baseline_ran: Option<&'a Config>,
    /// What the server ran for requested configurations (the standings' grouping).
    pub grouping: &'a Grouping,
}

impl Decider {
    /// The phase rebuilt from the journal (None if it never started), and `decide`'s budget.
    pub fn new(phase: Option<DecisionPhase>, forced: Option<usize>) -> Decider {
        Decider {
            phase,
            plan_unjournaled: false,
            forced,
        }
    }

    pub fn is_done(&self) -> bool {
        self.forced.is_none() && self.phase.as_ref().is_some_and(|p| p.is_done())
    }

    /// Start the phase when the budget left is what it needs (or `decide` asked for it).
    pub fn maybe_start(&mut self, study: &Study, optimizer: &Optimizer, left: &Left) {
        let settings = &study.decision;
        if let Some(n) = self.forced.take() {
            if let Some(plan) = plan(study, optimizer, n, left) {
                info!(
                    trials = n,
                    arms = plan.candidates.len() + 1,
                    "decision phase starts"
                );
                self.phase = Some(DecisionPhase::new(plan));
                self.plan_unjournaled = true;
            }
            return;
        }
        if !settings.enabled || self.phase.is_some() {
            return;
        }
        let by_trials = left.trials_budget.saturating_sub(left.trials_done);
        let remaining = left.trials_by_time.map_or(by_trials, |t| t.min(by_trials));
        let cap = (settings.share * left.trials_budget as f64).floor() as usize;
        if remaining > cap {
            return;
        }
        let leaders = optimizer.leaders(settings.candidates);
        let race_arms = leaders.len().min(settings.candidates) + 1;
        if leaders.is_empty() || remaining < MIN_PHASE_ROUNDS * race_arms {
            return;
        }
        // Both stages: the race's arms, and the ablation's (the best leader's changes, one
        // variant per output setting, the chosen configuration and the baseline).
        let ablation_arms = ablation_arms(study, optimizer, &leaders[0]);
        let noise = optimizer.noise_rel_sd().unwrap_or(0.05);
        let budget = phase_budget(
            settings,
            left.trials_budget,
            race_arms + ablation_arms,
            noise,
            DETECT_PCT,
        );
        if remaining > budget {
            return;
        }
        if let Some(plan) = plan(study, optimizer, remaining, left) {
            info!(
                trials = remaining,
                race_arms,
                ablation_arms,
                noise_rel_sd = noise,
                "decision phase starts"
            );
            self.phase = Some(DecisionPhase::new(plan));
            self.plan_unjournaled = true;
        }
    }

    /// The phase's next trial, numbered in the optimizer's sequence.
    pub fn next_trial(&self, optimizer: &mut Optimizer) -> Option<Trial> {
        let (config, stage) = self.phase.as_ref()?.next()?;
        Some(Trial {
            number: optimizer.take_number(),
            config,
            origin: origin_of(stage),
            acquisition: None,
        })
    }

    /// Before journaling a trial of the phase: the first one carries the plan.
    pub fn annotate(&mut self, rec: &mut TrialRecord) {
        if !is_decision_trial(rec) || !self.plan_unjournaled {
            return;
        }
        if let Some(p) = &self.phase {
            if let Ok(v) = serde_json::to_value(p.plan()) {
                rec.notes.insert(PLAN_NOTE.into(), v);
                self.plan_unjournaled = false;
            }
        }
    }

    /// After journaling a trial: the phase hears of its own trials.
    pub fn tell(&mut self, rec: &TrialRecord) {
        if !is_decision_trial(rec) {
            return;
        }
        if let Some(p) = self.phase.as_mut() {
            p.tell(&rec.params, decision_value(rec));
        }
    }

    /// A pending decision trial from a checkpoint whose phase never reached the journal (the
    /// session stopped between asking and journaling the phase's first trial): start it again.
    pub fn resume_pending(
        &mut self,
        study: &Study,
        optimizer: &Optimizer,
        pending: &Trial,
        left: &Left,
    ) {
        if self.phase.is_none()
            && pending.origin.is_remeasurement()
            && pending.origin != crate::trial::Origin::Confirm
        {
            let remaining = left.trials_budget.saturating_sub(left.trials_done);
            if let Some(plan) = plan(study, optimizer, remaining, left) {
                self.phase = Some(DecisionPhase::new(plan));
                self.plan_unjournaled = true;
            }
        }
    }
}

/// Arms the ablation of `best` would measure: its speed changes against the baseline, one
/// variant per output setting, the chosen configuration and the baseline.
fn ablation_arms(study: &Study, optimizer: &Optimizer, best: &Config) -> usize {
    let space = optimizer.space();
    let Some(base) = space.defaults().map(|d| space.normalize_config(&d)) else {
        return 2;
    };
    let changes = space
        .params
        .iter()
        .filter(|p| p.role != Role::Output || study.decision.allow_output_changes)
        .filter(|p| best.get(&p.name) != base.get(&p.name))
        .count();
    let outputs = space
        .params
        .iter()
        .filter(|p| p.role == Role::Output)
        .count();
    changes + outputs + 2
}

/// The plan of a phase of `budget` trials: the optimizer's leaders, the baseline, and for each
/// output setting a value whose speed effect is worth measuring. A leader the server runs
/// exactly as it ran the baseline (`baseline_ran`: `num_gpu auto` fitted to 35 layers, a leader
/// at `num_gpu 35`) is the baseline and no arm of its own: racing the same server
/// configuration against itself can only produce a false difference.
fn plan(study: &Study, optimizer: &Optimizer, budget: usize, left: &Left) -> Option<Plan> {
    let settings = &study.decision;
    let space = optimizer.space();
    let baseline = space.normalize_config(&space.defaults()?);
    // A leader is told as the server ran it when the space admits that, else as requested:
    // compare what the server ran in both cases, with the output settings the race will give
    // it (the baseline's, unless the study allows output changes; docs/decision.md, "Arms").
    let ran = |c: &Config| {
        let c = space.normalize_config(c);
        let mut r = left.grouping.ran_as(&c).unwrap_or(c);
        if !settings.allow_output_changes {
            for p in space.params.iter().filter(|p| p.role == Role::Output) {
                if let Some(v) = baseline.get(&p.name) {
                    r.insert(p.name.clone(), v.clone());
                }
            }
        }
        config_key(&space.normalize_config(&r))
    };
    let baseline_ran = left
        .baseline_ran
        .map(|b| config_key(&space.normalize_config(b)));
    let candidates: Vec<Config> = optimizer
        .leaders(settings.candidates + 3)
        .into_iter()
        .filter(|c| baseline_ran.as_ref() != Some(&ran(c)))
        .take(settings.candidates + 2)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let params: Vec<ParamInfo> = space
        .params
        .iter()
        .map(|p| ParamInfo {
            name: p.name.clone(),
            role: p.role,
            prefer: p.prefer,
        })
        .collect();
    // The output settings' speed effects are measured at the best candidate with the user's
    // output values (what the recommendation will look like).
    let mut at = candidates[0].clone();
    for p in params.iter().filter(|p| p.role == Role::Output) {
        if let Some(v) = baseline.get(&p.name) {
            at.insert(p.name.clone(), v.clone());
        }
    }
    let output_variants = params
        .iter()
        .filter(|p| p.role == Role::Output)
        .filter_map(|p| {
            let v = optimizer.output_variant(&at, &p.name)?;
            (baseline.get(&p.name) != Some(&v)).then(|| (p.name.clone(), v))
        })
        .collect();
    let metric = &study.objective.metric.metric;
    Some(Plan {
        baseline,
        candidates,
        output_variants,
        params,
        maximize: study.objective.direction == Direction::Maximize,
        log_scale: crate::study::is_positive_metric(metric),
        budget,
        settings: settings.clone(),
        plan_both_stages: true,
        known_failed: optimizer.failed_configs(),
        race_uses_idle_reserve: true,
    })
}
