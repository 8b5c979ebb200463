//! `ollama-tuner status RUN_DIR`: where a run stands, read from its files.

use super::CliError;
use crate::store::{RunDir, RunLock, RunMeta};
use crate::verdict::Standings;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::time::Duration;

fn duration_text(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.max(0.0) as u64)).to_string()
}

/// Whether the run has ended (a recorded stop): then nothing of its budget is left to spend.
fn finished(m: &RunMeta) -> bool {
    m.finished_at.is_some() || m.stop_reason.is_some()
}

/// Wall seconds spent on the run: run.json's count as of its last update, plus the time since
/// then while a daemon works on it.
fn elapsed_now(m: &RunMeta, running: bool, now: DateTime<Utc>) -> f64 {
    let since_update = DateTime::parse_from_rfc3339(&m.updated_at)
        .ok()
        .filter(|_| running && !finished(m))
        .map(|t| (now - t.with_timezone(&Utc)).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    m.elapsed_seconds + since_update
}

/// What is left of the budget: None once the run finished; while it runs (or until it is
/// resumed) the trials and the wall time still to spend.
fn budget_left(m: &RunMeta, trials: usize, running: bool, now: DateTime<Utc>) -> Option<String> {
    if finished(m) {
        return None;
    }
    let n = m.budget.trials.saturating_sub(trials);
    let mut left = format!("{n} trial{}", if n == 1 { "" } else { "s" });
    if let Some(w) = m.budget.wall_time {
        let secs = w.as_secs_f64() - elapsed_now(m, running, now);
        left.push_str(&format!(", at most {} of wall time", duration_text(secs)));
    }
    if !running {
        left.push_str(" (when resumed)");
    }
    Some(left)
}

/// `status RUN_DIR`: trials done, best so far, elapsed time, budget left, daemon alive.
pub(super) fn status(run_dir: &Path) -> Result<(), CliError> {
    let run = RunDir::open(run_dir)?;
    let meta = run.read_meta()?;
    let journal = run.read_journal()?;
    let holder = RunLock::holder(&run);
    let running = holder.is_some();
    let n = journal.records.len();
    outln!("run:       {}", run.path.display());
    match &holder {
        Some(pid) => outln!("daemon:    running (pid {pid})"),
        None => outln!("daemon:    not running"),
    }
    if let Some(m) = &meta {
        if m.backend.simulated {
            outln!("backend:   {} (SIMULATED)", m.backend.backend);
        } else {
            outln!(
                "backend:   {} {}",
                m.backend.backend,
                m.backend.server_version.clone().unwrap_or_default()
            );
        }
        outln!("study:     {} (model {})", m.study_name, m.model);
        // The same standings as the run loop, the report and export: one best, one count.
        let standings = Standings::of(&m.objective, &journal.records);
        outln!(
            "trials:    {} (budget {})",
            standings.counts().text(),
            m.budget.trials
        );
        let now = Utc::now();
        outln!("elapsed:   {}", duration_text(elapsed_now(m, running, now)));
        if let Some(left) = budget_left(m, n, running, now) {
            outln!("left:      {left}");
        }
        outln!("reloads:   {} ({:.1} s)", m.reloads, m.reload_seconds);
        if let Some(p) = m.progress.as_ref().filter(|p| p.report_trials < n) {
            outln!(
                "report:    covers {} of the {n} trials so far (regenerated every few seconds on fast trials, and when the run stops)",
                p.report_trials
            );
        }
        match standings.leader() {
            Some(b) => {
                let params: Vec<String> =
                    b.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                outln!(
                    "best:      {} = {:.4} ({}: {})",
                    m.objective.metric.label(),
                    b.objective,
                    b.trials_text(),
                    params.join(" ")
                );
            }
            None => outln!("best:      none yet"),
        }
        match (&m.stop_reason, &m.stop_message) {
            (Some(r), msg) => outln!(
                "stopped:   {} {}",
                r.as_str(),
                msg.clone().unwrap_or_default()
            ),
            (None, _) if holder.is_none() => outln!(
                "stopped:   not cleanly (killed?); `ollama-tuner resume {}` continues it",
                run.path.display()
            ),
            _ => {}
        }
    } else {
        outln!("trials:    {n}");
    }
    if !journal.skipped.is_empty() {
        outln!(
            "warning:   {} unreadable journal line(s) skipped",
            journal.skipped.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StopReason;

    fn meta() -> RunMeta {
        let text =
            "[study]\nname = \"t\"\nmodel = \"gemma3:4b\"\n[backend]\nkind = \"simulator\"\n\
                    [budget]\ntrials = 40\nwall_time = \"8h\"\n\
                    [params.num_ctx]\ntype = \"int\"\nlow = 512\nhigh = 4096\n";
        let s = crate::study::parse_study(Path::new("t.toml"), text).unwrap();
        RunMeta {
            run_id: "r".into(),
            study_name: s.name.clone(),
            model: s.model.clone(),
            seed: 1,
            study_file: "t.toml".into(),
            backend: Default::default(),
            space: s.space.clone(),
            objective: s.objective.clone(),
            budget: s.budget.clone(),
            protocol: s.protocol.clone(),
            runner_params: vec![],
            tuner_version: String::new(),
            started_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:01:00Z".into(),
            finished_at: None,
            stop_reason: None,
            stop_message: None,
            reloads: 0,
            reload_seconds: 0.0,
            outage_seconds: 0.0,
            elapsed_seconds: 60.0,
            budget_overrides: None,
            progress: None,
            integrity: vec![],
        }
    }

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_finished_run_has_nothing_left() {
        let mut m = meta();
        m.stop_reason = Some(StopReason::Budget);
        m.finished_at = Some("2026-01-01T00:01:00Z".into());
        assert_eq!(budget_left(&m, 40, false, at("2026-01-02T00:00:00Z")), None);
        // Stopped early by the trial budget of the command line: still nothing left.
        assert_eq!(budget_left(&m, 30, false, at("2026-01-02T00:00:00Z")), None);
        assert_eq!(elapsed_now(&m, true, at("2026-01-02T00:00:00Z")), 60.0);
    }

    #[test]
    fn a_running_run_counts_the_time_since_its_last_update() {
        let m = meta();
        // 60 s elapsed at the update, 10 min since: 8h - 11 min left.
        let now = at("2026-01-01T00:11:00Z");
        assert_eq!(elapsed_now(&m, true, now), 660.0);
        assert_eq!(
            budget_left(&m, 30, true, now).unwrap(),
            "10 trials, at most 7h 49m of wall time"
        );
        // Killed (no daemon, no recorded stop): the budget a resume would have.
        assert_eq!(
            budget_left(&m, 39, false, now).unwrap(),
            "1 trial, at most 7h 59m of wall time (when resumed)"
        );
    }
}
