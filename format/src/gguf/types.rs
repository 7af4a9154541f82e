//! GGUF metadata values (`enum gguf_type` in ggml `gguf.h`).
use anyhow::{bail, Result};

/// The value type codes of a GGUF key/value pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_u32(v: u32) -> Result<Self> {
        use ValueType::*;
        Ok(match v {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => bail!("invalid GGUF value type {v}"),
        })
    }
}

/// One metadata value. llama.cpp checks these types strictly, so writers pick the variant with care
/// (u32 for counts and ids, f32 for eps and rope theta, i32 arrays for token types).
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Elements share one type; nested arrays are refused (llama.cpp cannot read them).
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            GgufValue::U8(_) => ValueType::U8,
            GgufValue::I8(_) => ValueType::I8,
            GgufValue::U16(_) => ValueType::U16,
            GgufValue::I16(_) => ValueType::I16,
            GgufValue::U32(_) => ValueType::U32,
            GgufValue::I32(_) => ValueType::I32,
            GgufValue::F32(_) => ValueType::F32,
            GgufValue::Bool(_) => ValueType::Bool,
            GgufValue::String(_) => ValueType::String,
            GgufValue::Array(_) => ValueType::Array,
            GgufValue::U64(_) => ValueType::U64,
            GgufValue::I64(_) => ValueType::I64,
            GgufValue::F64(_) => ValueType::F64,
        }
    }

    /// A short type name for error messages ("u32", "array", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "u8",
            GgufValue::I8(_) => "i8",
            GgufValue::U16(_) => "u16",
            GgufValue::I16(_) => "i16",
            GgufValue::U32(_) => "u32",
            GgufValue::I32(_) => "i32",
            GgufValue::F32(_) => "f32",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
            GgufValue::U64(_) => "u64",
            GgufValue::I64(_) => "i64",
            GgufValue::F64(_) => "f64",
        }
    }

    pub fn str_array<S: AsRef<str>>(items: &[S]) -> Self {
        GgufValue::Array(items.iter().map(|s| GgufValue::String(s.as_ref().to_string())).collect())
    }

    pub fn f32_array(items: &[f32]) -> Self {
        GgufValue::Array(items.iter().map(|&v| GgufValue::F32(v)).collect())
    }

    pub fn i32_array(items: &[i32]) -> Self {
        GgufValue::Array(items.iter().map(|&v| GgufValue::I32(v)).collect())
    }

    /// Serialises the value (without its type tag) little-endian.
    pub(crate) fn write_payload(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            GgufValue::U8(v) => out.push(*v),
            GgufValue::I8(v) => out.push(*v as u8),
            GgufValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::Bool(v) => out.push(*v as u8),
            GgufValue::String(s) => write_str(out, s),
            GgufValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            GgufValue::Array(items) => {
                // An empty array still needs an element type; u8 is as good as any.
                let ety = items.first().map(|v| v.value_type()).unwrap_or(ValueType::U8);
                if ety == ValueType::Array {
                    bail!("nested GGUF arrays are not supported by llama.cpp");
                }
                if items.iter().any(|v| v.value_type() != ety) {
                    bail!("GGUF array elements must all have the same type");
                }
                out.extend_from_slice(&(ety as u32).to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    v.write_payload(out)?;
                }
            }
        }
        Ok(())
    }
}

/// GGUF string: u64 byte length + UTF-8 bytes, no terminator.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}
