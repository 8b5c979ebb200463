//! Acquisition: numerically stable log expected improvement, feasibility and constraint terms.
//!
//! log EI follows Ament, Daulton, Eriksson, Balandat, Bakshy (2023), "Unexpected Improvements to
//! Expected Improvement for Bayesian Optimization" (NeurIPS), eq. 9, the `_log_ei_helper` of
//! BoTorch's botorch/acquisition/analytic.py: log h(z) = log(phi(z) + z Phi(z)) evaluated
//! directly for z > -1 and through the scaled complementary error function below, where the
//! direct form underflows to -inf and would leave the optimizer with a flat landscape.

const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8; // ln(sqrt(2 pi))
const LOG_SQRT_PI_OVER_2: f64 = 0.225_791_352_644_727_4; // ln(sqrt(pi / 2))
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// Scaled complementary error function erfcx(x) = exp(x^2) erfc(x), for x >= 0.
pub fn erfcx(x: f64) -> f64 {
    if x < 25.0 {
        (x * x).exp() * libm::erfc(x)
    } else {
        // Asymptotic series (Abramowitz & Stegun 7.1.23), accurate to ~1e-12 here.
        let x2 = x * x;
        let inv = 1.0 / (2.0 * x2);
        (1.0 - inv + 3.0 * inv * inv - 15.0 * inv * inv * inv) / (x * std::f64::consts::PI.sqrt())
    }
}

/// Standard normal density.
pub fn norm_pdf(z: f64) -> f64 {
    (-0.5 * z * z - LOG_SQRT_2PI).exp()
}

/// Standard normal distribution function.
pub fn norm_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// ln Phi(z), accurate far into the lower tail.
pub fn log_norm_cdf(z: f64) -> f64 {
    if z > -5.0 {
        norm_cdf(z).ln()
    } else {
        // Phi(z) = erfc(-z/sqrt2)/2 = erfcx(-z/sqrt2) exp(-z^2/2) / 2
        (erfcx(-z * FRAC_1_SQRT_2) / 2.0).ln() - 0.5 * z * z
    }
}

/// ln(phi(z) + z Phi(z)), the log of EI with unit scale at standardized improvement z.
pub fn log_h(z: f64) -> f64 {
    if z > -1.0 {
        (norm_pdf(z) + z * norm_cdf(z)).ln()
    } else {
        // phi(z) + z Phi(z) = phi(z) (1 - |z| Phi(z)/phi(z)) and
        // |z| Phi(z)/phi(z) = |z| erfcx(-z/sqrt2) sqrt(pi/2)  (Ament et al., eq. 9)
        let log_phi = -0.5 * z * z - LOG_SQRT_2PI;
        if z > -1e8 {
            let w = (erfcx(-z * FRAC_1_SQRT_2) * z.abs()).ln() + LOG_SQRT_PI_OVER_2;
            log_phi + log1mexp(w)
        } else {
            // Beyond that, 1 - w -> 1/z^2.
            log_phi - 2.0 * z.abs().ln()
        }
    }
}

/// ln(1 - exp(x)) for x < 0, stable on both sides of -ln 2 (Maechler 2012).
pub fn log1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// log EI for maximization: mean and standard deviation of the posterior, incumbent `best`.
pub fn log_expected_improvement(mean: f64, std: f64, best: f64) -> f64 {
    let std = std.max(1e-12);
    log_h((mean - best) / std) + std.ln()
}

/// d ln Phi(u) / du = phi(u) / Phi(u), evaluated in log space so that it stays finite (about
/// -u) deep in the lower tail.
pub fn log_norm_cdf_grad(u: f64) -> f64 {
    (-0.5 * u * u - LOG_SQRT_2PI - log_norm_cdf(u)).exp()
}

