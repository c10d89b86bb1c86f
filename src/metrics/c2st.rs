//! Classifier two-sample test (C2ST) as the sbibm benchmark computes it, on the GPU.
//!
//! Recipe (sbibm 1.1.0 `sbibm/metrics/c2st.py` as called by the benchmark pipeline,
//! metric "C2ST_Z"; see `../shared/sbibm/README.md` and the Python reference
//! `../shared/tools/c2st.py`):
//! 1. keep the first `max_rows` (10,000) rows of each set, as f32;
//! 2. z-score both sets with the mean and the standard deviation (ddof = 1) of the
//!    first set (the reference);
//! 3. label the first set 0 and the second 1;
//! 4. classifier: sklearn's `MLPClassifier(activation="relu", hidden_layer_sizes=(10d, 10d),
//!    max_iter=10000, solver="adam")` with every other setting at sklearn's default —
//!    logistic output unit and log-loss, Glorot-uniform initialisation, Adam (lr 1e-3,
//!    β = 0.9/0.999, ε = 1e-8, sklearn's bias correction), minibatches of min(200, n)
//!    rows reshuffled every epoch (last batch partial), L2 penalty α = 1e-4 applied as
//!    sklearn does (gradient `α W / batch_rows` on weights only, loss
//!    `0.5 α ‖W‖² / batch_rows`), stop when the epoch's training loss has not improved
//!    by tol = 1e-4 for more than 10 consecutive epochs;
//! 5. `KFold(5, shuffle=True)`; the score is the mean held-out accuracy (cast to f32).
//!
//! # GPU structure
//! The rows are uploaded once, z-scored and shuffled into fold order on the GPU
//! (`column_stats`, `zscore`, `c2st_shuffle`; one submission). When the folds have equal
//! sizes (the row count a multiple of the fold count; [`C2stOptions::batch_folds`]),
//! all folds train together: every dispatch of a step covers every fold still training
//! (workgroup z = slot z, [`crate::kernels::Matmul::batch`] for the products; fold z
//! starts in slot z), each slot's parameters, gradients, Adam moments and minibatch
//! workspace at `z · stride` in their buffers (one stride for all, a multiple of 64
//! floats; the shuffled rows are shared).
//! Otherwise the folds train one after another on the same programs with one slot.
//! Either way each fold has its own initialisation (the same for all, as sklearn's
//! clones), minibatch order, Adam steps and stopping epoch: the same numbers.
//!
//! A whole training epoch (of all the folds together) is one command buffer and one
//! submission: each step's Adam state (step count, bias correction) is copied from a
//! per-epoch table into the step uniform between compute passes, and the host reads
//! back only the per-step losses of every fold once per epoch (for the per-fold
//! stopping rule). A fold that stops is evaluated at once (one submission: 3 matmuls
//! and the accuracy count, read back for all folds at the end), before the next epoch
//! changes its parameters; then the fold in the highest slot still training takes its
//! slot (parameters and Adam moments copied at the start of the next epoch's command
//! buffer; `c2st_batch` reads which fold each slot trains from a table), and the
//! dispatches cover one slot fewer. Each fold is computed for its own epochs only
//! ([`C2stReport::slot_epochs`] = the sum of the folds' epochs): before, a stopped fold
//! below one still training kept stepping, and the five folds cost 5 × the longest
//! fold's epochs. One optimiser step is ([`C2stStep`], chosen per adapter):
//! * [`C2stStep::Matmul`]: 11 dispatches — minibatch gather, 3 fused matmuls
//!   forward (bias + ReLU in the epilogue), the logistic loss/gradient kernel (which
//!   also sums the squared weights, reading the parameters bound as its `data`), 5
//!   matmuls backward (weight and bias gradient in one dispatch, ReLU derivative fused
//!   as an aux multiply) and one Adam dispatch (L2 on the weights only);
//! * [`C2stStep::Narrow`] (10·d ≤ 64 on devices without the CPU matmul variant): 5
//!   dispatches — gather, one fused per-row forward/backward kernel, one
//!   per-parameter gradient kernel, the loss sum and Adam (`shaders/c2st_mlp.wgsl`;
//!   the 64×64 matmul tiles would be mostly idle at these widths);
//! * [`C2stStep::Lanes`] (the CPU matmul variant, d even and ≤ 12): 3 dispatches —
//!   the gather and the whole forward and backward pass of 32 or 40 rows per
//!   subgroup, every weight gradient (and the sum of squared weights and the step's
//!   loss) of 32 output rows per subgroup, and Adam (`shaders/c2st_lanes.wgsl`,
//!   barrier-free: lanes own rows, weights handed out with subgroup broadcasts).
//!
//! The paths compute the same numbers to rounding (`tests/c2st.rs` compares them;
//! `tests/kernels_c2st.rs` checks the lanes kernels against the f64 mirror
//! [`crate::reference::c2st`]).
//!
//! So 5 equal folds of 80 steps an epoch cost 80 · 11 = 880 dispatches per epoch of
//! all five on the matmul path, 80 · 5 = 400 on the narrow path and 80 · 3 = 240 on
//! the lanes path (the folds one after another: 5 · 80 · 13 = 5,200 before folds were
//! batched, with two more copies per step), and submissions are 1 (setup) + the
//! largest fold's epochs + 1 per fold (evaluation) + 1 (accuracy readback); one after
//! another, the sum of the folds' epochs instead of the largest.
//!
//! Adam follows sklearn, not PyTorch: `lr·sqrt(1−β2^t)/(1−β1^t) · m / (sqrt(v) + ε)`,
//! obtained from the shared kernel with `bias_corr1 = (1−β1^t)/sqrt(1−β2^t)` and
//! `bias_corr2 = 1`; its coupled L2 (`g += wd·p`) with `wd = α / batch_rows` is exactly
//! sklearn's `(∇ + α W) / batch_rows`.
//!
//! The numbers are not bit-identical to sklearn (different random streams for
//! initialisation, shuffling and fold assignment, f32 arithmetic); the score agrees
//! within C2ST's own noise (see `tests/c2st.rs`).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{self, adam, stats};
use crate::kernels::{
    AdamParams, Arena, Bindings, Buf, C2stParams, Mat, Matmul, MlpParams, Op, Program, ProgramBuilder, StatsParams,
    StepState,
};

