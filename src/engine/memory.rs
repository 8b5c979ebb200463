//! The memory wall: which configurations cannot fit, predicted from the ones that ran out of
//! memory and the ones that loaded, by the direction each parameter moves memory (`Memory` in
//! space.rs; docs/memory.md).
//!
//! A configuration `a` needs at least as much memory as `b` when, in every parameter, `a`'s
//! value needs at least as much as `b`'s: a larger or equal value of a `Grows` parameter, a
//! smaller or equal one of a `Shrinks` parameter, a higher or equal rank of a `Ranked` one, an
//! equal value of an `Unknown` one; `Unaffected` parameters (sampling, threads) are ignored.
//! Then one that needs at least as much as a known out-of-memory configuration is predicted
//! not to fit, and one that needs no more than a configuration that loaded is predicted to fit.
//! A loaded configuration that needs at least as much as a recorded out-of-memory one shows
//! that failure was not the wall (another process held the memory, or a parameter is not
//! monotone): the contradicted failure is forgotten, so one transient failure never closes
//! a region for the rest of the night.

use crate::engine::configkey::ConfigKey;
use crate::engine::space::{Memory, ParamKind, ParamValue, SearchSpace};

/// How one parameter's key components compare by memory.
#[derive(Clone, Debug, PartialEq)]
enum Dim {
    /// Only equal values are comparable.
    Equal,
    /// Not part of the comparison.
    Ignore,
    /// Memory level of each key component: `level * sign`, larger is more memory.
    Ordered { kind: Num, sign: f64 },
    /// Memory rank per choice index.
    Rank(Vec<f64>),
}

/// How a key component decodes to a number (configkey.rs).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int,
    Float,
    /// A bool (0, 1) or a choice index, compared by the choice's number when it has one.
    Choice,
}

/// What the optimizer knows of the memory wall (see the module comment).
#[derive(Clone, Debug, Default)]
pub(crate) struct MemoryWall {
    dims: Vec<Dim>,
    /// Numbers of the choices of each categorical dimension (None: not a number).
    choice_values: Vec<Vec<Option<f64>>>,
    /// Out-of-memory configurations, none needing at least as much as another (the minimal
    /// ones: the others are predicted by them).
    oom: Vec<ConfigKey>,
    /// Loaded configurations, none needing at most as much as another (the maximal ones).
    loaded: Vec<ConfigKey>,
}

impl MemoryWall {
    pub(crate) fn new(space: &SearchSpace) -> MemoryWall {
        let mut dims = Vec::new();
        let mut choice_values = Vec::new();
        for p in &space.params {
            let kind = match p.kind {
                ParamKind::Int { .. } => Num::Int,
                ParamKind::Float { .. } => Num::Float,
                ParamKind::Bool | ParamKind::Categorical { .. } => Num::Choice,
            };
            choice_values.push(match &p.kind {
                ParamKind::Categorical { choices } => choices.iter().map(number_of).collect(),
                ParamKind::Bool => vec![Some(0.0), Some(1.0)],
                _ => vec![],
            });
            dims.push(match &p.memory {
                Memory::Unknown => Dim::Equal,
                Memory::Unaffected => Dim::Ignore,
                Memory::Grows => Dim::Ordered { kind, sign: 1.0 },
                Memory::Shrinks => Dim::Ordered { kind, sign: -1.0 },
                Memory::Ranked(r) => Dim::Rank(r.clone()),
            });
        }
        MemoryWall {
            dims,
            choice_values,
            oom: Vec::new(),
            loaded: Vec::new(),
        }
    }

    /// Memory level of component `c` of dimension `i` (larger needs more), if ordered.
    fn level(&self, i: usize, c: u64) -> Option<f64> {
        match &self.dims[i] {
            Dim::Ordered { kind, sign } => {
                let v = match kind {
                    Num::Int => Some(c as i64 as f64),
                    Num::Float => Some(f64::from_bits(c)).filter(|x| x.is_finite()),
                    Num::Choice => self.choice_values[i].get(c as usize).copied().flatten(),
                };
                v.map(|v| v * sign)
            }
            Dim::Rank(r) => r.get(c as usize).copied(),
            Dim::Equal | Dim::Ignore => None,
        }
    }

