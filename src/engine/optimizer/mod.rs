//! The ask/tell optimizer: baseline, initial design, then GP + log EI proposals. No I/O.
//!
//! Everything random is drawn from a generator seeded by (study seed, trial number), and the
//! GP fit is deterministic, so a run is reproducible for a given seed and a resumed run asks
//! exactly what the uninterrupted one would have (given the saved `OptimizerState`).
//!
//! This file holds the state and the ask/tell sequence; the rest is one file per concern:
//! models.rs (fitting the GPs), score.rs (the acquisition), search.rs (candidates and local
//! search), reload.rs (the reload cost), leaders.rs (confirmations, recommendation),
//! explain.rs (parameter effects over the sampled region, with intervals), effective.rs
//! (configurations the server runs identically are one point) and settings.rs (the knobs).

mod effective;
mod explain;
mod leaders;
mod models;
mod reload;
mod score;
mod search;
mod settings;

/// Standard normal draw (random.rs), for callers that simulate noisy measurements.
pub use crate::engine::random::gaussian;
pub use effective::RunsAs;
pub use explain::{ParamEffect, EFFECT_BASES, EFFECT_DRAWS, EFFECT_LEVELS, EFFECT_RADIUS};
pub use settings::{OptimizerSettings, Strategy};

use crate::engine::configkey::ConfigKey;
use crate::engine::design::{initial_design_size, sobol_point, unit_to_encoded};
use crate::engine::memory::MemoryWall;
use crate::engine::objective::{Objective, PositiveMetric};
use crate::engine::random::splitmix64 as mix;
use crate::engine::space::{config_key, Config, SearchSpace};
use crate::engine::trial::{Origin, Trial};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};

/// Above this many observations the GP is fitted on a subset (best half + most recent half):
/// exact GP cost grows as n^3 and an overnight run can reach thousands of trials.
pub const MAX_GP_POINTS: usize = 300;

/// Re-measurements of tied leaders are at least this many asks apart (see `confirmation`),
/// so they take at most a quarter of a run.
const CONFIRM_EVERY: usize = 4;

/// Reload-aware proposals measure at most this many configurations per load of the runner
/// options: up to then a reload counts as a cost against the acquisition (EI per second),
/// after it the next proposal is free to move. Without the cap the cost weighting locks onto
/// the first good runner and only varies sampling options (measured: 0.28 reloads per trial
/// and the best runner options never found, on the simulator's gemma3-4b profile); without
/// the weighting every trial reloads (1.00 per trial).
const RELOAD_GROUP: usize = 3;

/// Result of a trial as the optimizer sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok {
        /// Objective value in the user's units (tokens/s, seconds, ...).
        value: f64,
        /// Value of each outcome constraint's metric, in the order of the study.
        constraint_values: Vec<f64>,
        /// Wall time of the trial, seconds (measurement plus any reload).
        duration_s: f64,
        /// Reload time paid by this trial, when it reloaded.
        reload_s: Option<f64>,
    },
    Failed,
}

#[derive(Clone, Debug)]
struct Observation {
    config: Config,
    x: Vec<f64>,
    outcome: Outcome,
}

/// The part of the optimizer's state that is not in the journal; checkpointed after each ask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    pub seed: u64,
    pub n_asked: usize,
    pub sobol_index: u32,
    /// Last fitted GP hyperparameters (warm start of the next fit).
    pub warm_theta: Option<Vec<f64>>,
    /// Number of GP points at the last hyperparameter fit (see `needs_refit`).
    #[serde(default)]
    pub fitted_n: usize,
    /// Last hyperparameters of the feasibility GP and of each constraint's GP ("constraint:i"),
    /// warm starts and reused between refits like the objective's.
    #[serde(default)]
    pub aux_theta: std::collections::BTreeMap<String, Vec<f64>>,
    /// Number of the last ask that re-measured a tied leader (see `confirmation`).
    #[serde(default)]
    pub last_confirm: Option<usize>,
    /// Output warp parameter at the last hyperparameter fit (warp.rs), kept with `warm_theta`
    /// so that reused hyperparameters describe values warped the same way.
    #[serde(default)]
    pub warp_lambda: Option<f64>,
}

