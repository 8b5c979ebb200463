//! The llama-server command line of a configuration and the streaming /completion request body,
//! both built from the option table in src/domain/llamaserver.rs.
//!
//! Every load-time option is passed explicitly, with `--fit off`: `--fit on` (llama-server's
//! default) rewrites *unset* options to fit the device, which would make the measured
//! configuration differ from the recorded one (docs/llama-server.md). The exception is a value
//! `auto`: its flag is left out so llama-server decides, and when that leaves the context or the
//! layer count to it, `--fit` stays on (its default) so it fits them as a stock server does.
//! Whenever the command leaves something to the server, `-lv 4` makes it log what it chose
//! (read back by `resolved.rs`).

use crate::backend::effective::overlay;
use crate::domain::llamaserver::{
    self, FlashAttn, LlamaOption, Untuned, ValueKind, FIT_OPTIONS, TRACE_LOG_ARGS,
};
use crate::domain::llamaserver_values::flag_value;
pub use crate::domain::llamaserver_values::OptionError;
pub(crate) use crate::domain::llamaserver_values::RESERVED_FIELDS;
use crate::engine::space::{Config, ParamValue};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Facts of the machine that set the values of untuned options.
#[derive(Clone, Debug, PartialEq)]
pub struct HostDefaults {
    /// `threads` (and `threads_batch`) when not tuned: llama-server's -1 lets llama.cpp choose from
    /// the CPU count; the logical CPU count is what it uses on these VMs.
    pub threads: i64,
    /// `n_gpu_layers` when not tuned: 0 when the build lists no GPU device, else 999 (all).
    pub n_gpu_layers: i64,
}

impl HostDefaults {
    /// Before `prepare` knows the devices: all layers on the GPU (harmless on a CPU-only build).
    pub fn detect() -> HostDefaults {
        HostDefaults {
            threads: cpu_count() as i64,
            n_gpu_layers: 999,
        }
    }
}

/// Logical CPUs available to this process.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The load-time flags of a configuration and the adjustments made to it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadArgs {
    pub args: Vec<String>,
    pub notes: BTreeMap<String, Value>,
    /// Tuned values the server will run differently, known before it starts (ubatch clamped
    /// to batch).
    pub effective: Config,
    /// The command leaves something to the server (an absent flag, `-fa auto`, `--fit` on):
    /// what it chose must be read from its log.
    pub left_to_server: bool,
}

