//! The `fmpe` command-line tool: simulate, train, sample and benchmark Flow Matching
//! Posterior Estimation on the GPU. Exit codes: 0 success, 1 bad data or runtime error,
//! 2 usage error, 3 no GPU adapter, 4 rejection sampling too slow (low acceptance),
//! 130 / 143 `fmpe train` stopped by SIGINT / SIGTERM (the best weights so far and a
//! checkpoint were written; `fmpe train --resume MODEL_DIR` continues).

mod cli;

use clap::Parser;

fn main() {
    // Before any thread or GPU instance exists: see `private_runtime_dir`.
    let runtime_dir = private_runtime_dir();
    init_logger();
    let code = match cli::config::expand_args(std::env::args_os().collect()) {
        Err(e) => {
            eprintln!("error: {}", cli::describe_error(&e));
            e.exit_code()
        }
        Ok(args) => match cli::run(cli::Cli::parse_from(args)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {}", cli::describe_error(&e));
                e.exit_code()
            }
        },
    };
    drop(runtime_dir);
    std::process::exit(code);
}

/// Messages for people go to stderr through `log`: `warning: ` before warnings, plain
/// text for information; `RUST_LOG` filters them (default `error,fmpe=info`: fmpe's messages and other crates' errors; `RUST_LOG=warn`
/// keeps warnings only, `RUST_LOG=off` silences them; errors are printed regardless).
fn init_logger() {
    use std::io::Write;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error,fmpe=info"))
        .format(|buf, rec| match rec.level() {
            log::Level::Error => writeln!(buf, "error: {}", rec.args()),
            log::Level::Warn => writeln!(buf, "warning: {}", rec.args()),
            _ => writeln!(buf, "{}", rec.args()),
        })
        .init();
}

/// Vulkan's window-system layer (Mesa's, among others) prints `error: XDG_RUNTIME_DIR
/// is invalid or not set in the environment` when that variable is missing, as on
/// headless machines and in batch jobs; fmpe draws no windows, so the line only looks
/// like a failure. When the variable is unset or not a directory, point it at a fresh
/// private (0700) temporary directory, removed at exit. A set, valid variable is left
/// alone, so real driver errors still show.
fn private_runtime_dir() -> Option<tempfile::TempDir> {
    let ok = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| !d.is_empty() && std::path::Path::new(&d).is_dir());
    if ok {
        return None;
    }
    let dir = tempfile::Builder::new().prefix("fmpe-runtime-").tempdir().ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700));
    }
    // Single-threaded here: nothing else reads the environment concurrently.
    std::env::set_var("XDG_RUNTIME_DIR", dir.path());
    Some(dir)
}
