//! The one table from the library's option names ([`Error::InvalidOption`]'s `name`,
//! the field names of its configuration structs) to this tool's flags, used when an
//! error is printed.

use fmpe::error::Error;

/// Option names whose flag is not `--` + the name with `_` → `-`.
const FLAGS: &[(&str, &str)] = &[
    ("prior", "--prior-low/--prior-high"),
    ("transform", "--prior-low/--prior-high (or --no-transform)"),
    ("max_seconds", "--max-sampling-time"),
    ("reject_outside_prior", "--no-reject"),
    ("reflect_outside_prior", "--reflect"),
    ("reflect", "--reflect-training"),
    ("hidden", "--hidden/--blocks"),
    ("divergence", "--probes"),
    ("kernels", "FMPE_KERNELS (or bench --kernels)"),
];

/// Phrases of the library's too-slow-rejection message that name options, and how this
/// tool says them.
const PHRASES: &[(&str, &str)] = &[
    ("the time limit max_seconds", "--max-sampling-time"),
    ("set reject_outside_prior to false", "pass --no-reject"),
];

/// `message` with the library's option names in [`PHRASES`] replaced by flags.
pub(crate) fn with_flags(message: &str) -> String {
    PHRASES.iter().fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}

/// The flag of the library option `name`: from [`FLAGS`], else `--` + the name with
/// underscores as dashes (`batch_size` → `--batch-size`).
pub(crate) fn flag(name: &str) -> String {
    match FLAGS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => (*f).to_string(),
        None => format!("--{}", name.replace('_', "-")),
    }
}

/// The message to print for `e`: as the library words it, with an option's field name
/// replaced by its flag.
pub fn describe_error(e: &Error) -> String {
    match e {
        Error::InvalidOption { name, message } => format!("{}: {message}", flag(name)),
        Error::LowAcceptance(message) => with_flags(message),
        other => other.to_string(),
    }
}
