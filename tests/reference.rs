//! Self-checks of the f64 CPU reference (`fmpe::reference`): gradients and JVPs against
//! finite differences, the forward pass against an independent transcription of the
//! network definition, ODE solvers against closed-form solutions, Philox against the
//! Random123 known-answer vectors, Adam against hand-computed values.

#![allow(clippy::needless_range_loop)]

use fmpe::net::{init_params, Conditioning, NetConfig};
use fmpe::reference::{adam, net, ode, path, philox, to_f64, zscore_stats};
use rand::{Rng, SeedableRng};
use rand::rngs::StdRng;

// ---------------------------------------------------------------- helpers

fn cfg(conditioning: Conditioning, hidden: &[usize]) -> NetConfig {
    NetConfig { dim_theta: 3, dim_x: 4, hidden: hidden.to_vec(), conditioning, embedding: vec![] }
}

/// Default init, then every block's `linear2` (initialised at ±1e-3, which would make
/// the blocks near-identity and their gradients near-trivial) re-drawn U(−0.6, 0.6).
fn params(cfg: &NetConfig, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = to_f64(&init_params(cfg, &mut rng));
    for b in cfg.layout().blocks {
        for v in &mut p[b.linear2.weight..b.linear2.bias + b.linear2.fan_out] {
            *v = rng.random_range(-0.6..0.6);
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

fn batch(cfg: &NetConfig, b: usize, seed: u64) -> Batch {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |n: usize, s: f64| (0..n).map(|_| rng.random_range(-s..s)).collect::<Vec<f64>>();
    let t = draw(b, 1.0).iter().map(|u| 0.5 + 0.5 * u).collect();
    Batch { t, theta: draw(b * cfg.dim_theta, 2.0), x: draw(b * cfg.dim_x, 2.0), target: draw(b * cfg.dim_theta, 1.5) }
}

fn configs() -> Vec<NetConfig> {
    let mut v = Vec::new();
    for c in [Conditioning::Concat, Conditioning::Glu] {
        v.push(cfg(c, &[8, 12, 12])); // with a resize layer (8 -> 12) and without (12 -> 12)
        v.push(cfg(c, &[10, 10]));
        v.push(cfg(c, &[16, 6])); // shrinking resize
    }
    // x-embeddings (two layers with GELU between, and one layer).
    v.push(NetConfig { embedding: vec![5, 7], ..cfg(Conditioning::Concat, &[8, 12]) });
    v.push(NetConfig { embedding: vec![6], ..cfg(Conditioning::Glu, &[10, 10]) });
    v
}

/// Fourth-order central finite differences (5-point stencil) of the loss w.r.t. every
/// parameter: `(8(L(p+h) − L(p−h)) − (L(p+2h) − L(p−2h))) / 12h`.
fn fd_grad(cfg: &NetConfig, p: &[f64], bt: &Batch, h: f64) -> Vec<f64> {
    let mut q = p.to_vec();
    (0..p.len())
        .map(|i| {
            let mut at = |d: f64| {
                q[i] = p[i] + d;
                let l = net::loss_and_grad(cfg, &q, &bt.t, &bt.theta, &bt.x, &bt.target).0;
                q[i] = p[i];
                l
            };
            (8.0 * (at(h) - at(-h)) - (at(2.0 * h) - at(-2.0 * h))) / (12.0 * h)
        })
        .collect()
}

/// Largest component-wise relative error, with a floor of 1e-3·‖fd‖∞ on the denominator
/// so that exactly-zero components do not divide by zero.
fn max_rel_err(a: &[f64], fd: &[f64]) -> f64 {
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(fd)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-3 * scale).max(1e-300))
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------- network

#[test]
fn gelu_values_and_derivative() {
    // tanh formula in f64 (PyTorch's F.gelu(.., approximate="tanh") in f32 gives
    // 0.8411920, -0.1542860, 1.9545977)
    let want = [(1.0, 0.841_191_990_608_276_8), (-0.5, -0.154_285_990_174_856_06), (2.0, 1.954_597_694_087_775)];
    for (a, g) in want {
        assert!((net::gelu(a) - g).abs() < 1e-12, "gelu({a}) = {} want {g}", net::gelu(a));
    }
    for i in -40..=40 {
        let a = i as f64 * 0.173;
        let h = 1e-5;
        let fd = (net::gelu(a + h) - net::gelu(a - h)) / (2.0 * h);
        assert!((net::gelu_grad(a) - fd).abs() < 1e-9, "gelu_grad({a})");
    }
}

/// An independent, literal transcription of the module docs of `net::config`, looking
/// layers up by their PyTorch names.
fn spec_forward_row(cfg: &NetConfig, p: &[f64], t: f64, theta: &[f64], x: &[f64]) -> Vec<f64> {
    let layout = cfg.layout();
    let lins = layout.linears();
    let get = |name: &str| *lins.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no layer {name}"));
    let lin = |name: &str, a: &[f64]| -> Vec<f64> {
        let l = get(name);
        assert_eq!(a.len(), l.fan_in);
        let mut out = vec![0.0; l.fan_out];
        for o in 0..l.fan_out {
            out[o] = p[l.bias + o];
            for i in 0..l.fan_in {
                out[o] += p[l.weight + o * l.fan_in + i] * a[i];
            }
        }
        out
    };
    let gelu_v = |a: &[f64]| a.iter().map(|&v| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())).collect::<Vec<_>>();
    let mut e = x.to_vec();
    for k in 0..cfg.embedding.len() {
        let a = if k == 0 { e.clone() } else { gelu_v(&e) };
        e = lin(&format!("embedding.{k}"), &a);
    }
    let c: Vec<f64> = std::iter::once(t).chain(theta.iter().copied()).collect();
    let z: Vec<f64> = match cfg.conditioning {
        Conditioning::Concat => c.iter().chain(&e).copied().collect(),
        Conditioning::Glu => e,
    };
    let mut h = lin("input", &z);
    for (k, &w) in cfg.hidden.iter().enumerate() {
        if k > 0 && cfg.hidden[k - 1] != w {
            h = lin(&format!("resize.{k}"), &h);
        }
        let u = lin(&format!("blocks.{k}.linear1"), &gelu_v(&h));
        let mut y = lin(&format!("blocks.{k}.linear2"), &gelu_v(&u));
        if cfg.conditioning == Conditioning::Glu {
            let s = lin(&format!("blocks.{k}.gate"), &c);
            for i in 0..w {
                y[i] *= 1.0 / (1.0 + (-s[i]).exp());
            }
        }
        for i in 0..w {
            h[i] += y[i];
        }
    }
    lin("output", &h)
}

#[test]
fn forward_matches_spec_transcription() {
    for (ci, c) in configs().iter().enumerate() {
        let p = params(c, 10 + ci as u64);
        let bt = batch(c, 6, 20 + ci as u64);
        let v = net::forward(c, &p, &bt.t, &bt.theta, &bt.x);
        assert_eq!(v.len(), 6 * c.dim_theta);
        for r in 0..6 {
            let want = spec_forward_row(
                c,
                &p,
                bt.t[r],
                &bt.theta[r * c.dim_theta..(r + 1) * c.dim_theta],
                &bt.x[r * c.dim_x..(r + 1) * c.dim_x],
            );
            for j in 0..c.dim_theta {
                let got = v[r * c.dim_theta + j];
                assert!((got - want[j]).abs() <= 1e-13 * (1.0 + want[j].abs()), "{c:?} row {r}: {got} vs {}", want[j]);
            }
        }
    }
}

#[test]
fn forward_is_per_row() {
    let c = cfg(Conditioning::Glu, &[8, 12]);
    let p = params(&c, 3);
    let bt = batch(&c, 5, 4);
    let v = net::forward(&c, &p, &bt.t, &bt.theta, &bt.x);
    for r in 0..5 {
        let vr = net::forward(&c, &p, &bt.t[r..r + 1], &bt.theta[r * 3..r * 3 + 3], &bt.x[r * 4..r * 4 + 4]);
        assert_eq!(&v[r * 3..r * 3 + 3], &vr[..]);
    }
}

#[test]
fn loss_and_grad_matches_finite_differences() {
    for (ci, c) in configs().iter().enumerate() {
        let p = params(c, 100 + ci as u64);
        let bt = batch(c, 5, 200 + ci as u64);
        let (loss, g) = net::loss_and_grad(c, &p, &bt.t, &bt.theta, &bt.x, &bt.target);
        // the loss itself
        let v = net::forward(c, &p, &bt.t, &bt.theta, &bt.x);
        let want: f64 = v.iter().zip(&bt.target).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((loss - want).abs() <= 1e-14 * want, "loss {loss} vs {want}");
        let fd = fd_grad(c, &p, &bt, 1e-4);
        let err = max_rel_err(&g, &fd);
        eprintln!("{} {:?} embedding {:?}: n_params {}, max rel err {err:.2e}", c.conditioning, c.hidden, c.embedding, p.len());
        assert!(err < 1e-6, "{c:?}: gradient max rel err {err:.3e}");
        // every parameter must matter (no unused / mis-laid-out slot)
        for (i, gi) in g.iter().enumerate() {
            assert!(gi.abs() > 0.0, "{c:?}: zero gradient at param {i}");
        }
        // the check is sensitive: a 1e-5 relative error in the largest component fails it
        let imax = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
        let mut bad = g.clone();
        bad[imax] *= 1.0 + 1e-5;
        assert!(max_rel_err(&bad, &fd) > 1e-6);
    }
}

#[test]
fn jvp_and_divergence_match_finite_differences() {
    for (ci, c) in configs().iter().enumerate() {
        let dt = c.dim_theta;
        let b = 4;
        let p = params(c, 300 + ci as u64);
        let bt = batch(c, b, 400 + ci as u64);
        let v0 = net::forward(c, &p, &bt.t, &bt.theta, &bt.x);
        // full FD Jacobian per row (5-point stencil): jac[r][i][j] = dv_i/dθ_j
        let h = 1e-4;
        let mut jac = vec![vec![vec![0.0; dt]; dt]; b];
        for j in 0..dt {
            let at = |d: f64| {
                let mut th = bt.theta.clone();
                for r in 0..b {
                    th[r * dt + j] += d;
                }
                net::forward(c, &p, &bt.t, &th, &bt.x)
            };
            let (p1, m1, p2, m2) = (at(h), at(-h), at(2.0 * h), at(-2.0 * h));
            for r in 0..b {
                for i in 0..dt {
                    let k = r * dt + i;
                    jac[r][i][j] = (8.0 * (p1[k] - m1[k]) - (p2[k] - m2[k])) / (12.0 * h);
                }
            }
        }
        let mut rng = StdRng::seed_from_u64(500 + ci as u64);
        let eps: Vec<f64> = (0..b * dt).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (v, jv) = net::jvp(c, &p, &bt.t, &bt.theta, &bt.x, &eps);
        assert_eq!(v, v0, "jvp primal output must equal forward");
        let mut want = vec![0.0; b * dt];
        for r in 0..b {
            for i in 0..dt {
                want[r * dt + i] = (0..dt).map(|j| jac[r][i][j] * eps[r * dt + j]).sum();
            }
        }
        let err = max_rel_err(&jv, &want);
        eprintln!("{} {:?}: jvp max rel err {err:.2e}", c.conditioning, c.hidden);
        assert!(err < 1e-6, "{c:?}: jvp max rel err {err:.3e}");
        assert!(jv.iter().all(|x| x.abs() > 1e-6), "jvp unexpectedly ~0");

        let div = net::divergence(c, &p, &bt.t, &bt.theta, &bt.x);
        let tr: Vec<f64> = (0..b).map(|r| (0..dt).map(|i| jac[r][i][i]).sum()).collect();
        let err = max_rel_err(&div, &tr);
        assert!(err < 1e-6, "{c:?}: divergence {div:?} vs trace {tr:?}");
    }
}

// ---------------------------------------------------------------- path, zscore

#[test]
fn time_prior_and_ot_path() {
    assert_eq!(path::time_from_uniform(0.3, 0.0), 0.3);
    // CDF of p(t) ∝ t^α is s^(1+α): u = s^(1+α) maps to s
    for &alpha in &[0.0, 0.5, 2.0, -0.5] {
        for &s in &[0.1, 0.5, 0.9] {
            let t = path::time_from_uniform(f64::powf(s, 1.0 + alpha), alpha);
            assert!((t - s).abs() < 1e-14);
        }
    }
    let (d, sm) = (2, 1e-3);
    let th0 = [0.3, -1.2, 2.0, 0.5];
    let th1 = [1.0, 4.0, -3.0, 0.25];
    let (psi, u) = path::ot_path(&th0, &th1, &[0.0, 1.0], d, sm);
    assert_eq!(&psi[0..2], &th0[0..2]); // t = 0: base sample
    for j in 0..2 {
        assert!((psi[2 + j] - (sm * th0[2 + j] + th1[2 + j])).abs() < 1e-15); // t = 1
        assert!((u[j] - (th1[j] - (1.0 - sm) * th0[j])).abs() < 1e-15);
    }
    // the target is the time derivative of the path
    let t = 0.37;
    let h = 1e-6;
    let (pp, _) = path::ot_path(&th0, &th1, &[t + h, t + h], d, sm);
    let (pm, _) = path::ot_path(&th0, &th1, &[t - h, t - h], d, sm);
    let (_, u) = path::ot_path(&th0, &th1, &[t, t], d, sm);
    for i in 0..4 {
        assert!(((pp[i] - pm[i]) / (2.0 * h) - u[i]).abs() < 1e-8);
    }
}

#[test]
fn zscore_stats_sample_std() {
    let data = [1.0, 10.0, 5.0, 2.0, 2.0, 5.0, 3.0, 8.0, 5.0, 4.0, 0.0, 5.0];
    let (m, s) = zscore_stats(&data, 4, 3);
    assert_eq!(m, vec![2.5, 5.0, 5.0]);
    // column 0: 1,2,3,4 -> var (ddof=1) = 5/3; column 2: constant -> 1.0
    assert!((s[0] - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    assert!((s[1] - (68.0f64 / 3.0).sqrt()).abs() < 1e-14);
    assert_eq!(s[2], 1.0);
}

// ---------------------------------------------------------------- adam

#[test]
fn adam_three_steps_scalar() {
    // hand computation (PyTorch semantics, lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1):
    // step 1: g = 0.5 + 0.1·1 = 0.6, m = 0.06, v = 3.6e-4, m̂ = 0.6, v̂ = 0.36,
    //         p = 1 − 0.1·0.6/(0.6 + 1e-8) = 0.9000000016666666
    let mut p = [1.0];
    let (mut m, mut v) = ([0.0], [0.0]);
    let want = [
        (0.900_000_001_666_666_6, 0.06, 3.6e-4),
        (0.854_441_367_461_762_5, 0.038_000_000_016_666_65, 3.852_399_999_466_670_3e-4),
        (0.781_504_399_863_165_8, 0.142_744_413_689_617_6, 1.563_043_733_943_373_2e-3),
    ];
    for (k, g) in [0.5, -0.25, 1.0].iter().enumerate() {
        adam::adam_step(&mut p, &[*g], &mut m, &mut v, k as u32 + 1, 0.1, 0.9, 0.999, 1e-8, 0.1);
        let (wp, wm, wv) = want[k];
        assert!((p[0] - wp).abs() < 1e-14, "step {}: p {} want {wp}", k + 1, p[0]);
        assert!((m[0] - wm).abs() < 1e-14 && (v[0] - wv).abs() < 1e-16, "step {}: m {} v {}", k + 1, m[0], v[0]);
    }
    // without weight decay the first step is ±lr (up to eps), whatever the gradient scale
    let mut p = [0.0, 0.0];
    adam::adam_step(&mut p, &[1e3, -1e-3], &mut [0.0; 2], &mut [0.0; 2], 1, 0.01, 0.9, 0.999, 1e-12, 0.0);
    assert!((p[0] + 0.01).abs() < 1e-10 && (p[1] - 0.01).abs() < 1e-8, "{p:?}");
}

// ---------------------------------------------------------------- philox

#[test]
fn philox_known_answers() {
    // Random123 kat_vectors, philox4x32 10 rounds
    let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        ([0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
        ([0xffffffff; 4], [0xffffffff; 2], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in kat {
        assert_eq!(philox::philox4x32_10(ctr, key), want, "ctr {ctr:x?} key {key:x?}");
    }
}

#[test]
fn uniforms_and_box_muller_moments() {
    assert_eq!(philox::uniform(0), 0.5 / 16_777_216.0);
    assert!(philox::uniform(u32::MAX) < 1.0);
    assert_eq!(philox::uniform(0xff), philox::uniform(0)); // only the top 24 bits count
    let n_ctr = 100_000u32;
    let (mut s1, mut s2, mut s3, mut n) = (0.0, 0.0, 0.0, 0.0);
    let (mut us, mut ucount) = (0.0, 0.0);
    for i in 0..n_ctr {
        let r = philox::philox4x32_10([i, 0, 0, 0], [1234, 5678]);
        let u: Vec<f64> = r.iter().map(|&x| philox::uniform(x)).collect();
        for &x in &u {
            assert!(x > 0.0 && x < 1.0);
            us += x;
            ucount += 1.0;
        }
        let (a, b) = philox::box_muller(u[0], u[1]);
        let (c, d) = philox::box_muller(u[2], u[3]);
        for z in [a, b, c, d] {
            s1 += z;
            s2 += z * z;
            s3 += z * z * z * z;
            n += 1.0;
        }
    }
    let mean = s1 / n;
    let var = s2 / n - mean * mean;
    let kurt = s3 / n;
    eprintln!("uniform mean {:.5}, normal mean {mean:.5} var {var:.5} E[z^4] {kurt:.4}", us / ucount);
    assert!((us / ucount - 0.5).abs() < 0.003);
    assert!(mean.abs() < 0.008, "mean {mean}"); // sd of the mean: 1/sqrt(4e5) = 0.0016
    assert!((var - 1.0).abs() < 0.012, "var {var}"); // sd ≈ sqrt(2/4e5) = 0.0022
    assert!((kurt - 3.0).abs() < 0.06, "E[z^4] {kurt}"); // sd ≈ sqrt(96/4e5) = 0.015
}

// ---------------------------------------------------------------- ODE solvers

/// y' = A y + b with A = [[-a, -w], [w, -a]] (rotation + decay), per-row parameters.
#[derive(Clone, Copy)]
struct Lin2 {
    a: f64,
    w: f64,
    b: [f64; 2],
}

impl Lin2 {
    fn deriv(&self, y: &[f64]) -> [f64; 2] {
        [-self.a * y[0] - self.w * y[1] + self.b[0], self.w * y[0] - self.a * y[1] + self.b[1]]
    }
    /// Closed form: y(t) = y* + e^{−a(t−t0)} R(w (t−t0)) (y0 − y*), y* = −A⁻¹ b.
    fn exact(&self, y0: &[f64], t0: f64, t: f64) -> [f64; 2] {
        let det = self.a * self.a + self.w * self.w;
        // A⁻¹ = [[-a, w], [-w, -a]] / det
        let ys = [
            -(-self.a * self.b[0] + self.w * self.b[1]) / det,
            -(-self.w * self.b[0] - self.a * self.b[1]) / det,
        ];
        let dt = t - t0;
        let (s, c) = (self.w * dt).sin_cos();
        let e = (-self.a * dt).exp();
        let d = [y0[0] - ys[0], y0[1] - ys[1]];
        [ys[0] + e * (c * d[0] - s * d[1]), ys[1] + e * (s * d[0] + c * d[1])]
    }
}

fn field(rows: Vec<Lin2>) -> impl Fn(&[f64], &[f64]) -> Vec<f64> {
    move |t: &[f64], y: &[f64]| {
        assert_eq!(t.len(), rows.len());
        rows.iter().enumerate().flat_map(|(r, s)| s.deriv(&y[2 * r..2 * r + 2])).collect()
    }
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn systems() -> (Vec<Lin2>, Vec<f64>) {
    let rows = vec![
        Lin2 { a: 0.5, w: 3.0, b: [1.0, -0.5] },
        Lin2 { a: 0.1, w: 1.0, b: [0.0, 0.0] },
        Lin2 { a: 2.0, w: 8.0, b: [-2.0, 1.0] },
        Lin2 { a: 0.0, w: 0.5, b: [0.3, 0.3] },
    ];
    let y0 = vec![1.0, 0.0, -0.5, 2.0, 0.3, 0.7, 1.5, -1.0];
    (rows, y0)
}

fn exact_all(rows: &[Lin2], y0: &[f64], t0: f64, t1: f64) -> Vec<f64> {
    rows.iter().enumerate().flat_map(|(r, s)| s.exact(&y0[2 * r..2 * r + 2], t0, t1)).collect()
}

#[test]
fn closed_form_is_a_solution() {
    // guards the test oracle itself: d/dt exact = A exact + b
    let (rows, y0) = systems();
    for (r, s) in rows.iter().enumerate() {
        let yr = &y0[2 * r..2 * r + 2];
        let t = 0.7;
        let h = 1e-6;
        let (p, m, y) = (s.exact(yr, 0.0, t + h), s.exact(yr, 0.0, t - h), s.exact(yr, 0.0, t));
        let dy = s.deriv(&y);
        for i in 0..2 {
            assert!(((p[i] - m[i]) / (2.0 * h) - dy[i]).abs() < 1e-7);
        }
        assert!(max_abs_diff(&s.exact(yr, 0.3, 0.3), yr) < 1e-15);
    }
}

#[test]
fn rk4_linear_system_fourth_order() {
    let (rows, y0) = systems();
    let f = field(rows.clone());
    let exact = exact_all(&rows, &y0, 0.0, 2.0);
    let e50 = max_abs_diff(&ode::rk4(&f, &y0, 4, 2, 0.0, 2.0, 50), &exact);
    let e100 = max_abs_diff(&ode::rk4(&f, &y0, 4, 2, 0.0, 2.0, 100), &exact);
    let e400 = max_abs_diff(&ode::rk4(&f, &y0, 4, 2, 0.0, 2.0, 400), &exact);
    eprintln!("rk4 errors: 50 steps {e50:.2e}, 100 steps {e100:.2e}, 400 steps {e400:.2e}");
    assert!(e400 < 1e-7, "{e400}");
    let order = (e50 / e100).log2();
    assert!((3.7..4.3).contains(&order), "observed order {order}");
    // backwards
    let y1 = ode::rk4(&f, &y0, 4, 2, 0.0, 2.0, 400);
    let back = ode::rk4(&f, &y1, 4, 2, 2.0, 0.0, 400);
    assert!(max_abs_diff(&back, &y0) < 1e-7);
    // time is passed per row and correctly: y' = -2 t y  ->  y = y0 exp(-(t1² - t0²))
    let g = |t: &[f64], y: &[f64]| t.iter().zip(y).map(|(t, y)| -2.0 * t * y).collect::<Vec<_>>();
    let y = ode::rk4(g, &[1.0, 2.0], 2, 1, 0.5, 1.5, 200);
    let want = (-(1.5f64 * 1.5 - 0.25)).exp();
    assert!((y[0] - want).abs() < 1e-8 && (y[1] - 2.0 * want).abs() < 1e-8, "{y:?}");
}

#[test]
fn dopri5_linear_system_within_tolerance() {
    let (rows, y0) = systems();
    let f = field(rows.clone());
    let exact = exact_all(&rows, &y0, 0.0, 2.0);
    for &(tol, bound) in &[(1e-6, 1e-5), (1e-9, 1e-8)] {
        let (y, acc, rej) = ode::dopri5(&f, &y0, 4, 2, 2, 0.0, 2.0, tol, tol, 0.05);
        let err = max_abs_diff(&y, &exact);
        eprintln!("dopri5 tol {tol:e}: err {err:.2e}, accepted {acc:?}, rejected {rej:?}");
        assert!(err < bound, "tol {tol}: err {err}");
        assert!(acc.iter().all(|&a| a > 0));
    }
    // tighter tolerance needs more steps
    let (_, a6, _) = ode::dopri5(&f, &y0, 4, 2, 2, 0.0, 2.0, 1e-6, 1e-6, 0.05);
    let (_, a9, _) = ode::dopri5(&f, &y0, 4, 2, 2, 0.0, 2.0, 1e-9, 1e-9, 0.05);
    assert!(a6.iter().zip(&a9).all(|(a, b)| b > a));
    // a huge initial step must be rejected and then recovered from
    let (y, _, rej) = ode::dopri5(&f, &y0, 4, 2, 2, 0.0, 2.0, 1e-8, 1e-8, 1.5);
    assert!(rej.iter().any(|&r| r > 0));
    assert!(max_abs_diff(&y, &exact) < 1e-6);
    // non-autonomous: y' = -2 t y
    let g = |t: &[f64], y: &[f64]| t.iter().zip(y).map(|(t, y)| -2.0 * t * y).collect::<Vec<_>>();
    let (y, _, _) = ode::dopri5(g, &[1.0, 2.0], 2, 1, 1, 0.5, 1.5, 1e-10, 1e-10, 0.05);
    let want = (-(1.5f64 * 1.5 - 0.25)).exp();
    assert!((y[0] - want).abs() < 1e-8 && (y[1] - 2.0 * want).abs() < 1e-8, "{y:?}");
}

#[test]
fn dopri5_backwards_recovers_start() {
    let (rows, y0) = systems();
    let f = field(rows.clone());
    // (running a decaying system backwards amplifies errors by up to e^{2·2} ≈ 55 here)
    let (y1, _, _) = ode::dopri5(&f, &y0, 4, 2, 2, 0.0, 2.0, 1e-10, 1e-10, 0.05);
    let (back, acc, _) = ode::dopri5(&f, &y1, 4, 2, 2, 2.0, 0.0, 1e-10, 1e-10, 0.05);
    assert!(acc.iter().all(|&a| a > 0));
    let err = max_abs_diff(&back, &y0);
    eprintln!("dopri5 forward+backward error {err:.2e}");
    assert!(err < 1e-7, "{err}");
    // backwards also matches the closed form run backwards
    let (yb, _, _) = ode::dopri5(&f, &y0, 4, 2, 2, 0.0, -1.0, 1e-9, 1e-9, 0.05);
    assert!(max_abs_diff(&yb, &exact_all(&rows, &y0, 0.0, -1.0)) < 1e-7);
    // t0 == t1 is the identity
    let (same, acc, rej) = ode::dopri5(&f, &y0, 4, 2, 2, 1.0, 1.0, 1e-8, 1e-8, 0.05);
    assert_eq!(same, y0);
    assert!(acc.iter().chain(&rej).all(|&a| a == 0));
}

#[test]
fn dopri5_rows_are_independent() {
    let (rows, y0) = systems();
    let f = field(rows.clone());
    let (y, acc, rej) = ode::dopri5(&f, &y0, 4, 2, 2, 0.0, 2.0, 1e-7, 1e-7, 0.05);
    // the rows really take different step sequences
    assert!(acc.iter().any(|&a| a != acc[0]), "{acc:?}");
    for r in 0..4 {
        let fr = field(vec![rows[r]]);
        let (yr, ar, rr) = ode::dopri5(&fr, &y0[2 * r..2 * r + 2], 1, 2, 2, 0.0, 2.0, 1e-7, 1e-7, 0.05);
        assert_eq!(&y[2 * r..2 * r + 2], &yr[..], "row {r} differs (bitwise) when run alone");
        assert_eq!((acc[r], rej[r]), (ar[0], rr[0]));
    }
}

#[test]
fn dopri5_d_err_excludes_extra_channels() {
    // 2 controlled channels + 1 wild channel that only integrates the others (like a
    // log-density channel): with d_err = 2 the step sequence must be the same as without it.
    let s = Lin2 { a: 0.3, w: 2.0, b: [0.5, 0.0] };
    let f2 = |_t: &[f64], y: &[f64]| s.deriv(y).to_vec();
    let f3 = |t: &[f64], y: &[f64]| {
        let d = s.deriv(&y[0..2]);
        vec![d[0], d[1], 1e6 * (50.0 * t[0]).sin()]
    };
    let (ya, aa, ra) = ode::dopri5(f2, &[1.0, 0.0], 1, 2, 2, 0.0, 1.0, 1e-6, 1e-6, 0.05);
    let (yb, ab, rb) = ode::dopri5(f3, &[1.0, 0.0, 0.0], 1, 3, 2, 0.0, 1.0, 1e-6, 1e-6, 0.05);
    assert_eq!((aa, ra), (ab.clone(), rb));
    assert_eq!(&ya[..], &yb[0..2]);
    // counting it changes the steps
    let (_, ac, _) = ode::dopri5(f3, &[1.0, 0.0, 0.0], 1, 3, 3, 0.0, 1.0, 1e-6, 1e-6, 0.05);
    assert!(ac[0] > ab[0]);
}
