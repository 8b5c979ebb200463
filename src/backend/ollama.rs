//! The Ollama backend: /api/generate with the trial's options, measured by the shared protocol.
//!
//! Contract (ollama/ollama:docs/api.md and ollama/ollama:api/types.go; summarized in
//! docs/measurement.md): durations are in
//! nanoseconds and omitted when zero; an empty prompt only loads the model (done_reason "load");
//! errors are {"error": "..."} bodies, or an NDJSON {"error": ...} line under HTTP 200 once
//! streaming has begun.

use super::effective::{ollama_effective, ModelFacts, PsEntry};
use super::{classify_failure, BackendError, BackendInfo};
use crate::backend::protocol::{InferenceServer, LoadReport, Protocolled, ServerError};
use crate::domain::llamaserver::CHOSE_NOTE;
use crate::domain::metrics::{self, Observed, MAX_DECODE_TPS, MAX_PREFILL_TPS};
use crate::engine::space::{Config, SearchSpace};
use crate::engine::stats::Sample;
use crate::study::Protocol;
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// HTTP client for one Ollama server and model.
pub struct OllamaServer {
    pub base: String,
    pub model: String,
    pub keep_alive: String,
    client: reqwest::Client,
    timeout: Duration,
    pub runner_params: Vec<String>,
    /// Layer count and trained context from `/api/show` (set by `prepare`).
    pub model_facts: ModelFacts,
    /// Wall seconds per second the server reports: 1, or the simulator's time scale
    /// (`Observed::clock_scale`).
    pub clock_scale: f64,
}

/// Longest body of a non-streamed answer read (`/api/show` with a long template and licence is
/// well under a megabyte); a longer one is a fault, not read into memory whole.
const MAX_BODY: usize = 16 << 20;
/// Longest NDJSON line of a stream (a line carries one token, the final one the metrics).
const MAX_LINE: usize = 1 << 20;
/// Longest server error text kept in a message.
const MAX_ERROR_TEXT: usize = 500;

impl OllamaServer {
    pub fn new(
        base: &str,
        model: &str,
        keep_alive: &str,
        timeout: Duration,
        runner_params: Vec<String>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        OllamaServer {
            base: base.trim_end_matches('/').to_string(),
            model: model.to_string(),
            keep_alive: keep_alive.to_string(),
            client,
            timeout,
            runner_params,
            model_facts: ModelFacts::default(),
            clock_scale: 1.0,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The options object sent with a request: every tuned option, as the API types it, except
    /// those whose value is `auto`: left out, so the server decides (docs/ollama-options.md,
    /// "What the backend sends").
    pub(crate) fn options(&self, config: &Config, num_predict: Option<u32>) -> Value {
        let mut o = serde_json::Map::new();
        for (k, v) in config.iter().filter(|(_, v)| !v.is_auto()) {
            o.insert(k.clone(), v.to_json());
        }
        if let Some(n) = num_predict {
            o.insert("num_predict".into(), json!(n));
        }
        Value::Object(o)
    }

    async fn get_json(&self, path: &str) -> Result<Value, ServerError> {
        let resp = self
            .client
            .get(self.url(path))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| transport(&self.base, e))?;
        let status = resp.status();
        let body = read_body(resp, &format!("GET {path}")).await?;
        if !status.is_success() {
            return Err(ServerError::Transient(format!(
                "GET {path}: HTTP {status}: {}",
                error_message(&body).0
            )));
        }
        parse_json(&body, &format!("GET {path}"))
    }

    async fn post(&mut self, path: &str, body: &Value) -> Result<reqwest::Response, ServerError> {
        let resp = self
            .client
            .post(self.url(path))
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| transport(&self.base, e))?;
        // The simulator says on every answer how many wall seconds its reported ones take.
        if let Some(k) = resp
            .headers()
            .get(crate::sim::TIME_SCALE_HEADER)
            .and_then(|v| v.to_str().ok()?.parse::<f64>().ok())
            .filter(|k| k.is_finite() && *k >= 0.0)
        {
            self.clock_scale = k;
        }
        Ok(resp)
    }

