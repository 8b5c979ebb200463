//! `[backend]`: the backend kind and its settings, the parameters that reload it, and settings
//! written for another kind. Each setting is checked as the backend will use it: a URL that
//! is an http(s) URL, a simulator profile that exists, strings a process can be given (no NUL
//! byte), timeouts a run can wait for, and the model the server must be asked for.

use super::duration_field;
use super::limits::{MAX_TIMEOUT, MAX_TIME_SCALE};
use crate::domain::llamaserver;
use crate::study::backends::{LLAMACPP_LOAD_OPTIONS, OLLAMA_RUNNER_OPTIONS};
use crate::study::durations::is_go_duration;
use crate::study::error::{ConfigError, Locator};
use crate::study::raw::RawBackend;
use crate::study::types::BackendConfig;
use std::collections::BTreeMap;
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
    let table = rb.span();
    let rb = rb.into_inner();
    let (backend, mut runner_params) = backend_kind(loc, &rb, &table)?;
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
    table: &Range<usize>,
) -> Result<(BackendConfig, Vec<String>), ConfigError> {
    let s = |v: &Option<Spanned<String>>| v.as_ref().map(|x| x.get_ref().clone());
    // Every string setting ends up in a request, a command line or an environment.
    for (field, v) in [
        ("url", &rb.url),
        ("keep_alive", &rb.keep_alive),
        ("profile", &rb.profile),
        ("server", &rb.server),
        ("model_path", &rb.model_path),
        ("attach", &rb.attach),
    ] {
        if let Some(v) = v {
            no_nul(loc, v.span(), &format!("backend.{field}"), v.get_ref())?;
        }
    }
    Ok(match rb.kind.get_ref().as_str() {
        "ollama" => {
            let url = match &rb.url {
                Some(u) => http_url(loc, u, "backend.url", "url = \"http://127.0.0.1:11434\"")?,
                None => "http://127.0.0.1:11434".into(),
            };
            let backend = BackendConfig::Ollama {
                url,
                keep_alive: keep_alive(loc, rb)?,
            };
            (backend, names(OLLAMA_RUNNER_OPTIONS))
        }
        "simulator" => {
            let time_scale = rb.time_scale.as_ref().map(|t| *t.get_ref()).unwrap_or(1.0);
            if !(time_scale > 0.0 && time_scale <= MAX_TIME_SCALE) {
                let sp = rb.time_scale.as_ref().map(|t| t.span()).unwrap_or(table.clone());
                return Err(loc.err(
                    sp,
                    "backend.time_scale",
                    format!("must be a number above 0 and at most {MAX_TIME_SCALE}, got {time_scale} (1 = real time, 0.01 = 100 times faster)"),
                ));
            }
            let profile = s(&rb.profile).unwrap_or_else(|| "gemma3-4b".into());
            if crate::sim::profile(&profile).is_none() {
                let sp = rb.profile.as_ref().map(|p| p.span()).unwrap_or(table.clone());
                return Err(loc.err(
                    sp,
                    "backend.profile",
                    format!(
                        "unknown simulator profile {profile:?}; use one of {}",
                        crate::sim::profile_names().join(", ")
                    ),
                ));
            }
            let backend = BackendConfig::Simulator {
                profile,
                time_scale,
                keep_alive: keep_alive(loc, rb)?,
            };
            (backend, names(OLLAMA_RUNNER_OPTIONS))
        }
        "llamacpp" => {
            let attach = match &rb.attach {
                Some(a) => Some(http_url(loc, a, "backend.attach", "attach = \"http://127.0.0.1:8080\"")?),
                None => None,
            };
            let extra_args = match &rb.extra_args {
                Some(a) => extra_args(loc, a)?,
                None => Vec::new(),
            };
            let backend = BackendConfig::Llamacpp {
                server: s(&rb.server).unwrap_or_default(),
                model_path: s(&rb.model_path).unwrap_or_default(),
                attach,
                startup_timeout: duration_field(
                    loc,
                    &rb.startup_timeout,
                    "backend.startup_timeout",
                    120,
                    MAX_TIMEOUT,
                    "\"120s\" or \"5m\"",
                )?,
                extra_args,
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
            for a in argv.get_ref() {
                no_nul(loc, argv.span(), "backend.argv", a)?;
            }
            let env = match &rb.env {
                Some(e) => environment(loc, e)?,
                None => Default::default(),
            };
            let backend = BackendConfig::Command {
                argv: argv.get_ref().clone(),
                timeout: duration_field(
                    loc,
                    &rb.timeout,
                    "backend.timeout",
                    600,
                    MAX_TIMEOUT,
                    "\"30s\" or \"10m\"",
                )?,
                env,
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

/// A string handed to a process or a server holds no NUL byte (no argument, path or
/// environment entry can).
fn no_nul(loc: &Locator, span: Range<usize>, field: &str, v: &str) -> Result<(), ConfigError> {
    if v.contains('\0') {
        return Err(loc.err(
            span,
            field,
            format!("{v:?} contains a NUL byte (\\u0000), which no argument, path or environment variable can hold; remove it"),
        ));
    }
    Ok(())
}

/// An http(s) URL with a host, such as the backend is asked to connect to.
fn http_url(
    loc: &Locator,
    v: &Spanned<String>,
    field: &str,
    example: &str,
) -> Result<String, ConfigError> {
    let text = v.get_ref().trim();
    let bad = |why: String| {
        loc.err(
            v.span(),
            field,
            format!("{text:?} {why}; write it like {example}"),
        )
    };
    let url = reqwest::Url::parse(text).map_err(|e| bad(format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "is a {}: URL, not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "has a query or fragment, which the API paths cannot follow".into(),
        ));
    }
    Ok(text.to_string())
}

/// `keep_alive` as Ollama reads a string: a Go duration ("30m", "-1s" = forever, "0").
fn keep_alive(loc: &Locator, rb: &RawBackend) -> Result<String, ConfigError> {
    let Some(k) = &rb.keep_alive else {
        return Ok("30m".into());
    };
    let text = k.get_ref().trim();
    if !is_go_duration(text) {
        return Err(loc.err(
            k.span(),
            "backend.keep_alive",
            format!("{text:?} is not a duration Ollama reads; write a number with a unit, such as \"30m\", \"1h\", \"-1s\" (forever) or \"0\" (unload after each request)"),
        ));
    }
    Ok(text.to_string())
}

/// `extra_args` of llama-server: no NUL byte, and no flag the tuner sets for every trial.
fn extra_args(loc: &Locator, a: &Spanned<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    for arg in a.get_ref() {
        no_nul(loc, a.span(), "backend.extra_args", arg)?;
        let flag = arg.split('=').next().unwrap_or(arg);
        if llamaserver::is_managed_flag(flag) {
            return Err(loc.err(
                a.span(),
                "backend.extra_args",
                format!("sets {flag}, which the tuner sets itself for every trial; remove it from extra_args and tune it as a parameter (ctx_size, threads, ...) or leave it at the default"),
            ));
        }
    }
    Ok(a.get_ref().clone())
}

/// `env` of a command: names a process environment can hold.
fn environment(
    loc: &Locator,
    e: &Spanned<BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    for (k, v) in e.get_ref() {
        let field = format!("backend.env.{k}");
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(loc.err(
                e.span(),
                &field,
                format!("{k:?} is not an environment variable name (it must be non-empty, without '=' or a NUL byte); rename it in backend.env"),
            ));
        }
        if v.contains('\0') {
            return Err(loc.err(
                e.span(),
                &field,
                "the value contains a NUL byte (\\u0000), which an environment variable cannot hold; remove it from backend.env",
            ));
        }
    }
    Ok(e.get_ref().clone())
}

/// `study.model`: the Ollama API (and the simulator) is asked for a model by name, so those
/// backends need one; the simulator answers only to its profile's model (any other name gets
/// Ollama's 404 "model not found" from /api/show and /api/generate, src/sim/server.rs), so a
/// name it would refuse is refused here, by the simulator's own comparison
/// (`crate::sim::profile_serves`: case-insensitive, `:latest` implied).
pub(super) fn check_model(
    loc: &Locator,
    backend: &BackendConfig,
    model: &str,
    span: Range<usize>,
) -> Result<(), ConfigError> {
    let needs = matches!(
        backend,
        BackendConfig::Ollama { .. } | BackendConfig::Simulator { .. }
    );
    if !needs {
        return Ok(());
    }
    if model.is_empty() {
        let example = match backend {
            BackendConfig::Simulator { profile, .. } => crate::sim::profile(profile)
                .map_or("gemma3:4b".to_string(), |p| p.model.to_string()),
            _ => "gemma3:latest".to_string(),
        };
        return Err(loc.err(
            span,
            "study.model",
            format!(
                "the {} backend needs the model to measure; set model = {example:?}",
                backend.kind()
            ),
        ));
    }
    if model.chars().any(char::is_control) {
        return Err(loc.err(
            span,
            "study.model",
            "contains a control character; write the model name as `ollama list` prints it",
        ));
    }
    if let BackendConfig::Simulator { profile, .. } = backend {
        if let Some(p) = crate::sim::profile(profile) {
            if !crate::sim::profile_serves(p, model) {
                return Err(loc.err(span, "study.model", simulator_model_hint(p, model)));
            }
        }
    }
    Ok(())
}

/// Why the simulator with profile `p` would refuse `model`, and what to write instead: the
/// profile's model, or the profiles that serve `model`.
fn simulator_model_hint(p: &crate::sim::Profile, model: &str) -> String {
    let others: Vec<String> = crate::sim::PROFILES
        .iter()
        .filter(|o| crate::sim::profile_serves(o, model))
        .map(|o| format!("{:?}", o.name))
        .collect();
    let or = if others.is_empty() {
        String::new()
    } else {
        format!(", or pick a profile that serves it: {}", others.join(", "))
    };
    format!(
        "the simulator profile {:?} serves only the model {:?}, not {model:?} (it would answer \
         \"model not found\" to every request); set model = {:?}{or}",
        p.name, p.model, p.model
    )
}
