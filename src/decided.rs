//! The decision phase as the journal records it: the plan note carried by the first trial of a
//! phase, the value each of its trials told, and the rebuild of the phase from the journal
//! (resume, reports, `status`, `export`). One rebuild, so every reader gets the same answer.

use crate::engine::decision::{DecisionPhase, Plan, Stage};
use crate::trial::{Origin, TrialRecord};

/// The note that holds a decision phase's plan (serialized `Plan`), on the first trial the phase
/// measured. A later `decide` writes a new plan: the last one in the journal is the phase.
pub const PLAN_NOTE: &str = "decision_plan";

/// The origin of a trial of the phase in this stage.
pub fn origin_of(stage: Stage) -> Origin {
    match stage {
        Stage::Race => Origin::Decision,
        Stage::Ablation => Origin::Ablation,
    }
}

/// Whether a record was measured by the decision phase.
pub fn is_decision_trial(r: &TrialRecord) -> bool {
    matches!(r.origin, Origin::Decision | Origin::Ablation)
}

/// What a trial tells the phase: its objective when it ran and met the constraints, else
/// nothing (the arm can no longer be recommended).
pub fn decision_value(r: &TrialRecord) -> Option<f64> {
    r.objective
        .filter(|v| v.is_finite() && r.is_ok() && r.feasible)
}

/// Rebuilds the phase from records in journal order.
#[derive(Clone, Debug, Default)]
pub struct DecisionReplay {
    phase: Option<DecisionPhase>,
}

impl DecisionReplay {
    pub fn add(&mut self, r: &TrialRecord) {
        if let Some(plan) = r
            .notes
            .get(PLAN_NOTE)
            .and_then(|v| serde_json::from_value::<Plan>(v.clone()).ok())
        {
            self.phase = Some(DecisionPhase::new(plan));
        }
        if is_decision_trial(r) {
            if let Some(p) = self.phase.as_mut() {
                p.tell(&r.params, decision_value(r));
            }
        }
    }

    /// The phase so far, if one started.
    pub fn phase(&self) -> Option<&DecisionPhase> {
        self.phase.as_ref()
    }

    pub fn finish(self) -> Option<DecisionPhase> {
        self.phase
    }
}

/// The phase of a whole journal, if one started.
pub fn replay<'a>(records: impl IntoIterator<Item = &'a TrialRecord>) -> Option<DecisionPhase> {
    let mut r = DecisionReplay::default();
    for rec in records {
        r.add(rec);
    }
    r.finish()
}
