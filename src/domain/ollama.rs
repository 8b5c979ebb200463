//! Ollama's per-request options: JSON name, JSON type, whether changing one reloads the
//! runner, its default role (speed, requirement or output) and whether it may be left to the
//! server (`auto`). The one table the study, the backends and the exporters read; the simulator
//! keeps an independent copy (src/sim/options.rs) that the tests below hold against this one.
//! The facts and their sources are in docs/ollama-options.md.

use super::memory::MemoryFact;
use crate::engine::space::{Prefer, Role};

/// The JSON type of an option's field in Ollama's `api.Options` (ollama/ollama:api/types.go).
/// `Options.FromMap` rejects any other JSON type with `option "NAME" must be of type ...`
/// (HTTP 500), except that an integer option takes any JSON number and truncates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionType {
    Int,
    Float,
    Bool,
    /// A string field; `FromMap` accepts them, though no option in [`OPTIONS`] has one today.
    String,
    /// `stop`: a JSON array of strings (one `PARAMETER stop "..."` line each in a Modelfile).
    StringList,
}

/// One per-request option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OllamaOption {
    /// The JSON name, as in `options` of /api/generate and `PARAMETER` in a Modelfile.
    pub name: &'static str,
    pub ty: OptionType,
    /// A field of the embedded `api.Runner` struct: ollama/ollama:server/sched.go `needsReload`
    /// compares that whole struct, so changing any of these restarts the model's runner.
    pub reloads_runner: bool,
    /// What the option is to a user (docs/ollama-options.md, "Roles"): the role a study
    /// parameter of this name gets unless the study says otherwise.
    pub role: Role,
    /// The preferred direction among tied configurations (num_ctx: the larger).
    pub prefer: Option<Prefer>,
    /// Left unset, the server chooses a value itself (docs/ollama-options.md, "`auto`"):
    /// a study may give the parameter the value `auto`, which the backend does not send.
    pub auto: bool,
    /// How the option moves the memory a loaded model needs (domain/memory.rs).
    pub memory: MemoryFact,
}

const fn opt(name: &'static str, ty: OptionType, reloads_runner: bool, role: Role) -> OllamaOption {
    OllamaOption {
        name,
        ty,
        reloads_runner,
        role,
        prefer: None,
        auto: false,
        memory: if reloads_runner {
            MemoryFact::Unknown
        } else {
            MemoryFact::Unaffected
        },
    }
}

/// A runner option that changes only speed and memory.
const fn speed(name: &'static str, ty: OptionType) -> OllamaOption {
    opt(name, ty, true, Role::Speed)
}

/// A sampling option: it changes what the model writes.
const fn output(name: &'static str, ty: OptionType) -> OllamaOption {
    opt(name, ty, false, Role::Output)
}

/// `o`, which the server decides itself when the request leaves it out.
const fn auto(o: OllamaOption) -> OllamaOption {
    OllamaOption { auto: true, ..o }
}

/// `o`, whose larger values need more memory (docs/memory.md).
const fn grows(o: OllamaOption) -> OllamaOption {
    OllamaOption {
        memory: MemoryFact::Grows,
        ..o
    }
}

/// `o`, which cannot change the memory a loaded model needs.
const fn unaffected(o: OllamaOption) -> OllamaOption {
    OllamaOption {
        memory: MemoryFact::Unaffected,
        ..o
    }
}

/// Every option Ollama understands: the JSON names of `api.Options` and its embedded `Runner`.
/// Unknown names are logged and ignored by the server, and make `ollama create` fail with
/// `unknown parameter`. Runner options first, in the order studies list them.
///
/// Roles: the runner options change speed and memory only, except num_ctx, which is what the
/// workload needs (a requirement: the larger of tied values is preferred). Every other option
/// changes the text the model writes (the sampler chain, the seed, the length, the stop words,
/// which prompt tokens survive a context shift) and is an output setting.
pub const OPTIONS: &[OllamaOption] = &[
    grows(auto(OllamaOption {
        prefer: Some(Prefer::High),
        ..opt("num_ctx", OptionType::Int, true, Role::Requirement)
    })),
    grows(auto(speed("num_batch", OptionType::Int))),
    grows(auto(speed("num_gpu", OptionType::Int))),
    speed("main_gpu", OptionType::Int),
    auto(speed("use_mmap", OptionType::Bool)),
    unaffected(auto(speed("num_thread", OptionType::Int))),
    output("num_keep", OptionType::Int),
    output("seed", OptionType::Int),
    output("num_predict", OptionType::Int),
    output("top_k", OptionType::Int),
    output("top_p", OptionType::Float),
    output("min_p", OptionType::Float),
    output("typical_p", OptionType::Float),
    output("repeat_last_n", OptionType::Int),
    output("temperature", OptionType::Float),
    output("repeat_penalty", OptionType::Float),
    output("presence_penalty", OptionType::Float),
    output("frequency_penalty", OptionType::Float),
    output("stop", OptionType::StringList),
];

/// The option called `name`, if Ollama has one.
pub fn option(name: &str) -> Option<&'static OllamaOption> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The JSON type of option `name`, if Ollama has one.
pub fn option_type(name: &str) -> Option<OptionType> {
    option(name).map(|o| o.ty)
}

/// Whether changing option `name` reloads the runner (false for names Ollama does not know).
pub fn reloads_runner(name: &str) -> bool {
    option(name).is_some_and(|o| o.reloads_runner)
}

/// Whether option `name` may be left to the server (`auto`); false for names Ollama does not know.
pub fn accepts_auto(name: &str) -> bool {
    option(name).is_some_and(|o| o.auto)
}

const fn count_runner_options() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < OPTIONS.len() {
        if OPTIONS[i].reloads_runner {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn runner_option_names() -> [&'static str; count_runner_options()] {
    let mut out = [""; count_runner_options()];
    let (mut i, mut j) = (0, 0);
    while i < OPTIONS.len() {
        if OPTIONS[i].reloads_runner {
            out[j] = OPTIONS[i].name;
            j += 1;
        }
        i += 1;
    }
    out
}

/// The names of the runner options, in table order (computed from [`OPTIONS`]).
pub const RUNNER_OPTIONS: &[&str] = &runner_option_names();

#[cfg(test)]
#[path = "ollama_tests.rs"]
mod tests;
