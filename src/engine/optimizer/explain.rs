//! Parameter effects over the region that was sampled, from the fitted objective GP, each with
//! a posterior interval (the report's model-based importance table).
//!
//! What is estimated, and why this way (issue 12: the old table reported a 70 tok/s effect of
//! top_p and 16.8 tok/s of num_batch where the true effect was nil, GP extrapolations to corners
//! of the space no trial had been near):
//! - the other parameters stay at measured configurations: the `EFFECT_BASES` feasible trials
//!   with the best posterior mean, and the effect is the average over them;
//! - a parameter moves only across the values it was measured at, never across the rest of its
//!   domain, and only across those where the changed configurations stay in the sampled region
//!   of the whole space (`EFFECT_RADIUS`: a value measured only together with other changes is
//!   no evidence about it); at most `EFFECT_LEVELS` of them, spread over their range;
//! - the effect is the range of the predicted objective over those values (at the measured value
//!   where the posterior mean is best minus at the one where it is worst), in the objective's
//!   units; it and its interval are capped at the range of objective values measured on
//!   feasible trials, so an effect can never exceed what was measured;
//! - its 95% interval comes from `EFFECT_DRAWS` joint draws of the GP posterior (fixed seed) at
//!   every evaluated point, through a simultaneous band over the values (`range_interval`), at
//!   the level 1 - 5% / d for d parameters, so that the 95% holds jointly over the parameters
//!   (Bonferroni). Joint draws keep the correlation between nearby points, which independent
//!   marginals would lose (the difference of two close points is much surer than either value);
//!   the band accounts for the best and worst value being picked among several, which a plain
//!   interval of their difference does not (measured: on pure noise it excluded zero);
//! - an interval that reaches down to zero, or to the noise of one measurement (the GP's noise
//!   near the best, in the objective's units), means "no detectable effect": the effect is not
//!   surely larger than what one measurement can tell apart. Such a parameter gets no share:
//!   shares are over the parameters with a detectable effect only.
//!
//! The model's intervals are only as good as the model, so both rules above are checked on
//! synthetic journals (the tests below), including one with a cliff the model smooths over (the
//! num_gpu cliff of full offload). The measured ablation is the primary importance; this table
//! is a guide.

use super::{Optimizer, Outcome};
use crate::engine::gp::Gp;
use crate::engine::objective::Direction;
use crate::engine::random::gaussian;
use crate::engine::space::ParamValue;
use crate::engine::stats::quantile;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Joint posterior draws behind each interval.
pub const EFFECT_DRAWS: usize = 2000;
/// At most this many measured values of a parameter are evaluated (quantiles of its measured
/// values, the smallest and largest included).
pub const EFFECT_LEVELS: usize = 9;
/// The other parameters are held at up to this many near-best measured configurations.
pub const EFFECT_BASES: usize = 3;
/// A changed configuration is in the sampled region when some trial that ran differs from it in
/// no choice and, in every numeric coordinate, by at most this share of the encoded range (log
/// scale for log parameters) times the parameter's lengthscale where that is below 1: closer
/// along the parameters that matter, so a trial that also differs in one of those is no
/// evidence about this one. The GP's posterior variance alone was tried first (support where
/// the data explain half of its prior variance) and, on the journals of `ollama-tuner demo
/// --seed 1` to `4` (30 trials each), still reported top_p 69 tok/s, num_thread 58 and 59 tok/s
/// and num_ctx 50 tok/s (true effects near zero): their unusual values had only been measured
/// with a num_gpu short of full offload, a cliff a stationary kernel smooths over and blames on
/// whatever else differed. With this rule the same journals give estimates of at most 3.3 tok/s,
/// none detectable, for everything but num_gpu (6 to 21 tok/s between the values measured next
/// to full offload, detectable in 1 of the 4).
pub const EFFECT_RADIUS: f64 = 0.25;
/// Random stream of the draws (mixed with the study seed and the parameter's index).
const STREAM: u64 = 0xEF;

