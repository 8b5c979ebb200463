//! The objective the engine optimizes: a metric's statistic, its direction, the outcome
//! constraints and how the GP sees the values. A study parses into these types.

use serde::{Deserialize, Serialize};

/// Which metrics are positive with multiplicative noise (throughputs and durations), so that
/// `Transform::Auto` models their logarithm. Domain knowledge: the caller supplies it.
pub type PositiveMetric = fn(&str) -> bool;

/// A constraint text that does not parse.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ObjectiveError {
    #[error("constraint {text:?} must look like `METRIC <= VALUE` or `METRIC >= VALUE`, for example \"ttft_p95 <= 0.5s\"")]
    NoComparison { text: String },
    #[error("constraint {text:?}: {lhs:?} is not a metric name")]
    NotAMetric { text: String, lhs: String },
    #[error("constraint {text:?}: {rhs:?} is not a number (units allowed: s, ms, us)")]
    NotANumber { text: String, rhs: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

/// Which statistic of a metric's samples a reference means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Median,
    Mean,
    P95,
    Std,
    Min,
    Max,
}

impl Stat {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stat::Median => "median",
            Stat::Mean => "mean",
            Stat::P95 => "p95",
            Stat::Std => "std",
            Stat::Min => "min",
            Stat::Max => "max",
        }
    }
}

/// `ttft_p95` -> metric `ttft`, statistic p95; `decode_tps` -> median of `decode_tps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricRef {
    pub metric: String,
    pub stat: Stat,
}

impl MetricRef {
    pub fn parse(text: &str) -> MetricRef {
        for (suffix, stat) in [
            ("_median", Stat::Median),
            ("_p50", Stat::Median),
            ("_mean", Stat::Mean),
            ("_p95", Stat::P95),
            ("_std", Stat::Std),
            ("_min", Stat::Min),
            ("_max", Stat::Max),
        ] {
            if let Some(base) = text.strip_suffix(suffix) {
                if !base.is_empty() {
                    return MetricRef {
                        metric: base.to_string(),
                        stat,
                    };
                }
            }
        }
        MetricRef {
            metric: text.to_string(),
            stat: Stat::Median,
        }
    }

    pub fn label(&self) -> String {
        if self.stat == Stat::Median {
            self.metric.clone()
        } else {
            format!("{}_{}", self.metric, self.stat.as_str())
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">=")]
    AtLeast,
}

/// An outcome constraint such as `ttft_p95 <= 0.5s`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub metric: MetricRef,
    pub op: Comparison,
    pub bound: f64,
    pub text: String,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, ObjectiveError> {
        let (lhs, op, rhs) = if let Some((l, r)) = text.split_once("<=") {
            (l, Comparison::AtMost, r)
        } else if let Some((l, r)) = text.split_once(">=") {
            (l, Comparison::AtLeast, r)
        } else {
            return Err(ObjectiveError::NoComparison {
                text: text.to_string(),
            });
        };
        let lhs = lhs.trim();
        if lhs.is_empty() || !lhs.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ObjectiveError::NotAMetric {
                text: text.to_string(),
                lhs: lhs.to_string(),
            });
        }
        let bound = parse_quantity(rhs.trim()).ok_or_else(|| ObjectiveError::NotANumber {
            text: text.to_string(),
            rhs: rhs.trim().to_string(),
        })?;
        Ok(Constraint {
            metric: MetricRef::parse(lhs),
            op,
            bound,
            text: text.trim().to_string(),
        })
    }

    /// Signed slack: <= 0 when satisfied (the convention of Optuna's constraints_func).
    pub fn violation(&self, value: f64) -> f64 {
        match self.op {
            Comparison::AtMost => value - self.bound,
            Comparison::AtLeast => self.bound - value,
        }
    }
}

/// A number with an optional time unit, in seconds: "0.5s", "500ms", "250us", "2".
pub fn parse_quantity(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(|x| x * scale)
}

/// How the GP sees the objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// log for known positive metrics (throughputs and durations), none otherwise.
    Auto,
    Log,
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub metric: MetricRef,
    pub direction: Direction,
    pub constraints: Vec<Constraint>,
    pub transform: Transform,
}

impl Objective {
    /// Whether the GP should model log(value): tokens/s and seconds are positive with
    /// multiplicative noise (docs/engine.md, "Modelling the objective"). `positive` says which metrics are
    /// such rates or durations (domain knowledge the caller supplies).
    pub fn use_log(&self, values: &[f64], positive: PositiveMetric) -> bool {
        let all_positive = values.iter().all(|v| *v > 0.0);
        match self.transform {
            Transform::Log => all_positive,
            Transform::None => false,
            Transform::Auto => all_positive && positive(&self.metric.metric),
        }
    }
}