    /// Whether `a` needs at least as much memory as `b` in every parameter.
    fn at_least(&self, a: &ConfigKey, b: &ConfigKey) -> bool {
        (0..self.dims.len()).all(|i| {
            let (x, y) = (a.get(i), b.get(i));
            match self.dims[i] {
                Dim::Ignore => true,
                Dim::Equal => x == y,
                _ => x == y || matches!((self.level(i, x), self.level(i, y)), (Some(p), Some(q)) if p >= q),
            }
        })
    }

    /// Record a configuration that loaded (`fits`) or ran out of memory.
    pub(crate) fn tell(&mut self, key: ConfigKey, fits: bool) {
        if fits {
            // Failures it contradicts were not the wall.
            let forget: Vec<bool> = self.oom.iter().map(|o| self.at_least(&key, o)).collect();
            let mut it = forget.into_iter();
            self.oom.retain(|_| !it.next().unwrap_or(false));
            if self.loaded.iter().any(|l| self.at_least(l, &key)) {
                return;
            }
            let keep: Vec<bool> = self
                .loaded
                .iter()
                .map(|l| !self.at_least(&key, l))
                .collect();
            let mut it = keep.into_iter();
            self.loaded.retain(|_| it.next().unwrap_or(true));
            self.loaded.push(key);
        } else {
            // A failure where something at least as large loaded is not the wall.
            if self.predicted_fits(&key) || self.predicted_oom(&key) {
                return;
            }
            let keep: Vec<bool> = self.oom.iter().map(|o| !self.at_least(o, &key)).collect();
            let mut it = keep.into_iter();
            self.oom.retain(|_| it.next().unwrap_or(true));
            self.oom.push(key);
        }
    }

    /// Predicted not to fit: it needs at least as much memory as a known out-of-memory one.
    pub(crate) fn predicted_oom(&self, key: &ConfigKey) -> bool {
        self.oom.iter().any(|o| self.at_least(key, o))
    }

    /// Predicted to fit: it needs no more memory than a configuration that loaded.
    pub(crate) fn predicted_fits(&self, key: &ConfigKey) -> bool {
        self.loaded.iter().any(|l| self.at_least(l, key))
    }

    pub(crate) fn has_loaded(&self) -> bool {
        !self.loaded.is_empty()
    }

    /// The out-of-memory configurations the wall is made of (the minimal ones).
    #[cfg(test)]
    pub(crate) fn walls(&self) -> usize {
        self.oom.len()
    }
}

