//! Log-density of the flow posterior: the forward-mode tangent (JVP) kernels against
//! the f64 reference and finite differences, exact and Hutchinson divergence, and the
//! density ODE (normalisation, consistency with sampling, batch invariance, accuracy on
//! gaussian_linear, rejection to a box prior).
mod common;

use common::*;
use fmpe::kernels::{Arena, Bindings, Buf, Mat, ProgramBuilder};
use fmpe::net::{init_params, Conditioning, JvpGraph, NetConfig};
use fmpe::reference;
use rand::SeedableRng;

fn configs() -> Vec<NetConfig> {
    let mut v = Vec::new();
    for c in [Conditioning::Concat, Conditioning::Glu] {
        // 8 → 12 exercises a resize layer.
        v.push(NetConfig { dim_theta: 3, dim_x: 4, hidden: vec![8, 12, 12], conditioning: c, embedding: vec![] });
        v.push(NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![70, 16], conditioning: c, embedding: vec![] });
    }
    v
}

/// Networks with an x-embedding (x-only: θ-tangents never pass through it, and the
/// evaluation computes e(x_o) once in the precompute).
fn embedding_configs() -> Vec<NetConfig> {
    vec![
        NetConfig { dim_theta: 3, dim_x: 9, hidden: vec![8, 12], conditioning: Conditioning::Concat, embedding: vec![70, 5] },
        NetConfig { dim_theta: 2, dim_x: 9, hidden: vec![12, 12], conditioning: Conditioning::Glu, embedding: vec![6] },
    ]
}

fn describe(cfg: &NetConfig) -> String {
    format!("{:?} {:?} embedding {:?}", cfg.conditioning, cfg.hidden, cfg.embedding)
}

/// Random parameters with linear2 perturbed away from its near-zero init.
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

/// Runs the GPU JVP graph: returns (v [rows, d], J·eps [probes · rows, d]).
fn gpu_jvp(cfg: &NetConfig, params: &[f64], t: &[f64], theta: &[f64], xo: &[f64], eps: &[f64], probes: usize) -> (Vec<f64>, Vec<f64>) {
    let gpu = common::gpu();
    let rows = t.len();
    let d = cfg.dim_theta;
    let layout = cfg.layout();
    let mut arena = Arena::default();
    let g = JvpGraph::new(cfg, rows, probes, &mut arena);
    let tin = arena.alloc(rows * (d + 1));
    // v with a padded row stride (as in the density ODE, where v lands in a wider state).
    let v_off = arena.alloc(rows * (d + 1));
    let mut acts = vec![0f32; arena.len()];
    for (j, v) in xo.iter().enumerate() {
        acts[g.eval.x + j] = *v as f32;
    }
    for r in 0..rows {
        acts[tin + r * (d + 1)] = t[r] as f32;
        for j in 0..d {
            acts[tin + r * (d + 1) + 1 + j] = theta[r * d + j] as f32;
        }
    }
    for (q, e) in eps.iter().enumerate() {
        acts[g.eps + q] = *e as f32;
    }
    let a = gpu.storage_from("acts", &acts);
    let p = gpu.storage_from("params", &to_f32(params));
    let mut pb = ProgramBuilder::new(gpu);
    g.precompute(&mut pb, cfg, &layout);
    g.forward(&mut pb, cfg, &layout, rows, tin, Mat::rows(Buf::Acts, v_off, d + 1));
    pb.build(gpu, Bindings { acts: Some(&a), params: Some(&p), ..Default::default() }).unwrap().run(gpu).unwrap();
    let vp = to_f64(&gpu.read_f32(&a, v_off as u64, rows * (d + 1)).unwrap());
    let v = vp.chunks(d + 1).flat_map(|r| r[..d].to_vec()).collect();
    let je = to_f64(&gpu.read_f32(&a, g.jeps as u64, probes * rows * d).unwrap());
    (v, je)
}

