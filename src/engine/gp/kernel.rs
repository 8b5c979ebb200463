//! The kernel of the Gaussian process: ARD Matern 5/2 over encoded inputs (Hamming distance on
//! categorical dimensions), its hyperparameters, precomputed distances and a jittered Cholesky.
//! The model is described in gp/mod.rs.

use faer::{Mat, Side};

pub(super) const SQRT5: f64 = 2.236_067_977_499_79;
/// Smallest noise variance (standardized units); Optuna uses 1e-6 as well.
pub const NOISE_FLOOR: f64 = 1e-6;

/// Matern 5/2 correlation at distance r.
#[inline]
pub fn matern52(r: f64) -> f64 {
    (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * (-SQRT5 * r).exp()
}

/// d m / d ln(l_i) divided by (D_i / l_i^2): (5/3)(1 + sqrt5 r) exp(-sqrt5 r). The 1/r of the
/// chain rule cancels, so this is finite at r = 0.
#[inline]
pub(super) fn matern52_lengthscale_factor(r: f64) -> f64 {
    5.0 / 3.0 * (1.0 + SQRT5 * r) * (-SQRT5 * r).exp()
}

/// Kernel hyperparameters in natural units.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hyperparameters {
    pub lengthscales: Vec<f64>,
    pub signal_variance: f64,
    pub noise_variance: f64,
}

impl Hyperparameters {
    pub fn to_theta(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self.lengthscales.iter().map(|l| l.ln()).collect();
        t.push(self.signal_variance.ln());
        t.push((self.noise_variance - NOISE_FLOOR).max(1e-12).ln());
        t
    }

    pub fn from_theta(theta: &[f64]) -> Hyperparameters {
        let d = theta.len() - 2;
        Hyperparameters {
            lengthscales: theta[..d].iter().map(|t| t.exp()).collect(),
            signal_variance: theta[d].exp(),
            noise_variance: NOISE_FLOOR + theta[d + 1].exp(),
        }
    }
}

/// Training inputs with the per-dimension squared distances precomputed once per fit.
pub(super) struct Distances {
    pub(super) n: usize,
    pub(super) d: usize,
    /// dist[i][j * n + k] = D_i(x_j, x_k)
    pub(super) dist: Vec<Vec<f64>>,
}

impl Distances {
    pub(super) fn new(x: &[Vec<f64>], categorical: &[bool]) -> Distances {
        let n = x.len();
        let d = categorical.len();
        let mut dist = vec![vec![0.0; n * n]; d];
        for (i, di) in dist.iter_mut().enumerate() {
            for j in 0..n {
                for k in 0..j {
                    let v = pair_distance(x[j][i], x[k][i], categorical[i]);
                    di[j * n + k] = v;
                    di[k * n + j] = v;
                }
            }
        }
        Distances { n, d, dist }
    }

    /// Scaled distance r for every pair, given inverse squared lengthscales.
    pub(super) fn radii(&self, inv_l2: &[f64]) -> Vec<f64> {
        let mut r2 = vec![0.0; self.n * self.n];
        for (i, di) in self.dist.iter().enumerate() {
            let w = inv_l2[i];
            for (acc, v) in r2.iter_mut().zip(di) {
                *acc += w * v;
            }
        }
        r2.iter_mut().for_each(|v| *v = v.sqrt());
        r2
    }
}

#[inline]
pub(super) fn pair_distance(a: f64, b: f64, categorical: bool) -> f64 {
    if categorical {
        if (a - b).abs() > 0.5 {
            1.0
        } else {
            0.0
        }
    } else {
        (a - b) * (a - b)
    }
}

