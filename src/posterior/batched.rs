//! Amortized inference over many observations: posterior samples for each of many
//! observations ([`GpuModel::sample_batched`]) and log-densities of (θ, x) pairs
//! ([`GpuModel::log_prob_pairs`]), each from one set of ODE solves whose rows carry
//! their own observation.

use std::time::Instant;

use super::sample::{check_rejection, next_draw, pilot_cap};
use super::{GpuModel, PosteriorOptions, SampleReport, Samples};
use crate::error::{Error, Result};
use crate::ode::field::FieldKind;
use crate::ode::plan::{Constants, Plan, PlanKey, RowsStart, Segment};
use crate::ode::workspace::max_chunk;
use crate::ode::{Direction, Solver};

/// The plan of `key` from a call's own cache (built on first use; at most
/// [`super::MAX_PLANS`], the least recently used dropped first): per-row plans are
/// made per call, they hold no observation.
fn plan_for<'p>(model: &GpuModel, plans: &'p mut Vec<Plan>, key: PlanKey) -> Result<&'p mut Plan> {
    let plan = match plans.iter().position(|p| p.key == key) {
        Some(i) => plans.remove(i),
        None => {
            let m = &model.inner;
            let net = m.gpu_net();
            let consts = Constants { x_z: &[], theta_mean: &m.theta_mean, theta_std: &m.theta_std, transform: &m.transform };
            Plan::new(&m.gpu, &net, &consts, key)?
        }
    };
    if plans.len() >= super::MAX_PLANS {
        plans.remove(0);
    }
    plans.push(plan);
    Ok(plans.last_mut().expect("just pushed"))
}

/// Units of the observations given to [`GpuModel::log_prob_pairs_in`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XUnits {
    /// Original units (the model's x transform is applied).
    Original,
    /// Already x-transformed, as [`crate::train::Simulations::x`] holds them (only
    /// z-scored here).
    Transformed,
}

/// Rejection over many observations gives up with [`Error::LowAcceptance`] when the
/// rows still to draw for every observation (missing samples over its acceptance
/// rate), at the call's time per row so far, would overrun `max_seconds` for the
/// whole call.
fn check_call_time(draws: &[Draw], n: usize, d: usize, start: Instant, max_seconds: Option<f64>) -> Result<()> {
    let Some(limit) = max_seconds else { return Ok(()) };
    let proposed: usize = draws.iter().map(|s| s.report.proposed).sum();
    let el = start.elapsed().as_secs_f64();
    let per_row = el / proposed.max(1) as f64;
    let remaining: f64 = draws.iter().map(|s| (n - s.values.len() / d) as f64 / s.report.acceptance_rate.max(1e-9)).sum();
    if remaining > 0.0 && el + per_row * remaining > limit {
        let worst = draws.iter().enumerate().min_by(|a, b| a.1.report.acceptance_rate.total_cmp(&b.1.report.acceptance_rate));
        let (j, rate) = worst.map_or((0, 0.0), |(j, s)| (j + 1, s.report.acceptance_rate));
        return Err(Error::LowAcceptance(format!(
            "the remaining rejection rounds would take about {:.0} s, over the limit of {limit} s for the whole call \
             (lowest acceptance: observation {j}, {:.3}%; raise the time limit max_seconds, or set reject_outside_prior to false)",
            per_row * remaining,
            100.0 * rate
        )));
    }
    Ok(())
}

/// The rejection state of one observation (what [`super::Posterior::sample`] keeps for
/// its single observation).
struct Draw {
    x_z: Vec<f32>,
    values: Vec<f64>,
    report: SampleReport,
    next_index: u64,
    round: u32,
    steps: f64,
    rejected: f64,
    accepted: usize,
}

