//! `decide RUN_DIR` (a decision phase on a run, finished or not) and `recheck RUN_DIR` (the
//! recommendation and the baseline measured again now; exit code 7 when it got slower).

use super::{load_study, CliError, ExitCode};
use crate::backend::{self, Backend};
use crate::report::format_effect;
use crate::run::{self, RunOptions};
use crate::store::{RunDir, STUDY_FILE};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The state dir and run id of a run folder, as `resume` needs them.
pub(super) fn run_location(run_dir: &Path) -> Result<(PathBuf, String), CliError> {
    let state_dir = run_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let run_id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| {
            CliError::new(
                ExitCode::BadInput,
                format!("{} is not a run folder", run_dir.display()),
            )
        })?;
    Ok((state_dir, run_id))
}

/// Resume the run with a decision phase of `trials` trials started at once.
pub(super) async fn decide(run_dir: &Path, trials: Option<usize>) -> Result<(), CliError> {
    let run = RunDir::open(run_dir)?;
    let study_path = run.file(STUDY_FILE);
    let study = load_study(&study_path)?;
    let meta = run.read_meta()?;
    let done = meta
        .as_ref()
        .and_then(|m| m.progress.as_ref())
        .map_or(0, |p| p.trials_done);
    let elapsed = meta.as_ref().map_or(0.0, |m| m.elapsed_seconds);
    let settings = &study.decision;
    let n = trials.unwrap_or_else(|| {
        ((settings.share * study.budget.trials as f64).ceil() as usize)
            .max(settings.min_rounds * (settings.candidates + 1))
    });
    if n == 0 {
        return Err(CliError::new(
            ExitCode::BadInput,
            "--trials must be at least 1".to_string(),
        ));
    }
    let (state_dir, run_id) = run_location(run_dir)?;
    // The phase gets the wall time its trials took so far, twice over, and at least an hour.
    let per_trial = if done > 0 {
        elapsed / done as f64
    } else {
        60.0
    };
    // Held to the limit of --time-budget: run.json's figures are not trusted to be sane.
    let time_budget =
        Duration::try_from_secs_f64(elapsed + (2.0 * per_trial * n as f64).max(3600.0))
            .map_or(crate::study::MAX_WALL_TIME, |d| {
                d.min(crate::study::MAX_WALL_TIME)
            });
    let opts = RunOptions {
        state_dir,
        run_id: Some(run_id),
        trials: Some(done.saturating_add(n)),
        time_budget: Some(time_budget),
        reports_dir: Some(PathBuf::from("reports")),
        decide: Some(n),
        ..RunOptions::default()
    };
    super::run_study(study, &study_path, opts).await
}

/// Measure the recommendation and the baseline again, interleaved, and compare with the record.
pub(super) async fn recheck(run_dir: &Path, rounds: usize) -> Result<(), CliError> {
    if rounds < 2 {
        return Err(CliError::new(
            ExitCode::BadInput,
            "--rounds must be at least 2 (an interval needs two paired rounds)".to_string(),
        ));
    }
    let run = RunDir::open(run_dir)?;
    let study = load_study(&run.file(STUDY_FILE))?;
    let report =
        crate::report::analyse(&run).map_err(|e| CliError::new(ExitCode::State, e.to_string()))?;
    let shutdown = super::install_signal_handlers();
    let backend: Box<dyn Backend> = backend::create(&study).await?;
    let out = run::recheck(&run, &study, &report, rounds, backend, shutdown).await?;
    let label = &out.objective_label;
    outln!(
        "recheck of {} ({} rounds, {} failed trials)",
        run_dir.display(),
        out.rounds,
        out.failed
    );
    if out.recommendation_is_baseline {
        outln!("the recommendation is your defaults: only its level was rechecked");
    }
    match &out.recorded_gain {
        Some(e) => outln!("recorded gain over the baseline: {}", format_effect(e)),
        None => {
            outln!("recorded gain over the baseline: no interval recorded (no decision phase ran)")
        }
    }
    if let Some(e) = &out.gain_now {
        let holds = match &out.recorded_gain {
            Some(r) if e.hi < r.lo || e.lo > r.hi => "differs from the recorded one",
            Some(_) => "consistent with the recorded one",
            None => "",
        };
        outln!(
            "gain over the baseline now:       {} {holds}",
            format_effect(e)
        );
    }
    match out.level_now {
        Some((pct, lo, hi)) => outln!(
            "{label} of the recommendation now against its recorded measurements: {pct:+.1}% [{lo:+.1}%, {hi:+.1}%]"
        ),
        None => outln!("{label} of the recommendation now: too few measurements to compare"),
    }
    if out.regressed {
        return Err(CliError::new(
            ExitCode::Regressed,
            format!(
                "the recommendation is now significantly slower than recorded ({label}); a server or driver \
                 update may have regressed it: run `ollama-tuner resume` with a larger budget or start a new run"
            ),
        ));
    }
    Ok(())
}
