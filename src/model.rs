//! A trained FMPE model: network weights, z-score statistics and metadata, stored as
//! a directory with `model.safetensors` (tensors, PyTorch names and `[out, in]`
//! shapes) and `model.json` (everything else), written atomically.
//!
//! [`ModelMeta`] is what a caller says about the data before training (names, prior,
//! transforms); [`crate::train`] turns it and the trained weights into a [`Model`].
//! Depends on the network configuration, the transforms, the prior and the training
//! configuration, never on [`crate::train`] or [`crate::posterior`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{read_model_dir, write_model_dir_with, Tensor};
use crate::net::NetConfig;
pub use crate::prior::BoxPrior;
use crate::train_config::{EpochRecord, TrainConfig};
use crate::transform::{Bijection, ThetaTransform, XTransform};

/// Version of the model directory format written by this crate.
///
/// Version 2 added the parameter transform and the x-embedding: a version-1 reader
/// would silently misread such a model, so it must refuse it. This crate reads 1 and 2.
pub const FORMAT_VERSION: u32 = 2;

/// Names, prior and provenance of the data a model is trained on, given before
/// training (see [`crate::train::Fmpe`]); a serde type.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ModelMeta {
    /// Parameter names `[dim_theta]` (empty: `theta_1..`).
    pub theta_names: Vec<String>,
    /// Data names `[dim_x]` (empty: `x_1..`).
    pub x_names: Vec<String>,
    /// Benchmark task, if any.
    pub task: Option<String>,
    /// Box prior (samples outside are rejected by default).
    pub prior: Option<BoxPrior>,
    /// Parameter transform to train in (default: the identity); e.g.
    /// [`ThetaTransform::from_box`] of `prior`, or [`ThetaTransform::for_prior`] of a
    /// task's prior.
    pub transform: ThetaTransform,
    /// Elementwise transform of x, applied to the simulations when they are appended
    /// (in f64, before the z-score statistics) and to every observation (default: none).
    pub x_transform: XTransform,
    /// Simulations dropped before training (non-finite x), recorded in `model.json`.
    pub dropped_rows: usize,
}