/// How much one parameter matters, over the region that was sampled (module comment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamEffect {
    pub name: String,
    /// Fitted lengthscale in encoded units (short = the objective changes fast along it).
    pub lengthscale: f64,
    /// How much better the predicted objective is at `best_value` than at `worst_value` (the
    /// range of the prediction over the measured values), in the objective's units, >= 0 and at
    /// most the measured range of the objective; averaged over the near-best measured
    /// configurations the other parameters are held at.
    pub effect: f64,
    /// 95% interval of `effect` from joint posterior draws (lower end >= 0, upper end at most
    /// the measured range of the objective).
    pub ci95: (f64, f64),
    /// The whole interval lies above `noise_sd` (so above zero). When false: "no detectable
    /// effect".
    pub detectable: bool,
    /// `effect` as a share of the summed effects of the detectable parameters; 0 when this
    /// parameter's effect is not detectable.
    pub share: f64,
    /// Measured value of the parameter where the predicted objective is best / worst (None when
    /// there is no estimate: fewer than two values evaluated).
    pub best_value: Option<ParamValue>,
    pub worst_value: Option<ParamValue>,
    /// The measured values the parameter was evaluated at (those in the sampled region around
    /// the bases), in encoded order; fewer than two: no effect could be estimated.
    pub evaluated: Vec<ParamValue>,
    /// Noise of one measurement near the best configuration, in the objective's units (the
    /// GP's noise; the same for every parameter): an effect that may be below it is within the
    /// noise.
    pub noise_sd: f64,
}

