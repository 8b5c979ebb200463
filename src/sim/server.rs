//! The HTTP side of the simulator: axum routes speaking Ollama's API subset with its field
//! names, units (durations in nanoseconds, zero metrics omitted), NDJSON streaming, status
//! codes and `{"error": ...}` bodies (ollama server/routes.go, api/types.go).
//!
//! One runner, one request at a time (OLLAMA_NUM_PARALLEL=1): a request waits for the previous
//! one and the wait counts in its load_duration, as in Ollama. Sleeps are the simulated seconds
//! times `time_scale`; reported durations are always the simulated ones. keep_alive expiry is
//! wall-clock and not scaled, so a tuner's think time between requests does not unload.

use super::control::{LoadedRunner, Running, Shared, StreamFault};
use super::model::{draw_jitter, Expected, Jitter, RunnerKey, SimModel, SimOom};
use super::options::SimOptions;
use super::profiles::Profile;
use super::request::{
    answer_length, count_prompt, get_string, parse_object, GenerateRequest, KeepAlive,
    DEFAULT_KEEP_ALIVE,
};
use super::text::TextGen;
use super::VERSION;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, OwnedMutexGuard};

/// Wall-clock pause before cutting a connection, so lines already sent get flushed.
const CUT_FLUSH_GRACE: Duration = Duration::from_millis(25);
/// Detokenizing and writing the final answer, in simulated seconds.
const RESPONSE_OVERHEAD_S: f64 = 0.0003;

/// Server state shared by all handlers.
pub(crate) struct App {
    pub profile: &'static Profile,
    pub time_scale: f64,
    rng: Mutex<ChaCha8Rng>,
    /// The single runner slot: held for the whole of a generate request.
    queue: Arc<tokio::sync::Mutex<()>>,
    pub shared: Arc<Shared>,
    modified_at: DateTime<Utc>,
}

impl App {
    pub fn new(profile: &'static Profile, seed: u64, time_scale: f64) -> Arc<App> {
        Arc::new(App {
            profile,
            time_scale,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            queue: Arc::new(tokio::sync::Mutex::new(())),
            shared: Shared::new(),
            modified_at: Utc::now() - TimeDelta::days(3),
        })
    }

    /// Wall-clock duration of `sim_s` simulated seconds.
    fn wall(&self, sim_s: f64) -> Duration {
        let w = sim_s * self.time_scale;
        if w > 0.0 {
            Duration::from_secs_f64(w.min(1e7))
        } else {
            Duration::ZERO
        }
    }

    /// Simulated seconds of a wall-clock duration.
    fn simulated(&self, wall: Duration) -> f64 {
        if self.time_scale > 0.0 {
            wall.as_secs_f64() / self.time_scale
        } else {
            0.0
        }
    }

