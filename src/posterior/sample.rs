//! Sampling, with or without log-densities, through one rejection loop.

use std::time::Instant;

use super::{Posterior, PosteriorOptions, SampleReport, Samples};
use crate::error::{Error, Result};
use crate::ode::field::FieldKind;
use crate::ode::plan::{step_dispatches, ChunkStart, PlanKey};
use crate::ode::workspace::max_chunk;
use crate::ode::{Direction, Divergence, Solver, DOPRI_STEPS_PER_SUBMIT, RK4_STEPS_PER_SUBMIT};

/// The draws of the rounds that open a rejection loop with a time limit: a first pilot
/// of at most 256 (its time includes compiling the solver's pipelines), then one of at
/// most 4,096, whose time per draw the loop extrapolates ([`check_rejection`]); large
/// enough that a solve's fixed costs do not dominate it on a GPU. Later rounds are not
/// capped.
pub(super) const PILOT_DRAWS: [usize; 2] = [256, 4096];

/// The cap on rejection round `round`'s draws (0-based) when a time limit applies.
pub(super) fn pilot_cap(round: u32, time_limit: bool) -> Option<usize> {
    PILOT_DRAWS.get(round as usize).copied().filter(|_| time_limit)
}

/// How many samples to draw in the next rejection round, when `need` are missing after
/// `proposed` draws of which `accepted` fell inside the prior box: no margin while
/// nothing was rejected, else `need / rate` with a 10 % margin; at most `pilot` when
/// rejecting ([`pilot_cap`]); never more than 1000 × need.
pub(super) fn next_draw(need: usize, proposed: usize, accepted: usize, reject: bool, pilot: Option<usize>) -> usize {
    let draw = if !reject {
        need
    } else if proposed > 0 && accepted < proposed {
        let rate = (accepted as f64 / proposed as f64).max(1e-3);
        ((need as f64 / rate) * 1.1).ceil() as usize + 16
    } else {
        need
    };
    let draw = match pilot {
        Some(cap) if reject => draw.min(cap),
        _ => draw,
    };
    draw.min(need.max(1) * 1000)
}

/// After a rejection round: with `missing` samples still to draw, stops with
/// [`Error::LowAcceptance`] when the time so far already exceeds `max_seconds`, when
/// the remaining draws would overrun it at `per_draw` seconds each (the latest round's
/// time per draw; `None` after the first round, whose time includes compiling the
/// solver's pipelines, which can dominate a 256-draw pilot), or when more than 1000 × n
/// have been proposed.
pub(super) fn check_rejection(
    report: &SampleReport,
    accepted: usize,
    missing: usize,
    n: usize,
    (start, per_draw): (Instant, Option<f64>),
    max_seconds: Option<f64>,
) -> Result<()> {
    if missing == 0 {
        return Ok(());
    }
    if let Some(limit) = max_seconds {
        let el = start.elapsed().as_secs_f64();
        let per_sample = per_draw.unwrap_or(0.0);
        let remaining = missing as f64 / report.acceptance_rate.max(1e-9);
        if el > limit || el + per_sample * remaining > limit {
            let when = if el > limit {
                format!("after {el:.1} s, {missing} samples are still missing")
            } else {
                format!("{missing} more samples would take about {:.0} s", per_sample * remaining)
            };
            return Err(Error::LowAcceptance(format!(
                "only {:.3}% of posterior samples fall inside the prior support ({accepted} of {} proposed); \
                 {when}, over the limit of {limit} s \
                 (raise the time limit max_seconds, or set reject_outside_prior to false to keep samples outside the prior)",
                100.0 * report.acceptance_rate,
                report.proposed,
            )));
        }
    }
    if report.proposed > 1000 * n.max(1) {
        return Err(Error::LowAcceptance(format!(
            "acceptance rate {:.2e} is too low to draw {n} samples inside the prior support",
            report.acceptance_rate
        )));
    }
    Ok(())
}

