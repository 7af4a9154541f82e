//! Streaming GGUF writer: metadata and tensor infos first, then tensor data one tensor at a time,
//! so a converter never holds more than one tensor in memory.
use super::types::write_str;
use super::{pad, tensor_bytes, GgmlType, GgufValue, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_TENSOR_NAME, VERSION};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashSet;
use std::io::Write;

/// A tensor announced in the header before its data is produced.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTensor {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order: `ne[0]` is the contiguous axis (= numpy shape reversed).
    pub ne: Vec<usize>,
}

impl PlannedTensor {
    pub fn nbytes(&self) -> u64 {
        tensor_bytes(self.ty, &self.ne).expect("validated in add_tensor")
    }
}

/// Collects KV pairs and tensor infos, writes the header, then accepts tensor data in the announced
/// order. Offsets follow ggml's strict contiguity rule (each tensor padded to the alignment).
pub struct GgufWriter<W: Write> {
    out: W,
    kv: Vec<(String, GgufValue)>,
    tensors: Vec<PlannedTensor>,
    names: HashSet<String>,
    header_written: bool,
    next: usize,
    pos: u64,
    /// Bytes written so far of the tensor being streamed.
    open: Option<u64>,
}

impl<W: Write> GgufWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out, kv: Vec::new(), tensors: Vec::new(), names: HashSet::new(), header_written: false, next: 0, pos: 0, open: None }
    }

    /// Adds one metadata pair; duplicate keys are refused (llama.cpp rejects such files).
    pub fn add_kv(&mut self, key: &str, value: GgufValue) -> Result<()> {
        ensure!(!self.header_written, "GGUF header already written");
        ensure!(self.kv.iter().all(|(k, _)| k != key), "duplicate GGUF key {key}");
        self.kv.push((key.to_string(), value));
        Ok(())
    }

    /// Announces a tensor. Checks what the ggml loader checks: name length, dims, block divisibility.
    pub fn add_tensor(&mut self, t: PlannedTensor) -> Result<()> {
        ensure!(!self.header_written, "GGUF header already written");
        ensure!(t.name.len() <= MAX_TENSOR_NAME, "tensor name {} is longer than {MAX_TENSOR_NAME} bytes", t.name);
        ensure!(!t.ne.is_empty() && t.ne.len() <= MAX_DIMS, "tensor {} has {} dims (1..={MAX_DIMS} allowed)", t.name, t.ne.len());
        ensure!(
            tensor_bytes(t.ty, &t.ne).is_some(),
            "tensor {}: ne[0] = {} is not a multiple of the {} block size {}",
            t.name,
            t.ne[0],
            t.ty.name(),
            t.ty.block_size()
        );
        ensure!(self.names.insert(t.name.clone()), "duplicate tensor name {}", t.name);
        self.tensors.push(t);
        Ok(())
    }

    pub fn tensors(&self) -> &[PlannedTensor] {
        &self.tensors
    }

    /// Writes header, KV pairs, tensor infos and the padding before the data blob.
    pub fn write_header(&mut self) -> Result<()> {
        ensure!(!self.header_written, "GGUF header already written");
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            write_str(&mut buf, k);
            buf.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            v.write_payload(&mut buf).with_context(|| format!("GGUF key {k}"))?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_str(&mut buf, &t.name);
            buf.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
            for &d in &t.ne {
                buf.extend_from_slice(&(d as u64).to_le_bytes());
            }
            buf.extend_from_slice(&(t.ty as u32).to_le_bytes());
            buf.extend_from_slice(&offset.to_le_bytes());
            offset += pad(t.nbytes(), DEFAULT_ALIGNMENT);
        }
        let data_start = pad(buf.len() as u64, DEFAULT_ALIGNMENT);
        buf.resize(data_start as usize, 0);
        self.out.write_all(&buf)?;
        self.pos = data_start;
        self.header_written = true;
        Ok(())
    }

    /// Name of the tensor whose data is expected next, if any.
    pub fn next_tensor(&self) -> Option<&PlannedTensor> {
        self.tensors.get(self.next)
    }

    /// Writes the data of the next announced tensor (must come in announcement order, exact size).
    pub fn write_tensor_data(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.begin_tensor(name)?;
        self.write_tensor_bytes(data)?;
        self.end_tensor()
    }

    /// Starts streaming the next announced tensor's data in pieces ([`Self::write_tensor_bytes`],
    /// then [`Self::end_tensor`]), so a large tensor never has to exist whole in memory.
    pub fn begin_tensor(&mut self, name: &str) -> Result<()> {
        ensure!(self.header_written, "write_header must come before tensor data");
        ensure!(self.open.is_none(), "tensor data for {} not finished", self.tensors[self.next].name);
        let Some(t) = self.tensors.get(self.next) else { bail!("tensor {name} was not announced") };
        ensure!(t.name == name, "tensor data out of order: got {name}, expected {}", t.name);
        self.open = Some(0);
        Ok(())
    }

    pub fn write_tensor_bytes(&mut self, data: &[u8]) -> Result<()> {
        let Some(done) = self.open else { bail!("no tensor started") };
        let t = &self.tensors[self.next];
        ensure!(done + data.len() as u64 <= t.nbytes(), "tensor {}: more than {} data bytes", t.name, t.nbytes());
        self.out.write_all(data)?;
        self.open = Some(done + data.len() as u64);
        Ok(())
    }

    pub fn end_tensor(&mut self) -> Result<()> {
        let Some(done) = self.open.take() else { bail!("no tensor started") };
        let t = &self.tensors[self.next];
        let n = t.nbytes();
        ensure!(done == n, "tensor {}: {done} data bytes, expected {n}", t.name);
        let padded = pad(n, DEFAULT_ALIGNMENT);
        self.out.write_all(&vec![0u8; (padded - n) as usize])?;
        self.pos += padded;
        self.next += 1;
        Ok(())
    }

    /// Checks every announced tensor was written and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        ensure!(self.header_written, "GGUF header never written");
        ensure!(self.open.is_none(), "tensor data not finished");
        if let Some(t) = self.tensors.get(self.next) {
            bail!("tensor {} announced but never written", t.name);
        }
        self.out.flush()?;
        Ok(self.out)
    }
}
