//! `fmpe c2st`: the classifier two-sample test between two sample files.

use std::path::PathBuf;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::read_matrix;

use super::util::open_gpu;

#[derive(Args, Debug)]
pub(crate) struct C2stArgs {
    /// Reference samples `[n, d]` (.csv or .npy); z-scoring uses its statistics.
    a: PathBuf,
    /// Samples to compare `[m, d]`.
    b: PathBuf,
    /// Seed of the folds, shuffling and initialisation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rows used from each file (the benchmark uses the first 10,000).
    #[arg(long, default_value_t = 10_000)]
    max_rows: usize,
}


pub(crate) fn c2st(a: C2stArgs) -> Result<()> {
    let x = read_matrix(&a.a)?;
    let y = read_matrix(&a.b)?;
    if x.cols != y.cols {
        return Err(Error::invalid(format!(
            "{} has {} columns but {} has {}",
            a.a.display(),
            x.cols,
            a.b.display(),
            y.cols
        )));
    }
    let gpu = open_gpu()?;
    let opts = fmpe::metrics::C2stOptions { seed: a.seed, max_rows: a.max_rows, ..Default::default() };
    let rep = fmpe::metrics::c2st_report(&gpu, &x.data, &y.data, x.cols, &opts)?;
    crate::say!("{:.6}", rep.score);
    super::json::emit(
        "c2st",
        C2stJson {
            score: rep.score,
            fold_accuracies: rep.fold_accuracies,
            epochs: rep.epochs,
            submissions: rep.submissions,
            dispatches: rep.dispatches,
            seconds: rep.seconds,
        },
    )?;
    Ok(())
}


/// `fmpe c2st --json`.
#[derive(serde::Serialize, Debug)]
struct C2stJson {
    /// Classifier accuracy: 0.5 indistinguishable, 1 separable.
    score: f64,
    /// Held-out accuracy of each fold.
    fold_accuracies: Vec<f64>,
    /// Training epochs of each fold.
    epochs: Vec<usize>,
    /// GPU submissions.
    submissions: u64,
    /// Compute dispatches.
    dispatches: u64,
    /// Wall-clock seconds of the test (without reading the files).
    seconds: f64,
}
