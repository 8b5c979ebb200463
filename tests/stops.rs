//! How runs stop, as the binary does it: the grace period counted from the signal, a second
//! signal (run.json keeps a stop reason, the journal stays consistent, resume works), a signal
//! while waiting for the backend at the start, and the exit code of every stop reason a run
//! can reach in a test (the whole table is `cli::signals`' unit test). The trials are a
//! command backend running `sh`, so each test decides how long a trial takes and how it ends.
//! (The spawning helpers are tests/daemon_support's.)

use ollama_tuner::store::{RunDir, StopReason};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

mod daemon_support;

use daemon_support::{run_args, tuner, write_study};

/// The command study of these tests (daemon_support): `sh -c script`, three failures in a row
/// stop the run.
fn command_study(script: &str, trials: usize, timeout: &str) -> String {
    daemon_support::command_study("stops", script, trials, timeout, 3)
}

fn signal(child: &Child, sig: i32) {
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Wait until `path` exists (a trial's program touches it when it starts).
fn wait_for(path: &Path, within: Duration) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < within,
            "{} did not appear within {within:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait for the child to exit; the time it took and its status.
fn wait_exit(child: &mut Child, within: Duration) -> (Duration, ExitStatus) {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (t0.elapsed(), status);
        }
        if t0.elapsed() > within {
            child.kill().unwrap();
            panic!("the tuner did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// The journal's trial numbers, and whether each appears once and they are 0..n.
fn journal_consistent(run: &Path) -> (Vec<usize>, bool) {
    let j = RunDir::new(run).read_journal().unwrap();
    let numbers: Vec<usize> = j.records.iter().map(|r| r.trial).collect();
    let unique: BTreeSet<usize> = numbers.iter().copied().collect();
    let ok = unique.len() == numbers.len()
        && unique == (0..numbers.len()).collect()
        && j.skipped.is_empty();
    (numbers, ok)
}

fn meta(run: &Path) -> ollama_tuner::store::RunMeta {
    RunDir::new(run).read_meta().unwrap().expect("run.json")
}

/// Counts its runs in `count` and marks the start of run n in `started.n`; run n sleeps 8 s when
/// n >= the number in the file `slow` (when there is one).
const SLOW_TRIAL: &str = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; touch started.$n; if [ -e slow ] && [ $n -ge $(cat slow) ]; then sleep 8; fi; echo $TUNE_X";

/// `--grace 2s`, SIGTERM 1.5 s into an 8-second trial: the trial is abandoned 2 s after the
/// signal (3.5 s into the trial), not 2 s after the trial started.
#[test]
fn grace_is_counted_from_the_signal() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("slow"), "1").unwrap();
    let study = write_study(tmp.path(), &command_study(SLOW_TRIAL, 50, "60s"));
    let args = run_args(&study, "g", &["--grace", "2s"]);
    let mut child = tuner(&args, tmp.path()).spawn().unwrap();
    wait_for(&tmp.path().join("started.1"), Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGTERM);
    let (after_signal, status) = wait_exit(&mut child, Duration::from_secs(20));
    let stderr = stderr_of(&mut child);
    eprintln!(
        "grace 2 s, SIGTERM 1.5 s into the trial: exited {:.2} s after the signal with {status}",
        after_signal.as_secs_f64()
    );
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        after_signal >= Duration::from_millis(1900),
        "abandoned {after_signal:?} after the signal: grace counted from the trial's start?"
    );
    assert!(after_signal < Duration::from_secs(4), "{after_signal:?}");
    let run = tmp.path().join("state").join("g");
    let m = meta(&run);
    assert_eq!(m.stop_reason, Some(StopReason::Interrupted));
    assert!(
        m.stop_message.as_deref().unwrap_or("").contains("grace"),
        "{:?}",
        m.stop_message
    );
    let c = RunDir::new(&run)
        .read_checkpoint()
        .unwrap()
        .expect("checkpoint");
    assert!(
        c.pending.is_some(),
        "the abandoned trial is pending for resume"
    );
    assert_eq!(journal_consistent(&run), (vec![], true));
}

/// A trial that finishes within the grace is journaled, and the run then stops: exit 0.
#[test]
fn a_trial_finishing_within_the_grace_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let script = "touch started; sleep 1; echo $TUNE_X";
    let study = write_study(tmp.path(), &command_study(script, 50, "60s"));
    let args = run_args(&study, "f", &["--grace", "5s"]);
    let mut child = tuner(&args, tmp.path()).spawn().unwrap();
    wait_for(&tmp.path().join("started"), Duration::from_secs(60));
    signal(&child, libc::SIGINT);
    let (_, status) = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status}: {}", stderr_of(&mut child));
    let run = tmp.path().join("state").join("f");
    let (numbers, ok) = journal_consistent(&run);
    assert!(ok && !numbers.is_empty(), "{numbers:?}");
    assert_eq!(meta(&run).stop_reason, Some(StopReason::Interrupted));
}