#[test]
fn jvp_matches_reference_and_finite_differences() {
    for (ci, cfg) in configs().iter().chain(&embedding_configs()).enumerate() {
        let what = describe(cfg);
        let params = params_for(cfg, 10 + ci as u64);
        let d = cfg.dim_theta;
        let rows = 37;
        let probes = 3;
        let t: Vec<f64> = rand_vec(rows, 20).iter().map(|v| 0.5 * (v + 1.0)).collect();
        let theta: Vec<f64> = rand_vec(rows * d, 21).iter().map(|v| 1.5 * v).collect();
        let xo = rand_vec(cfg.dim_x, 22 + ci as u64);
        let eps = rand_vec(probes * rows * d, 23);
        let (v, je) = gpu_jvp(cfg, &params, &t, &theta, &xo, &eps, probes);
        let x_rows: Vec<f64> = (0..rows).flat_map(|_| xo.iter().copied()).collect();
        let v_ref = reference::net::forward(cfg, &params, &t, &theta, &x_rows);
        assert_close(&format!("{what}: v"), &v, &v_ref, 1e-4, 1e-3);
        let mut max_ref = 0.0f64;
        let mut max_fd = 0.0f64;
        for p in 0..probes {
            let e = &eps[p * rows * d..(p + 1) * rows * d];
            let got = &je[p * rows * d..(p + 1) * rows * d];
            let (_, jr) = reference::net::jvp(cfg, &params, &t, &theta, &x_rows, e);
            let scale = jr.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            assert_close(&format!("{what}: J eps probe {p} vs reference"), got, &jr, 1e-4 * scale, 1e-3);
            max_ref = got.iter().zip(&jr).fold(max_ref, |m, (a, b)| m.max((a - b).abs() / scale));
            // Central finite differences of the GPU forward pass (f32: step 1e-2).
            let hstep = 1e-2;
            let tp: Vec<f64> = theta.iter().zip(e).map(|(a, b)| a + hstep * b).collect();
            let tm: Vec<f64> = theta.iter().zip(e).map(|(a, b)| a - hstep * b).collect();
            let zero = vec![0.0; probes * rows * d];
            let (vp, _) = gpu_jvp(cfg, &params, &t, &tp, &xo, &zero, probes);
            let (vm, _) = gpu_jvp(cfg, &params, &t, &tm, &xo, &zero, probes);
            let fd: Vec<f64> = vp.iter().zip(&vm).map(|(a, b)| (a - b) / (2.0 * hstep)).collect();
            assert_close(&format!("{what}: J eps probe {p} vs finite differences"), got, &fd, 2e-3 * scale, 2e-2);
            max_fd = got.iter().zip(&fd).fold(max_fd, |m, (a, b)| m.max((a - b).abs() / scale));
        }
        eprintln!("{what}: max |J eps - ref| / scale = {max_ref:.2e}, vs finite differences {max_fd:.2e}");
    }
}

// ---------------------------------------------------------------------------------
// Divergence.

use fmpe::model::{BoxPrior, Model};
use fmpe::posterior::{Divergence, GpuModel, Posterior, PosteriorOptions, Solver};
use fmpe::train::{TrainConfig, Trainer};
use std::sync::OnceLock;

/// The posterior of `m` for `xo` on the shared test GPU.
fn posterior(m: &Model, xo: &[f64]) -> Posterior {
    GpuModel::new(common::gpu_arc().clone(), m).unwrap().posterior(xo).unwrap()
}

/// A model with the given field (identity z-scoring unless given).
fn model(cfg: NetConfig, params: Vec<f32>, prior: Option<BoxPrior>) -> Model {
    let mut m = Model::with_params(cfg, params);
    m.info.prior = prior;
    m
}

