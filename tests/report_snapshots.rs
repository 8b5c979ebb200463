//! Snapshot tests of the Markdown, JSON and CSV reports on fixed journals, plus the behaviour
//! on runs with failures, ties, no feasible trial and bad input.
//!
//! Review a changed snapshot by reading the `.snap.new` file insta writes next to the old one;
//! accept with `INSTA_UPDATE=always cargo test --test report_snapshots`.

mod common;

use common::{basic_run, fixture, nofeasible_run, write_run};
use ollama_tuner::report::{self, analyse, render, ReportError, ReportFormat, RowClass, Tie};
use ollama_tuner::store::RunDir;
use std::io::Write;

/// Rewrite tests/fixtures/ from the Rust definitions in tests/common (run on purpose only).
#[test]
#[ignore]
fn regenerate_fixtures() {
    let (meta, records) = basic_run();
    let run = write_run(&fixture("run_basic"), &meta, &records);
    // A torn last line, as left by a power loss in the middle of a write: the report skips it.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(run.file("trials.jsonl"))
        .unwrap();
    f.write_all(br#"{"trial":8,"origin":"model","params":{"num_ctx":4"#)
        .unwrap();
    let (meta, records) = nofeasible_run();
    write_run(&fixture("run_nofeasible"), &meta, &records);
}

fn basic() -> report::Report {
    analyse(&RunDir::new(fixture("run_basic"))).expect("fixture run_basic")
}

#[test]
fn basic_markdown() {
    insta::assert_snapshot!("basic_markdown", render(&basic(), ReportFormat::Markdown));
}

#[test]
fn basic_json() {
    let r = basic();
    let text = render(&r, ReportFormat::Json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["schema_version"], 2);
    insta::assert_snapshot!("basic_json", text);
}

#[test]
fn basic_csv() {
    insta::assert_snapshot!("basic_csv", render(&basic(), ReportFormat::Csv));
}

#[test]
fn nofeasible_markdown() {
    let r = analyse(&RunDir::new(fixture("run_nofeasible"))).unwrap();
    insta::assert_snapshot!("nofeasible_markdown", render(&r, ReportFormat::Markdown));
}

#[test]
fn nofeasible_json_and_csv() {
    let r = analyse(&RunDir::new(fixture("run_nofeasible"))).unwrap();
    insta::assert_snapshot!("nofeasible_json", render(&r, ReportFormat::Json));
    insta::assert_snapshot!("nofeasible_csv", render(&r, ReportFormat::Csv));
}

/// A run with a decision phase (tests/fixtures/run_decision, written by
/// `cargo test --test decision -- --ignored`): the verdict, the output settings, what the server
/// chose and the `decision` object.
#[test]
fn decision_markdown_and_json() {
    let r = analyse(&RunDir::new(fixture("run_decision"))).unwrap();
    let md = render(&r, ReportFormat::Markdown);
    for section in [
        "## Verdict",
        "## Output settings",
        "## What the server chose",
        "## Parameter importance (model estimate)",
    ] {
        assert!(md.contains(section), "{section} missing");
    }
    insta::assert_snapshot!("decision_markdown", md);
    let json = render(&r, ReportFormat::Json);
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["decision"]["done"], true);
    insta::assert_snapshot!("decision_json", json);
}

