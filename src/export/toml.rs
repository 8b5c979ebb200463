//! The TOML export: an `[options]` table of the configuration's changes against the baseline,
//! with the provenance and what was kept at the user's values as comments.

use super::changes::Selection;
use super::options::options;
use super::{comment_block, provenance};
use crate::engine::space::format_float;
use crate::report::{Report, Row};
use std::fmt::Write;

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

pub(super) fn toml(r: &Report, row: &Row, sel: &Selection) -> String {
    let mut lines = provenance(r, row);
    lines.push(sel.delta_line());
    lines.extend(sel.header(|_| true));
    let mut out = comment_block(&lines);
    out.push_str("[options]\n");
    for (name, value) in options(r, row, sel) {
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
