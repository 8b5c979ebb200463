//! The ask/tell optimizer: baseline, initial design, then GP + log EI proposals. No I/O.
//!
//! Everything random is drawn from a generator seeded by (study seed, trial number), and the
//! GP fit is deterministic, so a run is reproducible for a given seed and a resumed run asks
//! exactly what the uninterrupted one would have (given the saved `OptimizerState`).

use crate::engine::acquisition::{
    log_ei_with_grad, log_expected_improvement, log_norm_cdf, log_norm_cdf_grad,
};
use crate::engine::boxmin::{minimize_box, BoxMinOptions};
use crate::engine::design::{initial_design_size, sobol_point, unit_to_encoded};
use crate::engine::gp::{FitOptions, Gp};
use crate::engine::space::{config_key, Config, ParamKind, SearchSpace};
use crate::engine::stats::quantile;
use crate::engine::warp::OutputWarp;
use crate::study::{is_positive_metric, Comparison, Direction, Objective, OptimizerSettings};
use crate::trial::{Origin, Status, Trial, TrialRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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

impl Outcome {
    /// Read an outcome from a journal record. An ok record that lacks the objective metric
    /// counts as failed: there is nothing to learn from it.
    pub fn from_record(rec: &TrialRecord, objective: &Objective) -> Outcome {
        if rec.status != Status::Ok {
            return Outcome::Failed;
        }
        let Some(value) = rec.objective.filter(|v| v.is_finite()) else {
            return Outcome::Failed;
        };
        let constraint_values = objective
            .constraints
            .iter()
            .map(|c| {
                rec.metrics
                    .get(&c.metric.metric)
                    .map(|s| s.get(c.metric.stat))
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let reload_s = rec.load.as_ref().filter(|l| l.reloaded).map(|l| l.seconds);
        Outcome::Ok {
            value,
            constraint_values,
            duration_s: rec.duration_s,
            reload_s,
        }
    }
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

/// How much each parameter matters around the best configuration (from the fitted GP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamEffect {
    pub name: String,
    /// Fitted lengthscale in encoded units (short = the objective changes fast along it).
    pub lengthscale: f64,
    /// Range of the GP posterior mean of the objective when only this parameter varies over its
    /// domain and the others stay at the best configuration, in the objective's units.
    pub effect: f64,
    /// `effect` as a share of the sum over parameters.
    pub share: f64,
}

pub struct Optimizer {
    space: SearchSpace,
    objective: Objective,
    settings: OptimizerSettings,
    runner_params: Vec<String>,
    state: OptimizerState,
    observations: Vec<Observation>,
    measured: BTreeSet<String>,
    failed: BTreeSet<String>,
}

/// Acquisition of encoded points (with their decoded configurations).
type ScoreFn<'a> = dyn Fn(&[Vec<f64>], &[Config]) -> Vec<f64> + 'a;

/// splitmix64: decorrelates nearby seeds (Steele, Lea, Flood 2014).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Optimizer {
    pub fn new(
        space: SearchSpace,
        objective: Objective,
        settings: OptimizerSettings,
        runner_params: Vec<String>,
        seed: u64,
    ) -> Optimizer {
        // Sequential linear algebra: deterministic results, and the run loop owns the other core.
        faer::set_global_parallelism(faer::Par::Seq);
        Optimizer {
            space,
            objective,
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
        }
    }

    pub fn space(&self) -> &SearchSpace {
        &self.space
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

    pub fn n_observations(&self) -> usize {
        self.observations.len()
    }

    fn rng(&self, number: usize, stream: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(mix(self.state.seed) ^ (number as u64) ^ (stream << 48)))
    }

    fn excluded(&self, key: &str) -> bool {
        self.failed.contains(key) || (!self.settings.allow_repeats && self.measured.contains(key))
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
        let random = self.settings.strategy == "random";

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
                let config = self.space.decode(&unit_to_encoded(&self.space, &u));
                if !self.excluded(&config_key(&config)) {
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
        match self.propose(number, ctx, &models) {
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
            let config = self.space.decode(&unit_to_encoded(&self.space, &u));
            if !self.excluded(&config_key(&config)) {
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

    /// Record a measured trial.
    pub fn tell(&mut self, trial: &Trial, outcome: Outcome) {
        self.tell_config(&trial.config, outcome);
    }

    /// Record a journaled trial (resume and replays).
    pub fn tell_record(&mut self, rec: &TrialRecord) {
        let outcome = Outcome::from_record(rec, &self.objective);
        self.tell_config(&rec.params, outcome);
    }

    fn tell_config(&mut self, config: &Config, outcome: Outcome) {
        let config = self.space.normalize_config(config);
        let key = config_key(&config);
        match outcome {
            Outcome::Failed => {
                self.failed.insert(key.clone());
            }
            Outcome::Ok { .. } => {}
        }
        self.measured.insert(key);
        self.observations.push(Observation {
            x: self.space.encode(&config),
            config,
            outcome,
        });
    }

    /// Model value of an objective measurement: log for positive rates/durations, negated when
    /// minimizing, so the GP always maximizes.
    fn transform(&self, values: &[f64]) -> Vec<f64> {
        let log = self.objective.use_log(values);
        values
            .iter()
            .map(|v| {
                let t = if log { v.ln() } else { *v };
                match self.objective.direction {
                    Direction::Maximize => t,
                    Direction::Minimize => -t,
                }
            })
            .collect()
    }

    fn fit_options(&self, n: usize) -> FitOptions {
        let warm = self.state.warm_theta.is_some();
        match n {
            0..=60 => FitOptions {
                restarts: 3,
                max_iters: 80,
            },
            61..=150 => FitOptions {
                restarts: if warm { 1 } else { 3 },
                max_iters: 50,
            },
            _ => FitOptions {
                restarts: if warm { 0 } else { 1 },
                max_iters: 25,
            },
        }
    }

    /// Hyperparameters are refitted on every ask up to 100 points, then whenever the data grew
    /// by 10% since the last fit; in between the GP is only conditioned on the new data with the
    /// last hyperparameters (which move little once there are hundreds of points). This keeps
    /// an ask at a few milliseconds of linear algebra on long overnight runs.
    fn needs_refit(&self, n: usize) -> bool {
        n <= 100 || n >= self.state.fitted_n + (self.state.fitted_n / 10).max(1)
    }

    /// Indices of the ok observations the objective GP is fitted on.
    fn gp_subset(&self) -> Vec<usize> {
        let ok: Vec<usize> = (0..self.observations.len())
            .filter(|&i| matches!(self.observations[i].outcome, Outcome::Ok { .. }))
            .collect();
        if ok.len() <= MAX_GP_POINTS {
            return ok;
        }
        let values: Vec<f64> = ok.iter().map(|&i| self.value(i)).collect();
        let y = self.transform(&values);
        let mut by_value: Vec<usize> = (0..ok.len()).collect();
        by_value.sort_by(|a, b| y[*b].total_cmp(&y[*a]).then(a.cmp(b)));
        let mut keep: BTreeSet<usize> = by_value[..MAX_GP_POINTS / 2]
            .iter()
            .map(|&j| ok[j])
            .collect();
        for &i in ok.iter().rev() {
            if keep.len() >= MAX_GP_POINTS {
                break;
            }
            keep.insert(i);
        }
        keep.into_iter().collect()
    }

    fn value(&self, i: usize) -> f64 {
        match &self.observations[i].outcome {
            Outcome::Ok { value, .. } => *value,
            Outcome::Failed => f64::NAN,
        }
    }

    fn runner_key(&self, config: &Config) -> String {
        let sub: Config = config
            .iter()
            .filter(|(k, _)| self.runner_params.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        config_key(&sub)
    }

    /// Fit the surrogate models and maximize the acquisition. Returns the configuration and its
    /// acquisition value, or None when every candidate is excluded.
    fn propose(&self, number: usize, ctx: &AskContext, models: &Models) -> Option<(Config, f64)> {
        let mut rng = self.rng(number, 1);
        let d = self.space.dims();

        // Reload cost: EI per unit of expected wall time (Snoek, Larochelle, Adams 2012, sec. 3.2),
        // where a candidate whose runner options differ from the loaded ones pays a reload.
        let cost = if self.settings.reload_aware
            && !self.runner_params.is_empty()
            && self.trials_on_loaded_runner(ctx) < RELOAD_GROUP
        {
            self.cost_model(ctx)
        } else {
            None
        };

        // Reload penalty of a configuration (0 when its runner options are the loaded ones).
        let penalty = |c: &Config| -> f64 {
            match &cost {
                Some((loaded_key, t_measure, t_reload)) if &self.runner_key(c) != loaded_key => {
                    ((t_measure + t_reload) / t_measure).ln()
                }
                _ => 0.0,
            }
        };
        let score = |xs: &[Vec<f64>], configs: &[Config]| -> Vec<f64> {
            let mut s = models.score(xs);
            for (si, c) in s.iter_mut().zip(configs) {
                *si -= penalty(c);
            }
            s
        };

        // Raw candidates: scrambled Sobol over the space plus perturbations of the best points.
        let n_obs = self.observations.len();
        let m = if n_obs > 150 {
            (self.settings.candidates / 2).max(256)
        } else {
            self.settings.candidates
        };
        let seed32 = rng.random::<u32>();
        let mut xs: Vec<Vec<f64>> = (0..m as u32)
            .map(|i| unit_to_encoded(&self.space, &sobol_point(i, d, seed32)))
            .collect();
        for (x, _) in models.top_observed.iter().take(5) {
            for _ in 0..32 {
                xs.push(self.perturb(x, 0.08, &mut rng));
            }
        }
        if let Some(loaded) = ctx.loaded_runner.as_ref().filter(|_| cost.is_some()) {
            let stay = self.keep_runner(&xs, loaded);
            xs.extend(stay);
        }
        let configs: Vec<Config> = xs.iter().map(|x| self.space.decode(x)).collect();
        let xs: Vec<Vec<f64>> = configs.iter().map(|c| self.space.encode(c)).collect();
        let scores = score(&xs, &configs);

        let mut pool: Vec<(f64, Vec<f64>, Config)> = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut order: Vec<usize> = (0..xs.len()).collect();
        order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
        for i in order {
            let key = config_key(&configs[i]);
            if seen.insert(key) {
                pool.push((scores[i], xs[i].clone(), configs[i].clone()));
            }
        }

        // Starting points of the local searches, as Optuna's optuna/_gp/optim_mixed.py
        // `optimize_acqf_mixed` picks them: the best raw candidate, others drawn without
        // replacement with probability proportional to exp(acquisition - best) (a roulette
        // wheel over the log acquisition), and the best observed point as a warm start
        // (optuna/samplers/_gp/sampler.py passes it as `best_params`).
        let n_local = if n_obs > 150 { 5 } else { 10 };
        let candidates: Vec<&(f64, Vec<f64>, Config)> = pool
            .iter()
            .filter(|(s, _, c)| s.is_finite() && !self.excluded(&config_key(c)))
            .collect();
        let mut starts: Vec<Vec<f64>> = Vec::new();
        if let Some(first) = candidates.first() {
            starts.push(first.1.clone());
            let top = first.0;
            let mut w: Vec<f64> = candidates.iter().map(|(s, _, _)| (s - top).exp()).collect();
            w[0] = 0.0;
            while starts.len() + 1 < n_local {
                let total: f64 = w.iter().sum();
                if total.is_nan() || total <= 0.0 {
                    break;
                }
                let mut u = rng.random::<f64>() * total;
                let mut pick = w.len() - 1;
                for (i, wi) in w.iter().enumerate() {
                    if u < *wi {
                        pick = i;
                        break;
                    }
                    u -= wi;
                }
                if w[pick] <= 0.0 {
                    break;
                }
                w[pick] = 0.0;
                starts.push(candidates[pick].1.clone());
            }
        }
        if let Some((x, _)) = models.top_observed.first() {
            starts.push(x.clone());
        }
        let mut refined: Vec<(f64, Vec<f64>, Config)> = Vec::new();
        for x0 in starts {
            let (best_s, best_x) = self.local_search(models, &penalty, x0, &score);
            let c = self.space.decode(&best_x);
            refined.push((best_s, best_x, c));
        }
        pool.extend(refined);
        pool.sort_by(|a, b| b.0.total_cmp(&a.0));
        pool.into_iter()
            .find(|(s, _, c)| s.is_finite() && !self.excluded(&config_key(c)))
            .map(|(s, _, c)| (c, s))
    }

    /// A configuration to measure again, when the leaders are statistically tied: among the
    /// three measured configurations with the best posterior mean, those within two noise
    /// standard deviations of the first are tied, and the tied one measured the fewest times
    /// (fewer than `settings.confirm`) is measured again. This is what the seed reports lacked
    /// (ollama-api.md: one-shot rankings of noise): a recommendation backed by one lucky sample.
    /// At most one ask in three is spent this way, and none when the GP finds the objective
    /// essentially noise-free (noise sd under 1% of the objective's spread), where a repeat
    /// teaches nothing.
    fn confirmation(&self, number: usize, models: &Models) -> Option<Config> {
        if self.settings.confirm <= 1
            || self
                .state
                .last_confirm
                .is_some_and(|last| number < last + CONFIRM_EVERY)
        {
            return None;
        }
        // The test runs in the units of the (log-)metric, before the output warp: the GP's noise
        // is one variance in warped units, and the warp stretches or squeezes the top of the
        // range, so the noise at the leaders is the GP's noise times the local slope of the
        // inverse warp (a first-order, delta-method conversion).
        let gp = &models.objective;
        let unwarp = |mu: f64| models.warp.invert(gp.y_mean + gp.y_std * mu);
        let top_mu = models.top_observed.first()?.1;
        let noise_sd = gp.hyper.noise_variance.sqrt()
            * gp.y_std
            * models.warp.invert_slope(gp.y_mean + gp.y_std * top_mu);
        // Below 1% of the spread of the measured values the GP treats the objective as
        // deterministic, and there is nothing to confirm.
        if noise_sd.is_nan() || noise_sd < 0.01 * models.warp.scale() {
            return None;
        }
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        let mut feasible: BTreeSet<String> = BTreeSet::new();
        for o in &self.observations {
            let key = config_key(&o.config);
            if self.meets_constraints(&o.outcome) {
                feasible.insert(key.clone());
            }
            *counts.entry(key).or_default() += 1;
        }
        let mut leaders: Vec<(Config, f64, usize)> = Vec::new();
        for (x, mu) in &models.top_observed {
            let config = self.space.decode(x);
            let key = config_key(&config);
            if !feasible.contains(&key) || leaders.iter().any(|(c, _, _)| config_key(c) == key) {
                continue;
            }
            leaders.push((config, unwarp(*mu), counts.get(&key).copied().unwrap_or(0)));
            if leaders.len() == 3 {
                break;
            }
        }
        let first = leaders.first()?.1;
        let tied: Vec<&(Config, f64, usize)> = leaders
            .iter()
            .filter(|(_, mu, _)| first - mu < 2.0 * noise_sd)
            .collect();
        if tied.len() < 2 {
            return None;
        }
        tied.into_iter()
            .filter(|(c, _, n)| *n < self.settings.confirm && !self.failed.contains(&config_key(c)))
            .min_by_key(|(_, _, n)| *n)
            .map(|(c, _, _)| c.clone())
    }

    /// Copies of (up to 512 of) the candidates with the loaded runner options put back. Random
    /// candidates almost never match the loaded runner exactly (several integer options), so
    /// without these the cost weighting would never be offered a configuration that needs no
    /// reload, and every trial would reload (measured: 1.00 reloads per trial, BENCHMARKS.md).
    fn keep_runner(&self, xs: &[Vec<f64>], loaded: &Config) -> Vec<Vec<f64>> {
        let step = (xs.len() / 512).max(1);
        xs.iter()
            .step_by(step)
            .map(|x| {
                let mut c = self.space.decode(x);
                for (k, v) in loaded {
                    if c.contains_key(k) {
                        c.insert(k.clone(), v.clone());
                    }
                }
                self.space.encode(&self.space.normalize_config(&c))
            })
            .collect()
    }

    /// The continuous dimensions of the space (floats, and integers or stepped floats with more
    /// than 32 values) and the discrete ones with their encoded values, for the local search.
    fn split_dims(&self) -> (Vec<usize>, Vec<(usize, Vec<f64>)>) {
        let mut cont = Vec::new();
        let mut discrete: Vec<(usize, Vec<f64>)> = Vec::new();
        for (i, p) in self.space.params.iter().enumerate() {
            match (p.is_categorical(), p.cardinality()) {
                (true, _) => discrete.push((
                    i,
                    (0..=p.encoded_upper() as usize).map(|k| k as f64).collect(),
                )),
                (false, Some(card)) if card <= 32 => {
                    let vals = (0..card)
                        .map(|k| {
                            p.encode(&p.decode((k as f64 + 0.5) / card as f64))
                                .unwrap_or(0.5)
                        })
                        .collect();
                    discrete.push((i, vals));
                }
                (false, _) => cont.push(i),
            }
        }
        (cont, discrete)
    }

    /// Local maximization of the acquisition from `x0`, alternating (1) projected L-BFGS
    /// (boxmin.rs) with exact gradients over the continuous dimensions, in coordinates divided
    /// by the objective GP's lengthscales (Optuna's preconditioning in optuna/_gp/optim_mixed.py
    /// `_gradient_ascent_batched`), and (2) an exhaustive pass over every value of each discrete
    /// dimension (<= 32 values), until a round changes nothing. Integer and stepped dimensions
    /// with more than 32 values are relaxed during (1) and snapped after it. Only configurations
    /// that may be proposed (not excluded) can become the result; an excluded `x0` (the best
    /// observed point as a warm start) scores -inf until the search leaves it.
    fn local_search(
        &self,
        models: &Models,
        penalty: &dyn Fn(&Config) -> f64,
        x0: Vec<f64>,
        score: &ScoreFn,
    ) -> (f64, Vec<f64>) {
        let eval = |xs: Vec<Vec<f64>>| -> (Vec<Vec<f64>>, Vec<Config>, Vec<f64>) {
            let cs: Vec<Config> = xs.iter().map(|x| self.space.decode(x)).collect();
            let xs: Vec<Vec<f64>> = cs.iter().map(|c| self.space.encode(c)).collect();
            let s = score(&xs, &cs);
            (xs, cs, s)
        };
        let (cont, discrete) = self.split_dims();
        let ls: Vec<f64> = cont
            .iter()
            .map(|&i| models.objective.hyper.lengthscales[i].clamp(1e-3, 1e3))
            .collect();
        let (mut best_x, mut best_s) = {
            let (xs, cs, s) = eval(vec![x0]);
            let s0 = if self.excluded(&config_key(&cs[0])) {
                f64::NEG_INFINITY
            } else {
                s[0]
            };
            (xs.into_iter().next().unwrap(), s0)
        };
        let opts = BoxMinOptions {
            max_iters: if self.observations.len() > 150 {
                60
            } else {
                200
            },
            ..BoxMinOptions::default()
        };
        for _round in 0..5 {
            let mut changed = false;
            // (1) continuous dimensions
            if !cont.is_empty() {
                let base = best_x.clone();
                let to_x = |z: &[f64]| -> Vec<f64> {
                    let mut x = base.clone();
                    for (k, &i) in cont.iter().enumerate() {
                        x[i] = z[k] * ls[k];
                    }
                    x
                };
                let mut f = |z: &[f64]| -> (f64, Vec<f64>) {
                    let x = to_x(z);
                    let (v, g) = models.score_with_grad(&x);
                    let v = v - penalty(&self.space.decode(&x));
                    (-v, cont.iter().zip(&ls).map(|(&i, l)| -g[i] * l).collect())
                };
                let z0: Vec<f64> = cont.iter().zip(&ls).map(|(&i, l)| base[i] / l).collect();
                let lo = vec![0.0; cont.len()];
                let hi: Vec<f64> = ls.iter().map(|l| 1.0 / l).collect();
                let r = minimize_box(&mut f, &z0, &lo, &hi, &opts);
                if r.iterations > 0 {
                    let (xs, cs, s) = eval(vec![to_x(&r.x)]);
                    if s[0] > best_s + 1e-12 && !self.excluded(&config_key(&cs[0])) {
                        best_s = s[0];
                        best_x = xs.into_iter().next().unwrap();
                        changed = true;
                    }
                }
            }
            // (2) exhaustive search of each discrete dimension
            for (i, vals) in &discrete {
                let pts: Vec<Vec<f64>> = vals
                    .iter()
                    .map(|v| {
                        let mut x = best_x.clone();
                        x[*i] = *v;
                        x
                    })
                    .collect();
                let (tx, tc, ts) = eval(pts);
                for ((x, c), s) in tx.into_iter().zip(tc).zip(ts) {
                    if s > best_s + 1e-12 && !self.excluded(&config_key(&c)) {
                        best_s = s;
                        best_x = x;
                        changed = true;
                    }
                }
            }
            if !changed || cont.is_empty() {
                break;
            }
        }
        (best_s, best_x)
    }

    /// A random neighbour of an encoded point.
    fn perturb(&self, x: &[f64], sigma: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let d = x.len();
        let mut out = x.to_vec();
        // Move every continuous dimension a little, and each discrete one with probability ~2/d,
        // so at least something changes on average.
        let p_discrete = (2.0 / d as f64).min(1.0);
        for (i, p) in self.space.params.iter().enumerate() {
            match &p.kind {
                ParamKind::Categorical { .. } | ParamKind::Bool => {
                    if rng.random::<f64>() < p_discrete * 0.5 {
                        let k = p.encoded_upper() as usize + 1;
                        out[i] = rng.random_range(0..k) as f64;
                    }
                }
                ParamKind::Int { .. } | ParamKind::Float { step: Some(_), .. }
                    if p.cardinality().unwrap_or(u64::MAX) <= 32 =>
                {
                    if rng.random::<f64>() < p_discrete {
                        let k = p.cardinality().unwrap() as f64;
                        let dir = if rng.random::<bool>() { 1.0 } else { -1.0 };
                        out[i] = (x[i] + dir / k).clamp(0.0, 1.0);
                    }
                }
                _ => {
                    let z: f64 = gaussian(rng);
                    out[i] = (x[i] + sigma * z).clamp(0.0, 1.0);
                }
            }
        }
        out
    }

    /// How many of the latest trials ran on the runner options loaded now.
    fn trials_on_loaded_runner(&self, ctx: &AskContext) -> usize {
        let Some(loaded) = ctx.loaded_runner.as_ref() else {
            return 0;
        };
        let key = self.runner_key(loaded);
        self.observations
            .iter()
            .rev()
            .take_while(|o| self.runner_key(&o.config) == key)
            .count()
    }

    /// (loaded runner key, typical measurement seconds, typical reload seconds).
    fn cost_model(&self, ctx: &AskContext) -> Option<(String, f64, f64)> {
        let loaded = ctx.loaded_runner.as_ref()?;
        let mut measure = Vec::new();
        let mut reload = Vec::new();
        for o in &self.observations {
            if let Outcome::Ok {
                duration_s,
                reload_s,
                ..
            } = &o.outcome
            {
                let r = reload_s.unwrap_or(0.0);
                measure.push((duration_s - r).max(1e-3));
                if let Some(r) = reload_s {
                    reload.push(*r);
                }
            }
        }
        if measure.is_empty() || reload.is_empty() {
            return None;
        }
        Some((
            self.runner_key(loaded),
            quantile(&measure, 0.5),
            quantile(&reload, 0.5),
        ))
    }

    fn fit_models(&self) -> Option<Models> {
        let subset = self.gp_subset();
        if subset.len() < 2 {
            return None;
        }
        let cat = self.space.categorical_mask();
        let xs: Vec<Vec<f64>> = subset
            .iter()
            .map(|&i| self.observations[i].x.clone())
            .collect();
        let values: Vec<f64> = subset.iter().map(|&i| self.value(i)).collect();
        // Log (for positive metrics) and direction first, then the fitted power warp (warp.rs).
        // Between hyperparameter refits the warp keeps its parameter too.
        let transformed = self.transform(&values);
        let n = xs.len();
        let reuse = self.state.warm_theta.is_some() && !self.needs_refit(n);
        let warp = match self.state.warp_lambda {
            Some(lambda) if reuse => OutputWarp::with_lambda(&transformed, lambda),
            _ => OutputWarp::fit(&transformed),
        };
        let y: Vec<f64> = transformed.iter().map(|v| warp.apply(*v)).collect();
        let gp = match self.state.warm_theta.as_deref() {
            Some(theta) if reuse => Gp::with_theta(&xs, &y, &cat, theta),
            warm => Gp::fit(&xs, &y, &cat, warm, &self.fit_options(n)),
        };

        // Observed points that satisfy every constraint: candidates for the incumbent.
        let feasible: Vec<bool> = subset
            .iter()
            .map(|&i| self.meets_constraints(&self.observations[i].outcome))
            .collect();
        let (mu_obs, _) = gp.predict_standardized(&xs);
        // Noise-robust incumbent: best posterior mean at an observed feasible point.
        let incumbent = mu_obs
            .iter()
            .zip(&feasible)
            .filter(|(_, f)| **f)
            .map(|(m, _)| *m)
            .fold(None, |acc: Option<f64>, m| {
                Some(acc.map_or(m, |a| a.max(m)))
            });
        let mut ranked: Vec<(Vec<f64>, f64)> =
            xs.iter().cloned().zip(mu_obs.iter().copied()).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));

        // Feasibility model: GP regression on +1 (ran) / -1 (failed) labels, used as a probit
        // classifier: P(feasible) = Phi(mu / sqrt(var + 0.1^2)); out-of-memory is a near-
        // deterministic boundary (bayesopt.md), so the link is kept sharp.
        let feasibility = if !self.failed.is_empty() {
            // The most recent half-cap of successes and of failures: bounded cost on long runs
            // (every failed configuration stays excluded by its key regardless).
            let (mut fx, mut fy) = (Vec::new(), Vec::new());
            let (mut n_ok, mut n_fail) = (0, 0);
            for o in self.observations.iter().rev() {
                let failed = matches!(o.outcome, Outcome::Failed);
                let count = if failed { &mut n_fail } else { &mut n_ok };
                if *count < MAX_GP_POINTS / 2 {
                    *count += 1;
                    fx.push(o.x.clone());
                    fy.push(if failed { -1.0 } else { 1.0 });
                }
            }
            Some(self.fit_aux("feasibility", &fx, &fy, n, 30))
        } else {
            None
        };

        let mut aux: Vec<(String, Vec<f64>)> = Vec::new();
        if let Some(f) = &feasibility {
            aux.push(("feasibility".into(), f.theta()));
        }
        // One GP per outcome constraint (Gardner et al. 2014; Optuna's constrained LogEI).
        let mut constraints = Vec::new();
        for (ci, c) in self.objective.constraints.iter().enumerate() {
            let mut cx = Vec::new();
            let mut cy = Vec::new();
            for &i in &subset {
                if let Outcome::Ok {
                    constraint_values, ..
                } = &self.observations[i].outcome
                {
                    let v = constraint_values[ci];
                    if v.is_finite() {
                        cx.push(self.observations[i].x.clone());
                        cy.push(v);
                    }
                }
            }
            if cx.len() < 2 {
                continue;
            }
            let log = is_positive_metric(&c.metric.metric)
                && cy.iter().all(|v| *v > 0.0)
                && c.bound > 0.0;
            let ty: Vec<f64> = cy.iter().map(|v| if log { v.ln() } else { *v }).collect();
            let bound = if log { c.bound.ln() } else { c.bound };
            let g = self.fit_aux(&format!("constraint:{ci}"), &cx, &ty, n, 40);
            aux.push((format!("constraint:{ci}"), g.theta()));
            constraints.push((g, bound, c.op.clone()));
        }

        let warped_range = y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
                (lo.min(*t), hi.max(*t))
            });
        Some(Models {
            aux,
            refitted: !reuse,
            objective: gp,
            warp,
            warped_range,
            incumbent,
            top_observed: ranked,
            feasibility,
            constraints,
        })
    }

    /// The configuration to recommend: among measured configurations that ran and met the
    /// constraints, the one with the best GP posterior mean, which discounts a lucky noisy
    /// sample (the noise-robust incumbent of bayesopt.md). Falls back to the best measured value
    /// while there is no model.
    pub fn recommend(&self) -> Option<Config> {
        let Some(models) = self.fit_models() else {
            return self.best_observed().map(|(c, _)| c);
        };
        let feasible: BTreeSet<String> = self
            .observations
            .iter()
            .filter(|o| self.meets_constraints(&o.outcome))
            .map(|o| config_key(&o.config))
            .collect();
        models
            .top_observed
            .iter()
            .map(|(x, _)| self.space.decode(x))
            .find(|c| feasible.contains(&config_key(c)))
            .or_else(|| self.best_observed().map(|(c, _)| c))
    }

    /// Fit an auxiliary GP (feasibility, constraint) on the same schedule as the objective's:
    /// refit from its last hyperparameters when the data grew enough, else only condition.
    fn fit_aux(&self, key: &str, x: &[Vec<f64>], y: &[f64], n: usize, max_iters: u64) -> Gp {
        let cat = self.space.categorical_mask();
        let warm = self.state.aux_theta.get(key).map(|t| t.as_slice());
        match warm {
            Some(theta) if !self.needs_refit(n) => Gp::with_theta(x, y, &cat, theta),
            _ => Gp::fit(
                x,
                y,
                &cat,
                warm,
                &FitOptions {
                    restarts: if warm.is_some() { 0 } else { 1 },
                    max_iters,
                },
            ),
        }
    }

    /// True when a trial ran and every outcome constraint held.
    fn meets_constraints(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Ok {
                constraint_values, ..
            } => self
                .objective
                .constraints
                .iter()
                .zip(constraint_values)
                .all(|(c, v)| v.is_finite() && c.violation(*v) <= 0.0),
            Outcome::Failed => false,
        }
    }

    /// Best measured configuration (feasible, ok) by its measured objective value.
    pub fn best_observed(&self) -> Option<(Config, f64)> {
        let mut best: Option<(Config, f64, f64)> = None;
        for o in &self.observations {
            if let Outcome::Ok { value, .. } = &o.outcome {
                if !self.meets_constraints(&o.outcome) {
                    continue;
                }
                let t = self.transform(&[*value])[0];
                if best.as_ref().is_none_or(|b| t > b.2) {
                    best = Some((o.config.clone(), *value, t));
                }
            }
        }
        best.map(|(c, v, _)| (c, v))
    }

    /// Parameter effects around the best configuration, from a GP fitted on all ok trials.
    pub fn explain(&self) -> Vec<ParamEffect> {
        let Some(models) = self.fit_models() else {
            return vec![];
        };
        let Some((best, _)) = self.best_observed() else {
            return vec![];
        };
        let gp = &models.objective;
        let base = self.space.encode(&best);
        let log = {
            let values: Vec<f64> = self.gp_subset().iter().map(|&i| self.value(i)).collect();
            self.objective.use_log(&values)
        };
        let sign = match self.objective.direction {
            Direction::Maximize => 1.0,
            Direction::Minimize => -1.0,
        };
        let mut effects: Vec<ParamEffect> = self
            .space
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let steps: Vec<f64> = if p.is_categorical() {
                    (0..=p.encoded_upper() as usize).map(|k| k as f64).collect()
                } else {
                    (0..=32).map(|k| k as f64 / 32.0).collect()
                };
                let pts: Vec<Vec<f64>> = steps
                    .iter()
                    .map(|s| {
                        let mut x = base.clone();
                        x[i] = *s;
                        self.space.canonicalize(&x)
                    })
                    .collect();
                let (m, _) = gp.predict(&pts);
                // Predictions beyond the warped values seen are clamped before the inverse warp,
                // which would otherwise amplify a GP overshoot (twice, through exp, on a log metric).
                let vals: Vec<f64> = m
                    .iter()
                    .map(|t| t.clamp(models.warped_range.0, models.warped_range.1))
                    .map(|t| sign * models.warp.invert(t))
                    .map(|t| if log { t.exp() } else { t })
                    .collect();
                let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                ParamEffect {
                    name: p.name.clone(),
                    lengthscale: gp.hyper.lengthscales[i],
                    effect: (hi - lo).max(0.0),
                    share: 0.0,
                }
            })
            .collect();
        let total: f64 = effects.iter().map(|e| e.effect).sum();
        for e in &mut effects {
            e.share = if total > 0.0 { e.effect / total } else { 0.0 };
        }
        effects
    }
}

