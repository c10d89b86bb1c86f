//! fmpe: Flow Matching Posterior Estimation on the GPU.
pub mod error;
pub mod net;
pub mod reference;
pub mod io;
pub mod tasks;
pub use error::{Error, Result};
