//! `fmpe plot`: a pair plot of samples, optionally over reference samples.

use std::path::PathBuf;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{read_matrix, Matrix};

#[derive(Args, Debug)]
pub(crate) struct PlotArgs {
    /// Samples `[n, d]` (.csv or .npy; a trailing `log_prob` column is ignored).
    #[arg(long)]
    samples: PathBuf,
    /// Reference samples `[m, d]` drawn in another colour.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
}


pub(crate) fn plot(a: PlotArgs) -> Result<()> {
    if !a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        return Err(Error::usage(format!("--out {}: the plot is a PNG; use a .png file name", a.out.display())));
    }
    let mut s = read_matrix(&a.samples)?;
    let drop_lp = |m: &mut Matrix| {
        if m.header.as_ref().and_then(|h| h.last()).is_some_and(|l| l == "log_prob") {
            let c = m.cols;
            m.data = m.data.chunks(c).flat_map(|r| r[..c - 1].to_vec()).collect();
            m.cols -= 1;
            if let Some(h) = &mut m.header {
                h.pop();
            }
        }
    };
    drop_lp(&mut s);
    let r = a.reference.as_ref().map(|p| read_matrix(p)).transpose()?;
    if let Some(r) = &r {
        if r.cols != s.cols {
            return Err(Error::invalid(format!("the reference has {} columns, the samples {}", r.cols, s.cols)));
        }
    }
    let names = s.header.clone().unwrap_or_else(|| (1..=s.cols).map(|i| format!("theta_{i}")).collect());
    fmpe::plot::pair_plot(&s.data, r.as_ref().map(|r| r.data.as_slice()), s.cols, &names, &a.out)?;
    crate::say!("pair plot → {}", a.out.display());
    super::json::emit("plot", PlotJson { out: a.out.clone() })?;
    Ok(())
}


/// `fmpe plot --json`.
#[derive(serde::Serialize, Debug)]
struct PlotJson {
    /// The PNG written.
    out: std::path::PathBuf,
}
