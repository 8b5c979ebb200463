//! Study files (TOML): what to tune, against which backend, for how long, and how to measure.
//!
//! Parsing happens in two steps, ripgrep-style: serde reads a raw structure close to the file
//! (with byte spans on every field), then `validate` turns it into a checked `Study` and reports
//! the first mistake with the file, line, column and field it concerns.

use crate::engine::space::{Param, ParamKind, ParamValue, SearchSpace};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A mistake in a study file, located precisely enough to fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

/// Which statistic of a metric's samples a reference means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Median,
    Mean,
    P95,
    Std,
    Min,
    Max,
}

impl Stat {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stat::Median => "median",
            Stat::Mean => "mean",
            Stat::P95 => "p95",
            Stat::Std => "std",
            Stat::Min => "min",
            Stat::Max => "max",
        }
    }
}

/// `ttft_p95` -> metric `ttft`, statistic p95; `decode_tps` -> median of `decode_tps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricRef {
    pub metric: String,
    pub stat: Stat,
}

impl MetricRef {
    pub fn parse(text: &str) -> MetricRef {
        for (suffix, stat) in [
            ("_median", Stat::Median),
            ("_p50", Stat::Median),
            ("_mean", Stat::Mean),
            ("_p95", Stat::P95),
            ("_std", Stat::Std),
            ("_min", Stat::Min),
            ("_max", Stat::Max),
        ] {
            if let Some(base) = text.strip_suffix(suffix) {
                if !base.is_empty() {
                    return MetricRef {
                        metric: base.to_string(),
                        stat,
                    };
                }
            }
        }
        MetricRef {
            metric: text.to_string(),
            stat: Stat::Median,
        }
    }

    pub fn label(&self) -> String {
        if self.stat == Stat::Median {
            self.metric.clone()
        } else {
            format!("{}_{}", self.metric, self.stat.as_str())
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">=")]
    AtLeast,
}

/// An outcome constraint such as `ttft_p95 <= 0.5s`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub metric: MetricRef,
    pub op: Comparison,
    pub bound: f64,
    pub text: String,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let (lhs, op, rhs) = if let Some((l, r)) = text.split_once("<=") {
            (l, Comparison::AtMost, r)
        } else if let Some((l, r)) = text.split_once(">=") {
            (l, Comparison::AtLeast, r)
        } else {
            return Err(format!(
                "constraint {text:?} must look like `METRIC <= VALUE` or `METRIC >= VALUE`, for example \"ttft_p95 <= 0.5s\""
            ));
        };
        let lhs = lhs.trim();
        if lhs.is_empty() || !lhs.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("constraint {text:?}: {lhs:?} is not a metric name"));
        }
        let bound = parse_quantity(rhs.trim()).ok_or_else(|| {
            format!(
                "constraint {text:?}: {:?} is not a number (units allowed: s, ms, us)",
                rhs.trim()
            )
        })?;
        Ok(Constraint {
            metric: MetricRef::parse(lhs),
            op,
            bound,
            text: text.trim().to_string(),
        })
    }

    /// Signed slack: <= 0 when satisfied (the convention of Optuna's constraints_func).
    pub fn violation(&self, value: f64) -> f64 {
        match self.op {
            Comparison::AtMost => value - self.bound,
            Comparison::AtLeast => self.bound - value,
        }
    }
}

/// A number with an optional time unit, in seconds: "0.5s", "500ms", "250us", "2".
pub fn parse_quantity(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(|x| x * scale)
}

/// How the GP sees the objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// log for known positive metrics (throughputs and durations), none otherwise.
    Auto,
    Log,
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub metric: MetricRef,
    pub direction: Direction,
    pub constraints: Vec<Constraint>,
    pub transform: Transform,
}

impl Objective {
    /// Whether the GP should model log(value): tokens/s and seconds are positive with
    /// multiplicative noise (bayesopt.md, "Practical rules").
    pub fn use_log(&self, values: &[f64]) -> bool {
        let positive = values.iter().all(|v| *v > 0.0);
        match self.transform {
            Transform::Log => positive,
            Transform::None => false,
            Transform::Auto => positive && is_positive_metric(&self.metric.metric),
        }
    }
}

