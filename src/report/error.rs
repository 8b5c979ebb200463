//! The report layer's error: a folder that is not a run, a store failure, a plot that could
//! not be drawn, an unknown format name.

use crate::store::{StoreError, META_FILE};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: no {META_FILE} here, so this is not a run folder (or its run never started); pass the folder the `run` command printed, e.g. state/<run-id>", .0.display())]
    NotARun(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("drawing {file}: {message}")]
    Plot { file: &'static str, message: String },
    #[error("unknown report format {0:?}: use md, json or csv")]
    UnknownFormat(String),
}