/// sklearn's `alpha` (L2 penalty).
const ALPHA: f64 = 1e-4;
/// sklearn's `learning_rate_init`.
const LR: f64 = 1e-3;
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
/// sklearn's `tol`.
const TOL: f64 = 1e-4;
/// sklearn's `n_iter_no_change`.
const N_ITER_NO_CHANGE: usize = 10;
/// sklearn's default `batch_size = min(200, n_samples)`.
const MAX_BATCH: usize = 200;
/// Bytes of one [`StepState`].
const STEP_BYTES: u64 = std::mem::size_of::<StepState>() as u64;

/// Options of [`c2st`]. The defaults are the benchmark's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct C2stOptions {
    /// Seed of the fold assignment, the initialisation and the minibatch order
    /// (sbibm uses `random_state=1`). Default 1.
    pub seed: u64,
    /// Number of cross-validation folds (≥ 2). Default 5.
    pub folds: usize,
    /// Upper bound on training epochs per fold (sklearn's `max_iter`). Default 10,000.
    pub max_epochs: usize,
    /// Keep only the first `max_rows` rows of each set (0 = all rows). Default 10,000,
    /// like the benchmark pipeline.
    pub max_rows: usize,
    /// z-score both sets with the first set's mean and std (ddof = 1): the paper's
    /// "C2ST_Z". Default true.
    pub z_score: bool,
    /// How each optimiser step is computed ([`C2stStep`]); the same mathematics on
    /// every path. Default [`C2stStep::Auto`]: chosen per adapter and network.
    pub step: C2stStep,
    /// Train all folds together, every dispatch of a step covering every fold still
    /// training (workgroup z = a fold's slot), when the folds have equal sizes (the row
    /// count a multiple of `folds`); otherwise, and when false, the folds are trained one after
    /// another. The same numbers either way (each fold's initialisation, minibatch
    /// order, Adam steps and stopping epoch are its own); together is ~`folds`× fewer
    /// dispatches. Default true.
    pub batch_folds: bool,
}

impl Default for C2stOptions {
    fn default() -> Self {
        C2stOptions {
            seed: 1,
            folds: 5,
            max_epochs: 10_000,
            max_rows: 10_000,
            z_score: true,
            step: C2stStep::Auto,
            batch_folds: true,
        }
    }
}

/// Widest hidden layer the fused kernels handle (`MAXH` in `shaders/c2st_mlp.wgsl`).
const FUSED_MAX_WIDTH: usize = 64;

/// How one optimiser step of the classifier is computed ([`C2stOptions::step`]). Every
/// path computes the same mathematics; they differ in summation order (so in rounding)
/// and in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum C2stStep {
    /// [`C2stStep::Lanes`] where the device runs the CPU matmul variant
    /// ([`crate::gpu::MatmulVariant::Cpu`]) and the network allows it (d even and at
    /// most 12); else [`C2stStep::Narrow`] for hidden widths up to 64 on other devices;
    /// else [`C2stStep::Matmul`].
    #[default]
    Auto,
    /// The fused matmul kernel: 11 dispatches per step (gather, 3 products forward,
    /// the loss, 5 products backward, Adam).
    Matmul,
    /// Two per-element kernels for narrow networks (`shaders/c2st_mlp.wgsl`: one thread
    /// per minibatch row, one per parameter; hidden width 10·d ≤ 64): 5 dispatches.
    /// Networks wider than 64 use [`C2stStep::Matmul`] instead.
    Narrow,
    /// Two kernels for CPU adapters whose subgroups are their 8 SIMD lanes
    /// (`shaders/c2st_lanes.wgsl`: lanes own minibatch rows for the forward and
    /// backward pass, output rows for the weight gradients; they gather the minibatch
    /// and sum the step's loss themselves): 3 dispatches. Needs
    /// [`crate::gpu::MatmulVariant::Cpu`] and d even, at most 12 (hidden width a
    /// multiple of 4, at most 128); [`c2st`] returns [`Error::Invalid`] otherwise. On
    /// lavapipe it is 1.1–1.3× (d = 10) to 1.7–2.0× (d = 2) faster per fold-epoch than
    /// the matmul path (BENCHMARKS.md, "Seventh round" and "Eighth round").
    Lanes,
}

/// Whether the `c2st_lanes` kernels can run the network of dimension `d` (see
/// [`C2stStep::Lanes`]).
fn lanes_fit(d: usize) -> bool {
    let h = 10 * d;
    h.is_multiple_of(4) && (h * d).is_multiple_of(4) && h <= kernels::c2st::LANES_MAX_WIDTH && d <= kernels::c2st::LANES_MAX_FEATURES
}

/// The path [`C2stOptions::step`] resolves to on `gpu` for dimension `d`.
fn resolve_step(step: C2stStep, gpu: &Gpu, d: usize) -> Result<Path> {
    let cpu = gpu.matmul_variant() == crate::gpu::MatmulVariant::Cpu;
    let narrow = 10 * d <= FUSED_MAX_WIDTH;
    Ok(match step {
        C2stStep::Auto if cpu && lanes_fit(d) => Path::Lanes,
        C2stStep::Auto if !cpu && narrow => Path::Narrow,
        C2stStep::Auto | C2stStep::Matmul => Path::Matmul,
        C2stStep::Narrow if narrow => Path::Narrow,
        C2stStep::Narrow => Path::Matmul,
        C2stStep::Lanes if cpu && lanes_fit(d) => Path::Lanes,
        C2stStep::Lanes => {
            return Err(Error::invalid(format!(
                "c2st: the lanes step needs the CPU kernel variant (subgroups of 8 lanes) and an even dimension of at most {}; here the variant is {:?} and d = {d}",
                kernels::c2st::LANES_MAX_FEATURES.min(kernels::c2st::LANES_MAX_WIDTH / 10),
                gpu.matmul_variant()
            )))
        }
    })
}

