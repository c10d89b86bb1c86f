//! fmpe: Flow Matching Posterior Estimation on the GPU.
//!
//! Cargo features: `plot` (default; the `plot` module, PNG plots with plotters) and `cli`
//! (default; the `fmpe` binary's clap and indicatif, implies `plot`). The library itself
//! needs neither: `default-features = false` drops all three dependencies.
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod net;
#[cfg(feature = "plot")]
pub mod plot;
pub mod ode;
pub mod posterior;
pub mod prior;
pub mod reference;
pub mod tasks;
pub mod train;
pub mod train_config;
pub mod transform;
pub use error::{Error, Result};
pub use gpu::Gpu;