struct Models {
    /// Hyperparameters of the auxiliary GPs, to warm-start the next fit.
    aux: Vec<(String, Vec<f64>)>,
    /// Whether the objective GP's hyperparameters were fitted (not just reused).
    refitted: bool,
    /// The objective GP, fitted on warped values (`warp`).
    objective: Gp,
    /// The output warp the objective GP's values went through.
    warp: OutputWarp,
    /// Lowest and highest warped value the objective GP was fitted on.
    warped_range: (f64, f64),
    /// Best posterior mean (warped, standardized) at a feasible observed point. The warp is
    /// increasing, so rankings by posterior mean are rankings in the metric's own order; log EI
    /// and the reload cost weighting (EI per second) are in warped units.
    incumbent: Option<f64>,
    /// Observed points with their posterior means, best first.
    top_observed: Vec<(Vec<f64>, f64)>,
    feasibility: Option<Gp>,
    constraints: Vec<(Gp, f64, Comparison)>,
}

impl Models {
    /// log acquisition at encoded points: log EI + log P(feasible) + sum log P(constraint holds).
    fn score(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        let (mu, var) = self.objective.predict_standardized(xs);
        let mut s: Vec<f64> = match self.incumbent {
            Some(best) => mu
                .iter()
                .zip(&var)
                .map(|(m, v)| log_expected_improvement(*m, v.sqrt(), best))
                .collect(),
            // No feasible point yet: maximize the probability of feasibility alone.
            None => vec![0.0; xs.len()],
        };
        if let Some(f) = &self.feasibility {
            let (m, sd) = f.predict(xs);
            for (si, (m, sd)) in s.iter_mut().zip(m.iter().zip(&sd)) {
                *si += log_norm_cdf(m / (sd * sd + 0.01).sqrt());
            }
        }
        for (g, bound, op) in &self.constraints {
            let (m, sd) = g.predict(xs);
            for (si, (m, sd)) in s.iter_mut().zip(m.iter().zip(&sd)) {
                let sd = sd.max(1e-9);
                let z = match op {
                    Comparison::AtMost => (bound - m) / sd,
                    Comparison::AtLeast => (m - bound) / sd,
                };
                *si += log_norm_cdf(z);
            }
        }
        s
    }

