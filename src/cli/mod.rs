//! Command-line interface: flags parsed by clap, turned into validated options, dispatched.
//! Every user-facing failure maps to a distinct exit code (see `ExitCode` and README.md).

#[macro_use]
mod out;
mod decide;
mod signals;
pub mod sim;
mod status;

pub use signals::exit_code;
pub(crate) use signals::install_signal_handlers;

use crate::backend::{self, Backend, BackendError};
use crate::run::{self, RunError, RunOptions};
use crate::store::{RunDir, StoreError};
use crate::study::{load_study, ConfigError, Study};
use chrono::{DateTime, Local, NaiveTime, TimeZone};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit codes, stable for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Internal = 1,
    /// Bad study file or bad flags.
    BadInput = 2,
    /// The backend cannot work (server or model missing, binary not found).
    Backend = 3,
    /// Another daemon holds the run.
    Locked = 4,
    /// Resume refused: the study changed (use --force).
    Refused = 5,
    /// The run directory cannot be read or written.
    State = 6,
    /// `recheck`: the recommendation is now significantly slower than recorded.
    Regressed = 7,
    /// A second stop signal cut the run short (128 + SIGINT, as a shell reports it).
    SecondSignal = 130,
}

/// A failure with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
}

impl CliError {
    pub fn new(code: ExitCode, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::new(ExitCode::BadInput, e.to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Locked { .. } => CliError::new(ExitCode::Locked, e.to_string()),
            StoreError::NotARun(_) | StoreError::BadRunId { .. } => {
                CliError::new(ExitCode::BadInput, e.to_string())
            }
            _ => CliError::new(ExitCode::State, e.to_string()),
        }
    }
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Config(c) => c.into(),
            RunError::Store(s) => s.into(),
            RunError::Fatal(f) => CliError::new(ExitCode::Backend, f.to_string()),
            RunError::Refused(m) => CliError::new(ExitCode::Refused, m),
        }
    }
}

