//! The simulator's performance model: pure functions from a profile (`profiles`) and options to
//! expected decode/prefill speed, memory placement, load time, or out-of-memory.
//! Deterministic; the only randomness is `draw_jitter`, which the server applies per request.
//!
//! # Memory (bytes)
//! The model is `block_count` repeating layers plus one output layer (`total_layers` units;
//! num_gpu = k <= block_count puts the last k repeating layers on the GPU, k > block_count also
//! the output layer, as llama.cpp's n_gpu_layers does).
//! - layer weights = (file_size - output_bytes) / block_count
//! - KV per layer = num_ctx * 2 (K and V) * head_count_kv * head_dim * 2 bytes (f16 cache,
//!   every layer full attention: an upper bound, Ollama's sliding-window cache for gemma3 is
//!   smaller)
//! - compute graph = 96 MiB + num_batch * embedding_length * 100 B * (1 + num_ctx / 32768), on
//!   the GPU when any layer is offloaded (grows with num_batch and, through attention, with
//!   num_ctx: why lowering num_batch fixed a 16k-context OOM in the issue reports)
//! - GPU usable = VRAM - 457 MiB (Ollama's minimum CUDA reserve); RAM available = RAM - what the
//!   OS and desktop hold.
//!
//! num_gpu < 0 (auto) takes the largest layer count whose GPU bytes fit; an explicit num_gpu
//! that does not fit fails like a CUDA allocation ("llama runner process has terminated:
//! cudaMalloc failed: out of memory"); CPU-side bytes above available RAM fail first, before the
//! runner starts, with Ollama's "model requires more system memory (X GiB) than is available
//! (Y GiB)". num_ctx is clamped to [4, context_length], num_batch to [1, num_ctx]. main_gpu
//! only keys reloads (the machines have one GPU); use_mmap = false slows the load only.
//!
//! # Decode (seconds per generated token)
//! `t = sampling + f_ctx(num_ctx) * (g * T_gpu + c * T_cpu / f_thr(num_thread)) + split + spin`
//! - g, c: fractions of the weight bytes on GPU and CPU (decode is memory-bandwidth bound, so a
//!   layer costs in proportion to its bytes). CPU layers are 9-12x slower than GPU layers, so
//!   any spill is a cliff; the big-vocabulary output layer alone is 16 % of gemma3 4B.
//! - split = `split_penalty_s` when 0 < g < 1 (activations cross PCIe every token).
//! - f_ctx(n) = 1 + 0.02 * log2(1 + n / 8192): attention over a larger cache, about 4 % from
//!   2k to 32k and almost flat below 2k.
//! - f_thr(n), relative CPU speed vs the physical core count P (num_thread 0 = P):
//!   n <= P: (1 - e^(-2.5 n/P)) / (1 - e^(-2.5)) (bandwidth saturates before all cores);
//!   P < n <= logical: 1 / (1 + ((n-P)/P)^2) (SMT siblings fight for the same units);
//!   n > logical: 0.5 (logical/n)^4 / (1 + 20 (n - logical)) (spin-waiting threads collapse, the
//!   "36 threads 87 tok/s, 37 threads 0.03" report).
//! - spin = 4 us per thread above P (+0.2 ms per thread above logical): the only num_thread
//!   effect at full offload.
//! - sampling (CPU, per token, scaled by vocab/262144): temperature <= 0 is greedy argmax,
//!   0.05 ms; otherwise 0.08 ms + 0.5 ms * log2(k)/log2(vocab) for top_k = k (0 or >= vocab
//!   means the full vocabulary), +0.02 ms for top_p < 1 (+0.25 ms when it must sort the whole
//!   vocabulary), +0.01 ms for min_p > 0, +0.05 ms for typical_p < 1, and 1.5 us per
//!   repeat_last_n token when any repeat/presence/frequency penalty is active. Never reloads.
//! - T_gpu, T_cpu are calibrated so that full offload (resp. CPU only at P threads) at num_ctx
//!   4096 with the model's default sampling options gives `gpu_decode_tps` (resp.
//!   `cpu_decode_tps`).
//!
//! # Prefill (prompt evaluation)
//! Rate at batch b on the GPU: `R_gpu(b) = R512 * (512+125)/512 * b / (b + 125)`, a saturating
//! curve fitted to the user report "191 tok/s at num_batch 16 vs 1352 at 512" (ollama issues);
//! CPU layers use the same form with half-saturation 32 and `cpu_prefill_tps_512`, scaled
//! linearly by threads up to P. A prompt of n uncached tokens runs in batches of num_batch (the
//! last one smaller): `12 ms + sum_batches b * (g / R_gpu(b) + c / R_cpu(b)) + 4 * split`.
//! Cached prompt prefixes (Ollama's prompt cache) are counted in prompt_eval_count but cost
//! nothing, like the real server since v0.30.
//!
//! # Load
//! `load = 1.0 s runner start + file / 4 GB/s (x1.6 without mmap) + GPU bytes / 6 GB/s
//! + KV bytes / 20 GB/s`: 2-3 s for the 4B and 8B models, matching the 2-6 s "TTFT spikes" of
//! the TR108 seed report that were really reloads. A warm request pays `warm_load_s`.
//!
//! # Noise (`draw_jitter`)
//! Multiplicative lognormal with median 1: CV 2.5 % on decode time, 6 % on prefill, 8 % on
//! load; 1 % of requests are outliers (decode 1.2-1.6x slower, prefill 1.5-3x slower, as when a
//! background process wakes up).
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
//! # True optimum (decode tok/s, noise-free, `best_decode` over `SearchBox::typical`:
//! num_gpu 0..999, num_ctx 512..131072, num_batch 16..2048, num_thread 1..16, temperature
//! 0..1, top_p 0.5..1, top_k 1..100)
//! - gemma3-4b: full offload (any num_gpu >= 35), num_ctx 512, temperature 0 (greedy):
//!   105.7 tok/s (+3.3 % over the TR108 configuration's 102.3); num_ctx 2048 gives 105.2,
//!   num_batch and num_thread (<= 8) do not matter. Without greedy sampling (temperature at
//!   least 0.1): top_k 1, top_p 1.0, 105.3 tok/s. Auto num_gpu spills from num_ctx ~62k on
//!   (65536: 33/35 layers, 35 tok/s); num_gpu 34 (output layer on CPU) gives 40.6 tok/s.
//! - llama3.1-8b: num_gpu >= 33, num_ctx 512, temperature 0: 79.9 tok/s (79.8 non-greedy);
//!   num_gpu 32 gives 36 tok/s.
//! - gemma3-270m: num_gpu >= 19, num_ctx 512, temperature 0: 382.4 tok/s (378.1 non-greedy,
//!   350 at defaults: sampling is ~9 % of a token's time at this size, so the sampling options
//!   matter most here); num_gpu 18 gives 52 tok/s.
//!
//! The unit tests at the bottom check these numbers.

