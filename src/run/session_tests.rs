//! Tests of the session's budget: flags kept across resumes, old run.json files.

use super::*;
use crate::study::parse_study;

fn study(trials: usize, wall_time: Option<&str>) -> Study {
    let wall = wall_time
        .map(|w| format!("wall_time = \"{w}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[study]\nname = \"t\"\nmodel = \"gemma3:4b\"\n[backend]\nkind = \"simulator\"\n\
         [budget]\ntrials = {trials}\n{wall}[params.num_ctx]\ntype = \"int\"\nlow = 512\nhigh = 4096\n"
    );
    parse_study(Path::new("t.toml"), &text).unwrap()
}

fn meta_with(budget: Budget, overrides: Option<BudgetOverrides>) -> RunMeta {
    let s = study(1, None);
    RunMeta {
        run_id: "r".into(),
        study_name: s.name.clone(),
        model: s.model.clone(),
        seed: 0,
        study_file: "t.toml".into(),
        backend: BackendInfo::default(),
        space: s.space.clone(),
        objective: s.objective.clone(),
        budget,
        protocol: s.protocol.clone(),
        runner_params: vec![],
        tuner_version: "0".into(),
        started_at: String::new(),
        updated_at: String::new(),
        finished_at: None,
        stop_reason: None,
        stop_message: None,
        reloads: 0,
        reload_seconds: 0.0,
        outage_seconds: 0.0,
        elapsed_seconds: 0.0,
        budget_overrides: overrides,
        progress: None,
        integrity: vec![],
    }
}

#[test]
fn budget_flags_are_kept_until_given_again() {
    let s = study(50, Some("1h"));
    let first = RunOptions {
        trials: Some(10),
        ..RunOptions::default()
    };
    let (b, kept) = effective_budget(&s.budget, None, &first);
    assert_eq!(
        (b.trials, b.wall_time),
        (10, Some(Duration::from_secs(3600)))
    );
    let saved = meta_with(b, Some(kept));
    // Resume without flags: the run's 10 trials, not the study's 50.
    let (b, _) = effective_budget(&s.budget, Some(&saved), &RunOptions::default());
    assert_eq!(b.trials, 10);
    // A flag on the resume wins.
    let again = RunOptions {
        trials: Some(20),
        time_budget: Some(Duration::from_secs(60)),
        ..RunOptions::default()
    };
    let (b, kept) = effective_budget(&s.budget, Some(&saved), &again);
    assert_eq!((b.trials, b.wall_time), (20, Some(Duration::from_secs(60))));
    assert_eq!(kept.wall_time_s, Some(60.0));
}

#[test]
fn an_old_run_json_keeps_the_budget_it_ran_with() {
    let s = study(50, None);
    let mut ran = s.budget.clone();
    ran.trials = 10;
    ran.wall_time = Some(Duration::from_secs(600));
    let old = meta_with(ran, None);
    let (b, kept) = effective_budget(&s.budget, Some(&old), &RunOptions::default());
    assert_eq!(
        (b.trials, b.wall_time),
        (10, Some(Duration::from_secs(600)))
    );
    assert_eq!(kept.trials, Some(10));
    // Nothing differs from the study: nothing was a flag.
    let plain = meta_with(s.budget.clone(), None);
    let (_, kept) = effective_budget(&s.budget, Some(&plain), &RunOptions::default());
    assert_eq!(kept, BudgetOverrides::default());
}

#[test]
fn a_run_json_without_the_new_fields_still_reads() {
    let mut v = serde_json::to_value(meta_with(study(5, None).budget, None)).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("budget_overrides");
    o.remove("progress");
    let m: RunMeta = serde_json::from_value(v).unwrap();
    assert_eq!((m.budget_overrides, m.progress), (None, None));
}
