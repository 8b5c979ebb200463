//! The simulator's performance model: pure functions from a profile (`profiles`) and options to
//! expected decode/prefill speed, memory placement, load time, or out-of-memory.
//! Deterministic; the only randomness is `draw_jitter`, which the server applies per request.
//! docs/simulator.md describes the model as a whole, with its sources.
//!
//! - `memory`: where the layers go and whether they fit (the OOM errors).
//! - `speed`: decode and prefill time and load time for a placement.
//! - `jitter`: the per-request noise and the optional slow drift.
//! - `optimum`: `best_decode`, the noise-free optimum of a search box.
//!
//! # Calibration
//! - `gemma3-4b`: gemma3 4B Q4_K_M on a 12 GB laptop GPU: 102.31 tok/s at full offload and
//!   num_ctx 4096 (TR108 rank 1), TTFT 0.128 s for a ~40-token templated prompt (30 ms warm
//!   load + 12 ms + prefill at 1550 tok/s for 512-token batches); CPU only 11 tok/s.
//! - `llama3.1-8b`: llama3.1 8B q4_0, 78.42 tok/s at full offload (TR108's best), prefill
//!   1352 tok/s at num_batch 512 (the user report), CPU only 6.5 tok/s.
//! - `gemma3-270m`: gemma3 270M Q8_0, 350 tok/s on the GPU, 35 tok/s CPU only; its output layer
//!   (the 262k-token tied embedding) is 61 % of the file, so num_gpu 18 vs 19 is the cliff.
//!
//! The unit tests (model/tests.rs) check these figures and the optima listed in `optimum`.

pub(crate) mod jitter;
mod memory;
mod optimum;
mod speed;

pub use jitter::{
    draw_jitter, Drift, DriftShape, Jitter, DECODE_CV, LOAD_CV, OUTLIER_P, PREFILL_CV,
};
pub use optimum::{best_decode, best_decode_where, SearchBox};

use super::options::SimOptions;
use super::profiles::Profile;

/// Runner options after defaults and clamping: what a loaded runner is keyed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunnerKey {
    pub num_ctx: u32,
    pub num_batch: u32,
    /// -1 = auto (as many layers as fit), else the requested count.
    pub num_gpu: i64,
    pub main_gpu: i64,
    pub use_mmap: Option<bool>,
    /// Effective thread count (0 replaced by the physical core count).
    pub num_thread: u32,
}

/// Ollama's default context when num_ctx is 0 or unset on a GPU below 23 GiB (the 12 GB
/// profiles' tier; `auto_num_ctx`).
pub const DEFAULT_NUM_CTX: u32 = 4096;
const DEFAULT_NUM_BATCH: u32 = 512;
/// Ollama's num_batch default on a GPU of at most `SMALL_GPU_BYTES` without flash attention.
const SMALL_GPU_NUM_BATCH: u32 = 256;
const SMALL_GPU_BYTES: u64 = 8 << 30;
const GIB: u64 = 1 << 30;

/// The contexts Ollama tries when num_ctx is unset (OLLAMA_CONTEXT_LENGTH 0): the VRAM tier
/// (4096 below 23 GiB, 32768 from 23 GiB, 262144 from 47 GiB) and, when a load runs out of
/// memory, the tiers below it; each clamped to the model's trained context.
fn auto_num_ctx(p: &Profile) -> Vec<u32> {
    let vram = p.machine.vram_bytes;
    let tiers: &[u32] = if vram >= 47 * GIB {
        &[262_144, 32_768, 4096]
    } else if vram >= 23 * GIB {
        &[32_768, 4096]
    } else {
        &[DEFAULT_NUM_CTX]
    };
    let mut out: Vec<u32> = tiers.iter().map(|t| (*t).min(p.context_length)).collect();
    out.dedup();
    out
}

/// Ollama's num_batch when unset (v0.30, server/sched.go): 512, 1024 above a 4k context, 2048
/// above 32k, subject to VRAM headroom: a larger batch is taken only when its compute graph
/// costs no GPU layer against 512 (and loads where 512 loads).
fn auto_num_batch(p: &Profile, key: &RunnerKey) -> u32 {
    // CUDA GPUs of at most 8 GiB with flash attention off (the simulator has none) get 256.
    if p.machine.vram_bytes <= SMALL_GPU_BYTES {
        return SMALL_GPU_NUM_BATCH.min(key.num_ctx);
    }
    let with = |b: u32| {
        let k = RunnerKey {
            num_batch: b.min(key.num_ctx),
            ..*key
        };
        memory::place(p, &k).ok().map(|pl| pl.gpu_layers)
    };
    let base = with(DEFAULT_NUM_BATCH);
    let mut b = match key.num_ctx {
        c if c > 32_768 => 2048,
        c if c > 4096 => 1024,
        _ => DEFAULT_NUM_BATCH,
    };
    while b > DEFAULT_NUM_BATCH {
        match (with(b), base) {
            (Some(layers), Some(base_layers)) if layers >= base_layers => break,
            (Some(_), None) => break,
            _ => b /= 2,
        }
    }
    b.min(key.num_ctx)
}

