//! Counting `Queue::submit` calls through the one place that submits: exactly one per
//! training step, one per epoch for validation + loss readback, none while recording;
//! and the GPU's dispatch counter against counts made by hand from the network
//! configuration (not from the recorded programs), per training step and per ODE step.
mod common;

use fmpe::net::{Conditioning, NetConfig};

/// Residual blocks whose width differs from the previous block's: each has a `resize`
/// linear layer in front (block 0 takes the input layer's width, `hidden[0]`).
fn resizes(cfg: &NetConfig) -> u64 {
    cfg.hidden.windows(2).filter(|w| w[0] != w[1]).count() as u64
}

/// Dispatches of one training step, counted from the network's structure (every matmul
/// is one dispatch, bias and activation fused in; a weight gradient and its bias gradient
/// are one dispatch):
/// * gather of the minibatch + the OT path sample `(t, θ_t, target)`: 1;
/// * forward: one matmul per embedding layer, the input layer, per residual block
///   linear1 and linear2 (glu: + the gate), per resize 1, the output layer;
/// * the flow-matching loss and its gradient dL/dv: 1;
/// * backward: output layer weight gradient + data gradient (2); per block linear2 weight
///   gradient, dL/du, linear1 weight gradient, dL/d(block input) with the residual
///   (4; glu: + the gate's backward kernel and the gate's weight gradient); per resize
///   weight + data gradient (2); the input layer's weight gradient (1; no data gradient:
///   its input is data), and with an embedding the gradient into the last embedding
///   output (1), then per embedding layer its weight gradient and, but for the first,
///   its data gradient; with two or more blocks of equal width (no resize) the
///   weight gradients of linear1 of all blocks are one batched dispatch, and so are
///   those of linear2: per block 2 (glu: 4), plus 2;
/// * the non-finite check of the gradient (one workgroup; its flag makes Adam skip the
///   step): 1;
/// * Adam over all parameters: 1.
fn train_step_dispatches(cfg: &NetConfig) -> u64 {
    let glu = u64::from(cfg.conditioning == Conditioning::Glu);
    let blocks = cfg.hidden.len() as u64;
    let emb = cfg.embedding.len() as u64;
    let forward = emb + 1 + blocks * (2 + glu) + resizes(cfg) + 1;
    let embedding_backward = if emb > 0 { 1 + emb + (emb - 1) } else { 0 };
    let batched = blocks >= 2 && cfg.hidden.iter().all(|&w| w == cfg.hidden[0]);
    let per_block = if batched { blocks * (2 + 2 * glu) + 2 } else { blocks * (4 + 2 * glu) };
    let backward = 2 + per_block + 2 * resizes(cfg) + 1 + embedding_backward;
    1 + forward + 1 + backward + 1 + 1
}

/// Dispatches of one evaluation of the vector field `v(t, θ; x_o)` for a fixed
/// observation (the x-only part, embedding included, is computed once per observation):
/// * concat: the input layer on `[t, θ]` with the precomputed x-part as bias (1), per
///   block linear1 + linear2 (2), per resize 1, the output layer (1);
/// * glu: block 0 on the precomputed `h0`, `y0`: its gate with the residual fused (1),
///   blocks 1.. linear1 + gate + linear2 (3), per resize 1, the output layer (1).
fn field_dispatches(cfg: &NetConfig) -> u64 {
    let blocks = cfg.hidden.len() as u64;
    match cfg.conditioning {
        Conditioning::Concat => 1 + 2 * blocks + resizes(cfg) + 1,
        Conditioning::Glu => 1 + 3 * (blocks - 1) + resizes(cfg) + 1,
    }
}

/// One rk4 step: 4 stages of (stage input `t + c h, θ + h Σ a k` + field), then the
/// update `θ + h Σ b k` (1).
fn rk4_step_dispatches(cfg: &NetConfig) -> u64 {
    4 * (1 + field_dispatches(cfg)) + 1
}

/// One dopri5 step: 6 new stages of (stage input + field) (the first stage is the last
/// one of the previous step, FSAL), then the error control / accept-reject kernel (1).
fn dopri5_step_dispatches(cfg: &NetConfig) -> u64 {
    6 * (1 + field_dispatches(cfg)) + 1
}