    /// Turn an error status and body into the right class of failure.
    fn error_for(&self, status: reqwest::StatusCode, body: &[u8]) -> ServerError {
        let (message, ollama) = error_message(body);
        let message = message.as_str();
        if !ollama && status.is_client_error() {
            // Not Ollama's {"error": ...}: a proxy, another server, a wrong path in the URL.
            return ServerError::fatal(
                format!(
                    "{} answered HTTP {status} that is not Ollama's: {message}",
                    self.base
                ),
                "check backend.url: it must be the Ollama server itself (http://host:11434)",
            );
        }
        if status == reqwest::StatusCode::NOT_FOUND && message.contains("not found") {
            return ServerError::fatal(
                format!("Ollama says: {message}"),
                format!(
                    "pull the model first: `ollama pull {}` (or fix study.model)",
                    self.model
                ),
            );
        }
        if let Some(kind) = classify_failure(message) {
            return ServerError::Config(kind, message.to_string());
        }
        if status == reqwest::StatusCode::BAD_REQUEST || message.contains("must be of type") {
            return ServerError::fatal(
                format!("Ollama rejected the request: {message}"),
                "check the parameter names and types in the study file against Ollama's options",
            );
        }
        ServerError::Transient(format!("HTTP {status}: {message}"))
    }

    /// This model's `/api/ps` entry, when the server lists it.
    async fn ps_entry(&self) -> Option<PsEntry> {
        let ps = self.get_json("/api/ps").await.ok()?;
        ps["models"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == self.model.as_str() || m["model"] == self.model.as_str())
            .map(PsEntry::from_json)
    }

    /// After a load: the notes from /api/ps (size, size_vram, vram_fraction, server_chose) and
    /// the runner options as the server ran them.
    async fn after_load(&self, config: &Config) -> (BTreeMap<String, Value>, Config) {
        let mut notes = BTreeMap::new();
        let ps = self.ps_entry().await;
        if let Some(p) = &ps {
            let size = p.size.unwrap_or(0.0);
            let vram = p.size_vram.unwrap_or(0.0);
            notes.insert("size".into(), json!(size));
            notes.insert("size_vram".into(), json!(vram));
            if size > 0.0 {
                // Share of the model in GPU memory; below 1 means a CPU spill (a speed cliff).
                notes.insert("vram_fraction".into(), json!(vram / size));
            }
        }
        let (effective, chose) = ollama_effective(config, &self.model_facts, ps.as_ref());
        if ps.is_some() {
            notes.insert(CHOSE_NOTE.into(), chose);
        }
        (notes, effective)
    }

