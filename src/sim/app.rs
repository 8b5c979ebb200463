//! The simulated server's runner: one model slot, one request at a time, loading and
//! reloading by runner options, time scaling and the per-request random draws.
//!
//! One runner, one request at a time (OLLAMA_NUM_PARALLEL=1): a request waits for the previous
//! one and the wait counts in its load_duration, as in Ollama (ollama/ollama:server/sched.go).
//! Sleeps are the simulated seconds times `time_scale`; reported durations are always the
//! simulated ones, the queue wait included: it is read on the virtual clock (state.rs), which
//! each sleep advances once it is over. keep_alive expiry is wall-clock and not scaled, so a
//! tuner's think time between requests does not unload.

use super::model::{draw_jitter, Expected, Jitter, RunnerKey, SimModel, SimOom};
use super::options::SimOptions;
use super::profiles::Profile;
use super::request::KeepAlive;
use super::state::{LoadedRunner, Shared};
use super::text::TextGen;
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedMutexGuard};

/// Server state shared by all handlers.
pub(crate) struct App {
    pub profile: &'static Profile,
    pub time_scale: f64,
    rng: Mutex<ChaCha8Rng>,
    /// The single runner slot: held for the whole of a generate request.
    queue: Arc<tokio::sync::Mutex<()>>,
    pub shared: Arc<Shared>,
    pub(super) modified_at: DateTime<Utc>,
}

impl App {
    pub fn new(profile: &'static Profile, seed: u64, time_scale: f64) -> Arc<App> {
        Arc::new(App {
            profile,
            time_scale,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            queue: Arc::new(tokio::sync::Mutex::new(())),
            shared: Shared::new(profile.drift),
            modified_at: Utc::now() - TimeDelta::days(3),
        })
    }

    /// Wall-clock duration of `sim_s` simulated seconds.
    pub(super) fn wall(&self, sim_s: f64) -> Duration {
        let w = sim_s * self.time_scale;
        if w > 0.0 {
            Duration::from_secs_f64(w.min(1e7))
        } else {
            Duration::ZERO
        }
    }

    /// This request's noise, under the drift in force at the virtual clock's reading.
    pub(super) fn jitter(&self) -> Jitter {
        let j = draw_jitter(&mut *self.rng.lock().unwrap_or_else(|e| e.into_inner()));
        j.drifted(self.shared.drift().as_ref(), self.shared.clock_s())
    }

