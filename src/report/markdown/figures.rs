//! The Markdown sections that link the plots: the Pareto front of the objective against TTFT
//! and the convergence curve, with the links to the CSV and JSON files.

use crate::report::format::fmt_num;
use crate::report::types::{Report, CONVERGENCE_FILE, CSV_FILE, JSON_FILE, PARETO_FILE};
use std::fmt::Write;

pub(super) fn pareto(r: &Report, o: &mut String) {
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

pub(super) fn convergence(r: &Report, o: &mut String) {
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