    /// Version, model facts, and bounds from the model (num_gpu <= block_count+1,
    /// num_ctx <= context_length).
    pub(crate) async fn describe(
        &mut self,
        space: &mut SearchSpace,
    ) -> Result<BackendInfo, ServerError> {
        let version = self.get_json("/api/version").await?;
        let resp = self
            .post("/api/show", &json!({ "model": self.model }))
            .await?;
        let status = resp.status();
        let body = read_body(resp, "/api/show").await?;
        if !status.is_success() {
            return Err(self.error_for(status, &body));
        }
        let show = parse_json(&body, "/api/show")?;
        let mut info = BackendInfo {
            backend: "ollama".into(),
            server_version: version["version"].as_str().map(String::from),
            model: Some(self.model.clone()),
            ..Default::default()
        };
        info.details.insert("url".into(), json!(self.base));
        info.details
            .insert("model_details".into(), show["details"].clone());
        let model_info = &show["model_info"];
        if model_info["general.simulated"].as_bool() == Some(true) {
            info.simulated = true;
        }
        let arch = model_info["general.architecture"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let block_count = model_info[format!("{arch}.block_count")].as_i64();
        let ctx_len = model_info[format!("{arch}.context_length")].as_i64();
        self.model_facts = ModelFacts {
            block_count,
            context_length: ctx_len,
        };
        if let Some(bc) = block_count {
            info.details.insert("block_count".into(), json!(bc));
            // Every num_gpu >= block_count+1 means full offload: one point, not hundreds.
            if space.cap_int_upper("num_gpu", bc + 1) {
                info.details
                    .insert("num_gpu_capped_at".into(), json!(bc + 1));
            }
        }
        if let Some(cl) = ctx_len {
            info.details.insert("context_length".into(), json!(cl));
            if space.cap_int_upper("num_ctx", cl) {
                info.details.insert("num_ctx_capped_at".into(), json!(cl));
            }
        }
        if let Ok(tags) = self.get_json("/api/tags").await {
            if let Some(m) = tags["models"].as_array().and_then(|a| {
                a.iter()
                    .find(|m| m["name"] == self.model.as_str() || m["model"] == self.model.as_str())
            }) {
                info.model_digest = m["digest"].as_str().map(String::from);
                info.details.insert("model_size".into(), m["size"].clone());
            }
        }
        Ok(info)
    }
}

fn transport(base: &str, e: reqwest::Error) -> ServerError {
    if e.is_timeout() {
        ServerError::Transient(format!(
            "request to {base} timed out (protocol.request_timeout)"
        ))
    } else if e.is_connect() {
        ServerError::Transient(format!(
            "cannot connect to Ollama at {base}: is `ollama serve` running?"
        ))
    } else {
        ServerError::Transient(format!("request to {base} failed: {e}"))
    }
}

/// The body of a non-streamed answer, at most [`MAX_BODY`] bytes, within the request timeout.
async fn read_body(resp: reqwest::Response, what: &str) -> Result<Vec<u8>, ServerError> {
    let mut stream = resp.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| broken(what, &e))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ServerError::Transient(format!(
                "{what}: the answer is over {} MiB; not an Ollama answer",
                MAX_BODY >> 20
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A body that broke off while it was read.
fn broken(what: &str, e: &reqwest::Error) -> ServerError {
    if e.is_timeout() {
        ServerError::Transient(format!(
            "{what}: the answer did not finish within protocol.request_timeout"
        ))
    } else {
        ServerError::Transient(format!("{what}: the answer broke off: {e}"))
    }
}

fn parse_json(body: &[u8], what: &str) -> Result<Value, ServerError> {
    serde_json::from_slice(body).map_err(|e| {
        ServerError::Transient(format!(
            "{what}: the answer is not JSON ({e}): {}",
            cut(&String::from_utf8_lossy(body))
        ))
    })
}

/// A text cut to [`MAX_ERROR_TEXT`] characters.
fn cut(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// The message of an error body, and whether it was Ollama's `{"error": "..."}`.
fn error_message(body: &[u8]) -> (String, bool) {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("error").is_some() => (cut(&error_text(&v["error"])), true),
        _ => (cut(&String::from_utf8_lossy(body)), false),
    }
}

fn error_text(err: &Value) -> String {
    err.as_str()
        .map(String::from)
        .unwrap_or_else(|| err.to_string())
}

/// A number field of a final line: omitted means 0 (Go's omitempty); present, it must be a
/// number (counts and durations are Go integers).
fn number(v: &Value, key: &str) -> Result<f64, String> {
    match v.get(key) {
        None => Ok(0.0),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("{key} is {n}, not a number")),
        Some(other) => Err(format!(
            "{key} is {}, not a number",
            cut(&other.to_string())
        )),
    }
}

/// A duration field in nanoseconds, as seconds, checked against the request's wall time.
fn duration(v: &Value, key: &str, seen: &Observed) -> Result<f64, String> {
    seen.duration(key, number(v, key)? / 1e9)
}

/// Metrics of a final `done` line, checked for physical plausibility (docs/measurement.md,
/// "Plausibility"): decode and prefill throughput from nanosecond durations. `chunks` is the
/// number of streamed lines that carried text. `Err` says what is impossible about the line.
pub(crate) fn metrics_from_final(
    done: &Value,
    seen: &Observed,
    chunks: usize,
) -> Result<Sample, String> {
    let eval_count = seen.generated("eval_count", number(done, "eval_count")?)?;
    let p_count = metrics::count("prompt_eval_count", number(done, "prompt_eval_count")?)?;
    let eval_s = duration(done, "eval_duration", seen)?;
    let p_s = duration(done, "prompt_eval_duration", seen)?;
    let total = duration(done, "total_duration", seen)?;
    let load = duration(done, "load_duration", seen)?;
    if eval_count == 0.0 || eval_s == 0.0 {
        return Err("the final line carries no eval_count or eval_duration (the tokens generated and the time they took)".into());
    }
    let parts = load + p_s + eval_s;
    if parts > total * (1.0 + metrics::WALL_TOLERANCE) + 1e-3 {
        return Err(format!(
            "load, prompt and eval durations add up to {parts:.6} s, more than total_duration {total:.6} s"
        ));
    }
    // Each streamed chunk carries the text of at least one generated token.
    if chunks as f64 > eval_count + 1.0 {
        return Err(format!(
            "eval_count is {eval_count} but {chunks} chunks of text were streamed"
        ));
    }
    let mut s = Sample::new();
    s.insert(
        "decode_tps".into(),
        metrics::rate("decode_tps", eval_count, eval_s, MAX_DECODE_TPS)?,
    );
    if p_count > 0.0 && p_s > 0.0 {
        s.insert(
            "prefill_tps".into(),
            metrics::rate("prefill_tps", p_count, p_s, MAX_PREFILL_TPS)?,
        );
    }
    s.insert("total".into(), total);
    s.insert("server_load".into(), load);
    s.insert("eval_count".into(), eval_count);
    s.insert("prompt_eval_count".into(), p_count);
    Ok(s)
}

#[async_trait]
impl InferenceServer for OllamaServer {
    async fn prepare(&mut self, space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
        if self.model.is_empty() {
            return Err(BackendError::fatal(
                "the study names no model",
                "set study.model, for example model = \"gemma3:latest\"",
            ));
        }
        Ok(self.describe(space).await?)
    }

    async fn load(&mut self, config: &Config) -> Result<LoadReport, ServerError> {
        let t0 = Instant::now();
        let body = json!({
            "model": self.model,
            "prompt": "",
            "stream": false,
            "keep_alive": self.keep_alive,
            "options": self.options(config, None),
        });
        let resp = self.post("/api/generate", &body).await?;
        let status = resp.status();
        let body = read_body(resp, "load").await?;
        if !status.is_success() {
            return Err(self.error_for(status, &body));
        }
        let v = parse_json(&body, "load")?;
        if v.get("error").is_some() {
            return Err(self.error_for(status, &body));
        }
        let seconds = t0.elapsed().as_secs_f64();
        if v["done"].as_bool() != Some(true) {
            return Err(ServerError::Transient(format!(
                "load: the answer is not Ollama's (no \"done\": true): {}",
                cut(&v.to_string())
            )));
        }
        let seen = Observed {
            wall_s: seconds,
            clock_scale: self.clock_scale,
            num_predict: 0,
        };
        let server_load = duration(&v, "load_duration", &seen)
            .map_err(|e| ServerError::Transient(format!("load: implausible answer: {e}")))?;
        let (mut notes, effective) = self.after_load(config).await;
        notes.insert("server_load_s".into(), json!(server_load));
        Ok(LoadReport {
            seconds,
            notes,
            effective,
        })
    }

    async fn generate(
        &mut self,
        config: &Config,
        prompt: &str,
        num_predict: u32,
    ) -> Result<Sample, ServerError> {
        let body = json!({
            "model": self.model,
            "prompt": prompt,
            "stream": true,
            "keep_alive": self.keep_alive,
            "options": self.options(config, Some(num_predict)),
        });
        let t0 = Instant::now();
        let resp = self.post("/api/generate", &body).await?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_body(resp, "generate").await?;
            return Err(self.error_for(status, &body));
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut ttft: Option<f64> = None;
        let mut chunks = 0usize;
        loop {
            let chunk = match tokio::time::timeout(self.timeout, stream.next()).await {
                Err(_) => {
                    return Err(ServerError::Transient(
                        "stream stalled past protocol.request_timeout".into(),
                    ))
                }
                Ok(None) => {
                    return Err(ServerError::Transient(
                        "stream ended before the final `done` line".into(),
                    ))
                }
                Ok(Some(Err(e))) => return Err(broken("stream", &e)),
                Ok(Some(Ok(c))) => c,
            };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Some(v) = stream_line(&line)? else {
                    continue;
                };
                let (response, thinking) =
                    (stream_text(&v, "response")?, stream_text(&v, "thinking")?);
                if response || thinking {
                    chunks += 1;
                }
                if response {
                    ttft.get_or_insert_with(|| t0.elapsed().as_secs_f64());
                }
                if v["done"].as_bool() == Some(true) {
                    let e2e = t0.elapsed().as_secs_f64();
                    let seen = Observed {
                        wall_s: e2e,
                        clock_scale: self.clock_scale,
                        num_predict,
                    };
                    let mut s = metrics_from_final(&v, &seen, chunks).map_err(|e| {
                        ServerError::Transient(format!(
                            "implausible final line, not recorded as a measurement: {e}"
                        ))
                    })?;
                    s.insert("e2e".into(), e2e);
                    if let Some(t) = ttft {
                        s.insert("ttft".into(), t);
                    }
                    return Ok(s);
                }
            }
            if buf.len() > MAX_LINE {
                return Err(ServerError::Transient(format!(
                    "a line of the stream is over {} MiB; not an Ollama answer",
                    MAX_LINE >> 20
                )));
            }
        }
    }
}

/// One NDJSON line of a stream: None for a blank line, the object otherwise; an `{"error": ...}`
/// line is the error it carries (a configuration failure when its message says so).
fn stream_line(line: &[u8]) -> Result<Option<Value>, ServerError> {
    let text = std::str::from_utf8(line)
        .map_err(|e| ServerError::Transient(format!("a line of the stream is not UTF-8 ({e})")))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        ServerError::Transient(format!("invalid JSON line in stream ({e}): {}", cut(text)))
    })?;
    if let Some(err) = v.get("error") {
        let msg = cut(&error_text(err));
        return Err(match classify_failure(&msg) {
            Some(kind) => ServerError::Config(kind, msg),
            None => ServerError::Transient(format!("error mid-stream: {msg}")),
        });
    }
    if !v.is_object() {
        return Err(ServerError::Transient(format!(
            "a line of the stream is not an object: {}",
            cut(text)
        )));
    }
    Ok(Some(v))
}