impl Optimizer {
    /// Parameter effects over the sampled region, from a GP fitted on all ok trials, in the
    /// order of the space. Empty before two trials ran.
    pub fn explain(&self) -> Vec<ParamEffect> {
        let Some(models) = self.fit_models() else {
            return vec![];
        };
        let gp = &models.objective;
        let subset = self.gp_subset();
        let values: Vec<f64> = subset.iter().map(|&i| self.value(i)).collect();
        let log = self.objective.use_log(&values, self.positive_metric);
        let sign = match self.objective.direction {
            Direction::Maximize => 1.0,
            Direction::Minimize => -1.0,
        };
        let feasible: Vec<bool> = subset
            .iter()
            .map(|&i| self.meets_constraints(&self.observations[i].outcome))
            .collect();
        // The measured range of the objective (feasible trials; all that ran when none was).
        let pool: Vec<f64> = values
            .iter()
            .zip(&feasible)
            .filter(|(_, f)| **f)
            .map(|(v, _)| *v)
            .collect();
        let pool = if pool.is_empty() { &values } else { &pool };
        let lo = pool.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = pool.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Standardized latent value -> objective units. Far beyond the warped values seen the
        // inverse warp (and exp, on a log metric) would amplify a GP overshoot without bound, so
        // the latent value is kept within one measured span of them; that only widens the
        // intervals. Effects and intervals are capped at the measured range at the end, after
        // the draws: clamping every draw to the measured range would pile the uncertain ones
        // up at its ends and make an unknown effect look sure.
        let (w_lo, w_hi) = models.warped_range;
        let span = (w_hi - w_lo).max(f64::MIN_POSITIVE);
        let to_value = |z: f64| {
            let t = (gp.y_mean + gp.y_std * z).clamp(w_lo - span, w_hi + span);
            let u = sign * models.warp.invert(t);
            if log {
                u.exp()
            } else {
                u
            }
        };
        let cap = (hi - lo).max(0.0);

        let xs: Vec<&[f64]> = subset
            .iter()
            .map(|&i| self.observations[i].x.as_slice())
            .collect();
        let bases = near_best_bases(gp, &xs, &feasible);
        let cat = self.space.categorical_mask();
        // How far a trial may be from a changed configuration and still count as measuring it:
        // `EFFECT_RADIUS` times each parameter's lengthscale (at most 1), so a trial that differs
        // noticeably in a parameter that matters is no evidence about another one.
        let tol: Vec<f64> = gp
            .hyper
            .lengthscales
            .iter()
            .map(|l| EFFECT_RADIUS * l.min(1.0))
            .collect();
        // 95% jointly over the parameters (Bonferroni): each band at 1 - 5% / d, so that
        // with many parameters of no effect, not one of them is called an effect by chance.
        let level = 1.0 - 0.05 / self.space.dims().max(1) as f64;
        // The noise of one measurement at the best base, in the objective's units: the GP's
        // noise (warped units) through the local slope of the inverse warp and of exp (the
        // delta method, as for confirmations in leaders.rs).
        let noise_sd = bases.first().map_or(0.0, |b| {
            let (m, _) = gp.predict_standardized(std::slice::from_ref(b));
            let t =
                (gp.y_mean + gp.y_std * m[0]).clamp(models.warped_range.0, models.warped_range.1);
            let s = gp.hyper.noise_variance.sqrt() * gp.y_std * models.warp.invert_slope(t);
            if log {
                s * to_value(m[0])
            } else {
                s
            }
        });

        let mut effects: Vec<ParamEffect> = self
            .space
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // Candidates spread over the measured values; those in the sampled region
                // around every base (`EFFECT_RADIUS`); at most `EFFECT_LEVELS` of those.
                let candidates = spread_pick(self.levels(&subset, i, &p.name), 4 * EFFECT_LEVELS);
                let nc = candidates.len();
                let probe: Vec<Vec<f64>> = bases
                    .iter()
                    .flat_map(|b| candidates.iter().map(move |(u, _)| with(b, i, *u)))
                    .collect();
                let near = |p: &[f64]| {
                    xs.iter().any(|x| {
                        (0..p.len()).all(|j| {
                            if cat[j] {
                                x[j] == p[j]
                            } else {
                                (x[j] - p[j]).abs() <= tol[j]
                            }
                        })
                    })
                };
                let supported: Vec<(f64, ParamValue)> = candidates
                    .into_iter()
                    .enumerate()
                    .filter(|(c, _)| (0..bases.len()).all(|b| near(&probe[b * nc + c])))
                    .map(|(_, l)| l)
                    .collect();
                let levels = spread_pick(supported, EFFECT_LEVELS);
                let evaluated: Vec<ParamValue> = levels.iter().map(|(_, v)| v.clone()).collect();
                let mut e = ParamEffect {
                    name: p.name.clone(),
                    lengthscale: gp.hyper.lengthscales[i],
                    effect: 0.0,
                    ci95: (0.0, 0.0),
                    detectable: false,
                    share: 0.0,
                    best_value: None,
                    worst_value: None,
                    evaluated,
                    noise_sd,
                };
                if levels.len() < 2 || bases.is_empty() {
                    return e;
                }
                let at = |b: &[f64], u: f64| with(b, i, u);
                let pts: Vec<Vec<f64>> = bases
                    .iter()
                    .flat_map(|b| levels.iter().map(move |(u, _)| at(b, *u)))
                    .collect();
                let (mean, cov) = gp.predict_joint_standardized(&pts);
                let nl = levels.len();
                // Goodness (objective units, larger = better) of each level, averaged over the
                // bases, for one joint value of the latent function at `pts`.
                let curve = |z: &[f64]| -> Vec<f64> {
                    (0..nl)
                        .map(|l| {
                            (0..bases.len())
                                .map(|b| sign * to_value(z[b * nl + l]))
                                .sum::<f64>()
                                / bases.len() as f64
                        })
                        .collect()
                };
                let fit = curve(&mean);
                let mut rng = self.rng(i, STREAM);
                let draws: Vec<Vec<f64>> = joint_draws(&mean, &cov, EFFECT_DRAWS, &mut rng)
                    .iter()
                    .map(|z| curve(z))
                    .collect();
                let best = argmax(&fit);
                let worst = argmax(&fit.iter().map(|g| -g).collect::<Vec<_>>());
                e.best_value = Some(levels[best].1.clone());
                e.worst_value = Some(levels[worst].1.clone());
                e.effect = (fit[best] - fit[worst]).min(cap);
                let (l, u) = range_interval(&fit, &draws, level);
                e.ci95 = (l.min(cap), u.min(cap));
                e.detectable = l > noise_sd.max(0.0);
                e
            })
            .collect();
        let total: f64 = effects
            .iter()
            .filter(|e| e.detectable)
            .map(|e| e.effect)
            .sum();
        for e in &mut effects {
            e.share = if e.detectable && total > 0.0 {
                e.effect / total
            } else {
                0.0
            };
        }
        effects
    }

    /// The distinct measured values of parameter `i` over the GP's data (`subset`), as (encoded
    /// value, value), in encoded order.
    fn levels(&self, subset: &[usize], i: usize, name: &str) -> Vec<(f64, ParamValue)> {
        let mut all: Vec<(f64, ParamValue)> = subset
            .iter()
            .filter(|&&j| matches!(self.observations[j].outcome, Outcome::Ok { .. }))
            .map(|&j| {
                let o = &self.observations[j];
                let v = o
                    .config
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| self.space.params[i].decode(o.x[i]));
                (o.x[i], v)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let distinct = |v: Vec<(f64, ParamValue)>| {
            let mut out: Vec<(f64, ParamValue)> = Vec::new();
            for x in v {
                if out.last().is_none_or(|l| l.0 != x.0) {
                    out.push(x);
                }
            }
            out
        };
        distinct(all)
    }
}

