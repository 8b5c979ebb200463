//! Request options as Ollama parses them (api/types.go `Options.FromMap`).
//!
//! The rules the simulator copies: every JSON number arrives as a float, so an integer option
//! given 4096.7 becomes 4096 (truncation); a wrong JSON type is an error whose text is exactly
//! Ollama's (`option "num_ctx" must be of type integer`), answered with HTTP 500 by the server;
//! `null` leaves the default; unknown names are ignored. Nothing is range-checked here: the
//! performance model clamps (num_ctx to the training context, and so on).

use serde_json::{Map, Value};

/// Options after Ollama's defaults, the model's Modelfile parameters and the request's options.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    // Runner options: fixed at load time; changing one forces a reload.
    /// 0 = server decides (4096 on a 12 GB GPU).
    pub num_ctx: i64,
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
    /// api.DefaultOptions() as listed in shared/reference/ollama-api.md ("Options").
    fn default() -> Self {
        SimOptions {
            num_ctx: 4096,
            num_batch: 512,
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

/// The JSON type Ollama's option struct field has.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Bool,
    Strings,
}

/// Every option name the simulator understands; any other name is ignored like Ollama does.
const KINDS: &[(&str, Kind)] = &[
    ("num_ctx", Kind::Int),
    ("num_batch", Kind::Int),
    ("num_gpu", Kind::Int),
    ("main_gpu", Kind::Int),
    ("use_mmap", Kind::Bool),
    ("num_thread", Kind::Int),
    ("num_keep", Kind::Int),
    ("seed", Kind::Int),
    ("num_predict", Kind::Int),
    ("top_k", Kind::Int),
    ("top_p", Kind::Float),
    ("min_p", Kind::Float),
    ("typical_p", Kind::Float),
    ("repeat_last_n", Kind::Int),
    ("temperature", Kind::Float),
    ("repeat_penalty", Kind::Float),
    ("presence_penalty", Kind::Float),
    ("frequency_penalty", Kind::Float),
    ("stop", Kind::Strings),
];

/// A parsed option value.
enum Parsed {
    Int(i64),
    Float(f64),
    Bool(bool),
    Strings(Vec<String>),
}

impl SimOptions {
    /// Apply a JSON options map over `self`, with Ollama's errors for wrong types.
    pub fn apply(&mut self, map: &Map<String, Value>) -> Result<(), String> {
        for (key, value) in map {
            let Some((_, kind)) = KINDS.iter().find(|(name, _)| name == key) else {
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

fn parse_value(key: &str, kind: Kind, value: &Value) -> Result<Parsed, String> {
    match kind {
        // JSON numbers decode to float64 in Go; int64(f) truncates toward zero (and Rust's
        // `as` saturates where Go's is undefined).
        Kind::Int => value
            .as_f64()
            .map(|f| Parsed::Int(f as i64))
            .ok_or_else(|| format!("option {key:?} must be of type integer")),
        Kind::Float => value
            .as_f64()
            .map(Parsed::Float)
            .ok_or_else(|| format!("option {key:?} must be of type float32")),
        Kind::Bool => value
            .as_bool()
            .map(Parsed::Bool)
            .ok_or_else(|| format!("option {key:?} must be of type boolean")),
        Kind::Strings => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("option {key:?} must be of type array"))?;
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Parsed::Strings)
                .ok_or_else(|| format!("option {key:?} must be of an array of strings"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(v: Value) -> Result<SimOptions, String> {
        let mut o = SimOptions::default();
        o.apply(v.as_object().unwrap()).map(|_| o)
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
    }

    #[test]
    fn null_keeps_the_default() {
        assert_eq!(apply(json!({"num_batch": null})).unwrap().num_batch, 512);
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