impl RunnerKey {
    /// The Ollama options a runner is keyed on, as they are spelled in a request (the fields of
    /// this struct; `api.Runner` in ollama/ollama:api/types.go). Changing any of them reloads
    /// the model; every other option of `options::OPTION_KINDS` is per request.
    pub const OPTIONS: &'static [&'static str] = &[
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "use_mmap",
        "num_thread",
    ];

    /// The runner `o` asks for, with Ollama's choices where an option is unset (0, or negative
    /// for num_gpu): num_ctx the VRAM tier (`auto_num_ctx`), num_batch `auto_num_batch`,
    /// num_gpu as many layers as fit (in `memory::place`), num_thread the physical cores.
    pub fn new(p: &Profile, o: &SimOptions) -> RunnerKey {
        let num_thread = if o.num_thread <= 0 {
            p.machine.physical_cores
        } else {
            o.num_thread.min(4096) as u32
        };
        let mut key = RunnerKey {
            num_ctx: DEFAULT_NUM_CTX,
            num_batch: DEFAULT_NUM_BATCH,
            num_gpu: if o.num_gpu < 0 { -1 } else { o.num_gpu },
            main_gpu: o.main_gpu,
            use_mmap: o.use_mmap,
            num_thread,
        };
        let contexts = if o.num_ctx <= 0 {
            auto_num_ctx(p)
        } else {
            vec![o.num_ctx.clamp(4, p.context_length as i64) as u32]
        };
        for (i, ctx) in contexts.iter().enumerate() {
            key.num_ctx = *ctx;
            key.num_batch = if o.num_batch <= 0 {
                auto_num_batch(p, &key)
            } else {
                (o.num_batch.min(u32::MAX as i64) as u32).min(key.num_ctx)
            };
            // An automatic context steps down a tier when the load runs out of memory.
            if i + 1 == contexts.len() || memory::place(p, &key).is_ok() {
                break;
            }
        }
        key
    }

    /// Whether a runner loaded with `self` must reload for `requested`. Like server/sched.go,
    /// a request that asks for auto num_gpu accepts whatever layer count the runner has.
    pub fn needs_reload(&self, requested: &RunnerKey) -> bool {
        let mut loaded = *self;
        if requested.num_gpu < 0 {
            loaded.num_gpu = -1;
        }
        loaded != *requested
    }

    /// The options with this key's runner fields and `o`'s sampling fields.
    pub fn apply_to(&self, o: &SimOptions) -> SimOptions {
        SimOptions {
            num_ctx: self.num_ctx as i64,
            num_batch: self.num_batch as i64,
            num_gpu: self.num_gpu,
            main_gpu: self.main_gpu,
            use_mmap: self.use_mmap,
            num_thread: self.num_thread as i64,
            ..o.clone()
        }
    }
}

/// Which kind of memory ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OomKind {
    /// The offloaded layers, their KV cache and the compute graph do not fit in VRAM.
    Gpu,
    /// The CPU-side part does not fit in available system RAM.
    System,
}

/// A configuration that cannot load. `message` is what the server answers (HTTP 500).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SimOom {
    pub kind: OomKind,
    pub message: String,
    pub needed_bytes: u64,
    pub available_bytes: u64,
    /// Simulated seconds the failed load takes before the error.
    pub after_s: f64,
}

/// Noise-free prediction for one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub num_ctx: u32,
    pub num_batch: u32,
    pub num_thread: u32,
    /// Units on the GPU, 0..=total_layers (Ollama's "offloaded N/M layers").
    pub gpu_layers: u32,
    pub total_layers: u32,
    /// Total memory of the loaded model (/api/ps `size`).
    pub size_bytes: u64,
    /// The part of it in VRAM (/api/ps `size_vram`).
    pub vram_bytes: u64,
    /// Decode throughput, tokens/s.
    pub decode_tps: f64,
    /// Seconds per generated token (1 / decode_tps).
    pub token_s: f64,
    /// Prefill throughput for long prompts (full batches), tokens/s, without fixed overhead.
    pub prefill_tps: f64,
    /// Seconds a cold load of this configuration takes.
    pub load_s: f64,
    /// load_duration when the runner is already loaded.
    pub warm_load_s: f64,
    gpu_share: f64,
    gpu_rate_max: f64,
    cpu_rate_max: f64,
    split_s: f64,
}

/// Starting the runner process, in seconds: part of every load, and of the time a GPU OOM takes.
const RUNNER_START_S: f64 = 1.0;

/// Namespace of the pure model functions.
pub struct SimModel;

impl SimModel {
    /// Expected performance of `opts` on `p`, or the out-of-memory error loading it gives.
    pub fn expected(p: &Profile, opts: &SimOptions) -> Result<Expected, SimOom> {
        let key = RunnerKey::new(p, opts);
        let placement = memory::place(p, &key)?;
        Ok(speed::speeds(p, &key, &placement, opts))
    }

    /// Per-token sampling cost of `opts` in seconds (CPU side, independent of placement).
    pub fn sampling_s(p: &Profile, opts: &SimOptions) -> f64 {
        speed::sampling_s(p, opts)
    }
}

#[cfg(test)]
mod tests;