#[test]
fn exact_divergence_matches_jacobian_trace_and_reference() {
    for (ci, cfg) in configs().iter().chain(&embedding_configs()).enumerate() {
        let what = describe(cfg);
        let params = params_for(cfg, 40 + ci as u64);
        let d = cfg.dim_theta;
        let rows = 25;
        let xo = rand_vec(cfg.dim_x, 41);
        let t: Vec<f64> = rand_vec(rows, 42).iter().map(|v| 0.5 * (v + 1.0)).collect();
        let theta: Vec<f64> = rand_vec(rows * d, 43).iter().map(|v| 1.5 * v).collect();
        let m = model(cfg.clone(), to_f32(&params), None);
        let post = posterior(&m, &xo);
        let (_, div) = post.field_and_divergence(&t, &theta, Divergence::Exact, 0).unwrap();
        let x_rows: Vec<f64> = (0..rows).flat_map(|_| xo.iter().copied()).collect();
        let div_ref = reference::net::divergence(cfg, &params, &t, &theta, &x_rows);
        let scale = div_ref.iter().fold(1e-2f64, |m, v| m.max(v.abs()));
        assert_close(&format!("{what}: div vs reference"), &div, &div_ref, 1e-4 * scale, 1e-3);
        // Trace of the central finite-difference Jacobian of the GPU field.
        let hstep = 1e-2;
        let mut tr = vec![0.0; rows];
        for j in 0..d {
            let mut tp = theta.clone();
            let mut tm = theta.clone();
            for r in 0..rows {
                tp[r * d + j] += hstep;
                tm[r * d + j] -= hstep;
            }
            let (vp, _) = post.field_and_divergence(&t, &tp, Divergence::Exact, 0).unwrap();
            let (vm, _) = post.field_and_divergence(&t, &tm, Divergence::Exact, 0).unwrap();
            for r in 0..rows {
                tr[r] += (vp[r * d + j] - vm[r * d + j]) / (2.0 * hstep);
            }
        }
        assert_close(&format!("{what}: div vs finite-difference trace"), &div, &tr, 2e-3 * scale, 2e-2);
        let worst = div.iter().zip(&tr).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("{what}: exact divergence, max |div - fd trace| = {worst:.2e} (scale {scale:.2})");
    }
}

