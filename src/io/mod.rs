//! Array and model files.
//!
//! * [`array`](mod@array): `.csv` / `.npy` matrices ([`read_matrix`], [`write_matrix`],
//!   [`drop_nonfinite_rows`]).
//! * [`model`]: atomic model directories (`model.json` + `model.safetensors`).
pub mod array;
pub mod model;

pub use array::{drop_nonfinite_rows, read_matrix, write_matrix, Matrix};
pub use model::{read_model_dir, write_model_dir, write_model_dir_with, Tensor, MODEL_JSON, MODEL_SAFETENSORS};
