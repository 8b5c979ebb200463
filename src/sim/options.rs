//! Request options as Ollama parses them (api/types.go `Options.FromMap`).
//!
//! The rules the simulator copies: every JSON number arrives as a float, so an integer option
//! given 4096.7 becomes 4096 (truncation); a wrong JSON type is an error whose text is exactly
//! Ollama's (`option "num_ctx" must be of type integer`), answered with HTTP 500 by the server;
//! `null` leaves the default; unknown names are ignored. Nothing is range-checked here: the
//! performance model clamps (num_ctx to the training context, and so on).
//!
//! This table is the simulator's own copy of Ollama's, kept apart from the tuner's on purpose so
//! that the simulator stays an independent implementation; a test compares the two through
//! [`OPTION_KINDS`] (or [`option_names_and_types`]) and `RunnerKey::OPTIONS`.

use super::error::RequestError;
use serde_json::{Map, Value};

/// Options after Ollama's defaults, the model's Modelfile parameters and the request's options.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    // Runner options: fixed at load time; changing one forces a reload.
    /// 0 = unset: the server decides (the VRAM tier, 4096 below 23 GiB; `RunnerKey::new`).
    pub num_ctx: i64,
    /// 0 = unset: the server decides (512; 1024 above 4k context, 2048 above 32k).
    pub num_batch: i64,
    /// -1 (any negative) = as many layers as fit; 0 = CPU only.
    pub num_gpu: i64,
    pub main_gpu: i64,
    pub use_mmap: Option<bool>,
    /// 0 = runtime decides (the physical core count).
    pub num_thread: i64,
    // Sampling / prediction options: never reload.
    pub num_keep: i64,
    pub seed: i64,
    pub num_predict: i64,
    pub top_k: i64,
    pub top_p: f64,
    pub min_p: f64,
    pub typical_p: f64,
    pub repeat_last_n: i64,
    pub temperature: f64,
    pub repeat_penalty: f64,
    pub presence_penalty: f64,
    pub frequency_penalty: f64,
    pub stop: Vec<String>,
}

impl Default for SimOptions {
    /// api.DefaultOptions() (ollama/ollama:api/types.go; also in docs/simulator.md), with
    /// num_ctx and num_batch unset: since v0.15.5 (context) and v0.30 (batch) the server picks
    /// them when neither the request nor the Modelfile sets them.
    fn default() -> Self {
        SimOptions {
            num_ctx: 0,
            num_batch: 0,
            num_gpu: -1,
            main_gpu: 0,
            use_mmap: None,
            num_thread: 0,
            num_keep: 4,
            seed: -1,
            num_predict: -1,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            typical_p: 1.0,
            repeat_last_n: 64,
            temperature: 0.8,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            stop: Vec::new(),
        }
    }
}

/// The type of the field of Ollama's `api.Options` / `api.Runner` struct an option fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// Go `int`: JSON numbers, truncated toward zero.
    Int,
    /// Go `float32`.
    Float,
    /// Go `bool` (`*bool` for use_mmap).
    Bool,
    /// Go `[]string`.
    Strings,
}

impl OptionKind {
    /// The Go type of the field: `int`, `float32`, `bool` or `[]string`.
    pub fn go_type(self) -> &'static str {
        match self {
            OptionKind::Int => "int",
            OptionKind::Float => "float32",
            OptionKind::Bool => "bool",
            OptionKind::Strings => "[]string",
        }
    }
}

/// Every option name the simulator understands, with its type; any other name is ignored like
/// Ollama does. The runner options (a change reloads the model) are `RunnerKey::OPTIONS`.
pub const OPTION_KINDS: &[(&str, OptionKind)] = &[
    ("num_ctx", OptionKind::Int),
    ("num_batch", OptionKind::Int),
    ("num_gpu", OptionKind::Int),
    ("main_gpu", OptionKind::Int),
    ("use_mmap", OptionKind::Bool),
    ("num_thread", OptionKind::Int),
    ("num_keep", OptionKind::Int),
    ("seed", OptionKind::Int),
    ("num_predict", OptionKind::Int),
    ("top_k", OptionKind::Int),
    ("top_p", OptionKind::Float),
    ("min_p", OptionKind::Float),
    ("typical_p", OptionKind::Float),
    ("repeat_last_n", OptionKind::Int),
    ("temperature", OptionKind::Float),
    ("repeat_penalty", OptionKind::Float),
    ("presence_penalty", OptionKind::Float),
    ("frequency_penalty", OptionKind::Float),
    ("stop", OptionKind::Strings),
];

/// `OPTION_KINDS` as (name, Go type) pairs, in the table's order.
pub fn option_names_and_types() -> Vec<(&'static str, &'static str)> {
    OPTION_KINDS
        .iter()
        .map(|(name, kind)| (*name, kind.go_type()))
        .collect()
}

