//! Durations in study files and in serialized studies: reading a TOML duration value (with
//! the range each field allows), checking a Go duration string such as Ollama's keep_alive,
//! and the serde helpers that write a `Duration` as seconds.

use std::time::Duration;

/// The longest duration any study field may hold: a year. Anything longer is a mistake (a
/// unit missing or an exponent too many), and keeps the deadline arithmetic far from overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why a TOML value is not a duration a field accepts.
#[derive(Debug, PartialEq)]
pub(crate) enum DurationError {
    /// Not a number of seconds or a humantime string.
    NotADuration,
    /// Zero, where the field needs time to pass.
    Zero,
    /// Longer than the field's maximum.
    TooLong(Duration),
}

/// A duration as a study file may write it: whole or fractional seconds, or a humantime
/// string such as "90s" or "2m"; at most `max`, and longer than zero unless `zero_ok`.
pub(crate) fn duration_value(
    v: &toml::Value,
    max: Duration,
    zero_ok: bool,
) -> Result<Duration, DurationError> {
    let d = match v {
        toml::Value::Integer(i) if *i >= 0 => Duration::from_secs(*i as u64),
        // NaN, negative and infinite seconds are no duration; a finite number of seconds too
        // large for a Duration is too long.
        toml::Value::Float(f) if *f >= 0.0 && f.is_finite() => {
            Duration::try_from_secs_f64(*f).map_err(|_| DurationError::TooLong(max))?
        }
        toml::Value::String(s) => text_duration(s, max)?,
        _ => return Err(DurationError::NotADuration),
    };
    if d > max {
        return Err(DurationError::TooLong(max));
    }
    if d.is_zero() && !zero_ok {
        return Err(DurationError::Zero);
    }
    Ok(d)
}

/// A duration written as text ("90s", "8h", "1h30m"), as a study file or a command-line flag
/// gives it: at most `max`; one too long for a `Duration` is `TooLong` too, never a panic.
/// Zero is returned as zero (each caller decides whether it may be).
pub(crate) fn text_duration(text: &str, max: Duration) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => DurationError::TooLong(max),
        _ => DurationError::NotADuration,
    })?;
    if d > max {
        return Err(DurationError::TooLong(max));
    }
    Ok(d)
}

/// A duration limit as a message names it, in its largest whole unit: "366 days", "24 hours"
/// (days from two on), "90 minutes", "30 seconds" (humantime writes 366 days as "1year 18h",
/// its year being 365.25 days). A limit that is no whole number of seconds falls back to humantime's text.
pub(crate) fn limit_text(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 || s == 0 {
        return humantime::format_duration(d).to_string();
    }
    let (n, unit) = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ]
    .into_iter()
    .find(|(len, _)| s.is_multiple_of(*len) && (s / len >= 2 || *len < 86_400))
    .map(|(len, unit)| (s / len, unit))
    .unwrap_or((s, "second"));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl DurationError {
    /// The message for field values such as `example` ("\"90s\" or \"2m\"").
    pub(crate) fn message(&self, example: &str) -> String {
        match self {
            DurationError::NotADuration => {
                format!("must be a duration such as {example} (seconds, or a number with a unit)")
            }
            DurationError::Zero => format!("must be longer than zero, such as {example}"),
            DurationError::TooLong(max) => format!(
                "is longer than the {} this field allows; write a duration such as {example}",
                limit_text(*max)
            ),
        }
    }
}

/// Whether `text` is a duration Go's `time.ParseDuration` reads ("5m", "1h30m", "-1s", "0"),
/// as Ollama reads `keep_alive` given as a string (a sign, then numbers each with a unit).
pub(crate) fn is_go_duration(text: &str) -> bool {
    let rest = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if !matches!(
            &rest[..unit_len],
            "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h"
        ) {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// `Duration` as seconds (f64).
pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        super::from_recorded_secs(v).map_err(serde::de::Error::custom)
    }
}

/// `Option<Duration>` as seconds or null.
pub(crate) mod opt_secs {
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
        v.map(super::from_recorded_secs)
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// Seconds as a recorded study holds them: negative means zero; NaN or too large for a
/// `Duration` is an error (not a panic).
fn from_recorded_secs(v: f64) -> Result<Duration, String> {
    if v.is_nan() {
        return Err("NaN seconds is not a duration".into());
    }
    Duration::try_from_secs_f64(v.max(0.0))
        .map_err(|_| format!("{v} seconds is not a duration this program can hold"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(text: &str) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("v = {text}")).unwrap()["v"].clone()
    }

    #[test]
    fn huge_nan_and_zero_durations_are_errors_not_panics() {
        let max = Duration::from_secs(3600);
        for (text, want) in [
            ("1e20", DurationError::TooLong(max)),
            ("1.7e308", DurationError::TooLong(max)),
            ("inf", DurationError::NotADuration),
            ("nan", DurationError::NotADuration),
            ("-1", DurationError::NotADuration),
            ("-0.5", DurationError::NotADuration),
            ("3601", DurationError::TooLong(max)),
            ("\"99999999999999999999999h\"", DurationError::TooLong(max)),
            ("\"2h\"", DurationError::TooLong(max)),
            ("0", DurationError::Zero),
            ("0.0", DurationError::Zero),
            ("\"0s\"", DurationError::Zero),
            ("\"soon\"", DurationError::NotADuration),
            ("true", DurationError::NotADuration),
        ] {
            assert_eq!(duration_value(&val(text), max, false), Err(want), "{text}");
        }
        assert_eq!(
            duration_value(&val("1.5"), max, false),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            duration_value(&val("\"90s\""), max, false),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(duration_value(&val("0"), max, true), Ok(Duration::ZERO));
    }

    /// Limits read in plain units: the 366-day wall-time limit is "366 days", not
    /// humantime's "1year 18h".
    #[test]
    fn limits_read_in_their_largest_whole_unit() {
        for (secs, want) in [
            (366 * 86_400, "366 days"),
            (86_400, "24 hours"),
            (2 * 86_400, "2 days"),
            (24 * 3_600 + 3_600, "25 hours"),
            (7_200, "2 hours"),
            (3_600, "1 hour"),
            (5_400, "90 minutes"),
            (60, "1 minute"),
            (90, "90 seconds"),
            (1, "1 second"),
        ] {
            assert_eq!(limit_text(Duration::from_secs(secs)), want, "{secs} s");
        }
        assert_eq!(limit_text(Duration::from_millis(1500)), "1s 500ms");
        let e = DurationError::TooLong(MAX_DURATION).message("\"8h\"");
        assert!(e.contains("the 366 days this field allows"), "{e}");
        assert_eq!(
            text_duration("367 days", MAX_DURATION),
            Err(DurationError::TooLong(MAX_DURATION))
        );
        assert_eq!(
            text_duration(" 8h ", MAX_DURATION),
            Ok(Duration::from_secs(8 * 3600))
        );
        assert_eq!(
            text_duration("1e20s", MAX_DURATION),
            Err(DurationError::NotADuration)
        );
    }

    #[test]
    fn go_durations() {
        for ok in ["30m", "0", "-1s", "1h30m", "1.5h", "300ms", "+5m", "2us"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["", "-1", "30", "m", "5 m", "1..5s", "5d", "forever", "-"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }

    #[test]
    fn recorded_seconds_never_panic() {
        assert_eq!(from_recorded_secs(-3.0), Ok(Duration::ZERO));
        assert!(from_recorded_secs(1e300).is_err());
        assert!(from_recorded_secs(f64::NAN).is_err());
    }
}
