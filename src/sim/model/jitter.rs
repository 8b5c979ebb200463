//! Measurement noise: the per-request multipliers the server draws from its seeded generator.
//! The number and order of draws is part of the simulator's behaviour (benchmarks replay it).
//!
//! # Noise (`draw_jitter`)
//! Multiplicative lognormal with median 1: CV 2.5 % on decode time, 6 % on prefill, 8 % on
//! load; 1 % of requests are outliers (decode 1.2-1.6x slower, prefill 1.5-3x slower, as when a
//! background process wakes up).
//!
//! # Drift (`Drift`, off by default)
//! A slow multiplicative change of every request's time over the simulator's virtual clock (the
//! simulated seconds it has served, `SimControl::clock_s`), as thermal throttling or a
//! background load would cause: `Drift::factor(t)` multiplies decode and prefill time. It draws
//! nothing from the generator, so a run with drift sees the same noise as one without.

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

/// How a drift evolves over virtual time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DriftShape {
    /// `1 + amplitude * min(t / period_s, 1)`: heating up over `period_s`, then steady (thermal
    /// throttling; a negative amplitude is a machine that gets faster).
    Ramp,
    /// `1 + amplitude * sin(2 pi t / period_s)`: a periodic background load.
    Sine,
}

/// A slow multiplicative drift of request times (decode and prefill), off unless set on the
/// profile or through `SimControl::set_drift`. `amplitude` 0.05 is +5 % time at the peak
/// (about -4.8 % tok/s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drift {
    pub shape: DriftShape,
    pub amplitude: f64,
    /// Simulated seconds: the ramp's length or the sine's period.
    pub period_s: f64,
}

impl Drift {
    /// The time multiplier at `t` simulated seconds of the virtual clock (1 at t = 0). Never
    /// below 0.1, so a wild amplitude cannot make time negative.
    pub fn factor(&self, t: f64) -> f64 {
        let x = if self.period_s > 0.0 && t.is_finite() {
            t.max(0.0) / self.period_s
        } else {
            0.0
        };
        let f = match self.shape {
            DriftShape::Ramp => 1.0 + self.amplitude * x.min(1.0),
            DriftShape::Sine => 1.0 + self.amplitude * (std::f64::consts::TAU * x).sin(),
        };
        if f.is_finite() {
            f.max(0.1)
        } else {
            1.0
        }
    }
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

impl Jitter {
    /// This request's noise under `drift` at virtual time `t` (decode and prefill slow down
    /// alike; loads are not affected).
    pub fn drifted(self, drift: Option<&Drift>, t: f64) -> Jitter {
        let Some(d) = drift else {
            return self;
        };
        let f = d.factor(t);
        Jitter {
            decode: self.decode * f,
            prefill: self.prefill * f,
            load: self.load,
        }
    }
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
