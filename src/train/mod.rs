//! Training the FMPE vector field on the GPU.
//!
//! The data path runs one way: simulations `(θ, x)` are checked and x is mapped by the
//! x transform ([`Simulations`]); the rows are shuffled once and uploaded; on the GPU θ
//! is mapped to the unbounded training space θ' = T(θ) when a parameter transform is
//! used ([`crate::transform`]) and both are z-scored with training-row statistics
//! ([`ZscoreStats`]); training yields a [`TrainOutcome`], which
//! [`TrainOutcome::into_model`] turns into a [`Model`](crate::model::Model).
//!
//! Use the builder [`Fmpe`] (`append_simulations(θ, x)?.train(&config, &mut progress)`),
//! or [`Trainer`] to drive the loop step by step.
//!
//! One optimiser step is one command buffer and one submission:
//! gather + OT path → forward → loss → backward → Adam. The step's losses accumulate in
//! GPU slots that the host reads once per epoch, together with the validation loss.
//!
//! Files: `builder` ([`Fmpe`]), `trainer` ([`Trainer`], [`TrainOutcome`], the callback's
//! [`Progress`] and [`Control`]), `dataset` ([`Simulations`], [`ZscoreStats`], the split and the
//! upload layout), `checkpoint` ([`Checkpoint`]: the state
//! a resumed run continues from, and its file), `programs` (buffers, workspace and every kernel call of training).
//! Submodules import only their siblings, never this file.

mod builder;
mod checkpoint;
mod dataset;
mod programs;
mod trainer;

pub use crate::train_config::{EpochRecord, LrSchedule, TrainConfig, TrainingReflection};
pub use builder::Fmpe;
pub use dataset::{Simulations, ZscoreStats};
pub use checkpoint::{Checkpoint, TrainerState, CHECKPOINT_FILE, CHECKPOINT_VERSION, CHECKPOINT_VERSION_PLAIN};
pub use trainer::{Control, EpochEnd, Progress, Rollback, TrainOutcome, Trainer};

