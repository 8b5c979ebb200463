//! Issue 12 benchmark: is the recommendation right? For each simulator profile and seed, a whole
//! tuning run of the shipped demo study (search_spaces/demo-simulator.toml filled as `demo`
//! fills it, default budget) through the library's run loop on the simulator, then the run's
//! report and Modelfile export are checked against the simulator's noise-free truth:
//!
//! - the recommendation is truly within 1 % of the best configuration that meets the study's
//!   requirements (num_ctx in the study's range, output settings at the user's values, the
//!   study's constraints on the noise-free outcome);
//! - the true gain over the baseline lies inside the reported interval;
//! - whether the recommendation or the export changes an output setting;
//! - whether the recommended num_ctx is (within a factor 2) the largest one within 1 % of the
//!   best;
//! - whether the report says the defaults are best and the export changes nothing (the
//!   `fits-defaults` profile's truth);
//! - the cost: trials, trials of the decision phase and ablation, simulated and real time;
//! - the memory wall (issue 13): the share of the optimizer's model-phase trials that failed,
//!   proposals that needed at least as much memory as an earlier out-of-memory trial (judged
//!   here on the effective num_gpu, num_ctx and num_batch, not by the optimizer's own rule), and
//!   runs stopped by consecutive failures (`llama3.1-8b-6gb` is the profile with a wall).
//!
//! cargo run --release --example bench_decision -- --seeds 10 \
//!     --profiles gemma3-4b,llama3.1-8b,gemma3-270m,fits-defaults [--trials 30]
//!     [--time-scale 0.002] [--first-seed 0] [--json bench_decision.json] [--details]
//!
//! Everything this benchmark reads from a report is in the "Report access" functions of
//! examples/bench_common/mod.rs, so that a report that gains the decision phase's fields (the
//! recommendation, its verdict, the gain interval) is read by changing those functions only.

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use ollama_tuner::engine::stats::quantile;
use ollama_tuner::export::{self, ExportFormat};
use ollama_tuner::report;
use ollama_tuner::sim::{self, Profile};
use ollama_tuner::store::RunDir;
use ollama_tuner::study::load_study;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The journal's origin words (`Origin::as_str`), counted per run.
const ORIGINS: &[&str] = &[
    "baseline", "initial", "model", "random", "confirm", "decision", "ablation",
];

/// The demo's default trial budget (`ollama-tuner demo --trials`).
const DEMO_TRIALS: &str = "60";
// ---------------------------------------------------------------------------------------------
// One run.
// ---------------------------------------------------------------------------------------------

struct RunResult {
    profile: String,
    seed: u64,
    json: Value,
    within: bool,
    within_speed: bool,
    gain_inside: Option<bool>,
    rec_changes_output: bool,
    export_changes_output: bool,
    ctx_ok: bool,
    defaults_best: Option<bool>,
    export_changes_nothing: bool,
    trials: usize,
    decision_trials: usize,
    simulated_s: f64,
    real_s: f64,
    /// (model-phase trials failed, model-phase trials, dominated proposals, OOM failures)
    memory: (usize, usize, usize, usize),
    stopped_by_failures: bool,
}

