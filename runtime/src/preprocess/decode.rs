//! Image decoding with PIL `Image.open(f).convert("RGB")` semantics.
//!
//! - The header is read first and `width·height` is checked against a pixel limit
//!   *before* any pixel buffer is allocated (PIL refuses above 2·`MAX_IMAGE_PIXELS`
//!   = 178 956 970 with `DecompressionBombError`; that is our default limit).
//! - Mode conversion as Pillow's `convert("RGB")`: grey is replicated, alpha is simply
//!   dropped (no compositing onto a background), palette images come out as their
//!   palette colours. 16-bit data: Pillow opens 16-bit RGB(A)/LA PNGs through the
//!   `;16B` unpackers, which keep the **high byte**, and 16-bit greyscale as `I;16`,
//!   whose conversion to RGB **clips** at 255 (`I16_RGB`). We do the same.
//! - Multi-frame GIF/TIFF/WebP: the first frame, as `Image.open` shows it.
//! - EXIF orientation is **not** applied: the reference (`Image.open` + `convert`) does
//!   not call `ImageOps.exif_transpose`, so a rotated phone photo is tiled as stored.
//!
//! JPEGs go through libjpeg-turbo's decoder ([`super::jpeg`]), bit-identical to PIL.
//! Other formats use the `image` crate's decoders. Checked identical to Pillow 13's
//! `convert("RGB")` (opt-in test `pil_decode_crosscheck_if_available`) on RGBA/L/LA/P
//! (with and without tRNS)/1-bit/16-bit-grey PNG, GIF (with transparency), BMP, TIFF,
//! lossless and lossy WebP, and 4:2:0/4:2:2/4:4:4/progressive/grey/CMYK JPEG. Not
//! checked: animated files beyond frame 0's own rectangle, exotic TIFF layouts.

use std::io::Cursor;
use std::path::Path;

use anyhow::{bail, Context, Result};
use image::{DynamicImage, ImageFormat, ImageReader, Limits, RgbImage};

/// Pillow's decompression-bomb error threshold (2 × `Image.MAX_IMAGE_PIXELS`).
pub const PIL_MAX_PIXELS: u64 = 178_956_970;

/// Read and decode an image file to RGB (see the module docs for the semantics).
pub fn load_image(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
    decode_image(&bytes, max_pixels).with_context(|| format!("cannot load image {}", path.display()))
}

/// Width and height of an in-memory image from its header (what [`decode_image`] would give:
/// no EXIF rotation), refusing images over `max_pixels` as it does.
pub fn image_dims(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32)> {
    let r = ImageReader::new(Cursor::new(bytes)).with_guessed_format().context("cannot read image header")?;
    let (w, h) = match r.format() {
        Some(ImageFormat::Jpeg) => super::jpeg::jpeg_dimensions(bytes).context("corrupt or truncated JPEG header")?,
        Some(_) => r.into_dimensions().context("corrupt or truncated image header")?,
        None => return decode_image(bytes, max_pixels).map(|i| i.dimensions()),
    };
    check_size(w, h, max_pixels)?;
    Ok((w, h))
}

/// Decode an in-memory image to RGB, refusing images over `max_pixels` before decoding.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    if bytes.is_empty() {
        bail!("image file is empty (0 bytes)");
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>> {
        let r = ImageReader::new(Cursor::new(bytes)).with_guessed_format().context("cannot read image header")?;
        if r.format().is_none() {
            if crate::pdf::is_pdf(bytes) {
                bail!("this is a PDF, not an image (h2ovl run/chat/batch/serve render PDF pages; in the library see h2ovl_runtime::pdf)");
            }
            bail!("unrecognised image format (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)");
        }
        Ok(r)
    };
    let format = reader()?.format();
    if format == Some(ImageFormat::Jpeg) {
        let (w, h) = super::jpeg::jpeg_dimensions(bytes).context("corrupt or truncated JPEG header")?;
        check_size(w, h, max_pixels)?;
        if !jpeg_has_end_marker(bytes) {
            // libjpeg pads missing data with grey and only warns; PIL raises "image file is truncated".
            bail!("corrupt or truncated JPEG image ({w}x{h}): no end-of-image marker after the scan data");
        }
        return super::jpeg::decode_jpeg(bytes).with_context(|| format!("corrupt or truncated JPEG image ({w}x{h})"));
    }
    let (w, h) = reader()?.into_dimensions().context("corrupt or truncated image header")?;
    check_size(w, h, max_pixels)?;

    let mut r = reader()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    // Room for the largest decoded form (RGBA 16-bit = 8 bytes/pixel) plus decoder state.
    limits.max_alloc = Some((w as u64 * h as u64).saturating_mul(8).saturating_add(64 << 20));
    r.limits(limits);
    let img = r.decode().with_context(|| {
        format!("corrupt or truncated {} image ({w}x{h})", format.map(|f| format!("{f:?}")).unwrap_or_default())
    })?;
    Ok(to_rgb_like_pil(img))
}

/// True when a JPEG has an EOI marker (FF D9) after its first scan. Segments before the
/// first SOS are skipped by their lengths (an EXIF thumbnail there has its own EOI); inside
/// entropy-coded data a literal FF is always stuffed as FF 00, so FF D9 there is the EOI.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return false;
    }
    let mut pos = 2;
    loop {
        // Skip to the next marker (0xFF fill bytes allowed).
        while pos < bytes.len() && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else { return false };
        pos += 1;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => continue, // markers without a length
            _ => {}
        }
        let Some(len) = bytes.get(pos..pos + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
            return false;
        };
        pos += len;
        if marker == 0xDA {
            let scan = bytes.get(pos..).unwrap_or(&[]);
            return scan.windows(2).any(|w| w == [0xFF, 0xD9]);
        }
    }
}