/// A parsed option value.
enum Parsed {
    Int(i64),
    Float(f64),
    Bool(bool),
    Strings(Vec<String>),
}

impl SimOptions {
    /// Apply a JSON options map over `self`, with Ollama's errors for wrong types.
    pub fn apply(&mut self, map: &Map<String, Value>) -> Result<(), RequestError> {
        for (key, value) in map {
            let Some((_, kind)) = OPTION_KINDS.iter().find(|(name, _)| name == key) else {
                continue; // Ollama logs "invalid option provided" and goes on.
            };
            if value.is_null() {
                continue;
            }
            let parsed = parse_value(key, *kind, value)?;
            self.set(key, parsed);
        }
        Ok(())
    }

    /// Apply Modelfile `PARAMETER` lines given as (name, value-text) pairs, as `ollama create`
    /// stores them; used for a profile's built-in parameters.
    pub fn apply_parameters(&mut self, params: &[(&str, &str)]) {
        for (name, text) in params {
            if *name == "stop" {
                self.stop.push(text.trim_matches('"').to_string());
                continue;
            }
            let Ok(x) = text.parse::<f64>() else {
                continue;
            };
            let mut map = Map::new();
            map.insert(name.to_string(), serde_json::json!(x));
            // Profile parameters are static and well-typed; a failure would be a typo there.
            let _ = self.apply(&map);
        }
    }

    fn set(&mut self, key: &str, value: Parsed) {
        match value {
            Parsed::Int(i) => {
                let slot = match key {
                    "num_ctx" => &mut self.num_ctx,
                    "num_batch" => &mut self.num_batch,
                    "num_gpu" => &mut self.num_gpu,
                    "main_gpu" => &mut self.main_gpu,
                    "num_thread" => &mut self.num_thread,
                    "num_keep" => &mut self.num_keep,
                    "seed" => &mut self.seed,
                    "num_predict" => &mut self.num_predict,
                    "top_k" => &mut self.top_k,
                    "repeat_last_n" => &mut self.repeat_last_n,
                    _ => return,
                };
                *slot = i;
            }
            Parsed::Float(x) => {
                let slot = match key {
                    "top_p" => &mut self.top_p,
                    "min_p" => &mut self.min_p,
                    "typical_p" => &mut self.typical_p,
                    "temperature" => &mut self.temperature,
                    "repeat_penalty" => &mut self.repeat_penalty,
                    "presence_penalty" => &mut self.presence_penalty,
                    "frequency_penalty" => &mut self.frequency_penalty,
                    _ => return,
                };
                // Ollama stores these as float32.
                *slot = x as f32 as f64;
            }
            Parsed::Bool(b) => {
                if key == "use_mmap" {
                    self.use_mmap = Some(b);
                }
            }
            Parsed::Strings(s) => {
                if key == "stop" {
                    self.stop = s;
                }
            }
        }
    }
}

