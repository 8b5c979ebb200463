//! `[backend]`: the backend kind and its settings, the parameters that reload it, and settings
//! written for another kind.

use super::duration_field;
use crate::study::backends::{LLAMACPP_LOAD_OPTIONS, OLLAMA_RUNNER_OPTIONS};
use crate::study::error::{ConfigError, Locator};
use crate::study::raw::RawBackend;
use crate::study::types::BackendConfig;
use std::ops::Range;
use toml::Spanned;

/// The backend and its runner (reload-forcing) parameters.
pub(super) fn validate_backend(
    loc: &Locator,
    raw: Option<Spanned<RawBackend>>,
    study_span: &Range<usize>,
) -> Result<(BackendConfig, Vec<String>), ConfigError> {
    let Some(rb) = raw else {
        return Err(loc.err(study_span.clone(), "backend", "missing [backend] table (kind = \"ollama\" | \"simulator\" | \"llamacpp\" | \"command\")"));
    };
    let rb = rb.into_inner();
    let (backend, mut runner_params) = backend_kind(loc, &rb)?;
    if let Some(rp) = &rb.runner_params {
        runner_params = rp.get_ref().clone();
    }
    reject_foreign_fields(loc, &rb, &backend)?;
    Ok((backend, runner_params))
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The settings of the kind `kind` names, with its default runner parameters.
fn backend_kind(
    loc: &Locator,
    rb: &RawBackend,
) -> Result<(BackendConfig, Vec<String>), ConfigError> {
    let s = |v: &Option<Spanned<String>>| v.as_ref().map(|x| x.get_ref().clone());
    Ok(match rb.kind.get_ref().as_str() {
        "ollama" => (
            BackendConfig::Ollama {
                url: s(&rb.url).unwrap_or_else(|| "http://127.0.0.1:11434".into()),
                keep_alive: s(&rb.keep_alive).unwrap_or_else(|| "30m".into()),
            },
            names(OLLAMA_RUNNER_OPTIONS),
        ),
        "simulator" => {
            let time_scale = rb.time_scale.as_ref().map(|t| *t.get_ref()).unwrap_or(1.0);
            if time_scale.is_nan() || time_scale <= 0.0 {
                let sp = rb.time_scale.as_ref().map(|t| t.span()).unwrap_or(0..0);
                return Err(loc.err(sp, "backend.time_scale", "must be > 0"));
            }
            let backend = BackendConfig::Simulator {
                profile: s(&rb.profile).unwrap_or_else(|| "gemma3-4b".into()),
                time_scale,
                keep_alive: s(&rb.keep_alive).unwrap_or_else(|| "30m".into()),
            };
            (backend, names(OLLAMA_RUNNER_OPTIONS))
        }
        "llamacpp" => {
            let backend = BackendConfig::Llamacpp {
                server: s(&rb.server).unwrap_or_default(),
                model_path: s(&rb.model_path).unwrap_or_default(),
                attach: s(&rb.attach),
                startup_timeout: duration_field(
                    loc,
                    &rb.startup_timeout,
                    "backend.startup_timeout",
                    120,
                )?,
                extra_args: rb
                    .extra_args
                    .as_ref()
                    .map(|a| a.get_ref().clone())
                    .unwrap_or_default(),
            };
            (backend, names(LLAMACPP_LOAD_OPTIONS))
        }
        "command" => {
            let Some(argv) = rb.argv.as_ref() else {
                return Err(loc.err(rb.kind.span(), "backend.argv", "the command backend needs argv = [\"program\", \"arg\", ...]"));
            };
            if argv.get_ref().is_empty() || argv.get_ref()[0].trim().is_empty() {
                return Err(loc.err(argv.span(), "backend.argv", "must name a program to run"));
            }
            let backend = BackendConfig::Command {
                argv: argv.get_ref().clone(),
                timeout: duration_field(loc, &rb.timeout, "backend.timeout", 600)?,
                env: rb
                    .env
                    .as_ref()
                    .map(|e| e.get_ref().clone())
                    .unwrap_or_default(),
            };
            (backend, Vec::new())
        }
        other => {
            return Err(loc.err(
                rb.kind.span(),
                "backend.kind",
                format!("unknown backend {other:?}; use \"ollama\", \"simulator\", \"llamacpp\" or \"command\""),
            ))
        }
    })
}

/// Fields that belong to another backend kind are mistakes worth reporting.
fn reject_foreign_fields(
    loc: &Locator,
    rb: &RawBackend,
    backend: &BackendConfig,
) -> Result<(), ConfigError> {
    let kind = rb.kind.get_ref().as_str();
    let foreign: [(&str, bool, Option<Range<usize>>); 5] = [
        (
            "url",
            matches!(backend, BackendConfig::Ollama { .. }),
            rb.url.as_ref().map(|x| x.span()),
        ),
        (
            "profile",
            matches!(backend, BackendConfig::Simulator { .. }),
            rb.profile.as_ref().map(|x| x.span()),
        ),
        (
            "argv",
            matches!(backend, BackendConfig::Command { .. }),
            rb.argv.as_ref().map(|x| x.span()),
        ),
        (
            "model_path",
            matches!(backend, BackendConfig::Llamacpp { .. }),
            rb.model_path.as_ref().map(|x| x.span()),
        ),
        (
            "server",
            matches!(backend, BackendConfig::Llamacpp { .. }),
            rb.server.as_ref().map(|x| x.span()),
        ),
    ];
    for (field, ok, span) in foreign {
        if let (false, Some(sp)) = (ok, span) {
            return Err(loc.err(
                sp,
                &format!("backend.{field}"),
                format!("not a setting of the {kind} backend"),
            ));
        }
    }
    Ok(())
}
