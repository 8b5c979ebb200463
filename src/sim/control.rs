//! `SimControl`: the Rust-side handle tests use to inject faults into a running simulator, to
//! take its listener down and up again, and to look at its state. None of this is reachable
//! over HTTP.
//!
//! Faults are queued and each one is used up by one request:
//! - `fail_next(n, status, message)`: the next n requests to any `/api/...` route answer
//!   `status` with `{"error": message}` before doing anything (503 [`BUSY_MESSAGE`] is what
//!   Ollama answers when its queue is full; 500 is any other server error).
//! - `inject(StreamFault)`: the next `/api/generate` that produces tokens misbehaves while
//!   answering: an `{"error": ...}` line under HTTP 200, an abrupt close before `done:true`, or
//!   a line that is not JSON. `after_lines` counts NDJSON lines already sent; a fault whose
//!   `after_lines` is past the end fires in place of the final `done:true` line.
//! - `stop_listener` / `restart_listener`: the server goes down (connections refused, streams
//!   in flight cut, the loaded model forgotten) and comes back on the same address.

use super::model::{Expected, RunnerKey};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Ollama's answer when its request queue is full (server/sched.go ErrMaxQueue), HTTP 503.
pub const BUSY_MESSAGE: &str = "server busy, please try again.  maximum pending requests exceeded";

/// A misbehaviour of one streamed `/api/generate` answer.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamFault {
    /// After `after_lines` lines, send `{"error": message}` (HTTP status stays 200, as when a
    /// runner dies mid-generation) and end the stream. A non-streaming request gets HTTP 500.
    ErrorLine { after_lines: usize, message: String },
    /// After `after_lines` lines, close the connection abruptly: no `done:true`, no final chunk.
    Truncate { after_lines: usize },
    /// After `after_lines` lines, send one line that is not JSON, then go on normally.
    InvalidJson { after_lines: usize },
}

impl StreamFault {
    pub fn after_lines(&self) -> usize {
        match self {
            StreamFault::ErrorLine { after_lines, .. }
            | StreamFault::Truncate { after_lines }
            | StreamFault::InvalidJson { after_lines } => *after_lines,
        }
    }
}

/// An error answer given before any work.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpFault {
    pub status: u16,
    pub message: String,
}

/// Counters since the server started (simulated seconds).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    /// Every HTTP request received.
    pub requests: u64,
    pub generate_requests: u64,
    /// Completed (re)loads of the model, and the simulated seconds they took.
    pub loads: u64,
    pub load_seconds: f64,
    pub unloads: u64,
    /// Loads that failed for lack of memory.
    pub ooms: u64,
    /// Injected faults that fired.
    pub faults_fired: u64,
}

/// The loaded runner as `SimControl::loaded` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedInfo {
    pub model: String,
    /// Runner options it was loaded with (after defaults and clamping).
    pub key: RunnerKey,
    /// Its noise-free performance with the sampling options of the request that loaded it.
    pub expected: Expected,
    /// Wall-clock time until it unloads; None = never (keep_alive < 0) or busy.
    pub expires_in: Option<Duration>,
}

/// The runner the server holds between requests.
#[derive(Clone, Debug)]
pub(crate) struct LoadedRunner {
    pub key: RunnerKey,
    pub expected: Expected,
    /// Wall-clock expiry (keep_alive is not time-scaled); None = forever.
    pub expires: Option<Instant>,
    /// Serving a request: never expires meanwhile.
    pub busy: bool,
    /// Text of the last prompt, for Ollama's prompt cache.
    pub last_prompt: Option<String>,
}

impl LoadedRunner {
    fn expired(&self, now: Instant) -> bool {
        !self.busy && self.expires.is_some_and(|t| t <= now)
    }
}

#[derive(Default)]
struct Faults {
    http: VecDeque<HttpFault>,
    stream: VecDeque<StreamFault>,
}

/// State shared by the HTTP handlers and the control handle.
pub(crate) struct Shared {
    faults: Mutex<Faults>,
    runner: Mutex<Option<LoadedRunner>>,
    stats: Mutex<SimStats>,
    /// Bumped when the server goes down: every request in flight stops.
    pub kill: watch::Sender<u64>,
}