#[test]
fn hutchinson_mean_agrees_with_exact_divergence() {
    for (ci, cfg) in configs().iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let params = params_for(cfg, 50 + ci as u64);
        let d = cfg.dim_theta;
        let xo = rand_vec(cfg.dim_x, 51);
        let m = model(cfg.clone(), to_f32(&params), None);
        let post = posterior(&m, &xo);
        for (pi, point) in [(0.3, vec![0.5, -0.4, 0.9]), (0.8, vec![-1.0, 0.2, 0.1])].iter().enumerate() {
            let (t0, th) = (point.0, &point.1[..d]);
            let (_, exact) = post.field_and_divergence(&[t0], th, Divergence::Exact, 0).unwrap();
            for gaussian in [false, true] {
                // One point replicated over rows: every row has its own probes (keyed by row
                // index); Rademacher with 1 probe per row, Gaussian with the mean of 4.
                let probes = if gaussian { 4 } else { 1 };
                let rows = 4096 / probes;
                let t = vec![t0; rows];
                let theta: Vec<f64> = (0..rows).flat_map(|_| th.iter().copied()).collect();
                let (_, est) =
                    post.field_and_divergence(&t, &theta, Divergence::Hutchinson { probes, gaussian }, 7 + pi as u64).unwrap();
                let mean = est.iter().sum::<f64>() / rows as f64;
                let var = est.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (rows - 1) as f64;
                let se = (var / rows as f64).sqrt();
                eprintln!(
                    "{:?}: exact {:.5}, Hutchinson ({}, {probes} probes) mean over {rows} rows {mean:.5} ± {se:.5} (z = {:.2})",
                    cfg.conditioning,
                    exact[0],
                    if gaussian { "Gaussian" } else { "Rademacher" },
                    (mean - exact[0]) / se.max(1e-12)
                );
                assert!((mean - exact[0]).abs() <= 3.0 * se + 1e-5, "Hutchinson mean {mean} vs exact {} (se {se})", exact[0]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The density ODE on a small trained model.

/// gaussian_linear in 2-D (sbibm's task at dim 2): prior N(0, 0.1 I), x ~ N(θ, 0.1 I)
/// (0.1 the variance); posterior N(x_o / 2, 0.05 I).
const D: usize = 2;
const XO: [f64; D] = [0.3, -0.2];

/// A small glu model trained on 3,000 simulations for 30 epochs (shared by the tests of
/// this binary). Time prior exponent α = 0 (uniform t): with the default α = 4 a short
/// run learns the field near t = 0 poorly (few training times there), which the density
/// integral needs (measured at d = 2: mean |log q − log p| 0.45 nats with α = 1, 0.12
/// with α = 0, same run length).
fn trained() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let gpu = common::gpu();
        let n = 3000;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let nd = rand_distr::Normal::new(0.0, 0.1f64.sqrt()).unwrap();
        use rand_distr::Distribution;
        let theta: Vec<f64> = (0..n * D).map(|_| nd.sample(&mut rng)).collect();
        let x: Vec<f64> = theta.iter().map(|t| t + nd.sample(&mut rng)).collect();
        let cfg = NetConfig { dim_theta: D, dim_x: D, hidden: vec![32, 32], conditioning: Conditioning::Glu, embedding: vec![] };
        let tc = TrainConfig {
            max_epochs: 30,
            batch_size: 64,
            learning_rate: 2e-3,
            time_prior_exponent: 0.0,
            validation_fraction: 0.1,
            seed: 1,
            ..Default::default()
        };
        let t0 = std::time::Instant::now();
        let out = Trainer::new(gpu, cfg.clone(), tc.clone(), &theta, &x, None).unwrap().fit().unwrap();
        eprintln!(
            "trained in {:.1} s: best epoch {}, last {:?}",
            t0.elapsed().as_secs_f64(),
            out.best_epoch,
            out.history.last().map(|h| (h.train_loss, h.val_loss))
        );
        out.into_model(fmpe::model::ModelMeta::default())
    })
}

fn analytic_log_post(theta: &[f64]) -> f64 {
    let var = 0.05;
    theta
        .iter()
        .zip(XO)
        .map(|(t, x)| -0.5 * (t - x / 2.0).powi(2) / var - 0.5 * (2.0 * std::f64::consts::PI * var).ln())
        .sum()
}

#[test]
fn gaussian_linear_log_prob_matches_analytic_posterior() {
    let m = trained();
    let post = posterior(m, &XO);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let nd = rand_distr::Normal::new(0.0, 0.05f64.sqrt()).unwrap();
    use rand_distr::Distribution;
    let n = 1000;
    let theta: Vec<f64> = (0..n * D).map(|i| XO[i % D] / 2.0 + nd.sample(&mut rng)).collect();
    let t0 = std::time::Instant::now();
    let lp = post.log_prob(&theta, &PosteriorOptions::default()).unwrap();
    let el = t0.elapsed().as_secs_f64();
    let err: f64 = theta.chunks(D).zip(&lp).map(|(th, l)| (l - analytic_log_post(th)).abs()).sum::<f64>() / n as f64;
    let bias: f64 = theta.chunks(D).zip(&lp).map(|(th, l)| l - analytic_log_post(th)).sum::<f64>() / n as f64;
    eprintln!("gaussian_linear d = {D}: mean |log q - log p| = {err:.4} nats (mean signed {bias:.4}) over {n} posterior samples; log_prob took {el:.2} s");
    // Measured on lavapipe: mean |error| 0.126 nats, signed bias −0.010 nats.
    assert!(err <= 0.2, "mean absolute log-density error {err} > 0.2 nats");
    assert!(bias.abs() <= 0.1, "mean signed log-density error {bias} outside ±0.1 nats");
}

#[test]
fn trained_flow_density_integrates_to_one() {
    let m = trained();
    let post = posterior(m, &XO);
    // Posterior std is √0.05 ≈ 0.224: a grid of ±1.5 (≈ 6.7 std) around the mean with
    // step 0.05 (≈ 0.22 std) holds the mass and resolves the density.
    let (half, step) = (1.5, 0.05);
    let k = (2.0 * half / step) as usize + 1;
    let mut grid = Vec::with_capacity(k * k * 2);
    for a in 0..k {
        for b in 0..k {
            grid.push(XO[0] / 2.0 - half + a as f64 * step);
            grid.push(XO[1] / 2.0 - half + b as f64 * step);
        }
    }
    let t0 = std::time::Instant::now();
    let opts = PosteriorOptions { reject_outside_prior: false, ..Default::default() };
    let lp = post.log_prob(&grid, &opts).unwrap();
    let mass: f64 = lp.iter().map(|l| l.exp()).sum::<f64>() * step * step;
    let edge: f64 = lp
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let (a, b) = (i / k, i % k);
            a == 0 || b == 0 || a == k - 1 || b == k - 1
        })
        .fold(f64::NEG_INFINITY, |m, (_, l)| m.max(*l));
    eprintln!(
        "normalisation: ∫ q over a {k}×{k} grid = {mass:.5} (max log q on the border {edge:.1}); {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!((mass - 1.0).abs() <= 0.02, "the flow density integrates to {mass}, not 1 ± 2 %");
}

