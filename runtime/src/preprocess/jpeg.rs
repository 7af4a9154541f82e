//! JPEG decoding bit-identical to PIL: PIL decodes with libjpeg-turbo (default ISLOW IDCT,
//! "fancy" triangular chroma upsampling). The `mozjpeg` crate builds that same decoder
//! (mozjpeg is a libjpeg-turbo fork; its decoder is libjpeg-turbo's) from source, here
//! without SIMD/nasm, whose output libjpeg-turbo keeps identical to the SIMD paths.
//! Measured: identical to Pillow 13 on the golden JPEG and on 4:2:0 / 4:2:2 / 4:4:4 /
//! progressive / greyscale test files, where `zune-jpeg` differs by up to 4 LSB.
//!
//! CMYK/YCCK JPEGs follow PIL too: libjpeg output in CMYK, every byte inverted (PIL's
//! `CMYK;I` rawmode, "assume adobe conventions", applied to every 4-channel JPEG), then
//! Pillow's `cmyk2rgb`: `nk = 255 − K; R = clip8(nk − muldiv255(C, nk))` etc.

use anyhow::{anyhow, Result};
use image::RgbImage;
use mozjpeg::{ColorSpace, Decompress};

/// Image size from the JPEG header, read by libjpeg itself (so files libjpeg and PIL accept
/// are not refused by a stricter header parser). Allocates nothing image-sized.
pub fn jpeg_dimensions(bytes: &[u8]) -> Result<(u32, u32)> {
    libjpeg(|| {
        let d = Decompress::new_mem(bytes)?;
        Ok((d.width() as u32, d.height() as u32))
    })
}

/// Decode a JPEG to RGB like `Image.open(f).convert("RGB")`. The caller has already
/// checked the pixel limit on [`jpeg_dimensions`].
pub fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage> {
    libjpeg(|| {
        let d = Decompress::new_mem(bytes)?;
        let cmyk = matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
        let mut started = if cmyk { d.to_colorspace(ColorSpace::JCS_CMYK)? } else { d.rgb()? };
        let (w, h) = (started.width() as u32, started.height() as u32);
        let data: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        let channels = if cmyk { 4 } else { 3 };
        if data.len() != w as usize * h as usize * channels {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "image data ended early"));
        }
        let rgb = if cmyk { data.chunks_exact(4).flat_map(inverted_cmyk_to_rgb).collect() } else { data };
        RgbImage::from_raw(w, h, rgb).ok_or_else(|| std::io::Error::other("buffer size"))
    })
}

/// Run libjpeg work and turn its failures into errors. libjpeg fatal errors unwind out of
/// C as Rust panics (raised with `resume_unwind`, so no panic message is printed); the
/// crate turns most into `io::Error`, and `catch_unwind` covers any that escape.
fn libjpeg<T>(f: impl FnOnce() -> std::io::Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("libjpeg: {e}")),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            Err(anyhow!("{msg}"))
        }
    }
}

/// PIL: unpack `CMYK;I` (invert), then `cmyk2rgb` with its rounded `MULDIV255`.
fn inverted_cmyk_to_rgb(raw: &[u8]) -> [u8; 3] {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let [c, m, y, k] = [0, 1, 2, 3].map(|i| 255 - raw[i] as i32);
    let nk = 255 - k;
    [c, m, y].map(|v| (nk - muldiv255(v, nk)).clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inverted storage: raw 255 = no ink. No ink is white, full K is black, full C is cyan.
    #[test]
    fn cmyk_conversion_follows_pillow() {
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
        assert_eq!(inverted_cmyk_to_rgb(&[0, 255, 255, 255]), [0, 255, 255]);
        // 50% K and 50% C: nk = 128, R = 128 - round(127·128/255) = 64
        assert_eq!(inverted_cmyk_to_rgb(&[128, 255, 255, 128]), [64, 128, 128]);
    }

    /// A real 4-channel (CMYK) JPEG file through the full decode path: accepted, converted as PIL does.
    #[test]
    fn cmyk_jpeg_file_decodes_through_the_inverted_conversion() {
        let (w, h) = (16usize, 8usize);
        let raw: Vec<u8> = (0..w * h).flat_map(|i| [200, 60 + (i % 4) as u8, 255, 128]).collect();
        let mut c = mozjpeg::Compress::new(ColorSpace::JCS_CMYK);
        c.set_size(w, h);
        c.set_quality(100.0);
        let mut started = c.start_compress(Vec::new()).unwrap();
        started.write_scanlines(&raw).unwrap();
        let file = started.finish().unwrap();
        let rgb = crate::preprocess::decode::decode_image(&file, crate::preprocess::PIL_MAX_PIXELS).unwrap();
        assert_eq!(rgb.dimensions(), (w as u32, h as u32));
        for (p, want) in rgb.pixels().zip(raw.chunks_exact(4).map(inverted_cmyk_to_rgb)) {
            // Lossy coding moves the stored bytes by a little; the conversion is what is checked.
            assert!(p.0.iter().zip(want).all(|(a, b)| (*a as i32 - b as i32).abs() <= 4), "{:?} vs {want:?}", p.0);
        }
    }

    #[test]
    fn grey_jpeg_is_replicated_and_garbage_is_an_error() {
        let grey = image::GrayImage::from_fn(16, 8, |x, _| image::Luma([(x * 16) as u8]));
        let mut buf = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(grey).write_to(&mut buf, image::ImageFormat::Jpeg).unwrap();
        let rgb = decode_jpeg(buf.get_ref()).unwrap();
        assert_eq!(jpeg_dimensions(buf.get_ref()).unwrap(), (16, 8));
        assert_eq!(rgb.dimensions(), (16, 8));
        assert!(rgb.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));

        let mut bad = buf.into_inner();
        let n = bad.len();
        bad[n / 2..n - 2].fill(0xFF); // markers in the scan data
        bad[20] = 0x00; // and a broken header segment
        let _ = decode_jpeg(&bad); // an error or a damaged picture, never a panic
        assert!(decode_jpeg(b"\xFF\xD8\xFF\xE0 not a jpeg").is_err());
        assert!(jpeg_dimensions(b"\xFF\xD8\xFF\xE0 not a jpeg").is_err());
    }
}
