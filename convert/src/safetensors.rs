//! Memory-mapped safetensors checkpoints (single file or sharded with `model.safetensors.index.json`).
//!
//! The header is validated before any tensor is touched: every entry's dtype, shape and byte range
//! must agree and lie inside the file, so a truncated or lying header is one clear error. Tensors
//! are then read one at a time, converted to f32 and released from the page cache mapping, which
//! keeps peak RSS near the size of the largest tensor rather than the checkpoint.
use anyhow::{anyhow, bail, ensure, Context, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Header size cap (the format's own reference implementation uses 100 MB).
const MAX_HEADER: u64 = 100_000_000;
/// Elements per parallel conversion task.
const CHUNK: usize = 1 << 16;

/// Element types we can read (H2OVL ships bf16; f16/f32 also accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    BF16,
    F16,
    F32,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::BF16 | Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }
}

/// One tensor entry: where its bytes are.
#[derive(Clone, Debug)]
pub struct StTensor {
    pub name: String,
    pub dtype: Dtype,
    /// numpy/torch order (last axis contiguous).
    pub shape: Vec<usize>,
    shard: usize,
    /// Absolute byte range in the shard file.
    start: usize,
    end: usize,
}

impl StTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

struct Shard {
    path: PathBuf,
    map: memmap2::Mmap,
}

/// All tensors of a checkpoint folder.
pub struct Checkpoint {
    shards: Vec<Shard>,
    tensors: BTreeMap<String, StTensor>,
}

impl Checkpoint {
    /// Opens `dir/model.safetensors`, or the shards listed by `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let mut ck = Checkpoint { shards: Vec::new(), tensors: BTreeMap::new() };
        if single.is_file() {
            ck.add_shard(&single)?;
        } else if index.is_file() {
            let text = std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
            let map = parse_index(&text).with_context(|| format!("parsing {}", index.display()))?;
            let mut files: Vec<&str> = Vec::new();
            for (_, f) in &map {
                if !files.contains(&f.as_str()) {
                    files.push(f);
                }
            }
            files.sort_unstable();
            for f in &files {
                ck.add_shard(&dir.join(f))?;
            }
            for (name, f) in &map {
                let t = ck.tensors.get(name).ok_or_else(|| {
                    anyhow!("{}: tensor {name} is listed for {} but that shard does not contain it", index.display(), f)
                })?;
                let shard_path = &ck.shards[t.shard].path;
                ensure!(
                    shard_path.file_name().and_then(|s| s.to_str()) == Some(f.as_str()),
                    "{}: tensor {name} is listed for {} but found in {}",
                    index.display(),
                    f,
                    shard_path.display()
                );
            }
        } else {
            bail!("{}: neither model.safetensors nor model.safetensors.index.json found", dir.display());
        }
        Ok(ck)
    }

    fn add_shard(&mut self, path: &Path) -> Result<()> {
        let shard = self.shards.len();
        let entries = parse_shard(path, shard).with_context(|| format!("reading {}", path.display()))?;
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: read-only mapping of an input file we never write.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
        for t in entries {
            ensure!(t.end <= map.len(), "{}: file changed while reading", path.display());
            if self.tensors.contains_key(&t.name) {
                bail!("tensor {} appears in more than one shard ({})", t.name, path.display());
            }
            self.tensors.insert(t.name.clone(), t);
        }
        self.shards.push(Shard { path: path.to_path_buf(), map });
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&StTensor> {
        self.tensors.get(name)
    }

    /// The named tensor, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&StTensor> {
        self.get(name).ok_or_else(|| anyhow!("checkpoint has no tensor {name}"))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }

    /// Reads the tensor as f32 (bf16/f16 widen exactly) and refuses NaN/Inf, naming the tensor.
    pub fn load_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.require(name)?;
        self.load_f32_range(name, 0, t.numel())
    }

    /// Elements `[begin, end)` of the tensor (row-major) as f32, refusing NaN/Inf with the element's
    /// index in the whole tensor; the range's pages are released afterwards.
    pub fn load_f32_range(&self, name: &str, begin: usize, end: usize) -> Result<Vec<f32>> {
        let t = self.require(name)?;
        ensure!(begin <= end && end <= t.numel(), "tensor {name}: element range {begin}..{end} out of bounds");
        let es = t.dtype.size();
        let (b0, b1) = (t.start + begin * es, t.start + end * es);
        let bytes = &self.shards[t.shard].map[b0..b1];
        let mut out = vec![0f32; end - begin];
        out.par_chunks_mut(CHUNK).zip(bytes.par_chunks(CHUNK * es)).for_each(|(o, b)| match t.dtype {
            Dtype::BF16 => o.iter_mut().zip(b.chunks_exact(2)).for_each(|(o, b)| *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            Dtype::F16 => o.iter_mut().zip(b.chunks_exact(2)).for_each(|(o, b)| *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            Dtype::F32 => o.iter_mut().zip(b.chunks_exact(4)).for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        });
        if let Some(i) = out.par_iter().position_first(|x| !x.is_finite()) {
            bail!("tensor {name} contains a non-finite value ({}) at element {}", out[i], begin + i);
        }
        self.release(t.shard, b0, b1);
        Ok(out)
    }

    /// Drops the tensor's pages from this process's mapping (they stay in the page cache), so
    /// resident memory does not grow with the checkpoint.
    fn release(&self, shard: usize, start: usize, end: usize) {
        #[cfg(unix)]
        {
            let map = &self.shards[shard].map;
            // Whole pages inside the range only: a neighbouring tensor may still be in use.
            let page = 4096;
            let start = start.div_ceil(page) * page;
            let end = end / page * page;
            if end <= start {
                return;
            }
            let len = end - start;
            // SAFETY: read-only private file mapping: dropped pages are re-read from the file on access.
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
        }
        #[cfg(not(unix))]
        let _ = (shard, start, end);
    }
}

/// Parses `model.safetensors.index.json`: its `weight_map` as (tensor, shard file) pairs in file
/// order. Shard names must be plain file names (no path can escape the checkpoint folder).
pub fn parse_index(text: &str) -> Result<Vec<(String, String)>> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| anyhow!("no weight_map object"))?;
    let mut out = Vec::with_capacity(map.len());
    for (name, f) in map {
        let f = f.as_str().ok_or_else(|| anyhow!("weight_map[{name}] is not a string"))?;
        ensure!(
            !f.contains('/') && !f.contains('\\') && f != ".." && f != "." && !f.is_empty(),
            "shard name {f:?} must be a plain file name"
        );
        out.push((name.clone(), f.to_string()));
    }
    Ok(out)
}

