//! Ground truth for the llama.cpp benchmark (issue 6, item 5): measure EVERY point of a reduced
//! llama-server search space with the real backend and protocol, then run the tuner on the same
//! space with several seeds and count the trials it needs to reach a configuration within the
//! measurement noise of the grid's best.
//!
//!   eval "$(scripts/setup-llamacpp.sh)"
//!   cargo run --example llamacpp_grid -- --seeds 3 --trials 15 --out bench-out
//!
//! The reduced space: threads {1,2,3} x flash_attn {off,on} x cache_type_k {f16,q8_0} x
//! cache_type_v {f16,q8_0} = 24 points, 6 of them infeasible (flash_attn off with a quantized V
//! cache does not start). Every point restarts llama-server (all four are load-time options),
//! sends `--warmup` discarded requests and `--repeats` measured ones of `--num-predict` tokens.
//! Without `--defaults` the space has no defaults, so the tuner starts from its quasi-random
//! design, not from a baseline that might already be the best point, and no decision phase runs
//! (it compares against a baseline).
//!
//! "Within noise": each point's median gets a robust standard error, se = 1.2533 * 1.4826 *
//! MAD / sqrt(n) (the median's asymptotic s.e. for normal data, with the MAD as a spread that
//! ignores the outliers a busy machine produces), floored at 1 % of the median. A point is
//! near-best when best - median <= 2 * sqrt(se_best^2 + se_point^2): the two medians cannot be
//! told apart at about 95 %. A tuner run "reaches" the best
//! at the first trial whose configuration is near-best (judged by the grid's numbers, not by the
//! run's own noisy measurement); its final pick is the report's rank 1 (a configuration the
//! tuner re-measured is ranked on all its samples). Random search without repeats needs
//! (N+1)/(K+1) trials on average to hit one of K near-best points among N.
//!
//! Options: --seeds N (3), --trials N (15), --repeats N (3), --warmup N (1), --num-predict N (64),
//! --passes N (grid passes, samples pooled; 1), --out DIR (bench-out), --grid FILE (reuse a grid
//! JSON instead of measuring), --skip-tuner, --defaults k=v,... (give the tuner's study these
//! defaults, e.g. `threads=1,flash_attn=false,cache_type_k=f16,cache_type_v=f16`: a baseline,
//! so the decision phase runs and the pick is its recommendation; docs/decision.md).

use ollama_tuner::backend::llamacpp::LlamaCppBackend;
use ollama_tuner::backend::Backend;
use ollama_tuner::engine::space::{config_key, Config, ParamValue};
use ollama_tuner::engine::stats::{quantile, Summary};
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::store::RunDir;
use ollama_tuner::study::{parse_study, Study};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn num(name: &str, default: usize) -> usize {
    let v = arg(name, &default.to_string());
    v.parse().unwrap_or_else(|_| {
        eprintln!("{name} must be a whole number, got {v:?}");
        std::process::exit(2)
    })
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn study_text(trials: usize, repeats: usize, warmup: usize, num_predict: usize) -> String {
    format!(
        r#"
[study]
name = "llamacpp-grid"
model = "gemma-3-270m-q4_k_m.gguf"
seed = 1

[backend]
kind = "llamacpp"
startup_timeout = "120s"

[budget]
trials = {trials}
max_consecutive_failures = 10

[objective]
metric = "decode_tps"
direction = "maximize"

[protocol]
repeats = {repeats}
warmup = {warmup}
num_predict = {num_predict}
request_timeout = "90s"

[params.threads]
type = "int"
low = 1
high = 3

[params.flash_attn]
type = "bool"

[params.cache_type_k]
type = "categorical"
choices = ["f16", "q8_0"]

[params.cache_type_v]
type = "categorical"
choices = ["f16", "q8_0"]
"#
    )
}

/// The study text with `default = v` added under each `[params.k]` named in `defaults`
/// ("k=v,..."): integers and booleans as they are, anything else as a string.
fn with_defaults(text: &str, defaults: &str) -> Result<String, String> {
    let mut out = text.to_string();
    for kv in defaults.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--defaults wants name=value,..., got {kv:?}"))?;
        let head = format!("[params.{k}]\n");
        let at = out
            .find(&head)
            .ok_or_else(|| format!("--defaults: no parameter {k:?}"))?
            + head.len();
        let value = if v.parse::<i64>().is_ok() || v == "true" || v == "false" {
            v.to_string()
        } else {
            format!("{v:?}")
        };
        out.insert_str(at, &format!("default = {value}\n"));
    }
    Ok(out)
}

