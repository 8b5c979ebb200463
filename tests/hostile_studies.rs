//! Hostile study files: every shipped study (search_spaces/*.toml, examples/**/*.toml, the
//! demo template filled in) mutated in deterministic ways (the cases of issue 14 and seeded
//! random edits). For each file: `validate` does not panic and exits 0 or 2; an error names a
//! real line and column; and a file `validate` accepts is accepted by `run` too: one trial is
//! run through `run::run` (on the simulator for a simulator study, else on a backend that
//! answers at once with the metrics the real one would measure), and it must start, journal
//! its trial and stop without an error.
//!
//! `cargo test --test hostile_studies -- --nocapture` prints the counts.

use async_trait::async_trait;
use ollama_tuner::backend::{self, Backend, BackendError, BackendInfo, Evaluation};
use ollama_tuner::domain::metrics::server_metrics;
use ollama_tuner::engine::space::{Config, SearchSpace};
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::store::RunDir;
use ollama_tuner::study::{load_study, BackendConfig, Study};
use ollama_tuner::trial::Status;
use ollama_tuner::{dispatch, Cli};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A shipped study: its name and bytes.
struct Base {
    name: String,
    text: String,
}

fn shipped_studies() -> Vec<Base> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut stack = vec![root.join("search_spaces"), root.join("examples")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out: Vec<Base> = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            // The demo template is the study `demo` writes: fill its placeholders the same way.
            let text = if text.contains("{PROFILE}") {
                ollama_tuner::demo_study_text(10, "gemma3-4b", 0.001, 1)
            } else {
                text
            };
            Base {
                name: p.strip_prefix(root).unwrap().display().to_string(),
                text,
            }
        })
        .collect();
    assert!(
        out.len() >= 5,
        "expected the shipped studies, found {}",
        out.len()
    );
    // Relative paths (argv, prompts) are the repository's.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Set `key = value` in table `[section]` (replacing the line, or adding it, or the table).
fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let Some(start) = lines.iter().position(|l| l.trim() == header) else {
        return format!("{text}\n{header}\n{key} = {value}\n");
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    let line = format!("{key} = {value}");
    match (start + 1..end).find(|&i| {
        let t = lines[i].trim_start();
        t.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
    }) {
        Some(i) => lines[i] = line,
        None => lines.insert(start + 1, line),
    }
    lines.join("\n") + "\n"
}

/// The first `[params.NAME]` of a study.
fn first_param(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("[params.")?.strip_suffix(']'))
        .unwrap_or("p")
        .to_string()
}

/// Replace the first parameter's table with `body`.
fn replace_first_param(text: &str, body: &str) -> String {
    let p = first_param(text);
    let cleared = [
        "low", "high", "step", "log", "default", "choices", "type", "memory", "prefer", "role",
    ]
    .iter()
    .fold(text.to_string(), |t, k| {
        remove_key(&t, &format!("params.{p}"), k)
    });
    let header = format!("[params.{p}]");
    cleared.replacen(&header, &format!("{header}\n{body}"), 1)
}

