//! fmpe: Flow Matching Posterior Estimation on the GPU.
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod net;
pub mod plot;
pub mod posterior;
pub mod prior;
pub mod reference;
pub mod tasks;
pub mod train;
pub mod train_config;
pub mod transform;
pub use error::{Error, Result};
pub use gpu::Gpu;
