//! `status`, `report`, `export` and `validate` with a stdout nobody reads any more
//! (`ollama-tuner status DIR | head -3`): they end quietly with exit 0, no panic. A stdout that
//! fails otherwise (a full disk, /dev/full) is an error: exit 6.

mod daemon_support;

use daemon_support::{command_study, BIN};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

/// A pipe whose reading end is already closed: its writing end, as a child's stdout.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new descriptors, each owned once below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn tuner(args: &[&str], cwd: &Path, stdout: Stdio) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("OLLAMA_TUNER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn commands_end_quietly_on_a_closed_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("study.toml"),
        command_study("pipe", "echo $TUNE_X", 4, "10s", 10),
    )
    .unwrap();
    let (code, stderr) = tuner(
        &[
            "run",
            "--space",
            "study.toml",
            "--state-dir",
            "state",
            "--run-id",
            "r",
            "--no-progress",
        ],
        dir,
        Stdio::null(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let commands: [&[&str]; 7] = [
        &["status", "state/r"],
        &["report", "state/r"],
        &["report", "state/r", "--format", "json"],
        &["report", "state/r", "--format", "csv"],
        &["export", "state/r", "--format", "json"],
        &["validate", "study.toml"],
        // The end-of-run summary of `run` itself.
        &["resume", "state/r", "--trials", "5", "--no-progress"],
    ];
    let mut quiet = 0;
    for args in commands {
        let (code, stderr) = tuner(args, dir, closed_pipe());
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
        quiet += 1;
    }
    eprintln!("{quiet} commands on a closed stdout: exit 0, no panic, nothing on stderr");

    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    if let Ok(full) = full {
        let (code, stderr) = tuner(&["report", "state/r"], dir, Stdio::from(full));
        eprintln!("report on /dev/full: exit {code:?}");
        assert_eq!(code, Some(6), "{stderr}");
        assert!(stderr.contains("cannot write the output"), "{stderr}");
    }
}
