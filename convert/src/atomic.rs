//! Atomic output files: data goes to `<name>.partial` in the destination folder and is renamed into
//! place only once complete; dropping an uncommitted file removes the temp, so a failed conversion
//! never leaves a truncated GGUF behind.
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct PartialFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<BufWriter<File>>,
}

impl PartialFile {
    pub fn create(dest: &Path) -> Result<Self> {
        let mut name = dest.file_name().context("output path has no file name")?.to_os_string();
        name.push(".partial");
        let tmp = dest.with_file_name(name);
        let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Self { tmp, dest: dest.to_path_buf(), file: Some(BufWriter::with_capacity(1 << 20, f)) })
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.file.as_mut().expect("not yet committed")
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes, syncs and renames the temp file onto the destination.
    pub fn commit(mut self) -> Result<PathBuf> {
        let mut w = self.file.take().expect("not yet committed");
        w.flush().with_context(|| format!("writing {}", self.tmp.display()))?;
        let f = w.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", self.tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", self.tmp.display()))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("renaming {} to {}", self.tmp.display(), self.dest.display()))?;
        Ok(self.dest.clone())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