impl GpuModel {
    /// Log-density `log q(θ_i | x_i)` of each pair: `theta` `[n, dim_theta]` and
    /// `observations` `[n, dim_x]` (row-major, original units); returns `[n]` values in
    /// nats. The method is [`super::Posterior::log_prob`]'s (backward solve of `[θ, Δ]`,
    /// the same options), with each row's own observation, in one set of solves over
    /// all pairs: the held-out negative log-likelihood `−mean_i log q(θ_i | x_i)` of
    /// validation pairs scores a model without a reference posterior, comparably
    /// across networks and parameter transforms. With the exact divergence each value
    /// equals `self.posterior(x_i)?.log_prob(θ_i, opts)` bit for bit; Hutchinson probes
    /// are keyed by the pair's index among the pairs integrated.
    ///
    /// Pairs whose θ lies outside the box prior (with `opts.reject_outside_prior`) or
    /// outside the transform's support get `f64::NEG_INFINITY` and are not integrated.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] `normalize_to_prior` (not supported here: it needs a
    /// sampling run per observation);
    /// [`Error::Invalid`] when the row counts differ or a value is not finite (naming
    /// the row and column), an observation is outside the x transform's domain; the
    /// errors of [`super::Posterior::log_prob`].
    pub fn log_prob_pairs(&self, theta: &[f64], observations: &[f64], opts: &PosteriorOptions) -> Result<Vec<f64>> {
        self.log_prob_pairs_in(theta, observations, XUnits::Original, opts)
    }