/// The kernels one step runs on (the resolved [`C2stStep`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Matmul,
    Narrow,
    Lanes,
}

/// Details of one C2ST run (see [`c2st_report`]).
#[derive(Clone, Debug, PartialEq)]
pub struct C2stReport {
    /// The C2ST score: mean held-out accuracy over the folds, rounded to f32 like sbibm.
    /// 0.5 = indistinguishable, 1.0 = perfectly separable.
    pub score: f64,
    /// Held-out accuracy of each fold.
    pub fold_accuracies: Vec<f64>,
    /// Training epochs of each fold (sklearn's `n_iter_`).
    pub epochs: Vec<usize>,
    /// Final training loss of each fold (sklearn's `loss_`, L2 term included).
    pub final_losses: Vec<f64>,
    /// Fold-epochs computed: the sum over epochs of the folds each epoch's dispatches
    /// covered. Equals the sum of `epochs` (a fold that stops hands its slot to one
    /// still training, so no stopped fold is computed).
    pub slot_epochs: usize,
    /// Rows used from each set (after `max_rows`).
    pub rows: (usize, usize),
    /// GPU submissions made (counted on the context, so other work on it at the same
    /// time counts too).
    pub submissions: u64,
    /// Compute dispatches recorded (counted like `submissions`).
    pub dispatches: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Classifier two-sample test between sample sets `a` and `b`, as the sbibm benchmark
/// computes it (metric "C2ST_Z"; recipe in the [module docs](self)).
///
/// `a` is the reference set `[n, d]` and `b` the set to test `[m, d]`, both row-major,
/// in the same (arbitrary) units; only the first `opts.max_rows` rows of each are used,
/// and z-scoring uses `a`'s statistics (a column of `a` with zero spread is divided by
/// 1, where sbibm would produce NaN). Returns the mean held-out accuracy in [0, 1]:
/// ≈ 0.5 when the sets come from one distribution, 1 when they are separable.
///
/// # Errors
/// [`Error::Invalid`] when `d` is 0, a slice length is not a multiple of `d`, a set has
/// fewer rows than 1 or the two together fewer than `folds`, `folds` < 2, or a value
/// is NaN/infinite (the benchmark records NaN then); [`Error::Gpu`] /
/// [`Error::DeviceLost`] for GPU failures; [`Error::Invalid`] if training diverges.
pub fn c2st(gpu: &Gpu, a: &[f64], b: &[f64], d: usize, opts: &C2stOptions) -> Result<f64> {
    Ok(c2st_report(gpu, a, b, d, opts)?.score)
}

/// Row counts and offsets of one fold.
#[derive(Clone, Copy, Debug)]
struct Fold {
    test_start: usize,
    test_len: usize,
    n_train: usize,
    batch: usize,
    steps: usize,
}

/// Parameter offsets in the flat buffer: all weights first (L2-penalised), then biases.
#[derive(Clone, Copy, Debug)]
struct Net {
    d: usize,
    h: usize,
    w1: usize,
    w2: usize,
    w3: usize,
    n_weights: usize,
    b1: usize,
    b2: usize,
    b3: usize,
    len: usize,
}

impl Net {
    fn new(d: usize) -> Net {
        let h = 10 * d;
        let w1 = 0;
        let w2 = w1 + h * d;
        let w3 = w2 + h * h;
        let n_weights = w3 + h;
        let b1 = n_weights;
        let b2 = b1 + h;
        let b3 = b2 + h;
        Net { d, h, w1, w2, w3, n_weights, b1, b2, b3, len: b3 + 1 }
    }

    /// sklearn's `_init_coef` for ReLU networks: U(−b, b), b = sqrt(6 / (fan_in + fan_out)),
    /// for weights and biases alike.
    fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc257_0001);
        let mut p = vec![0f32; self.len];
        for (w, b, fan_in, fan_out) in
            [(self.w1, self.b1, self.d, self.h), (self.w2, self.b2, self.h, self.h), (self.w3, self.b3, self.h, 1)]
        {
            let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
            for v in &mut p[w..w + fan_in * fan_out] {
                *v = rng.random_range(-bound..bound) as f32;
            }
            for v in &mut p[b..b + fan_out] {
                *v = rng.random_range(-bound..bound) as f32;
            }
        }
        p
    }

    /// `out = act(x Wᵀ + b)` for a layer with weights at `w` (`[fan_out, fan_in]`).
    #[allow(clippy::too_many_arguments)]
    fn linear(rows: usize, fan_in: usize, fan_out: usize, w: usize, b: usize, x: Mat, act: Op, out: Mat) -> Matmul {
        let mut mm = Matmul::new(rows, fan_out, fan_in, x, Mat::strided(Buf::Params, w, 1, fan_in), out);
        mm.bias = Some(Mat::rows(Buf::Params, b, fan_out));
        mm.act = act;
        mm
    }

    /// Forward pass of `rows` rows of `x` into `h1`, `h2` (post-ReLU) and logits `z`,
    /// with the parameters at `params[p0 ..]`; `batch` as [`Matmul::batch`] (folds).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        pb: &mut ProgramBuilder,
        rows: usize,
        p0: usize,
        x: usize,
        h1: usize,
        h2: usize,
        z: usize,
        batch: Option<(usize, usize)>,
    ) {
        let (d, h) = (self.d, self.h);
        let xa = Mat::rows(Buf::Acts, x, d);
        let h1m = Mat::rows(Buf::Acts, h1, h);
        let h2m = Mat::rows(Buf::Acts, h2, h);
        let zm = Mat::rows(Buf::Acts, z, 1);
        for mut mm in [
            Net::linear(rows, d, h, p0 + self.w1, p0 + self.b1, xa, Op::Relu, h1m),
            Net::linear(rows, h, h, p0 + self.w2, p0 + self.b2, h1m, Op::Relu, h2m),
            Net::linear(rows, h, 1, p0 + self.w3, p0 + self.b3, h2m, Op::Id, zm),
        ] {
            mm.batch = batch;
            pb.matmul(&mm);
        }
    }
}

