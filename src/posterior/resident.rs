//! GPU-resident draws for applications that render with wgpu: posterior samples written
//! straight into a `wgpu::Buffer` the application owns (e.g. a vertex buffer), either
//! submitted by fmpe ([`Posterior::sample_to_buffer`]) or recorded into the
//! application's own `wgpu::CommandEncoder` ([`Posterior::record_sample`]) so that the
//! application submits the whole draw with its frame. No result is read back unless the
//! application asks for it ([`ResidentLayout::record_readback`], asynchronous).
//!
//! # Layout ([`ResidentLayout`])
//! All values are `f32`, little-endian as the GPU stores them, starting at the byte
//! `offset` the application chose (a multiple of 4):
//! 1. the samples `[n, dim_theta]`, row-major, in original units (the model's
//!    z-scoring and parameter transform undone on the GPU), bytes
//!    `offset .. offset + 4 n dim_theta`: bind it as a vertex buffer with stride
//!    `4 dim_theta`;
//! 2. with log-densities, `log q(θ_i | x_o)` `[n]` (nats, original units) right after the
//!    samples: a column block, bound as a second vertex buffer with stride 4;
//! 3. with dopri5, the per-row unfinished flag `[n]` after that: 0.0 where the row
//!    reached t = 1 within the step budget ([`DrawTarget::dopri5_steps`]), 1.0 where it
//!    did not (its row is not a posterior sample; raise the budget).
//!
//! The values are bit for bit those [`Posterior::sample`] /
//! [`Posterior::sample_and_log_prob`] return (as `f32`) for the same options, when no
//! sample is rejected (see below) and, with dopri5, no row is flagged.
//!
//! # What these paths never do
//! * Redraw rejected samples: a resident draw has no host decision in it. It needs a
//!   model whose samples are always inside its box prior (trained with the parameter
//!   transform of the box, [`crate::transform::ThetaTransform::from_box`]), no box prior,
//!   or `reject_outside_prior: false` (then rows outside the box are kept; test them
//!   against [`Posterior::prior`] yourself). `max_seconds` is not used, and
//!   `reflect_outside_prior: Some(true)` is refused for a model whose samples can leave
//!   its box (under `None` the rejection rule above applies).
//! * Wait: [`Posterior::record_sample`] records only (fmpe submits nothing; the
//!   workspace uploads it makes with `Queue::write_buffer` run before the application's
//!   next submit); [`Posterior::sample_to_buffer`] submits one command buffer per chunk
//!   and returns without waiting. fmpe never calls `Device::poll` in these paths:
//!   the application polls (e.g. `PollType::Poll` once a frame) to run the callbacks
//!   of [`Readback::map_async`].
//!
//! # Errors on a borrowed device
//! Sizes, usages and offsets are checked before anything is recorded
//! ([`crate::Error::InvalidOption`]); pipeline and bind-group creation run inside fmpe's
//! own error scopes ([`crate::Error::Gpu`]). Errors raised later, when the application
//! finishes its encoder or submits it (a buffer destroyed in between, a buffer from
//! another device, device loss), are raised in the application's error scopes and
//! handlers, not fmpe's.

use super::{Posterior, PosteriorOptions};
use crate::error::{Error, Result};
use crate::ode::field::FieldKind;
use crate::ode::plan::{ChunkStart, CopyOut, PlanKey};
use crate::ode::workspace::max_chunk;
use crate::ode::{Direction, Solver};

/// Default dopri5 steps recorded per row in a resident draw ([`DrawTarget::dopri5_steps`]).
pub const DEFAULT_DOPRI5_STEP_BUDGET: usize = 64;

/// Where a resident draw's values lie in the application's buffer (bytes; see the
/// [module docs](self)): samples `[n, dim]`, then optionally log-densities `[n]`, then
/// optionally dopri5 unfinished flags `[n]`, all `f32`, from `offset` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResidentLayout {
    /// Samples (rows).
    pub n: usize,
    /// Dimension of θ (columns).
    pub dim: usize,
    /// Byte offset of the first sample in the buffer.
    pub offset: u64,
    /// Whether the log-density block follows the samples.
    pub log_prob: bool,
    /// Whether the dopri5 unfinished-flag block follows.
    pub unfinished: bool,
}