/// The error of a request for log-densities of folded samples.
fn reflect_without_density() -> Error {
    Error::option(
        "reflect_outside_prior",
        "the density of samples folded into the box is a sum over mirror images that is not evaluated; \
         draw log-densities with rejection to the box, or without restricting samples to it",
    )
}

impl Posterior {
    /// Draws `n` posterior samples `[n, dim_theta]` (row-major, original units; with a
    /// parameter transform, the flow's samples in θ' space mapped back by T⁻¹ on the
    /// GPU). With a box prior and `opts.reject_outside_prior`, samples outside the box
    /// are discarded and redrawn; the report gives the acceptance rate. With
    /// `opts.reflect_outside_prior` (`None`: with `reject_outside_prior`, the model's
    /// choice, [`super::GpuModel::reflects_by_default`]) they are folded back into the
    /// box instead ([`crate::prior::BoxPrior::reflect`]). Uses `opts.solver`, `seed`, `chunk_size`,
    /// `reject_outside_prior`, `reflect_outside_prior`, `max_seconds`.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for invalid options; [`Error::LowAcceptance`] when
    /// rejection would overrun `opts.max_seconds` or needs over 1000 proposals per
    /// sample; [`Error::Invalid`] when dopri5 does not finish within its step cap; GPU
    /// errors.
    pub fn sample(&self, n: usize, opts: &PosteriorOptions) -> Result<Samples> {
        self.draw(n, opts, false)
    }

    /// Draws `n` posterior samples and their log-densities in one forward solve 0 → 1 of
    /// the joint state `[θ_t, Δ_t]` (see [`Posterior::log_prob`] for the method and the
    /// error control). Returns [`Samples`] `[n, dim_theta]` (row-major, original units)
    /// with `log q(θ | x_o)` `[n]` (nats, original units) in [`Samples::log_prob`].
    ///
    /// θ₀ is drawn exactly as [`Posterior::sample`] draws it for the same seed, and the
    /// θ steps are the same, so the samples equal `sample`'s (up to rejection rounds).
    /// With a box prior and `opts.reject_outside_prior`, samples outside the box are
    /// rejected and redrawn; the log-density returned is the flow's (not renormalised to
    /// the box), i.e. the value [`Posterior::log_prob`] gives; with
    /// `opts.normalize_to_prior` samples are always restricted to the box and the
    /// log-densities renormalised to it, as `log_prob` does.
    ///
    /// # Errors
    /// As [`Posterior::sample`]; [`Error::InvalidOption`] named `reflect_outside_prior`
    /// when it is `Some(true)` for a model whose samples can leave its box (the density
    /// of folded samples is not evaluated; under `None` this call rejects), and under
    /// `None` for a model trained on the reflected density
    /// ([`crate::train_config::TrainConfig::reflect`]) restricted to its box, whose
    /// rejected samples would lack up to half the density at a bound (`Some(false)`
    /// rejects anyway).
    pub fn sample_and_log_prob(&self, n: usize, opts: &PosteriorOptions) -> Result<Samples> {
        self.draw(n, opts, true)
    }