    /// `score` at one encoded point with its exact gradient (zero along categorical dimensions):
    /// the chain rule through `log_ei_with_grad` and `log_norm_cdf_grad` (acquisition.rs) and
    /// the posterior gradients of `Gp::predict_with_grad`.
    fn score_with_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let d = x.len();
        let mut grad = vec![0.0; d];
        let mut s = 0.0;
        if let Some(best) = self.incumbent {
            let (mu, var, dmu, dvar) = self.objective.predict_with_grad(x);
            let (v, gm, gv) = log_ei_with_grad(mu, var, best);
            s += v;
            for i in 0..d {
                grad[i] += gm * dmu[i] + gv * dvar[i];
            }
        }
        // Original units of an auxiliary GP: m = y_mean + y_std mu, sd^2 = y_std^2 var.
        let original = |g: &Gp| {
            let (mu, var, dmu, dvar) = g.predict_with_grad(x);
            let (a, b) = (g.y_std, g.y_std * g.y_std);
            let dm: Vec<f64> = dmu.iter().map(|v| a * v).collect();
            let dv: Vec<f64> = dvar.iter().map(|v| b * v).collect();
            (g.y_mean + a * mu, b * var, dm, dv)
        };
        if let Some(f) = &self.feasibility {
            // u = m / sqrt(sd^2 + 0.01): du = dm / q - m d(sd^2) / (2 q^3), q = sqrt(sd^2 + 0.01).
            let (m, v, dm, dv) = original(f);
            let q = (v + 0.01).sqrt();
            let u = m / q;
            s += log_norm_cdf(u);
            let r = log_norm_cdf_grad(u);
            for i in 0..d {
                grad[i] += r * (dm[i] / q - m * dv[i] / (2.0 * q * q * q));
            }
        }
        for (g, bound, op) in &self.constraints {
            // z = +-(bound - m) / sd: dz = -+dm / sd - z d(sd^2) / (2 sd^2) (sd floored at 1e-9).
            let (m, v, dm, dv) = original(g);
            let sd = v.sqrt();
            let floored = sd < 1e-9;
            let sd = sd.max(1e-9);
            let (z, sign) = match op {
                Comparison::AtMost => ((bound - m) / sd, -1.0),
                Comparison::AtLeast => ((m - bound) / sd, 1.0),
            };
            s += log_norm_cdf(z);
            let r = log_norm_cdf_grad(z);
            for i in 0..d {
                let dsd2 = if floored { 0.0 } else { dv[i] };
                grad[i] += r * (sign * dm[i] / sd - z * dsd2 / (2.0 * sd * sd));
            }
        }
        (s, grad)
    }
}

