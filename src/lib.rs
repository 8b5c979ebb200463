//! ollama-tuner: Gaussian-process Bayesian optimization of local LLM server settings.
//!
//! The module list is the pipeline: search space -> initial design -> GP surrogate ->
//! acquisition (maximized with boxmin) -> optimizer (ask/tell, no I/O) <- run loop (tokio) ->
//! backends -> store -> report / export.

pub mod backend;
pub mod cli;
pub mod domain;
pub mod engine;
pub mod export;
pub mod report;
pub mod run;
pub mod sim;
pub mod store;
pub mod study;
pub mod trial;