#[test]
fn sample_and_log_prob_is_consistent_with_log_prob() {
    let m = trained();
    let post = posterior(m, &XO);
    let opts = PosteriorOptions { seed: 5, ..Default::default() };
    let samples = post.sample_and_log_prob(500, &opts).unwrap();
    assert_eq!((samples.n(), samples.dim(), samples.report().returned), (500, D, 500));
    let (s, lq, rep) = samples.into_parts();
    let lq = lq.expect("sample_and_log_prob returns log_prob");
    let lp = post.log_prob(&s, &opts).unwrap();
    let worst = lq.iter().zip(&lp).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("consistency: max |sample_and_log_prob - log_prob| = {worst:.2e} over 500 samples ({:.1} steps/sample)", rep.mean_steps);
    assert!(worst <= 1e-3, "sample_and_log_prob and log_prob differ by {worst}");
    // The samples are the ones `sample` draws with the same seed (same θ₀, same θ steps).
    let s2 = post.sample(500, &PosteriorOptions { seed: 5, ..Default::default() }).unwrap().into_parts().0;
    let ds = s.iter().zip(&s2).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(ds <= 1e-5, "sample_and_log_prob's samples differ from sample's by {ds}");
}

#[test]
fn log_prob_and_sampling_do_not_depend_on_the_batch() {
    let m = trained();
    let post = posterior(m, &XO);
    let opts = PosteriorOptions::default();
    let point = [0.2, -0.05];
    let alone = post.log_prob(&point, &opts).unwrap()[0];
    let mut batch: Vec<f64> = rand_vec(1000 * D, 99).iter().map(|v| 0.6 * v).collect();
    batch[500 * D..501 * D].copy_from_slice(&point);
    let inside = post.log_prob(&batch, &opts).unwrap()[500];
    let chunked = post.log_prob(&batch, &PosteriorOptions { chunk_size: Some(77), ..opts.clone() }).unwrap()[500];
    eprintln!("batch invariance: log_prob alone {alone:.7}, in a batch of 1000 {inside:.7} (diff {:.1e}), chunks of 77 {chunked:.7}", (alone - inside).abs());
    assert!((alone - inside).abs() <= 1e-5 && (alone - chunked).abs() <= 1e-5);
    // A sample's trajectory from the same θ₀ (index 0) alone and in a batch of 1000.
    let (s1, l1, _) = post.sample_and_log_prob(1, &opts).unwrap().into_parts();
    let (s2, l2, _) = post.sample_and_log_prob(1000, &opts).unwrap().into_parts();
    let (l1, l2) = (l1.unwrap(), l2.unwrap());
    let ds = (s1[0] - s2[0]).abs().max((s1[1] - s2[1]).abs());
    eprintln!("batch invariance: sample 0 differs by {ds:.1e}, its log q by {:.1e}", (l1[0] - l2[0]).abs());
    assert!(ds <= 1e-5 && (l1[0] - l2[0]).abs() <= 1e-5);
}

#[test]
fn log_prob_is_minus_infinity_outside_the_box_prior() {
    let mut m = trained().clone();
    m.info.prior = Some(BoxPrior { low: vec![-0.5, -0.5], high: vec![0.5, 0.5] });
    let post = posterior(&m, &XO);
    let pts = [0.1, 0.0, 0.7, 0.0, 0.0, -0.2];
    let lp = post.log_prob(&pts, &PosteriorOptions::default()).unwrap();
    assert!(lp[0].is_finite() && lp[2].is_finite() && lp[1] == f64::NEG_INFINITY, "{lp:?}");
    let all = post.log_prob(&pts, &PosteriorOptions { reject_outside_prior: false, ..Default::default() }).unwrap();
    assert!(all.iter().all(|v| v.is_finite()) && (all[0] - lp[0]).abs() <= 1e-5);
    // sample_and_log_prob rejects to the box.
    let (s, _, rep) = post.sample_and_log_prob(200, &PosteriorOptions::default()).unwrap().into_parts();
    assert!(s.chunks(D).all(|r| r.iter().all(|v| v.abs() <= 0.5)));
    assert_eq!(rep.returned, 200);
}

