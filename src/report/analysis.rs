//! The analysis every format prints: journal -> `Report`. Classifies and ranks the trials, pools
//! repeated measurements of one configuration, decides ties with rank 1 and with the baseline
//! (bootstrap.rs), and builds the Pareto front and the convergence curve. Rank 1, the counts
//! and the best-so-far of the convergence come from src/verdict.rs, the rule `status`, the run
//! loop and export share. Failures are summarized in failures.rs, parameter importance in
//! importance.rs.

use super::bootstrap::{bootstrap_ci, bootstrap_diff, seed_for};
use super::decision::{apply_to_ranking, decision_section, tie_with_baseline};
use super::failures::failure_summary;
use super::format::fmt_num;
use super::importance::importance;
use super::types::{
    ConvergencePoint, Counts, Pareto, ParetoPoint, Report, Requested, Row, RowClass, Tie,
    TTFT_METRIC,
};
use crate::engine::space::format_float;
use crate::engine::stats::Summary;
use crate::store::{JournalRead, RunMeta};
use crate::study::{Comparison, Direction, Stat};
use crate::trial::{Status, TrialRecord};
use crate::verdict::{pooled_objective, Grouping, Standings};
use std::collections::{BTreeSet, HashMap};

/// Analyse a run already in memory. `with_importance` fits a GP for parameter importance,
/// which is the only expensive step (export leaves it out).
pub(crate) fn analyse_journal(
    meta: RunMeta,
    journal: JournalRead,
    with_importance: bool,
) -> Report {
    let JournalRead {
        records, skipped, ..
    } = journal;
    let objective = &meta.objective;
    let maximize = objective.direction == Direction::Maximize;

    let mut param_names: Vec<String> = meta.space.params.iter().map(|p| p.name.clone()).collect();
    let extra: BTreeSet<&String> = records
        .iter()
        .flat_map(|r| r.params.keys())
        .filter(|k| !param_names.contains(k))
        .collect();
    param_names.extend(extra.into_iter().cloned());
    let metric_names: Vec<String> = records
        .iter()
        .flat_map(|r| r.metrics.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();

    // The decision phase, rebuilt from the journal in journal order.
    let decision = decision_section(&records);
    // The standings (the one rule for the best and the counts) and the convergence curve, one
    // entry per trial, while the records are in journal order.
    let (standings, convergence) = standings_and_convergence(&meta, &records);
    let leader = standings.leader();

    // Importance first, while the records are in journal order (the GP keeps the most recent).
    let importance = if with_importance {
        importance(&meta, &records)
    } else {
        vec![]
    };

    // Classify every record; the rows take the records over rather than copying them, so a
    // report holds one copy of the journal, not two. Repeated measurements of one configuration
    // (as the server ran it) become one row.
    let rows: Vec<Row> = records
        .into_iter()
        .map(|rec| classify(rec, &meta))
        .collect();
    let (mut rows, grouping) = pool_repeats(rows, objective.metric.stat);

    // Rank: feasible by objective, infeasible by objective, failed by trial number.
    rows.sort_by(|a, b| {
        a.class
            .cmp(&b.class)
            .then_with(|| match (a.objective, b.objective) {
                (Some(x), Some(y)) if maximize => y.total_cmp(&x),
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => std::cmp::Ordering::Equal,
            })
            .then(a.trial().cmp(&b.trial()))
    });
    // Rank 1 is the leader by construction (same pooling, same order); placing it explicitly
    // keeps the report on the one rule if that rule ever ranks on more than the objective.
    let leader_row = leader.as_ref().and_then(|l| {
        rows.iter()
            .position(|r| r.class == RowClass::Feasible && r.trial() == l.trial)
    });
    if let Some(i) = leader_row {
        rows[..=i].rotate_right(1);
    }
    if let Some(d) = &decision {
        apply_to_ranking(&mut rows, d, &grouping);
    }
    let mut next = 1;
    for r in rows.iter_mut() {
        if r.class != RowClass::Failed {
            r.rank = Some(next);
            next += 1;
        }
    }

    let c = standings.counts();
    let counts = Counts {
        total: c.trials,
        feasible: c.feasible,
        infeasible: c.infeasible,
        failed: c.failed,
        configurations: c.configurations,
        remeasurements: c.remeasurements,
        remeasured_by_origin: c.remeasured_by,
    };

    let best = leader_row.map(|_| 0);
    // The first baseline trial (a resumed run never measures it twice, but be robust).
    let baseline = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_baseline())
        .min_by_key(|(_, r)| r.trial())
        .map(|(i, _)| i);

    // Spread, intervals, changes against the baseline and rank 1, ties.
    let stat = objective.metric.stat;
    for r in rows.iter_mut() {
        r.ci95 = bootstrap_ci(&r.objective_samples, stat, seed_for(r.trial(), r.trial()));
    }
    if let Some(b) = baseline.and_then(|i| rows[i].objective) {
        for r in rows.iter_mut() {
            r.vs_baseline_pct = r.objective.and_then(|v| pct_change(v, b));
        }
    }
    let mut best_vs_baseline = None;
    if let Some(bi) = best {
        let best_value = rows[bi].objective;
        let best_samples = rows[bi].objective_samples.clone();
        let best_trial = rows[bi].trial();
        for (i, r) in rows.iter_mut().enumerate() {
            r.vs_best_pct = match (r.objective, best_value) {
                (Some(v), Some(b)) if r.class != RowClass::Failed => pct_change(v, b),
                _ => None,
            };
            if r.class != RowClass::Feasible || (r.tie.is_some() && i != bi) {
                continue;
            }
            r.tie = Some(if i == bi {
                Tie::Best
            } else {
                compare(
                    &best_samples,
                    &r.objective_samples,
                    stat,
                    seed_for(best_trial, r.trial()),
                )
            });
        }
        if let Some(base) = baseline.filter(|&b| b != bi) {
            let base_row = &rows[base];
            if base_row.class != RowClass::Failed {
                best_vs_baseline = Some(compare(
                    &best_samples,
                    &base_row.objective_samples,
                    stat,
                    seed_for(best_trial, base_row.trial()),
                ));
            }
        }
    }

    if let Some(t) = decision.as_ref().and_then(tie_with_baseline) {
        best_vs_baseline = Some(t);
    }

    let failures = failure_summary(&meta, &rows, &param_names);
    let pareto = pareto(&meta, &rows, maximize);

    Report {
        meta,
        skipped_lines: skipped,
        param_names,
        metric_names,
        rows,
        counts,
        best,
        baseline,
        best_vs_baseline,
        importance,
        failures,
        pareto,
        convergence,
        decision,
    }
}