/// Metrics that are rates or durations, hence positive with multiplicative noise.
pub fn is_positive_metric(name: &str) -> bool {
    name.ends_with("_tps")
        || name.ends_with("_s")
        || matches!(
            name,
            "ttft" | "load" | "total" | "latency" | "tps" | "throughput"
        )
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub trials: usize,
    #[serde(with = "opt_secs")]
    pub wall_time: Option<Duration>,
    /// Consecutive failed trials (or outage retries) before the run gives up.
    pub max_consecutive_failures: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Prompts {
    Builtin,
    File(PathBuf),
}

/// The measurement protocol shared by the server backends (ollama, llamacpp).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Measured requests per trial.
    pub repeats: usize,
    /// Requests sent and discarded after every (re)load.
    pub warmup: usize,
    /// Fixed generation length so decode speeds are comparable.
    pub num_predict: u32,
    pub prompts: Prompts,
    /// Unique prefix per request, defeating prefix caches (ollama-api.md).
    pub nonce: bool,
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// Retries of a transient fault (outage, 5xx, broken stream) before the run waits longer.
    pub max_retries: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            repeats: 3,
            warmup: 1,
            num_predict: 128,
            prompts: Prompts::Builtin,
            nonce: true,
            request_timeout: Duration::from_secs(120),
            max_retries: 5,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    Ollama {
        url: String,
        keep_alive: String,
    },
    /// The built-in Ollama simulator, started in-process and driven through the ollama backend.
    Simulator {
        profile: String,
        time_scale: f64,
        keep_alive: String,
    },
    Llamacpp {
        /// Path of llama-server; empty means $LLAMA_SERVER.
        server: String,
        /// Path of the GGUF model; empty means $LLAMA_MODEL.
        model_path: String,
        /// Attach to a running server instead of managing one (sampling options only).
        attach: Option<String>,
        #[serde(with = "secs")]
        startup_timeout: Duration,
        extra_args: Vec<String>,
    },
    Command {
        argv: Vec<String>,
        #[serde(with = "secs")]
        timeout: Duration,
        env: BTreeMap<String, String>,
    },
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Ollama { .. } => "ollama",
            BackendConfig::Simulator { .. } => "simulator",
            BackendConfig::Llamacpp { .. } => "llamacpp",
            BackendConfig::Command { .. } => "command",
        }
    }
}

/// Knobs of the optimizer itself; defaults follow bayesopt.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerSettings {
    /// Quasi-random trials before the GP takes over; 0 = automatic (depends on dimension).
    pub initial_trials: usize,
    /// Random candidates scored per ask before local refinement.
    pub candidates: usize,
    /// Measure an already measured configuration again when the optimizer picks it.
    pub allow_repeats: bool,
    /// Weigh improvement by the expected cost of a reload (see acquisition.rs).
    pub reload_aware: bool,
    /// "gp" (default) or "random" (the baseline the benchmark compares against).
    pub strategy: String,
    /// Measure a configuration statistically tied for the lead up to this many times in all
    /// (optimizer.rs `confirmation`); 1 = never re-measure (the engine's default, and the
    /// command backend's), `SERVER_CONFIRM` for inference-server backends.
    #[serde(default = "default_confirm")]
    pub confirm: usize,
}

fn default_confirm() -> usize {
    1
}

/// Default `optimizer.confirm` of studies on an inference server.
pub const SERVER_CONFIRM: usize = 3;

impl Default for OptimizerSettings {
    fn default() -> Self {
        OptimizerSettings {
            initial_trials: 0,
            candidates: 2048,
            allow_repeats: false,
            reload_aware: true,
            strategy: "gp".into(),
            confirm: default_confirm(),
        }
    }
}

