//! An Ollama SIMULATOR: a fake Ollama server for offline runs, tests and benchmarks. It is not
//! Ollama and runs no model; every number it reports comes from the performance model in
//! [`model`], calibrated to published figures (docs/simulator.md says which).
//! It says so: `/api/version` answers `0.33.0-sim` and `/api/show` has
//! `model_info["general.simulated"] = true`.
//!
//! It speaks the API subset the tuner uses, with Ollama's field names, units (durations in
//! nanoseconds, zero metrics omitted), NDJSON streaming, status codes and `{"error": ...}`
//! bodies (ollama/ollama:docs/api.md, server/routes.go):
//! `GET /`, `GET /api/version`, `GET /api/tags`, `POST /api/show`, `GET /api/ps`,
//! `POST /api/generate` (streaming or not; empty prompt = load, with `keep_alive: 0` = unload).
//!
//! - [`model`]: the pure performance model (`SimModel::expected`, `best_decode`).
//! - [`profiles`]: the simulated models and machines with their calibration figures.
//! - [`options`]: Ollama's option table and parsing rules.
//! - `server`: the axum routes; `app` holds the runner slot and loads, `answer` plans and
//!   sends a generate answer, `reply` writes the bodies, `request` parses them.
//! - [`control`]: `SimControl`, fault injection and state inspection from Rust; `state` is
//!   what it shares with the handlers.
//! - `text`: filler tokens and the crude prompt tokenizer.
//! - [`error`]: `SimError` (start, serve) and `RequestError` (a refused request).
//!
//! `time_scale` multiplies every sleep (0.001 makes tests fast); reported durations stay in
//! simulated seconds, so the numbers look real while a client's wall-clock timings scale.

mod answer;
mod app;
pub mod control;
pub mod error;
pub mod model;
pub mod options;
pub mod profiles;
mod reply;
mod request;
mod server;
mod state;
mod text;

pub use control::{LoadedInfo, SimControl, BUSY_MESSAGE};
pub use error::{RequestError, SimError};
pub use model::{
    best_decode, best_decode_where, Drift, DriftShape, Expected, OomKind, RunnerKey, SearchBox,
    SimModel, SimOom,
};
pub use options::{option_names_and_types, OptionKind, SimOptions, OPTION_KINDS};
pub use profiles::{profile, Profile, PROFILES};
pub use server::TIME_SCALE_HEADER;
pub use state::{HttpFault, SimStats, StreamFault};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The version the simulator reports: parseable as Ollama's, marked as simulated.
pub const VERSION: &str = "0.33.0-sim";

/// How to run the simulator.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Profile name (`profile_names()`), or the model name of one (`gemma3:4b`).
    pub profile: String,
    /// Seed of the noise and of the generated text.
    pub seed: u64,
    /// Multiplies every sleep; 0 means no sleeping at all. Reported durations are unscaled.
    pub time_scale: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            profile: profiles::GEMMA3_4B.name.to_string(),
            seed: 0,
            time_scale: 1.0,
        }
    }
}

/// A simulator serving in a background task.
pub struct SimServer {
    pub addr: SocketAddr,
    pub control: SimControl,
}

impl SimServer {
    /// `http://127.0.0.1:PORT`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving and wait for the accept loop to end.
    pub async fn shutdown(self) {
        self.control.stop_listener().await;
    }
}

/// Whether a simulator with `profile` answers requests for `model` (as /api/generate and
/// /api/show decide it: "gemma3:4b" and "gemma3:4b" with any case or a ":latest" tag alike).
pub fn profile_serves(profile: &Profile, model: &str) -> bool {
    app::normalize_model(model) == app::normalize_model(profile.model)
}

/// The names `SimConfig::profile` accepts, the default first.
pub fn profile_names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}

fn app_for(config: &SimConfig) -> Result<Arc<app::App>, SimError> {
    let Some(profile) = profiles::profile(&config.profile) else {
        return Err(SimError::UnknownProfile {
            profile: config.profile.clone(),
            known: profile_names().join(", "),
        });
    };
    if !(config.time_scale >= 0.0 && config.time_scale.is_finite()) {
        return Err(SimError::TimeScale(config.time_scale));
    }
    Ok(app::App::new(profile, config.seed, config.time_scale))
}

/// Bind `addr` (port 0 = any free port) and serve in a tokio task.
pub async fn start(config: SimConfig, addr: SocketAddr) -> Result<SimServer, SimError> {
    let app = app_for(&config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Listen { addr, source })?;
    let addr = listener.local_addr().map_err(SimError::LocalAddr)?;
    let model = app.profile.model;
    let shared = app.shared.clone();
    let router = server::router(app);
    let running = control::spawn_serve(listener, router.clone());
    let control = SimControl {
        model,
        shared,
        listener: Arc::new(tokio::sync::Mutex::new(control::ListenerCtl {
            addr,
            router,
            running: Some(running),
        })),
    };
    Ok(SimServer { addr, control })
}

/// Serve on `listener` until `shutdown` completes (the `ollama-tuner sim` command). Streams in
/// flight are cut when it does.
pub async fn serve_until(
    config: SimConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    let app = app_for(&config)?;
    let shared = app.shared.clone();
    let router = server::router(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            shared.kill_all();
        })
        .await
        .map_err(SimError::Serve)
}
