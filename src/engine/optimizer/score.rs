//! The acquisition the search maximizes: log EI of the objective GP plus log P(feasible) and
//! log P(constraint holds), with its exact gradient for the local search.

use super::models::Models;
use crate::engine::acquisition::{
    log_ei_with_grad, log_expected_improvement, log_norm_cdf, log_norm_cdf_grad,
};
use crate::engine::gp::Gp;
use crate::engine::objective::Comparison;

impl Models {
    /// log acquisition at encoded points, log EI + log P(feasible) + sum log P(constraint holds),
    /// and the log P(feasible) term in it (None when nothing has failed), so that the probe
    /// budget's safety test (search.rs) needs no second prediction.
    pub(super) fn score(&self, xs: &[Vec<f64>]) -> (Vec<f64>, Option<Vec<f64>>) {
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
        let feasible = self.log_p_feasible(xs);
        if let Some(lp) = &feasible {
            for (si, lp) in s.iter_mut().zip(lp) {
                *si += lp;
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
        (s, feasible)
    }

    /// log P(feasible) at encoded points by the feasibility GP used as a probit classifier
    /// (models.rs), or None when nothing has failed.
    pub(super) fn log_p_feasible(&self, xs: &[Vec<f64>]) -> Option<Vec<f64>> {
        let f = self.feasibility.as_ref()?;
        let (m, sd) = f.predict(xs);
        Some(
            m.iter()
                .zip(&sd)
                .map(|(m, sd)| log_norm_cdf(m / (sd * sd + 0.01).sqrt()))
                .collect(),
        )
    }

    /// `score` at one encoded point with its exact gradient (zero along categorical dimensions):
    /// the chain rule through `log_ei_with_grad` and `log_norm_cdf_grad` (acquisition.rs) and
    /// the posterior gradients of `Gp::predict_with_grad`.
    pub(super) fn score_with_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
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
