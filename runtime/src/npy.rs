//! .npy read/write (f32, i64, u8; little-endian, C order) for the reference fixtures and debug dumps.
//!
//! Only the subset numpy writes for plain arrays: format 1.0/2.0/3.0 header, `descr` `<f4`/`<i8`/`|u1`,
//! `fortran_order: False`. Anything else is refused with a clear error rather than misread.
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parsed header: dtype string and shape.
struct Header {
    descr: String,
    shape: Vec<usize>,
    data_start: usize,
}

fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("not a .npy file (bad magic)");
    }
    let major = bytes[6];
    let (hlen, hstart) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("truncated .npy header");
            }
            (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12)
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let end = hstart.checked_add(hlen).filter(|&e| e <= bytes.len()).context("truncated .npy header")?;
    let text = std::str::from_utf8(&bytes[hstart..end]).context(".npy header is not UTF-8")?;
    let field = |key: &str| -> Result<&str> {
        let k = format!("'{key}':");
        let i = text.find(&k).with_context(|| format!(".npy header has no {key}"))?;
        Ok(text[i + k.len()..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr.strip_prefix('\'').and_then(|d| d.split('\'').next()).context("bad descr")?.to_string();
    if field("fortran_order")?.starts_with("True") {
        bail!("Fortran-ordered .npy arrays are not supported");
    }
    let shape_txt = field("shape")?;
    let close = shape_txt.find(')').context("bad shape")?;
    let shape = shape_txt[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().context("bad shape dimension"))
        .collect::<Result<Vec<_>>>()?;
    Ok(Header { descr, shape, data_start: end })
}

fn read_raw(path: &Path, want: &[&str], elem: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let h = parse_header(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    if !want.contains(&h.descr.as_str()) {
        bail!("{}: dtype {} (expected {})", path.display(), h.descr, want.join(" or "));
    }
    let n: usize = h.shape.iter().product();
    let data = &bytes[h.data_start..];
    if data.len() != n * elem {
        bail!("{}: {} data bytes for shape {:?} (expected {})", path.display(), data.len(), h.shape, n * elem);
    }
    Ok((h.shape, data.to_vec()))
}

/// Reads a little-endian float32 array.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let (shape, raw) = read_raw(path, &["<f4"], 4)?;
    Ok((shape, raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
}

/// Reads a little-endian int64 array.
pub fn read_i64(path: &Path) -> Result<(Vec<usize>, Vec<i64>)> {
    let (shape, raw) = read_raw(path, &["<i8"], 8)?;
    Ok((shape, raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()))
}

/// Reads a uint8 array.
pub fn read_u8(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    read_raw(path, &["|u1", "<u1"], 1)
}

fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("{},", shape[0]),
        _ => shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    // numpy pads the header with spaces so that the data starts on a 64-byte boundary, ending with '\n'.
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes a float32 array atomically (temp file + rename).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        bail!("write_f32: shape {:?} holds {} values, got {}", shape, n, data.len());
    }
    let mut buf = header_bytes("<f4", shape);
    buf.reserve(data.len() * 4);
    for v in data {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &buf)
}

/// Writes `bytes` to `path` through a temp file in the same folder, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("output path has no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let res = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        write_f32(&p, &[3, 4], &data).unwrap();
        let (shape, back) = read_f32(&p).unwrap();
        assert_eq!(shape, vec![3, 4]);
        assert_eq!(back, data);
        // The data must start on a 64-byte boundary like numpy's own files.
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 48) % 64, 0);
    }

    #[test]
    fn reads_golden_i64() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../quant-tests/fixtures/golden/cases/tiny_text_only/gen_ids.npy");
        let (shape, ids) = read_i64(&p).unwrap();
        assert_eq!(shape, vec![16]);
        assert_eq!(ids.len(), 16);
        assert!(read_f32(&p).unwrap_err().to_string().contains("dtype"));
    }

    #[test]
    fn refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"hello world").unwrap();
        assert!(read_f32(&p).is_err());
    }
}
