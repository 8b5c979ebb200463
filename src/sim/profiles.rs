//! Simulator profiles: one model on one machine, with the published figures the performance
//! model is calibrated to (see `model` for the formulas).
//!
//! - `gemma3-4b` (default): gemma3 4B Q4_K_M on a 12 GB laptop GPU; TR108 seed report rank 1:
//!   102.31 tok/s at num_gpu 999 / num_ctx 4096, TTFT 0.128 s.
//! - `llama3.1-8b`: llama3.1 8B q4_0 on the same laptop; TR108's best 78.42 tok/s; prefill
//!   1352 tok/s at num_batch 512 (ollama issue report).
//! - `gemma3-270m`: gemma3 270M Q8_0, ~350 tok/s on the GPU.
//! - `fits-defaults`: a 7B model with a small vocabulary that fits the GPU whole at every
//!   context of the demo space, on which Ollama's stock defaults are already the fastest
//!   configuration within noise (no option makes decode faster by more than 0.5 %, 0.1 % with
//!   the user's sampling kept; fewer GPU layers and too many threads slow it down). Known
//!   truth for "keep the defaults".
//! - `gemma3-4b-drift`: `gemma3-4b` whose speed drifts down by 5 % over the first hour of
//!   simulated time (thermal throttling), for robustness tests of decisions taken over a run.
//!
//! Architecture figures (layers, heads, vocabulary, file sizes) are those of the GGUF files
//! Ollama ships for these models. TR108 (the seed report) and the user reports are described in
//! docs/simulator.md ("Where the numbers come from").

use super::model::jitter::{Drift, DriftShape};
use super::options::SimOptions;

/// The machine a profile runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Machine {
    pub gpu_name: &'static str,
    pub vram_bytes: u64,
    pub ram_bytes: u64,
    /// RAM held by the OS, the desktop and other programs: not available to Ollama.
    pub ram_in_use_bytes: u64,
    pub physical_cores: u32,
    pub logical_cores: u32,
    /// Host-to-GPU copy rate while loading (PCIe 4.0 x8 on laptops, effective).
    pub upload_bytes_per_s: f64,
    /// Reading the model file (NVMe / page cache).
    pub read_bytes_per_s: f64,
}

/// The TR108 class of machine: a laptop with a 12 GB GPU, 8 cores / 16 threads, 16 GiB RAM.
pub const LAPTOP_12GB: Machine = Machine {
    gpu_name: "NVIDIA GeForce RTX 4080 Laptop GPU (simulated)",
    vram_bytes: 12 << 30,
    ram_bytes: 16 << 30,
    ram_in_use_bytes: 7 << 29, // 3.5 GiB
    physical_cores: 8,
    logical_cores: 16,
    upload_bytes_per_s: 6e9,
    read_bytes_per_s: 4e9,
};

/// A laptop with a 6 GB GPU (the RTX 4050 / 3060 laptop class), otherwise as `LAPTOP_12GB`.
pub const LAPTOP_6GB: Machine = Machine {
    gpu_name: "NVIDIA GeForce RTX 4050 Laptop GPU (simulated)",
    vram_bytes: 6 << 30,
    ..LAPTOP_12GB
};

