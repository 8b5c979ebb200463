//! Ollama's per-request options: JSON name, JSON type, and whether changing one reloads the
//! runner. The one table the study, the backends and the exporters read; the simulator keeps an
//! independent copy (src/sim/options.rs) that the tests below hold against this one. The facts
//! and their sources are in docs/ollama-options.md.

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
}

const fn opt(name: &'static str, ty: OptionType, reloads_runner: bool) -> OllamaOption {
    OllamaOption {
        name,
        ty,
        reloads_runner,
    }
}

/// Every option Ollama understands: the JSON names of `api.Options` and its embedded `Runner`.
/// Unknown names are logged and ignored by the server, and make `ollama create` fail with
/// `unknown parameter`. Runner options first, in the order studies list them.
pub const OPTIONS: &[OllamaOption] = &[
    opt("num_ctx", OptionType::Int, true),
    opt("num_batch", OptionType::Int, true),
    opt("num_gpu", OptionType::Int, true),
    opt("main_gpu", OptionType::Int, true),
    opt("use_mmap", OptionType::Bool, true),
    opt("num_thread", OptionType::Int, true),
    opt("num_keep", OptionType::Int, false),
    opt("seed", OptionType::Int, false),
    opt("num_predict", OptionType::Int, false),
    opt("top_k", OptionType::Int, false),
    opt("top_p", OptionType::Float, false),
    opt("min_p", OptionType::Float, false),
    opt("typical_p", OptionType::Float, false),
    opt("repeat_last_n", OptionType::Int, false),
    opt("temperature", OptionType::Float, false),
    opt("repeat_penalty", OptionType::Float, false),
    opt("presence_penalty", OptionType::Float, false),
    opt("frequency_penalty", OptionType::Float, false),
    opt("stop", OptionType::StringList, false),
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