impl ModelMeta {
    /// Checks the prior box and the transform against `dim_theta`, and that every logit
    /// component lies on exactly the prior box's bounds (otherwise sampling would draw in
    /// one box and reject against another).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `"prior"` or `"transform"`.
    pub fn validate(&self, dim_theta: usize) -> Result<()> {
        self.transform.validate(dim_theta)?;
        let Some(p) = &self.prior else { return Ok(()) };
        p.validate(dim_theta)?;
        for (j, b) in self.transform.components.iter().enumerate() {
            if let Bijection::Logit { low, high } = *b {
                if j < p.low.len() && (low != p.low[j] || high != p.high[j]) {
                    return Err(Error::option(
                        "transform",
                        format!(
                            "component {}: logit on [{low}, {high}] but the prior box is [{}, {}]",
                            j + 1,
                            p.low[j],
                            p.high[j]
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `theta_names` when it has `dim_theta` entries, else `theta_1..theta_d`.
    pub fn theta_names_or_default(&self, dim_theta: usize) -> Vec<String> {
        names_or_default(&self.theta_names, "theta", dim_theta)
    }

    /// `x_names` when it has `dim_x` entries, else `x_1..x_d`.
    pub fn x_names_or_default(&self, dim_x: usize) -> Vec<String> {
        names_or_default(&self.x_names, "x", dim_x)
    }
}

fn names_or_default(given: &[String], prefix: &str, d: usize) -> Vec<String> {
    if given.len() == d {
        given.to_vec()
    } else {
        (1..=d).map(|i| format!("{prefix}_{i}")).collect()
    }
}

/// Metadata stored in `model.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// [`FORMAT_VERSION`] at writing time.
    pub format_version: u32,
    /// Network shape.
    pub net: NetConfig,
    /// σ_min of the OT path used in training.
    pub sigma_min: f64,
    /// Time prior exponent α used in training.
    pub time_prior_exponent: f64,
    /// Parameter names `[dim_theta]` (e.g. `theta_1` or a task's names).
    pub theta_names: Vec<String>,
    /// Data names `[dim_x]`.
    pub x_names: Vec<String>,
    /// Benchmark task the model was trained on, if any.
    pub task: Option<String>,
    /// Box prior support (samples outside are rejected by default).
    pub prior: Option<BoxPrior>,
    /// Parameter transform θ' = T(θ): the network, `theta_mean` and `theta_std` live
    /// in θ' space (see [`crate::transform`]). Absent in models written before
    /// transforms existed: the identity.
    #[serde(default)]
    pub transform: ThetaTransform,
    /// Elementwise transform of x before its z-scoring (`x_mean`/`x_std` are those of the
    /// transformed x); applied to the observation by [`crate::posterior::Posterior::new`].
    #[serde(default, skip_serializing_if = "XTransform::is_identity")]
    pub x_transform: XTransform,
    /// Training hyper-parameters.
    pub train: TrainConfig,
    /// Training rows and validation rows.
    pub n_train: usize,
    /// Validation rows.
    pub n_val: usize,
    /// Simulations dropped because x was not finite.
    pub dropped_rows: usize,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Per-epoch losses.
    pub history: Vec<EpochRecord>,
    /// Held-out negative log-likelihood of the kept weights on the validation pairs
    /// ([`crate::metrics::held_out_nll`]); absent when not computed (no validation
    /// rows, or models written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOutNll>,
    /// The configurations trained beside this one and how each scored, when the model
    /// was chosen among several by held-out NLL ([`crate::select`]); absent for a
    /// single configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

/// How a model was chosen among candidate configurations ([`crate::select`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The score compared: `held_out_nll` (nats, lower is better).
    pub metric: String,
    /// Every candidate, in the order trained (the policy's own configuration first).
    pub candidates: Vec<Candidate>,
    /// Index into `candidates` of the model kept.
    pub chosen: usize,
    /// For a kept model whose samples can leave its box prior (trained without the
    /// box's logit): whether sampling folds them back into the box or rejects them by
    /// default, and the held-out scores behind the choice
    /// ([`crate::metrics::held_out_reflection`]). Absent otherwise, when it could not
    /// be computed, and in models written before it existed (they reject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection: Option<Reflection>,
}

/// Held-out comparison of the two ways to sample a flow that leaks past its box prior
/// (see [`crate::metrics::held_out_reflection`]): rejection, whose density is
/// `q(θ | x) / M(x)`, against reflection at the bounds, whose density is `q` summed over
/// the mirror images of θ.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reflection {
    /// True when sampling reflects by default: the folded density's held-out NLL (an
    /// upper bound) is below rejection's by more than
    /// [`crate::metrics::REFLECT_MARGIN_SE`] standard errors of the paired difference.
    /// A flow trained on the reflected density
    /// ([`crate::train_config::TrainConfig::reflect`]) reflects by default whatever
    /// this says: it was trained to be folded.
    pub reflect: bool,
    /// `−mean log(q(θ_i | x_i) / M(x_i))` (nats): the density sampled with rejection.
    pub rejected_nll: f64,
    /// `−mean log(q(θ_i | x_i) + Σ_j q(R_j θ_i | x_i))` (nats), `R_j` the mirror at the
    /// nearer bound of component j: an upper bound on the NLL of the density sampled
    /// with reflection (the images mirrored in two or more components are left out).
    pub reflected_nll: f64,
    /// Standard error of the mean paired difference `reflected − rejected` (nats).
    pub difference_se: f64,
    /// Validation pairs compared.
    pub pairs: usize,
}

/// One trained candidate of a [`Selection`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Widths of its residual blocks.
    pub hidden: Vec<usize>,
    /// Its parameter transform.
    pub transform: ThetaTransform,
    /// Its resolved options in one line ([`crate::policy::Resolved::summary`]).
    pub summary: String,
    /// Its held-out NLL (nats), the selection's score; `None` when it could not be
    /// computed (see `error`). For a candidate sampled with rejection to the box prior
    /// (trained without the box's logit), the NLL of the density as sampled:
    /// the flow's own plus `log_prior_mass`; for one trained on the reflected density
    /// (`reflect_training`), the upper bound of the folded density's
    /// ([`Reflection::reflected_nll`]).
    pub held_out_nll: Option<f64>,
    /// Trained on the reflected density
    /// ([`crate::train_config::TrainConfig::reflect`]) and sampled folded into the box.
    #[serde(default)]
    pub reflect_training: bool,
    /// For a candidate sampled with rejection to the box prior: the mean over the
    /// held-out pairs of `log M(x)`, the log of the flow's mass inside the box
    /// ([`crate::metrics::held_out::held_out_prior_mass`]; ≤ 0); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_prior_mass: Option<f64>,
    /// With `log_prior_mass`: the share of the held-out observations where less than
    /// [`crate::metrics::LOW_MASS`] (5 %) of the flow's mass is inside the box, so that
    /// rejection sampling there needs over 20 proposals per sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_mass_share: Option<f64>,
    /// Why the held-out NLL is missing, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its best flow-matching validation loss.
    pub best_validation_loss: f64,
    /// Epochs trained, and the epoch whose weights it kept.
    pub epochs: usize,
    /// The epoch whose weights it kept.
    pub best_epoch: usize,
    /// Wall-clock seconds of its training and scoring.
    pub seconds: f64,
}

/// The held-out negative log-likelihood of a model: `−mean_i log q(θ_i | x_i)` over
/// simulations it did not train on (see [`crate::metrics::held_out_nll`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldOutNll {
    /// `−mean log q(θ_i | x_i)` over the pairs with a finite log-density (nats, θ in
    /// original units).
    pub nll: f64,
    /// Pairs evaluated.
    pub pairs: usize,
    /// Pairs whose θ lies outside the parameter transform's support (log q = −∞),
    /// left out of the mean.
    pub outside_support: usize,
}

/// A trained model: metadata, flat parameters and z-score statistics (of θ' = T(θ)
/// when `info.transform` is not the identity). Plain host data: `Send + Sync + 'static`,
/// cheap to share behind an `Arc`.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Metadata.
    pub info: ModelInfo,
    /// Flat parameters `[net.layout().len]` (see [`crate::net::ParamLayout`]).
    pub params: Vec<f32>,
    /// Mean of θ' = T(θ) over the training rows `[dim_theta]` (θ itself without a
    /// transform).
    pub theta_mean: Vec<f64>,
    /// Standard deviation of θ' `[dim_theta]` (θ itself without a transform).
    pub theta_std: Vec<f64>,
    /// Mean of x `[dim_x]`.
    pub x_mean: Vec<f64>,
    /// Standard deviation of x `[dim_x]`.
    pub x_std: Vec<f64>,
}

const _: () = {
    const fn send_sync_static<T: Send + Sync + 'static>() {}
    send_sync_static::<Model>();
    send_sync_static::<ModelMeta>();
};

const STD_NAMES: [&str; 4] = ["standardize_theta.mean", "standardize_theta.std", "standardize_x.mean", "standardize_x.std"];

impl Model {
    /// A model from raw parameters `[net.layout().len]` with identity z-scoring, no
    /// prior, no parameter transform, no names and an empty history: for fields given
    /// by hand (tests, benches, weights trained elsewhere).
    pub fn with_params(net: NetConfig, params: Vec<f32>) -> Model {
        let (dt, dx) = (net.dim_theta, net.dim_x);
        Model {
            info: ModelInfo {
                format_version: FORMAT_VERSION,
                net,
                sigma_min: 1e-4,
                time_prior_exponent: 4.0,
                theta_names: (1..=dt).map(|i| format!("theta_{i}")).collect(),
                x_names: (1..=dx).map(|i| format!("x_{i}")).collect(),
                task: None,
                prior: None,
                transform: ThetaTransform::identity(),
                x_transform: XTransform::Identity,
                train: TrainConfig::default(),
                n_train: 0,
                n_val: 0,
                dropped_rows: 0,
                best_epoch: 0,
                history: vec![],
                held_out: None,
                selection: None,
            },
            params,
            theta_mean: vec![0.0; dt],
            theta_std: vec![1.0; dt],
            x_mean: vec![0.0; dx],
            x_std: vec![1.0; dx],
        }
    }

    /// Writes `dir/model.safetensors` and `dir/model.json` atomically (temporary
    /// directory, then rename).
    ///
    /// # Errors
    /// [`Error::Io`] naming the path.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_with(dir, &mut |_| Ok(()))
    }

    /// [`Model::save`], with `extra(staging_dir)` writing further files (e.g. the
    /// training-curve plot) into the directory before its atomic rename.
    ///
    /// # Errors
    /// As [`Model::save`], plus whatever `extra` returns.
    pub fn save_with(&self, dir: &Path, extra: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
        let layout = self.info.net.layout();
        let mut tensors = Vec::new();
        for l in layout.linears() {
            tensors.push(Tensor {
                name: format!("{}.weight", l.name),
                shape: vec![l.fan_out, l.fan_in],
                data: self.params[l.weight..l.bias].to_vec(),
            });
            tensors.push(Tensor {
                name: format!("{}.bias", l.name),
                shape: vec![l.fan_out],
                data: self.params[l.bias..l.bias + l.fan_out].to_vec(),
            });
        }
        for (name, v) in STD_NAMES.iter().zip([&self.theta_mean, &self.theta_std, &self.x_mean, &self.x_std]) {
            tensors.push(Tensor {
                name: name.to_string(),
                shape: vec![v.len()],
                data: v.iter().map(|&x| x as f32).collect(),
            });
        }
        let json = serde_json::to_value(&self.info).map_err(|e| Error::invalid(format!("model.json: {e}")))?;
        write_model_dir_with(dir, &json, &tensors, extra)
    }

    /// Reads a model directory written by [`Model::save`].
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Data`] naming the file when it is missing, of another
    /// format version, or inconsistent with its network shape.
    pub fn load(dir: &Path) -> Result<Model> {
        let (json, tensors) = read_model_dir(dir)?;
        let jpath = dir.join("model.json");
        let info: ModelInfo = serde_json::from_value(json)
            .map_err(|e| Error::data(&jpath, None, None, format!("not an fmpe model description: {e}")))?;
        if !(1..=FORMAT_VERSION).contains(&info.format_version) {
            return Err(Error::data(
                &jpath,
                None,
                None,
                format!("format version {} (this fmpe reads {FORMAT_VERSION})", info.format_version),
            ));
        }
        info.net.validate()?;
        info.transform
            .validate(info.net.dim_theta)
            .map_err(|e| Error::data(&jpath, None, None, e.to_string()))?;
        if let Some(p) = &info.prior {
            p.validate(info.net.dim_theta).map_err(|e| Error::data(&jpath, None, None, format!("prior: {e}")))?;
        }
        let tpath = dir.join("model.safetensors");
        let find = |name: &str, len: usize| -> Result<Vec<f32>> {
            let t = tensors
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| Error::data(&tpath, None, None, format!("tensor '{name}' is missing")))?;
            if t.data.len() != len {
                return Err(Error::data(
                    &tpath,
                    None,
                    None,
                    format!("tensor '{name}' has {} values, expected {len}", t.data.len()),
                ));
            }
            Ok(t.data.clone())
        };
        let layout = info.net.layout();
        let mut params = vec![0f32; layout.len];
        for l in layout.linears() {
            params[l.weight..l.bias].copy_from_slice(&find(&format!("{}.weight", l.name), l.fan_in * l.fan_out)?);
            params[l.bias..l.bias + l.fan_out].copy_from_slice(&find(&format!("{}.bias", l.name), l.fan_out)?);
        }
        let (dt, dx) = (info.net.dim_theta, info.net.dim_x);
        let f = |v: Vec<f32>| v.into_iter().map(|x| x as f64).collect::<Vec<f64>>();
        Ok(Model {
            theta_mean: f(find(STD_NAMES[0], dt)?),
            theta_std: f(find(STD_NAMES[1], dt)?),
            x_mean: f(find(STD_NAMES[2], dx)?),
            x_std: f(find(STD_NAMES[3], dx)?),
            info,
            params,
        })
    }

    /// Dimension of θ.
    pub fn dim_theta(&self) -> usize {
        self.info.net.dim_theta
    }

    /// Dimension of x.
    pub fn dim_x(&self) -> usize {
        self.info.net.dim_x
    }
}
