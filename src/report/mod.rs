//! Ranked reports of a run (being written on the `report` branch; this stub keeps the run loop
//! compiling until it lands).

use crate::store::RunDir;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReportError(pub String);

pub fn write_all(_run: &RunDir) -> Result<Vec<PathBuf>, ReportError> {
    Ok(vec![])
}

pub enum ReportFormat {
    Markdown,
    Json,
    Csv,
}

pub struct Report;

pub fn analyse(_run: &RunDir) -> Result<Report, ReportError> {
    Err(ReportError("reports are not available yet".into()))
}

pub fn render(_report: &Report, _format: ReportFormat) -> String {
    String::new()
}