fn classify(rec: TrialRecord, meta: &RunMeta) -> Row {
    let objective = &meta.objective;
    let metric = &objective.metric.metric;
    let objective_samples: Vec<f64> = rec
        .samples
        .iter()
        .filter_map(|s| s.get(metric).copied())
        .filter(|v| v.is_finite())
        .collect();
    let objective_summary = rec
        .metrics
        .get(metric)
        .cloned()
        .or_else(|| Summary::of(&objective_samples));
    let value = rec.objective.filter(|v| v.is_finite());
    let (class, failure_kind) = match (rec.status, value) {
        (Status::Ok, Some(_)) if rec.feasible => (RowClass::Feasible, None),
        (Status::Ok, Some(_)) => (RowClass::Infeasible, None),
        (Status::Ok, None) => (RowClass::Failed, Some("missing_objective".to_string())),
        (Status::Failed, _) => (
            RowClass::Failed,
            Some(
                rec.failure
                    .map(|k| k.as_str())
                    .unwrap_or("unknown")
                    .to_string(),
            ),
        ),
    };
    let violations = if class == RowClass::Infeasible {
        let mut v: Vec<String> = objective
            .constraints
            .iter()
            .filter_map(|c| {
                match rec
                    .metrics
                    .get(&c.metric.metric)
                    .map(|s| s.get(c.metric.stat))
                {
                    Some(x) if c.violation(x) <= 0.0 => None,
                    Some(x) => Some(format!(
                        "{} {} {} {}",
                        c.metric.label(),
                        fmt_num(x),
                        match c.op {
                            Comparison::AtMost => ">",
                            Comparison::AtLeast => "<",
                        },
                        format_float(c.bound).trim_end_matches(".0")
                    )),
                    None => Some(format!("{} not measured", c.metric.label())),
                }
            })
            .collect();
        if v.is_empty() {
            v.push("constraints not met".to_string());
        }
        v
    } else {
        vec![]
    };
    Row {
        record: rec,
        class,
        rank: None,
        objective: if class == RowClass::Failed {
            None
        } else {
            value
        },
        objective_samples,
        objective_summary,
        ci95: None,
        vs_baseline_pct: None,
        vs_best_pct: None,
        tie: None,
        violations,
        failure_kind,
        also: vec![],
        requested: vec![],
    }
}

/// Merge the rows of trials that measured the same configuration (as the server ran it: the
/// grouping of `verdict::Grouping`) into the first one: its objective becomes the statistic
/// over all their samples, so a re-measured leader is ranked on every measurement instead of on
/// its luckiest trial. Feasible only when every measurement was. Failed trials are never merged
/// (each failure is its own evidence). The same pooling as `verdict::Standings` (and the same
/// statistic, `pooled_objective`), so the rows and the standings carry the same numbers. Rows
/// come in journal order; the grouping is handed back for the decision phase's arms.
fn pool_repeats(rows: Vec<Row>, stat: Stat) -> (Vec<Row>, Grouping) {
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut grouping = Grouping::default();
    let mut first_of: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let Some(grouped) = grouping.add(&row.record) else {
            out.push(row);
            continue;
        };
        let Some(&i) = first_of.get(&grouped.key) else {
            first_of.insert(grouped.key, out.len());
            out.push(row);
            continue;
        };
        let first = &mut out[i];
        note_request(first, &row);
        first.also.push(row.trial());
        first.objective_samples.extend(row.objective_samples);
        if row.class == RowClass::Infeasible {
            first.class = RowClass::Infeasible;
            first.violations.extend(row.violations);
        }
        if let Some(v) = pooled_objective(&first.objective_samples, stat) {
            first.objective = Some(v);
            first.objective_summary = Summary::of(&first.objective_samples);
        }
    }
    (out, grouping)
}

