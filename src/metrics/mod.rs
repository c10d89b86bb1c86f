//! Metrics of posterior quality.
//!
//! * [`c2st()`]: the classifier two-sample test exactly as the sbibm benchmark computes
//!   it (its "C2ST_Z" metric), run on the GPU with fmpe's own kernels.
pub mod c2st;

pub use c2st::{c2st, c2st_report, C2stOptions, C2stReport};
