//! Minimal safetensors I/O for the generator: build the header for a tensor list before any data
//! exists (so multi-GB files can be streamed tensor by tensor), and read a header back for checks.
//!
//! Format: u64 LE header length N, N bytes of JSON
//! `{"name":{"dtype":"BF16","shape":[..],"data_offsets":[begin,end]},…,"__metadata__":{"format":"pt"}}`
//! padded with spaces so the data starts 8-byte aligned, then the tensors back to back in
//! offset order. Offsets are relative to the start of the data section.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// One header entry (shape in PyTorch order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub begin: u64,
    pub end: u64,
}

/// The serialised header (length prefix included) for bf16 tensors stored in the given order,
/// plus each tensor's (begin, end) data offsets.
pub fn bf16_header<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> Result<(Vec<u8>, Vec<(u64, u64)>)> {
    let mut json = String::from("{");
    let mut offsets = Vec::new();
    let mut at = 0u64;
    for (name, shape) in tensors {
        let bytes = 2 * shape.iter().product::<usize>() as u64;
        let shape_json = serde_json::to_string(shape)?;
        json.push_str(&format!(
            "{}:{{\"dtype\":\"BF16\",\"shape\":{shape_json},\"data_offsets\":[{at},{}]}},",
            serde_json::to_string(name)?,
            at + bytes
        ));
        offsets.push((at, at + bytes));
        at += bytes;
    }
    json.push_str("\"__metadata__\":{\"format\":\"pt\"}}");
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    Ok((out, offsets))
}

/// Read and validate the header of a safetensors file; entries sorted by data offset.
/// Checks that offsets are contiguous, match dtype × shape, and that the file is exactly as long
/// as the header says, so a truncated or padded file is reported by name.
pub fn read_header(path: &Path) -> Result<Vec<HeaderEntry>> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let file_len = f.metadata()?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).with_context(|| format!("{}: too short for a safetensors header", path.display()))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 || 8 + n > file_len {
        bail!("{}: header length {n} does not fit a {file_len}-byte file", path.display());
    }
    let mut raw = vec![0u8; n as usize];
    f.read_exact(&mut raw)?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).with_context(|| format!("{}: header is not a JSON object", path.display()))?;
    let mut entries = Vec::new();
    for (name, v) in json {
        if name == "__metadata__" {
            continue;
        }
        let bad = || anyhow::anyhow!("{}: malformed header entry for tensor {name}", path.display());
        let dtype = v.get("dtype").and_then(|d| d.as_str()).ok_or_else(bad)?.to_string();
        let shape = v
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(bad)?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let off = v.get("data_offsets").and_then(|o| o.as_array()).ok_or_else(bad)?;
        let (begin, end) = match off.as_slice() {
            [b, e] => (b.as_u64().ok_or_else(bad)?, e.as_u64().ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        entries.push(HeaderEntry { name, dtype, shape, begin, end });
    }
    entries.sort_by_key(|e| e.begin);
    let mut at = 0u64;
    for e in &entries {
        let elem = match e.dtype.as_str() {
            "BF16" | "F16" => 2,
            "F32" => 4,
            other => bail!("{}: tensor {} has unsupported dtype {other}", path.display(), e.name),
        };
        let want = elem * e.shape.iter().product::<usize>() as u64;
        if e.begin != at || e.end - e.begin != want {
            bail!("{}: tensor {} has offsets [{}, {}], expected [{at}, {}]", path.display(), e.name, e.begin, e.end, at + want);
        }
        at = e.end;
    }
    if 8 + n + at != file_len {
        bail!("{}: file is {file_len} bytes, header describes {}", path.display(), 8 + n + at);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let shapes: [(&str, &[usize]); 2] = [("a.weight", &[3, 5]), ("b", &[7])];
        let (header, offsets) = bf16_header(shapes).unwrap();
        assert_eq!(header.len() % 8, 0);
        assert_eq!(offsets, [(0, 30), (30, 44)]);
        let mut bytes = header.clone();
        bytes.resize(header.len() + 44, 0);
        std::fs::write(&path, &bytes).unwrap();
        let e = read_header(&path).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].name.as_str(), e[0].shape.as_slice(), e[0].dtype.as_str()), ("a.weight", &[3, 5][..], "BF16"));
        // Truncated data is reported, not mis-read.
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = read_header(&path).unwrap_err().to_string();
        assert!(err.contains("t.safetensors"), "{err}");
    }
}
