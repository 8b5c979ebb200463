//! The statistics of the decision phase: Student's t distribution, the paired comparison of two
//! arms over rounds (effect with a 95% interval, one-sided p-value), Holm's step-down correction
//! and the phase's budget from the measured noise.

use super::{DecisionSettings, Effect};
use crate::engine::acquisition::norm_cdf;

/// Regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz),
/// using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front =
        libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        // Even step, then odd step of the fraction.
        for num in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + num * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + num / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    (ln_front.exp() * h / a).clamp(0.0, 1.0)
}

/// P(T <= t) for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
    if t > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The `p` quantile of Student's t with `df` degrees of freedom (bisection on the cdf).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while t_cdf(hi, df) < p && hi < 1e12 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The `p` quantile of the standard normal (bisection on the cdf).
fn z_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if norm_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Per-round differences `a - b` over the pairs where both are usable: on the logarithm when
/// `log_scale` (then every value must be positive, else the comparison falls back to the values
/// themselves), dropping non-finite values. Returns the differences, the values of `b` kept, and
/// whether the logarithm was used.
fn differences(a: &[f64], b: &[f64], log_scale: bool) -> (Vec<f64>, Vec<f64>, bool) {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x, *y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let log = log_scale && pairs.iter().all(|(x, y)| *x > 0.0 && *y > 0.0);
    let d = pairs
        .iter()
        .map(|(x, y)| if log { x.ln() - y.ln() } else { x - y })
        .collect();
    (d, pairs.iter().map(|(_, y)| *y).collect(), log)
}

/// Mean and standard error of the mean of `d` (n >= 2).
fn mean_se(d: &[f64]) -> (f64, f64) {
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Below this a standard error is numerically zero: identical differences in every round.
fn negligible(se: f64, mean: f64) -> bool {
    se <= 1e-12 * (1.0 + mean.abs())
}

/// Mean and standard error of the per-round differences `arm - reference` (of the logarithms
/// when `log_scale` and every value is positive), with whether the logarithm was used and the
/// reference's mean; None with fewer than 2 usable pairs.
pub fn paired_mean_se(
    arm: &[f64],
    reference: &[f64],
    log_scale: bool,
) -> Option<(f64, f64, bool, f64)> {
    let (d, refs, log) = differences(arm, reference, log_scale);
    if d.len() < 2 {
        return None;
    }
    let (mean, se) = mean_se(&d);
    let level = refs.iter().sum::<f64>() / refs.len() as f64;
    Some((mean, se, log, level))
}

/// Paired comparison over rounds: `arm` against `reference`, values of the same rounds (same
/// length; extra values of the longer slice are ignored). The percent change of the arm against
/// the reference, in the metric's sign (+5 = the arm's values are 5% larger), with a 95%
/// interval: a t-interval on the per-round differences of the logarithms when `log_scale`
/// (converted with exp, so the interval is exact for a ratio), else of the values (divided by
/// the reference's mean). None with fewer than 2 usable pairs, or a reference mean of 0 on the
/// linear scale.
pub fn paired_effect(arm: &[f64], reference: &[f64], log_scale: bool) -> Option<Effect> {
    let (d, refs, log) = differences(arm, reference, log_scale);
    if d.len() < 2 {
        return None;
    }
    let (mean, se) = mean_se(&d);
    let half = if negligible(se, mean) {
        0.0
    } else {
        t_quantile(0.975, (d.len() - 1) as f64) * se
    };
    let (pct, lo, hi) = if log {
        let f = |x: f64| 100.0 * x.exp_m1();
        (f(mean), f(mean - half), f(mean + half))
    } else {
        let level = refs.iter().sum::<f64>() / refs.len() as f64;
        if level == 0.0 || !level.is_finite() {
            return None;
        }
        let f = |x: f64| 100.0 * x / level.abs();
        (f(mean), f(mean - half), f(mean + half))
    };
    Some(Effect {
        pct,
        lo,
        hi,
        rounds: d.len(),
        significant: lo > 0.0 || hi < 0.0,
    })
}

/// One-sided p-value of "`better` is better than `worse`" from paired rounds, `maximize` giving
/// the direction: the paired t-test on the differences (of logs when `log_scale`). 1 with fewer
/// than 2 pairs (no evidence); identical differences give 0 or 1 by their sign.
pub fn p_better(better: &[f64], worse: &[f64], log_scale: bool, maximize: bool) -> f64 {
    let (d, _, _) = differences(better, worse, log_scale);
    if d.len() < 2 {
        return 1.0;
    }
    let (mut mean, se) = mean_se(&d);
    if !maximize {
        mean = -mean;
    }
    if negligible(se, mean) {
        return if mean > 0.0 { 0.0 } else { 1.0 };
    }
    1.0 - t_cdf(mean / se, (d.len() - 1) as f64)
}

/// Holm's step-down procedure (Holm 1979) at family-wise level `alpha`: which of the hypotheses
/// with these p-values are rejected. Sorted ascending, the i-th smallest (0-based) is rejected
/// while p <= alpha / (m - i); the first that is not stops the procedure. Uniformly more
/// powerful than Bonferroni's alpha / m, with the same guarantee.
pub fn holm(p: &[f64], alpha: f64) -> Vec<bool> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]).then(a.cmp(b)));
    let mut rejected = vec![false; m];
    for (i, &k) in order.iter().enumerate() {
        if p[k] <= alpha / (m - i) as f64 {
            rejected[k] = true;
        } else {
            break;
        }
    }
    rejected
}