/// dopri5 steps recorded per submission, each submission closed by one active-row count
/// dispatch and a 4-byte readback (`DOPRI_STEPS_PER_SUBMIT` in src/posterior).
const DOPRI5_STEPS_PER_SUBMISSION: u64 = 8;
use fmpe::model::ModelMeta;
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
use fmpe::train::{Control, Fmpe, TrainConfig, Trainer};

/// The networks both tests count (dim θ = dim x = 2): glu and concat, alone and with a
/// 2-layer x-embedding, on blocks [16, 24] (one resize); then 3 equal blocks of 16.
fn configs() -> Vec<NetConfig> {
    let mut v = Vec::new();
    for (embedding, hidden) in [(vec![], vec![16, 24]), (vec![8, 4], vec![16, 24]), (vec![], vec![16, 16, 16])] {
        for conditioning in [Conditioning::Glu, Conditioning::Concat] {
            v.push(NetConfig { dim_theta: 2, dim_x: 2, hidden: hidden.clone(), conditioning, embedding: embedding.clone() });
        }
    }
    v
}

#[test]
fn one_submission_per_training_step() {
    let gpu = common::fresh_gpu();
    let n = 600;
    let theta = common::rand_vec(n * 2, 1);
    let x: Vec<f64> = theta.iter().zip(common::rand_vec(n * 2, 2)).map(|(t, e)| t + 0.1 * e).collect();
    let mut per_step_counts = Vec::new();
    for cfg in configs() {
        let tc = TrainConfig { batch_size: 50, validation_fraction: 0.1, ..Default::default() };
        let mut tr = Trainer::new(&gpu, cfg.clone(), tc, &theta, &x, None).unwrap();
        assert_eq!(tr.steps_per_epoch(), 540 / 50);
        let s0 = gpu.submission_count();
        let d0 = gpu.dispatch_count();
        for k in 1..=tr.steps_per_epoch() {
            tr.step().unwrap();
            assert_eq!(gpu.submission_count() - s0, k as u64, "step {k}");
        }
        let expected = train_step_dispatches(&cfg);
        assert_eq!(gpu.dispatch_count() - d0, expected * tr.steps_per_epoch() as u64, "{cfg:?}");
        assert_eq!(tr.dispatches_per_step() as u64, expected, "the trainer's own count, {cfg:?}");
        let s1 = gpu.submission_count();
        let (rec, _) = tr.end_epoch().unwrap();
        assert_eq!(gpu.submission_count() - s1, 1, "validation + loss readback is one submission");
        assert!(rec.train_loss.is_finite() && rec.val_loss.is_finite());
        per_step_counts.push(tr.dispatches_per_step());
    }
    eprintln!("dispatches per training step (glu, concat; then with a 2-layer embedding; then 3 equal blocks): {per_step_counts:?}");
    // Written out for the configurations above (hidden [16, 24]: 2 blocks, 1 resize;
    // [16, 16, 16]: 3 equal blocks, their linear1 and linear2 weight gradients batched).
    assert_eq!(per_step_counts, vec![30, 24, 36, 30, 32, 23]);
}

