//! ollama-tuner: Gaussian-process Bayesian optimization of local LLM server settings.
//!
//! The module tree is the pipeline (docs/architecture.md): `study` parses a study file into a
//! search space and an objective; `engine` is the optimizer (space -> initial design -> output
//! warp -> GP -> acquisition -> ask/tell), pure and synchronous; `run` is the tokio loop that
//! asks, measures through a `backend` and tells; `store` journals every trial first; `report`
//! and `export` read the journal. `domain` holds the server facts once; `sim` is the simulated
//! Ollama server. The binary's command line is `Cli` / `dispatch`.

pub mod backend;
mod cli;
pub mod decided;
pub mod domain;
pub mod engine;
pub mod export;
pub mod report;
pub mod run;
pub mod sim;
pub mod store;
pub mod study;
pub mod trial;
pub mod verdict;

pub use cli::sim::demo_study_text;
pub use cli::{dispatch, Cli, CliError, ExitCode, LogFormat};
