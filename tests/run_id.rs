//! `--run-id` must be one safe path component: ids that would write outside `--state-dir`
//! (`../x`, an absolute path), into it (`.`, `..`, empty) or beyond a file name's length are
//! refused with exit 2 and a hint, before anything is written; a good id writes only under
//! `state/<id>/` and its report copy only under `reports/<id>/`.

mod daemon_support;

use daemon_support::{run_args, sim_study, tuner, write_study};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every path under `root`, relative to it.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn run_ids_that_are_not_one_path_component_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // The daemon works in tmp/work/a; tmp itself holds what an escape would write to.
    let cwd = tmp.path().join("work").join("a");
    std::fs::create_dir_all(cwd.join("state")).unwrap();
    let study = write_study(&cwd, &sim_study(2, 0.001));
    let outside = tmp.path().join("abs-target");
    let long = "x".repeat(256);
    let bad: Vec<String> = vec![
        "".into(),
        ".".into(),
        "..".into(),
        "../x".into(),
        "../../x".into(),
        "../../../escape".into(),
        "a/b".into(),
        "a/../../x".into(),
        "x\\..\\y".into(),
        outside.display().to_string(),
        "/".into(),
        long,
        "a\nb".into(),
    ];
    let before = tree(tmp.path());
    for id in &bad {
        let out = tuner(&run_args(&study, id, &[]), &cwd).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{id:?}: {stderr}");
        assert!(stderr.contains("--run-id"), "{id:?}: {stderr}");
        assert!(
            stderr.contains("one plain folder name"),
            "{id:?}: no hint: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(tree(tmp.path()), before, "{id:?} wrote something");
    }
    // A good id: the run under state/<id>, the report copy under reports/<id>, nothing else.
    let out = tuner(&run_args(&study, "ok-1", &[]), &cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new: Vec<PathBuf> = tree(tmp.path()).difference(&before).cloned().collect();
    let state = Path::new("work/a/state/ok-1");
    let reports = Path::new("work/a/reports");
    for p in &new {
        assert!(
            p.starts_with(state) || p.starts_with(reports.join("ok-1")) || p == reports,
            "written outside state/ok-1 and reports/ok-1: {}",
            p.display()
        );
    }
    assert!(new.iter().any(|p| p.starts_with(reports.join("ok-1"))));
    eprintln!(
        "{} bad run ids refused with exit 2, 0 files written; a good id wrote {} files, all \
         under state/ok-1 and reports/ok-1",
        bad.len(),
        new.len()
    );
}
