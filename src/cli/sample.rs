//! `fmpe sample`: posterior samples for one observation.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::write_matrix_chunks;
use fmpe::model::Model;
use fmpe::posterior::{GpuModel, Posterior, PosteriorOptions, SampleReport};

use super::args::SolverArgs;
use super::util::{check_output_ext, open_gpu, read_observation, report_line};

#[derive(Args, Debug)]
pub(crate) struct SampleArgs {
    /// Model directory written by `fmpe train` or `fmpe run`.
    #[arg(long)]
    model: PathBuf,
    /// Observation file: exactly one row of dim_x values (.csv or .npy).
    #[arg(long)]
    observation: PathBuf,
    /// Number of posterior samples.
    #[arg(long, default_value_t = 10_000)]
    num_samples: usize,
    /// Output file: .csv (header theta names) or .npy.
    #[arg(long)]
    out: PathBuf,
    /// Seed of θ₀.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Append a last column `log_prob` (the flow's log-density of each sample, from one
    /// joint solve with the exact divergence, with the chosen --solver).
    #[arg(long)]
    with_log_prob: bool,
    /// Samples drawn per GPU call and held in memory at once: larger requests stream
    /// to --out in chunks of this many rows, with progress and an estimate of the time
    /// left.
    #[arg(long, default_value_t = 1 << 18, hide = true)]
    stream_rows: usize,
    #[command(flatten)]
    solver: SolverArgs,
}


pub(crate) fn sample(a: SampleArgs) -> Result<()> {
    let model = Model::load(&a.model)?;
    let xo = read_observation(&a.observation, model.dim_x())?;
    if a.num_samples == 0 {
        return Err(Error::usage("--num-samples must be positive"));
    }
    check_output_ext(&a.out)?;
    let d = model.dim_theta();
    let cols = d + usize::from(a.with_log_prob);
    check_size(a.num_samples, cols)?;
    let gpu = open_gpu()?;
    let post = GpuModel::new(gpu.clone(), &model)?.posterior(&xo)?;
    let mut names = model.info.theta_names.clone();
    if a.with_log_prob {
        names.push("log_prob".into());
    }
    let t0 = Instant::now();
    let chunk_rows = a.stream_rows.max(1);
    let chunks = a.num_samples.div_ceil(chunk_rows);
    let mut reports = Vec::with_capacity(chunks);
    let mut k = 0;
    write_matrix_chunks(&a.out, a.num_samples, cols, Some(&names), &mut || {
        let rows = chunk_rows.min(a.num_samples - k * chunk_rows);
        // One chunk: the seed as given (a request of at most --stream-rows is one call,
        // as before); later chunks seed + chunk index.
        let opts = a.solver.options(a.seed.wrapping_add(k as u64));
        let (data, rep) = draw(&post, rows, d, a.with_log_prob, &opts)?;
        reports.push(rep);
        k += 1;
        if chunks > 1 {
            let done = (k * chunk_rows).min(a.num_samples);
            let secs = t0.elapsed().as_secs_f64();
            log::info!(
                "sampled {done} / {} ({:.0}%), {:.0} samples/s, about {:.0} s left",
                a.num_samples,
                100.0 * done as f64 / a.num_samples as f64,
                done as f64 / secs,
                secs / done as f64 * (a.num_samples - done) as f64
            );
        }
        Ok(data)
    })?;
    let rep = merge(&reports, t0.elapsed().as_secs_f64());
    crate::say!("{} → {}", report_line(&rep), a.out.display());
    super::json::emit("sample", SampleJson { out: a.out.clone(), columns: cols, with_log_prob: a.with_log_prob, report: rep })
}

/// Refuses up front a request whose output cannot be addressed (rows × columns × 8
/// bytes beyond what this machine can count); memory is bounded by the chunk size.
fn check_size(rows: usize, cols: usize) -> Result<()> {
    if rows.checked_mul(cols).and_then(|v| v.checked_mul(8)).is_none_or(|b| b as u64 > i64::MAX as u64) {
        return Err(Error::usage(format!(
            "--num-samples {rows}: {rows} × {cols} values exceed what the output format can hold (at most {} values)",
            i64::MAX as u64 / 8
        )));
    }
    Ok(())
}

/// One chunk of `rows` samples `[rows, d]`, with a last log_prob column when asked.
fn draw(post: &Posterior, rows: usize, d: usize, with_log_prob: bool, opts: &PosteriorOptions) -> Result<(Vec<f64>, SampleReport)> {
    if !with_log_prob {
        let (s, _, rep) = post.sample(rows, opts)?.into_parts();
        return Ok((s, rep));
    }
    let (s, lp, rep) = post.sample_and_log_prob(rows, opts)?.into_parts();
    let mut data = Vec::with_capacity(rows * (d + 1));
    for (row, l) in s.chunks(d).zip(lp.unwrap_or_default()) {
        data.extend_from_slice(row);
        data.push(l);
    }
    Ok((data, rep))
}

/// The reports of the chunks as one (sums; step means weighted by proposals).
fn merge(reports: &[SampleReport], seconds: f64) -> SampleReport {
    if let [one] = reports {
        return one.clone();
    }
    let returned: usize = reports.iter().map(|r| r.returned).sum();
    let proposed: usize = reports.iter().map(|r| r.proposed).sum();
    let w = |f: fn(&SampleReport) -> f64| reports.iter().map(|r| f(r) * r.proposed as f64).sum::<f64>() / proposed.max(1) as f64;
    SampleReport {
        returned,
        proposed,
        acceptance_rate: returned as f64 / proposed.max(1) as f64,
        mean_steps: w(|r| r.mean_steps),
        mean_rejected_steps: w(|r| r.mean_rejected_steps),
        seconds,
    }
}

/// `fmpe sample --json`.
#[derive(serde::Serialize, Debug)]
struct SampleJson {
    /// The samples file written.
    out: PathBuf,
    /// Its columns (dim θ, + 1 with --with-log-prob).
    columns: usize,
    with_log_prob: bool,
    /// What sampling did (returned, proposed, acceptance rate, ODE steps, seconds).
    report: fmpe::posterior::SampleReport,
}

