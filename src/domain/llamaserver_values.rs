//! The values llama-server's options can take, checked without a server: one value of a
//! load option (`check_option`, also what the llamacpp backend renders as a flag), and a
//! whole search space (`check_space`: reserved or misnamed parameters, load options in attach
//! mode, every bound and choice of a load option). The study validation and the llamacpp
//! backend both call these, so `validate` rejects what `run` would.

use super::llamaserver::{
    self, FlashAttn, LlamaOption, ValueKind, KV_CACHE_TYPES, LOAD_OPTION_NAMES,
};
use crate::engine::space::{ParamKind, ParamValue, SearchSpace};

/// Request fields the protocol owns; a parameter with one of these names would corrupt the
/// measurement.
pub const RESERVED_FIELDS: &[&str] = &[
    "prompt",
    "n_predict",
    "stream",
    "cache_prompt",
    "ignore_eos",
];

/// A value a load option cannot take.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OptionError {
    #[error("{name} must be an integer, got {value}")]
    NotInteger { name: String, value: ParamValue },
    #[error("{name} must be >= {min} ({what}), got {value}")]
    TooSmall {
        name: String,
        min: i64,
        what: &'static str,
        value: i64,
    },
    #[error("flash_attn must be true/false or \"on\"/\"off\"/\"auto\", got {0}")]
    FlashAttn(ParamValue),
    #[error("{name} must be one of {} (llama-server --help), got {value}", KV_CACHE_TYPES.join(", "))]
    CacheType { name: String, value: ParamValue },
}

fn int_value(name: &str, v: &ParamValue) -> Result<i64, OptionError> {
    let n = match v {
        ParamValue::Int(i) => Some(*i),
        ParamValue::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        ParamValue::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| OptionError::NotInteger {
        name: name.to_string(),
        value: v.clone(),
    })
}

fn at_least(name: &str, v: i64, min: i64, what: &'static str) -> Result<i64, OptionError> {
    if v < min {
        Err(OptionError::TooSmall {
            name: name.to_string(),
            min,
            what,
            value: v,
        })
    } else {
        Ok(v)
    }
}

/// `-fa` value of a `flash_attn` parameter: a bool, or one of "on", "off", "auto".
pub fn flash_attn_flag(v: &ParamValue) -> Result<&'static str, OptionError> {
    FlashAttn::parse(v)
        .map(FlashAttn::flag)
        .ok_or_else(|| OptionError::FlashAttn(v.clone()))
}

fn cache_type_flag(name: &str, v: &ParamValue) -> Result<String, OptionError> {
    match v {
        ParamValue::Str(s) if KV_CACHE_TYPES.contains(&s.trim().to_ascii_lowercase().as_str()) => {
            Ok(s.trim().to_ascii_lowercase())
        }
        _ => Err(OptionError::CacheType {
            name: name.to_string(),
            value: v.clone(),
        }),
    }
}

fn gpu_layers_flag(v: &ParamValue) -> Result<String, OptionError> {
    match v {
        ParamValue::Str(s) if matches!(s.trim(), "auto" | "all") => Ok(s.trim().to_string()),
        _ => Ok(at_least(
            "n_gpu_layers",
            int_value("n_gpu_layers", v)?,
            0,
            "layers offloaded to the GPU",
        )?
        .to_string()),
    }
}

/// The flag value of a tuned load option; `what` overrides the table's explanation of an
/// integer bound.
pub(crate) fn flag_value(
    opt: &LlamaOption,
    v: &ParamValue,
    what: Option<&'static str>,
) -> Result<String, OptionError> {
    match opt.kind {
        ValueKind::Int { min, what: w } => {
            at_least(opt.name, int_value(opt.name, v)?, min, what.unwrap_or(w))
                .map(|n| n.to_string())
        }
        ValueKind::FlashAttn => flash_attn_flag(v).map(str::to_string),
        ValueKind::CacheType => cache_type_flag(opt.name, v),
        ValueKind::GpuLayers => gpu_layers_flag(v),
        ValueKind::Sampling => Ok(v.to_string()),
    }
}

/// Check one value of one load option (used by `prepare` on every bound and choice, so a bad
/// study fails before the first trial).
pub fn check_option(name: &str, v: &ParamValue) -> Result<(), OptionError> {
    let Some(opt) = llamaserver::option(name).filter(|o| o.restart) else {
        return Ok(());
    };
    if v.is_auto() {
        // Left out of the command line: the server decides.
        return Ok(());
    }
    // Bounds are checked with the generic wording "at least one".
    let what = match opt.kind {
        ValueKind::Int { min, .. } if min > 0 => Some("at least one"),
        _ => None,
    };
    flag_value(opt, v, what).map(|_| ())
}

/// A mistake in a llama-server search space: the parameter, what is wrong, what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceError {
    pub param: String,
    pub message: String,
    pub hint: String,
}

fn space_error(param: &str, message: String, hint: impl Into<String>) -> SpaceError {
    SpaceError {
        param: param.to_string(),
        message,
        hint: hint.into(),
    }
}

/// Study-level checks that need no server: reserved or misnamed parameters, load options in
/// attach mode, and every bound/choice of a load option.
pub fn check_space(space: &SearchSpace, attach: bool) -> Result<(), SpaceError> {
    for p in &space.params {
        if RESERVED_FIELDS.contains(&p.name.as_str()) {
            return Err(space_error(
                &p.name,
                format!(
                    "parameter {:?} is a request field the measurement protocol sets itself",
                    p.name
                ),
                "remove it; the generation length is protocol.num_predict",
            ));
        }
        if let Some(ours) = llamaserver::load_option_for_ollama(&p.name).map(|o| o.name) {
            return Err(space_error(
                &p.name,
                format!(
                    "parameter {:?} is an Ollama option; llama-server calls it {ours:?}",
                    p.name
                ),
                format!("rename [params.{}] to [params.{ours}]", p.name),
            ));
        }
    }
    let tuned_load: Vec<&str> = space
        .params
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| LOAD_OPTION_NAMES.contains(n))
        .collect();
    if let (true, Some(first)) = (attach, tuned_load.first()) {
        return Err(space_error(
            first,
            format!(
                "backend.attach points at a running llama-server, whose load-time options cannot change, but the study tunes {}",
                tuned_load.join(", ")
            ),
            "remove backend.attach so the tuner starts llama-server itself, or tune only sampling options (temperature, top_k, top_p, min_p, repeat_penalty, ...)",
        ));
    }
    for p in space
        .params
        .iter()
        .filter(|p| LOAD_OPTION_NAMES.contains(&p.name.as_str()))
    {
        let mut values: Vec<ParamValue> = p.default.iter().cloned().collect();
        match &p.kind {
            ParamKind::Int { low, high, .. } => {
                values.extend([ParamValue::Int(*low), ParamValue::Int(*high)])
            }
            ParamKind::Categorical { choices } => values.extend(choices.iter().cloned()),
            ParamKind::Bool => values.extend([ParamValue::Bool(false), ParamValue::Bool(true)]),
            ParamKind::Float { .. } => {
                if p.name != "flash_attn" {
                    return Err(space_error(
                        &p.name,
                        format!(
                            "params.{} is a float; llama-server's {} is an integer",
                            p.name, p.name
                        ),
                        format!("declare [params.{}] with type = \"int\"", p.name),
                    ));
                }
                values.push(ParamValue::Float(0.5));
            }
        }
        for v in &values {
            check_option(&p.name, v).map_err(|m| {
                space_error(
                    &p.name,
                    format!("params.{}: {m}", p.name),
                    "fix the bounds or choices in the study file",
                )
            })?;
        }
    }
    Ok(())
}
