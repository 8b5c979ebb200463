//! The "Run" section of the Markdown report: the run's facts, the server and hardware
//! details, and the search space.

use super::text::{cell, requests, stat_words};
use crate::report::format::{fmt_duration, fmt_num};
use crate::report::types::Report;
use crate::study::Prompts;
use std::fmt::Write;

/// "40: 30 configurations (28 met the constraints, 2 violated a constraint), 8 re-measurements
/// pooled into them (confirm 3, decision 5), 2 failed": the journal's trial count, split the
/// way `status` and run.json's progress split it (src/verdict.rs).
fn trials_run(r: &Report) -> String {
    let c = &r.counts;
    let mut text = format!("{}: ", c.total);
    if c.configurations > 0 {
        text.push_str(&format!(
            "{} configuration{} ({} met the constraints, {} violated a constraint), ",
            c.configurations,
            if c.configurations == 1 { "" } else { "s" },
            c.feasible,
            c.infeasible
        ));
    }
    if c.remeasurements > 0 {
        let origins: Vec<String> = c
            .remeasured_by_origin
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect();
        text.push_str(&format!(
            "{} re-measurement{} pooled into them ({}), ",
            c.remeasurements,
            if c.remeasurements == 1 { "" } else { "s" },
            origins.join(", ")
        ));
    }
    text.push_str(&format!("{} failed", c.failed));
    text
}

pub(super) fn run_facts(r: &Report, o: &mut String) {
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
    row("Trials run", trials_run(r));
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
