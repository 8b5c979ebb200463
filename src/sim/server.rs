//! The HTTP side of the simulator: the axum routes speaking Ollama's API subset (`GET /`,
//! `/api/version`, `/api/tags`, `/api/ps`, `POST /api/show`, `/api/generate`) with its status
//! codes and error texts (ollama/ollama:server/routes.go). The runner slot is in `app`, the
//! answers to a generate request in `answer`, the bytes on the wire in `reply`.

use super::answer::{plan_answer, stream_answer, whole_answer};
use super::app::{App, LoadError};
use super::model::Expected;
use super::profiles::Profile;
use super::reply::{aborted, error, json_response, response_json, rfc3339, Metrics};
use super::request::{get_string, parse_object, GenerateRequest, KeepAlive, DEFAULT_KEEP_ALIVE};
use super::VERSION;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/ps", get(ps))
        .route("/api/generate", post(generate))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), count_and_fault))
        .with_state(app)
}

/// The header on every answer with the simulator's time scale: the wall seconds it sleeps for
/// each simulated second it reports, so that a client can
/// check reported durations against its own clock (docs/measurement.md, "Plausibility").
pub const TIME_SCALE_HEADER: &str = "x-simulator-time-scale";

async fn count_and_fault(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    app.shared.stats(|s| s.requests += 1);
    let mut answer = 'answer: {
        if req.uri().path().starts_with("/api/") {
            if let Some(f) = app.shared.pop_http_fault() {
                let status =
                    StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                break 'answer error(status, f.message);
            }
        }
        next.run(req).await
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&app.time_scale.to_string()) {
        answer.headers_mut().insert(TIME_SCALE_HEADER, v);
    }
    answer
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found").into_response()
}

async fn root() -> &'static str {
    "Ollama is running"
}

async fn version() -> Json<Value> {
    Json(json!({ "version": VERSION }))
}

fn details(p: &Profile) -> Value {
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": p.architecture,
        "families": [p.architecture],
        "parameter_size": p.parameter_size,
        "quantization_level": p.quantization_level,
    })
}

async fn tags(State(app): State<Arc<App>>) -> Json<Value> {
    let p = app.profile;
    Json(json!({ "models": [{
        "name": p.model,
        "model": p.model,
        "modified_at": rfc3339(app.modified_at),
        "size": p.file_size,
        "digest": p.digest,
        "details": details(p),
    }]}))
}

async fn ps(State(app): State<Arc<App>>) -> Json<Value> {
    let p = app.profile;
    let Some(r) = app.shared.runner() else {
        return Json(json!({ "models": [] }));
    };
    let expires_at = match r.expires {
        Some(t) if !r.busy => {
            let left = t.saturating_duration_since(Instant::now());
            Utc::now() + TimeDelta::from_std(left).unwrap_or(TimeDelta::zero())
        }
        // Busy runners and keep_alive < 0 never expire (Go shows now + MaxInt64 ns).
        _ => Utc::now() + TimeDelta::days(292 * 365),
    };
    let (size, size_vram) = ps_sizes(&r.expected);
    Json(json!({ "models": [{
        "name": p.model,
        "model": p.model,
        "size": size,
        "digest": p.digest,
        "details": details(p),
        "expires_at": rfc3339(expires_at),
        "size_vram": size_vram,
        "context_length": r.key.num_ctx,
    }]}))
}

/// `size` and `size_vram` as Ollama's /api/ps reports them: equal at full offload (`ollama ps`
/// shows "100% GPU"; the runner's own host memory is not counted then), else the whole
/// footprint and its GPU part.
fn ps_sizes(e: &Expected) -> (u64, u64) {
    if e.full_offload() {
        (e.vram_bytes, e.vram_bytes)
    } else {
        (e.size_bytes, e.vram_bytes)
    }
}

/// The `{"error": ...}` answer to a body that cannot be read: axum refuses bodies
/// over its 2 MiB default limit with a plain-text 413, which no Ollama client expects; the
/// simulator keeps the limit (it bounds its memory; Ollama has none) and answers in Ollama's
/// shape, with the status axum chose.
fn refused(rejection: BytesRejection) -> Response {
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "request body too large: the simulator reads at most {} MiB",
            BODY_LIMIT >> 20
        )
    } else {
        format!("cannot read the request body: {}", rejection.body_text())
    };
    error(status, message)
}

/// axum's default body limit (`DefaultBodyLimit`), which the simulator keeps.
pub(crate) const BODY_LIMIT: usize = 2 << 20;

