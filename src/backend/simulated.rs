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
    /// (TTFT, end-to-end) are rebuilt from the server's simulated metrics (or, failing that,
    /// divided by it) and loads are read on the virtual clock, so they all read in simulated
    /// seconds and the cost model sees realistic reload times.
    time_scale: f64,
    /// The simulator's virtual clock when the measurement began.
    clock_before: f64,
}

/// The note (in `Evaluation::notes`, then the trial record) with the simulated seconds a
/// measurement took on the simulator's virtual clock: load, warm-ups and measured requests,
/// free of HTTP overhead. The run loop uses it as the trial's duration, so that a simulated run
/// does not depend on how busy the machine is.
pub const SIMULATED_SECONDS_NOTE: &str = "simulated_seconds";

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
            clock_before: 0.0,
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
    /// The simulator's virtual clock (simulated seconds of work done).
    fn clock_s(&self) -> f64 {
        self.sim.as_ref().map_or(0.0, |s| s.control.clock_s())
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
        // Ollama's load answer carries no timings; the virtual clock does (a warm answer for
        // options the runner already has, e.g. a num_batch capped to the same num_ctx, included).
        let before = self.clock_s();
        let mut report = self.ollama.load(config).await?;
        report.seconds = self.clock_s() - before;
        Ok(report)
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
        self.clock_before = self.clock_s();
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
        let took = self.clock_s() - self.clock_before;
        e.notes
            .insert(SIMULATED_SECONDS_NOTE.into(), serde_json::json!(took));
    }

    fn counters(&self, protocol: Counters) -> Counters {
        // Reload seconds are already simulated (`load` reads them on the virtual clock).
        self.ollama.counters(protocol)
    }

    async fn shutdown(&mut self) -> bool {
        let runner_gone = self.ollama.shutdown().await;
        if let Some(s) = self.sim.take() {
            s.shutdown().await;
        }
        runner_gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::engine::space::ParamValue;
    use crate::sim::RunnerKey;
    use std::time::Duration;

    fn runner_params() -> Vec<String> {
        RunnerKey::OPTIONS.iter().map(|s| s.to_string()).collect()
    }

    async fn backend(seed: u64, time_scale: f64) -> SimulatedOllama {
        let protocol = Protocol {
            repeats: 2,
            warmup: 1,
            num_predict: 24,
            request_timeout: Duration::from_secs(30),
            ..Protocol::default()
        };
        SimulatedOllama::start(
            "gemma3-4b",
            time_scale,
            seed,
            "gemma3:4b",
            "30m",
            protocol,
            runner_params(),
        )
        .await
        .unwrap()
    }

    fn config(ctx: i64, batch: i64, temperature: f64) -> Config {
        Config::from([
            ("num_gpu".to_string(), ParamValue::Int(999)),
            ("num_ctx".to_string(), ParamValue::Int(ctx)),
            ("num_batch".to_string(), ParamValue::Int(batch)),
            ("temperature".to_string(), ParamValue::Float(temperature)),
        ])
    }

    /// Reloads, a "reload" the server does not need (num_batch capped to the same num_ctx) and
    /// back-to-back requests on the same runner.
    fn configs() -> Vec<Config> {
        vec![
            config(2048, 512, 0.8),
            config(2048, 512, 0.2),
            config(512, 1024, 0.8),
            config(512, 2048, 0.8),
            config(4096, 256, 0.5),
            config(4096, 256, 0.5),
        ]
    }

    async fn measure_all(seed: u64, time_scale: f64) -> Vec<Evaluation> {
        let mut b = backend(seed, time_scale).await;
        let mut space = SearchSpace { params: vec![] };
        b.prepare(&mut space).await.unwrap();
        let mut out = vec![];
        for c in configs() {
            out.push(b.evaluate(&c).await.unwrap());
        }
        Backend::shutdown(&mut b).await;
        out
    }

    #[tokio::test]
    async fn a_seed_gives_the_same_measurements_and_durations() {
        // Time scaled down but not zero, so requests really overlap with their slot's release.
        let a = measure_all(11, 0.0005).await;
        let b = measure_all(11, 0.0005).await;
        assert_eq!(a, b);
        for e in &a {
            let took = e.notes[SIMULATED_SECONDS_NOTE].as_f64().unwrap();
            // At least the measured requests' load, prompt and tokens (warm-ups come on top).
            let requests: f64 = e.samples.iter().map(|s| s["total"] - 0.001).sum();
            assert!(took >= requests, "{took} < {requests}");
        }
        // The capped num_batch is the runner already loaded: the "reload" is a warm answer.
        let warm = a[3].load.as_ref().unwrap();
        assert!(warm.reloaded && warm.seconds < 0.1, "{warm:?}");
        let cold = a[2].load.as_ref().unwrap();
        assert!(cold.reloaded && cold.seconds > 1.0, "{cold:?}");
        // Another seed, other noise.
        assert_ne!(measure_all(12, 0.0005).await[0].samples, a[0].samples);
    }

    /// A whole run (the demo study, through the run loop) journaled without wall-clock fields.
    async fn demo_run(seed: u64) -> Vec<serde_json::Value> {
        let tmp = tempfile::tempdir().unwrap();
        let text = crate::cli::sim::demo_study_text(7, "gemma3-4b", 0.0002, seed);
        let path = tmp.path().join("demo.toml");
        std::fs::write(&path, &text).unwrap();
        let study = crate::study::load_study(&path).unwrap();
        let backend = crate::backend::create(&study).await.unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(0u32);
        let opts = crate::run::RunOptions {
            state_dir: tmp.path().join("state"),
            run_id: Some("r".into()),
            progress: false,
            ..Default::default()
        };
        let out = crate::run::run(study, &text, &path, opts, backend, rx)
            .await
            .unwrap();
        let journal = crate::store::RunDir::new(&out.run_dir)
            .read_journal()
            .unwrap();
        journal
            .records
            .into_iter()
            .map(|mut r| {
                r.started_at.clear();
                r.finished_at.clear();
                r.notes.remove("ask_s");
                serde_json::to_value(&r).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn two_identical_simulated_runs_journal_identical_records() {
        let a = demo_run(4).await;
        assert_eq!(a.len(), 7);
        assert_eq!(a, demo_run(4).await);
    }
}
