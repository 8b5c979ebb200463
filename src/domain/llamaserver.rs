//! What this crate knows about llama-server's tunable options, in one table: our parameter
//! name, the flag, the value used when a study does not tune it, the Ollama name, whether a
//! change needs a server restart, the option's default role and whether llama-server decides it
//! when the flag is left out (`auto`). The llamacpp backend builds its command line from it, the study
//! parser takes the load-time names from it, and the llama-server export writes its flags from it.
//!
//! The facts behind the table (flags, defaults, what needs a restart) are summarised in
//! docs/llama-server.md; the flags themselves are defined in
//! `ggml-org/llama.cpp:common/arg.cpp` (`llama-server --help` prints them).

use super::memory::MemoryFact;
use crate::engine::space::{ParamValue, Prefer, Role};

/// The value the llamacpp backend passes for an option the study does not tune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untuned {
    /// A fixed integer.
    Int(i64),
    /// A fixed word.
    Text(&'static str),
    /// The machine's logical CPU count (llama-server's `-1` makes llama.cpp pick the same).
    HostThreads,
    /// All layers on the GPU when the build lists a device, 0 on a CPU-only build.
    HostGpuLayers,
    /// The value of another option (llama-server's `-tb` is "same as `--threads`").
    SameAs(&'static str),
    /// Not passed at all: a request-time (sampling) option.
    Unset,
}

/// What values an option takes (how the backend checks and renders them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// An integer of at least `min`; `what` explains the bound in error messages.
    Int { min: i64, what: &'static str },
    /// `on`/`off`/`auto` or a bool ([`FlashAttn`]).
    FlashAttn,
    /// One of [`KV_CACHE_TYPES`].
    CacheType,
    /// A layer count, or `auto` / `all`.
    GpuLayers,
    /// A sampling value, sent in the request (numbers, passed through).
    Sampling,
}

/// One tunable llama-server option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlamaOption {
    /// Our parameter name (llama.cpp's own name for it).
    pub name: &'static str,
    /// Other llama.cpp spellings an export accepts for the same option (`temp`).
    pub aliases: &'static [&'static str],
    /// The short flag, as the backend writes it.
    pub flag: &'static str,
    /// Other spellings of the flag llama-server accepts (to refuse them in `extra_args`).
    pub long_flags: &'static [&'static str],
    pub kind: ValueKind,
    /// The backend's value when the study does not tune the option.
    pub untuned: Untuned,
    /// What an export writes for an untuned load option of a run that recorded no defaults of
    /// its own (an Ollama run): llama-server's default, except `-np 1` (see `parallel`).
    pub server_default: &'static str,
    /// Ollama's name for the same setting, where Ollama has one per model or per request.
    pub ollama: Option<&'static str>,
    /// A change needs a server restart: a command-line flag read at load time. The others are
    /// request fields of `POST /completion` (and server-wide defaults on the command line).
    pub restart: bool,
    /// The option never exceeds this other one (llama.cpp requires ubatch <= batch).
    pub at_most: Option<&'static str>,
    /// What the option is to a user (docs/llama-server.md, "Roles"): the role a study parameter
    /// of this name gets unless the study says otherwise.
    pub role: Role,
    /// The preferred direction among tied configurations (ctx_size: the larger).
    pub prefer: Option<Prefer>,
    /// Without the flag llama-server chooses the value itself (its default is an automatic
    /// choice, `server_default`): a study may give the parameter the value `auto`, for which the
    /// backend and the export leave the flag out.
    pub auto: bool,
    /// How the option moves the memory the loaded model needs (domain/memory.rs).
    pub memory: MemoryFact,
}

const fn load(
    name: &'static str,
    flag: &'static str,
    long_flags: &'static [&'static str],
    kind: ValueKind,
    untuned: Untuned,
    server_default: &'static str,
    ollama: Option<&'static str>,
) -> LlamaOption {
    LlamaOption {
        name,
        aliases: &[],
        flag,
        long_flags,
        kind,
        untuned,
        server_default,
        ollama,
        restart: true,
        at_most: None,
        role: Role::Speed,
        prefer: None,
        auto: false,
        memory: MemoryFact::Unknown,
    }
}

/// `o`, which llama-server decides itself when the flag is left out.
const fn auto(o: LlamaOption) -> LlamaOption {
    LlamaOption { auto: true, ..o }
}

