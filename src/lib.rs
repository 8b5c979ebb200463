//! ollama-tuner: Gaussian-process Bayesian optimization of local LLM server settings.
//!
//! The module list is the pipeline: search space -> initial design -> GP surrogate ->
//! acquisition -> optimizer (ask/tell, no I/O) <- run loop (tokio) -> backends -> store ->
//! report / export.

pub mod space;
pub mod study;
pub mod stats;
pub mod trial;
pub mod backend;
pub mod design;
pub mod gp;
pub mod acquisition;
pub mod optimizer;
pub mod store;
pub mod sim;
pub mod report;
pub mod export;
pub mod measure;
pub mod runloop;
pub mod cli;
pub mod simctl;
pub mod testfunctions;
