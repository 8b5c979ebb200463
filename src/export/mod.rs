//! Export of one ranked configuration of a run, ready to use: an Ollama Modelfile, the JSON
//! options object of the Ollama API, a TOML `[options]` fragment, or a llama-server command line.
//!
//! The rank is the report's (`report.md`, 1-based: trials that met the constraints first). Each
//! format writes every tuned value explicitly (ollama-api.md: documented defaults are stale;
//! llama-server.md: unset load options are rewritten by `--fit`) and says in comments where it
//! came from, so a Modelfile found months later still tells which run and trial it is.

use crate::engine::space::{format_float, ParamValue};
use crate::report::{self, fmt_num, fmt_pct, unit_of, Report, ReportError, Row, RowClass, Tie};
use crate::store::RunDir;
use std::fmt::Write;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Modelfile,
    Json,
    Toml,
    LlamaServer,
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "modelfile" => Ok(ExportFormat::Modelfile),
            "json" => Ok(ExportFormat::Json),
            "toml" => Ok(ExportFormat::Toml),
            "llama-server" | "llamaserver" => Ok(ExportFormat::LlamaServer),
            other => Err(format!(
                "unknown export format {other:?}: use modelfile, json, toml or llama-server"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("nothing to export: none of the {trials} trial(s) of this run produced {objective} (see the Failures section of report.md)")]
    NothingRanked { trials: usize, objective: String },
    #[error("there is no rank {rank}: this run has {available} ranked configuration(s) (trials that ran and produced {objective}); pick a rank from 1 to {available}, as listed in report.md")]
    RankOutOfRange {
        rank: usize,
        available: usize,
        objective: String,
    },
}

/// Type of an Ollama option as `api.Options` declares it (and the Modelfile parser checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionType {
    Int,
    Float,
    Bool,
    /// `stop`: one `PARAMETER stop "..."` line per sequence, a list in JSON.
    StringList,
}

/// Every valid Ollama option (the JSON names of `api.Options` and its embedded `Runner`,
/// ollama-api.md). Anything else makes `ollama create` fail with `unknown parameter`.
pub const OLLAMA_OPTIONS: &[(&str, OptionType)] = &[
    ("num_ctx", OptionType::Int),
    ("num_batch", OptionType::Int),
    ("num_gpu", OptionType::Int),
    ("main_gpu", OptionType::Int),
    ("use_mmap", OptionType::Bool),
    ("num_thread", OptionType::Int),
    ("num_keep", OptionType::Int),
    ("seed", OptionType::Int),
    ("num_predict", OptionType::Int),
    ("top_k", OptionType::Int),
    ("top_p", OptionType::Float),
    ("min_p", OptionType::Float),
    ("typical_p", OptionType::Float),
    ("repeat_last_n", OptionType::Int),
    ("temperature", OptionType::Float),
    ("repeat_penalty", OptionType::Float),
    ("presence_penalty", OptionType::Float),
    ("frequency_penalty", OptionType::Float),
    ("stop", OptionType::StringList),
];

