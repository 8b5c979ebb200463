//! Reading a run folder and writing the report files into it: `analyse` (run folder ->
//! `Report`), `render` (one format to a string) and `write_all` (every file, atomically).

use super::analysis::analyse_journal;
use super::error::ReportError;
use super::types::{
    Report, ReportFormat, CONVERGENCE_FILE, CSV_FILE, JSON_FILE, MARKDOWN_FILE, PARETO_FILE,
};
use super::{csv, json, markdown, plots};
use crate::store::{JournalRead, RunDir, RunMeta};
use std::path::PathBuf;

/// Read a run folder (run.json + trials.jsonl, skipping torn journal lines) and analyse it,
/// including parameter importance from a freshly fitted GP.
pub fn analyse(run: &RunDir) -> Result<Report, ReportError> {
    let (meta, journal) = load(run)?;
    Ok(analyse_journal(meta, journal, true))
}

/// Read run.json and the journal; a missing run.json is the user's mistake, not a crash.
pub(crate) fn load(run: &RunDir) -> Result<(RunMeta, JournalRead), ReportError> {
    let meta = run
        .read_meta()?
        .ok_or_else(|| ReportError::NotARun(run.path.clone()))?;
    let journal = run.read_journal()?;
    Ok((meta, journal))
}

/// Render an analysed run in one format.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Markdown => markdown::render(report),
        ReportFormat::Json => json::render(report),
        ReportFormat::Csv => csv::render(report),
    }
}

/// Write every report file into the run folder, each atomically: trials.csv, report.json,
/// convergence.svg, pareto.svg (when TTFT was measured) and report.md, which links the plots.
/// Returns the paths written.
pub fn write_all(run: &RunDir) -> Result<Vec<PathBuf>, ReportError> {
    write_all_with(run, true)
}

/// `write_all`, optionally without the parameter importance (which fits a GP: seconds on runs
/// of thousands of trials, too slow to redo after every trial).
pub(crate) fn write_all_with(
    run: &RunDir,
    with_importance: bool,
) -> Result<Vec<PathBuf>, ReportError> {
    let (meta, journal) = load(run)?;
    let report = analyse_journal(meta, journal, with_importance);
    write_report(run, &report)
}

/// Write the files of an analysed run one at a time, so that at most one rendered file is in
/// memory (report.json, megabytes on a long run, is streamed to its file); the Markdown last,
/// so that when it appears the files it links exist.
pub(crate) fn write_report(run: &RunDir, report: &Report) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    run.write_file(CSV_FILE, csv::render(report).as_bytes())?;
    written.push(run.file(CSV_FILE));
    run.write_file_with(JSON_FILE, |w| json::write(report, w))?;
    written.push(run.file(JSON_FILE));
    run.write_file(CONVERGENCE_FILE, plots::convergence_svg(report)?.as_bytes())?;
    written.push(run.file(CONVERGENCE_FILE));
    if let Some(svg) = plots::pareto_svg(report)? {
        run.write_file(PARETO_FILE, svg.as_bytes())?;
        written.push(run.file(PARETO_FILE));
    }
    run.write_file(MARKDOWN_FILE, markdown::render(report).as_bytes())?;
    written.push(run.file(MARKDOWN_FILE));
    Ok(written)
}
