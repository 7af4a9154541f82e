//! `image_url` parts → decoded images, with the server's safety rules.
//!
//! `data:` URLs (base64 PNG/JPEG/WebP/…) are decoded in memory. `file://` paths are served only
//! from under `--allowed-image-dir`: a path with `..` is refused outright, and the canonical
//! path (symlinks resolved) must still lie under the canonical directory, so a symlink cannot
//! lead out of it. `http(s)://` is refused: the runtime is offline by design.
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;

use crate::llm::ImageInput;
use crate::preprocess::decode::decode_image;

/// Largest image the server decodes (pixels); above this a request is refused before decoding.
pub const MAX_PIXELS: u64 = 64 << 20;

/// Whether PDFs (`file` parts, `data:application/pdf` URLs) are accepted: `/props` tells the page.
pub const ACCEPTS_PDF: bool = false;

/// Resolve and decode one image URL. `Err` is a message for a 400 response.
pub fn load(url: &str, allowed_dir: Option<&Path>) -> Result<ImageInput, String> {
    let bytes = if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or("malformed data: URL (no comma)")?;
        if !meta.ends_with(";base64") {
            return Err("data: image URLs must be base64 (data:image/png;base64,...)".into());
        }
        let clean: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean.as_bytes())
            .map_err(|e| format!("invalid base64 in the data: image URL: {e}"))?
    } else if let Some(path) = url.strip_prefix("file://") {
        let p = checked_file(path, allowed_dir)?;
        std::fs::read(&p).map_err(|e| format!("cannot read image {}: {e}", p.display()))?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        return Err("remote image URLs are not supported (this server is offline): send the image as a data: URL".into());
    } else {
        return Err("unsupported image URL: use a data: URL (base64) or a file:// path under --allowed-image-dir".into());
    };
    let rgb = decode_image(&bytes, MAX_PIXELS).map_err(|e| format!("invalid image: {e:#}"))?;
    Ok(ImageInput::Rgb(rgb))
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