    /// The one rejection loop: rounds of draws (each drawn in chunks with consecutive
    /// sample indices, the round number in the Philox counter) until `n` samples are
    /// inside the prior box (or every sample is kept).
    fn draw(&self, n: usize, opts: &PosteriorOptions, with_log_prob: bool) -> Result<Samples> {
        opts.validate()?;
        let start = Instant::now();
        let d = self.dim_theta();
        let mut values: Vec<f64> = Vec::new();
        n.checked_mul(d)
            .and_then(|len| values.try_reserve_exact(len).ok())
            .ok_or_else(|| Error::invalid(format!("{n} samples of dimension {d} do not fit in memory")))?;
        let mut log_q: Vec<f64> = Vec::with_capacity(if with_log_prob { n } else { 0 });
        let prior = self.prior();
        // A logit transform on exactly the prior box keeps every sample inside it: no
        // rejection, so no pilot round either.
        let normalize = with_log_prob && opts.normalize_to_prior;
        let leaves_box = prior.is_some_and(|p| !self.transform().covers(p));
        if leaves_box && with_log_prob && opts.reflect_outside_prior == Some(true) {
            return Err(reflect_without_density());
        }
        // A flow trained on the reflected density has up to half of the posterior's
        // density at a bound outside the box: rejecting it is a biased draw, made only
        // when asked for by name.
        if leaves_box && with_log_prob && (opts.reject_outside_prior || normalize) && opts.reflect_outside_prior.is_none() && self.model.inner.reflect_trained {
            return Err(Error::option(
                "reflect_outside_prior",
                "this model was trained on the reflected density: its samples are folded into the box, whose density \
                 is not evaluated. Draw samples without log-densities, or set reflect_outside_prior to false to reject \
                 (biased: up to half the density at a bound is lost)",
            ));
        }
        let reflect = leaves_box && !with_log_prob && opts.reflect_outside_prior.unwrap_or(opts.reject_outside_prior && self.model.reflects_by_default());
        let reject = (opts.reject_outside_prior || normalize) && leaves_box && !reflect;
        // log P_q(θ ∈ box) for renormalised log-densities (estimated before drawing).
        let log_mass = if normalize { self.prior_mass(opts)?.ln() } else { 0.0 };
        let field = if with_log_prob { FieldKind::WithDivergence(opts.divergence) } else { FieldKind::Velocity };
        let chunk = max_chunk(self.gpu(), &self.model.inner.cfg, field, false, opts.chunk_size);
        let mut report = SampleReport::default();
        let (mut next_index, mut round) = (0u64, 0u32);
        let (mut steps_sum, mut rej_sum, mut accepted_total) = (0.0, 0.0, 0usize);
        let mut row = vec![0.0f64; d];
        while values.len() < n * d {
            let need = n - values.len() / d;
            let draw = next_draw(need, report.proposed, accepted_total, reject, pilot_cap(round, opts.max_seconds.is_some()));
            let round_start = Instant::now();
            let mut done = 0usize;
            while done < draw {
                let c = chunk.min(draw - done);
                let key = PlanKey { n: c, field, solver: opts.solver, direction: Direction::Forward, per_row_x: false };
                let first_index = next_index + done as u64;
                let out = self.solve_chunk(key, &ChunkStart { seed: opts.seed, first_index, round, theta_z: None })?;
                steps_sum += out.accepted;
                rej_sum += out.rejected;
                for (i, row32) in out.samples.chunks(d).enumerate() {
                    row.iter_mut().zip(row32).for_each(|(r, &v)| *r = v as f64);
                    if let (true, Some(p)) = (reflect, prior) {
                        p.reflect(&mut row);
                    }
                    if !reject || prior.is_some_and(|p| p.contains(&row)) {
                        accepted_total += 1;
                        if values.len() < n * d {
                            values.extend_from_slice(&row);
                            if with_log_prob {
                                log_q.push(out.log_q[i] as f64 - log_mass);
                            }
                        }
                    }
                }
                done += c;
            }
            next_index += draw as u64;
            round += 1;
            report.proposed += draw;
            report.returned = values.len() / d;
            report.acceptance_rate = accepted_total as f64 / report.proposed as f64;
            let per_draw = (round > 1).then(|| round_start.elapsed().as_secs_f64() / draw.max(1) as f64);
            check_rejection(&report, accepted_total, n - values.len() / d, n, (start, per_draw), opts.max_seconds)?;
        }
        report.mean_steps = steps_sum / report.proposed.max(1) as f64;
        report.mean_rejected_steps = rej_sum / report.proposed.max(1) as f64;
        report.seconds = start.elapsed().as_secs_f64();
        Ok(Samples::new(d, values, with_log_prob.then_some(log_q), report))
    }

