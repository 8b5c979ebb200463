//! Fixed number formatting shared by the report formats and by `export`: values, percentages,
//! durations, and the unit of a metric for column headers.

/// A measured value with about four significant digits and a fixed number of decimals for its
/// magnitude: 1352, 102.3, 52.10, 4.40, 0.180, 0.00123. "-" for missing or non-finite.
pub(crate) fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    let a = x.abs();
    let decimals = if a >= 1000.0 {
        0
    } else if a >= 100.0 {
        1
    } else if a >= 1.0 || a == 0.0 {
        2
    } else if a >= 0.01 {
        3
    } else {
        (2 - a.log10().floor() as i64).clamp(3, 9) as usize
    };
    no_negative_zero(format!("{x:.decimals$}"))
}

/// A signed percentage with one decimal: "+12.3%", "-0.4%", "+0.0%".
pub(crate) fn fmt_pct(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    let s = format!("{x:+.1}%");
    if s == "-0.0%" {
        "+0.0%".to_string()
    } else {
        s
    }
}

/// An unsigned percentage with one decimal: "0.8%".
pub(crate) fn fmt_share(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    no_negative_zero(format!("{:.1}%", x * 100.0))
}

fn no_negative_zero(s: String) -> String {
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.' || c == '%') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Unit of a metric for column headers, from the metric table (src/domain/metrics.rs).
pub(crate) fn unit_of(metric: &str) -> &'static str {
    crate::domain::metrics::unit(metric).symbol()
}

/// Whole seconds as a short human duration ("1h 3m 20s").
pub(crate) fn fmt_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    let s = seconds.round() as u64;
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

/// An effect measured in paired rounds: "+4.1% [+2.0%, +6.3%] over 6 rounds".
pub fn format_effect(e: &crate::engine::decision::Effect) -> String {
    format!(
        "{} [{}, {}] over {} rounds",
        fmt_pct(e.pct),
        fmt_pct(e.lo),
        fmt_pct(e.hi),
        e.rounds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats_are_fixed() {
        assert_eq!(fmt_num(1352.4), "1352");
        assert_eq!(fmt_num(102.31), "102.3");
        assert_eq!(fmt_num(52.1), "52.10");
        assert_eq!(fmt_num(0.18), "0.180");
        assert_eq!(fmt_num(0.00123), "0.00123");
        assert_eq!(fmt_num(-0.0001), "-0.000100");
        assert_eq!(fmt_num(-0.0), "0.00");
        assert_eq!(fmt_num(f64::NAN), "-");
        assert_eq!(fmt_pct(12.345), "+12.3%");
        assert_eq!(fmt_pct(-0.04), "+0.0%");
        assert_eq!(fmt_pct(-3.0), "-3.0%");
        assert_eq!(fmt_share(0.1234), "12.3%");
        assert_eq!(fmt_duration(3800.4), "1h 3m 20s");
    }
}
