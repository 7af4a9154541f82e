//! Memory-mapped GGUF reader with the checks ggml's own loader makes (magic, version, bounds,
//! alignment, block divisibility), so a corrupt file is one clear error instead of a bad read later.
use super::{pad, tensor_bytes, GgmlType, GgufValue, ValueType, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One tensor record from the header. `offset` is relative to the start of the data blob.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order, `ne[0]` fastest.
    pub ne: Vec<usize>,
    pub offset: u64,
}

/// A borrowed view of one tensor's raw bytes inside the mapping.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub ty: GgmlType,
    pub ne: &'a [usize],
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.ne.iter().product()
    }
}

/// Where the file's bytes live: a mapping, or memory (fuzzing, tests, files read whole).
enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An opened GGUF file (the mapping lives as long as this value).
pub struct GgufFile {
    path: PathBuf,
    map: Bytes,
    kv: Vec<(String, GgufValue)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_start: u64,
}

/// Bounds-checked little-endian cursor over the mapped header.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            anyhow!("truncated header: need {n} bytes at offset {} but the file has {}", self.pos, self.buf.len())
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| anyhow!("string length {n} out of range"))?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| anyhow!("string at offset {} is not UTF-8", self.pos - n))
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn value(&mut self, ty: ValueType, depth: u32) -> Result<GgufValue> {
        Ok(match ty {
            ValueType::U8 => GgufValue::U8(self.arr::<1>()?[0]),
            ValueType::I8 => GgufValue::I8(self.arr::<1>()?[0] as i8),
            ValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.arr()?)),
            ValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.arr()?)),
            ValueType::U32 => GgufValue::U32(self.u32()?),
            ValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.arr()?)),
            ValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.arr()?)),
            ValueType::Bool => GgufValue::Bool(self.arr::<1>()?[0] != 0),
            ValueType::String => GgufValue::String(self.string()?),
            ValueType::U64 => GgufValue::U64(self.u64()?),
            ValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.arr()?)),
            ValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.arr()?)),
            ValueType::Array => {
                ensure!(depth == 0, "nested arrays are not supported");
                let ety = ValueType::from_u32(self.u32()?)?;
                let n = self.u64()?;
                // Every element takes at least one byte: a count beyond the file is a lie, not an allocation.
                ensure!(n <= self.remaining() as u64, "array of {n} elements cannot fit in the file");
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(ety, depth + 1)?);
                }
                GgufValue::Array(items)
            }
        })
    }
}

fn ggml_type(code: u32) -> Result<GgmlType> {
    GgmlType::from_u32(code).ok_or_else(|| anyhow!("unsupported ggml tensor type {code}"))
}

