//! The `ollama-tuner` binary: parse flags, set up logging, run, map failures to exit codes.

use clap::Parser;
use ollama_tuner::{dispatch, Cli, LogFormat};

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(&format!("error: cannot start the async runtime: {e}"));
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // A report still being written on a blocking thread past its deadline (src/run/reports.rs)
    // must not hold up the exit: everything it would write is rendered again by `report`.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Err(e) = result {
        say(&format!("error: {e}"));
        std::process::exit(e.code as i32);
    }
}

/// A line on stderr; a stderr that cannot be written (a closed pipe) does not turn an exit
/// code into a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
