//! The search space: typed parameters, their values, and the encoding to the unit cube the GP works in.
//!
//! Every parameter becomes exactly one encoded dimension:
//! - int / float: mapped affinely to [0, 1], after taking the logarithm when `log = true`.
//!   Integer bounds are widened by half a step on each side (as Optuna's GPSampler does,
//!   optuna/_gp/search_space.py) so every integer owns an interval of equal width.
//! - categorical / bool: the dimension holds the choice index (0, 1, ..., k-1). The kernel
//!   treats such dimensions by Hamming distance, never by numeric distance.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One parameter value as it is sent to a backend and written to the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            ParamValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            ParamValue::Str(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            ParamValue::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            ParamValue::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{}", format_float(*x)),
            ParamValue::Str(s) => write!(f, "{s}"),
        }
    }
}

/// Shortest decimal form that round-trips, without a trailing ".0" noise for whole numbers
/// such as `1.0` (kept, so floats stay floats) but with at most 6 significant decimals.
pub fn format_float(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{x:.1}");
    }
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

/// The value of a parameter the server decides itself: the option is not sent (Ollama) or the
/// flag is left out (llama-server), and the server picks (docs/ollama-options.md, "auto").
pub const AUTO: &str = "auto";

impl ParamValue {
    /// The `auto` value: "do not send this option, let the server decide".
    pub fn auto() -> ParamValue {
        ParamValue::Str(AUTO.to_string())
    }

    pub fn is_auto(&self) -> bool {
        matches!(self, ParamValue::Str(s) if s == AUTO)
    }
}

/// What a parameter is to the user, which decides whether the recommendation may change it
/// (docs/engine.md, "Roles"). Defaults come from the domain tables; a study may override them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Changes only speed and memory (num_gpu, num_batch, num_thread, flash attention, ...).
    #[default]
    Speed,
    /// What the workload needs (num_ctx): the study's range starts at the least the user needs,
    /// and among tied configurations the preferred direction wins.
    Requirement,
    /// Changes what the model writes (temperature, top_p, top_k, ...): measured and reported,
    /// never changed in a recommendation unless the study opts in.
    Output,
}

/// Which end of a parameter's range the user prefers when configurations are tied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    Low,
    High,
}

/// How a parameter moves the memory a configuration needs (docs/memory.md): what lets the
/// optimizer predict, from one out-of-memory configuration, the ones that cannot fit either.
/// Defaults come from the domain tables; a study may declare it for any parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Memory {
    /// It may change memory either way: configurations are compared only at an equal value.
    #[default]
    Unknown,
    /// It cannot change memory (sampling, threads): ignored in the comparison.
    Unaffected,
    /// A larger value needs at least as much memory (layers on the GPU, context, batch).
    Grows,
    /// A larger value needs at most as much memory.
    Shrinks,
    /// A categorical or bool parameter: the memory rank of each choice, in the order of the
    /// choices (false, true for a bool); a higher rank needs at least as much memory.
    Ranked(Vec<f64>),
}

/// A configuration: parameter name to value.
pub type Config = BTreeMap<String, ParamValue>;

/// Stable text key of a configuration, used to detect repeats and known failures.
pub fn config_key(config: &Config) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ParamKind {
    Int {
        low: i64,
        high: i64,
        log: bool,
        step: i64,
    },
    Float {
        low: f64,
        high: f64,
        log: bool,
        step: Option<f64>,
    },
    Categorical {
        choices: Vec<ParamValue>,
    },
    Bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(flatten)]
    pub kind: ParamKind,
    /// The configuration the user runs today; measured first as the baseline. May be `auto`
    /// (the server decides) for a parameter whose option accepts it; the optimizer never
    /// proposes `auto` for an int, float or bool parameter, so only the baseline holds it there.
    pub default: Option<ParamValue>,
    /// What the parameter is to the user; a study written before roles existed (and a run.json
    /// recorded then) reads as `speed`.
    #[serde(default)]
    pub role: Role,
    /// The preferred end of the range among tied configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<Prefer>,
    /// How the parameter moves the memory a configuration needs.
    #[serde(default, skip_serializing_if = "is_unknown_memory")]
    pub memory: Memory,
}

fn is_unknown_memory(m: &Memory) -> bool {
    *m == Memory::Unknown
}

impl Param {
    /// True when the dimension is compared by Hamming distance in the kernel.
    pub fn is_categorical(&self) -> bool {
        matches!(self.kind, ParamKind::Categorical { .. } | ParamKind::Bool)
    }

