//! The Markdown report: what a user reads in the morning. Verdict first (best configuration,
//! what it is tied with, how it compares with the defaults), then the run's facts, the ranking,
//! parameter importance, failures, the Pareto front and the plots.

use super::{
    fmt_duration, fmt_num, fmt_pct, fmt_share, unit_of, Report, Row, RowClass, Tie,
    CONVERGENCE_FILE, CSV_FILE, DECODE_METRIC, JSON_FILE, PARETO_FILE, TTFT_METRIC,
};
use crate::engine::stats::Summary;
use crate::study::{Prompts, Stat};
use std::fmt::Write;

/// Beyond this many trials the ranking table shows the top ones (and the baseline); the CSV and
/// JSON always hold every trial.
pub const MAX_TABLE_ROWS: usize = 40;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let o = &mut out;
    title(r, o);
    verdict(r, o);
    run_facts(r, o);
    ranking(r, o);
    importance(r, o);
    failures(r, o);
    pareto(r, o);
    convergence(r, o);
    out
}

/// Escape text for a table cell: pipes and line breaks would break the table.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn trial_ref(row: &Row) -> String {
    let mut s = format!("#{}", row.trial());
    for t in &row.also {
        s.push_str(&format!("+#{t}"));
    }
    s
}

fn join_trials(rows: &[&Row], with_change: bool) -> String {
    let parts: Vec<String> = rows
        .iter()
        .map(|row| {
            let rank = row.rank.map(|k| format!("rank {k}")).unwrap_or_default();
            match (with_change, row.vs_best_pct) {
                (true, Some(p)) => format!("trial {} ({rank}, {})", trial_ref(row), fmt_pct(p)),
                _ => format!("trial {} ({rank})", trial_ref(row)),
            }
        })
        .collect();
    parts.join(", ")
}

fn config_text(r: &Report, row: &Row) -> String {
    let parts: Vec<String> = r
        .param_names
        .iter()
        .filter_map(|n| row.record.params.get(n).map(|v| format!("{n}={v}")))
        .collect();
    parts.join(" ")
}

fn stat_words(stat: Stat) -> &'static str {
    match stat {
        Stat::Median => "median",
        Stat::Mean => "mean",
        Stat::P95 => "95th percentile",
        Stat::Std => "standard deviation",
        Stat::Min => "minimum",
        Stat::Max => "maximum",
    }
}

fn with_unit(x: f64, metric: &str) -> String {
    match unit_of(metric) {
        "" => fmt_num(x),
        u => format!("{} {u}", fmt_num(x)),
    }
}

fn spread_text(r: &Report, s: Option<&Summary>) -> String {
    match s {
        Some(s) if s.n >= 2 => format!("std {}, CV {}", fmt_num(s.std), fmt_share(s.cv())),
        Some(_) => format!("a single {}: spread unknown", r.sample_noun()),
        None => "spread unknown".to_string(),
    }
}

fn requests(r: &Report, n: usize) -> String {
    let noun = r.sample_noun();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "better" / "worse" for a signed change, according to the direction.
fn judgement(r: &Report, pct: f64) -> &'static str {
    if pct == 0.0 {
        "equal"
    } else if (pct > 0.0) == r.maximize() {
        "better"
    } else {
        "worse"
    }
}

fn title(r: &Report, o: &mut String) {
    let m = &r.meta;
    let sim = if m.backend.simulated {
        " (SIMULATED)"
    } else {
        ""
    };
    let _ = writeln!(o, "# Tuning report: {}{sim}\n", m.study_name);
    if m.backend.simulated {
        let _ = writeln!(
            o,
            "> **SIMULATED RUN: every number below comes from ollama-tuner's built-in simulator, not from a \
             real server on real hardware.** Use this report to see how the tuner works, never to choose \
             settings.\n"
        );
    }
    if !r.skipped_lines.is_empty() {
        let lines: Vec<String> = r.skipped_lines.iter().map(|(l, _)| l.to_string()).collect();
        let _ = writeln!(
            o,
            "> Note: {} unreadable line(s) of trials.jsonl were skipped (line {}), most likely a write \
             torn by a crash or power loss; those trials are not in this report.\n",
            r.skipped_lines.len(),
            lines.join(", ")
        );
    }
    if m.finished_at.is_none() {
        let _ = writeln!(
            o,
            "> The run has not finished: this report covers the {} trial(s) measured so far and is \
             rewritten as the run goes (after every trial, or every few seconds when trials take \
             milliseconds) and when it stops.\n",
            r.counts.total
        );
    }
}

