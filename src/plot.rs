//! PNG figures: corner (pair) plots of posterior samples and training curves.
//!
//! Text is drawn with DejaVu Sans, bundled in `assets/fonts/` (Bitstream Vera licence,
//! `assets/fonts/LICENSE-DejaVu.txt`) and registered with plotters as "sans-serif", so
//! figures render the same on machines without system fonts. Files are written to a
//! temporary name in the target directory and renamed, so a reader never sees a
//! half-written PNG.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::io::atomic::write_file_atomic_with_path;
use crate::train_config::EpochRecord;

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Colour of the samples (blue) and of the reference (orange).
const SAMPLES: RGBColor = RGBColor(31, 119, 180);
const REFERENCE: RGBColor = RGBColor(255, 127, 14);
/// Pixels per panel of the pair plot.
const PANEL: u32 = 240;
/// Histogram bins on the diagonal.
const BINS: usize = 40;
/// Points drawn per set in a 2-D panel (an evenly spaced subset beyond this).
const MAX_POINTS: usize = 4000;

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("the bundled font DejaVuSans.ttf could not be loaded"))
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("cannot draw {}: {e}", path.display()))
}

/// Draws into a temporary PNG beside `path` with `draw`, then renames it onto `path`
/// ([`write_file_atomic_with_path`]: a name unique per call, with the `.png` extension the
/// bitmap encoder picks the format by).
fn write_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    write_file_atomic_with_path(path, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        draw(&root).map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))
    })
}

/// Range of column `c` over the finite values of the given sets: 0.5 % to 99.5 %
/// quantiles (so a few outliers do not squash the plot), padded by 5 %.
fn column_range(sets: &[&[f64]], d: usize, c: usize) -> (f64, f64) {
    let mut v: Vec<f64> = sets.iter().flat_map(|s| s.iter().skip(c).step_by(d).copied()).filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (-1.0, 1.0);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (lo, hi) = (q(0.005), q(0.995));
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
    let (a, b) = (lo - pad, hi + pad);
    if a.is_finite() && b.is_finite() && b > a {
        (a, b)
    } else {
        // Values near ±f64::MAX: no padding that would overflow.
        (lo.max(-f64::MAX / 4.0), hi.min(f64::MAX / 4.0).max(lo.max(-f64::MAX / 4.0) + 1.0))
    }
}

/// Normalised histogram (density) of column `c` on `range`.
fn histogram(set: &[f64], d: usize, c: usize, range: (f64, f64)) -> Vec<f64> {
    let mut h = vec![0.0; BINS];
    let w = (range.1 - range.0) / BINS as f64;
    let mut n = 0usize;
    for x in set.iter().skip(c).step_by(d) {
        if x.is_finite() {
            n += 1;
            let b = ((x - range.0) / w).floor();
            if b >= 0.0 && (b as usize) < BINS {
                h[b as usize] += 1.0;
            }
        }
    }
    let norm = 1.0 / (n.max(1) as f64 * w);
    h.iter().map(|v| v * norm).collect()
}

