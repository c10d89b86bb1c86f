//! `--json` output: one JSON document on stdout per command, built from a typed
//! `serde` report struct whose first field is `schema_version` (this constant) and
//! second `command`. Human-readable messages go to stderr.

use fmpe::error::{Error, Result};
use serde::Serialize;

/// Version of every `--json` report's layout; raised when a field changes meaning or
/// is removed (adding a field keeps it).
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Prints `report` as one pretty-printed JSON document on stdout.
///
/// # Errors
/// [`Error::Invalid`] if it cannot be serialised.
pub(crate) fn print<T: Serialize>(report: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|e| Error::invalid(format!("cannot write the JSON report: {e}")))?;
    println!("{text}");
    Ok(())
}
