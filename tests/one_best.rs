//! One best, one count: on one fixed journal whose best single trial is not the best
//! configuration once re-measurements are pooled, the end-of-run summary, run.json's progress,
//! `status`, report.md, report.json and `export` name the same configuration and count the
//! trials the same way; a finished run shows no time left.

mod common;

use ollama_tuner::engine::space::{Config, ParamValue};
use ollama_tuner::store::RunDir;
use ollama_tuner::trial::{Origin, TrialRecord};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ollama-tuner");

const STUDY: &str = r#"
[study]
name = "one-best"
model = "gemma3:4b"
seed = 1

[backend]
kind = "simulator"
profile = "gemma3-4b"
time_scale = 0.01

[budget]
trials = 8
wall_time = "8h"

[protocol]
repeats = 3
warmup = 1
num_predict = 32

[params.num_ctx]
type = "int"
low = 512
high = 8192
default = 2048

[params.num_batch]
type = "int"
low = 32
high = 1024
default = 512
"#;

fn cfg(ctx: i64, batch: i64) -> Config {
    Config::from([
        ("num_ctx".to_string(), ParamValue::Int(ctx)),
        ("num_batch".to_string(), ParamValue::Int(batch)),
    ])
}

fn trial(n: usize, origin: Origin, params: Config, decode: &[f64]) -> TrialRecord {
    common::decode_trial(n, origin, params, None, decode)
}

/// Trial 2 has the best single measurement (median 55) but its re-measurement (trial 4)
/// pools it to 50; configuration A (trials 1 and 5) leads at 51. Baseline Z is re-measured by
/// the decision phase (trial 7); trial 6 ran out of memory.
fn journal() -> Vec<TrialRecord> {
    let (z, a, b, c) = (
        cfg(2048, 512),
        cfg(4096, 256),
        cfg(1024, 1024),
        cfg(512, 64),
    );
    vec![
        trial(0, Origin::Baseline, z.clone(), &[40.0, 41.0, 42.0]),
        trial(1, Origin::Initial, a.clone(), &[50.0, 51.0, 52.0]),
        trial(2, Origin::Initial, b.clone(), &[54.0, 55.0, 56.0]),
        trial(3, Origin::Model, c, &[45.0, 46.0, 47.0]),
        trial(4, Origin::Confirm, b, &[44.0, 45.0, 46.0]),
        trial(5, Origin::Confirm, a, &[50.0, 51.0, 52.0]),
        trial(6, Origin::Model, cfg(8192, 1024), &[]),
        trial(7, Origin::Decision, z, &[41.0, 42.0, 43.0]),
    ]
}

fn tuner(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("OLLAMA_TUNER_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_reader_names_the_same_best_and_counts_the_same_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("state").join("t");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("study.toml"), STUDY).unwrap();
    let mut lines = String::new();
    for r in journal() {
        lines.push_str(&serde_json::to_string(&r).unwrap());
        lines.push('\n');
    }
    std::fs::write(run.join("trials.jsonl"), lines).unwrap();
    let run_arg = run.to_str().unwrap();

    // Resuming a run whose budget is spent ends it at once: the end-of-run summary, run.json
    // and the report set, from the fixed journal.
    let summary = stdout(&tuner(&["resume", run_arg, "--no-progress"], tmp.path()));
    let counts = "8 trials: 4 configurations, 3 re-measurements (confirm 2, decision 1), 1 failed";
    assert!(summary.contains(&format!("trials:  {counts}")), "{summary}");
    assert!(
        summary
            .contains("best:    trial 1 (measured 2 times: trials 1, 5) with decode_tps = 51.0000"),
        "{summary}"
    );
    // Against the pooled baseline (median of 40..43 = 41.5).
    assert!(
        summary.contains(&format!(
            "{:+.1}% against the baseline (trial 0)",
            (51.0 / 41.5 - 1.0) * 100.0
        )),
        "{summary}"
    );

    // run.json's progress.
    let meta = RunDir::new(&run).read_meta().unwrap().unwrap();
    assert!(meta.finished_at.is_some());
    let p = meta.progress.unwrap();
    assert_eq!((p.best_trial, p.best_objective), (Some(1), Some(51.0)));
    assert_eq!(p.best_also, vec![5]);
    assert_eq!(
        (
            p.trials_done,
            p.configurations,
            p.remeasurements,
            p.trials_failed
        ),
        (8, 4, 3, 1)
    );
    assert_eq!(
        p.remeasured_by_origin,
        [("confirm".to_string(), 2), ("decision".to_string(), 1)].into()
    );

    // status: the same best and count, and nothing left of a finished run's budget.
    let status = stdout(&tuner(&["status", run_arg], tmp.path()));
    assert!(
        status.contains(&format!("trials:    {counts} (budget 8)")),
        "{status}"
    );
    assert!(
        status.contains(
            "best:      decode_tps = 51.0000 (trial 1 (measured 2 times: trials 1, 5): num_batch=256 num_ctx=4096)"
        ),
        "{status}"
    );
    assert!(!status.contains("left:"), "{status}");
    assert!(!status.contains("time left"), "{status}");

    // report.md and report.json.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("**Best configuration: rank 1, trial #1+#5**"),
        "{md}"
    );
    assert!(
        md.contains(
            "| Trials run | 8: 4 configurations (4 met the constraints, 0 violated a constraint), \
             3 re-measurements pooled into them (confirm 2, decision 1), 1 failed |"
        ),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["best_trial"], 1);
    assert_eq!(json["trials"][0]["rank"], 1);
    assert_eq!(json["trials"][0]["trial"], 1);
    assert_eq!(json["trials"][0]["objective"], 51.0);
    let c = &json["counts"];
    assert_eq!(
        (
            &c["total"],
            &c["configurations"],
            &c["remeasurements"],
            &c["failed"]
        ),
        (
            &serde_json::json!(8),
            &serde_json::json!(4),
            &serde_json::json!(3),
            &serde_json::json!(1)
        )
    );
    // One convergence entry per trial, re-measurements included and marked.
    let conv = json["convergence"].as_array().unwrap();
    assert_eq!(conv.len(), 8);
    assert_eq!(conv[4]["origin"], "confirm");
    assert_eq!(conv[4]["remeasures"], 2);
    assert_eq!(conv[4]["objective"], 45.0);
    // After trial 2 the best is its single value; its re-measurement hands the lead to trial 1.
    assert_eq!(
        (&conv[2]["best_trial"], &conv[2]["best_so_far"]),
        (&2.into(), &55.0.into())
    );
    assert_eq!(
        (&conv[4]["best_trial"], &conv[4]["best_so_far"]),
        (&1.into(), &51.0.into())
    );
    assert_eq!(conv[7]["best_trial"], 1);

    // export writes trial 1's configuration.
    let exported = stdout(&tuner(
        &["export", run_arg, "--format", "modelfile"],
        tmp.path(),
    ));
    assert!(exported.contains("rank 1 of 4: trial #1\n"), "{exported}");
    assert!(exported.contains("PARAMETER num_ctx 4096\n"), "{exported}");
    assert!(exported.contains("PARAMETER num_batch 256\n"), "{exported}");
}
