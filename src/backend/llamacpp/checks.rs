//! Study-level checks of a llamacpp search space that need no server.

use super::argv::{check_option, RESERVED_FIELDS};
use crate::backend::BackendError;
use crate::domain::llamaserver::{self, LOAD_OPTION_NAMES};
use crate::engine::space::{ParamKind, ParamValue, SearchSpace};

/// Study-level checks that need no server: reserved or misnamed parameters, load options in
/// attach mode, and every bound/choice of a load option.
pub(crate) fn check_space(space: &SearchSpace, attach: bool) -> Result<(), BackendError> {
    for p in &space.params {
        if RESERVED_FIELDS.contains(&p.name.as_str()) {
            return Err(BackendError::fatal(
                format!(
                    "parameter {:?} is a request field the measurement protocol sets itself",
                    p.name
                ),
                "remove it; the generation length is protocol.num_predict",
            ));
        }
        if let Some(ours) = llamaserver::load_option_for_ollama(&p.name).map(|o| o.name) {
            return Err(BackendError::fatal(
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
    if attach && !tuned_load.is_empty() {
        return Err(BackendError::fatal(
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
                    return Err(BackendError::fatal(
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
                BackendError::fatal(
                    format!("params.{}: {m}", p.name),
                    "fix the bounds or choices in the study file",
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn space(text: &str) -> SearchSpace {
        let study = format!("[study]\nname = \"t\"\n[backend]\nkind = \"llamacpp\"\n{text}");
        crate::study::parse_study(Path::new("t.toml"), &study)
            .unwrap()
            .space
    }

    #[test]
    fn space_checks() {
        let s = space("[params.threads]\ntype = \"int\"\nlow = 1\nhigh = 4\n[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n");
        assert!(check_space(&s, false).is_ok());
        match check_space(&s, true) {
            Err(BackendError::Fatal(crate::backend::Fatal { message, .. })) => {
                assert!(message.contains("threads"), "{message}")
            }
            other => panic!("attach with a load option must be fatal: {other:?}"),
        }
        let t = space("[params.temperature]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n");
        assert!(check_space(&t, true).is_ok());
        let bad =
            space("[params.cache_type_v]\ntype = \"categorical\"\nchoices = [\"f16\", \"q3\"]\n");
        assert!(check_space(&bad, false).is_err());
        let ollama = space("[params.num_ctx]\ntype = \"int\"\nlow = 512\nhigh = 4096\n");
        match check_space(&ollama, false) {
            Err(BackendError::Fatal(crate::backend::Fatal { hint, .. })) => {
                assert!(hint.contains("ctx_size"), "{hint}")
            }
            other => panic!("{other:?}"),
        }
        let reserved = space("[params.n_predict]\ntype = \"int\"\nlow = 1\nhigh = 4\n");
        assert!(check_space(&reserved, false).is_err());
    }
}