#[test]
fn basic_analysis_ranks_ties_and_failures() {
    let r = basic();
    assert_eq!(r.skipped_lines.len(), 1, "the torn line is skipped");
    let order: Vec<usize> = r.rows.iter().map(|x| x.trial()).collect();
    assert_eq!(order, [4, 3, 6, 5, 0, 1, 2, 7]);
    assert_eq!(r.best_row().unwrap().trial(), 4);
    assert_eq!(r.tied().iter().map(|x| x.trial()).collect::<Vec<_>>(), [3]);
    assert_eq!(
        r.undecided().iter().map(|x| x.trial()).collect::<Vec<_>>(),
        [6]
    );
    assert_eq!(r.rows[3].tie, Some(Tie::Different));
    assert_eq!(r.best_vs_baseline, Some(Tie::Different));
    assert_eq!(r.by_rank(6).unwrap().class, RowClass::Infeasible);
    assert!(r.by_rank(7).is_none());
    assert_eq!(r.failures.groups.len(), 1);
    assert_eq!(r.failures.groups[0].kind, "out_of_memory");
    assert_eq!(r.failures.groups[0].trials, [2, 7]);
    let front: Vec<usize> = r
        .pareto
        .as_ref()
        .unwrap()
        .front()
        .iter()
        .map(|p| p.trial)
        .collect();
    assert_eq!(front, [6, 4]);
    assert!(!r.importance.is_empty());
    // Shares are claimed only for detectable effects, and then add up to one.
    let share: f64 = r.importance.iter().map(|e| e.share).sum();
    let any = r.importance.iter().any(|e| e.detectable);
    assert!(
        (share - if any { 1.0 } else { 0.0 }).abs() < 1e-9,
        "{share}"
    );
}

#[test]
fn nothing_feasible_renders_and_says_so() {
    let r = analyse(&RunDir::new(fixture("run_nofeasible"))).unwrap();
    assert!(r.best.is_none());
    let md = render(&r, ReportFormat::Markdown);
    assert!(md.contains("**Every trial failed** (4 of 4)"), "{md}");
    assert!(report::plots::convergence_svg(&r).unwrap().contains("<svg"));
    assert!(report::plots::pareto_svg(&r).unwrap().is_none());

    // Ran, but violated the constraints every time (plus failures): no recommendation either.
    let (mut meta, mut records) = basic_run();
    meta.objective.constraints =
        vec![ollama_tuner::study::Constraint::parse("ttft_p95 <= 0.1s").unwrap()];
    for rec in records.iter_mut() {
        rec.feasible = false;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let r = analyse(&run).unwrap();
    assert!(r.best.is_none() && r.tied().is_empty());
    let md = render(&r, ReportFormat::Markdown);
    assert!(
        md.contains("**No configuration met the constraints** (`ttft_p95 <= 0.1s`)"),
        "{md}"
    );
    assert!(md.contains("Closest: rank 1, trial #4"), "{md}");
    let _ = render(&r, ReportFormat::Json);
    let _ = render(&r, ReportFormat::Csv);
}

#[test]
fn simulated_runs_say_so_everywhere() {
    let (mut meta, records) = basic_run();
    meta.backend.simulated = true;
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let r = analyse(&run).unwrap();
    let md = render(&r, ReportFormat::Markdown);
    assert!(
        md.starts_with("# Tuning report: gemma3-laptop (SIMULATED)\n\n> **SIMULATED RUN"),
        "{md}"
    );
    assert!(render(&r, ReportFormat::Json).contains("\"simulated\": true"));
    assert!(report::plots::convergence_svg(&r)
        .unwrap()
        .contains("[SIMULATED]"));
}

#[test]
fn write_all_writes_every_file_and_links_the_plots() {
    let (meta, records) = basic_run();
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let written = report::write_all(&run).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "trials.csv",
            "report.json",
            "convergence.svg",
            "pareto.svg",
            "report.md"
        ]
    );
    let md = std::fs::read_to_string(run.file("report.md")).unwrap();
    assert!(md.contains("](convergence.svg)") && md.contains("](pareto.svg)"));
    let svg = std::fs::read_to_string(run.file("pareto.svg")).unwrap();
    assert!(
        svg.contains("<text") && svg.contains("#4"),
        "labels are SVG text"
    );
    // Regenerating gives identical bytes: no timestamps, fixed seeds.
    let again = report::write_all(&run).unwrap();
    assert_eq!(written, again);
    assert_eq!(md, std::fs::read_to_string(run.file("report.md")).unwrap());
}

