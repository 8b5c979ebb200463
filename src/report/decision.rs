//! The decision phase in the report: rebuilt from the journal (src/decided.rs), it names the
//! recommendation (rank 1), the arms it raced and eliminated, and the effects measured after
//! the selection: the gain over the baseline, what each change buys, the speed effect of each
//! output setting left at the user's value.

use super::types::{DecisionSection, Row, RowClass, Tie};
use crate::decided::{is_decision_trial, replay};
use crate::engine::space::config_key;
use crate::trial::{Origin, TrialRecord};

/// The phase of the journal, if one started.
pub(super) fn decision_section(records: &[TrialRecord]) -> Option<DecisionSection> {
    let phase = replay(records)?;
    let in_phase: Vec<&TrialRecord> = records.iter().filter(|r| is_decision_trial(r)).collect();
    Some(DecisionSection {
        result: phase.result(),
        plan: phase.plan().clone(),
        race_trials: in_phase
            .iter()
            .filter(|r| r.origin == Origin::Decision)
            .count(),
        ablation_trials: in_phase
            .iter()
            .filter(|r| r.origin == Origin::Ablation)
            .count(),
        budget: phase.plan().budget,
    })
}

/// Rank 1 is the recommendation: its row moves to the front of the feasible rows (the rest keep
/// their order), and the rows the phase raced carry its call (tied or eliminated) instead of a
/// bootstrap over the samples that selected them.
pub(super) fn apply_to_ranking(rows: &mut Vec<Row>, d: &DecisionSection) {
    let key = config_key(&d.result.recommendation);
    if let Some(i) = rows
        .iter()
        .position(|r| r.class == RowClass::Feasible && config_key(&r.record.params) == key)
    {
        let row = rows.remove(i);
        rows.insert(0, row);
    }
    let tied: Vec<String> = d.result.tied.iter().map(config_key).collect();
    let eliminated: Vec<String> = d
        .result
        .eliminated
        .iter()
        .map(|(c, _)| config_key(c))
        .collect();
    for r in rows.iter_mut().filter(|r| r.class == RowClass::Feasible) {
        let k = config_key(&r.record.params);
        if tied.contains(&k) {
            r.tie = Some(Tie::Tied);
        } else if eliminated.contains(&k) {
            r.tie = Some(Tie::Different);
        }
    }
}

/// Rank 1 against the baseline, as the phase measured it.
pub(super) fn tie_with_baseline(d: &DecisionSection) -> Option<Tie> {
    d.result.vs_baseline.as_ref().map(|e| {
        if e.significant {
            Tie::Different
        } else {
            Tie::Tied
        }
    })
}
