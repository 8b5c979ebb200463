//! Unit tests of the performance model: calibration figures, cliffs, OOMs, reload rules, noise
//! and the true optima listed in docs/simulator.md.

use super::memory::{CPU_GRAPH_BYTES, RUNNER_OVERHEAD_BYTES};
use super::*;
use crate::sim::profiles::{
    FITS_DEFAULTS, GEMMA3_270M, GEMMA3_4B, GEMMA3_4B_DRIFT, LLAMA31_8B, PROFILES,
};

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

/// The demo study's space (search_spaces/demo-simulator.toml).
fn demo_box() -> SearchBox {
    SearchBox {
        num_gpu: (0, 999),
        num_ctx: (512, 32_768),
        num_batch: (16, 2048),
        num_thread: (1, 16),
        temperature: (0.0, 1.5),
        top_p: (0.5, 1.0),
        top_k: (1, 100),
    }
}

#[test]
fn fits_defaults_stock_defaults_are_the_best_within_noise() {
    let p = &FITS_DEFAULTS;
    // What a stock server runs: nothing sent (num_gpu -1, and 0 for the options the server
    // decides: num_ctx resolves to the VRAM tier's 4096, num_batch to 512, num_thread to the
    // cores), temperature 0.8, top_p 0.9, top_k 40.
    let stock = p.default_options();
    assert_eq!(
        (
            stock.num_gpu,
            stock.num_ctx,
            stock.num_batch,
            stock.num_thread
        ),
        (-1, 0, 0, 0)
    );
    assert_eq!(
        (stock.temperature, stock.top_p, stock.top_k),
        (0.8, 0.9, 40)
    );
    let e = SimModel::expected(p, &stock).unwrap();
    assert!(e.full_offload());
    // Nothing in the demo space is faster by more than 0.6 % (a quarter of one request's
    // noise), output settings included (greedy sampling); with the user's sampling kept, 0.2 %.
    let (best_o, best) = best_decode(p, &demo_box()).unwrap();
    let gain = best.decode_tps / e.decode_tps - 1.0;
    assert!(gain < 0.006, "{best_o:?}: +{:.3}%", 100.0 * gain);
    let user_sampling = SearchBox {
        temperature: (0.8, 0.8),
        top_p: (0.9, 0.9),
        top_k: (40, 40),
        ..demo_box()
    };
    let (_, kept) = best_decode(p, &user_sampling).unwrap();
    let gain = kept.decode_tps / e.decode_tps - 1.0;
    assert!(gain < 0.002, "+{:.3}%", 100.0 * gain);
    // Auto num_gpu is full offload over the whole space (largest context and batch).
    let corner = SimOptions {
        num_ctx: 32_768,
        num_batch: 2048,
        ..stock.clone()
    };
    assert!(SimModel::expected(p, &corner).unwrap().full_offload());
    // The other options only slow it down: partial offload, too many threads.
    let partial = tps(
        p,
        &SimOptions {
            num_gpu: 20,
            ..stock.clone()
        },
    );
    assert!(partial < e.decode_tps / 2.0, "{partial}");
    let threads = tps(
        p,
        &SimOptions {
            num_thread: 16,
            ..stock.clone()
        },
    );
    assert!(threads < e.decode_tps, "{threads}");
    // Each single change is within noise (the per-request CV is 2.5 %).
    for o in [
        SimOptions {
            num_ctx: 512,
            ..stock.clone()
        },
        SimOptions {
            num_ctx: 32_768,
            ..stock.clone()
        },
        SimOptions {
            num_batch: 16,
            ..stock.clone()
        },
        SimOptions {
            temperature: 0.0,
            ..stock.clone()
        },
        SimOptions {
            top_k: 1,
            top_p: 1.0,
            ..stock.clone()
        },
        SimOptions {
            num_thread: 4,
            ..stock.clone()
        },
    ] {
        let r = tps(p, &o) / e.decode_tps;
        assert!((r - 1.0).abs() < 0.005, "{o:?}: {r}");
    }
}

#[test]
fn drift_is_off_by_default_and_follows_its_shape() {
    assert!(PROFILES
        .iter()
        .all(|p| p.drift.is_none() || p.name == GEMMA3_4B_DRIFT.name));
    let ramp = GEMMA3_4B_DRIFT.drift.unwrap();
    assert_eq!(ramp.factor(0.0), 1.0);
    assert!((ramp.factor(1800.0) - 1.025).abs() < 1e-12);
    assert!((ramp.factor(3600.0) - 1.05).abs() < 1e-12);
    assert_eq!(ramp.factor(7200.0), ramp.factor(3600.0));
    let sine = Drift {
        shape: DriftShape::Sine,
        amplitude: 0.05,
        period_s: 100.0,
    };
    assert!((sine.factor(25.0) - 1.05).abs() < 1e-12);
    assert!((sine.factor(75.0) - 0.95).abs() < 1e-12);
    let wild = Drift {
        amplitude: -5.0,
        ..ramp
    };
    assert_eq!(wild.factor(1e9), 0.1);
    // The drift scales decode and prefill time, not the load, and draws no random numbers.
    let j = Jitter {
        decode: 1.1,
        prefill: 0.9,
        load: 1.2,
    };
    assert_eq!(j.drifted(None, 3600.0), j);
    let d = j.drifted(Some(&ramp), 3600.0);
    assert!((d.decode - 1.1 * 1.05).abs() < 1e-12 && (d.prefill - 0.9 * 1.05).abs() < 1e-12);
    assert_eq!(d.load, 1.2);
    // Apart from its drift, the drifting profile is gemma3-4b.
    assert_eq!(
        Profile {
            drift: None,
            name: GEMMA3_4B.name,
            description: GEMMA3_4B.description,
            ..GEMMA3_4B_DRIFT
        },
        GEMMA3_4B
    );
}

#[test]
fn best_decode_where_keeps_fixed_values_and_constraints() {
    let p = &GEMMA3_4B;
    // The user's sampling kept: only the speed settings and num_ctx are free.
    let space = SearchBox {
        temperature: (0.8, 0.8),
        top_p: (0.9, 0.9),
        top_k: (40, 40),
        ..demo_box()
    };
    let (o, e) = best_decode(p, &space).unwrap();
    assert_eq!((o.temperature, o.top_p, o.top_k), (0.8, 0.9, 40));
    assert_eq!(o.num_ctx, 512);
    assert!(e.full_offload());
    let (_, free) = best_decode(p, &demo_box()).unwrap();
    assert!(free.decode_tps > e.decode_tps);
    // A requirement: at least 8192 of context.
    let (o8, e8) = best_decode(
        p,
        &SearchBox {
            num_ctx: (8192, 32_768),
            ..space.clone()
        },
    )
    .unwrap();
    assert_eq!(o8.num_ctx, 8192);
    assert!(e8.decode_tps < e.decode_tps);
    // A constraint on the noise-free outcome: no CPU-only configuration passes a TTFT limit.
    let (oc, _) = best_decode_where(
        p,
        &SearchBox {
            num_gpu: (0, 0),
            ..space.clone()
        },
        &|_, e| e.ttft_s(60) <= 0.5,
    )
    .map_or((None, None), |(o, e)| (Some(o), Some(e)));
    assert!(oc.is_none(), "{oc:?}");
}