/// A backend that cannot be built (server, binary or model missing).
impl From<BackendError> for CliError {
    fn from(e: BackendError) -> Self {
        CliError::new(ExitCode::Backend, e.to_string())
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "ollama-tuner",
    version,
    about = "Find the fastest settings for a local LLM server by Bayesian optimization over live measurements."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace), or a tracing filter.
    #[arg(long, global = true, default_value = "info", env = "OLLAMA_TUNER_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BudgetArgs {
    /// Total trials of the run (overrides budget.trials).
    #[arg(long)]
    pub trials: Option<usize>,
    /// Wall-time budget over the whole run, e.g. 8h or 90m (overrides budget.wall_time; at
    /// most 366 days, as there).
    #[arg(long, value_parser = parse_time_budget)]
    pub time_budget: Option<Duration>,
    /// Stop asking for trials at this local time (HH:MM, the next occurrence).
    #[arg(long, value_parser = parse_until)]
    pub until: Option<DateTime<Local>>,
    /// Continue even though the search space or objective changed since the run started.
    #[arg(long)]
    pub force: bool,
    /// How long the trial in flight may finish after SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub grace: Duration,
    /// Longest continuous server outage to wait out before giving up.
    #[arg(long, value_parser = parse_duration, default_value = "30m")]
    pub max_outage: Duration,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a study: ask -> measure -> tell until the budget is spent.
    Run {
        /// The study file (TOML), e.g. search_spaces/gemma3.toml.
        #[arg(long)]
        space: PathBuf,
        /// Where runs are kept.
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        /// Name of the run folder; an existing one is resumed.
        #[arg(long)]
        run_id: Option<String>,
        /// Random seed (overrides study.seed).
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// Continue a stopped or killed run where it stopped.
    Resume {
        /// The run folder, e.g. state/gemma3-20261122-2300.
        run_dir: PathBuf,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// Check study files and print what they define.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Serve the built-in Ollama simulator (numbers are simulated, not measured).
    Sim {
        #[arg(long, default_value_t = 11435)]
        port: u16,
        #[arg(long, default_value = "gemma3-4b")]
        profile: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Multiply every simulated delay by this (0.01 = 100x faster).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// A complete short study against the built-in simulator: no Ollama needed.
    Demo {
        #[arg(long, default_value_t = 60)]
        trials: usize,
        #[arg(long, default_value = "state")]
        state_dir: PathBuf,
        #[arg(long, default_value = "gemma3-4b")]
        profile: String,
        #[arg(long, default_value_t = 0.02)]
        time_scale: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Settle a run's recommendation: a decision phase (racing the leaders and the baseline in
    /// interleaved rounds, then an ablation path) of N more trials, on a finished run too.
    Decide {
        run_dir: PathBuf,
        /// Trials of the phase (default: the study's decision share of its budget).
        #[arg(long)]
        trials: Option<usize>,
    },
    /// Measure the recommendation and the baseline again now, interleaved; exit code 7 when the
    /// recommendation is significantly slower than recorded (a server update regressed it).
    Recheck {
        run_dir: PathBuf,
        /// Paired rounds (each measures the recommendation and the baseline once).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Progress of a run: trials, best so far, time, and whether a daemon works on it.
    Status { run_dir: PathBuf },
    /// Print or write the ranked report of a run.
    Report {
        run_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = ReportFormatArg::Md)]
        format: ReportFormatArg,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export a configuration of a run (the best by default).
    Export {
        run_dir: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormatArg,
        /// Rank in the report (1 = best).
        #[arg(long, default_value_t = 1)]
        rank: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormatArg {
    Md,
    Json,
    Csv,
}

impl From<ReportFormatArg> for crate::report::ReportFormat {
    fn from(f: ReportFormatArg) -> Self {
        use crate::report::ReportFormat;
        match f {
            ReportFormatArg::Md => ReportFormat::Markdown,
            ReportFormatArg::Json => ReportFormat::Json,
            ReportFormatArg::Csv => ReportFormat::Csv,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormatArg {
    Modelfile,
    Json,
    Toml,
    LlamaServer,
}

impl From<ExportFormatArg> for crate::export::ExportFormat {
    fn from(f: ExportFormatArg) -> Self {
        use crate::export::ExportFormat;
        match f {
            ExportFormatArg::Modelfile => ExportFormat::Modelfile,
            ExportFormatArg::Json => ExportFormat::Json,
            ExportFormatArg::Toml => ExportFormat::Toml,
            ExportFormatArg::LlamaServer => ExportFormat::LlamaServer,
        }
    }
}

/// A flag value clap cannot take (clap prints it and exits with code 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FlagError {
    #[error("{0} (examples: 90s, 30m, 8h)")]
    Duration(#[from] humantime::DurationError),
    #[error("is longer than {max}, the longest {what} (examples: 90s, 30m, 8h)")]
    TooLong { max: String, what: &'static str },
    #[error("{0:?} is not a duration (examples: 90s, 30m, 8h)")]
    NotADuration(String),
    #[error("{0:?} is not a time like 07:00")]
    NotATime(String),
    #[error("{0} does not exist today (clock change)")]
    NoSuchTime(String),
}

/// `--grace`, `--max-outage`: at most the longest duration a study file may hold, so that no
/// deadline computed from them can overflow.
fn parse_duration(s: &str) -> Result<Duration, FlagError> {
    bounded_duration(s, crate::study::MAX_DURATION, "duration a flag may hold")
}

/// `--time-budget`: at most what `budget.wall_time` may be (one limit for both,
/// src/study/validate/limits.rs).
fn parse_time_budget(s: &str) -> Result<Duration, FlagError> {
    bounded_duration(
        s,
        crate::study::MAX_WALL_TIME,
        "wall-time budget (as for budget.wall_time)",
    )
}

/// A duration flag, read as a study file's duration strings are (src/study/durations.rs): a
/// value above `max`, or too large for a `Duration` at all ("1e20s" is no duration,
/// "99999999999999999999h" overflows), is an error, never a panic later.
fn bounded_duration(s: &str, max: Duration, what: &'static str) -> Result<Duration, FlagError> {
    match crate::study::text_duration(s, max) {
        Ok(d) => Ok(d),
        Err(crate::study::DurationError::TooLong(max)) => Err(FlagError::TooLong {
            max: crate::study::limit_text(max),
            what,
        }),
        // Not a duration: humantime's own reason ("unknown time unit", ...).
        Err(_) => Err(humantime::parse_duration(s.trim())
            .err()
            .map_or(FlagError::NotADuration(s.to_string()), FlagError::Duration)),
    }
}

fn parse_until(s: &str) -> Result<DateTime<Local>, FlagError> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| FlagError::NotATime(s.to_string()))?;
    let now = Local::now();
    let today = now.date_naive().and_time(t);
    let mut at = Local
        .from_local_datetime(&today)
        .earliest()
        .ok_or_else(|| FlagError::NoSuchTime(s.to_string()))?;
    if at <= now {
        at += chrono::Duration::days(1);
    }
    Ok(at)
}

fn run_options(
    state_dir: PathBuf,
    run_id: Option<String>,
    seed: Option<u64>,
    b: &BudgetArgs,
) -> RunOptions {
    RunOptions {
        state_dir,
        run_id,
        trials: b.trials,
        seed,
        time_budget: b.time_budget,
        until: b.until,
        force: b.force,
        grace: b.grace,
        max_outage: b.max_outage,
        progress: !b.no_progress,
        reports_dir: Some(PathBuf::from("reports")),
        decide: None,
    }
}

async fn run_study(study: Study, path: &Path, opts: RunOptions) -> Result<(), CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(ExitCode::BadInput, format!("{}: {e}", path.display())))?;
    // Before the backend is built: a signal from now on is counted, never fatal.
    let shutdown = install_signal_handlers();
    let signals = shutdown.clone();
    let backend: Box<dyn Backend> = backend::create(&study).await?;
    let export = export_format_for(&study.backend);
    let out = run::run(study, &text, path, opts, backend, shutdown).await?;
    let signals = *signals.borrow();
    end_of_run(&out, export, signals)
}

/// Print how a run ended and exit with the code its stop maps to (`signals::exit_code`).
pub(crate) fn end_of_run(
    out: &run::RunOutcome,
    export: ExportFormatArg,
    signals: u32,
) -> Result<(), CliError> {
    print_outcome(out, export);
    exit_code(&out.stop, signals).map_err(|(code, what)| {
        CliError::new(
            code,
            format!(
                "{what} ({}); `ollama-tuner resume {}` continues the run",
                out.stop_message,
                out.run_dir.display()
            ),
        )
    })
}

/// The export format that configures what a study tuned: a Modelfile for Ollama (and the
/// simulator, which speaks its API), a llama-server command line for llama-server, the
/// parameters as JSON for a command.
pub(crate) fn export_format_for(backend: &crate::study::BackendConfig) -> ExportFormatArg {
    use crate::study::BackendConfig;
    match backend {
        BackendConfig::Ollama { .. } | BackendConfig::Simulator { .. } => {
            ExportFormatArg::Modelfile
        }
        BackendConfig::Llamacpp { .. } => ExportFormatArg::LlamaServer,
        BackendConfig::Command { .. } => ExportFormatArg::Json,
    }
}

pub(crate) fn print_outcome(out: &run::RunOutcome, export_format: ExportFormatArg) {
    // The spelling the `export --format` option accepts.
    let export_format = export_format
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string());
    outln!();
    if out.simulated {
        outln!("(SIMULATED: these numbers come from the built-in Ollama simulator, not from real hardware)");
    }
    outln!("stopped: {} ({})", out.stop.as_str(), out.stop_message);
    outln!("trials:  {}", out.counts.text());
    match &out.best {
        Some(b) => {
            outln!(
                "best:    {} with {} = {:.4}",
                b.trials_text(),
                out.objective_label,
                b.objective
            );
            for (k, v) in &b.params {
                outln!("         {k} = {v}");
            }
            match &out.baseline {
                Some(base) if base.trial == b.trial => {
                    outln!("         (the baseline: the study's defaults)")
                }
                Some(base) if base.objective != 0.0 => outln!(
                    "         {:+.1}% against the baseline (trial {})",
                    (b.objective / base.objective - 1.0) * 100.0,
                    base.trial
                ),
                _ => {}
            }
        }
        None => outln!("best:    no trial succeeded; see the errors in the report"),
    }
    outln!("run:     {}", out.run_dir.display());
    outln!("report:  {}", out.run_dir.join("report.md").display());
    outln!(
        "export:  ollama-tuner export {} --format {export_format}",
        out.run_dir.display()
    );
}

/// Execute a parsed command line. Output goes through `out` (a closed stdout is no failure).
pub async fn dispatch(cli: Cli) -> Result<(), CliError> {
    out::checked(execute(cli).await)
}

async fn execute(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Run {
            space,
            state_dir,
            run_id,
            seed,
            budget,
        } => {
            let study = load_study(&space)?;
            run_study(study, &space, run_options(state_dir, run_id, seed, &budget)).await
        }
        Command::Resume { run_dir, budget } => {
            let run = RunDir::open(&run_dir)?;
            let study_path = run.file(crate::store::STUDY_FILE);
            let study = load_study(&study_path)?;
            let (state_dir, run_id) = decide::run_location(&run_dir)?;
            run_study(
                study,
                &study_path,
                run_options(state_dir, Some(run_id), None, &budget),
            )
            .await
        }
        Command::Validate { files } => {
            let mut failed = None;
            for f in &files {
                match load_study(f) {
                    Ok(s) => {
                        outln!("{}: ok: study {:?}, backend {}, {} parameters, objective {} ({:?}), {} trials",
                            f.display(), s.name, s.backend.kind(), s.space.dims(), s.objective.metric.label(),
                            s.objective.direction, s.budget.trials);
                        for p in &s.space.params {
                            let d = p
                                .default
                                .as_ref()
                                .map(|v| format!(", default {v}"))
                                .unwrap_or_default();
                            outln!("  {:<16} {}{d}", p.name, p.domain_text());
                        }
                    }
                    Err(e) => {
                        errln!("error: {e}");
                        failed = Some(e);
                    }
                }
            }
            match failed {
                Some(e) => Err(CliError::new(
                    ExitCode::BadInput,
                    format!("{} invalid", e.path.display()),
                )),
                None => Ok(()),
            }
        }
        Command::Sim {
            port,
            profile,
            seed,
            time_scale,
        } => crate::cli::sim::serve(port, &profile, seed, time_scale).await,
        Command::Demo {
            trials,
            state_dir,
            profile,
            time_scale,
            seed,
        } => crate::cli::sim::demo(trials, state_dir, &profile, time_scale, seed).await,
        Command::Status { run_dir } => status::status(&run_dir),
        Command::Decide { run_dir, trials } => decide::decide(&run_dir, trials).await,
        Command::Recheck { run_dir, rounds } => decide::recheck(&run_dir, rounds).await,
        Command::Report {
            run_dir,
            format,
            out,
        } => {
            let run = RunDir::open(&run_dir)?;
            let report = crate::report::analyse(&run)
                .map_err(|e| CliError::new(ExitCode::State, e.to_string()))?;
            let text = crate::report::render(&report, format.into());
            write_out(out.as_deref(), &text)
        }
        Command::Export {
            run_dir,
            format,
            rank,
            out,
        } => {
            let run = RunDir::open(&run_dir)?;
            let text = crate::export::export(&run, format.into(), rank)
                .map_err(|e| CliError::new(ExitCode::BadInput, e.to_string()))?;
            write_out(out.as_deref(), &text)
        }
    }
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), CliError> {
    match out {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| CliError::new(ExitCode::State, format!("{}: {e}", p.display()))),
        None => {
            out::write_stdout(text);
            Ok(())
        }
    }
}
