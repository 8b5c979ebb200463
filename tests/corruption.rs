//! The journal/checkpoint corruption matrix: a finished 10-trial run, damaged one way per case
//! (checkpoint.json missing, empty, garbage, another shape, counting from 0, ahead of or behind
//! the journal; trials.jsonl missing, empty, with garbage lines, torn in the middle or at the
//! end, with repeated lines or a reused number), then resumed for two more trials. Each case
//! asserts: no panic; the documented exit code (0 when the journal is whole, 5 = resume
//! refused when journaled trials are gone, then 0 with --force); no journaled trial lost or
//! changed; no trial number on two records; the discrepancy in the log and in run.json.

mod daemon_support;

use daemon_support::{run_args, sim_study, tuner, write_study};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// What a case does to the run and what it must lead to.
struct Case {
    name: &'static str,
    damage: fn(&Path),
    /// Exit code of the plain resume: 0, or 5 when trials were lost (then resumed with --force).
    exit: i32,
    /// Words the log must contain.
    says: &'static str,
}

fn checkpoint(run: &Path) -> Value {
    serde_json::from_slice(&fs::read(run.join("checkpoint.json")).unwrap()).unwrap()
}

fn set_checkpoint(run: &Path, edit: impl FnOnce(&mut Value)) {
    let mut c = checkpoint(run);
    edit(&mut c);
    fs::write(run.join("checkpoint.json"), serde_json::to_vec(&c).unwrap()).unwrap();
}