fn verdict(r: &Report, o: &mut String) {
    let _ = writeln!(o, "## Verdict\n");
    let label = r.objective_label();
    let metric = &r.meta.objective.metric.metric;
    let Some(best) = r.best_row() else {
        no_recommendation(r, o);
        return;
    };
    let value = best.objective.unwrap_or(f64::NAN);
    let n = best
        .objective_summary
        .as_ref()
        .map(|s| s.n)
        .unwrap_or(best.objective_samples.len());
    let _ = writeln!(
        o,
        "**Best configuration: rank 1, trial {}**: `{}`\n",
        trial_ref(best),
        config_text(r, best)
    );
    let _ = writeln!(
        o,
        "It measured {label} **{}** ({} of {}, {}).\n",
        with_unit(value, metric),
        stat_words(r.meta.objective.metric.stat),
        requests(r, n),
        spread_text(r, best.objective_summary.as_ref()),
    );

    // Against the defaults.
    match r.baseline_row() {
        Some(base) if base.trial() == best.trial() => {
            let _ = writeln!(
                o,
                "This is the baseline (the study's defaults): no configuration tried did better than what \
                 you run today.\n"
            );
        }
        Some(base) if base.class == RowClass::Failed => {
            let _ = writeln!(
                o,
                "The baseline (trial {}, the study's defaults) failed ({}), so there is nothing to compare \
                 with.\n",
                trial_ref(base),
                base.failure_kind.as_deref().unwrap_or("unknown")
            );
        }
        Some(base) => {
            let pct = best.vs_baseline_pct.unwrap_or(f64::NAN);
            let noise = match r.best_vs_baseline {
                Some(Tie::Tied) => {
                    "but that is within the measurement noise: the tuned configuration is not reliably better \
                     than the defaults"
                }
                Some(Tie::Different) => "a difference well outside the measurement noise",
                _ => "whether that exceeds the noise is unknown (a single measurement on one side)",
            };
            let infeasible = if base.class == RowClass::Infeasible {
                format!(
                    "; the baseline itself violates {}",
                    base.violations.join("; ")
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "Against the baseline (trial {}, the study's defaults, {}): **{}** ({}), {noise}{infeasible}.\n",
                trial_ref(base),
                with_unit(base.objective.unwrap_or(f64::NAN), metric),
                fmt_pct(pct),
                judgement(r, pct),
            );
        }
        None => {
            let _ = writeln!(
                o,
                "No baseline trial was measured (the study does not give a default for every parameter), so \
                 there is no comparison with today's settings.\n"
            );
        }
    }

    // Ties: never rank noise as a win.
    if n < 2 {
        let _ = writeln!(
            o,
            "Rank 1 was measured with a single {}: its spread is unknown, so no other configuration \
             can be called tied with it or worse than it. Measure each configuration 3 or more times \
             (`protocol.repeats`).\n",
            r.sample_noun()
        );
        return;
    }
    let tied = r.tied();
    let others_known = r.rows.iter().any(|x| x.tie == Some(Tie::Different));
    if !tied.is_empty() {
        let _ = writeln!(
            o,
            "**Statistically tied with rank 1:** {}. Their difference from rank 1 is within the noise of \
             repeated {}s: treat them as equally good and choose by other criteria (memory use, TTFT, \
             load time).\n",
            join_trials(&tied, true),
            r.sample_noun()
        );
    } else if others_known {
        let _ = writeln!(
            o,
            "No other configuration is statistically tied with rank 1.\n"
        );
    } else if r.counts.feasible == 1 {
        let _ = writeln!(
            o,
            "It is the only configuration that ran and met the constraints.\n"
        );
    }
    let undecided = r.undecided();
    if !undecided.is_empty() {
        let _ = writeln!(
            o,
            "Undecided: {} measured a single {}, so the spread is unknown and whether it ties with \
             rank 1 cannot be told; measure it again to know.\n",
            join_trials(&undecided, true),
            r.sample_noun()
        );
    }
}

fn no_recommendation(r: &Report, o: &mut String) {
    let c = &r.counts;
    if c.total == 0 {
        let _ = writeln!(o, "**No trial has finished yet.**\n");
        return;
    }
    if c.infeasible > 0 {
        let constraints: Vec<String> = r
            .meta
            .objective
            .constraints
            .iter()
            .map(|c| format!("`{}`", c.text))
            .collect();
        let _ = writeln!(
            o,
            "**No configuration met the constraints** ({}): {} trial(s) ran but every one violated them, \
             and {} failed. There is no configuration to recommend; relax the constraints or search values \
             where they can hold.\n",
            constraints.join(", "),
            c.infeasible,
            c.failed
        );
        if let Some(first) = r.by_rank(1) {
            let _ = writeln!(
                o,
                "Closest: rank 1, trial {} (`{}`), {} {}, violating {}.\n",
                trial_ref(first),
                config_text(r, first),
                r.objective_label(),
                with_unit(
                    first.objective.unwrap_or(f64::NAN),
                    &r.meta.objective.metric.metric
                ),
                first.violations.join("; ")
            );
        }
        return;
    }
    let _ = writeln!(
        o,
        "**Every trial failed** ({} of {}): there is no configuration to recommend. The failures are \
         summarized below.\n",
        c.failed, c.total
    );
}

fn run_facts(r: &Report, o: &mut String) {
    let m = &r.meta;
    let b = &m.backend;
    let _ = writeln!(o, "## Run\n");
    let _ = writeln!(o, "| | |\n|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(o, "| {k} | {} |", cell(&v));
    };
    row("Run", format!("`{}`", m.run_id));
    let model = b.model.clone().unwrap_or_else(|| m.model.clone());
    if !model.is_empty() {
        row(
            "Model",
            match &b.model_digest {
                Some(d) => format!("`{model}` (digest `{d}`)"),
                None => format!("`{model}`"),
            },
        );
    }
    let mut backend = b.backend.clone();
    if let Some(v) = &b.server_version {
        backend.push_str(&format!(", server version {v}"));
    }
    if b.simulated {
        backend.push_str(" (**simulated**)");
    }
    row("Backend", backend);
    let o_ = &m.objective;
    let dir = match o_.direction {
        crate::study::Direction::Maximize => "maximize",
        crate::study::Direction::Minimize => "minimize",
    };
    row(
        "Objective",
        format!(
            "{dir} {} ({} over each trial's {}s)",
            o_.metric.label(),
            stat_words(o_.metric.stat),
            r.sample_noun()
        ),
    );
    if !o_.constraints.is_empty() {
        let c: Vec<String> = o_
            .constraints
            .iter()
            .map(|c| format!("`{}`", c.text))
            .collect();
        row("Constraints", c.join(", "));
    }
    let mut budget = format!("{} trials", m.budget.trials);
    if let Some(w) = m.budget.wall_time {
        budget.push_str(&format!(", wall time {}", fmt_duration(w.as_secs_f64())));
    }
    row("Budget", budget);
    let c = &r.counts;
    row(
        "Trials run",
        format!(
            "{}: {} met the constraints, {} violated a constraint, {} failed",
            c.total, c.feasible, c.infeasible, c.failed
        ),
    );
    row(
        "Stopped",
        match (&m.stop_reason, &m.stop_message) {
            (Some(s), Some(msg)) if !msg.is_empty() => format!("{}: {msg}", s.as_str()),
            (Some(s), _) => s.as_str().to_string(),
            (None, _) => "not yet (running, or killed before it could record why)".to_string(),
        },
    );
    row("Started", m.started_at.clone());
    row(
        "Finished",
        m.finished_at.clone().unwrap_or_else(|| "-".to_string()),
    );
    if m.elapsed_seconds > 0.0 {
        row("Elapsed", fmt_duration(m.elapsed_seconds));
    }
    let server = b.backend != "command";
    if server || m.reloads > 0 {
        row(
            "Model reloads",
            format!(
                "{}, {} s in total (timed apart from the measurements)",
                m.reloads,
                fmt_num(m.reload_seconds)
            ),
        );
    }
    if m.outage_seconds > 0.0 {
        row(
            "Outages waited out",
            format!(
                "{} (not counted against any configuration)",
                fmt_duration(m.outage_seconds)
            ),
        );
    }
    if server {
        let p = &m.protocol;
        let prompts = match &p.prompts {
            Prompts::Builtin => "built-in prompts".to_string(),
            Prompts::File(f) => format!("prompts from {}", f.display()),
        };
        row(
            "Protocol",
            format!(
                "{} per trial after {} warm-up, {} generated tokens each, {prompts}",
                requests(r, p.repeats),
                p.warmup,
                p.num_predict
            ),
        );
    }
    row("Seed", m.seed.to_string());
    row("Tuner", format!("ollama-tuner {}", m.tuner_version));
    o.push('\n');

    if !b.details.is_empty() {
        let _ = writeln!(o, "### Server and hardware\n");
        for (k, v) in &b.details {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut text: String = text.replace(['\n', '\r'], " ");
            if text.chars().count() > 200 {
                text = text.chars().take(200).collect::<String>() + " ...";
            }
            let _ = writeln!(o, "- {k}: {text}");
        }
        o.push('\n');
    }

    let _ = writeln!(o, "### Search space\n");
    if m.space.params.is_empty() {
        let _ = writeln!(o, "(no parameters)\n");
        return;
    }
    // Which parameters force a model reload only matters to the server backends.
    let reloads = !m.runner_params.is_empty();
    if reloads {
        let _ = writeln!(
            o,
            "| parameter | domain | default | reloads the model |\n|---|---|---|---|"
        );
    } else {
        let _ = writeln!(o, "| parameter | domain | default |\n|---|---|---|");
    }
    for p in &m.space.params {
        let mut line = format!(
            "| {} | {} | {} |",
            cell(&p.name),
            cell(&p.domain_text()),
            p.default
                .as_ref()
                .map(|d| cell(&d.to_string()))
                .unwrap_or_else(|| "-".to_string()),
        );
        if reloads {
            line.push_str(if m.runner_params.contains(&p.name) {
                " yes |"
            } else {
                " no |"
            });
        }
        let _ = writeln!(o, "{line}");
    }
    o.push('\n');
}

fn ranking(r: &Report, o: &mut String) {
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
                row.record
                    .params
                    .get(n)
                    .map(|v| cell(&v.to_string()))
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
    let _ = writeln!(
        o,
        "Trials that met the constraints come first, best {label} first; then those that violated a constraint; \
         then failures. `± std` and `CV` are over the trial's {noun}s (`-`: a single {noun}, spread unknown). \
         `vs #1`: change against rank 1, *tied* = within measurement noise, *?* = undecidable (single {noun}). \
         `vs baseline`: change against the study's defaults.{}{} `n`: {noun}s measured.\n",
        if show_ttft { " TTFT is client-side time to first token." } else { "" },
        if show_load { " `load`: seconds of the model reload the trial paid (*warm*: none)." } else { "" },
    );
    let _ = writeln!(o, "How ties are decided: {}\n", r.tie_method());
}

fn importance(r: &Report, o: &mut String) {
    let _ = writeln!(o, "## Parameter importance\n");
    let label = r.objective_label();
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
    let _ = writeln!(
        o,
        "From the Gaussian process fitted to the {n} trials that produced {label}: how much the predicted {label} \
         changes when only that parameter moves across its range while the others stay at the best configuration. \
         A short lengthscale means the objective changes quickly along the parameter. With few trials these \
         numbers are rough.\n"
    );
    let unit = unit_of(&r.meta.objective.metric.metric);
    let effect_header = if unit.is_empty() {
        format!("effect on {label}")
    } else {
        format!("effect on {label} ({unit})")
    };
    let _ = writeln!(
        o,
        "| parameter | share | {effect_header} | lengthscale |\n|---|---|---|---|"
    );
    for e in &r.importance {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            cell(&e.name),
            fmt_share(e.share),
            fmt_num(e.effect),
            fmt_num(e.lengthscale)
        );
    }
    o.push('\n');
}

