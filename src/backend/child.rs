//! A measurement program as a child process (the command backend): started in its own process
//! group, fed its stdin and waited for under one timeout, its output kept bounded, and every
//! process of its group killed when it ends, times out or is abandoned, so no process it
//! started outlives the measurement.
//!
//! The program's exit ends the measurement: what it printed before is its result, and a
//! background process it left running (still holding stdout, say) is killed with the group
//! rather than waited for. A process that leaves the group itself (`setsid`) escapes this; the
//! output of such a process is waited for at most `DRAIN` after the program exits.

use super::output::{capture, Capture};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::task::JoinHandle;

/// How long the output pipes may stay open after the program's group is gone (a process that
/// escaped the group may hold them).
const DRAIN: Duration = Duration::from_secs(1);

/// How much of each stream is kept: the head and the tail, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Keep {
    pub head: usize,
    pub tail: usize,
}

/// How a program run ended.
#[derive(Debug)]
pub enum Ran {
    /// The program exited (or was killed by a signal not of ours).
    Exited {
        status: ExitStatus,
        stdout: Capture,
        stderr: Capture,
        /// Processes of its group were still running when it exited (and were killed).
        leftovers: bool,
    },
    /// The timeout passed first (stdin written or not); the whole group was killed.
    TimedOut { stderr: Capture },
}

/// Kills the process group when dropped (a measurement abandoned after a stop signal, or any
/// other early return) unless disarmed once the group is known to be gone.
struct GroupKill {
    pgid: Option<libc::pid_t>,
}

impl GroupKill {
    /// SIGKILL to every process of the group; true when at least one received it.
    fn kill(&mut self) -> bool {
        match self.pgid.take() {
            // SAFETY: killpg only sends a signal. The group id is the program's pid, which the
            // kernel does not hand out again while the group has a member or the program is
            // not yet reaped.
            Some(pgid) => unsafe { libc::killpg(pgid, libc::SIGKILL) == 0 },
            None => false,
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Wait for a capture task, at most `DRAIN`; an empty capture if it does not end.
async fn collect(task: JoinHandle<Capture>, keep: Keep) -> Capture {
    match tokio::time::timeout(DRAIN, task).await {
        Ok(Ok(c)) => c,
        _ => Capture::new(keep.head, keep.tail),
    }
}

/// Run `cmd` (its stdio is set here) with `input` on stdin, all within `timeout`.
pub async fn run_program(
    mut cmd: Command,
    input: Vec<u8>,
    timeout: Duration,
    keep_stdout: Keep,
    keep_stderr: Keep,
) -> std::io::Result<Ran> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the forked child before exec and calls only async-signal-safe functions
    // (prctl, getppid). The program dies with the tuner (PR_SET_PDEATHSIG, Linux); the rest of
    // its group is killed by the tuner itself.
    #[cfg(target_os = "linux")]
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the tuner exited while the program was starting",
                ));
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
    let mut child = cmd.spawn()?;
    let mut group = GroupKill {
        pgid: child.id().map(|p| p as libc::pid_t),
    };
    let stdout = child
        .stdout
        .take()
        .map(|o| tokio::spawn(capture(o, Capture::new(keep_stdout.head, keep_stdout.tail))));
    let stderr = child
        .stderr
        .take()
        .map(|e| tokio::spawn(capture(e, Capture::new(keep_stderr.head, keep_stderr.tail))));
    let mut stdin = child.stdin.take();
    let waited = tokio::time::timeout(timeout, async {
        if let Some(mut pipe) = stdin.take() {
            // A program that reads no stdin closes the pipe or exits; that is fine.
            let _ = pipe.write_all(&input).await;
            drop(pipe);
        }
        child.wait().await
    })
    .await;
    let take = |task: Option<JoinHandle<Capture>>, keep: Keep| async move {
        match task {
            Some(t) => collect(t, keep).await,
            None => Capture::new(keep.head, keep.tail),
        }
    };
    match waited {
        Ok(Ok(status)) => {
            // The program is reaped; whatever is left of its group is a leftover.
            let leftovers = group.kill();
            Ok(Ran::Exited {
                status,
                stdout: take(stdout, keep_stdout).await,
                stderr: take(stderr, keep_stderr).await,
                leftovers,
            })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            Ok(Ran::TimedOut {
                stderr: take(stderr, keep_stderr).await,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const KEEP: Keep = Keep {
        head: 100,
        tail: 1000,
    };

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    /// Whether a process is alive: it exists and is not a zombie waiting for its reaper.
    fn alive(pid: libc::pid_t) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name in parentheses.
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_program_that_reads_no_stdin_is_still_timed_out() {
        // A small input fits the pipe; far more than a pipe buffer holds blocks the write.
        for input in [b"{}".to_vec(), vec![b'x'; 4 << 20]] {
            let t0 = Instant::now();
            let n = input.len();
            let ran = run_program(
                sh("sleep 8; echo 1"),
                input,
                Duration::from_millis(500),
                KEEP,
                KEEP,
            )
            .await
            .unwrap();
            assert!(matches!(ran, Ran::TimedOut { .. }), "{ran:?}");
            let took = t0.elapsed();
            eprintln!("stdin of {n} bytes not read: timed out after {took:?} (timeout 0.5 s)");
            assert!(took < Duration::from_secs(3), "{took:?}");
        }
    }

    #[tokio::test]
    async fn a_background_child_holding_stdout_is_killed_not_waited_for() {
        let t0 = Instant::now();
        let ran = run_program(
            sh("sleep 30 & echo $! ; echo 42"),
            Vec::new(),
            Duration::from_secs(10),
            KEEP,
            KEEP,
        )
        .await
        .unwrap();
        let took = t0.elapsed();
        let Ran::Exited {
            status,
            stdout,
            leftovers,
            ..
        } = ran
        else {
            panic!("{ran:?}")
        };
        assert!(status.success());
        assert!(leftovers, "the background sleep was running");
        let text = stdout.text();
        let pid: libc::pid_t = text.lines().next().unwrap().trim().parse().unwrap();
        assert_eq!(text.lines().last(), Some("42"));
        // SIGKILL is delivered at once, but the orphan is reaped by init: give it a moment.
        let t1 = Instant::now();
        while alive(pid) && t1.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("background child {pid}: killed, program done in {took:?}");
        assert!(!alive(pid), "the background child {pid} was orphaned");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[tokio::test]
    async fn an_abandoned_run_kills_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let run = run_program(sh(&script), Vec::new(), Duration::from_secs(30), KEEP, KEEP);
        // Dropped when the sleep passes: as the run loop drops a trial after its grace.
        let _ = tokio::time::timeout(Duration::from_millis(500), run).await;
        let pid: libc::pid_t = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let t1 = Instant::now();
        while alive(pid) && t1.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !alive(pid),
            "the grandchild {pid} outlived the abandoned run"
        );
    }
}
