//! The vector-field network on the GPU against the f64 CPU reference: training forward,
//! loss and backward (both conditioning modes, with and without resize layers, with and
//! without an x-embedding), the gradient against central finite differences of the GPU
//! loss, and the evaluation forward with its once-per-observation precompute.
mod common;

use common::*;
use fmpe::kernels::{train_step, Arena, Bindings, LossParams, ProgramBuilder};
use fmpe::net::{init_params, Conditioning, EvalGraph, NetConfig, TrainGraph};
use fmpe::reference;
use rand::SeedableRng;

fn configs() -> Vec<NetConfig> {
    let mut v = Vec::new();
    for c in [Conditioning::Concat, Conditioning::Glu] {
        v.push(NetConfig { dim_theta: 3, dim_x: 4, hidden: vec![8, 12, 12], conditioning: c, embedding: vec![] });
        v.push(NetConfig { dim_theta: 2, dim_x: 5, hidden: vec![70, 16], conditioning: c, embedding: vec![] });
    }
    // x-embeddings: three layers (one wider than a 64-column tile) and two.
    v.push(NetConfig { dim_theta: 2, dim_x: 7, hidden: vec![8, 12], conditioning: Conditioning::Concat, embedding: vec![9, 70, 5] });
    v.push(NetConfig { dim_theta: 3, dim_x: 6, hidden: vec![16], conditioning: Conditioning::Glu, embedding: vec![70, 4] });
    // Equal blocks: the weight gradients of every block's linear1 and linear2 are
    // batched dispatches (three blocks of 12, two of 70: wider than a tile).
    for c in [Conditioning::Concat, Conditioning::Glu] {
        v.push(NetConfig { dim_theta: 3, dim_x: 4, hidden: vec![12, 12, 12], conditioning: c, embedding: vec![] });
        v.push(NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![70, 70], conditioning: c, embedding: vec![] });
    }
    v
}

fn describe(cfg: &NetConfig) -> String {
    format!("{:?} {:?} embedding {:?}", cfg.conditioning, cfg.hidden, cfg.embedding)
}

/// Random parameters with linear2 perturbed away from its near-zero init, so every
/// block contributes to the gradient.
fn params_for(cfg: &NetConfig, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut p: Vec<f64> = init_params(cfg, &mut rng).iter().map(|&v| v as f64).collect();
    let noise = rand_vec(p.len(), seed + 100);
    for b in cfg.layout().blocks {
        for i in b.linear2.weight..b.linear2.bias + b.linear2.fan_out {
            p[i] = 0.3 * noise[i];
        }
    }
    p
}

struct Batch {
    t: Vec<f64>,
    theta: Vec<f64>,
    x: Vec<f64>,
    target: Vec<f64>,
}

fn batch(cfg: &NetConfig, rows: usize, seed: u64) -> Batch {
    let t = rand_vec(rows, seed).iter().map(|v| 0.5 * (v + 1.0)).collect();
    Batch {
        t,
        theta: rand_vec(rows * cfg.dim_theta, seed + 1).iter().map(|v| 2.0 * v).collect(),
        x: rand_vec(rows * cfg.dim_x, seed + 2),
        target: rand_vec(rows * cfg.dim_theta, seed + 3),
    }
}

/// Runs forward + loss + backward on the GPU: returns (v, loss, grad).
fn gpu_loss_grad(cfg: &NetConfig, params: &[f64], b: &Batch) -> (Vec<f64>, f64, Vec<f64>) {
    let gpu = common::gpu();
    let rows = b.t.len();
    let layout = cfg.layout();
    let mut arena = Arena::default();
    let loss_off = arena.alloc(1);
    let g = TrainGraph::new(cfg, &layout, rows, &mut arena);
    let mut acts = vec![0f32; arena.len()];
    let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
    let (x_off, x_rs) = g.x_dest(cfg);
    for r in 0..rows {
        let ctx: Vec<f64> = std::iter::once(b.t[r]).chain(b.theta[r * dt..(r + 1) * dt].iter().copied()).collect();
        let (ctx_off, ctx_rs) = match cfg.conditioning {
            Conditioning::Concat => (g.input, cfg.input_dim()),
            Conditioning::Glu => (g.ctx, dt + 1),
        };
        for (j, v) in ctx.iter().enumerate() {
            acts[ctx_off + r * ctx_rs + j] = *v as f32;
        }
        for (j, v) in b.x[r * dx..(r + 1) * dx].iter().enumerate() {
            acts[x_off + r * x_rs + j] = *v as f32;
        }
        for j in 0..dt {
            acts[g.target + r * dt + j] = b.target[r * dt + j] as f32;
        }
    }
    let acts_buf = gpu.storage_from("acts", &acts);
    let p = gpu.storage_from("params", &to_f32(params));
    let grads = gpu.storage("grads", layout.len as u64 * 4);
    let mut pb = ProgramBuilder::new(gpu);
    g.forward(&mut pb, cfg, &layout, rows);
    let count = rows * dt;
    train_step::fm_loss(
        &mut pb,
        &LossParams {
            count: count as u32,
            v_off: g.v as u32,
            target_off: g.target as u32,
            dv_off: g.dv as u32,
            write_dv: 1,
            loss_off: loss_off as u32,
            slot: 0,
            slot_from_step: 0,
            scale: 2.0 / count as f32,
        },
    );
    g.backward(&mut pb, cfg, &layout, rows);
    let prog = pb
        .build(gpu, Bindings { acts: Some(&acts_buf), params: Some(&p), grads: Some(&grads), ..Default::default() })
        .unwrap();
    prog.run(gpu).unwrap();
    let v = to_f64(&gpu.read_f32(&acts_buf, g.v as u64, rows * dt).unwrap());
    let loss = gpu.read_f32(&acts_buf, loss_off as u64, 1).unwrap()[0] as f64 / count as f64;
    let grad = to_f64(&gpu.read_f32(&grads, 0, layout.len).unwrap());
    (v, loss, grad)
}