/// Standard normal draw (Box-Muller), to keep `rand` features minimal.
pub fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::{Param, ParamValue};
    use crate::study::{Constraint, MetricRef, Transform};

    fn space2() -> SearchSpace {
        SearchSpace {
            params: vec![
                Param {
                    name: "a".into(),
                    kind: ParamKind::Float {
                        low: 0.0,
                        high: 1.0,
                        log: false,
                        step: None,
                    },
                    default: Some(ParamValue::Float(0.1)),
                },
                Param {
                    name: "b".into(),
                    kind: ParamKind::Int {
                        low: 0,
                        high: 20,
                        log: false,
                        step: 1,
                    },
                    default: Some(ParamValue::Int(2)),
                },
            ],
        }
    }

    fn objective() -> Objective {
        Objective {
            metric: MetricRef::parse("value"),
            direction: Direction::Minimize,
            constraints: vec![],
            transform: Transform::None,
        }
    }

    fn f(c: &Config) -> f64 {
        let a = c["a"].as_f64().unwrap();
        let b = c["b"].as_f64().unwrap();
        (a - 0.7).powi(2) + ((b - 13.0) / 20.0).powi(2)
    }

    fn ok(v: f64) -> Outcome {
        Outcome::Ok {
            value: v,
            constraint_values: vec![],
            duration_s: 1.0,
            reload_s: None,
        }
    }

    fn run(seed: u64, n: usize) -> Vec<Trial> {
        let mut opt = Optimizer::new(
            space2(),
            objective(),
            OptimizerSettings::default(),
            vec![],
            seed,
        );
        let mut out = vec![];
        for _ in 0..n {
            let t = opt.ask(&AskContext::default());
            opt.tell(&t, ok(f(&t.config)));
            out.push(t);
        }
        out
    }

    #[test]
    fn baseline_first_then_design_then_model() {
        let trials = run(1, 12);
        assert_eq!(trials[0].origin, Origin::Baseline);
        assert_eq!(trials[0].config["b"], ParamValue::Int(2));
        assert_eq!(trials[1].origin, Origin::Initial);
        assert_eq!(trials[11].origin, Origin::Model);
    }

    #[test]
    fn deterministic_for_a_seed() {
        assert_eq!(run(3, 14), run(3, 14));
        assert_ne!(run(3, 14), run(4, 14));
    }

    #[test]
    fn never_measures_a_configuration_twice() {
        let trials = run(5, 30);
        let keys: BTreeSet<String> = trials.iter().map(|t| config_key(&t.config)).collect();
        assert_eq!(keys.len(), trials.len());
    }

    #[test]
    fn tied_leaders_are_measured_again_when_asked() {
        // A flat-topped noisy objective: the leaders are statistically tied.
        let settings = OptimizerSettings {
            confirm: 3,
            ..OptimizerSettings::default()
        };
        let mut opt = Optimizer::new(space2(), objective(), settings, vec![], 2);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut trials = vec![];
        for _ in 0..40 {
            let t = opt.ask(&AskContext::default());
            let v = 0.2 * f(&t.config) + 0.05 * gaussian(&mut rng);
            opt.tell(&t, ok(v));
            trials.push(t);
        }
        let confirms: Vec<&Trial> = trials
            .iter()
            .filter(|t| t.origin == Origin::Confirm)
            .collect();
        assert!(!confirms.is_empty(), "no re-measurement under noise");
        for pair in confirms.windows(2) {
            assert!(pair[1].number >= pair[0].number + CONFIRM_EVERY);
        }
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for t in &trials {
            *counts.entry(config_key(&t.config)).or_default() += 1;
        }
        for c in &confirms {
            let n = counts[&config_key(&c.config)];
            assert!(
                (2..=3).contains(&n),
                "{n} measurements of a confirmed config"
            );
        }
        // Every other configuration is measured once.
        let repeated = counts.values().filter(|n| **n > 1).count();
        assert!(repeated <= confirms.len());
    }

    /// Reloads over a run where `b` is a runner option costing a 10 s reload per change.
    fn reloads(reload_aware: bool, seed: u64) -> usize {
        let settings = OptimizerSettings {
            reload_aware,
            ..OptimizerSettings::default()
        };
        let mut opt = Optimizer::new(space2(), objective(), settings, vec!["b".into()], seed);
        let mut loaded: Option<Config> = None;
        let mut n = 0;
        for _ in 0..30 {
            let t = opt.ask(&AskContext {
                loaded_runner: loaded.clone(),
            });
            let runner: Config = t
                .config
                .iter()
                .filter(|(k, _)| k.as_str() == "b")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let reload = loaded.as_ref() != Some(&runner);
            n += reload as usize;
            loaded = Some(runner);
            opt.tell(
                &t,
                Outcome::Ok {
                    value: f(&t.config),
                    constraint_values: vec![],
                    duration_s: if reload { 12.0 } else { 2.0 },
                    reload_s: reload.then_some(10.0),
                },
            );
        }
        n
    }

    #[test]
    fn reload_aware_proposals_reload_less_but_still_move() {
        let aware: usize = (0..4).map(|seed| reloads(true, seed)).sum();
        let unaware: usize = (0..4).map(|seed| reloads(false, seed)).sum();
        assert!(aware < unaware, "{aware} reloads with, {unaware} without");
        // Grouping caps the trials per load, so the runner option keeps being explored.
        assert!(aware >= 4 * 30 / (RELOAD_GROUP + 1), "{aware} reloads");
    }

    #[test]
    fn finds_the_minimum_of_a_smooth_function() {
        let trials = run(11, 25);
        let best = trials
            .iter()
            .map(|t| f(&t.config))
            .fold(f64::INFINITY, f64::min);
        assert!(best < 0.005, "best {best}");
    }

    #[test]
    fn failed_region_is_learned_and_never_repeated() {
        let mut opt = Optimizer::new(
            space2(),
            objective(),
            OptimizerSettings::default(),
            vec![],
            2,
        );
        let mut failed_keys = BTreeSet::new();
        let mut n_failed_late = 0;
        for i in 0..30 {
            let t = opt.ask(&AskContext::default());
            let key = config_key(&t.config);
            assert!(!failed_keys.contains(&key), "failed config proposed again");
            // Everything with b > 10 "runs out of memory", including the true optimum region.
            if t.config["b"].as_i64().unwrap() > 10 {
                failed_keys.insert(key);
                if i >= 15 {
                    n_failed_late += 1;
                }
                opt.tell(&t, Outcome::Failed);
            } else {
                opt.tell(&t, ok(f(&t.config)));
            }
        }
        assert!(
            n_failed_late <= 4,
            "kept proposing infeasible configs: {n_failed_late}"
        );
    }

    /// End-to-end check of the gradient the local search follows: log EI + log P(feasible) +
    /// log P(constraint holds), each piece tested alone in acquisition.rs and gp.rs, here
    /// combined through the chain rule of `score_with_grad` and compared with central finite
    /// differences of `score`.
    #[test]
    fn combined_acquisition_gradient_matches_finite_differences() {
        let mut objective = objective();
        objective.constraints = vec![Constraint::parse("lat <= 1.2").unwrap()];
        let mut opt = Optimizer::new(space2(), objective, OptimizerSettings::default(), vec![], 4);
        let mut failures = 0;
        for _ in 0..18 {
            let t = opt.ask(&AskContext::default());
            let (a, b) = (
                t.config["a"].as_f64().unwrap(),
                t.config["b"].as_f64().unwrap(),
            );
            if b > 15.0 {
                failures += 1;
                opt.tell(&t, Outcome::Failed);
            } else {
                let outcome = Outcome::Ok {
                    value: f(&t.config),
                    constraint_values: vec![a + b / 20.0],
                    duration_s: 1.0,
                    reload_s: None,
                };
                opt.tell(&t, outcome);
            }
        }
        let models = opt.fit_models().expect("enough data for a model");
        assert!(
            failures > 0 && models.feasibility.is_some(),
            "no feasibility model"
        );
        assert_eq!(models.constraints.len(), 1, "no constraint model");
        assert!(models.incumbent.is_some(), "no feasible incumbent");
        let h = 1e-6;
        // Points along the constraint's boundary a + b/20 = 1.2 and near the unconstrained
        // optimum (a = 0.7, b = 13), where all three terms are moderate, and far from the data,
        // where EI is tiny and its log steep.
        let points = [
            [0.55, 0.62],
            [0.7, 0.55],
            [0.45, 0.7],
            [0.3, 0.4],
            [0.85, 0.2],
            [0.1, 0.9],
        ];
        for x in points {
            let (s, grad) = models.score_with_grad(&x);
            let s0 = models.score(&[x.to_vec()])[0];
            assert!(
                (s - s0).abs() < 1e-9 * (1.0 + s0.abs()),
                "x={x:?}: score {s0}, score_with_grad {s}"
            );
            for i in 0..2 {
                let (mut up, mut down) = (x.to_vec(), x.to_vec());
                up[i] += h;
                down[i] -= h;
                let fd = (models.score(&[up])[0] - models.score(&[down])[0]) / (2.0 * h);
                let tol = 1e-4 * (1.0 + fd.abs());
                assert!(
                    (grad[i] - fd).abs() < tol,
                    "x={x:?} dim {i}: grad {} fd {fd}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn checkpointed_state_resumes_the_same_sequence() {
        let full = run(21, 16);
        let mut opt = Optimizer::new(
            space2(),
            objective(),
            OptimizerSettings::default(),
            vec![],
            21,
        );
        for t in &full[..10] {
            let t2 = opt.ask(&AskContext::default());
            assert_eq!(&t2, t);
            opt.tell(&t2, ok(f(&t2.config)));
        }
        let saved = opt.state().clone();
        let mut resumed = Optimizer::new(
            space2(),
            objective(),
            OptimizerSettings::default(),
            vec![],
            21,
        );
        resumed.restore(saved);
        for t in &full[..10] {
            resumed.tell(t, ok(f(&t.config)));
        }
        for t in &full[10..] {
            let t2 = resumed.ask(&AskContext::default());
            assert_eq!(&t2, t);
            resumed.tell(&t2, ok(f(&t2.config)));
        }
    }
}
