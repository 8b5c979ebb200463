#!/usr/bin/env python3
"""An LLM-like black box with a memory wall, for the command backend (issue 13).

Parameters: layers on the GPU (0-40), context (512-32768), threads (1-16), temperature
(0-1.5). Memory = weights of the offloaded layers + their KV cache at the context:
layers * (110 MiB + 4 KiB per token of context) + 600 MiB of buffers (about llama3.1 8B q4_0);
a configuration above the card's 5.5 GiB prints CUDA's out-of-memory message on stderr and
exits 1, as a real runner does (39 layers fit at a 4k context, 35 at 8k, 21 at 32k). Otherwise it prints decode tokens/s: faster with more layers on the GPU (a GPU layer is
~12x a CPU one), slightly slower with a larger context, best at 8 threads for the CPU layers,
temperature a 1% effect at most, plus 2% multiplicative noise. The optimum is on the wall: the
most layers that fit at the context the study requires.
"""
import json
import math
import random
import sys

MIB = 1024 * 1024
WEIGHTS = 110 * MIB  # per layer
KV_PER_TOKEN = 4 * 1024  # per layer: 8 KV heads x 128 dims x (K, V) x 2 bytes (f16)
CAP = 5.5 * 1024 * MIB
TOTAL_LAYERS = 40


def need_bytes(layers, ctx):
    """Memory on the GPU: the offloaded layers' weights and KV cache, plus compute buffers."""
    return layers * (WEIGHTS + KV_PER_TOKEN * ctx) + 600 * MIB


def true_tps(layers, ctx, threads, temp):
    """Noise-free decode tokens/s (None when it does not fit)."""
    if need_bytes(layers, ctx) > CAP:
        return None
    gpu_t = 1.0 / 900.0  # seconds per GPU layer per token
    cpu_t = 12.0 * gpu_t * (8.0 / min(threads, 8)) * (1.0 + 0.04 * max(0, threads - 8))
    t = layers * gpu_t + (TOTAL_LAYERS - layers) * cpu_t
    t *= 1.0 + 0.02 * math.log2(1.0 + ctx / 8192.0)
    t *= 1.0 + 0.01 * temp / 1.5
    return 1.0 / t


def main():
    cfg = json.load(sys.stdin)
    layers, ctx = int(cfg["layers"]), int(cfg["ctx"])
    tps = true_tps(layers, ctx, int(cfg["threads"]), float(cfg["temperature"]))
    if tps is None:
        print(
            f"ggml_backend_cuda_buffer_type_alloc_buffer: allocating "
            f"{need_bytes(layers, ctx) / MIB:.0f} MiB on device 0: cudaMalloc failed: out of memory",
            file=sys.stderr,
        )
        sys.exit(1)
    # Measurement noise, different on every run (not seeded: a re-measurement differs).
    print(json.dumps({"decode_tps": tps * (1.0 + 0.02 * random.gauss(0.0, 1.0))}))


if __name__ == "__main__":
    main()
