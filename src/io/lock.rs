//! [`OutputLock`]: one fmpe run at a time per output path.
//!
//! A run that writes `dest` first creates the lock file `.{name}.fmpe-lock` beside it
//! (exclusively, holding its process id); a second run into the same `dest` is refused
//! with an error naming the lock file and the first run's process id. The lock goes
//! when the run ends (dropped); a lock left by a process that no longer exists (a
//! crash, `kill -9`) is taken over where that can be checked (Linux: `/proc/PID`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A held lock on an output path; released (the lock file removed) when dropped.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
}

impl OutputLock {
    /// The lock file of `dest`: `.{file name}.fmpe-lock` in `dest`'s directory.
    pub fn path_for(dest: &Path) -> PathBuf {
        let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        parent.join(format!(".{name}.fmpe-lock"))
    }

    /// Takes the lock of `dest` for this process (creating `dest`'s parent directory if
    /// needed).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the lock file and the holder's process id when another
    /// live process holds it; [`Error::Io`] naming the lock file on file-system errors.
    pub fn acquire(dest: &Path) -> Result<OutputLock> {
        let path = OutputLock::path_for(dest);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
                    return Ok(OutputLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if !is_gone(pid) => {
                            return Err(Error::invalid(format!(
                                "{} is being written by another fmpe run (process {pid}, lock {}); wait for it to \
                                 finish, or choose another output",
                                dest.display(),
                                path.display()
                            )))
                        }
                        // A stale lock (its process is gone) or one being written: take it
                        // over once.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::invalid(format!("cannot take the lock {} of {}", path.display(), dest.display())))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` certainly no longer exists (Linux: no `/proc/PID`; elsewhere
/// never certain, so the lock is kept).
fn is_gone(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    proc_dir.join("self").exists() && !proc_dir.join(pid.to_string()).exists()
}
