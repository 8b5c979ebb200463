//! The Ollama simulator over real HTTP: field names, units, streaming, errors and faults.

use futures_util::StreamExt;
use ollama_tuner::sim::{self, SimConfig, SimServer, StreamFault, BUSY_MESSAGE};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn start_with(time_scale: f64) -> SimServer {
    let config = SimConfig {
        profile: "gemma3-4b".into(),
        seed: 42,
        time_scale,
    };
    sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

async fn start() -> SimServer {
    start_with(0.001).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(s: &SimServer, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", s.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(s: &SimServer, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}{path}", s.url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Lines of an NDJSON body, and the transport error that ended it early, if any.
async fn lines(resp: reqwest::Response) -> (Vec<String>, Option<String>) {
    let mut buf = Vec::new();
    let mut err = None;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => buf.extend_from_slice(&b),
            Err(e) => {
                err = Some(e.to_string());
                break;
            }
        }
    }
    let text = String::from_utf8(buf).unwrap();
    let lines = text.lines().map(str::to_string).collect();
    (lines, err)
}

async fn stream(s: &SimServer, body: Value) -> (u16, Vec<String>, Option<String>) {
    let r = client()
        .post(format!("{}/api/generate", s.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let (l, e) = lines(r).await;
    (status, l, e)
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("line {line:?}: {e}"))
}

#[tokio::test]
async fn version_tags_and_show() {
    let s = start().await;
    let (st, v) = get(&s, "/api/version").await;
    assert_eq!(st, 200);
    assert_eq!(v, json!({"version": "0.33.0-sim"}));

    let (_, tags) = get(&s, "/api/tags").await;
    let m = &tags["models"][0];
    assert_eq!(m["name"], "gemma3:4b");
    assert_eq!(m["model"], "gemma3:4b");
    assert!(m["size"].as_u64().unwrap() > 3_000_000_000);
    assert_eq!(m["digest"].as_str().unwrap().len(), 64);
    assert!(m["modified_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["details"]["family"], "gemma3");
    assert_eq!(m["details"]["families"], json!(["gemma3"]));
    assert_eq!(m["details"]["parameter_size"], "4.3B");
    assert_eq!(m["details"]["quantization_level"], "Q4_K_M");

    let (st, show) = post(&s, "/api/show", json!({"model": "gemma3:4b"})).await;
    assert_eq!(st, 200);
    let info = &show["model_info"];
    assert_eq!(info["general.architecture"], "gemma3");
    assert_eq!(info["gemma3.block_count"], 34);
    assert_eq!(info["gemma3.context_length"], 131072);
    assert_eq!(info["general.simulated"], true);
    assert_eq!(show["capabilities"], json!(["completion"]));
    assert!(show["parameters"].as_str().unwrap().contains("top_k"));
    assert!(show["modelfile"].as_str().unwrap().contains("FROM "));
    assert!(show["template"]
        .as_str()
        .unwrap()
        .contains("<start_of_turn>"));

    // The legacy field name, and a name without a tag is `:latest`.
    let (st, _) = post(&s, "/api/show", json!({"name": "GEMMA3:4b"})).await;
    assert_eq!(st, 200);
    let (st, body) = post(&s, "/api/show", json!({"model": "gemma3"})).await;
    assert_eq!(st, 404);
    assert_eq!(body, json!({"error": "model 'gemma3' not found"}));
    let (st, body) = post(&s, "/api/show", json!({})).await;
    assert_eq!(st, 400);
    assert_eq!(body, json!({"error": "model is required"}));
    s.shutdown().await;
}

#[tokio::test]
async fn load_ps_reload_and_unload() {
    let s = start().await;
    let (_, ps) = get(&s, "/api/ps").await;
    assert_eq!(ps, json!({"models": []}));

    // Empty prompt: load only, no metrics.
    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "", "options": {"num_ctx": 8192, "num_gpu": 999}}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["done"], true);
    assert_eq!(v["done_reason"], "load");
    assert!(v.get("eval_count").is_none() && v.get("load_duration").is_none());
    assert_eq!(s.control.stats().loads, 1);

    let (_, ps) = get(&s, "/api/ps").await;
    let m = &ps["models"][0];
    assert_eq!(m["name"], "gemma3:4b");
    assert_eq!(m["context_length"], 8192);
    // At full offload Ollama reports all of it in VRAM (`ollama ps`: 100% GPU).
    assert_eq!(m["size"], m["size_vram"]);
    assert!(m["size"].as_u64().unwrap() > 3 << 30);
    assert!(m["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["details"]["family"], "gemma3");

    // Same runner options (sampling differs): no reload. Different num_ctx: reload.
    let same = json!({"model": "gemma3:4b", "prompt": "", "options": {"num_ctx": 8192, "num_gpu": 999, "temperature": 0.1}});
    post(&s, "/api/generate", same).await;
    assert_eq!(s.control.stats().loads, 1);
    let other =
        json!({"model": "gemma3:4b", "prompt": "", "options": {"num_ctx": 4096, "num_gpu": 999}});
    post(&s, "/api/generate", other).await;
    assert_eq!(s.control.stats().loads, 2);

    // A spilled configuration shows size_vram < size.
    post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "", "options": {"num_ctx": 131072}}),
    )
    .await;
    let (_, ps) = get(&s, "/api/ps").await;
    let m = &ps["models"][0];
    assert!(m["size_vram"].as_u64().unwrap() < m["size"].as_u64().unwrap());
    let loaded = s.control.loaded().unwrap();
    assert!(loaded.expected.gpu_layers < loaded.expected.total_layers);
    assert_eq!(m["context_length"], 131072);

    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "", "keep_alive": 0}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["done_reason"], "unload");
    let (_, ps) = get(&s, "/api/ps").await;
    assert_eq!(ps, json!({"models": []}));
    s.shutdown().await;
}

