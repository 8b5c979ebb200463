//! What the server actually ran: the configuration with the values a server resolved (`auto`)
//! or changed (a layer count capped at the model's, a context clamped to the trained one), from
//! what it tells after a load. For Ollama that is `/api/ps` (`size`, `size_vram`,
//! `context_length`, ollama/ollama:api/types.go `ProcessModelResponse`); llama-server's own
//! reading is in llamacpp/resolved.rs. docs/ollama-options.md ("What the backend sends and
//! records") and docs/llama-server.md ("What the server chose") describe both.
//!
//! The backends return only the changed values (`LoadReport::effective`); `overlay` lays them
//! over a trial's configuration.

use crate::engine::space::{Config, ParamValue};
use serde_json::{json, Map, Value};

/// The trial's configuration with the server's values laid over it, or None when nothing
/// differs (the server ran what was asked).
pub fn overlay(config: &Config, server: &Config) -> Option<Config> {
    let mut out = config.clone();
    for (k, v) in server {
        if let Some(slot) = out.get_mut(k) {
            *slot = v.clone();
        }
    }
    (out != *config).then_some(out)
}

/// Facts about the model from `/api/show` that bound its options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelFacts {
    /// `<arch>.block_count`: the repeating layers (num_gpu = block_count+1 puts all of them and
    /// the output layer on the GPU).
    pub block_count: Option<i64>,
    /// `<arch>.context_length`: the trained context.
    pub context_length: Option<i64>,
}

/// One model's `/api/ps` entry, as far as it matters here.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PsEntry {
    /// Bytes the loaded model occupies in all.
    pub size: Option<f64>,
    /// The part of it in GPU memory.
    pub size_vram: Option<f64>,
    /// The context the runner was loaded with (Ollama v0.10+).
    pub context_length: Option<i64>,
}

impl PsEntry {
    /// Read one entry of `/api/ps` `models`.
    pub fn from_json(m: &Value) -> PsEntry {
        PsEntry {
            size: m["size"].as_f64(),
            size_vram: m["size_vram"].as_f64(),
            context_length: m["context_length"].as_i64().filter(|c| *c > 0),
        }
    }
}

/// Whether an Ollama num_gpu value leaves the layer count to the server: `auto`, or any
/// negative number (Ollama's -1 default).
fn num_gpu_is_auto(v: &ParamValue) -> bool {
    v.is_auto() || v.as_i64().is_some_and(|n| n < 0)
}

/// Layers on the GPU as `/api/ps` shows them: all (block_count+1) when the whole model is in
/// VRAM, none when none of it is, else the share of bytes times the layer count, an estimate
/// (the output layer and the KV cache do not weigh like a repeating layer). The flag says
/// whether the value is an estimate.
pub fn layers_on_gpu(ps: &PsEntry, block_count: i64) -> Option<(i64, bool)> {
    let (size, vram) = (ps.size?, ps.size_vram?);
    let all = block_count + 1;
    if size <= 0.0 {
        return None;
    }
    if vram >= size {
        Some((all, false))
    } else if vram <= 0.0 {
        Some((0, false))
    } else {
        let est = (vram / size * all as f64).round() as i64;
        Some((est.clamp(0, all), true))
    }
}

