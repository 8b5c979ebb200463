//! Robust summaries of repeated measurements: median, mean, standard deviation, p95.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::engine::objective::Stat;

/// One measured request: metric name -> value (tokens/s, seconds, ...).
pub type Sample = BTreeMap<String, f64>;

/// Summary of one metric over a trial's samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub mean: f64,
    /// Sample standard deviation (n-1 in the denominator); 0 for a single sample.
    pub std: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Summary {
            n,
            median: quantile_sorted(&v, 0.5),
            mean,
            std,
            p95: quantile_sorted(&v, 0.95),
            min: v[0],
            max: v[n - 1],
        })
    }

    pub fn get(&self, stat: Stat) -> f64 {
        match stat {
            Stat::Median => self.median,
            Stat::Mean => self.mean,
            Stat::P95 => self.p95,
            Stat::Std => self.std,
            Stat::Min => self.min,
            Stat::Max => self.max,
        }
    }

    /// Coefficient of variation (std / mean), the spread measure of the benchmarks.
    pub fn cv(&self) -> f64 {
        if self.mean.abs() > 0.0 {
            self.std / self.mean.abs()
        } else {
            0.0
        }
    }
}

/// Linear-interpolation quantile of sorted data (numpy's default "linear" method).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = pos - lo as f64;
    sorted[lo] * (1.0 - w) + sorted[hi] * w
}

/// Quantile of unsorted data.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    quantile_sorted(&v, q)
}

/// Summaries of every metric that appears in the samples.
pub fn summarize(samples: &[Sample]) -> BTreeMap<String, Summary> {
    let mut by_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in samples {
        for (k, v) in s {
            by_metric.entry(k.as_str()).or_default().push(*v);
        }
    }
    by_metric
        .into_iter()
        .filter_map(|(k, v)| Summary::of(&v).map(|s| (k.to_string(), s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_numpy() {
        // numpy: median 3, mean 4.4, std(ddof=1) sqrt(13.3), percentile 95 -> 9.2
        let s = Summary::of(&[1.0, 2.0, 3.0, 6.0, 10.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert!((s.mean - 4.4).abs() < 1e-12);
        assert!((s.std - 13.3f64.sqrt()).abs() < 1e-12);
        assert!((s.p95 - 9.2).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 10.0));
    }

    #[test]
    fn single_sample_and_nan() {
        let s = Summary::of(&[5.0, f64::NAN]).unwrap();
        assert_eq!((s.n, s.median, s.std, s.p95), (1, 5.0, 0.0, 5.0));
        assert!(Summary::of(&[]).is_none());
    }
}
