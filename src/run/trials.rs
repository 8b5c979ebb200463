//! The loop of a session: check the stops, ask, checkpoint, measure, journal, tell, and keep
//! run.json and the report files current; then the end of the session.

use super::decision::{Decider, Left};
use super::offload;
use super::outage::{measure_with_grace, Measured};
use super::record::{log_trial, make_record, now_rfc3339};
use super::reports::ReportSchedule;
use super::tally::Tally;
use super::{RunError, RunOptions, Shutdown};
use crate::backend::{Backend, Counters, Fatal};
use crate::engine::optimizer::{AskContext, Optimizer};
use crate::engine::space::config_key;
use crate::store::{crash, Checkpoint, RunDir, RunMeta, StopReason};
use crate::study::Study;
use crate::trial::Trial;
use chrono::Local;
use std::io::IsTerminal;
use std::time::Instant;
use tracing::{info, warn};

/// What the loop reads and never changes.
pub(super) struct Context<'a> {
    pub study: &'a Study,
    pub opts: &'a RunOptions,
    pub run: &'a RunDir,
    pub fingerprint: &'a str,
    /// When this session started, and the run's elapsed seconds before it.
    pub started: Instant,
    pub elapsed_before: f64,
    /// Reloads and their seconds over the run before this session.
    pub reloads_before: (u64, f64),
}

impl Context<'_> {
    /// Wall seconds spent on the run, over all sessions.
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    fn checkpoint(
        &self,
        optimizer: &Optimizer,
        pending: Option<Trial>,
        trials_done: usize,
        backend: &dyn Backend,
    ) -> Checkpoint {
        Checkpoint {
            optimizer: optimizer.state().clone(),
            pending,
            trials_done,
            loaded_runner: backend.loaded_runner(),
            study_fingerprint: self.fingerprint.to_string(),
        }
    }
}

/// What the loop keeps current: run.json, the tally of the journal, the report schedule.
pub(super) struct Books {
    pub meta: RunMeta,
    pub tally: Tally,
    pub reports: ReportSchedule,
}

impl Books {
    /// The start of a session writes run.json and the full report set.
    pub async fn begin(&mut self, cx: &Context<'_>) -> Result<(), RunError> {
        self.meta.progress = Some(self.tally.progress(self.tally.done));
        offload::write_meta(cx.run, &self.meta).await?;
        self.reports.refresh(cx.run, self.tally.done, true).await;
        Ok(())
    }

    /// After a journaled trial: run.json, and the report set when it is due.
    async fn after_trial(&mut self, cx: &Context<'_>, counters: Counters) -> Result<(), RunError> {
        let meta = &mut self.meta;
        meta.reloads = cx.reloads_before.0 + counters.reloads;
        meta.reload_seconds = cx.reloads_before.1 + counters.reload_seconds;
        meta.updated_at = now_rfc3339();
        meta.elapsed_seconds = cx.elapsed();
        let full_report = self.reports.due(Instant::now());
        let covered = if full_report {
            self.tally.done
        } else {
            self.reports.covered
        };
        meta.progress = Some(self.tally.progress(covered));
        offload::write_meta(cx.run, meta).await?;
        crash::point("after-meta");
        let importance = self.reports.wants_importance(self.tally.done);
        if full_report
            && !self
                .reports
                .refresh(cx.run, self.tally.done, importance)
                .await
        {
            // Say truthfully how far the report files lag.
            self.meta.progress = Some(self.tally.progress(self.reports.covered));
            offload::write_meta(cx.run, &self.meta).await?;
        }
        Ok(())
    }

    /// A fatal backend error: record the stop, write the report, release the backend.
    async fn stop_fatal(
        &mut self,
        cx: &Context<'_>,
        backend: &mut dyn Backend,
        fatal: Fatal,
    ) -> RunError {
        self.meta.stop_reason = Some(StopReason::Fatal);
        self.meta.stop_message = Some(format!("{} ({})", fatal.message, fatal.hint));
        self.meta.finished_at = Some(now_rfc3339());
        if let Err(e) = offload::write_meta(cx.run, &self.meta).await {
            return e.into();
        }
        self.reports.refresh_final(cx.run, self.tally.done).await;
        backend.shutdown().await;
        RunError::Fatal(fatal)
    }

