//! The run loop's blocking work, done on tokio's blocking pool: the optimizer's ask (72-282 ms
//! of linear algebra when it refits) and the fsync'd journal, checkpoint and run.json writes.
//! The runtime has two async workers, and the in-process simulator serves its requests on
//! them; blocking one of them delays the simulator's answers and so the trial's timings.
//!
//! Each helper awaits its work to the end, so the order of the loop is unchanged: a trial is
//! journaled (and fsynced) before anything else happens. A blocking task runs to completion
//! even when the awaiting future is dropped, so a journal write once begun is never cut short
//! by a cancelled run.

use crate::engine::optimizer::{AskContext, Optimizer};
use crate::store::{Checkpoint, RunDir, RunMeta, StoreError};
use crate::trial::{Trial, TrialRecord};

/// Run `f` on the blocking pool and wait for it; a panic in `f` continues in the caller.
async fn off_runtime<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels a blocking task, and then the run loop's
            // own future does not survive either.
            Err(e) => panic!("the runtime cancelled a blocking task of the run loop: {e}"),
        },
    }
}

/// `optimizer.ask(ctx)`; the optimizer is lent to the blocking thread and handed back.
pub(super) async fn ask(mut optimizer: Optimizer, ctx: AskContext) -> (Optimizer, Trial) {
    off_runtime(move || {
        let trial = optimizer.ask(&ctx);
        (optimizer, trial)
    })
    .await
}

/// Append a record to the journal (fsynced); hands the record back.
pub(super) async fn append_trial(
    run: &RunDir,
    rec: TrialRecord,
) -> Result<TrialRecord, StoreError> {
    let run = run.clone();
    off_runtime(move || run.append_trial(&rec).map(|()| rec)).await
}

pub(super) async fn write_checkpoint(run: &RunDir, c: Checkpoint) -> Result<(), StoreError> {
    let run = run.clone();
    off_runtime(move || run.write_checkpoint(&c)).await
}

pub(super) async fn write_meta(run: &RunDir, meta: &RunMeta) -> Result<(), StoreError> {
    let run = run.clone();
    let meta = meta.clone();
    off_runtime(move || run.write_meta(&meta)).await
}