impl ResidentLayout {
    /// Byte range of the samples `[n, dim]` (vertex stride `4 dim`).
    pub fn samples_range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + 4 * (self.n * self.dim) as u64
    }

    /// Byte range of the log-densities `[n]`, if written.
    pub fn log_prob_range(&self) -> Option<std::ops::Range<u64>> {
        let start = self.samples_range().end;
        self.log_prob.then(|| start..start + 4 * self.n as u64)
    }

    /// Byte range of the dopri5 unfinished flags `[n]` (1.0: the row did not reach t = 1),
    /// if written.
    pub fn unfinished_range(&self) -> Option<std::ops::Range<u64>> {
        let start = self.log_prob_range().map_or(self.samples_range().end, |r| r.end);
        self.unfinished.then(|| start..start + 4 * self.n as u64)
    }

    /// Bytes written from `offset` on.
    pub fn bytes(&self) -> u64 {
        self.end() - self.offset
    }

    /// First byte after the last value written (the smallest buffer size that fits).
    pub fn end(&self) -> u64 {
        self.unfinished_range().or(self.log_prob_range()).unwrap_or(self.samples_range()).end
    }

    /// Records into `enc` a copy of this layout's bytes of `buffer` (which needs
    /// `COPY_SRC`) into a new `MAP_READ` staging buffer; after the application submits
    /// `enc`, [`Readback::map_async`] hands the values over without blocking.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `buffer` when it lacks `COPY_SRC` or is smaller
    /// than [`ResidentLayout::end`].
    pub fn record_readback(&self, device: &wgpu::Device, enc: &mut wgpu::CommandEncoder, buffer: &wgpu::Buffer) -> Result<Readback> {
        if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Err(Error::option("buffer", "a readback needs a buffer with COPY_SRC usage"));
        }
        check_fits(buffer, self)?;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fmpe resident readback"),
            size: self.bytes().max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.copy_buffer_to_buffer(buffer, self.offset, &staging, 0, self.bytes());
        Ok(Readback { staging, layout: *self })
    }
}

fn check_fits(buffer: &wgpu::Buffer, layout: &ResidentLayout) -> Result<()> {
    if buffer.size() < layout.end() {
        return Err(Error::option(
            "buffer",
            format!(
                "the buffer has {} bytes; {} samples of dimension {}{}{} from byte {} need {}",
                buffer.size(),
                layout.n,
                layout.dim,
                if layout.log_prob { " with log-densities" } else { "" },
                if layout.unfinished { " and dopri5 flags" } else { "" },
                layout.offset,
                layout.end()
            ),
        ));
    }
    Ok(())
}

/// The values of a resident draw read back to the host (see [`ResidentLayout`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ResidentValues {
    /// Samples `[n, dim]`, row-major, original units.
    pub samples: Vec<f32>,
    /// Log-densities `[n]`, if the draw wrote them.
    pub log_prob: Option<Vec<f32>>,
    /// dopri5 unfinished flags `[n]` (1.0: not a posterior sample), if written.
    pub unfinished: Option<Vec<f32>>,
}

/// An asynchronous readback recorded by [`ResidentLayout::record_readback`].
#[derive(Debug)]
pub struct Readback {
    staging: wgpu::Buffer,
    layout: ResidentLayout,
}

impl Readback {
    /// Starts mapping the staging buffer (call it after submitting the encoder the copy
    /// was recorded into) and returns at once. `on_ready` runs when wgpu reports the
    /// mapping done, on the thread that polls the device: the application's
    /// `Device::poll` (any `PollType`; fmpe does not poll for it), or wgpu's own
    /// polling during a later `Queue::submit`.
    pub fn map_async(self, on_ready: impl FnOnce(Result<ResidentValues>) + Send + 'static) {
        let Readback { staging, layout } = self;
        let buffer = staging.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let values = r.map_err(|e| Error::Gpu(format!("cannot map the readback buffer: {e}"))).and_then(|()| {
                let view = buffer
                    .get_mapped_range(..)
                    .map_err(|e| Error::Gpu(format!("cannot read the readback buffer: {e}")))?;
                let all: &[f32] = bytemuck::cast_slice(&view);
                let block = |r: std::ops::Range<u64>| {
                    all[((r.start - layout.offset) / 4) as usize..((r.end - layout.offset) / 4) as usize].to_vec()
                };
                Ok(ResidentValues {
                    samples: block(layout.samples_range()),
                    log_prob: layout.log_prob_range().map(block),
                    unfinished: layout.unfinished_range().map(block),
                })
            });
            buffer.unmap();
            on_ready(values);
        });
    }
}

