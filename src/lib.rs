//! fmpe: Flow Matching Posterior Estimation on the GPU (Dax, Wildberger, Buchholz et
//! al., NeurIPS 2023, arXiv:2305.17161).
//!
//! Simulate → train a vector field `v(t, θ_t, x)` on the optimal-transport path →
//! sample and evaluate the posterior for observations, every number made by WGSL
//! compute shaders through wgpu:
//!
//! ```no_run
//! use std::sync::Arc;
//! use fmpe::model::ModelMeta;
//! use fmpe::policy::{Budget, Policy};
//! use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
//! use fmpe::tasks::{simulate_dataset, task_by_name};
//! use fmpe::train::{Control, Fmpe};
//! use fmpe::Gpu;
//!
//! # fn main() -> fmpe::Result<()> {
//! let gpu = Arc::new(Gpu::new()?); // or Gpu::with_options(..), Gpu::from_device(device, queue)
//! let task = task_by_name("two_moons")?;
//! let (theta, x) = simulate_dataset(task.as_ref(), 10_000, 1); // [n, 2], [n, 2] row-major
//! // The budget policy: network and training options from the budget and dims (4 × 64,
//! // batch 256, 200 epochs here); fmpe::policy::AutoOptions overrides any of them.
//! let (net, train) = Policy::resolve(Budget { num_simulations: 10_000, dim_theta: 2, dim_x: 2 })?;
//! let model = Fmpe::new(gpu.clone(), net, ModelMeta::default())
//!     .append_simulations(&theta, &x)?
//!     .train(&train, &mut |p| {
//!         eprintln!("epoch {} validation loss {:.4}", p.record.epoch, p.record.val_loss);
//!         Control::Continue // or Control::Stop: the best weights are kept
//!     })?;
//! let on_gpu = GpuModel::new(gpu.clone(), &model)?; // weights uploaded once
//! let posterior = on_gpu.posterior(&[0.0, 0.1])?; // x_o
//! let opts = PosteriorOptions { solver: Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }, ..Default::default() };
//! let samples = posterior.sample(10_000, &opts)?; // [10000, 2], original units
//! let log_q = posterior.log_prob(samples.as_slice(), &opts)?; // [10000]
//! assert_eq!((samples.n(), samples.dim(), log_q.len()), (10_000, 2, 10_000));
//! # Ok(())
//! # }
//! ```
//!
//! Applications that render with wgpu can keep samples on their GPU:
//! [`posterior::Posterior::record_sample`] records a whole draw into their own command
//! encoder, straight into their vertex buffer ([`posterior::resident`]).
//!
//! Cargo features: `plot` (default; the `plot` module, PNG plots with plotters) and `cli`
//! (default; the `fmpe` binary's clap and indicatif, implies `plot`). The library itself
//! needs neither: `default-features = false` drops all three dependencies.
pub mod bench;
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod net;
#[cfg(feature = "plot")]
pub mod plot;
pub mod ode;
pub mod policy;
pub mod posterior;
pub mod prior;
pub mod reference;
pub mod select;
pub mod tasks;
pub mod train;
pub mod train_config;
pub mod transform;
pub use error::{Error, Result};
pub use gpu::Gpu;