/// Corner plot of posterior samples, written as a PNG.
///
/// `samples` is `[n, d]` row-major, `reference` (optional, e.g. sbibm's reference
/// posterior samples) `[m, d]` in the same units; `names` has `d` axis labels (fewer
/// are filled with `θ_k`). The diagonal shows each dimension's histogram (density; the
/// samples filled in blue, the reference as an orange outline), the lower triangle each
/// pair as a scatter with transparency (at most 4,000 evenly spaced rows per set). Axis
/// ranges cover the 0.5–99.5 % quantiles of both sets. The file is written to a
/// temporary name beside `path` and renamed.
///
/// # Errors
/// [`Error::Invalid`] if `d` is 0, a slice length is not a multiple of `d`, there are no
/// samples, or drawing fails; [`Error::Io`] if the file cannot be written.
pub fn pair_plot(samples: &[f64], reference: Option<&[f64]>, d: usize, names: &[String], path: &Path) -> Result<()> {
    if d == 0 || samples.is_empty() || !samples.len().is_multiple_of(d) || reference.is_some_and(|r| !r.len().is_multiple_of(d)) {
        return Err(Error::invalid(format!(
            "pair_plot: need a non-empty [n, {d}] sample array (got {} values){}",
            samples.len(),
            if reference.is_some_and(|r| !r.len().is_multiple_of(d)) { " and a [m, d] reference" } else { "" }
        )));
    }
    let names: Vec<String> =
        (0..d).map(|i| names.get(i).cloned().unwrap_or_else(|| format!("θ_{}", i + 1))).collect();
    let sets: Vec<&[f64]> = std::iter::once(samples).chain(reference).collect();
    let ranges: Vec<(f64, f64)> = (0..d).map(|c| column_range(&sets, d, c)).collect();
    let side = PANEL * d as u32 + 20;
    write_png(path, (side, side + 30), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let (title, grid) = root.split_vertically(30);
        let legend = if reference.is_some() { "blue: samples   orange: reference" } else { "samples" };
        title.draw_text(legend, &("sans-serif", 16).into_font().color(&BLACK), (10, 8)).map_err(e)?;
        let grid = grid.margin(0, 20, 0, 0);
        let panels = grid.split_evenly((d, d));
        for i in 0..d {
            for j in 0..=i {
                let area = &panels[i * d + j];
                let mut cb = ChartBuilder::on(area);
                cb.margin(4).x_label_area_size(if i + 1 == d { 40 } else { 18 }).y_label_area_size(if j == 0 { 50 } else { 36 });
                let (xr, yr) = (ranges[j], ranges[i]);
                if i == j {
                    let hs = histogram(samples, d, j, xr);
                    let hr = reference.map(|r| histogram(r, d, j, xr));
                    let top = hs.iter().chain(hr.iter().flatten()).fold(0.0f64, |a, &b| a.max(b)) * 1.08 + 1e-12;
                    let mut ch = cb.build_cartesian_2d(xr.0..xr.1, 0.0..top).map_err(e)?;
                    let mut mesh = ch.configure_mesh();
                    mesh.disable_mesh().x_labels(4).y_labels(3).label_style(("sans-serif", 11));
                    if i + 1 == d {
                        mesh.x_desc(names[j].as_str()).axis_desc_style(("sans-serif", 14));
                    }
                    mesh.draw().map_err(e)?;
                    let w = (xr.1 - xr.0) / BINS as f64;
                    ch.draw_series(hs.iter().enumerate().map(|(b, &v)| {
                        let x0 = xr.0 + b as f64 * w;
                        Rectangle::new([(x0, 0.0), (x0 + w, v)], SAMPLES.mix(0.55).filled())
                    }))
                    .map_err(e)?;
                    if let Some(hr) = hr {
                        let pts = hr.iter().enumerate().flat_map(|(b, &v)| {
                            let x0 = xr.0 + b as f64 * w;
                            [(x0, v), (x0 + w, v)]
                        });
                        ch.draw_series(LineSeries::new(pts, REFERENCE.stroke_width(2))).map_err(e)?;
                    }
                } else {
                    let mut ch = cb.build_cartesian_2d(xr.0..xr.1, yr.0..yr.1).map_err(e)?;
                    let mut mesh = ch.configure_mesh();
                    mesh.disable_mesh().x_labels(4).y_labels(4).label_style(("sans-serif", 11)).axis_desc_style(("sans-serif", 14));
                    if i + 1 == d {
                        mesh.x_desc(names[j].as_str());
                    }
                    if j == 0 {
                        mesh.y_desc(names[i].as_str());
                    }
                    mesh.draw().map_err(e)?;
                    let inside = |x: f64, y: f64| x >= xr.0 && x <= xr.1 && y >= yr.0 && y <= yr.1;
                    for (set, colour) in std::iter::once((samples, SAMPLES)).chain(reference.map(|r| (r, REFERENCE))) {
                        let n = set.len() / d;
                        let stride = n.div_ceil(MAX_POINTS).max(1);
                        let pts = (0..n)
                            .step_by(stride)
                            .map(|r| (set[r * d + j], set[r * d + i]))
                            .filter(|&(x, y)| inside(x, y));
                        ch.draw_series(pts.map(|p| Circle::new(p, 1, colour.mix(0.25).filled()))).map_err(e)?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// Training curve: training and validation loss against epoch, written as a PNG
/// (800 × 500 px, linear axes, units of the loss as recorded). Validation
/// losses that are NaN (no validation set) are left out.
///
/// # Errors
/// [`Error::Invalid`] if `history` has no finite loss or drawing fails; [`Error::Io`] if
/// the file cannot be written.
pub fn training_curve(history: &[EpochRecord], path: &Path) -> Result<()> {
    let vals: Vec<f64> =
        history.iter().flat_map(|r| [r.train_loss, r.val_loss]).filter(|v| v.is_finite()).collect();
    if vals.is_empty() {
        return Err(Error::invalid("training_curve: the history has no finite loss"));
    }
    let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let e_max = history.iter().map(|r| r.epoch).max().unwrap_or(1).max(2) as f64;
    let train: Vec<(f64, f64)> =
        history.iter().filter(|r| r.train_loss.is_finite()).map(|r| (r.epoch as f64, r.train_loss)).collect();
    let val: Vec<(f64, f64)> =
        history.iter().filter(|r| r.val_loss.is_finite()).map(|r| (r.epoch as f64, r.val_loss)).collect();
    write_png(path, (800, 500), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let mut cb = ChartBuilder::on(root);
        cb.caption("Training loss", ("sans-serif", 22)).margin(15).x_label_area_size(45).y_label_area_size(70);
        let pad = 0.05 * (hi - lo).max(1e-12 * hi.abs().max(1.0));
        let mut ch = cb.build_cartesian_2d(1.0..e_max, lo - pad..hi + pad).map_err(e)?;
        ch.configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(e)?;
        ch.draw_series(LineSeries::new(train.iter().copied(), SAMPLES.stroke_width(2)))
            .map_err(e)?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], SAMPLES.stroke_width(2)));
        if !val.is_empty() {
            ch.draw_series(LineSeries::new(val.iter().copied(), REFERENCE.stroke_width(2)))
                .map_err(e)?
                .label("validation")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REFERENCE.stroke_width(2)));
        }
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        Ok(())
    })
}