fn failures(r: &Report, o: &mut String) {
    let _ = writeln!(o, "## Failures\n");
    let f = &r.failures;
    if f.groups.is_empty() && f.violations.is_empty() {
        let _ = writeln!(o, "None: every trial ran and met the constraints.\n");
        return;
    }
    if !f.groups.is_empty() {
        let _ = writeln!(o, "| kind | trials | first error |\n|---|---|---|");
        for g in &f.groups {
            let trials: Vec<String> = g.trials.iter().map(|t| format!("#{t}")).collect();
            let _ = writeln!(
                o,
                "| {} | {}: {} | {} |",
                cell(&g.kind),
                g.trials.len(),
                trials.join(", "),
                cell(g.example_error.as_deref().unwrap_or("-"))
            );
        }
        o.push('\n');
        for g in &f.groups {
            if g.params.is_empty() {
                continue;
            }
            let any_ran = g.params.iter().any(|p| p.ok.is_some());
            if any_ran {
                let _ = writeln!(
                    o,
                    "Where {} happened, against the values of the trials that ran:\n",
                    cell(&g.kind)
                );
                let _ = writeln!(
                    o,
                    "| parameter | {} trials | trials that ran |\n|---|---|---|",
                    cell(&g.kind)
                );
            } else {
                let _ = writeln!(o, "Where {} happened:\n", cell(&g.kind));
                let _ = writeln!(o, "| parameter | {} trials |\n|---|---|", cell(&g.kind));
            }
            for p in &g.params {
                let failed = p
                    .failed
                    .as_ref()
                    .map(|s| cell(&s.text()))
                    .unwrap_or_else(|| "-".into());
                if any_ran {
                    let ok =
                        p.ok.as_ref()
                            .map(|s| cell(&s.text()))
                            .unwrap_or_else(|| "-".into());
                    let _ = writeln!(o, "| {} | {failed} | {ok} |", cell(&p.name));
                } else {
                    let _ = writeln!(o, "| {} | {failed} |", cell(&p.name));
                }
            }
            o.push('\n');
        }
    }
    if !f.violations.is_empty() {
        let _ = writeln!(
            o,
            "Constraint violations (the trial ran, but is not a valid answer):\n"
        );
        for v in &f.violations {
            let trials: Vec<String> = v.trials.iter().map(|t| format!("#{t}")).collect();
            let _ = writeln!(o, "- `{}`: {}", v.constraint, trials.join(", "));
        }
        o.push('\n');
    }
}