    fn jitter(&self) -> Jitter {
        draw_jitter(&mut *self.rng.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn text_gen(&self) -> TextGen {
        let seed = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random::<u64>();
        TextGen::new(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Whether `name` is the simulated model (case-insensitive, `:latest` implied).
    fn knows(&self, name: &str) -> bool {
        normalize_model(name) == normalize_model(self.profile.model)
    }

    async fn sleep(&self, sim_s: f64, kill: &mut watch::Receiver<u64>) -> Result<(), Killed> {
        sleep_until(tokio::time::Instant::now() + self.wall(sim_s), kill).await
    }

    /// Wait for the runner slot; returns it and the simulated seconds waited.
    async fn acquire(
        self: &Arc<Self>,
        keep_alive: KeepAlive,
        kill: &mut watch::Receiver<u64>,
    ) -> Result<(Slot, f64), Killed> {
        let (queue, wait_s) = match self.queue.clone().try_lock_owned() {
            Ok(queue) => (queue, 0.0),
            Err(_) => {
                let start = Instant::now();
                tokio::select! {
                    queue = self.queue.clone().lock_owned() => (queue, self.simulated(start.elapsed())),
                    _ = kill.changed() => return Err(Killed),
                }
            }
        };
        let slot = Slot {
            app: self.clone(),
            keep_alive,
            _queue: queue,
        };
        Ok((slot, wait_s))
    }

    /// Make sure a runner with `opts`' runner options is loaded (reloading if they differ),
    /// sleeping the load time. Returns the expected performance for `opts` and load_duration.
    async fn ensure_loaded(
        &self,
        opts: &SimOptions,
        wait_s: f64,
        jitter: &Jitter,
        kill: &mut watch::Receiver<u64>,
    ) -> Result<(Expected, f64), LoadError> {
        let p = self.profile;
        let key = RunnerKey::new(p, opts);
        let current = self.shared.runner();
        if let Some(runner) = current.as_ref().filter(|r| !r.key.needs_reload(&key)) {
            self.shared.update_runner(|r| r.busy = true);
            let warm = p.warm_load_s * jitter.load;
            self.sleep(warm, kill).await?;
            let expected = SimModel::expected(p, &runner.key.apply_to(opts))?;
            return Ok((expected, wait_s + warm));
        }
        if current.is_some() {
            tracing::info!("simulator: runner options changed, unloading before reload");
            self.shared.unload();
        }
        match SimModel::expected(p, opts) {
            Err(oom) => {
                self.sleep(oom.after_s * jitter.load, kill).await?;
                self.shared.stats(|s| s.ooms += 1);
                tracing::info!("simulator: load failed: {}", oom.message);
                Err(LoadError::Oom(oom))
            }
            Ok(expected) => {
                let load = expected.load_s * jitter.load;
                self.sleep(load, kill).await?;
                tracing::info!(
                    "simulator: loaded {} with {:?}: {}/{} layers on GPU, {:.1} tok/s expected",
                    p.model,
                    key,
                    expected.gpu_layers,
                    expected.total_layers,
                    expected.decode_tps
                );
                self.shared.set_runner(LoadedRunner {
                    key,
                    expected: expected.clone(),
                    expires: None,
                    busy: true,
                    last_prompt: None,
                });
                self.shared.stats(|s| {
                    s.loads += 1;
                    s.load_seconds += load;
                });
                Ok((expected, wait_s + load))
            }
        }
    }

    /// After a request: start the keep-alive clock, or unload for keep_alive 0.
    fn finish(&self, keep_alive: KeepAlive) {
        match keep_alive {
            KeepAlive::For(d) if d.is_zero() => self.shared.unload(),
            KeepAlive::For(d) => self.shared.update_runner(|r| {
                r.busy = false;
                r.expires = Instant::now().checked_add(d);
            }),
            KeepAlive::Forever => self.shared.update_runner(|r| {
                r.busy = false;
                r.expires = None;
            }),
        }
    }
}

/// The runner slot of one generate request. Dropping it (answer finished, client gone, load
/// failed or server down) starts the keep-alive clock, like Ollama releasing its runner
/// reference, and then lets the next request in.
struct Slot {
    app: Arc<App>,
    keep_alive: KeepAlive,
    _queue: OwnedMutexGuard<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.app.finish(self.keep_alive);
    }
}

/// The server went down while the request was in flight.
#[derive(Debug)]
struct Killed;

enum LoadError {
    Oom(SimOom),
    Killed,
}

impl From<Killed> for LoadError {
    fn from(_: Killed) -> Self {
        LoadError::Killed
    }
}

impl From<SimOom> for LoadError {
    fn from(oom: SimOom) -> Self {
        LoadError::Oom(oom)
    }
}

async fn sleep_until(
    at: tokio::time::Instant,
    kill: &mut watch::Receiver<u64>,
) -> Result<(), Killed> {
    tokio::select! {
        _ = tokio::time::sleep_until(at) => Ok(()),
        _ = kill.changed() => Err(Killed),
    }
}

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

/// Serve `router` on `listener` in a task until `Running::stop` fires.
pub(crate) fn spawn_serve(listener: tokio::net::TcpListener, router: Router) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("simulator: server error: {e}");
        }
    });
    Running { stop, task }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A response whose connection is cut right after the headers (the server died).
fn aborted() -> Response {
    let body = Body::from_stream(futures_util::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::other("simulated server went down"))
    }));
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

async fn count_and_fault(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    app.shared.stats(|s| s.requests += 1);
    if req.uri().path().starts_with("/api/") {
        if let Some(f) = app.shared.pop_http_fault() {
            let status =
                StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, f.message);
        }
    }
    next.run(req).await
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

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
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
    Json(json!({ "models": [{
        "name": p.model,
        "model": p.model,
        "size": r.expected.size_bytes,
        "digest": p.digest,
        "details": details(p),
        "expires_at": rfc3339(expires_at),
        "size_vram": r.expected.vram_bytes,
        "context_length": r.key.num_ctx,
    }]}))
}