/// The application's buffer a resident draw writes into, and the dopri5 step budget.
#[derive(Clone, Copy, Debug)]
pub struct DrawTarget<'a> {
    /// The buffer (needs `COPY_DST`; add `VERTEX`, `STORAGE`, `COPY_SRC` as the
    /// application uses it).
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the first sample (a multiple of 4).
    pub offset: u64,
    /// dopri5 only: steps recorded per row (≥ 1). Rows that reach t = 1 earlier are left
    /// unchanged by the remaining steps (whose dispatches still run); rows that do not
    /// are flagged. Default [`DEFAULT_DOPRI5_STEP_BUDGET`].
    pub dopri5_steps: usize,
}

impl<'a> DrawTarget<'a> {
    /// The whole of `buffer` from byte 0, with the default dopri5 budget.
    pub fn new(buffer: &'a wgpu::Buffer) -> DrawTarget<'a> {
        DrawTarget { buffer, offset: 0, dopri5_steps: DEFAULT_DOPRI5_STEP_BUDGET }
    }
}

impl Posterior {
    /// Where a resident draw of `n` samples (with log-densities when `with_log_prob`)
    /// with `opts.solver` puts its values, from byte `offset` on: size the application's
    /// buffer with [`ResidentLayout::end`].
    pub fn resident_layout(&self, n: usize, opts: &PosteriorOptions, with_log_prob: bool, offset: u64) -> ResidentLayout {
        let unfinished = matches!(opts.solver, Solver::Dopri5 { .. });
        ResidentLayout { n, dim: self.dim_theta(), offset, log_prob: with_log_prob, unfinished }
    }

    /// Draws `n` samples into `target` (layout: [`Posterior::resident_layout`]): fmpe
    /// records and submits one command buffer per chunk and returns without waiting or
    /// reading back; the application's later submissions on the same queue see the
    /// values. Uses `opts.solver`, `seed`, `chunk_size`; see the [module docs](self) for
    /// what rejection needs.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for invalid options, a buffer that is too small or lacks
    /// `COPY_DST`, an offset not a multiple of 4, a zero dopri5 budget, or
    /// `reject_outside_prior` on a model whose samples may leave its box;
    /// [`Error::Gpu`] / [`Error::DeviceLost`] from fmpe's submissions.
    pub fn sample_to_buffer(&self, n: usize, opts: &PosteriorOptions, target: &DrawTarget<'_>) -> Result<ResidentLayout> {
        let mut enc = self.gpu().encoder();
        self.record_resident(&mut enc, n, opts, target, false, true)
    }

    /// As [`Posterior::sample_to_buffer`], with the log-density block (the values of
    /// [`Posterior::sample_and_log_prob`]; uses `opts.divergence` too).
    ///
    /// # Errors
    /// As [`Posterior::sample_to_buffer`].
    pub fn sample_and_log_prob_to_buffer(&self, n: usize, opts: &PosteriorOptions, target: &DrawTarget<'_>) -> Result<ResidentLayout> {
        let mut enc = self.gpu().encoder();
        self.record_resident(&mut enc, n, opts, target, true, true)
    }

    /// Records a whole draw of `n` samples into the application's `enc`, to be
    /// submitted with its frame: every ODE step of every chunk (rk4's steps, or
    /// `target.dopri5_steps` dopri5 steps), the map to original units and the copies
    /// into `target`. fmpe submits nothing and waits for nothing. Errors raised when
    /// the application finishes or submits `enc` are the application's (see the
    /// [module docs](self)).
    ///
    /// # Errors
    /// As [`Posterior::sample_to_buffer`], except that nothing is submitted.
    pub fn record_sample(
        &self,
        enc: &mut wgpu::CommandEncoder,
        n: usize,
        opts: &PosteriorOptions,
        target: &DrawTarget<'_>,
    ) -> Result<ResidentLayout> {
        self.record_resident(enc, n, opts, target, false, false)
    }

