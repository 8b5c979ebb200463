//! Measurement noise: the per-request multipliers the server draws from its seeded generator.
//! The number and order of draws is part of the simulator's behaviour (benchmarks replay it).
//!
//! # Noise (`draw_jitter`)
//! Multiplicative lognormal with median 1: CV 2.5 % on decode time, 6 % on prefill, 8 % on
//! load; 1 % of requests are outliers (decode 1.2-1.6x slower, prefill 1.5-3x slower, as when a
//! background process wakes up).

use rand::Rng;

/// Per-request time multipliers (1 = the expected value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub decode: f64,
    pub prefill: f64,
    pub load: f64,
}

impl Jitter {
    pub const NONE: Jitter = Jitter {
        decode: 1.0,
        prefill: 1.0,
        load: 1.0,
    };
}

pub const DECODE_CV: f64 = 0.025;
pub const PREFILL_CV: f64 = 0.06;
pub const LOAD_CV: f64 = 0.08;
pub const OUTLIER_P: f64 = 0.01;

/// Draw one request's noise: lognormal (median 1) with the CVs above, plus rare outliers.
pub fn draw_jitter<R: Rng + ?Sized>(rng: &mut R) -> Jitter {
    let mut j = Jitter {
        decode: lognormal(rng, DECODE_CV),
        prefill: lognormal(rng, PREFILL_CV),
        load: lognormal(rng, LOAD_CV),
    };
    if rng.random::<f64>() < OUTLIER_P {
        j.decode *= 1.2 + 0.4 * rng.random::<f64>();
        j.prefill *= 1.5 + 1.5 * rng.random::<f64>();
    }
    j
}

fn lognormal<R: Rng + ?Sized>(rng: &mut R, cv: f64) -> f64 {
    let sigma = (1.0 + cv * cv).ln().sqrt();
    (sigma * standard_normal(rng)).exp()
}

/// Box-Muller; `1 - u` keeps the logarithm finite.
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
