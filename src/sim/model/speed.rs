//! Speed: seconds per generated token, prompt evaluation time and load time of a placement.
//! The reports cited below are described in docs/simulator.md.
//!
//! # Decode (seconds per generated token)
//! `t = sampling + f_ctx(num_ctx) * (g * T_gpu + c * T_cpu / f_thr(num_thread)) + split + spin`
//! - g, c: fractions of the weight bytes on GPU and CPU (decode is memory-bandwidth bound, so a
//!   layer costs in proportion to its bytes). CPU layers are 9-12x slower than GPU layers, so
//!   any spill is a cliff; the big-vocabulary output layer alone is 16 % of gemma3 4B.
//! - split = `split_penalty_s` when 0 < g < 1 (activations cross PCIe every token).
//! - f_ctx(n) = 1 + s * log2(1 + n / 8192) with the profile's `ctx_slope` s (0.02 for the
//!   calibrated profiles): attention over a larger cache, about 4 % from 2k to 32k and almost
//!   flat below 2k; `fits-defaults` has s = 0.002.
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

use super::memory::Placement;
use super::{Expected, RunnerKey, RUNNER_START_S};
use crate::sim::options::SimOptions;
use crate::sim::profiles::Profile;

const REF_CTX: f64 = 4096.0;
/// Half-saturation batch of the prefill curve, from 191 tok/s @16 vs 1352 @512.
const GPU_HALF_BATCH: f64 = 125.0;
const CPU_HALF_BATCH: f64 = 32.0;
const PREFILL_OVERHEAD_S: f64 = 0.012;
const KV_ALLOC_BYTES_PER_S: f64 = 20e9;
const NO_MMAP_READ_FACTOR: f64 = 1.6;

/// Attention over a larger KV cache: a few percent from 2k to 32k (the profile's slope).
fn ctx_factor(p: &Profile, num_ctx: f64) -> f64 {
    1.0 + p.ctx_slope * (1.0 + num_ctx / 8192.0).log2()
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

pub(super) fn sampling_s(p: &Profile, o: &SimOptions) -> f64 {
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
    let cf = ctx_factor(p, REF_CTX);
    (
        (1.0 / p.gpu_decode_tps - reference) / cf,
        (1.0 / p.cpu_decode_tps - reference) / cf,
    )
}

pub(super) fn speeds(p: &Profile, key: &RunnerKey, pl: &Placement, opts: &SimOptions) -> Expected {
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
        + ctx_factor(p, key.num_ctx as f64) * (gpu_share * t_gpu + cpu_part)
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