/// A checked study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub name: String,
    pub model: String,
    pub seed: u64,
    pub backend: BackendConfig,
    pub budget: Budget,
    pub objective: Objective,
    pub protocol: Protocol,
    pub optimizer: OptimizerSettings,
    pub space: SearchSpace,
    /// Parameters that force a reload when they change (runner / load-time options).
    pub runner_params: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Raw file structure

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    study: Spanned<RawStudy>,
    backend: Option<Spanned<RawBackend>>,
    budget: Option<Spanned<RawBudget>>,
    objective: Option<Spanned<RawObjective>>,
    protocol: Option<Spanned<RawProtocol>>,
    optimizer: Option<Spanned<RawOptimizer>>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<RawParam>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudy {
    name: Spanned<String>,
    #[serde(default)]
    model: Option<Spanned<String>>,
    #[serde(default)]
    seed: Option<Spanned<i64>>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    keep_alive: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    time_scale: Option<Spanned<f64>>,
    server: Option<Spanned<String>>,
    model_path: Option<Spanned<String>>,
    attach: Option<Spanned<String>>,
    startup_timeout: Option<Spanned<toml::Value>>,
    extra_args: Option<Spanned<Vec<String>>>,
    argv: Option<Spanned<Vec<String>>>,
    timeout: Option<Spanned<toml::Value>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    runner_params: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    trials: Option<Spanned<i64>>,
    wall_time: Option<Spanned<toml::Value>>,
    max_consecutive_failures: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjective {
    metric: Spanned<String>,
    direction: Option<Spanned<String>>,
    #[serde(default)]
    constraints: Vec<Spanned<String>>,
    transform: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtocol {
    repeats: Option<Spanned<i64>>,
    warmup: Option<Spanned<i64>>,
    num_predict: Option<Spanned<i64>>,
    prompts: Option<Spanned<String>>,
    nonce: Option<bool>,
    request_timeout: Option<Spanned<toml::Value>>,
    max_retries: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptimizer {
    initial_trials: Option<Spanned<i64>>,
    candidates: Option<Spanned<i64>>,
    allow_repeats: Option<bool>,
    reload_aware: Option<bool>,
    strategy: Option<Spanned<String>>,
    confirm: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    low: Option<Spanned<toml::Value>>,
    high: Option<Spanned<toml::Value>>,
    log: Option<Spanned<bool>>,
    step: Option<Spanned<toml::Value>>,
    choices: Option<Spanned<Vec<toml::Value>>>,
    default: Option<Spanned<toml::Value>>,
    /// Free text for humans; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

/// Runner (load-time) options of Ollama: changing one forces a model reload
/// (server/sched.go `needsReload`, ollama-api.md).
pub const OLLAMA_RUNNER_OPTIONS: &[&str] = &[
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "use_mmap",
    "num_thread",
];

/// Load-time options of llama-server (a change needs a restart): the `restart` rows of the
/// table in src/domain/llamaserver.rs.
pub const LLAMACPP_LOAD_OPTIONS: &[&str] = crate::domain::llamaserver::LOAD_OPTION_NAMES;

struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn err(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, column)
}

fn duration_value(v: &toml::Value) -> Option<Duration> {
    match v {
        toml::Value::Integer(i) if *i >= 0 => Some(Duration::from_secs(*i as u64)),
        toml::Value::Float(f) if *f >= 0.0 && f.is_finite() => Some(Duration::from_secs_f64(*f)),
        toml::Value::String(s) => humantime::parse_duration(s.trim()).ok(),
        _ => None,
    }
}

/// Read and check a study file.
pub fn load_study(path: &Path) -> Result<Study, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the study file: {e}"),
    })?;
    parse_study(path, &text)
}

/// Parse and check study text; `path` is only used in error messages.
pub fn parse_study(path: &Path, text: &str) -> Result<Study, ConfigError> {
    let loc = Locator { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        let field = field_from_message(&msg);
        loc.err(span, &field, msg)
    })?;
    validate(&loc, raw)
}

fn field_from_message(msg: &str) -> String {
    // toml's messages name the unknown field in backticks: "unknown field `lo`, expected ...".
    msg.split('`').nth(1).unwrap_or("").to_string()
}

fn positive_int(
    loc: &Locator,
    v: &Spanned<i64>,
    field: &str,
    min: i64,
) -> Result<usize, ConfigError> {
    if *v.get_ref() < min {
        return Err(loc.err(
            v.span(),
            field,
            format!("must be at least {min}, got {}", v.get_ref()),
        ));
    }
    Ok(*v.get_ref() as usize)
}

