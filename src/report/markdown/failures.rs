//! The "Failures" section of the Markdown report: failures by kind, where in the space they
//! happened, and the constraint violations.

use super::text::cell;
use crate::report::types::Report;
use std::fmt::Write;

pub(super) fn failures(r: &Report, o: &mut String) {
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
