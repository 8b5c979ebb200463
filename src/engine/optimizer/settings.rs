//! The optimizer's own knobs (the `[optimizer]` table of a study).

use serde::{Deserialize, Serialize};

/// Knobs of the optimizer itself; defaults and their sources: docs/engine.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerSettings {
    /// Quasi-random trials before the GP takes over; 0 = automatic (depends on dimension).
    pub initial_trials: usize,
    /// Random candidates scored per ask before local refinement.
    pub candidates: usize,
    /// Measure an already measured configuration again when the optimizer picks it.
    pub allow_repeats: bool,
    /// Weigh improvement by the expected cost of a reload (see acquisition.rs).
    pub reload_aware: bool,
    /// `gp` (default) or `random` (the baseline the benchmark compares against).
    pub strategy: Strategy,
    /// Measure a configuration statistically tied for the lead up to this many times in all
    /// (leaders.rs `confirmation`); 1 = never re-measure (the engine's default, and the
    /// command backend's); studies on an inference server default to more (study's `SERVER_CONFIRM`).
    #[serde(default = "default_confirm")]
    pub confirm: usize,
}

/// How the optimizer proposes after the initial design. Serialized as "gp" / "random", the
/// words of the study file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The Gaussian process and the acquisition function.
    #[default]
    Gp,
    /// Uniform random search.
    Random,
}

impl Strategy {
    /// The study file's word for it, or None.
    pub fn parse(word: &str) -> Option<Strategy> {
        match word {
            "gp" => Some(Strategy::Gp),
            "random" => Some(Strategy::Random),
            _ => None,
        }
    }
}

fn default_confirm() -> usize {
    1
}

impl Default for OptimizerSettings {
    fn default() -> Self {
        OptimizerSettings {
            initial_trials: 0,
            candidates: 2048,
            allow_repeats: false,
            reload_aware: true,
            strategy: Strategy::Gp,
            confirm: default_confirm(),
        }
    }
}
