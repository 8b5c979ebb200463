//! Memory placement: how many layers go on the GPU, what the GPU and CPU sides occupy, and the
//! out-of-memory errors when they do not fit.
//!
//! Sizes in bytes; docs/simulator.md explains the figures. The model is `block_count` repeating layers plus one output layer (`total_layers` units;
//! num_gpu = k <= block_count puts the last k repeating layers on the GPU, k > block_count also
//! the output layer, as llama.cpp's n_gpu_layers does).
//! - layer weights = (file_size - output_bytes) / block_count
//! - KV per layer = num_ctx * 2 (K and V) * head_count_kv * head_dim * 2 bytes (f16 cache,
//!   every layer full attention: an upper bound, Ollama's sliding-window cache for gemma3 is
//!   smaller)
//! - compute graph = 96 MiB + num_batch * embedding_length * 100 B * (1 + num_ctx / 32768), on
//!   the GPU when any layer is offloaded (grows with num_batch and, through attention, with
//!   num_ctx: why lowering num_batch fixed a 16k-context OOM in the issue reports)
//! - GPU usable = VRAM - 457 MiB (Ollama's minimum CUDA reserve, `cudaMinimumMemory` in
//!   ollama/ollama:discover/gpu.go); RAM available = RAM - what the OS and desktop hold.
//!
//! num_gpu < 0 (auto) takes the largest layer count whose GPU bytes fit; an explicit num_gpu
//! that does not fit fails like a CUDA allocation ("llama runner process has terminated:
//! cudaMalloc failed: out of memory"); CPU-side bytes above available RAM fail first, before the
//! runner starts, with Ollama's "model requires more system memory (X GiB) than is available
//! (Y GiB)". num_ctx is clamped to [4, context_length], num_batch to [1, num_ctx]. main_gpu
//! only keys reloads (the machines have one GPU); use_mmap = false slows the load only.

use super::{OomKind, RunnerKey, SimOom, RUNNER_START_S};
use crate::sim::profiles::Profile;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
const GPU_RESERVE_BYTES: f64 = 457.0 * MIB;
const GRAPH_BASE_BYTES: f64 = 96.0 * MIB;
const GRAPH_BYTES_PER_BATCH_EMBD: f64 = 100.0;
pub(super) const CPU_GRAPH_BYTES: f64 = 64.0 * MIB;
pub(super) const RUNNER_OVERHEAD_BYTES: f64 = 250.0 * MIB;

/// Where the layers went and what they occupy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Placement {
    pub(super) gpu_layers: u32,
    pub(super) gpu_bytes: f64,
    pub(super) cpu_bytes: f64,
    pub(super) gpu_weight_bytes: f64,
    pub(super) kv_bytes: f64,
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

pub(super) fn place(p: &Profile, key: &RunnerKey) -> Result<Placement, SimOom> {
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

/// Go's format.HumanBytes2 (ollama/ollama:format/bytes.go): one decimal and a binary unit.
fn human_bytes(b: f64) -> String {
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}
