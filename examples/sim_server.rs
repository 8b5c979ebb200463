//! Run the built-in Ollama simulator until Ctrl-C or SIGTERM (what `ollama-tuner sim` does, with
//! a choice of address and profile names checked by the simulator itself; docs/simulator.md):
//!
//! ```text
//! cargo run --example sim_server -- --port 11435 --profile gemma3-4b --seed 1 --time-scale 0.01
//! ```

use clap::Parser;
use ollama_tuner::sim::{self, SimConfig};

#[derive(Parser)]
#[command(about = "Serve a simulated Ollama API (not a real model) on 127.0.0.1")]
struct Args {
    /// TCP port; 0 picks a free one.
    #[arg(long, default_value_t = 11435)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Simulated model and machine.
    #[arg(long, default_value = "gemma3-4b")]
    profile: String,
    /// Seed of the measurement noise and generated text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Multiplies every sleep (0.001 = a thousand times faster); reported durations are unscaled.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
    let config = SimConfig {
        profile: args.profile,
        seed: args.seed,
        time_scale: args.time_scale,
    };
    let model = sim::profile(&config.profile)
        .map(|p| p.model)
        .unwrap_or("?");
    eprintln!(
        "Ollama SIMULATOR {} (profile {}, model {model}, time scale {}) listening on http://{}",
        sim::VERSION,
        config.profile,
        config.time_scale,
        listener.local_addr()?
    );
    sim::serve_until(config, listener, interrupted()).await?;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `kill` sends a background job).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
