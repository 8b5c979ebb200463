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

/// Connect to the backend and let it adjust the space; an outage at start is waited out like
/// one mid-run. Returns the adjusted space and what the backend says about itself.
pub(super) async fn prepare(
    backend: &mut dyn Backend,
    space: &SearchSpace,
    max_outage: Duration,
    shutdown: &mut Shutdown,
) -> Result<(SearchSpace, BackendInfo), Fatal> {
    let t0 = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        let mut s = space.clone();
        match backend.prepare(&mut s).await {
            Ok(info) => return Ok((s, info)),
            Err(BackendError::Fatal(f)) => return Err(f),
            Err(BackendError::Transient(m)) => {
                if t0.elapsed() >= max_outage {
                    return Err(Fatal::new(
                        format!("the backend stayed unreachable: {m}"),
                        "start the server (or check backend.url) and run the same command again",
                    ));
                }
                warn!(error = %m, retry_in_s = backoff.delay.as_secs_f64(), "backend unavailable; waiting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay) => {}
                    _ = shutdown.changed() => return Err(Fatal::new(
                        "interrupted before the backend answered",
                        "nothing was measured; start the run again when the server is up",
                    )),
                }
                backoff.grow();
            }
        }
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

/// Measure a trial, retrying outages; after a stop signal the measurement may finish within
/// the grace period, else it is abandoned (and measured again on resume).
pub(super) async fn measure_with_grace(
    backend: &mut dyn Backend,
    trial: &Trial,
    shutdown: &mut Shutdown,
    opts: &RunOptions,
    outage_seconds: &mut f64,
) -> Measured {
    let t_outage = Instant::now();
    let mut backoff = Backoff::new();
    let mut signalled = *shutdown.borrow() > 0;
    let deadline = tokio::time::Instant::now() + opts.grace;
    loop {
        let attempt = backend.evaluate(&trial.config);
        tokio::pin!(attempt);
        let result = loop {
            tokio::select! {
                r = &mut attempt => break Some(r),
                _ = shutdown.changed(), if !signalled => {
                    signalled = true;
                    info!(grace_s = opts.grace.as_secs_f64(), "stop requested; letting the trial in flight finish");
                }
                _ = tokio::time::sleep_until(deadline), if signalled => break None,
            }
        };
        let Some(result) = result else {
            return Measured::Abandoned;
        };
        match result {
            Ok(e) => return Measured::Done(e),
            Err(BackendError::Fatal(f)) => return Measured::Fatal(f),
            Err(BackendError::Transient(m)) => {
                if signalled {
                    return Measured::Abandoned;
                }
                if t_outage.elapsed() >= opts.max_outage {
                    return Measured::Outage(m);
                }
                warn!(error = %m, retry_in_s = backoff.delay.as_secs_f64(), trial = trial.number, "backend unavailable; the trial will be retried");
                let t = Instant::now();
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay) => {}
                    _ = shutdown.changed() => return Measured::Abandoned,
                }
                *outage_seconds += t.elapsed().as_secs_f64();
                backoff.grow();
            }
        }
    }
}
