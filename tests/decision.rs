//! Whole runs on the simulator with the decision phase: the phase runs at the end of the
//! budget, the report's rank 1 is its recommendation, output settings keep the user's values,
//! `decide` settles a finished run, and every reader names the same configuration.

use ollama_tuner::backend;
use ollama_tuner::decided;
use ollama_tuner::engine::space::Role;
use ollama_tuner::export::{export, ExportFormat};
use ollama_tuner::report;
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::store::RunDir;
use ollama_tuner::study::parse_study;
use ollama_tuner::trial::Origin;
use std::path::Path;

fn study_text(trials: usize, seed: u64, decision: &str) -> String {
    format!(
        r#"
[study]
name = "decision-test"
model = "gemma3:4b"
seed = {seed}

[backend]
kind = "simulator"
profile = "gemma3-4b"
time_scale = 0.001

[budget]
trials = {trials}
max_consecutive_failures = 50

[protocol]
repeats = 3
warmup = 1
num_predict = 32

[decision]
{decision}

[params.num_gpu]
type = "int"
low = 0
high = 999
default = "auto"

[params.num_batch]
type = "int"
low = 16
high = 2048
log = true
default = "auto"

[params.temperature]
type = "float"
low = 0.0
high = 1.5
default = 0.8

[params.top_k]
type = "int"
low = 1
high = 100
default = 40
"#
    )
}

async fn run_study(dir: &Path, text: &str, opts: RunOptions) -> run::RunOutcome {
    let path = dir.join("study.toml");
    std::fs::write(&path, text).unwrap();
    let study = parse_study(&path, text).unwrap();
    let backend = backend::create(&study).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    run::run(study, text, &path, opts, backend, rx)
        .await
        .unwrap()
}

