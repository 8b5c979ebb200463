//! The Ollama backend against the simulator, one test per error class of issue 3: what is the
//! configuration's fault (a failed trial), what is not (transient, retried by the run loop), and
//! what stops the run (fatal).

use ollama_tuner::backend::ollama::OllamaBackend;
use ollama_tuner::backend::{Backend, BackendError, Fatal};
use ollama_tuner::engine::space::{Config, ParamKind, ParamValue, SearchSpace};
use ollama_tuner::sim::{self, SimConfig, SimServer, StreamFault};
use ollama_tuner::study::Protocol;
use ollama_tuner::trial::FailureKind;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn sim() -> SimServer {
    sim::start(
        SimConfig {
            profile: "gemma3-4b".into(),
            seed: 4,
            time_scale: 0.002,
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn protocol() -> Protocol {
    Protocol {
        repeats: 2,
        warmup: 1,
        num_predict: 24,
        request_timeout: Duration::from_secs(10),
        ..Protocol::default()
    }
}

fn backend(url: &str, model: &str) -> OllamaBackend {
    let runner = [
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "use_mmap",
        "num_thread",
    ];
    OllamaBackend::new(
        url,
        model,
        "30m",
        protocol(),
        runner.iter().map(|s| s.to_string()).collect(),
    )
    .unwrap()
}

fn config(num_gpu: i64, num_ctx: i64) -> Config {
    Config::from([
        ("num_gpu".to_string(), ParamValue::Int(num_gpu)),
        ("num_ctx".to_string(), ParamValue::Int(num_ctx)),
        ("temperature".to_string(), ParamValue::Float(0.7)),
    ])
}

fn space() -> SearchSpace {
    let int = |name: &str, low, high, default| ollama_tuner::engine::space::Param {
        name: name.into(),
        kind: ParamKind::Int {
            low,
            high,
            log: false,
            step: 1,
        },
        default: Some(ParamValue::Int(default)),
        role: Default::default(),
        prefer: None,
        memory: Default::default(),
    };
    SearchSpace {
        params: vec![
            int("num_gpu", 0, 999, 999),
            int("num_ctx", 512, 1_000_000, 4096),
        ],
    }
}

#[tokio::test]
async fn prepare_records_facts_and_caps_bounds() {
    let s = sim().await;
    let mut b = backend(&s.url(), "gemma3:4b");
    let mut sp = space();
    let info = b.prepare(&mut sp).await.unwrap();
    assert!(info.simulated);
    assert_eq!(info.server_version.as_deref(), Some(sim::VERSION));
    assert!(info.model_digest.is_some());
    // num_gpu: every value >= block_count+1 (35) is full offload: one point.
    assert!(matches!(sp.params[0].kind, ParamKind::Int { high: 35, .. }));
    assert_eq!(sp.params[0].default, Some(ParamValue::Int(35)));
    // num_ctx: capped at the model's context length.
    assert!(matches!(
        sp.params[1].kind,
        ParamKind::Int { high: 131_072, .. }
    ));
    s.shutdown().await;
}

#[tokio::test]
async fn measures_with_reload_warmup_and_repeats() {
    let s = sim().await;
    let mut b = backend(&s.url(), "gemma3:4b");
    let e = b.evaluate(&config(35, 4096)).await.unwrap();
    assert!(e.failure.is_none());
    assert_eq!(e.samples.len(), 2);
    for x in &e.samples {
        assert!(x["decode_tps"] > 80.0 && x["decode_tps"] < 120.0, "{x:?}");
        assert!(x["ttft"] > 0.0 && x["prefill_tps"] > 0.0, "{x:?}");
    }
    assert!(e.load.as_ref().unwrap().reloaded);
    assert!(e.notes.contains_key("size_vram"), "{:?}", e.notes);
    // Same runner options, other sampling: no reload.
    let mut c = config(35, 4096);
    c.insert("temperature".into(), ParamValue::Float(0.1));
    let e = b.evaluate(&c).await.unwrap();
    assert!(!e.load.unwrap().reloaded);
    assert_eq!(b.counters().reloads, 1);
    s.shutdown().await;
}

#[tokio::test]
async fn out_of_memory_is_a_failed_trial() {
    let s = sim().await;
    let mut b = backend(&s.url(), "gemma3:4b");
    let e = b.evaluate(&config(35, 131_072)).await.unwrap();
    let f = e
        .failure
        .expect("explicit full offload at 128k context does not fit 12 GB");
    assert_eq!(f.kind, FailureKind::OutOfMemory, "{}", f.message);
    assert!(e.samples.is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn unknown_model_is_fatal_with_a_pull_hint() {
    let s = sim().await;
    let mut b = backend(&s.url(), "nosuch:1b");
    match b.prepare(&mut space()).await {
        Err(BackendError::Fatal(Fatal { message, hint })) => {
            assert!(message.contains("not found"), "{message}");
            assert!(hint.contains("ollama pull nosuch:1b"), "{hint}");
        }
        other => panic!("expected fatal, got {other:?}"),
    }
    s.shutdown().await;
}

/// Queues one fault on the simulator.
type Injector = Box<dyn Fn(&SimServer)>;

#[tokio::test]
async fn server_faults_are_transient_never_the_configurations() {
    let s = sim().await;
    let mut b = backend(&s.url(), "gemma3:4b");
    b.evaluate(&config(35, 4096)).await.unwrap();
    let faults: Vec<(&str, Injector)> = vec![
        (
            "503 queue full",
            Box::new(|s: &SimServer| s.control.fail_next(1, 503, sim::BUSY_MESSAGE)),
        ),
        (
            "500 server error",
            Box::new(|s: &SimServer| s.control.fail_next(1, 500, "internal error")),
        ),
        (
            "error line mid-stream",
            Box::new(|s: &SimServer| {
                s.control.inject(StreamFault::ErrorLine {
                    after_lines: 3,
                    message: "an unexpected EOF".into(),
                })
            }),
        ),
        (
            "truncated stream",
            Box::new(|s: &SimServer| s.control.inject(StreamFault::Truncate { after_lines: 3 })),
        ),
        (
            "invalid JSON line",
            Box::new(|s: &SimServer| {
                s.control
                    .inject(StreamFault::InvalidJson { after_lines: 2 })
            }),
        ),
    ];
    for (name, fault) in faults {
        fault(&s);
        match b.evaluate(&config(35, 4096)).await {
            Err(BackendError::Transient(m)) => eprintln!("{name}: transient: {m}"),
            other => panic!("{name}: expected a transient error, got {other:?}"),
        }
        s.control.clear_faults();
        // The next attempt measures normally.
        let e = b.evaluate(&config(35, 4096)).await.unwrap();
        assert!(e.failure.is_none() && e.samples.len() == 2, "{name}: {e:?}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let s = sim().await;
    let url = s.url();
    s.shutdown().await;
    let mut b = backend(&url, "gemma3:4b");
    match b.evaluate(&config(35, 4096)).await {
        Err(BackendError::Transient(m)) => assert!(m.contains("cannot connect"), "{m}"),
        other => panic!("expected transient, got {other:?}"),
    }
}

#[tokio::test]
async fn request_timeout_is_transient() {
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let p = Protocol {
        request_timeout: Duration::from_millis(300),
        ..protocol()
    };
    let mut b = OllamaBackend::new(
        &format!("http://{addr}"),
        "gemma3:4b",
        "30m",
        p,
        vec!["num_ctx".into()],
    )
    .unwrap();
    match b.evaluate(&config(35, 4096)).await {
        Err(BackendError::Transient(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("expected transient, got {other:?}"),
    }
}

/// A fake Ollama that writes down every /api/generate body, answers like Ollama and lists the
/// model in /api/ps with the given `size`, `size_vram` and `context_length`.
async fn recording_server(ps: serde_json::Value) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    use axum::routing::{get, post};
    use axum::Json;
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = bodies.clone();
    let app = axum::Router::new()
        .route(
            "/api/generate",
            post(move |Json(body): Json<serde_json::Value>| {
                let seen = seen.clone();
                async move {
                    let load = body["prompt"] == "";
                    seen.lock().unwrap().push(body);
                    let line = if load {
                        json!({"model": "m", "response": "", "done": true, "done_reason": "load"})
                    } else {
                        json!({"model": "m", "response": "", "done": true, "done_reason": "length",
                               "eval_count": 24, "eval_duration": 24_000_000u64,
                               "prompt_eval_count": 10, "prompt_eval_duration": 1_000_000u64,
                               "total_duration": 30_000_000u64})
                    };
                    format!("{line}\n")
                }
            }),
        )
        .route(
            "/api/ps",
            get(move || {
                let ps = ps.clone();
                async move { Json(json!({"models": [ps]})) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), bodies)
}

#[tokio::test]
async fn auto_options_are_left_out_of_every_request() {
    let ps = json!({"name": "m", "model": "m", "size": 5_000_000_000u64,
                    "size_vram": 5_000_000_000u64, "context_length": 8192});
    let (url, bodies) = recording_server(ps).await;
    let mut b = backend(&url, "m");
    let c = Config::from([
        ("num_gpu".to_string(), ParamValue::auto()),
        ("num_ctx".to_string(), ParamValue::auto()),
        ("num_batch".to_string(), ParamValue::Int(256)),
        ("num_thread".to_string(), ParamValue::auto()),
        ("temperature".to_string(), ParamValue::Float(0.7)),
    ]);
    let e = b.evaluate(&c).await.unwrap();
    assert!(e.failure.is_none(), "{e:?}");
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        1 + 1 + 2,
        "load, warm-up, two measured requests"
    );
    for body in &bodies {
        let o = body["options"].as_object().unwrap();
        for absent in ["num_gpu", "num_ctx", "num_thread"] {
            assert!(!o.contains_key(absent), "{absent} sent: {body}");
        }
        assert_eq!(o["num_batch"], 256);
        assert!((o["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    }
    // /api/ps told the context the server chose: that is the effective num_ctx. The layer
    // count needs the model's block_count (from /api/show in prepare), so it stays auto here.
    let eff = e.effective.expect("auto num_ctx resolved");
    assert_eq!(eff["num_ctx"], ParamValue::Int(8192));
    assert_eq!(eff["num_gpu"], ParamValue::auto());
    assert_eq!(eff["num_thread"], ParamValue::auto());
    assert_eq!(e.notes["server_chose"]["context_length"], 8192);
    assert_eq!(e.notes["vram_fraction"], 1.0);
}

#[tokio::test]
async fn the_simulator_reports_what_it_ran() {
    let s = sim().await;
    let mut b = backend(&s.url(), "gemma3:4b");
    let mut sp = space();
    b.prepare(&mut sp).await.unwrap();
    // Stock: no num_gpu, no num_ctx. The simulator fits every layer and picks 4096.
    let stock = Config::from([
        ("num_gpu".to_string(), ParamValue::auto()),
        ("num_ctx".to_string(), ParamValue::auto()),
        ("temperature".to_string(), ParamValue::Float(0.7)),
    ]);
    let e = b.evaluate(&stock).await.unwrap();
    assert!(e.failure.is_none(), "{e:?}");
    let eff = e.effective.expect("resolved");
    assert_eq!(
        eff["num_gpu"],
        ParamValue::Int(35),
        "all layers: size_vram == size"
    );
    assert_eq!(eff["num_ctx"], ParamValue::Int(4096));
    assert_eq!(e.notes["server_chose"]["context_length"], 4096);
    // 999 layers on a 34-layer model run as 35: one point.
    let e = b.evaluate(&config(999, 4096)).await.unwrap();
    assert_eq!(e.effective.unwrap()["num_gpu"], ParamValue::Int(35));
    // As asked: nothing to record.
    let e = b.evaluate(&config(35, 2048)).await.unwrap();
    assert_eq!(e.effective, None);
    // A spill: the layer count is an estimate from the share of bytes in VRAM.
    let spill = Config::from([
        ("num_gpu".to_string(), ParamValue::auto()),
        ("num_ctx".to_string(), ParamValue::Int(131_072)),
    ]);
    let e = b.evaluate(&spill).await.unwrap();
    let layers = e.effective.unwrap()["num_gpu"].as_i64().unwrap();
    assert!((1..35).contains(&layers), "{layers}");
    assert_eq!(e.notes["server_chose"]["num_gpu_estimated"], true);
    s.shutdown().await;
}
