//! What the issue 12 benchmarks (examples/bench_decision.rs, examples/seed_grid.rs) share: the
//! only functions that read a report ("Report access"), and the simulator's noise-free truth
//! for a configuration of a study. Included by both with `#[path]`; not an example itself.
#![allow(dead_code)] // each benchmark uses part of it

use ollama_tuner::engine::space::{Config, ParamKind, ParamValue};
use ollama_tuner::engine::stats::quantile;
use ollama_tuner::report::{Report, Tie};
use ollama_tuner::sim::{best_decode_where, Expected, Profile, SearchBox, SimModel, SimOptions};
use ollama_tuner::study::Study;
use ollama_tuner::trial::TrialRecord;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Within this share of the best is "the best" (the target).
pub const WITHIN: f64 = 0.01;
/// Prompt tokens the constraints' noise-free TTFT is computed for: the longest builtin prompt
/// with its template and nonce is about 60 tokens, and p95 of three requests is their maximum.
pub const CONSTRAINT_PROMPT_TOKENS: u32 = 60;

// ---------------------------------------------------------------------------------------------
// Report access. The recommendation is rank 1 (the decision phase's when one ran); the gain
// interval is the decision phase's (measured after the selection), else computed here from
// rank 1's and the baseline's samples; "defaults best" is the phase's verdict, else rank 1
// against the baseline. Nothing else reads the report.
// ---------------------------------------------------------------------------------------------

/// Where the gain interval comes from: "report" (the decision phase's) when the report has one,
/// else "bench" (see `reported_gain`).
pub const GAIN_SOURCE: &str = "report";

/// The configuration the report recommends (and `export` writes by default).
pub fn recommendation(r: &Report) -> Option<Config> {
    r.best_row().map(|row| row.record.params.clone())
}

/// The reported gain of the recommendation over the baseline, percent: (estimate, low, high).
/// Bench-computed today: a 95 % percentile bootstrap (2000 resamples, fixed seed) of the ratio
/// of the medians of rank 1's and the baseline's per-request objective values.
pub fn reported_gain(r: &Report) -> Option<(f64, f64, f64)> {
    if let Some(d) = &r.decision {
        if d.result.verdict == ollama_tuner::engine::decision::Verdict::DefaultsBest {
            return Some((0.0, 0.0, 0.0));
        }
        if let Some(e) = r.recorded_gain() {
            return Some((e.pct, e.lo, e.hi));
        }
    }
    let (best, base) = (r.best_row()?, r.baseline_row()?);
    if best.trial() == base.trial() {
        return Some((0.0, 0.0, 0.0));
    }
    bootstrap_gain(&best.objective_samples, &base.objective_samples)
}

/// Whether the report says the defaults are the best (nothing reliably better): today, rank 1
/// is the baseline or is not called different from it.
pub fn says_defaults_best(r: &Report) -> Option<bool> {
    if let Some(d) = &r.decision {
        use ollama_tuner::engine::decision::Verdict;
        if d.result.verdict != Verdict::Undecided {
            return Some(d.result.verdict == Verdict::DefaultsBest);
        }
    }
    let best = r.best_row()?;
    if best.is_baseline() {
        return Some(true);
    }
    r.best_vs_baseline.map(|t| t != Tie::Different)
}

/// Configurations the report calls tied with its recommendation (the recommendation itself
/// not counted).
pub fn tied_with_recommendation(r: &Report) -> usize {
    r.tied().len()
}

