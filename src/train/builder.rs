//! [`Fmpe`]: the training builder, sbi's `append_simulations(θ, x).train()` in Rust.

use std::ops::Deref;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::{Model, ModelMeta};
use crate::net::NetConfig;
use crate::train_config::TrainConfig;

use super::dataset::Simulations;
use super::trainer::{Control, Progress, Trainer};

/// Trains an FMPE model: a network shape and what is known about the data
/// ([`ModelMeta`]: names, prior, parameter and x transforms), simulations appended in
/// one or more batches, then [`Fmpe::train`].
///
/// ```no_run
/// # use std::sync::Arc;
/// # use fmpe::{Gpu, net::{NetConfig, Conditioning}, model::ModelMeta, train::{Fmpe, TrainConfig, Control}};
/// # fn main() -> fmpe::Result<()> {
/// let gpu = Arc::new(Gpu::new()?);
/// let net = NetConfig { dim_theta: 1, dim_x: 1, hidden: vec![32; 2], conditioning: Conditioning::Glu, embedding: vec![] };
/// let (theta, x) = (vec![0.1, 0.5, -0.3], vec![0.2, 0.4, -0.1]);
/// let model = Fmpe::new(gpu, net, ModelMeta::default())
///     .append_simulations(&theta, &x)?
///     .train(&TrainConfig { max_epochs: 10, ..Default::default() }, &mut |p| {
///         eprintln!("epoch {}: {:.4}", p.record.epoch, p.record.train_loss);
///         Control::Continue
///     })?;
/// # Ok(()) }
/// ```
///
/// Training is bitwise reproducible given the simulations (in order), the
/// configuration and its seed.
///
/// `G` is how the builder holds the GPU: an `Arc<Gpu>` (the default; the builder is then
/// `Send + Sync + 'static`) or a plain `&Gpu`.
pub struct Fmpe<G: Deref<Target = Gpu> = std::sync::Arc<Gpu>> {
    gpu: G,
    net: NetConfig,
    meta: ModelMeta,
    sims: Simulations,
}

impl<G: Deref<Target = Gpu>> Fmpe<G> {
    /// A builder for `net` (its `dim_theta` / `dim_x` fix the shapes of the
    /// simulations) and `meta`, training on `gpu`.
    pub fn new(gpu: G, net: NetConfig, meta: ModelMeta) -> Fmpe<G> {
        let sims = Simulations::empty(net.dim_theta, net.dim_x);
        Fmpe { gpu, net, meta, sims }
    }

    /// Appends simulations: `theta [m, dim_theta]` and `x [m, dim_x]`, row-major, finite,
    /// θ in original units. x is mapped by `meta.x_transform` here, in the data path.
    ///
    /// # Errors
    /// As [`Simulations::append`]; nothing is appended on error.
    pub fn append_simulations(mut self, theta: &[f64], x: &[f64]) -> Result<Fmpe<G>> {
        self.sims.append(theta, x, self.meta.x_transform)?;
        Ok(self)
    }

    /// The simulations appended so far (x after the x transform).
    pub fn simulations(&self) -> &Simulations {
        &self.sims
    }

    /// Data warnings (constant columns) of the simulations appended so far.
    pub fn warnings(&self) -> Vec<String> {
        self.sims.warnings()
    }

    /// Trains on the GPU until early stopping, `max_epochs`, `max_seconds` or until
    /// `progress` returns [`Control::Stop`] (called after every epoch), and returns the
    /// model with the best weights. May be called again with another configuration.
    ///
    /// # Errors
    /// [`crate::Error::InvalidOption`] for an invalid `net`, `config` or `meta` (prior
    /// box, transform), [`crate::Error::Invalid`] naming the row of a θ outside the
    /// transform's support, too few rows, or a diverging loss; GPU errors.
    pub fn train(&self, config: &TrainConfig, progress: &mut dyn FnMut(&Progress<'_>) -> Control) -> Result<Model> {
        self.meta.validate(self.net.dim_theta)?;
        let (theta, x) = (self.sims.theta(), self.sims.x());
        let trainer = Trainer::with_transform(&self.gpu, self.net.clone(), config.clone(), theta, x, None, &self.meta.transform)?;
        Ok(trainer.fit_with_progress(progress)?.into_model(self.meta.clone()))
    }
}
