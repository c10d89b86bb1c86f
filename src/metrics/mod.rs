//! Metrics of posterior quality.
//!
//! * [`c2st()`]: the classifier two-sample test exactly as the sbibm benchmark computes
//!   it (its "C2ST_Z" metric), run on the GPU with fmpe's own kernels.
//! * [`calibration`]: simulation-based calibration ranks and expected coverage from
//!   posterior samples read back to the host.
//! * [`held_out_nll()`]: the held-out negative log-likelihood of (θ, x) pairs, a score
//!   that needs no reference posterior; [`held_out_reflection()`] compares with it the
//!   two ways of sampling a flow that leaks past its box prior.
pub mod c2st;
pub mod calibration;
pub mod held_out;

pub use c2st::{c2st, c2st_report, C2stOptions, C2stReport, C2stStep};
pub use held_out::{
    held_out_nll, held_out_prior_mass, held_out_reflection, HeldOutNll, PriorMass, Reflection, HELD_OUT_MAX_PAIRS, LOW_MASS, MASS_DRAWS,
    MAX_MIRRORED_COMPONENTS, MIRROR_RATIO_FLOOR, REFLECTION_MAX_PAIRS, REFLECT_MARGIN_SE,
};
pub use calibration::{expected_coverage, sbc_ranks, Coverage};
