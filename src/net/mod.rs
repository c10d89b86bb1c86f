//! The vector-field network: configuration, parameter layout and GPU recording.
pub mod config;
pub use config::*;
pub mod gpu;
pub use gpu::{EvalGraph, TrainGraph};
pub mod jvp;
pub use jvp::JvpGraph;
