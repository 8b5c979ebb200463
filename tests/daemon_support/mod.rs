//! Helpers of the daemon tests (tests/daemon.rs, tests/kill_points.rs, tests/corruption.rs,
//! tests/stops.rs, tests/command_process.rs, ...): a fast simulator study, a command-backend
//! study, the binary run in a folder, the journal's trial numbers.
#![allow(dead_code)]

use ollama_tuner::store::RunDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ollama-tuner");

/// A study on the in-process simulator, fast enough to run dozens of trials in seconds.
pub fn sim_study(trials: usize, time_scale: f64) -> String {
    format!(
        r#"
[study]
name = "daemon-test"
model = "gemma3:4b"
seed = 3

[backend]
kind = "simulator"
profile = "gemma3-4b"
time_scale = {time_scale}

[budget]
trials = {trials}
max_consecutive_failures = 50

[protocol]
repeats = 2
warmup = 1
num_predict = 32

[params.num_gpu]
type = "int"
low = 0
high = 999
default = 999

[params.num_ctx]
type = "int"
low = 512
high = 131072
log = true
default = 4096

[params.temperature]
type = "float"
low = 0.0
high = 1.5
default = 0.8
"#
    )
}

/// A study named `name` on the command backend running `script` with `sh -c` (in the test's
/// directory), one integer parameter `x`, the program's number as the objective; the run gives
/// up after `max_failures` failed trials in a row.
pub fn command_study(
    name: &str,
    script: &str,
    trials: usize,
    timeout: &str,
    max_failures: usize,
) -> String {
    format!(
        r#"
[study]
name = "{name}"
seed = 1

[backend]
kind = "command"
argv = ["sh", "-c", '''{script}''']
timeout = "{timeout}"

[budget]
trials = {trials}
max_consecutive_failures = {max_failures}

[objective]
metric = "value"
direction = "maximize"

[protocol]
repeats = 1

[params.x]
type = "int"
low = 0
high = 1000
default = 500
memory = "none"
"#
    )
}

pub fn write_study(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("study.toml");
    std::fs::write(&p, text).unwrap();
    p
}

pub fn tuner<S: AsRef<std::ffi::OsStr>>(args: &[S], cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(cwd)
        .env("OLLAMA_TUNER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// `run` on a study into `state/<run_id>` without a progress bar, plus `extra` arguments.
pub fn run_args(study: &Path, run_id: &str, extra: &[&str]) -> Vec<String> {
    let study = study.to_str().unwrap();
    [
        "run",
        "--space",
        study,
        "--state-dir",
        "state",
        "--run-id",
        run_id,
        "--no-progress",
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect()
}

/// Send SIGTERM to a running daemon once `n` trials of its run are journaled.
pub fn sigterm_after_trials(child: &mut std::process::Child, run: &Path, n: usize) {
    let t0 = Instant::now();
    while journal_numbers(run).0.len() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "fewer than {n} trials within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

pub fn journal_numbers(run: &Path) -> (Vec<usize>, usize) {
    let j = RunDir::new(run).read_journal().unwrap();
    (j.records.iter().map(|r| r.trial).collect(), j.skipped.len())
}
