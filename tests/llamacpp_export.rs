//! The exported llama-server command line is the one the backend started for that trial: a whole
//! run of the llamacpp backend against a fake llama-server (a Python script that writes down the
//! arguments of every start and streams answers whose speed depends on `-c`), then the export of
//! rank 1 compared word for word with the arguments the fake was started with for that trial
//! (less the flags whose value is `auto`, which the export leaves out; its output setting, the
//! temperature, stays at the user's value).
//!
//! Needs python3; without it the test prints "skipped" and passes.

mod common;
use common::shell_words;
use ollama_tuner::backend;
use ollama_tuner::export::{export, ExportFormat};
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::store::{RunDir, StopReason};
use ollama_tuner::study::parse_study;

/// A fake llama-server: `--version` and `--list-devices` like the real one (CPU-only), else it
/// appends its arguments to launches.jsonl beside itself and serves /health and a streamed
/// /completion whose decode speed grows with the context size.
const FAKE_SERVER: &str = r#"#!/usr/bin/env python3
import http.server, json, os, sys, time
a = sys.argv
if "--version" in a:
    sys.stderr.write("version: 1 (fake)\n"); sys.exit(0)
if "--list-devices" in a:
    print("Available devices:\n  (none)"); sys.exit(0)
with open(os.path.join(os.path.dirname(os.path.abspath(a[0])), "launches.jsonl"), "a") as f:
    f.write(json.dumps(a[1:]) + "\n")
port, ctx = int(a[a.index("--port") + 1]), int(a[a.index("-c") + 1])
tps = 20.0 + ctx / 100.0
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'data: {"content":"hi","stop":false}\n\n')
        final = {"content": "", "stop": True, "timings": {"cache_n": 0, "prompt_n": 3,
                 "prompt_ms": 10, "prompt_per_second": 300, "predicted_n": 4,
                 "predicted_ms": 4000.0 / tps, "predicted_per_second": tps}}
        # Take the time the timings say (the client checks them against its clock).
        time.sleep((10 + 4000.0 / tps) / 1000)
        self.wfile.write(("data: " + json.dumps(final) + "\n\n").encode())
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// A minimal GGUF header (version 3, no tensors, no keys).
fn gguf() -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b
}

/// `args` with the value after `--port` replaced by llama-server's default port, and without
/// the flags whose value is `auto` (the export leaves them out, which makes the same choice).
fn default_port(args: &[String]) -> Vec<String> {
    let mut out = args.to_vec();
    if let Some(i) = out.iter().position(|a| a == "--port") {
        out[i + 1] = "8080".into();
    }
    out
}

