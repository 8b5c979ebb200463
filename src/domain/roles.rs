//! The role of a study parameter and whether it may be `auto`, by backend kind: read from the
//! option tables (ollama.rs for the Ollama API and the simulator, llamaserver.rs for
//! llama-server). A name the server does not know (and every parameter of a command) is a
//! speed setting without `auto` unless the study says otherwise.

use super::memory::{memory_of, MemoryFact};
use super::{llamaserver, ollama};
use crate::engine::space::{Prefer, Role, SearchSpace};

/// What the tables say of one parameter name on one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamFacts {
    pub role: Role,
    pub prefer: Option<Prefer>,
    /// The server decides the value when the option is left out (`auto` is a legal value).
    pub accepts_auto: bool,
    /// The name is an option of the backend's server (false: a name the tables do not know).
    pub known: bool,
    /// How it moves memory (Unknown for a name the tables do not know).
    pub memory: MemoryFact,
}

const UNKNOWN: ParamFacts = ParamFacts {
    role: Role::Speed,
    prefer: None,
    accepts_auto: false,
    known: false,
    memory: MemoryFact::Unknown,
};

/// The facts of parameter `name` for a backend of kind `backend` ("ollama", "simulator",
/// "llamacpp", "command": the study's `backend.kind`, also run.json's `backend.backend`).
pub fn facts(backend: &str, name: &str) -> ParamFacts {
    match backend {
        "ollama" | "simulator" => ollama::option(name).map(|o| ParamFacts {
            role: o.role,
            prefer: o.prefer,
            accepts_auto: o.auto,
            known: true,
            memory: o.memory,
        }),
        "llamacpp" => llamaserver::option_or_alias(name).map(|o| ParamFacts {
            role: o.role,
            prefer: o.prefer,
            accepts_auto: o.auto,
            known: true,
            memory: o.memory,
        }),
        _ => None,
    }
    .unwrap_or(UNKNOWN)
}

/// Give every parameter of `space` the role, preferred direction and memory fact of the
/// tables: for a
/// search space recorded before parameters had roles (a run.json without them), where the
/// recorded `speed` is only the serde default.
pub fn apply_defaults(space: &mut SearchSpace, backend: &str) {
    for p in &mut space.params {
        let f = facts(backend, &p.name);
        p.role = f.role;
        p.prefer = f.prefer;
        p.memory = memory_of(f.memory, &p.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_roles_follow_the_table() {
        for backend in ["ollama", "simulator"] {
            let ctx = facts(backend, "num_ctx");
            assert_eq!(
                (ctx.role, ctx.prefer, ctx.accepts_auto),
                (Role::Requirement, Some(Prefer::High), true)
            );
            for speed in ["num_gpu", "num_batch", "num_thread"] {
                let f = facts(backend, speed);
                assert_eq!((f.role, f.accepts_auto), (Role::Speed, true), "{speed}");
            }
            let f = facts(backend, "main_gpu");
            assert_eq!((f.role, f.accepts_auto), (Role::Speed, false));
            for out in [
                "temperature",
                "top_p",
                "top_k",
                "min_p",
                "typical_p",
                "repeat_penalty",
                "repeat_last_n",
                "presence_penalty",
                "frequency_penalty",
                "seed",
                "num_predict",
                "num_keep",
                "stop",
            ] {
                let f = facts(backend, out);
                assert_eq!(
                    (f.role, f.accepts_auto, f.known),
                    (Role::Output, false, true),
                    "{out}"
                );
            }
        }
        assert_eq!(facts("ollama", "flash_attn"), UNKNOWN);
    }

    #[test]
    fn llama_server_roles_follow_the_table() {
        let ctx = facts("llamacpp", "ctx_size");
        assert_eq!(
            (ctx.role, ctx.prefer, ctx.accepts_auto),
            (Role::Requirement, Some(Prefer::High), true)
        );
        for (name, auto) in [
            ("threads", true),
            ("threads_batch", true),
            ("n_gpu_layers", true),
            ("flash_attn", true),
            ("batch_size", false),
            ("ubatch_size", false),
            ("cache_type_k", false),
            ("cache_type_v", false),
            ("parallel", false),
        ] {
            let f = facts("llamacpp", name);
            assert_eq!((f.role, f.accepts_auto), (Role::Speed, auto), "{name}");
        }
        for out in [
            "temperature",
            "temp",
            "top_k",
            "top_p",
            "min_p",
            "seed",
            "n_predict",
        ] {
            assert_eq!(facts("llamacpp", out).role, Role::Output, "{out}");
        }
        // Ollama's names are not llama-server's.
        assert!(!facts("llamacpp", "num_ctx").known);
    }

    #[test]
    fn command_parameters_are_speed_settings_without_auto() {
        assert_eq!(facts("command", "temperature"), UNKNOWN);
        assert_eq!(facts("command", "x"), UNKNOWN);
    }

    #[test]
    fn defaults_fill_a_space_recorded_without_roles() {
        use crate::engine::space::{Param, ParamKind};
        let p = |name: &str| Param {
            name: name.into(),
            kind: ParamKind::Bool,
            default: None,
            role: Role::Speed,
            prefer: None,
            memory: Default::default(),
        };
        let mut space = SearchSpace {
            params: vec![p("num_ctx"), p("temperature"), p("num_gpu")],
        };
        apply_defaults(&mut space, "ollama");
        let roles: Vec<_> = space.params.iter().map(|p| (p.role, p.prefer)).collect();
        assert_eq!(
            roles,
            [
                (Role::Requirement, Some(Prefer::High)),
                (Role::Output, None),
                (Role::Speed, None)
            ]
        );
    }
}
