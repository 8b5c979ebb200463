//! The options an export writes for Ollama: every valid Ollama option with its type, the
//! llama.cpp names that map onto them, and the resolution of the parameters an export writes
//! (`changes::Selection`) into typed options or explained omissions (shared by the Modelfile,
//! JSON and TOML formats).

use super::changes::Selection;
use crate::domain::llamaserver::{self, FlashAttn};
use crate::engine::space::ParamValue;
use crate::report::{Report, Row};

/// Why a value cannot be given to an Ollama option of its type.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("{0} is not an integer, and Ollama parses integer options strictly")]
    Integer(ParamValue),
    #[error("{0} is not a number")]
    Number(ParamValue),
    #[error("{0} is not true or false")]
    Bool(ParamValue),
}

/// Type of an Ollama option as `api.Options` declares it (and the Modelfile parser checks it):
/// the option table of src/domain/ollama.rs, the one list of valid Ollama options. Anything
/// else makes `ollama create` fail with `unknown parameter`.
pub use crate::domain::ollama::option_type as ollama_option_type;
pub use crate::domain::ollama::OptionType;

/// llama.cpp parameter names left unmapped in a Modelfile although the option table gives them
/// an Ollama name (kept as the export wrote them before the table existed: `n_keep` stays out).
const NOT_MAPPED: &[&str] = &["n_keep"];

/// The Ollama name of a llama.cpp parameter with a per-model Ollama equivalent (for a Modelfile
/// made from a llama-server run): `ctx_size` -> `num_ctx`, `temp` -> `temperature`, ...
fn llamacpp_to_ollama(name: &str) -> Option<&'static str> {
    if NOT_MAPPED.contains(&name) {
        return None;
    }
    llamaserver::OPTIONS
        .iter()
        .find(|o| o.name == name || o.aliases.contains(&name))
        .and_then(|o| o.ollama)
        .filter(|o| *o != name)
}

/// llama.cpp load options that Ollama only has server-wide, as environment variables.
fn ollama_server_wide(name: &str, value: &ParamValue) -> Option<String> {
    match name {
        "flash_attn" => {
            let on = FlashAttn::parse(value) == Some(FlashAttn::On);
            Some(format!("OLLAMA_FLASH_ATTENTION={}", if on { 1 } else { 0 }))
        }
        "cache_type_k" | "cache_type_v" => Some(format!("OLLAMA_KV_CACHE_TYPE={value}")),
        "parallel" => Some(format!("OLLAMA_NUM_PARALLEL={value}")),
        _ => None,
    }
}