/// A request that leaves the runner options out gets what Ollama picks: every layer that fits,
/// the context of the VRAM tier (4096 on the 12 GB profiles), shown by /api/ps.
#[tokio::test]
async fn absent_options_are_the_servers_choices() {
    let s = start().await;
    let (st, _) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": ""}),
    )
    .await;
    assert_eq!(st, 200);
    let (_, ps) = get(&s, "/api/ps").await;
    let m = &ps["models"][0];
    assert_eq!(m["context_length"], 4096);
    assert_eq!(m["size"], m["size_vram"], "all 35 layers fit");
    let loaded = s.control.loaded().unwrap();
    assert_eq!(loaded.key.num_batch, 512);
    assert_eq!(loaded.key.num_thread, 8);
    assert_eq!(loaded.expected.gpu_layers, loaded.expected.total_layers);
    // Asking for exactly those values is the same runner: no reload.
    let explicit = json!({"model": "gemma3:4b", "prompt": "",
        "options": {"num_ctx": 4096, "num_batch": 512, "num_thread": 8}});
    post(&s, "/api/generate", explicit).await;
    assert_eq!(s.control.stats().loads, 1);
    s.shutdown().await;
}

#[tokio::test]
async fn streaming_generate_has_ndjson_lines_and_ns_metrics() {
    let s = start().await;
    let (st, lines, err) = stream(
        &s,
        json!({"model": "gemma3:4b", "prompt": "[1] Why is the sky blue?",
               "options": {"num_predict": 16, "num_gpu": 999, "num_ctx": 4096, "temperature": 0.4}}),
    )
    .await;
    assert_eq!(st, 200);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(lines.len(), 17, "16 tokens and the final line");
    for l in &lines[..16] {
        let v = parse(l);
        assert_eq!(v["model"], "gemma3:4b");
        assert_eq!(v["done"], false);
        assert!(!v["response"].as_str().unwrap().is_empty());
        assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(v.get("done_reason").is_none() && v.get("eval_count").is_none());
    }
    let last = parse(&lines[16]);
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "length");
    assert_eq!(last["response"], "");
    assert_eq!(last["eval_count"], 16);
    let ns = |k: &str| last[k].as_f64().unwrap_or_else(|| panic!("{k} in {last}"));
    let decode = ns("eval_count") / ns("eval_duration") * 1e9;
    assert!(decode > 85.0 && decode < 115.0, "decode {decode} tok/s");
    // A cold load: seconds, in nanoseconds.
    assert!(ns("load_duration") > 1.5e9 && ns("load_duration") < 4e9);
    assert_eq!(last["prompt_eval_count"], 15);
    assert!(ns("prompt_eval_duration") > 1e6);
    let parts = ns("load_duration") + ns("prompt_eval_duration") + ns("eval_duration");
    assert!(ns("total_duration") >= parts);

    // Warm second request: load_duration in milliseconds; the nonce defeats the prompt cache.
    let (_, lines, _) = stream(
        &s,
        json!({"model": "gemma3:4b", "prompt": "[2] Why is the sky blue?", "options": {"num_predict": 4, "num_gpu": 999, "num_ctx": 4096}}),
    )
    .await;
    let last = parse(lines.last().unwrap());
    let load = last["load_duration"].as_f64().unwrap();
    assert!(load > 1e6 && load < 1e8, "{load}");
    assert_eq!(s.control.stats().loads, 1);
    s.shutdown().await;
}

