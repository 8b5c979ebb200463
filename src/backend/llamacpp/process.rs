//! The llama-server child process: spawning it in its own process group with a parent-death
//! signal, keeping the tail of its output, and stopping it.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tracing::warn;

/// Lines of server output kept for error messages.
const LOG_LINES: usize = 400;
/// Longest kept line; longer ones are cut (a runaway line must not grow memory).
const LOG_LINE_MAX: usize = 2000;

// ---------------------------------------------------------------------------------------------
// Server output

/// The last lines a child printed, filled by background tasks so a chatty server never blocks
/// on a full pipe. Cloning shares the buffer.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogRing(Arc<Mutex<VecDeque<String>>>);

impl LogRing {
    fn lock(&self) -> MutexGuard<'_, VecDeque<String>> {
        // A poisoned lock only means a reader panicked mid-push; the lines are still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, line: &str) {
        let mut line = line.trim_end().to_string();
        if line.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [...]");
        }
        let mut g = self.lock();
        if g.len() >= LOG_LINES {
            g.pop_front();
        }
        g.push_back(line);
    }

    /// Every line kept (the last `LOG_LINES`), oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// The last lines, at most `max_chars` characters in all.
    pub(crate) fn tail(&self, max_chars: usize) -> String {
        let g = self.lock();
        let mut used = 0;
        let mut lines: Vec<&str> = Vec::new();
        for l in g.iter().rev() {
            if used + l.len() + 1 > max_chars && !lines.is_empty() {
                break;
            }
            used += l.len() + 1;
            lines.push(l);
        }
        lines.reverse();
        lines.join("\n")
    }
}

/// Copy a pipe into a ring, line by line, until it closes.
async fn pump<R: AsyncRead + Unpin>(mut r: R, ring: LogRing) {
    let mut buf = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for &b in &buf[..n] {
                    if b == b'\n' {
                        ring.push(&String::from_utf8_lossy(&line));
                        line.clear();
                    } else if line.len() < LOG_LINE_MAX + 1 {
                        line.push(b);
                    }
                }
            }
        }
    }
    if !line.is_empty() {
        ring.push(&String::from_utf8_lossy(&line));
    }
}

// ---------------------------------------------------------------------------------------------
// The child process

/// A running llama-server.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) port: u16,
    /// Its arguments (the argv without the binary), as recorded in the trial notes.
    pub(crate) args: Vec<String>,
    pub(crate) log: LogRing,
    pub(crate) pumps: Vec<JoinHandle<()>>,
    /// What it said it chose once ready (the `server_chose` note), if anything.
    pub(crate) chose: Option<serde_json::Value>,
}

impl Running {
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait (briefly) for the output readers to see the pipes close, so the tail is complete.
    pub(crate) async fn drain(&mut self) {
        for h in self.pumps.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(1), h).await;
        }
    }

    /// SIGKILL and reap. Used between trials: llama-server keeps nothing worth flushing, and a
    /// SIGTERM costs 2-4 s per restart on this machine.
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        self.drain().await;
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub(crate) async fn terminate(&mut self, grace: Duration) {
        if self.exited().is_none() {
            if let Some(pid) = self.child.id() {
                // SAFETY: kill(2) on our own, not yet reaped child; no memory is involved.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                self.drain().await;
                return;
            }
            warn!(
                grace_s = grace.as_secs_f64(),
                "llama-server ignored SIGTERM; killing it"
            );
        }
        self.kill().await;
    }
}

/// Spawn llama-server: its own process group (a Ctrl-C at the terminal goes to the tuner, which
/// lets the trial in flight finish and then stops the server itself), killed when the tuner dies
/// (PR_SET_PDEATHSIG, Linux) and when the handle is dropped (kill_on_drop).
pub(crate) fn spawn_server(
    argv: &[String],
) -> std::io::Result<(Child, LogRing, Vec<JoinHandle<()>>)> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (setpgid, prctl, getppid). The death signal is tied to the forking *thread*: the
    // spawn happens on a tokio worker (or the main thread), which lives as long as the runtime.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
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
            // The tuner may have died between fork and prctl: then no signal would ever come.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the tuner exited while llama-server was starting",
                ));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let log = LogRing::default();
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, log.clone())));
    }
    Ok((child, log, pumps))
}

/// A port nobody listens on right now (the kernel's pick for an ephemeral bind).
pub(crate) fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ring_is_bounded_and_tails() {
        let ring = LogRing::default();
        for i in 0..1000 {
            ring.push(&format!("line {i}"));
        }
        ring.push(&"x".repeat(10_000));
        assert_eq!(ring.lock().len(), LOG_LINES);
        let t = ring.tail(50);
        assert!(
            t.ends_with("[...]"),
            "the last line is always kept, cut: {}",
            t.len()
        );
        let ring = LogRing::default();
        ring.push("a");
        ring.push("b");
        assert_eq!(ring.tail(100), "a\nb");
        assert_eq!(ring.tail(2), "b");
    }
}