fn pareto(r: &Report, o: &mut String) {
    let Some(p) = &r.pareto else {
        return;
    };
    let label = r.objective_label();
    let _ = writeln!(o, "## {label} against TTFT (Pareto front)\n");
    let _ = writeln!(
        o,
        "Trials that met the constraints where no other trial has both a better {label} and a lower median \
         TTFT. Choose along this front by how much first-token latency you accept.\n"
    );
    let _ = writeln!(
        o,
        "| rank | trial | {label} | TTFT p50 (s) |\n|---|---|---|---|"
    );
    for pt in p.front() {
        let _ = writeln!(
            o,
            "| {} | #{} | {} | {} |",
            pt.rank,
            pt.trial,
            fmt_num(pt.objective),
            fmt_num(pt.ttft_p50)
        );
    }
    let _ = writeln!(
        o,
        "\n![{label} against TTFT, Pareto front marked]({PARETO_FILE})\n"
    );
}

fn convergence(r: &Report, o: &mut String) {
    let label = r.objective_label();
    let _ = writeln!(o, "## Convergence\n");
    let _ = writeln!(
        o,
        "Best {label} so far (among trials that met the constraints) against the trial number; every trial \
         that ran is a point, failures are crosses along the bottom.\n"
    );
    let _ = writeln!(
        o,
        "![Best {label} so far against trial number]({CONVERGENCE_FILE})\n"
    );
    let _ = writeln!(
        o,
        "Every trial with all its metrics: [{CSV_FILE}]({CSV_FILE}); this analysis for scripts: \
         [{JSON_FILE}]({JSON_FILE}) (schema: docs/report-schema.md in the ollama-tuner repository)."
    );
}
