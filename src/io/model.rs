//! Model directories: `model.json` (configuration, pretty JSON) + `model.safetensors`
//! (weights, F32), written atomically.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::atomic::write_dir_atomic;

/// File name of the JSON part of a model directory.
pub const MODEL_JSON: &str = "model.json";
/// File name of the weights part of a model directory.
pub const MODEL_SAFETENSORS: &str = "model.safetensors";

/// One named `f32` tensor, row-major (C order) with the given `shape`.
///
/// Names follow the PyTorch convention (`layers.0.weight`, `layers.0.bias`, ...);
/// a `Linear` weight has shape `[out_features, in_features]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Tensor name, unique within a model.
    pub name: String,
    /// Shape; the product must equal `data.len()` (an empty shape is a scalar).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Writes a model directory `dir` holding `model.json` (`json`, pretty-printed) and
/// `model.safetensors` (`tensors`, dtype F32, metadata `{"format": "pt"}`).
///
/// Atomic ([`write_dir_atomic`]): everything is written into a temporary sibling
/// directory `.{name}.tmp-XXXXXX` (a name unique per call) and renamed onto `dir`. If `dir`
/// already exists it must be a previous model directory (it contains `model.json`) or
/// empty; it is then replaced (the old one is moved aside, the new one renamed in, the old
/// one removed). On error the temporary directory is removed and `dir` is left as it was.
///
/// # Errors
/// [`Error::Invalid`] for duplicate tensor names, a shape that does not match the data
/// length, or an existing `dir` that is not a model directory; [`Error::Io`] on file-system
/// errors.
pub fn write_model_dir(dir: &Path, json: &serde_json::Value, tensors: &[Tensor]) -> Result<()> {
    write_model_dir_with(dir, json, tensors, &mut |_| Ok(()))
}

/// [`write_model_dir`], and `extra(staging_dir)` writes further files (plots, logs) into
/// the temporary directory before the rename, so they appear together with the model or
/// not at all.
///
/// # Errors
/// As [`write_model_dir`], plus whatever `extra` returns (the directory is then left as
/// it was).
pub fn write_model_dir_with(
    dir: &Path,
    json: &serde_json::Value,
    tensors: &[Tensor],
    extra: &mut dyn FnMut(&Path) -> Result<()>,
) -> Result<()> {
    // Validate before touching the file system.
    let mut seen = std::collections::HashSet::new();
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::invalid(format!("duplicate tensor name '{}'", t.name)));
        }
        let n: usize = t.shape.iter().product();
        if n != t.data.len() {
            return Err(Error::invalid(format!(
                "tensor '{}': shape {:?} needs {n} values, found {}",
                t.name,
                t.shape,
                t.data.len()
            )));
        }
    }
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::invalid(format!(
                "{} exists and is not a directory; refusing to replace it with a model directory",
                dir.display()
            )));
        }
        let is_model = dir.join(MODEL_JSON).is_file();
        let is_empty = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.next().is_none();
        if !is_model && !is_empty {
            return Err(Error::invalid(format!(
                "{} exists and is not a model directory (no {MODEL_JSON}); refusing to replace it",
                dir.display()
            )));
        }
    }

    write_dir_atomic(dir, |tmp| {
        stage(tmp, json, tensors)?;
        extra(tmp)
    })
}

/// Writes `model.safetensors` and `model.json` into the (new, empty) directory `tmp`.
fn stage(tmp: &Path, json: &serde_json::Value, tensors: &[Tensor]) -> Result<()> {
    // model.safetensors
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::invalid(format!("tensor '{}': {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let st_path = tmp.join(MODEL_SAFETENSORS);
    let buf = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::invalid(format!("cannot serialise tensors: {e}")))?;
    write_synced(&st_path, &buf)?;

    // model.json
    let json_path = tmp.join(MODEL_JSON);
    let mut text = serde_json::to_string_pretty(json)
        .map_err(|e| Error::invalid(format!("cannot serialise model configuration: {e}")))?;
    text.push('\n');
    write_synced(&json_path, text.as_bytes())?;
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Reads a model directory written by [`write_model_dir`]: the parsed `model.json` and the
/// tensors of `model.safetensors`, in file order (safetensors stores F32 tensors sorted by
/// name, so this is not necessarily the order given to [`write_model_dir`]; look tensors up
/// by name).
///
/// # Errors
/// [`Error::Io`] naming the missing/unreadable file; [`Error::Data`] naming the file for
/// invalid JSON (with line and column), a corrupt safetensors file, or a tensor whose dtype
/// is not F32.
pub fn read_model_dir(dir: &Path) -> Result<(serde_json::Value, Vec<Tensor>)> {
    let json_path = dir.join(MODEL_JSON);
    let text = std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::data(&json_path, Some(e.line()), Some(e.column()), format!("invalid JSON: {e}"))
    })?;

    let st_path = dir.join(MODEL_SAFETENSORS);
    let bytes = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::data(&st_path, None, None, format!("not a valid safetensors file: {e}"))
    })?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        Error::data(&st_path, None, None, format!("not a valid safetensors file: {e}"))
    })?;
    let mut tensors = Vec::new();
    for name in meta.offset_keys() {
        let view = st.tensor(&name).map_err(|e| {
            Error::data(&st_path, None, None, format!("cannot read tensor '{name}': {e}"))
        })?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(Error::data(
                &st_path,
                None,
                None,
                format!("tensor '{name}' has dtype {:?}; only F32 is supported", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(Tensor { name: name.clone(), shape: view.shape().to_vec(), data });
    }
    Ok((json, tensors))
}