fn validate(loc: &Locator, raw: RawFile) -> Result<Study, ConfigError> {
    let study_span = raw.study.span();
    let rs = raw.study.into_inner();
    let name = rs.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(loc.err(rs.name.span(), "study.name", "must not be empty"));
    }
    let _ = rs.description;
    let seed = match &rs.seed {
        Some(s) if *s.get_ref() < 0 => return Err(loc.err(s.span(), "study.seed", "must be >= 0")),
        Some(s) => *s.get_ref() as u64,
        None => 0,
    };
    let model = rs
        .model
        .as_ref()
        .map(|m| m.get_ref().clone())
        .unwrap_or_default();

    // Backend
    let Some(rb) = raw.backend else {
        return Err(loc.err(study_span, "backend", "missing [backend] table (kind = \"ollama\" | \"simulator\" | \"llamacpp\" | \"command\")"));
    };
    let rb = rb.into_inner();
    let kind = rb.kind.get_ref().as_str();
    let dur = |v: &Option<Spanned<toml::Value>>,
               field: &str,
               default: u64|
     -> Result<Duration, ConfigError> {
        match v {
            None => Ok(Duration::from_secs(default)),
            Some(s) => duration_value(s.get_ref()).ok_or_else(|| {
                loc.err(
                    s.span(),
                    field,
                    "must be a duration such as 30, \"90s\" or \"2m\"",
                )
            }),
        }
    };
    let s = |v: &Option<Spanned<String>>| v.as_ref().map(|x| x.get_ref().clone());
    let mut runner_params: Vec<String> = Vec::new();
    let backend = match kind {
        "ollama" => {
            runner_params = OLLAMA_RUNNER_OPTIONS.iter().map(|s| s.to_string()).collect();
            BackendConfig::Ollama {
                url: s(&rb.url).unwrap_or_else(|| "http://127.0.0.1:11434".into()),
                keep_alive: s(&rb.keep_alive).unwrap_or_else(|| "30m".into()),
            }
        }
        "simulator" => {
            runner_params = OLLAMA_RUNNER_OPTIONS.iter().map(|s| s.to_string()).collect();
            let time_scale = rb.time_scale.as_ref().map(|t| *t.get_ref()).unwrap_or(1.0);
            if time_scale.is_nan() || time_scale <= 0.0 {
                let sp = rb.time_scale.as_ref().map(|t| t.span()).unwrap_or(0..0);
                return Err(loc.err(sp, "backend.time_scale", "must be > 0"));
            }
            BackendConfig::Simulator {
                profile: s(&rb.profile).unwrap_or_else(|| "gemma3-4b".into()),
                time_scale,
                keep_alive: s(&rb.keep_alive).unwrap_or_else(|| "30m".into()),
            }
        }
        "llamacpp" => {
            runner_params = LLAMACPP_LOAD_OPTIONS.iter().map(|s| s.to_string()).collect();
            BackendConfig::Llamacpp {
                server: s(&rb.server).unwrap_or_default(),
                model_path: s(&rb.model_path).unwrap_or_default(),
                attach: s(&rb.attach),
                startup_timeout: dur(&rb.startup_timeout, "backend.startup_timeout", 120)?,
                extra_args: rb.extra_args.as_ref().map(|a| a.get_ref().clone()).unwrap_or_default(),
            }
        }
        "command" => {
            let Some(argv) = rb.argv.as_ref() else {
                return Err(loc.err(rb.kind.span(), "backend.argv", "the command backend needs argv = [\"program\", \"arg\", ...]"));
            };
            if argv.get_ref().is_empty() || argv.get_ref()[0].trim().is_empty() {
                return Err(loc.err(argv.span(), "backend.argv", "must name a program to run"));
            }
            BackendConfig::Command {
                argv: argv.get_ref().clone(),
                timeout: dur(&rb.timeout, "backend.timeout", 600)?,
                env: rb.env.as_ref().map(|e| e.get_ref().clone()).unwrap_or_default(),
            }
        }
        other => {
            return Err(loc.err(
                rb.kind.span(),
                "backend.kind",
                format!("unknown backend {other:?}; use \"ollama\", \"simulator\", \"llamacpp\" or \"command\""),
            ))
        }
    };
    if let Some(rp) = &rb.runner_params {
        runner_params = rp.get_ref().clone();
    }
    // Fields that belong to another backend kind are mistakes worth reporting.
    let foreign: [(&str, bool, Option<std::ops::Range<usize>>); 5] = [
        (
            "url",
            matches!(backend, BackendConfig::Ollama { .. }),
            rb.url.as_ref().map(|x| x.span()),
        ),
        (
            "profile",
            matches!(backend, BackendConfig::Simulator { .. }),
            rb.profile.as_ref().map(|x| x.span()),
        ),
        (
            "argv",
            matches!(backend, BackendConfig::Command { .. }),
            rb.argv.as_ref().map(|x| x.span()),
        ),
        (
            "model_path",
            matches!(backend, BackendConfig::Llamacpp { .. }),
            rb.model_path.as_ref().map(|x| x.span()),
        ),
        (
            "server",
            matches!(backend, BackendConfig::Llamacpp { .. }),
            rb.server.as_ref().map(|x| x.span()),
        ),
    ];
    for (field, ok, span) in foreign {
        if let (false, Some(sp)) = (ok, span) {
            return Err(loc.err(
                sp,
                &format!("backend.{field}"),
                format!("not a setting of the {kind} backend"),
            ));
        }
    }

    // Budget
    let (trials, wall_time, max_fail) = match raw.budget {
        None => (30, None, 10),
        Some(b) => {
            let b = b.into_inner();
            let trials = match &b.trials {
                Some(t) => positive_int(loc, t, "budget.trials", 1)?,
                None => 30,
            };
            let wall = match &b.wall_time {
                Some(w) => Some(duration_value(w.get_ref()).ok_or_else(|| {
                    loc.err(
                        w.span(),
                        "budget.wall_time",
                        "must be a duration such as \"8h\" or \"90m\"",
                    )
                })?),
                None => None,
            };
            let mf = match &b.max_consecutive_failures {
                Some(m) => positive_int(loc, m, "budget.max_consecutive_failures", 1)?,
                None => 10,
            };
            (trials, wall, mf)
        }
    };

    // Objective
    let default_metric = match backend {
        BackendConfig::Command { .. } => "value",
        _ => "decode_tps",
    };
    let objective = match raw.objective {
        None => Objective {
            metric: MetricRef::parse(default_metric),
            direction: Direction::Maximize,
            constraints: vec![],
            transform: Transform::Auto,
        },
        Some(o) => {
            let o = o.into_inner();
            let m = o.metric.get_ref().trim();
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(loc.err(
                    o.metric.span(),
                    "objective.metric",
                    "must be a metric name such as \"decode_tps\"",
                ));
            }
            let direction = match o.direction.as_ref().map(|d| d.get_ref().as_str()) {
                None | Some("maximize") | Some("max") => Direction::Maximize,
                Some("minimize") | Some("min") => Direction::Minimize,
                Some(other) => {
                    return Err(loc.err(
                        o.direction.as_ref().unwrap().span(),
                        "objective.direction",
                        format!("{other:?} is neither \"maximize\" nor \"minimize\""),
                    ))
                }
            };
            let mut constraints = vec![];
            for c in &o.constraints {
                constraints.push(
                    Constraint::parse(c.get_ref())
                        .map_err(|m| loc.err(c.span(), "objective.constraints", m))?,
                );
            }
            let transform = match o.transform.as_ref().map(|t| t.get_ref().as_str()) {
                None | Some("auto") => Transform::Auto,
                Some("log") => Transform::Log,
                Some("none") => Transform::None,
                Some(other) => {
                    return Err(loc.err(
                        o.transform.as_ref().unwrap().span(),
                        "objective.transform",
                        format!("{other:?} is not one of \"auto\", \"log\", \"none\""),
                    ))
                }
            };
            Objective {
                metric: MetricRef::parse(m),
                direction,
                constraints,
                transform,
            }
        }
    };

    // Protocol
    let mut protocol = Protocol::default();
    if matches!(backend, BackendConfig::Command { .. }) {
        // A black-box program is usually deterministic or does its own averaging.
        protocol.repeats = 1;
        protocol.warmup = 0;
    }
    if let Some(p) = raw.protocol {
        let p = p.into_inner();
        if let Some(r) = &p.repeats {
            protocol.repeats = positive_int(loc, r, "protocol.repeats", 1)?;
        }
        if let Some(w) = &p.warmup {
            protocol.warmup = positive_int(loc, w, "protocol.warmup", 0)?;
        }
        if let Some(n) = &p.num_predict {
            protocol.num_predict = positive_int(loc, n, "protocol.num_predict", 1)? as u32;
        }
        if let Some(pr) = &p.prompts {
            protocol.prompts = match pr.get_ref().as_str() {
                "builtin" => Prompts::Builtin,
                file => {
                    let base = loc.path.parent().unwrap_or(Path::new("."));
                    let full = base.join(file);
                    if !full.is_file() {
                        return Err(loc.err(pr.span(), "protocol.prompts", format!("no prompt file at {} (use \"builtin\" or a path relative to the study file)", full.display())));
                    }
                    Prompts::File(full)
                }
            };
        }
        if let Some(n) = p.nonce {
            protocol.nonce = n;
        }
        protocol.request_timeout = dur(&p.request_timeout, "protocol.request_timeout", 120)?;
        if protocol.request_timeout.is_zero() {
            let sp = p.request_timeout.as_ref().map(|x| x.span()).unwrap_or(0..0);
            return Err(loc.err(sp, "protocol.request_timeout", "must be longer than zero"));
        }
        if let Some(m) = &p.max_retries {
            protocol.max_retries = positive_int(loc, m, "protocol.max_retries", 0)?;
        }
    }

    // Optimizer
    let mut optimizer = OptimizerSettings::default();
    // Inference servers measure with a few percent of noise (ollama-api.md), so a run against
    // one re-measures statistically tied leaders by default; a command is taken as exact
    // unless the study says otherwise.
    if !matches!(backend, BackendConfig::Command { .. }) {
        optimizer.confirm = SERVER_CONFIRM;
    }
    if let Some(o) = raw.optimizer {
        let o = o.into_inner();
        if let Some(i) = &o.initial_trials {
            optimizer.initial_trials = positive_int(loc, i, "optimizer.initial_trials", 0)?;
        }
        if let Some(c) = &o.candidates {
            optimizer.candidates = positive_int(loc, c, "optimizer.candidates", 16)?;
        }
        if let Some(a) = o.allow_repeats {
            optimizer.allow_repeats = a;
        }
        if let Some(r) = o.reload_aware {
            optimizer.reload_aware = r;
        }
        if let Some(c) = &o.confirm {
            optimizer.confirm = positive_int(loc, c, "optimizer.confirm", 1)?;
        }
        if let Some(s) = &o.strategy {
            match s.get_ref().as_str() {
                "gp" | "random" => optimizer.strategy = s.get_ref().clone(),
                other => {
                    return Err(loc.err(
                        s.span(),
                        "optimizer.strategy",
                        format!("{other:?} is not \"gp\" or \"random\""),
                    ))
                }
            }
        }
    }

    // Parameters
    if raw.params.is_empty() {
        return Err(loc.err(
            study_span,
            "params",
            "no parameters: add at least one [params.NAME] table",
        ));
    }
    let mut params = Vec::new();
    // Keep the order of the file, not the alphabetical order of the map.
    let mut entries: Vec<(String, Spanned<RawParam>)> = raw.params.into_iter().collect();
    entries.sort_by_key(|(_, p)| p.span().start);
    for (pname, rp) in entries {
        let span = rp.span();
        params.push(validate_param(loc, &pname, span, rp.into_inner())?);
    }
    let space = SearchSpace { params };

    Ok(Study {
        name,
        model,
        seed,
        backend,
        budget: Budget {
            trials,
            wall_time,
            max_consecutive_failures: max_fail,
        },
        objective,
        protocol,
        optimizer,
        space,
        runner_params,
    })
}

