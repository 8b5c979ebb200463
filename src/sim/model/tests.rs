//! Unit tests of the performance model: calibration figures, cliffs, OOMs, reload rules, noise
//! and the true optima listed in docs/simulator.md.

use super::memory::{CPU_GRAPH_BYTES, RUNNER_OVERHEAD_BYTES};
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

#[test]
fn runner_options_are_exactly_what_the_key_reads() {
    use crate::sim::options::{OptionKind, OPTION_KINDS};
    let p = &GEMMA3_4B;
    let base = RunnerKey::new(p, &SimOptions::default());
    for (name, kind) in OPTION_KINDS {
        let value = match kind {
            OptionKind::Int => serde_json::json!(3),
            OptionKind::Float => serde_json::json!(0.125),
            OptionKind::Bool => serde_json::json!(false),
            OptionKind::Strings => serde_json::json!(["x"]),
        };
        let mut map = serde_json::Map::new();
        map.insert(name.to_string(), value);
        let mut o = SimOptions::default();
        o.apply(&map).unwrap();
        let changed = RunnerKey::new(p, &o) != base;
        assert_eq!(changed, RunnerKey::OPTIONS.contains(name), "{name}");
    }
    assert!(RunnerKey::OPTIONS
        .iter()
        .all(|n| OPTION_KINDS.iter().any(|(k, _)| k == n)));
}