/// One model on one machine, with the figures the model is calibrated to.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Profile name used on the command line (`gemma3-4b`).
    pub name: &'static str,
    pub description: &'static str,
    /// The model name the simulated server lists and answers to (`gemma3:4b`).
    pub model: &'static str,
    pub architecture: &'static str,
    pub parameter_size: &'static str,
    pub parameter_count: u64,
    pub quantization_level: &'static str,
    /// GGUF file type (llama_ftype): 15 = Q4_K_M, 2 = Q4_0, 7 = Q8_0.
    pub file_type: u32,
    pub block_count: u32,
    pub context_length: u32,
    pub embedding_length: u32,
    pub feed_forward_length: u32,
    pub head_count: u32,
    pub head_count_kv: u32,
    pub head_dim: u32,
    pub vocab_size: u32,
    /// Size of the model file (/api/tags `size`).
    pub file_size: u64,
    /// Bytes of the output layer (vocab x embedding, usually Q6_K or Q8_0).
    pub output_bytes: u64,
    pub digest: &'static str,
    pub template: &'static str,
    /// Modelfile PARAMETER lines shipped with the model: (name, value text).
    pub parameters: &'static [(&'static str, &'static str)],
    /// Tokens the chat template adds before the system/user text (BOS included) and after it.
    pub prompt_prefix_tokens: u32,
    pub prompt_suffix_tokens: u32,
    pub machine: Machine,
    /// Decode tok/s at full offload, num_ctx 4096, default sampling options.
    pub gpu_decode_tps: f64,
    /// Decode tok/s CPU only with num_thread = physical cores.
    pub cpu_decode_tps: f64,
    /// Prefill tok/s at full offload with 512-token batches.
    pub gpu_prefill_tps_512: f64,
    /// Prefill tok/s CPU only with 512-token batches and num_thread = physical cores.
    pub cpu_prefill_tps_512: f64,
    /// Extra seconds per decoded token when layers are split between GPU and CPU.
    pub split_penalty_s: f64,
    /// load_duration of a request served by an already loaded runner.
    pub warm_load_s: f64,
    /// Slope of the attention cost over the allocated context, `f_ctx(n) = 1 + ctx_slope *
    /// log2(1 + n / 8192)` (model/speed.rs): 0.02 for the calibrated profiles.
    pub ctx_slope: f64,
    /// Slow drift of request times over the virtual clock; None = a steady machine.
    pub drift: Option<Drift>,
}

const GEMMA3_TEMPLATE: &str = "{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}\n{{- if or (eq .Role \"user\") (eq .Role \"system\") }}<start_of_turn>user\n{{ .Content }}<end_of_turn>\n{{ if $last }}<start_of_turn>model\n{{ end }}\n{{- else if eq .Role \"assistant\" }}<start_of_turn>model\n{{ .Content }}{{ if not $last }}<end_of_turn>\n{{ end }}\n{{- end }}\n{{- end }}";

const LLAMA3_TEMPLATE: &str = "{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}{{ if $last }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{{ else }}<|eot_id|>{{ end }}\n{{- end }}";

const GEMMA3_PARAMETERS: &[(&str, &str)] = &[
    ("stop", "\"<end_of_turn>\""),
    ("temperature", "1"),
    ("top_k", "64"),
    ("top_p", "0.95"),
];

/// The default profile: the TR108 seed report's model and machine.
pub const GEMMA3_4B: Profile = Profile {
    name: "gemma3-4b",
    description: "gemma3 4B Q4_K_M on a 12 GB laptop GPU (TR108: 102.31 tok/s, TTFT 0.128 s)",
    model: "gemma3:4b",
    architecture: "gemma3",
    parameter_size: "4.3B",
    parameter_count: 4_300_079_472,
    quantization_level: "Q4_K_M",
    file_type: 15,
    block_count: 34,
    context_length: 131_072,
    embedding_length: 2560,
    feed_forward_length: 10_240,
    head_count: 8,
    head_count_kv: 4,
    head_dim: 256,
    vocab_size: 262_144,
    file_size: 3_338_801_804,
    output_bytes: 550_502_400, // 262144 x 2560 x Q6_K (6.5625 bits)
    digest: "5a1f0c3e9b7d2a4c6e8f0b1d3c5e7a9f1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a",
    template: GEMMA3_TEMPLATE,
    parameters: GEMMA3_PARAMETERS,
    prompt_prefix_tokens: 4,
    prompt_suffix_tokens: 5,
    machine: LAPTOP_12GB,
    gpu_decode_tps: 102.31,
    cpu_decode_tps: 11.0,
    gpu_prefill_tps_512: 1550.0,
    cpu_prefill_tps_512: 60.0,
    split_penalty_s: 0.0015,
    warm_load_s: 0.030,
    ctx_slope: CTX_SLOPE,
    drift: None,
};