fn journal_lines(run: &Path) -> Vec<String> {
    fs::read_to_string(run.join("trials.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn set_journal(run: &Path, lines: &[String], trailing_newline: bool) {
    let mut text = lines.join("\n");
    if trailing_newline && !lines.is_empty() {
        text.push('\n');
    }
    fs::write(run.join("trials.jsonl"), text).unwrap();
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "checkpoint missing",
            damage: |r| fs::remove_file(r.join("checkpoint.json")).unwrap(),
            exit: 0,
            says: "checkpoint.json is missing",
        },
        Case {
            name: "checkpoint empty",
            damage: |r| fs::write(r.join("checkpoint.json"), "").unwrap(),
            exit: 0,
            says: "checkpoint.json is unreadable",
        },
        Case {
            name: "checkpoint garbage",
            damage: |r| fs::write(r.join("checkpoint.json"), b"\x00\xffnot json{{").unwrap(),
            exit: 0,
            says: "checkpoint.json is unreadable",
        },
        Case {
            name: "checkpoint wrong shape (array)",
            damage: |r| fs::write(r.join("checkpoint.json"), "[1, 2, 3]").unwrap(),
            exit: 0,
            says: "checkpoint.json is unreadable",
        },
        Case {
            name: "checkpoint wrong shape (fields missing)",
            damage: |r| set_checkpoint(r, |c| c["optimizer"] = Value::from("x")),
            exit: 0,
            says: "checkpoint.json is unreadable",
        },
        Case {
            name: "checkpoint n_asked 0",
            damage: |r| {
                set_checkpoint(r, |c| {
                    c["optimizer"]["n_asked"] = 0.into();
                    c["trials_done"] = 0.into();
                })
            },
            exit: 0,
            says: "numbering continues at 10",
        },
        Case {
            name: "checkpoint behind the journal",
            damage: |r| {
                set_checkpoint(r, |c| {
                    c["optimizer"]["n_asked"] = 4.into();
                    c["trials_done"] = 3.into();
                    c["pending"] =
                        serde_json::json!({"number": 3, "config": {}, "origin": "model"});
                })
            },
            exit: 0,
            says: "behind the journal",
        },
        Case {
            name: "checkpoint pending already journaled",
            damage: |r| {
                set_checkpoint(r, |c| {
                    c["trials_done"] = 9.into();
                    c["pending"] =
                        serde_json::json!({"number": 9, "config": {}, "origin": "model"});
                })
            },
            exit: 0,
            says: "",
        },
        Case {
            name: "checkpoint ahead of the journal",
            damage: |r| {
                set_checkpoint(r, |c| {
                    c["optimizer"]["n_asked"] = 20.into();
                    c["trials_done"] = 20.into();
                })
            },
            exit: 5,
            says: "10 measured trial(s) are lost",
        },
        Case {
            name: "checkpoint counters absurd",
            damage: |r| {
                set_checkpoint(r, |c| {
                    c["optimizer"]["n_asked"] = u64::MAX.into();
                    c["optimizer"]["sobol_index"] = u32::MAX.into();
                })
            },
            exit: 0,
            says: "implausible",
        },
        Case {
            name: "journal missing",
            damage: |r| fs::remove_file(r.join("trials.jsonl")).unwrap(),
            exit: 5,
            says: "trials.jsonl is missing",
        },
        Case {
            name: "journal and checkpoint missing",
            damage: |r| {
                fs::remove_file(r.join("trials.jsonl")).unwrap();
                fs::remove_file(r.join("checkpoint.json")).unwrap();
            },
            exit: 5,
            says: "run.json says 10 trial(s)",
        },
        Case {
            name: "journal empty",
            damage: |r| fs::write(r.join("trials.jsonl"), "").unwrap(),
            exit: 5,
            says: "trials.jsonl holds 0",
        },
        Case {
            name: "journal with garbage lines",
            damage: |r| {
                let mut l = journal_lines(r);
                l.insert(3, "garbage".into());
                l.insert(7, "{\"trial\": \"x\"}".into());
                l.push("\u{1}\u{2}binary".into());
                set_journal(r, &l, true);
            },
            exit: 0,
            says: "3 unreadable journal line(s)",
        },
        Case {
            name: "journal torn in the middle (cut after 5 lines and a torn one)",
            damage: |r| {
                let l = journal_lines(r);
                let mut kept: Vec<String> = l[..5].to_vec();
                kept.push(l[5][..l[5].len() / 2].to_string());
                set_journal(r, &kept, false);
            },
            exit: 5,
            says: "5 measured trial(s) are lost",
        },
        Case {
            name: "journal with a torn line in the middle",
            damage: |r| {
                let mut l = journal_lines(r);
                l[4] = l[4][..l[4].len() / 3].to_string();
                set_journal(r, &l, true);
            },
            exit: 5,
            says: "1 measured trial(s) are lost",
        },
        Case {
            name: "journal torn at the end",
            damage: |r| {
                // Power loss while writing trial 10: the checkpoint names it in flight.
                let mut l = journal_lines(r);
                let torn = l[9].replace("\"trial\":9", "\"trial\":10");
                l.push(torn[..torn.len() / 2].to_string());
                set_journal(r, &l, false);
                set_checkpoint(r, |c| {
                    c["optimizer"]["n_asked"] = 11.into();
                    c["pending"] =
                        serde_json::json!({"number": 10, "config": {}, "origin": "model"});
                });
            },
            exit: 0,
            says: "the last line",
        },
        Case {
            name: "journal with repeated lines",
            damage: |r| {
                let mut l = journal_lines(r);
                let again = l[2].clone();
                l.insert(5, again);
                let all = l.clone();
                l.extend(all);
                set_journal(r, &l, true);
            },
            exit: 0,
            says: "repeat a trial number",
        },
        Case {
            name: "journal with a reused trial number",
            damage: |r| {
                // The bug this guards against: a resume that numbered from 0 again.
                let mut l = journal_lines(r);
                let mut v: Value = serde_json::from_str(&l[7]).unwrap();
                v["trial"] = 0.into();
                l.push(serde_json::to_string(&v).unwrap());
                set_journal(r, &l, true);
            },
            exit: 0,
            says: "reused number",
        },
    ]
}

/// Trial number -> line of each parseable journal line; panics on a number twice unless
/// `allow_repeats` (damage the case put there itself).
fn numbered_lines(run: &Path) -> Vec<(usize, String)> {
    journal_lines(run)
        .into_iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(&l).ok()?;
            Some((v["trial"].as_u64()? as usize, l))
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn resume(cwd: &Path, run: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "resume",
        run.to_str().unwrap(),
        "--trials",
        "12",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let out = tuner(&args, cwd).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().expect("exited, not killed"), stderr)
}

