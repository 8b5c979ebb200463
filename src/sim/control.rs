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
use super::state::{lock, HttpFault, Shared, SimStats, StreamFault};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Ollama's answer when its request queue is full (server/sched.go ErrMaxQueue), HTTP 503.
pub const BUSY_MESSAGE: &str = "server busy, please try again.  maximum pending requests exceeded";

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

/// A running accept loop and the way to stop it.
pub(crate) struct Running {
    pub stop: oneshot::Sender<()>,
    pub task: JoinHandle<()>,
}

/// Serve `router` on `listener` in a task until `Running::stop` fires.
pub(crate) fn spawn_serve(listener: tokio::net::TcpListener, router: axum::Router) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("simulator: server error: {e}");
        }
    });
    Running { stop, task }
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
        ctl.running = Some(spawn_serve(listener, ctl.router.clone()));
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
