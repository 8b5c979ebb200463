//! The state the HTTP handlers and `SimControl` share: queued faults, the loaded runner, the
//! counters, the virtual clock and the drift. Both sides lock it briefly; nothing here is async.
//!
//! # The virtual clock
//! Every duration the simulator reports comes from its model, never from the wall clock, so a
//! seed gives the same numbers however busy the machine is. The clock is the simulated seconds
//! the runner slot has been busy: a request advances it by each simulated duration once that
//! duration has passed (its load, then its prompt and tokens, just before the final line goes
//! out). A request's queue wait is the clock's advance between its arrival and the moment it
//! gets the slot: zero for a client that waits for each answer before sending the next request
//! (as the tuner does), the rest of the running request for one that arrives during it.

use super::model::{Drift, Expected, RunnerKey};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::watch;

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
pub(super) struct Faults {
    pub(super) http: VecDeque<HttpFault>,
    pub(super) stream: VecDeque<StreamFault>,
}

/// State shared by the HTTP handlers and the control handle.
pub(crate) struct Shared {
    pub(super) faults: Mutex<Faults>,
    runner: Mutex<Option<LoadedRunner>>,
    pub(super) stats: Mutex<SimStats>,
    /// The virtual clock, simulated seconds (see the module documentation).
    clock_s: Mutex<f64>,
    /// The drift in force (the profile's unless `SimControl::set_drift` changed it).
    drift: Mutex<Option<Drift>>,
    /// Bumped when the server goes down: every request in flight stops.
    pub kill: watch::Sender<u64>,
}

/// Lock ignoring poisoning: the protected data stays consistent (plain values).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(drift: Option<Drift>) -> Arc<Shared> {
        Arc::new(Shared {
            faults: Mutex::new(Faults::default()),
            runner: Mutex::new(None),
            stats: Mutex::new(SimStats::default()),
            clock_s: Mutex::new(0.0),
            drift: Mutex::new(drift),
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

    /// The virtual clock now, simulated seconds.
    pub fn clock_s(&self) -> f64 {
        *lock(&self.clock_s)
    }

    /// Advance the virtual clock by `sim_s` simulated seconds that have passed.
    pub fn advance(&self, sim_s: f64) {
        if sim_s.is_finite() && sim_s > 0.0 {
            *lock(&self.clock_s) += sim_s;
        }
    }

    pub fn drift(&self) -> Option<Drift> {
        *lock(&self.drift)
    }

    pub fn set_drift(&self, drift: Option<Drift>) {
        *lock(&self.drift) = drift;
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