/// One clear error for empty or oversized images (checked on header dimensions).
pub fn check_size(w: u32, h: u32, max_pixels: u64) -> Result<()> {
    if w == 0 || h == 0 {
        bail!("image has zero size ({w}x{h})");
    }
    let pixels = w as u64 * h as u64;
    if pixels > max_pixels {
        bail!("image is {w}x{h} = {pixels} pixels, over the limit of {max_pixels} pixels (refused before decoding)");
    }
    Ok(())
}

/// Pillow `convert("RGB")` applied to what `Image.open` would have produced.
pub fn to_rgb_like_pil(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_fn = |f: &dyn Fn(u32, u32) -> [u8; 3]| RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageRgba8(i) => from_fn(&|x, y| {
            let p = i.get_pixel(x, y).0;
            [p[0], p[1], p[2]]
        }),
        DynamicImage::ImageLuma8(i) => from_fn(&|x, y| [i.get_pixel(x, y).0[0]; 3]),
        DynamicImage::ImageLumaA8(i) => from_fn(&|x, y| [i.get_pixel(x, y).0[0]; 3]),
        // "I;16" -> RGB clips (Pillow's I16_RGB).
        DynamicImage::ImageLuma16(i) => from_fn(&|x, y| [i.get_pixel(x, y).0[0].min(255) as u8; 3]),
        // "LA;16B" unpacks the high byte.
        DynamicImage::ImageLumaA16(i) => from_fn(&|x, y| [(i.get_pixel(x, y).0[0] >> 8) as u8; 3]),
        DynamicImage::ImageRgb16(i) => from_fn(&|x, y| i.get_pixel(x, y).0.map(|v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(i) => from_fn(&|x, y| {
            let p = i.get_pixel(x, y).0;
            [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8]
        }),
        // Float images (not produced by the enabled decoders): the crate's own conversion.
        other => other.to_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};

    fn encode(img: DynamicImage, fmt: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, fmt).unwrap();
        out.into_inner()
    }

    #[test]
    fn rgba_drops_alpha_without_compositing() {
        let img = ImageBuffer::from_fn(3, 2, |x, y| Rgba([x as u8 * 50, y as u8 * 90, 7, (x * 100) as u8]));
        let rgb = decode_image(&encode(img.into(), ImageFormat::Png), PIL_MAX_PIXELS).unwrap();
        assert_eq!(rgb.get_pixel(0, 1).0, [0, 90, 7]); // alpha 0 keeps its colour
        assert_eq!(rgb.get_pixel(2, 0).0, [100, 0, 7]);
    }

    #[test]
    fn grey_and_grey_alpha_are_replicated() {
        let l = ImageBuffer::from_fn(2, 2, |x, y| Luma([(x * 10 + y * 100) as u8]));
        let rgb = decode_image(&encode(l.into(), ImageFormat::Png), PIL_MAX_PIXELS).unwrap();
        assert_eq!(rgb.get_pixel(1, 1).0, [110; 3]);
        let la = ImageBuffer::from_fn(2, 1, |x, _| LumaA([(x * 33) as u8, 0]));
        let rgb = decode_image(&encode(la.into(), ImageFormat::Png), PIL_MAX_PIXELS).unwrap();
        assert_eq!(rgb.get_pixel(1, 0).0, [33; 3]);
    }

    #[test]
    fn sixteen_bit_follows_pillow_unpackers() {
        let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_pixel(1, 1, Rgb([0x12ff, 0xff00, 0x0080]));
        let rgb = decode_image(&encode(rgb16.into(), ImageFormat::Png), PIL_MAX_PIXELS).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [0x12, 0xff, 0x00]);
        let l16: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(2, 1, |x, _| Luma([[200u16, 4000][x as usize]]));
        let rgb = decode_image(&encode(l16.into(), ImageFormat::Png), PIL_MAX_PIXELS).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [200; 3]);
        assert_eq!(rgb.get_pixel(1, 0).0, [255; 3]);
    }

    #[test]
    fn bad_input_gives_errors_not_panics() {
        assert!(decode_image(&[], PIL_MAX_PIXELS).unwrap_err().to_string().contains("empty"));
        let junk = decode_image(b"definitely not an image", PIL_MAX_PIXELS).unwrap_err();
        assert!(format!("{junk:#}").contains("unrecognised image format"), "{junk:#}");
        let png = encode(RgbImage::from_pixel(64, 64, Rgb([1, 2, 3])).into(), ImageFormat::Png);
        let err = decode_image(&png[..png.len() / 2], PIL_MAX_PIXELS).unwrap_err();
        assert!(format!("{err:#}").contains("corrupt or truncated"), "{err:#}");
        let jpg = encode(RgbImage::from_fn(64, 64, |x, y| Rgb([x as u8 * 4, y as u8 * 4, 9])).into(), ImageFormat::Jpeg);
        assert!(decode_image(&jpg, PIL_MAX_PIXELS).is_ok());
        let err = decode_image(&jpg[..jpg.len() - 2], PIL_MAX_PIXELS).unwrap_err();
        assert!(format!("{err:#}").contains("truncated JPEG"), "{err:#}");
        let err = decode_image(&png, 64 * 63).unwrap_err();
        assert!(format!("{err:#}").contains("over the limit"), "{err:#}");
    }
}
