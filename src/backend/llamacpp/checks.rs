//! Study-level checks of a llamacpp search space that need no server: those of
//! src/domain/llamaserver_values.rs (which the study validation runs too), as a fatal error.

use crate::backend::BackendError;
use crate::domain::llamaserver_values::{self, SpaceError};
use crate::engine::space::SearchSpace;

/// Study-level checks that need no server: reserved or misnamed parameters, load options in
/// attach mode, and every bound/choice of a load option.
pub(crate) fn check_space(space: &SearchSpace, attach: bool) -> Result<(), BackendError> {
    llamaserver_values::check_space(space, attach)
        .map_err(|SpaceError { message, hint, .. }| BackendError::fatal(message, hint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The space of a study file, read without the llamacpp checks (which the study
    /// validation of a llamacpp study runs itself), so the backend's own checks can be seen.
    fn space(text: &str) -> SearchSpace {
        let study =
            format!("[study]\nname = \"t\"\n[backend]\nkind = \"command\"\nargv = [\"x\"]\n{text}");
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