pub fn bootstrap_gain(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let gain = |x: &[f64], y: &[f64]| 100.0 * (quantile(x, 0.5) / quantile(y, 0.5) - 1.0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x6A1D);
    let (mut xa, mut xb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    let mut gains: Vec<f64> = (0..2000)
        .map(|_| {
            xa.iter_mut()
                .for_each(|v| *v = a[rng.random_range(0..a.len())]);
            xb.iter_mut()
                .for_each(|v| *v = b[rng.random_range(0..b.len())]);
            gain(&xa, &xb)
        })
        .collect();
    gains.sort_by(|x, y| x.total_cmp(y));
    Some((gain(a, b), quantile(&gains, 0.025), quantile(&gains, 0.975)))
}

/// Journaled trials by origin word (`Origin::as_str`: baseline, initial, model, confirm,
/// decision, ablation, ...). Counted on the journal: the report pools re-measurements.
pub fn trials_with_origin(records: &[TrialRecord], origin: &str) -> usize {
    records
        .iter()
        .filter(|r| r.origin.as_str() == origin)
        .count()
}

/// The commit the benchmark was built from.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------------------------------------
// Truth: the simulator's noise-free model.
// ---------------------------------------------------------------------------------------------

/// Settings that change what the model writes (role `output`), from the domain table the
/// tuner itself uses (src/domain/roles.rs).
pub fn is_output(name: &str) -> bool {
    ollama_tuner::domain::roles::facts("ollama", name).role
        == ollama_tuner::engine::space::Role::Output
}

/// The options the simulator runs for a configuration: each value sent as JSON; a value that
/// is not a number or a boolean (`auto`) is not sent, so the server decides.
pub fn sim_options(p: &Profile, config: &Config) -> SimOptions {
    let mut o = p.default_options();
    let map: serde_json::Map<String, Value> = config
        .iter()
        .filter(|(_, v)| !matches!(v, ParamValue::Str(_)))
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    let _ = o.apply(&map);
    o
}

pub fn expected(p: &Profile, config: &Config) -> Option<Expected> {
    SimModel::expected(p, &sim_options(p, config)).ok()
}

/// Noise-free decode tok/s (0 when the configuration does not load).
pub fn true_decode(p: &Profile, config: &Config) -> f64 {
    expected(p, config).map_or(0.0, |e| e.decode_tps)
}

pub fn int_range(study: &Study, name: &str, fixed: i64) -> (i64, i64) {
    match study.space.get(name).map(|p| &p.kind) {
        Some(ParamKind::Int { low, high, .. }) => (*low, *high),
        Some(ParamKind::Categorical { choices }) => {
            let v: Vec<i64> = choices
                .iter()
                .filter_map(|c| c.as_f64())
                .map(|x| x as i64)
                .collect();
            (
                *v.iter().min().unwrap_or(&fixed),
                *v.iter().max().unwrap_or(&fixed),
            )
        }
        _ => (fixed, fixed),
    }
}

/// The best configuration that meets the study's requirements: speed settings over their
/// ranges, num_ctx over the study's range (its low bound is what the user needs), output
/// settings fixed at the baseline's (the user's) values, constraints on the noise-free outcome.
pub fn best_meeting_requirements(
    p: &Profile,
    study: &Study,
    baseline: &Config,
) -> Option<(SimOptions, Expected)> {
    let user = sim_options(p, baseline);
    let stock = p.default_options();
    let (g_lo, g_hi) = int_range(study, "num_gpu", stock.num_gpu);
    let space = SearchBox {
        num_gpu: (g_lo.min(user.num_gpu), g_hi),
        num_ctx: int_range(study, "num_ctx", user.num_ctx),
        num_batch: int_range(study, "num_batch", user.num_batch),
        num_thread: int_range(study, "num_thread", user.num_thread),
        temperature: (user.temperature, user.temperature),
        top_p: (user.top_p, user.top_p),
        top_k: (user.top_k, user.top_k),
    };
    let constraints = study.objective.constraints.clone();
    let accept = move |_: &SimOptions, e: &Expected| {
        constraints.iter().all(|c| {
            let v = match c.metric.metric.as_str() {
                "ttft" => e.ttft_s(CONSTRAINT_PROMPT_TOKENS) + e.token_s,
                "decode_tps" => e.decode_tps,
                "prefill_tps" => e.prefill_tps,
                _ => return true,
            };
            c.violation(v) <= 0.0
        })
    };
    best_decode_where(p, &space, &accept)
}

/// Output settings of `config` that differ from the baseline's.
pub fn output_changes(config: &Config, baseline: &Config) -> Vec<String> {
    config
        .iter()
        .filter(|(k, v)| is_output(k) && !same_value(Some(v), baseline.get(*k)))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

pub fn same_value(a: Option<&ParamValue>, b: Option<&ParamValue>) -> bool {
    match (a.and_then(|v| v.as_f64()), b.and_then(|v| v.as_f64())) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

/// `PARAMETER name value` lines of a Modelfile whose value differs from the baseline's (an
/// option the baseline leaves to the server, `auto` or absent, differs when it is written).
pub fn export_changes(modelfile: &str, baseline: &Config) -> Vec<String> {
    modelfile
        .lines()
        .filter_map(|l| l.strip_prefix("PARAMETER "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| *name != "stop")
        .filter(|(name, value)| {
            let written = value
                .trim()
                .parse::<f64>()
                .map(ParamValue::Float)
                .unwrap_or_else(|_| ParamValue::Str(value.trim().to_string()));
            !same_value(Some(&written), baseline.get(*name))
        })
        .map(|(name, value)| format!("{name}={}", value.trim()))
        .collect()
}

/// The largest num_ctx of the study's range (powers of 2^(1/4)) with which `config` stays
/// within `WITHIN` of `best`; whether the recommended num_ctx is at least half of it.
pub fn largest_tied_ctx(
    p: &Profile,
    study: &Study,
    config: &Config,
    best: f64,
) -> (Option<i64>, bool) {
    let Some(ctx) = config
        .get("num_ctx")
        .and_then(|v| v.as_f64())
        .map(|c| c as i64)
    else {
        return (None, true);
    };
    let (lo, hi) = int_range(study, "num_ctx", ctx);
    let mut largest = None;
    let mut c = lo as f64;
    while c <= hi as f64 * 1.0001 {
        let n = (c.round() as i64).min(hi);
        let mut cfg = config.clone();
        cfg.insert("num_ctx".into(), ParamValue::Int(n));
        if true_decode(p, &cfg) >= (1.0 - WITHIN) * best {
            largest = Some(n);
        }
        c *= 2f64.powf(0.25);
    }
    let ok = largest.is_none_or(|l| ctx * 2 >= l || ctx >= hi);
    (largest, ok)
}

// ---------------------------------------------------------------------------------------------
// The memory wall (issue 13), judged independently of the optimizer's own rule: on Ollama's
// options a configuration needs at least as much memory as another when its effective num_gpu,
// num_ctx and num_batch are all at least as large (docs/memory.md).
// ---------------------------------------------------------------------------------------------

const MEMORY_OPTIONS: &[&str] = &["num_gpu", "num_ctx", "num_batch"];

/// Whether `a` needs at least as much memory as `b` (every memory option known in both).
fn needs_at_least(a: &Config, b: &Config) -> bool {
    MEMORY_OPTIONS.iter().all(|k| {
        match (
            a.get(*k).and_then(|v| v.as_i64()),
            b.get(*k).and_then(|v| v.as_i64()),
        ) {
            (Some(x), Some(y)) => x >= y,
            _ => false,
        }
    })
}

/// What a run's journal shows of the memory wall: (failed / all trials the optimizer proposed
/// after its initial design (origin "model"), trials the optimizer proposed that needed at
/// least as much memory as an earlier out-of-memory trial, out-of-memory failures in all).
pub fn memory_wall_stats(records: &[TrialRecord]) -> (usize, usize, usize, usize) {
    use ollama_tuner::trial::{FailureKind, Origin};
    let mut oom: Vec<Config> = Vec::new();
    let (mut model, mut model_failed, mut dominated, mut ooms) = (0, 0, 0, 0);
    for r in records {
        let ran = r.effective_params();
        let proposed = matches!(r.origin, Origin::Model | Origin::Initial | Origin::Random);
        if proposed && oom.iter().any(|o| needs_at_least(ran, o)) {
            dominated += 1;
        }
        if r.origin == Origin::Model {
            model += 1;
            model_failed += usize::from(!r.is_ok());
        }
        if r.failure == Some(FailureKind::OutOfMemory) {
            ooms += 1;
            oom.push(ran.clone());
        }
    }
    (model_failed, model, dominated, ooms)
}
