//! llama-server driven by the measurement protocol: starting the child with a configuration's
//! load options and waiting for `/health`, streaming one `/completion` over HTTP, and telling a
//! hang, a crash and a bad configuration apart.
//!
//! The HTTP server listens before the model loads: `GET /health` answers 503 while loading and
//! 200 when ready. Requests occasionally hang on a busy machine: every request has a deadline
//! (`protocol.request_timeout`), and a hung server is killed and restarted (docs/llama-server.md).

use super::argv::{command_line, completion_body, runs_as, HostDefaults};
use super::diagnose::{classify_start_failure, headline, port_was_taken, TAIL_CHARS};
use super::probe::check_paths;
use super::process::{free_port, spawn_server, Running};
use super::resolved::{effective, Chosen};
use super::sse::{error_message, metrics_from_final, parse_event, SseParser, StreamEvent};
use crate::backend::protocol::{InferenceServer, LoadReport, ServerError};
use crate::backend::{classify_failure, BackendError, BackendInfo, Counters, Evaluation};
use crate::domain::llamaserver::{ARGS_NOTE, CHOSE_NOTE};
use crate::domain::metrics::Observed;
use crate::engine::optimizer::RunsAs;
use crate::engine::space::{Config, SearchSpace};
use crate::engine::stats::Sample;
use crate::trial::FailureKind;
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

const HEALTH_POLL: Duration = Duration::from_millis(100);
/// SIGTERM -> SIGKILL grace at shutdown (llama-server exits 2-4 s after SIGTERM here).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A second hang in a row of the same configuration is the configuration's fault (a single hang
/// is retried: they happen now and then on a busy machine, docs/llama-server.md).
const HANG_LIMIT: u32 = 2;
/// Attempts to start on a fresh port when another process took the one picked.
const PORT_ATTEMPTS: usize = 3;

/// Where the server comes from.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// Start and stop llama-server ourselves.
    Managed {
        binary: PathBuf,
        model: PathBuf,
        startup_timeout: Duration,
        extra_args: Vec<String>,
    },
    /// Use a running server at this base URL; only sampling options can change.
    Attach { base: String },
}

/// Why one request went wrong (mapped to a `ServerError` by `generate`).
enum RequestError {
    /// Connection refused, reset or cut: maybe the server died.
    Transport(String),
    Http(reqwest::StatusCode, String, String),
    /// An error event mid-stream.
    Event(String, String),
    /// An answer we cannot read.
    Garbage(String),
}

/// llama-server driven by the protocol: `load` (re)starts it with a configuration's load
/// options, `generate` measures one streamed completion.
pub struct LlamaServer {
    pub(crate) mode: Mode,
    pub(crate) client: reqwest::Client,
    request_timeout: Duration,
    pub(crate) defaults: HostDefaults,
    /// The most layers there are to offload (block_count+1; 0 on a build without a GPU
    /// device), when `prepare` found out.
    pub(crate) gpu_layers_max: Option<i64>,
    /// Extra load options of the study (backend.runner_params) kept out of requests.
    load_options: Vec<String>,
    running: Option<Running>,
    /// The configuration that hung last and how many times in a row.
    hangs: Option<(String, u32)>,
    pub(crate) restarts_after_hang: u64,
    pub(crate) crashes: u64,
}

impl LlamaServer {
    pub(crate) fn new(
        mode: Mode,
        request_timeout: Duration,
        load_options: Vec<String>,
    ) -> LlamaServer {
        // No idle connection reuse: restarted servers get ports the kernel hands out again, so a
        // pooled connection may point at a server that is gone ("error sending request" was seen
        // here in the grid benchmark), and llama-server closes idle keep-alive connections on its
        // own schedule. A fresh local connection per request costs well under a millisecond.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0);
        if matches!(mode, Mode::Managed { .. }) {
            // Our own child on 127.0.0.1: never through an HTTP proxy from the environment.
            builder = builder.no_proxy();
        }
        LlamaServer {
            mode,
            client: builder.build().unwrap_or_default(),
            request_timeout,
            defaults: HostDefaults::detect(),
            gpu_layers_max: None,
            load_options,
            running: None,
            hangs: None,
            restarts_after_hang: 0,
            crashes: 0,
        }
    }