/// Parses and validates one shard's header.
fn parse_shard(path: &Path, shard: usize) -> Result<Vec<StTensor>> {
    let len = std::fs::metadata(path).context("cannot stat file")?.len();
    ensure!(len >= 8, "truncated safetensors file ({len} bytes, no header length)");
    let mut f = std::fs::File::open(path).context("cannot open file")?;
    use std::io::Read;
    let mut n8 = [0u8; 8];
    f.read_exact(&mut n8)?;
    let mut hdr = vec![0u8; header_len(n8, len)?];
    f.read_exact(&mut hdr)?;
    parse_header(&hdr, len, shard)
}

/// Validates a whole safetensors file held in memory (the fuzzers' entry: same checks as a file).
pub fn parse_shard_bytes(bytes: &[u8]) -> Result<Vec<StTensor>> {
    let len = bytes.len() as u64;
    ensure!(len >= 8, "truncated safetensors file ({len} bytes, no header length)");
    let n = header_len(bytes[..8].try_into().expect("8 bytes"), len)?;
    parse_header(&bytes[8..8 + n], len, 0)
}

/// The header length stored in a shard's first 8 bytes, checked against the cap and the length
/// `len` of the whole file before anything is allocated for it.
fn header_len(n8: [u8; 8], len: u64) -> Result<usize> {
    let n = u64::from_le_bytes(n8);
    ensure!(n <= MAX_HEADER, "safetensors header length {n} is implausible (corrupt file?)");
    ensure!(8 + n <= len, "truncated safetensors file: header says {n} bytes but the file has {len}");
    Ok(n as usize)
}

/// The JSON header `hdr` of a shard whose file is `len` bytes long.
fn parse_header(hdr: &[u8], len: u64, shard: usize) -> Result<Vec<StTensor>> {
    let n = hdr.len() as u64;
    let v: serde_json::Value = serde_json::from_slice(hdr).context("safetensors header is not valid JSON")?;
    let obj = v.as_object().ok_or_else(|| anyhow!("safetensors header is not a JSON object"))?;
    let data_start = 8 + n;
    let data_len = len - data_start;
    let mut out = Vec::with_capacity(obj.len());
    for (name, e) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| anyhow!("tensor {name}: {what} in the safetensors header");
        let dtype = match e.get("dtype").and_then(|d| d.as_str()) {
            Some("BF16") => Dtype::BF16,
            Some("F16") => Dtype::F16,
            Some("F32") => Dtype::F32,
            Some(other) => bail!("tensor {name}: unsupported dtype {other} (BF16, F16 or F32 expected)"),
            None => return Err(bad("no dtype")),
        };
        let shape: Vec<usize> = e
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize).ok_or_else(|| bad("bad shape")))
            .collect::<Result<_>>()?;
        let offs = e.get("data_offsets").and_then(|o| o.as_array()).ok_or_else(|| bad("no data_offsets"))?;
        ensure!(offs.len() == 2, bad("data_offsets must have two entries"));
        let (b, en) = (offs[0].as_u64().ok_or_else(|| bad("bad data_offsets"))?, offs[1].as_u64().ok_or_else(|| bad("bad data_offsets"))?);
        ensure!(b <= en, "tensor {name}: data_offsets [{b}, {en}] are reversed");
        ensure!(
            en <= data_len,
            "tensor {name}: data_offsets end {en} is beyond the data section ({data_len} bytes): truncated file?"
        );
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or_else(|| bad("shape overflows"))?;
        let want = numel.checked_mul(dtype.size() as u64).ok_or_else(|| bad("shape overflows"))?;
        ensure!(
            en - b == want,
            "tensor {name}: header says shape {shape:?} {dtype:?} ({want} bytes) but data_offsets span {} bytes",
            en - b
        );
        out.push(StTensor {
            name: name.clone(),
            dtype,
            shape,
            shard,
            start: (data_start + b) as usize,
            end: (data_start + en) as usize,
        });
    }
    Ok(out)
}
