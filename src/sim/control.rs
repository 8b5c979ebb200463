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
//!
//! Inspection and the model's knobs: `loaded`, `stats`, `clock_s` (the virtual clock every
//! reported duration is read on, state.rs) and `set_drift` (a slow drift of request times over
//! that clock, model/jitter.rs; the profile's by default, usually none).

use super::model::{Drift, Expected, RunnerKey};
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

    /// The virtual clock: simulated seconds the runner has been busy (loads, prompts, tokens).
    /// The difference between two readings is what a sequence of requests took in simulated
    /// time, free of HTTP and scheduling overhead.
    pub fn clock_s(&self) -> f64 {
        self.shared.clock_s()
    }

    /// Set (or with None remove) the drift applied to the requests that start from now on.
    pub fn set_drift(&self, drift: Option<Drift>) {
        self.shared.set_drift(drift);
    }

    /// The drift in force.
    pub fn drift(&self) -> Option<Drift> {
        self.shared.drift()
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::{self, Drift, DriftShape, SimConfig, SimServer};
    use serde_json::{json, Value};
    use std::net::SocketAddr;

    async fn start(seed: u64, time_scale: f64) -> SimServer {
        let config = SimConfig {
            profile: "gemma3-4b".into(),
            seed,
            time_scale,
        };
        sim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap()
    }

    /// One generate request; the final object of the answer (streamed or not).
    async fn generate(s: &SimServer, body: Value) -> Value {
        let text = reqwest::Client::new()
            .post(format!("{}/api/generate", s.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap();
        serde_json::from_str(last).unwrap()
    }

    fn secs(v: &Value, key: &str) -> f64 {
        v[key].as_f64().unwrap_or(0.0) / 1e9
    }

    /// Back-to-back requests, reloads among them; per request its reported durations and the
    /// virtual clock's advance.
    async fn session(seed: u64, time_scale: f64) -> Vec<(f64, f64, f64, f64, f64)> {
        let s = start(seed, time_scale).await;
        let mut out = vec![];
        for i in 0..16 {
            let ctx = [2048, 2048, 4096, 4096, 1024, 1024, 1024, 2048][i % 8];
            let prompt = if i % 5 == 4 {
                String::new() // load only
            } else {
                format!("[{i}] Why is the sky blue? Answer in a few sentences.")
            };
            let before = s.control.clock_s();
            let v = generate(
                &s,
                json!({"model": "gemma3:4b", "prompt": prompt, "stream": i % 2 == 0,
                       "options": {"num_ctx": ctx, "num_predict": 16}}),
            )
            .await;
            let advance = s.control.clock_s() - before;
            out.push((
                secs(&v, "load_duration"),
                secs(&v, "prompt_eval_duration"),
                secs(&v, "eval_duration"),
                secs(&v, "total_duration"),
                advance,
            ));
        }
        s.shutdown().await;
        out
    }

    #[tokio::test]
    async fn reported_durations_are_read_on_the_virtual_clock() {
        let a = session(3, 0.0005).await;
        assert_eq!(a, session(3, 0.0005).await, "a seed gives the same numbers");
        for (i, &(load, prompt, eval, _, advance)) in a.iter().enumerate() {
            if i % 5 == 4 {
                continue; // a load-only answer carries no durations
            }
            // No queue wait for a client that waits for each answer: the load is what the
            // runner slept, and the clock advanced by exactly the reported parts.
            let parts = load + prompt + eval;
            assert!(
                (parts - advance).abs() < 1e-6,
                "request {i}: {parts} vs {advance}"
            );
        }
    }

    #[tokio::test]
    async fn drift_slows_requests_along_the_virtual_clock() {
        let steady = start(9, 0.0).await;
        let drifting = start(9, 0.0).await;
        let ramp = Drift {
            shape: DriftShape::Ramp,
            amplitude: 0.5,
            period_s: 5.0,
        };
        drifting.control.set_drift(Some(ramp));
        assert_eq!(drifting.control.drift(), Some(ramp));
        let body = json!({"model": "gemma3:4b", "prompt": "hi", "stream": false,
                          "options": {"num_predict": 64}});
        for _ in 0..8 {
            let at = drifting.control.clock_s();
            let a = generate(&steady, body.clone()).await;
            let b = generate(&drifting, body.clone()).await;
            // Same noise draws; the drifting one is slower by the ramp at its start time.
            let ratio = secs(&b, "eval_duration") / secs(&a, "eval_duration");
            assert!((ratio - ramp.factor(at)).abs() < 1e-6, "{ratio} at {at}");
            assert_eq!(a["eval_count"], b["eval_count"]);
        }
        assert!(drifting.control.clock_s() > 5.0, "the ramp was run through");
        steady.shutdown().await;
        drifting.shutdown().await;
    }
}
