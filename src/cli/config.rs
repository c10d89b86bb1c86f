//! `--config FILE`: a TOML file of flag values, turned into command-line arguments
//! before clap parses them, so that every flag of every command can come from a file
//! and flags given on the command line override it (clap keeps the last occurrence).
//!
//! Keys are flag names (`learning_rate` or `learning-rate`); values are strings,
//! numbers, booleans (`true` passes a switch such as `no_transform`, `false` omits it)
//! or arrays (joined with commas: `prior_low = [-1, -1]`). Top-level keys apply to the
//! command; a table named after the command (`[train]`, `[sample]`) applies too; other
//! tables are ignored, so one file can serve several commands. `fmpe train --resume
//! DIR` reads `DIR/config.toml` unless `--config` is given.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use fmpe::error::{Error, Result};

/// `args` (the process arguments, program name first) with the flags of a `--config`
/// file (or, for `train --resume DIR` without `--config`, of `DIR/config.toml`)
/// inserted right after the subcommand, before the flags given on the command line.
/// Arguments without either come back unchanged.
///
/// # Errors
/// [`Error::Io`] / [`Error::Data`] naming the file when it cannot be read or is not
/// valid TOML, or holds a value that is no flag value (a date, a nested array).
pub fn expand_args(args: Vec<OsString>) -> Result<Vec<OsString>> {
    let Some(sub_at) = args.iter().skip(1).position(|a| !a.to_string_lossy().starts_with('-')).map(|i| i + 1) else {
        return Ok(args);
    };
    let command = args[sub_at].to_string_lossy().to_string();
    let file = match value_of(&args, "--config") {
        Some(f) => Some(f),
        None if command == "train" => value_of(&args, "--resume").map(|d| d.join("config.toml")),
        None => None,
    };
    let Some(file) = file else { return Ok(args) };
    let flags = flags_from_file(&file, &command)?;
    let mut out = args[..=sub_at].to_vec();
    out.extend(flags);
    out.extend_from_slice(&args[sub_at + 1..]);
    Ok(out)
}

/// The value of `--name VALUE` or `--name=VALUE` in `args`, if present.
fn value_of(args: &[OsString], name: &str) -> Option<PathBuf> {
    let eq = format!("{name}=");
    for (i, a) in args.iter().enumerate() {
        let s = a.to_string_lossy();
        if s == name {
            return args.get(i + 1).map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix(&eq) {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// The arguments (`--flag=value`, `--switch`) that the TOML file `path` gives
/// `command`.
///
/// # Errors
/// As [`expand_args`].
pub fn flags_from_file(path: &Path, command: &str) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
        Error::data(path, line, None, format!("not a valid TOML config: {}", e.message()))
    })?;
    let mut out = Vec::new();
    for (key, value) in &table {
        match value {
            toml::Value::Table(t) if key == command => {
                for (k, v) in t {
                    push_flag(&mut out, path, k, v)?;
                }
            }
            toml::Value::Table(_) => {}
            v => push_flag(&mut out, path, key, v)?,
        }
    }
    Ok(out)
}

fn push_flag(out: &mut Vec<OsString>, path: &Path, key: &str, value: &toml::Value) -> Result<()> {
    let flag = format!("--{}", key.replace('_', "-"));
    if flag == "--config" || flag == "--resume" {
        return Ok(());
    }
    let scalar = |v: &toml::Value| -> Option<String> {
        match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            _ => None,
        }
    };
    let text = match value {
        toml::Value::Boolean(true) => {
            out.push(flag.into());
            return Ok(());
        }
        toml::Value::Boolean(false) => return Ok(()),
        toml::Value::Array(a) => a.iter().map(scalar).collect::<Option<Vec<_>>>().map(|v| v.join(",")),
        v => scalar(v),
    };
    let text = text.ok_or_else(|| Error::data(path, None, None, format!("{key}: not a flag value (use a string, number, boolean or array)")))?;
    out.push(format!("{flag}={text}").into());
    Ok(())
}