use super::options::SimOptions;
use super::profiles::Profile;
use rand::Rng;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

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

/// Ollama's default context when num_ctx is 0 or unset (12 GB GPU tier).
pub const DEFAULT_NUM_CTX: u32 = 4096;
const DEFAULT_NUM_BATCH: u32 = 512;

impl RunnerKey {
    pub fn new(p: &Profile, o: &SimOptions) -> RunnerKey {
        let num_ctx = if o.num_ctx <= 0 {
            DEFAULT_NUM_CTX.min(p.context_length)
        } else {
            o.num_ctx.clamp(4, p.context_length as i64) as u32
        };
        let num_batch = if o.num_batch <= 0 {
            DEFAULT_NUM_BATCH
        } else {
            o.num_batch.min(u32::MAX as i64) as u32
        }
        .min(num_ctx);
        let num_thread = if o.num_thread <= 0 {
            p.machine.physical_cores
        } else {
            o.num_thread.min(4096) as u32
        };
        RunnerKey {
            num_ctx,
            num_batch,
            num_gpu: if o.num_gpu < 0 { -1 } else { o.num_gpu },
            main_gpu: o.main_gpu,
            use_mmap: o.use_mmap,
            num_thread,
        }
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

const GPU_RESERVE_BYTES: f64 = 457.0 * MIB;
const GRAPH_BASE_BYTES: f64 = 96.0 * MIB;
const GRAPH_BYTES_PER_BATCH_EMBD: f64 = 100.0;
const CPU_GRAPH_BYTES: f64 = 64.0 * MIB;
const RUNNER_OVERHEAD_BYTES: f64 = 250.0 * MIB;
const REF_CTX: f64 = 4096.0;
const CTX_SLOPE: f64 = 0.02;
/// Half-saturation batch of the prefill curve, from 191 tok/s @16 vs 1352 @512.
const GPU_HALF_BATCH: f64 = 125.0;
const CPU_HALF_BATCH: f64 = 32.0;
const PREFILL_OVERHEAD_S: f64 = 0.012;
const RUNNER_START_S: f64 = 1.0;
const KV_ALLOC_BYTES_PER_S: f64 = 20e9;
const NO_MMAP_READ_FACTOR: f64 = 1.6;

/// Namespace of the pure model functions.
pub struct SimModel;

impl SimModel {
    /// Expected performance of `opts` on `p`, or the out-of-memory error loading it gives.
    pub fn expected(p: &Profile, opts: &SimOptions) -> Result<Expected, SimOom> {
        let key = RunnerKey::new(p, opts);
        let placement = place(p, &key)?;
        Ok(speeds(p, &key, &placement, opts))
    }

    /// Per-token sampling cost of `opts` in seconds (CPU side, independent of placement).
    pub fn sampling_s(p: &Profile, opts: &SimOptions) -> f64 {
        sampling_s(p, opts)
    }
}

/// Where the layers went and what they occupy.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Placement {
    gpu_layers: u32,
    gpu_bytes: f64,
    cpu_bytes: f64,
    gpu_weight_bytes: f64,
    kv_bytes: f64,
}

fn graph_bytes(p: &Profile, key: &RunnerKey) -> f64 {
    GRAPH_BASE_BYTES
        + key.num_batch as f64
            * p.embedding_length as f64
            * GRAPH_BYTES_PER_BATCH_EMBD
            * (1.0 + key.num_ctx as f64 / 32768.0)
}

fn placement_with(p: &Profile, key: &RunnerKey, gpu_layers: u32) -> Placement {
    let kv_layer = p.kv_bytes_per_token_per_layer() * key.num_ctx as f64;
    let layer = p.layer_bytes() + kv_layer;
    let rep_gpu = gpu_layers.min(p.block_count) as f64;
    let rep_cpu = p.block_count as f64 - rep_gpu;
    let out_on_gpu = gpu_layers > p.block_count;
    let output = p.output_bytes as f64;
    let graph = graph_bytes(p, key);
    let gpu_weight_bytes = rep_gpu * p.layer_bytes() + if out_on_gpu { output } else { 0.0 };
    let gpu_bytes = if gpu_layers > 0 {
        rep_gpu * layer + if out_on_gpu { output } else { 0.0 } + graph
    } else {
        0.0
    };
    let cpu_graph = if gpu_layers > 0 {
        CPU_GRAPH_BYTES
    } else {
        graph
    };
    let cpu_bytes =
        rep_cpu * layer + if out_on_gpu { 0.0 } else { output } + cpu_graph + RUNNER_OVERHEAD_BYTES;
    Placement {
        gpu_layers,
        gpu_bytes,
        cpu_bytes,
        gpu_weight_bytes,
        kv_bytes: kv_layer * p.block_count as f64,
    }
}

fn usable_vram(p: &Profile) -> f64 {
    p.machine.vram_bytes as f64 - GPU_RESERVE_BYTES
}

fn available_ram(p: &Profile) -> f64 {
    (p.machine.ram_bytes - p.machine.ram_in_use_bytes) as f64
}

fn place(p: &Profile, key: &RunnerKey) -> Result<Placement, SimOom> {
    let max = p.total_layers();
    let vram = usable_vram(p);
    let gpu_layers = if key.num_gpu < 0 {
        (0..=max)
            .rev()
            .find(|&g| placement_with(p, key, g).gpu_bytes <= vram)
            .unwrap_or(0)
    } else {
        key.num_gpu.min(max as i64) as u32
    };
    let pl = placement_with(p, key, gpu_layers);
    let ram = available_ram(p);
    if pl.cpu_bytes > ram {
        return Err(SimOom {
            kind: OomKind::System,
            message: format!(
                "model requires more system memory ({}) than is available ({})",
                human_bytes(pl.cpu_bytes),
                human_bytes(ram)
            ),
            needed_bytes: pl.cpu_bytes as u64,
            available_bytes: ram as u64,
            after_s: 0.05, // checked before the runner starts
        });
    }
    if pl.gpu_bytes > vram {
        return Err(SimOom {
            kind: OomKind::Gpu,
            message: "llama runner process has terminated: cudaMalloc failed: out of memory"
                .to_string(),
            needed_bytes: pl.gpu_bytes as u64,
            available_bytes: vram as u64,
            after_s: RUNNER_START_S + vram / p.machine.upload_bytes_per_s,
        });
    }
    Ok(pl)
}

/// Go's format.HumanBytes2: one decimal and a binary unit.
fn human_bytes(b: f64) -> String {
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// Attention over a larger KV cache: a few percent from 2k to 32k.
fn ctx_factor(num_ctx: f64) -> f64 {
    1.0 + CTX_SLOPE * (1.0 + num_ctx / 8192.0).log2()
}

/// CPU decode speed relative to running on the physical core count.
fn decode_thread_factor(n: u32, physical: u32, logical: u32) -> f64 {
    let (n, p, l) = (n.max(1) as f64, physical as f64, logical as f64);
    if n <= p {
        (1.0 - (-2.5 * n / p).exp()) / (1.0 - (-2.5f64).exp())
    } else if n <= l {
        1.0 / (1.0 + ((n - p) / p).powi(2))
    } else {
        oversubscribed(n, l)
    }
}

/// CPU prefill speed relative to the physical core count: compute bound, so linear up to P.
fn prefill_thread_factor(n: u32, physical: u32, logical: u32) -> f64 {
    let (n, p, l) = (n.max(1) as f64, physical as f64, logical as f64);
    if n <= p {
        n / p
    } else if n <= l {
        let x = (n - p) / p;
        1.0 + 0.15 * x - 0.4 * x * x
    } else {
        oversubscribed(n, l) * 0.75 / 0.5
    }
}

/// More threads than hardware threads: llama.cpp's spinning barriers collapse.
fn oversubscribed(n: f64, logical: f64) -> f64 {
    0.5 * (logical / n).powi(4) / (1.0 + 20.0 * (n - logical))
}

/// Busy-waiting threads cost a little even when every layer is on the GPU.
fn spin_s(n: u32, physical: u32, logical: u32) -> f64 {
    4e-6 * n.saturating_sub(physical) as f64 + 2e-4 * n.saturating_sub(logical) as f64
}

fn sampling_s(p: &Profile, o: &SimOptions) -> f64 {
    let v = p.vocab_size as f64;
    let scale = p.vocab_scale();
    if o.temperature <= 0.0 {
        return 0.05e-3 * scale; // greedy: one argmax, the other samplers are skipped
    }
    let full_vocab = o.top_k <= 0 || o.top_k as f64 >= v;
    let k = if full_vocab { v } else { o.top_k as f64 };
    let mut s = (0.08e-3 + 0.5e-3 * k.max(1.0).log2() / v.log2()) * scale;
    if o.top_p < 1.0 {
        s += 0.02e-3 + if full_vocab { 0.25e-3 * scale } else { 0.0 };
    }
    if o.min_p > 0.0 {
        s += 0.01e-3;
    }
    if o.typical_p < 1.0 {
        s += 0.05e-3 * scale;
    }
    let penalized =
        o.repeat_penalty != 1.0 || o.presence_penalty != 0.0 || o.frequency_penalty != 0.0;
    if penalized {
        let window = if o.repeat_last_n < 0 {
            2048.0
        } else {
            (o.repeat_last_n as f64).min(2048.0)
        };
        s += 1.5e-6 * window;
    }
    s
}

/// GPU and CPU seconds per token for the layer bytes (before context and thread factors),
/// calibrated on the profile's figures at the reference context and default sampling.
fn base_token_times(p: &Profile) -> (f64, f64) {
    let reference = sampling_s(p, &p.default_options());
    let cf = ctx_factor(REF_CTX);
    (
        (1.0 / p.gpu_decode_tps - reference) / cf,
        (1.0 / p.cpu_decode_tps - reference) / cf,
    )
}

fn speeds(p: &Profile, key: &RunnerKey, pl: &Placement, opts: &SimOptions) -> Expected {
    let m = &p.machine;
    let layer_share = p.layer_bytes() / p.file_size as f64;
    let out_share = p.output_bytes as f64 / p.file_size as f64;
    let g = pl.gpu_layers;
    let gpu_share =
        g.min(p.block_count) as f64 * layer_share + if g > p.block_count { out_share } else { 0.0 };
    let cpu_share = (1.0 - gpu_share).max(0.0);
    let split = g > 0 && g < p.total_layers();
    let split_s = if split { p.split_penalty_s } else { 0.0 };

    let (t_gpu, t_cpu) = base_token_times(p);
    let thr = decode_thread_factor(key.num_thread, m.physical_cores, m.logical_cores);
    let cpu_part = if cpu_share > 0.0 {
        cpu_share * t_cpu / thr
    } else {
        0.0
    };
    let token_s = sampling_s(p, opts)
        + ctx_factor(key.num_ctx as f64) * (gpu_share * t_gpu + cpu_part)
        + split_s
        + spin_s(key.num_thread, m.physical_cores, m.logical_cores);

    let gpu_rate_max = p.gpu_prefill_tps_512 * (512.0 + GPU_HALF_BATCH) / 512.0;
    let cpu_rate_max = p.cpu_prefill_tps_512 * (512.0 + CPU_HALF_BATCH) / 512.0
        * prefill_thread_factor(key.num_thread, m.physical_cores, m.logical_cores);

    let read_factor = if opts.use_mmap == Some(false) {
        NO_MMAP_READ_FACTOR
    } else {
        1.0
    };
    let load_s = RUNNER_START_S
        + p.file_size as f64 / m.read_bytes_per_s * read_factor
        + pl.gpu_weight_bytes / m.upload_bytes_per_s
        + pl.kv_bytes / KV_ALLOC_BYTES_PER_S;

    let mut e = Expected {
        num_ctx: key.num_ctx,
        num_batch: key.num_batch,
        num_thread: key.num_thread,
        gpu_layers: g,
        total_layers: p.total_layers(),
        size_bytes: (pl.gpu_bytes + pl.cpu_bytes) as u64,
        vram_bytes: pl.gpu_bytes as u64,
        decode_tps: 1.0 / token_s,
        token_s,
        prefill_tps: 0.0,
        load_s,
        warm_load_s: p.warm_load_s,
        gpu_share,
        gpu_rate_max,
        cpu_rate_max,
        split_s,
    };
    e.prefill_tps = 1.0 / e.prefill_token_s(key.num_batch as f64);
    e
}

impl Expected {
    /// Whether every layer, the output layer included, is on the GPU.
    pub fn full_offload(&self) -> bool {
        self.gpu_layers == self.total_layers
    }

    /// Seconds per prompt token when evaluated in batches of `b` tokens.
    fn prefill_token_s(&self, b: f64) -> f64 {
        let b = b.max(1.0);
        let gpu = self.gpu_rate_max * b / (b + GPU_HALF_BATCH);
        let cpu = self.cpu_rate_max * b / (b + CPU_HALF_BATCH);
        let cpu_share = 1.0 - self.gpu_share;
        let mut t = 0.0;
        if self.gpu_share > 0.0 {
            t += self.gpu_share / gpu;
        }
        if cpu_share > 1e-12 {
            t += cpu_share / cpu;
        }
        t
    }

    /// prompt_eval_duration in seconds for `n` uncached prompt tokens.
    pub fn prefill_s(&self, n: u32) -> f64 {
        if n == 0 {
            return 0.0;
        }
        let batch = self.num_batch.max(1);
        let (full, rest) = (n / batch, n % batch);
        let batches = full + u32::from(rest > 0);
        PREFILL_OVERHEAD_S
            + (full * batch) as f64 * self.prefill_token_s(batch as f64)
            + rest as f64 * self.prefill_token_s(rest as f64)
            + batches as f64 * 4.0 * self.split_s
    }

    /// Server-side time to first token of a warm request: load_duration + prompt_eval_duration.
    pub fn ttft_s(&self, prompt_tokens: u32) -> f64 {
        self.warm_load_s + self.prefill_s(prompt_tokens)
    }
}

/// Per-request time multipliers (1 = the expected value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub decode: f64,
    pub prefill: f64,
    pub load: f64,
}

impl Jitter {
    pub const NONE: Jitter = Jitter {
        decode: 1.0,
        prefill: 1.0,
        load: 1.0,
    };
}

pub const DECODE_CV: f64 = 0.025;
pub const PREFILL_CV: f64 = 0.06;
pub const LOAD_CV: f64 = 0.08;
pub const OUTLIER_P: f64 = 0.01;

/// Draw one request's noise: lognormal (median 1) with the CVs above, plus rare outliers.
pub fn draw_jitter<R: Rng + ?Sized>(rng: &mut R) -> Jitter {
    let mut j = Jitter {
        decode: lognormal(rng, DECODE_CV),
        prefill: lognormal(rng, PREFILL_CV),
        load: lognormal(rng, LOAD_CV),
    };
    if rng.random::<f64>() < OUTLIER_P {
        j.decode *= 1.2 + 0.4 * rng.random::<f64>();
        j.prefill *= 1.5 + 1.5 * rng.random::<f64>();
    }
    j
}

fn lognormal<R: Rng + ?Sized>(rng: &mut R, cv: f64) -> f64 {
    let sigma = (1.0 + cv * cv).ln().sqrt();
    (sigma * standard_normal(rng)).exp()
}

/// Box-Muller; `1 - u` keeps the logarithm finite.
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Inclusive bounds of a search space, for `best_decode`.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchBox {
    pub num_gpu: (i64, i64),
    pub num_ctx: (i64, i64),
    pub num_batch: (i64, i64),
    pub num_thread: (i64, i64),
    pub temperature: (f64, f64),
    pub top_p: (f64, f64),
    pub top_k: (i64, i64),
}

impl SearchBox {
    /// The space the module documentation's true optima refer to.
    pub fn typical() -> SearchBox {
        SearchBox {
            num_gpu: (0, 999),
            num_ctx: (512, 131_072),
            num_batch: (16, 2048),
            num_thread: (1, 16),
            temperature: (0.0, 1.0),
            top_p: (0.5, 1.0),
            top_k: (1, 100),
        }
    }
}

/// The best noise-free decode throughput over a grid of `space` (all num_gpu and num_thread
/// values that matter, powers of two for num_ctx and num_batch plus the bounds, the bounds and
/// a few inner points for the sampling options). Decode is monotone in the omitted values, so
/// the grid contains the optimum. None when nothing in the space loads.
pub fn best_decode(p: &Profile, space: &SearchBox) -> Option<(SimOptions, Expected)> {
    let gpu_hi = space.num_gpu.1.min(p.total_layers() as i64);
    let gpus: Vec<i64> = (space.num_gpu.0.max(-1)..=gpu_hi.max(space.num_gpu.0)).collect();
    let ctxs = log_grid(space.num_ctx);
    let batches = log_grid(space.num_batch);
    let threads: Vec<i64> = (space.num_thread.0..=space.num_thread.1).collect();
    let temps = with_inner(space.temperature, &[0.8]);
    let top_ps = with_inner(space.top_p, &[0.9]);
    let top_ks: Vec<i64> = [space.top_k.0, space.top_k.1, 0, 1, 40, 64]
        .into_iter()
        .filter(|k| (space.top_k.0..=space.top_k.1).contains(k))
        .collect();

    let base = p.default_options();
    let mut best: Option<(SimOptions, Expected)> = None;
    // Sampling cost does not depend on placement: pick the cheapest sampling first.
    let mut sampling = base.clone();
    let mut cheapest = f64::INFINITY;
    for &t in &temps {
        for &tp in &top_ps {
            for &k in &top_ks {
                let o = SimOptions {
                    temperature: t,
                    top_p: tp,
                    top_k: k,
                    ..base.clone()
                };
                let s = sampling_s(p, &o);
                if s < cheapest {
                    cheapest = s;
                    sampling = o;
                }
            }
        }
    }
    for &g in &gpus {
        for &c in &ctxs {
            for &b in &batches {
                for &n in &threads {
                    let o = SimOptions {
                        num_gpu: g,
                        num_ctx: c,
                        num_batch: b,
                        num_thread: n,
                        ..sampling.clone()
                    };
                    let Ok(e) = SimModel::expected(p, &o) else {
                        continue;
                    };
                    if best
                        .as_ref()
                        .is_none_or(|(_, b)| e.decode_tps > b.decode_tps)
                    {
                        best = Some((o, e));
                    }
                }
            }
        }
    }
    best
}

/// The bounds and every power of two between them.
fn log_grid((lo, hi): (i64, i64)) -> Vec<i64> {
    let mut v = vec![lo];
    let mut x = 1i64;
    while x < hi {
        if x > lo {
            v.push(x);
        }
        x *= 2;
    }
    if hi > lo {
        v.push(hi);
    }
    v
}

fn with_inner((lo, hi): (f64, f64), inner: &[f64]) -> Vec<f64> {
    let mut v = vec![lo, hi];
    v.extend(inner.iter().copied().filter(|x| *x > lo && *x < hi));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profiles::{GEMMA3_270M, GEMMA3_4B, LLAMA31_8B};

    fn opts(f: impl FnOnce(&mut SimOptions)) -> SimOptions {
        let mut o = GEMMA3_4B.default_options();
        f(&mut o);
        o
    }

    fn tps(p: &Profile, o: &SimOptions) -> f64 {
        SimModel::expected(p, o).unwrap().decode_tps
    }

    #[test]
    fn full_offload_matches_tr108() {
        let o = opts(|o| {
            o.num_gpu = 999;
            o.num_ctx = 4096;
            o.temperature = 0.4;
        });
        let e = SimModel::expected(&GEMMA3_4B, &o).unwrap();
        assert!((e.decode_tps - 102.31).abs() < 0.05, "{}", e.decode_tps);
        assert!(e.full_offload());
        assert_eq!(
            e.vram_bytes,
            e.size_bytes - {
                // Only the CPU graph and runner overhead stay in RAM at full offload.
                (CPU_GRAPH_BYTES + RUNNER_OVERHEAD_BYTES) as u64
            }
        );
        let ttft = e.ttft_s(40);
        assert!((ttft - 0.128).abs() < 0.005, "ttft {ttft}");
        let llama = LLAMA31_8B.default_options();
        let l = SimModel::expected(
            &LLAMA31_8B,
            &SimOptions {
                num_gpu: 999,
                ..llama
            },
        )
        .unwrap();
        assert!((l.decode_tps - 78.42).abs() < 0.05, "{}", l.decode_tps);
    }

    #[test]
    fn partial_offload_is_a_cliff() {
        let full = tps(&GEMMA3_4B, &opts(|o| o.num_gpu = 35));
        let all_but_output = tps(&GEMMA3_4B, &opts(|o| o.num_gpu = 34));
        let twenty = tps(&GEMMA3_4B, &opts(|o| o.num_gpu = 20));
        let cpu = tps(&GEMMA3_4B, &opts(|o| o.num_gpu = 0));
        assert!(twenty < full / 3.0, "20 layers {twenty} vs full {full}");
        assert!(all_but_output < full / 2.0, "{all_but_output}");
        assert!((cpu - 11.0).abs() < 0.1, "{cpu}");
        // Every num_gpu above the layer count is the same configuration.
        assert_eq!(full, tps(&GEMMA3_4B, &opts(|o| o.num_gpu = 999)));
    }

    #[test]
    fn huge_context_ooms_with_explicit_offload_and_spills_with_auto() {
        let err = SimModel::expected(
            &GEMMA3_4B,
            &opts(|o| {
                o.num_gpu = 999;
                o.num_ctx = 131_072;
            }),
        )
        .unwrap_err();
        assert_eq!(err.kind, OomKind::Gpu);
        assert!(err.message.contains("out of memory"));
        let auto = SimModel::expected(&GEMMA3_4B, &opts(|o| o.num_ctx = 131_072)).unwrap();
        assert!(
            auto.gpu_layers < 34 && auto.gpu_layers > 0,
            "{}",
            auto.gpu_layers
        );
        assert!(auto.vram_bytes < auto.size_bytes);
        assert!(auto.decode_tps < 40.0);
        let sys = SimModel::expected(
            &GEMMA3_4B,
            &opts(|o| {
                o.num_gpu = 0;
                o.num_ctx = 131_072;
            }),
        )
        .unwrap_err();
        assert_eq!(sys.kind, OomKind::System);
        assert!(sys
            .message
            .starts_with("model requires more system memory ("));
        assert!(
            sys.message.contains(" GiB) than is available ("),
            "{}",
            sys.message
        );
    }

    #[test]
    fn num_ctx_is_clamped_and_slows_decode_slightly() {
        let e = SimModel::expected(
            &GEMMA3_270M,
            &SimOptions {
                num_ctx: 1 << 20,
                ..GEMMA3_270M.default_options()
            },
        )
        .unwrap();
        assert_eq!(e.num_ctx, 32_768);
        let small = tps(&GEMMA3_4B, &opts(|o| o.num_ctx = 2048));
        let big = tps(&GEMMA3_4B, &opts(|o| o.num_ctx = 32_768));
        let ratio = small / big;
        assert!(ratio > 1.02 && ratio < 1.06, "{ratio}");
    }

    #[test]
    fn num_batch_changes_prefill_not_decode() {
        let b16 = SimModel::expected(&GEMMA3_4B, &opts(|o| o.num_batch = 16)).unwrap();
        let b512 = SimModel::expected(&GEMMA3_4B, &opts(|o| o.num_batch = 512)).unwrap();
        assert_eq!(b16.decode_tps, b512.decode_tps);
        assert!(b512.prefill_tps > 5.0 * b16.prefill_tps);
        assert!(
            (b512.prefill_tps - 1550.0).abs() < 1.0,
            "{}",
            b512.prefill_tps
        );
        // The report's ratio 1352/191 = 7.1.
        let ratio = b512.prefill_tps / b16.prefill_tps;
        assert!((ratio - 7.08).abs() < 0.05, "{ratio}");
        assert!(b512.vram_bytes > b16.vram_bytes);
        // Long prompts take less time with bigger batches.
        assert!(b512.prefill_s(2000) < b16.prefill_s(2000) / 5.0);
    }

    #[test]
    fn num_thread_matters_only_on_the_cpu() {
        let gpu8 = tps(&GEMMA3_4B, &opts(|o| o.num_thread = 8));
        let gpu1 = tps(&GEMMA3_4B, &opts(|o| o.num_thread = 1));
        let gpu16 = tps(&GEMMA3_4B, &opts(|o| o.num_thread = 16));
        assert!((gpu8 - gpu1).abs() / gpu8 < 0.01);
        assert!((gpu8 - gpu16).abs() / gpu8 < 0.01);
        let cpu = |n| {
            tps(
                &GEMMA3_4B,
                &opts(|o| {
                    o.num_gpu = 0;
                    o.num_thread = n;
                }),
            )
        };
        assert!(cpu(1) < cpu(8) / 2.5);
        assert!(cpu(16) < cpu(8) * 0.7);
        assert!(cpu(17) < cpu(8) / 10.0);
        assert_eq!(cpu(0), cpu(8));
    }

    #[test]
    fn sampling_options_cost_a_little() {
        let base = tps(&GEMMA3_4B, &opts(|o| o.top_k = 40));
        let full_sort = tps(&GEMMA3_4B, &opts(|o| o.top_k = 0));
        let greedy = tps(&GEMMA3_4B, &opts(|o| o.temperature = 0.0));
        let penalty = tps(&GEMMA3_4B, &opts(|o| o.repeat_penalty = 1.1));
        assert!(full_sort < base && base / full_sort < 1.1);
        assert!(greedy > base);
        assert!(penalty < base);
    }

    #[test]
    fn reload_rules() {
        let p = &GEMMA3_4B;
        let a = RunnerKey::new(p, &opts(|o| o.num_gpu = 20));
        let auto = RunnerKey::new(p, &opts(|_| {}));
        assert!(
            !a.needs_reload(&auto),
            "auto accepts the loaded layer count"
        );
        assert!(auto.needs_reload(&a));
        let sampling = RunnerKey::new(
            p,
            &opts(|o| {
                o.num_gpu = 20;
                o.temperature = 0.1;
            }),
        );
        assert!(!a.needs_reload(&sampling));
        let e = SimModel::expected(p, &opts(|_| {})).unwrap();
        assert!(e.load_s > 1.5 && e.load_s < 4.0, "{}", e.load_s);
    }

    #[test]
    fn jitter_is_seeded_and_centered() {
        use rand::SeedableRng;
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let xs: Vec<f64> = (0..2000).map(|_| draw_jitter(&mut a).decode).collect();
        let ys: Vec<f64> = (0..2000).map(|_| draw_jitter(&mut b).decode).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        assert!(sd > 0.015 && sd < 0.06, "{sd}");
    }

    #[test]
    fn true_optima_of_the_typical_space() {
        let space = SearchBox::typical();
        for (p, min_gpu, tps) in [
            (&GEMMA3_4B, 35, 105.66),
            (&LLAMA31_8B, 33, 79.90),
            (&GEMMA3_270M, 19, 382.41),
        ] {
            let (o, e) = best_decode(p, &space).unwrap();
            println!("{}: {o:?} -> {:.2} tok/s", p.name, e.decode_tps);
            assert!(o.num_gpu >= min_gpu, "{}: {}", p.name, o.num_gpu);
            assert_eq!(o.num_ctx, 512);
            assert_eq!(o.temperature, 0.0);
            assert!(
                (e.decode_tps - tps).abs() / tps < 0.005,
                "{}: {}",
                p.name,
                e.decode_tps
            );
        }
    }
}