/// The GPU's dispatch counter per ODE step against the counts by hand: rk4 from two solves
/// that differ only in the number of steps; dopri5 from one solve, its submissions (each
/// of 8 steps + 1 count) and the per-chunk work outside the steps that rk4 measured.
#[test]
fn ode_step_dispatches_match_a_count_by_hand() {
    let gpu = std::sync::Arc::new(common::fresh_gpu());
    let n = 200;
    let theta = common::rand_vec(n * 2, 7);
    let x: Vec<f64> = theta.iter().zip(common::rand_vec(n * 2, 8)).map(|(t, e)| t + 0.3 * e).collect();
    for cfg in configs() {
        let tc = TrainConfig { max_epochs: 2, batch_size: 50, ..Default::default() };
        let model = Fmpe::new(gpu.clone(), cfg.clone(), ModelMeta::default()).append_simulations(&theta, &x).unwrap().train(&tc, &mut |_| Control::Continue).unwrap();
        let post = GpuModel::new(gpu.clone(), &model).unwrap().posterior(&[0.1, -0.2]).unwrap();
        let count = |solver| {
            let (d0, s0) = (gpu.dispatch_count(), gpu.submission_count());
            let opts = PosteriorOptions { solver, chunk_size: Some(100), ..Default::default() };
            post.sample(100, &opts).unwrap();
            (gpu.dispatch_count() - d0, gpu.submission_count() - s0)
        };
        let (d10, _) = count(Solver::Rk4 { steps: 10 });
        let (d30, _) = count(Solver::Rk4 { steps: 30 });
        assert_eq!(d30 - d10, 20 * rk4_step_dispatches(&cfg), "rk4, {cfg:?}");
        // The per-chunk work outside the steps (x-part of the network, θ₀ draw, map back
        // to original units), shared by both solvers.
        let outside_steps = d10 - 10 * rk4_step_dispatches(&cfg);
        // dopri5: that, plus the first stage k₁ = v(0, θ₀) (stage input + field), plus per
        // step-submission 8 steps and the active-row count; the last submission maps the
        // samples back and reads them.
        let (d, s) = count(Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 });
        let per_submission = DOPRI5_STEPS_PER_SUBMISSION * dopri5_step_dispatches(&cfg) + 1;
        assert_eq!(d, outside_steps + 1 + field_dispatches(&cfg) + (s - 1) * per_submission, "dopri5, {cfg:?}");
        let (rk4, _) = post.ode_step_dispatches(Solver::Rk4 { steps: 10 }, None);
        let (dopri5, _) = post.ode_step_dispatches(Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }, None);
        assert_eq!((rk4 as u64, dopri5 as u64), (rk4_step_dispatches(&cfg), dopri5_step_dispatches(&cfg)), "{cfg:?}");
        eprintln!(
            "{:?} embedding {:?}: per ODE step rk4 {}, dopri5 {}",
            cfg.conditioning,
            cfg.embedding,
            rk4_step_dispatches(&cfg),
            dopri5_step_dispatches(&cfg)
        );
    }
}

#[test]
fn rk4_sampling_is_one_submission_per_chunk() {
    let gpu = common::fresh_gpu();
    let n = 200;
    let theta = common::rand_vec(n * 2, 3);
    let x = common::rand_vec(n * 2, 4);
    let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16], conditioning: Conditioning::Glu, embedding: vec![] };
    let tc = TrainConfig { max_epochs: 1, batch_size: 50, ..Default::default() };
    let gpu = std::sync::Arc::new(gpu);
    let model = Fmpe::new(gpu.clone(), cfg, ModelMeta::default()).append_simulations(&theta, &x).unwrap().train(&tc, &mut |_| Control::Continue).unwrap();
    let post = GpuModel::new(gpu.clone(), &model).unwrap().posterior(&[0.0, 0.0]).unwrap();
    let s0 = gpu.submission_count();
    let opts = PosteriorOptions { solver: Solver::Rk4 { steps: 10 }, chunk_size: Some(100), ..Default::default() };
    post.sample(300, &opts).unwrap();
    assert_eq!(gpu.submission_count() - s0, 3, "one submission per chunk of 100");
}

#[test]
fn training_is_reproducible_for_a_seed() {
    let gpu = common::gpu();
    let n = 400;
    let theta = common::rand_vec(n * 2, 5);
    let x: Vec<f64> = theta.iter().zip(common::rand_vec(n * 2, 6)).map(|(t, e)| t + 0.2 * e).collect();
    let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16, 16], conditioning: Conditioning::Glu, embedding: vec![] };
    let run = |seed: u64| {
        let tc = TrainConfig { max_epochs: 3, batch_size: 64, seed, ..Default::default() };
        Fmpe::new(gpu, cfg.clone(), ModelMeta::default()).append_simulations(&theta, &x).unwrap().train(&tc, &mut |_| Control::Continue).unwrap()
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a.params, b.params, "same seed, same adapter: identical weights");
    let losses = |m: &fmpe::model::Model| m.info.history.iter().map(|r| (r.train_loss, r.val_loss)).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    assert_ne!(a.params, c.params, "another seed gives other weights");
}