fn remove_key(text: &str, section: &str, key: &str) -> String {
    let header = format!("[{section}]");
    let mut inside = false;
    let mut out = String::new();
    for l in text.lines() {
        let t = l.trim_start();
        if t.starts_with('[') {
            inside = l.trim() == header;
        } else if inside
            && t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The cases of issue 14 and their neighbours, as edits of a base text.
fn targeted(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut s = |name: &str, t: String| v.push((name.to_string(), t));
    for (sec, key, vals) in [
        (
            "budget",
            "trials",
            &["0", "-1", "1000000000000", "1e12", "\"many\""][..],
        ),
        (
            "budget",
            "wall_time",
            &[
                "1e20",
                "0",
                "-5",
                "\"1e20s\"",
                "nan",
                "inf",
                "\"0s\"",
                "\"99999999999999h\"",
                "1.7e308",
            ],
        ),
        ("budget", "max_consecutive_failures", &["0", "10000000000"]),
        (
            "protocol",
            "request_timeout",
            &["1e20", "0", "nan", "\"forever\""],
        ),
        ("protocol", "repeats", &["1e12", "1000000000000", "0"]),
        ("protocol", "warmup", &["-1", "10000000"]),
        (
            "protocol",
            "num_predict",
            &["4294967297", "0", "-1", "2147483648"],
        ),
        ("protocol", "max_retries", &["1000000000"]),
        ("optimizer", "candidates", &["1000000000000", "8"]),
        ("optimizer", "initial_trials", &["10000000000"]),
        ("optimizer", "confirm", &["0", "1000000"]),
        ("decision", "share", &["0", "1", "nan", "inf"]),
        ("decision", "alpha", &["0.7"]),
        ("decision", "candidates", &["100000"]),
        ("decision", "min_rounds", &["1"]),
        ("study", "name", &["\"\"", "\"a/b\"", "\"\\u0000\""]),
        // A model the simulator's profile does not serve (it answers "model not found").
        ("study", "model", &["\"\"", "\"llama3:70b\""]),
        ("study", "seed", &["-1", "18446744073709551615"]),
        (
            "backend",
            "url",
            &[
                "\"not a url\"",
                "\"ftp://127.0.0.1/x\"",
                "\"\"",
                "\"http://\"",
            ],
        ),
        ("backend", "kind", &["\"bogus\""]),
        ("backend", "profile", &["\"nope\"", "\"llama3.1-8b\""]),
        ("backend", "time_scale", &["inf", "nan", "0", "-1", "1e300"]),
        ("backend", "timeout", &["1e20", "0"]),
        ("backend", "startup_timeout", &["1e20"]),
        ("backend", "keep_alive", &["\"forever\"", "\"-1\""]),
        (
            "backend",
            "env",
            &[
                "{ \"A\\u0000B\" = \"1\" }",
                "{ A = \"x\\u0000\" }",
                "{ \"\" = \"1\" }",
            ],
        ),
        ("backend", "argv", &["[]", "[\"a\\u0000b\"]"]),
        ("objective", "metric", &["\"bogus\"", "\"\""]),
        (
            "objective",
            "constraints",
            &[
                "[\"bogus <= 1\"]",
                "[\"ttft <= nan\"]",
                "[\"decode_tps >= 1e400\"]",
            ],
        ),
    ] {
        for val in vals {
            s(&format!("{sec}.{key}={val}"), set(text, sec, key, val));
        }
    }
    s(
        "study.name=300 chars",
        set(text, "study", "name", &format!("\"{}\"", "n".repeat(300))),
    );
    for body in [
        "type = \"int\"\nlow = -4611686018427387904\nhigh = 4611686018427387904",
        "type = \"int\"\nlow = -9223372036854775808\nhigh = 9223372036854775807",
        "type = \"float\"\nlow = -1.7e308\nhigh = 1.7e308",
        "type = \"float\"\nlow = 1e-320\nhigh = 1e308\nlog = true",
        "type = \"float\"\nlow = 0.0\nhigh = 1.0\nstep = 1e-320",
        "type = \"int\"\nlow = 1\nhigh = 64\nstep = 4\ndefault = 8",
        "type = \"int\"\nlow = 1\nhigh = 64\nstep = 4\ndefault = 9",
        "type = \"float\"\nlow = nan\nhigh = 1.0",
        "type = \"float\"\nlow = 0.0\nhigh = inf",
        "type = \"int\"\nlow = 10\nhigh = 1",
        "type = \"int\"\nlow = 0\nhigh = 10\nlog = true",
        "type = \"int\"\nlow = 0\nhigh = 10\ndefault = \"x\"",
        "type = \"complex\"",
        "type = \"categorical\"\nchoices = []",
        "type = \"categorical\"\nchoices = [1, 1]",
        "type = \"categorical\"\nchoices = [\"a\\u0000\"]",
        "type = \"bool\"\nlow = 1",
        "type = \"float\"\nlow = 0.0\nhigh = 3.5e38",
        "type = \"int\"\nlow = 0\nhigh = 3000000000",
        "type = 5",
    ] {
        s(
            &format!("first param: {}", body.replace('\n', "; ")),
            replace_first_param(text, body),
        );
    }
    let p = first_param(text);
    s(
        "case twin of the first param",
        format!("{text}\n[params.{}]\ntype = \"bool\"\n", p.to_uppercase()),
    );
    s(
        "env shadows TUNE_",
        set(
            text,
            "backend",
            "env",
            &format!("{{ TUNE_{} = \"1\" }}", p.to_uppercase()),
        ),
    );
    s("300 params", {
        let mut t = text.to_string();
        for i in 0..300 {
            t.push_str(&format!("\n[params.extra{i}]\ntype = \"bool\"\n"));
        }
        t
    });
    s(
        "duplicate key",
        text.replacen("[study]\n", "[study]\nseed = 1\nseed = 2\n", 1),
    );
    s("duplicate table", format!("{text}\n[budget]\ntrials = 3\n"));
    s(
        "deep nesting",
        format!(
            "{text}\n[study2]\nx = {}{}\n",
            "[".repeat(20_000),
            "]".repeat(20_000)
        ),
    );
    s(
        "deep inline tables",
        format!(
            "{text}\nx = {}1{}\n",
            "{a = ".repeat(5_000),
            "}".repeat(5_000)
        ),
    );
    s(
        "1 MB string",
        set(
            text,
            "study",
            "description",
            &format!("\"{}\"", "x".repeat(1 << 20)),
        ),
    );
    s("empty", String::new());
    s("truncated", text[..text.len() / 2].to_string());
    s("unknown table", format!("{text}\n[bogus]\nx = 1\n"));
    let mut out: Vec<(String, Vec<u8>)> = v.into_iter().map(|(n, t)| (n, t.into_bytes())).collect();
    // A byte that is not UTF-8 on the second line.
    let mut bad = text.as_bytes().to_vec();
    let second = bad.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
    bad.insert(second, 0xff);
    out.push(("non-UTF-8 byte on line 2".into(), bad));
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice(text.as_bytes());
    out.push(("UTF-8 BOM".into(), bom));
    out
}

const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "1e20",
    "-1e20",
    "1.7e308",
    "-1.7e308",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "-9223372036854775808",
    "4294967297",
    "\"\"",
    "true",
    "[]",
    "[1, \"a\"]",
    "{ a = 1 }",
    "\"\\u0000\"",
    "1e-320",
    "0.0",
    "\"1e20s\"",
    "\"0s\"",
    "\"99999999999h\"",
    "\"not a url\"",
    "\"auto\"",
    "-0.0",
    "1",
    "2",
    "3.5",
    "\"x\"",
];

/// Seeded random edits of a base text.
fn random(text: &str, rng: &mut ChaCha8Rng, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let keyed: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains('=') && !lines[i].trim_start().starts_with('#'))
        .collect();
    for k in 0..n {
        let mut ls: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let op = rng.random_range(0..7);
        let name;
        let bytes = match op {
            0 | 1 => {
                let i = keyed[rng.random_range(0..keyed.len())];
                let key = ls[i].split('=').next().unwrap().trim().to_string();
                let val = HOSTILE[rng.random_range(0..HOSTILE.len())];
                name = format!("random {k}: {key} = {val}");
                ls[i] = format!("{key} = {val}");
                (ls.join("\n") + "\n").into_bytes()
            }
            2 => {
                let i = rng.random_range(0..ls.len());
                name = format!("random {k}: delete line {}", i + 1);
                ls.remove(i);
                (ls.join("\n") + "\n").into_bytes()
            }
            3 => {
                let i = keyed[rng.random_range(0..keyed.len())];
                name = format!("random {k}: duplicate line {}", i + 1);
                let l = ls[i].clone();
                ls.insert(i, l);
                (ls.join("\n") + "\n").into_bytes()
            }
            4 => {
                let mut b = text.as_bytes().to_vec();
                let at = rng.random_range(0..=b.len());
                let byte = rng.random_range(0x80..=0xffu8);
                name = format!("random {k}: byte 0x{byte:02x} at {at}");
                b.insert(at, byte);
                b
            }
            5 => {
                let at = rng.random_range(0..text.len());
                name = format!("random {k}: cut at {at}");
                text.as_bytes()[..at].to_vec()
            }
            _ => {
                let (a, b) = (rng.random_range(0..ls.len()), rng.random_range(0..ls.len()));
                name = format!("random {k}: swap lines {} and {}", a + 1, b + 1);
                ls.swap(a, b);
                (ls.join("\n") + "\n").into_bytes()
            }
        };
        out.push((name, bytes));
    }
    out
}