/// What the run loop knows when it asks: the runner options currently loaded, if any.
#[derive(Clone, Debug, Default)]
pub struct AskContext {
    pub loaded_runner: Option<Config>,
}

pub struct Optimizer {
    space: SearchSpace,
    objective: Objective,
    positive_metric: PositiveMetric,
    settings: OptimizerSettings,
    runner_params: Vec<String>,
    state: OptimizerState,
    observations: Vec<Observation>,
    /// `config_key` texts of every configuration told, and of the failed ones. A told
    /// configuration may lie outside the space (recorded under wider bounds, or with a value the
    /// space does not admit); these sets hold them all.
    measured: BTreeSet<String>,
    failed: BTreeSet<String>,
    /// Coordinate keys (configkey.rs) of the told configurations that lie in the space: the only
    /// ones a decoded candidate can equal, so `excluded` needs nothing else.
    measured_keys: HashSet<ConfigKey>,
    failed_keys: HashSet<ConfigKey>,
    /// Which configurations cannot fit (engine/memory.rs), from the memory facts told.
    memory: MemoryWall,
    /// Out-of-memory trials in a row (told through `tell_memory`): from `RETREAT_AFTER` on,
    /// proposals keep to configurations predicted to fit until one loads.
    consecutive_oom: usize,
    /// Model-phase proposals told, and how many of them failed: the probe budget
    /// (`probing_allowed`).
    model_told: usize,
    model_failed: usize,
    /// What the server runs for a configuration, as the backend knows it without running it
    /// (effective.rs); candidates are mapped through it.
    runs_as: Option<RunsAs>,
}

/// Out-of-memory trials in a row after which the optimizer retreats to configurations
/// predicted to fit (docs/memory.md).
pub const RETREAT_AFTER: usize = 2;

/// The probe budget (docs/memory.md): model-phase proposals may fail at most about this share
/// of the time. Within it a proposal may sit where the feasibility model is unsure (the edge
/// of the wall, where constrained EI puts its maximum); beyond it, proposals keep to
/// configurations that are safe (`SAFE_FEASIBILITY`) until enough have run.
pub const PROBE_SHARE: f64 = 0.1;

/// P(feasible) from which a proposal counts as safe while the probe budget is spent, unless
/// the memory wall already predicts that it fits.
pub const SAFE_FEASIBILITY: f64 = 0.99;

impl Optimizer {
    /// `positive_metric` tells which metrics are rates or durations (`Transform::Auto` and the
    /// constraints model their logarithm).
    pub fn new(
        space: SearchSpace,
        objective: Objective,
        positive_metric: PositiveMetric,
        settings: OptimizerSettings,
        runner_params: Vec<String>,
        seed: u64,
    ) -> Optimizer {
        // Sequential linear algebra: deterministic results, and the run loop owns the other core.
        faer::set_global_parallelism(faer::Par::Seq);
        Optimizer {
            objective,
            positive_metric,
            settings,
            runner_params,
            state: OptimizerState {
                seed,
                n_asked: 0,
                sobol_index: 0,
                warm_theta: None,
                warp_lambda: None,
                fitted_n: 0,
                aux_theta: Default::default(),
                last_confirm: None,
            },
            observations: Vec::new(),
            measured: BTreeSet::new(),
            failed: BTreeSet::new(),
            measured_keys: HashSet::new(),
            failed_keys: HashSet::new(),
            memory: MemoryWall::new(&space),
            consecutive_oom: 0,
            model_told: 0,
            model_failed: 0,
            runs_as: None,
            space,
        }
    }

    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    pub(crate) fn objective(&self) -> &Objective {
        &self.objective
    }

    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// Continue from a checkpoint (observations come back through `tell`).
    pub fn restore(&mut self, state: OptimizerState) {
        self.state = state;
    }

    /// Whether a configuration (normalized as `tell` does) has been measured.
    pub fn was_measured(&self, config: &Config) -> bool {
        self.measured
            .contains(&config_key(&self.space.normalize_config(config)))
    }