    /// Dispatches recorded per ODE step for a whole chunk (all rows step together) and
    /// ODE steps per submission: rk4 is 4 × (stage input + network) + update; dopri5 is
    /// 6 × (stage input + network) + step control (FSAL: k₁ is reused). With
    /// `divergence` (log-densities), the network is the joint `v`/`J·ε` pass plus
    /// `div_reduce`. Submissions: one per `RK4_STEPS_PER_SUBMIT` (64) rk4 steps, one per
    /// `DOPRI_STEPS_PER_SUBMIT` (8) dopri5 steps (with a 4-byte readback).
    pub fn ode_step_dispatches(&self, solver: Solver, divergence: Option<Divergence>) -> (usize, usize) {
        let field = divergence.map_or(FieldKind::Velocity, FieldKind::WithDivergence);
        let per_step = step_dispatches(self.gpu(), &self.net(), field, solver);
        let per_submit = match solver {
            Solver::Rk4 { .. } => RK4_STEPS_PER_SUBMIT,
            Solver::Dopri5 { .. } => DOPRI_STEPS_PER_SUBMIT,
        };
        (per_step, per_submit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pilot_rounds_are_capped_and_later_rounds_follow_the_acceptance() {
        // Pilot caps: only with a time limit, only for the first two rounds.
        assert_eq!((pilot_cap(0, true), pilot_cap(1, true), pilot_cap(2, true)), (Some(256), Some(4096), None));
        assert_eq!(pilot_cap(0, false), None);
        // Without rejection: exactly what is missing.
        assert_eq!(next_draw(10_000, 0, 0, false, Some(256)), 10_000);
        // Pilot rounds: at most their cap, the second one at 1 % acceptance too.
        assert_eq!(next_draw(10_000, 0, 0, true, pilot_cap(0, true)), 256);
        assert_eq!(next_draw(10_000, 256, 3, true, pilot_cap(1, true)), 4096);
        // After the pilots: need / rate with a 10 % margin (+16), capped at 1000 × need.
        // (100 / 0.5 · 1.1 = 220, rounded up in floating point to 220 or 221.)
        assert!((236..=237).contains(&next_draw(100, 512, 256, true, None)));
        assert_eq!(next_draw(10, 1000, 0, true, None), 10 * 1000);
        // Nothing rejected so far: no margin.
        assert_eq!(next_draw(50, 256, 256, true, None), 50);
    }

    #[test]
    fn the_time_limit_uses_the_latest_rounds_rate_and_the_elapsed_time() {
        let report = SampleReport { proposed: 512, returned: 6, acceptance_rate: 6.0 / 512.0, ..Default::default() };
        let now = Instant::now();
        // After the first round (no rate yet) the estimate is not used...
        assert!(check_rejection(&report, 6, 9_994, 10_000, (now, None), Some(600.0)).is_ok());
        // ...but a rate that predicts an overrun stops the loop, naming the estimate:
        // 9,994 missing at 6/512 acceptance and 1 ms per draw ≈ 853 s.
        let e = check_rejection(&report, 6, 9_994, 10_000, (now, Some(1e-3)), Some(600.0)).unwrap_err();
        assert!(matches!(e, Error::LowAcceptance(_)) && e.to_string().contains("about 853 s, over the limit of 600 s"), "{e}");
        assert!(check_rejection(&report, 6, 9_994, 10_000, (now, Some(1e-4)), Some(600.0)).is_ok());
        // Time already past the limit stops it whatever the rate.
        let past = now - std::time::Duration::from_secs(2);
        let e = check_rejection(&report, 6, 9_994, 10_000, (past, None), Some(1.0)).unwrap_err();
        assert!(e.to_string().contains("still missing, over the limit of 1 s"), "{e}");
        // No limit: only the proposal cap, over 1000 proposals per sample.
        assert!(check_rejection(&report, 6, 9_994, 10_000, (past, None), None).is_ok());
        let many = SampleReport { proposed: 10_000_001, ..report };
        assert!(check_rejection(&many, 6, 9_994, 10_000, (past, None), None).is_err());
        // Nothing missing: done.
        assert!(check_rejection(&report, 6, 0, 10_000, (past, Some(1.0)), Some(1.0)).is_ok());
    }
}
