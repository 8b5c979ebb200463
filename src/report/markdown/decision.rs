//! The decision phase in the Markdown report: the recommendation and its gain measured after
//! the selection, what each change buys, the output settings' speed effects, the race.

use super::text::{cell, judgement, trial_ref};
use crate::engine::decision::{Effect, Verdict};
use crate::engine::space::{Config, ParamValue};
use crate::report::format::fmt_pct;
use crate::report::types::Report;
use crate::report::DecisionSection;
use std::fmt::Write;

/// "+4.1% [+2.0%, +6.3%]".
fn effect_text(e: &Effect) -> String {
    format!("{} [{}, {}]", fmt_pct(e.pct), fmt_pct(e.lo), fmt_pct(e.hi))
}

/// The settings of `config` that differ from the baseline, as `name=value` (auto stays unset).
fn changes_text(baseline: &Config, config: &Config) -> String {
    let parts: Vec<String> = config
        .iter()
        .filter(|(k, v)| baseline.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if parts.is_empty() {
        "no change: your defaults".to_string()
    } else {
        parts.join(" ")
    }
}

fn value_text(v: &ParamValue) -> String {
    if v.is_auto() {
        "auto (server decides)".to_string()
    } else {
        v.to_string()
    }
}

/// The verdict when a decision phase ran (replaces the ranking-based verdict).
pub(super) fn verdict(r: &Report, d: &DecisionSection, o: &mut String) {
    let _ = writeln!(o, "## Verdict\n");
    let res = &d.result;
    let trials = d.race_trials + d.ablation_trials;
    let rank1 = r.best_row();
    let trial = rank1
        .map(|b| format!(", trial {}", trial_ref(b)))
        .unwrap_or_default();
    let changes = changes_text(&d.plan.baseline, &res.recommendation);
    match res.verdict {
        Verdict::Better => {
            let _ = writeln!(o, "**Recommendation (rank 1{trial}):** `{changes}`\n");
        }
        Verdict::DefaultsBest => {
            let _ = writeln!(
                o,
                "**Keep your defaults.** No configuration measured was reliably better than what you \
                 run today; the export changes nothing.\n"
            );
            if let (Some(c), Some(e)) = (&res.rejected, &res.rejected_vs_baseline) {
                let _ = writeln!(
                    o,
                    "The best candidate, `{}`, measured {} against the baseline over {} paired \
                     rounds: not significant, so the defaults are kept.\n",
                    changes_text(&d.plan.baseline, c),
                    effect_text(e),
                    e.rounds
                );
            }
        }
        Verdict::Undecided => {
            let _ = writeln!(
                o,
                "**Provisional recommendation (rank 1{trial}):** `{changes}`. The decision phase has \
                 not finished ({trials} of its {} trials measured): resume the run or run \
                 `ollama-tuner decide RUN_DIR` to settle it.\n",
                d.budget
            );
        }
    }
    if let Some(e) = &res.vs_baseline {
        let sig = if e.significant {
            "outside the noise"
        } else {
            "within the noise"
        };
        let _ = writeln!(
            o,
            "Against the baseline: **{}** ({}, {sig}; 95% interval over {} paired rounds). These \
             figures come from {trials} trials measured after the search, candidates and baseline \
             interleaved in every round, not from the lucky samples that selected them.\n",
            effect_text(e),
            judgement(r, e.pct),
            e.rounds,
        );
    }
    let tied: Vec<String> = res
        .tied
        .iter()
        .filter(|c| **c != res.recommendation)
        .map(|c| format!("`{}`", changes_text(&d.plan.baseline, c)))
        .collect();
    if !tied.is_empty() {
        let _ = writeln!(
            o,
            "Tied with it when the race ended: {}. Among tied configurations the one that changes \
             the fewest settings (then the largest context) is recommended.\n",
            tied.join(", ")
        );
    }
    if res.race_skipped {
        let _ = writeln!(
            o,
            "No race: the decision phase's {} trials could hold the ablation of the search's \
             leader but not a race of candidates before it, so the leader was measured against \
             your defaults in the ablation's rounds.\n",
            d.budget
        );
    }
    if !res.eliminated.is_empty() {
        let _ = writeln!(
            o,
            "Eliminated as significantly worse: {} candidate(s).\n",
            res.eliminated.len()
        );
    }
}

/// "What each change buys you" and the output settings' speed effects.
pub(super) fn effects(r: &Report, d: &DecisionSection, o: &mut String) {
    let res = &d.result;
    if !res.changes.is_empty() {
        let _ = writeln!(o, "## What each change buys you\n");
        let _ = writeln!(
            o,
            "Each change of the recommendation against your defaults, measured by reverting it in \
             the same interleaved rounds (an ablation path). A change that buys nothing measurable \
             is dropped and not exported.\n"
        );
        let _ = writeln!(
            o,
            "| setting | your value | tuned | effect of the change (95% interval) | |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|");
        for c in &res.changes {
            let effect = match &c.effect {
                Some(e) => effect_text(e),
                None if res.ablation_rounds == 0 => {
                    "not measured: no budget left for the ablation".to_string()
                }
                None => "needed to run (reverted, it failed)".to_string(),
            };
            // Defaults kept because the configuration the ablation arrived at did not beat
            // them: its changes were not dropped for want of an effect of their own.
            let in_rejected = res
                .rejected
                .as_ref()
                .and_then(|p| p.get(&c.param))
                .is_some_and(|v| *v != c.baseline);
            let kept = if c.kept {
                "kept"
            } else if in_rejected {
                "not applied: the configuration with it did not beat your defaults"
            } else {
                "dropped: no measurable effect"
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {kept} |",
                cell(&c.param),
                cell(&value_text(&c.baseline)),
                cell(&value_text(&c.value)),
                effect
            );
        }
        let _ = writeln!(o);
    }
    if !res.outputs.is_empty() {
        let _ = writeln!(o, "## Output settings\n");
        let _ = writeln!(
            o,
            "These settings change what the model writes. Their speed effect was measured; unless \
             the study opts in (`[decision] allow_output_changes = true`), the recommendation keeps \
             your values.\n"
        );
        for oe in &res.outputs {
            let line = match &oe.effect {
                Some(e) if e.significant => format!(
                    "{} {} would be {} {} {}",
                    oe.param,
                    oe.variant,
                    fmt_pct(e.pct).trim_start_matches(['+', '-']),
                    judgement(r, e.pct),
                    format_args!("[{}, {}]", fmt_pct(e.lo), fmt_pct(e.hi))
                ),
                Some(e) => format!(
                    "{} {}: no detectable speed effect ({})",
                    oe.param,
                    oe.variant,
                    effect_text(e)
                ),
                None if oe.skipped => format!(
                    "{} {}: not measured (the decision phase's budget went to the changes)",
                    oe.param, oe.variant
                ),
                None => format!("{} {}: not measured", oe.param, oe.variant),
            };
            let applied = if oe.applied {
                "applied (the study allows output changes)".to_string()
            } else {
                format!(
                    "changes outputs: not applied, {} stays {}",
                    oe.param, oe.user_value
                )
            };
            let _ = writeln!(o, "- {line}, but {applied}.");
        }
        let _ = writeln!(o);
    }
}
