//! Parameter effects around the best configuration, from the fitted objective GP (the report's
//! importance table).

use super::Optimizer;
use crate::engine::objective::Direction;
use serde::{Deserialize, Serialize};

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

impl Optimizer {
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
            self.objective.use_log(&values, self.positive_metric)
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