/// Whether a stream line carries text in `key` (`response`, or `thinking` for a thinking
/// model); a field of the wrong type is a protocol error.
fn stream_text(v: &Value, key: &str) -> Result<bool, ServerError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(t)) => Ok(!t.is_empty()),
        Some(other) => Err(ServerError::Transient(format!(
            "`{key}` in the stream is {}, not a string",
            cut(&other.to_string())
        ))),
    }
}

/// The backend: Ollama server + measurement protocol.
pub type OllamaBackend = Protocolled<OllamaServer>;

impl OllamaBackend {
    pub fn new(
        url: &str,
        model: &str,
        keep_alive: &str,
        protocol: Protocol,
        runner_params: Vec<String>,
    ) -> Result<Self, BackendError> {
        let server = OllamaServer::new(
            url,
            model,
            keep_alive,
            protocol.request_timeout,
            runner_params.clone(),
        );
        Protocolled::with_server(server, protocol, runner_params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::ParamValue;

    #[test]
    fn auto_options_are_not_sent() {
        let s = OllamaServer::new(
            "http://127.0.0.1:1",
            "m",
            "5m",
            Duration::from_secs(1),
            vec![],
        );
        let c = Config::from([
            ("num_gpu".to_string(), ParamValue::auto()),
            ("num_ctx".to_string(), ParamValue::Int(2048)),
            ("num_batch".to_string(), ParamValue::auto()),
            ("temperature".to_string(), ParamValue::Float(0.5)),
        ]);
        let o = s.options(&c, Some(16));
        assert_eq!(
            o,
            json!({"num_ctx": 2048, "temperature": 0.5, "num_predict": 16}),
            "auto means: let the server decide"
        );
    }

    #[test]
    fn final_line_metrics_in_nanoseconds() {
        let v = json!({"done": true, "eval_count": 128, "eval_duration": 1_254_901_960u64,
                       "prompt_eval_count": 40, "prompt_eval_duration": 29_000_000u64,
                       "total_duration": 1_400_000_000u64});
        let seen = Observed {
            wall_s: 1.5,
            clock_scale: 1.0,
            num_predict: 128,
        };
        let s = metrics_from_final(&v, &seen, 120).unwrap();
        assert!((s["decode_tps"] - 102.0).abs() < 0.01);
        assert!((s["prefill_tps"] - 1379.31).abs() < 0.01);
        assert!((s["total"] - 1.4).abs() < 1e-9);
        assert_eq!(s["server_load"], 0.0, "omitted means zero");
    }
}