pub fn ollama_option_type(name: &str) -> Option<OptionType> {
    OLLAMA_OPTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// llama.cpp parameter names with a per-model Ollama equivalent (for a Modelfile made from a
/// llama-server run).
const LLAMACPP_TO_OLLAMA: &[(&str, &str)] = &[
    ("ctx_size", "num_ctx"),
    ("threads", "num_thread"),
    ("batch_size", "num_batch"),
    ("n_gpu_layers", "num_gpu"),
    ("n_predict", "num_predict"),
    ("temp", "temperature"),
];

/// llama.cpp load options that Ollama only has server-wide, as environment variables.
fn ollama_server_wide(name: &str, value: &ParamValue) -> Option<String> {
    match name {
        "flash_attn" => {
            let on = flash_attn_text(value) == "on";
            Some(format!("OLLAMA_FLASH_ATTENTION={}", if on { 1 } else { 0 }))
        }
        "cache_type_k" | "cache_type_v" => Some(format!("OLLAMA_KV_CACHE_TYPE={value}")),
        "parallel" => Some(format!("OLLAMA_NUM_PARALLEL={value}")),
        _ => None,
    }
}

/// A value converted to an Ollama option's type, or why it cannot be.
fn ollama_value(value: &ParamValue, ty: OptionType) -> Result<serde_json::Value, String> {
    use serde_json::json;
    match (ty, value) {
        (OptionType::Int, ParamValue::Int(i)) => Ok(json!(i)),
        (OptionType::Int, ParamValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9e15 => {
            Ok(json!(*f as i64))
        }
        (OptionType::Int, ParamValue::Str(s)) if s.trim().parse::<i64>().is_ok() => {
            Ok(json!(s.trim().parse::<i64>().unwrap_or_default()))
        }
        (OptionType::Int, v) => Err(format!(
            "{v} is not an integer, and Ollama parses integer options strictly"
        )),
        (OptionType::Float, ParamValue::Int(i)) => Ok(json!(*i as f64)),
        (OptionType::Float, ParamValue::Float(f)) if f.is_finite() => Ok(json!(f)),
        (OptionType::Float, ParamValue::Str(s))
            if s.trim().parse::<f64>().is_ok_and(f64::is_finite) =>
        {
            Ok(json!(s.trim().parse::<f64>().unwrap_or_default()))
        }
        (OptionType::Float, v) => Err(format!("{v} is not a number")),
        (OptionType::Bool, ParamValue::Bool(b)) => Ok(json!(b)),
        (OptionType::Bool, ParamValue::Int(i)) if *i == 0 || *i == 1 => Ok(json!(*i == 1)),
        (OptionType::Bool, ParamValue::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "1" => Ok(json!(true)),
            "false" | "off" | "0" => Ok(json!(false)),
            _ => Err(format!("{s} is not true or false")),
        },
        (OptionType::Bool, v) => Err(format!("{v} is not true or false")),
        (OptionType::StringList, v) => Ok(json!([v.to_string()])),
    }
}

/// A parameter of the chosen configuration, resolved for the Ollama formats.
enum OllamaParam {
    /// A valid option with its typed value.
    Option {
        name: String,
        value: serde_json::Value,
        ty: OptionType,
        /// The run's parameter name when it differs (llama.cpp name mapped to Ollama's).
        from: Option<String>,
    },
    /// Left out, with the reason (becomes a comment where the format allows one).
    Skipped {
        name: String,
        value: String,
        reason: String,
    },
}

/// The run's parameters in study order, then any others recorded for the trial, sorted.
fn ordered_params<'a>(r: &'a Report, row: &'a Row) -> Vec<(&'a str, &'a ParamValue)> {
    r.param_names
        .iter()
        .filter_map(|n| row.record.params.get(n).map(|v| (n.as_str(), v)))
        .collect()
}

fn ollama_params(r: &Report, row: &Row) -> Vec<OllamaParam> {
    let mut out = Vec::new();
    for (name, value) in ordered_params(r, row) {
        let mapped = LLAMACPP_TO_OLLAMA
            .iter()
            .find(|(l, _)| *l == name)
            .map(|(_, o)| *o);
        let target = if ollama_option_type(name).is_some() {
            Some(name)
        } else {
            mapped
        };
        // An explicitly tuned Ollama name wins over a mapped llama.cpp one.
        if let Some(t) = target {
            if t != name && row.record.params.contains_key(t) {
                out.push(OllamaParam::Skipped {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason: format!("{t} is set directly"),
                });
                continue;
            }
        }
        match target.and_then(|t| ollama_option_type(t).map(|ty| (t, ty))) {
            Some((t, ty)) => match ollama_value(value, ty) {
                Ok(v) => out.push(OllamaParam::Option {
                    name: t.to_string(),
                    value: v,
                    ty,
                    from: (t != name).then(|| name.to_string()),
                }),
                Err(why) => out.push(OllamaParam::Skipped {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason: why,
                }),
            },
            None => {
                let reason = match ollama_server_wide(name, value) {
                    Some(env) => format!("server-wide in Ollama, not per model: set {env} in the server's environment"),
                    None => "not an Ollama option (ollama create would fail with `unknown parameter`)".to_string(),
                };
                out.push(OllamaParam::Skipped {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason,
                });
            }
        }
    }
    out
}

/// Export the configuration at a 1-based rank of the report's ranking.
pub fn export(run: &RunDir, format: ExportFormat, rank: usize) -> Result<String, ExportError> {
    let (meta, journal) = report::load(run)?;
    // The ranking needs no GP: leave the importance fit out.
    let report = report::analyse_journal(meta, journal, false);
    export_report(&report, format, rank)
}

/// Export from an analysed run.
pub fn export_report(r: &Report, format: ExportFormat, rank: usize) -> Result<String, ExportError> {
    let available = r.ranked().count();
    let objective = r.objective_label();
    if available == 0 {
        return Err(ExportError::NothingRanked {
            trials: r.counts.total,
            objective,
        });
    }
    let row = r.by_rank(rank).ok_or(ExportError::RankOutOfRange {
        rank,
        available,
        objective,
    })?;
    Ok(match format {
        ExportFormat::Modelfile => modelfile(r, row),
        ExportFormat::Json => json(r, row),
        ExportFormat::Toml => toml(r, row),
        ExportFormat::LlamaServer => llama_server(r, row),
    })
}

/// Where the configuration comes from and how good it is, one line each (no comment marker).
fn provenance(r: &Report, row: &Row) -> Vec<String> {
    let m = &r.meta;
    let rank = row.rank.unwrap_or(0);
    let mut lines = vec![format!(
        "ollama-tuner run {} (study \"{}\"), rank {rank} of {}: trial #{}",
        m.run_id,
        m.study_name,
        r.ranked().count(),
        row.trial()
    )];
    let metric = &m.objective.metric.metric;
    let unit = unit_of(metric);
    let n = row.objective_summary.as_ref().map(|s| s.n).unwrap_or(0);
    let noun = r.sample_noun();
    let mut measured = format!(
        "measured {} {}{} ({} of {n} {noun}{}",
        r.objective_label(),
        fmt_num(row.objective.unwrap_or(f64::NAN)),
        if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        },
        m.objective.metric.stat.as_str(),
        if n == 1 { "" } else { "s" }
    );
    if let Some(s) = row.objective_summary.as_ref().filter(|s| s.n >= 2) {
        let _ = write!(measured, ", CV {}", report::fmt_share(s.cv()));
    }
    measured.push(')');
    if let (Some(p), false) = (row.vs_baseline_pct, row.is_baseline()) {
        let _ = write!(measured, ", {} against the baseline", fmt_pct(p));
    }
    if row.is_baseline() {
        measured.push_str("; this is the baseline (the study's defaults)");
    }
    lines.push(measured);
    let best = r.best_row();
    match (row.tie, best) {
        (Some(Tie::Best), _) => {
            let tied: Vec<String> = r.tied().iter().map(|x| format!("#{}", x.trial())).collect();
            if !tied.is_empty() {
                lines.push(format!(
                    "statistically tied with trial{} {} (see report.md): as good within measurement noise",
                    if tied.len() == 1 { "" } else { "s" },
                    tied.join(", ")
                ));
            }
        }
        (Some(Tie::Tied), Some(b)) => lines.push(format!(
            "statistically tied with rank 1 (trial #{}): the difference is within measurement noise",
            b.trial()
        )),
        (Some(Tie::Different), Some(b)) => lines.push(format!(
            "worse than rank 1 (trial #{}) by {}, beyond measurement noise",
            b.trial(),
            fmt_pct(row.vs_best_pct.unwrap_or(f64::NAN))
        )),
        (Some(Tie::Unknown), Some(b)) => lines.push(format!(
            "measured with too few {noun}s to tell whether it differs from rank 1 (trial #{})",
            b.trial()
        )),
        _ => {}
    }
    if row.class == RowClass::Infeasible {
        lines.push(format!(
            "WARNING: this configuration violated the run's constraints: {}",
            row.violations.join("; ")
        ));
    }
    if m.backend.simulated {
        lines.push(
            "WARNING: measured on ollama-tuner's built-in simulator, not on real hardware"
                .to_string(),
        );
    }
    lines
}

