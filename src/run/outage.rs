//! Outages: the backend is down or answers garbage. Waited out with exponential backoff (1 s
//! doubling to 60 s) up to `--max-outage`, at the start of a session and during a trial; a stop
//! signal cuts the wait short. The waiting is never counted against a configuration.

use super::{RunOptions, Shutdown};
use crate::backend::{Backend, BackendError, BackendInfo, Evaluation, Fatal};
use crate::engine::space::SearchSpace;
use crate::trial::Trial;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Waits between retries: 1 s, doubling, at most 60 s.
struct Backoff {
    delay: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            delay: Duration::from_secs(1),
        }
    }

    fn grow(&mut self) {
        self.delay = (self.delay * 2).min(Duration::from_secs(60));
    }
}

/// How the start of a session with the backend ended, when the backend did not fail.
pub(super) enum Prepared {
    /// The backend answered: the space it adjusted and what it says about itself.
    Ready(SearchSpace, BackendInfo),
    /// A stop signal came before the backend answered.
    Interrupted,
    /// The backend stayed unreachable for `--max-outage`.
    Unreachable(Fatal),
}

/// Connect to the backend and let it adjust the space; an outage at start is waited out like
/// one mid-run, and a stop signal ends the wait (and a connection attempt in progress) at once.
pub(super) async fn prepare(
    backend: &mut dyn Backend,
    space: &SearchSpace,
    max_outage: Duration,
    shutdown: &mut Shutdown,
) -> Result<Prepared, Fatal> {
    let t0 = Instant::now();
    let mut backoff = Backoff::new();
    let mut signals = Signals::new(shutdown);
    loop {
        if signals.count() > 0 {
            return Ok(Prepared::Interrupted);
        }
        let mut s = space.clone();
        let answered = tokio::select! {
            r = backend.prepare(&mut s) => r,
            _ = signals.next() => return Ok(Prepared::Interrupted),
        };
        match answered {
            Ok(info) => return Ok(Prepared::Ready(s, info)),
            Err(BackendError::Fatal(f)) => return Err(f),
            Err(BackendError::Transient(m)) => {
                if t0.elapsed() >= max_outage {
                    return Ok(Prepared::Unreachable(unreachable_at_start(&m, max_outage)));
                }
                warn!(error = %m, retry_in_s = backoff.delay.as_secs_f64(), "backend unavailable; waiting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay) => {}
                    _ = signals.next() => return Ok(Prepared::Interrupted),
                }
                backoff.grow();
            }
        }
    }
}

/// The failure of a backend that did not answer within `--max-outage` at the start.
fn unreachable_at_start(message: &str, max_outage: Duration) -> Fatal {
    Fatal::new(
        format!(
            "the backend stayed unreachable for {} (--max-outage): {message}",
            humantime::format_duration(max_outage)
        ),
        "start the server (or check backend.url) and run the same command again",
    )
}

/// The stop signals as the waits here see them: how many so far, and the next one.
struct Signals<'a> {
    rx: &'a mut Shutdown,
    /// The sender is gone: no signal will come any more.
    closed: bool,
}

impl<'a> Signals<'a> {
    fn new(rx: &'a mut Shutdown) -> Signals<'a> {
        Signals { rx, closed: false }
    }

    fn count(&self) -> u32 {
        *self.rx.borrow()
    }

    /// Wait for the next signal; returns the count so far. Never returns once the sender is
    /// gone.
    async fn next(&mut self) -> u32 {
        if !self.closed && self.rx.changed().await.is_ok() {
            return *self.rx.borrow_and_update();
        }
        self.closed = true;
        std::future::pending().await
    }
}

/// How a trial's measurement ended.
pub(super) enum Measured {
    Done(Evaluation),
    Fatal(Fatal),
    /// The backend stayed unreachable for `--max-outage`.
    Outage(String),
    /// A stop signal: the trial will be measured again on resume.
    Abandoned,
}

/// Measure a trial, retrying outages. After a first stop signal the measurement may finish
/// within the grace period, counted from the signal; when the grace runs out, or at a second
/// signal, it is abandoned (and measured again on resume).
pub(super) async fn measure_with_grace(
    backend: &mut dyn Backend,
    trial: &Trial,
    shutdown: &mut Shutdown,
    opts: &RunOptions,
    outage_seconds: &mut f64,
) -> Measured {
    let t_outage = Instant::now();
    let mut backoff = Backoff::new();
    let mut signals = Signals::new(shutdown);
    let grace = opts.grace;
    let mut grace_ends = (signals.count() > 0).then(|| tokio::time::Instant::now() + grace);
    loop {
        if signals.count() >= 2 {
            return Measured::Abandoned;
        }
        let attempt = backend.evaluate(&trial.config);
        tokio::pin!(attempt);
        let result = loop {
            let grace_over = async {
                match grace_ends {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut attempt => break Some(r),
                n = signals.next() => {
                    if n >= 2 {
                        info!(trial = trial.number, "second stop signal: abandoning the trial in flight");
                        break None;
                    }
                    if grace_ends.is_none() {
                        grace_ends = Some(tokio::time::Instant::now() + grace);
                        info!(grace_s = grace.as_secs_f64(), "stop requested; letting the trial in flight finish");
                    }
                }
                _ = grace_over => {
                    info!(trial = trial.number, grace_s = grace.as_secs_f64(), "the trial in flight did not finish within the grace period; abandoning it");
                    break None;
                }
            }
        };
        let Some(result) = result else {
            return Measured::Abandoned;
        };
        match result {
            Ok(e) => return Measured::Done(e),
            Err(BackendError::Fatal(f)) => return Measured::Fatal(f),
            Err(BackendError::Transient(m)) => {
                if grace_ends.is_some() {
                    return Measured::Abandoned;
                }
                if t_outage.elapsed() >= opts.max_outage {
                    return Measured::Outage(m);
                }
                warn!(error = %m, retry_in_s = backoff.delay.as_secs_f64(), trial = trial.number, "backend unavailable; the trial will be retried");
                let t = Instant::now();
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay) => {}
                    _ = signals.next() => return Measured::Abandoned,
                }
                *outage_seconds += t.elapsed().as_secs_f64();
                backoff.grow();
            }
        }
    }
}
