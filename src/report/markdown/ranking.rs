//! The ranking table and the parameter importance table of the Markdown report.

use super::text::{cell, trial_ref, value_text};
use crate::engine::optimizer::{EFFECT_BASES, EFFECT_DRAWS, EFFECT_LEVELS, EFFECT_RADIUS};
use crate::engine::space::ParamValue;
use crate::report::format::{fmt_num, fmt_pct, fmt_share, unit_of};
use crate::report::types::{
    Report, Row, RowClass, Tie, CSV_FILE, DECODE_METRIC, JSON_FILE, TTFT_METRIC,
};
use std::fmt::Write;

/// Beyond this many trials the ranking table shows the top ones (and the baseline); the CSV and
/// JSON always hold every trial.
pub const MAX_TABLE_ROWS: usize = 40;

pub(super) fn ranking(r: &Report, o: &mut String) {
    let _ = writeln!(o, "## Ranking\n");
    if r.rows.is_empty() {
        let _ = writeln!(o, "No trials yet.\n");
        return;
    }
    let label = r.objective_label();
    let metric = r.meta.objective.metric.metric.clone();
    let show_decode = metric != DECODE_METRIC && r.metric_names.iter().any(|m| m == DECODE_METRIC);
    let show_ttft = r.has_ttft();
    let show_load = r.has_load();

    let unit = unit_of(&metric);
    let obj_header = if unit.is_empty() {
        label.clone()
    } else {
        format!("{label} ({unit})")
    };
    let mut headers: Vec<String> = vec!["rank".into(), "trial".into()];
    headers.extend(r.param_names.iter().map(|n| cell(n)));
    headers.extend([
        obj_header,
        "± std".into(),
        "CV".into(),
        "vs #1".into(),
        "vs baseline".into(),
    ]);
    if show_decode {
        headers.push("decode_tps (tok/s)".into());
    }
    if show_ttft {
        headers.extend(["TTFT p50 (s)".into(), "TTFT p95 (s)".into()]);
    }
    if show_load {
        headers.push("load (s)".into());
    }
    headers.extend(["n".into(), "status".into()]);
    let _ = writeln!(o, "| {} |", headers.join(" | "));
    let _ = writeln!(o, "|{}", "---|".repeat(headers.len()));

    let mut shown: Vec<&Row> = r.rows.iter().take(MAX_TABLE_ROWS).collect();
    if let Some(b) = r.baseline_row() {
        if !shown.iter().any(|x| x.trial() == b.trial()) {
            shown.push(b);
        }
    }
    for row in &shown {
        let mut cells: Vec<String> = vec![
            row.rank
                .map(|k| k.to_string())
                .unwrap_or_else(|| "-".into()),
            if row.is_baseline() {
                format!("{} (baseline)", trial_ref(row))
            } else {
                trial_ref(row)
            },
        ];
        for n in &r.param_names {
            cells.push(
                value_text(row, n)
                    .map(|t| cell(&t))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        let s = row
            .objective_summary
            .as_ref()
            .filter(|_| row.class != RowClass::Failed);
        cells.push(row.objective.map(fmt_num).unwrap_or_else(|| "-".into()));
        cells.push(
            s.filter(|s| s.n >= 2)
                .map(|s| fmt_num(s.std))
                .unwrap_or_else(|| "-".into()),
        );
        cells.push(
            s.filter(|s| s.n >= 2)
                .map(|s| fmt_share(s.cv()))
                .unwrap_or_else(|| "-".into()),
        );
        cells.push(match (row.tie, row.vs_best_pct) {
            (Some(Tie::Best), _) => "best".into(),
            (Some(Tie::Tied), Some(p)) => format!("{} tied", fmt_pct(p)),
            (Some(Tie::Unknown), Some(p)) => format!("{} ?", fmt_pct(p)),
            (_, Some(p)) => fmt_pct(p),
            _ => "-".into(),
        });
        cells.push(if row.is_baseline() {
            "baseline".into()
        } else {
            row.vs_baseline_pct
                .map(fmt_pct)
                .unwrap_or_else(|| "-".into())
        });
        if show_decode {
            cells.push(
                row.metric(DECODE_METRIC)
                    .map(|s| fmt_num(s.median))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        if show_ttft {
            let t = row.metric(TTFT_METRIC);
            cells.push(t.map(|s| fmt_num(s.median)).unwrap_or_else(|| "-".into()));
            cells.push(t.map(|s| fmt_num(s.p95)).unwrap_or_else(|| "-".into()));
        }
        if show_load {
            cells.push(match &row.record.load {
                Some(l) if l.reloaded => fmt_num(l.seconds),
                Some(_) => "warm".into(),
                None => "-".into(),
            });
        }
        let n = row
            .objective_summary
            .as_ref()
            .map(|s| s.n)
            .unwrap_or(row.objective_samples.len());
        cells.push(if row.class == RowClass::Failed {
            "-".into()
        } else {
            n.to_string()
        });
        cells.push(cell(&match row.class {
            RowClass::Feasible => "ok".to_string(),
            RowClass::Infeasible => format!("violates {}", row.violations.join("; ")),
            RowClass::Failed => format!(
                "failed: {}",
                row.failure_kind.as_deref().unwrap_or("unknown")
            ),
        }));
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    o.push('\n');
    if r.rows.len() > shown.len() {
        let _ = writeln!(
            o,
            "{} more trial(s) are not shown; every trial is in [{CSV_FILE}]({CSV_FILE}) and [{JSON_FILE}]({JSON_FILE}).\n",
            r.rows.len() - shown.len()
        );
    }
    let noun = r.sample_noun();
    let ran_differently = shown
        .iter()
        .any(|row| row.requests().into_iter().any(|c| c != row.ran()));
    let _ = writeln!(
        o,
        "Trials that met the constraints come first, best {label} first; then those that violated a constraint; \
         then failures. `± std` and `CV` are over the trial's {noun}s (`-`: a single {noun}, spread unknown). \
         `vs #1`: change against rank 1, *tied* = within measurement noise, *?* = undecidable (single {noun}). \
         `vs baseline`: change against the study's defaults.{}{} `n`: {noun}s measured.{}\n",
        if show_ttft { " TTFT is client-side time to first token." } else { "" },
        if show_load { " `load`: seconds of the model reload the trial paid (*warm*: none)." } else { "" },
        if ran_differently {
            " Settings are as the server ran them; *asked* names the requested values that ran \
             as them (an `auto` the server resolved, a value it clamped), and requests the server \
             ran identically share one row."
        } else {
            ""
        },
    );
    let _ = writeln!(o, "How ties are decided: {}\n", r.tie_method());
}

pub(super) fn importance(r: &Report, o: &mut String) {
    let _ = writeln!(o, "## Parameter importance (model estimate)\n");
    let label = r.objective_label();
    let measured = r
        .decision
        .as_ref()
        .is_some_and(|d| d.result.changes.iter().any(|c| c.effect.is_some()));
    if measured {
        let _ = writeln!(
            o,
            "The measured importance is the table \"What each change buys you\" above: those \
             effects come from paired, interleaved re-measurements. This section is secondary.\n"
        );
    }
    if r.importance.is_empty() {
        let _ = writeln!(
            o,
            "Not available: the model needs at least two trials that produced {label}.\n"
        );
        return;
    }
    let n = r
        .rows
        .iter()
        .filter(|x| x.class != RowClass::Failed)
        .count();
    let unit = unit_of(&r.meta.objective.metric.metric);
    let noise = r.importance.first().map_or(f64::NAN, |e| e.noise_sd);
    let noise = if unit.is_empty() {
        fmt_num(noise)
    } else {
        format!("{} {unit}", fmt_num(noise))
    };
    let _ = writeln!(
        o,
        "A model estimate, over the region that was sampled only, from the Gaussian process fitted to the {n} \
         trials that produced {label}: the other parameters stay at the best measured configurations (up to \
         {EFFECT_BASES}, averaged) and each parameter moves across the values it was measured at next to them \
         (some trial measured within {radius}% of each parameter's range from the changed configuration, closer \
         along the parameters that matter; at most {EFFECT_LEVELS} values); no effect goes beyond the range of \
         {label} measured. `effect`: how much better the predicted {label} is at `best at` than at `worst at`, \
         with its 95% interval, joint over the parameters ({EFFECT_DRAWS} draws from the model per parameter, \
         fixed seed). When the interval reaches down to zero or to the noise of one measurement (the model's \
         estimate: {noise}), the parameter has **no detectable effect** and gets no share; shares are over the \
         parameters with a detectable effect.\n",
        radius = EFFECT_RADIUS * 100.0,
    );
    let effect_header = if unit.is_empty() {
        format!("effect on {label}")
    } else {
        format!("effect on {label} ({unit})")
    };
    let _ = writeln!(
        o,
        "| parameter | {effect_header} | 95% interval | best at | worst at | share |\n|---|---|---|---|---|---|"
    );
    for e in &r.importance {
        let interval = format!("{} to {}", fmt_num(e.ci95.0), fmt_num(e.ci95.1));
        let value = |v: &Option<ParamValue>| v.as_ref().map(|v| cell(&v.to_string()));
        let line = match (e.detectable, value(&e.best_value), value(&e.worst_value)) {
            (true, Some(best), Some(worst)) => format!(
                "{} | {interval} | {best} | {worst} | {}",
                fmt_num(e.effect),
                fmt_share(e.share)
            ),
            (_, None, _) | (_, _, None) => {
                "no detectable effect (not varied next to the best) | - | - | - | -".to_string()
            }
            _ => format!("no detectable effect | {interval} | - | - | -"),
        };
        let _ = writeln!(o, "| {} | {line} |", cell(&e.name));
    }
    o.push('\n');
}