/// Record the request of a trial pooled into `first` (before its number joins `first.also`):
/// `requested` lists the requests once two differ.
fn note_request(first: &mut Row, row: &Row) {
    let asked = &row.record.params;
    if let Some(r) = first.requested.iter_mut().find(|r| &r.params == asked) {
        r.trials.push(row.trial());
        return;
    }
    if first.requested.is_empty() {
        if *asked == first.record.params {
            return;
        }
        // Every trial so far asked what the first did.
        first.requested.push(Requested {
            params: first.record.params.clone(),
            trials: std::iter::once(first.trial())
                .chain(first.also.iter().copied())
                .collect(),
        });
    }
    first.requested.push(Requested {
        params: asked.clone(),
        trials: vec![row.trial()],
    });
}

/// Percent change of `v` against `base`; None when the base is zero.
fn pct_change(v: f64, base: f64) -> Option<f64> {
    if base == 0.0 || !base.is_finite() || !v.is_finite() {
        None
    } else {
        Some((v - base) / base.abs() * 100.0)
    }
}

/// Tied when the bootstrap interval of the difference contains zero.
fn compare(best: &[f64], other: &[f64], stat: Stat, seed: u64) -> Tie {
    match bootstrap_diff(best, other, stat, seed) {
        None => Tie::Unknown,
        Some((lo, hi)) if lo <= 0.0 && 0.0 <= hi => Tie::Tied,
        Some(_) => Tie::Different,
    }
}

fn pareto(meta: &RunMeta, rows: &[Row], maximize: bool) -> Option<Pareto> {
    if meta.objective.metric.metric == TTFT_METRIC {
        return None;
    }
    let mut points: Vec<ParetoPoint> = rows
        .iter()
        .filter(|r| r.class == RowClass::Feasible)
        .filter_map(|r| {
            let ttft = r.metric(TTFT_METRIC)?.median;
            let obj = r.objective?;
            ttft.is_finite().then_some(ParetoPoint {
                trial: r.trial(),
                rank: r.rank?,
                objective: obj,
                ttft_p50: ttft,
                on_front: false,
            })
        })
        .collect();
    if points.len() < 2 {
        return None;
    }
    // Better objective (per direction) and lower TTFT; a point is on the front when no other
    // point is at least as good on both and strictly better on one.
    let better = |a: f64, b: f64| if maximize { a > b } else { a < b };
    let dominated: Vec<bool> = points
        .iter()
        .map(|p| {
            points.iter().any(|q| {
                let obj_ge = q.objective == p.objective || better(q.objective, p.objective);
                let ttft_le = q.ttft_p50 <= p.ttft_p50;
                obj_ge && ttft_le && (better(q.objective, p.objective) || q.ttft_p50 < p.ttft_p50)
            })
        })
        .collect();
    for (p, d) in points.iter_mut().zip(dominated) {
        p.on_front = !d;
    }
    Some(Pareto { points })
}

/// The standings of the whole journal and the convergence curve: one entry per trial in
/// journal (trial) order, re-measurements included, with the leader after each trial.
fn standings_and_convergence(
    meta: &RunMeta,
    records: &[TrialRecord],
) -> (Standings, Vec<ConvergencePoint>) {
    let mut standings = Standings::new(&meta.objective);
    let points = records
        .iter()
        .map(|rec| {
            let remeasures = standings.add(rec);
            let leader = standings.leader_value();
            let objective = rec.objective.filter(|v| rec.is_ok() && v.is_finite());
            ConvergencePoint {
                trial: rec.trial,
                origin: rec.origin,
                class: match objective {
                    Some(_) if rec.feasible => RowClass::Feasible,
                    Some(_) => RowClass::Infeasible,
                    None => RowClass::Failed,
                },
                objective,
                remeasures,
                best_so_far: leader.map(|(_, v)| v),
                best_trial: leader.map(|(t, _)| t),
            }
        })
        .collect();
    (standings, points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_ties_overlapping_and_separates_distinct_samples() {
        let a = [51.5, 51.8, 52.0, 52.4, 52.9];
        let b = [51.6, 51.9, 52.1, 52.3, 52.7];
        let c = [47.7, 48.0, 48.1, 48.3, 48.6];
        assert_eq!(compare(&b, &a, Stat::Median, 1), Tie::Tied);
        assert_eq!(compare(&b, &c, Stat::Median, 1), Tie::Different);
        assert_eq!(compare(&b, &[50.0], Stat::Median, 1), Tie::Unknown);
        // Deterministic for a seed.
        assert_eq!(
            bootstrap_ci(&a, Stat::Median, 3),
            bootstrap_ci(&a, Stat::Median, 3)
        );
        let (lo, hi) = bootstrap_ci(&a, Stat::Median, 3).unwrap();
        assert!(lo >= 51.5 && hi <= 52.9 && lo < hi);
    }
}
