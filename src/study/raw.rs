//! The raw structure of a study file as serde reads it, close to the TOML and with byte spans
//! on every field so `validate` can point at mistakes.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) study: Spanned<RawStudy>,
    pub(crate) backend: Option<Spanned<RawBackend>>,
    pub(crate) budget: Option<Spanned<RawBudget>>,
    pub(crate) objective: Option<Spanned<RawObjective>>,
    pub(crate) protocol: Option<Spanned<RawProtocol>>,
    pub(crate) optimizer: Option<Spanned<RawOptimizer>>,
    pub(crate) decision: Option<Spanned<RawDecision>>,
    #[serde(default)]
    pub(crate) params: BTreeMap<String, Spanned<RawParam>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStudy {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) model: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) seed: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackend {
    pub(crate) kind: Spanned<String>,
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) keep_alive: Option<Spanned<String>>,
    pub(crate) profile: Option<Spanned<String>>,
    pub(crate) time_scale: Option<Spanned<f64>>,
    pub(crate) server: Option<Spanned<String>>,
    pub(crate) model_path: Option<Spanned<String>>,
    pub(crate) attach: Option<Spanned<String>>,
    pub(crate) startup_timeout: Option<Spanned<toml::Value>>,
    pub(crate) extra_args: Option<Spanned<Vec<String>>>,
    pub(crate) argv: Option<Spanned<Vec<String>>>,
    pub(crate) timeout: Option<Spanned<toml::Value>>,
    pub(crate) env: Option<Spanned<BTreeMap<String, String>>>,
    pub(crate) runner_params: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    pub(crate) trials: Option<Spanned<i64>>,
    pub(crate) wall_time: Option<Spanned<toml::Value>>,
    pub(crate) max_consecutive_failures: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawObjective {
    pub(crate) metric: Spanned<String>,
    pub(crate) direction: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) constraints: Vec<Spanned<String>>,
    pub(crate) transform: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProtocol {
    pub(crate) repeats: Option<Spanned<i64>>,
    pub(crate) warmup: Option<Spanned<i64>>,
    pub(crate) num_predict: Option<Spanned<i64>>,
    pub(crate) prompts: Option<Spanned<String>>,
    pub(crate) nonce: Option<bool>,
    pub(crate) request_timeout: Option<Spanned<toml::Value>>,
    pub(crate) max_retries: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOptimizer {
    pub(crate) initial_trials: Option<Spanned<i64>>,
    pub(crate) candidates: Option<Spanned<i64>>,
    pub(crate) allow_repeats: Option<bool>,
    pub(crate) reload_aware: Option<bool>,
    pub(crate) strategy: Option<Spanned<String>>,
    pub(crate) confirm: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDecision {
    pub(crate) enabled: Option<bool>,
    pub(crate) share: Option<Spanned<f64>>,
    pub(crate) candidates: Option<Spanned<i64>>,
    pub(crate) alpha: Option<Spanned<f64>>,
    pub(crate) min_rounds: Option<Spanned<i64>>,
    pub(crate) allow_output_changes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParam {
    #[serde(rename = "type")]
    pub(crate) kind: Spanned<String>,
    pub(crate) low: Option<Spanned<toml::Value>>,
    pub(crate) high: Option<Spanned<toml::Value>>,
    pub(crate) log: Option<Spanned<bool>>,
    pub(crate) step: Option<Spanned<toml::Value>>,
    pub(crate) choices: Option<Spanned<Vec<toml::Value>>>,
    pub(crate) default: Option<Spanned<toml::Value>>,
    /// "speed" | "requirement" | "output"; the option table's role when absent.
    pub(crate) role: Option<Spanned<String>>,
    /// "high" | "low": the preferred end of the range among tied configurations.
    pub(crate) prefer: Option<Spanned<String>>,
    /// "grows" | "shrinks" | "none" | "unknown", or for a categorical parameter its choices
    /// from least to most memory (docs/memory.md); the option table's when absent.
    pub(crate) memory: Option<Spanned<toml::Value>>,
    /// Free text for humans; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) description: Option<String>,
}
