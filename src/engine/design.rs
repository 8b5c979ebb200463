//! Initial design: scrambled Sobol points, sized to the dimension of the space.
//!
//! Owen-scrambled Sobol sequences (Burley 2020, via the sobol_burley crate) fill the unit cube
//! more evenly than independent random points, which matters with a handful of trials.

use crate::engine::space::SearchSpace;

/// Number of quasi-random trials before the GP proposes: Optuna's 10 startup trials, growing
/// as d + 1 past nine dimensions. Fewer (max(5, d + 1)) left multimodal functions such as
/// Ackley stuck in the first basin found (BENCHMARKS.md).
pub fn initial_design_size(dims: usize) -> usize {
    (dims + 1).max(10)
}

/// The `index`-th point of the scrambled Sobol sequence for `seed`, in unit coordinates.
pub fn sobol_point(index: u32, dims: usize, seed: u32) -> Vec<f64> {
    (0..dims)
        .map(|d| {
            // sobol_burley supports 256 dimensions per seed; wrap around with a derived seed.
            let dim = (d % 256) as u32;
            let s = seed.wrapping_add((d / 256) as u32 * 0x9E37_79B9);
            f64::from(sobol_burley::sample(index, dim, s))
        })
        .collect()
}

/// Map unit-cube coordinates to the encoded space: numeric dimensions are already in [0, 1];
/// a categorical dimension with k choices takes the index floor(u k).
pub fn unit_to_encoded(space: &SearchSpace, u: &[f64]) -> Vec<f64> {
    space
        .params
        .iter()
        .zip(u)
        .map(|(p, &v)| {
            if p.is_categorical() {
                let k = p.encoded_upper() + 1.0;
                (v * k).floor().min(k - 1.0)
            } else {
                v.clamp(0.0, 1.0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sobol_points_stratify_each_axis() {
        // The first 8 points of a (scrambled) Sobol sequence hit each eighth of every axis once.
        for d in 0..4 {
            let mut bins = [0; 8];
            for i in 0..8 {
                let p = sobol_point(i, 4, 17);
                bins[(p[d] * 8.0) as usize] += 1;
            }
            assert_eq!(bins, [1; 8], "dim {d}");
        }
    }

    #[test]
    fn deterministic_per_seed() {
        assert_eq!(sobol_point(3, 5, 1), sobol_point(3, 5, 1));
        assert_ne!(sobol_point(3, 5, 1), sobol_point(3, 5, 2));
    }
}
