//! Export of one ranked configuration of a run, ready to use: an Ollama Modelfile, the JSON
//! options object of the Ollama API, a TOML `[options]` fragment, or a llama-server command line.
//!
//! The rank is the report's (`report.md`, 1-based: trials that met the constraints first). The
//! Ollama formats write the configuration's changes, as the server ran it, against the baseline (the study's defaults,
//! what the user runs today), never an `auto` value (the server decides) and no output setting
//! unless the study opts in (`changes`); the llama-server format writes the command the trial
//! was measured with. Each says in comments where it came from and which settings it kept at
//! the user's values, so a Modelfile found months later still tells which run and trial it is.
//!
//! One file per format (`modelfile`, `json`, `toml`, `llama_server`); `changes` decides what is
//! written, `options` resolves it into Ollama's typed options for the first three. This file
//! holds what they share: the provenance comment, the parameter order and the model path. Numbers are
//! formatted by the report's helpers (`crate::report::fmt_num` and friends), so an export and
//! report.md print the same figures.

mod changes;
mod json;
mod llama_server;
mod modelfile;
mod options;
mod toml;

pub use changes::ExportPolicy;
pub use options::{ollama_option_type, OptionType};

use crate::engine::space::ParamValue;
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

/// A format name `ExportFormat::from_str` does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format {0:?}: use modelfile, json, toml or llama-server")]
pub struct UnknownFormat(pub String);

impl FromStr for ExportFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "modelfile" => Ok(ExportFormat::Modelfile),
            "json" => Ok(ExportFormat::Json),
            "toml" => Ok(ExportFormat::Toml),
            "llama-server" | "llamaserver" => Ok(ExportFormat::LlamaServer),
            other => Err(UnknownFormat(other.to_string())),
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

/// The run's parameters in study order, then any others recorded for the trial, sorted, each
/// with the value the server ran (the row's configuration: a clamped value as it ran, the same
/// for every request pooled into the row), except that a value the trial left to the server
/// (`auto`) stays `auto`: the export leaves it to the server again.
pub(crate) fn ordered_params<'a>(r: &'a Report, row: &'a Row) -> Vec<(&'a str, &'a ParamValue)> {
    r.param_names
        .iter()
        .filter_map(|n| {
            let asked = row.record.params.get(n)?;
            let ran = match row.ran().get(n) {
                Some(v) if !asked.is_auto() => v,
                _ => asked,
            };
            Some((n.as_str(), ran))
        })
        .collect()
}

/// Export the configuration at a 1-based rank of the report's ranking (1, the default: the
/// recommendation, as `status` and the run's summary name it), with the policy of the run's
/// frozen study.
pub fn export(run: &RunDir, format: ExportFormat, rank: usize) -> Result<String, ExportError> {
    let (mut meta, journal) = report::load(run)?;
    changes::fill_old_roles(run, &mut meta);
    // The ranking needs no GP: leave the importance fit out.
    let report = report::analyse_journal(meta, journal, false);
    export_report_with(&report, format, rank, &ExportPolicy::of_run(run))
}

/// Export from an analysed run, changing no output setting.
pub fn export_report(r: &Report, format: ExportFormat, rank: usize) -> Result<String, ExportError> {
    export_report_with(r, format, rank, &ExportPolicy::default())
}

/// Export from an analysed run under a policy.
pub fn export_report_with(
    r: &Report,
    format: ExportFormat,
    rank: usize,
    policy: &ExportPolicy,
) -> Result<String, ExportError> {
    let available = r.ranked().count();
    let objective = r.objective_label();
    if available == 0 {
        return Err(ExportError::NothingRanked {
            trials: r.counts.total,
            objective,
        });
    }
    // Rank 1 is the report's best configuration when one met the constraints: the leader of
    // src/verdict.rs, the one `status` and the run's summary name.
    let row = match r.best_row().filter(|_| rank == 1) {
        Some(best) => best,
        None => r.by_rank(rank).ok_or(ExportError::RankOutOfRange {
            rank,
            available,
            objective,
        })?,
    };
    let sel = changes::select(r, row, policy);
    Ok(match format {
        ExportFormat::Modelfile => modelfile::modelfile(r, row, &sel),
        ExportFormat::Json => json::json(r, row, &sel),
        ExportFormat::Toml => toml::toml(r, row, &sel),
        ExportFormat::LlamaServer => llama_server::llama_server(r, row, &sel),
    })
}

/// Where the configuration comes from and how good it is, one line each (no comment marker).
pub(crate) fn provenance(r: &Report, row: &Row) -> Vec<String> {
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

pub(crate) fn comment_block(lines: &[String]) -> String {
    lines.iter().map(|l| format!("# {l}\n")).collect()
}

/// A GGUF path recorded by the backend (`model_path` detail) or given as the run's model.
pub(crate) fn model_path(r: &Report) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            "yaml".parse::<ExportFormat>().unwrap_err().to_string(),
            "unknown export format \"yaml\": use modelfile, json, toml or llama-server"
        );
    }
}