/// The load-time flags of `config`: every load option explicit (untuned ones at the table's
/// values) except those whose value is `auto` (left out: llama-server decides),
/// `ubatch_size` clamped to `batch_size` (llama.cpp requires ubatch <= batch), and `--fit off`
/// so nothing is rewritten behind the measurement's back, unless the context or the layer
/// count is left to the server (then `--fit` stays on and fits them, as on a stock server).
pub(crate) fn load_args(config: &Config, host: &HostDefaults) -> Result<LoadArgs, OptionError> {
    let mut notes = BTreeMap::new();
    let mut effective = Config::new();
    let mut values: Vec<(&'static LlamaOption, String)> = Vec::new();
    let mut absent: Vec<&'static str> = Vec::new();
    for opt in llamaserver::load_options() {
        let value_of = |name: &str| {
            values
                .iter()
                .find(|(o, _)| o.name == name)
                .map(|(_, v)| v.clone())
        };
        let mut value = match config.get(opt.name) {
            Some(v) if v.is_auto() => {
                absent.push(opt.name);
                continue;
            }
            Some(v) => flag_value(opt, v, None)?,
            None => match opt.untuned {
                Untuned::Int(i) => i.to_string(),
                Untuned::Text(t) => t.to_string(),
                Untuned::HostThreads => host.threads.max(1).to_string(),
                Untuned::HostGpuLayers => host.n_gpu_layers.to_string(),
                // "Same as" an option left to the server: left to it too (-tb follows -t).
                Untuned::SameAs(other) => match value_of(other) {
                    Some(v) => v,
                    None => {
                        absent.push(opt.name);
                        continue;
                    }
                },
                Untuned::Unset => continue,
            },
        };
        if let Some(limit) = opt.at_most {
            // An absent limit is the server's default for it (-b 2048).
            let limit_value = value_of(limit)
                .or_else(|| llamaserver::option(limit).map(|o| o.server_default.to_string()))
                .and_then(|v| v.parse::<i64>().ok());
            if let (Ok(requested), Some(used)) = (value.parse::<i64>(), limit_value) {
                if requested > used {
                    notes.insert(
                        format!("{}_clamped", opt.name),
                        json!({"requested": requested, "used": used, "why": format!("{} must not exceed {limit}", opt.name)}),
                    );
                    value = used.to_string();
                    if config.contains_key(opt.name) {
                        effective.insert(opt.name.to_string(), ParamValue::Int(used));
                    }
                }
            }
        }
        values.push((opt, value));
    }
    let mut args = Vec::with_capacity(2 * values.len() + 4);
    let mut left_to_server = !absent.is_empty();
    for (opt, value) in values {
        left_to_server |= opt.kind == ValueKind::FlashAttn && value == FlashAttn::Auto.flag();
        args.push(opt.flag.to_string());
        args.push(value);
    }
    if FIT_OPTIONS.iter().all(|o| !absent.contains(o)) {
        args.extend(["--fit".to_string(), "off".to_string()]);
    } else {
        notes.insert(
            "fit".into(),
            json!(format!(
                "on (llama-server's default): {} left to the server",
                FIT_OPTIONS
                    .iter()
                    .filter(|o| absent.contains(o))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }
    if left_to_server {
        args.extend(TRACE_LOG_ARGS.iter().map(|a| a.to_string()));
    }
    Ok(LoadArgs {
        args,
        notes,
        effective,
        left_to_server,
    })
}

/// The configuration llama-server runs for `config`, as far as the command line decides it
/// before the server starts: `config` with the tuned values `load_args` changes (ubatch clamped
/// to batch). The backend's `runs_as` rule for the optimizer; idempotent, since a clamped value
/// is within its limit.
pub(crate) fn runs_as(config: &Config, host: &HostDefaults) -> Config {
    load_args(config, host)
        .ok()
        .and_then(|a| overlay(config, &a.effective))
        .unwrap_or_else(|| config.clone())
}

/// The untuned values as `prepare` records them in the run's backend details
/// (`untuned_defaults`).
pub(crate) fn untuned_defaults(host: &HostDefaults) -> Value {
    let mut m = serde_json::Map::new();
    for opt in llamaserver::load_options() {
        let v = match opt.untuned {
            Untuned::Int(i) => json!(i),
            Untuned::Text(t) => json!(t),
            Untuned::HostThreads => json!(host.threads),
            Untuned::HostGpuLayers => json!(host.n_gpu_layers),
            Untuned::SameAs(other) => json!(format!("= {other}")),
            Untuned::Unset => continue,
        };
        m.insert(opt.name.to_string(), v);
    }
    m.insert("fit".into(), json!("off"));
    m.insert("warmup".into(), json!("off (the protocol warms up)"));
    Value::Object(m)
}

/// The complete llama-server argv (binary first) for `config` on `host:port`. `--no-warmup`:
/// the protocol sends its own warm-up requests. `extra_args` come last.
pub fn command_line(
    binary: &Path,
    model: &Path,
    host: &str,
    port: u16,
    config: &Config,
    defaults: &HostDefaults,
    extra_args: &[String],
) -> Result<LoadArgs, OptionError> {
    let load = load_args(config, defaults)?;
    let mut args = vec![
        binary.display().to_string(),
        "-m".to_string(),
        model.display().to_string(),
        "--host".to_string(),
        host.to_string(),
        "--port".to_string(),
        port.to_string(),
    ];
    args.extend(load.args);
    args.push("--no-warmup".to_string());
    args.extend(extra_args.iter().cloned());
    Ok(LoadArgs { args, ..load })
}

/// Name of a sampling option in the /completion request (Ollama's `num_keep` is `n_keep`).
fn request_field(name: &str) -> &str {
    match name {
        "num_keep" => "n_keep",
        other => other,
    }
}

/// The streaming /completion request: every non-load option of the configuration as a request
/// field (temperature, top_k, top_p, min_p, repeat_penalty, seed, ... under llama-server's names),
/// a fixed length (`ignore_eos`, so every request decodes exactly `n_predict` tokens) and no
/// prompt cache (`cache_prompt` defaults to true, which would inflate prefill numbers).
pub(crate) fn completion_body(
    config: &Config,
    prompt: &str,
    n_predict: u32,
    load_options: &[String],
) -> Value {
    let mut o = serde_json::Map::new();
    for (k, v) in config {
        if llamaserver::LOAD_OPTION_NAMES.contains(&k.as_str())
            || load_options.contains(k)
            || RESERVED_FIELDS.contains(&k.as_str())
        {
            continue;
        }
        o.insert(request_field(k).to_string(), v.to_json());
    }
    o.insert("prompt".into(), json!(prompt));
    o.insert("n_predict".into(), json!(n_predict));
    o.insert("stream".into(), json!(true));
    o.insert("cache_prompt".into(), json!(false));
    o.insert("ignore_eos".into(), json!(true));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::llamaserver_values::{check_option, flash_attn_flag};

    fn cfg(pairs: &[(&str, ParamValue)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn host() -> HostDefaults {
        HostDefaults {
            threads: 2,
            n_gpu_layers: 0,
        }
    }

    fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    }

    #[test]
    fn every_load_option_is_explicit_with_defaults() {
        let a = load_args(&Config::new(), &host()).unwrap();
        assert_eq!(
            a.args.join(" "),
            "-c 4096 -t 2 -tb 2 -b 2048 -ub 512 -fa auto -ctk f16 -ctv f16 -ngl 0 -np 1 --fit off -lv 4"
        );
        assert!(a.notes.is_empty());
        assert!(
            a.left_to_server,
            "-fa auto: the server decides, and says so at -lv 4"
        );
        // Everything explicit: nothing to read back.
        let all = cfg(&[("flash_attn", ParamValue::Bool(false))]);
        let a = load_args(&all, &host()).unwrap();
        assert!(
            a.args.ends_with(&["--fit".into(), "off".into()]),
            "{:?}",
            a.args
        );
        assert!(!a.left_to_server);
    }

    #[test]
    fn auto_values_leave_their_flags_out_and_fit_on() {
        let c = cfg(&[
            ("ctx_size", ParamValue::auto()),
            ("threads", ParamValue::auto()),
            ("n_gpu_layers", ParamValue::auto()),
            ("flash_attn", ParamValue::Bool(true)),
        ]);
        let a = load_args(&c, &host()).unwrap();
        for absent in ["-c", "-t", "-tb", "-ngl", "--fit"] {
            assert_eq!(flag(&a.args, absent), None, "{absent} in {:?}", a.args);
        }
        assert_eq!(flag(&a.args, "-b"), Some("2048"));
        assert_eq!(flag(&a.args, "-lv"), Some("4"));
        assert!(a.left_to_server);
        assert!(a.notes["fit"]
            .as_str()
            .unwrap()
            .contains("ctx_size, n_gpu_layers"));
        // Only one fit option explicit: fit stays on for the other.
        let c = cfg(&[
            ("ctx_size", ParamValue::Int(2048)),
            ("n_gpu_layers", ParamValue::auto()),
        ]);
        let a = load_args(&c, &host()).unwrap();
        assert_eq!(flag(&a.args, "-c"), Some("2048"));
        assert_eq!(flag(&a.args, "--fit"), None);
        // Auto values pass the study checks.
        for name in [
            "ctx_size",
            "threads",
            "n_gpu_layers",
            "flash_attn",
            "batch_size",
        ] {
            assert!(check_option(name, &ParamValue::auto()).is_ok(), "{name}");
        }
    }

    #[test]
    fn tuned_options_map_to_flags() {
        let c = cfg(&[
            ("ctx_size", ParamValue::Int(1024)),
            ("threads", ParamValue::Int(1)),
            ("batch_size", ParamValue::Int(256)),
            ("ubatch_size", ParamValue::Int(64)),
            ("flash_attn", ParamValue::Bool(true)),
            ("cache_type_k", ParamValue::Str("q8_0".into())),
            ("cache_type_v", ParamValue::Str("Q4_0".into())),
            ("n_gpu_layers", ParamValue::Int(7)),
            ("parallel", ParamValue::Int(2)),
            ("temperature", ParamValue::Float(0.7)),
        ]);
        let a = load_args(&c, &host()).unwrap();
        assert_eq!(flag(&a.args, "-c"), Some("1024"));
        assert_eq!(flag(&a.args, "-t"), Some("1"));
        assert_eq!(
            flag(&a.args, "-tb"),
            Some("1"),
            "threads_batch follows threads when untuned"
        );
        assert_eq!(flag(&a.args, "-b"), Some("256"));
        assert_eq!(flag(&a.args, "-ub"), Some("64"));
        assert_eq!(flag(&a.args, "-fa"), Some("on"));
        assert_eq!(flag(&a.args, "-ctk"), Some("q8_0"));
        assert_eq!(flag(&a.args, "-ctv"), Some("q4_0"));
        assert_eq!(flag(&a.args, "-ngl"), Some("7"));
        assert_eq!(flag(&a.args, "-np"), Some("2"));
        assert!(!a
            .args
            .iter()
            .any(|x| x.contains("temperature") || x == "0.7"));
        let c2 = cfg(&[
            ("threads", ParamValue::Int(1)),
            ("threads_batch", ParamValue::Int(2)),
        ]);
        assert_eq!(
            flag(&load_args(&c2, &host()).unwrap().args, "-tb"),
            Some("2")
        );
    }

    #[test]
    fn ubatch_is_clamped_to_batch_and_noted() {
        let c = cfg(&[
            ("batch_size", ParamValue::Int(64)),
            ("ubatch_size", ParamValue::Int(512)),
        ]);
        let a = load_args(&c, &host()).unwrap();
        assert_eq!(flag(&a.args, "-ub"), Some("64"));
        assert_eq!(a.notes["ubatch_size_clamped"]["requested"], 512);
        assert_eq!(a.notes["ubatch_size_clamped"]["used"], 64);
        // The tuned ubatch runs as 64: the effective configuration says so.
        assert_eq!(a.effective["ubatch_size"], ParamValue::Int(64));
        assert_eq!(a.effective.len(), 1);
        // The case: -b 8 -ub 8192 runs as -b 8 -ub 8.
        let c = cfg(&[
            ("batch_size", ParamValue::Int(8)),
            ("ubatch_size", ParamValue::Int(8192)),
        ]);
        let a = load_args(&c, &host()).unwrap();
        assert_eq!(a.effective["ubatch_size"], ParamValue::Int(8));
        // A batch left to the server is its default, 2048.
        let c = cfg(&[
            ("batch_size", ParamValue::auto()),
            ("ubatch_size", ParamValue::Int(4096)),
        ]);
        let a = load_args(&c, &host()).unwrap();
        assert_eq!(flag(&a.args, "-b"), None);
        assert_eq!(flag(&a.args, "-ub"), Some("2048"));
        // An untuned ubatch is clamped too, but is no tuned value to report.
        let c = cfg(&[("batch_size", ParamValue::Int(128))]);
        assert!(load_args(&c, &host()).unwrap().effective.is_empty());
    }

    #[test]
    fn runs_as_is_the_clamp_the_command_line_applies() {
        let c = cfg(&[
            ("batch_size", ParamValue::Int(8)),
            ("ubatch_size", ParamValue::Int(6156)),
            ("threads", ParamValue::Int(2)),
        ]);
        let ran = runs_as(&c, &host());
        assert_eq!(ran["ubatch_size"], ParamValue::Int(8));
        assert_eq!(ran["batch_size"], ParamValue::Int(8));
        assert_eq!(ran["threads"], ParamValue::Int(2));
        assert_eq!(runs_as(&ran, &host()), ran, "idempotent");
        // Within the limit, or a limit left to the server: as asked.
        let fits = cfg(&[
            ("batch_size", ParamValue::Int(512)),
            ("ubatch_size", ParamValue::Int(256)),
        ]);
        assert_eq!(runs_as(&fits, &host()), fits);
        // A value the command line refuses is left for the trial to report.
        let bad = cfg(&[
            ("threads", ParamValue::Int(0)),
            ("batch_size", ParamValue::Int(8)),
            ("ubatch_size", ParamValue::Int(64)),
        ]);
        assert_eq!(runs_as(&bad, &host()), bad);
    }

    #[test]
    fn flash_attn_forms() {
        for (v, want) in [
            (ParamValue::Bool(true), "on"),
            (ParamValue::Bool(false), "off"),
            (ParamValue::Str("on".into()), "on"),
            (ParamValue::Str("OFF".into()), "off"),
            (ParamValue::Str("auto".into()), "auto"),
            (ParamValue::Int(1), "on"),
        ] {
            assert_eq!(flash_attn_flag(&v).unwrap(), want, "{v:?}");
        }
        assert!(flash_attn_flag(&ParamValue::Str("maybe".into()))
            .unwrap_err()
            .to_string()
            .contains("auto"));
        assert!(flash_attn_flag(&ParamValue::Float(0.5)).is_err());
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let e = load_args(
            &cfg(&[("cache_type_v", ParamValue::Str("q3_k".into()))]),
            &host(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("q8_0"), "{e}");
        let e = load_args(&cfg(&[("threads", ParamValue::Int(0))]), &host())
            .unwrap_err()
            .to_string();
        assert!(e.contains(">= 1"), "{e}");
        let e = load_args(
            &cfg(&[("ctx_size", ParamValue::Str("big".into()))]),
            &host(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("integer"), "{e}");
        assert!(load_args(
            &cfg(&[("n_gpu_layers", ParamValue::Str("all".into()))]),
            &host()
        )
        .is_ok());
    }

    #[test]
    fn command_line_order() {
        let a = command_line(
            Path::new("/opt/llama-server"),
            Path::new("/m.gguf"),
            "127.0.0.1",
            8081,
            &Config::new(),
            &host(),
            &["--mlock".to_string()],
        )
        .unwrap();
        assert_eq!(
            &a.args[..7],
            [
                "/opt/llama-server",
                "-m",
                "/m.gguf",
                "--host",
                "127.0.0.1",
                "--port",
                "8081"
            ]
        );
        assert_eq!(a.args[a.args.len() - 2..], ["--no-warmup", "--mlock"]);
    }

    #[test]
    fn request_body_carries_sampling_options_only() {
        let c = cfg(&[
            ("ctx_size", ParamValue::Int(1024)),
            ("temperature", ParamValue::Float(0.2)),
            ("top_k", ParamValue::Int(20)),
            ("num_keep", ParamValue::Int(4)),
            ("my_load", ParamValue::Int(1)),
        ]);
        let b = completion_body(&c, "hi", 64, &["my_load".to_string()]);
        assert_eq!(b["temperature"], 0.2);
        assert_eq!(b["top_k"], 20);
        assert_eq!(b["n_keep"], 4);
        assert!(b.get("ctx_size").is_none() && b.get("my_load").is_none());
        assert_eq!(b["n_predict"], 64);
        assert_eq!(b["stream"], true);
        assert_eq!(b["cache_prompt"], false);
        assert_eq!(b["ignore_eos"], true);
    }
}
