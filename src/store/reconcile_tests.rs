//! Tests of reconcile.rs: the checkpoint cross-checked against the journal, case by case.

use super::*;
use std::collections::BTreeMap;

fn state(n_asked: usize, sobol_index: u32) -> OptimizerState {
    OptimizerState {
        seed: 1,
        n_asked,
        sobol_index,
        warm_theta: None,
        fitted_n: 0,
        aux_theta: BTreeMap::new(),
        last_confirm: None,
        warp_lambda: None,
    }
}

fn trial(number: usize) -> Trial {
    Trial {
        number,
        config: BTreeMap::new(),
        origin: Origin::Model,
        acquisition: None,
    }
}

fn checkpoint(n_asked: usize, trials_done: usize, pending: Option<usize>) -> CheckpointRead {
    CheckpointRead::Read(Checkpoint {
        optimizer: state(n_asked, 3),
        pending: pending.map(trial),
        trials_done,
        loaded_runner: None,
        study_fingerprint: "f".into(),
    })
}

/// A journal of trials `numbers`, the first three from the initial design.
fn journal(numbers: impl IntoIterator<Item = usize>) -> JournalFacts {
    let mut j = JournalFacts::default();
    for n in numbers {
        let mut r = TrialRecord::for_test(n, BTreeMap::new(), 1.0);
        if n < 3 {
            r.origin = Origin::Initial;
        }
        j.add(&r);
    }
    j.exists = true;
    j.lines = j.trials();
    j
}

/// The next trial number after the cross-check.
fn next_number(r: &Reconciled) -> usize {
    let mut s = r.state.clone().unwrap_or_else(|| state(0, 0));
    r.floors.raise(&mut s);
    s.n_asked
}

fn severities(r: &Reconciled) -> Vec<Severity> {
    r.findings.iter().map(|f| f.severity).collect()
}

#[test]
fn a_consistent_checkpoint_is_used_as_it_is() {
    // After a journaled trial: 10 done, next 10.
    let r = reconcile(checkpoint(10, 10, None), &journal(0..10), None);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(next_number(&r), 10);
    // Trial 10 in flight: measured again under its number.
    let r = reconcile(checkpoint(11, 10, Some(10)), &journal(0..10), None);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.pending.as_ref().map(|p| p.number), Some(10));
    assert_eq!(next_number(&r), 11);
    // Killed after journaling trial 10, before the next checkpoint: not measured again.
    let r = reconcile(checkpoint(11, 10, Some(10)), &journal(0..11), None);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert!(r.pending.is_none());
    assert_eq!(next_number(&r), 11);
    // A new run.
    let r = reconcile(CheckpointRead::Missing, &JournalFacts::default(), None);
    assert!(r.findings.is_empty());
    assert_eq!(next_number(&r), 0);
}

#[test]
fn a_missing_or_unreadable_checkpoint_is_rebuilt_from_the_journal() {
    for c in [
        CheckpointRead::Missing,
        CheckpointRead::Unreadable("EOF while parsing a value".into()),
    ] {
        let r = reconcile(c, &journal(0..10), None);
        assert_eq!(severities(&r), [Severity::Repaired]);
        assert!(
            r.findings[0].message.contains("rebuilt"),
            "{:?}",
            r.findings
        );
        assert_eq!(next_number(&r), 10, "numbering continues after the journal");
        assert_eq!(r.floors.sobol_index, 3, "the design points used");
        assert!(r.pending.is_none());
    }
}

#[test]
fn a_checkpoint_behind_the_journal_cannot_reuse_a_number() {
    // n_asked 0 (the case): the journal's trials 0..9 keep their numbers.
    let r = reconcile(checkpoint(0, 0, None), &journal(0..10), None);
    assert_eq!(next_number(&r), 10);
    assert!(severities(&r).iter().all(|s| *s == Severity::Repaired));
    assert!(r.findings.iter().any(|f| f.message.contains("behind")));
    assert!(r
        .findings
        .iter()
        .any(|f| f.message.contains("numbering continues at 10")));
    // An older checkpoint with a trial in flight: that proposal is stale, not measured.
    let r = reconcile(checkpoint(5, 4, Some(4)), &journal(0..10), None);
    assert!(r.pending.is_none());
    assert_eq!(next_number(&r), 10);
}

#[test]
fn a_checkpoint_ahead_of_the_journal_is_a_loss() {
    // trials.jsonl deleted, the checkpoint says 10 trials.
    let r = reconcile(checkpoint(10, 10, None), &JournalFacts::default(), None);
    assert_eq!(severities(&r), [Severity::Lost]);
    assert!(r.findings[0].message.contains("trials.jsonl is missing"));
    assert!(r.findings[0]
        .message
        .contains("10 measured trial(s) are lost"));
    assert_eq!(
        next_number(&r),
        10,
        "forced on, the lost numbers are not reused"
    );
    // Cut mid-file: 5 lines kept and a torn one.
    let mut j = journal(0..5);
    j.unreadable = vec![(6, "EOF while parsing".into())];
    j.lines = 6;
    let r = reconcile(checkpoint(10, 10, None), &j, None);
    let lost: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Lost)
        .collect();
    assert_eq!(lost.len(), 1, "{:?}", r.findings);
    assert!(lost[0].message.contains("5 measured trial(s) are lost"));
    assert!(
        lost[0].message.contains("5, 6, 7, 8, 9"),
        "{}",
        lost[0].message
    );
    assert!(r.findings.iter().any(|f| f.message.contains("line 6")));
}

#[test]
fn damaged_journal_lines_are_reported() {
    let mut j = journal(0..4);
    j.duplicates = vec![Duplicate {
        line: 5,
        trial: 2,
        first_line: 3,
        identical: false,
    }];
    j.unreadable = vec![(2, "expected value".into())];
    j.lines = 6;
    let r = reconcile(checkpoint(4, 4, None), &j, None);
    assert_eq!(severities(&r), [Severity::Repaired, Severity::Repaired]);
    assert!(r.findings[0].message.contains("reused number"));
    assert!(r.findings[1].message.contains("damaged file"));
    // A torn last line alone is the ordinary power-loss case.
    let mut j = journal(0..4);
    j.unreadable = vec![(5, "EOF".into())];
    j.lines = 5;
    let r = reconcile(checkpoint(5, 4, Some(4)), &j, None);
    assert!(r.findings[0].message.contains("the last line"));
    assert_eq!(r.pending.as_ref().map(|p| p.number), Some(4));
}

#[test]
fn absurd_counters_do_not_overflow() {
    let r = reconcile(
        CheckpointRead::Read(Checkpoint {
            optimizer: state(usize::MAX, u32::MAX),
            pending: Some(trial(usize::MAX)),
            trials_done: usize::MAX,
            loaded_runner: None,
            study_fingerprint: "f".into(),
        }),
        &journal(0..3),
        None,
    );
    assert!(r.findings.iter().any(|f| f.message.contains("implausible")));
    assert!(r.pending.is_none());
    assert_eq!(next_number(&r), 3);
    assert!(r.state.as_ref().unwrap().sobol_index < 1 << 30);
}

#[test]
fn run_json_witnesses_a_lost_journal_when_the_checkpoint_is_gone_too() {
    let r = reconcile(CheckpointRead::Missing, &JournalFacts::default(), Some(10));
    assert_eq!(severities(&r), [Severity::Lost]);
    assert!(r.findings[0].message.contains("run.json says 10"));
    // run.json lags the journal after a kill; never a loss.
    let r = reconcile(checkpoint(10, 10, None), &journal(0..10), Some(9));
    assert!(r.findings.is_empty());
}
