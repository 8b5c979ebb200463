//! The overnight daemon under abuse: SIGKILL at random points and resume, SIGTERM, a torn journal
//! line, a second daemon on the same run, and the server going down mid-run.

use ollama_tuner::backend::ollama::OllamaBackend;
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::sim::{self, SimConfig};
use ollama_tuner::store::{RunDir, StopReason};
use ollama_tuner::study::parse_study;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;

use std::process::Command;
use std::time::{Duration, Instant};

mod daemon_support;

use daemon_support::{
    journal_numbers, run_args, sigterm_after_trials, sim_study, tuner, write_study, BIN,
};

#[test]
fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(120, 0.002));
    let run = tmp.path().join("state").join("k");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut kills = 0;
    let mut attempts = 0;
    let start = Instant::now();
    while kills < 25 && attempts < 80 {
        attempts += 1;
        let args = run_args(&study, "k", &[]);
        let mut child = tuner(&args, tmp.path()).spawn().unwrap();
        let delay = Duration::from_millis(rng.random_range(100..800));
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "run exited with {status}");
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
        }
        // State must be readable after every kill.
        if run.join("checkpoint.json").exists() {
            let c: serde_json::Value =
                serde_json::from_slice(&std::fs::read(run.join("checkpoint.json")).unwrap())
                    .expect("checkpoint.json readable");
            assert!(c["optimizer"].is_object());
        }
        if run.join("run.json").exists() {
            let _: serde_json::Value =
                serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap())
                    .expect("run.json readable");
        }
    }
    // Finish the budget.
    let out = tuner(
        &["resume", run.to_str().unwrap(), "--no-progress"],
        tmp.path(),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (numbers, skipped) = journal_numbers(&run);
    let unique: BTreeSet<usize> = numbers.iter().copied().collect();
    eprintln!(
        "{kills} SIGKILLs in {:.1} s; journal: {} trials, {} unique, {skipped} unreadable line(s)",
        start.elapsed().as_secs_f64(),
        numbers.len(),
        unique.len()
    );
    assert!(kills >= 25, "only {kills} kills landed mid-run");
    // The run ends when its budget is spent or, a little earlier, when the decision phase has
    // decided (docs/decision.md); either way every trial up to its end is in the journal once.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let n = numbers.len();
    match meta["stop_reason"].as_str() {
        Some("budget") => assert_eq!(n, 120, "budget completed"),
        Some("decided") => assert!((100..=120).contains(&n), "decided after {n} trials"),
        other => panic!("stopped with {other:?} after {n} trials"),
    }
    assert_eq!(
        unique.len(),
        numbers.len(),
        "no trial journaled twice: {numbers:?}"
    );
    assert_eq!(unique, (0..n).collect::<BTreeSet<_>>(), "no trial lost");
    assert_eq!(skipped, 0, "no unreadable journal line");
    let meta = RunDir::new(&run).read_meta().unwrap().unwrap();
    assert!(matches!(
        meta.stop_reason,
        Some(StopReason::Budget | StopReason::Decided)
    ));
}

#[test]
fn sigterm_exits_cleanly_with_checkpoint_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(500, 0.01));
    let args = run_args(&study, "t", &[]);
    let mut child = tuner(&args, tmp.path()).spawn().unwrap();
    let run = tmp.path().join("state").join("t");
    sigterm_after_trials(&mut child, &run, 2);
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    let rd = RunDir::new(&run);
    let meta = rd.read_meta().unwrap().unwrap();
    assert_eq!(meta.stop_reason, Some(StopReason::Interrupted));
    assert!(rd.read_checkpoint().unwrap().is_some());
    assert!(run.join("report.md").exists());
    let (numbers, _) = journal_numbers(&run);
    assert!(numbers.len() < 500);
    // The lock is released: status says no daemon.
    let out = Command::new(BIN)
        .args(["status", run.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not running"), "{text}");
    assert!(text.contains("interrupted"), "{text}");
}

/// `resume` keeps the `--trials` the run was started with (not the study file's budget), and a
/// `--trials` on the resume command line overrides it from then on.
#[test]
fn resume_keeps_the_trial_budget_of_the_original_run() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(500, 0.01));
    let args = run_args(&study, "b", &["--trials", "12"]);
    let mut child = tuner(&args, tmp.path()).spawn().unwrap();
    let run = tmp.path().join("state").join("b");
    sigterm_after_trials(&mut child, &run, 2);
    assert!(child.wait().unwrap().success());
    let interrupted_at = journal_numbers(&run).0.len();
    assert!(interrupted_at < 12, "the run finished before the signal");

    let resume = |extra: &[&str]| {
        let mut a = vec!["resume", run.to_str().unwrap(), "--no-progress"];
        a.extend_from_slice(extra);
        let out = tuner(&a, tmp.path()).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        RunDir::new(&run).read_meta().unwrap().unwrap()
    };
    let meta = resume(&[]);
    assert_eq!(
        journal_numbers(&run).0,
        (0..12).collect::<Vec<_>>(),
        "resumed from {interrupted_at} to the run's 12 trials, not the study's 500"
    );
    assert_eq!(meta.stop_reason, Some(StopReason::Budget));
    assert_eq!(meta.budget.trials, 12);
    let progress = meta.progress.expect("run.json progress");
    assert_eq!((progress.trials_done, progress.report_trials), (12, 12));

    // An explicit --trials on resume wins, and is kept for the next resume.
    let meta = resume(&["--trials", "14"]);
    assert_eq!(journal_numbers(&run).0.len(), 14);
    assert_eq!(meta.budget.trials, 14);
    resume(&[]);
    assert_eq!(journal_numbers(&run).0.len(), 14);
}

