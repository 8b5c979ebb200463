//! Running the simulator: `ollama-tuner sim`, `ollama-tuner demo`, and the `simulator` backend
//! kind (the simulator started in-process, measured through the real Ollama backend).

use crate::backend::ollama::OllamaBackend;
use crate::backend::{Backend, BackendError, BackendInfo, Evaluation};
use crate::cli::{CliError, ExitCode};
use crate::engine::space::{Config, SearchSpace};
use crate::sim::{SimConfig, SimServer};
use crate::study::Protocol;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The study `demo` runs; placeholders are filled from the command line.
pub const DEMO_STUDY: &str = include_str!("../../search_spaces/demo-simulator.toml");

/// The simulator in-process + the Ollama backend pointed at it.
pub struct SimulatedOllama {
    sim: Option<SimServer>,
    inner: OllamaBackend,
    /// The simulator sleeps `time_scale` times the simulated durations; client-side timings
    /// (TTFT, end-to-end, load) are divided by it so they read in simulated seconds, like the
    /// server-side metrics, and the cost model sees realistic reload times.
    time_scale: f64,
}

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
        let inner = OllamaBackend::new(&url, model, keep_alive, protocol, runner_params)?;
        Ok(SimulatedOllama {
            sim: Some(sim),
            inner,
            time_scale,
        })
    }
}

/// A client-side timing in simulated seconds, rebuilt from the server's own (simulated)
/// metrics. Dividing the wall-clock figure by the time scale instead would magnify the real
/// HTTP and scheduling overhead with it: 5 ms of overhead at time scale 0.002 reads as 2.5
/// simulated seconds, which once made every trial of a fast benchmark violate a TTFT
/// constraint. TTFT = load + prompt processing + the first generated token.
fn simulated_seconds(s: &crate::engine::stats::Sample, key: &str) -> Option<f64> {
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

impl SimulatedOllama {
    fn simulated_load_seconds(&self) -> f64 {
        self.sim
            .as_ref()
            .map_or(0.0, |s| s.control.stats().load_seconds)
    }
}

#[async_trait]
impl Backend for SimulatedOllama {
    async fn prepare(&mut self, space: &mut SearchSpace) -> Result<BackendInfo, BackendError> {
        let mut info = self.inner.prepare(space).await?;
        info.simulated = true;
        info.backend = "simulator (ollama API)".into();
        Ok(info)
    }

    async fn evaluate(&mut self, config: &Config) -> Result<Evaluation, BackendError> {
        let loads_before = self.simulated_load_seconds();
        let mut e = self.inner.evaluate(config).await?;
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
        let loaded_s = self.simulated_load_seconds() - loads_before;
        if let Some(l) = &mut e.load {
            l.seconds = if l.reloaded && loaded_s > 0.0 {
                loaded_s
            } else {
                l.seconds * k
            };
        }
        Ok(e)
    }

    fn counters(&self) -> BTreeMap<String, f64> {
        let mut c = self.inner.counters();
        if let Some(v) = c.get_mut("reload_seconds") {
            *v /= self.time_scale;
        }
        c
    }

    fn loaded_runner(&self) -> Option<Config> {
        self.inner.loaded_runner()
    }

    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
        if let Some(s) = self.sim.take() {
            s.shutdown().await;
        }
    }
}

/// `ollama-tuner sim`: serve until Ctrl-C.
pub async fn serve(port: u16, profile: &str, seed: u64, time_scale: f64) -> Result<(), CliError> {
    if !crate::sim::profile_names().contains(&profile) {
        return Err(CliError::new(
            ExitCode::BadInput,
            format!(
                "unknown profile {profile:?}; profiles: {}",
                crate::sim::profile_names().join(", ")
            ),
        ));
    }
    if time_scale.is_nan() || time_scale <= 0.0 {
        return Err(CliError::new(
            ExitCode::BadInput,
            "--time-scale must be > 0",
        ));
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::new(
            ExitCode::BadInput,
            format!("cannot listen on {addr}: {e} (pick another --port)"),
        )
    })?;
    eprintln!(
        "SIMULATED Ollama API ({profile}, seed {seed}, time scale {time_scale}) on http://{}; Ctrl-C stops it",
        listener.local_addr().unwrap_or(addr)
    );
    let config = SimConfig {
        profile: profile.to_string(),
        seed,
        time_scale,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::sim::serve_until(config, listener, shutdown)
        .await
        .map_err(|e| CliError::new(ExitCode::Internal, e.to_string()))
}

/// The demo study text with the command line's values filled in.
pub fn demo_study_text(trials: usize, profile: &str, time_scale: f64, seed: u64) -> String {
    let model = crate::sim::profile(profile)
        .map(|p| p.model)
        .unwrap_or("gemma3:4b");
    DEMO_STUDY
        .replace("{MODEL}", model)
        .replace("{TRIALS}", &trials.to_string())
        .replace("{PROFILE}", profile)
        .replace("{TIME_SCALE}", &format!("{time_scale}"))
        .replace("{SEED}", &seed.to_string())
}

/// `ollama-tuner demo`: a short study on the simulator through the real Ollama backend.
pub async fn demo(
    trials: usize,
    state_dir: PathBuf,
    profile: &str,
    time_scale: f64,
    seed: u64,
) -> Result<(), CliError> {
    if !crate::sim::profile_names().contains(&profile) {
        return Err(CliError::new(
            ExitCode::BadInput,
            format!(
                "unknown profile {profile:?}; profiles: {}",
                crate::sim::profile_names().join(", ")
            ),
        ));
    }
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| CliError::new(ExitCode::State, format!("{}: {e}", state_dir.display())))?;
    let text = demo_study_text(trials, profile, time_scale, seed);
    let path = state_dir.join(format!("demo-{profile}.toml"));
    std::fs::write(&path, &text)
        .map_err(|e| CliError::new(ExitCode::State, format!("{}: {e}", path.display())))?;
    eprintln!("demo: tuning the SIMULATED {profile} Ollama server ({trials} trials, time scale {time_scale}); study file {}", path.display());
    let study = crate::study::load_study(&path)?;
    let opts = crate::run::RunOptions {
        state_dir,
        run_id: Some(format!(
            "demo-{profile}-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S")
        )),
        reports_dir: Some(PathBuf::from("reports")),
        ..Default::default()
    };
    let backend = crate::backend::create(&study)
        .await
        .map_err(|e| CliError::new(ExitCode::Backend, e.to_string()))?;
    let shutdown = crate::cli::install_signal_handlers();
    let out = crate::run::run(study, &text, &path, opts, backend, shutdown).await?;
    crate::cli::print_outcome(&out, crate::cli::ExportFormatArg::Modelfile);
    Ok(())
}
