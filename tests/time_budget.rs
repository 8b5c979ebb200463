//! Huge durations on the command line and in the study: `--time-budget` is range-checked
//! against the limit of `budget.wall_time` (366 days, src/study/validate/limits.rs), and
//! `--grace` / `--max-outage` against the longest duration a study may hold, so a value that
//! is too long, or too large for a `Duration` at all, is a clear error with exit code 2 (the
//! README's table) before anything is written, never a panic. The study's own limit reads in
//! days, not humantime's "1year 18h".

mod daemon_support;

use daemon_support::{run_args, sim_study, tuner, write_study};

/// `run` with `extra` flags: exit code and stderr.
fn run_with(dir: &std::path::Path, study: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = tuner(&run_args(study, "t", extra), dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn huge_time_budgets_are_refused_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(1, 0.001));
    for (value, reason) in [
        // Longer than the limit, though a Duration can hold it.
        ("367days", "longer than 366 days"),
        ("10000000000000000000s", "longer than 366 days"),
        // Too large for a Duration (humantime's year is 365.25 days: 2^64 s and more).
        ("584942417355y", "longer than 366 days"),
        ("99999999999999999999h", "longer than 366 days"),
        // Not a duration at all.
        ("1e20s", "examples: 90s, 30m, 8h"),
        ("forever", "examples: 90s, 30m, 8h"),
    ] {
        let (code, stderr) = run_with(tmp.path(), &study, &["--time-budget", value]);
        assert_eq!(code, 2, "--time-budget {value}: {stderr}");
        assert!(stderr.contains("--time-budget"), "{value}: {stderr}");
        assert!(stderr.contains(reason), "{value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{value}: {stderr}");
    }
    for flag in ["--grace", "--max-outage"] {
        let (code, stderr) = run_with(tmp.path(), &study, &[flag, "99999999999999999999h"]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains("longer than 366 days"), "{flag}: {stderr}");
        let (code, stderr) = run_with(tmp.path(), &study, &[flag, "500days"]);
        assert_eq!(code, 2, "{flag}: {stderr}");
    }
    assert!(
        !tmp.path().join("state").exists(),
        "nothing is written before the flags are checked"
    );
    // `resume` has the same flag.
    let out = tuner(&["resume", "state/t", "--time-budget", "1e20s"], tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // The limit itself is accepted, and the run finishes its one trial.
    let (code, stderr) = run_with(tmp.path(), &study, &["--time-budget", "366days"]);
    assert_eq!(code, 0, "{stderr}");
    eprintln!("huge --time-budget / --grace / --max-outage values: exit 2, no panic");
}

#[test]
fn huge_wall_times_in_the_study_are_located_errors_naming_the_limit_in_days() {
    let tmp = tempfile::tempdir().unwrap();
    for (value, reason) in [
        ("\"400 days\"", "the 366 days this field allows"),
        (
            "\"99999999999999999999h\"",
            "the 366 days this field allows",
        ),
        ("1e20", "the 366 days this field allows"),
        ("\"1e20s\"", "must be a duration"),
    ] {
        let text =
            sim_study(1, 0.001).replace("[budget]\n", &format!("[budget]\nwall_time = {value}\n"));
        let study = write_study(tmp.path(), &text);
        let out = tuner(&["validate", study.to_str().unwrap()], tmp.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("budget.wall_time"), "{value}: {stderr}");
        assert!(stderr.contains(reason), "{value}: {stderr}");
        assert!(stderr.contains("study.toml:"), "{value}: located: {stderr}");
        assert!(!stderr.contains("year"), "{value}: {stderr}");
    }
}
