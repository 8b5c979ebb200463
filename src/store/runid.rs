//! Run ids: a run id names the run's folder under `--state-dir` (and under `reports/`), so it
//! must be exactly one ordinary path component. Anything else could write outside the state
//! directory (`../x`, `/tmp/x`) or into it (`.`, `..`, an empty id).

/// Longest run id, in bytes: the usual limit of a file name (NAME_MAX on Linux and macOS).
pub const MAX_RUN_ID_BYTES: usize = 255;

/// Why a string cannot be a run id, or `None` when it can.
pub fn run_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("it is empty".to_string());
    }
    if id == "." || id == ".." {
        return Some(format!(
            "{id:?} names a directory itself, not a run folder in it"
        ));
    }
    if id.len() > MAX_RUN_ID_BYTES {
        return Some(format!(
            "it is {} bytes long; file names are limited to {MAX_RUN_ID_BYTES}",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| matches!(c, '/' | '\\' | '\0')) {
        let what = match c {
            '/' => "a '/'",
            '\\' => "a '\\'",
            _ => "a NUL byte",
        };
        return Some(format!(
            "it contains {what}: a run id is one folder name, not a path"
        ));
    }
    if id.chars().any(char::is_control) {
        return Some("it contains a control character".to_string());
    }
    None
}

/// Check a run id given on the command line (`--run-id`) or derived from a study.
pub fn check_run_id(id: &str) -> Result<(), super::StoreError> {
    match run_id_problem(id) {
        None => Ok(()),
        Some(reason) => Err(super::StoreError::BadRunId {
            id: id.to_string(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_ordinary_path_component_is_a_run_id() {
        for ok in [
            "a",
            "run-1",
            "gemma3_20261201-210000",
            "x.y",
            "...",
            " a",
            "ünï",
        ] {
            assert_eq!(run_id_problem(ok), None, "{ok:?}");
        }
        let long = "x".repeat(MAX_RUN_ID_BYTES + 1);
        let bad = [
            "", ".", "..", "../x", "../../x", "/tmp/x", "/", "a/b", "a\\b", "..\\x", "a\0b",
            "a\nb", &long,
        ];
        for id in bad {
            let problem = run_id_problem(id);
            assert!(problem.is_some(), "{id:?} accepted");
            let e = check_run_id(id).unwrap_err().to_string();
            assert!(e.contains("--run-id"), "{e}");
        }
        assert!(run_id_problem(&"x".repeat(MAX_RUN_ID_BYTES)).is_none());
        // 255 bytes of a two-byte character is over the limit at 128 characters.
        assert!(run_id_problem(&"é".repeat(128)).is_some());
    }
}
