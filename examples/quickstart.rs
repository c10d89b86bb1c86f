//! End to end with the library: simulate two_moons, train an FMPE model on the GPU,
//! draw posterior samples for one observation and save everything.
//!
//! `cargo run --release --example quickstart` (a minute or two on a CPU-only machine).

use std::sync::Arc;

use fmpe::model::ModelMeta;
use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
use fmpe::tasks::{simulate_dataset, task_by_name};
use fmpe::train::{Control, Fmpe, TrainConfig};
use fmpe::transform::ThetaTransform;
use fmpe::Gpu;

fn main() -> fmpe::Result<()> {
    let gpu = Arc::new(Gpu::new()?);
    println!("adapter: {}", gpu.adapter().map(|a| a.to_string()).unwrap_or_default());

    // 1. Simulate: θ ~ prior, x ~ p(x | θ). theta is [n, 2], x is [n, 2], row-major.
    let task = task_by_name("two_moons")?;
    let (theta, x) = simulate_dataset(task.as_ref(), 2_000, 1);

    // 2. Train the vector field v(t, θ_t, x) by flow matching on the OT path.
    let net = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![64; 3], conditioning: Conditioning::Glu, embedding: vec![] };
    let train = TrainConfig { max_epochs: 20, seed: 1, ..Default::default() };
    // Train in logit space (as `fmpe run` does by default): samples always land in the box.
    let meta = ModelMeta {
        task: Some("two_moons".into()),
        prior: task.prior().support_box(),
        transform: ThetaTransform::for_prior(task.prior()),
        ..Default::default()
    };
    let fmpe = Fmpe::new(gpu.clone(), net, meta).append_simulations(&theta, &x)?;
    let model = fmpe.train(&train, &mut |p| {
        eprintln!("epoch {}/{}: validation loss {:.4}", p.record.epoch, p.max_epochs, p.record.val_loss);
        Control::Continue
    })?;
    model.save(std::path::Path::new("runs/quickstart-model"))?;

    // 3. Sample q(θ | x_o) by integrating the ODE from t = 0 to 1 (dopri5).
    let x_o = [0.0, 0.1];
    // The weights are uploaded once; one GpuModel serves the posteriors of many observations.
    let on_gpu = GpuModel::new(gpu.clone(), &model)?;
    let posterior = on_gpu.posterior(&x_o)?;
    let opts = PosteriorOptions { solver: Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }, seed: 2, ..Default::default() };
    let samples = posterior.sample(1_000, &opts)?; // [1000, 2], original units
    let mean: Vec<f64> = (0..samples.dim()).map(|j| (0..samples.n()).map(|i| samples.row(i)[j]).sum::<f64>() / samples.n() as f64).collect();
    let report = samples.report();
    println!("{} samples, acceptance {:.3}, posterior mean {mean:?}", report.returned, report.acceptance_rate);
    Ok(())
}
