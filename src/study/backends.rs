//! What a study needs to know about each kind of backend: the parameters that reload or
//! restart the server when they change, and how often an inference server re-measures a
//! leader by default.

use crate::domain::ollama;

/// Runner (load-time) options of Ollama: changing one forces a model reload. Derived from the
/// option table in src/domain/ollama.rs (see docs/ollama-options.md).
pub const OLLAMA_RUNNER_OPTIONS: &[&str] = ollama::RUNNER_OPTIONS;

/// Load-time options of llama-server (a change needs a restart): the `restart` rows of the
/// table in src/domain/llamaserver.rs (see docs/llama-server.md).
pub const LLAMACPP_LOAD_OPTIONS: &[&str] = crate::domain::llamaserver::LOAD_OPTION_NAMES;

/// Default `optimizer.confirm` of studies on an inference server.
pub const SERVER_CONFIRM: usize = 3;