/// Parameters whose field is the constant `c` `[dim_theta]` (everything zero but the
/// output bias): the flow carries N(0, I) to N(c, I) for every x.
fn constant_field(cfg: &NetConfig, c: &[f64]) -> Vec<f32> {
    let layout = cfg.layout();
    let mut p = vec![0f32; layout.len];
    for (j, &v) in c.iter().enumerate() {
        p[layout.output.bias + j] = v as f32;
    }
    p
}

/// Standard normal CDF by Simpson's rule on [−10, z] (|error| < 1e-12 here).
fn normal_cdf(z: f64) -> f64 {
    let (a, n) = (-10.0, 20_000);
    let h = (z - a) / n as f64;
    let f = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mut s = f(a) + f(z);
    for i in 1..n {
        s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0
}

/// sbi's leakage correction on a case with a known answer: a network whose field is
/// the constant `c` (everything zero but the output bias) carries N(0, I) to
/// q = N(c, I), whose mass inside the box prior is `Π_j (Φ(hi_j − c_j) − Φ(lo_j − c_j))`.
/// The estimated mass agrees within 4 standard errors of its 10,000-sample estimate,
/// the renormalised log-density is the analytic `log N(θ; c, I) − log mass` and −∞
/// outside the box, and the estimate is cached (the same value on the next call).
#[test]
fn normalize_to_prior_divides_by_the_mass_inside_the_box() {
    let cfg = NetConfig { dim_theta: 2, dim_x: 1, hidden: vec![8], conditioning: Conditioning::Concat, embedding: vec![] };
    let c = [0.4, -0.3];
    let (lo, hi) = ([-0.5, -1.5], [1.0, 0.2]);
    let post = posterior(&model(cfg.clone(), constant_field(&cfg, &c), Some(BoxPrior { low: lo.to_vec(), high: hi.to_vec() })), &[0.0]);
    let truth: f64 = (0..2).map(|j| normal_cdf(hi[j] - c[j]) - normal_cdf(lo[j] - c[j])).product();
    let opts = PosteriorOptions { normalize_to_prior: true, ..Default::default() };
    let mass = post.prior_mass(&opts).unwrap();
    let se = (truth * (1.0 - truth) / fmpe::posterior::LEAKAGE_SAMPLES as f64).sqrt();
    eprintln!("mass inside the box: estimated {mass:.4}, exact {truth:.4} (se {se:.4})");
    assert!((mass - truth).abs() <= 4.0 * se, "mass {mass} vs exact {truth} (se {se})");
    let pts = [0.2, -0.1, 0.9, 0.1, 1.5, 0.0, -0.4, -1.4];
    let lp = post.log_prob(&pts, &opts).unwrap();
    let raw = post.log_prob(&pts, &PosteriorOptions { reject_outside_prior: false, ..Default::default() }).unwrap();
    for i in 0..4 {
        let th = &pts[2 * i..2 * i + 2];
        let analytic: f64 = th.iter().zip(&c).map(|(t, m)| -0.5 * (t - m) * (t - m) - 0.5 * (2.0 * std::f64::consts::PI).ln()).sum();
        assert!((raw[i] - analytic).abs() <= 1e-4, "point {i}: flow log q {} vs analytic {analytic}", raw[i]);
        let inside = (0..2).all(|j| th[j] >= lo[j] && th[j] <= hi[j]);
        if inside {
            assert!((lp[i] - (raw[i] - mass.ln())).abs() <= 1e-9, "point {i}: {} vs {} − ln {mass}", lp[i], raw[i]);
        } else {
            assert_eq!(lp[i], f64::NEG_INFINITY, "point {i} is outside the box");
        }
    }
    // The same estimate again (cached, and deterministic for the seed);
    // sample_and_log_prob renormalises the same way.
    assert_eq!(post.prior_mass(&opts).unwrap(), mass);
    let s = post.sample_and_log_prob(50, &opts).unwrap();
    let again = post.log_prob(s.as_slice(), &opts).unwrap();
    let lq = s.log_prob().unwrap();
    for i in 0..50 {
        assert!((lq[i] - again[i]).abs() <= 2e-3, "sample {i}: {} vs {}", lq[i], again[i]);
    }
    // Without a box prior nothing is drawn: the mass is exactly 1.
    let free = posterior(&model(cfg.clone(), constant_field(&cfg, &[0.0, 0.0]), None), &[0.0]);
    assert_eq!(free.prior_mass(&opts).unwrap(), 1.0);
}

/// The held-out NLL of a flow with a known density (the constant field `c`: q = N(c, I)
/// for every x) is the analytic `−mean log N(θ_r; c, I)` over exactly the rows given.
#[test]
fn held_out_nll_is_the_mean_negative_log_density_of_the_given_rows() {
    let cfg = NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![8], conditioning: Conditioning::Glu, embedding: vec![] };
    let c = [0.7, -0.2];
    let on_gpu = GpuModel::new(common::gpu_arc().clone(), &model(cfg.clone(), constant_field(&cfg, &c), None)).unwrap();
    let theta = rand_vec(2 * 50, 3);
    let x = rand_vec(3 * 50, 4);
    let rows: Vec<usize> = (0..50).filter(|r| r % 3 != 0).collect();
    let h = fmpe::metrics::held_out_nll(&on_gpu, &theta, &x, &rows).unwrap();
    let analytic = rows
        .iter()
        .map(|&r| (0..2).map(|j| 0.5 * (theta[2 * r + j] - c[j]).powi(2) + 0.5 * (2.0 * std::f64::consts::PI).ln()).sum::<f64>())
        .sum::<f64>()
        / rows.len() as f64;
    assert_eq!((h.pairs, h.outside_support), (rows.len(), 0));
    assert!((h.nll - analytic).abs() <= 1e-4, "held-out NLL {} vs analytic {analytic}", h.nll);
    assert!(fmpe::metrics::held_out_nll(&on_gpu, &theta, &x, &[]).is_err());
    assert!(fmpe::metrics::held_out_nll(&on_gpu, &theta, &x, &[50]).unwrap_err().to_string().contains("out of range"));

    // A field that depends on x, with a log1p x transform and z-scoring: the held-out
    // NLL (x given after the transform, as training holds it) is minus the mean of
    // log_prob_pairs on the same rows with x in original units.
    let cfg = NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![8, 8], conditioning: Conditioning::Glu, embedding: vec![] };
    let mut m = model(cfg.clone(), params_for(&cfg, 12).iter().map(|&v| v as f32).collect(), None);
    m.info.x_transform = fmpe::transform::XTransform::Log1p;
    m.x_mean = vec![0.5, 0.2, 0.9];
    m.x_std = vec![0.3, 0.6, 0.4];
    let on_gpu = GpuModel::new(common::gpu_arc().clone(), &m).unwrap();
    let x_orig: Vec<f64> = x.iter().map(|v| v.abs() * 3.0).collect();
    let x_t: Vec<f64> = x_orig.iter().map(|v| v.ln_1p()).collect();
    let h = fmpe::metrics::held_out_nll(&on_gpu, &theta, &x_t, &rows).unwrap();
    let th: Vec<f64> = rows.iter().flat_map(|&r| theta[2 * r..2 * r + 2].to_vec()).collect();
    let xs: Vec<f64> = rows.iter().flat_map(|&r| x_orig[3 * r..3 * r + 3].to_vec()).collect();
    let opts = PosteriorOptions { reject_outside_prior: false, ..Default::default() };
    let lq = on_gpu.log_prob_pairs(&th, &xs, &opts).unwrap();
    let want = -lq.iter().sum::<f64>() / lq.len() as f64;
    assert!((h.nll - want).abs() <= 1e-9, "held-out NLL {} vs log_prob_pairs {want}", h.nll);
    // Observations differ, so a row mapping that ignored x would differ too.
    let same_x: Vec<f64> = (0..rows.len()).flat_map(|_| x_orig[..3].to_vec()).collect();
    let lq0 = on_gpu.log_prob_pairs(&th, &same_x, &opts).unwrap();
    assert!(lq0.iter().zip(&lq).any(|(a, b)| (a - b).abs() > 1e-3), "the field should depend on x");
}