fn comment_block(lines: &[String]) -> String {
    lines.iter().map(|l| format!("# {l}\n")).collect()
}

/// Quote a Modelfile string value (the parser accepts Go-style escapes inside quotes).
fn modelfile_quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

fn modelfile(r: &Report, row: &Row) -> String {
    let mut out = comment_block(&provenance(r, row));
    let _ = writeln!(out, "# Build it with: ollama create NAME -f Modelfile");
    let model = model_for_modelfile(r);
    match &model {
        Some(m) => {
            let _ = writeln!(out, "FROM {m}");
        }
        None => {
            let _ = writeln!(out, "# The run recorded no model: replace MODEL with an Ollama model name or a GGUF path.");
            let _ = writeln!(out, "FROM MODEL");
        }
    }
    let params = ollama_params(r, row);
    for p in &params {
        if let OllamaParam::Option {
            name,
            value,
            ty,
            from,
        } = p
        {
            let text = match (ty, value) {
                (OptionType::StringList, serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|i| modelfile_quote(i.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>(),
                (OptionType::Float, v) => vec![format_float(v.as_f64().unwrap_or(f64::NAN))],
                (_, v) => vec![v.to_string()],
            };
            if let Some(f) = from {
                let _ = writeln!(out, "# {name}: tuned as llama.cpp's {f}");
            }
            for t in text {
                let _ = writeln!(out, "PARAMETER {name} {t}");
            }
        }
    }
    for p in &params {
        if let OllamaParam::Skipped {
            name,
            value,
            reason,
        } = p
        {
            let _ = writeln!(out, "# {name}={value} left out: {reason}");
        }
    }
    out
}

/// The FROM line: the Ollama model for Ollama runs, else a GGUF path when the run knows one.
fn model_for_modelfile(r: &Report) -> Option<String> {
    let m = &r.meta;
    if matches!(m.backend.backend.as_str(), "ollama" | "simulator") && !m.model.is_empty() {
        return Some(m.model.clone());
    }
    model_path(r).or_else(|| (!m.model.is_empty()).then(|| m.model.clone()))
}

/// A GGUF path recorded by the backend (`model_path` detail) or given as the run's model.
fn model_path(r: &Report) -> Option<String> {
    let m = &r.meta;
    if let Some(p) = m.backend.details.get("model_path").and_then(|v| v.as_str()) {
        if !p.is_empty() {
            return Some(p.to_string());
        }
    }
    m.model
        .to_ascii_lowercase()
        .ends_with(".gguf")
        .then(|| m.model.clone())
}

/// The options the JSON and TOML formats write: for Ollama runs only valid, correctly typed
/// Ollama options (an unknown name is silently ignored by the server, a wrong type is an HTTP
/// 500); for other backends every tuned parameter under its own name.
fn options(r: &Report, row: &Row) -> Vec<(String, serde_json::Value)> {
    if matches!(r.meta.backend.backend.as_str(), "ollama" | "simulator") {
        ollama_params(r, row)
            .into_iter()
            .filter_map(|p| match p {
                OllamaParam::Option { name, value, .. } => Some((name, value)),
                OllamaParam::Skipped { .. } => None,
            })
            .collect()
    } else {
        ordered_params(r, row)
            .into_iter()
            .map(|(n, v)| {
                let typed = ollama_option_type(n).and_then(|ty| ollama_value(v, ty).ok());
                (n.to_string(), typed.unwrap_or_else(|| v.to_json()))
            })
            .collect()
    }
}

/// Pretty-printed by hand so the keys keep the study's order (serde_json's map is sorted).
fn json(r: &Report, row: &Row) -> String {
    let opts = options(r, row);
    if opts.is_empty() {
        return "{}\n".to_string();
    }
    let body: Vec<String> = opts
        .iter()
        .map(|(k, v)| format!("  {}: {}", serde_json::Value::String(k.clone()), v))
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

fn toml_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => format_float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
            )
        }
        // JSON's string escapes are valid TOML basic-string escapes.
        other => other.to_string(),
    }
}

