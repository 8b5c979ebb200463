//! A whole run on a GPU that is too small for the model (the simulator's `llama3.1-8b-6gb`):
//! the run completes its budget (out-of-memory failures after something loaded never stop it),
//! and no configuration the optimizer proposes needs at least as much memory as one that
//! already ran out (docs/memory.md).

use ollama_tuner::backend;
use ollama_tuner::engine::space::Config;
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::store::{RunDir, StopReason};
use ollama_tuner::study::parse_study;
use ollama_tuner::trial::{FailureKind, Origin};

const STUDY: &str = r#"
[study]
name = "memory-wall"
model = "llama3.1:8b-instruct-q4_0"
seed = 5

[backend]
kind = "simulator"
profile = "llama3.1-8b-6gb"
time_scale = 0.001

[budget]
trials = 30
max_consecutive_failures = 4

[protocol]
repeats = 2
warmup = 1
num_predict = 32

[params.num_gpu]
type = "int"
low = 0
high = 999
default = "auto"

[params.num_ctx]
type = "int"
low = 4096
high = 32768
log = true
default = 4096

[params.num_batch]
type = "int"
low = 64
high = 2048
log = true
default = "auto"

[params.num_thread]
type = "int"
low = 1
high = 16
default = "auto"
"#;

/// Effective num_gpu, num_ctx and num_batch of `a` all at least those of `b`.
fn needs_at_least(a: &Config, b: &Config) -> bool {
    ["num_gpu", "num_ctx", "num_batch"].iter().all(|k| {
        match (
            a.get(*k).and_then(|v| v.as_i64()),
            b.get(*k).and_then(|v| v.as_i64()),
        ) {
            (Some(x), Some(y)) => x >= y,
            _ => false,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_a_too_small_gpu_completes_and_never_proposes_past_the_wall() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("study.toml");
    std::fs::write(&path, STUDY).unwrap();
    let study = parse_study(&path, STUDY).unwrap();
    let be = backend::create(&study).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    let opts = RunOptions {
        state_dir: tmp.path().join("state"),
        run_id: Some("wall".into()),
        progress: false,
        ..RunOptions::default()
    };
    let out = run::run(study, STUDY, &path, opts, be, rx).await.unwrap();
    assert!(
        matches!(out.stop, StopReason::Budget | StopReason::Decided),
        "stopped with {:?}",
        out.stop
    );
    let records = RunDir::new(&out.run_dir).read_journal().unwrap().records;
    let oom: Vec<&_> = records
        .iter()
        .filter(|r| r.failure == Some(FailureKind::OutOfMemory))
        .collect();
    assert!(!oom.is_empty(), "the profile has a memory wall to find");
    for (i, r) in records.iter().enumerate() {
        let proposed = matches!(r.origin, Origin::Model | Origin::Initial | Origin::Random);
        if !proposed {
            continue;
        }
        for earlier in records[..i]
            .iter()
            .filter(|e| e.failure == Some(FailureKind::OutOfMemory))
        {
            assert!(
                !needs_at_least(r.effective_params(), earlier.effective_params()),
                "trial {} ({:?}) needs at least as much memory as trial {} that ran out ({:?})",
                r.trial,
                r.params,
                earlier.trial,
                earlier.params
            );
        }
    }
}
