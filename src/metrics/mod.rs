//! Metrics of posterior quality.
//!
//! * [`c2st()`]: the classifier two-sample test exactly as the sbibm benchmark computes
//!   it (its "C2ST_Z" metric), run on the GPU with fmpe's own kernels.
//! * [`calibration`]: simulation-based calibration ranks and expected coverage from
//!   posterior samples read back to the host.
pub mod c2st;
pub mod calibration;

pub use c2st::{c2st, c2st_report, C2stOptions, C2stReport};
pub use calibration::{expected_coverage, sbc_ranks, Coverage};
