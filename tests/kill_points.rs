//! SIGKILL at named points of the run loop (the crash hook of src/store/crash.rs,
//! `OLLAMA_TUNER_CRASH_AT=<point>@<n>`), each followed by a resume: between the ask and the
//! checkpoint naming the trial in flight, after the journal write and before the checkpoint,
//! with half a journal line on disk, with an atomic write's temporary file written but not
//! renamed, in the middle of the report, at the start and at the end of a session. After every
//! kill the journal is checked: nothing journaled before is lost or changed, no trial number is
//! on two lines, the numbers run 0..n without a gap. The run is finished at the end and checked
//! once more.

mod daemon_support;

use daemon_support::{run_args, sim_study, tuner, write_study};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Points reached once per trial (or more: an atomic checkpoint write happens twice per trial).
const PER_TRIAL: [&str; 11] = [
    "after-ask",
    "atomic:checkpoint.json",
    "after-pending-checkpoint",
    "journal-torn",
    "after-journal",
    "after-checkpoint",
    "atomic:run.json",
    "after-meta",
    "in-report",
    "atomic:trials.csv",
    "atomic:report.md",
];
/// Points reached once per session.
const PER_SESSION: [&str; 3] = ["session-open", "after-replay", "after-begin"];
/// Points reached when a session stops (the budget spent).
const AT_STOP: [&str; 2] = ["before-finish", "after-finish"];

/// (number, line) of each parseable journal line; unparseable (torn) lines are counted apart.
fn journal(run: &Path) -> (Vec<(u64, String)>, usize) {
    let text = fs::read_to_string(run.join("trials.jsonl")).unwrap_or_default();
    let mut lines = Vec::new();
    let mut torn = 0;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(l)
            .ok()
            .and_then(|v| v["trial"].as_u64())
        {
            Some(n) => lines.push((n, l.to_string())),
            None => torn += 1,
        }
    }
    (lines, torn)
}

/// The journal's invariants: numbers unique and without a gap, what was there before kept.
fn check(run: &Path, before: &[(u64, String)], at: &str) -> Vec<(u64, String)> {
    let (lines, _) = journal(run);
    assert!(
        lines.len() >= before.len() && lines[..before.len()] == *before,
        "{at}: journaled trials lost or changed"
    );
    let numbers: Vec<u64> = lines.iter().map(|(n, _)| *n).collect();
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(
        unique.len(),
        numbers.len(),
        "{at}: a trial number twice: {numbers:?}"
    );
    assert_eq!(
        unique,
        (0..numbers.len() as u64).collect::<BTreeSet<_>>(),
        "{at}: a trial lost: {numbers:?}"
    );
    lines
}

#[test]
fn sigkill_at_named_points_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let budget = 400;
    let study = write_study(tmp.path(), &sim_study(budget, 0.001));
    let run = tmp.path().join("state").join("p");
    let mut points: Vec<String> = Vec::new();
    for p in PER_SESSION {
        points.push(format!("{p}@1"));
    }
    for n in [1, 2, 4] {
        for p in PER_TRIAL {
            points.push(format!("{p}@{n}"));
        }
    }
    let start = Instant::now();
    let mut landed = Vec::new();
    let mut missed = Vec::new();
    let mut before = Vec::new();
    let mut sessions = 0;
    let mut kill = |point: &str, before: &mut Vec<(u64, String)>| -> bool {
        let args = run_args(&study, "p", &[]);
        let mut child = tuner(&args, tmp.path())
            .env("OLLAMA_TUNER_CRASH_AT", point)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "{point}: hangs");
            std::thread::sleep(Duration::from_millis(10));
        };
        sessions += 1;
        *before = check(&run, before, point);
        match status.signal() {
            Some(9) => true,
            _ => {
                let stderr = child
                    .stderr
                    .take()
                    .map(|mut e| {
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                        s
                    })
                    .unwrap_or_default();
                assert!(status.success(), "{point}: {status}\n{stderr}");
                false
            }
        }
    };
    for point in &points {
        if kill(point, &mut before) {
            landed.push(point.clone());
        } else {
            missed.push(point.clone());
        }
    }
    // The stop of a session: the budget reached in this one.
    let done = before.len();
    assert!(done < budget, "the budget ran out before the stop points");
    for p in AT_STOP {
        // `resume` keeps the run's budget from run.json; --trials moves it to one more trial.
        let args = [
            "resume",
            run.to_str().unwrap(),
            "--trials",
            &(before.len() + 1).to_string(),
            "--no-progress",
        ];
        let status = tuner(&args, tmp.path())
            .env("OLLAMA_TUNER_CRASH_AT", format!("{p}@1"))
            .status()
            .unwrap();
        sessions += 1;
        before = check(&run, &before, p);
        if status.signal() == Some(9) {
            landed.push(format!("{p}@1"));
        } else {
            assert!(status.success(), "{p}: {status}");
            missed.push(format!("{p}@1"));
        }
    }
    // Finish the run.
    let out = tuner(
        &[
            "resume",
            run.to_str().unwrap(),
            "--trials",
            &(before.len() + 2).to_string(),
            "--no-progress",
        ],
        tmp.path(),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = check(&run, &before, "the end");
    let (_, torn) = journal(&run);
    let torn_kills = landed
        .iter()
        .filter(|p| p.starts_with("journal-torn"))
        .count();
    assert_eq!(
        torn, torn_kills,
        "one torn line per kill in the middle of a journal write"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(run.join("run.json")).unwrap()).unwrap();
    assert!(
        matches!(meta["stop_reason"].as_str(), Some("budget" | "decided")),
        "{:?}",
        meta["stop_reason"]
    );
    assert_eq!(
        meta["progress"]["trials_done"].as_u64(),
        Some(lines.len() as u64)
    );
    eprintln!(
        "{} kill points landed ({} distinct named points), {} missed {missed:?}, {sessions} \
         sessions in {:.1} s; journal: {} trials, numbers 0..{} each once, {torn} torn line(s) \
         skipped; 0 trials lost or duplicated",
        landed.len(),
        landed
            .iter()
            .map(|p| p.split('@').next().unwrap())
            .collect::<BTreeSet<_>>()
            .len(),
        missed.len(),
        start.elapsed().as_secs_f64(),
        lines.len(),
        lines.len()
    );
    assert!(
        landed.len() >= 25,
        "only {} kill points landed",
        landed.len()
    );
}
