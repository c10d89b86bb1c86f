//! Helpers of several commands: the GPU, staged (atomic) output directories, checks of
//! input and output files, and small summaries.

use std::path::Path;
use std::sync::Arc;

use fmpe::error::{Error, Result};
use fmpe::io::{read_matrix, StagedDir};
use fmpe::posterior::SampleReport;
use fmpe::Gpu;

/// `--adapter N`, when given (`usize::MAX`: not given).
static ADAPTER_INDEX: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

/// Records the global `--adapter N` flag for [`gpu_options`].
pub(crate) fn set_adapter_index(index: Option<usize>) {
    ADAPTER_INDEX.store(index.unwrap_or(usize::MAX), std::sync::atomic::Ordering::SeqCst);
}

/// Adapter selection from the environment (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`,
/// `WGPU_ADAPTER_INDEX`, `WGPU_POWER_PREF`), the kernel choice (`FMPE_KERNELS`) and the
/// `--adapter N` flag, which wins: only the binary reads environment variables.
pub(crate) fn gpu_options() -> Result<fmpe::gpu::GpuOptions> {
    let mut o = fmpe::gpu::GpuOptions::from_vars(|k| std::env::var(k).ok())?;
    let i = ADAPTER_INDEX.load(std::sync::atomic::Ordering::SeqCst);
    if i != usize::MAX {
        o.adapter = fmpe::gpu::AdapterSelector::Index(i);
    }
    Ok(o)
}

/// Opens the GPU and says which adapter is used.
pub(crate) fn open_gpu() -> Result<Arc<Gpu>> {
    let gpu = Gpu::with_options(&gpu_options()?)?;
    if let Some(a) = gpu.adapter() {
        log::info!("GPU: {a}");
    }
    Ok(Arc::new(gpu))
}


/// Stages the output directory `dest` of a command: refuses a `dest` that exists and is
/// not an empty directory, then returns the temporary sibling to fill, renamed onto
/// `dest` by [`StagedDir::commit`] (and removed if dropped without a commit).
pub(crate) fn stage_out_dir(dest: &Path) -> Result<StagedDir> {
    if dest.exists() && !(dest.is_dir() && dest.read_dir().map_err(|e| Error::io(dest, e))?.next().is_none()) {
        return Err(Error::invalid(format!(
            "{} exists and is not an empty directory; choose another --out or remove it",
            dest.display()
        )));
    }
    StagedDir::new(dest)
}

pub(crate) fn check_model_out(out: &Path) -> Result<()> {
    if out.exists() && !(out.is_dir() && (out.join("model.json").exists() || out.read_dir().map(|mut d| d.next().is_none()).unwrap_or(false))) {
        return Err(Error::invalid(format!(
            "{} exists and is not a model directory; choose another --out",
            out.display()
        )));
    }
    Ok(())
}


/// Reads an observation file: exactly one row of `dim_x` values.
pub(crate) fn read_observation(path: &Path, dim_x: usize) -> Result<Vec<f64>> {
    let m = read_matrix(path)?;
    if m.rows != 1 {
        return Err(Error::data(
            path,
            None,
            None,
            format!("an observation file must hold exactly one row, found {} rows (fmpe samples one observation at a time)", m.rows),
        ));
    }
    if m.cols != dim_x {
        return Err(Error::data(path, None, None, format!("the observation has {} values, the model expects dim_x = {dim_x}", m.cols)));
    }
    if let Some(c) = m.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::data(path, Some(m.line_of_row(0)), Some(c + 1), "the observation value is not finite"));
    }
    Ok(m.data)
}

pub(crate) fn report_line(rep: &SampleReport) -> String {
    format!(
        "{} samples in {:.2} s ({} proposed, acceptance rate {:.4}, mean ODE steps {:.1}, rejected steps {:.1})",
        rep.returned, rep.seconds, rep.proposed, rep.acceptance_rate, rep.mean_steps, rep.mean_rejected_steps
    )
}


pub(crate) fn check_output_ext(p: &Path) -> Result<()> {
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("csv") | Some("npy") => Ok(()),
        _ => Err(Error::usage(format!("--out {}: use a .csv or .npy file name", p.display()))),
    }
}

pub(crate) fn mean_std(s: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (s.len() / d) as f64;
    let mut m = vec![0.0; d];
    for r in s.chunks(d) {
        for j in 0..d {
            m[j] += r[j] / n;
        }
    }
    let mut v = vec![0.0; d];
    for r in s.chunks(d) {
        for j in 0..d {
            v[j] += (r[j] - m[j]).powi(2) / (n - 1.0).max(1.0);
        }
    }
    (m, v.into_iter().map(f64::sqrt).collect())
}