fn toml(r: &Report, row: &Row) -> String {
    let mut out = comment_block(&provenance(r, row));
    out.push_str("[options]\n");
    for (name, value) in options(r, row) {
        let key = if name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            name
        } else {
            serde_json::Value::String(name).to_string()
        };
        let _ = writeln!(out, "{key} = {}", toml_value(&value));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// llama-server

/// llama-server's load-time options in command-line order: (llama.cpp name, flag, Ollama name,
/// llama-server's default when the run did not tune it).
const LOAD_FLAGS: &[(&str, &str, Option<&str>, &str)] = &[
    ("ctx_size", "-c", Some("num_ctx"), "0"),
    ("threads", "-t", Some("num_thread"), "-1"),
    ("threads_batch", "-tb", None, "-1"),
    ("batch_size", "-b", Some("num_batch"), "2048"),
    ("ubatch_size", "-ub", None, "512"),
    ("flash_attn", "-fa", None, "auto"),
    ("cache_type_k", "-ctk", None, "f16"),
    ("cache_type_v", "-ctv", None, "f16"),
    ("n_gpu_layers", "-ngl", Some("num_gpu"), "auto"),
    ("parallel", "-np", None, "1"),
];

/// Sampling options: (llama.cpp names, Ollama name, flag).
const SAMPLING_FLAGS: &[(&[&str], &str, &str)] = &[
    (&["temperature", "temp"], "temperature", "--temp"),
    (&["top_k"], "top_k", "--top-k"),
    (&["top_p"], "top_p", "--top-p"),
    (&["min_p"], "min_p", "--min-p"),
    (&["typical_p"], "typical_p", "--typical"),
    (&["repeat_penalty"], "repeat_penalty", "--repeat-penalty"),
    (&["repeat_last_n"], "repeat_last_n", "--repeat-last-n"),
    (
        &["presence_penalty"],
        "presence_penalty",
        "--presence-penalty",
    ),
    (
        &["frequency_penalty"],
        "frequency_penalty",
        "--frequency-penalty",
    ),
    (&["seed"], "seed", "-s"),
    (&["n_predict"], "num_predict", "-n"),
    (&["n_keep"], "num_keep", "--keep"),
];

fn flash_attn_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Bool(true) => "on".into(),
        ParamValue::Bool(false) => "off".into(),
        ParamValue::Int(1) => "on".into(),
        ParamValue::Int(0) => "off".into(),
        ParamValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "enabled" => "on".into(),
            "off" | "false" | "0" | "disabled" => "off".into(),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// A command-line word, single-quoted for POSIX shells when it needs quoting.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn flag_value(flag: &str, v: &ParamValue) -> String {
    match (flag, v) {
        ("-fa", v) => flash_attn_text(v),
        // Ollama's num_gpu -1 means "as many layers as fit": llama-server's auto.
        ("-ngl", ParamValue::Int(i)) if *i < 0 => "auto".into(),
        (_, ParamValue::Float(f)) => format_float(*f),
        (_, v) => v.to_string(),
    }
}