/// Expected-coverage plot: empirical coverage of the central α-intervals against the
/// nominal level α, one line per θ dimension, with the diagonal (perfect calibration).
/// `coverage` is `[levels, d]` row-major (see [`crate::metrics::Coverage`]).
///
/// # Errors
/// [`Error::Invalid`] for inconsistent shapes; [`Error::Io`] if the PNG cannot be written.
pub fn coverage_plot(levels: &[f64], coverage: &[f64], names: &[String], path: &Path) -> Result<()> {
    let d = names.len();
    if d == 0 || coverage.len() != levels.len() * d {
        return Err(Error::invalid("coverage_plot: coverage must be [levels, d] with one name per dimension"));
    }
    let palette = [SAMPLES, REFERENCE, RGBColor(44, 160, 44), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];
    write_png(path, (640, 600), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let mut cb = ChartBuilder::on(root);
        cb.caption("Expected coverage", ("sans-serif", 22)).margin(15).x_label_area_size(45).y_label_area_size(60);
        let mut ch = cb.build_cartesian_2d(0.0..1.0, 0.0..1.0).map_err(e)?;
        ch.configure_mesh()
            .x_desc("nominal level")
            .y_desc("empirical coverage")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(e)?;
        ch.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.5).stroke_width(1))).map_err(e)?;
        for (j, name) in names.iter().enumerate() {
            let c = palette[j % palette.len()];
            let pts: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
                .chain(levels.iter().enumerate().map(|(k, &a)| (a, coverage[k * d + j])))
                .chain(std::iter::once((1.0, 1.0)))
                .collect();
            ch.draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(e)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        }
        ch.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        Ok(())
    })
}
