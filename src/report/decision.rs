//! The decision phase in the report: rebuilt from the journal (src/decided.rs), it names the
//! recommendation (rank 1), the arms it raced and eliminated, and the effects measured after
//! the selection: the gain over the baseline, what each change buys, the speed effect of each
//! output setting left at the user's value.

use super::types::{DecisionSection, Row, RowClass, Tie};
use crate::decided::{is_decision_trial, replay};
use crate::trial::{Origin, TrialRecord};
use crate::verdict::{ran_key, Grouping};

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
/// bootstrap over the samples that selected them. The phase's arms are requests; `grouping`
/// finds the row of each (a row's key is what its first trial ran, `ran_key`).
pub(super) fn apply_to_ranking(rows: &mut Vec<Row>, d: &DecisionSection, grouping: &Grouping) {
    let key = grouping.key_of(&d.result.recommendation);
    if let Some(i) = rows
        .iter()
        .position(|r| r.class == RowClass::Feasible && ran_key(&r.record) == key)
    {
        let row = rows.remove(i);
        rows.insert(0, row);
    }
    let tied: Vec<String> = d.result.tied.iter().map(|c| grouping.key_of(c)).collect();
    let eliminated: Vec<String> = d
        .result
        .eliminated
        .iter()
        .map(|(c, _)| grouping.key_of(c))
        .collect();
    for r in rows.iter_mut().filter(|r| r.class == RowClass::Feasible) {
        let k = ran_key(&r.record);
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
