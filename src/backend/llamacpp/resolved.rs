//! What a started llama-server says it chose: the context, batch sizes, threads, flash
//! attention and GPU layers it runs with, read from its trace-level log (`-lv 4`) and `GET
//! /props`, turned into the trial's effective configuration and the `server_chose` note.
//!
//! The lines read (`ggml-org/llama.cpp`: src/llama-context.cpp, src/llama-model.cpp,
//! common/common.cpp; summarized in docs/llama-server.md, "What the server chose"):
//! `llama_context: n_ctx = N`, `llama_context: n_batch = N`, `llama_context: n_ubatch = N`,
//! `resolve_fused_ops: Flash Attention enabled` (or `... not supported, set to disabled`),
//! `load_tensors: offloaded N/M layers to GPU` (only on builds with a GPU backend) and
//! `system_info: n_threads = N (n_threads_batch = M)`. `/props` reports the context of one slot
//! (`default_generation_settings.n_ctx`) and the slot count (`total_slots`).

use crate::domain::llamaserver::FlashAttn;
use crate::engine::space::{Config, ParamValue};
use serde_json::{json, Map, Value};

/// What the server reported; None where it said nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Chosen {
    /// Total context (`-c`).
    pub n_ctx: Option<i64>,
    pub n_batch: Option<i64>,
    pub n_ubatch: Option<i64>,
    pub flash_attn: Option<bool>,
    pub gpu_layers: Option<i64>,
    pub threads: Option<i64>,
    pub threads_batch: Option<i64>,
}

