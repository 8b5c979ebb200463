//! `trials.csv`: one row per trial in trial order, for spreadsheets and pandas.
//!
//! Column order is stable: `trial, origin, status, class, rank, feasible`, then each parameter
//! as the server ran it (study order, then any extra names sorted), `objective`, then `<metric>_median` and
//! `<metric>_p95` for every metric (sorted by name), then `load_s, reloaded, duration_s,
//! failure, error`. Numbers are written in full precision (shortest round-trip form); empty
//! cells mean "not measured". Quoting follows RFC 4180.

use super::types::Report;
use crate::engine::space::ParamValue;
use crate::trial::Status;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

fn value(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(x) => num(*x),
        other => field(&other.to_string()),
    }
}

pub fn render(r: &Report) -> String {
    let mut header: Vec<String> = ["trial", "origin", "status", "class", "rank", "feasible"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(r.param_names.iter().map(|n| field(n)));
    header.push("objective".into());
    for m in &r.metric_names {
        header.push(field(&format!("{m}_median")));
        header.push(field(&format!("{m}_p95")));
    }
    header.extend(
        ["load_s", "reloaded", "duration_s", "failure", "error"]
            .iter()
            .map(|s| s.to_string()),
    );

    let mut out = header.join(",");
    out.push('\n');
    let mut rows: Vec<&super::Row> = r.rows.iter().collect();
    rows.sort_by_key(|row| row.trial());
    for row in rows {
        let rec = &row.record;
        let mut cells: Vec<String> = vec![
            rec.trial.to_string(),
            rec.origin.as_str().into(),
            match rec.status {
                Status::Ok => "ok",
                Status::Failed => "failed",
            }
            .into(),
            match row.class {
                super::RowClass::Feasible => "feasible",
                super::RowClass::Infeasible => "infeasible",
                super::RowClass::Failed => "failed",
            }
            .into(),
            row.rank.map(|k| k.to_string()).unwrap_or_default(),
            rec.feasible.to_string(),
        ];
        for n in &r.param_names {
            cells.push(row.ran().get(n).map(value).unwrap_or_default());
        }
        cells.push(row.objective.map(num).unwrap_or_default());
        for m in &r.metric_names {
            let s = rec.metrics.get(m);
            cells.push(s.map(|s| num(s.median)).unwrap_or_default());
            cells.push(s.map(|s| num(s.p95)).unwrap_or_default());
        }
        cells.push(
            rec.load
                .as_ref()
                .map(|l| num(l.seconds))
                .unwrap_or_default(),
        );
        cells.push(
            rec.load
                .as_ref()
                .map(|l| l.reloaded.to_string())
                .unwrap_or_default(),
        );
        cells.push(num(rec.duration_s));
        cells.push(field(row.failure_kind.as_deref().unwrap_or("")));
        cells.push(field(rec.error.as_deref().unwrap_or("")));
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}