#[test]
fn missing_run_json_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = analyse(&RunDir::new(dir.path())).expect_err("no run.json");
    assert!(matches!(err, ReportError::NotARun(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("run.json") && msg.contains("state/<run-id>"),
        "{msg}"
    );
    let err = report::write_all(&RunDir::new(dir.path().join("nope"))).unwrap_err();
    assert!(err.to_string().contains("not a run folder"));
}

#[test]
fn empty_journal_renders() {
    let (meta, _) = basic_run();
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &[]);
    let r = analyse(&run).unwrap();
    assert!(render(&r, ReportFormat::Markdown).contains("No trial has finished yet"));
    let _ = render(&r, ReportFormat::Json);
    assert_eq!(render(&r, ReportFormat::Csv).lines().count(), 1);
    report::write_all(&run).unwrap();
}

#[test]
fn minimized_objective_ranks_pareto_and_convergence_the_other_way() {
    // Same journal, objective: minimize the median request time `total` (lower is better).
    let (mut meta, mut records) = basic_run();
    meta.objective.metric = ollama_tuner::study::MetricRef::parse("total");
    meta.objective.direction = ollama_tuner::study::Direction::Minimize;
    for rec in records.iter_mut() {
        rec.objective = rec.metrics.get("total").map(|s| s.median);
    }
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &meta, &records);
    let r = analyse(&run).unwrap();
    let feasible: Vec<(usize, f64)> = r
        .rows
        .iter()
        .filter(|x| x.class == RowClass::Feasible)
        .map(|x| (x.trial(), x.objective.unwrap()))
        .collect();
    assert!(
        feasible.windows(2).all(|w| w[0].1 <= w[1].1),
        "{feasible:?}"
    );
    let best = r.best_row().unwrap();
    assert_eq!(
        best.objective,
        feasible.iter().map(|x| Some(x.1)).next().unwrap()
    );
    // Best so far never increases when minimizing.
    let bests: Vec<f64> = r.convergence.iter().filter_map(|c| c.best_so_far).collect();
    assert!(bests.windows(2).all(|w| w[1] <= w[0]), "{bests:?}");
    // On the front: nothing both faster to the first token and quicker overall.
    let p = r.pareto.as_ref().unwrap();
    for a in p.front() {
        assert!(!p.points.iter().any(|b| b.ttft_p50 <= a.ttft_p50
            && b.objective <= a.objective
            && (b.ttft_p50 < a.ttft_p50 || b.objective < a.objective)));
    }
    let md = render(&r, ReportFormat::Markdown);
    assert!(
        md.contains("| total (s) |") && md.contains("minimize total"),
        "{md}"
    );
    assert!(report::plots::convergence_svg(&r)
        .unwrap()
        .contains("lower is better"));
}

#[test]
fn a_remeasured_configuration_is_one_row_ranked_on_all_its_samples() {
    // The best trial's configuration measured again, lower: pooled, it no longer ranks on its
    // luckiest measurement alone.
    let (meta, mut records) = basic_run();
    let dir = tempfile::tempdir().unwrap();
    let before = analyse(&write_run(dir.path(), &meta, &records)).unwrap();
    let best = before.best_row().unwrap().record.clone();
    let mut again = best.clone();
    again.trial = records.iter().map(|r| r.trial).max().unwrap() + 1;
    again.origin = ollama_tuner::trial::Origin::Confirm;
    for s in again.samples.iter_mut() {
        if let Some(v) = s.get_mut("decode_tps") {
            *v *= 0.5;
        }
    }
    records.push(again.clone());
    let dir = tempfile::tempdir().unwrap();
    let r = analyse(&write_run(dir.path(), &meta, &records)).unwrap();
    assert_eq!(r.rows.len(), before.rows.len(), "one row per configuration");
    let pooled = r.rows.iter().find(|x| x.trial() == best.trial).unwrap();
    assert_eq!(pooled.also, vec![again.trial]);
    let n = best.samples.len();
    assert_eq!(pooled.objective_samples.len(), 2 * n);
    assert!(pooled.objective.unwrap() < before.best_row().unwrap().objective.unwrap());
    let md = render(&r, ReportFormat::Markdown);
    assert!(
        md.contains(&format!("#{}+#{}", best.trial, again.trial)),
        "{md}"
    );
    let json = render(&r, ReportFormat::Json);
    assert!(json.contains("\"also\""));
}