fn validate_param(
    loc: &Locator,
    name: &str,
    span: std::ops::Range<usize>,
    rp: RawParam,
) -> Result<Param, ConfigError> {
    let f = |field: &str| format!("params.{name}.{field}");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(loc.err(
            span,
            &format!("params.{name}"),
            "parameter names use letters, digits and _ only",
        ));
    }
    let kind_text = rp.kind.get_ref().as_str();
    let not_for = |field: &str,
                   present: Option<std::ops::Range<usize>>|
     -> Result<(), ConfigError> {
        match present {
            Some(sp) => Err(loc.err(sp, &f(field), format!("not allowed for type {kind_text:?}"))),
            None => Ok(()),
        }
    };
    let num = |v: &Spanned<toml::Value>, field: &str, want_int: bool| -> Result<f64, ConfigError> {
        match v.get_ref() {
            toml::Value::Integer(i) => Ok(*i as f64),
            toml::Value::Float(x) if !want_int && x.is_finite() => Ok(*x),
            other => Err(loc.err(
                v.span(),
                &f(field),
                format!(
                    "must be {}, got {}",
                    if want_int { "an integer" } else { "a number" },
                    other.type_str()
                ),
            )),
        }
    };
    let kind = match kind_text {
        "int" | "float" => {
            not_for("choices", rp.choices.as_ref().map(|c| c.span()))?;
            let want_int = kind_text == "int";
            let (Some(lo), Some(hi)) = (&rp.low, &rp.high) else {
                return Err(loc.err(
                    rp.kind.span(),
                    &f("low"),
                    "numeric parameters need both low and high",
                ));
            };
            let low = num(lo, "low", want_int)?;
            let high = num(hi, "high", want_int)?;
            if low > high {
                return Err(loc.err(
                    hi.span(),
                    &f("high"),
                    format!("low ({low}) is greater than high ({high})"),
                ));
            }
            let log = rp.log.as_ref().map(|l| *l.get_ref()).unwrap_or(false);
            if log && low <= 0.0 {
                return Err(loc.err(
                    lo.span(),
                    &f("low"),
                    format!("a log-scale parameter needs low > 0, got {low}"),
                ));
            }
            let step = match &rp.step {
                Some(s) => {
                    let v = num(s, "step", want_int)?;
                    if v <= 0.0 {
                        return Err(loc.err(s.span(), &f("step"), "must be > 0"));
                    }
                    Some(v)
                }
                None => None,
            };
            if want_int {
                ParamKind::Int {
                    low: low as i64,
                    high: high as i64,
                    log,
                    step: step.map(|s| s as i64).unwrap_or(1),
                }
            } else {
                ParamKind::Float {
                    low,
                    high,
                    log,
                    step,
                }
            }
        }
        "categorical" => {
            for (field, sp) in [
                ("low", rp.low.as_ref().map(|x| x.span())),
                ("high", rp.high.as_ref().map(|x| x.span())),
                ("log", rp.log.as_ref().map(|x| x.span())),
                ("step", rp.step.as_ref().map(|x| x.span())),
            ] {
                not_for(field, sp)?;
            }
            let Some(ch) = &rp.choices else {
                return Err(loc.err(
                    rp.kind.span(),
                    &f("choices"),
                    "a categorical parameter needs choices = [...]",
                ));
            };
            if ch.get_ref().is_empty() {
                return Err(loc.err(ch.span(), &f("choices"), "must list at least one choice"));
            }
            let mut choices = Vec::new();
            for v in ch.get_ref() {
                let pv = toml_to_param(v).ok_or_else(|| {
                    loc.err(
                        ch.span(),
                        &f("choices"),
                        format!(
                            "choices must be strings, numbers or booleans, got {}",
                            v.type_str()
                        ),
                    )
                })?;
                if choices.contains(&pv) {
                    return Err(loc.err(
                        ch.span(),
                        &f("choices"),
                        format!("choice {pv} is listed twice"),
                    ));
                }
                choices.push(pv);
            }
            ParamKind::Categorical { choices }
        }
        "bool" => {
            for (field, sp) in [
                ("low", rp.low.as_ref().map(|x| x.span())),
                ("high", rp.high.as_ref().map(|x| x.span())),
                ("log", rp.log.as_ref().map(|x| x.span())),
                ("step", rp.step.as_ref().map(|x| x.span())),
                ("choices", rp.choices.as_ref().map(|x| x.span())),
            ] {
                not_for(field, sp)?;
            }
            ParamKind::Bool
        }
        other => {
            return Err(loc.err(
                rp.kind.span(),
                &f("type"),
                format!(
                    "unknown type {other:?}; use \"int\", \"float\", \"categorical\" or \"bool\""
                ),
            ))
        }
    };
    let mut param = Param {
        name: name.to_string(),
        kind,
        default: None,
    };
    if let Some(d) = &rp.default {
        let v = toml_to_param(d.get_ref());
        let v = match (&param.kind, v) {
            // A whole-number default of a float parameter is a float.
            (ParamKind::Float { .. }, Some(ParamValue::Int(i))) => {
                Some(ParamValue::Float(i as f64))
            }
            (_, v) => v,
        };
        match v {
            Some(v) if param.admits(&v) => param.default = Some(v),
            Some(v) => {
                return Err(loc.err(
                    d.span(),
                    &f("default"),
                    format!("default {v} is not a legal value ({})", param.domain_text()),
                ))
            }
            None => {
                return Err(loc.err(
                    d.span(),
                    &f("default"),
                    "must be a string, number or boolean",
                ))
            }
        }
    }
    Ok(param)
}