async fn one_run(
    profile: &'static Profile,
    seed: u64,
    trials: usize,
    time_scale: f64,
) -> Result<RunResult, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let text = with_defaults(
        &ollama_tuner::demo_study_text(trials, profile.name, time_scale, seed),
        &arg("--defaults", ""),
    );
    let path = tmp.path().join(format!("demo-{}.toml", profile.name));
    std::fs::write(&path, &text).map_err(|e| e.to_string())?;
    let study = load_study(&path).map_err(|e| e.to_string())?;
    let backend = ollama_tuner::backend::create(&study)
        .await
        .map_err(|e| e.to_string())?;
    let (_keep, shutdown) = tokio::sync::watch::channel(0u32);
    let opts = ollama_tuner::run::RunOptions {
        state_dir: tmp.path().join("state"),
        run_id: Some(format!("{}-{seed}", profile.name)),
        progress: false,
        ..Default::default()
    };
    let t0 = Instant::now();
    let out = ollama_tuner::run::run(study.clone(), &text, &path, opts, backend, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    let real_s = t0.elapsed().as_secs_f64();
    let run = RunDir::open(&out.run_dir).map_err(|e| e.to_string())?;
    let r = report::analyse(&run).map_err(|e| e.to_string())?;
    let records = run.read_journal().map_err(|e| e.to_string())?.records;
    let modelfile = export::export(&run, ExportFormat::Modelfile, 1).unwrap_or_default();

    let baseline = r
        .baseline_row()
        .map(|row| row.record.params.clone())
        .or_else(|| study.space.defaults())
        .unwrap_or_default();
    let rec = recommendation(&r).unwrap_or_default();
    let (best_o, best_e) = best_meeting_requirements(profile, &study, &baseline)
        .ok_or("nothing in the study's space meets its requirements")?;
    let best = best_e.decode_tps;
    let rec_true = true_decode(profile, &rec);
    let base_true = true_decode(profile, &baseline);
    let rec_out = output_changes(&rec, &baseline);
    // The recommendation with its output settings put back to the user's: the speed part.
    let mut speed_part = rec.clone();
    for (k, v) in &baseline {
        if is_output(k) {
            speed_part.insert(k.clone(), v.clone());
        }
    }
    let speed_true = true_decode(profile, &speed_part);
    let within = rec_out.is_empty() && rec_true >= (1.0 - WITHIN) * best;
    let within_speed = speed_true >= (1.0 - WITHIN) * best;
    let true_gain = 100.0 * (rec_true / base_true - 1.0);
    let gain = reported_gain(&r);
    let gain_inside = gain.map(|(_, lo, hi)| lo <= true_gain && true_gain <= hi);
    let exp = export_changes(&modelfile, &baseline);
    let exp_out: Vec<&String> = exp
        .iter()
        .filter(|c| is_output(c.split('=').next().unwrap_or("")))
        .collect();
    let (largest_ctx, ctx_ok) = largest_tied_ctx(profile, &study, &rec, best);
    let defaults_best = says_defaults_best(&r);
    let decision_trials =
        trials_with_origin(&records, "decision") + trials_with_origin(&records, "ablation");
    // Trial durations are simulated seconds on the simulator (its virtual clock).
    let simulated_s: f64 = records.iter().map(|rec| rec.duration_s).sum();
    let memory = memory_wall_stats(&records);
    let stopped_by_failures = matches!(out.stop, ollama_tuner::store::StopReason::TooManyFailures);
    let by_origin: serde_json::Map<String, Value> = ORIGINS
        .iter()
        .map(|o| (o.to_string(), json!(trials_with_origin(&records, o))))
        .collect();
    let json = json!({
        "profile": profile.name,
        "seed": seed,
        "stop": format!("{:?}", out.stop),
        "true_best_meeting_requirements": best,
        "true_best_config": format!("num_gpu {} num_ctx {} num_batch {} num_thread {}", best_o.num_gpu, best_o.num_ctx, best_o.num_batch, best_o.num_thread),
        "recommendation": rec,
        "recommendation_true": rec_true,
        "recommendation_speed_part_true": speed_true,
        "baseline_true": base_true,
        "within_1pct": within,
        "within_1pct_speed_part": within_speed,
        "true_gain_pct": true_gain,
        "reported_gain_pct": gain.map(|g| json!({"estimate": g.0, "low": g.1, "high": g.2, "source": GAIN_SOURCE})),
        "true_gain_inside_interval": gain_inside,
        "recommendation_output_changes": rec_out,
        "export_changes": exp,
        "export_output_changes": exp_out,
        "num_ctx_largest_within_1pct": largest_ctx,
        "num_ctx_ok": ctx_ok,
        "report_says_defaults_best": defaults_best,
        "trials": records.len(),
        "ranked_rows": r.rows.len(),
        "trials_by_origin": by_origin,
        "simulated_seconds": simulated_s,
        "real_seconds": real_s,
        "model_trials_failed": memory.0,
        "model_trials": memory.1,
        "proposals_dominating_an_oom": memory.2,
        "oom_failures": memory.3,
        "stopped_by_consecutive_failures": stopped_by_failures,
    });
    Ok(RunResult {
        profile: profile.name.to_string(),
        seed,
        json,
        within,
        within_speed,
        gain_inside,
        rec_changes_output: !rec_out.is_empty(),
        export_changes_output: !exp_out.is_empty(),
        ctx_ok,
        defaults_best,
        export_changes_nothing: exp.is_empty(),
        trials: records.len(),
        decision_trials,
        simulated_s,
        real_s,
        memory,
        stopped_by_failures,
    })
}

