//! Real-engine tests of the llamacpp backend: a real llama-server running the real Gemma 3 270M.
//!
//! They need `LLAMA_SERVER` and `LLAMA_MODEL` (set by `eval "$(scripts/setup-llamacpp.sh)"`);
//! without them every test prints a "skipped" line and passes. CI runs them through
//! scripts/e2e-llamacpp.sh with `--test-threads=1`; they also serialize themselves (a lock) so a
//! plain `cargo test` does not start several servers on a 2-core machine at once.
//!
//! `check_server_command` is the hook for the export test: give it the argv of an exported
//! llama-server command line and it starts that server on a free port and checks /health and
//! one /completion.

use ollama_tuner::backend::llamacpp::{self, HostDefaults, LlamaCppBackend};
use ollama_tuner::backend::{self, Backend};
use ollama_tuner::engine::space::{Config, ParamValue};
use ollama_tuner::run::{self, RunOptions};
use ollama_tuner::store::{RunDir, StopReason};
use ollama_tuner::study::parse_study;
use ollama_tuner::trial::FailureKind;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// The engine's paths, or None after printing why the test is skipped.
fn engine(test: &str) -> Option<(PathBuf, PathBuf)> {
    let get = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from)
    };
    match (get("LLAMA_SERVER"), get("LLAMA_MODEL")) {
        (Some(s), Some(m)) => Some((s, m)),
        _ => {
            eprintln!(
                "{test}: skipped: set LLAMA_SERVER and LLAMA_MODEL (eval \"$(scripts/setup-llamacpp.sh)\") to run the real-engine tests"
            );
            None
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// llama-server processes that are children of this test process.
fn our_llama_children(server: &Path) -> Vec<u32> {
    let me = std::process::id();
    let want = std::fs::canonicalize(server).unwrap_or_else(|_| server.to_path_buf());
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(me) {
            continue;
        }
        if std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .as_deref()
            == Some(want.as_path())
        {
            found.push(pid);
        }
    }
    found
}

fn port_answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
        .is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A llama-server started by `check_server_command`; killed when dropped.
pub struct StartedServer {
    pub base: String,
    pub port: u16,
    child: tokio::process::Child,
}

impl StartedServer {
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// Split a shell command line into words (single and double quotes, backslash escapes): enough
/// for the command lines the export writes.
pub fn split_command_line(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        _ => cur.push(q),
                    }
                }
            }
            '\\' => {
                // A line continuation is whitespace; any other escaped character is literal.
                match chars.next() {
                    Some('\n') | None => {}
                    Some(n) => {
                        in_word = true;
                        cur.push(n);
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Start the llama-server command `argv` (as an export would print it) on a free port of
/// 127.0.0.1, wait for GET /health = 200 (up to 120 s), and check that one POST /completion
/// answers with generated tokens. `--host`/`--port` in `argv` are replaced; a bare
/// `llama-server` program name is replaced by $LLAMA_SERVER. Returns the running server (drop or
/// `stop()` it), or what went wrong together with the server's output.
pub async fn check_server_command(argv: Vec<String>) -> Result<StartedServer, String> {
    if argv.is_empty() {
        return Err("empty command line".into());
    }
    let mut argv = argv;
    if !Path::new(&argv[0]).is_file() {
        if let Ok(s) = std::env::var("LLAMA_SERVER") {
            argv[0] = s;
        }
    }
    // Drop any --host/--port (and their values), then add ours.
    let mut cleaned: Vec<String> = vec![argv[0].clone()];
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--host" || a == "--port" {
            i += 2;
            continue;
        }
        if a.starts_with("--host=") || a.starts_with("--port=") {
            i += 1;
            continue;
        }
        cleaned.push(a.clone());
        i += 1;
    }
    let port = free_port();
    cleaned.extend([
        "--host".to_string(),
        "127.0.0.1".to_string(),
        "--port".to_string(),
        port.to_string(),
    ]);
    let log = std::env::temp_dir().join(format!("llamacpp-e2e-{}-{port}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(&cleaned[0])
        .args(&cleaned[1..])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cleaned[0]))?;
    let base = format!("http://127.0.0.1:{port}");
    let output = |log: &Path| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{:?} exited ({status}) before /health said ok:\n{}",
                cleaned,
                output(&log)
            ));
        }
        if let Ok(r) = client
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            if r.status() == reqwest::StatusCode::OK {
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.start_kill();
            return Err(format!(
                "{:?}: /health not ok within 120 s:\n{}",
                cleaned,
                output(&log)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = serde_json::json!({"prompt": "The capital of France is", "n_predict": 8, "cache_prompt": false});
    let answer = client
        .post(format!("{base}/completion"))
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| format!("POST /completion failed: {e}\n{}", output(&log)))?;
    let status = answer.status();
    let v: serde_json::Value = answer
        .json()
        .await
        .map_err(|e| format!("/completion answered non-JSON: {e}"))?;
    if !status.is_success()
        || v["timings"]["predicted_n"].as_i64().unwrap_or(0) < 1
        || !v["content"].is_string()
    {
        let _ = child.start_kill();
        return Err(format!("/completion answered HTTP {status}: {v}"));
    }
    let _ = std::fs::remove_file(&log);
    Ok(StartedServer { base, port, child })
}

fn study_text(params: &str, extra_backend: &str, protocol: &str, trials: usize) -> String {
    format!(
        r#"
[study]
name = "llamacpp-e2e"
model = "gemma-3-270m-q4_k_m.gguf"
seed = 3

[backend]
kind = "llamacpp"
startup_timeout = "120s"
{extra_backend}

[budget]
trials = {trials}
max_consecutive_failures = 6

[objective]
metric = "decode_tps"
direction = "maximize"

[protocol]
{protocol}

{params}
"#
    )
}

const PROTOCOL: &str = "repeats = 2\nwarmup = 1\nnum_predict = 32\nrequest_timeout = \"120s\"";

const PARAMS: &str = r#"
[params.threads]
type = "int"
low = 1
high = 2
default = 2

[params.ctx_size]
type = "int"
low = 512
high = 2048
log = true
default = 1024

[params.flash_attn]
type = "bool"
default = true

[params.cache_type_v]
type = "categorical"
choices = ["f16", "q8_0"]
default = "f16"

[params.temperature]
type = "float"
low = 0.0
high = 1.2
default = 0.8
"#;

/// A whole study on the real model through the library's run loop, as the CLI runs it.
#[test]
fn real_study_runs_to_budget() {
    let Some((server, _model)) = engine("real_study_runs_to_budget") else {
        return;
    };
    let _g = serial();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.toml");
    let text = study_text(PARAMS, "", PROTOCOL, 6);
    std::fs::write(&path, &text).unwrap();
    let study = parse_study(&path, &text).unwrap();
    let state = dir.path().join("state");
    let outcome = runtime().block_on(async {
        let backend = backend::create(&study).await.expect("backend");
        let (_tx, rx) = tokio::sync::watch::channel(0u32);
        let opts = RunOptions {
            state_dir: state.clone(),
            run_id: Some("e2e".into()),
            progress: false,
            reports_dir: None,
            ..RunOptions::default()
        };
        run::run(study, &text, &path, opts, backend, rx).await
    });
    let outcome = outcome.unwrap_or_else(|e| panic!("the run failed: {e}"));
    assert_eq!(outcome.stop, StopReason::Budget, "{}", outcome.stop_message);
    assert_eq!(outcome.trials, 6);

    let run = RunDir::open(&state.join("e2e")).unwrap();
    assert!(run.file("trials.jsonl").is_file() && run.file("run.json").is_file());
    let journal = run.read_journal().unwrap();
    assert_eq!(journal.records.len(), 6);
    assert!(journal.skipped.is_empty());
    let meta = run.read_meta().unwrap().expect("run.json");
    assert_eq!(meta.backend.backend, "llamacpp");
    assert!(!meta.backend.simulated);
    assert!(
        meta.backend
            .server_version
            .as_deref()
            .unwrap_or("")
            .contains("llama"),
        "{:?}",
        meta.backend
    );
    assert_eq!(meta.stop_reason, Some(StopReason::Budget));

    let mut ports = Vec::new();
    let mut ok = 0;
    for r in &journal.records {
        if let Some(args) = r.notes.get("llama_server_args").and_then(|a| a.as_array()) {
            let args: Vec<&str> = args.iter().filter_map(|a| a.as_str()).collect();
            assert!(
                args.contains(&"--fit") && args.contains(&"--no-warmup"),
                "{args:?}"
            );
            if let Some(i) = args.iter().position(|a| *a == "--port") {
                ports.push(args[i + 1].parse::<u16>().unwrap());
            }
        }
        if r.is_ok() {
            ok += 1;
            let d = r.metric("decode_tps").expect("decode_tps");
            assert!(d.median > 0.0 && d.min > 0.0, "trial {}: {d:?}", r.trial);
            assert_eq!(r.samples.len(), 2);
            for s in &r.samples {
                assert!(s["decode_tps"] > 0.0 && s["prefill_tps"] > 0.0, "{s:?}");
                assert!(s["ttft"] > 0.0 && s["e2e"] >= s["ttft"], "{s:?}");
                assert_eq!(
                    s["eval_count"], 32.0,
                    "ignore_eos + n_predict fix the length"
                );
                assert_eq!(s["cache_n"], 0.0, "cache_prompt=false");
            }
        } else {
            let e = r.error.as_deref().unwrap_or("");
            assert!(!e.is_empty(), "a failed trial keeps its error");
            eprintln!(
                "trial {} failed ({:?}): {}",
                r.trial,
                r.failure,
                e.lines().next().unwrap_or("")
            );
        }
    }
    assert!(ok >= 1, "no trial succeeded");
    assert!(!ports.is_empty());
    assert!(
        our_llama_children(&server).is_empty(),
        "a llama-server child outlived the run"
    );
    for p in ports {
        assert!(!port_answers(p), "port {p} still answers after the run");
    }
    // The exported llama-server command line of the best configuration starts a server that
    // answers (issue 6, item 4).
    let cmd =
        ollama_tuner::export::export(&run, ollama_tuner::export::ExportFormat::LlamaServer, 1)
            .expect("export llama-server");
    let line: Vec<&str> = cmd
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let argv = split_command_line(&line.join("\n"));
    runtime().block_on(async {
        let started = check_server_command(argv)
            .await
            .unwrap_or_else(|e| panic!("the exported command did not serve: {e}\n{cmd}"));
        started.stop().await;
    });
    eprintln!(
        "real_study_runs_to_budget: 6 trials ({ok} ok), best decode_tps {:.1}, {:.0} s",
        outcome.best.as_ref().map_or(f64::NAN, |b| b.objective),
        t0.elapsed().as_secs_f64()
    );
}

fn config(pairs: &[(&str, ParamValue)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// flash_attn off with a quantized V cache does not start: a failed trial with the server's
/// own words, and the backend recovers for the next configuration.
#[test]
fn infeasible_config_is_a_failed_trial_with_stderr() {
    let Some((server, _model)) = engine("infeasible_config_is_a_failed_trial_with_stderr") else {
        return;
    };
    let _g = serial();
    let t0 = Instant::now();
    let text = study_text(
        PARAMS,
        "",
        "repeats = 1\nwarmup = 0\nnum_predict = 16\nrequest_timeout = \"120s\"",
        2,
    );
    let study = parse_study(Path::new("e2e.toml"), &text).unwrap();
    runtime().block_on(async {
        let mut b = LlamaCppBackend::from_study(&study).unwrap();
        let mut space = study.space.clone();
        let info = b.prepare(&mut space).await.expect("prepare");
        assert_eq!(info.details["gpu_devices"], 0);
        let bad = config(&[
            ("threads", ParamValue::Int(2)),
            ("ctx_size", ParamValue::Int(1024)),
            ("flash_attn", ParamValue::Bool(false)),
            ("cache_type_v", ParamValue::Str("q8_0".into())),
            ("temperature", ParamValue::Float(0.5)),
        ]);
        let e = b
            .evaluate(&bad)
            .await
            .expect("a failed trial, not an error");
        let f = e.failure.expect("the configuration must fail");
        assert_eq!(f.kind, FailureKind::LoadFailed);
        assert!(
            f.message.contains("quantized V cache requires flash_attn"),
            "{}",
            f.message
        );
        assert!(e.samples.is_empty());
        assert!(b.server().child().is_none());

        let mut good = bad.clone();
        good.insert("flash_attn".into(), ParamValue::Bool(true));
        let e = b.evaluate(&good).await.expect("evaluate");
        assert!(e.failure.is_none(), "{:?}", e.failure);
        assert_eq!(e.samples.len(), 1);
        assert!(e.samples[0]["decode_tps"] > 0.0);
        let args = e.notes["llama_server_args"].as_array().unwrap();
        let joined: Vec<&str> = args.iter().filter_map(|a| a.as_str()).collect();
        assert!(
            joined.join(" ").contains("-fa on -ctk f16 -ctv q8_0"),
            "{joined:?}"
        );
        let (port, _) = b.server().child().expect("a running child");
        b.shutdown().await;
        b.shutdown().await; // twice is fine
        assert!(!port_answers(port));
    });
    assert!(our_llama_children(&server).is_empty());
    eprintln!(
        "infeasible_config_is_a_failed_trial_with_stderr: {:.0} s",
        t0.elapsed().as_secs_f64()
    );
}

/// The helper for the export test, on the command line the backend itself builds; then attach
/// mode against that server (sampling options only).
#[test]
fn command_line_helper_and_attach_mode() {
    let Some((server, model)) = engine("command_line_helper_and_attach_mode") else {
        return;
    };
    let _g = serial();
    let t0 = Instant::now();
    let cfg = config(&[
        ("ctx_size", ParamValue::Int(1024)),
        ("threads", ParamValue::Int(2)),
    ]);
    let host = HostDefaults {
        threads: 2,
        n_gpu_layers: 0,
    };
    let argv = llamacpp::command_line(&server, &model, "0.0.0.0", 8080, &cfg, &host, &[])
        .unwrap()
        .args;
    // Round trip through the text form an export would print.
    let quoted: Vec<String> = argv.iter().map(|a| format!("'{a}'")).collect();
    assert_eq!(split_command_line(&quoted.join(" \\\n  ")), argv);

    runtime().block_on(async {
        let started = check_server_command(argv)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        // Attach mode: a running server, sampling options only.
        let attach = format!("attach = \"{}\"", started.base);
        let params =
            "[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\ndefault = 0.7\n";
        let text = study_text(
            params,
            &attach,
            "repeats = 2\nwarmup = 1\nnum_predict = 16\nrequest_timeout = \"120s\"",
            1,
        );
        let study = parse_study(Path::new("attach.toml"), &text).unwrap();
        let mut b = LlamaCppBackend::from_study(&study).unwrap();
        let mut space = study.space.clone();
        let info = b.prepare(&mut space).await.expect("prepare attach");
        assert_eq!(info.details["attach"], started.base.as_str());
        let e = b
            .evaluate(&config(&[("temperature", ParamValue::Float(0.3))]))
            .await
            .unwrap();
        assert!(e.failure.is_none(), "{:?}", e.failure);
        assert_eq!(e.samples.len(), 2);
        assert!(e.samples.iter().all(|s| s["decode_tps"] > 0.0));
        b.shutdown().await;
        assert!(
            port_answers(started.port),
            "attach mode must not stop a server it did not start"
        );

        // Tuning a load-time option in attach mode is refused by the study's validation
        // (`validate` rejects what the backend would, issue 14), located and naming the option.
        let text = study_text(PARAMS, &attach, PROTOCOL, 1);
        match parse_study(Path::new("attach.toml"), &text) {
            Err(e) => {
                assert!(e.message.contains("threads"), "{e}");
                assert!(e.line >= 1, "{e}");
            }
            Ok(_) => panic!("attach mode with load options must be refused"),
        }
        started.stop().await;
    });
    assert!(our_llama_children(&server).is_empty());
    eprintln!(
        "command_line_helper_and_attach_mode: {:.0} s",
        t0.elapsed().as_secs_f64()
    );
}
