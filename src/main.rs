//! The `fmpe` command-line tool: simulate, train, sample and benchmark Flow Matching
//! Posterior Estimation on the GPU. Exit codes: 0 success, 1 bad data or runtime error,
//! 2 usage error, 3 no GPU adapter, 4 rejection sampling too slow (low acceptance).

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {}", cli::describe_error(&e));
        std::process::exit(e.exit_code());
    }
}