#[test]
fn exported_command_is_the_command_the_backend_started_for_the_trial() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: python3 is needed for the fake llama-server");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("llama-server");
    std::fs::write(&bin, FAKE_SERVER).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let model = dir.path().join("m.gguf");
    std::fs::write(&model, gguf()).unwrap();
    let text = format!(
        r#"
[study]
name = "fake-llamacpp"
model = "m.gguf"
seed = 5

[backend]
kind = "llamacpp"
server = "{}"
model_path = "{}"
startup_timeout = "30s"
extra_args = ["--mlock"]

[budget]
trials = 5

[objective]
metric = "decode_tps"
direction = "maximize"

[protocol]
repeats = 1
warmup = 0
num_predict = 4
request_timeout = "20s"

[params.ctx_size]
type = "int"
low = 512
high = 4096
default = 1024

[params.temperature]
type = "float"
low = 0.0
high = 1.0
default = 0.5
"#,
        bin.display(),
        model.display()
    );
    let path = dir.path().join("study.toml");
    std::fs::write(&path, &text).unwrap();
    let study = parse_study(&path, &text).unwrap();
    let state = dir.path().join("state");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt
        .block_on(async {
            let backend = backend::create(&study).await.expect("backend");
            let (_tx, rx) = tokio::sync::watch::channel(0u32);
            let opts = RunOptions {
                state_dir: state.clone(),
                run_id: Some("fake".into()),
                progress: false,
                reports_dir: None,
                ..RunOptions::default()
            };
            run::run(study, &text, &path, opts, backend, rx).await
        })
        .unwrap_or_else(|e| panic!("the run failed: {e}"));
    assert_eq!(outcome.stop, StopReason::Budget, "{}", outcome.stop_message);

    // What the fake llama-server was started with, one line per start.
    let launches: Vec<Vec<String>> = std::fs::read_to_string(dir.path().join("launches.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!launches.is_empty());

    let run = RunDir::open(&state.join("fake")).unwrap();
    let journal = run.read_journal().unwrap();
    for r in journal.records.iter().filter(|r| r.is_ok()) {
        let recorded: Vec<String> =
            serde_json::from_value(r.notes["llama_server_args"].clone()).unwrap();
        assert!(
            launches.contains(&recorded),
            "trial {} recorded arguments the fake was never started with: {recorded:?}",
            r.trial
        );
    }

    let exported = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    let line = exported.lines().find(|l| !l.starts_with('#')).unwrap();
    let words = shell_words(line);
    assert_eq!(words[0], "llama-server");
    // The server's arguments; the trial's temperature is an output setting, kept at the user's
    // value (the study does not set decision.allow_output_changes).
    let server_args = &words[1..];
    assert!(!line.contains("--temp"), "{line}");
    assert!(exported.contains("temperature 0.5"), "{exported}");
    let normalized: Vec<Vec<String>> = launches.iter().map(|a| default_port(a)).collect();
    assert!(
        normalized.iter().any(|a| a == server_args),
        "the exported command was never started:\n{line}\nstarts: {launches:?}"
    );
    // And it is the start of rank 1's own configuration.
    let trial: usize = exported
        .split(": trial #")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .expect("the provenance names the trial");
    let best = journal.records.iter().find(|r| r.trial == trial).unwrap();
    let ctx = best.params["ctx_size"].as_i64().unwrap().to_string();
    let c = server_args.iter().position(|a| a == "-c").unwrap();
    assert_eq!(server_args[c + 1], ctx, "{line}");
    assert!(server_args.ends_with(&["--no-warmup".to_string(), "--mlock".to_string()]));
}

use common::{llamacpp_run, write_run};
use ollama_tuner::backend::effective::overlay;
use ollama_tuner::backend::llamacpp::{command_line, HostDefaults};
use ollama_tuner::engine::space::{Config, ParamValue};
use ollama_tuner::trial::TrialRecord;
use std::path::Path;

const MODEL: &str = "/models/gemma-3-270m-q4_k_m.gguf";

/// The fixture's llamacpp run with `change` applied to every trial's parameters, recorded the
/// way the backend records a trial: the arguments it started llama-server with, the values it
/// knew would run differently (`effective`) and, with `chose`, what the server said it chose.
fn recorded(
    change: impl Fn(&mut Config),
    chose: Option<serde_json::Value>,
) -> (ollama_tuner::store::RunMeta, Vec<TrialRecord>) {
    let (meta, mut records) = llamacpp_run();
    let host = HostDefaults {
        threads: 2,
        n_gpu_layers: 0,
    };
    for r in records.iter_mut() {
        change(&mut r.params);
        let built = command_line(
            Path::new("/opt/llama-server"),
            Path::new(MODEL),
            "127.0.0.1",
            41000 + r.trial as u16,
            &r.params,
            &host,
            &[],
        )
        .unwrap();
        r.notes.insert(
            "llama_server_args".into(),
            serde_json::json!(built.args[1..]),
        );
        let mut server = built.effective.clone();
        if let Some(c) = &chose {
            r.notes.insert("server_chose".into(), c.clone());
            for (k, v) in c.as_object().unwrap() {
                if r.params.get(k).is_some_and(|p| p.is_auto()) {
                    let v = match v.as_i64() {
                        Some(i) => ParamValue::Int(i),
                        None => ParamValue::Str(v.as_str().unwrap().into()),
                    };
                    server.insert(k.clone(), v);
                }
            }
        }
        r.effective = overlay(&r.params, &server);
    }
    (meta, records)
}

/// The exported command of rank 1, as words, and the whole export.
fn exported(meta: &ollama_tuner::store::RunMeta, records: &[TrialRecord]) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), meta, records);
    let text = export(&run, ExportFormat::LlamaServer, 1).unwrap();
    let line = text.lines().find(|l| !l.starts_with('#')).unwrap();
    (shell_words(line), text)
}