/// Lock ignoring poisoning: the protected data stays consistent (plain values).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            faults: Mutex::new(Faults::default()),
            runner: Mutex::new(None),
            stats: Mutex::new(SimStats::default()),
            kill: watch::channel(0).0,
        })
    }

    pub fn pop_http_fault(&self) -> Option<HttpFault> {
        let fault = lock(&self.faults).http.pop_front();
        if fault.is_some() {
            self.stats(|s| s.faults_fired += 1);
        }
        fault
    }

    pub fn pop_stream_fault(&self) -> Option<StreamFault> {
        lock(&self.faults).stream.pop_front()
    }

    pub fn stats(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut lock(&self.stats));
    }

    /// The loaded runner, after dropping it if its keep-alive ran out.
    pub fn runner(&self) -> Option<LoadedRunner> {
        let mut slot = lock(&self.runner);
        if slot.as_ref().is_some_and(|r| r.expired(Instant::now())) {
            *slot = None;
            self.stats(|s| s.unloads += 1);
        }
        slot.clone()
    }

    pub fn set_runner(&self, runner: LoadedRunner) {
        *lock(&self.runner) = Some(runner);
    }

    /// Change the loaded runner in place (no-op when none is loaded).
    pub fn update_runner(&self, f: impl FnOnce(&mut LoadedRunner)) {
        if let Some(r) = lock(&self.runner).as_mut() {
            f(r);
        }
    }

    pub fn unload(&self) {
        if lock(&self.runner).take().is_some() {
            self.stats(|s| s.unloads += 1);
        }
    }

    /// The server goes down: stop every request in flight and forget the model.
    pub fn kill_all(&self) {
        self.kill.send_modify(|epoch| *epoch += 1);
        self.unload();
    }
}

/// A running accept loop and the way to stop it.
pub(crate) struct Running {
    pub stop: oneshot::Sender<()>,
    pub task: JoinHandle<()>,
}

/// What restarting the listener needs.
pub(crate) struct ListenerCtl {
    pub addr: SocketAddr,
    pub router: axum::Router,
    pub running: Option<Running>,
}

/// Handle to a simulator started with `sim::start`. Cheap to clone.
#[derive(Clone)]
pub struct SimControl {
    pub(crate) model: &'static str,
    pub(crate) shared: Arc<Shared>,
    pub(crate) listener: Arc<tokio::sync::Mutex<ListenerCtl>>,
}

/// How long `stop_listener` lets connections close before cutting them.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl SimControl {
    /// The next `n` requests to any `/api/...` route answer `status` with `{"error": message}`.
    pub fn fail_next(&self, n: usize, status: u16, message: impl Into<String>) {
        let message = message.into();
        let mut faults = lock(&self.shared.faults);
        for _ in 0..n {
            faults.http.push_back(HttpFault {
                status,
                message: message.clone(),
            });
        }
    }

    /// Queue a fault for the next `/api/generate` request that produces tokens.
    pub fn inject(&self, fault: StreamFault) {
        lock(&self.shared.faults).stream.push_back(fault);
    }

    /// Faults queued and not yet used (HTTP and stream).
    pub fn pending_faults(&self) -> usize {
        let f = lock(&self.shared.faults);
        f.http.len() + f.stream.len()
    }

    pub fn clear_faults(&self) {
        let mut f = lock(&self.shared.faults);
        f.http.clear();
        f.stream.clear();
    }

    /// Take the server down: stop accepting (connections are refused), cut streams in flight,
    /// forget the loaded model. Idempotent.
    pub async fn stop_listener(&self) {
        let mut ctl = self.listener.lock().await;
        let Some(Running { stop, mut task }) = ctl.running.take() else {
            return;
        };
        self.shared.kill_all();
        let _ = stop.send(());
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }

    /// Bring the server back on the same address (after `stop_listener`). No-op when running.
    pub async fn restart_listener(&self) -> std::io::Result<()> {
        let mut ctl = self.listener.lock().await;
        if ctl.running.is_some() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(ctl.addr).await?;
        ctl.running = Some(super::server::spawn_serve(listener, ctl.router.clone()));
        Ok(())
    }

    pub async fn is_listening(&self) -> bool {
        self.listener.lock().await.running.is_some()
    }

    /// The loaded runner, if any.
    pub fn loaded(&self) -> Option<LoadedInfo> {
        let r = self.shared.runner()?;
        let now = Instant::now();
        Some(LoadedInfo {
            model: self.model.to_string(),
            key: r.key,
            expected: r.expected,
            expires_in: r
                .expires
                .filter(|_| !r.busy)
                .map(|t| t.saturating_duration_since(now)),
        })
    }

    /// Unload the model now, as `keep_alive: 0` would.
    pub fn unload(&self) {
        self.shared.unload();
    }

    pub fn stats(&self) -> SimStats {
        lock(&self.shared.stats).clone()
    }
}