    /// The end of a session (the backend already shut down): the stop in run.json, the full
    /// report set.
    ///
    /// run.json is written first, so a stop reason is on disk before the report is begun; a
    /// second stop signal while the report is being written leaves it as it was (run.json
    /// then says how many trials the report files cover).
    pub async fn finish(
        &mut self,
        cx: &Context<'_>,
        stop: &StopReason,
        stop_message: &str,
        shutdown: &mut Shutdown,
    ) -> Result<(), RunError> {
        info!(reason = stop.as_str(), message = %stop_message, "run stopped");
        let meta = &mut self.meta;
        meta.stop_reason = Some(stop.clone());
        meta.stop_message = Some(stop_message.to_string());
        meta.finished_at = Some(now_rfc3339());
        meta.updated_at = now_rfc3339();
        meta.elapsed_seconds = cx.elapsed();
        meta.progress = Some(self.tally.progress(self.reports.covered));
        offload::write_meta(cx.run, meta).await?;
        if *shutdown.borrow() >= 2 {
            warn!("second stop signal: the report files are left as they were; `ollama-tuner report` renders them");
            return Ok(());
        }
        let done = self.tally.done;
        let written = tokio::select! {
            w = self.reports.refresh_final(cx.run, done) => w,
            _ = second_signal(shutdown) => {
                warn!("second stop signal: the report files are left as they were; `ollama-tuner report` renders them");
                false
            }
        };
        if written {
            self.meta.progress = Some(self.tally.progress(done));
            offload::write_meta(cx.run, &self.meta).await?;
        }
        Ok(())
    }
}

/// Resolves at the second stop signal (never, once no signal can come).
async fn second_signal(shutdown: &mut Shutdown) {
    while *shutdown.borrow_and_update() < 2 {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The progress bar; hidden when stderr is not a terminal (hyperfine, logs).
struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(enabled: bool, total: usize, done: usize) -> Progress {
        // One factory that returns a hidden bar when output is not a terminal (hyperfine).
        let bar = if enabled && std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} trials  {msg}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_position(done as u64);
        Progress { bar }
    }

    fn show(&self, tally: &Tally, study: &Study) {
        self.bar.set_position(tally.done as u64);
        if let Some((trial, value)) = tally.standings.leader_value() {
            self.bar.set_message(format!(
                "best {} = {value:.4} (trial {trial})",
                study.objective.metric.label(),
            ));
        }
    }
}

/// Why the loop stops before asking for another trial, if it does: a signal, the trial or
/// wall-time budget, the deadline, too many failures in a row.
fn stop_before_ask(
    cx: &Context<'_>,
    meta: &RunMeta,
    tally: &Tally,
    elapsed_total: f64,
    shutdown: &Shutdown,
    decided: bool,
) -> Option<(StopReason, String)> {
    let budget_trials = meta.budget.trials;
    if *shutdown.borrow() > 0 {
        return Some((StopReason::Interrupted, "stopped by a signal".to_string()));
    }
    if tally.done >= budget_trials {
        return Some((StopReason::Budget, format!("{budget_trials} trials done")));
    }
    if let Some(w) = meta.budget.wall_time {
        if elapsed_total >= w.as_secs_f64() {
            return Some((
                StopReason::WallTime,
                format!("wall-time budget of {} used", humantime::format_duration(w)),
            ));
        }
    }
    if let Some(u) = cx.opts.until {
        if Local::now() >= u {
            return Some((
                StopReason::Deadline,
                format!("deadline {} reached", u.format("%Y-%m-%d %H:%M")),
            ));
        }
    }
    if decided {
        return Some((
            StopReason::Decided,
            "the decision phase is done: the recommendation is decided".to_string(),
        ));
    }
    if tally.consecutive_failures >= cx.study.budget.max_consecutive_failures {
        return Some((
            StopReason::TooManyFailures,
            format!(
                "{} trials in a row failed in a way their settings do not explain (not out of memory, or nothing has loaded yet: a broken server or backend?) (budget.max_consecutive_failures); see the errors in the report",
                tally.consecutive_failures
            ),
        ));
    }
    None
}

/// How much of the run's budget is left, for the decision phase's start rule.
fn left<'a>(meta: &RunMeta, tally: &'a Tally, elapsed_total: f64) -> Left<'a> {
    let trials_by_time = meta.budget.wall_time.map(|w| {
        let mean = if tally.done > 0 {
            elapsed_total / tally.done as f64
        } else {
            f64::INFINITY
        };
        let t = (w.as_secs_f64() - elapsed_total).max(0.0) / mean;
        if t.is_finite() {
            t.floor() as usize
        } else {
            usize::MAX
        }
    });
    Left {
        trials_done: tally.done,
        trials_budget: meta.budget.trials,
        trials_by_time,
        baseline_ran: tally.baseline_ran.as_ref(),
        grouping: tally.standings.grouping(),
    }
}

