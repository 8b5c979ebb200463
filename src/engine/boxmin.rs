//! Bound-constrained minimization by projected L-BFGS, for maximizing the acquisition function
//! over the continuous dimensions (Optuna's optuna/_gp/optim_mixed.py runs scipy's L-BFGS-B for
//! the same purpose).
//!
//! Each iteration: the variables at a bound whose gradient points out of the box are held
//! fixed; the L-BFGS two-loop recursion (Nocedal & Wright 2006, Algorithm 7.4, with the initial
//! scaling gamma = s^T y / y^T y of eq. 7.20) gives the search direction over the free ones; a
//! backtracking line search along the projected path P(x + t d) accepts the first step with
//! sufficient decrease (the Armijo condition on the projected step, as in Bertsekas 1982,
//! "Projected Newton methods for optimization problems with simple constraints"). This is simpler
//! than the generalized Cauchy point of Byrd, Lu, Nocedal and Zhu (1995) but has the same fixed
//! points: it stops when the projected gradient is below `pgtol` (scipy's stopping rule).

/// Result of a minimization.
pub struct BoxMin {
    pub x: Vec<f64>,
    pub f: f64,
    pub iterations: usize,
}

/// Options of `minimize_box`.
#[derive(Clone, Debug)]
pub struct BoxMinOptions {
    pub max_iters: usize,
    /// Stop when max_i |P(x - g) - x|_i falls below this.
    pub pgtol: f64,
    /// Stop when the relative decrease of f in an iteration falls below this.
    pub ftol: f64,
    /// Number of correction pairs kept.
    pub memory: usize,
}

impl Default for BoxMinOptions {
    fn default() -> Self {
        BoxMinOptions {
            max_iters: 200,
            pgtol: 1e-2,
            ftol: 1e-9,
            memory: 10,
        }
    }
}

fn dot_masked(a: &[f64], b: &[f64], free: &[bool]) -> f64 {
    a.iter()
        .zip(b)
        .zip(free)
        .filter(|(_, f)| **f)
        .map(|((x, y), _)| x * y)
        .sum()
}

/// A function returning its value and gradient at a point.
pub type ValueAndGradient<'a> = dyn FnMut(&[f64]) -> (f64, Vec<f64>) + 'a;

