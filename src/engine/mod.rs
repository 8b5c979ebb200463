//! The optimization engine: search space, initial design, output warp, Gaussian process,
//! acquisition and the ask/tell optimizer. Pure computation: no I/O, no async runtime, and
//! nothing imported from outside `engine/` (a study parses into `objective` and
//! `optimizer::OptimizerSettings`; the journal adapter lives in trial.rs of the crate root).

pub mod acquisition;
pub mod boxmin;
pub(crate) mod configkey;
pub mod decision;
pub mod design;
pub mod gp;
pub mod memory;
pub mod objective;
pub mod optimizer;
pub mod random;
pub mod space;
pub mod stats;
/// Standard benchmark functions (Branin, Hartmann6, mixed Ackley) for examples/bench_bo.rs:
/// public for that example only, not part of the tuner's API.
#[doc(hidden)]
pub mod testfunctions;
pub mod trial;
pub mod warp;
