//! Builds the backend a study names: the one place that knows every backend kind.

use super::command::CommandBackend;
use super::llamacpp::LlamaCppBackend;
use super::ollama::OllamaBackend;
use super::simulated::SimulatedOllama;
use super::{Backend, BackendError};
use crate::study::{BackendConfig, Study};

/// Build the backend a study asks for.
pub async fn create(study: &Study) -> Result<Box<dyn Backend>, BackendError> {
    Ok(match &study.backend {
        BackendConfig::Ollama { url, keep_alive } => Box::new(OllamaBackend::new(
            url,
            &study.model,
            keep_alive,
            study.protocol.clone(),
            study.runner_params.clone(),
        )?),
        BackendConfig::Simulator {
            profile,
            time_scale,
            keep_alive,
        } => Box::new(
            SimulatedOllama::start(
                profile,
                *time_scale,
                study.seed,
                &study.model,
                keep_alive,
                study.protocol.clone(),
                study.runner_params.clone(),
            )
            .await?,
        ),
        BackendConfig::Command { argv, timeout, env } => Box::new(CommandBackend::new(
            argv.clone(),
            *timeout,
            env.clone(),
            study.protocol.repeats,
        )),
        BackendConfig::Llamacpp { .. } => Box::new(LlamaCppBackend::from_study(study)?),
    })
}