fn grid_points() -> Vec<Config> {
    let mut out = Vec::new();
    for t in 1..=3 {
        for fa in [false, true] {
            for k in ["f16", "q8_0"] {
                for v in ["f16", "q8_0"] {
                    out.push(Config::from([
                        ("threads".to_string(), ParamValue::Int(t)),
                        ("flash_attn".to_string(), ParamValue::Bool(fa)),
                        ("cache_type_k".to_string(), ParamValue::Str(k.into())),
                        ("cache_type_v".to_string(), ParamValue::Str(v.into())),
                    ]));
                }
            }
        }
    }
    out
}

fn label(c: &Config) -> String {
    let g = |k: &str| c.get(k).map(|v| v.to_string()).unwrap_or_default();
    format!(
        "t={} fa={} ctk={} ctv={}",
        g("threads"),
        if c.get("flash_attn") == Some(&ParamValue::Bool(true)) {
            "on"
        } else {
            "off"
        },
        g("cache_type_k"),
        g("cache_type_v")
    )
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// One grid point's measurements.
#[derive(Clone, Debug, Default)]
struct Point {
    config: Config,
    samples: Vec<f64>,
    failure: Option<String>,
    seconds: f64,
    load_avg: Vec<f64>,
}

impl Point {
    fn summary(&self) -> Option<Summary> {
        Summary::of(&self.samples)
    }
    /// Robust standard error of the median (see the module docs).
    fn median_se(&self) -> f64 {
        let Some(s) = self.summary() else {
            return f64::INFINITY;
        };
        let dev: Vec<f64> = self.samples.iter().map(|x| (x - s.median).abs()).collect();
        let mad = quantile(&dev, 0.5);
        (1.2533 * 1.4826 * mad / (s.n as f64).sqrt()).max(0.01 * s.median)
    }
    fn to_json(&self) -> Value {
        let s = self.summary();
        json!({
            "config": self.config, "label": label(&self.config),
            "feasible": self.failure.is_none() && s.is_some(),
            "median": s.as_ref().map(|s| s.median), "cv": s.as_ref().map(|s| s.cv()),
            "median_se": s.as_ref().map(|_| self.median_se()),
            "samples": self.samples, "failure": self.failure, "seconds": self.seconds,
            "load_avg": self.load_avg,
        })
    }
    fn from_json(v: &Value) -> Option<Point> {
        Some(Point {
            config: serde_json::from_value(v["config"].clone()).ok()?,
            samples: serde_json::from_value(v["samples"].clone()).unwrap_or_default(),
            failure: v["failure"].as_str().map(String::from),
            seconds: v["seconds"].as_f64().unwrap_or(0.0),
            load_avg: serde_json::from_value(v["load_avg"].clone()).unwrap_or_default(),
        })
    }
}

async fn measure_grid(study: &Study, passes: usize) -> Result<Vec<Point>, String> {
    let mut backend = LlamaCppBackend::from_study(study).map_err(|e| e.to_string())?;
    let mut space = study.space.clone();
    let info = backend
        .prepare(&mut space)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "engine: {}",
        info.server_version.clone().unwrap_or_default()
    );
    let mut points: Vec<Point> = grid_points()
        .into_iter()
        .map(|config| Point {
            config,
            ..Default::default()
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    for pass in 0..passes {
        // A shuffled order per pass, so slow drift of the machine's load does not line up with
        // one parameter.
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.shuffle(&mut rng);
        let total = points.len();
        for (n, &i) in order.iter().enumerate() {
            let p = &mut points[i];
            let t0 = Instant::now();
            p.load_avg.push(loadavg());
            let e = loop {
                match backend.evaluate(&p.config).await {
                    Ok(e) => break e,
                    Err(ollama_tuner::backend::BackendError::Transient(m)) => {
                        eprintln!("  transient ({m}); retrying in 2 s");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                    Err(e) => return Err(e.to_string()),
                }
            };
            p.seconds += t0.elapsed().as_secs_f64();
            match e.failure {
                Some(f) => {
                    p.failure = Some(format!(
                        "{}: {}",
                        f.kind.as_str(),
                        f.message.lines().next().unwrap_or("")
                    ))
                }
                None => p.samples.extend(
                    e.samples
                        .iter()
                        .filter_map(|s| s.get("decode_tps").copied()),
                ),
            }
            let s = p.summary();
            eprintln!(
                "pass {} point {:2}/{} {:<32} {}",
                pass + 1,
                n + 1,
                total,
                label(&p.config),
                match (&p.failure, s) {
                    (Some(f), _) => format!("FAILED {f}"),
                    (None, Some(s)) =>
                        format!("median {:.1} tok/s  cv {:.1}%", s.median, 100.0 * s.cv()),
                    (None, None) => "no samples".into(),
                }
            );
        }
    }
    backend.shutdown().await;
    Ok(points)
}

struct TunerRun {
    seed: u64,
    /// (trial, config label, measured decode_tps in the run, grid median of that config)
    trials: Vec<(usize, String, Option<f64>, Option<f64>)>,
    reached_at: Option<usize>,
    pick: Option<(String, f64, Option<f64>)>,
    pick_near: bool,
    /// The decision phase's verdict and its trials (race + ablation), when one ran.
    decision: Option<(String, usize)>,
    seconds: f64,
}

async fn run_tuner(
    study: &Study,
    text: &str,
    seed: u64,
    state: &Path,
    grid: &BTreeMap<String, Option<f64>>,
    near: &BTreeMap<String, bool>,
) -> Result<TunerRun, String> {
    let t0 = Instant::now();
    let backend: Box<dyn Backend> =
        Box::new(LlamaCppBackend::from_study(study).map_err(|e| e.to_string())?);
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    let run_id = format!("seed-{seed}");
    let _ = std::fs::remove_dir_all(state.join(&run_id));
    let opts = RunOptions {
        state_dir: state.to_path_buf(),
        run_id: Some(run_id.clone()),
        seed: Some(seed),
        progress: false,
        reports_dir: None,
        ..RunOptions::default()
    };
    let outcome = run::run(
        study.clone(),
        text,
        Path::new("llamacpp-grid.toml"),
        opts,
        backend,
        rx,
    )
    .await
    .map_err(|e| e.to_string())?;
    let journal = RunDir::open(&outcome.run_dir)
        .map_err(|e| e.to_string())?
        .read_journal()
        .map_err(|e| e.to_string())?;
    let mut trials = Vec::new();
    let mut reached_at = None;
    for r in &journal.records {
        let key = config_key(&r.params);
        let g = grid.get(&key).copied().flatten();
        if reached_at.is_none() && near.get(&key).copied().unwrap_or(false) {
            reached_at = Some(r.trial + 1);
        }
        trials.push((
            r.trial + 1,
            label(&r.params),
            r.objective.filter(|_| r.is_ok()),
            g,
        ));
    }
    // The pick is the report's rank 1: re-measurements of a configuration are pooled there.
    let report =
        ollama_tuner::report::analyse(&RunDir::open(&outcome.run_dir).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let best = report.best_row();
    let pick = best.map(|b| {
        (
            label(&b.record.params),
            b.objective.unwrap_or(f64::NAN),
            grid.get(&config_key(&b.record.params)).copied().flatten(),
        )
    });
    let pick_near = best.is_some_and(|b| {
        near.get(&config_key(&b.record.params))
            .copied()
            .unwrap_or(false)
    });
    let decision = report.decision.as_ref().map(|d| {
        (
            format!("{:?}", d.result.verdict),
            d.race_trials + d.ablation_trials,
        )
    });
    Ok(TunerRun {
        seed,
        trials,
        reached_at,
        pick,
        pick_near,
        decision,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

#[tokio::main]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let seeds = num("--seeds", 3);
    let trials = num("--trials", 15);
    let repeats = num("--repeats", 3);
    let warmup = num("--warmup", 1);
    let num_predict = num("--num-predict", 64);
    let passes = num("--passes", 1).max(1);
    let out = PathBuf::from(arg("--out", "bench-out"));
    if std::env::var("LLAMA_SERVER").is_err() || std::env::var("LLAMA_MODEL").is_err() {
        eprintln!("set LLAMA_SERVER and LLAMA_MODEL first: eval \"$(scripts/setup-llamacpp.sh)\"");
        std::process::exit(2);
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        std::process::exit(2);
    }
    let text = match with_defaults(
        &study_text(trials, repeats, warmup, num_predict),
        &arg("--defaults", ""),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let study = match parse_study(Path::new("llamacpp-grid.toml"), &text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("internal study text is invalid: {e}");
            std::process::exit(1);
        }
    };
    let command: Vec<String> = std::env::args().collect();
    let t_all = Instant::now();

    // 1. The grid.
    let t_grid = Instant::now();
    let points = match std::env::args()
        .position(|a| a == "--grid")
        .and_then(|i| std::env::args().nth(i + 1))
    {
        Some(file) => {
            let v: Value = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            let pts: Vec<Point> = v["grid"]
                .as_array()
                .map(|a| a.iter().filter_map(Point::from_json).collect())
                .unwrap_or_default();
            if pts.is_empty() {
                eprintln!("{file}: no grid points");
                std::process::exit(2);
            }
            pts
        }
        None => match measure_grid(&study, passes).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("grid failed: {e}");
                std::process::exit(1);
            }
        },
    };
    let grid_seconds = t_grid.elapsed().as_secs_f64();
    let grid: BTreeMap<String, Option<f64>> = points
        .iter()
        .map(|p| {
            (
                config_key(&p.config),
                p.failure
                    .is_none()
                    .then(|| p.summary().map(|s| s.median))
                    .flatten(),
            )
        })
        .collect();
    let feasible: Vec<&Point> = points
        .iter()
        .filter(|p| p.failure.is_none() && p.summary().is_some())
        .collect();
    let Some(best) = feasible.iter().max_by(|a, b| {
        a.summary()
            .unwrap()
            .median
            .total_cmp(&b.summary().unwrap().median)
    }) else {
        eprintln!("no grid point produced a measurement");
        std::process::exit(1);
    };
    let best_median = best.summary().map(|s| s.median).unwrap_or(f64::NAN);
    let cvs: Vec<f64> = feasible
        .iter()
        .filter_map(|p| p.summary().map(|s| s.cv()))
        .collect();
    let median_cv = quantile(&cvs, 0.5);
    let best_se = best.median_se();
    let is_near = |p: &Point| -> bool {
        p.failure.is_none()
            && p.summary().is_some_and(|s| {
                best_median - s.median <= 2.0 * (best_se.powi(2) + p.median_se().powi(2)).sqrt()
            })
    };
    let near: Vec<String> = feasible
        .iter()
        .filter(|p| is_near(p))
        .map(|p| config_key(&p.config))
        .collect();
    let near_by_grid: BTreeMap<String, bool> = points
        .iter()
        .map(|p| (config_key(&p.config), is_near(p)))
        .collect();
    let n = points.len();
    let k = near.len();
    let random_expect = (n as f64 + 1.0) / (k as f64 + 1.0);
    eprintln!(
        "grid: best {} = {best_median:.1} tok/s (s.e. {best_se:.1}) -> {k} near-best point(s) of {n}",
        label(&best.config)
    );

    // 2. The tuner.
    let mut runs = Vec::new();
    if !flag("--skip-tuner") {
        let state = out.join("llamacpp-grid-runs");
        for seed in 1..=seeds as u64 {
            match run_tuner(&study, &text, seed, &state, &grid, &near_by_grid).await {
                Ok(r) => {
                    eprintln!(
                        "seed {seed}: reached near-best at trial {} ; pick {:?} ({:.0} s)",
                        r.reached_at
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "never".into()),
                        r.pick,
                        r.seconds
                    );
                    runs.push(r);
                }
                Err(e) => eprintln!("seed {seed}: the tuner run failed: {e}"),
            }
        }
    }

    // 3. Output.
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by(|a, b| {
        let m = |p: &Point| {
            if p.failure.is_some() {
                f64::NEG_INFINITY
            } else {
                p.summary().map(|s| s.median).unwrap_or(f64::NEG_INFINITY)
            }
        };
        m(b).total_cmp(&m(a))
    });
    let mut md = String::new();
    md.push_str("# llama.cpp ground truth: exhaustive grid vs the tuner\n\n");
    md.push_str(&format!(
        "Engine: llama-server ({}), model Gemma 3 270M Q4_K_M, {} CPUs. Protocol per point: restart, {warmup} warm-up, {repeats} x {num_predict} tokens (ignore_eos, cache_prompt=false), metric decode_tps (median). Grid passes: {passes}. Command: `{}`.\n\n",
        std::env::var("LLAMA_SERVER").unwrap_or_default(),
        ollama_tuner::backend::llamacpp::cpu_count(),
        command.join(" ")
    ));
    md.push_str(&format!(
        "Grid: {n} points in {grid_seconds:.0} s; best **{}** = {best_median:.1} tok/s; robust s.e. of its median {best_se:.1} tok/s; median CV of feasible points {:.1}%; near-best (within 2 s.e. of the difference) = {k} point(s). Random search needs (N+1)/(K+1) = {random_expect:.1} trials on average to hit one.\n\n",
        label(&best.config),
        100.0 * median_cv
    ));
    md.push_str("| rank | configuration | median decode tok/s | s.e. | CV | samples | load avg | status |\n|---:|---|---:|---:|---:|---|---:|---|\n");
    for (i, p) in sorted.iter().enumerate() {
        let s = p.summary();
        let la = p.load_avg.iter().sum::<f64>() / p.load_avg.len().max(1) as f64;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            i + 1,
            label(&p.config),
            if p.failure.is_some() {
                "-".into()
            } else {
                fmt_opt(s.as_ref().map(|s| s.median))
            },
            if p.failure.is_some() || s.is_none() {
                "-".into()
            } else {
                format!("{:.1}", p.median_se())
            },
            s.as_ref()
                .filter(|_| p.failure.is_none())
                .map(|s| format!("{:.1}%", 100.0 * s.cv()))
                .unwrap_or_else(|| "-".into()),
            p.samples
                .iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            la,
            match &p.failure {
                Some(f) => format!("failed ({})", f.split(':').next().unwrap_or("")),
                None if near.contains(&config_key(&p.config)) => "near-best".into(),
                None => "ok".into(),
            }
        ));
    }
    if !runs.is_empty() {
        md.push_str(&format!(
            "\n## Tuner ({} seeds x {trials} trials, same protocol)\n\n",
            runs.len()
        ));
        md.push_str("| seed | trials to near-best | final pick | pick measured | pick grid median | pick near-best | decision (trials) | wall s |\n|---:|---:|---|---:|---:|---|---|---:|\n");
        for r in &runs {
            let (pl, pm, pg) =
                r.pick
                    .clone()
                    .map(|(l, m, g)| (l, Some(m), g))
                    .unwrap_or(("-".into(), None, None));
            let pick_near = r.pick_near;
            let decision = r
                .decision
                .as_ref()
                .map_or("-".to_string(), |(v, n)| format!("{v} ({n})"));
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {decision} | {:.0} |\n",
                r.seed,
                r.reached_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| format!("not in {trials}")),
                pl,
                fmt_opt(pm),
                fmt_opt(pg),
                if pick_near { "yes" } else { "no" },
                r.seconds
            ));
        }
        let reached: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.reached_at.map(|t| t as f64))
            .collect();
        md.push_str(&format!(
            "\nReached near-best in {}/{} runs; median trials to reach {} (random search expectation {random_expect:.1}).\n",
            reached.len(),
            runs.len(),
            if reached.is_empty() { "-".to_string() } else { format!("{:.0}", quantile(&reached, 0.5)) }
        ));
        md.push_str(
            "\nTrials per seed (trial: configuration -> measured in the run / grid median):\n\n",
        );
        for r in &runs {
            md.push_str(&format!("- seed {}: ", r.seed));
            let items: Vec<String> = r
                .trials
                .iter()
                .map(|(t, l, m, g)| format!("{t}: {l} -> {}/{}", fmt_opt(*m), fmt_opt(*g)))
                .collect();
            md.push_str(&items.join("; "));
            md.push('\n');
        }
    }
    md.push_str(&format!(
        "\nTotal wall time {:.0} s.\n",
        t_all.elapsed().as_secs_f64()
    ));

    let report = json!({
        "command": command, "engine": std::env::var("LLAMA_SERVER").ok(), "model": std::env::var("LLAMA_MODEL").ok(),
        "cpus": ollama_tuner::backend::llamacpp::cpu_count(),
        "protocol": {"repeats": repeats, "warmup": warmup, "num_predict": num_predict, "passes": passes},
        "grid": points.iter().map(Point::to_json).collect::<Vec<_>>(),
        "grid_seconds": grid_seconds,
        "best": {"label": label(&best.config), "median": best_median},
        "median_cv": median_cv, "best_median_se": best_se, "near_best": k,
        "random_expected_trials": random_expect,
        "tuner": runs.iter().map(|r| json!({
            "seed": r.seed, "reached_at": r.reached_at, "seconds": r.seconds,
            "pick_near": r.pick_near,
            "decision": r.decision.as_ref().map(|(v, n)| json!({"verdict": v, "trials": n})),
            "pick": r.pick.as_ref().map(|(l, m, g)| json!({"label": l, "measured": m, "grid_median": g})),
            "trials": r.trials.iter().map(|(t, l, m, g)| json!({"trial": t, "label": l, "measured": m, "grid_median": g})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "total_seconds": t_all.elapsed().as_secs_f64(),
    });
    let jpath = out.join("llamacpp-grid.json");
    let mpath = out.join("llamacpp-grid.md");
    let ok = std::fs::write(
        &jpath,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .is_ok()
        && std::fs::write(&mpath, &md).is_ok();
    print!("{md}");
    if !ok {
        eprintln!("could not write {} / {}", jpath.display(), mpath.display());
        std::process::exit(1);
    }
    eprintln!("wrote {} and {}", jpath.display(), mpath.display());
}
