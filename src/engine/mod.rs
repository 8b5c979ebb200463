//! The optimization engine: search space, initial design, output warp, Gaussian process,
//! acquisition and the ask/tell optimizer. Pure computation: no I/O, no async runtime.

pub mod acquisition;
pub mod boxmin;
pub mod design;
pub mod gp;
pub mod optimizer;
pub mod space;
pub mod stats;
pub mod testfunctions;
pub mod warp;
