//! The true optimum of a search box: the best noise-free decode throughput, what benchmarks
//! measure a tuner's result against.
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

use super::speed::sampling_s;
use super::{Expected, SimModel};
use crate::sim::options::SimOptions;
use crate::sim::profiles::Profile;

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
    best_decode_where(p, space, &|_, _| true)
}

/// `best_decode` among the configurations `accept` admits (an outcome constraint such as a
/// TTFT limit, checked on the noise-free `Expected`). A fixed value is a box with equal bounds
/// (`temperature: (0.8, 0.8)` keeps the user's sampling), which is how benchmarks ask for the
/// best configuration that meets a study's requirements.
pub fn best_decode_where(
    p: &Profile,
    space: &SearchBox,
    accept: &dyn Fn(&SimOptions, &Expected) -> bool,
) -> Option<(SimOptions, Expected)> {
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
                    if !accept(&o, &e) {
                        continue;
                    }
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
