//! SIGKILL at named points of the run loop (the crash hook of src/store/crash.rs,
//! `OLLAMA_TUNER_CRASH_AT=<point>@<n>`), each followed by a resume: between the ask and the
//! checkpoint naming the trial in flight, after the journal write and before the checkpoint,
//! with half a journal line on disk, with an atomic write's temporary file written but not
//! renamed, in the middle of the report, at the start and at the end of a session. After every
//! kill the journal is checked: nothing journaled before is lost or changed, no trial number is
//! on two lines, the numbers run 0..n without a gap. The run is finished at the end and checked
//! once more: its budget met, run.json's count equal to the journal's, no loss recorded, no
//! temporary file left.
//!
//! `cargo test --test kill_points -- --nocapture` prints the counts (BENCHMARKS.md, section 8).

mod daemon_support;

use daemon_support::{run_args, sim_study, tuner, write_study};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Points reached at least once per trial (an atomic checkpoint write happens twice per trial:
/// naming the trial in flight, then after its journal line), each killed at its 1st, 2nd and
/// 4th visit in a session.
const PER_TRIAL: [&str; 8] = [
    "after-ask",
    "atomic:checkpoint.json",
    "after-pending-checkpoint",
    "journal-torn",
    "after-journal",
    "after-checkpoint",
    "atomic:run.json",
    "after-meta",
];
/// Points of the full report set, killed at its 1st and 2nd writing in a session. Not at the
/// 4th: a session writes the report at its start and then only when the time since the last
/// one is 19 times what that one took (src/run/reports.rs, `ReportSchedule::due`), so a 4th
/// report comes only after tens of trials and seconds; the first two already kill it once at
/// the start of a session and once mid-run.
const PER_REPORT: [&str; 3] = ["in-report", "atomic:trials.csv", "atomic:report.md"];
/// Points reached once per session.
const PER_SESSION: [&str; 3] = ["session-open", "after-replay", "after-begin"];
/// Points reached when a session stops (the budget spent).
const AT_STOP: [&str; 2] = ["before-finish", "after-finish"];

/// (number, line) of each parseable journal line, and the count of unparseable (torn) ones.
/// Read as bytes: a line torn in the middle of a multi-byte character is not valid UTF-8, and
/// must count as one torn line, not make the whole file unreadable.
fn journal(run: &Path) -> (Vec<(u64, String)>, usize) {
    let bytes = fs::read(run.join("trials.jsonl")).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
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
        "{at}: journaled trials lost or changed ({} lines before, {} now)",
        before.len(),
        lines.len()
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

/// Run one session to its end (a kill or an exit), its stderr in a file (a pipe nobody reads
/// could fill and block the daemon); its status and stderr.
fn session(cmd: &mut Command, dir: &Path, label: &str) -> (ExitStatus, String) {
    let log = dir.join("session.log");
    let mut child = cmd
        .stderr(Stdio::from(fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{label}: the session hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (status, fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn sigkill_at_named_points_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let budget = 400;
    // A smaller candidate set than the default keeps the asks of a debug build fast; the
    // points and the invariants do not depend on it.
    let text = format!(
        "{}\n[optimizer]\ncandidates = 256\n",
        sim_study(budget, 0.001)
    );
    let study = write_study(tmp.path(), &text);
    let run = tmp.path().join("state").join("p");
    let mut points: Vec<String> = Vec::new();
    for p in PER_SESSION {
        points.push(format!("{p}@1"));
    }
    for n in [1, 2, 4] {
        for p in PER_TRIAL {
            points.push(format!("{p}@{n}"));
        }
        if n <= 2 {
            for p in PER_REPORT {
                points.push(format!("{p}@{n}"));
            }
        }
    }
    let start = Instant::now();
    let mut landed: Vec<String> = Vec::new();
    let mut missed: Vec<String> = Vec::new();
    let mut before = Vec::new();
    let mut sessions = 0;
    for point in &points {
        let args = run_args(&study, "p", &[]);
        let mut cmd = tuner(&args, tmp.path());
        cmd.env("OLLAMA_TUNER_CRASH_AT", point);
        let (status, stderr) = session(&mut cmd, tmp.path(), point);
        sessions += 1;
        before = check(&run, &before, point);
        if status.signal() == Some(9) {
            landed.push(point.clone());
        } else {
            assert!(status.success(), "{point}: {status}\n{stderr}");
            missed.push(point.clone());
        }
    }
    // The stop of a session: the budget reached in this one.
    assert!(
        before.len() < budget,
        "the budget ran out before the stop points"
    );
    for p in AT_STOP {
        // `resume` keeps the run's budget from run.json; --trials moves it to one more trial.
        let total = (before.len() + 1).to_string();
        let args = [
            "resume",
            run.to_str().unwrap(),
            "--trials",
            &total,
            "--no-progress",
        ];
        let mut cmd = tuner(&args, tmp.path());
        cmd.env("OLLAMA_TUNER_CRASH_AT", format!("{p}@1"));
        let (status, stderr) = session(&mut cmd, tmp.path(), p);
        sessions += 1;
        before = check(&run, &before, p);
        if status.signal() == Some(9) {
            landed.push(format!("{p}@1"));
        } else {
            assert!(status.success(), "{p}: {status}\n{stderr}");
            missed.push(format!("{p}@1"));
        }
    }
    // Finish the run: two more trials.
    let total = (before.len() + 2).to_string();
    let args = [
        "resume",
        run.to_str().unwrap(),
        "--trials",
        &total,
        "--no-progress",
    ];
    let (status, stderr) = session(&mut tuner(&args, tmp.path()), tmp.path(), "the end");
    sessions += 1;
    assert!(status.success(), "the end: {status}\n{stderr}");
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
        Some(lines.len() as u64),
        "run.json counts the journal's trials"
    );
    assert!(
        lines.len() as u64 <= meta["budget"]["trials"].as_u64().unwrap(),
        "no trial beyond the budget"
    );
    // The resumes found only what a kill leaves (a checkpoint behind, torn lines), never a
    // loss.
    let lost: Vec<&serde_json::Value> = meta["integrity"]
        .as_array()
        .map(|a| a.iter().filter(|n| n["severity"] == "lost").collect())
        .unwrap_or_default();
    assert!(lost.is_empty(), "a resume recorded a loss: {lost:?}");
    let temporary: Vec<String> = fs::read_dir(&run)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(temporary.is_empty(), "temporary files left: {temporary:?}");
    let distinct = landed
        .iter()
        .map(|p| p.split('@').next().unwrap())
        .collect::<BTreeSet<_>>()
        .len();
    eprintln!(
        "{} kill points landed ({distinct} distinct named points), {} missed {missed:?}, \
         {sessions} sessions in {:.1} s; journal: {} trials, numbers 0..{} each once, {torn} \
         torn line(s) skipped; 0 trials lost or duplicated; stop: {}",
        landed.len(),
        missed.len(),
        start.elapsed().as_secs_f64(),
        lines.len(),
        lines.len(),
        meta["stop_reason"].as_str().unwrap_or("?")
    );
    assert!(missed.is_empty(), "kill points never reached: {missed:?}");
    assert!(
        landed.len() >= 25,
        "only {} kill points landed",
        landed.len()
    );
}
