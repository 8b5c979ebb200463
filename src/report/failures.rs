//! The failure summary of a report: failed trials grouped by kind with where in the space they
//! happened (against where trials ran), and the trials that violated each constraint.

use super::types::{
    ConstraintViolations, FailureGroup, FailureSummary, ParamSpread, Row, RowClass, ValueSpread,
};
use crate::engine::space::{Config, ParamKind, ParamValue};
use crate::store::RunMeta;
use crate::trial::{FailureKind, Status};
use std::collections::BTreeSet;

/// The spread of a parameter's values over some trials: a range for ordered parameters,
/// the distinct values (in the domain's order) for categorical and bool ones.
fn spread(meta: &RunMeta, name: &str, configs: &[&Config]) -> Option<ValueSpread> {
    let values: Vec<&ParamValue> = configs.iter().filter_map(|c| c.get(name)).collect();
    if values.is_empty() {
        return None;
    }
    let ordered = match meta.space.get(name).map(|p| &p.kind) {
        Some(ParamKind::Int { .. } | ParamKind::Float { .. }) => true,
        Some(_) => false,
        None => values
            .iter()
            .all(|v| matches!(v, ParamValue::Int(_) | ParamValue::Float(_))),
    };
    if ordered {
        let cmp = |a: &&&ParamValue, b: &&&ParamValue| {
            a.as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&b.as_f64().unwrap_or(f64::NAN))
        };
        let min = values.iter().min_by(cmp)?;
        let max = values.iter().max_by(cmp)?;
        return Some(ValueSpread::Range {
            min: (*min).clone(),
            max: (*max).clone(),
        });
    }
    let mut distinct: Vec<ParamValue> = Vec::new();
    for v in &values {
        if !distinct.contains(v) {
            distinct.push((*v).clone());
        }
    }
    let order = |v: &ParamValue| -> (usize, String) {
        let idx = match meta.space.get(name).map(|p| &p.kind) {
            Some(ParamKind::Categorical { choices }) => {
                choices.iter().position(|c| c == v).unwrap_or(usize::MAX)
            }
            _ => usize::MAX,
        };
        (idx, v.to_string())
    };
    distinct.sort_by_key(order);
    Some(ValueSpread::Values { values: distinct })
}

/// Shorten an error message for a summary line (first line, at most 200 characters).
pub(crate) fn short_error(e: &str) -> String {
    let first = e
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut s: String = first.chars().take(200).collect();
    if first.chars().count() > 200 || e.trim().lines().count() > 1 {
        s.push_str(" ...");
    }
    s
}

/// Whether parameter `name` of the run's space can change the memory a configuration needs
/// (every parameter but those marked `Unaffected`).
fn can_change_memory(meta: &RunMeta, name: &str) -> bool {
    meta.space
        .params
        .iter()
        .find(|p| p.name == name)
        .is_none_or(|p| p.memory != crate::engine::space::Memory::Unaffected)
}

pub(super) fn failure_summary(
    meta: &RunMeta,
    rows: &[Row],
    param_names: &[String],
) -> FailureSummary {
    let ok_configs: Vec<&Config> = rows
        .iter()
        .filter(|r| r.record.status == Status::Ok)
        .map(|r| &r.record.params)
        .collect();
    let kind_order = |k: &str| -> usize {
        [
            FailureKind::OutOfMemory,
            FailureKind::LoadFailed,
            FailureKind::Crashed,
            FailureKind::Timeout,
            FailureKind::Error,
        ]
        .iter()
        .position(|f| f.as_str() == k)
        .unwrap_or(usize::MAX)
    };
    let mut kinds: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.failure_kind.as_deref())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    kinds.sort_by_key(|k| (kind_order(k), k.to_string()));
    let groups = kinds
        .into_iter()
        .map(|kind| {
            let mut members: Vec<&Row> = rows
                .iter()
                .filter(|r| r.failure_kind.as_deref() == Some(kind))
                .collect();
            members.sort_by_key(|r| r.trial());
            let configs: Vec<&Config> = members.iter().map(|r| &r.record.params).collect();
            FailureGroup {
                kind: kind.to_string(),
                trials: members.iter().map(|r| r.trial()).collect(),
                example_error: members
                    .iter()
                    .find_map(|r| r.record.error.as_deref())
                    .map(short_error),
                // Out of memory: only the settings that can change memory (docs/memory.md).
                params: param_names
                    .iter()
                    .filter(|n| {
                        kind != FailureKind::OutOfMemory.as_str() || can_change_memory(meta, n)
                    })
                    .map(|n| ParamSpread {
                        name: n.clone(),
                        failed: spread(meta, n, &configs),
                        ok: spread(meta, n, &ok_configs),
                    })
                    .collect(),
            }
        })
        .collect();

    let mut violations = Vec::new();
    for c in &meta.objective.constraints {
        let mut trials: Vec<usize> = rows
            .iter()
            .filter(|r| r.class == RowClass::Infeasible)
            .filter(|r| match r.metric(&c.metric.metric) {
                Some(s) => c.violation(s.get(c.metric.stat)) > 0.0,
                None => true,
            })
            .map(|r| r.trial())
            .collect();
        trials.sort_unstable();
        if !trials.is_empty() {
            violations.push(ConstraintViolations {
                constraint: c.text.clone(),
                trials,
            });
        }
    }
    FailureSummary { groups, violations }
}