    /// Number of distinct values, when finite and small enough to matter.
    pub fn cardinality(&self) -> Option<u64> {
        match &self.kind {
            ParamKind::Int {
                low, high, step, ..
            } => {
                // In i128: a width such as high - low of two large bounds overflows i64.
                let n = (i128::from(*high) - i128::from(*low)) / i128::from((*step).max(1)) + 1;
                Some(u64::try_from(n).unwrap_or(u64::MAX))
            }
            ParamKind::Float {
                low,
                high,
                step: Some(s),
                ..
            } => Some(((high - low) / s).round() as u64 + 1),
            ParamKind::Float { .. } => None,
            ParamKind::Categorical { choices } => Some(choices.len() as u64),
            ParamKind::Bool => Some(2),
        }
    }

    /// Encoded bounds of this dimension: [0,1] for numbers, [0, k-1] for choice indices.
    pub fn encoded_upper(&self) -> f64 {
        match &self.kind {
            ParamKind::Categorical { choices } => (choices.len() - 1) as f64,
            ParamKind::Bool => 1.0,
            _ => 1.0,
        }
    }

    fn numeric_range(&self) -> (f64, f64, bool) {
        match &self.kind {
            ParamKind::Int { low, high, log, .. } => {
                // Widen by half a step so the end points own as much of [0,1] as the others.
                let lo = *low as f64 - 0.5;
                let hi = *high as f64 + 0.5;
                if *log {
                    (lo.max(*low as f64 * 0.5).max(1e-12), hi, true)
                } else {
                    (lo, hi, false)
                }
            }
            ParamKind::Float { low, high, log, .. } => (*low, *high, *log),
            _ => (0.0, 1.0, false),
        }
    }

    /// Value -> encoded coordinate. Values outside the bounds are clamped. None for a value
    /// that has no coordinate: a choice the parameter does not list, and `auto` of an int,
    /// float or bool parameter (the server's choice, whose value the tuner does not know: it is
    /// no point of the unit cube, and placing it anywhere would tell the GP something false).
    /// An `auto` listed among a categorical parameter's choices is a choice like any other.
    pub fn encode(&self, value: &ParamValue) -> Option<f64> {
        if value.is_auto() && !matches!(self.kind, ParamKind::Categorical { .. }) {
            return None;
        }
        match &self.kind {
            ParamKind::Categorical { choices } => choices
                .iter()
                .position(|c| values_equal(c, value))
                .map(|i| i as f64),
            ParamKind::Bool => value.as_bool().map(|b| if b { 1.0 } else { 0.0 }),
            _ => {
                let v = value.as_f64()?;
                let (lo, hi, log) = self.numeric_range();
                let u = if log {
                    (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln())
                } else if hi > lo {
                    (v - lo) / (hi - lo)
                } else {
                    0.5
                };
                Some(u.clamp(0.0, 1.0))
            }
        }
    }

    /// Encoded coordinate -> value: rounds integers and steps, picks the nearest choice.
    pub fn decode(&self, u: f64) -> ParamValue {
        match &self.kind {
            ParamKind::Categorical { choices } => {
                let i = (u.round().max(0.0) as usize).min(choices.len() - 1);
                choices[i].clone()
            }
            ParamKind::Bool => ParamValue::Bool(u >= 0.5),
            ParamKind::Int {
                low, high, step, ..
            } => {
                let (lo, hi, log) = self.numeric_range();
                let u = u.clamp(0.0, 1.0);
                let v = if log {
                    (lo.ln() + u * (hi.ln() - lo.ln())).exp()
                } else {
                    lo + u * (hi - lo)
                };
                let k = ((v - *low as f64) / *step as f64).round() as i64;
                let max_k = (high - low) / step;
                ParamValue::Int(low + k.clamp(0, max_k) * step)
            }
            ParamKind::Float {
                low,
                high,
                log,
                step,
            } => {
                let u = u.clamp(0.0, 1.0);
                let mut v = if *log {
                    (low.ln() + u * (high.ln() - low.ln())).exp()
                } else {
                    low + u * (high - low)
                };
                if let Some(s) = step {
                    let k = ((v - low) / s).round();
                    let max_k = ((high - low) / s).floor();
                    v = low + k.clamp(0.0, max_k) * s;
                    // Keep the printed value clean (0.30000000000000004 -> 0.3).
                    v = (v * 1e9).round() / 1e9;
                }
                // 12 significant digits: far below any measurable effect, and it makes
                // decode(encode(v)) == v exactly despite the log/exp round trip, so equal
                // configurations have equal keys.
                ParamValue::Float(round_significant(v, 12).clamp(*low, *high))
            }
        }
    }

