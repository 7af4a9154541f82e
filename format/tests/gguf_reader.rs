//! GGUF writer → reader round trip, and the reader's refusals of corrupt files (one error naming
//! the file, the key or the tensor; never a panic or an out-of-bounds read).
use h2ovl_format::gguf::{GgmlType, GgufFile, GgufValue, GgufWriter, PlannedTensor};
use std::path::Path;

fn sample() -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = GgufWriter::new(&mut buf);
    w.add_kv("a.u8", GgufValue::U8(7)).unwrap();
    w.add_kv("a.i8", GgufValue::I8(-7)).unwrap();
    w.add_kv("a.u16", GgufValue::U16(700)).unwrap();
    w.add_kv("a.i16", GgufValue::I16(-700)).unwrap();
    w.add_kv("a.u32", GgufValue::U32(70000)).unwrap();
    w.add_kv("a.i32", GgufValue::I32(-70000)).unwrap();
    w.add_kv("a.f32", GgufValue::F32(1.5)).unwrap();
    w.add_kv("a.bool", GgufValue::Bool(true)).unwrap();
    w.add_kv("a.str", GgufValue::String("héllo".into())).unwrap();
    w.add_kv("a.u64", GgufValue::U64(1 << 40)).unwrap();
    w.add_kv("a.i64", GgufValue::I64(-(1 << 40))).unwrap();
    w.add_kv("a.f64", GgufValue::F64(0.25)).unwrap();
    w.add_kv("a.farr", GgufValue::f32_array(&[1.0, 2.0, 3.0])).unwrap();
    w.add_kv("a.sarr", GgufValue::str_array(&["x", "yz"])).unwrap();
    assert!(w.add_kv("a.u8", GgufValue::U8(1)).is_err(), "duplicate key");
    w.add_tensor(PlannedTensor { name: "t.f32".into(), ty: GgmlType::F32, ne: vec![3, 2] }).unwrap();
    w.add_tensor(PlannedTensor { name: "t.q8".into(), ty: GgmlType::Q8_0, ne: vec![32, 1] }).unwrap();
    assert!(w.add_tensor(PlannedTensor { name: "t.bad".into(), ty: GgmlType::Q8_0, ne: vec![30] }).is_err());
    assert!(w.add_tensor(PlannedTensor { name: "t.f32".into(), ty: GgmlType::F32, ne: vec![1] }).is_err());
    w.write_header().unwrap();
    assert!(w.write_tensor_data("t.q8", &[0; 34]).is_err(), "out of order");
    let f: Vec<u8> = [1f32, 2., 3., 4., 5., 6.].iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_tensor_data("t.f32", &f).unwrap();
    w.write_tensor_data("t.q8", &[1; 34]).unwrap();
    w.finish().unwrap();
    buf
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn open_err(bytes: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "x.gguf", bytes);
    let e = GgufFile::open(&p).err().expect("must be refused");
    let s = format!("{e:#}");
    assert!(s.contains("x.gguf"), "error must name the file: {s}");
    s
}

#[test]
fn round_trip_all_value_types_and_tensors() {
    let d = tempfile::tempdir().unwrap();
    let g = GgufFile::open(&write(d.path(), "ok.gguf", &sample())).unwrap();
    assert_eq!(g.get("a.u8"), Some(&GgufValue::U8(7)));
    assert_eq!(g.get("a.i8"), Some(&GgufValue::I8(-7)));
    assert_eq!(g.get("a.u16"), Some(&GgufValue::U16(700)));
    assert_eq!(g.get("a.i16"), Some(&GgufValue::I16(-700)));
    assert_eq!(g.get_u32("a.u32").unwrap(), 70000);
    assert_eq!(g.get_i32("a.i32").unwrap(), -70000);
    assert_eq!(g.get_f32("a.f32").unwrap(), 1.5);
    assert!(g.get_bool("a.bool").unwrap());
    assert_eq!(g.get_str("a.str").unwrap(), "héllo");
    assert_eq!(g.get("a.u64"), Some(&GgufValue::U64(1 << 40)));
    assert_eq!(g.get("a.i64"), Some(&GgufValue::I64(-(1 << 40))));
    assert_eq!(g.get("a.f64"), Some(&GgufValue::F64(0.25)));
    assert_eq!(g.get_f32_array("a.farr").unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(g.get("a.sarr"), Some(&GgufValue::str_array(&["x", "yz"])));
    let e = format!("{:#}", g.get_u32("a.f32").unwrap_err());
    assert!(e.contains("a.f32") && e.contains("f32") && e.contains("u32") && e.contains("ok.gguf"), "{e}");
    let e = format!("{:#}", g.get_str("nope").unwrap_err());
    assert!(e.contains("missing key nope"), "{e}");
    assert_eq!(g.tensors().len(), 2);
    assert_eq!(g.tensors()[1].offset, 32, "24 bytes padded to 32");
    let t = g.tensor("t.f32").unwrap();
    assert_eq!((t.ty, t.ne), (GgmlType::F32, &[3usize, 2][..]));
    assert_eq!(&t.data[4..8], &2f32.to_le_bytes());
    assert_eq!(g.tensor("t.q8").unwrap().data, &[1u8; 34][..]);
    let e = format!("{:#}", g.tensor("t.missing").unwrap_err());
    assert!(e.contains("missing tensor t.missing"), "{e}");
}

#[test]
fn corrupt_files_are_refused() {
    let good = sample();
    assert!(open_err(b"GG").contains("too short"));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(open_err(&bad).contains("bad magic"));
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&4u32.to_le_bytes());
    assert!(open_err(&bad).contains("unsupported GGUF version 4"));
    // Header cut inside the KV section.
    assert!(open_err(&good[..60]).contains("truncated"));
    // Data section cut: the last tensor is no longer within the file.
    let e = open_err(&good[..good.len() - 40]); // past the 30 bytes of final padding
    assert!(e.contains("t.q8") && e.contains("not within the file"), "{e}");
    // A lying KV count.
    let mut bad = good.clone();
    bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open_err(&bad).contains("exceed"));
    // Unknown ggml type code on the first tensor: find "t.f32" info and patch its type (after dims).
    let pos = good.windows(5).position(|w| w == b"t.f32").unwrap();
    let ty_at = pos + 5 + 4 + 2 * 8;
    let mut bad = good.clone();
    bad[ty_at..ty_at + 4].copy_from_slice(&99u32.to_le_bytes());
    let e = open_err(&bad);
    assert!(e.contains("t.f32") && e.contains("unsupported ggml tensor type 99"), "{e}");
}

