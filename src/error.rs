//! The one error type of fmpe.
//!
//! Errors about user data name the file and, where one exists, the 1-based line and
//! column, so that a user can find the offending cell. GPU validation errors and device
//! loss are turned into [`Error::Gpu`] / [`Error::DeviceLost`] instead of panicking
//! inside wgpu.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in fmpe.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter could be found (CLI exit code 3).
    #[error("no GPU adapter found{detail}. On Linux without a GPU, install Mesa's software Vulkan driver: `apt-get install mesa-vulkan-drivers libvulkan1` (lavapipe)")]
    NoAdapter {
        /// Extra context, e.g. the backend filter that was applied (may be empty).
        detail: String,
    },

    /// The GPU reported a validation or out-of-memory error.
    #[error("GPU error: {0}")]
    Gpu(String),

    /// The device was lost (driver reset, removed adapter, ...).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A data file is malformed. `line` and `column` are 1-based; `None` when the
    /// problem is not tied to one cell (e.g. a wrong shape in an `.npy` header).
    #[error("{}", format_data_error(path, *line, *column, message))]
    Data {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line (CSV) or row (`.npy`), if known.
        line: Option<usize>,
        /// 1-based column, if known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },

    /// Inconsistent data or configuration found at run time (a dimension, a model
    /// file, a diverging run).
    #[error("{0}")]
    Invalid(String),

    /// An invalid argument value: a flag or option out of its range (CLI exit code 2).
    #[error("{0}")]
    Usage(String),

    /// A library option out of its range or inconsistent with another (CLI exit code 2).
    /// `name` is the option's field name in the library's options structs (e.g.
    /// `"atol"`, `"batch_size"`); the command-line tool maps it onto its flag
    /// (`--atol`, `--batch-size`), so library messages never name a flag.
    #[error("{name}: {message}")]
    InvalidOption {
        /// The option's field name (snake_case, as in the options struct).
        name: &'static str,
        /// What is wrong with its value.
        message: String,
    },

    /// Rejection sampling to the prior support accepted too few samples to finish in
    /// the allowed time (CLI exit code 4).
    #[error("{0}")]
    LowAcceptance(String),
}

fn format_data_error(
    path: &std::path::Path,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}: line {l}, column {c}: {message}", path.display()),
        (Some(l), None) => format!("{}: line {l}: {message}", path.display()),
        (None, Some(c)) => format!("{}: column {c}: {message}", path.display()),
        (None, None) => format!("{}: {message}", path.display()),
    }
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// Shorthand for [`Error::Data`].
    pub fn data(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        column: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Error::Data { path: path.into(), line, column, message: message.into() }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Shorthand for [`Error::Usage`].
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    /// Shorthand for [`Error::InvalidOption`].
    pub fn option(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidOption { name, message: message.into() }
    }

    /// The process exit code the CLI uses for this error: 2 for invalid argument values,
    /// 3 for no adapter, 4 for low acceptance, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::InvalidOption { .. } => 2,
            Error::NoAdapter { .. } => 3,
            Error::LowAcceptance(_) => 4,
            _ => 1,
        }
    }
}