/// A value converted to an Ollama option's type, or why it cannot be.
pub(crate) fn ollama_value(
    value: &ParamValue,
    ty: OptionType,
) -> Result<serde_json::Value, ValueError> {
    use serde_json::json;
    match (ty, value) {
        (OptionType::Int, ParamValue::Int(i)) => Ok(json!(i)),
        (OptionType::Int, ParamValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9e15 => {
            Ok(json!(*f as i64))
        }
        (OptionType::Int, ParamValue::Str(s)) if s.trim().parse::<i64>().is_ok() => {
            Ok(json!(s.trim().parse::<i64>().unwrap_or_default()))
        }
        (OptionType::Int, v) => Err(ValueError::Integer(v.clone())),
        (OptionType::Float, ParamValue::Int(i)) => Ok(json!(*i as f64)),
        (OptionType::Float, ParamValue::Float(f)) if f.is_finite() => Ok(json!(f)),
        (OptionType::Float, ParamValue::Str(s))
            if s.trim().parse::<f64>().is_ok_and(f64::is_finite) =>
        {
            Ok(json!(s.trim().parse::<f64>().unwrap_or_default()))
        }
        (OptionType::Float, v) => Err(ValueError::Number(v.clone())),
        (OptionType::Bool, ParamValue::Bool(b)) => Ok(json!(b)),
        (OptionType::Bool, ParamValue::Int(i)) if *i == 0 || *i == 1 => Ok(json!(*i == 1)),
        (OptionType::Bool, ParamValue::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "1" => Ok(json!(true)),
            "false" | "off" | "0" => Ok(json!(false)),
            _ => Err(ValueError::Bool(value.clone())),
        },
        (OptionType::Bool, v) => Err(ValueError::Bool(v.clone())),
        (OptionType::StringList, v) => Ok(json!([v.to_string()])),
        (OptionType::String, v) => Ok(json!(v.to_string())),
    }
}

/// A parameter of the chosen configuration, resolved for the Ollama formats.
pub(crate) enum OllamaParam {
    /// A valid option with its typed value.
    Option {
        name: String,
        value: serde_json::Value,
        ty: OptionType,
        /// The run's parameter name when it differs (llama.cpp name mapped to Ollama's).
        from: Option<String>,
    },
    /// Left out, with the reason (becomes a comment where the format allows one).
    Skipped {
        name: String,
        value: String,
        reason: String,
    },
}

pub(crate) fn ollama_params(row: &Row, sel: &Selection) -> Vec<OllamaParam> {
    let mut out = Vec::new();
    for (name, value) in sel.written() {
        let mapped = llamacpp_to_ollama(name);
        let target = if ollama_option_type(name).is_some() {
            Some(name)
        } else {
            mapped
        };
        // An explicitly tuned Ollama name wins over a mapped llama.cpp one.
        if let Some(t) = target {
            if t != name && row.record.params.contains_key(t) {
                out.push(OllamaParam::Skipped {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason: format!("{t} is set directly"),
                });
                continue;
            }
        }
        match target.and_then(|t| ollama_option_type(t).map(|ty| (t, ty))) {
            Some((t, ty)) => match ollama_value(value, ty) {
                Ok(v) => out.push(OllamaParam::Option {
                    name: t.to_string(),
                    value: v,
                    ty,
                    from: (t != name).then(|| name.to_string()),
                }),
                Err(why) => out.push(OllamaParam::Skipped {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason: why.to_string(),
                }),
            },
            None => {
                let reason = match ollama_server_wide(name, value) {
                    Some(env) => format!("server-wide in Ollama, not per model: set {env} in the server's environment"),
                    None => "not an Ollama option (ollama create would fail with `unknown parameter`)".to_string(),
                };
                out.push(OllamaParam::Skipped {
                    name: name.to_string(),
                    value: value.to_string(),
                    reason,
                });
            }
        }
    }
    out
}

/// The options the JSON and TOML formats write: for Ollama runs only valid, correctly typed
/// Ollama options (an unknown name is silently ignored by the server, a wrong type is an HTTP
/// 500); for other backends every tuned parameter under its own name.
pub(crate) fn options(r: &Report, row: &Row, sel: &Selection) -> Vec<(String, serde_json::Value)> {
    if matches!(r.meta.backend.backend.as_str(), "ollama" | "simulator") {
        ollama_params(row, sel)
            .into_iter()
            .filter_map(|p| match p {
                OllamaParam::Option { name, value, .. } => Some((name, value)),
                OllamaParam::Skipped { .. } => None,
            })
            .collect()
    } else {
        sel.written()
            .into_iter()
            .map(|(n, v)| {
                let typed = ollama_option_type(n).and_then(|ty| ollama_value(v, ty).ok());
                (n.to_string(), typed.unwrap_or_else(|| v.to_json()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_types_follow_ollama() {
        assert_eq!(
            ollama_value(&ParamValue::Float(4096.0), OptionType::Int),
            Ok(serde_json::json!(4096))
        );
        assert!(ollama_value(&ParamValue::Float(0.5), OptionType::Int).is_err());
        assert_eq!(
            ollama_value(&ParamValue::Int(1), OptionType::Float),
            Ok(serde_json::json!(1.0))
        );
        assert_eq!(
            ollama_value(&ParamValue::Str("off".into()), OptionType::Bool),
            Ok(serde_json::json!(false))
        );
        assert_eq!(ollama_option_type("num_thread"), Some(OptionType::Int));
        assert_eq!(ollama_option_type("flash_attn"), None);
    }

    #[test]
    fn llamacpp_names_map_as_before_the_table() {
        let before = [
            ("ctx_size", "num_ctx"),
            ("threads", "num_thread"),
            ("batch_size", "num_batch"),
            ("n_gpu_layers", "num_gpu"),
            ("n_predict", "num_predict"),
            ("temp", "temperature"),
        ];
        for (l, o) in before {
            assert_eq!(llamacpp_to_ollama(l), Some(o), "{l}");
        }
        for l in [
            "temperature",
            "top_k",
            "n_keep",
            "threads_batch",
            "flash_attn",
            "x",
        ] {
            assert_eq!(llamacpp_to_ollama(l), None, "{l}");
        }
    }
}