/// Workspace offsets (f32 elements of `acts`). The minibatch workspace (`xb` to `bce`)
/// is fold slot 0's; slot z's lies `z · stride` further (the folds trained together).
#[derive(Clone, Copy, Debug)]
struct Work {
    stats: usize,
    x: usize,
    y: usize,
    /// Per-step loss sums, `[slots, max_steps]`.
    loss: usize,
    h1t: usize,
    h2t: usize,
    zt: usize,
    acc: usize,
    xb: usize,
    yb: usize,
    h1: usize,
    h2: usize,
    z: usize,
    dz: usize,
    dh1: usize,
    dh2: usize,
    wsq: usize,
    bce: usize,
    /// Which fold of the group each slot trains, `[slots]` (small integers as f32;
    /// `c2st_batch` reads it).
    slot_fold: usize,
    /// Fold slots (folds trained together: `folds`, else 1).
    slots: usize,
    /// The fold stride of every per-fold buffer (f32 elements, a multiple of 64): of the
    /// minibatch workspace here and of the parameters, gradients and Adam moments.
    stride: usize,
    len: usize,
}

/// As [`c2st`], with the per-fold details (accuracies, epochs, final losses), the
/// number of GPU submissions and the wall time.
///
/// # Errors
/// As [`c2st`].
pub fn c2st_report(gpu: &Gpu, a: &[f64], b: &[f64], d: usize, opts: &C2stOptions) -> Result<C2stReport> {
    let started = Instant::now();
    let (submissions0, dispatches0) = (gpu.submission_count(), gpu.dispatch_count());
    let (n_a, n_b) = checked_rows(a, b, d, opts)?;
    let (a, b) = (&a[..n_a * d], &b[..n_b * d]);
    let n = n_a + n_b;

    let net = Net::new(d);
    let path = resolve_step(opts.step, gpu, d)?;
    let folds = kfold(n, opts.folds);
    // Folds of equal size share every shape: they train together.
    let together = opts.batch_folds && n.is_multiple_of(opts.folds);
    let work = Work::new(&net, n, &folds, if together { opts.folds } else { 1 });
    let per_fold = (work.slots * work.stride) as u64;
    if work.len as u64 > gpu.max_binding_floats() || (n * d) as u64 > gpu.max_binding_floats() || per_fold > gpu.max_binding_floats() {
        return Err(Error::invalid(format!(
            "c2st: {n} rows of dimension {d} exceed the device's largest storage binding; lower max_rows"
        )));
    }
    let init = net.init(opts.seed);
    let bufs = Buffers::new(gpu, a, b, &work, max_over(&folds, |f| f.steps));
    let binds = bufs.bindings();
    let base = base_params(d, n_a, n, opts.seed, &work);
    prepare_rows(gpu, binds, opts.z_score, &base, &work)?;

    let trainer = Trainer { gpu, binds, bufs: &bufs, net: &net, work: &work, init: &init, path, max_epochs: opts.max_epochs };
    let mut epochs = vec![0; opts.folds];
    let mut final_losses = vec![f64::NAN; opts.folds];
    let mut eval_progs = Vec::with_capacity(opts.folds);
    let mut slot_epochs = 0;
    // Groups of folds trained together: all of them, or one at a time.
    let group = if together { opts.folds } else { 1 };
    for first in (0..opts.folds).step_by(group) {
        let fp = folds[first].params(base, first);
        let (trained, computed) = trainer.train(first, group, &folds[first], fp)?;
        slot_epochs += computed;
        for (z, e, loss, prog) in trained {
            epochs[first + z] = e;
            final_losses[first + z] = loss;
            eval_progs.push(prog);
        }
    }
    let counts = gpu.read_f32(&bufs.acts, work.acc as u64, opts.folds)?;
    drop(eval_progs);
    let fold_accuracies: Vec<f64> = counts.iter().zip(&folds).map(|(c, f)| *c as f64 / f.test_len as f64).collect();
    let mean = fold_accuracies.iter().sum::<f64>() / opts.folds as f64;
    Ok(C2stReport {
        score: mean as f32 as f64,
        fold_accuracies,
        epochs,
        final_losses,
        slot_epochs,
        rows: (n_a, n_b),
        submissions: gpu.submission_count() - submissions0,
        dispatches: gpu.dispatch_count() - dispatches0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Checks the inputs of [`c2st_report`] and returns the rows kept from each set (after
/// `opts.max_rows`); the errors are those listed at [`c2st`], except the GPU ones.
fn checked_rows(a: &[f64], b: &[f64], d: usize, opts: &C2stOptions) -> Result<(usize, usize)> {
    if d == 0 {
        return Err(Error::invalid("c2st: the dimension d must be positive"));
    }
    if !a.len().is_multiple_of(d) || !b.len().is_multiple_of(d) {
        return Err(Error::invalid(format!(
            "c2st: sample lengths {} and {} are not multiples of d = {d}",
            a.len(),
            b.len()
        )));
    }
    if opts.folds < 2 {
        return Err(Error::invalid("c2st: at least 2 folds are needed"));
    }
    let cap = |rows: usize| if opts.max_rows == 0 { rows } else { rows.min(opts.max_rows) };
    let (n_a, n_b) = (cap(a.len() / d), cap(b.len() / d));
    if n_a == 0 || n_b == 0 || n_a + n_b < opts.folds {
        return Err(Error::invalid(format!(
            "c2st: too few rows ({n_a} and {n_b}) for {} folds",
            opts.folds
        )));
    }
    for (name, set) in [("first", &a[..n_a * d]), ("second", &b[..n_b * d])] {
        if let Some(i) = set.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "c2st: the {name} sample set holds a non-finite value ({}) in row {}, column {}",
                set[i],
                i / d + 1,
                i % d + 1
            )));
        }
    }
    Ok((n_a, n_b))
}

