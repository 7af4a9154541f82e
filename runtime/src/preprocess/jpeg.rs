//! JPEG decoding bit-identical to PIL: PIL decodes with libjpeg-turbo (default ISLOW IDCT,
//! "fancy" triangular chroma upsampling). The `mozjpeg` crate builds that same decoder
//! (mozjpeg is a libjpeg-turbo fork; its decoder is libjpeg-turbo's) from source, here
//! without SIMD/nasm, whose output libjpeg-turbo keeps identical to the SIMD paths.
//! Measured: identical to Pillow 13 on the golden JPEG and on 4:2:0 / 4:2:2 / 4:4:4 /
//! progressive / greyscale test files, where `zune-jpeg` differs by up to 4 LSB.
//!
//! CMYK/YCCK JPEGs are left to the caller (the `image` crate path): PIL's CMYK handling
//! (inverted Adobe CMYK, then `cmyk2rgb`) is not reproduced here.

use anyhow::{anyhow, Result};
use image::RgbImage;
use mozjpeg::{ColorSpace, Decompress};

/// Decode a JPEG to RGB like `Image.open(f).convert("RGB")`. `Ok(None)` for CMYK/YCCK
/// files (caller falls back). The caller has already checked the pixel limit.
pub fn decode_jpeg(bytes: &[u8]) -> Result<Option<RgbImage>> {
    // libjpeg errors unwind out of C as Rust panics (no panic hook runs); the crate turns
    // most into `io::Error`, and catch_unwind covers any that escape.
    let run = || -> std::io::Result<Option<RgbImage>> {
        let d = Decompress::new_mem(bytes)?;
        if matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK) {
            return Ok(None);
        }
        let mut started = d.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let data: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        if data.len() != w as usize * h as usize * 3 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "image data ended early"));
        }
        Ok(RgbImage::from_raw(w, h, data))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(img)) => Ok(img),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_jpeg_is_replicated_and_garbage_is_an_error() {
        let grey = image::GrayImage::from_fn(16, 8, |x, _| image::Luma([(x * 16) as u8]));
        let mut buf = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(grey).write_to(&mut buf, image::ImageFormat::Jpeg).unwrap();
        let rgb = decode_jpeg(buf.get_ref()).unwrap().unwrap();
        assert_eq!(rgb.dimensions(), (16, 8));
        assert!(rgb.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));

        let mut bad = buf.into_inner();
        let n = bad.len();
        bad[n / 2..n - 2].fill(0xFF); // markers in the scan data
        bad[20] = 0x00; // and a broken header segment
        let _ = decode_jpeg(&bad); // an error or a damaged picture, never a panic
        assert!(decode_jpeg(b"\xFF\xD8\xFF\xE0 not a jpeg").is_err());
    }
}
