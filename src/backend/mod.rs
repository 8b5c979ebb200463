//! Backends measure one configuration: the Ollama API, a managed llama-server, or any command.
//!
//! The contract between the run loop and a backend:
//! - `Ok(Evaluation)` with samples: the configuration ran; the samples are its measurements.
//! - `Ok(Evaluation)` with a `failure`: the configuration itself does not work (out of memory,
//!   does not load, crashes, times out). It is journaled and teaches the feasibility model.
//! - `Err(BackendError::Transient)`: the server is down, restarting or answered garbage. Not the
//!   configuration's fault: the run loop retries with backoff and records nothing.
//! - `Err(BackendError::Fatal)`: continuing makes no sense (model not found, binary missing);
//!   the run stops with the message and hint.
//!
//! Files: this one holds the trait and the types every backend shares; `protocol.rs` the
//! measurement protocol and the one `Backend` impl of every protocol-driven server; `ollama.rs`,
//! `simulated.rs` and `llamacpp/` those servers; `command.rs` the command backend (`child.rs`
//! its process group, `output.rs` the bounded capture of program output); `factory.rs`
//! builds the backend a study names; `effective.rs` what the servers say they ran.

mod child;
pub mod command;
pub mod effective;
mod factory;
pub mod llamacpp;
pub mod ollama;
pub mod output;
pub mod protocol;
pub mod simulated;

pub use factory::create;

use crate::engine::optimizer::RunsAs;
use crate::engine::space::{Config, SearchSpace};
use crate::engine::stats::Sample;
use crate::trial::{FailureKind, LoadRecord};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Facts about the backend recorded at the start of a run (server version, model digest, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_digest: Option<String>,
    /// Free-form facts: model details, hardware the server exposes, bound adjustments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, serde_json::Value>,
    /// True when the numbers come from the built-in simulator, not real hardware.
    #[serde(default)]
    pub simulated: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// The result of measuring one configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub samples: Vec<Sample>,
    pub load: Option<LoadRecord>,
    pub failure: Option<Failure>,
    pub notes: BTreeMap<String, serde_json::Value>,
    /// The configuration as the server ran it, when that differs from the one asked for
    /// (`TrialRecord::effective`); None when it ran as asked or the server told nothing.
    pub effective: Option<Config>,
}

impl Evaluation {
    /// A failed measurement; its message is bounded (`output::ERROR_TEXT_MAX`).
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> Evaluation {
        Evaluation {
            failure: Some(Failure {
                kind,
                message: output::bound_text(&message.into(), output::ERROR_TEXT_MAX),
            }),
            ..Default::default()
        }
    }
}

/// A failure that stops the run: the message says what is wrong, the hint what to do. The
/// backends raise it, the run loop stops on it, the CLI prints it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}\nhint: {hint}")]
pub struct Fatal {
    pub message: String,
    pub hint: String,
}

impl Fatal {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Fatal {
        Fatal {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not the configuration's fault; retry later.
    #[error("{0}")]
    Transient(String),
    /// Stop the run.
    #[error(transparent)]
    Fatal(#[from] Fatal),
}

impl BackendError {
    pub fn fatal(message: impl Into<String>, hint: impl Into<String>) -> BackendError {
        BackendError::Fatal(Fatal::new(message, hint))
    }
}

/// What a backend counts over a session; the run loop adds the reloads to run.json.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// Runner (re)loads, and the seconds they took.
    pub reloads: u64,
    pub reload_seconds: f64,
    /// llama-server only: restarts of a server that stopped answering, and crashes.
    pub restarts_after_hang: u64,
    pub crashes: u64,
}

#[async_trait]
pub trait Backend: Send {
    /// Connect, record facts, and adjust the space to what the model allows (for example cap
    /// num_gpu at block_count+1). Called once per run before the first trial.
    async fn prepare(&mut self, space: &mut SearchSpace) -> Result<BackendInfo, BackendError>;

    /// Measure one configuration.
    async fn evaluate(&mut self, config: &Config) -> Result<Evaluation, BackendError>;

    /// Counters worth reporting (reloads and the time they took).
    fn counters(&self) -> Counters {
        Counters::default()
    }

    /// Runner options currently loaded on the server, for reload-aware proposals.
    fn loaded_runner(&self) -> Option<Config> {
        None
    }

    /// What the server runs for a configuration, as far as the backend knows without running
    /// it (llama-server clamps ubatch to batch): the optimizer maps its proposals through it,
    /// so two spellings of one server configuration are one point (engine/optimizer/
    /// effective.rs). None: nothing is known before the server runs.
    fn runs_as(&self) -> Option<RunsAs> {
        None
    }

    /// Release resources (kill child processes, unload). Must be safe to call twice.
    async fn shutdown(&mut self) {}
}

/// Classify a server error message: out-of-memory and load failures are properties of the
/// configuration (the message list in docs/measurement.md, "Errors"); anything else is not.
pub fn classify_failure(message: &str) -> Option<FailureKind> {
    let m = message.to_lowercase();
    const OOM: &[&str] = &[
        "out of memory",
        "cudamalloc failed",
        "hipmalloc failed",
        "failed to allocate",
        "allocation failed",
        "not enough memory",
        "insufficient memory",
        "vk_error_out_of_device_memory",
        "erroroutofdevicememory",
        "model requires more system memory",
        "memory layout cannot be allocated",
        "unable to load full model on gpu",
    ];
    const LOAD: &[&str] = &[
        "llama runner process has terminated",
        "llama-server process has terminated",
        "failed to load model",
        "error loading model",
    ];
    if OOM.iter().any(|p| m.contains(p)) {
        Some(FailureKind::OutOfMemory)
    } else if LOAD.iter().any(|p| m.contains(p)) {
        Some(FailureKind::LoadFailed)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_reference_messages() {
        assert_eq!(
            classify_failure("CUDA error: out of memory"),
            Some(FailureKind::OutOfMemory)
        );
        assert_eq!(
            classify_failure("model requires more system memory (5.2 GiB) than is available"),
            Some(FailureKind::OutOfMemory)
        );
        assert_eq!(
            classify_failure("llama runner process has terminated: exit status 2"),
            Some(FailureKind::LoadFailed)
        );
        // Real messages: Ollama's runner on a CUDA OOM (server/sched.go wraps the runner's
        // stderr), llama-server's KV and compute buffer allocations, Vulkan.
        for oom in [
            "llama runner process has terminated: cudaMalloc failed: out of memory",
            "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 2304.00 MiB on device 0: cudaMalloc failed: out of memory",
            "llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache",
            "ggml_gallocr_reserve_n: failed to allocate CUDA0 buffer of size 1073741824",
            "ggml_vulkan: Device memory allocation of size 805306368 failed. vk::Device::allocateMemory: ErrorOutOfDeviceMemory",
        ] {
            assert_eq!(classify_failure(oom), Some(FailureKind::OutOfMemory), "{oom}");
        }
        assert_eq!(
            classify_failure(
                "error loading model: llama_model_loader: failed to load model from /models/x.gguf"
            ),
            Some(FailureKind::LoadFailed)
        );
        assert_eq!(classify_failure("connection reset by peer"), None);
    }
}