/// sklearn's `KFold(folds)` layout of `n` rows (already shuffled into fold order on the
/// GPU): contiguous test blocks, the first `n % folds` folds one row longer.
fn kfold(n: usize, folds: usize) -> Vec<Fold> {
    let mut out = Vec::with_capacity(folds);
    let mut start = 0;
    for f in 0..folds {
        let test_len = n / folds + usize::from(f < n % folds);
        let n_train = n - test_len;
        let batch = n_train.min(MAX_BATCH);
        out.push(Fold { test_start: start, test_len, n_train, batch, steps: n_train.div_ceil(batch) });
        start += test_len;
    }
    out
}

/// The largest `field` over the folds (1 when there are none).
fn max_over(folds: &[Fold], field: impl Fn(&Fold) -> usize) -> usize {
    folds.iter().map(field).max().unwrap_or(1)
}

impl Fold {
    /// The kernels' parameters for fold `fi` (its random stream is `fi`).
    fn params(&self, base: C2stParams, fi: usize) -> C2stParams {
        C2stParams {
            n_train: self.n_train as u32,
            test_start: self.test_start as u32,
            test_len: self.test_len as u32,
            batch: self.batch as u32,
            stream: fi as u32,
            ..base
        }
    }
}

impl Work {
    /// Lays out the workspace for `n` rows of the network `net`: the shuffled rows,
    /// `slots` fold slots of minibatch workspace sized for the largest minibatch over
    /// `folds` (`slots` = the folds trained together), loss slots for the longest epoch
    /// per fold slot, the test workspace for the largest test block (one fold is
    /// evaluated at a time) and one accuracy count per fold. The fold stride also
    /// covers the network's parameters (the parameter buffers use it too).
    fn new(net: &Net, n: usize, folds: &[Fold], slots: usize) -> Work {
        let (d, h) = (net.d, net.h);
        let max_batch = max_over(folds, |f| f.batch);
        let max_steps = max_over(folds, |f| f.steps);
        let max_test = max_over(folds, |f| f.test_len);
        // One fold slot's workspace, relative to the slot's start.
        let mut fa = Arena::default();
        let rel = [
            fa.alloc(max_batch * d), // xb
            fa.alloc(max_batch),     // yb
            fa.alloc(max_batch * h), // h1
            fa.alloc(max_batch * h), // h2
            fa.alloc(max_batch),     // z
            fa.alloc(max_batch),     // dz
            fa.alloc(max_batch * h), // dh1
            fa.alloc(max_batch * h), // dh2
            fa.alloc(1),             // wsq
            fa.alloc(max_batch),     // bce
        ];
        let stride = fa.len().max(net.len).next_multiple_of(64);
        let mut ar = Arena::default();
        let stats = ar.alloc(2 * d);
        let x = ar.alloc(n * d);
        let y = ar.alloc(n);
        let loss = ar.alloc(slots * max_steps);
        let h1t = ar.alloc(max_test * h);
        let h2t = ar.alloc(max_test * h);
        let zt = ar.alloc(max_test);
        let acc = ar.alloc(folds.len());
        let slot_fold = ar.alloc(slots);
        let f0 = ar.alloc(slots * stride);
        let [xb, yb, h1, h2, z, dz, dh1, dh2, wsq, bce] = rel.map(|r| f0 + r);
        Work {
            stats,
            x,
            y,
            loss,
            h1t,
            h2t,
            zt,
            acc,
            xb,
            yb,
            h1,
            h2,
            z,
            dz,
            dh1,
            dh2,
            wsq,
            bce,
            slot_fold,
            slots,
            stride,
            len: ar.len(),
        }
    }
}

/// The GPU buffers of one C2ST run.
struct Buffers {
    /// The rows of both sets, `[n, d]` (f32).
    data: wgpu::Buffer,
    /// The workspace laid out by [`Work`].
    acts: wgpu::Buffer,
    /// The parameters of each fold slot, `[slots, stride]` (slot z's network at
    /// `z · stride`, then padding).
    params: wgpu::Buffer,
    /// Gradients, laid out like `params`.
    grads: wgpu::Buffer,
    /// Adam's first and second moments, laid out like `params`.
    m: wgpu::Buffer,
    v: wgpu::Buffer,
    /// The step uniform the kernels read.
    step: wgpu::Buffer,
    /// One epoch's [`StepState`]s, copied into `step` before each step.
    step_table: wgpu::Buffer,
}

impl Buffers {
    /// Uploads the rows of `a` then `b` and allocates the rest (workspace, the
    /// per-slot parameters, gradients and moments, a step table of `max_steps`
    /// entries); the parameters are written when a fold starts.
    fn new(gpu: &Gpu, a: &[f64], b: &[f64], work: &Work, max_steps: usize) -> Buffers {
        let rows: Vec<f32> = a.iter().chain(b.iter()).map(|&v| v as f32).collect();
        let per_fold = (work.slots * work.stride) as u64 * 4;
        Buffers {
            data: gpu.storage_from("fmpe c2st rows", &rows),
            acts: gpu.storage("fmpe c2st workspace", work.len as u64 * 4),
            params: gpu.storage("fmpe c2st params", per_fold),
            grads: gpu.storage("fmpe c2st grads", per_fold),
            m: gpu.storage("fmpe c2st adam m", per_fold),
            v: gpu.storage("fmpe c2st adam v", per_fold),
            step: gpu.uniform_from("fmpe c2st step", bytemuck::bytes_of(&StepState::default())),
            step_table: gpu.storage("fmpe c2st step table", max_steps as u64 * STEP_BYTES),
        }
    }

    fn bindings(&self) -> Bindings<'_> {
        Bindings {
            acts: Some(&self.acts),
            params: Some(&self.params),
            grads: Some(&self.grads),
            data: Some(&self.data),
            step: Some(&self.step),
            moments: Some((&self.m, &self.v)),
            params_tex: None,
        }
    }
}