    /// The value the tuner measures for `value`: clamped into the bounds and rounded onto the
    /// step grid (and for a float to 12 significant digits), through the encoding; a value
    /// without a coordinate (`auto`, an unlisted choice) stays as it is. A study's default
    /// must be its own normalization, or the baseline would be measured at another value.
    pub fn normalize(&self, value: &ParamValue) -> ParamValue {
        match self.encode(value) {
            Some(u) => self.decode(u),
            None => value.clone(),
        }
    }

    /// True when `value` is a legal value of this parameter (type and bounds).
    pub fn admits(&self, value: &ParamValue) -> bool {
        match (&self.kind, value) {
            (ParamKind::Int { low, high, .. }, v) => match v {
                ParamValue::Int(i) => i >= low && i <= high,
                _ => false,
            },
            (ParamKind::Float { low, high, .. }, v) => match v.as_f64() {
                Some(x) if !matches!(v, ParamValue::Bool(_)) => x >= *low && x <= *high,
                _ => false,
            },
            (ParamKind::Categorical { choices }, v) => choices.iter().any(|c| values_equal(c, v)),
            (ParamKind::Bool, v) => matches!(v, ParamValue::Bool(_)),
        }
    }

    /// Human description of the domain, for reports.
    pub fn domain_text(&self) -> String {
        match &self.kind {
            ParamKind::Int {
                low,
                high,
                log,
                step,
            } => {
                let mut s = format!("int [{low}, {high}]");
                if *step != 1 {
                    s.push_str(&format!(" step {step}"));
                }
                if *log {
                    s.push_str(" log");
                }
                s
            }
            ParamKind::Float {
                low,
                high,
                log,
                step,
            } => {
                let mut s = format!("float [{}, {}]", format_float(*low), format_float(*high));
                if let Some(st) = step {
                    s.push_str(&format!(" step {}", format_float(*st)));
                }
                if *log {
                    s.push_str(" log");
                }
                s
            }
            ParamKind::Categorical { choices } => {
                let c: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                format!("one of {{{}}}", c.join(", "))
            }
            ParamKind::Bool => "bool".to_string(),
        }
    }
}

/// `v` rounded to `digits` significant decimal digits.
pub fn round_significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// Whether two values are the same value of a parameter: equal strings or booleans, or equal
/// numbers whether written as integers or floats (4096 and 4096.0).
pub fn values_equal(a: &ParamValue, b: &ParamValue) -> bool {
    match (a, b) {
        (ParamValue::Str(x), ParamValue::Str(y)) => x == y,
        (ParamValue::Bool(x), ParamValue::Bool(y)) => x == y,
        (ParamValue::Str(_), _) | (_, ParamValue::Str(_)) => false,
        (ParamValue::Bool(_), _) | (_, ParamValue::Bool(_)) => false,
        _ => a.as_f64() == b.as_f64(),
    }
}

/// An ordered list of parameters (the order of the study file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    pub params: Vec<Param>,
}