/// Minimize `f` (returning value and gradient) over the box lo <= x <= hi from `x0`.
/// A non-finite value is treated as +infinity (the line search backs off from it).
pub fn minimize_box(
    f: &mut ValueAndGradient,
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    opts: &BoxMinOptions,
) -> BoxMin {
    let n = x0.len();
    let project = |x: &mut [f64]| {
        for i in 0..n {
            x[i] = x[i].clamp(lo[i], hi[i]);
        }
    };
    let mut x = x0.to_vec();
    project(&mut x);
    let (mut fx, mut g) = f(&x);
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return BoxMin {
            x,
            f: fx,
            iterations: 0,
        };
    }
    let mut pairs: std::collections::VecDeque<(Vec<f64>, Vec<f64>)> = Default::default();
    let mut iterations = 0;
    while iterations < opts.max_iters {
        // Projected gradient: stationarity on the box.
        let pg = (0..n)
            .map(|i| ((x[i] - g[i]).clamp(lo[i], hi[i]) - x[i]).abs())
            .fold(0.0f64, f64::max);
        if pg <= opts.pgtol {
            break;
        }
        let free: Vec<bool> = (0..n)
            .map(|i| !((x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0)))
            .collect();
        // Two-loop recursion over the free variables.
        let mut q: Vec<f64> = (0..n).map(|i| if free[i] { g[i] } else { 0.0 }).collect();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, y) in pairs.iter().rev() {
            let sy = dot_masked(s, y, &free);
            if sy <= 1e-12 {
                alphas.push(0.0);
                continue;
            }
            let a = dot_masked(s, &q, &free) / sy;
            for i in 0..n {
                if free[i] {
                    q[i] -= a * y[i];
                }
            }
            alphas.push(a);
        }
        if let Some((s, y)) = pairs.back() {
            let (sy, yy) = (dot_masked(s, y, &free), dot_masked(y, y, &free));
            if sy > 1e-12 && yy > 0.0 {
                q.iter_mut().for_each(|v| *v *= sy / yy);
            }
        }
        for ((s, y), a) in pairs.iter().zip(alphas.iter().rev()) {
            let sy = dot_masked(s, y, &free);
            if sy <= 1e-12 {
                continue;
            }
            let b = dot_masked(y, &q, &free) / sy;
            for i in 0..n {
                if free[i] {
                    q[i] += (a - b) * s[i];
                }
            }
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        if dot_masked(&d, &g, &free) >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            pairs.clear();
            d = (0..n).map(|i| if free[i] { -g[i] } else { 0.0 }).collect();
        }
        // First step without curvature information: unit length (scipy's L-BFGS-B does the same).
        let mut t = if pairs.is_empty() {
            let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                (1.0 / norm).min(1.0)
            } else {
                break;
            }
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..30 {
            let mut xt: Vec<f64> = (0..n).map(|i| x[i] + t * d[i]).collect();
            project(&mut xt);
            let step: f64 = (0..n).map(|i| g[i] * (xt[i] - x[i])).sum();
            if step >= 0.0 {
                t *= 0.5;
                continue;
            }
            let (ft, gt) = f(&xt);
            if ft.is_finite() && gt.iter().all(|v| v.is_finite()) && ft <= fx + 1e-4 * step {
                accepted = Some((xt, ft, gt));
                break;
            }
            t *= 0.5;
        }
        iterations += 1;
        let Some((xn, fnew, gn)) = accepted else {
            if pairs.is_empty() {
                break;
            }
            pairs.clear();
            continue;
        };
        let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        let yy: f64 = y.iter().map(|v| v * v).sum();
        if sy > 1e-10 * yy.max(1e-300) {
            pairs.push_back((s, y));
            if pairs.len() > opts.memory {
                pairs.pop_front();
            }
        }
        let decrease = fx - fnew;
        x = xn;
        fx = fnew;
        g = gn;
        if decrease <= opts.ftol * fx.abs().max(1.0) {
            break;
        }
    }
    BoxMin {
        x,
        f: fx,
        iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64]) -> (f64, Vec<f64>) {
        let mut f = 0.0;
        let mut g = vec![0.0; x.len()];
        for i in 0..x.len() - 1 {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            f += 100.0 * a * a + b * b;
            g[i] += -400.0 * x[i] * a - 2.0 * b;
            g[i + 1] += 200.0 * a;
        }
        (f, g)
    }

    #[test]
    fn finds_the_unconstrained_minimum_inside_the_box() {
        let opts = BoxMinOptions {
            max_iters: 500,
            pgtol: 1e-8,
            ftol: 0.0,
            memory: 10,
        };
        let r = minimize_box(
            &mut rosenbrock,
            &[-1.2, 1.0, 0.5, -0.3],
            &[-2.0; 4],
            &[2.0; 4],
            &opts,
        );
        for v in &r.x {
            assert!((v - 1.0).abs() < 1e-4, "{:?}", r.x);
        }
    }

    #[test]
    fn stops_on_the_active_bound() {
        // Minimum of sum (x_i - c_i)^2 over [0, 1]^3 with c = (-0.5, 0.3, 2): x = (0, 0.3, 1).
        let c = [-0.5, 0.3, 2.0];
        let mut f = |x: &[f64]| -> (f64, Vec<f64>) {
            let v = x.iter().zip(&c).map(|(a, b)| (a - b) * (a - b)).sum();
            (v, x.iter().zip(&c).map(|(a, b)| 2.0 * (a - b)).collect())
        };
        let r = minimize_box(
            &mut f,
            &[0.9, 0.9, 0.1],
            &[0.0; 3],
            &[1.0; 3],
            &BoxMinOptions::default(),
        );
        let want = [0.0, 0.3, 1.0];
        for (a, b) in r.x.iter().zip(want) {
            assert!((a - b).abs() < 1e-3, "{:?}", r.x);
        }
    }
}
