//! How each server option moves the memory a loaded model needs: the facts behind the memory
//! wall (src/engine/memory.rs, docs/memory.md). The option tables (ollama.rs, llamaserver.rs)
//! name one of these per option; study validation turns it into the parameter's `Memory`.

use crate::engine::space::{Memory, ParamKind, ParamValue};

/// What the tables say of an option and memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryFact {
    /// Not known to be monotone (flash attention, the main GPU, mmap): compared only at equal
    /// values.
    Unknown,
    /// Cannot change what is allocated (threads, sampling, the seed).
    Unaffected,
    /// More of it needs more memory: layers on the GPU (weights and their KV cache), the
    /// context (KV cache), the batch and micro-batch (compute buffers), parallel slots.
    Grows,
    /// A KV cache type: memory by the bytes per element of the type (`KV_BYTES`).
    KvCacheType,
}

/// Bytes per element of the KV cache types llama.cpp accepts for `-ctk`/`-ctv` (and Ollama for
/// OLLAMA_KV_CACHE_TYPE): the block size over the elements per block of each ggml type
/// (ggml-org/llama.cpp:ggml/src/ggml.c, `type_traits`: q8_0 blocks hold 32 values in 34
/// bytes, q4_0 32 in 18, ...).
pub const KV_BYTES: &[(&str, f64)] = &[
    ("f32", 4.0),
    ("f16", 2.0),
    ("bf16", 2.0),
    ("q8_0", 34.0 / 32.0),
    ("q5_1", 24.0 / 32.0),
    ("q5_0", 22.0 / 32.0),
    ("q4_1", 20.0 / 32.0),
    ("iq4_nl", 18.0 / 32.0),
    ("q4_0", 18.0 / 32.0),
];

/// The parameter's `Memory` from the table's fact, for a parameter of `kind`: a KV cache type
/// ranks its choices by bytes per element (Unknown when a choice is not a known type).
pub fn memory_of(fact: MemoryFact, kind: &ParamKind) -> Memory {
    match fact {
        MemoryFact::Unknown => Memory::Unknown,
        MemoryFact::Unaffected => Memory::Unaffected,
        MemoryFact::Grows => Memory::Grows,
        MemoryFact::KvCacheType => match kind {
            ParamKind::Categorical { choices } => {
                let ranks: Option<Vec<f64>> = choices
                    .iter()
                    .map(|c| match c {
                        ParamValue::Str(s) => {
                            KV_BYTES.iter().find(|(n, _)| n == s).map(|(_, b)| *b)
                        }
                        _ => None,
                    })
                    .collect();
                ranks.map_or(Memory::Unknown, Memory::Ranked)
            }
            _ => Memory::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_cache_types_rank_by_bytes_per_element() {
        let kind = ParamKind::Categorical {
            choices: ["f16", "q8_0", "q4_0"]
                .iter()
                .map(|c| ParamValue::Str(c.to_string()))
                .collect(),
        };
        assert_eq!(
            memory_of(MemoryFact::KvCacheType, &kind),
            Memory::Ranked(vec![2.0, 1.0625, 0.5625])
        );
        let odd = ParamKind::Categorical {
            choices: vec![
                ParamValue::Str("f16".into()),
                ParamValue::Str("q3_x".into()),
            ],
        };
        assert_eq!(memory_of(MemoryFact::KvCacheType, &odd), Memory::Unknown);
    }
}
