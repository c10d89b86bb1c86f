//! Atomic writes: every file and directory fmpe writes appears complete or not at all.
//!
//! A file is written to a temporary sibling (in the target's own directory, so the final
//! rename never crosses file systems), flushed, synced to disk and renamed onto the
//! target. A directory is filled as a temporary sibling directory and renamed into place.
//! Temporary names come from the [`tempfile`] crate (`.{name}.tmp-XXXXXX`, random per
//! call), so two writers of the same target (threads of one process, or processes) never
//! share a temporary, and a temporary left behind by a killed process is never reused.
//! On an error (or a panic in the caller's closure) the temporary is removed and the
//! target is left as it was.
//!
//! Files get the permissions [`std::fs::File::create`] would give them (`0o666` less the
//! umask on Unix) and directories those of [`std::fs::create_dir`] (`0o777` less the
//! umask), not `tempfile`'s private `0o600` / `0o700`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directory that holds `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The temporary-name prefix for a sibling of `path`: `.{name}.{what}-` (hidden on Unix).
fn prefix(path: &Path, what: &str) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    format!(".{name}.{what}-")
}

/// A `tempfile` builder for names `{prefix}XXXXXX{suffix}`, with the permissions a plain
/// `create` with `mode` would give (Unix; the umask applies).
fn builder<'a>(prefix: &'a str, suffix: &'a str, mode: u32) -> tempfile::Builder<'a, 'a> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    b
}

/// Writes the file `path` atomically: `f` writes into a buffered temporary file beside
/// `path` (unique name per call), which is then flushed, synced and renamed onto `path`
/// (replacing an existing file).
///
/// The directory of `path` must exist. The temporary file is removed on any error.
///
/// # Errors
/// [`Error::Io`] naming `path` if the temporary file cannot be created, `f` fails, or the
/// sync or rename fails.
pub fn write_file_atomic(path: &Path, f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    let pre = prefix(path, "tmp");
    let tmp = builder(&pre, "", 0o666).tempfile_in(parent_dir(path)).map_err(|e| Error::io(path, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let written = (|| -> std::io::Result<()> {
        let mut w = BufWriter::new(file);
        f(&mut w)?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    // On error `tmp_path` is dropped here, which removes the temporary file.
    written.map_err(|e| Error::io(path, e))?;
    tmp_path.persist(path).map_err(|e| Error::io(path, e.error))
}

/// Writes the file `path` atomically through a writer that needs a path of its own (an
/// image encoder, say): `f(tmp)` creates or overwrites the file `tmp`, a fresh temporary
/// beside `path` with the same extension (encoders pick the format by extension), which
/// is then synced and renamed onto `path`.
///
/// The directory of `path` must exist. The temporary file is removed on any error.
///
/// # Errors
/// Whatever `f` returns; [`Error::Io`] naming `path` if the temporary file cannot be
/// created, synced or renamed.
pub fn write_file_atomic_with_path(path: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let suffix = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let pre = prefix(path, "tmp");
    let tmp = builder(&pre, &suffix, 0o666).tempfile_in(parent_dir(path)).map_err(|e| Error::io(path, e))?;
    // Close our handle: `f` opens the path itself. The file is still removed on drop.
    let tmp_path = tmp.into_temp_path();
    f(&tmp_path)?;
    File::open(&tmp_path).and_then(|file| file.sync_all()).map_err(|e| Error::io(path, e))?;
    tmp_path.persist(path).map_err(|e| Error::io(path, e.error))
}

/// A directory being written: a temporary sibling of its destination (unique name per
/// call, `.{name}.tmp-XXXXXX`), filled through [`StagedDir::path`] and renamed into place
/// by [`StagedDir::commit`]. Dropped without a commit, it is removed with its contents.
#[derive(Debug)]
pub struct StagedDir {
    tmp: tempfile::TempDir,
    dest: PathBuf,
}

impl StagedDir {
    /// Creates the temporary directory for `dest`, creating `dest`'s parent directories
    /// if needed. Whether an existing `dest` may be replaced is the caller's decision,
    /// checked before (see [`StagedDir::commit`]).
    ///
    /// # Errors
    /// [`Error::Io`] if the parent or the temporary directory cannot be created.
    pub fn new(dest: &Path) -> Result<StagedDir> {
        let parent = parent_dir(dest);
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let pre = prefix(dest, "tmp");
        let tmp = builder(&pre, "", 0o777).tempdir_in(parent).map_err(|e| Error::io(dest, e))?;
        Ok(StagedDir { tmp, dest: dest.to_path_buf() })
    }

    /// The temporary directory to fill.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The destination the directory is renamed to on [`StagedDir::commit`].
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Renames the temporary directory onto its destination. An existing destination
    /// directory (empty, or a previous output the caller has agreed to replace) is first
    /// moved aside into a second temporary sibling, then removed once the new directory is
    /// in place; if the final rename fails it is moved back, so `dest` is never lost.
    ///
    /// # Errors
    /// [`Error::Io`] naming `dest` if a rename fails (the temporary directory is then
    /// removed and `dest` is as it was; should even putting the previous directory back
    /// fail, it is kept, never deleted, and the message names where), or naming the old directory if it cannot be
    /// removed after the swap (the new `dest` is in place by then).
    pub fn commit(self) -> Result<()> {
        let StagedDir { tmp, dest } = self;
        if !dest.is_dir() {
            // Not there yet (or a file: the rename then fails and reports it).
            std::fs::rename(tmp.path(), &dest).map_err(|e| Error::io(&dest, e))?;
            let _ = tmp.keep();
            return Ok(());
        }
        let parent = parent_dir(&dest);
        let pre = prefix(&dest, "old");
        let old_holder = builder(&pre, "", 0o700).tempdir_in(parent).map_err(|e| Error::io(&dest, e))?;
        let old = old_holder.path().join("old");
        std::fs::rename(&dest, &old).map_err(|e| Error::io(&dest, e))?;
        if let Err(e) = std::fs::rename(tmp.path(), &dest) {
            // Put the previous directory back; if even that fails, keep it where it is
            // (never delete the previous output) and say where.
            if let Err(back) = std::fs::rename(&old, &dest) {
                let kept = old_holder.keep();
                return Err(Error::io(
                    &dest,
                    std::io::Error::new(
                        e.kind(),
                        format!("{e}; the previous directory could not be put back ({back}) and is kept at {}", kept.join("old").display()),
                    ),
                ));
            }
            return Err(Error::io(&dest, e));
        }
        let _ = tmp.keep();
        let old_path = old_holder.path().to_path_buf();
        old_holder.close().map_err(|e| Error::io(&old_path, e))
    }
}

/// Writes the directory `dest` atomically: `f(tmp)` fills a fresh temporary sibling
/// directory, which [`StagedDir::commit`] then renames onto `dest` (replacing an existing
/// directory there; check first whether it may be replaced).
///
/// # Errors
/// Whatever `f` returns (the temporary directory is removed and `dest` left as it was);
/// [`Error::Io`] as for [`StagedDir::new`] and [`StagedDir::commit`].
pub fn write_dir_atomic(dest: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let staged = StagedDir::new(dest)?;
    f(staged.path())?;
    staged.commit()
}