    /// The configurations of the space that failed (none is proposed again), in telling order.
    pub fn failed_configs(&self) -> Vec<Config> {
        self.observations
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Failed))
            .map(|o| o.config.clone())
            .collect()
    }

    pub fn n_observations(&self) -> usize {
        self.observations.len()
    }

    fn rng(&self, number: usize, stream: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(mix(self.state.seed) ^ (number as u64) ^ (stream << 48)))
    }

    /// Whether a configuration of the space (by its key) may not be proposed: it failed, it
    /// was measured and repeats are not allowed, it is predicted not to fit (it needs at least
    /// as much memory as one that ran out), or the optimizer is retreating after repeated
    /// out-of-memory failures and it is not predicted to fit.
    fn excluded(&self, key: &ConfigKey) -> bool {
        self.failed_keys.contains(key)
            || (!self.settings.allow_repeats && self.measured_keys.contains(key))
            || self.memory.predicted_oom(key)
            || (self.retreating() && !self.memory.predicted_fits(key))
    }

    /// After `RETREAT_AFTER` out-of-memory trials in a row, while something has loaded.
    pub fn retreating(&self) -> bool {
        self.consecutive_oom >= RETREAT_AFTER && self.memory.has_loaded()
    }

    /// Record what a trial showed of memory: the configuration the server ran loaded
    /// (`fits`), or it ran out of memory. Other failures say nothing of memory and are not
    /// told. A configuration with an `auto` value has no place in the space and is skipped.
    pub(crate) fn tell_memory(&mut self, config: &Config, fits: bool) {
        if fits {
            self.consecutive_oom = 0;
        } else {
            self.consecutive_oom += 1;
        }
        if let Some(key) = self.space.key(&self.space.normalize_config(config)) {
            self.memory.tell(key, fits);
        }
    }

    /// Count a told trial against the probe budget when the model proposed it.
    pub(crate) fn tell_origin(&mut self, origin: Origin, failed: bool) {
        if origin == Origin::Model {
            self.model_told += 1;
            self.model_failed += failed as usize;
        }
    }

    /// Whether the next proposal may probe (sit where the feasibility model is unsure): while
    /// the model-phase failures stay within `1 + PROBE_SHARE * proposals told`.
    pub fn probing_allowed(&self) -> bool {
        (self.model_failed as f64) < 1.0 + PROBE_SHARE * self.model_told as f64
    }

    /// Whether a configuration is predicted not to fit (memory.rs); false for one outside the
    /// space or with an `auto` value.
    pub fn predicted_oom(&self, config: &Config) -> bool {
        self.space
            .key(&self.space.normalize_config(config))
            .is_some_and(|k| self.memory.predicted_oom(&k))
    }

    /// Propose the next configuration to measure.
    pub fn ask(&mut self, ctx: &AskContext) -> Trial {
        let number = self.state.n_asked;
        self.state.n_asked += 1;
        let d = self.space.dims();

        // 1. The baseline: what the user runs today.
        if number == 0 {
            if let Some(defaults) = self.space.defaults() {
                let config = self.space.normalize_config(&defaults);
                if !self.measured.contains(&config_key(&config)) {
                    return Trial {
                        number,
                        config,
                        origin: Origin::Baseline,
                        acquisition: None,
                    };
                }
            }
        }

        let n_init = if self.settings.initial_trials > 0 {
            self.settings.initial_trials
        } else {
            initial_design_size(d)
        };
        let n_ok = self
            .observations
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Ok { .. }))
            .count();
        let random = self.settings.strategy == Strategy::Random;

        // 2. Quasi-random initial design (also while fewer than two points ran successfully).
        if random || self.observations.len() < n_init || n_ok < 2 {
            let seed32 = (mix(self.state.seed) >> 32) as u32;
            for _ in 0..10_000 {
                let u = if random {
                    let mut rng = self.rng(number, self.state.sobol_index as u64);
                    (0..d).map(|_| rng.random::<f64>()).collect()
                } else {
                    sobol_point(self.state.sobol_index, d, seed32)
                };
                self.state.sobol_index += 1;
                let x = unit_to_encoded(&self.space, &u);
                if !self.excluded(&self.snap(&x).1) {
                    let config = self.ran_form(self.space.decode(&x));
                    let origin = if random {
                        Origin::Random
                    } else {
                        Origin::Initial
                    };
                    return Trial {
                        number,
                        config,
                        origin,
                        acquisition: None,
                    };
                }
            }
            return self.fallback(number);
        }

        // 3. Model-based: re-measure a leader whose lead is within the noise, else propose.
        let Some(models) = self.fit_models() else {
            return self.fallback(number);
        };
        if models.refitted {
            self.state.fitted_n = models.objective.n();
        }
        self.state.warm_theta = Some(models.objective.theta());
        self.state.warp_lambda = Some(models.warp.lambda());
        for (k, t) in &models.aux {
            self.state.aux_theta.insert(k.clone(), t.clone());
        }
        if let Some(config) = self.confirmation(number, &models) {
            self.state.last_confirm = Some(number);
            return Trial {
                number,
                config,
                origin: Origin::Confirm,
                acquisition: None,
            };
        }
        // Beyond the probe budget, a safe proposal first; when none is left, probe anyway.
        let safe_only = !self.probing_allowed();
        let proposal = self
            .propose(number, ctx, &models, safe_only)
            .or_else(|| safe_only.then(|| self.propose(number, ctx, &models, false))?);
        match proposal {
            Some((config, acq)) => Trial {
                number,
                config,
                origin: Origin::Model,
                acquisition: Some(acq),
            },
            None => self.fallback(number),
        }
    }

    /// When nothing new can be proposed (tiny space, everything measured): a random unmeasured
    /// configuration if one can be found, else the best one measured again.
    fn fallback(&mut self, number: usize) -> Trial {
        let mut rng = self.rng(number, 7);
        let d = self.space.dims();
        for _ in 0..2000 {
            let u: Vec<f64> = (0..d).map(|_| rng.random::<f64>()).collect();
            let x = unit_to_encoded(&self.space, &u);
            if !self.excluded(&self.snap(&x).1) {
                let config = self.ran_form(self.space.decode(&x));
                return Trial {
                    number,
                    config,
                    origin: Origin::Random,
                    acquisition: None,
                };
            }
        }
        let config = self
            .best_observed()
            .map(|(c, _)| c)
            .unwrap_or_else(|| self.space.decode(&vec![0.5; d]));
        Trial {
            number,
            config,
            origin: Origin::Random,
            acquisition: None,
        }
    }

    /// The number of a trial the optimizer did not propose (the decision phase): one sequence
    /// of trial numbers, covered by the checkpointed state like an ask.
    pub fn take_number(&mut self) -> usize {
        let n = self.state.n_asked;
        self.state.n_asked += 1;
        n
    }

    /// Record a measured trial.
    pub fn tell(&mut self, trial: &Trial, outcome: Outcome) {
        self.tell_origin(trial.origin, matches!(outcome, Outcome::Failed));
        self.tell_config(&trial.config, outcome);
    }

    /// Record the outcome of a configuration (`tell` without a `Trial`; the journal adapter
    /// `tell_record` of trial.rs in the crate root uses it).
    pub(crate) fn tell_config(&mut self, config: &Config, outcome: Outcome) {
        let config = self.space.normalize_config(config);
        let key = config_key(&config);
        let coords = self.space.key(&config);
        match outcome {
            Outcome::Failed => {
                self.failed.insert(key.clone());
                if let Some(k) = &coords {
                    self.failed_keys.insert(k.clone());
                }
            }
            Outcome::Ok { .. } => {}
        }
        self.measured.insert(key);
        if let Some(k) = coords {
            self.measured_keys.insert(k);
        }
        // A configuration with an `auto` value (a baseline that lets the server decide) has no
        // coordinates: it stays measured (and, if it failed, failed) but is no GP point.
        if !self.space.has_coordinates(&config) {
            return;
        }
        self.observations.push(Observation {
            x: self.space.encode(&config),
            config,
            outcome,
        });
    }
}

#[cfg(test)]
mod tests;