/// Two signals 0.3 s apart during an 8-second trial with a 60 s grace: the trial is abandoned
/// at the second, run.json has a stop reason, the journal is consistent, exit 130; resume
/// measures the abandoned trial and finishes the budget with every trial once.
#[test]
fn a_second_signal_stops_at_once_and_leaves_a_resumable_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Two fast trials first, then a slow one.
    std::fs::write(tmp.path().join("slow"), "3").unwrap();
    let study = write_study(tmp.path(), &command_study(SLOW_TRIAL, 6, "60s"));
    let args = run_args(&study, "s", &[]);
    let run = tmp.path().join("state").join("s");
    let mut child = tuner(&args, tmp.path()).spawn().unwrap();
    wait_for(&tmp.path().join("started.3"), Duration::from_secs(60));
    let before = journal_consistent(&run).0.len();
    assert_eq!(before, 2);
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    let (after_second, status) = wait_exit(&mut child, Duration::from_secs(20));
    let stderr = stderr_of(&mut child);
    eprintln!(
        "second signal: exited {:.2} s after it with {status}",
        after_second.as_secs_f64()
    );
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(after_second < Duration::from_secs(3), "{after_second:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let m = meta(&run);
    assert_eq!(m.stop_reason, Some(StopReason::Interrupted));
    assert!(m
        .stop_message
        .as_deref()
        .unwrap_or("")
        .contains("second signal"));
    assert!(m.finished_at.is_some());
    let (numbers, ok) = journal_consistent(&run);
    assert!(ok, "{numbers:?}");
    assert_eq!(numbers.len(), before, "the slow trial was not journaled");
    let c = RunDir::new(&run)
        .read_checkpoint()
        .unwrap()
        .expect("checkpoint");
    assert_eq!(c.pending.as_ref().map(|p| p.number), Some(before));

    std::fs::remove_file(tmp.path().join("slow")).unwrap();
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
    let (numbers, ok) = journal_consistent(&run);
    eprintln!("resumed: journal {numbers:?}");
    assert!(ok && numbers.len() == 6, "{numbers:?}");
    assert_eq!(meta(&run).stop_reason, Some(StopReason::Budget));
}

/// An address nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn ollama_study(url: &str) -> String {
    format!(
        r#"
[study]
name = "start"
model = "gemma3:4b"

[backend]
kind = "ollama"
url = "{url}"

[budget]
trials = 5

[params.num_batch]
type = "int"
low = 32
high = 1024
default = 512
"#
    )
}

/// SIGTERM while the run waits for a server that is not up: exit 0 at once, with the stop in
/// run.json.
#[test]
fn sigterm_while_waiting_for_the_backend_exits_0_with_a_stop_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &ollama_study(&dead_url()));
    let args = run_args(&study, "w", &[]);
    let mut child = tuner(&args, tmp.path()).spawn().unwrap();
    let run = tmp.path().join("state").join("w");
    wait_for(&run.join("study.toml"), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGTERM);
    let (after, status) = wait_exit(&mut child, Duration::from_secs(10));
    let stderr = stderr_of(&mut child);
    eprintln!(
        "SIGTERM while waiting for the backend: {status} after {:.2} s",
        after.as_secs_f64()
    );
    assert!(status.success(), "{status}: {stderr}");
    assert!(after < Duration::from_secs(2), "{after:?}");
    let m = meta(&run);
    assert_eq!(m.stop_reason, Some(StopReason::Interrupted));
    assert!(m
        .stop_message
        .unwrap()
        .contains("before the backend answered"));
}

/// Runs one study to its end: the exit code and the stop reason in run.json.
fn stop_of(study_text: &str, extra: &[&str]) -> (Option<i32>, Option<StopReason>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), study_text);
    let args = run_args(&study, "e", extra);
    let out = tuner(&args, tmp.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let run = tmp.path().join("state").join("e");
    let reason = RunDir::new(&run)
        .read_meta()
        .ok()
        .flatten()
        .and_then(|m| m.stop_reason);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), reason, stderr)
}

/// Each stop reason a short run can reach, with its exit code: budget, wall time and converged
/// 0; an outage mid-run, an outage at the start, a fatal backend and failures in a row 3. (The
/// interrupt's 0 and the second signal's 130 are the tests above; deadline and decided share
/// the code path of budget, and the table of all of them is `cli::signals`' unit test.)
#[test]
fn every_reachable_stop_reason_exits_with_its_documented_code() {
    let fast = "echo $TUNE_X";
    // Two trials answer, then the program asks for retries (exit 75) for good.
    let outage = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; if [ $n -gt 2 ]; then exit 75; fi; echo $n";
    let converges = command_study(fast, 20, "10s").replace(
        "type = \"int\"\nlow = 0\nhigh = 1000\ndefault = 500",
        "type = \"categorical\"\nchoices = [\"a\", \"b\"]\ndefault = \"a\"",
    );
    let cases: Vec<(&str, String, Vec<&str>, i32, StopReason)> = vec![
        (
            "budget",
            command_study(fast, 3, "10s"),
            vec![],
            0,
            StopReason::Budget,
        ),
        (
            "wall time",
            command_study("sleep 0.3; echo $TUNE_X", 500, "10s"),
            vec!["--time-budget", "1s"],
            0,
            StopReason::WallTime,
        ),
        ("converged", converges, vec![], 0, StopReason::Converged),
        (
            "outage mid-run",
            command_study(outage, 20, "10s"),
            vec!["--max-outage", "2s"],
            3,
            StopReason::Outage,
        ),
        (
            "outage at start",
            ollama_study(&dead_url()),
            vec!["--max-outage", "1s"],
            3,
            StopReason::Outage,
        ),
        (
            "fatal",
            command_study(fast, 3, "10s")
                .replace("argv = [\"sh\", \"-c\"", "argv = [\"/nonexistent/program\""),
            vec![],
            3,
            StopReason::Fatal,
        ),
        (
            "too many failures",
            command_study("echo broken >&2; exit 1", 20, "10s"),
            vec![],
            3,
            StopReason::TooManyFailures,
        ),
    ];
    let mut checked = 0;
    for (name, text, extra, code, reason) in &cases {
        let (got_code, got_reason, stderr) = stop_of(text, extra);
        eprintln!("{name}: exit {got_code:?}, stop_reason {got_reason:?}");
        assert_eq!(got_code, Some(*code), "{name}: {stderr}");
        assert_eq!(got_reason.as_ref(), Some(reason), "{name}: {stderr}");
        checked += 1;
    }
    eprintln!("{checked} stop reasons: exit codes as documented");
}