#[tokio::test]
async fn wall_clock_ttft_scales_with_time_scale() {
    let s = start_with(0.02).await;
    let started = Instant::now();
    let r = client()
        .post(format!("{}/api/generate", s.url()))
        .json(
            &json!({"model": "gemma3:4b", "prompt": "hello there", "options": {"num_predict": 8}}),
        )
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut first = None;
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        if first.is_none() && !chunk.is_empty() {
            first = Some(started.elapsed());
        }
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).unwrap();
    let last = parse(text.lines().last().unwrap());
    let server_ttft_s = (last["load_duration"].as_f64().unwrap()
        + last["prompt_eval_duration"].as_f64().unwrap())
        / 1e9;
    let wall = first.unwrap().as_secs_f64();
    assert!(
        wall >= server_ttft_s * 0.02 * 0.9,
        "wall TTFT {wall} vs scaled {}",
        server_ttft_s * 0.02
    );
    assert!(wall < server_ttft_s * 0.02 + 0.5);
    s.shutdown().await;
}

#[tokio::test]
async fn non_streaming_generate_is_one_object() {
    let s = start().await;
    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "Why is the sky blue?", "stream": false}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["done"], true);
    assert_eq!(v["done_reason"], "stop");
    assert_eq!(v["eval_count"], 128);
    assert!(v["response"].as_str().unwrap().split_whitespace().count() > 40);
    for k in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(v[k].as_i64().unwrap() > 0, "{k}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn errors_have_ollamas_status_and_body() {
    let s = start().await;
    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "nope", "prompt": "hi"}),
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(v, json!({"error": "model 'nope' not found"}));

    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "hi", "options": {"num_ctx": "big"}}),
    )
    .await;
    assert_eq!(st, 500);
    assert_eq!(
        v,
        json!({"error": "option \"num_ctx\" must be of type integer"})
    );

    // Unknown options are ignored; float integers are truncated.
    let (st, _) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "", "options": {"num_ctx": 2048.9, "bogus": 1}}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(s.control.loaded().unwrap().key.num_ctx, 2048);

    let r = client()
        .post(format!("{}/api/generate", s.url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().is_some());

    let (st, v) = post(&s, "/api/generate", json!({"prompt": "hi"})).await;
    assert_eq!(st, 400);
    assert_eq!(v, json!({"error": "model is required"}));

    // A body over the 2 MiB limit: 413 in Ollama's shape, like every other error.
    let huge = "x".repeat(3 << 20);
    for path in ["/api/generate", "/api/show"] {
        let (st, v) = post(&s, path, json!({"model": "gemma3:4b", "prompt": huge})).await;
        assert_eq!(st, 413, "{path}");
        let message = v["error"].as_str().unwrap_or_default();
        assert!(message.contains("too large"), "{path}: {v}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn out_of_memory_fails_the_load_and_unloads() {
    let s = start().await;
    post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": ""}),
    )
    .await;
    assert!(s.control.loaded().is_some());
    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "hi", "options": {"num_gpu": 999, "num_ctx": 131072}}),
    )
    .await;
    assert_eq!(st, 500);
    assert_eq!(
        v["error"],
        "llama runner process has terminated: cudaMalloc failed: out of memory"
    );
    let (_, ps) = get(&s, "/api/ps").await;
    assert_eq!(ps, json!({"models": []}));

    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "hi", "options": {"num_gpu": 0, "num_ctx": 131072}}),
    )
    .await;
    assert_eq!(st, 500);
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.starts_with("model requires more system memory (") && msg.contains("GiB)"),
        "{msg}"
    );
    assert_eq!(s.control.stats().ooms, 2);
    s.shutdown().await;
}

