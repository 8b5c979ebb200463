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
}

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
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ServerError::Transient(format!("GET {path}: invalid JSON: {e}")))?;
        if !status.is_success() {
            return Err(ServerError::Transient(format!(
                "GET {path}: HTTP {status}: {}",
                error_text(&body)
            )));
        }
        Ok(body)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response, ServerError> {
        self.client
            .post(self.url(path))
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| transport(&self.base, e))
    }

    /// Turn an error status and body into the right class of failure.
    fn error_for(&self, status: reqwest::StatusCode, message: &str) -> ServerError {
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
        let show: Value = resp
            .json()
            .await
            .map_err(|e| ServerError::Transient(format!("/api/show: invalid JSON: {e}")))?;
        if !status.is_success() {
            return Err(self.error_for(status, &error_text(&show)));
        }
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

fn error_text(body: &Value) -> String {
    body["error"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| body.to_string())
}

fn ns(v: &Value, key: &str) -> f64 {
    // Fields are omitted when zero (Go omitempty).
    v[key].as_f64().unwrap_or(0.0)
}

/// Metrics of a final `done` line: decode and prefill throughput from nanosecond durations.
pub(crate) fn metrics_from_final(done: &Value) -> Sample {
    let mut s = Sample::new();
    let eval_count = ns(done, "eval_count");
    let eval_ns = ns(done, "eval_duration");
    if eval_count > 0.0 && eval_ns > 0.0 {
        s.insert("decode_tps".into(), eval_count / eval_ns * 1e9);
    }
    let p_count = ns(done, "prompt_eval_count");
    let p_ns = ns(done, "prompt_eval_duration");
    if p_count > 0.0 && p_ns > 0.0 {
        s.insert("prefill_tps".into(), p_count / p_ns * 1e9);
    }
    s.insert("total".into(), ns(done, "total_duration") / 1e9);
    s.insert("server_load".into(), ns(done, "load_duration") / 1e9);
    s.insert("eval_count".into(), eval_count);
    s.insert("prompt_eval_count".into(), p_count);
    s
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
        let v: Value = resp
            .json()
            .await
            .map_err(|e| ServerError::Transient(format!("load: invalid JSON: {e}")))?;
        if !status.is_success() || v.get("error").is_some() {
            return Err(self.error_for(status, &error_text(&v)));
        }
        let seconds = t0.elapsed().as_secs_f64();
        let (mut notes, effective) = self.after_load(config).await;
        notes.insert("server_load_s".into(), json!(ns(&v, "load_duration") / 1e9));
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
            let text = resp.text().await.unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&text)
                .map(|v| error_text(&v))
                .unwrap_or(text);
            return Err(self.error_for(status, &msg));
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut ttft: Option<f64> = None;
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
                Ok(Some(Err(e))) => {
                    return Err(ServerError::Transient(format!("stream broke: {e}")))
                }
                Ok(Some(Ok(c))) => c,
            };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(text).map_err(|e| {
                    ServerError::Transient(format!("invalid JSON line in stream: {e}"))
                })?;
                if let Some(err) = v.get("error") {
                    let msg = err
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| err.to_string());
                    return Err(match classify_failure(&msg) {
                        Some(kind) => ServerError::Config(kind, msg),
                        None => ServerError::Transient(format!("error mid-stream: {msg}")),
                    });
                }
                if ttft.is_none() && v["response"].as_str().is_some_and(|r| !r.is_empty()) {
                    ttft = Some(t0.elapsed().as_secs_f64());
                }
                if v["done"].as_bool() == Some(true) {
                    let mut s = metrics_from_final(&v);
                    let e2e = t0.elapsed().as_secs_f64();
                    s.insert("e2e".into(), e2e);
                    if let Some(t) = ttft {
                        s.insert("ttft".into(), t);
                    }
                    if !s.contains_key("decode_tps") {
                        return Err(ServerError::Transient(
                            "final line carries no eval_count/eval_duration".into(),
                        ));
                    }
                    return Ok(s);
                }
            }
        }
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
        let s = metrics_from_final(&v);
        assert!((s["decode_tps"] - 102.0).abs() < 0.01);
        assert!((s["prefill_tps"] - 1379.31).abs() < 0.01);
        assert!((s["total"] - 1.4).abs() < 1e-9);
        assert_eq!(s["server_load"], 0.0, "omitted means zero");
    }
}