/// A backend that answers at once with what the real one measures: the server's metrics
/// (src/domain/metrics.rs) or, for a command, the metrics the study names.
struct Instant {
    kind: String,
    metrics: Vec<String>,
    repeats: usize,
}

#[async_trait]
impl Backend for Instant {
    async fn prepare(&mut self, _space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
        Ok(BackendInfo {
            backend: self.kind.clone(),
            ..Default::default()
        })
    }

    async fn evaluate(&mut self, _config: &Config) -> Result<Evaluation, BackendError> {
        let sample: BTreeMap<String, f64> = self.metrics.iter().map(|m| (m.clone(), 1.0)).collect();
        Ok(Evaluation {
            samples: vec![sample; self.repeats],
            ..Default::default()
        })
    }
}

fn instant_backend(study: &Study) -> Instant {
    let kind = study.backend.kind();
    let metrics = match server_metrics(kind) {
        Some(m) => m.iter().map(|s| s.to_string()).collect(),
        None => std::iter::once(&study.objective.metric)
            .chain(study.objective.constraints.iter().map(|c| &c.metric))
            .map(|m| m.metric.clone())
            .collect(),
    };
    Instant {
        kind: kind.to_string(),
        metrics,
        repeats: study.protocol.repeats,
    }
}

/// `ollama-tuner validate FILE` through the CLI's own dispatch: its exit code.
async fn validate_exit(path: &Path) -> i32 {
    let cli =
        <Cli as clap::Parser>::try_parse_from(["ollama-tuner", "validate", path.to_str().unwrap()])
            .unwrap();
    match dispatch(cli).await {
        Ok(()) => 0,
        Err(e) => e.code as i32,
    }
}