/// `o` with its memory fact (docs/memory.md).
const fn memory(memory: MemoryFact, o: LlamaOption) -> LlamaOption {
    LlamaOption { memory, ..o }
}

const fn sampling(
    name: &'static str,
    aliases: &'static [&'static str],
    flag: &'static str,
    ollama: &'static str,
) -> LlamaOption {
    LlamaOption {
        name,
        aliases,
        flag,
        long_flags: &[],
        kind: ValueKind::Sampling,
        untuned: Untuned::Unset,
        server_default: "",
        ollama: Some(ollama),
        restart: false,
        at_most: None,
        role: Role::Output,
        prefer: None,
        auto: false,
        memory: MemoryFact::Unaffected,
    }
}

const AT_LEAST_ONE_THREAD: ValueKind = ValueKind::Int {
    min: 1,
    what: "at least one thread",
};
const AT_LEAST_ONE_TOKEN: ValueKind = ValueKind::Int {
    min: 1,
    what: "at least one token",
};

/// Every option, load-time ones first in command-line order, then the sampling options in the
/// order an export writes them.
///
/// Untuned values: `ctx_size` 4096, not llama-server's 0 (= the model's training context, 32768
/// for Gemma 3 270M, a KV cache far larger than any benchmark request needs; 4096 is Ollama's
/// default num_ctx and `--fit`'s minimum context). `parallel` 1, not llama-server's `-np -1`
/// ("auto", a machine-dependent number of slots): the protocol sends one request at a time.
/// The others are llama-server's own defaults (`-b 2048 -ub 512 -fa auto -ctk/-ctv f16`).
///
/// Roles: ctx_size is what the workload needs (a requirement, the larger of tied values
/// preferred); the other load options change speed and memory, and the sampling options change
/// what the model writes (output). The KV cache types are speed settings here although a
/// quantized cache changes the outputs slightly (issue 16 guards the quality of such settings).
/// `auto`: without `-c`, `-t`, `-tb`, `-fa` or `-ngl` llama-server chooses (the training context
/// or what `--fit` fits, llama.cpp's thread count, the same as `-t`, flash attention where
/// supported, the layers that fit); `-b`, `-ub`, `-ctk`, `-ctv` default to fixed values, and
/// `-np`'s automatic slot count would divide `-c` over several slots (the protocol sends one
/// request at a time), so those take no `auto`.
pub const OPTIONS: &[LlamaOption] = &[
    memory(
        MemoryFact::Grows,
        auto(LlamaOption {
            role: Role::Requirement,
            prefer: Some(Prefer::High),
            ..load(
                "ctx_size",
                "-c",
                &["--ctx-size"],
                ValueKind::Int {
                    min: 0,
                    what: "0 = the model's training context",
                },
                Untuned::Int(4096),
                "0",
                Some("num_ctx"),
            )
        }),
    ),
    memory(
        MemoryFact::Unaffected,
        auto(load(
            "threads",
            "-t",
            &["--threads"],
            AT_LEAST_ONE_THREAD,
            Untuned::HostThreads,
            "-1",
            Some("num_thread"),
        )),
    ),
    memory(
        MemoryFact::Unaffected,
        auto(load(
            "threads_batch",
            "-tb",
            &["--threads-batch"],
            AT_LEAST_ONE_THREAD,
            Untuned::SameAs("threads"),
            "-1",
            None,
        )),
    ),
    memory(
        MemoryFact::Grows,
        load(
            "batch_size",
            "-b",
            &["--batch-size"],
            AT_LEAST_ONE_TOKEN,
            Untuned::Int(2048),
            "2048",
            Some("num_batch"),
        ),
    ),
    memory(
        MemoryFact::Grows,
        LlamaOption {
            at_most: Some("batch_size"),
            ..load(
                "ubatch_size",
                "-ub",
                &["--ubatch-size"],
                AT_LEAST_ONE_TOKEN,
                Untuned::Int(512),
                "512",
                None,
            )
        },
    ),
    auto(load(
        "flash_attn",
        "-fa",
        &["--flash-attn"],
        ValueKind::FlashAttn,
        Untuned::Text("auto"),
        "auto",
        None,
    )),
    memory(
        MemoryFact::KvCacheType,
        load(
            "cache_type_k",
            "-ctk",
            &["--cache-type-k"],
            ValueKind::CacheType,
            Untuned::Text("f16"),
            "f16",
            None,
        ),
    ),
    memory(
        MemoryFact::KvCacheType,
        load(
            "cache_type_v",
            "-ctv",
            &["--cache-type-v"],
            ValueKind::CacheType,
            Untuned::Text("f16"),
            "f16",
            None,
        ),
    ),
    memory(
        MemoryFact::Grows,
        auto(load(
            "n_gpu_layers",
            "-ngl",
            &["--gpu-layers", "--n-gpu-layers"],
            ValueKind::GpuLayers,
            Untuned::HostGpuLayers,
            "auto",
            Some("num_gpu"),
        )),
    ),
    memory(
        MemoryFact::Grows,
        load(
            "parallel",
            "-np",
            &["--parallel"],
            ValueKind::Int {
                min: 1,
                what: "at least one slot",
            },
            Untuned::Int(1),
            "1",
            None,
        ),
    ),
    sampling("temperature", &["temp"], "--temp", "temperature"),
    sampling("top_k", &[], "--top-k", "top_k"),
    sampling("top_p", &[], "--top-p", "top_p"),
    sampling("min_p", &[], "--min-p", "min_p"),
    sampling("typical_p", &[], "--typical", "typical_p"),
    sampling("repeat_penalty", &[], "--repeat-penalty", "repeat_penalty"),
    sampling("repeat_last_n", &[], "--repeat-last-n", "repeat_last_n"),
    sampling(
        "presence_penalty",
        &[],
        "--presence-penalty",
        "presence_penalty",
    ),
    sampling(
        "frequency_penalty",
        &[],
        "--frequency-penalty",
        "frequency_penalty",
    ),
    sampling("seed", &[], "-s", "seed"),
    sampling("n_predict", &[], "-n", "num_predict"),
    sampling("n_keep", &[], "--keep", "num_keep"),
];