/// Ollama's runner options as the server ran them after a load, and the `server_chose` note
/// (what /api/ps said, and how each resolved value was read).
///
/// - num_ctx: an `auto` value is the `context_length` /api/ps reports; a number above the
///   model's trained context is clamped to it (Ollama clamps it at load).
/// - num_gpu: an `auto` (or negative) value is the layer count /api/ps implies
///   ([`layers_on_gpu`], marked `num_gpu_estimated` when it is a share of bytes); a number
///   above block_count+1 is block_count+1 (every such value is full offload).
/// - num_batch, num_thread and any other `auto` value stay `auto`: the server does not say.
pub fn ollama_effective(
    config: &Config,
    model: &ModelFacts,
    ps: Option<&PsEntry>,
) -> (Config, Value) {
    let mut out = Config::new();
    let mut chose = Map::new();
    if let Some(ps) = ps {
        chose.insert("size".into(), json!(ps.size));
        chose.insert("size_vram".into(), json!(ps.size_vram));
        chose.insert("context_length".into(), json!(ps.context_length));
    }
    if let Some(v) = config.get("num_ctx") {
        let resolved = if v.is_auto() {
            ps.and_then(|p| p.context_length)
        } else {
            match (v.as_i64(), model.context_length) {
                (Some(n), Some(cl)) if n > cl => Some(cl),
                _ => None,
            }
        };
        if let Some(n) = resolved {
            out.insert("num_ctx".into(), ParamValue::Int(n));
        }
    }
    if let (Some(v), Some(bc)) = (config.get("num_gpu"), model.block_count) {
        if num_gpu_is_auto(v) {
            if let Some((layers, estimated)) = ps.and_then(|p| layers_on_gpu(p, bc)) {
                out.insert("num_gpu".into(), ParamValue::Int(layers));
                chose.insert("num_gpu".into(), json!(layers));
                chose.insert("num_gpu_estimated".into(), json!(estimated));
            }
        } else if v.as_i64().is_some_and(|n| n > bc + 1) {
            out.insert("num_gpu".into(), ParamValue::Int(bc + 1));
        }
    }
    (out, Value::Object(chose))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, ParamValue)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    const GEMMA3_4B: ModelFacts = ModelFacts {
        block_count: Some(34),
        context_length: Some(131_072),
    };

    #[test]
    fn overlay_reports_only_a_difference() {
        let c = cfg(&[
            ("num_gpu", ParamValue::Int(35)),
            ("temperature", ParamValue::Float(0.5)),
        ]);
        assert_eq!(overlay(&c, &Config::new()), None);
        assert_eq!(overlay(&c, &cfg(&[("num_gpu", ParamValue::Int(35))])), None);
        // A value for a parameter the trial does not have is not added.
        assert_eq!(
            overlay(&c, &cfg(&[("num_ctx", ParamValue::Int(4096))])),
            None
        );
        let o = overlay(&c, &cfg(&[("num_gpu", ParamValue::Int(20))])).unwrap();
        assert_eq!(o["num_gpu"], ParamValue::Int(20));
        assert_eq!(o["temperature"], ParamValue::Float(0.5));
    }

    #[test]
    fn auto_values_resolve_from_api_ps() {
        let c = cfg(&[
            ("num_gpu", ParamValue::auto()),
            ("num_ctx", ParamValue::auto()),
            ("num_batch", ParamValue::auto()),
        ]);
        let ps = PsEntry {
            size: Some(5.0e9),
            size_vram: Some(5.0e9),
            context_length: Some(4096),
        };
        let (e, chose) = ollama_effective(&c, &GEMMA3_4B, Some(&ps));
        assert_eq!(e["num_gpu"], ParamValue::Int(35), "all layers");
        assert_eq!(e["num_ctx"], ParamValue::Int(4096));
        assert!(!e.contains_key("num_batch"), "the server does not say");
        assert_eq!(chose["context_length"], 4096);
        assert_eq!(chose["num_gpu_estimated"], false);
        // A spill: the layer count is an estimate from the share of bytes in VRAM.
        let spill = PsEntry {
            size_vram: Some(2.5e9),
            ..ps
        };
        let (e, chose) = ollama_effective(&c, &GEMMA3_4B, Some(&spill));
        assert_eq!(e["num_gpu"], ParamValue::Int(18));
        assert_eq!(chose["num_gpu_estimated"], true);
        // Ollama's own -1 is auto too; without /api/ps nothing resolves.
        let minus = cfg(&[("num_gpu", ParamValue::Int(-1))]);
        assert_eq!(
            ollama_effective(&minus, &GEMMA3_4B, Some(&ps)).0["num_gpu"],
            ParamValue::Int(35)
        );
        assert!(ollama_effective(&c, &GEMMA3_4B, None).0.is_empty());
    }

    #[test]
    fn numbers_are_capped_like_the_server_does() {
        let c = cfg(&[
            ("num_gpu", ParamValue::Int(999)),
            ("num_ctx", ParamValue::Int(1 << 20)),
        ]);
        let (e, _) = ollama_effective(&c, &GEMMA3_4B, None);
        assert_eq!(e["num_gpu"], ParamValue::Int(35));
        assert_eq!(e["num_ctx"], ParamValue::Int(131_072));
        let fits = cfg(&[
            ("num_gpu", ParamValue::Int(35)),
            ("num_ctx", ParamValue::Int(2048)),
        ]);
        assert!(ollama_effective(&fits, &GEMMA3_4B, None).0.is_empty());
    }

    #[test]
    fn layers_on_gpu_edges() {
        let ps = |size, vram| PsEntry {
            size: Some(size),
            size_vram: Some(vram),
            context_length: None,
        };
        assert_eq!(layers_on_gpu(&ps(1.0, 0.0), 34), Some((0, false)));
        assert_eq!(layers_on_gpu(&ps(1.0, 1.0), 34), Some((35, false)));
        assert_eq!(layers_on_gpu(&ps(0.0, 0.0), 34), None);
        assert_eq!(layers_on_gpu(&ps(4.0, 1.0), 34), Some((9, true)));
    }
}
