//! [`Checkpoint`]: everything a [`Trainer`](super::Trainer) needs to continue a run
//! bitwise as if it had never stopped (the optimiser state, the schedule position, the
//! step counters that key the counter-based RNG, the best and last-good weights, the
//! losses of a partly done epoch), and its file `checkpoint.safetensors`.
//!
//! The file is a safetensors file of f32 tensors (`params`, `best`, `adam_m`, `adam_v`,
//! `good_params`, `good_m`, `good_v`, `epoch_losses`, and `ema`, `good_ema`: empty
//! without a moving average of the weights, absent in files written before it) whose
//! metadata entry `fmpe_state` holds [`TrainerState`] as JSON. It is written atomically.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::net::NetConfig;
use crate::train_config::{EpochRecord, TrainConfig};

/// File name of a checkpoint inside a model directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Version of the checkpoint layout ([`TrainerState::checkpoint_version`]) written
/// with a moving average of the weights (tensors `ema`, `good_ema`), so that a reader
/// that does not know them refuses the file instead of resuming without the average.
/// Without an average the layout is version 1's ([`CHECKPOINT_VERSION_PLAIN`]), which
/// older readers accept; both are read.
pub const CHECKPOINT_VERSION: u32 = 2;

/// Version of a checkpoint without a moving average of the weights.
pub const CHECKPOINT_VERSION_PLAIN: u32 = 1;

/// The scalar state of a training run (everything but the GPU arrays).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainerState {
    /// [`CHECKPOINT_VERSION`] of the writer.
    pub checkpoint_version: u32,
    /// The network trained (must match on resume).
    pub net: NetConfig,
    /// The hyper-parameters of the run (the seed must match on resume).
    pub train: TrainConfig,
    /// Fingerprint of the uploaded (shuffled, f32) dataset: resuming on other data is
    /// refused.
    pub data_fingerprint: u64,
    /// Optimiser steps taken (the RNG counter of the path noise).
    pub step: u64,
    /// Epochs completed.
    pub epoch: usize,
    /// Steps already taken in the current, partly done epoch.
    pub step_in_epoch: usize,
    /// Learning rate of the current epoch.
    pub lr: f64,
    /// Product of the divergence rollbacks' learning-rate factors (1 without any).
    pub lr_scale: f64,
    /// Whether the best-weights copy is still pending (done by the next step).
    pub pending_best_copy: bool,
    /// Whether the last-good copy is still pending (done by the next step).
    pub pending_good_copy: bool,
    /// Best watched loss so far (`None` before the first epoch).
    pub best_loss: Option<f64>,
    /// Epoch (1-based) of the best weights; 0 before the first epoch.
    pub best_epoch: usize,
    /// Epochs since the best one (early stopping).
    pub since_best: usize,
    /// Epochs since the last learning-rate change (plateau schedule).
    pub since_lr: usize,
    /// Rollbacks of the current epoch so far.
    pub retries: usize,
    /// Rollbacks over the whole run.
    pub rollbacks: usize,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// Wall-clock seconds of training before this checkpoint.
    pub seconds: f64,
}

/// A checkpoint: the scalar state and the GPU arrays, as read back from a trainer.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The scalar state.
    pub state: TrainerState,
    /// Current parameters `[layout.len]`.
    pub params: Vec<f32>,
    /// Best parameters so far `[layout.len]`.
    pub best: Vec<f32>,
    /// Adam first moments `[layout.len + 2]` (the last two: the step's flag, the
    /// epoch's count of skipped steps).
    pub m: Vec<f32>,
    /// Adam second moments `[layout.len]`.
    pub v: Vec<f32>,
    /// Rollback target: parameters `[layout.len]`.
    pub good_params: Vec<f32>,
    /// Rollback target: first moments `[layout.len + 2]`.
    pub good_m: Vec<f32>,
    /// Rollback target: second moments `[layout.len]`.
    pub good_v: Vec<f32>,
    /// Loss slots of the steps done in the current epoch `[step_in_epoch]`.
    pub epoch_losses: Vec<f32>,
    /// Moving average of the weights `[layout.len]` (`[0]` when
    /// [`TrainConfig::ema_decay`] is 0).
    pub ema: Vec<f32>,
    /// Rollback target: the moving average `[layout.len]` (`[0]` without one).
    pub good_ema: Vec<f32>,
}