/// `--fit on` (llama-server's default) rewrites *unset* load options to fit the device, which
/// would make the measured configuration differ from the recorded one: the backend always
/// passes `--fit off`.
pub const FIT_FLAGS: &[&str] = &["-fit", "--fit"];

/// The load options `--fit on` rewrites when their flag is absent: the context (`-c`, reduced
/// from the trained context down to `--fit-ctx`, 4096, when memory is short) and the layer
/// count (`-ngl`). `--fit off` is only safe when both are explicit
/// (`ggml-org/llama.cpp:common/fit.cpp`).
pub const FIT_OPTIONS: &[&str] = &["ctx_size", "n_gpu_layers"];

/// llama.cpp's trace verbosity: at it the server logs the context, batch sizes, flash attention
/// and layer offload it resolved (`llama_context: n_ctx = ...`, `resolve_fused_ops: Flash
/// Attention enabled`, `load_tensors: offloaded N/M layers to GPU`), which the backend reads
/// when a trial leaves a value to the server.
pub const TRACE_LOG_ARGS: &[&str] = &["-lv", "4"];

/// Flags that place the server (model, address): set by the backend for every start.
pub const PLACEMENT_FLAGS: &[&str] = &["-m", "--model", "--host", "--port"];

/// KV cache types llama-server accepts for `-ctk` / `-ctv`.
pub const KV_CACHE_TYPES: &[&str] = &[
    "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
];

/// The trial note (in the journal) holding the arguments of the llama-server the trial was
/// measured on: the argv without the binary, exactly as the backend started it. The
/// llama-server export reproduces it.
pub const ARGS_NOTE: &str = "llama_server_args";

/// The trial note holding what the server said it chose for the values a trial left to it
/// (context, batch sizes, threads, flash attention, GPU layers; both backends write it). The
/// llama-server export spells those values out.
pub const CHOSE_NOTE: &str = "server_chose";

/// llama-server's default `--port`.
pub const DEFAULT_PORT: u16 = 8080;

const fn count_load() -> usize {
    let mut i = 0;
    let mut n = 0;
    while i < OPTIONS.len() {
        if OPTIONS[i].restart {
            n += 1;
        }
        i += 1;
    }
    n
}

const N_LOAD: usize = count_load();

const fn load_names() -> [&'static str; N_LOAD] {
    let mut out = [""; N_LOAD];
    let mut i = 0;
    let mut k = 0;
    while i < OPTIONS.len() {
        if OPTIONS[i].restart {
            out[k] = OPTIONS[i].name;
            k += 1;
        }
        i += 1;
    }
    out
}

/// Names of the load-time options (a change needs a restart), in command-line order.
pub const LOAD_OPTION_NAMES: &[&str] = &load_names();