/// Trials until a stop; returns why the loop stopped. A fatal backend error ends the session
/// here (run.json, report, backend shut down) and comes back as the error.
pub(super) async fn run_trials(
    cx: &Context<'_>,
    books: &mut Books,
    mut optimizer: Optimizer,
    mut pending: Option<Trial>,
    decider: &mut Decider,
    backend: &mut dyn Backend,
    shutdown: &mut Shutdown,
) -> Result<(StopReason, String), RunError> {
    let progress = Progress::new(cx.opts.progress, books.meta.budget.trials, books.tally.done);
    let stop = loop {
        let elapsed_total = cx.elapsed();
        books.meta.elapsed_seconds = elapsed_total;
        let left = left(&books.meta, &books.tally, elapsed_total);
        if let Some(p) = &pending {
            decider.resume_pending(cx.study, &optimizer, p, &left);
        } else {
            decider.maybe_start(cx.study, &optimizer, &left);
        }
        let decided = decider.is_done();
        if let Some(stop) = stop_before_ask(
            cx,
            &books.meta,
            &books.tally,
            elapsed_total,
            shutdown,
            decided,
        ) {
            break stop;
        }

        let t_ask = Instant::now();
        let trial = match pending
            .take()
            .or_else(|| decider.next_trial(&mut optimizer))
        {
            Some(t) => t,
            None => {
                let ctx = AskContext {
                    loaded_runner: backend.loaded_runner(),
                };
                let asked;
                (optimizer, asked) = offload::ask(optimizer, ctx).await;
                asked
            }
        };
        let ask_s = t_ask.elapsed().as_secs_f64();
        crash::point("after-ask");
        if !cx.study.optimizer.allow_repeats
            && !trial.origin.is_remeasurement()
            && optimizer.was_measured(&trial.config)
        {
            break (
                StopReason::Converged,
                "every configuration of the search space has been measured".to_string(),
            );
        }
        let c = cx.checkpoint(&optimizer, Some(trial.clone()), books.tally.done, backend);
        offload::write_checkpoint(cx.run, c).await?;
        crash::point("after-pending-checkpoint");
        info!(trial = trial.number, origin = ?trial.origin, config = %config_key(&trial.config), "measuring");

        let started_at = now_rfc3339();
        let t0 = Instant::now();
        let outage0 = books.meta.outage_seconds;
        let measured = measure_with_grace(
            backend,
            &trial,
            shutdown,
            cx.opts,
            &mut books.meta.outage_seconds,
        )
        .await;
        let eval = match measured {
            Measured::Done(e) => e,
            Measured::Fatal(f) => return Err(books.stop_fatal(cx, backend, f).await),
            Measured::Outage(m) => {
                break (
                    StopReason::Outage,
                    format!(
                        "the backend stayed unreachable for {} (--max-outage): {m}; the trial in flight will be measured again on resume",
                        humantime::format_duration(cx.opts.max_outage)
                    ),
                )
            }
            Measured::Abandoned => break abandoned(*shutdown.borrow(), cx.opts),
        };
        // Outage time is not the configuration's: leave it out of the trial's duration. The
        // simulator reports its own (simulated) duration, which does not depend on the machine.
        let duration = simulated_duration(&eval).unwrap_or_else(|| {
            (t0.elapsed().as_secs_f64() - (books.meta.outage_seconds - outage0)).max(0.0)
        });
        let mut rec = make_record(cx.study, &trial, eval, started_at, duration);
        rec.notes.insert("ask_s".into(), serde_json::json!(ask_s));
        decider.annotate(&mut rec);

        // Journal first, then act.
        let rec = offload::append_trial(cx.run, rec).await?;
        crash::point("after-journal");
        crate::trial::tell_record(&mut optimizer, &rec);
        decider.tell(&rec);
        log_trial(&rec);
        books.tally.add(&rec);
        let c = cx.checkpoint(&optimizer, None, books.tally.done, backend);
        offload::write_checkpoint(cx.run, c).await?;
        crash::point("after-checkpoint");
        books.after_trial(cx, backend.counters()).await?;
        progress.show(&books.tally, cx.study);
    };
    progress.bar.finish_and_clear();
    Ok(stop)
}

/// The stop of a session whose trial in flight was abandoned after `signals` stop signals.
fn abandoned(signals: u32, opts: &RunOptions) -> (StopReason, String) {
    let message = if signals >= 2 {
        "stopped by a second signal: the trial in flight was abandoned at once and will be measured again on resume".to_string()
    } else {
        format!(
            "stopped by a signal before the trial in flight finished (grace period {}); it will be measured again on resume",
            humantime::format_duration(opts.grace)
        )
    };
    (StopReason::Interrupted, message)
}

/// The simulated seconds a measurement on the simulator took (its virtual clock), if any.
fn simulated_duration(eval: &crate::backend::Evaluation) -> Option<f64> {
    eval.notes
        .get(crate::backend::simulated::SIMULATED_SECONDS_NOTE)
        .and_then(|v| v.as_f64())
        .filter(|s| s.is_finite() && *s >= 0.0)
}