    pub(super) fn text_gen(&self) -> TextGen {
        let seed = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random::<u64>();
        TextGen::new(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Whether `name` is the simulated model (case-insensitive, `:latest` implied).
    pub(super) fn knows(&self, name: &str) -> bool {
        normalize_model(name) == normalize_model(self.profile.model)
    }

    /// Sleep `sim_s` simulated seconds (scaled), then advance the virtual clock by them.
    pub(super) async fn sleep(
        &self,
        sim_s: f64,
        kill: &mut watch::Receiver<u64>,
    ) -> Result<(), Killed> {
        sleep_until(tokio::time::Instant::now() + self.wall(sim_s), kill).await?;
        self.shared.advance(sim_s);
        Ok(())
    }

    /// Wait for the runner slot; returns it and the simulated seconds waited (the virtual
    /// clock's advance meanwhile: zero unless another request was still running).
    pub(super) async fn acquire(
        self: &Arc<Self>,
        keep_alive: KeepAlive,
        kill: &mut watch::Receiver<u64>,
    ) -> Result<(Slot, f64), Killed> {
        let arrived = self.shared.clock_s();
        let queue = match self.queue.clone().try_lock_owned() {
            Ok(queue) => queue,
            Err(_) => tokio::select! {
                queue = self.queue.clone().lock_owned() => queue,
                _ = kill.changed() => return Err(Killed),
            },
        };
        let wait_s = (self.shared.clock_s() - arrived).max(0.0);
        let slot = Slot {
            app: self.clone(),
            keep_alive,
            _queue: queue,
        };
        Ok((slot, wait_s))
    }

    /// Make sure a runner with `opts`' runner options is loaded (reloading if they differ),
    /// sleeping the load time. Returns the expected performance for `opts` and load_duration.
    pub(super) async fn ensure_loaded(
        &self,
        opts: &SimOptions,
        wait_s: f64,
        jitter: &Jitter,
        kill: &mut watch::Receiver<u64>,
    ) -> Result<(Expected, f64), LoadError> {
        let p = self.profile;
        let key = RunnerKey::new(p, opts);
        let current = self.shared.runner();
        if let Some(runner) = current.as_ref().filter(|r| !r.key.needs_reload(&key)) {
            self.shared.update_runner(|r| r.busy = true);
            let warm = p.warm_load_s * jitter.load;
            self.sleep(warm, kill).await?;
            let expected = SimModel::expected(p, &runner.key.apply_to(opts))?;
            return Ok((expected, wait_s + warm));
        }
        if current.is_some() {
            tracing::info!("simulator: runner options changed, unloading before reload");
            self.shared.unload();
        }
        match SimModel::expected(p, opts) {
            Err(oom) => {
                self.sleep(oom.after_s * jitter.load, kill).await?;
                self.shared.stats(|s| s.ooms += 1);
                tracing::info!("simulator: load failed: {}", oom.message);
                Err(LoadError::Oom(oom))
            }
            Ok(expected) => {
                let load = expected.load_s * jitter.load;
                self.sleep(load, kill).await?;
                tracing::info!(
                    "simulator: loaded {} with {:?}: {}/{} layers on GPU, {:.1} tok/s expected",
                    p.model,
                    key,
                    expected.gpu_layers,
                    expected.total_layers,
                    expected.decode_tps
                );
                self.shared.set_runner(LoadedRunner {
                    key,
                    expected: expected.clone(),
                    expires: None,
                    busy: true,
                    last_prompt: None,
                });
                self.shared.stats(|s| {
                    s.loads += 1;
                    s.load_seconds += load;
                });
                Ok((expected, wait_s + load))
            }
        }
    }

    /// After a request: start the keep-alive clock, or unload for keep_alive 0.
    fn finish(&self, keep_alive: KeepAlive) {
        match keep_alive {
            KeepAlive::For(d) if d.is_zero() => self.shared.unload(),
            KeepAlive::For(d) => self.shared.update_runner(|r| {
                r.busy = false;
                r.expires = Instant::now().checked_add(d);
            }),
            KeepAlive::Forever => self.shared.update_runner(|r| {
                r.busy = false;
                r.expires = None;
            }),
        }
    }
}

/// The runner slot of one generate request. Dropping it (answer finished, client gone, load
/// failed or server down) starts the keep-alive clock, like Ollama releasing its runner
/// reference, and then lets the next request in.
pub(super) struct Slot {
    app: Arc<App>,
    keep_alive: KeepAlive,
    _queue: OwnedMutexGuard<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.app.finish(self.keep_alive);
    }
}

/// The server went down while the request was in flight.
#[derive(Debug)]
pub(super) struct Killed;

pub(super) enum LoadError {
    Oom(SimOom),
    Killed,
}

impl From<Killed> for LoadError {
    fn from(_: Killed) -> Self {
        LoadError::Killed
    }
}

impl From<SimOom> for LoadError {
    fn from(oom: SimOom) -> Self {
        LoadError::Oom(oom)
    }
}

pub(super) async fn sleep_until(
    at: tokio::time::Instant,
    kill: &mut watch::Receiver<u64>,
) -> Result<(), Killed> {
    tokio::select! {
        _ = tokio::time::sleep_until(at) => Ok(()),
        _ = kill.changed() => Err(Killed),
    }
}

/// Model names compare case-insensitively, with `:latest` implied.
pub(super) fn normalize_model(name: &str) -> String {
    let n = name.trim().to_lowercase();
    let last = n.rsplit('/').next().unwrap_or(&n);
    if last.contains(':') {
        n
    } else {
        format!("{n}:latest")
    }
}
