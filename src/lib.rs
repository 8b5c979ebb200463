//! ollama-tuner: Gaussian-process Bayesian optimization of local LLM server settings.
//!
//! The module list is the pipeline: search space -> initial design -> GP surrogate ->
//! acquisition (maximized with boxmin) -> optimizer (ask/tell, no I/O) <- run loop (tokio) ->
//! backends -> store -> report / export.

pub mod acquisition;
pub mod backend;
pub mod boxmin;
pub mod cli;
pub mod design;
pub mod export;
pub mod gp;
pub mod measure;
pub mod optimizer;
pub mod report;
pub mod runloop;
pub mod sim;
pub mod simctl;
pub mod space;
pub mod stats;
pub mod store;
pub mod study;
pub mod testfunctions;
pub mod trial;
pub mod warp;
