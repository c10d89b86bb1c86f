//! A trained model resident on the GPU: weights uploaded once, shared by the posteriors
//! of any number of observations.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, ParamsTexture};
use crate::model::Model;
use crate::prior::BoxPrior;
use crate::net::{NetConfig, ParamLayout};
use crate::ode::plan::Net;
use crate::transform::{ThetaTransform, XTransform};

use super::Posterior;

/// A [`Model`] uploaded to the GPU once: its weights live in one GPU buffer that every
/// [`Posterior`] built from it shares (cloning a `GpuModel` is cheap: it is a shared
/// handle). `Send + Sync + 'static`, so it can be held by another thread or a Python
/// object.
///
/// ```no_run
/// # fn main() -> fmpe::Result<()> {
/// # let model: fmpe::model::Model = todo!();
/// use std::sync::Arc;
/// use fmpe::posterior::{GpuModel, PosteriorOptions};
/// let gpu = Arc::new(fmpe::Gpu::new()?);
/// let on_gpu = GpuModel::new(gpu, &model)?;
/// for x_o in [[0.1, 0.2], [0.3, -0.1]] {
///     let samples = on_gpu.posterior(&x_o)?.sample(1000, &PosteriorOptions::default())?;
///     println!("{} samples of dim {}", samples.n(), samples.dim());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GpuModel {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub gpu: Arc<Gpu>,
    pub cfg: NetConfig,
    pub layout: ParamLayout,
    pub params: wgpu::Buffer,
    /// Texture mirror of `params` where the CPU matmul reads it (synced at upload).
    pub params_tex: Option<ParamsTexture>,
    pub theta_mean: Vec<f64>,
    pub theta_std: Vec<f64>,
    pub x_mean: Vec<f64>,
    pub x_std: Vec<f64>,
    pub x_transform: XTransform,
    pub prior: Option<BoxPrior>,
    pub transform: ThetaTransform,
    /// The model's default for `reflect_outside_prior`: trained on the reflected
    /// density, or its selection's [`crate::model::Reflection`] chose reflection.
    pub reflect: bool,
    /// Trained on the reflected density ([`crate::train_config::TrainConfig::reflect`]).
    pub reflect_trained: bool,
}

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel").field("net", &self.inner.cfg).finish_non_exhaustive()
    }
}

impl GpuModel {
    /// Uploads `model`'s weights `[net.layout().len]` to `gpu` (one buffer write).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the parameters do not match the network shape or the
    /// parameter transform does not fit dim_theta.
    pub fn new(gpu: Arc<Gpu>, model: &Model) -> Result<GpuModel> {
        let cfg = model.info.net.clone();
        let layout = cfg.layout();
        if model.params.len() != layout.len {
            return Err(Error::invalid("model parameters do not match the network shape"));
        }
        model.info.transform.validate(cfg.dim_theta)?;
        let transform = ThetaTransform::new(model.info.transform.resolved(cfg.dim_theta));
        let params = gpu.storage_from("fmpe model params", &model.params);
        let params_tex = ParamsTexture::for_gpu(&gpu, model.params.len());
        if let Some(t) = &params_tex {
            t.upload(&gpu, &model.params);
        }
        let inner = Inner {
            gpu,
            cfg,
            layout,
            params,
            params_tex,
            theta_mean: model.theta_mean.clone(),
            theta_std: model.theta_std.clone(),
            x_mean: model.x_mean.clone(),
            x_std: model.x_std.clone(),
            x_transform: model.info.x_transform,
            prior: model.info.prior.clone(),
            transform,
            reflect: model.info.train.reflect.is_some() || model.info.selection.as_ref().and_then(|s| s.reflection).is_some_and(|r| r.reflect),
            reflect_trained: model.info.train.reflect.is_some(),
        };
        Ok(GpuModel { inner: Arc::new(inner) })
    }

    /// The posterior q(θ | x_o) for `observation` `[dim_x]` (original units); shares
    /// this model's weights. See [`Posterior::new`].
    ///
    /// # Errors
    /// As [`Posterior::new`].
    pub fn posterior(&self, observation: &[f64]) -> Result<Posterior> {
        Posterior::new(self, observation)
    }

