//! Array and model files. (stub until the io module lands)
use std::path::Path;
use crate::error::Result;
pub struct Tensor { pub name: String, pub shape: Vec<usize>, pub data: Vec<f32> }
pub fn write_model_dir(_dir: &Path, _json: &serde_json::Value, _tensors: &[Tensor]) -> Result<()> { unimplemented!() }
pub fn read_model_dir(_dir: &Path) -> Result<(serde_json::Value, Vec<Tensor>)> { unimplemented!() }