fn flag<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| w == name)
        .and_then(|i| words.get(i + 1))
        .map(String::as_str)
}

fn without_args(records: &[TrialRecord]) -> Vec<TrialRecord> {
    let mut out = records.to_vec();
    for r in out.iter_mut() {
        r.notes.remove("llama_server_args");
    }
    out
}

/// Issue 12's example: a run measured with `-c 4096 -ngl 0 -ub 8` exported
/// `-c 0 ... -ngl auto -ub 8128`. The export states the measured values, from the recorded
/// arguments and, without them, from the effective configuration.
#[test]
fn the_export_states_the_measured_values_not_the_requested_ones() {
    let (meta, records) = recorded(
        |p| {
            p.insert("ctx_size".into(), ParamValue::Int(4096));
            p.insert("batch_size".into(), ParamValue::Int(8));
            p.insert("ubatch_size".into(), ParamValue::Int(8128));
            p.insert("n_gpu_layers".into(), ParamValue::Int(0));
        },
        None,
    );
    let best = &records[4];
    assert_eq!(
        best.effective.as_ref().unwrap()["ubatch_size"],
        ParamValue::Int(8),
        "launched as -b 8 -ub 8"
    );
    for (name, records) in [
        ("recorded", records.clone()),
        ("reconstructed", without_args(&records)),
    ] {
        let (words, text) = exported(&meta, &records);
        assert_eq!(flag(&words, "-c"), Some("4096"), "{name}: {text}");
        assert_eq!(flag(&words, "-ngl"), Some("0"), "{name}: {text}");
        assert_eq!(flag(&words, "-b"), Some("8"), "{name}: {text}");
        assert_eq!(flag(&words, "-ub"), Some("8"), "{name}: {text}");
        assert!(!words.iter().any(|w| w == "8128"), "{name}: {text}");
    }
}

/// A trial that left the context and the layer count to the server (`auto`): its recorded
/// command has neither flag and `--fit` on; the export spells out what the server chose, with
/// `--fit off`.
#[test]
fn values_left_to_the_server_are_exported_as_it_chose_them() {
    let chose = serde_json::json!({"ctx_size": 4096, "n_gpu_layers": 0, "flash_attn": "on",
        "threads": 2, "threads_batch": 2, "batch_size": 512, "ubatch_size": 512});
    let auto = |p: &mut Config| {
        p.insert("ctx_size".into(), ParamValue::auto());
        p.insert("n_gpu_layers".into(), ParamValue::auto());
    };
    let (meta, records) = recorded(auto, Some(chose));
    let recorded_args: Vec<String> =
        serde_json::from_value(records[4].notes["llama_server_args"].clone()).unwrap();
    assert!(!recorded_args
        .iter()
        .any(|a| a == "-c" || a == "-ngl" || a == "--fit"));
    assert!(recorded_args.windows(2).any(|w| w == ["-lv", "4"]));
    for (name, records) in [
        ("recorded", records.clone()),
        ("reconstructed", without_args(&records)),
    ] {
        let (words, text) = exported(&meta, &records);
        assert_eq!(flag(&words, "-c"), Some("4096"), "{name}: {text}");
        assert_eq!(flag(&words, "-ngl"), Some("0"), "{name}: {text}");
        assert!(!words.iter().any(|w| w == "auto"), "{name}: {text}");
        assert_eq!(flag(&words, "-fa"), Some("on"), "{name}: {text}");
        assert!(text.contains("as the server chose them"), "{name}: {text}");
    }
    let (words, _) = exported(&meta, &records);
    assert_eq!(flag(&words, "--fit"), Some("off"));
    // A server that said nothing (an older journal): the values stay the server's choice, and
    // the header says so; no `-c auto` that llama-server would refuse.
    let (meta, records) = recorded(auto, None);
    let (words, text) = exported(&meta, &without_args(&records));
    assert_eq!(flag(&words, "-c"), None, "{text}");
    assert!(!words.iter().any(|w| w == "auto"), "{text}");
    assert!(text.contains("left to llama-server"), "{text}");
}