#[test]
fn low_acceptance_stops_within_the_time_limit() {
    // An untrained field is near zero: samples ≈ θ₀ ~ N(0, I), and a box of half-width
    // 0.01 accepts about (0.008)² ≈ 6e-5 of them.
    let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![8], conditioning: Conditioning::Concat, embedding: vec![] };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let params = init_params(&cfg, &mut rng);
    let prior = BoxPrior { low: vec![-0.01, -0.01], high: vec![0.01, 0.01] };
    let m = model(cfg, params, Some(prior));
    let post = posterior(&m, &[0.0, 0.0]);
    // The sampler gives up once the latest round's rate predicts an overrun (from the
    // second pilot round on; 256 then at most 4,096 draws) or the time is past the
    // limit, so it may run over the limit by at most one round. Time the largest such
    // round without rejection first (this also compiles the pipelines), so that a loaded
    // CI machine, where one round alone can take seconds, does not fail the test.
    let t0 = std::time::Instant::now();
    post.sample(4096, &PosteriorOptions { reject_outside_prior: false, ..Default::default() }).unwrap();
    post.sample_and_log_prob(4096, &PosteriorOptions { reject_outside_prior: false, ..Default::default() }).unwrap();
    let round = t0.elapsed().as_secs_f64();
    let limit = 3.0;
    let t0 = std::time::Instant::now();
    let err = post.sample(2000, &PosteriorOptions { max_seconds: Some(limit), ..Default::default() }).unwrap_err();
    let el = t0.elapsed().as_secs_f64();
    eprintln!("sample: stopped after {el:.2} s (one unrejected round of both kinds: {round:.2} s): {err}");
    assert!(matches!(err, fmpe::Error::LowAcceptance(_)), "{err}");
    assert!(err.to_string().contains("% of posterior samples fall inside the prior support"), "{err}");
    assert!(el <= limit + round, "took {el} s, over the {limit} s limit plus one round ({round} s)");
    let t0 = std::time::Instant::now();
    let opts = PosteriorOptions { max_seconds: Some(limit), ..Default::default() };
    let err = post.sample_and_log_prob(2000, &opts).unwrap_err();
    let el = t0.elapsed().as_secs_f64();
    eprintln!("sample_and_log_prob: stopped after {el:.2} s: {err}");
    assert!(matches!(err, fmpe::Error::LowAcceptance(_)) && el <= limit + round, "{err} after {el} s");
}

