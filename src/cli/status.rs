//! `ollama-tuner status RUN_DIR`: where a run stands, read from its files.

use super::CliError;
use crate::store::{RunDir, RunLock};
use std::path::Path;
use std::time::Duration;

/// `status RUN_DIR`: trials done, best so far, elapsed time, budget left, daemon alive.
pub(super) fn status(run_dir: &Path) -> Result<(), CliError> {
    let run = RunDir::open(run_dir)?;
    let meta = run.read_meta()?;
    let journal = run.read_journal()?;
    let holder = RunLock::holder(&run);
    let n = journal.records.len();
    let ok = journal.records.iter().filter(|r| r.is_ok()).count();
    println!("run:       {}", run.path.display());
    match &holder {
        Some(pid) => println!("daemon:    running (pid {pid})"),
        None => println!("daemon:    not running"),
    }
    if let Some(m) = &meta {
        if m.backend.simulated {
            println!("backend:   {} (SIMULATED)", m.backend.backend);
        } else {
            println!(
                "backend:   {} {}",
                m.backend.backend,
                m.backend.server_version.clone().unwrap_or_default()
            );
        }
        println!("study:     {} (model {})", m.study_name, m.model);
        println!(
            "trials:    {n} of {} ({ok} ok, {} failed)",
            m.budget.trials,
            n - ok
        );
        println!(
            "elapsed:   {}",
            humantime::format_duration(Duration::from_secs(m.elapsed_seconds as u64))
        );
        if let Some(w) = m.budget.wall_time {
            let left = (w.as_secs_f64() - m.elapsed_seconds).max(0.0);
            println!(
                "time left: {}",
                humantime::format_duration(Duration::from_secs(left as u64))
            );
        }
        println!("reloads:   {} ({:.1} s)", m.reloads, m.reload_seconds);
        if let Some(p) = m.progress.as_ref().filter(|p| p.report_trials < n) {
            println!(
                "report:    covers {} of the {n} trials so far (regenerated every few seconds on fast trials, and when the run stops)",
                p.report_trials
            );
        }
        let sign = if m.objective.direction == crate::study::Direction::Maximize {
            1.0
        } else {
            -1.0
        };
        let best = journal
            .records
            .iter()
            .filter(|r| r.is_ok() && r.feasible)
            .filter_map(|r| r.objective.map(|v| (r, v)))
            .max_by(|a, b| (sign * a.1).total_cmp(&(sign * b.1)));
        match best {
            Some((r, v)) => {
                let params: Vec<String> =
                    r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "best:      {} = {v:.4} (trial {}: {})",
                    m.objective.metric.label(),
                    r.trial,
                    params.join(" ")
                );
            }
            None => println!("best:      none yet"),
        }
        match (&m.stop_reason, &m.stop_message) {
            (Some(r), msg) => println!(
                "stopped:   {} {}",
                r.as_str(),
                msg.clone().unwrap_or_default()
            ),
            (None, _) if holder.is_none() => println!(
                "stopped:   not cleanly (killed?); `ollama-tuner resume {}` continues it",
                run.path.display()
            ),
            _ => {}
        }
    } else {
        println!("trials:    {n}");
    }
    if !journal.skipped.is_empty() {
        println!(
            "warning:   {} unreadable journal line(s) skipped",
            journal.skipped.len()
        );
    }
    Ok(())
}
