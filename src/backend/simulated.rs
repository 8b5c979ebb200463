//! The `simulator` backend kind: the built-in Ollama simulator started in-process, measured
//! through the real Ollama client and the shared protocol, its timings read in simulated seconds.

use super::ollama::OllamaServer;
use super::protocol::{InferenceServer, LoadReport, Protocolled, ServerError};
use super::{BackendError, BackendInfo, Counters, Evaluation};
use crate::engine::space::{Config, SearchSpace};
use crate::engine::stats::Sample;
use crate::sim::{SimConfig, SimServer};
use crate::study::Protocol;
use async_trait::async_trait;
use std::net::SocketAddr;

/// The simulator in-process + the Ollama client pointed at it.
pub struct SimulatedServer {
    sim: Option<SimServer>,
    ollama: OllamaServer,
    /// The simulator sleeps `time_scale` times the simulated durations; client-side timings
    /// (TTFT, end-to-end, load) are divided by it so they read in simulated seconds, like the
    /// server-side metrics, and the cost model sees realistic reload times.
    time_scale: f64,
    /// The simulator's count of simulated load seconds when the measurement began.
    loads_before: f64,
}

/// The backend: simulator + Ollama client + measurement protocol.
pub type SimulatedOllama = Protocolled<SimulatedServer>;

impl SimulatedOllama {
    pub async fn start(
        profile: &str,
        time_scale: f64,
        seed: u64,
        model: &str,
        keep_alive: &str,
        protocol: Protocol,
        runner_params: Vec<String>,
    ) -> Result<Self, BackendError> {
        let config = SimConfig {
            profile: profile.to_string(),
            seed,
            time_scale,
        };
        let sim = crate::sim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| {
                BackendError::fatal(
                    format!("cannot start the simulator: {e}"),
                    format!("profiles: {}", crate::sim::profile_names().join(", ")),
                )
            })?;
        let url = format!("http://{}", sim.addr);
        let ollama = OllamaServer::new(
            &url,
            model,
            keep_alive,
            protocol.request_timeout,
            runner_params.clone(),
        );
        let server = SimulatedServer {
            sim: Some(sim),
            ollama,
            time_scale,
            loads_before: 0.0,
        };
        Protocolled::with_server(server, protocol, runner_params)
    }
}

/// A client-side timing in simulated seconds, rebuilt from the server's own (simulated)
/// metrics. Dividing the wall-clock figure by the time scale instead would magnify the real
/// HTTP and scheduling overhead with it: 5 ms of overhead at time scale 0.002 reads as 2.5
/// simulated seconds, which once made every trial of a fast benchmark violate a TTFT
/// constraint. TTFT = load + prompt processing + the first generated token.
fn simulated_seconds(s: &Sample, key: &str) -> Option<f64> {
    let get = |k: &str| s.get(k).copied().filter(|v| v.is_finite());
    match key {
        "e2e" => get("total"),
        "ttft" => {
            let prefill = get("prompt_eval_count")? / get("prefill_tps")?;
            Some(get("server_load").unwrap_or(0.0) + prefill + 1.0 / get("decode_tps")?)
        }
        _ => None,
    }
}

impl SimulatedServer {
    fn simulated_load_seconds(&self) -> f64 {
        self.sim
            .as_ref()
            .map_or(0.0, |s| s.control.stats().load_seconds)
    }
}

#[async_trait]
impl InferenceServer for SimulatedServer {
    async fn prepare(&mut self, space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
        let mut info = self.ollama.prepare(space).await?;
        info.simulated = true;
        info.backend = "simulator (ollama API)".into();
        Ok(info)
    }

    async fn load(&mut self, config: &Config) -> Result<LoadReport, ServerError> {
        self.ollama.load(config).await
    }

    async fn generate(
        &mut self,
        config: &Config,
        prompt: &str,
        num_predict: u32,
    ) -> Result<Sample, ServerError> {
        self.ollama.generate(config, prompt, num_predict).await
    }

    fn before_measure(&mut self) {
        self.loads_before = self.simulated_load_seconds();
    }

    fn after_measure(&mut self, e: &mut Evaluation) {
        let k = 1.0 / self.time_scale;
        for s in &mut e.samples {
            for key in ["ttft", "e2e"] {
                let simulated = simulated_seconds(s, key);
                if let Some(v) = s.get_mut(key) {
                    *v = simulated.unwrap_or(*v * k);
                }
            }
        }
        // Ollama's load answer carries no timings; the simulator's own count of simulated load
        // seconds does (the same overhead argument as `simulated_seconds`).
        let loaded_s = self.simulated_load_seconds() - self.loads_before;
        if let Some(l) = &mut e.load {
            l.seconds = if l.reloaded && loaded_s > 0.0 {
                loaded_s
            } else {
                l.seconds * k
            };
        }
    }

    fn counters(&self, protocol: Counters) -> Counters {
        let mut c = self.ollama.counters(protocol);
        c.reload_seconds /= self.time_scale;
        c
    }

    async fn shutdown(&mut self) -> bool {
        let runner_gone = self.ollama.shutdown().await;
        if let Some(s) = self.sim.take() {
            s.shutdown().await;
        }
        runner_gone
    }
}
