//! Issue 12, item 9: the seed process, honestly. The 36-point grid of the seed reports (TR108:
//! num_gpu 999/80/60/40 x num_ctx 1024/2048/4096 x temperature 0.2/0.4/0.8) on the SIMULATED
//! gemma3-4b profile, over many seeds, measured two ways:
//!
//! - as the seed reports did: one request per point, in grid order, the highest reading wins;
//! - as this tool does: the same 36 points as a study (categorical parameters, the point the
//!   seed report would call stock, num_gpu 999 / num_ctx 4096 / temperature 0.8, as the
//!   baseline), measured by the protocol (warm-up after each reload, 3 requests per trial) and
//!   decided by the run loop (its decision phase included once it has one), the report's
//!   recommendation wins.
//!
//! For each: what it would recommend, its true (noise-free) value, how often it is a true best
//! grid point, how spread the picks are, and the gain it claims over the stock point against
//! the true gain.
//!
//! cargo run --release --example seed_grid -- --seeds 10 [--first-seed 0] [--time-scale 0.002]

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use ollama_tuner::backend::{self, BackendError};
use ollama_tuner::engine::space::{config_key, Config, ParamValue};
use ollama_tuner::engine::stats::quantile;
use ollama_tuner::report;
use ollama_tuner::sim::{self, Profile};
use ollama_tuner::store::RunDir;
use ollama_tuner::study::{load_study, parse_study};
use std::collections::BTreeSet;
use std::path::Path;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

const PROFILE: &str = "gemma3-4b";

/// The grid as a study: TR108's three parameters, everything else left to the server (as the
/// seed reports did), the demo's objective, constraint and protocol.
fn grid_study(seed: u64, time_scale: f64, repeats: usize, warmup: usize) -> String {
    format!(
        r#"
[study]
name = "seed-grid"
model = "gemma3:4b"
seed = {seed}

[backend]
kind = "simulator"
profile = "{PROFILE}"
time_scale = {time_scale}
keep_alive = "30m"

[budget]
trials = 36
wall_time = "1h"
max_consecutive_failures = 10

[objective]
metric = "decode_tps"
direction = "maximize"
constraints = ["ttft_p95 <= 1.5s"]

[protocol]
repeats = {repeats}
warmup = {warmup}
num_predict = 128
prompts = "builtin"
nonce = true
request_timeout = "180s"

[params.num_gpu]
type = "categorical"
choices = [999, 80, 60, 40]
default = 999

[params.num_ctx]
type = "categorical"
choices = [1024, 2048, 4096]
default = 4096

[params.temperature]
type = "categorical"
choices = [0.2, 0.4, 0.8]
default = 0.8
"#
    )
}

/// The 36 points in the seed report's order (num_gpu outermost, temperature innermost).
fn grid() -> Vec<Config> {
    let mut out = vec![];
    for g in [999, 80, 60, 40] {
        for c in [1024, 2048, 4096] {
            for t in [0.2, 0.4, 0.8] {
                out.push(Config::from([
                    ("num_gpu".to_string(), ParamValue::Int(g)),
                    ("num_ctx".to_string(), ParamValue::Int(c)),
                    ("temperature".to_string(), ParamValue::Float(t)),
                ]));
            }
        }
    }
    out
}

fn stock() -> Config {
    grid()[3 * 2 + 2].clone() // 999, 4096, 0.8
}

/// What one method picked on one seed.
struct Pick {
    config: Config,
    /// The method's own reading of the pick and its claimed gain over the stock point, %.
    measured: f64,
    claimed_gain: f64,
    /// The report's interval of that gain (the tool only).
    interval: Option<(f64, f64)>,
    /// Configurations the report calls tied with the pick (the tool only).
    tied: Option<usize>,
    requests: usize,
}