/// Trials the phase should take: the rounds a paired test needs to detect a relative difference
/// of `detect_pct` percent between two arms whose single trials have relative sd
/// `noise_rel_sd` (n = (z_{1-a} + z_{0.8})^2 * 2 sd^2 / delta^2, with a = alpha / 2 divided
/// over the comparisons of the race, as the tests use it; 80% power), times the arms; capped
/// at `settings.share * total_trials` and floored at `min_rounds * arms` (never above the cap).
/// A noise that is not a positive number sizes the phase at the floor.
pub fn phase_budget(
    settings: &DecisionSettings,
    total_trials: usize,
    arms: usize,
    noise_rel_sd: f64,
    detect_pct: f64,
) -> usize {
    let cap = (settings.share.clamp(0.0, 1.0) * total_trials as f64).floor() as usize;
    let floor = settings.min_rounds.max(2).saturating_mul(arms).min(cap);
    let delta = detect_pct / 100.0;
    if !(noise_rel_sd.is_finite() && noise_rel_sd > 0.0) {
        return floor;
    }
    if !(delta.is_finite() && delta > 0.0) {
        return cap;
    }
    let comparisons = arms.saturating_sub(1).max(1) as f64;
    let a = (settings.alpha.clamp(1e-9, 1.0) / 2.0) / comparisons;
    let z = z_quantile(1.0 - a) + z_quantile(0.8);
    let rounds = (z * z * 2.0 * noise_rel_sd * noise_rel_sd / (delta * delta)).ceil();
    let trials = (rounds.min(1e9) as usize).saturating_mul(arms);
    trials.clamp(floor, cap.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        // Two-sided 95% critical values of Student's t (any statistics table).
        for (df, t) in [
            (1.0, 12.7062),
            (2.0, 4.3027),
            (5.0, 2.5706),
            (10.0, 2.2281),
            (30.0, 2.0423),
        ] {
            assert!((t_quantile(0.975, df) - t).abs() < 1e-3, "df {df}");
        }
        assert!((t_cdf(0.0, 7.0) - 0.5).abs() < 1e-12);
        assert!((t_cdf(-2.2281, 10.0) - 0.025).abs() < 1e-4);
        assert!((z_quantile(0.975) - 1.95996).abs() < 1e-4);
    }

    #[test]
    fn holm_steps_down_and_stops() {
        // m = 3: 0.01 <= 0.05/3, 0.02 <= 0.05/2, 0.04 <= 0.05: all rejected.
        assert_eq!(holm(&[0.04, 0.01, 0.02], 0.05), vec![true, true, true]);
        // 0.03 > 0.05/2 stops the procedure, so 0.04 is kept too.
        assert_eq!(holm(&[0.01, 0.03, 0.04], 0.05), vec![true, false, false]);
        assert!(holm(&[], 0.05).is_empty());
    }

    #[test]
    fn paired_effect_on_exact_ratio_and_linear() {
        let reference = [100.0, 110.0, 90.0, 105.0];
        let arm: Vec<f64> = reference.iter().map(|v| v * 1.05).collect();
        let e = paired_effect(&arm, &reference, true).unwrap();
        assert!((e.pct - 5.0).abs() < 1e-9 && e.lo == e.pct && e.hi == e.pct);
        assert!(e.significant && e.rounds == 4);
        let e = paired_effect(&[11.0, 12.0, 10.0], &[10.0, 10.0, 10.0], false).unwrap();
        assert!((e.pct - 10.0).abs() < 1e-9 && e.lo < e.pct && e.hi > e.pct);
        assert!(paired_effect(&[1.0], &[2.0], true).is_none());
        assert!(paired_effect(&[1.0, 2.0], &[0.0, 0.0], false).is_none());
    }

    #[test]
    fn p_better_follows_the_direction() {
        let a = [10.0, 11.0, 10.5, 10.8];
        let b = [9.0, 10.1, 9.4, 9.9];
        assert!(p_better(&a, &b, true, true) < 0.01);
        assert!(p_better(&a, &b, true, false) > 0.99);
        assert_eq!(p_better(&a, &a, true, true), 1.0);
        assert_eq!(p_better(&a[..1], &b[..1], true, true), 1.0);
    }

    #[test]
    fn budget_is_capped_and_floored() {
        let s = DecisionSettings {
            share: 0.3,
            ..DecisionSettings::default()
        }; // min_rounds 3, alpha 0.05
           // Noisy: wants far more than 30% of 100 trials.
        assert_eq!(phase_budget(&s, 100, 5, 0.05, 1.0), 30);
        // Quiet: a few rounds suffice, but never fewer than min_rounds per arm.
        assert_eq!(phase_budget(&s, 100, 5, 0.001, 1.0), 15);
        // The floor never exceeds the cap.
        assert_eq!(phase_budget(&s, 20, 5, 0.001, 1.0), 6);
        // In between: sd 1%, 5% to detect, 2 arms: z = 1.96 + 0.84, n = 2 * 2.8^2 * 0.04 = 0.63.
        assert_eq!(phase_budget(&s, 1000, 2, 0.01, 5.0), 6);
        // sd 2%, 1% to detect, 2 arms: n = ceil(2 * 7.85 * 4) = 63 rounds.
        assert_eq!(phase_budget(&s, 1000, 2, 0.02, 1.0), 126);
        assert_eq!(phase_budget(&s, 100, 5, f64::NAN, 1.0), 15);
    }
}
