//! What `ask` returns: a configuration to measure and why it was proposed.

use crate::engine::space::Config;
use serde::{Deserialize, Serialize};

/// Why the optimizer proposed a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The study's defaults: what the user runs today.
    Baseline,
    /// Quasi-random initial design.
    Initial,
    /// Chosen by the GP and the acquisition function.
    Model,
    /// Random search (strategy = "random", or a fallback when the model cannot propose).
    Random,
    /// A measured configuration measured again because it was statistically tied for the lead.
    Confirm,
    /// The decision phase: leading candidates and the baseline re-measured in interleaved
    /// rounds (racing), so the recommendation and its effects rest on measurements taken after
    /// the selection (engine/decision/).
    Decision,
    /// The ablation path of the decision phase: the recommendation with one change reverted
    /// (or one output setting varied), measured in the same interleaved rounds.
    Ablation,
}

impl Origin {
    /// The journal's word for it (the serde name).
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Baseline => "baseline",
            Origin::Initial => "initial",
            Origin::Model => "model",
            Origin::Random => "random",
            Origin::Confirm => "confirm",
            Origin::Decision => "decision",
            Origin::Ablation => "ablation",
        }
    }

    /// A re-measurement of a configuration chosen earlier (not a new point of the search).
    pub fn is_remeasurement(&self) -> bool {
        matches!(self, Origin::Confirm | Origin::Decision | Origin::Ablation)
    }
}

/// A configuration the optimizer asks to be measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 0-based, in the order trials were asked.
    pub number: usize,
    pub config: Config,
    pub origin: Origin,
    /// Log expected improvement (with feasibility) of the proposal, when model-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquisition: Option<f64>,
}
