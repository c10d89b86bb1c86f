//! `fmpe train`: an FMPE model from θ / x files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{drop_nonfinite_rows, read_matrix, Matrix};
use fmpe::tasks::task_by_name;
use fmpe::transform::{ThetaTransform, XTransform};

use super::args::{NetTrainArgs, TransformArgs};
use super::pipeline::{self, task_box, user_box, Job, Source};
use super::util::{check_model_out, open_gpu};

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    /// θ file `[n, dim_theta]` (.npy or .csv).
    #[arg(long)]
    theta: PathBuf,
    /// x file `[n, dim_x]` (.npy or .csv); rows with NaN/inf are dropped with their θ.
    #[arg(long)]
    x: PathBuf,
    /// Output model directory.
    #[arg(long)]
    out: PathBuf,
    /// Benchmark task the data comes from (checks dimensions, stores names and prior).
    #[arg(long)]
    task: Option<String>,
    /// Seed of the split, shuffling, path noise and initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Lower bounds of a box prior, comma-separated, one per θ component.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    prior_low: Option<Vec<f64>>,
    /// Upper bounds of a box prior, comma-separated, one per θ component.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    prior_high: Option<Vec<f64>>,
    #[command(flatten)]
    transform: TransformArgs,
    #[command(flatten)]
    net: NetTrainArgs,
}


pub(crate) fn train(a: TrainArgs) -> Result<()> {
    let task = a.task.as_deref().map(task_by_name).transpose()?;
    let theta = read_matrix(&a.theta)?;
    let x = read_matrix(&a.x)?;
    if let Some(t) = &task {
        for (m, p, want, what) in [(&theta, &a.theta, t.dim_theta(), "dim_theta"), (&x, &a.x, t.dim_x(), "dim_x")] {
            if m.cols != want {
                return Err(Error::data(
                    p,
                    None,
                    None,
                    format!("has {} columns, but task {} has {what} = {want}", m.cols, t.name()),
                ));
            }
        }
    }
    let prior = match user_box(&a.prior_low, &a.prior_high, theta.cols)? {
        Some(b) => Some(b),
        None => task.as_deref().and_then(task_box),
    };
    let source = Source { task: task.as_deref(), prior, theta_names: theta.header.clone(), x_names: x.header.clone(), dropped: 0 };
    let mut job = Job::new(source, &a.transform, &a.net, a.seed, (theta.cols, x.cols))?;
    check_theta_support(&job.meta.transform, &theta, &a.theta)?;
    let (theta, x, dropped) = drop_nonfinite_rows(&theta, &x, &a.theta, &a.x)?;
    if dropped > 0 {
        eprintln!("warning: dropped {dropped} simulations whose x contains NaN or ±inf ({} left)", x.rows);
    }
    job.meta.dropped_rows = dropped;
    check_x_domain(job.meta.x_transform, &x, &a.x)?;
    // Refuse an unusable --out before spending time on training.
    check_model_out(&a.out)?;
    let gpu = open_gpu()?;
    let t0 = Instant::now();
    let model = pipeline::fit(&gpu, job, &theta.data, &x.data)?;
    model.save_with(&a.out, &mut |d| fmpe::plot::training_curve(&model.info.history, &d.join("training_curve.png")))?;
    let last = model.info.history.last().expect("at least one epoch");
    println!(
        "trained on {} simulations ({} validation) for {} epochs in {:.1} s; best epoch {} (validation loss {:.4}); model → {}",
        model.info.n_train,
        model.info.n_val,
        last.epoch,
        t0.elapsed().as_secs_f64(),
        model.info.best_epoch,
        model.info.history[model.info.best_epoch - 1].val_loss,
        a.out.display()
    );
    Ok(())
}

/// Every θ row inside the parameter transform's support, or an error naming the file,
/// line and column.
fn check_theta_support(transform: &ThetaTransform, theta: &Matrix, path: &Path) -> Result<()> {
    if let Some((r, c)) = transform.first_outside(&theta.data, theta.cols) {
        let v = theta.data[r * theta.cols + c];
        let msg = format!("{}; --no-transform turns the transform off", transform.outside_message(c, v));
        return Err(Error::data(path, Some(theta.line_of_row(r)), Some(c + 1), msg));
    }
    Ok(())
}

/// Every finite x inside the x transform's domain, or an error naming the file, line and
/// column.
fn check_x_domain(x_transform: XTransform, x: &Matrix, path: &Path) -> Result<()> {
    if let Some(i) = x_transform.first_outside_domain(&x.data) {
        return Err(Error::data(
            path,
            Some(x.line_of_row(i / x.cols)),
            Some(i % x.cols + 1),
            format!("{} is outside the domain x > -1 of --x-transform {x_transform} (use --x-transform none)", x.data[i]),
        ));
    }
    Ok(())
}