/// The load-time options, in command-line order.
pub fn load_options() -> impl Iterator<Item = &'static LlamaOption> {
    OPTIONS.iter().filter(|o| o.restart)
}

/// The sampling (request-time) options.
pub fn sampling_options() -> impl Iterator<Item = &'static LlamaOption> {
    OPTIONS.iter().filter(|o| !o.restart)
}

/// The option called `name` (its own name, not an alias).
pub fn option(name: &str) -> Option<&'static LlamaOption> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The option called `name` or spelled `name` in llama.cpp (`temp` for temperature).
pub fn option_or_alias(name: &str) -> Option<&'static LlamaOption> {
    OPTIONS
        .iter()
        .find(|o| o.name == name || o.aliases.contains(&name))
}

/// Whether the value `value` of a flag of `opt` is llama-server's automatic choice: the word
/// `auto`, or the flag's default where that default is automatic (`-t -1`, `-c 0`), which the
/// server would also pick with the flag left out.
pub fn is_auto_flag_value(opt: &LlamaOption, value: &str) -> bool {
    opt.auto
        && (value.eq_ignore_ascii_case(crate::engine::space::AUTO) || value == opt.server_default)
}

/// The option whose Ollama name is `ollama`, among the load-time ones.
pub fn load_option_for_ollama(ollama: &str) -> Option<&'static LlamaOption> {
    load_options().find(|o| o.ollama == Some(ollama))
}

/// A flag the backend sets itself on every start (any spelling).
pub fn is_managed_flag(flag: &str) -> bool {
    PLACEMENT_FLAGS.contains(&flag)
        || FIT_FLAGS.contains(&flag)
        || load_options().any(|o| o.flag == flag || o.long_flags.contains(&flag))
}

/// A `flash_attn` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashAttn {
    On,
    Off,
    Auto,
}

impl FlashAttn {
    /// The one parser of a `flash_attn` parameter: a bool, 0/1, or one of on/off/auto (also
    /// true/false, enabled/disabled, "1"/"0"); `None` for anything else.
    pub fn parse(v: &ParamValue) -> Option<FlashAttn> {
        match v {
            ParamValue::Bool(true) | ParamValue::Int(1) => Some(FlashAttn::On),
            ParamValue::Bool(false) | ParamValue::Int(0) => Some(FlashAttn::Off),
            ParamValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "enabled" | "1" => Some(FlashAttn::On),
                "off" | "false" | "disabled" | "0" => Some(FlashAttn::Off),
                "auto" => Some(FlashAttn::Auto),
                _ => None,
            },
            _ => None,
        }
    }

    /// The `-fa` value.
    pub fn flag(self) -> &'static str {
        match self {
            FlashAttn::On => "on",
            FlashAttn::Off => "off",
            FlashAttn::Auto => "auto",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_names_follow_the_table() {
        assert_eq!(
            LOAD_OPTION_NAMES,
            [
                "ctx_size",
                "threads",
                "threads_batch",
                "batch_size",
                "ubatch_size",
                "flash_attn",
                "cache_type_k",
                "cache_type_v",
                "n_gpu_layers",
                "parallel",
            ]
        );
        assert_eq!(load_options().count(), LOAD_OPTION_NAMES.len());
    }

    #[test]
    fn names_and_flags_are_unique() {
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in &OPTIONS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.flag, b.flag);
            }
        }
    }

    #[test]
    fn managed_flags_cover_every_spelling() {
        for f in [
            "-m",
            "--port",
            "-c",
            "--ctx-size",
            "--n-gpu-layers",
            "-fit",
            "--fit",
        ] {
            assert!(is_managed_flag(f), "{f}");
        }
        assert!(!is_managed_flag("--mlock") && !is_managed_flag("--temp"));
    }

    #[test]
    fn flash_attn_parses_every_form_once() {
        for (v, want) in [
            (ParamValue::Bool(true), Some(FlashAttn::On)),
            (ParamValue::Int(0), Some(FlashAttn::Off)),
            (ParamValue::Str(" Enabled ".into()), Some(FlashAttn::On)),
            (ParamValue::Str("AUTO".into()), Some(FlashAttn::Auto)),
            (ParamValue::Str("maybe".into()), None),
            (ParamValue::Int(2), None),
            (ParamValue::Float(1.0), None),
        ] {
            assert_eq!(FlashAttn::parse(&v), want, "{v:?}");
        }
    }
}