#[test]
fn training_forward_and_backward_match_reference() {
    for (i, cfg) in configs().iter().enumerate() {
        let params = params_for(cfg, 10 + i as u64);
        let b = batch(cfg, 77, 20 + i as u64);
        let (v, loss, grad) = gpu_loss_grad(cfg, &params, &b);
        let v_ref = reference::net::forward(cfg, &params, &b.t, &b.theta, &b.x);
        let (loss_ref, grad_ref) = reference::net::loss_and_grad(cfg, &params, &b.t, &b.theta, &b.x, &b.target);
        let what = describe(cfg);
        assert_close(&format!("{what}: v"), &v, &v_ref, 1e-4, 1e-3);
        assert!((loss - loss_ref).abs() < 1e-4 * loss_ref.max(1.0), "{what}: loss {loss} vs {loss_ref}");
        let scale = grad_ref.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert_close(&format!("{what}: grad"), &grad, &grad_ref, 1e-4 * scale, 1e-3);
    }
}

#[test]
fn gpu_gradient_matches_finite_differences_of_gpu_loss() {
    // Two blocks of 70 (2 × 9,940 weights) are left to the reference test above: along a
    // random direction over that many weights the f32 loss curves enough that the central
    // difference at eps = 1e-2 was off by 3.5 % in one draw, beyond this test's 2 % bound.
    for (i, cfg) in configs().iter().enumerate().filter(|(_, c)| c.hidden != [70, 70]) {
        let params = params_for(cfg, 30 + i as u64);
        let b = batch(cfg, 64, 40 + i as u64);
        let (_, _, grad) = gpu_loss_grad(cfg, &params, &b);
        // Directional derivatives along 3 random directions (f32 loss: eps = 1e-2), plus
        // one supported on the x-embedding's weights and biases only.
        let emb_end = cfg.layout().input.weight;
        for k in 0..if emb_end > 0 { 4 } else { 3 } {
            let mut dir = rand_vec(params.len(), 50 + k);
            if k == 3 {
                dir[emb_end..].iter_mut().for_each(|d| *d = 0.0);
            }
            let eps = 1e-2;
            let plus: Vec<f64> = params.iter().zip(&dir).map(|(p, d)| p + eps * d).collect();
            let minus: Vec<f64> = params.iter().zip(&dir).map(|(p, d)| p - eps * d).collect();
            let lp = gpu_loss_grad(cfg, &plus, &b).1;
            let lm = gpu_loss_grad(cfg, &minus, &b).1;
            let fd = (lp - lm) / (2.0 * eps);
            let an: f64 = grad.iter().zip(&dir).map(|(g, d)| g * d).sum();
            assert!(
                (fd - an).abs() <= 2e-2 * an.abs().max(fd.abs()) + 1e-4,
                "{} direction {k}: finite difference {fd} vs GPU gradient {an}",
                describe(cfg)
            );
            if k == 3 {
                eprintln!("{}: embedding-only direction: finite difference {fd:.6e}, GPU gradient {an:.6e}", describe(cfg));
            }
        }
    }
}

#[test]
fn evaluation_forward_with_precompute_matches_reference() {
    let gpu = common::gpu();
    for (i, cfg) in configs().iter().enumerate() {
        let params = params_for(cfg, 60 + i as u64);
        let rows = 90;
        let layout = cfg.layout();
        let dt = cfg.dim_theta;
        let t: Vec<f64> = rand_vec(rows, 70).iter().map(|v| 0.5 * (v + 1.0)).collect();
        let theta = rand_vec(rows * dt, 71);
        let xo = rand_vec(cfg.dim_x, 72 + i as u64);
        let mut arena = Arena::default();
        let eg = EvalGraph::new(cfg, rows, &mut arena);
        let tin = arena.alloc(rows * (dt + 1));
        let v_off = arena.alloc(rows * dt);
        let mut acts = vec![0f32; arena.len()];
        for (j, v) in xo.iter().enumerate() {
            acts[eg.x + j] = *v as f32;
        }
        for r in 0..rows {
            acts[tin + r * (dt + 1)] = t[r] as f32;
            for j in 0..dt {
                acts[tin + r * (dt + 1) + 1 + j] = theta[r * dt + j] as f32;
            }
        }
        let a = gpu.storage_from("acts", &acts);
        let p = gpu.storage_from("params", &to_f32(&params));
        let mut pb = ProgramBuilder::new(gpu);
        eg.precompute(&mut pb, cfg, &layout);
        eg.forward(&mut pb, cfg, &layout, rows, tin, v_off);
        pb.build(gpu, Bindings { acts: Some(&a), params: Some(&p), ..Default::default() }).unwrap().run(gpu).unwrap();
        let v = to_f64(&gpu.read_f32(&a, v_off as u64, rows * dt).unwrap());
        let x_rows: Vec<f64> = (0..rows).flat_map(|_| xo.iter().copied()).collect();
        let v_ref = reference::net::forward(cfg, &params, &t, &theta, &x_rows);
        assert_close(&format!("{}: eval v", describe(cfg)), &v, &v_ref, 1e-4, 1e-3);
    }
}