/// At most `k` of `v` (sorted, distinct) at evenly spaced ranks, the first and last included.
fn spread_pick<T: Clone>(v: Vec<T>, k: usize) -> Vec<T> {
    if v.len() <= k || k < 2 {
        return v;
    }
    let mut ranks: Vec<usize> = (0..k)
        .map(|j| (j as f64 * (v.len() - 1) as f64 / (k - 1) as f64).round() as usize)
        .collect();
    ranks.dedup();
    ranks.into_iter().map(|r| v[r].clone()).collect()
}

/// Up to `EFFECT_BASES` distinct measured points (of `xs`, the GP's data) with the best
/// posterior mean, feasible ones only when any is.
fn near_best_bases(gp: &Gp, xs: &[&[f64]], feasible: &[bool]) -> Vec<Vec<f64>> {
    let owned: Vec<Vec<f64>> = xs.iter().map(|x| x.to_vec()).collect();
    let (mu, _) = gp.predict_standardized(&owned);
    let any_feasible = feasible.iter().any(|f| *f);
    let mut order: Vec<usize> = (0..xs.len())
        .filter(|&j| feasible[j] || !any_feasible)
        .collect();
    order.sort_by(|a, b| mu[*b].total_cmp(&mu[*a]).then(a.cmp(b)));
    let mut bases: Vec<Vec<f64>> = Vec::new();
    for j in order {
        if bases.len() == EFFECT_BASES {
            break;
        }
        if !bases.iter().any(|b| b.as_slice() == xs[j]) {
            bases.push(xs[j].to_vec());
        }
    }
    bases
}