/// The kernel parameters shared by every C2ST dispatch (workspace offsets, row counts,
/// seed, L2 penalty, fold stride); the per-fold and per-program fields are filled in
/// later.
fn base_params(d: usize, n_a: usize, n: usize, seed: u64, work: &Work) -> C2stParams {
    C2stParams {
        rows: 0,
        d: d as u32,
        n_total: n as u32,
        n_a: n_a as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        x_off: work.x as u32,
        y_off: work.y as u32,
        xb_off: work.xb as u32,
        yb_off: work.yb as u32,
        z_off: work.z as u32,
        dz_off: work.dz as u32,
        loss_off: work.loss as u32,
        wsq_off: work.wsq as u32,
        alpha: ALPHA as f32,
        fold_stride: work.stride as u32,
        slot_fold_off: work.slot_fold as u32,
        ..Default::default()
    }
}

/// Setup, one submission: z-score all rows with the first set's statistics (when
/// `z_score`), then shuffle them with their labels into fold order.
fn prepare_rows(gpu: &Gpu, binds: Bindings<'_>, z_score: bool, base: &C2stParams, work: &Work) -> Result<()> {
    let (n_a, n, d) = (base.n_a, base.n_total, base.d);
    let mut pb = ProgramBuilder::new(gpu);
    if z_score {
        let sp = StatsParams { rows: n_a, cols: d, off: 0, stats_off: work.stats as u32 };
        stats::column_stats(&mut pb, &sp);
        stats::zscore(&mut pb, &StatsParams { rows: n, ..sp });
    }
    kernels::c2st::c2st_shuffle(&mut pb, &C2stParams { rows: n, ..*base });
    pb.build(gpu, binds)?.run(gpu)
}

/// Everything the per-fold training and evaluation share.
struct Trainer<'a> {
    gpu: &'a Gpu,
    binds: Bindings<'a>,
    bufs: &'a Buffers,
    net: &'a Net,
    work: &'a Work,
    /// The initial parameters, written for every fold at its start.
    init: &'a [f32],
    /// The kernels the steps run on.
    path: Path,
    max_epochs: usize,
}

/// What [`Trainer::train`] returns for each fold of a group: its index in the group, its
/// epochs, its last epoch's training loss, and its evaluation program (kept until the
/// final readback of the accuracy counts).
type FoldResult = (usize, usize, f64, Program);

