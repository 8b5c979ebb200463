//! Percentile-bootstrap intervals with fixed seeds, so a report is identical every time it is
//! regenerated: the interval of one trial's statistic and of the difference between two.

use crate::engine::stats::quantile_sorted;
use crate::study::Stat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bootstrap resamples per interval. 2000 keeps the 2.5% / 97.5% percentiles stable to a few
/// tenths of a percent of the spread, and a 1000-trial report still takes well under a second.
pub(crate) const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Fixed seed of every bootstrap, so a report is identical every time it is regenerated.
const BOOTSTRAP_SEED: u64 = 0x7E55_E1A7_ED5E_ED01;

/// A bootstrap seed per pair of trials (splitmix64): the result for a pair does not depend on
/// which other trials exist or in which order they are compared.
pub(super) fn seed_for(a: usize, b: usize) -> u64 {
    let mix = crate::engine::random::splitmix64;
    mix(BOOTSTRAP_SEED ^ mix(a as u64) ^ mix(b as u64).rotate_left(17))
}

/// The statistic of a sample, as `Summary::get` defines it.
pub(super) fn stat_of(values: &mut [f64], stat: Stat) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    match stat {
        Stat::Median => quantile_sorted(values, 0.5),
        Stat::P95 => quantile_sorted(values, 0.95),
        Stat::Min => values[0],
        Stat::Max => values[values.len() - 1],
        Stat::Mean => values.iter().sum::<f64>() / n,
        Stat::Std => {
            if values.len() < 2 {
                return 0.0;
            }
            let m = values.iter().sum::<f64>() / n;
            (values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        }
    }
}

fn resample(rng: &mut ChaCha8Rng, from: &[f64], into: &mut [f64]) {
    for slot in into.iter_mut() {
        *slot = from[rng.random_range(0..from.len())];
    }
}

/// 95% percentile-bootstrap interval of a statistic; None with fewer than two values.
pub(crate) fn bootstrap_ci(values: &[f64], stat: Stat, seed: u64) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0.0; values.len()];
    let mut stats: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            resample(&mut rng, values, &mut buf);
            stat_of(&mut buf, stat)
        })
        .collect();
    stats.sort_by(|a, b| a.total_cmp(b));
    Some((
        quantile_sorted(&stats, 0.025),
        quantile_sorted(&stats, 0.975),
    ))
}

/// 95% percentile-bootstrap interval of stat(a) - stat(b), resampling each side independently.
pub(crate) fn bootstrap_diff(a: &[f64], b: &[f64], stat: Stat, seed: u64) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ba = vec![0.0; a.len()];
    let mut bb = vec![0.0; b.len()];
    let mut diffs: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            resample(&mut rng, a, &mut ba);
            resample(&mut rng, b, &mut bb);
            stat_of(&mut ba, stat) - stat_of(&mut bb, stat)
        })
        .collect();
    diffs.sort_by(|x, y| x.total_cmp(y));
    Some((
        quantile_sorted(&diffs, 0.025),
        quantile_sorted(&diffs, 0.975),
    ))
}

/// The change of `a`'s statistic against `b`'s in percent of `b`'s, with the 95% bootstrap
/// interval of that change: `(pct, lo, hi)`. None with fewer than two values on a side or a
/// zero statistic of `b`. `recheck` compares a recommendation's new measurements with its
/// recorded ones this way.
pub fn bootstrap_diff_pct(a: &[f64], b: &[f64], stat: Stat) -> Option<(f64, f64, f64)> {
    let (lo, hi) = bootstrap_diff(a, b, stat, seed_for(a.len(), b.len()))?;
    let base = stat_of(&mut b.to_vec(), stat);
    if base == 0.0 || !base.is_finite() {
        return None;
    }
    let pct = (stat_of(&mut a.to_vec(), stat) - base) / base.abs() * 100.0;
    Some((pct, lo / base.abs() * 100.0, hi / base.abs() * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::Summary;

    #[test]
    fn stat_of_matches_summary() {
        let v = [1.0, 2.0, 3.0, 6.0, 10.0];
        let s = Summary::of(&v).unwrap();
        for stat in [
            Stat::Median,
            Stat::Mean,
            Stat::P95,
            Stat::Std,
            Stat::Min,
            Stat::Max,
        ] {
            let mut w = v.to_vec();
            assert!(
                (stat_of(&mut w, stat) - s.get(stat)).abs() < 1e-12,
                "{stat:?}"
            );
        }
    }
}