    /// As [`Posterior::record_sample`], with the log-density block.
    ///
    /// # Errors
    /// As [`Posterior::record_sample`].
    pub fn record_sample_and_log_prob(
        &self,
        enc: &mut wgpu::CommandEncoder,
        n: usize,
        opts: &PosteriorOptions,
        target: &DrawTarget<'_>,
    ) -> Result<ResidentLayout> {
        self.record_resident(enc, n, opts, target, true, false)
    }

    /// Checks options and target before anything is recorded.
    fn check_resident(&self, n: usize, opts: &PosteriorOptions, target: &DrawTarget<'_>, log_prob: bool) -> Result<ResidentLayout> {
        opts.validate()?;
        if n == 0 {
            return Err(Error::option("n", "a resident draw needs at least one sample"));
        }
        if opts.reflect_outside_prior == Some(true) && self.prior().is_some_and(|p| !self.transform().covers(p)) {
            return Err(Error::option(
                "reflect_outside_prior",
                "a resident draw does not fold samples into the prior box: use a model trained with the \
                 parameter transform of its box (every sample is then inside), or sample to the host",
            ));
        }
        if opts.reject_outside_prior && self.prior().is_some_and(|p| !self.transform().covers(p)) {
            return Err(Error::option(
                "reject_outside_prior",
                "a resident draw cannot redraw samples outside the prior box: use a model trained with the \
                 parameter transform of its box (every sample is then inside), or set reject_outside_prior \
                 to false and test the rows against the box yourself",
            ));
        }
        if matches!(opts.solver, Solver::Dopri5 { .. }) && target.dopri5_steps == 0 {
            return Err(Error::option("dopri5_steps", "a resident dopri5 draw needs a step budget of at least 1"));
        }
        if !target.offset.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT) {
            return Err(Error::option("offset", format!("must be a multiple of 4 bytes, got {}", target.offset)));
        }
        if !target.buffer.usage().contains(wgpu::BufferUsages::COPY_DST) {
            return Err(Error::option("buffer", format!("needs COPY_DST usage (it has {:?})", target.buffer.usage())));
        }
        let layout = self.resident_layout(n, opts, log_prob, target.offset);
        check_fits(target.buffer, &layout)?;
        Ok(layout)
    }

    /// The one resident draw: chunks with consecutive sample indices (round 0, as the
    /// first round of [`Posterior::sample`]), each recorded by `Plan::record_draw`;
    /// with `submit`, one submission per chunk through [`crate::Gpu::submit`].
    fn record_resident(
        &self,
        enc: &mut wgpu::CommandEncoder,
        n: usize,
        opts: &PosteriorOptions,
        target: &DrawTarget<'_>,
        with_log_prob: bool,
        submit: bool,
    ) -> Result<ResidentLayout> {
        let layout = self.check_resident(n, opts, target, with_log_prob)?;
        let field = if with_log_prob { FieldKind::WithDivergence(opts.divergence) } else { FieldKind::Velocity };
        let chunk = max_chunk(self.gpu(), &self.model.inner.cfg, field, false, opts.chunk_size);
        let steps = match opts.solver {
            Solver::Rk4 { steps } => steps,
            Solver::Dopri5 { .. } => target.dopri5_steps,
        };
        let d = self.dim_theta() as u64;
        let mut done = 0usize;
        while done < n {
            let c = chunk.min(n - done);
            let key = PlanKey { n: c, field, solver: opts.solver, direction: Direction::Forward, per_row_x: false };
            let row = done as u64;
            let dst = CopyOut {
                buffer: target.buffer,
                samples_at: layout.offset + 4 * row * d,
                log_prob_at: layout.log_prob_range().map(|r| r.start + 4 * row),
                active_at: layout.unfinished_range().map(|r| r.start + 4 * row),
            };
            let start = ChunkStart { seed: opts.seed, first_index: row, round: 0, theta_z: None };
            self.with_plan(key, |plan| plan.record_draw(self.gpu(), enc, &start, steps, &dst))?;
            if submit {
                let gpu = self.gpu();
                gpu.submit(std::mem::replace(enc, gpu.encoder()))?;
            }
            done += c;
        }
        Ok(layout)
    }
}