/// `sample()` with one more metadata pair (written before the tensors).
fn sample_with_kv(key: &str, v: GgufValue) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = GgufWriter::new(&mut buf);
    w.add_kv(key, v).unwrap();
    w.add_tensor(PlannedTensor { name: "t.f32".into(), ty: GgmlType::F32, ne: vec![3, 2] }).unwrap();
    w.add_tensor(PlannedTensor { name: "t.q8".into(), ty: GgmlType::Q8_0, ne: vec![32, 1] }).unwrap();
    w.write_header().unwrap();
    w.write_tensor_data("t.f32", &[0; 24]).unwrap();
    w.write_tensor_data("t.q8", &[1; 34]).unwrap();
    w.finish().unwrap();
    buf
}

#[test]
fn bad_alignment_offsets_dims_and_tensor_counts_are_refused() {
    // general.alignment must be a non-zero power of two (u32).
    for bad in [GgufValue::U32(0), GgufValue::U32(24), GgufValue::String("32".into())] {
        let e = open_err(&sample_with_kv("general.alignment", bad));
        assert!(e.contains("general.alignment must be a non-zero power-of-two u32"), "{e}");
    }
    let good = sample_with_kv("x", GgufValue::U8(0));
    let pos = good.windows(4).position(|w| w == b"t.q8").unwrap();
    // t.q8's info: name, n_dims (u32), ne[0..2] (u64), type (u32), offset (u64).
    let off_at = pos + 4 + 4 + 2 * 8 + 4;
    let mut bad = good.clone();
    bad[off_at..off_at + 8].copy_from_slice(&33u64.to_le_bytes());
    let e = open_err(&bad);
    assert!(e.contains("t.q8: offset 33 is not aligned to 32"), "{e}");
    let mut bad = good.clone();
    bad[off_at..off_at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    let e = open_err(&bad);
    assert!(e.contains("t.q8") && e.contains("not within the file"), "{e}");
    // A dimension count of 0 or above ggml's 4.
    for dims in [0u32, 5] {
        let mut bad = good.clone();
        bad[pos + 4..pos + 8].copy_from_slice(&dims.to_le_bytes());
        let e = open_err(&bad);
        assert!(e.contains(&format!("t.q8: {dims} dims")), "{e}");
    }
    // A Q8_0 row that is not a whole number of 32-value blocks.
    let mut bad = good.clone();
    bad[pos + 8..pos + 16].copy_from_slice(&31u64.to_le_bytes());
    let e = open_err(&bad);
    assert!(e.contains("t.q8") && e.contains("not a whole number of"), "{e}");
    // A first dimension whose byte size overflows u64 (found by fuzz/ gguf: it used to wrap).
    let mut bad = good.clone();
    bad[pos + 8..pos + 16].copy_from_slice(&(u64::MAX / 32 * 32).to_le_bytes());
    let e = open_err(&bad);
    assert!(e.contains("t.q8") && e.contains("overflows"), "{e}");
    // More tensors announced than the file could hold.
    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(open_err(&bad).contains("exceed"));
    // Two metadata keys with the same name (the second renamed in place to the first).
    let mut buf = Vec::new();
    let mut w = GgufWriter::new(&mut buf);
    w.add_kv("key.a", GgufValue::U8(1)).unwrap();
    w.add_kv("key.b", GgufValue::U8(2)).unwrap();
    w.write_header().unwrap();
    w.finish().unwrap();
    let b = buf.windows(5).position(|w| w == b"key.b").unwrap();
    buf[b + 4] = b'a';
    assert!(open_err(&buf).contains("duplicate key key.a"));
}