impl GgufFile {
    /// Maps and parses `path`. Errors name the file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_inner(path).with_context(|| format!("reading GGUF {}", path.display()))
    }

    /// Parses a GGUF held in memory with the same checks as [`Self::open`]; `name` stands for
    /// the path in messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(name, Bytes::Owned(bytes)).with_context(|| format!("reading GGUF {}", name.display()))
    }

    fn open_inner(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).context("cannot open file")?;
        // SAFETY: read-only mapping; the file is not modified by us while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.context("cannot map file")?;
        Self::parse(path, Bytes::Map(map))
    }

    fn parse(path: &Path, map: Bytes) -> Result<Self> {
        let mut c = Cursor { buf: &map, pos: 0 };
        let magic = c.take(4).context("not a GGUF file (too short)")?;
        ensure!(magic == MAGIC, "not a GGUF file (bad magic {magic:02x?})");
        let version = c.u32()?;
        ensure!(version == 2 || version == 3, "unsupported GGUF version {version} (2 or 3 expected)");
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        ensure!(n_kv <= c.remaining() as u64 && n_tensors <= c.remaining() as u64, "header counts exceed the file size");

        let mut kv = Vec::with_capacity(n_kv as usize);
        let mut index = HashMap::new();
        for i in 0..n_kv {
            let key = c.string().with_context(|| format!("key #{i}"))?;
            let ty = ValueType::from_u32(c.u32()?).with_context(|| format!("key {key}"))?;
            let v = c.value(ty, 0).with_context(|| format!("key {key}"))?;
            ensure!(index.insert(key.clone(), kv.len()).is_none(), "duplicate key {key}");
            kv.push((key, v));
        }
        let alignment = match index.get("general.alignment").map(|&i| &kv[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(GgufValue::U32(a)) if *a > 0 && a.is_power_of_two() => *a as u64,
            Some(v) => bail!("general.alignment must be a non-zero power-of-two u32, got {v:?}"),
        };

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut tensor_index = HashMap::new();
        for i in 0..n_tensors {
            let name = c.string().with_context(|| format!("tensor info #{i}"))?;
            let n_dims = c.u32()? as usize;
            ensure!((1..=MAX_DIMS).contains(&n_dims), "tensor {name}: {n_dims} dims");
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = c.u64()?;
                ne.push(usize::try_from(d).map_err(|_| anyhow!("tensor {name}: dim {d} out of range"))?);
            }
            let ty = ggml_type(c.u32()?).with_context(|| format!("tensor {name}"))?;
            let offset = c.u64()?;
            ensure!(offset % alignment == 0, "tensor {name}: offset {offset} is not aligned to {alignment}");
            ensure!(tensor_index.insert(name.clone(), tensors.len()).is_none(), "duplicate tensor {name}");
            tensors.push(TensorInfo { name, ty, ne, offset });
        }
        let data_start = pad(c.pos as u64, alignment);
        let file_len = map.len() as u64;
        for t in &tensors {
            let n = tensor_bytes(t.ty, &t.ne).ok_or_else(|| {
                anyhow!("tensor {}: shape {:?} is not a whole number of {} blocks, or its size overflows", t.name, t.ne, t.ty.name())
            })?;
            let end = data_start.checked_add(t.offset).and_then(|s| s.checked_add(n));
            ensure!(
                end.is_some_and(|e| e <= file_len),
                "tensor {}: data ({} bytes at offset {}) is not within the file ({} bytes)",
                t.name,
                n,
                t.offset,
                file_len
            );
        }
        Ok(Self { path: path.to_path_buf(), map, kv, index, tensors, tensor_index, data_start })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All metadata pairs in file order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.kv
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.kv[i].1)
    }

    fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| anyhow!("{}: missing key {key}", self.path.display()))
    }

    fn wrong_type(&self, key: &str, want: &str, got: &GgufValue) -> anyhow::Error {
        anyhow!("{}: key {key} has type {}, expected {want}", self.path.display(), got.type_name())
    }

    pub fn get_u32(&self, key: &str) -> Result<u32> {
        match self.require(key)? {
            GgufValue::U32(v) => Ok(*v),
            v => Err(self.wrong_type(key, "u32", v)),
        }
    }

    pub fn get_i32(&self, key: &str) -> Result<i32> {
        match self.require(key)? {
            GgufValue::I32(v) => Ok(*v),
            v => Err(self.wrong_type(key, "i32", v)),
        }
    }

    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match self.require(key)? {
            GgufValue::F32(v) => Ok(*v),
            v => Err(self.wrong_type(key, "f32", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            GgufValue::Bool(v) => Ok(*v),
            v => Err(self.wrong_type(key, "bool", v)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            GgufValue::String(v) => Ok(v),
            v => Err(self.wrong_type(key, "string", v)),
        }
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        match self.require(key)? {
            GgufValue::Array(items) => items
                .iter()
                .map(|v| match v {
                    GgufValue::F32(x) => Ok(*x),
                    other => Err(self.wrong_type(key, "f32 array", other)),
                })
                .collect(),
            v => Err(self.wrong_type(key, "f32 array", v)),
        }
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The named tensor's bytes; the error names the tensor and the file.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let &i = self
            .tensor_index
            .get(name)
            .ok_or_else(|| anyhow!("{}: missing tensor {name}", self.path.display()))?;
        let t = &self.tensors[i];
        let n = tensor_bytes(t.ty, &t.ne).expect("checked in open") as usize;
        let start = (self.data_start + t.offset) as usize;
        Ok(TensorView { name: &t.name, ty: t.ty, ne: &t.ne, data: &self.map[start..start + n] })
    }
}