pub const LLAMA31_8B: Profile = Profile {
    name: "llama3.1-8b",
    description: "llama3.1 8B q4_0 on a 12 GB laptop GPU (TR108: 78.42 tok/s)",
    model: "llama3.1:8b-instruct-q4_0",
    architecture: "llama",
    parameter_size: "8.0B",
    parameter_count: 8_030_261_248,
    quantization_level: "Q4_0",
    file_type: 2,
    block_count: 32,
    context_length: 131_072,
    embedding_length: 4096,
    feed_forward_length: 14_336,
    head_count: 32,
    head_count_kv: 8,
    head_dim: 128,
    vocab_size: 128_256,
    file_size: 4_661_224_736,
    output_bytes: 430_940_160, // 128256 x 4096 x Q6_K
    digest: "3c8e1a5b7d9f2e4a6c8b0d2f4a6e8c0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c",
    template: LLAMA3_TEMPLATE,
    parameters: &[
        ("stop", "\"<|start_header_id|>\""),
        ("stop", "\"<|end_header_id|>\""),
        ("stop", "\"<|eot_id|>\""),
    ],
    prompt_prefix_tokens: 5,
    prompt_suffix_tokens: 5,
    machine: LAPTOP_12GB,
    gpu_decode_tps: 78.42,
    cpu_decode_tps: 6.5,
    gpu_prefill_tps_512: 1352.0,
    cpu_prefill_tps_512: 30.0,
    split_penalty_s: 0.002,
    warm_load_s: 0.030,
    ctx_slope: CTX_SLOPE,
    drift: None,
};

pub const GEMMA3_270M: Profile = Profile {
    name: "gemma3-270m",
    description: "gemma3 270M Q8_0 on a 12 GB laptop GPU (~350 tok/s)",
    model: "gemma3:270m",
    architecture: "gemma3",
    parameter_size: "268.10M",
    parameter_count: 268_098_176,
    quantization_level: "Q8_0",
    file_type: 7,
    block_count: 18,
    context_length: 32_768,
    embedding_length: 640,
    feed_forward_length: 2048,
    head_count: 4,
    head_count_kv: 1,
    head_dim: 256,
    vocab_size: 262_144,
    file_size: 291_554_930,
    output_bytes: 178_257_920, // 262144 x 640 x Q8_0 (8.5 bits)
    digest: "e7b4a1d8c5f2b9e6a3d0c7f4b1e8a5d2c9f6b3e0a7d4c1f8b5e2a9d6c3f0b7e4",
    template: GEMMA3_TEMPLATE,
    parameters: GEMMA3_PARAMETERS,
    prompt_prefix_tokens: 4,
    prompt_suffix_tokens: 5,
    machine: LAPTOP_12GB,
    gpu_decode_tps: 350.0,
    cpu_decode_tps: 35.0,
    gpu_prefill_tps_512: 9000.0,
    cpu_prefill_tps_512: 700.0,
    split_penalty_s: 0.0005,
    warm_load_s: 0.020,
    ctx_slope: CTX_SLOPE,
    drift: None,
};

const MISTRAL_TEMPLATE: &str = "{{- range $index, $_ := .Messages }}\n{{- if eq .Role \"user\" }}[INST] {{ .Content }}[/INST]\n{{- else if eq .Role \"assistant\" }}{{ .Content }}</s>\n{{- end }}\n{{- end }}";