/// Cholesky of a symmetric matrix, adding growing jitter to the diagonal when it is not
/// numerically positive definite (Vizier retries with jitter up to 5 times; docs/engine.md).
pub(super) fn robust_cholesky(k: &Mat<f64>) -> Option<(faer::linalg::solvers::Llt<f64>, f64)> {
    let n = k.nrows();
    let mut jitter = 0.0;
    for attempt in 0..6 {
        let mut kj = k.clone();
        if jitter > 0.0 {
            for i in 0..n {
                kj[(i, i)] += jitter;
            }
        }
        if let Ok(llt) = kj.llt(Side::Lower) {
            return Some((llt, jitter));
        }
        jitter = 1e-8 * 10f64.powi(attempt);
    }
    None
}

/// Kernel value between two encoded points.
pub fn kernel(a: &[f64], b: &[f64], categorical: &[bool], h: &Hyperparameters) -> f64 {
    let mut r2 = 0.0;
    for i in 0..a.len() {
        r2 += pair_distance(a[i], b[i], categorical[i]) / (h.lengthscales[i] * h.lengthscales[i]);
    }
    h.signal_variance * matern52(r2.sqrt())
}

/// (y - mean) / std, with std = 1 when the data are constant.
///
/// Values near the ends of the f64 range (a program that prints 1e308) overflow the plain sums:
/// their mean or squared spread becomes infinite. They are then standardized on `y / max|y|`,
/// where nothing overflows, so that every standardized value is finite (and at most a few in
/// size) for any finite input; mean and std stay finite too. Left unstandardized, values of
/// 1e308 made the likelihood NaN and the hyperparameter fit's line search never ended.
pub fn standardize(y: &[f64]) -> (Vec<f64>, f64, f64) {
    let n = y.len().max(1) as f64;
    let mean = y.iter().sum::<f64>() / n;
    let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    if !(mean.is_finite() && var.is_finite()) {
        return standardize_scaled(y);
    }
    let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
    (y.iter().map(|v| (v - mean) / std).collect(), mean, std)
}

/// `standardize` on `y / s`, `s` the largest finite |y|: the scaled values lie in [-1, 1], so
/// their mean, spread and the standardized values are finite, and mean * s, spread * s too.
fn standardize_scaled(y: &[f64]) -> (Vec<f64>, f64, f64) {
    let n = y.len().max(1) as f64;
    let s = y
        .iter()
        .map(|v| v.abs())
        .filter(|a| a.is_finite())
        .fold(0.0, f64::max);
    let s = if s > 0.0 { s } else { 1.0 };
    let u: Vec<f64> = y.iter().map(|v| v / s).collect();
    let m = u.iter().sum::<f64>() / n;
    let sd = (u.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n).sqrt();
    if sd * s > 1e-12 {
        (u.iter().map(|a| (a - m) / sd).collect(), m * s, sd * s)
    } else {
        (u.iter().map(|a| (a - m) * s).collect(), m * s, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_at_the_ends_of_the_f64_range_standardize_to_finite_values() {
        for y in [
            vec![1e308, -1e308],
            vec![1e308, 1e308, 1.7e308],
            vec![-1.7e308, 0.0, 1.0, 1.7e308],
            vec![f64::MAX, f64::MIN, 3.0],
        ] {
            let (z, mean, std) = standardize(&y);
            assert!(mean.is_finite() && std.is_finite() && std > 0.0, "{y:?}");
            assert!(
                z.iter().all(|v| v.is_finite() && v.abs() <= 4.0),
                "{y:?}: {z:?}"
            );
            // Order is kept, and the values come back.
            for (a, b) in y.iter().zip(&z) {
                let back = mean + std * b;
                if back.is_finite() {
                    assert!((back - a).abs() <= 1e-9 * a.abs().max(1.0), "{a} -> {back}");
                }
            }
        }
        // Ordinary values take the plain path, unchanged.
        let (z, mean, std) = standardize(&[1.0, 2.0, 3.0]);
        assert_eq!((mean, std), (2.0, (2.0f64 / 3.0).sqrt()));
        assert_eq!(z[1], 0.0);
        let (z, _, std) = standardize(&[1e308, 1e308]);
        assert_eq!((std, z.clone()), (1.0, vec![0.0, 0.0]), "{z:?}");
    }
}
