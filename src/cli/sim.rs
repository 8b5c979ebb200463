//! The simulator commands: `ollama-tuner sim` serves it, `ollama-tuner demo` runs a short study
//! on it. (The `simulator` backend kind, started in-process, is `backend/simulated.rs`.)

use crate::cli::{CliError, ExitCode, ExportFormatArg};
use crate::sim::SimConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The study `demo` runs; placeholders are filled from the command line.
pub(crate) const DEMO_STUDY: &str = include_str!("../../search_spaces/demo-simulator.toml");

fn known_profile(profile: &str) -> Result<(), CliError> {
    if crate::sim::profile_names().contains(&profile) {
        return Ok(());
    }
    Err(CliError::new(
        ExitCode::BadInput,
        format!(
            "unknown profile {profile:?}; profiles: {}",
            crate::sim::profile_names().join(", ")
        ),
    ))
}

/// `ollama-tuner sim`: serve until Ctrl-C.
pub(crate) async fn serve(
    port: u16,
    profile: &str,
    seed: u64,
    time_scale: f64,
) -> Result<(), CliError> {
    known_profile(profile)?;
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
    errln!(
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
pub(crate) async fn demo(
    trials: usize,
    state_dir: PathBuf,
    profile: &str,
    time_scale: f64,
    seed: u64,
) -> Result<(), CliError> {
    known_profile(profile)?;
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| CliError::new(ExitCode::State, format!("{}: {e}", state_dir.display())))?;
    let text = demo_study_text(trials, profile, time_scale, seed);
    let path = state_dir.join(format!("demo-{profile}.toml"));
    std::fs::write(&path, &text)
        .map_err(|e| CliError::new(ExitCode::State, format!("{}: {e}", path.display())))?;
    errln!("demo: tuning the SIMULATED {profile} Ollama server ({trials} trials, time scale {time_scale}); study file {}", path.display());
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
    let backend = crate::backend::create(&study).await?;
    let shutdown = crate::cli::install_signal_handlers();
    let signals = shutdown.clone();
    let out = crate::run::run(study, &text, &path, opts, backend, shutdown).await?;
    let signals = *signals.borrow();
    crate::cli::end_of_run(&out, ExportFormatArg::Modelfile, signals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::{ParamValue, Prefer, Role};

    /// The demo's baseline is what a stock Ollama runs: the runner options left to the server,
    /// the sampling options at Ollama's stock values, kept there as output settings.
    #[test]
    fn the_demo_study_runs_a_stock_baseline() {
        let text = demo_study_text(12, "gemma3-4b", 0.5, 3);
        let study = crate::study::parse_study(std::path::Path::new("demo.toml"), &text).unwrap();
        let p = |n: &str| study.space.get(n).unwrap();
        for n in ["num_gpu", "num_ctx", "num_batch", "num_thread"] {
            assert_eq!(p(n).default, Some(ParamValue::auto()), "{n}");
        }
        assert_eq!(
            (p("num_ctx").role, p("num_ctx").prefer),
            (Role::Requirement, Some(Prefer::High))
        );
        assert!(matches!(
            p("num_ctx").kind,
            crate::engine::space::ParamKind::Int { low: 4096, .. }
        ));
        for (n, v) in [
            ("temperature", ParamValue::Float(0.8)),
            ("top_p", ParamValue::Float(0.9)),
            ("top_k", ParamValue::Int(40)),
        ] {
            assert_eq!(
                (p(n).role, p(n).default.clone()),
                (Role::Output, Some(v)),
                "{n}"
            );
        }
        assert!(!study.decision.allow_output_changes);
    }
}