/// Stock defaults already best: a mistral-7B-like model (Q4_0, 32 layers, 8 KV heads of 128, a
/// 32768-token vocabulary; figures approximate, not read from a GGUF) that fits the 12 GB GPU
/// whole at every context up to 32k and every batch up to 2048, so Ollama's auto num_gpu is
/// full offload. Its small vocabulary makes sampling ~0.5 % of a token's time, and its
/// attention cost is flat in the allocated context (`ctx_slope` 0.002: the cache it reads is
/// the part filled by a short prompt, not num_ctx), so no setting makes decode faster by more
/// than 0.5 % (greedy sampling; 0.1 % for num_ctx 512); fewer GPU layers and more threads than
/// cores only slow it down. The rates are llama3.1-8b's scaled by file
/// size (decode is bandwidth bound), not measurements.
pub const FITS_DEFAULTS: Profile = Profile {
    name: "fits-defaults",
    description: "a 7B Q4_0 model that fits a 12 GB laptop GPU whole; the stock defaults are the best configuration",
    model: "mistral:7b",
    architecture: "llama",
    parameter_size: "7.2B",
    parameter_count: 7_248_023_552,
    quantization_level: "Q4_0",
    file_type: 2,
    block_count: 32,
    context_length: 32_768,
    embedding_length: 4096,
    feed_forward_length: 14_336,
    head_count: 32,
    head_count_kv: 8,
    head_dim: 128,
    vocab_size: 32_768,
    file_size: 4_113_301_824,
    output_bytes: 110_100_480, // 32768 x 4096 x Q6_K
    digest: "f974a74358d62a017b37c6f424fcdf2744ca02926c4f952513ddf474b2fa5091",
    template: MISTRAL_TEMPLATE,
    parameters: &[("stop", "\"[INST]\""), ("stop", "\"[/INST]\"")],
    prompt_prefix_tokens: 2,
    prompt_suffix_tokens: 4,
    machine: LAPTOP_12GB,
    gpu_decode_tps: 88.0,
    cpu_decode_tps: 7.4,
    gpu_prefill_tps_512: 1500.0,
    cpu_prefill_tps_512: 34.0,
    split_penalty_s: 0.002,
    warm_load_s: 0.030,
    ctx_slope: 0.002,
    drift: None,
};

/// `gemma3-4b` on a machine that heats up: request times grow by 5 % over the first simulated
/// hour (a full demo run), then stay there.
pub const GEMMA3_4B_DRIFT: Profile = Profile {
    name: "gemma3-4b-drift",
    description: "gemma3-4b with thermal throttling: 5 % slower after one simulated hour",
    drift: Some(Drift {
        shape: DriftShape::Ramp,
        amplitude: 0.05,
        period_s: 3600.0,
    }),
    ..GEMMA3_4B
};

/// `llama3.1-8b` on a 6 GB GPU: the model fits whole only at a small context and batch (the
/// stock num_ctx 4096 with Ollama's batch of 256 for small GPUs); a larger context or batch
/// runs out of memory unless layers move to the CPU, so every configuration that asks for more
/// sits against a memory wall (docs/memory.md). Same model and rates as `llama3.1-8b`; only the
/// card is smaller.
pub const LLAMA31_8B_6GB: Profile = Profile {
    name: "llama3.1-8b-6gb",
    description:
        "llama3.1 8B q4_0 on a 6 GB laptop GPU: whole only at a small context, a memory wall beyond",
    machine: LAPTOP_6GB,
    ..LLAMA31_8B
};

/// The attention slope of the calibrated profiles (docs/simulator.md, Decode).
const CTX_SLOPE: f64 = 0.02;

/// Every profile, the default first.
pub const PROFILES: &[&Profile] = &[
    &GEMMA3_4B,
    &LLAMA31_8B,
    &GEMMA3_270M,
    &FITS_DEFAULTS,
    &GEMMA3_4B_DRIFT,
    &LLAMA31_8B_6GB,
];

/// Look a profile up by its name (`gemma3-4b`) or by its model name (`gemma3:4b`).
pub fn profile(name: &str) -> Option<&'static Profile> {
    PROFILES
        .iter()
        .copied()
        .find(|p| p.name.eq_ignore_ascii_case(name) || p.model.eq_ignore_ascii_case(name))
}

impl Profile {
    /// Repeating layers plus the output layer: the largest meaningful num_gpu.
    pub fn total_layers(&self) -> u32 {
        self.block_count + 1
    }

    pub fn layer_bytes(&self) -> f64 {
        (self.file_size - self.output_bytes) as f64 / self.block_count as f64
    }

    /// f16 K and V for one token in one layer.
    pub fn kv_bytes_per_token_per_layer(&self) -> f64 {
        2.0 * self.head_count_kv as f64 * self.head_dim as f64 * 2.0
    }

    /// Ollama's defaults with the model's Modelfile parameters applied.
    pub fn default_options(&self) -> SimOptions {
        let mut o = SimOptions::default();
        o.apply_parameters(self.parameters);
        o
    }

    pub(crate) fn vocab_scale(&self) -> f64 {
        self.vocab_size as f64 / 262_144.0
    }
}