#[test]
fn torn_last_journal_line_is_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(4, 0.001));
    let args = run_args(&study, "j", &[]);
    assert!(tuner(&args, tmp.path()).status().unwrap().success());
    let run = tmp.path().join("state").join("j");
    // Power loss while writing trial 4.
    let mut text = std::fs::read_to_string(run.join("trials.jsonl")).unwrap();
    text.push_str(r#"{"trial":4,"origin":"model","params":{"num_"#);
    std::fs::write(run.join("trials.jsonl"), text).unwrap();
    let out = tuner(
        &[
            "resume",
            run.to_str().unwrap(),
            "--trials",
            "6",
            "--no-progress",
        ],
        tmp.path(),
    )
    .env("OLLAMA_TUNER_LOG", "warn")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("unreadable journal line"), "{stderr}");
    let (numbers, skipped) = journal_numbers(&run);
    assert_eq!(numbers, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(skipped, 1);
}

#[test]
fn a_second_daemon_on_the_same_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(500, 0.01));
    let args = run_args(&study, "l", &[]);
    let mut first = tuner(&args, tmp.path()).spawn().unwrap();
    let run = tmp.path().join("state").join("l");
    let t0 = Instant::now();
    while !run.join("run.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = tuner(&args, tmp.path()).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another"));
}

#[test]
fn resuming_a_changed_study_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(3, 0.001));
    let args = run_args(&study, "c", &[]);
    assert!(tuner(&args, tmp.path()).status().unwrap().success());
    std::fs::write(
        &study,
        sim_study(5, 0.001).replace("high = 1.5", "high = 1.2"),
    )
    .unwrap();
    let out = tuner(&args, tmp.path()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let forced = run_args(&study, "c", &["--force"]);
    assert!(tuner(&forced, tmp.path()).status().unwrap().success());
    assert_eq!(
        journal_numbers(&tmp.path().join("state").join("c")).0.len(),
        5
    );
}

/// The server goes away for a while in the middle of a run: the run waits, comes back by itself,
/// and no trial is recorded as failed because of the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_outage_mid_run_is_waited_out() {
    let tmp = tempfile::tempdir().unwrap();
    let server = sim::start(
        SimConfig {
            profile: "gemma3-4b".into(),
            seed: 1,
            time_scale: 0.005,
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let text = sim_study(12, 0.005).replace(
        "kind = \"simulator\"\nprofile = \"gemma3-4b\"\ntime_scale = 0.005",
        &format!("kind = \"ollama\"\nurl = \"{}\"", server.url()),
    );
    let path = write_study(tmp.path(), &text);
    let study = parse_study(&path, &text).unwrap();
    let backend = OllamaBackend::new(
        &server.url(),
        &study.model,
        "30m",
        study.protocol.clone(),
        study.runner_params.clone(),
    )
    .unwrap();
    let control = server.control.clone();
    let run_dir = tmp.path().join("state").join("o");
    let watch_dir = run_dir.clone();
    // Take the server down after the fourth trial, for two seconds.
    let outage = tokio::spawn(async move {
        loop {
            let n = RunDir::new(&watch_dir)
                .read_journal()
                .map(|j| j.records.len())
                .unwrap_or(0);
            if n >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        control.stop_listener().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        control.restart_listener().await.unwrap();
    });
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    let opts = RunOptions {
        state_dir: tmp.path().join("state"),
        run_id: Some("o".into()),
        progress: false,
        ..RunOptions::default()
    };
    let out = run::run(study, &text, &path, opts, Box::new(backend), rx)
        .await
        .unwrap();
    outage.await.unwrap();
    assert_eq!(out.stop, StopReason::Budget);
    let j = RunDir::new(&run_dir).read_journal().unwrap();
    assert_eq!(j.records.len(), 12);
    let failed: Vec<_> = j
        .records
        .iter()
        .filter(|r| !r.is_ok())
        .map(|r| (r.trial, r.error.clone()))
        .collect();
    // Out-of-memory configurations are legitimately failed; nothing may fail for the outage.
    for (t, e) in &failed {
        let e = e.clone().unwrap_or_default();
        assert!(
            !e.contains("connect") && !e.contains("stream"),
            "trial {t} blamed for the outage: {e}"
        );
    }
    let meta = RunDir::new(&run_dir).read_meta().unwrap().unwrap();
    assert!(
        meta.outage_seconds > 0.5,
        "outage not accounted: {}",
        meta.outage_seconds
    );
    server.shutdown().await;
}
