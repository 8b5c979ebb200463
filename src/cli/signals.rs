//! Stop signals and the exit code a run ends with.
//!
//! SIGINT and SIGTERM are counted. The first stops the run after the trial in flight (which may
//! finish within `--grace`, counted from the signal); the second abandons the trial in flight
//! at once (it is measured again on resume), records the stop in run.json and exits 130 without
//! waiting for the report; a third exits 130 at once, whatever the run is doing (the journal's
//! lines are fsynced and the checkpoint and run.json replaced atomically, so resume works from
//! any point).
//!
//! `exit_code` is the one table from how a run stopped to its exit code (README, "Exit codes").

use super::ExitCode;
use crate::store::StopReason;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Install the SIGINT/SIGTERM handlers (at once: a signal right after this call is counted,
/// not fatal) and return the count of signals received so far. Must be called within the
/// runtime.
pub(crate) fn install_signal_handlers() -> watch::Receiver<u32> {
    let (tx, rx) = watch::channel(0u32);
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = streams else {
            errln!("warning: cannot install the signal handlers; SIGINT and SIGTERM stop the tuner at once");
            // Keep the sender alive so receivers do not see a closed channel.
            std::future::pending::<()>().await;
            return;
        };
        let mut count = 0u32;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            count += 1;
            match count {
                1 => errln!(
                    "stopping after the trial in flight (send the signal again to stop at once)"
                ),
                2 => errln!(
                    "second signal: abandoning the trial in flight and recording the stop (a third signal exits at once)"
                ),
                _ => {
                    errln!("third signal: exiting now; resume with `ollama-tuner resume RUN_DIR`");
                    std::process::exit(ExitCode::SecondSignal as i32);
                }
            }
            let _ = tx.send(count);
        }
    });
    rx
}

/// How a session that ended without an error exits: 0 when it stopped as planned (budget,
/// wall time, deadline, converged, decided, or one stop signal), 3 when the backend became
/// unusable (an outage longer than `--max-outage`, failures in a row that the settings do not
/// explain), 130 after a second stop signal whatever the stop (the end of the session was cut
/// short: the report files may lag run.json). (A fatal backend error comes back as an error and
/// exits 3 as well.)
pub fn exit_code(stop: &StopReason, signals: u32) -> Result<(), (ExitCode, &'static str)> {
    let backend = ExitCode::Backend;
    match stop {
        // However the run stopped, a second signal cut its end short (the report may lag).
        _ if signals >= 2 => Err((ExitCode::SecondSignal, "stopped by a second signal")),
        StopReason::Budget
        | StopReason::WallTime
        | StopReason::Deadline
        | StopReason::Interrupted
        | StopReason::Converged
        | StopReason::Decided => Ok(()),
        StopReason::Outage => Err((backend, "the backend stayed unreachable")),
        StopReason::TooManyFailures => Err((
            backend,
            "too many trials in a row failed in a way their settings do not explain",
        )),
        StopReason::Fatal => Err((backend, "the backend failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stop reason, after no, one and two signals: the README's exit-code table.
    #[test]
    fn every_stop_reason_has_its_documented_exit_code() {
        let table = [
            (StopReason::Budget, 0),
            (StopReason::WallTime, 0),
            (StopReason::Deadline, 0),
            (StopReason::Interrupted, 0),
            (StopReason::Converged, 0),
            (StopReason::Decided, 0),
            (StopReason::Outage, 3),
            (StopReason::TooManyFailures, 3),
            (StopReason::Fatal, 3),
        ];
        // A new stop reason does not compile here until it is in the table.
        let _every_reason_listed = |s: StopReason| match s {
            StopReason::Budget
            | StopReason::WallTime
            | StopReason::Deadline
            | StopReason::Interrupted
            | StopReason::Converged
            | StopReason::Decided
            | StopReason::Outage
            | StopReason::TooManyFailures
            | StopReason::Fatal => (),
        };
        let code =
            |stop: &StopReason, signals| exit_code(stop, signals).err().map_or(0, |e| e.0 as i32);
        for (stop, expected) in &table {
            assert_eq!(code(stop, 0), *expected, "{}", stop.as_str());
            assert_eq!(code(stop, 1), *expected, "{} after a signal", stop.as_str());
            assert_eq!(code(stop, 2), 130, "{} after two signals", stop.as_str());
            assert_eq!(code(stop, 3), 130, "{} after three signals", stop.as_str());
        }
        eprintln!(
            "{} stop reasons x 0, 1, 2 and 3 signals: all as documented",
            table.len()
        );
    }
}