#[tokio::test]
async fn fault_http_errors_for_the_next_requests() {
    let s = start().await;
    s.control.fail_next(2, 503, BUSY_MESSAGE);
    s.control.fail_next(1, 500, "something broke");
    assert_eq!(s.control.pending_faults(), 3);
    let (st, v) = get(&s, "/api/version").await;
    assert_eq!((st, v), (503, json!({"error": BUSY_MESSAGE})));
    let (st, _) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "x"}),
    )
    .await;
    assert_eq!(st, 503);
    let (st, v) = get(&s, "/api/tags").await;
    assert_eq!((st, v), (500, json!({"error": "something broke"})));
    let (st, _) = get(&s, "/api/version").await;
    assert_eq!(st, 200);
    assert_eq!(s.control.pending_faults(), 0);
    s.shutdown().await;
}

fn gen_body() -> Value {
    json!({"model": "gemma3:4b", "prompt": "Why is the sky blue?", "options": {"num_predict": 10}})
}

#[tokio::test]
async fn fault_error_line_mid_stream_under_200() {
    let s = start().await;
    s.control.inject(StreamFault::ErrorLine {
        after_lines: 3,
        message: "an error was encountered while running the model: unexpected EOF".into(),
    });
    let (st, lines, err) = stream(&s, gen_body()).await;
    assert_eq!(st, 200);
    assert!(err.is_none());
    assert_eq!(lines.len(), 4);
    let v = parse(&lines[3]);
    assert_eq!(
        v,
        json!({"error": "an error was encountered while running the model: unexpected EOF"})
    );
    assert!(lines.iter().all(|l| !l.contains("\"done\":true")));
    // The next request is healthy.
    let (_, lines, err) = stream(&s, gen_body()).await;
    assert!(err.is_none());
    assert_eq!(parse(lines.last().unwrap())["done"], true);
    s.shutdown().await;
}

#[tokio::test]
async fn fault_truncated_stream_closes_before_done() {
    let s = start().await;
    s.control.inject(StreamFault::Truncate { after_lines: 2 });
    let (st, lines, err) = stream(&s, gen_body()).await;
    assert_eq!(st, 200);
    assert!(err.is_some(), "the body must end with a transport error");
    assert!(lines.len() <= 2, "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("\"done\":true")));

    // Past the end: the fault replaces the final line.
    s.control
        .inject(StreamFault::Truncate { after_lines: 1000 });
    let (_, lines, err) = stream(&s, gen_body()).await;
    assert!(err.is_some());
    assert_eq!(lines.len(), 10);
    s.shutdown().await;
}

