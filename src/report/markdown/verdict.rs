//! The top of the Markdown report: the title with its warnings (simulated run, skipped
//! journal lines, unfinished run) and the verdict (best configuration, ties, the baseline).

use super::text::{
    config_text, join_trials, judgement, requests, spread_text, stat_words, trial_ref, with_unit,
};
use crate::report::format::fmt_pct;
use crate::report::types::{Report, RowClass, Tie};
use std::fmt::Write;

pub(super) fn title(r: &Report, o: &mut String) {
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
    if let Some(last) = m.integrity.last() {
        let lost = m
            .integrity
            .iter()
            .filter(|n| n.severity == crate::store::Severity::Lost)
            .count();
        let _ = writeln!(
            o,
            "> Note: resuming this run found {} disagreement(s) between checkpoint.json and \
             trials.jsonl ({lost} with trials lost); the journal was followed (`integrity` in \
             run.json lists them). The latest: {}\n",
            m.integrity.len(),
            last.message
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

pub(super) fn verdict(r: &Report, o: &mut String) {
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

pub(super) fn no_recommendation(r: &Report, o: &mut String) {
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
