//! Reload cost: EI per unit of expected wall time (Snoek, Larochelle, Adams 2012, sec. 3.2),
//! where a candidate whose runner options differ from the loaded ones pays a reload.

use super::{AskContext, Optimizer, Outcome};
use crate::engine::configkey::{runner_part, ConfigKey, RunnerCoords};
use crate::engine::space::{config_key, Config, Param, ParamValue};
use crate::engine::stats::quantile;

/// The reload cost of one ask: what a candidate that needs a reload pays against its log
/// acquisition.
pub(super) struct ReloadCost {
    /// The runner options loaded now.
    loaded: RunnerCoords,
    /// log((typical measurement + typical reload) / typical measurement).
    penalty: f64,
}

impl ReloadCost {
    /// Penalty of a configuration of the space (0 when its runner options are the loaded ones).
    pub(super) fn penalty(&self, key: &ConfigKey) -> f64 {
        if self.loaded.matches(key) {
            0.0
        } else {
            self.penalty
        }
    }
}

/// Coordinate of a value after `SearchSpace::normalize_config` (re-rounded through its
/// encoding, when it has one) and `SearchSpace::encode` (the middle when it has none).
fn settled(p: &Param, v: &ParamValue) -> f64 {
    let middle = p.encoded_upper() / 2.0;
    match p.encode(v) {
        Some(u) => p.encode(&p.decode(u)).unwrap_or(middle),
        None => middle,
    }
}

impl Optimizer {
    /// Text key of the runner part of a configuration.
    fn runner_key(&self, config: &Config) -> String {
        config_key(&runner_part(config, &self.runner_params))
    }

    /// Copies of (up to 512 of) the candidates with the loaded runner options put back. Random
    /// candidates almost never match the loaded runner exactly (several integer options), so
    /// without these the cost weighting would never be offered a configuration that needs no
    /// reload, and every trial would reload (measured: 1.00 reloads per trial, BENCHMARKS.md).
    /// Computed per parameter, as `encode(normalize_config(decode(x) with the loaded values))`
    /// would, without building the configurations.
    pub(super) fn keep_runner(&self, xs: &[Vec<f64>], loaded: &Config) -> Vec<Vec<f64>> {
        let params = &self.space.params;
        // The coordinate of each loaded runner option; None for the others.
        let fixed: Vec<Option<f64>> = params
            .iter()
            .map(|p| loaded.get(&p.name).map(|v| settled(p, v)))
            .collect();
        let step = (xs.len() / 512).max(1);
        xs.iter()
            .step_by(step)
            .map(|x| {
                params
                    .iter()
                    .zip(x)
                    .zip(&fixed)
                    .map(|((p, u), f)| f.unwrap_or_else(|| settled(p, &p.decode(*u))))
                    .collect()
            })
            .collect()
    }

    /// How many of the latest trials ran on the runner options loaded now.
    pub(super) fn trials_on_loaded_runner(&self, ctx: &AskContext) -> usize {
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

    /// The reload cost from the loaded runner options and the typical measurement and reload
    /// times (medians over the trials that ran); None while no trial has reloaded.
    pub(super) fn cost_model(&self, ctx: &AskContext) -> Option<ReloadCost> {
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
        let (t_measure, t_reload) = (quantile(&measure, 0.5), quantile(&reload, 0.5));
        Some(ReloadCost {
            loaded: self.space.runner_coords(loaded, &self.runner_params),
            penalty: ((t_measure + t_reload) / t_measure).ln(),
        })
    }
}
