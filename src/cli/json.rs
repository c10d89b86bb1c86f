//! `--json` output: with the global `--json` flag every command prints exactly one JSON
//! document on stdout, a [`Report`]: `schema_version` (this module's constant),
//! `command`, then the command's own typed fields (a `serde` struct per command).
//! Everything a command would otherwise print for people goes to stderr then
//! ([`say!`](crate::say)), so stdout stays parseable.

use std::sync::atomic::{AtomicBool, Ordering};

use fmpe::error::{Error, Result};
use serde::Serialize;

/// Version of the `--json` reports' layout; raised when a field changes meaning or is
/// removed (adding a field keeps it).
pub(crate) const SCHEMA_VERSION: u32 = 1;

static JSON: AtomicBool = AtomicBool::new(false);

/// Turns JSON output on (the global `--json` flag).
pub(crate) fn enable(on: bool) {
    JSON.store(on, Ordering::SeqCst);
}

/// Whether `--json` was given.
pub(crate) fn enabled() -> bool {
    JSON.load(Ordering::SeqCst)
}

/// One command's JSON document.
#[derive(Serialize, Debug)]
pub(crate) struct Report<T: Serialize> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The subcommand ("train", "sample", ...).
    pub command: &'static str,
    /// The command's own fields.
    #[serde(flatten)]
    pub body: T,
}

/// With `--json`, prints `body` as the [`Report`] of `command` (one pretty-printed
/// document on stdout); without it, nothing.
///
/// # Errors
/// [`Error::Invalid`] if it cannot be serialised.
pub(crate) fn emit<T: Serialize>(command: &'static str, body: T) -> Result<()> {
    if !enabled() {
        return Ok(());
    }
    let rep = Report { schema_version: SCHEMA_VERSION, command, body };
    let text = serde_json::to_string_pretty(&rep).map_err(|e| Error::invalid(format!("cannot write the JSON report: {e}")))?;
    println!("{text}");
    Ok(())
}

/// The report of a command that writes its results as a JSON file too (`run`'s
/// summary.json, `evaluate`'s results.json): the output directory and that file's
/// contents.
#[derive(Serialize, Debug)]
pub(crate) struct FileReport {
    /// The output directory written.
    pub out: std::path::PathBuf,
    /// The results file's contents (documented with the command).
    pub results: serde_json::Value,
}

impl FileReport {
    /// Reads `dir/name` back (only with `--json`; an empty report otherwise).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Data`] naming the file.
    pub(crate) fn read(dir: &std::path::Path, name: &str) -> Result<FileReport> {
        let path = dir.join(name);
        if !enabled() {
            return Ok(FileReport { out: dir.to_path_buf(), results: serde_json::Value::Null });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let results = serde_json::from_str(&text).map_err(|e| Error::data(&path, Some(e.line()), Some(e.column()), e.to_string()))?;
        Ok(FileReport { out: dir.to_path_buf(), results })
    }
}

/// `println!` for people: stdout normally, stderr under `--json`.
#[macro_export]
macro_rules! say {
    () => { $crate::say!("") };
    ($($t:tt)*) => {
        if $crate::cli::json_enabled() { eprintln!($($t)*) } else { println!($($t)*) }
    };
}