    /// The GPU the weights live on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.inner.gpu
    }

    /// Network shape.
    pub fn net(&self) -> &NetConfig {
        &self.inner.cfg
    }

    /// Dimension of θ.
    pub fn dim_theta(&self) -> usize {
        self.inner.cfg.dim_theta
    }

    /// Dimension of x.
    pub fn dim_x(&self) -> usize {
        self.inner.cfg.dim_x
    }

    /// The box prior used for rejection, if any.
    pub fn prior(&self) -> Option<&BoxPrior> {
        self.inner.prior.as_ref()
    }

    /// Whether sampling folds samples that leave the box prior back into it when
    /// [`PosteriorOptions::reflect_outside_prior`](crate::posterior::PosteriorOptions::reflect_outside_prior)
    /// is `None`: true for a flow trained on the reflected density
    /// ([`crate::train_config::TrainConfig::reflect`]), else the choice recorded at
    /// training ([`crate::model::Selection::reflection`]; false when none was made).
    pub fn reflects_by_default(&self) -> bool {
        self.inner.reflect && self.inner.prior.as_ref().is_some_and(|p| !self.inner.transform.covers(p))
    }

    /// The model's parameter transform (one bijection per component).
    pub fn transform(&self) -> &ThetaTransform {
        &self.inner.transform
    }

    /// The observation `[dim_x]` (original units) transformed and z-scored as the
    /// network saw x in training.
    pub(crate) fn observation_z(&self, observation: &[f64]) -> Result<Vec<f32>> {
        let m = &self.inner;
        if observation.len() != m.cfg.dim_x {
            return Err(Error::invalid(format!(
                "the observation has {} values, the model expects dim_x = {}",
                observation.len(),
                m.cfg.dim_x
            )));
        }
        if let Some(j) = observation.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("observation value {} is not finite", j + 1)));
        }
        let mut observation = observation.to_vec();
        m.x_transform.apply(&mut observation, m.cfg.dim_x).map_err(|e| match e {
            Error::Invalid(msg) => Error::Invalid(format!("observation: {msg}")),
            e => e,
        })?;
        Ok(m.z_score_x(&observation))
    }
}

impl Inner {
    /// The network on the GPU (shape, layout, weights and their texture mirror) for
    /// the ODE plans.
    pub(crate) fn gpu_net(&self) -> Net<'_> {
        Net { cfg: &self.cfg, layout: &self.layout, params: &self.params, params_tex: self.params_tex.as_ref().map(|t| t.view()) }
    }

    /// x `[dim_x]` after the x transform, z-scored as the network saw it in training.
    pub(crate) fn z_score_x(&self, x: &[f64]) -> Vec<f32> {
        x.iter().zip(self.x_mean.iter().zip(&self.x_std)).map(|(&v, (&mu, &s))| ((v - mu) / s) as f32).collect()
    }

    /// The rows of `theta` `[n, dim_theta]` a density solve integrates: inside the
    /// transform's support and, when `restrict`, inside the box prior (the others get
    /// −∞ without a solve).
    pub(crate) fn integrable_rows(&self, theta: &[f64], restrict: bool) -> Vec<usize> {
        let d = self.cfg.dim_theta;
        (0..theta.len() / d)
            .filter(|&i| {
                let row = &theta[i * d..(i + 1) * d];
                (!restrict || self.prior.as_ref().is_none_or(|p| p.contains(row))) && self.transform.contains(row)
            })
            .collect()
    }

    /// The start of a backward density solve for rows `idx` of `theta`: θ' = T(θ) and
    /// log |dθ'/dθ| in f64 (the identity gives θ and 0), then z-scored θ' as f32.
    /// Returns (`[idx.len(), dim_theta]`, `[idx.len()]`).
    pub(crate) fn backward_start(&self, theta: &[f64], idx: &[usize]) -> (Vec<f32>, Vec<f64>) {
        let d = self.cfg.dim_theta;
        let rows: Vec<f64> = idx.iter().flat_map(|&i| theta[i * d..(i + 1) * d].iter().copied()).collect();
        let (y, log_det) = self.transform.forward_rows(&rows, d);
        let z = y.iter().enumerate().map(|(k, &v)| ((v - self.theta_mean[k % d]) / self.theta_std[k % d]) as f32).collect();
        (z, log_det)
    }
}
