//! Configurations the server runs identically are one point.
//!
//! Two ways in. After a trial, what the server reported running (`tell_effective`): the model
//! learns the effective configuration and the request is only marked measured. Before a
//! trial, the rule a backend knows without the server (`RunsAs`; llama-server clamps
//! `ubatch_size` to `batch_size`): every candidate of the ask (initial design, acquisition
//! search, fallback) is mapped to the configuration the server will run before it is scored,
//! checked against what was measured and proposed. So the acquisition of `-b 8 -ub 8192` is
//! that of `-b 8 -ub 8`, a request that maps onto a measured configuration is never proposed
//! as new, and the trial asks exactly what the server runs. The rule is a plain function
//! handed in by the run loop: no I/O here.

use super::{Optimizer, Outcome};
use crate::engine::configkey::ConfigKey;
use crate::engine::space::{config_key, Config};
use std::sync::Arc;

/// How a server runs a configuration, as far as is known before it runs: the configuration
/// with the values the server will change (a layer count capped, ubatch clamped to batch),
/// the others as given. Pure and idempotent (applying it to its own result changes nothing).
pub type RunsAs = Arc<dyn Fn(&Config) -> Config + Send + Sync>;

impl Optimizer {
    /// Use `rule` to map candidates to what the server runs (None: candidates are measured as
    /// proposed). Set before the first ask of a session; it does not change what was told.
    pub fn set_runs_as(&mut self, rule: Option<RunsAs>) {
        self.runs_as = rule;
    }

    /// `config` as the server will run it, when the rule changes it into a configuration of
    /// the space (every value legal, on its grid); else `config` as it is.
    pub(super) fn ran_form(&self, config: Config) -> Config {
        match self.runs_as.as_ref().map(|rule| rule(&config)) {
            Some(ran) if ran != config && self.in_space(&ran) => ran,
            _ => config,
        }
    }

    /// Whether a configuration is a point of the space: normalizing changes nothing and every
    /// value has a coordinate.
    fn in_space(&self, config: &Config) -> bool {
        self.space.key(config).is_some() && self.space.normalize_config(config) == *config
    }

    /// An encoded point snapped onto the lattice of legal values and mapped to the configuration
    /// the server runs (`ran_form`): its coordinates, which the GP scores, and its key, which
    /// exclusion checks. Without a rule, `SearchSpace::canonical_point`.
    pub(super) fn snap(&self, x: &[f64]) -> (Vec<f64>, ConfigKey) {
        let snapped = self.space.canonical_point(x);
        if self.runs_as.is_none() {
            return snapped;
        }
        let config = self.space.decode(x);
        let ran = self.ran_form(config.clone());
        if ran == config {
            return snapped;
        }
        match self.space.key(&ran) {
            Some(key) => (self.space.encode(&ran), key),
            None => snapped,
        }
    }

    /// Record a trial the server ran as `effective` although `requested` was asked (ubatch
    /// clamped to batch, a layer count above the model's, `auto` resolved): configurations that
    /// run identically are one point. The model learns the effective configuration when the
    /// space admits every value of it (else the requested one, as `tell_config` would); the
    /// other one is only marked measured (and failed, when it failed), so neither is proposed
    /// again as new.
    pub(crate) fn tell_effective(
        &mut self,
        requested: &Config,
        effective: &Config,
        outcome: Outcome,
    ) {
        let admitted = self
            .space
            .params
            .iter()
            .all(|p| effective.get(&p.name).is_none_or(|v| p.admits(v)));
        let (point, other) = if admitted {
            (effective, requested)
        } else {
            (requested, effective)
        };
        let failed = matches!(outcome, Outcome::Failed);
        self.tell_config(point, outcome);
        self.mark_measured(other, failed);
    }

