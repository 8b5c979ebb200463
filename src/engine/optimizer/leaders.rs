//! The leaders: re-measuring configurations statistically tied for the lead, the
//! recommendation (best posterior mean among feasible measured configurations), the best
//! measured value, and what the decision phase starts from (leading candidates, the noise of one
//! trial, output-setting variants worth measuring).

use super::models::Models;
use super::{Optimizer, Outcome, CONFIRM_EVERY};
use crate::engine::space::{config_key, Config, ParamValue};
use std::collections::{BTreeMap, BTreeSet};

impl Optimizer {
    /// A configuration to measure again, when the leaders are statistically tied: among the
    /// three measured configurations with the best posterior mean, those within two noise
    /// standard deviations of the first are tied, and the tied one measured the fewest times
    /// (fewer than `settings.confirm`) is measured again. This is what the seed reports lacked
    /// (docs/engine.md: one-shot rankings of noise): a recommendation backed by one lucky sample.
    /// At most one ask in three is spent this way, and none when the GP finds the objective
    /// essentially noise-free (noise sd under 1% of the objective's spread), where a repeat
    /// teaches nothing.
    pub(super) fn confirmation(&self, number: usize, models: &Models) -> Option<Config> {
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
        let mut counts: BTreeMap<String, usize> = Default::default();
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

    /// The configuration to recommend: among measured configurations that ran and met the
    /// constraints, the one with the best GP posterior mean, which discounts a lucky noisy
    /// sample (the noise-robust incumbent of docs/engine.md). Falls back to the best measured value
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

    /// Up to `k` distinct measured configurations that ran, met the constraints and never
    /// failed, best GP posterior mean first (the candidates of the decision phase); by measured
    /// value while there is no model. Configurations are returned as they were told.
    pub fn leaders(&self, k: usize) -> Vec<Config> {
        if k == 0 {
            return vec![];
        }
        let feasible: BTreeSet<String> = self
            .observations
            .iter()
            .filter(|o| self.meets_constraints(&o.outcome))
            .map(|o| config_key(&o.config))
            .collect();
        let ranked: Vec<&Config> = match self.fit_models() {
            Some(models) => models
                .top_observed
                .iter()
                .filter_map(|(x, _)| self.observations.iter().find(|o| &o.x == x))
                .map(|o| &o.config)
                .collect(),
            None => {
                let mut ok: Vec<(&Config, f64)> = self
                    .observations
                    .iter()
                    .filter_map(|o| match &o.outcome {
                        Outcome::Ok { value, .. } => {
                            Some((&o.config, self.transform(&[*value])[0]))
                        }
                        Outcome::Failed => None,
                    })
                    .collect();
                ok.sort_by(|a, b| b.1.total_cmp(&a.1));
                ok.into_iter().map(|(c, _)| c).collect()
            }
        };
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        for c in ranked {
            let key = config_key(c);
            if feasible.contains(&key) && !self.failed.contains(&key) && seen.insert(key) {
                out.push(c.clone());
                if out.len() == k {
                    break;
                }
            }
        }
        out
    }

    /// Relative standard deviation of one trial's objective (0.02 = 2%), what the decision
    /// phase's budget is sized from. From repeated measurements of identical configurations when
    /// there are any (the pooled sd of the logarithm for a positive metric, else of the values
    /// divided by their configuration's mean); else from the GP's noise, converted to the
    /// metric's units at the leader as `confirmation` does, and divided by the leader's value
    /// unless the GP models the logarithm (where an sd is already relative).
    pub fn noise_rel_sd(&self) -> Option<f64> {
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for o in &self.observations {
            if let Outcome::Ok { value, .. } = &o.outcome {
                if value.is_finite() && self.meets_constraints(&o.outcome) {
                    groups
                        .entry(config_key(&o.config))
                        .or_default()
                        .push(*value);
                }
            }
        }
        let all: Vec<f64> = groups.values().flatten().copied().collect();
        let log = self.objective.use_log(&all, self.positive_metric);
        let (mut ss, mut df) = (0.0, 0usize);
        for values in groups.values().filter(|v| v.len() > 1) {
            let scaled: Vec<f64> = if log {
                values.iter().map(|v| v.ln()).collect()
            } else {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                if mean == 0.0 {
                    continue;
                }
                values.iter().map(|v| v / mean.abs()).collect()
            };
            let m = scaled.iter().sum::<f64>() / scaled.len() as f64;
            ss += scaled.iter().map(|v| (v - m).powi(2)).sum::<f64>();
            df += scaled.len() - 1;
        }
        if df > 0 {
            return Some((ss / df as f64).sqrt());
        }
        let models = self.fit_models()?;
        let gp = &models.objective;
        let top_mu = models.top_observed.first()?.1;
        let t = gp.y_mean + gp.y_std * top_mu;
        let noise_sd = gp.hyper.noise_variance.sqrt() * gp.y_std * models.warp.invert_slope(t);
        let log_model = self.objective.use_log(
            &self
                .gp_subset()
                .iter()
                .map(|&i| self.value(i))
                .collect::<Vec<f64>>(),
            self.positive_metric,
        );
        let rel = if log_model {
            noise_sd
        } else {
            let level = models.warp.invert(t).abs();
            if level == 0.0 {
                return None;
            }
            noise_sd / level
        };
        rel.is_finite().then_some(rel)
    }

    /// The measured value of `param`, other than `at[param]`, with the best GP posterior mean
    /// when set into `at` (the output-setting variant the decision phase measures). None without
    /// a model, for a parameter outside the space, or when no other value was measured.
    pub fn output_variant(&self, at: &Config, param: &str) -> Option<ParamValue> {
        let p = self.space.get(param)?;
        let models = self.fit_models()?;
        let current = at.get(param);
        let mut values: Vec<&ParamValue> = Vec::new();
        for o in &self.observations {
            if let Some(v) = o.config.get(param) {
                if Some(v) != current && p.encode(v).is_some() && !values.contains(&v) {
                    values.push(v);
                }
            }
        }
        let points: Vec<Vec<f64>> = values
            .iter()
            .map(|v| {
                let mut c = at.clone();
                c.insert(param.to_string(), (*v).clone());
                self.space.encode(&c)
            })
            .collect();
        let (mu, _) = models.objective.predict_standardized(&points);
        let mut best: Option<(usize, f64)> = None;
        for (i, m) in mu.iter().enumerate() {
            if best.is_none_or(|(_, b)| *m > b) {
                best = Some((i, *m));
            }
        }
        best.map(|(i, _)| values[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Optimizer, OptimizerSettings, Outcome};
    use crate::engine::objective::{Direction, MetricRef, Objective, Transform};
    use crate::engine::space::{Config, Param, ParamKind, ParamValue, SearchSpace};

    fn optimizer() -> Optimizer {
        let space = SearchSpace {
            params: vec![
                Param {
                    name: "a".into(),
                    kind: ParamKind::Int {
                        low: 0,
                        high: 10,
                        log: false,
                        step: 1,
                    },
                    default: Some(ParamValue::Int(0)),
                    role: Default::default(),
                    prefer: None,
                    memory: Default::default(),
                },
                Param {
                    name: "t".into(),
                    kind: ParamKind::Categorical {
                        choices: vec![
                            ParamValue::Float(0.5),
                            ParamValue::Float(1.0),
                            ParamValue::Float(1.5),
                        ],
                    },
                    default: Some(ParamValue::Float(1.0)),
                    role: Default::default(),
                    prefer: None,
                    memory: Default::default(),
                },
            ],
        };
        let objective = Objective {
            metric: MetricRef::parse("value"),
            direction: Direction::Maximize,
            constraints: vec![],
            transform: Transform::None,
        };
        Optimizer::new(
            space,
            objective,
            |_| false,
            OptimizerSettings::default(),
            vec![],
            1,
        )
    }

    fn c(a: i64, t: f64) -> Config {
        [
            ("a".to_string(), ParamValue::Int(a)),
            ("t".to_string(), ParamValue::Float(t)),
        ]
        .into_iter()
        .collect()
    }

    fn ok(v: f64) -> Outcome {
        Outcome::Ok {
            value: v,
            constraint_values: vec![],
            duration_s: 1.0,
            reload_s: None,
        }
    }

    /// value = 10 a - (a - 6)^2 shape: best at a = 6 (among those measured), t = 1.5 adds 5.
    fn value(a: i64, t: f64) -> f64 {
        100.0 - ((a - 6) * (a - 6)) as f64 + if t == 1.5 { 5.0 } else { 0.0 }
    }

    #[test]
    fn leaders_are_distinct_feasible_and_best_first() {
        let mut opt = optimizer();
        assert!(opt.leaders(3).is_empty());
        opt.tell_config(&c(6, 1.0), ok(value(6, 1.0)));
        // Without a model (one point): by measured value.
        assert_eq!(opt.leaders(3), vec![c(6, 1.0)]);
        for (a, t) in [
            (0, 1.0),
            (2, 0.5),
            (4, 1.0),
            (5, 1.5),
            (8, 1.0),
            (10, 0.5),
            (6, 1.0),
        ] {
            opt.tell_config(&c(a, t), ok(value(a, t)));
        }
        opt.tell_config(&c(7, 1.0), Outcome::Failed);
        let leaders = opt.leaders(3);
        assert_eq!(leaders.len(), 3);
        assert!(leaders.contains(&c(6, 1.0)) && leaders.contains(&c(5, 1.5)));
        assert!(!leaders.contains(&c(7, 1.0)));
        let keys: std::collections::BTreeSet<String> = leaders
            .iter()
            .map(crate::engine::space::config_key)
            .collect();
        assert_eq!(keys.len(), 3, "distinct");
        assert!(opt.leaders(0).is_empty());
    }

    #[test]
    fn noise_comes_from_repeats_when_there_are_any() {
        let mut opt = optimizer();
        for v in [100.0, 102.0, 98.0] {
            opt.tell_config(&c(3, 1.0), ok(v));
        }
        for v in [50.0, 51.0, 49.0] {
            opt.tell_config(&c(9, 1.0), ok(v));
        }
        opt.tell_config(&c(5, 0.5), ok(80.0));
        // Values over their configuration's mean: sd 0.02 in both groups.
        let sd = opt.noise_rel_sd().unwrap();
        assert!((sd - 0.02).abs() < 1e-9, "{sd}");
    }

    #[test]
    fn noise_falls_back_to_the_model_without_repeats() {
        let mut opt = optimizer();
        assert!(opt.noise_rel_sd().is_none());
        for a in 0..=10 {
            let wobble = if a % 2 == 0 { 1.0 } else { -1.0 };
            opt.tell_config(&c(a, 1.0), ok(value(a, 1.0) + wobble));
        }
        let sd = opt.noise_rel_sd().unwrap();
        assert!(sd.is_finite() && sd > 0.0 && sd < 0.1, "{sd}");
    }

    #[test]
    fn output_variant_is_the_measured_value_the_model_prefers() {
        let mut opt = optimizer();
        assert!(opt.output_variant(&c(6, 1.0), "t").is_none(), "no model");
        for (a, t) in [
            (0, 1.0),
            (2, 0.5),
            (4, 1.5),
            (6, 1.0),
            (8, 0.5),
            (10, 1.5),
            (5, 1.0),
            (7, 1.5),
            (3, 0.5),
        ] {
            opt.tell_config(&c(a, t), ok(value(a, t)));
        }
        assert_eq!(
            opt.output_variant(&c(6, 1.0), "t"),
            Some(ParamValue::Float(1.5))
        );
        // The current value is never the variant.
        assert_ne!(
            opt.output_variant(&c(6, 1.5), "t"),
            Some(ParamValue::Float(1.5))
        );
        assert!(opt.output_variant(&c(6, 1.0), "nope").is_none());
    }
}