/// The number after `key` on a line (`"n_ctx                 = 32768"` after `"n_ctx"`).
fn number_after(line: &str, key: &str) -> Option<i64> {
    let rest = &line[line.find(key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// A `llama_context: <key> = N` line's value (the key is followed by spaces, not by `_seq`).
fn context_value(line: &str, key: &str) -> Option<i64> {
    let rest = line.split("llama_context: ").nth(1)?;
    let rest = rest.strip_prefix(key)?;
    if !rest.starts_with([' ', '=']) {
        return None;
    }
    number_after(rest, "")
}

impl Chosen {
    /// Read the server's log lines (later lines win: the last start is the one measured).
    pub(crate) fn from_log<'a>(lines: impl IntoIterator<Item = &'a str>) -> Chosen {
        let mut c = Chosen::default();
        for line in lines {
            if let Some(v) = context_value(line, "n_ctx") {
                c.n_ctx = Some(v);
            } else if let Some(v) = context_value(line, "n_batch") {
                c.n_batch = Some(v);
            } else if let Some(v) = context_value(line, "n_ubatch") {
                c.n_ubatch = Some(v);
            } else if line.contains("Flash Attention enabled") {
                c.flash_attn = Some(true);
            } else if line.contains("Flash Attention not supported") {
                c.flash_attn = Some(false);
            } else if let Some(fa) = line
                .split("llama_context: flash_attn")
                .nth(1)
                .and_then(|r| r.split('=').nth(1))
            {
                // `flash_attn = enabled|disabled|auto`: an explicit choice is final.
                match fa.trim() {
                    "enabled" => c.flash_attn = Some(true),
                    "disabled" => c.flash_attn = Some(false),
                    _ => {}
                }
            } else if let Some(rest) = line.split("offloaded ").nth(1) {
                if line.contains("layers to GPU") {
                    let n: String = rest.chars().take_while(|ch| ch.is_ascii_digit()).collect();
                    c.gpu_layers = n.parse().ok().or(c.gpu_layers);
                }
            } else if line.contains("system_info: n_threads") {
                c.threads = number_after(line, "n_threads");
                c.threads_batch = number_after(line, "n_threads_batch").or(c.threads);
            }
        }
        c
    }

    /// Fill what the log did not say from `/props` (the context: per slot times slots).
    pub(crate) fn with_props(mut self, props: &Value) -> Chosen {
        if self.n_ctx.is_none() {
            let per_slot = props["default_generation_settings"]["n_ctx"].as_i64();
            let slots = props["total_slots"].as_i64().unwrap_or(1).max(1);
            self.n_ctx = per_slot.filter(|n| *n > 0).map(|n| n * slots);
        }
        self
    }

    /// The value the server chose for one of our load options.
    fn value(&self, name: &str) -> Option<i64> {
        match name {
            "ctx_size" => self.n_ctx,
            "batch_size" => self.n_batch,
            "ubatch_size" => self.n_ubatch,
            "n_gpu_layers" => self.gpu_layers,
            "threads" => self.threads,
            "threads_batch" => self.threads_batch,
            _ => None,
        }
    }

    /// The `server_chose` note: every value the server reported.
    pub(crate) fn note(&self) -> Value {
        let mut m = Map::new();
        for name in [
            "ctx_size",
            "batch_size",
            "ubatch_size",
            "n_gpu_layers",
            "threads",
            "threads_batch",
        ] {
            if let Some(v) = self.value(name) {
                m.insert(name.into(), json!(v));
            }
        }
        if let Some(fa) = self.flash_attn {
            m.insert("flash_attn".into(), json!(if fa { "on" } else { "off" }));
        }
        Value::Object(m)
    }
}

/// The tuned load options as the server ran them, for those that differ from `config`: what
/// the server reported where it reported it, else what the backend knows before the start
/// (`known`: ubatch clamped to batch). `gpu_layers_max` is the most layers there are to
/// offload (0 on a build without a GPU device, which offloads nothing and logs no count).
/// A `flash_attn` value keeps the form of the study's value (a bool stays a bool).
pub(crate) fn effective(
    config: &Config,
    known: &Config,
    chosen: &Chosen,
    gpu_layers_max: Option<i64>,
) -> Config {
    let mut out = known.clone();
    for (name, v) in config {
        if name == "flash_attn" {
            let Some(on) = chosen.flash_attn else {
                continue;
            };
            let changed = match FlashAttn::parse(v) {
                Some(FlashAttn::Auto) => true,
                Some(asked) => (asked == FlashAttn::On) != on,
                None => false,
            };
            if changed {
                let value = match v {
                    ParamValue::Bool(_) => ParamValue::Bool(on),
                    ParamValue::Int(_) => ParamValue::Int(on as i64),
                    _ => ParamValue::Str(if on { "on" } else { "off" }.into()),
                };
                out.insert(name.clone(), value);
            }
            continue;
        }
        let reported = chosen.value(name).or_else(|| match name.as_str() {
            "n_gpu_layers" if chosen.gpu_layers.is_none() && gpu_layers_max == Some(0) => Some(0),
            _ => None,
        });
        let reported = reported.or_else(|| {
            // A layer count above the model's is all layers.
            match (name.as_str(), v.as_i64(), gpu_layers_max) {
                ("n_gpu_layers", Some(n), Some(max)) if n > max => Some(max),
                _ => None,
            }
        });
        if let Some(r) = reported {
            if v.as_i64() != Some(r) || v.is_auto() {
                out.insert(name.clone(), ParamValue::Int(r));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a real start (gemma 3 270M, CPU build, `-b 8 -ub 8192 -fa auto -lv 4`).
    const LOG: &str = "\
0.00.020.730 I cmn  common_param: system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 |
0.00.025.771 I cmn  common_init_: fitting params to device memory ...
0.02.893.378 I print_info: n_ctx_train           = 32768
0.02.953.611 I llama_context: n_ctx                 = 32768
0.02.953.619 I llama_context: n_ctx_seq             = 32768
0.02.953.626 I llama_context: n_batch               = 8
0.02.953.633 I llama_context: n_ubatch              = 8
0.02.953.648 I llama_context: flash_attn            = auto
0.03.114.757 I resolve_fused_ops: Flash Attention enabled
0.04.897.742 I srv    load_model: initializing, n_slots = 1, n_ctx_slot = 32768, kv_unified = 'false'";

    #[test]
    fn reads_a_real_start_log() {
        let c = Chosen::from_log(LOG.lines());
        assert_eq!(c.n_ctx, Some(32768));
        assert_eq!((c.n_batch, c.n_ubatch), (Some(8), Some(8)));
        assert_eq!(c.flash_attn, Some(true));
        assert_eq!((c.threads, c.threads_batch), (Some(2), Some(2)));
        assert_eq!(c.gpu_layers, None, "a CPU build logs no offload");
        let gpu = Chosen::from_log([
            "load_tensors: offloaded 19/19 layers to GPU",
            "llama_context: flash_attn            = disabled",
        ]);
        assert_eq!((gpu.gpu_layers, gpu.flash_attn), (Some(19), Some(false)));
        let off =
            Chosen::from_log(["resolve_fused_ops: Flash Attention not supported, set to disabled"]);
        assert_eq!(off.flash_attn, Some(false));
    }

    #[test]
    fn props_fill_the_context() {
        let props = json!({"default_generation_settings": {"n_ctx": 8192}, "total_slots": 2});
        assert_eq!(Chosen::default().with_props(&props).n_ctx, Some(16384));
        let logged = Chosen {
            n_ctx: Some(4096),
            ..Chosen::default()
        };
        assert_eq!(logged.with_props(&props).n_ctx, Some(4096), "the log wins");
        assert_eq!(Chosen::default().with_props(&Value::Null).n_ctx, None);
    }

    fn cfg(pairs: &[(&str, ParamValue)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn effective_resolves_auto_and_keeps_the_study_form() {
        let c = Chosen::from_log(LOG.lines());
        let config = cfg(&[
            ("ctx_size", ParamValue::auto()),
            ("batch_size", ParamValue::Int(8)),
            ("ubatch_size", ParamValue::Int(8192)),
            ("flash_attn", ParamValue::auto()),
            ("n_gpu_layers", ParamValue::auto()),
            ("temperature", ParamValue::Float(0.5)),
        ]);
        let e = effective(&config, &Config::new(), &c, Some(0));
        assert_eq!(e["ctx_size"], ParamValue::Int(32768));
        assert_eq!(e["ubatch_size"], ParamValue::Int(8));
        assert_eq!(e["flash_attn"], ParamValue::Str("on".into()));
        assert_eq!(e["n_gpu_layers"], ParamValue::Int(0), "CPU-only build");
        assert!(!e.contains_key("batch_size"), "ran as asked");
        assert!(!e.contains_key("temperature"));
        // A bool flash_attn stays a bool; an explicit choice that held is not repeated.
        let b = cfg(&[("flash_attn", ParamValue::Bool(true))]);
        assert!(effective(&b, &Config::new(), &c, None).is_empty());
        let forced_off = Chosen {
            flash_attn: Some(false),
            ..c
        };
        assert_eq!(
            effective(&b, &Config::new(), &forced_off, None)["flash_attn"],
            ParamValue::Bool(false)
        );
        // Nothing logged: the known clamp and the layer cap still apply.
        let known = cfg(&[("ubatch_size", ParamValue::Int(8))]);
        let quiet = effective(
            &cfg(&[
                ("ubatch_size", ParamValue::Int(8192)),
                ("n_gpu_layers", ParamValue::Int(999)),
            ]),
            &known,
            &Chosen::default(),
            Some(19),
        );
        assert_eq!(quiet["ubatch_size"], ParamValue::Int(8));
        assert_eq!(quiet["n_gpu_layers"], ParamValue::Int(19));
    }
}