/// As the seed reports did: one request per point, the highest reading wins.
async fn seed_way(seed: u64, time_scale: f64) -> Pick {
    let text = grid_study(seed, time_scale, 1, 0);
    let study = parse_study(Path::new("seed-grid.toml"), &text).expect("grid study");
    let mut b = backend::create(&study).await.expect("simulator");
    let mut space = study.space.clone();
    b.prepare(&mut space).await.expect("prepare");
    let mut readings = vec![];
    for c in grid() {
        let e = loop {
            match b.evaluate(&c).await {
                Ok(e) => break e,
                Err(BackendError::Transient(_)) => continue,
                Err(e) => panic!("{e}"),
            }
        };
        let v = e
            .samples
            .first()
            .and_then(|s| s.get("decode_tps").copied())
            .unwrap_or(f64::NAN);
        readings.push((c, v));
    }
    b.shutdown().await;
    let stock_v = readings
        .iter()
        .find(|(c, _)| *c == stock())
        .map_or(f64::NAN, |(_, v)| *v);
    let (config, measured) = readings
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("36 readings");
    Pick {
        config,
        measured,
        claimed_gain: 100.0 * (measured / stock_v - 1.0),
        interval: None,
        tied: None,
        requests: 36,
    }
}

/// As this tool does: the grid as a study through the run loop, the report's recommendation.
async fn tool_way(seed: u64, time_scale: f64) -> Result<Pick, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let text = grid_study(seed, time_scale, 3, 1);
    let path = tmp.path().join("seed-grid.toml");
    std::fs::write(&path, &text).map_err(|e| e.to_string())?;
    let study = load_study(&path).map_err(|e| e.to_string())?;
    let backend = backend::create(&study).await.map_err(|e| e.to_string())?;
    let (_keep, shutdown) = tokio::sync::watch::channel(0u32);
    let opts = ollama_tuner::run::RunOptions {
        state_dir: tmp.path().join("state"),
        run_id: Some(format!("grid-{seed}")),
        progress: false,
        ..Default::default()
    };
    let out = ollama_tuner::run::run(study, &text, &path, opts, backend, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    let run = RunDir::open(&out.run_dir).map_err(|e| e.to_string())?;
    let r = report::analyse(&run).map_err(|e| e.to_string())?;
    let config = recommendation(&r).ok_or("no recommendation")?;
    let gain = reported_gain(&r);
    // Requests sent: each trial's measured ones plus a warm-up after each reload.
    let records = run.read_journal().map_err(|e| e.to_string())?.records;
    let requests = records
        .iter()
        .map(|rec| {
            let warm = rec.load.as_ref().is_some_and(|l| l.reloaded);
            rec.samples.len() + usize::from(warm)
        })
        .sum();
    Ok(Pick {
        config,
        measured: r.best_row().and_then(|b| b.objective).unwrap_or(f64::NAN),
        claimed_gain: gain.map_or(f64::NAN, |g| g.0),
        interval: gain.map(|g| (g.1, g.2)),
        tied: Some(tied_with_recommendation(&r)),
        requests,
    })
}

fn describe(c: &Config) -> String {
    let g = |k: &str| c.get(k).map_or("?".into(), |v| v.to_string());
    format!("{}/{}/{}", g("num_gpu"), g("num_ctx"), g("temperature"))
}

