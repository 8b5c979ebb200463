//! Model fitting: the objective GP (on log, direction and output warp), the feasibility GP,
//! one GP per outcome constraint, and the hyperparameter refit schedule.

use super::{Optimizer, Outcome, MAX_GP_POINTS};
use crate::engine::gp::{FitOptions, Gp};
use crate::engine::objective::{Comparison, Direction};
use crate::engine::warp::OutputWarp;
use std::collections::BTreeSet;

impl Optimizer {
    /// Model value of an objective measurement: log for positive rates/durations, negated when
    /// minimizing, so the GP always maximizes.
    pub(super) fn transform(&self, values: &[f64]) -> Vec<f64> {
        let log = self.objective.use_log(values, self.positive_metric);
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
    pub(super) fn gp_subset(&self) -> Vec<usize> {
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

    pub(super) fn value(&self, i: usize) -> f64 {
        match &self.observations[i].outcome {
            Outcome::Ok { value, .. } => *value,
            Outcome::Failed => f64::NAN,
        }
    }

    pub(super) fn fit_models(&self) -> Option<Models> {
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
        // deterministic boundary (docs/engine.md), so the link is kept sharp.
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
            let log = (self.positive_metric)(&c.metric.metric)
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
    pub(super) fn meets_constraints(&self, outcome: &Outcome) -> bool {
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
}

pub(super) struct Models {
    /// Hyperparameters of the auxiliary GPs, to warm-start the next fit.
    pub(super) aux: Vec<(String, Vec<f64>)>,
    /// Whether the objective GP's hyperparameters were fitted (not just reused).
    pub(super) refitted: bool,
    /// The objective GP, fitted on warped values (`warp`).
    pub(super) objective: Gp,
    /// The output warp the objective GP's values went through.
    pub(super) warp: OutputWarp,
    /// Lowest and highest warped value the objective GP was fitted on.
    pub(super) warped_range: (f64, f64),
    /// Best posterior mean (warped, standardized) at a feasible observed point. The warp is
    /// increasing, so rankings by posterior mean are rankings in the metric's own order; log EI
    /// and the reload cost weighting (EI per second) are in warped units.
    pub(super) incumbent: Option<f64>,
    /// Observed points with their posterior means, best first.
    pub(super) top_observed: Vec<(Vec<f64>, f64)>,
    pub(super) feasibility: Option<Gp>,
    pub(super) constraints: Vec<(Gp, f64, Comparison)>,
}