impl Checkpoint {
    fn arrays(&self) -> [(&'static str, &Vec<f32>); 10] {
        [
            ("params", &self.params),
            ("best", &self.best),
            ("adam_m", &self.m),
            ("adam_v", &self.v),
            ("good_params", &self.good_params),
            ("good_m", &self.good_m),
            ("good_v", &self.good_v),
            ("epoch_losses", &self.epoch_losses),
            ("ema", &self.ema),
            ("good_ema", &self.good_ema),
        ]
    }

    /// Writes the checkpoint to `path` atomically.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path`; [`Error::Invalid`] if it cannot be serialised.
    pub fn save(&self, path: &Path) -> Result<()> {
        let state = serde_json::to_string(&self.state).map_err(|e| Error::invalid(format!("checkpoint state: {e}")))?;
        let bytes: Vec<(&str, Vec<u8>, usize)> = self
            .arrays()
            .iter()
            .map(|(n, a)| (*n, a.iter().flat_map(|v| v.to_le_bytes()).collect(), a.len()))
            .collect();
        let views = bytes
            .iter()
            .map(|(n, b, len)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*len], b)
                    .map(|v| (n.to_string(), v))
                    .map_err(|e| Error::invalid(format!("checkpoint tensor {n}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta: HashMap<String, String> = [("fmpe_state".to_string(), state)].into();
        let buf = safetensors::serialize(views, Some(meta)).map_err(|e| Error::invalid(format!("checkpoint: {e}")))?;
        crate::io::write_file_atomic(path, |w| std::io::Write::write_all(w, &buf))
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    ///
    /// # Errors
    /// [`Error::Io`] naming `path` when it cannot be read; [`Error::Data`] naming it when
    /// it is not a valid checkpoint (corrupt file, missing tensor or state, another
    /// checkpoint version, arrays of inconsistent lengths).
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: String| Error::data(path, None, None, m);
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a valid checkpoint: {e}")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a valid checkpoint: {e}")))?;
        let text = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("fmpe_state"))
            .ok_or_else(|| bad("not an fmpe checkpoint (no fmpe_state metadata)".into()))?;
        let state: TrainerState = serde_json::from_str(text).map_err(|e| bad(format!("invalid checkpoint state: {e}")))?;
        if !(CHECKPOINT_VERSION_PLAIN..=CHECKPOINT_VERSION).contains(&state.checkpoint_version) {
            return Err(bad(format!(
                "checkpoint version {} is not supported (this fmpe reads versions {CHECKPOINT_VERSION_PLAIN} to \
                 {CHECKPOINT_VERSION})",
                state.checkpoint_version
            )));
        }
        let get = |name: &str| -> Result<Vec<f32>> {
            let v = st.tensor(name).map_err(|e| bad(format!("missing tensor '{name}': {e}")))?;
            if v.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!("tensor '{name}' is not F32")));
            }
            Ok(v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        // Written since the moving average of the weights; empty in older files.
        let has = |name: &str| st.names().contains(&name);
        let get_or_empty = |name: &str| if has(name) { get(name) } else { Ok(Vec::new()) };
        let ck = Checkpoint {
            params: get("params")?,
            best: get("best")?,
            m: get("adam_m")?,
            v: get("adam_v")?,
            good_params: get("good_params")?,
            good_m: get("good_m")?,
            good_v: get("good_v")?,
            epoch_losses: get("epoch_losses")?,
            ema: get_or_empty("ema")?,
            good_ema: get_or_empty("good_ema")?,
            state,
        };
        ck.check_lengths().map_err(bad)?;
        Ok(ck)
    }

    /// Checks the array lengths against the network's parameter count.
    fn check_lengths(&self) -> std::result::Result<(), String> {
        self.state.net.validate().map_err(|e| e.to_string())?;
        let len = self.state.net.layout().len;
        for (name, a) in self.arrays() {
            let want = match name {
                "adam_m" | "good_m" => len + 2,
                "epoch_losses" => self.state.step_in_epoch,
                "ema" | "good_ema" if self.state.train.ema_decay == 0.0 || self.state.checkpoint_version < 2 => 0,
                _ => len,
            };
            if a.len() != want {
                return Err(format!("tensor '{name}' has {} values, the network needs {want}", a.len()));
            }
        }
        if self.state.best_epoch > self.state.history.len() || self.state.epoch != self.state.history.len() {
            return Err("inconsistent epoch counters".into());
        }
        Ok(())
    }
}

/// FNV-1a over the bits of the uploaded dataset: cheap, stable across runs and
/// platforms (not a cryptographic hash).
pub(crate) fn fingerprint(data: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in data {
        for b in v.to_bits().to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    /// The state's f64 values (best loss, learning rate, history) must come back bit for
    /// bit, or a resumed run compares its validation losses with a best loss one ulp
    /// off. serde_json's default float parser is best-effort (1.7517974853515625 came
    /// back as …623); the `float_roundtrip` feature makes it exact.
    #[test]
    fn state_floats_round_trip_bit_for_bit() {
        for v in [1.7517974853515625f64, 0.0007502500000000002, 2.539840351451527, 1e-300, -0.1] {
            let back: f64 = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v}");
        }
    }
}
