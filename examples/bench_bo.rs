//! Engine benchmark: simple regret of this engine and random search on the standard functions,
//! and the time per `ask` at 50, 200 and 500 observations. Writes JSON lines that
//! scripts/bench_summary.py combines with Optuna's (scripts/bench_optuna.py).
//!
//! cargo run --release --example bench_bo -- --seeds 20 --evals 50 --out bench-out/engine.jsonl

use ollama_tuner::engine::optimizer::{gaussian, AskContext, Optimizer, Outcome, Strategy};
use ollama_tuner::engine::space::Config;
use ollama_tuner::engine::testfunctions::{suite, Problem};
use ollama_tuner::study::{
    is_positive_metric, Direction, MetricRef, Objective, OptimizerSettings, Transform,
};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// A successful measurement of `value` (the benchmark functions have no constraints or reloads).
fn ok(value: f64) -> Outcome {
    Outcome::Ok {
        value,
        constraint_values: vec![],
        duration_s: 1.0,
        reload_s: None,
    }
}

fn objective() -> Objective {
    Objective {
        metric: MetricRef::parse("value"),
        direction: Direction::Minimize,
        constraints: vec![],
        transform: Transform::None,
    }
}

/// What one optimization run measured.
struct Trace {
    /// True (noise-free) value of each evaluated point, in order.
    truth: Vec<f64>,
    /// The value the optimizer was told (truth plus the problem's noise).
    observed: Vec<f64>,
    /// Seconds spent in each `ask`.
    ask_seconds: Vec<f64>,
    /// (evaluations so far, true value of `Optimizer::recommend()`) at each of `marks`: what the
    /// tuner hands its user, which on a noisy function is not the best noisy sample.
    recommended: Vec<(usize, f64)>,
}

/// One optimization run.
fn run(problem: &Problem, strategy: &str, seed: u64, evals: usize, marks: &[usize]) -> Trace {
    let settings = OptimizerSettings {
        strategy: Strategy::parse(strategy).expect("gp or random"),
        initial_trials: arg("--init", "0").parse().expect("--init N"),
        ..OptimizerSettings::default()
    };
    let mut opt = Optimizer::new(
        problem.space.clone(),
        objective(),
        is_positive_metric,
        settings,
        vec![],
        seed,
    );
    let mut noise_rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xBEEF);
    let (mut truth, mut observed, mut times) = (vec![], vec![], vec![]);
    let mut recommended = vec![];
    for k in 1..=evals {
        let t0 = Instant::now();
        let trial = opt.ask(&AskContext::default());
        times.push(t0.elapsed().as_secs_f64());
        let f = problem.eval(&trial.config);
        if std::env::var_os("OT_TRACE").is_some() {
            let xs: Vec<String> = trial.config.values().map(|v| format!("{v}")).collect();
            eprintln!("{:?} f={f:.4} {}", trial.origin, xs.join(" "));
        }
        let y = f + problem.noise * gaussian(&mut noise_rng);
        truth.push(f);
        observed.push(y);
        opt.tell(&trial, ok(y));
        if marks.contains(&k) {
            if let Some(best) = opt.recommend() {
                recommended.push((k, problem.eval(&best)));
            }
        }
    }
    Trace {
        truth,
        observed,
        ask_seconds: times,
        recommended,
    }
}

/// Median time of `ask` after `n` random observations (cold = first ask, warm = later ones).
fn ask_time(problem: &Problem, n: usize) -> (f64, f64) {
    let mut opt = Optimizer::new(
        problem.space.clone(),
        objective(),
        is_positive_metric,
        OptimizerSettings::default(),
        vec![],
        99,
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for _ in 0..n {
        let u: Vec<f64> = (0..problem.space.dims())
            .map(|_| rng.random::<f64>())
            .collect();
        let config: Config = problem.space.decode(&u);
        let y = problem.eval(&config);
        let t = ollama_tuner::trial::Trial {
            number: 0,
            config,
            origin: ollama_tuner::trial::Origin::Random,
            acquisition: None,
        };
        opt.tell(&t, ok(y));
    }
    let mut times = vec![];
    for _ in 0..4 {
        let t0 = Instant::now();
        let trial = opt.ask(&AskContext::default());
        times.push(t0.elapsed().as_secs_f64());
        let y = problem.eval(&trial.config);
        opt.tell(&trial, ok(y));
    }
    let cold = times[0];
    let mut warm = times[1..].to_vec();
    warm.sort_by(|a, b| a.total_cmp(b));
    (cold, warm[warm.len() / 2])
}

fn main() {
    let seeds: u64 = arg("--seeds", "20").parse().expect("--seeds N");
    let evals: usize = arg("--evals", "50").parse().expect("--evals N");
    // Seeds first..first+seeds-1: a later range checks a change on seeds it was not tuned on.
    let first: u64 = arg("--first-seed", "0").parse().expect("--first-seed N");
    let out = arg("--out", "bench-out/engine.jsonl");
    let only = arg("--only", "");
    let timing = arg("--timing", "50,200,500");
    let marks: Vec<usize> = arg("--marks", "25,50")
        .split(',')
        .filter_map(|m| m.parse().ok())
        .collect();
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).expect("create output folder");
    }
    let mut file = std::fs::File::create(&out).expect("create output file");
    for problem in suite() {
        if !only.is_empty() && !only.split(',').any(|o| o == problem.name) {
            continue;
        }
        for strategy in ["gp", "random"] {
            let t0 = Instant::now();
            for seed in first..first + seeds {
                let trace = run(&problem, strategy, seed, evals, &marks);
                let method = if strategy == "gp" {
                    "ollama-tuner"
                } else {
                    "random"
                };
                let line = serde_json::json!({
                    "method": method, "problem": problem.name, "seed": seed,
                    "optimum": problem.optimum, "truth": trace.truth, "observed": trace.observed,
                    "ask_seconds": trace.ask_seconds,
                    "recommended": trace.recommended.iter().map(|(k, v)| serde_json::json!({"evals": k, "truth": v})).collect::<Vec<_>>(),
                });
                writeln!(file, "{line}").expect("write");
            }
            eprintln!(
                "{:<16} {:<13} {seeds} seeds in {:.1} s",
                problem.name,
                strategy,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    if !timing.is_empty() {
        let h6 = suite()
            .into_iter()
            .find(|p| p.name == "hartmann6")
            .expect("hartmann6");
        for n in timing.split(',').filter_map(|s| s.parse::<usize>().ok()) {
            let (cold, warm) = ask_time(&h6, n);
            eprintln!(
                "ask at {n} observations: cold {:.1} ms, warm {:.1} ms",
                cold * 1e3,
                warm * 1e3
            );
            let line = serde_json::json!({"timing": true, "method": "ollama-tuner", "observations": n, "cold_s": cold, "warm_s": warm});
            writeln!(file, "{line}").expect("write");
        }
    }
}