fn number_of(v: &ParamValue) -> Option<f64> {
    match v {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(x) if x.is_finite() => Some(*x),
        ParamValue::Bool(b) => Some(*b as u8 as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::space::{Config, Param, Role};
    use proptest::prelude::*;

    fn int(name: &str, low: i64, high: i64, memory: Memory) -> Param {
        Param {
            name: name.into(),
            kind: ParamKind::Int {
                low,
                high,
                log: false,
                step: 1,
            },
            default: None,
            role: Role::Speed,
            prefer: None,
            memory,
        }
    }

    fn kv(memory: Memory) -> Param {
        Param {
            name: "kv".into(),
            kind: ParamKind::Categorical {
                choices: ["f16", "q8_0", "q4_0"]
                    .iter()
                    .map(|c| ParamValue::Str(c.to_string()))
                    .collect(),
            },
            default: None,
            role: Role::Speed,
            prefer: None,
            memory,
        }
    }

    fn space() -> SearchSpace {
        SearchSpace {
            params: vec![
                int("layers", 0, 40, Memory::Grows),
                int("ctx", 512, 8192, Memory::Grows),
                int("threads", 1, 16, Memory::Unaffected),
                kv(Memory::Ranked(vec![2.0, 1.06, 0.56])),
                int("main_gpu", 0, 1, Memory::Unknown),
            ],
        }
    }

    fn key(s: &SearchSpace, layers: i64, ctx: i64, threads: i64, kv: &str, gpu: i64) -> ConfigKey {
        let c: Config = [
            ("layers", ParamValue::Int(layers)),
            ("ctx", ParamValue::Int(ctx)),
            ("threads", ParamValue::Int(threads)),
            ("kv", ParamValue::Str(kv.into())),
            ("main_gpu", ParamValue::Int(gpu)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        s.key(&c).expect("in the space")
    }

    #[test]
    fn a_larger_configuration_than_an_oom_one_is_predicted_not_to_fit() {
        let s = space();
        let mut w = MemoryWall::new(&s);
        w.tell(key(&s, 30, 4096, 4, "q8_0", 0), false);
        // More layers, the same context, other threads: cannot fit.
        assert!(w.predicted_oom(&key(&s, 34, 4096, 8, "q8_0", 0)));
        // A larger KV cache type at the same size: cannot fit.
        assert!(w.predicted_oom(&key(&s, 30, 4096, 1, "f16", 0)));
        // Fewer layers, or a smaller cache type: unknown.
        assert!(!w.predicted_oom(&key(&s, 29, 8192, 4, "q8_0", 0)));
        assert!(!w.predicted_oom(&key(&s, 34, 4096, 4, "q4_0", 0)));
        // Another GPU (a parameter of unknown effect): not comparable.
        assert!(!w.predicted_oom(&key(&s, 34, 4096, 4, "q8_0", 1)));
    }

    #[test]
    fn a_smaller_configuration_than_a_loaded_one_is_predicted_to_fit() {
        let s = space();
        let mut w = MemoryWall::new(&s);
        assert!(!w.has_loaded());
        w.tell(key(&s, 20, 4096, 4, "f16", 0), true);
        assert!(w.predicted_fits(&key(&s, 10, 2048, 16, "q4_0", 0)));
        assert!(!w.predicted_fits(&key(&s, 21, 2048, 4, "q4_0", 0)));
    }

    #[test]
    fn a_load_that_contradicts_a_failure_forgets_it() {
        let s = space();
        let mut w = MemoryWall::new(&s);
        w.tell(key(&s, 30, 4096, 4, "f16", 0), false);
        assert_eq!(w.walls(), 1);
        // Something larger loaded: the failure was transient.
        w.tell(key(&s, 32, 4096, 4, "f16", 0), true);
        assert_eq!(w.walls(), 0);
        assert!(!w.predicted_oom(&key(&s, 31, 4096, 4, "f16", 0)));
        // And a failure below what loaded is not recorded as the wall.
        w.tell(key(&s, 31, 4096, 4, "f16", 0), false);
        assert_eq!(w.walls(), 0);
    }

    #[test]
    fn the_wall_keeps_only_its_minimal_failures() {
        let s = space();
        let mut w = MemoryWall::new(&s);
        w.tell(key(&s, 30, 4096, 4, "f16", 0), false);
        w.tell(key(&s, 25, 4096, 4, "f16", 0), false);
        assert_eq!(w.walls(), 1, "the larger failure is implied by the smaller");
        w.tell(key(&s, 20, 8192, 4, "f16", 0), false);
        assert_eq!(w.walls(), 2, "incomparable failures are both kept");
    }

    proptest! {
        /// Over random monotone settings: a configuration at least as large as an OOM one in
        /// every memory setting is predicted not to fit (whatever the others), and one strictly
        /// smaller in a memory setting is never predicted not to fit by that failure alone.
        #[test]
        fn dominance_follows_the_directions(
            l in 0i64..=40, c in 512i64..=8192, t in 1i64..=16, k in 0usize..3,
            dl in 0i64..=10, dc in 0i64..=4000, t2 in 1i64..=16, dk in 0usize..3,
        ) {
            let s = space();
            let kinds = ["q4_0", "q8_0", "f16"]; // least to most memory
            let mut w = MemoryWall::new(&s);
            w.tell(key(&s, l, c, t, kinds[k], 0), false);
            let (l2, c2, k2) = ((l + dl).min(40), (c + dc).min(8192), (k + dk).min(2));
            prop_assert!(w.predicted_oom(&key(&s, l2, c2, t2, kinds[k2], 0)));
            if l > 0 {
                prop_assert!(!w.predicted_oom(&key(&s, l - 1, c2, t2, kinds[k2], 0)));
            }
            if k > 0 {
                prop_assert!(!w.predicted_oom(&key(&s, l2, c2, t2, kinds[k - 1], 0)));
            }
        }
    }
}
