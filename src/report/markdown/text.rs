//! Phrases and table cells the Markdown sections share: escaping, trial references,
//! configurations, values with units, spreads and judgements.

use crate::engine::space::values_equal;
use crate::engine::stats::Summary;
use crate::report::format::{fmt_num, fmt_pct, fmt_share, unit_of};
use crate::report::types::{Report, Row};
use crate::study::Stat;

/// Escape text for a table cell: pipes and line breaks would break the table.
pub(super) fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

pub(super) fn trial_ref(row: &Row) -> String {
    let mut s = format!("#{}", row.trial());
    for t in &row.also {
        s.push_str(&format!("+#{t}"));
    }
    s
}

pub(super) fn join_trials(rows: &[&Row], with_change: bool) -> String {
    let parts: Vec<String> = rows
        .iter()
        .map(|row| {
            let rank = row.rank.map(|k| format!("rank {k}")).unwrap_or_default();
            match (with_change, row.vs_best_pct) {
                (true, Some(p)) => format!("trial {} ({rank}, {})", trial_ref(row), fmt_pct(p)),
                _ => format!("trial {} ({rank})", trial_ref(row)),
            }
        })
        .collect();
    parts.join(", ")
}

/// The row's configuration as the server ran it, `name=value` in the study's order.
pub(super) fn config_text(r: &Report, row: &Row) -> String {
    let parts: Vec<String> = r
        .param_names
        .iter()
        .filter_map(|n| row.ran().get(n).map(|v| format!("{n}={v}")))
        .collect();
    parts.join(" ")
}

/// A parameter's value in a row as the server ran it, followed by the requested values that
/// ran as it where they differ: `35 (asked auto)`, `8 (asked 6156, 8192)`.
pub(super) fn value_text(row: &Row, name: &str) -> Option<String> {
    let ran = row.ran().get(name)?;
    let mut asked: Vec<String> = Vec::new();
    for v in row.requests().into_iter().filter_map(|c| c.get(name)) {
        let text = v.to_string();
        if !values_equal(v, ran) && !asked.contains(&text) {
            asked.push(text);
        }
    }
    Some(if asked.is_empty() {
        ran.to_string()
    } else {
        format!("{ran} (asked {})", asked.join(", "))
    })
}

pub(super) fn stat_words(stat: Stat) -> &'static str {
    match stat {
        Stat::Median => "median",
        Stat::Mean => "mean",
        Stat::P95 => "95th percentile",
        Stat::Std => "standard deviation",
        Stat::Min => "minimum",
        Stat::Max => "maximum",
    }
}

pub(super) fn with_unit(x: f64, metric: &str) -> String {
    match unit_of(metric) {
        "" => fmt_num(x),
        u => format!("{} {u}", fmt_num(x)),
    }
}

pub(super) fn spread_text(r: &Report, s: Option<&Summary>) -> String {
    match s {
        Some(s) if s.n >= 2 => format!("std {}, CV {}", fmt_num(s.std), fmt_share(s.cv())),
        Some(_) => format!("a single {}: spread unknown", r.sample_noun()),
        None => "spread unknown".to_string(),
    }
}

pub(super) fn requests(r: &Report, n: usize) -> String {
    let noun = r.sample_noun();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "better" / "worse" for a signed change, according to the direction.
pub(super) fn judgement(r: &Report, pct: f64) -> &'static str {
    if pct == 0.0 {
        "equal"
    } else if (pct > 0.0) == r.maximize() {
        "better"
    } else {
        "worse"
    }
}
