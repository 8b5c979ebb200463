//! `type = "int"` and `type = "float"` parameters: bounds, log scale and step, each checked
//! against what the run can represent (integers exact as floats and JSON numbers, a finite
//! width for the unit-cube encoding) and what the server reads (a 32-bit float for Ollama's
//! float options and llama-server's, a 32-bit integer for llama-server's integer options).

use super::limits::MAX_EXACT_INT;
use super::params::ParamCheck;
use crate::domain::llamaserver;
use crate::domain::ollama::{self, OptionType};
use crate::engine::space::ParamKind;
use crate::study::error::ConfigError;
use crate::study::types::BackendConfig;
use toml::Spanned;

/// The largest magnitude the server can hold in the option a parameter sets, and how it
/// reads the value; None where the tuner's own limits are the only ones (a command, or a name
/// the server's table does not know).
fn server_limit(backend: &BackendConfig, name: &str, int: bool) -> Option<(f64, &'static str)> {
    const F32: (f64, &str) = (f32::MAX as f64, "the server reads it as a 32-bit float");
    match backend {
        BackendConfig::Ollama { .. } | BackendConfig::Simulator { .. } => {
            match ollama::option_type(name)? {
                OptionType::Float => Some(F32),
                _ => None,
            }
        }
        BackendConfig::Llamacpp { .. } => {
            llamaserver::option_or_alias(name)?;
            Some(if int {
                (i32::MAX as f64, "llama-server reads it as a 32-bit integer")
            } else {
                F32
            })
        }
        BackendConfig::Command { .. } => None,
    }
}

/// A bound or step as written: an integer, or (for a float parameter) a finite number.
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn f64(&self) -> f64 {
        match self {
            Num::Int(i) => *i as f64,
            Num::Float(x) => *x,
        }
    }
}

impl ParamCheck<'_> {
    fn num(
        &self,
        v: &Spanned<toml::Value>,
        field: &str,
        want_int: bool,
    ) -> Result<Num, ConfigError> {
        let n = match v.get_ref() {
            toml::Value::Integer(i) => Num::Int(*i),
            toml::Value::Float(x) if !want_int && x.is_finite() => Num::Float(*x),
            toml::Value::Float(x) if !want_int => {
                return Err(self.err(v.span(), field, format!("must be a finite number, got {x}")))
            }
            other => {
                let want = if want_int { "an integer" } else { "a number" };
                return Err(self.err(
                    v.span(),
                    field,
                    format!("must be {want}, got {}", other.type_str()),
                ));
            }
        };
        if let Num::Int(i) = n {
            if i.unsigned_abs() > MAX_EXACT_INT as u64 {
                return Err(self.err(
                    v.span(),
                    field,
                    format!("{i} is beyond ±2^53 ({MAX_EXACT_INT}), where integers stop being exact in the encoding and in JSON; use a smaller bound"),
                ));
            }
        }
        if let Some((max, why)) = server_limit(self.backend, self.name, want_int) {
            if n.f64().abs() > max {
                return Err(self.err(
                    v.span(),
                    field,
                    format!("{} is beyond ±{max:e}: {why}", n.f64()),
                ));
            }
        }
        Ok(n)
    }

    /// `type = "int"` or `"float"`: low, high, log, step.
    pub(super) fn numeric(&self) -> Result<ParamKind, ConfigError> {
        let rp = self.rp;
        self.not_for(&[("choices", rp.choices.as_ref().map(|c| c.span()))])?;
        let want_int = self.kind_text() == "int";
        let (Some(lo), Some(hi)) = (&rp.low, &rp.high) else {
            return Err(self.err(
                rp.kind.span(),
                "low",
                "numeric parameters need both low and high",
            ));
        };
        let low = self.num(lo, "low", want_int)?;
        let high = self.num(hi, "high", want_int)?;
        let (l, h) = (low.f64(), high.f64());
        if l > h {
            return Err(self.err(
                hi.span(),
                "high",
                format!("low ({l}) is greater than high ({h})"),
            ));
        }
        if !(h - l).is_finite() {
            return Err(self.err(
                hi.span(),
                "high",
                format!("the range from {l} to {h} is wider than a float can hold; narrow it"),
            ));
        }
        let log = rp.log.as_ref().map(|l| *l.get_ref()).unwrap_or(false);
        if log && l <= 0.0 {
            return Err(self.err(
                lo.span(),
                "low",
                format!("a log-scale parameter needs low > 0, got {l}"),
            ));
        }
        let step = match &rp.step {
            Some(s) => {
                let v = self.num(s, "step", want_int)?.f64();
                if v <= 0.0 {
                    return Err(self.err(s.span(), "step", "must be > 0"));
                }
                if !((h - l) / v).is_finite() {
                    return Err(self.err(
                        s.span(),
                        "step",
                        format!("{v} is too small a step for the range from {l} to {h}"),
                    ));
                }
                Some(v)
            }
            None => None,
        };
        Ok(match (low, high) {
            (Num::Int(low), Num::Int(high)) if want_int => ParamKind::Int {
                low,
                high,
                log,
                step: step.map(|s| s as i64).unwrap_or(1),
            },
            _ => ParamKind::Float {
                low: l,
                high: h,
                log,
                step,
            },
        })
    }
}
