//! Parameter importance of a report, from a GP refitted on the journal by the optimizer itself
//! (the same model the run used).

use crate::engine::optimizer::{Optimizer, ParamEffect};
use crate::store::RunMeta;
use crate::study::OptimizerSettings;
use crate::trial::TrialRecord;

/// Parameter importance from a GP fitted on the journal, the same model the optimizer uses.
pub(super) fn importance(meta: &RunMeta, records: &[TrialRecord]) -> Vec<ParamEffect> {
    if meta.space.params.is_empty()
        || records
            .iter()
            .filter(|r| r.is_ok() && r.objective.is_some())
            .count()
            < 2
    {
        return vec![];
    }
    let mut opt = Optimizer::new(
        meta.space.clone(),
        meta.objective.clone(),
        crate::study::is_positive_metric,
        OptimizerSettings::default(),
        meta.runner_params.clone(),
        meta.seed,
    );
    for r in records {
        crate::trial::tell_record(&mut opt, r);
    }
    let mut effects: Vec<ParamEffect> = opt
        .explain()
        .into_iter()
        .filter(|e| e.effect.is_finite() && e.share.is_finite())
        .collect();
    effects.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.name.cmp(&b.name))
    });
    effects
}