impl Trainer<'_> {
    /// Trains the classifier on the `count` folds `first ..` (all of the shape `fold`;
    /// fold `first + k`'s test block at `fp.test_start + k · test_len`), each from the
    /// initial parameters, until sklearn's stopping rule (per fold) or `max_epochs`:
    /// one submission and one readback (every slot's per-step losses) per epoch. Fold k
    /// starts in slot k. A fold is evaluated (one submission) right after the epoch it
    /// stops at, before the next epoch changes its parameters; then the fold in the
    /// highest slot still training moves into its slot (parameters and Adam moments
    /// copied at the start of the next epoch's command buffer; `c2st_batch` reads which
    /// fold each slot trains), and every dispatch covers one slot fewer. So each fold
    /// is computed for its own epochs only, not for the longest fold's. Returns each
    /// fold's [`FoldResult`] and the slot-epochs computed.
    fn train(&self, first: usize, count: usize, fold: &Fold, fp: C2stParams) -> Result<(Vec<FoldResult>, usize)> {
        let (gpu, bufs, work) = (self.gpu, self.bufs, self.work);
        // Programs for the first `k` slots, built when first needed.
        let mut programs: Vec<Option<(Program, Option<Program>)>> = (0..=count).map(|_| None).collect();
        let last_rows = fold.n_train - (fold.steps - 1) * fold.batch;

        // sklearn clones the classifier per fold with the same random_state: same init.
        let mut tiled = vec![0f32; count * work.stride];
        for slot in tiled.chunks_mut(work.stride) {
            slot[..self.init.len()].copy_from_slice(self.init);
        }
        gpu.queue.write_buffer(&bufs.params, 0, bytemuck::cast_slice(&tiled));
        let mut t: u64 = 0;
        let mut stopping: Vec<NoImprovement> = (0..count).map(|_| NoImprovement::new()).collect();
        let mut results: Vec<Option<FoldResult>> = (0..count).map(|_| None).collect();
        let mut loss = vec![f64::NAN; count];
        let mut epoch = 0usize;
        // Slot z trains fold slot_fold[z]; slots below `active` are computed, all of them
        // folds still training.
        let mut slot_fold: Vec<usize> = (0..count).collect();
        let write_table = |slot_fold: &[usize]| {
            let order: Vec<f32> = slot_fold.iter().map(|&k| k as f32).collect();
            gpu.queue.write_buffer(&bufs.acts, work.slot_fold as u64 * 4, bytemuck::cast_slice(&order));
        };
        write_table(&slot_fold);
        let mut moves: Vec<(usize, usize)> = Vec::new();
        let mut active = count;
        let mut slot_epochs = 0usize;
        while epoch < self.max_epochs && active > 0 {
            if programs[active].is_none() {
                let fpk = C2stParams { loss_stride: fold.steps as u32, ..fp };
                let full = step_program(gpu, self.binds, self.net, work, fpk, fold.batch, self.path, active)?;
                let last = if last_rows != fold.batch {
                    Some(step_program(gpu, self.binds, self.net, work, fpk, last_rows, self.path, active)?)
                } else {
                    None
                };
                programs[active] = Some((full, last));
            }
            let (full, last) = programs[active].as_ref().expect("built above");
            let table = epoch_steps(&mut t, epoch, fold.steps);
            let slots = self.run_epoch(fold.steps, active, &table, epoch == 0, &moves, full, last.as_ref())?;
            moves.clear();
            slot_epochs += active;
            epoch += 1;
            for z in 0..active {
                let k = slot_fold[z];
                loss[k] = slots[z * fold.steps..(z + 1) * fold.steps].iter().map(|&x| x as f64).sum::<f64>()
                    / fold.n_train as f64;
                if !loss[k].is_finite() {
                    return Err(Error::invalid(format!(
                        "c2st: the classifier's training loss is {} in fold {}, epoch {epoch}",
                        loss[k],
                        first + k + 1
                    )));
                }
                if stopping[k].update(loss[k]) || epoch == self.max_epochs {
                    results[k] = Some((k, epoch, loss[k], self.evaluate(first + k, k, z, fold, fp)?));
                }
            }
            // Fill each stopped slot with the highest slot still training.
            let mut z = 0;
            while z < active {
                if results[slot_fold[z]].is_none() {
                    z += 1;
                } else if results[slot_fold[active - 1]].is_some() {
                    active -= 1;
                } else {
                    moves.push((active - 1, z));
                    slot_fold[z] = slot_fold[active - 1];
                    active -= 1;
                    z += 1;
                }
            }
            if !moves.is_empty() {
                write_table(&slot_fold[..active]);
            }
        }
        // max_epochs = 0: evaluate the initial networks.
        for k in 0..count {
            if results[k].is_none() {
                results[k] = Some((k, epoch, loss[k], self.evaluate(first + k, k, k, fold, fp)?));
            }
        }
        Ok((results.into_iter().map(|r| r.expect("every fold evaluated")).collect(), slot_epochs))
    }

    /// One epoch of `steps` steps of the first `active` fold slots, in one command
    /// buffer and one submission: first each `(from, to)` of `moves` (a fold's
    /// parameters and Adam moments from slot `from` to slot `to`, through `from`'s
    /// gradients), then for each step its Adam state from `table` into the step uniform
    /// and the step program (`last` for the final step when its minibatch is partial). Clears the Adam moments
    /// first when `first`. Returns the per-step loss sums, `[active, steps]`, read
    /// back once.
    #[allow(clippy::too_many_arguments)]
    fn run_epoch(
        &self,
        steps: usize,
        active: usize,
        table: &[StepState],
        first: bool,
        moves: &[(usize, usize)],
        full: &Program,
        last: Option<&Program>,
    ) -> Result<Vec<f32>> {
        let (gpu, bufs) = (self.gpu, self.bufs);
        gpu.queue.write_buffer(&bufs.step_table, 0, bytemuck::cast_slice(table));
        let mut enc = gpu.encoder();
        if first {
            enc.clear_buffer(&bufs.m, 0, None);
            enc.clear_buffer(&bufs.v, 0, None);
        }
        // A copy cannot stay within one buffer: each goes through the gradients of slot
        // `from` (recomputed at every step, and that slot is no longer computed).
        let bytes = self.work.stride as u64 * 4;
        for &(from, to) in moves {
            for buf in [&bufs.params, &bufs.m, &bufs.v] {
                enc.copy_buffer_to_buffer(buf, from as u64 * bytes, &bufs.grads, from as u64 * bytes, bytes);
                enc.copy_buffer_to_buffer(&bufs.grads, from as u64 * bytes, buf, to as u64 * bytes, bytes);
            }
        }
        for s in 0..steps {
            enc.copy_buffer_to_buffer(&bufs.step_table, s as u64 * STEP_BYTES, &bufs.step, 0, STEP_BYTES);
            let prog = if s + 1 == steps { last.unwrap_or(full) } else { full };
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            prog.record(gpu, &mut pass)?;
        }
        let staging = gpu.copy_to_staging(&mut enc, &bufs.acts, self.work.loss as u64, active * steps);
        gpu.submit(enc)?;
        gpu.map_staging(staging, active * steps)
    }

    /// Held-out accuracy of fold `fi` (fold `k` of its group), trained in slot `slot`,
    /// one submission: the count of correctly classified test rows goes to
    /// `acts[acc + fi]` (read back for all folds at the end). `fp` is the parameters of
    /// the group's first fold (fold k's test block follows k test blocks after it).
    /// Returns the program, which the caller keeps until that readback.
    fn evaluate(&self, fi: usize, k: usize, slot: usize, fold: &Fold, fp: C2stParams) -> Result<Program> {
        let (gpu, work) = (self.gpu, self.work);
        let mut pb = ProgramBuilder::new(gpu);
        let test_start = fold.test_start + k * fold.test_len;
        let x_test = work.x + test_start * self.net.d;
        // A batch of one on the training step's pipelines (no compilation of others).
        let one = Some((1, work.stride));
        self.net.forward(&mut pb, fold.test_len, slot * work.stride, x_test, work.h1t, work.h2t, work.zt, one);
        kernels::c2st::c2st_accuracy(
            &mut pb,
            &C2stParams {
                rows: fold.test_len as u32,
                test_start: test_start as u32,
                z_off: work.zt as u32,
                out_off: (work.acc + fi) as u32,
                ..fp
            },
        );
        let prog = pb.build(gpu, self.binds)?;
        prog.run(gpu)?;
        Ok(prog)
    }
}

/// The Adam state of each of an epoch's `steps` steps, advancing the global step count
/// `t`. sklearn: lr_t = lr sqrt(1 − β2^t) / (1 − β1^t), update m / (sqrt(v) + ε): the
/// shared kernel's form with bias_corr1 = (1 − β1^t) / sqrt(1 − β2^t) and bias_corr2 = 1.
fn epoch_steps(t: &mut u64, epoch: usize, steps: usize) -> Vec<StepState> {
    let mut table = Vec::with_capacity(steps);
    for s in 0..steps {
        *t += 1;
        let ti = (*t).min(i32::MAX as u64) as i32;
        table.push(StepState {
            step: *t as u32,
            epoch: epoch as u32,
            step_in_epoch: s as u32,
            pad0: 0,
            lr: LR as f32,
            bias_corr1: ((1.0 - BETA1.powi(ti)) / (1.0 - BETA2.powi(ti)).sqrt()) as f32,
            bias_corr2: 1.0,
            pad1: 0.0,
        });
    }
    table
}

/// sklearn's `_update_no_improvement_count` (early_stopping=False): training stops when
/// the epoch loss has not improved on the best by `TOL` for more than
/// `N_ITER_NO_CHANGE` consecutive epochs.
struct NoImprovement {
    best: f64,
    count: usize,
}