fn range(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "{:+.2} [{:+.2}, {:+.2}]",
        quantile(v, 0.5),
        quantile(v, 0.0),
        quantile(v, 1.0)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seeds: u64 = arg("--seeds", "10").parse().expect("--seeds N");
    let first: u64 = arg("--first-seed", "0").parse().expect("--first-seed N");
    let time_scale: f64 = arg("--time-scale", "0.002")
        .parse()
        .expect("--time-scale X");
    let p: &Profile = sim::profile(PROFILE).expect("profile");
    let truth: Vec<f64> = grid().iter().map(|c| true_decode(p, c)).collect();
    let best = truth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let stock_true = true_decode(p, &stock());
    let best_points: Vec<String> = grid()
        .iter()
        .zip(&truth)
        .filter(|(_, v)| **v >= best * (1.0 - 1e-9))
        .map(|(c, _)| describe(c))
        .collect();
    println!("seed_grid, commit {}", commit());
    println!(
        "SIMULATED {PROFILE}: true grid best {best:.2} tok/s at {} of 36 points ({}), stock point 999/4096/0.8 {stock_true:.2} (true best +{:.2}%); worst grid point {:.2}",
        best_points.len(),
        best_points.join(", "),
        100.0 * (best / stock_true - 1.0),
        truth.iter().copied().fold(f64::INFINITY, f64::min),
    );
    println!();
    println!("| seed | seed reports: pick (num_gpu/num_ctx/temperature) | its true tok/s | claimed gain % | true gain % | this tool: pick | its true tok/s | claimed gain % [interval] | true gain % | tied with it |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut picks: Vec<(Pick, Option<Pick>)> = vec![];
    for seed in first..first + seeds {
        let s = seed_way(seed, time_scale).await;
        let t = match tool_way(seed, time_scale).await {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("seed {seed}: the tool's run failed: {e}");
                None
            }
        };
        let st = true_decode(p, &s.config);
        let tool_cells = t.as_ref().map_or("| - | - | - | - | -".to_string(), |t| {
            let tt = true_decode(p, &t.config);
            format!(
                "| {} | {tt:.2} | {:+.2}{} | {:+.2} | {}",
                describe(&t.config),
                t.claimed_gain,
                t.interval
                    .map_or(String::new(), |(lo, hi)| format!(" [{lo:+.2}, {hi:+.2}]")),
                100.0 * (tt / stock_true - 1.0),
                t.tied.map_or("-".into(), |n| n.to_string()),
            )
        });
        println!(
            "| {seed} | {} | {st:.2} | {:+.2} | {:+.2} {tool_cells} |",
            describe(&s.config),
            s.claimed_gain,
            100.0 * (st / stock_true - 1.0),
        );
        picks.push((s, t));
    }
    println!();
    println!("| method | picks a true best grid point | picks within 0.5% of it | distinct picks (as configured / as run) | true value of the pick, tok/s, median [min, max] | claimed gain %, median [min, max] | true gain %, median [min, max] | claimed minus true, points, median [min, max] | true gain inside the claimed interval | requests per seed, median |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let methods: [(&str, Vec<&Pick>); 2] = [
        (
            "seed reports (1 request per point, max)",
            picks.iter().map(|(s, _)| s).collect(),
        ),
        (
            "this tool (protocol, run loop, report)",
            picks.iter().filter_map(|(_, t)| t.as_ref()).collect(),
        ),
    ];
    for (name, ps) in methods {
        let tv: Vec<f64> = ps.iter().map(|q| true_decode(p, &q.config)).collect();
        let n = ps.len();
        let at_best = tv.iter().filter(|v| **v >= best * (1.0 - 1e-9)).count();
        let near = tv.iter().filter(|v| **v >= best * 0.995).count();
        let distinct: BTreeSet<String> = ps.iter().map(|q| config_key(&q.config)).collect();
        // num_gpu 999/80/60/40 are all full offload here: configurations that run alike.
        let distinct_true: BTreeSet<i64> = tv.iter().map(|v| (v * 100.0).round() as i64).collect();
        let claimed: Vec<f64> = ps
            .iter()
            .map(|q| q.claimed_gain)
            .filter(|g| g.is_finite())
            .collect();
        let true_gain: Vec<f64> = tv.iter().map(|v| 100.0 * (v / stock_true - 1.0)).collect();
        let over: Vec<f64> = ps
            .iter()
            .zip(&true_gain)
            .filter(|(q, _)| q.claimed_gain.is_finite())
            .map(|(q, t)| q.claimed_gain - t)
            .collect();
        let inside = ps
            .iter()
            .zip(&true_gain)
            .filter_map(|(q, t)| q.interval.map(|(lo, hi)| lo <= *t && *t <= hi))
            .collect::<Vec<_>>();
        let inside = if inside.is_empty() {
            "no interval".to_string()
        } else {
            format!("{}/{}", inside.iter().filter(|b| **b).count(), inside.len())
        };
        let requests: Vec<f64> = ps.iter().map(|q| q.requests as f64).collect();
        let med_tv = if tv.is_empty() {
            f64::NAN
        } else {
            quantile(&tv, 0.5)
        };
        println!(
            "| {name} | {at_best}/{n} | {near}/{n} | {} / {} | {med_tv:.2} [{:.2}, {:.2}] | {} | {} | {} | {inside} | {:.0} |",
            distinct.len(),
            distinct_true.len(),
            tv.iter().copied().fold(f64::INFINITY, f64::min),
            tv.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            range(&claimed),
            range(&true_gain),
            range(&over),
            if requests.is_empty() { f64::NAN } else { quantile(&requests, 0.5) },
        );
    }
    let measured: Vec<f64> = picks.iter().map(|(s, _)| s.measured).collect();
    if !measured.is_empty() {
        println!(
            "\nThe seed way's winning reading, median {:.2} tok/s, against the pick's true value: the winner's curse.",
            quantile(&measured, 0.5)
        );
    }
}
