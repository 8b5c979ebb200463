//! The command backend's processes and output through whole runs of the binary: the timeout
//! holds while the program reads no stdin, a program that exits leaving a background child on
//! its stdout is measured (not timed out) and leaves no process of its group behind, and
//! 10 MB of output without a newline leaves bounded error texts in the journal and reports.

use ollama_tuner::store::RunDir;
use ollama_tuner::trial::FailureKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod daemon_support;

use daemon_support::{run_args, tuner, write_study};

/// The command study of these tests (daemon_support): `sh -c script`, one integer parameter.
fn command_study(script: &str, trials: usize, timeout: &str) -> String {
    daemon_support::command_study("proc", script, trials, timeout, 50)
}

/// Run a study to its end in a fresh directory; the directory and the run folder.
fn run_study(text: &str) -> (tempfile::TempDir, PathBuf, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), text);
    let t0 = Instant::now();
    let out = tuner(&run_args(&study, "p", &[]), tmp.path())
        .output()
        .unwrap();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let run = tmp.path().join("state").join("p");
    (tmp, run, took)
}

/// The process group of each process alive (not a zombie), from /proc.
fn live_groups() -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
            continue;
        }
        if let Some(pgrp) = fields.get(2).and_then(|p| p.parse().ok()) {
            out.push((pid, pgrp));
        }
    }
    out
}

fn numbers_in(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Each run of the program starts `sleep 30` in the background (holding stdout) and exits:
/// every trial is measured, fast, with the leftover noted, and no process of any program's
/// group is left.
#[test]
fn a_background_child_holding_stdout_is_killed_with_its_group() {
    let script = "echo $$ >> groups; sleep 30 & echo $TUNE_X";
    let (tmp, run, took) = run_study(&command_study(script, 3, "10s"));
    let j = RunDir::new(&run).read_journal().unwrap();
    let ok = j.records.iter().filter(|r| r.is_ok()).count();
    let noted = j
        .records
        .iter()
        .filter(|r| r.notes.contains_key("leftover_processes_killed"))
        .count();
    let groups = numbers_in(&tmp.path().join("groups"));
    // A killed orphan is reaped by its new parent; give that a moment.
    let t0 = Instant::now();
    let mut left: Vec<(i32, i32)>;
    loop {
        left = live_groups()
            .into_iter()
            .filter(|(_, g)| groups.contains(g))
            .collect();
        if left.is_empty() || t0.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{} trials, {ok} ok, {noted} with leftovers killed, run took {:.1} s; {} groups, {} processes left in them",
        j.records.len(),
        took.as_secs_f64(),
        groups.len(),
        left.len()
    );
    assert_eq!((j.records.len(), ok, noted), (3, 3, 3));
    assert_eq!(groups.len(), 3);
    assert!(
        left.is_empty(),
        "processes left in the programs' groups: {left:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "{took:?}: waited for the background child?"
    );
}

/// A program that reads no stdin and sleeps 8 s under `timeout = "2s"` is a timeout after
/// about 2 s.
#[test]
fn the_timeout_holds_while_the_program_reads_no_stdin() {
    let (_tmp, run, took) = run_study(&command_study("sleep 8; echo 1", 2, "2s"));
    let j = RunDir::new(&run).read_journal().unwrap();
    let timeouts = j
        .records
        .iter()
        .filter(|r| r.failure == Some(FailureKind::Timeout))
        .count();
    let longest = j.records.iter().map(|r| r.duration_s).fold(0.0, f64::max);
    eprintln!(
        "{} trials, {timeouts} timed out, longest {longest:.2} s, run {:.1} s",
        j.records.len(),
        took.as_secs_f64()
    );
    assert_eq!((j.records.len(), timeouts), (2, 2));
    assert!(
        longest < 4.0,
        "a trial took {longest} s under a 2 s timeout"
    );
}

/// 10 MB without a newline, on stdout (exit 0: no readable result) and on stderr (exit 1):
/// three failed trials each, and every error text, the journal and the report files stay small.
#[test]
fn ten_megabytes_of_output_leave_bounded_errors() {
    const TEN_MB: usize = 10 * 1024 * 1024;
    let cases = [
        (
            "stdout",
            "head -c 10485760 /dev/zero | tr '\\0' x",
            "last stdout line is longer than",
        ),
        (
            "stderr",
            "head -c 10485760 /dev/zero | tr '\\0' x >&2; exit 1",
            "bytes cut",
        ),
    ];
    for (name, script, says) in cases {
        let (_tmp, run, _) = run_study(&command_study(script, 3, "60s"));
        let j = RunDir::new(&run).read_journal().unwrap();
        let errors: Vec<&String> = j.records.iter().filter_map(|r| r.error.as_ref()).collect();
        let longest = errors.iter().map(|e| e.len()).max().unwrap_or(0);
        let size = |f: &str| std::fs::metadata(run.join(f)).map_or(0, |m| m.len());
        let (journal, json, csv) = (
            size("trials.jsonl"),
            size("report.json"),
            size("trials.csv"),
        );
        eprintln!(
            "10 MB on {name}: {} failed trials, longest error {longest} bytes; trials.jsonl {journal} B, report.json {json} B, trials.csv {csv} B",
            errors.len()
        );
        assert_eq!(errors.len(), 3, "{name}");
        assert!(
            errors.iter().all(|e| e.contains(says)),
            "{name}: {:?}",
            errors.first().map(|e| &e[..e.len().min(300)])
        );
        assert!(longest <= 4200, "{name}: an error of {longest} bytes");
        for (file, bytes) in [
            ("trials.jsonl", journal),
            ("report.json", json),
            ("trials.csv", csv),
        ] {
            assert!(
                bytes < (TEN_MB / 100) as u64,
                "{name}: {file} is {bytes} bytes"
            );
        }
    }
}