fn parse_value(key: &str, kind: OptionKind, value: &Value) -> Result<Parsed, RequestError> {
    let wrong = |expected| RequestError::OptionType {
        key: key.to_string(),
        expected,
    };
    match kind {
        // JSON numbers decode to float64 in Go; int64(f) truncates toward zero (and Rust's
        // `as` saturates where Go's is undefined).
        OptionKind::Int => value
            .as_f64()
            .map(|f| Parsed::Int(f as i64))
            .ok_or_else(|| wrong("integer")),
        OptionKind::Float => value
            .as_f64()
            .map(Parsed::Float)
            .ok_or_else(|| wrong("float32")),
        OptionKind::Bool => value
            .as_bool()
            .map(Parsed::Bool)
            .ok_or_else(|| wrong("boolean")),
        OptionKind::Strings => {
            let items = value.as_array().ok_or_else(|| wrong("array"))?;
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Parsed::Strings)
                .ok_or_else(|| RequestError::OptionNotStrings {
                    key: key.to_string(),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(v: Value) -> Result<SimOptions, String> {
        let mut o = SimOptions::default();
        o.apply(v.as_object().unwrap())
            .map(|_| o)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn truncates_float_integers_and_ignores_unknown_names() {
        let o = apply(json!({"num_ctx": 4096.7, "nonsense": 3, "temperature": 0.4})).unwrap();
        assert_eq!(o.num_ctx, 4096);
        assert!((o.temperature - 0.4).abs() < 1e-6);
    }

    #[test]
    fn wrong_types_give_ollamas_messages() {
        assert_eq!(
            apply(json!({"num_ctx": "big"})).unwrap_err(),
            "option \"num_ctx\" must be of type integer"
        );
        assert_eq!(
            apply(json!({"top_p": true})).unwrap_err(),
            "option \"top_p\" must be of type float32"
        );
        assert_eq!(
            apply(json!({"use_mmap": 1})).unwrap_err(),
            "option \"use_mmap\" must be of type boolean"
        );
        assert_eq!(
            apply(json!({"stop": "x"})).unwrap_err(),
            "option \"stop\" must be of type array"
        );
        assert_eq!(
            apply(json!({"stop": ["a", 1]})).unwrap_err(),
            "option \"stop\" must be of an array of strings"
        );
    }

    #[test]
    fn the_table_names_every_settable_option() {
        let names: Vec<&str> = option_names_and_types().iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), 19);
        assert_eq!(
            option_names_and_types()[4],
            ("use_mmap", "bool"),
            "{names:?}"
        );
        // Every name in the table sets a field.
        for (name, kind) in OPTION_KINDS {
            let value = match kind {
                OptionKind::Int => json!(3),
                OptionKind::Float => json!(0.125),
                OptionKind::Bool => json!(false),
                OptionKind::Strings => json!(["x"]),
            };
            let mut map = Map::new();
            map.insert(name.to_string(), value);
            assert_ne!(
                apply(Value::Object(map)).unwrap(),
                SimOptions::default(),
                "{name}"
            );
        }
    }

    #[test]
    fn null_keeps_the_default() {
        // Unset: the server decides (RunnerKey::new).
        assert_eq!(apply(json!({"num_batch": null})).unwrap().num_batch, 0);
        assert_eq!(apply(json!({})).unwrap().num_ctx, 0);
        assert_eq!(apply(json!({"num_ctx": 2048})).unwrap().num_ctx, 2048);
    }

    /// What the server runs when the request leaves a runner option out (RunnerKey::new), as
    /// Ollama decides it: docs/simulator.md, "Runner options and reloads".
    mod unset_options {
        use super::*;
        use crate::sim::model::{RunnerKey, SimModel};
        use crate::sim::profiles::{Profile, GEMMA3_4B, LAPTOP_12GB};

        fn key(p: &Profile, options: Value) -> RunnerKey {
            let mut o = p.default_options();
            o.apply(options.as_object().unwrap()).unwrap();
            RunnerKey::new(p, &o)
        }

        #[test]
        fn absent_options_get_the_servers_choices() {
            let k = key(&GEMMA3_4B, json!({}));
            assert_eq!(k.num_ctx, 4096, "the tier below 23 GiB");
            assert_eq!(k.num_batch, 512);
            assert_eq!(k.num_gpu, -1, "as many layers as fit");
            assert_eq!(k.num_thread, 8, "the physical cores");
            let e = SimModel::expected(&GEMMA3_4B, &GEMMA3_4B.default_options()).unwrap();
            assert_eq!(e.gpu_layers, 35, "the whole model fits 12 GB: every layer");
            assert_eq!(e.vram_bytes + (314 << 20), e.size_bytes);
        }

        #[test]
        fn the_context_tier_follows_vram_and_the_batch_the_context() {
            let big = Profile {
                machine: crate::sim::profiles::Machine {
                    vram_bytes: 24 << 30,
                    ..LAPTOP_12GB
                },
                ..GEMMA3_4B
            };
            let k = key(&big, json!({}));
            assert_eq!(k.num_ctx, 32_768);
            assert_eq!(k.num_batch, 1024, "above a 4k context");
            let huge = Profile {
                machine: crate::sim::profiles::Machine {
                    vram_bytes: 48 << 30,
                    ..LAPTOP_12GB
                },
                ..GEMMA3_4B
            };
            // 262144 clamped to the model's trained context.
            assert_eq!(key(&huge, json!({})).num_ctx, 131_072);
            // Explicit values are kept (clamped as before); a set num_batch is not resized.
            let k = key(&GEMMA3_4B, json!({"num_ctx": 16384, "num_batch": 64}));
            assert_eq!((k.num_ctx, k.num_batch), (16384, 64));
            assert_eq!(key(&GEMMA3_4B, json!({"num_ctx": 16384})).num_batch, 1024);
        }

        #[test]
        fn a_larger_automatic_batch_never_costs_a_layer() {
            // 128k context spills with auto num_gpu: the 2048 batch would cost layers, so the
            // server keeps 512.
            let k = key(&GEMMA3_4B, json!({"num_ctx": 131072}));
            assert_eq!(k.num_batch, 512);
        }
    }

    #[test]
    fn modelfile_parameters_apply() {
        let mut o = SimOptions::default();
        o.apply_parameters(&[
            ("stop", "\"<end_of_turn>\""),
            ("top_k", "64"),
            ("top_p", "0.95"),
        ]);
        assert_eq!(o.top_k, 64);
        assert_eq!(o.stop, vec!["<end_of_turn>".to_string()]);
    }
}
