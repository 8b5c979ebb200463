//! The checked study and its plain parts: budget, measurement protocol, backend settings.

use super::durations::{opt_secs, secs};
use super::{DecisionSettings, Objective, OptimizerSettings};
use crate::engine::space::SearchSpace;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub trials: usize,
    #[serde(with = "opt_secs")]
    pub wall_time: Option<Duration>,
    /// Consecutive failed trials (or outage retries) before the run gives up.
    pub max_consecutive_failures: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Prompts {
    Builtin,
    File(PathBuf),
}

/// The measurement protocol shared by the server backends (ollama, llamacpp).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Measured requests per trial.
    pub repeats: usize,
    /// Requests sent and discarded after every (re)load.
    pub warmup: usize,
    /// Fixed generation length so decode speeds are comparable.
    pub num_predict: u32,
    pub prompts: Prompts,
    /// Unique prefix per request, defeating prefix caches (docs/ollama-options.md, "Prompt
    /// cache").
    pub nonce: bool,
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// Retries of a transient fault (outage, 5xx, broken stream) before the run waits longer.
    pub max_retries: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            repeats: 3,
            warmup: 1,
            num_predict: 128,
            prompts: Prompts::Builtin,
            nonce: true,
            request_timeout: Duration::from_secs(120),
            max_retries: 5,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    Ollama {
        url: String,
        keep_alive: String,
    },
    /// The built-in Ollama simulator, started in-process and driven through the ollama backend.
    Simulator {
        profile: String,
        time_scale: f64,
        keep_alive: String,
    },
    Llamacpp {
        /// Path of llama-server; empty means $LLAMA_SERVER.
        server: String,
        /// Path of the GGUF model; empty means $LLAMA_MODEL.
        model_path: String,
        /// Attach to a running server instead of managing one (sampling options only).
        attach: Option<String>,
        #[serde(with = "secs")]
        startup_timeout: Duration,
        extra_args: Vec<String>,
    },
    Command {
        argv: Vec<String>,
        #[serde(with = "secs")]
        timeout: Duration,
        env: BTreeMap<String, String>,
    },
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Ollama { .. } => "ollama",
            BackendConfig::Simulator { .. } => "simulator",
            BackendConfig::Llamacpp { .. } => "llamacpp",
            BackendConfig::Command { .. } => "command",
        }
    }
}

/// A checked study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub name: String,
    pub model: String,
    pub seed: u64,
    pub backend: BackendConfig,
    pub budget: Budget,
    pub objective: Objective,
    pub protocol: Protocol,
    pub optimizer: OptimizerSettings,
    /// The `[decision]` table; a study recorded before it existed reads as the defaults.
    #[serde(default)]
    pub decision: DecisionSettings,
    pub space: SearchSpace,
    /// Parameters that force a reload when they change (runner / load-time options).
    pub runner_params: Vec<String>,
}