/// `n` joint draws of a Gaussian with this mean and covariance.
fn joint_draws(mean: &[f64], cov: &[Vec<f64>], n: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f64>> {
    let chol = psd_cholesky(cov);
    let m = mean.len();
    let mut eps = vec![0.0; m];
    (0..n)
        .map(|_| {
            eps.iter_mut().for_each(|x| *x = gaussian(rng));
            (0..m)
                .map(|a| mean[a] + (0..=a).map(|k| chol[a][k] * eps[k]).sum::<f64>())
                .collect()
        })
        .collect()
}

/// 95% interval of the range (largest minus smallest value) of a curve over its levels, from
/// posterior draws of the curve, through a simultaneous band. Each curve is first centred on
/// its own mean, so an uncertain overall level (which moves every level alike and leaves the
/// range unchanged) does not widen the band. The band is `fit` +- c sd per level, with c the
/// 95% quantile over the draws of the largest standardized deviation from `fit` (a max-t band,
/// so that picking the best and worst of many levels is accounted for: a pairwise interval of
/// the difference between the levels the fit picks excluded zero on pure noise). The range lies
/// between the largest lower edge minus the smallest upper edge (at least 0) and the largest
/// upper edge minus the smallest lower edge.
fn range_interval(fit: &[f64], draws: &[Vec<f64>], level: f64) -> (f64, f64) {
    let centre = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| x - m).collect::<Vec<f64>>()
    };
    let f = centre(fit);
    let h: Vec<Vec<f64>> = draws.iter().map(|d| centre(d)).collect();
    let sd: Vec<f64> = (0..f.len())
        .map(|l| (h.iter().map(|d| (d[l] - f[l]).powi(2)).sum::<f64>() / h.len() as f64).sqrt())
        .collect();
    let tiny = 1e-12 * (1.0 + f.iter().fold(0.0f64, |a, x| a.max(x.abs())));
    let t: Vec<f64> = h
        .iter()
        .map(|d| {
            (0..f.len())
                .map(|l| {
                    let dev = (d[l] - f[l]).abs();
                    if sd[l] > tiny {
                        dev / sd[l]
                    } else if dev > tiny {
                        f64::INFINITY
                    } else {
                        0.0
                    }
                })
                .fold(0.0, f64::max)
        })
        .collect();
    let c = quantile(&t, level);
    if !c.is_finite() {
        return (0.0, f64::INFINITY);
    }
    let lower: Vec<f64> = (0..f.len()).map(|l| f[l] - c * sd[l]).collect();
    let upper: Vec<f64> = (0..f.len()).map(|l| f[l] + c * sd[l]).collect();
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    (
        (max(&lower) - min(&upper)).max(0.0),
        max(&upper) - min(&lower),
    )
}

/// `x` with coordinate `i` set to `u`.
fn with(x: &[f64], i: usize, u: f64) -> Vec<f64> {
    let mut x = x.to_vec();
    x[i] = u;
    x
}

