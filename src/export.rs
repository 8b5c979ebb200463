//! Export of a configuration (stub until the `report` branch lands).

use crate::store::RunDir;

pub enum ExportFormat {
    Modelfile,
    Json,
    Toml,
    LlamaServer,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExportError(pub String);

pub fn export(_run: &RunDir, _format: ExportFormat, _rank: usize) -> Result<String, ExportError> {
    Err(ExportError("export is not available yet".into()))
}
