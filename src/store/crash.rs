//! A test hook for crash testing: with `OLLAMA_TUNER_CRASH_AT=<point>` (or `<point>@<n>`) in
//! its environment, the daemon kills itself with SIGKILL the first (n-th) time it reaches the
//! named point: between two steps of the run loop, or in the middle of a journal or atomic
//! write. tests/kill_points.rs resumes after each and checks that no trial was lost or journaled
//! twice. Unset (always, outside tests) it costs one check of a cached value.
//!
//! Points (docs/architecture.md lists where they sit): `session-open`, `after-replay`,
//! `after-begin`, `after-ask`, `after-pending-checkpoint`, `journal-torn` (half a journal line
//! written and fsynced), `after-journal`, `atomic:<file>` (the temporary file of an atomic
//! write of `<file>` written and fsynced, not yet renamed), `after-checkpoint`, `after-meta`,
//! `in-report`, `before-finish`, `after-finish`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const CRASH_ENV: &str = "OLLAMA_TUNER_CRASH_AT";

struct Target {
    point: String,
    nth: usize,
    seen: AtomicUsize,
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var(CRASH_ENV).ok()?;
            let (point, nth) = match spec.rsplit_once('@') {
                Some((p, n)) => (p.to_string(), n.parse().ok()?),
                None => (spec, 1),
            };
            Some(Target {
                point,
                nth,
                seen: AtomicUsize::new(0),
            })
        })
        .as_ref()
}

/// Whether this is the time the daemon is to die at `point` (counts the visit).
pub(crate) fn due(point: &str) -> bool {
    match target() {
        Some(t) if t.point == point => t.seen.fetch_add(1, Ordering::SeqCst) + 1 == t.nth,
        _ => false,
    }
}

/// Die here, like `kill -9`, if this is the point and the time.
pub fn point(point: &str) {
    if due(point) {
        die();
    }
}

/// SIGKILL this process: nothing runs after it (no destructors, no flush), as after `kill -9`.
pub(crate) fn die() -> ! {
    // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, so this does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}
