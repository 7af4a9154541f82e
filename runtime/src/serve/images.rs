//! `image_url` and `file` parts → decoded images, with the server's safety rules.
//!
//! `data:` URLs (base64 PNG/JPEG/WebP/…) are decoded in memory. `file://` paths are served only
//! from under `--allowed-image-dir`: a path with `..` is refused outright, and the canonical
//! path (symlinks resolved) must still lie under the canonical directory, so a symlink cannot
//! lead out of it. `http(s)://` is refused: the runtime is offline by design.
//! A PDF (recognised by its `%PDF-` header, whatever the media type says) becomes one image per
//! page, rendered by [`crate::pdf`] under the server's page, pixel and time limits.
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;

use crate::llm::ImageInput;
use crate::pdf::{is_pdf, render_pages, PdfOptions};
use crate::preprocess::decode::decode_image;

/// Largest image the server decodes (pixels); above this a request is refused before decoding.
pub const MAX_PIXELS: u64 = 64 << 20;

/// The bytes behind an image URL (`data:` base64 or an allowed `file://` path).
fn url_bytes(url: &str, allowed_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or("malformed data: URL (no comma)")?;
        if !meta.ends_with(";base64") {
            return Err("data: image URLs must be base64 (data:image/png;base64,...)".into());
        }
        decode_base64(data, "the data: URL")
    } else if let Some(path) = url.strip_prefix("file://") {
        let p = checked_file(path, allowed_dir)?;
        std::fs::read(&p).map_err(|e| format!("cannot read image {}: {e}", p.display()))
    } else if url.starts_with("http://") || url.starts_with("https://") {
        Err("remote image URLs are not supported (this server is offline): send the image as a data: URL".into())
    } else {
        Err("unsupported image URL: use a data: URL (base64) or a file:// path under --allowed-image-dir".into())
    }
}

fn decode_base64(data: &str, what: &str) -> Result<Vec<u8>, String> {
    let clean: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean.as_bytes()).map_err(|e| format!("invalid base64 in {what}: {e}"))
}

/// Bytes → images: a PDF's pages, or one decoded image.
fn decode_any(bytes: &[u8], pdf: &PdfOptions) -> Result<Vec<ImageInput>, String> {
    if is_pdf(bytes) {
        let pages = render_pages(bytes, pdf).map_err(|e| format!("invalid PDF: {e}"))?;
        return Ok(pages.into_iter().map(|p| ImageInput::Rgb(p.image)).collect());
    }
    let rgb = decode_image(bytes, MAX_PIXELS).map_err(|e| format!("invalid image: {e:#}"))?;
    Ok(vec![ImageInput::Rgb(rgb)])
}

/// Resolve and decode one image URL (an image only). `Err` is a message for a 400 response.
pub fn load(url: &str, allowed_dir: Option<&Path>) -> Result<ImageInput, String> {
    let bytes = url_bytes(url, allowed_dir)?;
    let rgb = decode_image(&bytes, MAX_PIXELS).map_err(|e| format!("invalid image: {e:#}"))?;
    Ok(ImageInput::Rgb(rgb))
}

/// Resolve one `image_url`: an image, or a PDF's pages.
pub fn load_images(url: &str, allowed_dir: Option<&Path>, pdf: &PdfOptions) -> Result<Vec<ImageInput>, String> {
    decode_any(&url_bytes(url, allowed_dir)?, pdf)
}

/// OpenAI's `file` part: `file_data` is a `data:application/pdf;base64,…` URL or bare base64.
/// Uploaded-file ids (`file_id`) need the Files API, which this server does not have.
pub fn load_file_part(file_data: Option<&str>, file_id: Option<&str>, pdf: &PdfOptions) -> Result<Vec<ImageInput>, String> {
    let Some(data) = file_data else {
        return Err(match file_id {
            Some(_) => "file parts with a file_id are not supported (no Files API): send the file as file_data (data:application/pdf;base64,...)".into(),
            None => "a file part needs file_data (data:application/pdf;base64,...)".into(),
        });
    };
    let bytes = match data.strip_prefix("data:") {
        Some(rest) => {
            let (meta, b64) = rest.split_once(',').ok_or("malformed data: URL in file_data (no comma)")?;
            if !meta.ends_with(";base64") {
                return Err("file_data data: URLs must be base64 (data:application/pdf;base64,...)".into());
            }
            decode_base64(b64, "file_data")?
        }
        None => decode_base64(data, "file_data")?,
    };
    decode_any(&bytes, pdf)
}

/// The canonical path of `path` if it lies under `allowed_dir`.
pub fn checked_file(path: &str, allowed_dir: Option<&Path>) -> Result<PathBuf, String> {
    let dir = allowed_dir.ok_or("file:// image URLs are disabled (start the server with --allowed-image-dir DIR)")?;
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("file:// image path {path:?} must be absolute"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!("file:// image path {path:?} contains '..'"));
    }
    let dir = dir.canonicalize().map_err(|e| format!("--allowed-image-dir {}: {e}", dir.display()))?;
    let real = p.canonicalize().map_err(|e| format!("cannot open image {path:?}: {e}"))?;
    if !real.starts_with(&dir) {
        return Err(format!("file:// image path {path:?} is outside --allowed-image-dir"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_remote_relative_dotdot_and_symlink_escapes() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(root.path().join("secret.png"), b"x").unwrap();
        std::fs::write(allowed.join("ok.png"), b"x").unwrap();
        assert!(load("https://example.com/a.png", Some(&allowed)).unwrap_err().contains("offline"));
        assert!(checked_file("/etc/passwd", None).unwrap_err().contains("disabled"));
        assert!(checked_file("ok.png", Some(&allowed)).unwrap_err().contains("absolute"));
        let dotdot = format!("{}/../secret.png", allowed.display());
        assert!(checked_file(&dotdot, Some(&allowed)).unwrap_err().contains(".."));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("secret.png"), allowed.join("link.png")).unwrap();
            let link = format!("{}/link.png", allowed.display());
            assert!(checked_file(&link, Some(&allowed)).unwrap_err().contains("outside"));
        }
        let ok = format!("{}/ok.png", allowed.display());
        assert!(checked_file(&ok, Some(&allowed)).is_ok());
        // Readable but not an image: a 400 message, not a panic.
        assert!(load(&format!("file://{ok}"), Some(&allowed)).unwrap_err().contains("invalid image"));
        assert!(load("data:image/png;base64,@@@", None).unwrap_err().contains("base64"));
    }
}
