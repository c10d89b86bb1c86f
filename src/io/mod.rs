//! Array and model files, and the atomic writes behind every file fmpe writes.
//!
//! * [`atomic`]: [`write_file_atomic`], [`write_file_atomic_with_path`],
//!   [`write_dir_atomic`] and [`StagedDir`] (temporary sibling with a name unique per
//!   call, synced, then renamed into place).
//! * [`array`](mod@array): `.csv` / `.npy` matrices ([`read_matrix`], [`write_matrix`],
//!   [`drop_nonfinite_rows`]).
//! * [`lock`]: [`OutputLock`], one run at a time per output path.
//! * [`model`]: atomic model directories (`model.json` + `model.safetensors`).
pub mod array;
pub mod atomic;
pub mod lock;
pub mod model;

pub use array::{drop_nonfinite_rows, read_matrix, write_matrix, write_matrix_chunks, Matrix};
pub use lock::OutputLock;
pub use atomic::{write_dir_atomic, write_file_atomic, write_file_atomic_with_path, StagedDir};
pub use model::{read_model_dir, write_model_dir, write_model_dir_with, Tensor, MODEL_JSON, MODEL_SAFETENSORS};