#[tokio::test]
async fn fault_invalid_json_line() {
    let s = start().await;
    s.control
        .inject(StreamFault::InvalidJson { after_lines: 1 });
    let (st, lines, err) = stream(&s, gen_body()).await;
    assert_eq!(st, 200);
    assert!(err.is_none());
    assert_eq!(lines.len(), 12);
    assert!(serde_json::from_str::<Value>(&lines[1]).is_err());
    assert_eq!(parse(&lines[11])["done"], true);

    // Non-streaming: the single body is not valid JSON.
    s.control
        .inject(StreamFault::InvalidJson { after_lines: 0 });
    let mut body = gen_body();
    body["stream"] = json!(false);
    let r = client()
        .post(format!("{}/api/generate", s.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.json::<Value>().await.is_err());
    s.shutdown().await;
}

#[tokio::test]
async fn fault_listener_down_and_up() {
    let s = start().await;
    post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": ""}),
    )
    .await;
    assert!(s.control.loaded().is_some());

    s.control.stop_listener().await;
    assert!(!s.control.is_listening().await);
    let refused = client()
        .get(format!("{}/api/version", s.url()))
        .send()
        .await;
    assert!(refused.is_err(), "connection must be refused");
    assert!(s.control.loaded().is_none(), "a restart forgets the model");

    s.control.restart_listener().await.unwrap();
    let (st, _) = get(&s, "/api/version").await;
    assert_eq!(st, 200);
    let (_, ps) = get(&s, "/api/ps").await;
    assert_eq!(ps, json!({"models": []}));
    s.shutdown().await;
}

#[tokio::test]
async fn going_down_cuts_a_stream_in_flight() {
    let s = start_with(0.05).await;
    let url = s.url();
    let req = tokio::spawn(async move {
        let r = client()
            .post(format!("{url}/api/generate"))
            .json(&json!({"model": "gemma3:4b", "prompt": "hi", "options": {"num_predict": 2000}}))
            .send()
            .await;
        match r {
            Ok(r) => lines(r).await,
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.control.stop_listener().await;
    let (lines, err) = req.await.unwrap();
    assert!(err.is_some(), "stream must be cut");
    assert!(lines.iter().all(|l| !l.contains("\"done\":true")));
    s.shutdown().await;
}

#[tokio::test]
async fn same_seed_same_numbers() {
    async fn run() -> Vec<i64> {
        let s = start().await;
        let mut out = Vec::new();
        for i in 0..3 {
            let (_, v) = post(
                &s,
                "/api/generate",
                json!({"model": "gemma3:4b", "prompt": format!("[{i}] hi"), "stream": false, "options": {"num_predict": 5}}),
            )
            .await;
            out.push(v["eval_duration"].as_i64().unwrap());
            out.push(v["prompt_eval_duration"].as_i64().unwrap());
        }
        s.shutdown().await;
        out
    }
    assert_eq!(run().await, run().await);
}

#[tokio::test]
async fn concurrent_requests_queue_and_the_wait_counts_as_load() {
    let s = start_with(0.01).await;
    let url = s.url();
    let body = json!({"model": "gemma3:4b", "prompt": "hi", "stream": false, "options": {"num_predict": 64}});
    let first = {
        let (url, body) = (url.clone(), body.clone());
        tokio::spawn(async move {
            let r = client()
                .post(format!("{url}/api/generate"))
                .json(&body)
                .send()
                .await;
            r.unwrap().json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, second) = post(&s, "/api/generate", body).await;
    let first = first.await.unwrap();
    let first_load = first["load_duration"].as_f64().unwrap();
    let second_load = second["load_duration"].as_f64().unwrap();
    // The first paid the cold load; the second waited for it and for its answer.
    assert!(first_load > 1.5e9, "{first_load}");
    assert!(second_load > 1e9, "queue wait must count: {second_load}");
    assert_eq!(s.control.stats().loads, 1);
    s.shutdown().await;
}

#[tokio::test]
async fn keep_alive_expires_on_the_wall_clock() {
    let s = start().await;
    let (st, _) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "", "keep_alive": "150ms"}),
    )
    .await;
    assert_eq!(st, 200);
    assert!(s.control.loaded().unwrap().expires_in.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, ps) = get(&s, "/api/ps").await;
    assert_eq!(ps, json!({"models": []}));

    // Negative = forever; a bad duration string is a 400 like Go's parser.
    post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "", "keep_alive": -1}),
    )
    .await;
    assert_eq!(s.control.loaded().unwrap().expires_in, None);
    let (st, v) = post(
        &s,
        "/api/generate",
        json!({"model": "gemma3:4b", "prompt": "", "keep_alive": "-1"}),
    )
    .await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("missing unit"));
    s.shutdown().await;
}