/// Run one trial of an accepted study; Err says how `run` disagreed with `validate`.
async fn run_one_trial(mut study: Study, path: &Path, state: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    // The real simulator when a trial stays short; its time scale is ours, not the file's.
    let small =
        study.protocol.repeats + study.protocol.warmup <= 8 && study.protocol.num_predict <= 256;
    let backend: Box<dyn Backend> = match &mut study.backend {
        BackendConfig::Simulator { time_scale, .. } if small => {
            *time_scale = 0.0001;
            backend::create(&study)
                .await
                .map_err(|e| format!("backend: {e}"))?
        }
        _ => Box::new(instant_backend(&study)),
    };
    let opts = RunOptions {
        state_dir: state.to_path_buf(),
        trials: Some(1),
        time_budget: Some(Duration::from_secs(60)),
        grace: Duration::from_secs(1),
        max_outage: Duration::from_secs(1),
        progress: false,
        ..RunOptions::default()
    };
    let (_tx, shutdown) = tokio::sync::watch::channel(0u32);
    let out = run::run(study, &text, path, opts, backend, shutdown)
        .await
        .map_err(|e| format!("run: {e}"))?;
    let journal = RunDir::open(&out.run_dir).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    journal
        .scan_journal(|r| records.push(r))
        .map_err(|e| e.to_string())?;
    match records.as_slice() {
        [r] if r.status == Status::Ok || r.failure.is_some() => Ok(()),
        other => Err(format!(
            "expected one journaled trial, found {}",
            other.len()
        )),
    }
}

#[test]
fn hostile_study_files() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let (mut files, mut accepted, mut rejected, mut ran) = (0, 0, 0, 0);
    let mut problems: Vec<String> = Vec::new();
    for base in shipped_studies() {
        let mut cases = vec![("as shipped".to_string(), base.text.clone().into_bytes())];
        cases.extend(targeted(&base.text));
        cases.extend(random(&base.text, &mut rng, 40));
        for (case, bytes) in cases {
            files += 1;
            let label = format!("{} [{case}]", base.name);
            let path = dir.path().join("study.toml");
            std::fs::write(&path, &bytes).unwrap();
            let loaded = std::panic::catch_unwind(|| load_study(&path));
            let Ok(loaded) = loaded else {
                problems.push(format!("{label}: load_study panicked"));
                continue;
            };
            let exit = runtime.block_on(validate_exit(&path));
            match (&loaded, exit) {
                (Ok(_), 0) => accepted += 1,
                (Err(e), 2) => {
                    rejected += 1;
                    if e.line == 0 || e.column == 0 || e.message.is_empty() {
                        problems.push(format!("{label}: error not located: {e}"));
                    }
                }
                (r, code) => problems.push(format!(
                    "{label}: exit {code} for {:?}",
                    r.as_ref().map(|_| ())
                )),
            }
            if let Ok(study) = loaded {
                let state = dir.path().join(format!("s{files}"));
                let joined = runtime.spawn({
                    let path = path.clone();
                    async move { run_one_trial(study, &path, &state).await }
                });
                match runtime.block_on(joined) {
                    Ok(Ok(())) => ran += 1,
                    Ok(Err(e)) => problems.push(format!("{label}: validate accepts, {e}")),
                    Err(e) => problems.push(format!("{label}: run panicked: {e}")),
                }
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    eprintln!(
        "hostile study files: {files} ({accepted} accepted by validate, exit 0; {rejected} rejected, exit 2); \
         {ran} accepted files ran one trial through `run`; {} problems (panics, other exit codes, unlocated errors, validate/run disagreements)",
        problems.len()
    );
    assert!(files >= 200, "only {files} hostile files");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