#[test]
fn bench_log_prob_reports_throughput() {
    for r in fmpe::posterior::bench_log_prob(common::gpu_arc(), 64).unwrap() {
        eprintln!(
            "bench: dim {} {}: {:.0} evals/s ({} points, {:.2} s), {} dispatches/step, {} steps, {} submissions",
            r.dim_theta, r.divergence, r.evals_per_second, r.points, r.seconds, r.dispatches_per_step, r.steps, r.submissions
        );
        assert!(r.evals_per_second > 0.0 && r.dispatches_per_step > 0);
    }
}

/// The density ODE runs on the same driver as sampling, so rk4 works for log-densities
/// too: close to dopri5's values, and `sample_and_log_prob` with rk4 draws the samples
/// `sample` draws with rk4, with log-densities `log_prob` reproduces.
#[test]
fn rk4_log_prob_agrees_with_dopri5() {
    let post = posterior(trained(), &XO);
    let pts: Vec<f64> = rand_vec(100 * D, 7).iter().enumerate().map(|(i, v)| XO[i % D] / 2.0 + 0.4 * v).collect();
    let dopri = post.log_prob(&pts, &PosteriorOptions::default()).unwrap();
    let rk4 = PosteriorOptions { solver: Solver::Rk4 { steps: 30 }, seed: 3, ..Default::default() };
    let lp = post.log_prob(&pts, &rk4).unwrap();
    let worst = dopri.iter().zip(&lp).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    let (s, lq, rep) = post.sample_and_log_prob(100, &rk4).unwrap().into_parts();
    let lq = lq.unwrap();
    let s2 = post.sample(100, &rk4).unwrap().into_parts().0;
    let ds = s.iter().zip(&s2).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    let back = post.log_prob(&s, &rk4).unwrap();
    let dl = lq.iter().zip(&back).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "rk4 (30 steps) vs dopri5 log_prob: max diff {worst:.2e}; sample_and_log_prob vs sample: {ds:.1e}; \
         forward vs backward log q: {dl:.2e} ({} steps/sample)",
        rep.mean_steps
    );
    assert!(worst <= 1e-3, "rk4 and dopri5 log_prob differ by {worst}");
    assert!(ds <= 1e-5, "rk4 sample_and_log_prob's samples differ from sample's by {ds}");
    assert!(dl <= 1e-3, "rk4 forward and backward log q differ by {dl}");
    assert_eq!(rep.mean_steps, 30.0);
}