impl SearchSpace {
    pub fn dims(&self) -> usize {
        self.params.len()
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Mask of dimensions compared by Hamming distance.
    pub fn categorical_mask(&self) -> Vec<bool> {
        self.params.iter().map(|p| p.is_categorical()).collect()
    }

    /// Whether every value of `config` has a coordinate in this space (`Param::encode`): false
    /// when one is `auto` on an int, float or bool parameter. Such a configuration is measured
    /// like any other but is no point the GP can be told about.
    pub fn has_coordinates(&self, config: &Config) -> bool {
        self.params.iter().all(|p| {
            config
                .get(&p.name)
                .is_none_or(|v| !v.is_auto() || p.encode(v).is_some())
        })
    }

    /// Configuration -> encoded point. Missing parameters (and values without a coordinate, see
    /// `has_coordinates`) take the middle of their range.
    pub fn encode(&self, config: &Config) -> Vec<f64> {
        self.params
            .iter()
            .map(|p| {
                config
                    .get(&p.name)
                    .and_then(|v| p.encode(v))
                    .unwrap_or(p.encoded_upper() / 2.0)
            })
            .collect()
    }

    /// Encoded point -> configuration (rounded and clamped).
    pub fn decode(&self, x: &[f64]) -> Config {
        self.params
            .iter()
            .zip(x)
            .map(|(p, u)| (p.name.clone(), p.decode(*u)))
            .collect()
    }

    /// Snap an encoded point onto the lattice of legal values, so equal configurations have
    /// equal coordinates (the GP then sees repeats as repeats).
    pub fn canonicalize(&self, x: &[f64]) -> Vec<f64> {
        self.encode(&self.decode(x))
    }

    /// The baseline configuration: every parameter's default (or None when one is missing).
    pub fn defaults(&self) -> Option<Config> {
        self.params
            .iter()
            .map(|p| p.default.clone().map(|v| (p.name.clone(), v)))
            .collect()
    }

    /// Lower the upper bound of an integer parameter (for example num_gpu to block_count+1,
    /// making every "full offload" value one point). A default above the new bound is clamped.
    /// Returns true when the bound changed.
    pub fn cap_int_upper(&mut self, name: &str, cap: i64) -> bool {
        let Some(p) = self.params.iter_mut().find(|p| p.name == name) else {
            return false;
        };
        let ParamKind::Int { low, high, .. } = &mut p.kind else {
            return false;
        };
        if *high <= cap || cap < *low {
            return false;
        }
        *high = cap;
        if let Some(ParamValue::Int(d)) = &mut p.default {
            if *d > cap {
                *d = cap;
            }
        }
        true
    }

    /// Raise the lower bound of an integer parameter (used by backends that refuse small values).
    pub fn cap_int_lower(&mut self, name: &str, floor: i64) -> bool {
        let Some(p) = self.params.iter_mut().find(|p| p.name == name) else {
            return false;
        };
        let ParamKind::Int { low, high, .. } = &mut p.kind else {
            return false;
        };
        if *low >= floor || floor > *high {
            return false;
        }
        *low = floor;
        if let Some(ParamValue::Int(d)) = &mut p.default {
            if *d < floor {
                *d = floor;
            }
        }
        true
    }

    /// Bring a configuration recorded under wider bounds into this space (clamp + re-round).
    pub fn normalize_config(&self, config: &Config) -> Config {
        let mut out = config.clone();
        for p in &self.params {
            if let Some(v) = config.get(&p.name) {
                out.insert(p.name.clone(), p.normalize(v));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn int(low: i64, high: i64, log: bool, step: i64) -> Param {
        Param {
            name: "p".into(),
            kind: ParamKind::Int {
                low,
                high,
                log,
                step,
            },
            default: None,
            role: Role::Speed,
            prefer: None,
            memory: Default::default(),
        }
    }

    #[test]
    fn integer_end_points_get_equal_share() {
        let p = int(0, 3, false, 1);
        // [0,1] split into 4 bins of width 0.25.
        assert_eq!(p.decode(0.0), ParamValue::Int(0));
        assert_eq!(p.decode(0.24), ParamValue::Int(0));
        assert_eq!(p.decode(0.26), ParamValue::Int(1));
        assert_eq!(p.decode(0.99), ParamValue::Int(3));
        assert!((p.encode(&ParamValue::Int(0)).unwrap() - 0.125).abs() < 1e-12);
    }

    #[test]
    fn log_int_covers_powers_of_two() {
        let p = int(256, 131072, true, 1);
        let lo = p.decode(0.0).as_i64().unwrap();
        let hi = p.decode(1.0).as_i64().unwrap();
        assert_eq!((lo, hi), (256, 131072));
        let mid = p.decode(0.5).as_i64().unwrap();
        assert!((4000..=8000).contains(&mid), "geometric middle, got {mid}");
    }

    #[test]
    fn categorical_round_trip_and_unknown_value() {
        let p = Param {
            name: "kv".into(),
            kind: ParamKind::Categorical {
                choices: vec![
                    ParamValue::Str("f16".into()),
                    ParamValue::Str("q8_0".into()),
                ],
            },
            default: None,
            role: Role::Speed,
            prefer: None,
            memory: Default::default(),
        };
        assert_eq!(p.encode(&ParamValue::Str("q8_0".into())), Some(1.0));
        assert_eq!(p.encode(&ParamValue::Str("q4_0".into())), None);
        assert_eq!(p.decode(0.6), ParamValue::Str("q8_0".into()));
    }

    #[test]
    fn cap_collapses_full_offload_values() {
        let mut s = SearchSpace {
            params: vec![Param {
                name: "num_gpu".into(),
                kind: ParamKind::Int {
                    low: 0,
                    high: 999,
                    log: false,
                    step: 1,
                },
                default: Some(ParamValue::Int(999)),
                role: Role::Speed,
                prefer: None,
                memory: Default::default(),
            }],
        };
        assert!(s.cap_int_upper("num_gpu", 35));
        assert_eq!(s.params[0].default, Some(ParamValue::Int(35)));
        let c = s.decode(&[1.0]);
        assert_eq!(c["num_gpu"], ParamValue::Int(35));
    }

    #[test]
    fn auto_has_no_coordinate_but_survives_normalization() {
        let mut s = SearchSpace {
            params: vec![
                Param {
                    default: Some(ParamValue::auto()),
                    ..int(0, 999, false, 1)
                },
                Param {
                    name: "fa".into(),
                    kind: ParamKind::Categorical {
                        choices: vec![ParamValue::auto(), ParamValue::Str("on".into())],
                    },
                    default: Some(ParamValue::auto()),
                    role: Role::Speed,
                    prefer: None,
                    memory: Default::default(),
                },
            ],
        };
        let p = &s.params[0];
        assert_eq!(p.encode(&ParamValue::auto()), None);
        // A listed `auto` is an ordinary choice.
        assert_eq!(s.params[1].encode(&ParamValue::auto()), Some(0.0));
        // The baseline keeps `auto` as the string value, also after a cap of the bounds.
        assert!(s.cap_int_upper("p", 35));
        let base = s.defaults().unwrap();
        assert_eq!(base["p"], ParamValue::auto());
        let norm = s.normalize_config(&base);
        assert_eq!(norm, base);
        assert!(!s.has_coordinates(&norm));
        let mut numeric = norm.clone();
        numeric.insert("p".into(), ParamValue::Int(10));
        assert!(s.has_coordinates(&numeric));
        // Nothing decoded is ever `auto` on the numeric parameter.
        for u in [0.0, 0.5, 1.0] {
            assert!(!s.params[0].decode(u).is_auto());
        }
    }

    #[test]
    fn a_param_recorded_without_role_reads_as_speed() {
        let json = r#"{"name":"num_ctx","type":"int","low":512,"high":4096,"log":true,"step":1,"default":2048}"#;
        let p: Param = serde_json::from_str(json).unwrap();
        assert_eq!((p.role, p.prefer), (Role::Speed, None));
        let q = Param {
            role: Role::Requirement,
            prefer: Some(Prefer::High),
            memory: Default::default(),
            ..p
        };
        let text = serde_json::to_string(&q).unwrap();
        assert!(
            text.contains(r#""role":"requirement","prefer":"high""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Param>(&text).unwrap(), q);
    }

    fn arb_param() -> impl Strategy<Value = Param> {
        prop_oneof![
            (-50i64..50, 0i64..200, 1i64..5, any::<bool>()).prop_map(|(lo, span, step, log)| {
                let (lo, log) = if log {
                    (lo.abs() + 1, true)
                } else {
                    (lo, false)
                };
                int(lo, lo + span * step, log, step)
            }),
            (
                -5.0f64..5.0,
                0.01f64..10.0,
                any::<bool>(),
                proptest::option::of(0.01f64..1.0)
            )
                .prop_map(|(lo, span, log, step)| {
                    let lo = if log { lo.abs() + 0.01 } else { lo };
                    Param {
                        name: "p".into(),
                        kind: ParamKind::Float {
                            low: lo,
                            high: lo + span,
                            log,
                            step,
                        },
                        default: None,
                        role: Role::Speed,
                        prefer: None,
                        memory: Default::default(),
                    }
                }),
            (1usize..6).prop_map(|k| Param {
                name: "p".into(),
                kind: ParamKind::Categorical {
                    choices: (0..k).map(|i| ParamValue::Str(format!("c{i}"))).collect(),
                },
                default: None,
                role: Role::Speed,
                prefer: None,
                memory: Default::default(),
            }),
            Just(Param {
                name: "p".into(),
                kind: ParamKind::Bool,
                default: None,
                role: Role::Speed,
                prefer: None,
                memory: Default::default(),
            }),
        ]
    }

    proptest! {
        /// Any coordinate decodes to a legal value, and decode(encode(decode(u))) is stable:
        /// canonicalization is idempotent.
        #[test]
        fn decode_is_legal_and_canonical(p in arb_param(), u in 0.0f64..=1.0) {
            let u = u * p.encoded_upper();
            let v = p.decode(u);
            prop_assert!(p.admits(&v), "{v:?} not admitted by {:?}", p.kind);
            let e = p.encode(&v).unwrap();
            prop_assert!(e >= 0.0 && e <= p.encoded_upper());
            prop_assert_eq!(p.decode(e), v);
        }

        /// Encoding is monotone for ordered numeric parameters.
        #[test]
        fn encode_is_monotone(p in arb_param(), a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            if !p.is_categorical() {
                let (va, vb) = (p.decode(a.min(b)), p.decode(a.max(b)));
                prop_assert!(va.as_f64().unwrap() <= vb.as_f64().unwrap());
            }
        }
    }
}
