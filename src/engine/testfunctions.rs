//! Standard optimization test functions for the engine benchmark (docs/engine.md, "Benchmark
//! functions"). Definitions follow Surjanovic & Bingham's Virtual Library of Simulation Experiments;
//! scripts/bench_optuna.py carries the identical definitions for the Optuna side.

use crate::engine::space::{Config, Param, ParamKind, SearchSpace};

/// A benchmark problem: search space, function (minimized) and known optimum.
pub struct Problem {
    pub name: &'static str,
    pub space: SearchSpace,
    pub optimum: f64,
    /// Standard deviation of Gaussian observation noise (0 = deterministic).
    pub noise: f64,
    pub f: fn(&[f64]) -> f64,
}

fn float(name: &str, low: f64, high: f64) -> Param {
    Param {
        name: name.into(),
        kind: ParamKind::Float {
            low,
            high,
            log: false,
            step: None,
        },
        default: None,
        role: Default::default(),
        prefer: None,
        memory: Default::default(),
    }
}

fn int(name: &str, low: i64, high: i64) -> Param {
    Param {
        name: name.into(),
        kind: ParamKind::Int {
            low,
            high,
            log: false,
            step: 1,
        },
        default: None,
        role: Default::default(),
        prefer: None,
        memory: Default::default(),
    }
}

/// Branin-Hoo on [-5, 10] x [0, 15]; f* = 0.397887.
pub fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    let t = 1.0 / (8.0 * pi);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const H6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H6_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];

/// Hartmann 6-D on [0, 1]^6; f* = -3.32237.
pub fn hartmann6(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..4 {
        let mut inner = 0.0;
        for j in 0..6 {
            inner += H6_A[i][j] * (x[j] - 1e-4 * H6_P[i][j]).powi(2);
        }
        s += H6_ALPHA[i] * (-inner).exp();
    }
    -s
}

/// Ackley in any dimension; f* = 0 at the origin.
pub fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let sq = x.iter().map(|v| v * v).sum::<f64>() / d;
    let cs = x
        .iter()
        .map(|v| (2.0 * std::f64::consts::PI * v).cos())
        .sum::<f64>()
        / d;
    -20.0 * (-0.2 * sq.sqrt()).exp() - cs.exp() + 20.0 + std::f64::consts::E
}

/// The benchmark suite of issue 2.
pub fn suite() -> Vec<Problem> {
    let h6 = || SearchSpace {
        params: (1..=6).map(|i| float(&format!("x{i}"), 0.0, 1.0)).collect(),
    };
    vec![
        Problem {
            name: "branin",
            space: SearchSpace {
                params: vec![float("x1", -5.0, 10.0), float("x2", 0.0, 15.0)],
            },
            optimum: 0.397_887,
            noise: 0.0,
            f: branin,
        },
        Problem {
            name: "hartmann6",
            space: h6(),
            optimum: -3.322_37,
            noise: 0.0,
            f: hartmann6,
        },
        Problem {
            name: "ackley5_mixed",
            // Three integer and two continuous dimensions on [-5, 10]: the optimum (origin) is
            // off-centre, so a sampler biased to the middle of the box gains nothing.
            space: SearchSpace {
                params: vec![
                    int("x1", -5, 10),
                    int("x2", -5, 10),
                    int("x3", -5, 10),
                    float("x4", -5.0, 10.0),
                    float("x5", -5.0, 10.0),
                ],
            },
            optimum: 0.0,
            noise: 0.0,
            f: ackley,
        },
        Problem {
            name: "hartmann6_noisy",
            space: h6(),
            optimum: -3.322_37,
            noise: 0.1,
            f: hartmann6,
        },
    ]
}

impl Problem {
    /// The function at a configuration, in parameter order.
    pub fn eval(&self, config: &Config) -> f64 {
        let x: Vec<f64> = self
            .space
            .params
            .iter()
            .map(|p| config[&p.name].as_f64().unwrap_or(f64::NAN))
            .collect();
        (self.f)(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_optima() {
        let pi = std::f64::consts::PI;
        for (x1, x2) in [(-pi, 12.275), (pi, 2.275), (9.42478, 2.475)] {
            assert!((branin(&[x1, x2]) - 0.397_887).abs() < 1e-5);
        }
        let xs = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((hartmann6(&xs) + 3.322_37).abs() < 1e-4);
        assert!(ackley(&[0.0; 5]).abs() < 1e-12);
    }
}