impl NoImprovement {
    fn new() -> NoImprovement {
        NoImprovement { best: f64::INFINITY, count: 0 }
    }

    /// Records one epoch's training loss; true when training should stop.
    fn update(&mut self, loss: f64) -> bool {
        if loss > self.best - TOL {
            self.count += 1;
        } else {
            self.count = 0;
        }
        if loss < self.best {
            self.best = loss;
        }
        self.count > N_ITER_NO_CHANGE
    }
}

/// Records one optimiser step on a minibatch of `rows` rows of the first `slots` fold
/// slots (every dispatch covers them all, workgroup z = slot): 11 dispatches on the
/// matmul path, 5 on the narrow path, 3 on the lanes path (whose kernels gather the
/// minibatch and file the loss themselves). Binds the parameters as the misc
/// kernels' `data` (`c2st_bce` sums the squared weights from there).
#[allow(clippy::too_many_arguments)]
fn step_program(
    gpu: &Gpu,
    binds: Bindings<'_>,
    net: &Net,
    w: &Work,
    fp: C2stParams,
    rows: usize,
    path: Path,
    slots: usize,
) -> Result<Program> {
    let (d, h) = (net.d, net.h);
    let p = C2stParams { rows: rows as u32, scale: 1.0 / rows as f32, ..fp };
    let batch = Some((slots, w.stride));
    let mut pb = ProgramBuilder::new(gpu);
    if path != Path::Lanes {
        kernels::c2st::c2st_batch(&mut pb, &p, slots);
    }
    if path != Path::Matmul {
        let mp = MlpParams {
            rows: rows as u32,
            d: d as u32,
            h: h as u32,
            n_params: net.len as u32,
            n_weights: net.n_weights as u32,
            w1: net.w1 as u32,
            w2: net.w2 as u32,
            w3: net.w3 as u32,
            b1: net.b1 as u32,
            b2: net.b2 as u32,
            b3: net.b3 as u32,
            xb_off: w.xb as u32,
            yb_off: w.yb as u32,
            h1_off: w.h1 as u32,
            h2_off: w.h2 as u32,
            d1_off: w.dh1 as u32,
            d2_off: w.dh2 as u32,
            dz_off: w.dz as u32,
            bce_off: w.bce as u32,
            wsq_off: w.wsq as u32,
            scale: 1.0 / rows as f32,
            fold_stride: w.stride as u32,
            x_off: p.x_off,
            y_off: p.y_off,
            n_train: p.n_train,
            test_start: p.test_start,
            test_len: p.test_len,
            batch: p.batch,
            seed_lo: p.seed_lo,
            seed_hi: p.seed_hi,
            stream: p.stream,
            slot_fold_off: p.slot_fold_off,
            loss_off: p.loss_off,
            loss_stride: p.loss_stride,
            alpha: p.alpha,
            pad: [0.0; 3],
        };
        if path == Path::Lanes {
            // The gather and the loss sum happen inside these two.
            kernels::c2st::c2st_lanes_rows(&mut pb, &mp, slots);
            kernels::c2st::c2st_lanes_grads(&mut pb, &mp, slots);
        } else {
            kernels::c2st::c2st_mlp_rows(&mut pb, &mp, slots);
            kernels::c2st::c2st_mlp_grads(&mut pb, &mp, slots);
            kernels::c2st::c2st_loss_sum(&mut pb, &C2stParams { z_off: w.bce as u32, ..p }, slots);
        }
    } else {
        net.forward(&mut pb, rows, 0, w.xb, w.h1, w.h2, w.z, batch);
        // Loss + dL/dz; Σ W² from the weights (the parameters bound as `data`).
        kernels::c2st::c2st_bce(&mut pb, &C2stParams { n_w: net.n_weights as u32, w_off: 0, ..p }, slots);
        let act = |off: usize, cols: usize| Mat::rows(Buf::Acts, off, cols);
        // Weight (and, via the ones column, bias) gradient: gW = dYᵀ X, gb = Σ dY.
        let wgrad = |fan_out: usize, fan_in: usize, wo: usize, bo: usize, dy: Mat, x: Mat| {
            let mut mm = Matmul::new(fan_out, fan_in, rows, dy.t(), x, Mat::rows(Buf::Grads, wo, fan_in));
            mm.bias_grad = Some(bo);
            mm.batch = batch;
            mm
        };
        // Data gradient through W (`[fan_out, fan_in]`) times ReLU'(h).
        let dgrad = |fan_out: usize, fan_in: usize, wo: usize, dy: Mat, hpost: Mat, out: Mat| {
            let mut mm = Matmul::new(rows, fan_in, fan_out, dy, Mat::rows(Buf::Params, wo, fan_in), out);
            mm.aux = Some((hpost, Op::ReluGrad));
            mm.batch = batch;
            mm
        };
        pb.matmul(&wgrad(1, h, net.w3, net.b3, act(w.dz, 1), act(w.h2, h)));
        pb.matmul(&dgrad(1, h, net.w3, act(w.dz, 1), act(w.h2, h), act(w.dh2, h)));
        pb.matmul(&wgrad(h, h, net.w2, net.b2, act(w.dh2, h), act(w.h1, h)));
        pb.matmul(&dgrad(h, h, net.w2, act(w.dh2, h), act(w.h1, h), act(w.dh1, h)));
        pb.matmul(&wgrad(h, d, net.w1, net.b1, act(w.dh1, h), act(w.xb, d)));
    }
    // Adam over weights and biases of every slot, sklearn's L2 gradient α W / rows on
    // the weights only (the first n_weights parameters).
    let ap = AdamParams {
        n: net.len as u32,
        off: 0,
        batch_stride: w.stride as u32,
        decay_len: net.n_weights as u32,
        beta1: BETA1 as f32,
        beta2: BETA2 as f32,
        eps: EPS as f32,
        weight_decay: (ALPHA / rows as f64) as f32,
    };
    adam::adam_batched(&mut pb, &ap, slots);
    pb.build(gpu, Bindings { data: binds.params, ..binds })
}