    /// Base URL of the server currently measured.
    pub(crate) fn base_url(&self) -> Option<String> {
        match &self.mode {
            Mode::Attach { base } => Some(base.clone()),
            Mode::Managed { .. } => self.running.as_ref().map(|r| r.base.clone()),
        }
    }

    /// Port and process id of the managed child, if one runs.
    pub fn child(&self) -> Option<(u16, Option<u32>)> {
        self.running.as_ref().map(|r| (r.port, r.child.id()))
    }

    /// Stop the managed child: SIGTERM, then SIGKILL after 5 s. Safe to call twice.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            r.terminate(STOP_GRACE).await;
            debug!(port = r.port, "llama-server stopped");
        }
    }

    pub(crate) async fn health(&self, base: &str) -> Result<reqwest::StatusCode, reqwest::Error> {
        self.client
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map(|r| r.status())
    }

    /// The arguments (without the binary) of the managed child that runs now, if one does.
    pub(crate) fn running_args(&self) -> Option<&[String]> {
        self.running.as_ref().map(|r| r.args.as_slice())
    }

    /// Start llama-server with `config`'s load options and wait until /health says 200.
    async fn start(&mut self, config: &Config) -> Result<LoadReport, ServerError> {
        let Mode::Managed {
            binary,
            model,
            startup_timeout,
            extra_args,
        } = self.mode.clone()
        else {
            return Err(ServerError::Transient(
                "start() on an attached server".into(),
            ));
        };
        check_paths(&binary, &model).map_err(ServerError::Fatal)?;
        let mut last = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port()
                .map_err(|e| ServerError::Transient(format!("no free local port: {e}")))?;
            let built = command_line(
                &binary,
                &model,
                "127.0.0.1",
                port,
                config,
                &self.defaults,
                &extra_args,
            )
            .map_err(|m| {
                ServerError::fatal(
                    format!("cannot build the llama-server command line: {m}"),
                    "fix the parameter's type or choices in the study file",
                )
            })?;
            let t0 = Instant::now();
            let (child, log, pumps) = spawn_server(&built.args).map_err(|e| {
                ServerError::fatal(
                    format!("cannot start {}: {e}", binary.display()),
                    "check backend.server / $LLAMA_SERVER, or rebuild it with `eval \"$(scripts/setup-llamacpp.sh)\"`",
                )
            })?;
            info!(port, args = %built.args[3..].join(" "), "starting llama-server");
            let mut running = Running {
                child,
                base: format!("http://127.0.0.1:{port}"),
                port,
                args: built.args[1..].to_vec(),
                log,
                pumps,
                chose: None,
            };
            match self.wait_ready(&mut running, t0, startup_timeout).await {
                Ok(seconds) => {
                    let mut notes = built.notes;
                    notes.insert(ARGS_NOTE.into(), json!(running.args));
                    let (effective, chose) =
                        self.what_it_chose(&running, config, &built.effective).await;
                    if let Some(c) = &chose {
                        notes.insert(CHOSE_NOTE.into(), c.clone());
                    }
                    running.chose = chose;
                    self.running = Some(running);
                    return Ok(LoadReport {
                        seconds,
                        notes,
                        effective,
                    });
                }
                Err(None) => {
                    last = running.log.tail(TAIL_CHARS);
                    warn!(
                        port,
                        attempt, "llama-server could not bind its port; retrying on another"
                    );
                }
                Err(Some(e)) => return Err(e),
            }
        }
        Err(ServerError::Transient(format!(
            "llama-server could not bind a port in {PORT_ATTEMPTS} attempts: {last}"
        )))
    }

    /// What a server that just became ready runs: the load options it resolved or changed
    /// (from its log and /props, resolved.rs), and the `server_chose` note when it said
    /// anything.
    async fn what_it_chose(
        &self,
        r: &Running,
        config: &Config,
        known: &Config,
    ) -> (Config, Option<Value>) {
        let lines = r.log.lines();
        let mut chosen = Chosen::from_log(lines.iter().map(String::as_str));
        let props = self
            .client
            .get(format!("{}/props", r.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(resp) = props {
            if resp.status().is_success() {
                if let Ok(v) = resp.json::<Value>().await {
                    chosen = chosen.with_props(&v);
                }
            }
        }
        let note = (chosen != Chosen::default()).then(|| chosen.note());
        (effective(config, known, &chosen, self.gpu_layers_max), note)
    }

    /// What the running child said it chose (`server_chose`), if anything.
    pub(crate) fn running_chose(&self) -> Option<&Value> {
        self.running.as_ref().and_then(|r| r.chose.as_ref())
    }

    /// Poll /health every 100 ms. `Err(None)` = the port was taken (retry on another).
    async fn wait_ready(
        &self,
        r: &mut Running,
        t0: Instant,
        startup_timeout: Duration,
    ) -> Result<f64, Option<ServerError>> {
        loop {
            if let Some(status) = r.exited() {
                r.drain().await;
                let tail = r.log.tail(TAIL_CHARS);
                if port_was_taken(&tail) {
                    return Err(None);
                }
                let kind = classify_start_failure(&tail);
                return Err(Some(ServerError::Config(
                    kind,
                    format!(
                        "llama-server exited ({status}) {:.1} s after start, before it was ready{}\n--- its output ends with:\n{tail}",
                        t0.elapsed().as_secs_f64(),
                        headline(&tail)
                    ),
                )));
            }
            if let Ok(code) = self.health(&r.base).await {
                if code == reqwest::StatusCode::OK {
                    return Ok(t0.elapsed().as_secs_f64());
                }
            }
            if t0.elapsed() >= startup_timeout {
                r.kill().await;
                let tail = r.log.tail(TAIL_CHARS);
                return Err(Some(ServerError::Config(
                    classify_start_failure(&tail),
                    format!(
                        "llama-server was not ready within {:.0} s (backend.startup_timeout){}\n--- its output ends with:\n{tail}",
                        startup_timeout.as_secs_f64(),
                        headline(&tail)
                    ),
                )));
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// One streamed /completion: (sample, time to the first content).
    async fn completion(&self, base: &str, body: &Value) -> Result<Sample, RequestError> {
        let t0 = Instant::now();
        let resp = self
            .client
            .post(format!("{base}/completion"))
            .json(body)
            .send()
            .await
            .map_err(|e| RequestError::Transport(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let (message, kind) = match serde_json::from_str::<Value>(&text) {
                Ok(v) if v.get("error").is_some() => (
                    error_message(&v["error"]),
                    v["error"]["type"].as_str().unwrap_or("").to_string(),
                ),
                _ => (text.chars().take(500).collect(), String::new()),
            };
            return Err(RequestError::Http(status, message, kind));
        }
        let mut stream = resp.bytes_stream();
        let mut parser = SseParser::default();
        let mut ttft: Option<f64> = None;
        let handle =
            |data: String, ttft: &mut Option<f64>| -> Result<Option<Sample>, RequestError> {
                match parse_event(&data).map_err(|e| RequestError::Garbage(e.to_string()))? {
                    StreamEvent::Token(text) => {
                        if ttft.is_none() && !text.is_empty() {
                            *ttft = Some(t0.elapsed().as_secs_f64());
                        }
                        Ok(None)
                    }
                    StreamEvent::Final(v) => {
                        if ttft.is_none() && v["content"].as_str().is_some_and(|c| !c.is_empty()) {
                            *ttft = Some(t0.elapsed().as_secs_f64());
                        }
                        let seen = Observed {
                            wall_s: t0.elapsed().as_secs_f64(),
                            clock_scale: 1.0,
                            num_predict: body["n_predict"]
                                .as_u64()
                                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                        };
                        let mut s = metrics_from_final(&v, &seen)
                            .map_err(|e| RequestError::Garbage(e.to_string()))?;
                        s.insert("e2e".into(), t0.elapsed().as_secs_f64());
                        if let Some(t) = ttft {
                            s.insert("ttft".into(), *t);
                        }
                        Ok(Some(s))
                    }
                    StreamEvent::Error { message, kind } => Err(RequestError::Event(message, kind)),
                    StreamEvent::Done => Err(RequestError::Garbage(
                        "the stream ended ([DONE]) without a final event".into(),
                    )),
                }
            };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RequestError::Transport(format!("stream broke: {e}")))?;
            for data in parser.feed(&chunk) {
                if let Some(s) = handle(data, &mut ttft)? {
                    return Ok(s);
                }
            }
        }
        if let Some(data) = parser.finish() {
            if let Some(s) = handle(data, &mut ttft)? {
                return Ok(s);
            }
        }
        Err(RequestError::Transport(
            "the stream ended before the final event (\"stop\": true)".into(),
        ))
    }

    /// After a failed request: did the managed child die? Waits up to 0.5 s for the exit to be
    /// visible (the socket closes a moment before the process is reaped).
    async fn crashed(&mut self) -> Option<String> {
        let r = self.running.as_mut()?;
        let t0 = Instant::now();
        loop {
            if let Some(status) = r.exited() {
                r.drain().await;
                let tail = r.log.tail(TAIL_CHARS);
                self.running = None;
                self.crashes += 1;
                return Some(format!(
                    "llama-server exited ({status}) while measuring{}\n--- its output ends with:\n{tail}",
                    headline(&tail)
                ));
            }
            if t0.elapsed() > Duration::from_millis(500) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        self.running
            .as_ref()
            .map(|r| r.log.tail(TAIL_CHARS))
            .unwrap_or_default()
    }
}

#[async_trait]
impl InferenceServer for LlamaServer {
    async fn prepare(&mut self, space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
        self.prepare_server(space).await
    }

    fn after_measure(&mut self, eval: &mut Evaluation) {
        self.record_args(eval);
    }

    /// Managed mode: the clamps of the command line (argv.rs `runs_as`). An attached server's
    /// load options are not the tuner's to set.
    fn runs_as(&self) -> Option<RunsAs> {
        match self.mode {
            Mode::Managed { .. } => {
                let host = self.defaults.clone();
                Some(Arc::new(move |c: &Config| runs_as(c, &host)))
            }
            Mode::Attach { .. } => None,
        }
    }

    fn counters(&self, protocol: Counters) -> Counters {
        self.server_counters(protocol)
    }

    async fn shutdown(&mut self) -> bool {
        self.stop().await;
        true
    }

    async fn load(&mut self, config: &Config) -> Result<LoadReport, ServerError> {
        match &self.mode {
            Mode::Attach { base } => {
                // Nothing to load: the study tunes sampling options only (checked in prepare).
                let base = base.clone();
                match self.health(&base).await {
                    Ok(s) if s == reqwest::StatusCode::OK => Ok(LoadReport::default()),
                    Ok(s) => Err(ServerError::Transient(format!(
                        "{base}/health answered {s}"
                    ))),
                    Err(e) => Err(ServerError::Transient(format!(
                        "cannot reach llama-server at {base}: {e}"
                    ))),
                }
            }
            Mode::Managed { .. } => {
                if let Some(mut r) = self.running.take() {
                    r.kill().await;
                }
                self.start(config).await
            }
        }
    }

    async fn generate(
        &mut self,
        config: &Config,
        prompt: &str,
        num_predict: u32,
    ) -> Result<Sample, ServerError> {
        let Some(base) = self.base_url() else {
            // The child was stopped (after a hang or a crash); the protocol reloads on retry.
            return Err(ServerError::Transient("llama-server is not running".into()));
        };
        let body = completion_body(config, prompt, num_predict, &self.load_options);
        let result =
            tokio::time::timeout(self.request_timeout, self.completion(&base, &body)).await;
        let err = match result {
            Ok(Ok(sample)) => {
                self.hangs = None;
                return Ok(sample);
            }
            Ok(Err(e)) => e,
            Err(_) => {
                let secs = self.request_timeout.as_secs_f64();
                if matches!(self.mode, Mode::Attach { .. }) {
                    return Err(ServerError::Transient(format!(
                        "no answer within {secs:.0} s (protocol.request_timeout) from {base}"
                    )));
                }
                // A hung server is not trusted with the next request: kill it; the protocol
                // forgets the loaded options on this error and restarts it on the retry.
                let tail = self.log_tail();
                if let Some(mut r) = self.running.take() {
                    r.kill().await;
                }
                self.restarts_after_hang += 1;
                let key = crate::engine::space::config_key(config);
                let count = match &self.hangs {
                    Some((k, n)) if *k == key => n + 1,
                    _ => 1,
                };
                self.hangs = Some((key, count));
                let msg = format!("no answer within {secs:.0} s (protocol.request_timeout); llama-server was killed");
                if count >= HANG_LIMIT {
                    self.hangs = None;
                    return Err(ServerError::Config(
                        FailureKind::Timeout,
                        format!("{msg} after {HANG_LIMIT} hangs in a row with these options; its output ends with:\n{tail}"),
                    ));
                }
                warn!("{msg}; it will be restarted and the trial retried");
                return Err(ServerError::Transient(msg));
            }
        };
        match err {
            RequestError::Transport(m) => match self.crashed().await {
                Some(crash) => Err(ServerError::Config(
                    FailureKind::Crashed,
                    format!("{crash}\n(request error: {m})"),
                )),
                None => Err(ServerError::Transient(format!(
                    "request to {base} failed: {m}"
                ))),
            },
            RequestError::Http(status, message, kind) => {
                if kind == "exceed_context_size_error" {
                    // The prompt plus n_predict do not fit the context of a slot: these options
                    // cannot serve the protocol's requests.
                    return Err(ServerError::Config(
                        FailureKind::Error,
                        format!("HTTP {status}: {message}"),
                    ));
                }
                if let Some(k) = classify_failure(&message) {
                    return Err(ServerError::Config(k, format!("HTTP {status}: {message}")));
                }
                if status.is_client_error() {
                    return Err(ServerError::fatal(
                        format!("llama-server rejected the request (HTTP {status}): {message}"),
                        "check the sampling parameter names and types in the study file against llama-server's /completion options",
                    ));
                }
                match self.crashed().await {
                    Some(crash) => Err(ServerError::Config(FailureKind::Crashed, crash)),
                    None => Err(ServerError::Transient(format!("HTTP {status}: {message}"))),
                }
            }
            RequestError::Event(message, kind) => {
                if kind == "exceed_context_size_error" {
                    return Err(ServerError::Config(FailureKind::Error, message));
                }
                if let Some(k) = classify_failure(&message) {
                    return Err(ServerError::Config(k, message));
                }
                match self.crashed().await {
                    Some(crash) => Err(ServerError::Config(
                        FailureKind::Crashed,
                        format!("{crash}\n(error event: {message})"),
                    )),
                    None => Err(ServerError::Transient(format!(
                        "error mid-stream: {message}"
                    ))),
                }
            }
            RequestError::Garbage(m) => Err(ServerError::Transient(m)),
        }
    }
}