/// Index of the largest value (the first on ties).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Lower-triangular factor of a positive semi-definite matrix: a Cholesky decomposition that
/// leaves a column at zero where the matrix is (numerically) singular, as two equal points are.
fn psd_cholesky(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let m = a.len();
    let mut l = vec![vec![0.0; m]; m];
    for j in 0..m {
        let d = a[j][j] - (0..j).map(|k| l[j][k] * l[j][k]).sum::<f64>();
        if d <= 1e-12 * (1.0 + a[j][j].abs()) {
            continue;
        }
        let s = d.sqrt();
        l[j][j] = s;
        for i in j + 1..m {
            let v = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            l[i][j] = v / s;
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::objective::{MetricRef, Objective, Transform};
    use crate::engine::optimizer::OptimizerSettings;
    use crate::engine::space::Role;
    use crate::engine::space::{Config, Param, ParamKind, SearchSpace};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn not_positive(_: &str) -> bool {
        false
    }

    fn optimizer(names: &[&str], direction: Direction, seed: u64) -> Optimizer {
        let space = SearchSpace {
            params: names
                .iter()
                .map(|n| Param {
                    name: n.to_string(),
                    kind: ParamKind::Float {
                        low: 0.0,
                        high: 1.0,
                        log: false,
                        step: None,
                    },
                    default: None,
                    role: Role::Speed,
                    prefer: None,
                    memory: Default::default(),
                })
                .collect(),
        };
        let objective = Objective {
            metric: MetricRef::parse("value"),
            direction,
            constraints: vec![],
            transform: Transform::None,
        };
        Optimizer::new(
            space,
            objective,
            not_positive,
            OptimizerSettings::default(),
            vec![],
            seed,
        )
    }

    /// A synthetic journal: `n` configurations drawn uniformly from each parameter's band,
    /// measured as `f(x)` plus Gaussian noise of `sd`. Returns the measured values.
    fn measure(
        opt: &mut Optimizer,
        bands: &[(f64, f64)],
        n: usize,
        sd: f64,
        f: impl Fn(&[f64]) -> f64,
        seed: u64,
    ) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let names: Vec<String> = opt.space.params.iter().map(|p| p.name.clone()).collect();
        (0..n)
            .map(|_| {
                let x: Vec<f64> = bands
                    .iter()
                    .map(|(lo, hi)| lo + (hi - lo) * rng.random::<f64>())
                    .collect();
                let v = f(&x) + sd * gaussian(&mut rng);
                let config: Config = names
                    .iter()
                    .zip(&x)
                    .map(|(k, u)| (k.clone(), ParamValue::Float(*u)))
                    .collect();
                opt.tell_config(
                    &config,
                    Outcome::Ok {
                        value: v,
                        constraint_values: vec![],
                        duration_s: 1.0,
                        reload_s: None,
                    },
                );
                v
            })
            .collect()
    }

    fn get<'a>(effects: &'a [ParamEffect], name: &str) -> &'a ParamEffect {
        effects.iter().find(|e| e.name == name).unwrap()
    }

    fn num(v: &Option<ParamValue>) -> f64 {
        v.as_ref().and_then(|v| v.as_f64()).unwrap()
    }

    fn range(values: &[f64]) -> f64 {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        hi - lo
    }

    #[test]
    fn a_strong_effect_is_detected_and_pure_noise_is_not_beyond_the_nominal_rate() {
        // `a` moves the objective by 10 across its range; `b` does nothing (the noise is 1).
        // A 95% interval calls pure noise an effect now and then (some samples do show a
        // trend); the count over 40 journals is held to about its nominal rate (measured: 0).
        let (mut noise_detected, mut covered, mut runs) = (0, 0, 0);
        for seed in 0..20 {
            for direction in [Direction::Maximize, Direction::Minimize] {
                runs += 1;
                let mut opt = optimizer(&["a", "b"], direction.clone(), seed);
                let values = measure(
                    &mut opt,
                    &[(0.0, 1.0), (0.0, 1.0)],
                    30,
                    1.0,
                    |x| 20.0 + 10.0 * x[0],
                    seed,
                );
                let effects = opt.explain();
                let a = get(&effects, "a");
                let b = get(&effects, "b");
                assert!(a.detectable, "seed {seed}: {a:?}");
                // The true effect over the values evaluated (the smallest and largest measured).
                let ev: Vec<f64> = a.evaluated.iter().map(|v| v.as_f64().unwrap()).collect();
                let truth = 10.0 * range(&ev);
                if a.ci95.0 <= truth && truth <= a.ci95.1 {
                    covered += 1;
                }
                // The right end is best: high a when maximizing, low a when minimizing.
                let up = num(&a.best_value) > num(&a.worst_value);
                assert_eq!(up, direction == Direction::Maximize, "seed {seed}");
                if b.detectable {
                    noise_detected += 1;
                } else {
                    assert!(
                        b.ci95.0 <= b.noise_sd && b.share == 0.0,
                        "seed {seed}: {b:?}"
                    );
                    assert_eq!(a.share, 1.0);
                }
                for e in &effects {
                    assert!(e.effect <= range(&values) && e.ci95.1 <= range(&values));
                }
            }
        }
        eprintln!("noise detected {noise_detected}/{runs}, truth covered {covered}/{runs}");
        assert!(noise_detected * 10 <= runs, "{noise_detected} of {runs}");
        assert!(covered * 10 >= runs * 9, "{covered} of {runs}");
    }

    #[test]
    fn an_effect_never_exceeds_the_measured_range() {
        // A narrow peak seen by few trials: a GP easily overshoots between and beyond them.
        for seed in 0..6 {
            let mut opt = optimizer(&["a", "b", "c"], Direction::Maximize, seed);
            let values = measure(
                &mut opt,
                &[(0.0, 1.0), (0.0, 1.0), (0.0, 1.0)],
                9,
                0.5,
                |x| 10.0 + 100.0 * (-((x[0] - 0.5) / 0.08).powi(2)).exp() + 30.0 * x[1],
                seed,
            );
            let r = range(&values);
            for e in opt.explain() {
                assert!(e.effect >= 0.0 && e.effect <= r, "seed {seed}: {e:?} > {r}");
                assert!(e.ci95.0 >= -r && e.ci95.1 <= r, "seed {seed}: {e:?}");
            }
        }
    }

    #[test]
    fn a_parameter_sampled_in_a_narrow_band_is_not_extrapolated_beyond_it() {
        // `c` would move the objective by 40 over its whole domain, but was only measured in
        // [0.45, 0.55]: what the data support is at most 4.
        for seed in 0..6 {
            let mut opt = optimizer(&["a", "c"], Direction::Maximize, seed);
            measure(
                &mut opt,
                &[(0.0, 1.0), (0.45, 0.55)],
                25,
                0.3,
                |x| 20.0 + 10.0 * x[0] + 40.0 * x[1],
                seed,
            );
            let effects = opt.explain();
            let c = get(&effects, "c");
            assert!(
                c.evaluated
                    .iter()
                    .all(|v| (0.45..=0.55).contains(&v.as_f64().unwrap())),
                "{c:?}"
            );
            assert!(c.evaluated.len() <= EFFECT_LEVELS);
            assert!(c.effect <= 4.0 * 1.25, "seed {seed}: {c:?}");
            assert!(c.ci95.1 <= 8.0, "seed {seed}: {c:?}");
            assert!(get(&effects, "a").detectable);
        }
    }

    #[test]
    fn a_value_measured_only_across_a_cliff_is_not_evaluated_and_gets_no_large_effect() {
        // The demo's trap: `gpu` has a cliff (full offload at the top of its range is 5x
        // faster); `thr`, `t` and `k` do nothing. A space-filling design measures every `thr`
        // value, but with `gpu` short of the cliff; the proposals then measure the top of `gpu`
        // with `thr` in the middle only (and `t`, `k` anywhere, as sampling options are). A
        // stationary GP smooths the cliff, and evaluated at the far `thr` values it blamed the
        // slow design points on their unusual `thr` (the demo's 58 tok/s of num_thread). Next
        // to the best, `gpu` itself was only measured above the cliff: no effect there either
        // (not asserted, the model may see the cliff's edge).
        let names = ["gpu", "thr", "t", "k"];
        let (mut blamed, mut chances) = (0, 0);
        for seed in 0..8 {
            let mut opt = optimizer(&names, Direction::Maximize, seed);
            let cliff = |x: &[f64]| {
                if x[0] > 0.9 {
                    100.0
                } else {
                    20.0 + 10.0 * x[0]
                }
            };
            let all = (0.0, 1.0);
            measure(&mut opt, &[(0.0, 0.9), all, all, all], 10, 1.0, cliff, seed);
            let top = [(0.92, 1.0), (0.45, 0.55), all, all];
            measure(&mut opt, &top, 20, 1.0, cliff, seed + 100);
            let effects = opt.explain();
            // `thr` is evaluated where it was measured next to the best, not at the design's
            // values across the cliff.
            let thr = get(&effects, "thr");
            assert!(
                thr.evaluated
                    .iter()
                    .all(|v| (0.2..=0.8).contains(&v.as_f64().unwrap())),
                "seed {seed}: {thr:?}"
            );
            for name in ["thr", "t", "k"] {
                let e = get(&effects, name);
                chances += 1;
                if e.detectable {
                    blamed += 1;
                    assert!(e.effect < 5.0, "seed {seed}: {e:?}");
                }
            }
        }
        eprintln!("blamed {blamed} of {chances}");
        // What is left is the model's own error near the best, where it smooths the cliff's
        // edge: measured 3 of 24 small effects (below 5 against a cliff of 80, noise 1), never a
        // large one. The bound keeps that from growing.
        assert!(blamed * 6 <= chances, "{blamed} of {chances}");
    }

    #[test]
    fn a_parameter_measured_at_one_value_has_no_effect_and_the_draws_are_reproducible() {
        let mut opt = optimizer(&["a", "b"], Direction::Maximize, 3);
        measure(
            &mut opt,
            &[(0.0, 1.0), (0.3, 0.3)],
            12,
            0.5,
            |x| 5.0 * x[0],
            3,
        );
        let effects = opt.explain();
        let b = get(&effects, "b");
        assert_eq!(b.evaluated.len(), 1);
        assert!(!b.detectable && b.effect == 0.0 && b.best_value.is_none());
        assert_eq!(effects, opt.explain(), "fixed seed: same intervals");
    }

    #[test]
    fn choices_and_a_log_metric_are_handled() {
        // A rate (modelled on its logarithm): the choice `kv` matters (x1, x1.5, x2), the flag
        // `f` does not.
        let space = SearchSpace {
            params: vec![
                Param {
                    name: "kv".into(),
                    kind: ParamKind::Categorical {
                        choices: ["f16", "q8_0", "q4_0"]
                            .iter()
                            .map(|c| ParamValue::Str(c.to_string()))
                            .collect(),
                    },
                    default: None,
                    role: Role::Speed,
                    prefer: None,
                    memory: Default::default(),
                },
                Param {
                    name: "f".into(),
                    kind: ParamKind::Bool,
                    default: None,
                    role: Role::Speed,
                    prefer: None,
                    memory: Default::default(),
                },
            ],
        };
        let objective = Objective {
            metric: MetricRef::parse("decode_tps"),
            direction: Direction::Maximize,
            constraints: vec![],
            transform: Transform::Auto,
        };
        let mut opt = Optimizer::new(
            space,
            objective,
            |_| true,
            OptimizerSettings::default(),
            vec![],
            1,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut values = vec![];
        for k in 0..24 {
            let kv = ["f16", "q8_0", "q4_0"][k % 3];
            let f = (k / 3) % 2 == 0;
            let v = 40.0 * [1.0, 1.5, 2.0][k % 3] * (1.0 + 0.02 * gaussian(&mut rng));
            values.push(v);
            let config: Config = [
                ("kv".to_string(), ParamValue::Str(kv.into())),
                ("f".to_string(), ParamValue::Bool(f)),
            ]
            .into_iter()
            .collect();
            opt.tell_config(
                &config,
                Outcome::Ok {
                    value: v,
                    constraint_values: vec![],
                    duration_s: 1.0,
                    reload_s: None,
                },
            );
        }
        let effects = opt.explain();
        let kv = get(&effects, "kv");
        assert!(kv.detectable, "{kv:?}");
        assert_eq!(kv.best_value, Some(ParamValue::Str("q4_0".into())));
        assert_eq!(kv.worst_value, Some(ParamValue::Str("f16".into())));
        assert!(kv.ci95.0 <= 40.0 && 40.0 <= kv.ci95.1, "{kv:?}");
        assert_eq!(kv.evaluated.len(), 3);
        let f = get(&effects, "f");
        assert!(!f.detectable, "{f:?}");
        assert!(kv.ci95.1 <= range(&values));
    }

    #[test]
    fn the_semidefinite_factor_reproduces_its_matrix() {
        // Two equal points: a singular covariance.
        let a = vec![
            vec![1.0, 1.0, 0.5],
            vec![1.0, 1.0, 0.5],
            vec![0.5, 0.5, 2.0],
        ];
        let l = psd_cholesky(&a);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| l[i][k] * l[j][k]).sum();
                assert!((v - a[i][j]).abs() < 1e-9, "{i} {j}: {v}");
            }
        }
    }
}