#[test]
fn corruption_matrix_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(tmp.path(), &sim_study(10, 0.001));
    let out = tuner(&run_args(&study, "base", &[]), tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base: PathBuf = tmp.path().join("state").join("base");
    assert_eq!(numbered_lines(&base).len(), 10);

    let cases = cases();
    let mut refused = 0;
    let mut reported = 0;
    for (i, case) in cases.iter().enumerate() {
        let run = tmp.path().join("state").join(format!("case{i}"));
        copy_dir(&base, &run);
        (case.damage)(&run);
        let before = numbered_lines(&run);
        // The first line of each number is the record every reader uses.
        let mut kept: BTreeMap<usize, String> = BTreeMap::new();
        for (n, l) in &before {
            kept.entry(*n).or_insert_with(|| l.clone());
        }
        // The numbers the run's files say were used: new trials take none of them.
        let read = |f: &str| {
            fs::read(run.join(f))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .unwrap_or_default()
        };
        let highest_claimed = [
            read("checkpoint.json")["optimizer"]["n_asked"].as_u64(),
            read("run.json")["progress"]["trials_done"].as_u64(),
        ]
        .into_iter()
        .flatten()
        .filter(|n| *n < 1 << 20)
        .max()
        .unwrap_or(0) as usize;

        let (code, mut log) = resume(tmp.path(), &run, &[]);
        assert_eq!(code, case.exit, "{}: exit {code}\n{log}", case.name);
        if code == 5 {
            refused += 1;
            assert!(log.contains("--force"), "{}: no hint\n{log}", case.name);
            assert_eq!(
                numbered_lines(&run),
                before,
                "{}: refused, yet changed",
                case.name
            );
            let (code, forced_log) = resume(tmp.path(), &run, &["--force"]);
            assert_eq!(code, 0, "{}: --force\n{forced_log}", case.name);
            log.push_str(&forced_log);
        }
        assert!(
            log.contains(case.says),
            "{}: the log does not say {:?}\n{log}",
            case.name,
            case.says
        );
        let after = numbered_lines(&run);
        // Nothing journaled before is lost or changed: the old lines are a prefix.
        assert_eq!(&after[..before.len()], &before[..], "{}", case.name);
        let new: Vec<usize> = after[before.len()..].iter().map(|(n, _)| *n).collect();
        let new_set: BTreeSet<usize> = new.iter().copied().collect();
        assert_eq!(
            new_set.len(),
            new.len(),
            "{}: a new number twice: {new:?}",
            case.name
        );
        for n in &new {
            assert!(
                !kept.contains_key(n),
                "{}: trial {n} journaled again",
                case.name
            );
        }
        assert_eq!(
            kept.len() + new.len(),
            12.max(kept.len()),
            "{}: the budget of 12 trials, counted from the journal",
            case.name
        );
        if code == 0 && case.exit == 5 {
            // Forced on after a loss: the lost numbers are not reused either.
            assert!(
                new.iter().all(|n| *n >= highest_claimed),
                "{}: {new:?}",
                case.name
            );
        }
        let meta: Value = serde_json::from_slice(&fs::read(run.join("run.json")).unwrap()).unwrap();
        let notes = meta["integrity"].as_array().map_or(0, Vec::len);
        if !case.says.is_empty() {
            assert!(notes > 0, "{}: nothing in run.json's integrity", case.name);
            reported += 1;
        }
        assert_eq!(
            meta["progress"]["trials_done"].as_u64(),
            Some((kept.len() + new.len()) as u64),
            "{}",
            case.name
        );
    }
    eprintln!(
        "corruption matrix: {} cases, 0 panics, {refused} refused with exit 5 then resumed with \
         --force, {reported} discrepancies reported in the log and run.json, 0 trials lost or \
         duplicated",
        cases.len()
    );
}
