//! "What the server chose": for the recommendation and the baseline, the values the server
//! picked for settings left to it (`auto`) and the values it ran instead of the ones asked
//! (clamps), from each trial's `notes.server_chose` and `effective` (src/trial.rs).

use super::text::cell;
use crate::report::types::Report;
use crate::trial::TrialRecord;
use std::collections::BTreeMap;
use std::fmt::Write;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What one row's server said it chose, plus each setting that ran differently than asked
/// ("asked -> ran").
fn facts(rec: &TrialRecord) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(serde_json::Value::Object(m)) = rec.notes.get("server_chose") {
        for (k, v) in m {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) if k.starts_with("size") => match n.as_f64() {
                    Some(b) => format!("{:.2} GiB", b / GIB),
                    None => n.to_string(),
                },
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            };
            out.insert(k.clone(), text);
        }
    }
    if let Some(eff) = &rec.effective {
        for (k, ran) in eff {
            match rec.params.get(k) {
                Some(asked) if asked == ran => {}
                // An `auto` the server resolved: what it chose.
                Some(asked) if asked.is_auto() => {
                    out.entry(k.clone()).or_insert_with(|| ran.to_string());
                }
                asked => {
                    let asked = asked.map_or("-".to_string(), |a| a.to_string());
                    out.insert(format!("{k} (ran as)"), format!("{asked} -> {ran}"));
                }
            }
        }
    }
    out
}

pub(super) fn server_chose(r: &Report, o: &mut String) {
    let mut cols: Vec<(&str, BTreeMap<String, String>)> = Vec::new();
    if let Some(best) = r.best_row() {
        cols.push(("recommendation", facts(&best.record)));
    }
    if let Some(base) = r
        .baseline_row()
        .filter(|b| Some(b.trial()) != r.best_row().map(|x| x.trial()))
    {
        cols.push(("your defaults", facts(&base.record)));
    }
    if cols.iter().all(|(_, f)| f.is_empty()) {
        return;
    }
    let keys: std::collections::BTreeSet<&String> =
        cols.iter().flat_map(|(_, f)| f.keys()).collect();
    let _ = writeln!(o, "## What the server chose\n");
    let _ = writeln!(
        o,
        "What the server reported running: for a setting left to it (`auto`: not sent) the \
         value it decided, and values it reported for settings the study does not tune. A \
         setting marked \"ran as\" was clamped by the server, and the measurements are of the \
         value it ran.\n"
    );
    let head: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let _ = writeln!(o, "| | {} |", head.join(" | "));
    let _ = writeln!(o, "|---|{}", "---|".repeat(cols.len()));
    for k in keys {
        let vals: Vec<String> = cols
            .iter()
            .map(|(_, f)| f.get(k).map_or("-".to_string(), |v| cell(v)))
            .collect();
        let _ = writeln!(o, "| {} | {} |", cell(k), vals.join(" | "));
    }
    o.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::ParamValue;
    use serde_json::json;

    #[test]
    fn facts_lists_what_the_server_chose_and_what_it_clamped() {
        let mut rec = TrialRecord::for_test(3, Default::default(), 50.0);
        rec.notes.insert(
            "server_chose".into(),
            json!({"num_gpu": 35.0, "size_vram": 1000, "x": null}),
        );
        rec.params.insert("num_ctx".into(), ParamValue::Int(200000));
        rec.params.insert("num_batch".into(), ParamValue::auto());
        rec.effective = Some(
            [
                ("num_ctx".to_string(), ParamValue::Int(131072)),
                ("num_batch".to_string(), ParamValue::Int(512)),
            ]
            .into_iter()
            .collect(),
        );
        let f = facts(&rec);
        assert_eq!(f["num_gpu"], "35");
        assert_eq!(f["size_vram"], "0.00 GiB");
        assert!(!f.contains_key("x"), "null values are left out");
        assert_eq!(f["num_ctx (ran as)"], "200000 -> 131072");
        assert_eq!(f["num_batch"], "512", "an auto the server resolved");
        assert!(!f.contains_key("num_batch (ran as)"));
    }
}
