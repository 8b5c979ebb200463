//! Candidate search: scrambled Sobol candidates and perturbations of the best points, scored
//! by the acquisition less the reload cost, then local searches from the best of them. Every
//! candidate is scored and checked as the configuration the server runs (effective.rs `snap`).

use super::models::Models;
use super::{AskContext, Optimizer, RELOAD_GROUP, SAFE_FEASIBILITY};
use crate::engine::boxmin::{minimize_box, BoxMinOptions};
use crate::engine::configkey::ConfigKey;
use crate::engine::design::{sobol_point, unit_to_encoded};
use crate::engine::random::gaussian;
use crate::engine::space::{Config, ParamKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// Acquisition of encoded points (with the keys of their configurations).
type ScoreFn<'a> = dyn Fn(&[Vec<f64>], &[ConfigKey]) -> Vec<f64> + 'a;

impl Optimizer {
    /// Maximize the acquisition (with the reload cost) over the space. Returns the configuration
    /// and its acquisition value, or None when every candidate is excluded. With `safe_only`
    /// (the probe budget is spent, mod.rs `probing_allowed`) only candidates that are safe
    /// count: P(feasible) at least `SAFE_FEASIBILITY`, or predicted to fit by the memory wall.
    pub(super) fn propose(
        &self,
        number: usize,
        ctx: &AskContext,
        models: &Models,
        safe_only: bool,
    ) -> Option<(Config, f64)> {
        let mut rng = self.rng(number, 1);
        let d = self.space.dims();

        // Reload cost (reload.rs), while fewer than `RELOAD_GROUP` trials ran on the loaded runner.
        let cost = if self.settings.reload_aware
            && !self.runner_params.is_empty()
            && self.trials_on_loaded_runner(ctx) < RELOAD_GROUP
        {
            self.cost_model(ctx)
        } else {
            None
        };
        let penalty = |k: &ConfigKey| -> f64 { cost.as_ref().map_or(0.0, |c| c.penalty(k)) };
        let unsafe_below = SAFE_FEASIBILITY.ln();
        let score = |xs: &[Vec<f64>], keys: &[ConfigKey]| -> Vec<f64> {
            let (mut s, feasible) = models.score(xs);
            for (si, k) in s.iter_mut().zip(keys) {
                *si -= penalty(k);
            }
            if let Some(lp) = feasible.filter(|_| safe_only) {
                for ((si, k), lp) in s.iter_mut().zip(keys).zip(lp) {
                    if lp < unsafe_below && !self.memory.predicted_fits(k) {
                        *si = f64::NEG_INFINITY;
                    }
                }
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
        let mut raw: Vec<Vec<f64>> = (0..m as u32)
            .map(|i| unit_to_encoded(&self.space, &sobol_point(i, d, seed32)))
            .collect();
        for (x, _) in models.top_observed.iter().take(5) {
            for _ in 0..32 {
                raw.push(self.perturb(x, 0.08, &mut rng));
            }
        }
        if let Some(loaded) = ctx.loaded_runner.as_ref().filter(|_| cost.is_some()) {
            let stay = self.keep_runner(&raw, loaded);
            raw.extend(stay);
        }
        // Candidate i: its point snapped onto the lattice of legal values and mapped to what the
        // server runs (`xs[i]`, what the GP scores; effective.rs), its key (`keys[i]`), and the
        // point its configuration decodes from (`raw[i]`, mapped the same way when proposed).
        let (mut xs, mut keys): (Vec<Vec<f64>>, Vec<ConfigKey>) =
            raw.iter().map(|x| self.snap(x)).unzip();
        let scores = score(&xs, &keys);

        // (score, candidate) once per distinct configuration, best first.
        let mut pool: Vec<(f64, usize)> = Vec::new();
        {
            let mut seen: HashSet<&ConfigKey> = HashSet::new();
            let mut order: Vec<usize> = (0..xs.len()).collect();
            order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
            for i in order {
                if seen.insert(&keys[i]) {
                    pool.push((scores[i], i));
                }
            }
        }

        // Starting points of the local searches, as Optuna's optuna/_gp/optim_mixed.py
        // `optimize_acqf_mixed` picks them: the best raw candidate, others drawn without
        // replacement with probability proportional to exp(acquisition - best) (a roulette
        // wheel over the log acquisition), and the best observed point as a warm start
        // (optuna/samplers/_gp/sampler.py passes it as `best_params`).
        let n_local = if n_obs > 150 { 5 } else { 10 };
        let candidates: Vec<(f64, usize)> = pool
            .iter()
            .copied()
            .filter(|(s, i)| s.is_finite() && !self.excluded(&keys[*i]))
            .collect();
        let mut starts: Vec<Vec<f64>> = Vec::new();
        if let Some(first) = candidates.first() {
            starts.push(xs[first.1].clone());
            let top = first.0;
            let mut w: Vec<f64> = candidates.iter().map(|(s, _)| (s - top).exp()).collect();
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
                starts.push(xs[candidates[pick].1].clone());
            }
        }
        if let Some((x, _)) = models.top_observed.first() {
            starts.push(x.clone());
        }
        for x0 in starts {
            let (best_s, best_x) = self.local_search(models, &penalty, x0, &score);
            pool.push((best_s, xs.len()));
            keys.push(self.snap(&best_x).1);
            raw.push(best_x.clone());
            xs.push(best_x);
        }
        pool.sort_by(|a, b| b.0.total_cmp(&a.0));
        pool.into_iter()
            .find(|(s, i)| s.is_finite() && !self.excluded(&keys[*i]))
            .map(|(s, i)| (self.ran_form(self.space.decode(&raw[i])), s))
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
        penalty: &dyn Fn(&ConfigKey) -> f64,
        x0: Vec<f64>,
        score: &ScoreFn,
    ) -> (f64, Vec<f64>) {
        // Points snapped onto the lattice of legal values, their keys and scores.
        let eval = |xs: Vec<Vec<f64>>| -> (Vec<Vec<f64>>, Vec<ConfigKey>, Vec<f64>) {
            let (xs, ks): (Vec<Vec<f64>>, Vec<ConfigKey>) = xs.iter().map(|x| self.snap(x)).unzip();
            let s = score(&xs, &ks);
            (xs, ks, s)
        };
        let (cont, discrete) = self.split_dims();
        let ls: Vec<f64> = cont
            .iter()
            .map(|&i| models.objective.hyper.lengthscales[i].clamp(1e-3, 1e3))
            .collect();
        let (mut best_x, mut best_s) = {
            let (xs, ks, s) = eval(vec![x0]);
            let s0 = if self.excluded(&ks[0]) {
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
                    let v = v - penalty(&self.space.point_key(&x));
                    (-v, cont.iter().zip(&ls).map(|(&i, l)| -g[i] * l).collect())
                };
                let z0: Vec<f64> = cont.iter().zip(&ls).map(|(&i, l)| base[i] / l).collect();
                let lo = vec![0.0; cont.len()];
                let hi: Vec<f64> = ls.iter().map(|l| 1.0 / l).collect();
                let r = minimize_box(&mut f, &z0, &lo, &hi, &opts);
                if r.iterations > 0 {
                    let (xs, ks, s) = eval(vec![to_x(&r.x)]);
                    if s[0] > best_s + 1e-12 && !self.excluded(&ks[0]) {
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
                let (tx, tk, ts) = eval(pts);
                for ((x, k), s) in tx.into_iter().zip(tk).zip(ts) {
                    if s > best_s + 1e-12 && !self.excluded(&k) {
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
}
