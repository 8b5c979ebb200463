//! Two spellings of one server configuration are one row and one GP point: on a fixed journal
//! where the server ran three different requests identically (num_batch 1024, 700 and 512 at a
//! 512 context, all as num_batch 512), the end-of-run summary, run.json, `status`, report.md,
//! report.json and `export` show one configuration as it ran, its samples pooled, and the
//! optimizer rebuilt from the journal learns one point.

mod common;

use common::decode_trial;
use ollama_tuner::engine::optimizer::Optimizer;
use ollama_tuner::engine::space::{Config, ParamValue};
use ollama_tuner::store::RunDir;
use ollama_tuner::study::{is_positive_metric, parse_study};
use ollama_tuner::trial::{tell_record, Origin, TrialRecord};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ollama-tuner");

const STUDY: &str = r#"
[study]
name = "spellings"
model = "gemma3:4b"
seed = 1

[backend]
kind = "simulator"
profile = "gemma3-4b"
time_scale = 0.01

[budget]
trials = 6
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

/// llama.cpp runs a batch no larger than the context: trials 1 and 2 asked num_batch 1024 and
/// 700 at num_ctx 512 and ran as num_batch 512, which trial 3 asked. Trial 5 ran out of memory.
fn journal() -> Vec<TrialRecord> {
    let ran = Some(cfg(512, 512));
    vec![
        decode_trial(
            0,
            Origin::Baseline,
            cfg(2048, 512),
            None,
            &[40.0, 41.0, 42.0],
        ),
        decode_trial(
            1,
            Origin::Initial,
            cfg(512, 1024),
            ran.clone(),
            &[50.0, 51.0, 52.0],
        ),
        decode_trial(2, Origin::Model, cfg(512, 700), ran, &[52.0, 53.0, 54.0]),
        decode_trial(3, Origin::Model, cfg(512, 512), None, &[51.0, 52.0, 53.0]),
        decode_trial(
            4,
            Origin::Initial,
            cfg(4096, 256),
            None,
            &[45.0, 46.0, 47.0],
        ),
        decode_trial(5, Origin::Model, cfg(8192, 1024), None, &[]),
    ]
}

fn tuner(args: &[&str], cwd: &Path) -> String {
    let out: Output = Command::new(BIN)
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn requests_the_server_ran_identically_are_one_row_and_one_point() {
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

    // The run's end (its budget is spent): one configuration of three requests.
    let summary = tuner(&["resume", run_arg, "--no-progress"], tmp.path());
    let counts = "6 trials: 3 configurations, 2 re-measurements (model 2), 1 failed";
    assert!(summary.contains(&format!("trials:  {counts}")), "{summary}");
    let best = "trial 1 (measured 3 times: trials 1, 2, 3; 3 requested configurations ran as it)";
    assert!(
        summary.contains(&format!("best:    {best} with decode_tps = 52.0000")),
        "{summary}"
    );
    assert!(summary.contains("num_batch = 512"), "{summary}");

    let meta = RunDir::new(&run).read_meta().unwrap().unwrap();
    let p = meta.progress.unwrap();
    assert_eq!((p.best_trial, p.best_objective), (Some(1), Some(52.0)));
    assert_eq!(p.best_also, vec![2, 3]);
    assert_eq!((p.configurations, p.remeasurements), (3, 2));

    let status = tuner(&["status", run_arg], tmp.path());
    assert!(
        status.contains(&format!(
            "best:      decode_tps = 52.0000 ({best}: num_batch=512 num_ctx=512)"
        )),
        "{status}"
    );

    // report.md: the row shows what ran and the requests that ran as it.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("| 1 | #1+#2+#3 | 512 | 512 (asked 1024, 700) |"),
        "{md}"
    );
    assert!(
        md.contains("**Best configuration: rank 1, trial #1+#2+#3**: `num_ctx=512 num_batch=512`"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let trials = json["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4, "3 configurations and the failure");
    assert_eq!(trials[0]["trial"], 1);
    assert_eq!(trials[0]["also"], serde_json::json!([2, 3]));
    assert_eq!(trials[0]["objective"], 52.0);
    assert_eq!(trials[0]["objective_n"], 9);
    let requested = trials[0]["requested"].as_array().unwrap();
    assert_eq!(requested.len(), 3);
    assert_eq!(requested[0]["params"]["num_batch"], 1024);
    assert_eq!(requested[1]["trials"], serde_json::json!([2]));
    assert!(trials[1].get("requested").is_none(), "one request only");
    assert_eq!(json["counts"]["configurations"], 3);
    assert_eq!(json["convergence"][2]["remeasures"], 1);

    // export: rank 1 as it ran (num_batch 512 is the baseline's, so nothing to set for it).
    let exported = tuner(&["export", run_arg, "--format", "modelfile"], tmp.path());
    assert!(exported.contains("rank 1 of 3: trial #1\n"), "{exported}");
    assert!(exported.contains("PARAMETER num_ctx 512\n"), "{exported}");
    assert!(!exported.contains("PARAMETER num_batch"), "{exported}");

    // The optimizer rebuilt from the journal: the three requests are one point.
    let study = parse_study(&run.join("study.toml"), STUDY).unwrap();
    let mut opt = Optimizer::new(
        study.space.clone(),
        study.objective.clone(),
        is_positive_metric,
        study.optimizer.clone(),
        study.runner_params.clone(),
        study.seed,
    );
    for r in journal() {
        tell_record(&mut opt, &r);
    }
    // Six trials told, each one observation; the three of the pooled row are at one point.
    assert_eq!(opt.n_observations(), 6);
    let leaders = opt.leaders(10);
    assert_eq!(leaders.len(), 3, "three configurations ran: {leaders:?}");
    assert!(leaders.contains(&cfg(512, 512)), "{leaders:?}");
    assert!(
        !leaders.contains(&cfg(512, 1024)) && !leaders.contains(&cfg(512, 700)),
        "{leaders:?}"
    );
    assert!(opt.was_measured(&cfg(512, 1024)) && opt.was_measured(&cfg(512, 700)));
}