fn opts(dir: &Path, id: &str) -> RunOptions {
    RunOptions {
        state_dir: dir.join("state"),
        run_id: Some(id.into()),
        progress: false,
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_phase_names_rank_1_and_keeps_output_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let text = study_text(40, 1, "");
    let out = run_study(tmp.path(), &text, opts(tmp.path(), "d")).await;
    let run = RunDir::new(&out.run_dir);
    let records = run.read_journal().unwrap().records;
    let in_phase: Vec<_> = records
        .iter()
        .filter(|r| matches!(r.origin, Origin::Decision | Origin::Ablation))
        .collect();
    assert!(in_phase.len() >= 4, "{} decision trials", in_phase.len());
    assert!(
        in_phase[0].notes.contains_key(decided::PLAN_NOTE),
        "the first trial of the phase carries its plan"
    );
    assert!(records.len() <= 40);

    let rep = report::analyse(&run).unwrap();
    let d = rep.decision.as_ref().expect("a decision section");
    let rank1 = rep.best_row().expect("a rank 1");
    assert_eq!(rank1.record.params, d.result.recommendation);
    // Output settings keep the user's values.
    for p in rep
        .meta
        .space
        .params
        .iter()
        .filter(|p| p.role == Role::Output)
    {
        assert_eq!(
            d.result.recommendation.get(&p.name),
            d.plan.baseline.get(&p.name),
            "{} changed",
            p.name
        );
    }
    let md = report::render(&rep, report::ReportFormat::Markdown);
    assert!(md.contains("## Verdict"));
    let modelfile = export(&run, ExportFormat::Modelfile, 1).unwrap();
    for p in ["temperature", "top_k"] {
        assert!(
            !modelfile
                .lines()
                .any(|l| l.starts_with(&format!("PARAMETER {p} "))),
            "{p} exported:\n{modelfile}"
        );
    }
    // The end-of-run summary names the report's rank 1.
    assert_eq!(out.best.as_ref().map(|b| b.trial), Some(rank1.trial()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_settles_a_run_that_had_no_decision_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let text = study_text(20, 2, "enabled = false");
    let out = run_study(tmp.path(), &text, opts(tmp.path(), "n")).await;
    let run = RunDir::new(&out.run_dir);
    assert!(report::analyse(&run).unwrap().decision.is_none());
    let mut o = opts(tmp.path(), "n");
    o.decide = Some(12);
    o.trials = Some(32);
    let out = run_study(tmp.path(), &text, o).await;
    let run = RunDir::new(&out.run_dir);
    let rep = report::analyse(&run).unwrap();
    let d = rep.decision.as_ref().expect("decide ran a phase");
    assert!(d.race_trials + d.ablation_trials <= 12);
    // 12 trials: a race and the ablation after it, or the leader's ablation alone (the race
    // skipped for the budget, docs/decision.md "Budget"); either way rounds were measured.
    assert!(d.race_trials >= 2 || d.result.race_skipped);
    assert!(d.race_trials + d.ablation_trials >= 6);
    assert_eq!(
        rep.best_row().map(|r| r.record.params.clone()),
        Some(d.result.recommendation.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recheck_measures_the_recommendation_and_the_baseline_again() {
    let tmp = tempfile::tempdir().unwrap();
    let text = study_text(40, 3, "");
    let out = run_study(tmp.path(), &text, opts(tmp.path(), "r")).await;
    let run = RunDir::new(&out.run_dir);
    let rep = report::analyse(&run).unwrap();
    let study = parse_study(&tmp.path().join("study.toml"), &text).unwrap();
    let backend = backend::create(&study).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    let r = run::recheck(&run, &study, &rep, 4, backend, rx)
        .await
        .unwrap();
    assert_eq!(r.rounds, 4);
    assert_eq!(r.failed, 0);
    // The same simulated server: nothing regressed.
    assert!(!r.regressed, "{r:?}");
    assert!(r.level_now.is_some());
    if !r.recommendation_is_baseline {
        assert!(r.gain_now.is_some());
    }
    // Journal first: every recheck measurement is in rechecks.jsonl, the run's journal unchanged.
    let rechecks = run.read_rechecks().unwrap().records;
    let per_round = if r.recommendation_is_baseline { 1 } else { 2 };
    assert_eq!(rechecks.len(), 4 * per_round);
    assert_eq!(run.read_journal().unwrap().records.len(), out.counts.trials);
}

/// Rewrite tests/fixtures/run_decision, the journal behind the report snapshots of the decision
/// sections (run on purpose only: `cargo test --test decision -- --ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn regenerate_decision_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let text = study_text(40, 1, "");
    let out = run_study(tmp.path(), &text, opts(tmp.path(), "run_decision")).await;
    let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run_decision");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).unwrap();
    for name in ["run.json", "trials.jsonl", "study.toml"] {
        let from = out.run_dir.join(name);
        if from.exists() {
            std::fs::copy(&from, dest.join(name)).unwrap();
        }
    }
}

/// num_gpu 999, 80 and 60 all mean "every layer on the GPU" on this model (34 layers): a leader
/// at 60 runs exactly as the baseline at 999, so it is the baseline and no arm of the race
/// (racing one server configuration against itself can only produce a false difference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_runs_as_the_baseline_is_not_raced() {
    let text = r#"
[study]
name = "same-as-baseline"
model = "gemma3:4b"
seed = 3

[backend]
kind = "simulator"
profile = "gemma3-4b"
time_scale = 0.001

[budget]
trials = 30

[protocol]
repeats = 3
warmup = 1
num_predict = 32

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
"#;
    let tmp = tempfile::tempdir().unwrap();
    let out = run_study(tmp.path(), text, opts(tmp.path(), "s")).await;
    let records = RunDir::new(&out.run_dir).read_journal().unwrap().records;
    let ran = |params: &ollama_tuner::engine::space::Config| {
        records
            .iter()
            .find(|r| &r.params == params && r.is_ok())
            .map(|r| r.effective_params().clone())
    };
    let baseline = records
        .iter()
        .find(|r| r.origin == Origin::Baseline)
        .unwrap();
    let plan: ollama_tuner::engine::decision::Plan = serde_json::from_value(
        records
            .iter()
            .find_map(|r| r.notes.get(decided::PLAN_NOTE))
            .expect("a decision phase")
            .clone(),
    )
    .unwrap();
    for c in &plan.candidates {
        let mut r = ran(c).unwrap_or_else(|| c.clone());
        r.insert("temperature".into(), baseline.params["temperature"].clone());
        assert_ne!(
            &r,
            baseline.effective_params(),
            "candidate {c:?} runs as the baseline"
        );
    }
}