/// log EI with its partial derivatives with respect to the posterior mean and variance.
///
/// With s = sqrt(var), z = (mean - best) / s and log EI = log h(z) + ln s: since
/// h'(z) = Phi(z) (differentiate phi(z) + z Phi(z), using phi'(z) = -z phi(z)),
///   d/d mean = r / s,   d/d var = (1 - r z) / (2 s^2),   r = Phi(z) / h(z) = exp(ln Phi(z) - log h(z)).
pub fn log_ei_with_grad(mean: f64, var: f64, best: f64) -> (f64, f64, f64) {
    let std = var.max(1e-24).sqrt().max(1e-12);
    let z = (mean - best) / std;
    let lh = log_h(z);
    let r = (log_norm_cdf(z) - lh).exp();
    let d_mean = r / std;
    let d_var = if var > 1e-24 {
        (1.0 - r * z) / (2.0 * std * std)
    } else {
        0.0
    };
    (lh + std.ln(), d_mean, d_var)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct EI in plain arithmetic, good where it does not underflow.
    fn ei(z: f64) -> f64 {
        norm_pdf(z) + z * norm_cdf(z)
    }

    #[test]
    fn log_h_matches_direct_form_where_that_is_accurate() {
        for z in [-8.0, -5.0, -3.0, -1.5, -1.0, -0.5, 0.0, 0.7, 2.0, 5.0] {
            let a = log_h(z);
            let b = ei(z).ln();
            assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "z={z} {a} vs {b}");
        }
    }

    #[test]
    fn log_h_is_finite_and_monotone_in_the_far_tail() {
        let mut prev = f64::NEG_INFINITY;
        for i in 0..400 {
            let z = -200.0 + i as f64 * 0.5;
            let v = log_h(z);
            assert!(v.is_finite(), "z={z}");
            assert!(v > prev, "not increasing at z={z}");
            prev = v;
        }
        // Asymptote ln(phi(z)/z^2) for very negative z.
        let z = -60.0f64;
        let asym = -0.5 * z * z - LOG_SQRT_2PI - 2.0 * z.abs().ln();
        assert!((log_h(z) - asym).abs() < 1e-3);
    }

    #[test]
    fn log_norm_cdf_tail() {
        // scipy.special.log_ndtr(-10) = -53.23128515051247
        assert!((log_norm_cdf(-10.0) + 53.231_285_150_512_47).abs() < 1e-9);
        assert!((log_norm_cdf(0.0) - 0.5f64.ln()).abs() < 1e-15);
        // scipy.special.erfcx(30) = 0.018795888861416751
        assert!((erfcx(30.0) - 0.018_795_888_861_416_75).abs() < 1e-12);
    }

    #[test]
    fn log_ei_gradient_matches_central_differences() {
        for (m, v, best) in [
            (0.3, 0.2, 0.1),
            (-1.0, 0.04, 1.5),
            (-3.0, 1e-3, 2.0),
            (2.0, 0.5, 0.0),
            (-40.0, 0.3, 0.0),
        ] {
            let (f, dm, dv) = log_ei_with_grad(m, v, best);
            assert!((f - log_expected_improvement(m, v.sqrt(), best)).abs() < 1e-12);
            let h = 1e-6 * (1.0 + m.abs());
            let fd_m = (log_ei_with_grad(m + h, v, best).0 - log_ei_with_grad(m - h, v, best).0)
                / (2.0 * h);
            let hv = 1e-6 * v;
            let fd_v = (log_ei_with_grad(m, v + hv, best).0 - log_ei_with_grad(m, v - hv, best).0)
                / (2.0 * hv);
            assert!(
                (fd_m - dm).abs() < 1e-5 * (1.0 + dm.abs()),
                "mean: {fd_m} vs {dm}"
            );
            assert!(
                (fd_v - dv).abs() < 1e-5 * (1.0 + dv.abs()),
                "var: {fd_v} vs {dv}"
            );
        }
        for u in [-30.0, -6.0, -2.0, 0.0, 3.0] {
            let h = 1e-6;
            let fd = (log_norm_cdf(u + h) - log_norm_cdf(u - h)) / (2.0 * h);
            let g = log_norm_cdf_grad(u);
            assert!(
                (fd - g).abs() < 1e-5 * (1.0 + g.abs()),
                "u={u}: {fd} vs {g}"
            );
        }
    }

    #[test]
    fn log_ei_scales_with_std() {
        let a = log_expected_improvement(1.0, 1.0, 0.0);
        let b = log_expected_improvement(2.0, 2.0, 0.0);
        assert!((b - a - 2f64.ln()).abs() < 1e-12);
    }
}