fn toml_to_param(v: &toml::Value) -> Option<ParamValue> {
    match v {
        toml::Value::Boolean(b) => Some(ParamValue::Bool(*b)),
        toml::Value::Integer(i) => Some(ParamValue::Int(*i)),
        toml::Value::Float(f) if f.is_finite() => Some(ParamValue::Float(*f)),
        toml::Value::String(s) => Some(ParamValue::Str(s.clone())),
        _ => None,
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(v.max(0.0)))
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        Ok(v.map(|x| Duration::from_secs_f64(x.max(0.0))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[study]
name = "t"
model = "gemma3:latest"
seed = 7

[backend]
kind = "ollama"

[objective]
metric = "decode_tps"
constraints = ["ttft_p95 <= 500ms"]

[params.num_ctx]
type = "int"
low = 512
high = 8192
log = true
default = 2048

[params.temperature]
type = "float"
low = 0.0
high = 1.5
default = 0.8

[params.kv]
type = "categorical"
choices = ["f16", "q8_0"]
"#;

    fn err(text: &str) -> ConfigError {
        parse_study(Path::new("x.toml"), text).expect_err("should fail")
    }

    #[test]
    fn good_file_parses_in_file_order() {
        let s = parse_study(Path::new("x.toml"), GOOD).unwrap();
        let names: Vec<_> = s.space.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["num_ctx", "temperature", "kv"]);
        assert_eq!(s.objective.constraints[0].bound, 0.5);
        assert_eq!(s.objective.constraints[0].metric.stat, Stat::P95);
        assert_eq!(s.seed, 7);
        assert!(s.runner_params.contains(&"num_ctx".to_string()));
    }

    #[test]
    fn unknown_key_names_line_and_field() {
        let e = err(&GOOD.replace("log = true", "lg = true"));
        assert_eq!(e.line, 18, "{e}");
        assert!(e.to_string().contains("lg"), "{e}");
    }

    #[test]
    fn low_above_high() {
        let e = err(&GOOD.replace("high = 8192", "high = 100"));
        assert!(e.message.contains("greater than high"), "{e}");
        assert_eq!(e.field, "params.num_ctx.high");
        assert_eq!(e.line, 17);
    }

    #[test]
    fn log_with_nonpositive_low() {
        let e = err(&GOOD.replace("low = 512", "low = 0"));
        assert!(e.message.contains("log-scale"), "{e}");
        assert_eq!(e.field, "params.num_ctx.low");
    }

    #[test]
    fn default_outside_bounds() {
        let e = err(&GOOD.replace("default = 2048", "default = 100000"));
        assert_eq!(e.field, "params.num_ctx.default");
        assert_eq!(e.line, 19);
    }

    #[test]
    fn empty_categorical() {
        let e = err(&GOOD.replace(r#"choices = ["f16", "q8_0"]"#, "choices = []"));
        assert_eq!(e.field, "params.kv.choices");
    }

    #[test]
    fn duplicate_parameter_is_a_toml_error_with_line() {
        let text = format!("{GOOD}\n[params.kv]\ntype = \"bool\"\n");
        let e = err(&text);
        assert!(e.line > 30, "{e}");
        assert!(e.message.to_lowercase().contains("duplicate"), "{e}");
    }

    #[test]
    fn wrong_types() {
        let e = err(&GOOD.replace("low = 512", "low = \"512\""));
        assert!(e.message.contains("integer"), "{e}");
        let e = err(&GOOD.replace("low = 512", "low = 512.5"));
        assert!(e.message.contains("integer"), "{e}");
        let e = err(&GOOD.replace("seed = 7", "seed = \"seven\""));
        assert!(e.line == 5, "{e}");
    }

    #[test]
    fn bad_constraint_and_direction() {
        let e = err(&GOOD.replace("ttft_p95 <= 500ms", "ttft_p95 < 1"));
        assert_eq!(e.field, "objective.constraints");
        let e = err(&GOOD.replace(
            "metric = \"decode_tps\"",
            "metric = \"decode_tps\"\ndirection = \"up\"",
        ));
        assert_eq!(e.field, "objective.direction");
    }

    #[test]
    fn command_backend_needs_argv() {
        let e = err(&GOOD.replace("kind = \"ollama\"", "kind = \"command\""));
        assert_eq!(e.field, "backend.argv");
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("0.5s"), Some(0.5));
        assert_eq!(parse_quantity("250ms"), Some(0.25));
        assert_eq!(parse_quantity("3"), Some(3.0));
        assert_eq!(parse_quantity("fast"), None);
        assert_eq!(MetricRef::parse("ttft_p95").metric, "ttft");
        assert_eq!(MetricRef::parse("decode_tps").stat, Stat::Median);
    }
}