// ---------------------------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------------------------

fn share(v: impl Iterator<Item = bool>) -> (usize, usize) {
    v.fold((0, 0), |(k, n), b| (k + usize::from(b), n + 1))
}

fn cell((k, n): (usize, usize)) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{k}/{n}")
    }
}

fn med(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        quantile(v, 0.5)
    }
}

/// The study text with other defaults (`--defaults num_gpu=20,num_thread=4`): a user whose
/// settings today are not the server's, so the baseline is not already near the best.
fn with_defaults(text: &str, defaults: &str) -> String {
    let mut out = text.to_string();
    for kv in defaults.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("--defaults name=value,...");
        let head = format!("[params.{k}]");
        let start = out.find(&head).unwrap_or_else(|| panic!("no [params.{k}]"));
        let at = start + out[start..].find("default = ").expect("a default line");
        let end = at + out[at..].find('\n').unwrap_or(out.len() - at);
        out.replace_range(at..end, &format!("default = {v}"));
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seeds: u64 = arg("--seeds", "10").parse().expect("--seeds N");
    let first: u64 = arg("--first-seed", "0").parse().expect("--first-seed N");
    let trials: usize = arg("--trials", DEMO_TRIALS).parse().expect("--trials N");
    let time_scale: f64 = arg("--time-scale", "0.002")
        .parse()
        .expect("--time-scale X");
    let json_path = arg("--json", "bench_decision.json");
    let names = arg(
        "--profiles",
        "gemma3-4b,llama3.1-8b,gemma3-270m,fits-defaults",
    );
    let mut results: Vec<RunResult> = vec![];
    let mut failed: Vec<Value> = vec![];
    for name in names.split(',') {
        let Some(p) = sim::profile(name) else {
            eprintln!(
                "unknown profile {name}; profiles: {}",
                sim::profile_names().join(", ")
            );
            std::process::exit(2);
        };
        for seed in first..first + seeds {
            match one_run(p, seed, trials, time_scale).await {
                Ok(r) => {
                    if flag("--details") {
                        println!("{}", r.json);
                    }
                    eprintln!(
                        "{} seed {}: rec true {:.2} (within 1%: {}), defaults best: {:?}, {} trials, {:.1} s",
                        r.profile, r.seed, r.json["recommendation_true"].as_f64().unwrap_or(f64::NAN),
                        r.within, r.defaults_best, r.trials, r.real_s
                    );
                    results.push(r);
                }
                Err(e) => {
                    eprintln!("{name} seed {seed}: {e}");
                    failed.push(json!({"profile": name, "seed": seed, "error": e}));
                }
            }
        }
    }
    println!();
    println!(
        "SIMULATED profiles, demo study, {trials} trials, seeds {first}..{}; commit {}",
        first + seeds,
        commit()
    );
    println!();
    println!("| profile | runs | recommendation within 1% of the best meeting the requirements | same, output settings put back to the user's | true gain inside the reported interval ({GAIN_SOURCE}) | recommendation changes an output setting | export changes an output setting | num_ctx >= half the largest within 1% | report says defaults best | export changes nothing | trials, median | decision + ablation trials, median | simulated min, median | real s, median | model-phase trials failed | proposals dominating a known OOM | stopped by consecutive failures |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut summary = serde_json::Map::new();
    for name in names.split(',') {
        let rs: Vec<&RunResult> = results.iter().filter(|r| r.profile == name).collect();
        let f = |g: &dyn Fn(&RunResult) -> bool| share(rs.iter().map(|r| g(r)));
        let row = [
            ("within_1pct", f(&|r| r.within)),
            ("within_1pct_speed_part", f(&|r| r.within_speed)),
            (
                "gain_inside_interval",
                share(rs.iter().filter_map(|r| r.gain_inside)),
            ),
            (
                "recommendation_changes_output",
                f(&|r| r.rec_changes_output),
            ),
            ("export_changes_output", f(&|r| r.export_changes_output)),
            ("num_ctx_ok", f(&|r| r.ctx_ok)),
            (
                "says_defaults_best",
                share(rs.iter().filter_map(|r| r.defaults_best)),
            ),
            ("export_changes_nothing", f(&|r| r.export_changes_nothing)),
        ];
        let num = |g: &dyn Fn(&RunResult) -> f64| med(&rs.iter().map(|r| g(r)).collect::<Vec<_>>());
        let (t, d, sim_min, real) = (
            num(&|r| r.trials as f64),
            num(&|r| r.decision_trials as f64),
            num(&|r| r.simulated_s / 60.0),
            num(&|r| r.real_s),
        );
        let (mf, mt, dom) = rs.iter().fold((0, 0, 0), |(a, b, c), r| {
            (a + r.memory.0, b + r.memory.1, c + r.memory.2)
        });
        let stopped = rs.iter().filter(|r| r.stopped_by_failures).count();
        let fail_pct = if mt > 0 {
            100.0 * mf as f64 / mt as f64
        } else {
            0.0
        };
        println!(
            "| {name} | {} | {} | {t:.0} | {d:.0} | {sim_min:.1} | {real:.1} | {mf}/{mt} ({fail_pct:.0}%) | {dom} | {stopped}/{} |",
            rs.len(),
            row.iter()
                .map(|(_, c)| cell(*c))
                .collect::<Vec<_>>()
                .join(" | "),
            rs.len()
        );
        let mut m: serde_json::Map<String, Value> = row
            .iter()
            .map(|(k, (a, n))| (k.to_string(), json!({"yes": a, "of": n})))
            .collect();
        m.insert("runs".into(), json!(rs.len()));
        m.insert("trials_median".into(), json!(t));
        m.insert("decision_ablation_trials_median".into(), json!(d));
        m.insert("simulated_minutes_median".into(), json!(sim_min));
        m.insert("real_seconds_median".into(), json!(real));
        m.insert(
            "model_trials_failed".into(),
            json!({"failed": mf, "of": mt}),
        );
        m.insert("proposals_dominating_an_oom".into(), json!(dom));
        m.insert("stopped_by_consecutive_failures".into(), json!(stopped));
        summary.insert(name.to_string(), Value::Object(m));
    }
    let doc = json!({
        "benchmark": "bench_decision",
        "commit": commit(),
        "trials": trials,
        "seeds": {"first": first, "count": seeds},
        "time_scale": time_scale,
        "gain_interval_source": GAIN_SOURCE,
        "profiles": summary,
        "runs": results.iter().map(|r| r.json.clone()).collect::<Vec<_>>(),
        "failed": failed,
    });
    match std::fs::write(
        Path::new(&json_path),
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    ) {
        Ok(()) => println!("\nJSON summary: {json_path}"),
        Err(e) => eprintln!("cannot write {json_path}: {e}"),
    }
}