    /// [`GpuModel::log_prob_pairs`] with the observations in `units`.
    pub(crate) fn log_prob_pairs_in(&self, theta: &[f64], observations: &[f64], units: XUnits, opts: &PosteriorOptions) -> Result<Vec<f64>> {
        opts.validate()?;
        if opts.normalize_to_prior {
            return Err(Error::option(
                "normalize_to_prior",
                "log_prob_pairs evaluates the flow's density: renormalising needs one sampling run per observation (use Posterior::log_prob)",
            ));
        }
        let m = &self.inner;
        let (d, dx) = (m.cfg.dim_theta, m.cfg.dim_x);
        let n = theta.len() / d;
        if theta.len() != n * d || observations.len() != n * dx {
            return Err(Error::invalid(format!(
                "theta has {} values and observations {}: expected n × {d} and n × {dx} for the same n",
                theta.len(),
                observations.len()
            )));
        }
        if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("theta row {}, column {} is not finite", i / d + 1, i % d + 1)));
        }
        let mut out = vec![f64::NEG_INFINITY; n];
        let inside = m.integrable_rows(theta, opts.reject_outside_prior);
        let field = FieldKind::WithDivergence(opts.divergence);
        let chunk = max_chunk(&m.gpu, &m.cfg, field, true, opts.chunk_size);
        let mut plans = Vec::new();
        let mut done = 0usize;
        while done < inside.len() {
            let c = chunk.min(inside.len() - done);
            let idx = &inside[done..done + c];
            let (z, log_det) = m.backward_start(theta, idx);
            let mut x_z = Vec::with_capacity(c * dx);
            for &i in idx {
                let x = &observations[i * dx..(i + 1) * dx];
                match units {
                    XUnits::Original => x_z.extend(self.observation_z(x).map_err(|e| match e {
                        Error::Invalid(msg) => Error::Invalid(format!("observations row {}: {msg}", i + 1)),
                        e => e,
                    })?),
                    XUnits::Transformed => x_z.extend(m.z_score_x(x)),
                }
            }
            let key = PlanKey { n: c, field, solver: opts.solver, direction: Direction::Backward, per_row_x: true };
            let segs = [Segment { rows: c, first_index: done as u64, round: 0 }];
            let start = RowsStart { seed: opts.seed, segments: &segs, x_z: &x_z, theta_z: Some(&z) };
            let lq = plan_for(self, &mut plans, key)?.solve_rows(&m.gpu, &start)?.log_q;
            for (r, &i) in idx.iter().enumerate() {
                out[i] = lq[r] as f64 + log_det[r];
            }
            done += c;
        }
        Ok(out)
    }

    /// Draws `n` posterior samples for each row of `observations` `[m, dim_x]`
    /// (row-major, original units) in one amortized solve: the rows of every
    /// observation are integrated together, `chunk_size` rows at a time (each row
    /// carries its own observation through the network), instead of one solve per
    /// observation. Returns `m` [`Samples`] `[n, dim_theta]`, in the order of the
    /// observations.
    ///
    /// Each observation's samples equal, bit for bit, what
    /// `self.posterior(x_j)?.sample(n, opts)` returns with the same options: θ₀ of
    /// each sample is keyed by the seed, the sample's index and its rejection round
    /// exactly as there, each row's arithmetic does not depend on the other rows, and
    /// rejection rounds are kept per observation. Each report's `seconds` is the time
    /// of the whole call, and `opts.max_seconds` limits the whole call (the rounds
    /// still to draw for all observations, extrapolated at the call's time per row).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `observations` is empty or not a whole number of rows
    /// of `dim_x`, or a row is not finite or outside the x transform's domain (the
    /// message names the observation, from 1); [`Error::LowAcceptance`] (naming the
    /// observation) and the other errors of [`super::Posterior::sample`].
    pub fn sample_batched(&self, observations: &[f64], n: usize, opts: &PosteriorOptions) -> Result<Vec<Samples>> {
        self.sample_batched_in(observations, XUnits::Original, n, opts)
    }

    /// [`GpuModel::sample_batched`] with the observations in `units`
    /// ([`XUnits::Transformed`]: as [`crate::train::Simulations::x`] holds them).
    pub(crate) fn sample_batched_in(&self, observations: &[f64], units: XUnits, n: usize, opts: &PosteriorOptions) -> Result<Vec<Samples>> {
        opts.validate()?;
        let start = Instant::now();
        let (dx, d) = (self.dim_x(), self.dim_theta());
        if observations.is_empty() || !observations.len().is_multiple_of(dx) {
            return Err(Error::invalid(format!(
                "observations: {} values are not a whole number of rows of dim_x = {dx}",
                observations.len()
            )));
        }
        let m_obs = observations.len() / dx;
        n.checked_mul(d)
            .and_then(|v| v.checked_mul(m_obs))
            .filter(|&v| v <= isize::MAX as usize / 8)
            .ok_or_else(|| Error::invalid(format!("{m_obs} × {n} samples of dimension {d} do not fit in memory")))?;
        let mut draws = observations
            .chunks(dx)
            .enumerate()
            .map(|(j, x)| {
                let x_z = match units {
                    XUnits::Original => self.observation_z(x),
                    XUnits::Transformed if x.iter().all(|v| v.is_finite()) => Ok(self.inner.z_score_x(x)),
                    XUnits::Transformed => Err(Error::invalid("a value is not finite")),
                };
                let x_z = x_z.map_err(|e| match e {
                    Error::Invalid(m) => Error::Invalid(format!("observation {}: {m}", j + 1)),
                    e => e,
                })?;
                let mut values = Vec::new();
                values.try_reserve_exact(n * d).map_err(|_| Error::invalid(format!("{n} samples of dimension {d} do not fit in memory")))?;
                Ok(Draw { x_z, values, report: SampleReport::default(), next_index: 0, round: 0, steps: 0.0, rejected: 0.0, accepted: 0 })
            })
            .collect::<Result<Vec<Draw>>>()?;
        let m = &self.inner;
        let prior = m.prior.as_ref();
        let leaves_box = prior.is_some_and(|p| !m.transform.covers(p));
        let reflect = leaves_box && opts.reflect_outside_prior.unwrap_or(opts.reject_outside_prior && self.reflects_by_default());
        let reject = opts.reject_outside_prior && leaves_box && !reflect;
        let mut folded = vec![0.0f64; d];
        let chunk = max_chunk(&m.gpu, &m.cfg, FieldKind::Velocity, true, opts.chunk_size);
        let mut plans: Vec<Plan> = Vec::new();
        loop {
            // This round's runs of rows: one per observation still missing samples.
            let work: Vec<(usize, Segment)> = draws
                .iter()
                .enumerate()
                .filter(|(_, s)| s.values.len() < n * d)
                .map(|(j, s)| {
                    let need = n - s.values.len() / d;
                    let rows = next_draw(need, s.report.proposed, s.accepted, reject, pilot_cap(s.round, opts.max_seconds.is_some()));
                    (j, Segment { rows, first_index: s.next_index, round: s.round })
                })
                .collect();
            if work.is_empty() {
                break;
            }
            self.solve_round(&work, chunk, opts, &mut plans, &mut draws, |draw, row, steps| {
                draw.steps += steps[0];
                draw.rejected += steps[1];
                let row = match (reflect, prior) {
                    (true, Some(p)) => {
                        folded.copy_from_slice(row);
                        p.reflect(&mut folded);
                        &folded[..]
                    }
                    _ => row,
                };
                if !reject || prior.is_some_and(|p| p.contains(row)) {
                    draw.accepted += 1;
                    if draw.values.len() < n * d {
                        draw.values.extend_from_slice(row);
                    }
                }
            })?;
            for &(j, seg) in &work {
                let s = &mut draws[j];
                s.next_index += seg.rows as u64;
                s.round += 1;
                s.report.proposed += seg.rows;
                s.report.returned = s.values.len() / d;
                s.report.acceptance_rate = s.accepted as f64 / s.report.proposed as f64;
                // The proposal cap per observation; the time limit over the whole call.
                check_rejection(&s.report, s.accepted, n - s.values.len() / d, n, (start, None), None).map_err(|e| match e {
                    Error::LowAcceptance(msg) => Error::LowAcceptance(format!("observation {}: {msg}", j + 1)),
                    e => e,
                })?;
            }
            check_call_time(&draws, n, d, start, opts.max_seconds)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok(draws
            .into_iter()
            .map(|s| {
                let mut report = s.report;
                report.mean_steps = s.steps / report.proposed.max(1) as f64;
                report.mean_rejected_steps = s.rejected / report.proposed.max(1) as f64;
                report.seconds = seconds;
                Samples::new(d, s.values, None, report)
            })
            .collect())
    }

    /// Solves one rejection round, `work` = runs of rows `(observation, segment)` in
    /// order, packed into chunks of at most `chunk` rows (a run may span chunks), and
    /// hands each row's sample (original units, f64) and its accepted/rejected step
    /// counts to `take` in row order.
    fn solve_round(
        &self,
        work: &[(usize, Segment)],
        chunk: usize,
        opts: &PosteriorOptions,
        plans: &mut Vec<Plan>,
        draws: &mut [Draw],
        mut take: impl FnMut(&mut Draw, &[f64], [f64; 2]),
    ) -> Result<()> {
        let m = &self.inner;
        let (d, dx) = (m.cfg.dim_theta, m.cfg.dim_x);
        let total: usize = work.iter().map(|(_, s)| s.rows).sum();
        let (mut item, mut used, mut done) = (0usize, 0usize, 0usize);
        let mut row = vec![0f64; d];
        while done < total {
            let c = chunk.min(total - done);
            // The runs (or parts of runs) of this chunk.
            let (mut segs, mut owners, mut x_z) = (Vec::new(), Vec::new(), Vec::with_capacity(c * dx));
            let mut filled = 0usize;
            while filled < c {
                let (j, s) = work[item];
                let rows = (s.rows - used).min(c - filled);
                segs.push(Segment { rows, first_index: s.first_index + used as u64, round: s.round });
                owners.push(j);
                for _ in 0..rows {
                    x_z.extend_from_slice(&draws[j].x_z);
                }
                filled += rows;
                used += rows;
                if used == s.rows {
                    item += 1;
                    used = 0;
                }
            }
            let key = PlanKey { n: c, field: FieldKind::Velocity, solver: opts.solver, direction: Direction::Forward, per_row_x: true };
            let plan = plan_for(self, plans, key)?;
            let out = plan.solve_rows(&m.gpu, &RowsStart { seed: opts.seed, segments: &segs, x_z: &x_z, theta_z: None })?;
            let rk4_steps = match opts.solver {
                Solver::Rk4 { steps } => Some(steps as f64),
                Solver::Dopri5 { .. } => None,
            };
            let mut r = 0usize;
            for (seg, &j) in segs.iter().zip(&owners) {
                for _ in 0..seg.rows {
                    row.iter_mut().zip(&out.samples[r * d..(r + 1) * d]).for_each(|(a, &v)| *a = v as f64);
                    let steps = match rk4_steps {
                        Some(s) => [s, 0.0],
                        None => [out.row_steps[2 * r] as f64, out.row_steps[2 * r + 1] as f64],
                    };
                    take(&mut draws[j], &row, steps);
                    r += 1;
                }
            }
            done += c;
        }
        Ok(())
    }
}
