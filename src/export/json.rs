//! The JSON export: the `options` object of an Ollama API request, holding the configuration's
//! changes against the baseline (JSON has no comments: the other formats say what was kept).

use super::changes::Selection;
use super::options::options;
use crate::report::{Report, Row};

/// Pretty-printed by hand so the keys keep the study's order (serde_json's map is sorted).
pub(super) fn json(r: &Report, row: &Row, sel: &Selection) -> String {
    let opts = options(r, row, sel);
    if opts.is_empty() {
        return "{}\n".to_string();
    }
    let body: Vec<String> = opts
        .iter()
        .map(|(k, v)| format!("  {}: {}", serde_json::Value::String(k.clone()), v))
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}