    /// Mark a configuration measured (and failed) without an observation for the model.
    fn mark_measured(&mut self, config: &Config, failed: bool) {
        let config = self.space.normalize_config(config);
        let key = config_key(&config);
        let coords = self.space.key(&config);
        if failed {
            self.failed.insert(key.clone());
            if let Some(k) = &coords {
                self.failed_keys.insert(k.clone());
            }
        }
        self.measured.insert(key);
        if let Some(k) = coords {
            self.measured_keys.insert(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::objective::{Direction, MetricRef, Objective, Transform};
    use crate::engine::optimizer::{AskContext, OptimizerSettings};
    use crate::engine::space::{Param, ParamKind, ParamValue, Role, SearchSpace};
    use crate::engine::trial::Origin;
    use std::collections::HashSet;

    fn int(name: &str, low: i64, default: i64) -> Param {
        Param {
            name: name.into(),
            kind: ParamKind::Int {
                low,
                high: 8192,
                log: true,
                step: 1,
            },
            default: Some(ParamValue::Int(default)),
            role: Role::Speed,
            prefer: None,
            memory: Default::default(),
        }
    }

    /// llama-server's batch sizes: ubatch (at least `ub_low`) runs clamped to batch.
    fn optimizer(ub_low: i64, rule: bool) -> Optimizer {
        let objective = Objective {
            metric: MetricRef::parse("value"),
            direction: Direction::Minimize,
            constraints: vec![],
            transform: Transform::None,
        };
        let space = SearchSpace {
            params: vec![int("batch", 8, 2048), int("ubatch", ub_low, 512)],
        };
        let mut opt = Optimizer::new(
            space,
            objective,
            |_| false,
            OptimizerSettings::default(),
            vec![],
            3,
        );
        if rule {
            opt.set_runs_as(Some(Arc::new(clamp)));
        }
        opt
    }

    fn clamp(c: &Config) -> Config {
        let mut out = c.clone();
        if let (Some(b), Some(u)) = (c["batch"].as_i64(), c["ubatch"].as_i64()) {
            out.insert("ubatch".into(), ParamValue::Int(u.min(b)));
        }
        out
    }

    fn cfg(b: i64, u: i64) -> Config {
        Config::from([
            ("batch".to_string(), ParamValue::Int(b)),
            ("ubatch".to_string(), ParamValue::Int(u)),
        ])
    }

    /// What the server measures: a function of the configuration it ran.
    fn measure(c: &Config) -> Outcome {
        let ran = clamp(c);
        let l = |k: &str| (ran[k].as_i64().unwrap() as f64).log2();
        Outcome::Ok {
            value: (l("batch") - 9.0).powi(2) + (l("ubatch") - 7.0).powi(2),
            constraint_values: vec![],
            duration_s: 1.0,
            reload_s: None,
        }
    }

    /// Ask and tell `n` trials as the run loop does (the outcome told for the asked
    /// configuration, which with the rule is the one the server runs).
    fn asked(mut opt: Optimizer, n: usize) -> Vec<Config> {
        (0..n)
            .map(|_| {
                let t = opt.ask(&AskContext::default());
                opt.tell(&t, measure(&t.config));
                assert_ne!(t.origin, Origin::Confirm);
                t.config
            })
            .collect()
    }

    #[test]
    fn proposals_are_asked_as_the_server_runs_them() {
        let with = asked(optimizer(8, true), 24);
        let mut seen = HashSet::new();
        for c in &with {
            assert!(c["ubatch"].as_i64() <= c["batch"].as_i64(), "{c:?}");
            assert!(seen.insert(config_key(&clamp(c))), "a repeat: {c:?}");
        }
        // Without the rule, the same search spends trials on spellings of measured points.
        let without = asked(optimizer(8, false), 24);
        let over = without
            .iter()
            .filter(|c| c["ubatch"].as_i64() > c["batch"].as_i64())
            .count();
        assert!(over >= 4, "{over} of 24 asked ubatch > batch");
    }

    #[test]
    fn a_spelling_of_a_measured_point_is_that_point() {
        let mut opt = optimizer(8, true);
        opt.tell_config(&cfg(8, 8), measure(&cfg(8, 8)));
        let x = opt.space.encode(&cfg(8, 8192));
        let (coords, key) = opt.snap(&x);
        assert_eq!(Some(&key), opt.space.key(&cfg(8, 8)).as_ref());
        assert_eq!(coords, opt.space.encode(&cfg(8, 8)), "scored where it runs");
        assert!(opt.excluded(&key), "measured: never proposed as new");
        assert_eq!(opt.ran_form(cfg(8, 8192)), cfg(8, 8));
        assert_eq!(opt.ran_form(cfg(64, 32)), cfg(64, 32), "runs as asked");
        // A clamp the space does not admit (ubatch below its lower bound): as asked.
        let narrow = optimizer(16, true);
        assert_eq!(narrow.ran_form(cfg(8, 64)), cfg(8, 64));
        let x = narrow.space.encode(&cfg(8, 64));
        assert_eq!(narrow.snap(&x), narrow.space.canonical_point(&x));
    }
}