fn llama_server(r: &Report, row: &Row) -> String {
    let params = &row.record.params;
    let details = &r.meta.backend.details;
    let mut used: Vec<&str> = Vec::new();
    let mut words: Vec<String> = vec!["llama-server".into(), "-m".into()];
    let mut notes: Vec<String> = Vec::new();
    match model_path(r) {
        Some(p) => words.push(shell_word(&p)),
        None => {
            words.push("MODEL.gguf".into());
            notes.push(if r.meta.model.is_empty() {
                "MODEL.gguf: the run recorded no model file; put the GGUF path here".to_string()
            } else {
                format!(
                    "MODEL.gguf: the GGUF file of {} (`ollama show --modelfile {}` prints its path on the FROM line)",
                    r.meta.model, r.meta.model
                )
            });
        }
    }

    // Load-time options: tuned value, else the value the backend recorded, else the default.
    let mut defaulted: Vec<String> = Vec::new();
    let mut values: Vec<(&str, String)> = Vec::new();
    for (name, flag, ollama, default) in LOAD_FLAGS {
        let tuned = params
            .get(*name)
            .map(|v| (*name, v))
            .or_else(|| ollama.and_then(|o| params.get(o).map(|v| (o, v))))
            // Ollama's num_thread drives prompt processing too.
            .or_else(|| match *name {
                "threads_batch" => params.get("num_thread").map(|v| ("num_thread", v)),
                _ => None,
            });
        let value = match tuned {
            Some((used_name, v)) => {
                used.push(used_name);
                flag_value(flag, v)
            }
            None => match details.get(*name) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::Bool(b)) => flag_value(flag, &ParamValue::Bool(*b)),
                _ => {
                    // Spelled out rather than left unset; -tb follows -t and -ub never exceeds -b,
                    // as llama-server itself resolves them.
                    let d = match *name {
                        "threads_batch" => values
                            .iter()
                            .find(|(f, _)| *f == "-t")
                            .map(|(_, v)| v.clone()),
                        "ubatch_size" => values
                            .iter()
                            .find(|(f, _)| *f == "-b")
                            .and_then(|(_, b)| b.parse::<i64>().ok())
                            .map(|b| b.min(512).to_string()),
                        _ => None,
                    }
                    .unwrap_or_else(|| default.to_string());
                    defaulted.push(format!("{flag} {d}"));
                    d
                }
            },
        };
        values.push((flag, value));
    }
    for (flag, value) in &values {
        words.push(flag.to_string());
        words.push(shell_word(value));
    }
    if let Some(v) = params.get("main_gpu") {
        used.push("main_gpu");
        words.push("-mg".into());
        words.push(shell_word(&v.to_string()));
    }
    if let Some(v) = params.get("use_mmap") {
        used.push("use_mmap");
        if v.as_bool() == Some(false) {
            words.push("--no-mmap".into());
        }
    }
    for (names, ollama, flag) in SAMPLING_FLAGS {
        let found = names
            .iter()
            .find_map(|n| params.get(*n).map(|v| (*n, v)))
            .or_else(|| params.get(*ollama).map(|v| (*ollama, v)));
        if let Some((n, v)) = found {
            used.push(n);
            words.push(flag.to_string());
            words.push(shell_word(&flag_value(flag, v)));
        }
    }
    for (name, value) in ordered_params(r, row) {
        if !used.contains(&name) {
            notes.push(format!(
                "{name}={value} left out: no llama-server flag for it"
            ));
        }
    }

    let mut lines = provenance(r, row);
    if !defaulted.is_empty() {
        lines.push(format!(
            "not tuned in this run, spelled out with llama-server's defaults so --fit cannot rewrite them: {}",
            defaulted.join(" ")
        ));
    }
    lines.extend(notes);
    let mut out = comment_block(&lines);
    out.push_str(&words.join(" "));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_types_follow_ollama() {
        assert_eq!(
            ollama_value(&ParamValue::Float(4096.0), OptionType::Int),
            Ok(serde_json::json!(4096))
        );
        assert!(ollama_value(&ParamValue::Float(0.5), OptionType::Int).is_err());
        assert_eq!(
            ollama_value(&ParamValue::Int(1), OptionType::Float),
            Ok(serde_json::json!(1.0))
        );
        assert_eq!(
            ollama_value(&ParamValue::Str("off".into()), OptionType::Bool),
            Ok(serde_json::json!(false))
        );
        assert_eq!(ollama_option_type("num_thread"), Some(OptionType::Int));
        assert_eq!(ollama_option_type("flash_attn"), None);
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("/m/a.gguf"), "/m/a.gguf");
        assert_eq!(shell_word("/m/my model.gguf"), "'/m/my model.gguf'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(
            "llama_server".parse::<ExportFormat>(),
            Ok(ExportFormat::LlamaServer)
        );
        assert_eq!(
            "Modelfile".parse::<ExportFormat>(),
            Ok(ExportFormat::Modelfile)
        );
        assert!("yaml".parse::<ExportFormat>().is_err());
    }
}
