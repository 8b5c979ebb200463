//! Fixed run folders for the report and export tests.
//!
//! The committed fixtures under tests/fixtures/ are what the tests read (so a change in the
//! on-disk format shows up as a failing test, not as silently regenerated input). This module
//! builds the same runs from Rust values: `cargo test --test report_snapshots -- --ignored
//! regenerate_fixtures` rewrites them, and the llama.cpp variant is built on the fly.

#![allow(dead_code)]

use ollama_tuner::backend::BackendInfo;
use ollama_tuner::engine::space::{
    Config, Param, ParamKind, ParamValue, Prefer, Role, SearchSpace,
};
use ollama_tuner::engine::stats::{summarize, Sample};
use ollama_tuner::store::{RunDir, RunMeta, StopReason};
use ollama_tuner::study::{
    Budget, Constraint, Direction, MetricRef, Objective, Protocol, Transform,
};
use ollama_tuner::trial::{FailureKind, LoadRecord, Origin, Status, TrialRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An integer parameter; the context length is a requirement (src/domain's tables).
fn int(name: &str, low: i64, high: i64, log: bool, default: i64) -> Param {
    let requirement = name == "num_ctx" || name == "ctx_size";
    Param {
        name: name.into(),
        kind: ParamKind::Int {
            low,
            high,
            log,
            step: 1,
        },
        default: Some(ParamValue::Int(default)),
        role: if requirement {
            Role::Requirement
        } else {
            Role::Speed
        },
        prefer: requirement.then_some(Prefer::High),
        memory: Default::default(),
    }
}

fn time(minute: usize, second: usize) -> String {
    format!("2026-01-10T02:{minute:02}:{second:02}Z")
}

/// One trial with `decode_tps` / `ttft` / `prefill_tps` / `total` samples.
fn measured(
    trial: usize,
    origin: Origin,
    params: Config,
    decode: &[f64],
    ttft: &[f64],
    load: Option<f64>,
    objective: &Objective,
) -> TrialRecord {
    let samples: Vec<Sample> = decode
        .iter()
        .zip(ttft)
        .map(|(d, t)| {
            Sample::from([
                ("decode_tps".to_string(), *d),
                ("ttft".to_string(), *t),
                ("prefill_tps".to_string(), (900.0 / t).round()),
                ("total".to_string(), t + 128.0 / d),
            ])
        })
        .collect();
    let metrics = summarize(&samples);
    let value = metrics[&objective.metric.metric].get(objective.metric.stat);
    let feasible = objective
        .constraints
        .iter()
        .all(|c| c.violation(metrics[&c.metric.metric].get(c.metric.stat)) <= 0.0);
    let measure: f64 = samples.iter().map(|s| s["total"]).sum();
    let load_s = load.unwrap_or(0.0);
    TrialRecord {
        trial,
        origin,
        params,
        effective: None,
        status: Status::Ok,
        objective: Some(value),
        feasible,
        metrics,
        samples,
        failure: None,
        error: None,
        load: Some(LoadRecord {
            reloaded: load.is_some(),
            seconds: if load.is_some() { load_s } else { 0.0 },
        }),
        notes: BTreeMap::new(),
        started_at: time(trial * 3, 0),
        finished_at: time(trial * 3, 30),
        duration_s: ((load_s + measure + 2.5) * 1000.0).round() / 1000.0,
        acquisition: if origin == Origin::Model {
            Some(-1.25 - trial as f64 * 0.5)
        } else {
            None
        },
    }
}

fn failed(
    trial: usize,
    origin: Origin,
    params: Config,
    kind: FailureKind,
    error: &str,
) -> TrialRecord {
    TrialRecord {
        trial,
        origin,
        params,
        effective: None,
        status: Status::Failed,
        objective: None,
        feasible: false,
        metrics: BTreeMap::new(),
        samples: vec![],
        failure: Some(kind),
        error: Some(error.into()),
        load: None,
        notes: BTreeMap::new(),
        started_at: time(trial * 3, 0),
        finished_at: time(trial * 3, 20),
        duration_s: 20.0,
        acquisition: None,
    }
}

fn cfg(ctx: i64, gpu: i64, batch: i64, temp: f64) -> Config {
    Config::from([
        ("num_ctx".to_string(), ParamValue::Int(ctx)),
        ("num_gpu".to_string(), ParamValue::Int(gpu)),
        ("num_batch".to_string(), ParamValue::Int(batch)),
        ("temperature".to_string(), ParamValue::Float(temp)),
    ])
}

/// An overnight Ollama run of 8 trials: a baseline, repeats, two statistically tied top
/// configurations (#3 and #4), a single-request trial (#6), a constraint-violating trial (#1)
/// and two out-of-memory failures (#2, #7).
pub fn basic_run() -> (RunMeta, Vec<TrialRecord>) {
    let objective = Objective {
        metric: MetricRef::parse("decode_tps"),
        direction: Direction::Maximize,
        constraints: vec![Constraint::parse("ttft_p95 <= 0.5s").unwrap()],
        transform: Transform::Auto,
    };
    let space = SearchSpace {
        params: vec![
            int("num_ctx", 1024, 32768, true, 2048),
            int("num_gpu", 0, 35, false, 35),
            int("num_batch", 64, 1024, true, 512),
            Param {
                name: "temperature".into(),
                kind: ParamKind::Float {
                    low: 0.0,
                    high: 1.5,
                    log: false,
                    step: Some(0.1),
                },
                default: Some(ParamValue::Float(0.8)),
                role: Role::Output,
                prefer: None,
                memory: Default::default(),
            },
        ],
    };
    let meta = RunMeta {
        run_id: "20260110-020000-gemma3".into(),
        study_name: "gemma3-laptop".into(),
        model: "gemma3:4b".into(),
        seed: 42,
        study_file: "search_spaces/gemma3.toml".into(),
        backend: BackendInfo {
            backend: "ollama".into(),
            server_version: Some("0.12.3".into()),
            model: Some("gemma3:4b".into()),
            model_digest: Some(
                "a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a".into(),
            ),
            details: BTreeMap::from([
                ("block_count".to_string(), serde_json::json!(34)),
                ("context_length".to_string(), serde_json::json!(131072)),
                (
                    "model_details".to_string(),
                    serde_json::json!({"family": "gemma3", "parameter_size": "4.3B", "quantization_level": "Q4_K_M"}),
                ),
                ("num_gpu_capped_at".to_string(), serde_json::json!(35)),
                (
                    "url".to_string(),
                    serde_json::json!("http://127.0.0.1:11434"),
                ),
            ]),
            simulated: false,
        },
        space,
        objective: objective.clone(),
        budget: Budget {
            trials: 8,
            wall_time: Some(Duration::from_secs(8 * 3600)),
            max_consecutive_failures: 5,
        },
        protocol: Protocol {
            repeats: 5,
            ..Protocol::default()
        },
        runner_params: vec!["num_ctx".into(), "num_gpu".into(), "num_batch".into()],
        tuner_version: "0.1.0".into(),
        started_at: "2026-01-10T02:00:00Z".into(),
        updated_at: "2026-01-10T02:24:20Z".into(),
        finished_at: Some("2026-01-10T02:24:20Z".into()),
        stop_reason: Some(StopReason::Budget),
        stop_message: Some("8 of 8 trials done".into()),
        reloads: 6,
        reload_seconds: 19.35,
        outage_seconds: 0.0,
        elapsed_seconds: 1460.0,
        budget_overrides: None,
        progress: None,
        integrity: vec![],
    };
    let o = &objective;
    let records = vec![
        measured(
            0,
            Origin::Baseline,
            cfg(2048, 35, 512, 0.8),
            &[44.1, 44.5, 43.9, 44.3, 44.0],
            &[0.21, 0.22, 0.20, 0.23, 0.21],
            Some(3.2),
            o,
        ),
        measured(
            1,
            Origin::Initial,
            cfg(16384, 20, 128, 0.3),
            &[21.3, 22.0, 21.7, 21.1, 21.9],
            &[0.85, 0.90, 0.95, 0.88, 1.02],
            Some(5.1),
            o,
        ),
        failed(
            2,
            Origin::Initial,
            cfg(32768, 35, 1024, 1.2),
            FailureKind::OutOfMemory,
            "CUDA error: out of memory\ncurrent device: 0",
        ),
        measured(
            3,
            Origin::Initial,
            cfg(4096, 35, 256, 0.5),
            &[51.8, 52.4, 51.5, 52.9, 52.0],
            &[0.19, 0.19, 0.18, 0.20, 0.19],
            Some(3.4),
            o,
        ),
        measured(
            4,
            Origin::Model,
            cfg(4096, 35, 512, 0.4),
            &[52.3, 51.6, 52.7, 52.1, 51.9],
            &[0.18, 0.17, 0.18, 0.19, 0.18],
            Some(3.3),
            o,
        ),
        measured(
            5,
            Origin::Model,
            cfg(8192, 35, 512, 0.4),
            &[48.0, 48.6, 47.7, 48.3, 48.1],
            &[0.26, 0.25, 0.27, 0.26, 0.28],
            Some(4.35),
            o,
        ),
        // Only one of five requests answered before the server restarted: spread unknown.
        measured(
            6,
            Origin::Model,
            cfg(1024, 30, 512, 0.6),
            &[50.7],
            &[0.15],
            None,
            o,
        ),
        failed(
            7,
            Origin::Model,
            cfg(24576, 35, 512, 0.4),
            FailureKind::OutOfMemory,
            "model requires more system memory (9.1 GiB) than is available (7.6 GiB)",
        ),
    ];
    (meta, records)
}

/// A command-backend run (generic metric `value`, minimized) where every trial failed.
pub fn nofeasible_run() -> (RunMeta, Vec<TrialRecord>) {
    let objective = Objective {
        metric: MetricRef::parse("value"),
        direction: Direction::Minimize,
        constraints: vec![],
        transform: Transform::Auto,
    };
    let space = SearchSpace {
        params: vec![
            Param {
                name: "x".into(),
                kind: ParamKind::Float {
                    low: -5.0,
                    high: 10.0,
                    log: false,
                    step: None,
                },
                default: Some(ParamValue::Float(0.0)),
                role: Role::Speed,
                prefer: None,
                memory: Default::default(),
            },
            Param {
                name: "mode".into(),
                kind: ParamKind::Categorical {
                    choices: vec![
                        ParamValue::Str("fast".into()),
                        ParamValue::Str("safe".into()),
                    ],
                },
                default: Some(ParamValue::Str("safe".into())),
                role: Role::Speed,
                prefer: None,
                memory: Default::default(),
            },
        ],
    };
    let meta = RunMeta {
        run_id: "20260111-000000-branin".into(),
        study_name: "branin-broken".into(),
        model: "".into(),
        seed: 7,
        study_file: "search_spaces/command-branin.toml".into(),
        backend: BackendInfo {
            backend: "command".into(),
            ..BackendInfo::default()
        },
        space,
        objective,
        budget: Budget {
            trials: 20,
            wall_time: None,
            max_consecutive_failures: 4,
        },
        protocol: Protocol::default(),
        runner_params: vec![],
        tuner_version: "0.1.0".into(),
        started_at: "2026-01-11T00:00:00Z".into(),
        updated_at: "2026-01-11T00:01:20Z".into(),
        finished_at: Some("2026-01-11T00:01:20Z".into()),
        stop_reason: Some(StopReason::TooManyFailures),
        stop_message: Some(
            "4 trials in a row failed (budget.max_consecutive_failures); see the errors in the report".into(),
        ),
        reloads: 0,
        reload_seconds: 0.0,
        outage_seconds: 12.0,
        elapsed_seconds: 80.0,
        budget_overrides: None,
        progress: None,
        integrity: vec![],
    };
    let x = |v: f64, m: &str| {
        Config::from([
            ("x".to_string(), ParamValue::Float(v)),
            ("mode".to_string(), ParamValue::Str(m.into())),
        ])
    };
    let records = vec![
        failed(
            0,
            Origin::Baseline,
            x(0.0, "safe"),
            FailureKind::Error,
            "program exited with status 2: python3: can't open file 'branin.py'",
        ),
        failed(
            1,
            Origin::Initial,
            x(7.5, "fast"),
            FailureKind::Timeout,
            "no result within 30 s",
        ),
        failed(
            2,
            Origin::Initial,
            x(-1.25, "safe"),
            FailureKind::Error,
            "program exited with status 2: python3: can't open file 'branin.py'",
        ),
        failed(
            3,
            Origin::Initial,
            x(3.75, "fast"),
            FailureKind::Crashed,
            "killed by signal 9 (SIGKILL) | oom-killer?",
        ),
    ];
    (meta, records)
}

/// The basic run on llama.cpp names, for the llama-server export.
pub fn llamacpp_run() -> (RunMeta, Vec<TrialRecord>) {
    let (mut meta, records) = basic_run();
    meta.backend.backend = "llamacpp".into();
    meta.backend.server_version = Some("b6500".into());
    meta.backend.details = BTreeMap::from([(
        "model_path".to_string(),
        serde_json::json!("/models/gemma 3/gemma-3-270m-q4_k_m.gguf"),
    )]);
    let rename = |c: &Config| -> Config {
        Config::from([
            ("ctx_size".to_string(), c["num_ctx"].clone()),
            ("threads".to_string(), ParamValue::Int(2)),
            ("batch_size".to_string(), c["num_batch"].clone()),
            (
                "flash_attn".to_string(),
                ParamValue::Bool(c["num_ctx"].as_i64() != Some(2048)),
            ),
            ("cache_type_v".to_string(), ParamValue::Str("q8_0".into())),
            ("temperature".to_string(), c["temperature"].clone()),
        ])
    };
    meta.space = SearchSpace {
        params: vec![
            int("ctx_size", 1024, 32768, true, 2048),
            int("threads", 1, 2, false, 2),
            int("batch_size", 64, 1024, true, 512),
            Param {
                name: "flash_attn".into(),
                kind: ParamKind::Bool,
                default: Some(ParamValue::Bool(false)),
                role: Role::Speed,
                prefer: None,
                memory: Default::default(),
            },
            Param {
                name: "cache_type_v".into(),
                kind: ParamKind::Categorical {
                    choices: vec![
                        ParamValue::Str("f16".into()),
                        ParamValue::Str("q8_0".into()),
                    ],
                },
                default: Some(ParamValue::Str("q8_0".into())),
                role: Role::Speed,
                prefer: None,
                memory: Default::default(),
            },
            meta.space.params[3].clone(),
        ],
    };
    meta.runner_params = vec![
        "ctx_size".into(),
        "threads".into(),
        "batch_size".into(),
        "flash_attn".into(),
        "cache_type_v".into(),
    ];
    let records = records
        .into_iter()
        .map(|mut r| {
            r.params = rename(&r.params);
            r
        })
        .collect();
    (meta, records)
}

/// Write a run folder.
pub fn write_run(dir: &Path, meta: &RunMeta, records: &[TrialRecord]) -> RunDir {
    std::fs::create_dir_all(dir).unwrap();
    let run = RunDir::new(dir);
    let _ = std::fs::remove_file(run.file("trials.jsonl"));
    run.write_meta(meta).unwrap();
    for r in records {
        run.append_trial(r).unwrap();
    }
    run
}

/// Words of a POSIX shell command line with single-quoted words (what the export writes).
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                }
                in_word = false;
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// A journaled trial of the decode-speed tests (tests/one_best.rs, tests/effective_rows.rs):
/// one sample per value of `decode` (TTFT 0.2 s), run as `ran` when the server reported it;
/// no values is an out-of-memory failure.
pub fn decode_trial(
    n: usize,
    origin: Origin,
    params: Config,
    ran: Option<Config>,
    decode: &[f64],
) -> TrialRecord {
    let samples: Vec<Sample> = decode
        .iter()
        .map(|d| Sample::from([("decode_tps".to_string(), *d), ("ttft".to_string(), 0.2)]))
        .collect();
    let metrics = summarize(&samples);
    let ok = !decode.is_empty();
    TrialRecord {
        trial: n,
        origin,
        params,
        effective: ran,
        status: if ok { Status::Ok } else { Status::Failed },
        objective: metrics.get("decode_tps").map(|s| s.median),
        feasible: ok,
        metrics,
        samples,
        failure: (!ok).then_some(FailureKind::OutOfMemory),
        error: (!ok).then(|| "out of memory".to_string()),
        load: None,
        notes: Default::default(),
        started_at: format!("2026-01-10T02:{n:02}:00Z"),
        finished_at: format!("2026-01-10T02:{n:02}:30Z"),
        duration_s: 30.0,
        acquisition: None,
    }
}