async fn show(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let parsed = parse_object(&body, "api.ShowRequest").and_then(|obj| {
        let model = get_string(&obj, "model", "ShowRequest")?;
        let name = get_string(&obj, "name", "ShowRequest")?;
        Ok(if name.is_empty() { model } else { name })
    });
    let model = match parsed {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
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

fn normalize_model(name: &str) -> String {
    let n = name.trim().to_lowercase();
    let last = n.rsplit('/').next().unwrap_or(&n);
    if last.contains(':') {
        n
    } else {
        format!("{n}:latest")
    }
}

/// Everything about one answer, decided before the first byte is sent.
struct Plan {
    model: String,
    done_reason: &'static str,
    /// Simulated seconds.
    load_s: f64,
    prefill_s: f64,
    token_s: f64,
    prompt_count: u32,
    eval_count: u32,
}

impl Plan {
    fn generation_s(&self) -> f64 {
        self.prefill_s + self.eval_count as f64 * self.token_s
    }

    fn metrics(&self) -> Metrics {
        let ns = |s: f64| (s * 1e9).round() as i64;
        let eval_s = self.eval_count as f64 * self.token_s;
        Metrics {
            total_duration: ns(self.load_s + self.generation_s() + RESPONSE_OVERHEAD_S),
            load_duration: ns(self.load_s),
            prompt_eval_count: self.prompt_count as i64,
            prompt_eval_duration: ns(self.prefill_s),
            eval_count: self.eval_count as i64,
            eval_duration: ns(eval_s),
        }
    }
}

fn is_zero(x: &i64) -> bool {
    *x == 0
}

/// api.Metrics: durations in nanoseconds, zero fields omitted (Go's omitempty).
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Metrics {
    #[serde(skip_serializing_if = "is_zero")]
    total_duration: i64,
    #[serde(skip_serializing_if = "is_zero")]
    load_duration: i64,
    #[serde(skip_serializing_if = "is_zero")]
    prompt_eval_count: i64,
    #[serde(skip_serializing_if = "is_zero")]
    prompt_eval_duration: i64,
    #[serde(skip_serializing_if = "is_zero")]
    eval_count: i64,
    #[serde(skip_serializing_if = "is_zero")]
    eval_duration: i64,
}

/// api.GenerateResponse (context omitted).
#[derive(Serialize)]
struct GenerateResponse<'a> {
    model: &'a str,
    created_at: String,
    response: &'a str,
    done: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    done_reason: &'a str,
    #[serde(flatten)]
    metrics: Metrics,
}

fn response_json(model: &str, response: &str, done_reason: &str, metrics: Metrics) -> Vec<u8> {
    let r = GenerateResponse {
        model,
        created_at: rfc3339(Utc::now()),
        response,
        done: !done_reason.is_empty(),
        done_reason,
        metrics,
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn generate(State(app): State<Arc<App>>, body: Bytes) -> Response {
    app.shared.stats(|s| s.generate_requests += 1);
    let req = match GenerateRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
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
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
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

fn plan_answer(
    app: &App,
    req: &GenerateRequest,
    opts: &SimOptions,
    expected: &Expected,
    load_s: f64,
    jitter: &Jitter,
) -> Plan {
    let previous = app.shared.runner().and_then(|r| r.last_prompt);
    let count = count_prompt(app.profile, req, previous.as_deref(), expected.num_ctx);
    let (key, _) = req.cache_key();
    app.shared.update_runner(|r| r.last_prompt = Some(key));
    let (eval_count, done_reason) = answer_length(opts, expected.num_ctx, count.total);
    Plan {
        model: req.model.clone(),
        done_reason,
        load_s,
        prefill_s: expected.prefill_s(count.total - count.cached) * jitter.prefill,
        token_s: expected.token_s * jitter.decode,
        prompt_count: count.total,
        eval_count,
    }
}

/// Streams NDJSON lines into the response body and applies an injected fault.
struct Emitter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    sent: usize,
    fault: Option<StreamFault>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

impl Emitter {
    async fn send(&mut self, mut bytes: Vec<u8>) -> Flow {
        bytes.push(b'\n');
        if self.tx.send(Ok(Bytes::from(bytes))).await.is_err() {
            return Flow::Stop; // the client went away
        }
        self.sent += 1;
        Flow::Go
    }

    /// Close the connection abruptly. hyper drops what it has buffered but not yet written
    /// when the body fails, so first let it drain the lines already sent (a crashed server's
    /// last writes reach the client too).
    async fn cut(&mut self, why: &str) {
        for _ in 0..1000 {
            if self.tx.capacity() == self.tx.max_capacity() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(CUT_FLUSH_GRACE).await;
        let _ = self.tx.send(Err(io::Error::other(why.to_string()))).await;
    }

    /// Send one line, unless the pending fault is due first (always before the last line).
    async fn line(&mut self, line: Vec<u8>, last: bool) -> Flow {
        let due = self
            .fault
            .as_ref()
            .is_some_and(|f| last || self.sent >= f.after_lines());
        if due {
            match self.fault.take() {
                Some(StreamFault::ErrorLine { message, .. }) => {
                    let line = serde_json::to_vec(&json!({ "error": message })).unwrap_or_default();
                    self.send(line).await;
                    return Flow::Stop;
                }
                Some(StreamFault::Truncate { .. }) => {
                    self.cut("simulated truncated stream").await;
                    return Flow::Stop;
                }
                Some(StreamFault::InvalidJson { .. }) => {
                    let garbage = b"{\"model\":\"sim\",\"response\":tru".to_vec();
                    return match self.send(garbage).await {
                        Flow::Stop => Flow::Stop,
                        Flow::Go => self.send(line).await,
                    };
                }
                None => {}
            }
        }
        self.send(line).await
    }
}

fn stream_answer(
    app: Arc<App>,
    plan: Plan,
    fault: Option<StreamFault>,
    slot: Slot,
    mut kill: watch::Receiver<u64>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(64);
    tokio::spawn(async move {
        let _slot = slot; // the runner stays busy until the stream ends
        let mut out = Emitter { tx, sent: 0, fault };
        if run_stream(&app, &plan, &mut out, &mut kill).await.is_err() {
            out.cut("simulated server went down").await;
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response()
}

/// Token i goes out at prefill + i * token_s (scaled), the final line at prefill + n * token_s.
async fn run_stream(
    app: &App,
    plan: &Plan,
    out: &mut Emitter,
    kill: &mut watch::Receiver<u64>,
) -> Result<(), Killed> {
    let t0 = tokio::time::Instant::now();
    let mut text = app.text_gen();
    for i in 0..plan.eval_count {
        sleep_until(
            t0 + app.wall(plan.prefill_s + i as f64 * plan.token_s),
            kill,
        )
        .await?;
        let line = response_json(&plan.model, &text.next_token(), "", Metrics::default());
        if out.line(line, false).await == Flow::Stop {
            return Ok(());
        }
    }
    sleep_until(t0 + app.wall(plan.generation_s()), kill).await?;
    let last = response_json(&plan.model, "", plan.done_reason, plan.metrics());
    out.line(last, true).await;
    Ok(())
}

async fn whole_answer(
    app: Arc<App>,
    plan: Plan,
    fault: Option<StreamFault>,
    slot: Slot,
    mut kill: watch::Receiver<u64>,
) -> Response {
    if app.sleep(plan.generation_s(), &mut kill).await.is_err() {
        return aborted();
    }
    let text = app.text_gen().text(plan.eval_count);
    let body = response_json(&plan.model, &text, plan.done_reason, plan.metrics());
    drop(slot);
    match fault {
        None => json_response(body),
        Some(StreamFault::ErrorLine { message, .. }) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
        Some(StreamFault::InvalidJson { .. }) => json_response(body[..body.len() / 2].to_vec()),
        Some(StreamFault::Truncate { .. }) => {
            let half = Bytes::from(body[..body.len() / 2].to_vec());
            let chunks: Vec<Result<Bytes, io::Error>> = vec![
                Ok(half),
                Err(io::Error::other("simulated truncated answer")),
            ];
            let body = Body::from_stream(futures_util::stream::iter(chunks));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body,
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_omit_zero_fields() {
        let s = String::from_utf8(response_json("m", "", "load", Metrics::default())).unwrap();
        assert!(!s.contains("duration"), "{s}");
        assert!(s.contains("\"done\":true") && s.contains("\"done_reason\":\"load\""));
        let chunk = String::from_utf8(response_json("m", "hi", "", Metrics::default())).unwrap();
        assert!(chunk.contains("\"done\":false") && !chunk.contains("done_reason"));
    }
}