async fn show(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return refused(rejection),
    };
    let parsed = parse_object(&body, "api.ShowRequest").and_then(|obj| {
        let model = get_string(&obj, "model", "ShowRequest")?;
        let name = get_string(&obj, "name", "ShowRequest")?;
        Ok(if name.is_empty() { model } else { name })
    });
    let model = match parsed {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if model.is_empty() {
        return error(StatusCode::BAD_REQUEST, "model is required");
    }
    if !app.knows(&model) {
        return error(StatusCode::NOT_FOUND, format!("model '{model}' not found"));
    }
    Json(show_body(&app)).into_response()
}

fn show_body(app: &App) -> Value {
    let p = app.profile;
    let a = p.architecture;
    let mut info = Map::new();
    let mut put = |k: String, v: Value| {
        info.insert(k, v);
    };
    put("general.architecture".into(), json!(a));
    put("general.parameter_count".into(), json!(p.parameter_count));
    put("general.file_type".into(), json!(p.file_type));
    put("general.quantization_version".into(), json!(2));
    put("general.simulated".into(), json!(true));
    put("general.simulator_profile".into(), json!(p.name));
    put(
        "general.simulator_machine".into(),
        json!(p.machine.gpu_name),
    );
    put(format!("{a}.block_count"), json!(p.block_count));
    put(format!("{a}.context_length"), json!(p.context_length));
    put(format!("{a}.embedding_length"), json!(p.embedding_length));
    put(
        format!("{a}.feed_forward_length"),
        json!(p.feed_forward_length),
    );
    put(format!("{a}.attention.head_count"), json!(p.head_count));
    put(
        format!("{a}.attention.head_count_kv"),
        json!(p.head_count_kv),
    );
    put(format!("{a}.attention.key_length"), json!(p.head_dim));
    put(format!("{a}.attention.value_length"), json!(p.head_dim));
    put(
        "tokenizer.ggml.model".into(),
        json!(if a == "llama" { "gpt2" } else { "llama" }),
    );
    json!({
        "modelfile": modelfile(p),
        "parameters": parameters_text(p),
        "template": p.template,
        "details": details(p),
        "model_info": info,
        "capabilities": ["completion"],
        "modified_at": rfc3339(app.modified_at),
    })
}

fn parameters_text(p: &Profile) -> String {
    p.parameters
        .iter()
        .map(|(name, value)| format!("{name:<30} {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn modelfile(p: &Profile) -> String {
    let mut s = format!(
        "# Modelfile generated by \"ollama show\" (Ollama simulator)\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\nFROM /simulated/models/blobs/sha256-{}\nTEMPLATE \"\"\"{}\"\"\"\n",
        p.model, p.digest, p.template
    );
    for (name, value) in p.parameters {
        s.push_str(&format!("PARAMETER {name} {value}\n"));
    }
    s
}

async fn generate(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    app.shared.stats(|s| s.generate_requests += 1);
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return refused(rejection),
    };
    let req = match GenerateRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if req.model.is_empty() {
        return error(StatusCode::BAD_REQUEST, "model is required");
    }
    if !app.knows(&req.model) {
        return error(
            StatusCode::NOT_FOUND,
            format!("model '{}' not found", req.model),
        );
    }
    if req.prompt.is_empty() && req.keep_alive == Some(KeepAlive::For(Duration::ZERO)) {
        app.shared.unload();
        return json_response(response_json(&req.model, "", "unload", Metrics::default()));
    }
    let mut opts = app.profile.default_options();
    if let Err(e) = opts.apply(&req.options) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let keep_alive = req.keep_alive.unwrap_or(DEFAULT_KEEP_ALIVE);
    let mut kill = app.shared.kill.subscribe();
    let Ok((slot, wait_s)) = app.acquire(keep_alive, &mut kill).await else {
        return aborted();
    };
    let jitter = app.jitter();
    let (expected, load_s) = match app.ensure_loaded(&opts, wait_s, &jitter, &mut kill).await {
        Ok(loaded) => loaded,
        Err(LoadError::Oom(oom)) => return error(StatusCode::INTERNAL_SERVER_ERROR, oom.message),
        Err(LoadError::Killed) => return aborted(),
    };
    if req.prompt.is_empty() {
        // Ollama's load answer carries no metrics: time it on the client.
        drop(slot);
        return json_response(response_json(&req.model, "", "load", Metrics::default()));
    }
    let plan = plan_answer(&app, &req, &opts, &expected, load_s, &jitter);
    let fault = app.shared.pop_stream_fault();
    if fault.is_some() {
        app.shared.stats(|s| s.faults_fired += 1);
    }
    if req.stream {
        stream_answer(app, plan, fault, slot, kill)
    } else {
        whole_answer(app, plan, fault, slot, kill).await
    }
}
