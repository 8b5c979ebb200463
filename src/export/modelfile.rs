//! The Ollama Modelfile export: `FROM` the run's model, one `PARAMETER` line per valid option
//! the configuration changes against the baseline, and a comment for every parameter left out
//! and why.

use super::changes::Selection;
use super::options::{ollama_params, OllamaParam, OptionType};
use super::{comment_block, model_path, provenance};
use crate::engine::space::format_float;
use crate::report::Report;
use crate::report::Row;
use std::fmt::Write;

/// Quote a Modelfile string value (the parser accepts Go-style escapes inside quotes).
fn modelfile_quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

pub(super) fn modelfile(r: &Report, row: &Row, sel: &Selection) -> String {
    let mut lines = provenance(r, row);
    lines.push(sel.delta_line());
    lines.extend(sel.header(|_| true));
    let mut out = comment_block(&lines);
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
    let params = ollama_params(row, sel);
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
