//! The key-value header of a GGUF model file, read only as far as the facts that bound the
//! search space (layer count, training context), as `ggml-org/ggml:docs/gguf.md` lays it out.

use serde_json::{json, Value};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// A GGUF header that cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GgufError {
    #[error("{}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a GGUF file (too short): {}", .0.display())]
    TooShort(PathBuf),
    #[error("not a GGUF file (magic {magic:?}): {}", path.display())]
    Magic { magic: [u8; 4], path: PathBuf },
    #[error("GGUF version {0} is too old to read")]
    TooOld(u32),
    #[error("truncated GGUF header: {0}")]
    Truncated(std::io::Error),
    #[error("truncated GGUF header")]
    TruncatedSkip,
    #[error("{0}")]
    Read(std::io::Error),
    #[error("GGUF string of {0} bytes is implausible")]
    LongString(u64),
    #[error("GGUF array too large")]
    ArrayTooLarge,
    #[error("GGUF array of type {0} is not supported")]
    ArrayType(u32),
    #[error("unknown GGUF value type {0}")]
    ValueType(u32),
    /// The blocking task that read the header did not finish.
    #[error("{0}")]
    Task(String),
}

impl GgufError {
    /// The file is something else than a GGUF model.
    pub(crate) fn is_not_gguf(&self) -> bool {
        matches!(self, GgufError::TooShort(_) | GgufError::Magic { .. })
    }
}

/// Metadata of a GGUF file that bounds the search space.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct GgufFacts {
    pub version: u32,
    pub architecture: Option<String>,
    pub name: Option<String>,
    pub block_count: Option<i64>,
    pub context_length: Option<i64>,
}

/// Read the key-value header of a GGUF file (ggml docs/gguf.md: magic "GGUF", u32 version, u64
/// tensor count, u64 key-value count, then typed little-endian values) until the architecture's
/// block_count and context_length are known. [`GgufError::is_not_gguf`] for other files.
pub(crate) fn read_gguf_facts(path: &Path) -> Result<GgufFacts, GgufError> {
    let f = std::fs::File::open(path).map_err(|source| GgufError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| GgufError::TooShort(path.to_path_buf()))?;
    if &magic != b"GGUF" {
        return Err(GgufError::Magic {
            magic,
            path: path.to_path_buf(),
        });
    }
    let mut facts = GgufFacts {
        version: read_u32(&mut r)?,
        ..Default::default()
    };
    if facts.version < 2 {
        return Err(GgufError::TooOld(facts.version));
    }
    let _tensors = read_u64(&mut r)?;
    let n_kv = read_u64(&mut r)?;
    for _ in 0..n_kv.min(1_000_000) {
        let key = read_string(&mut r, 1 << 16)?;
        let ty = read_u32(&mut r)?;
        let value = read_value(&mut r, ty)?;
        match key.as_str() {
            "general.architecture" => facts.architecture = value.as_str().map(String::from),
            "general.name" => facts.name = value.as_str().map(String::from),
            k => {
                if let Some(arch) = &facts.architecture {
                    if k == format!("{arch}.block_count") {
                        facts.block_count = value.as_i64();
                    } else if k == format!("{arch}.context_length") {
                        facts.context_length = value.as_i64();
                    }
                }
            }
        }
        if facts.block_count.is_some() && facts.context_length.is_some() && facts.name.is_some() {
            break;
        }
    }
    Ok(facts)
}

fn read_n<const N: usize>(r: &mut impl Read) -> Result<[u8; N], GgufError> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(GgufError::Truncated)?;
    Ok(b)
}
fn read_u32(r: &mut impl Read) -> Result<u32, GgufError> {
    read_n::<4>(r).map(u32::from_le_bytes)
}
fn read_u64(r: &mut impl Read) -> Result<u64, GgufError> {
    read_n::<8>(r).map(u64::from_le_bytes)
}
fn read_string(r: &mut impl Read, max: u64) -> Result<String, GgufError> {
    let n = read_u64(r)?;
    if n > max {
        return Err(GgufError::LongString(n));
    }
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b).map_err(GgufError::Truncated)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}
fn skip(r: &mut impl BufRead, mut n: u64) -> Result<(), GgufError> {
    while n > 0 {
        let avail = r.fill_buf().map_err(GgufError::Read)?.len() as u64;
        if avail == 0 {
            return Err(GgufError::TruncatedSkip);
        }
        let k = avail.min(n);
        r.consume(k as usize);
        n -= k;
    }
    Ok(())
}

/// Scalar size of a GGUF value type, None for strings and arrays.
fn gguf_scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn read_value(r: &mut impl BufRead, ty: u32) -> Result<Value, GgufError> {
    Ok(match ty {
        0 => json!(read_n::<1>(r)?[0]),
        1 => json!(read_n::<1>(r)?[0] as i8),
        2 => json!(u16::from_le_bytes(read_n::<2>(r)?)),
        3 => json!(i16::from_le_bytes(read_n::<2>(r)?)),
        4 => json!(read_u32(r)?),
        5 => json!(i32::from_le_bytes(read_n::<4>(r)?)),
        6 => json!(f32::from_le_bytes(read_n::<4>(r)?)),
        7 => json!(read_n::<1>(r)?[0] != 0),
        8 => json!(read_string(r, 1 << 24)?),
        9 => {
            // Arrays (the tokenizer's vocabulary) are skipped, not kept.
            let elem = read_u32(r)?;
            let n = read_u64(r)?;
            match gguf_scalar_size(elem) {
                Some(size) => skip(r, n.checked_mul(size).ok_or(GgufError::ArrayTooLarge)?)?,
                None if elem == 8 => {
                    for _ in 0..n {
                        let len = read_u64(r)?;
                        skip(r, len)?;
                    }
                }
                None => return Err(GgufError::ArrayType(elem)),
            }
            Value::Null
        }
        10 => json!(read_u64(r)?),
        11 => json!(i64::from_le_bytes(read_n::<8>(r)?)),
        12 => json!(f64::from_le_bytes(read_n::<8>(r)?)),
        other => return Err(GgufError::ValueType(other)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small GGUF header: gemma3, 18 blocks, 32768 context, a two-token vocabulary.
    pub(crate) fn gguf_bytes() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(5u64.to_le_bytes());
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend((t.len() as u64).to_le_bytes());
            b.extend(t.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "gemma3");
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "<bos>");
        s(&mut b, "<eos>");
        s(&mut b, "gemma3.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(18u32.to_le_bytes());
        s(&mut b, "gemma3.context_length");
        b.extend(4u32.to_le_bytes());
        b.extend(32768u32.to_le_bytes());
        s(&mut b, "general.name");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "Gemma 3 270m");
        b
    }

    #[test]
    fn gguf_header_facts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, gguf_bytes()).unwrap();
        let f = read_gguf_facts(&p).unwrap();
        assert_eq!(f.architecture.as_deref(), Some("gemma3"));
        assert_eq!(f.block_count, Some(18));
        assert_eq!(f.context_length, Some(32768));
        assert_eq!(f.name.as_deref(), Some("Gemma 3 270m"));
        // Truncated and foreign files are errors, never panics.
        let bytes = gguf_bytes();
        for cut in [3, 10, 30, 60, bytes.len() - 3] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let _ = read_gguf_facts(&p);
        }
        std::fs::write(&p, b"PK\x03\x04 a zip").unwrap();
        let e = read_gguf_facts(&p).unwrap_err();
        assert!(
            e.is_not_gguf() && e.to_string().starts_with("not a GGUF"),
            "{e}"
        );
    }
}
