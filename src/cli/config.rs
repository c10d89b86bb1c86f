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
    let Some(sub_at) = subcommand_at(&args) else {
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

/// Index of the subcommand: the first argument after the program name that is neither
/// a flag nor the value of a global flag given before it (`fmpe --config F train`).
fn subcommand_at(args: &[OsString]) -> Option<usize> {
    const GLOBAL_WITH_VALUE: [&str; 3] = ["--config", "--adapter", "--progress-seconds"];
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if !a.starts_with('-') {
            return Some(i);
        }
        i += if GLOBAL_WITH_VALUE.contains(&a.as_ref()) { 2 } else { 1 };
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_flags_go_after_the_subcommand_and_before_the_command_line_flags() {
        let dir = std::env::temp_dir().join(format!("fmpe-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "seed = 3\nno_transform = true\nno_reject = false\nprior_low = [-1, 2.5]\n[train]\nhidden = \"8,8\"\n[sample]\nsteps = 4\n").unwrap();
        let fs = f.to_str().unwrap();
        let got = expand_args(args(&["fmpe", "--config", fs, "train", "--seed", "5"])).unwrap();
        let want = args(&["fmpe", "--config", fs, "train", "--no-transform", "--prior-low=-1,2.5", "--seed=3", "--hidden=8,8", "--seed", "5"]);
        assert_eq!(got, want);
        // No --config: unchanged; a bad file is an error naming it and the line.
        assert_eq!(expand_args(args(&["fmpe", "sample", "--x", "1"])).unwrap(), args(&["fmpe", "sample", "--x", "1"]));
        std::fs::write(&f, "seed = 3\nhidden = [\n").unwrap();
        let e = expand_args(args(&["fmpe", "train", "--config", fs])).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("not a valid TOML"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
