//! A minimal GGUF header reader, so that crow can check model files (is it GGUF? which architecture? does
//! the projector fit the text model?) and report a typed error *before* llama.cpp, which may abort the
//! process on bad input, ever sees them.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

/// A scalar or string metadata value (arrays are skipped).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Any unsigned or signed integer, widened.
    Int(i128),
    /// f32 or f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// UTF-8 string (lossy).
    Str(String),
    /// An array, with its element count (elements are not kept).
    Array(u64),
}

/// The metadata of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// Format version.
    pub version: u32,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Key/value metadata.
    pub metadata: HashMap<String, GgufValue>,
}

impl GgufHeader {
    /// A string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(GgufValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer value.
    pub fn int(&self, key: &str) -> Option<i128> {
        match self.metadata.get(key) {
            Some(GgufValue::Int(v)) => Some(*v),
            _ => None,
        }
    }
}

/// Why a file is not a readable GGUF.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The magic bytes are not "GGUF".
    #[error("not a GGUF file (magic bytes {0:?})")]
    NotGguf([u8; 4]),
    /// The header is malformed.
    #[error("malformed GGUF header: {0}")]
    Malformed(&'static str),
}

/// Upper bounds that keep a hostile header from making us allocate or loop without end.
const MAX_KV: u64 = 1 << 16;
const MAX_STRING: u64 = 1 << 24;

struct Reader<R: Read>(R);

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        self.0.read_exact(&mut b)?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(GgufError::Malformed("string too long"));
        }
        let mut buf = vec![0u8; len as usize];
        self.0.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        let copied = std::io::copy(&mut (&mut self.0).take(n), &mut std::io::sink())?;
        if copied != n {
            return Err(GgufError::Malformed("truncated"));
        }
        Ok(())
    }
    fn value(&mut self, ty: u32) -> Result<GgufValue, GgufError> {
        Ok(match ty {
            0 => GgufValue::Int(u8::from_le_bytes(self.bytes()?).into()),
            1 => GgufValue::Int(i8::from_le_bytes(self.bytes()?).into()),
            2 => GgufValue::Int(u16::from_le_bytes(self.bytes()?).into()),
            3 => GgufValue::Int(i16::from_le_bytes(self.bytes()?).into()),
            4 => GgufValue::Int(u32::from_le_bytes(self.bytes()?).into()),
            5 => GgufValue::Int(i32::from_le_bytes(self.bytes()?).into()),
            6 => GgufValue::Float(f32::from_le_bytes(self.bytes()?).into()),
            7 => GgufValue::Bool(self.bytes::<1>()?[0] != 0),
            8 => GgufValue::Str(self.string()?),
            9 => {
                let elem = self.u32()?;
                let count = self.u64()?;
                let width = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    10..=12 => 8,
                    8 => 0,
                    _ => return Err(GgufError::Malformed("unknown array element type")),
                };
                if width == 0 {
                    for _ in 0..count {
                        let len = self.u64()?;
                        self.skip(len)?;
                    }
                } else {
                    self.skip(
                        count
                            .checked_mul(width)
                            .ok_or(GgufError::Malformed("array too large"))?,
                    )?;
                }
                GgufValue::Array(count)
            }
            10 => GgufValue::Int(u64::from_le_bytes(self.bytes()?).into()),
            11 => GgufValue::Int(i64::from_le_bytes(self.bytes()?).into()),
            12 => GgufValue::Float(f64::from_le_bytes(self.bytes()?)),
            _ => return Err(GgufError::Malformed("unknown value type")),
        })
    }
}

/// Reads the header and metadata of a GGUF file (not the tensors).
pub fn read_header(path: &Path) -> Result<GgufHeader, GgufError> {
    let mut r = Reader(BufReader::new(std::fs::File::open(path)?));
    let magic = r.bytes::<4>()?;
    if &magic != b"GGUF" {
        return Err(GgufError::NotGguf(magic));
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Malformed("unsupported version"));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    if kv_count > MAX_KV {
        return Err(GgufError::Malformed("too many metadata entries"));
    }
    let mut metadata = HashMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let ty = r.u32()?;
        metadata.insert(key, r.value(ty)?);
    }
    Ok(GgufHeader {
        version,
        tensor_count,
        metadata,
    })
}
