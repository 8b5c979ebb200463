//! Tests of the llamacpp backend as a whole and of the server against fake llama-servers (a
//! Python script that streams, hangs or crashes; a shell script that dies at start).

use super::gguf::tests::gguf_bytes;
use super::server::{LlamaServer, Mode};
use super::*;
use crate::backend::protocol::{InferenceServer, ServerError};
use crate::backend::Backend;
use crate::engine::space::Config;
use crate::engine::space::ParamValue;
use crate::trial::FailureKind;
use std::path::Path;

fn space(text: &str) -> SearchSpace {
    let study = format!("[study]\nname = \"t\"\n[backend]\nkind = \"llamacpp\"\n{text}");
    crate::study::parse_study(Path::new("t.toml"), &study)
        .unwrap()
        .space
}

#[tokio::test]
async fn missing_binary_is_fatal_with_setup_hint() {
    let mut b = LlamaCppBackend::new(
        "/nonexistent/llama-server",
        "/nonexistent/m.gguf",
        None,
        Duration::from_secs(5),
        vec![],
        Protocol::default(),
        vec![],
    )
    .unwrap();
    let mut s = space("[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n");
    match b.prepare(&mut s).await {
        Err(BackendError::Fatal(crate::backend::Fatal { message, hint })) => {
            assert!(message.contains("/nonexistent/llama-server"), "{message}");
            assert!(hint.contains("setup-llamacpp.sh"), "{hint}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let e = LlamaCppBackend::new(
        "",
        "",
        None,
        Duration::from_secs(5),
        vec!["-c".into(), "9".into()],
        Protocol::default(),
        vec![],
    );
    assert!(matches!(e, Err(BackendError::Fatal { .. })));
}

/// A fake llama-server in Python: /health says ok; /completion streams, hangs or crashes
/// depending on `--fake-mode`.
const FAKE_SERVER: &str = r#"#!/usr/bin/env python3
import http.server, os, sys, time
a = sys.argv
port, mode = int(a[a.index("--port") + 1]), a[a.index("--fake-mode") + 1]
def arg(flag, default):
    return int(a[a.index(flag) + 1]) if flag in a else default
ctx, b = arg("-c", 32768), arg("-b", 2048)
ub = min(arg("-ub", 512), b)
if "-lv" in a:
    # What llama-server logs at trace verbosity about what it chose.
    for line in ["llama_context: n_ctx                 = %d" % ctx,
                 "llama_context: n_ctx_seq             = %d" % ctx,
                 "llama_context: n_batch               = %d" % b,
                 "llama_context: n_ubatch              = %d" % ub,
                 "llama_context: flash_attn            = auto",
                 "resolve_fused_ops: Flash Attention enabled"]:
        sys.stderr.write("0.01.000.000 I " + line + "\n")
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_GET(self):
        if self.path == "/props":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(('{"default_generation_settings":{"n_ctx":%d},"total_slots":1}' % ctx).encode())
            return
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if mode == "crash":
            sys.stderr.write("GGML_ASSERT(fake) failed\n"); sys.stderr.flush(); os._exit(134)
        if mode == "hang":
            time.sleep(3600)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'data: {"content":"hi","stop":false}\n\n')
        self.wfile.flush()
        time.sleep(0.09)
        self.wfile.write(b': ping\n\ndata: {"content":"","stop":true,"timings":{"cache_n":0,"prompt_n":3,"prompt_ms":10,"prompt_per_second":300,"predicted_n":4,"predicted_ms":80,"predicted_per_second":50}}\n\n')
sys.stderr.write("fake llama-server on %d\n" % port); sys.stderr.flush()
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

fn fake_server(dir: &Path, mode: &str, timeout: Duration) -> Option<LlamaServer> {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: python3 is needed for the fake llama-server");
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("llama-server");
    std::fs::write(&bin, FAKE_SERVER).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let model = dir.join("m.gguf");
    std::fs::write(&model, gguf_bytes()).unwrap();
    Some(LlamaServer::new(
        Mode::Managed {
            binary: bin,
            model,
            startup_timeout: Duration::from_secs(30),
            extra_args: vec!["--fake-mode".into(), mode.into()],
        },
        timeout,
        vec![],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_sample_from_a_fake_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut s) = fake_server(dir.path(), "ok", Duration::from_secs(20)) else {
        return;
    };
    let r = s.load(&Config::new()).await.unwrap();
    assert!(r.seconds > 0.0);
    let sample = s.generate(&Config::new(), "hello", 4).await.unwrap();
    assert_eq!(sample["decode_tps"], 50.0);
    assert_eq!(sample["prefill_tps"], 300.0);
    assert!(
        sample["ttft"] > 0.0 && sample["e2e"] >= sample["ttft"],
        "{sample:?}"
    );
    s.stop().await;
    assert!(s.child().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_restarts_the_server_and_a_second_one_fails_the_trial() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut s) = fake_server(dir.path(), "hang", Duration::from_millis(1500)) else {
        return;
    };
    let c = Config::from([("temperature".to_string(), ParamValue::Float(0.5))]);
    s.load(&c).await.unwrap();
    match s.generate(&c, "x", 4).await {
        Err(ServerError::Transient(m)) => assert!(m.contains("request_timeout"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(s.child().is_none(), "the hung server is killed");
    assert_eq!(s.restarts_after_hang, 1);
    s.load(&c).await.unwrap();
    match s.generate(&c, "x", 4).await {
        Err(ServerError::Config(FailureKind::Timeout, m)) => {
            assert!(m.contains("2 hangs"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(s.child().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_request_is_a_crashed_trial_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut s) = fake_server(dir.path(), "crash", Duration::from_secs(20)) else {
        return;
    };
    s.load(&Config::new()).await.unwrap();
    match s.generate(&Config::new(), "x", 4).await {
        Err(ServerError::Config(FailureKind::Crashed, m)) => {
            assert!(m.contains("GGML_ASSERT(fake) failed"), "{m}");
            assert!(m.contains("134"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.crashes, 1);
    assert!(s.child().is_none());
}

/// A fake llama-server (a shell script) that dies before it is ready: a load failure with
/// the tail of its stderr, and no child left behind.
#[tokio::test]
async fn server_that_exits_at_start_is_a_load_failure() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("llama-server");
    std::fs::write(
            &bin,
            "#!/bin/sh\necho 'llama_init_from_model: quantized V cache requires flash_attn to be enabled' >&2\necho 'srv  llama_server: exiting due to model loading error' >&2\nexit 1\n",
        )
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let model = dir.path().join("m.gguf");
    std::fs::write(&model, gguf_bytes()).unwrap();
    let mut server = LlamaServer::new(
        Mode::Managed {
            binary: bin,
            model,
            startup_timeout: Duration::from_secs(20),
            extra_args: vec![],
        },
        Duration::from_secs(5),
        vec![],
    );
    match server.load(&Config::new()).await {
        Err(ServerError::Config(kind, msg)) => {
            assert_eq!(kind, FailureKind::LoadFailed);
            assert!(
                msg.contains("quantized V cache requires flash_attn"),
                "{msg}"
            );
            assert!(msg.contains("exit status: 1"), "{msg}");
        }
        other => panic!("{:?}", other.map(|r| r.seconds)),
    }
    assert!(server.child().is_none());
    assert!(matches!(
        server.generate(&Config::new(), "x", 4).await,
        Err(ServerError::Transient(_))
    ));
}

/// A trial measured on the server an earlier trial started (same load options, no restart)
/// records the same arguments as that trial: the export of either reproduces its server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trial_records_the_arguments_of_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = fake_server(dir.path(), "ok", Duration::from_secs(20)) else {
        return;
    };
    let Mode::Managed { binary, model, .. } = s.mode.clone() else {
        unreachable!()
    };
    let protocol = Protocol {
        repeats: 1,
        warmup: 0,
        ..Protocol::default()
    };
    let mut b = LlamaCppBackend::new(
        &binary.display().to_string(),
        &model.display().to_string(),
        None,
        Duration::from_secs(30),
        vec!["--fake-mode".into(), "ok".into()],
        protocol,
        llamaserver::LOAD_OPTION_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
    .unwrap();
    let first = Config::from([
        ("ctx_size".to_string(), ParamValue::Int(1024)),
        ("temperature".to_string(), ParamValue::Float(0.5)),
    ]);
    let mut second = first.clone();
    second.insert("temperature".into(), ParamValue::Float(0.9));
    let e1 = b.evaluate(&first).await.unwrap();
    let e2 = b.evaluate(&second).await.unwrap();
    assert!(
        e1.failure.is_none() && e2.failure.is_none(),
        "{e1:?} {e2:?}"
    );
    assert!(e1.load.as_ref().unwrap().reloaded);
    assert!(
        !e2.load.as_ref().unwrap().reloaded,
        "same load options: no restart"
    );
    let args = e1.notes[ARGS_NOTE].as_array().unwrap().clone();
    assert_eq!(e2.notes[ARGS_NOTE], serde_json::Value::Array(args.clone()));
    let words: Vec<&str> = args.iter().filter_map(|a| a.as_str()).collect();
    assert_eq!(words[0], "-m");
    assert!(words.windows(2).any(|w| w == ["-c", "1024"]), "{words:?}");
    assert!(
        words.ends_with(&["--no-warmup", "--fake-mode", "ok"]),
        "{words:?}"
    );
    b.shutdown().await;
}

/// A trial that leaves values to the server, or asks for one it cannot run, records what the
/// server ran (`Evaluation::effective`) and what it chose (`server_chose`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_server_chose_is_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = fake_server(dir.path(), "ok", Duration::from_secs(20)) else {
        return;
    };
    let Mode::Managed { binary, model, .. } = s.mode.clone() else {
        unreachable!()
    };
    let protocol = Protocol {
        repeats: 1,
        warmup: 0,
        ..Protocol::default()
    };
    let mut b = LlamaCppBackend::new(
        &binary.display().to_string(),
        &model.display().to_string(),
        None,
        Duration::from_secs(30),
        vec!["--fake-mode".into(), "ok".into()],
        protocol,
        llamaserver::LOAD_OPTION_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
    .unwrap();
    let asked = Config::from([
        ("ctx_size".to_string(), ParamValue::auto()),
        ("batch_size".to_string(), ParamValue::Int(8)),
        ("ubatch_size".to_string(), ParamValue::Int(8192)),
        ("flash_attn".to_string(), ParamValue::auto()),
        ("temperature".to_string(), ParamValue::Float(0.5)),
    ]);
    let e = b.evaluate(&asked).await.unwrap();
    assert!(e.failure.is_none(), "{e:?}");
    let words: Vec<String> = serde_json::from_value(e.notes[ARGS_NOTE].clone()).unwrap();
    assert!(
        !words
            .iter()
            .any(|w| w == "-c" || w == "-fa" || w == "--fit"),
        "{words:?}"
    );
    assert!(words.windows(2).any(|w| w == ["-ub", "8"]), "{words:?}");
    let eff = e
        .effective
        .expect("the server ran something else than asked");
    assert_eq!(
        eff["ctx_size"],
        ParamValue::Int(32768),
        "the trained context"
    );
    assert_eq!(eff["ubatch_size"], ParamValue::Int(8), "clamped to -b 8");
    assert_eq!(eff["batch_size"], ParamValue::Int(8));
    assert_eq!(eff["flash_attn"], ParamValue::Str("on".into()));
    assert_eq!(eff["temperature"], ParamValue::Float(0.5));
    assert_eq!(e.notes["server_chose"]["ctx_size"], 32768);
    assert_eq!(e.notes["server_chose"]["flash_attn"], "on");
    assert_eq!(e.notes["ubatch_size_clamped"]["used"], 8);
    // Every value explicit and possible: it ran as asked.
    let exact = Config::from([
        ("ctx_size".to_string(), ParamValue::Int(1024)),
        ("flash_attn".to_string(), ParamValue::Bool(true)),
    ]);
    let e = b.evaluate(&exact).await.unwrap();
    assert_eq!(e.effective, None, "{:?}", e.notes);
    b.shutdown().await;
}
