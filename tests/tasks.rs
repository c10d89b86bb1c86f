//! Tests of `fmpe::tasks`: the ten sbibm 1.1.0 tasks (priors, simulators) against the spec
//! in `shared/sbibm/README.md` and the shipped observations.
//!
//! The sbibm data directory is `../shared/sbibm` relative to the crate root, or
//! `$FMPE_SBIBM_DIR`. Tests that need it are `#[ignore]`d (a user's clone has no
//! `../shared`); CI runs them with `--include-ignored`, and then they FAIL (not skip)
//! when it is missing.

use std::path::PathBuf;

use fmpe::io::read_matrix;
use fmpe::tasks::{
    bernoulli_glm_design_matrix, lotka_volterra_solve, row_rng, simulate_dataset, sir_solve, task_by_name,
    two_moons_map, Prior, Task, SLCP_DISTRACTOR_POSITIONS, TASK_NAMES,
};

fn sbibm_dir() -> PathBuf {
    let dir = match std::env::var_os("FMPE_SBIBM_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/sbibm"),
    };
    assert!(
        dir.join("two_moons").is_dir(),
        "sbibm data directory not found at {} (expected <dir>/two_moons/...); \
         set FMPE_SBIBM_DIR to the folder holding the sbibm task folders",
        dir.display()
    );
    dir
}

/// (true θ, x_o) of observation `k` of `task`.
fn observation(task: &str, k: usize) -> (Vec<f64>, Vec<f64>) {
    let d = sbibm_dir().join(task).join(format!("num_observation_{k}"));
    let t = read_matrix(&d.join("true_parameters.csv")).unwrap();
    let x = read_matrix(&d.join("observation.csv")).unwrap();
    assert_eq!((t.rows, x.rows), (1, 1));
    (t.data, x.data)
}

fn task(name: &str) -> Box<dyn Task> {
    task_by_name(name).unwrap()
}

/// Column means and (population) variances of `[n, d]` row-major data.
fn moments(data: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = data.len() / d;
    let mut mean = vec![0.0; d];
    for row in data.chunks_exact(d) {
        for j in 0..d {
            mean[j] += row[j] / n as f64;
        }
    }
    let mut var = vec![0.0; d];
    for row in data.chunks_exact(d) {
        for j in 0..d {
            var[j] += (row[j] - mean[j]).powi(2) / n as f64;
        }
    }
    (mean, var)
}

/// Sample covariance of columns a and b.
fn cov(data: &[f64], d: usize, a: usize, b: usize) -> f64 {
    let n = (data.len() / d) as f64;
    let (ma, mb) = data.chunks_exact(d).fold((0.0, 0.0), |(x, y), r| (x + r[a] / n, y + r[b] / n));
    data.chunks_exact(d).map(|r| (r[a] - ma) * (r[b] - mb)).sum::<f64>() / n
}

/// `n` simulations at one θ.
fn simulate_at(task: &dyn Task, theta: &[f64], n: usize, seed: u64) -> Vec<f64> {
    let thetas: Vec<f64> = theta.iter().copied().cycle().take(n * theta.len()).collect();
    task.simulate(&thetas, seed)
}

// ------------------------------------------------------------------ registry

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn registry_matches_tasks_json() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sbibm_dir().join("tasks.json")).unwrap()).unwrap();
    for name in TASK_NAMES {
        let t = task(name);
        assert_eq!(t.name(), name);
        let spec = &json["tasks"][name];
        assert_eq!(t.dim_theta() as u64, spec["dim_parameters"].as_u64().unwrap(), "{name}");
        assert_eq!(t.dim_x() as u64, spec["dim_data"].as_u64().unwrap(), "{name}");
        assert_eq!(t.prior().dim(), t.dim_theta(), "{name}");
        assert_eq!(t.theta_names().len(), t.dim_theta(), "{name}");
        assert_eq!(t.x_names().len(), t.dim_x(), "{name}");
    }
    assert_eq!(task("sir").theta_names(), vec!["beta", "gamma"]);
    assert_eq!(task("two_moons").x_names(), vec!["data_1", "data_2"]);
    let msg = task_by_name("nope").err().unwrap().to_string();
    assert!(msg.contains("nope") && TASK_NAMES.iter().all(|n| msg.contains(n)), "{msg}");
}

// ------------------------------------------------------------------ priors

#[test]
fn prior_moments_all_tasks() {
    let n = 20_000;
    for name in TASK_NAMES {
        let t = task(name);
        let p = t.prior();
        let d = p.dim();
        let mut rng = row_rng(7, 0);
        let s = p.sample(n, &mut rng);
        assert_eq!(s.len(), n * d);
        let (m, v) = moments(&s, d);
        let (m0, v0) = (p.mean(), p.variance());
        // variance tolerance: the sample variance has sd sqrt((kurtosis - 1)/n) * var;
        // lognormal priors (sigma <= 0.5) have kurtosis < 9.
        let rel = if matches!(p, Prior::LogNormal { .. }) { 0.12 } else { 0.06 };
        for j in 0..d {
            let se = (v0[j] / n as f64).sqrt();
            assert!((m[j] - m0[j]).abs() < 5.0 * se, "{name} mean[{j}] {} vs {}", m[j], m0[j]);
            assert!((v[j] / v0[j] - 1.0).abs() < rel, "{name} var[{j}] {} vs {}", v[j], v0[j]);
        }
        for row in s.chunks_exact(d).take(500) {
            assert!(p.in_support(row), "{name}");
            assert!(p.log_prob(row).is_finite(), "{name}");
        }
    }
}

#[test]
fn prior_specific_values() {
    // two_moons, slcp, gaussian_mixture, gaussian_linear_uniform: uniform boxes
    for (name, lo, hi) in [
        ("two_moons", -1.0, 1.0),
        ("gaussian_linear_uniform", -1.0, 1.0),
        ("gaussian_mixture", -10.0, 10.0),
        ("slcp", -3.0, 3.0),
        ("slcp_distractors", -3.0, 3.0),
    ] {
        let p = task(name).prior().clone();
        let d = p.dim();
        assert_eq!(p.bounds(), Some((vec![lo; d], vec![hi; d])), "{name}");
        let lp = p.log_prob(&vec![0.0; d]);
        assert!((lp + d as f64 * (hi - lo).ln()).abs() < 1e-12, "{name}");
        let mut out = vec![0.0; d];
        out[d - 1] = hi + 0.01;
        assert!(!p.in_support(&out) && p.log_prob(&out) == f64::NEG_INFINITY, "{name}");
    }
    // gaussian_linear: N(0, 0.1 I) (0.1 is the variance)
    let p = task("gaussian_linear").prior().clone();
    assert_eq!(p.variance(), vec![0.1; 10]);
    assert!(p.bounds().is_none());
    let th = [0.1; 10];
    let want = -5.0 * (2.0 * std::f64::consts::PI * 0.1).ln() - 0.5 * 10.0 * 0.01 / 0.1;
    assert!((p.log_prob(&th) - want).abs() < 1e-10);
    // sir: LogNormal((log 0.4, log 0.125), (0.5, 0.2))
    let p = task("sir").prior().clone();
    assert_eq!(p, Prior::LogNormal { mu: vec![0.4f64.ln(), 0.125f64.ln()], sigma: vec![0.5, 0.2] });
    assert_eq!(p.log_prob(&[-0.1, 0.1]), f64::NEG_INFINITY);
    // density of log-normal at its median exp(mu): 1 / (x sigma sqrt(2 pi))
    let want: f64 = [(0.4, 0.5), (0.125, 0.2)]
        .iter()
        .map(|&(x, s): &(f64, f64)| -(x * s * (2.0 * std::f64::consts::PI).sqrt()).ln())
        .sum();
    assert!((p.log_prob(&[0.4, 0.125]) - want).abs() < 1e-12);
    // lotka_volterra
    let p = task("lotka_volterra").prior().clone();
    assert_eq!(p, Prior::LogNormal { mu: vec![-0.125, -3.0, -0.125, -3.0], sigma: vec![0.5; 4] });
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn bernoulli_glm_prior_covariance_inverts_precision() {
    // B from the shipped prior_precision_matrix.csv; the prior covariance must be B^-1.
    let b = read_matrix(&sbibm_dir().join("bernoulli_glm/simulator_constants/prior_precision_matrix.csv")).unwrap();
    for name in ["bernoulli_glm", "bernoulli_glm_raw"] {
        let Prior::Gaussian { mean, cov } = task(name).prior().clone() else { panic!("{name}: not Gaussian") };
        assert_eq!(mean, vec![0.0; 10]);
        for i in 0..10 {
            for j in 0..10 {
                let s: f64 = (0..10).map(|k| b.data[i * 10 + k] * cov[k * 10 + j]).sum();
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9, "{name} (B C)[{i},{j}] = {s}");
            }
        }
        // sampled covariance matches (a few entries, including off-diagonal ones)
        let mut rng = row_rng(3, 0);
        let s = task(name).prior().sample(20_000, &mut rng);
        for (i, j) in [(1, 2), (2, 3), (5, 6), (1, 9), (0, 0)] {
            let c = cov_entry(&s, i, j);
            let tol = 6.0 * (cov[i * 10 + i] * cov[j * 10 + j] / 20_000.0).sqrt() * 1.5;
            assert!((c - cov[i * 10 + j]).abs() < tol, "{name} cov[{i},{j}] {c} vs {}", cov[i * 10 + j]);
        }
    }
    fn cov_entry(s: &[f64], i: usize, j: usize) -> f64 {
        cov(s, 10, i, j)
    }
}

// ------------------------------------------------------------------ simulators

#[test]
fn two_moons_mapping_and_noise() {
    // hand-computed (python: r*cos(a)+0.25-|z0|, r*sin(a)+z1) for theta=(0.3,-0.5), a=0.2, r=0.1
    let x = two_moons_map(&[0.3, -0.5], 0.2, 0.1);
    assert!((x[0] - 0.20658530154681465).abs() < 1e-14 && (x[1] + 0.5458184918697319).abs() < 1e-14, "{x:?}");
    // simulations lie on the moon: with (u, v) = (x1 + |z0| - 0.25, x2 - z1), rho = |(u,v)|
    // ~ N(0.1, 0.01^2), u >= 0 and the angle atan2(v, u) ~ U(-pi/2, pi/2) (sbibm's likelihood).
    let th = [0.3, -0.5];
    let t = task("two_moons");
    let n = 20_000;
    let xs = simulate_at(t.as_ref(), &th, n, 11);
    let z0 = (th[0] + th[1]) / 2f64.sqrt();
    let z1 = (-th[0] + th[1]) / 2f64.sqrt();
    let mut rho = Vec::new();
    let mut ang = Vec::new();
    for x in xs.chunks_exact(2) {
        let (u, v) = (x[0] + z0.abs() - 0.25, x[1] - z1);
        assert!(u >= 0.0);
        rho.push((u * u + v * v).sqrt());
        ang.push(v.atan2(u));
    }
    let (m, var) = moments(&rho, 1);
    assert!((m[0] - 0.1).abs() < 5.0 * 0.01 / (n as f64).sqrt() && (var[0].sqrt() - 0.01).abs() < 5e-4);
    let (ma, va) = moments(&ang, 1);
    let pi = std::f64::consts::PI;
    assert!(ma[0].abs() < 5.0 * (pi * pi / 12.0 / n as f64).sqrt() && (va[0] / (pi * pi / 12.0) - 1.0).abs() < 0.05);
}

/// Checks mean θ and covariance `var·I` of simulations x ~ N(θ, var I).
fn check_gaussian_noise(name: &str, theta: &[f64], var: f64) {
    let t = task(name);
    let d = theta.len();
    let n = 20_000;
    let xs = simulate_at(t.as_ref(), theta, n, 5);
    let (m, v) = moments(&xs, d);
    for j in 0..d {
        assert!((m[j] - theta[j]).abs() < 5.0 * (var / n as f64).sqrt(), "{name} mean[{j}]");
        assert!((v[j] / var - 1.0).abs() < 0.06, "{name} var[{j}] = {}", v[j]);
    }
    for (a, b) in [(0, 1), (d - 2, d - 1)] {
        assert!(cov(&xs, d, a, b).abs() < 5.0 * var / (n as f64).sqrt(), "{name} cov[{a},{b}]");
    }
}

#[test]
fn gaussian_linear_noise() {
    let th: Vec<f64> = (0..10).map(|i| 0.05 * i as f64 - 0.2).collect();
    check_gaussian_noise("gaussian_linear", &th, 0.1);
    check_gaussian_noise("gaussian_linear_uniform", &th, 0.1);
}

#[test]
fn gaussian_mixture_shares_one_component() {
    let th = [3.0, -7.5];
    // marginal variance 0.5 * 1 + 0.5 * 0.01 = 0.505
    check_gaussian_noise_mixture(&th);
}

fn check_gaussian_noise_mixture(th: &[f64]) {
    let t = task("gaussian_mixture");
    let n = 20_000;
    let xs = simulate_at(t.as_ref(), th, n, 9);
    let (m, v) = moments(&xs, 2);
    for j in 0..2 {
        assert!((m[j] - th[j]).abs() < 5.0 * (0.505 / n as f64).sqrt());
        assert!((v[j] / 0.505 - 1.0).abs() < 0.06, "var {}", v[j]);
    }
    // one component for both coordinates: E[a^2 b^2] = 0.5*1 + 0.5*1e-4 (0.255 if independent);
    // sd of a^2 b^2 is about 2.1, so the standard error is 0.015.
    let e: f64 = xs.chunks_exact(2).map(|x| (x[0] - th[0]).powi(2) * (x[1] - th[1]).powi(2)).sum::<f64>() / n as f64;
    assert!((e - 0.50005).abs() < 0.08, "E[a^2 b^2] = {e}");
    // about half the draws are narrow: |a| < 0.4 and |b| < 0.4 for the narrow one (4 sd)
    let narrow = xs.chunks_exact(2).filter(|x| (x[0] - th[0]).abs() < 0.4 && (x[1] - th[1]).abs() < 0.4).count();
    let frac = narrow as f64 / n as f64;
    // narrow: ~1; wide: P(|a|<0.4)^2 = 0.311^2 = 0.097 -> expected 0.5 + 0.5*0.097 = 0.548
    assert!((frac - 0.548).abs() < 0.02, "narrow fraction {frac}");
}

#[test]
fn slcp_points_mean_and_covariance() {
    let th = [0.7, -2.9, -1.0, -0.9, 0.6];
    let t = task("slcp");
    let n = 20_000;
    let xs = simulate_at(t.as_ref(), &th, n, 13);
    let (s1, s2, rho) = (1.0f64, 0.81f64, 0.6f64.tanh());
    let (v1, v2, c12) = (s1 * s1 + 1e-6, s2 * s2 + 1e-6, rho * s1 * s2);
    let (m, v) = moments(&xs, 8);
    for j in 0..4 {
        let (a, b) = (2 * j, 2 * j + 1);
        assert!((m[a] - th[0]).abs() < 5.0 * (v1 / n as f64).sqrt(), "point {j}");
        assert!((m[b] - th[1]).abs() < 5.0 * (v2 / n as f64).sqrt(), "point {j}");
        assert!((v[a] / v1 - 1.0).abs() < 0.06 && (v[b] / v2 - 1.0).abs() < 0.06, "point {j}: {} {}", v[a], v[b]);
        let c = cov(&xs, 8, a, b);
        assert!((c - c12).abs() < 0.03, "point {j}: cov {c} vs {c12}");
    }
    // the 4 points are independent
    assert!(cov(&xs, 8, 0, 2).abs() < 0.04 && cov(&xs, 8, 1, 7).abs() < 0.04);
}

#[test]
fn slcp_distractors_embeds_slcp_at_documented_positions() {
    let th = [0.7, -2.9, -1.0, -0.9, 0.6];
    let th2 = [-1.5, 2.0, 1.3, 0.4, -2.0];
    let n = 200;
    let a = simulate_at(task("slcp").as_ref(), &th, n, 21);
    let b = simulate_at(task("slcp_distractors").as_ref(), &th, n, 21);
    let c = simulate_at(task("slcp_distractors").as_ref(), &th2, n, 21);
    assert_eq!(SLCP_DISTRACTOR_POSITIONS, [22, 33, 23, 67, 42, 21, 16, 90]);
    for i in 0..n {
        let (xs, xd, xd2) = (&a[i * 8..i * 8 + 8], &b[i * 100..i * 100 + 100], &c[i * 100..i * 100 + 100]);
        for (k, &p) in SLCP_DISTRACTOR_POSITIONS.iter().enumerate() {
            assert_eq!(xd[p], xs[k], "row {i}, slcp value {k}");
        }
        // distractors do not depend on theta
        for p in 0..100 {
            if !SLCP_DISTRACTOR_POSITIONS.contains(&p) {
                assert_eq!(xd[p], xd2[p], "row {i}, position {p}");
            }
        }
    }
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn bernoulli_glm_summary_is_design_transpose_times_raw() {
    let (th, _) = observation("bernoulli_glm", 1);
    let xm = bernoulli_glm_design_matrix();
    assert_eq!(xm.len(), 1000);
    let n = 300;
    let s = simulate_at(task("bernoulli_glm").as_ref(), &th, n, 17);
    let r = simulate_at(task("bernoulli_glm_raw").as_ref(), &th, n, 17);
    for i in 0..n {
        let y = &r[i * 100..(i + 1) * 100];
        assert!(y.iter().all(|&v| v == 0.0 || v == 1.0));
        for j in 0..10 {
            let want: f64 = (0..100).map(|t| xm[t * 10 + j] * y[t]).sum();
            assert!((s[i * 10 + j] - want).abs() < 1e-12, "row {i}, x[{j}]");
        }
    }
    // spike probabilities: mean of y_t over many runs is sigma(X theta)_t
    let n = 4000;
    let r = simulate_at(task("bernoulli_glm_raw").as_ref(), &th, n, 19);
    let (m, _) = moments(&r, 100);
    for t in 0..100 {
        let psi: f64 = (0..10).map(|j| xm[t * 10 + j] * th[j]).sum();
        let p = 1.0 / (1.0 + (-psi).exp());
        assert!((m[t] - p).abs() < 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-3, "t = {t}");
    }
}

/// Classic RK4 with a fixed small step, used as an independent high-accuracy reference
/// for the ODE tasks (step 1e-3 day for SIR, 1e-4 for LV: global error ~ h^4, far below
/// the 1e-6 relative tolerance checked).
fn rk4<const N: usize>(f: impl Fn(&[f64; N]) -> [f64; N], y0: [f64; N], h: f64, times: &[f64]) -> Vec<[f64; N]> {
    let mut y = y0;
    let mut t = 0.0;
    let mut out = Vec::new();
    for &target in times {
        let steps = ((target - t) / h).round() as usize;
        for _ in 0..steps {
            let k1 = f(&y);
            let k2 = f(&std::array::from_fn(|i| y[i] + 0.5 * h * k1[i]));
            let k3 = f(&std::array::from_fn(|i| y[i] + 0.5 * h * k2[i]));
            let k4 = f(&std::array::from_fn(|i| y[i] + h * k3[i]));
            y = std::array::from_fn(|i| y[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
        }
        t += steps as f64 * h;
        out.push(y);
    }
    out
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn sir_ode_and_noise() {
    let (th, _) = observation("sir", 1);
    let (beta, gamma) = (th[0], th[1]);
    let n_pop = 1e6;
    let times: Vec<f64> = (0..10).map(|k| 17.0 * k as f64).collect();
    let reference = rk4(
        |y: &[f64; 3]| {
            let inf = beta * y[0] * y[1] / n_pop;
            [-inf, inf - gamma * y[1], gamma * y[1]]
        },
        [n_pop - 1.0, 1.0, 0.0],
        1e-3,
        &times,
    );
    let sol = sir_solve(beta, gamma).unwrap();
    for k in 0..10 {
        let want = reference[k][1];
        assert!((sol[k] - want).abs() < 1e-6 * want.max(1.0) + 1e-3, "I(t_{k}) = {} vs {want}", sol[k]);
    }
    // x_j ~ Binomial(1000, I(t_j)/N): mean 1000 p, variance 1000 p (1 - p)
    let n = 400;
    let xs = simulate_at(task("sir").as_ref(), &th, n, 23);
    let (m, _) = moments(&xs, 10);
    for j in 0..10 {
        let p = (sol[j] / n_pop).clamp(0.0, 1.0);
        let se = (1000.0 * p * (1.0 - p) / n as f64).sqrt();
        assert!((m[j] - 1000.0 * p).abs() <= 5.0 * se + 1e-9, "x[{j}] mean {} vs {}", m[j], 1000.0 * p);
        assert!(xs.chunks_exact(10).all(|x| x[j] >= 0.0 && x[j] <= 1000.0 && x[j].fract() == 0.0));
    }
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn lotka_volterra_ode_and_noise() {
    let (th, _) = observation("lotka_volterra", 1);
    let times: Vec<f64> = (0..10).map(|k| 2.1 * k as f64).collect();
    let reference = rk4(
        |y: &[f64; 2]| [th[0] * y[0] - th[1] * y[0] * y[1], -th[2] * y[1] + th[3] * y[0] * y[1]],
        [30.0, 1.0],
        1e-4,
        &times,
    );
    let sol = lotka_volterra_solve(&th).unwrap();
    for k in 0..10 {
        for (s, r) in [(sol[k], reference[k][0]), (sol[10 + k], reference[k][1])] {
            assert!((s - r).abs() < 1e-6 * r.abs() + 1e-7, "t_{k}: {s} vs {r}");
        }
    }
    // log x_i ~ N(log u_i, 0.1^2)
    let n = 400;
    let xs = simulate_at(task("lotka_volterra").as_ref(), &th, n, 29);
    let logs: Vec<f64> = xs.iter().map(|v| v.ln()).collect();
    let (m, v) = moments(&logs, 20);
    for i in 0..20 {
        assert!((m[i] - sol[i].ln()).abs() < 5.0 * 0.1 / (n as f64).sqrt(), "x[{i}]");
        assert!((v[i].sqrt() / 0.1 - 1.0).abs() < 0.2, "x[{i}] sd {}", v[i].sqrt());
    }
}

#[test]
fn failed_ode_solve_gives_nan_row() {
    for name in ["sir", "lotka_volterra"] {
        let t = task(name);
        let th = vec![f64::NAN; t.dim_theta()];
        let x = t.simulate(&th, 1);
        assert!(x.iter().all(|v| v.is_nan()), "{name}: {x:?}");
    }
}

// ------------------------------------------------------------------ determinism

#[test]
fn simulation_is_deterministic_and_batch_independent() {
    for name in TASK_NAMES {
        let t = task(name);
        let (th, x) = simulate_dataset(t.as_ref(), 100, 42);
        let (th2, x2) = simulate_dataset(t.as_ref(), 100, 42);
        assert_eq!(th.len(), 100 * t.dim_theta());
        assert_eq!(x.len(), 100 * t.dim_x());
        assert!(th == th2 && bits(&x) == bits(&x2), "{name}: not deterministic");
        // the first 10 rows simulated alone (single-threaded path) equal those of the batch
        let x3 = t.simulate(&th[..10 * t.dim_theta()], 42);
        assert_eq!(bits(&x3), bits(&x[..10 * t.dim_x()]), "{name}: depends on batching");
        let (_, x4) = simulate_dataset(t.as_ref(), 100, 43);
        assert_ne!(bits(&x), bits(&x4), "{name}: seed ignored");
    }
    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }
}

// ------------------------------------------------------------------ shipped observations

/// Simulates 1,000 x at the true θ of observation 1 and checks that every observed
/// coordinate is plausible: inside the simulated range widened by `widen` times its width,
/// and (when `z_max` is set) within `z_max` standard deviations of the simulated mean.
fn check_observation(name: &str, widen: f64, z_max: Option<f64>) {
    let (th, xo) = observation(name, 1);
    let t = task(name);
    assert_eq!((th.len(), xo.len()), (t.dim_theta(), t.dim_x()), "{name}");
    assert!(t.prior().in_support(&th), "{name}: true parameters outside the prior support");
    let n = 1000;
    let xs = simulate_at(t.as_ref(), &th, n, 1234);
    let d = t.dim_x();
    let (m, v) = moments(&xs, d);
    for j in 0..d {
        let col = xs.chunks_exact(d).map(|r| r[j]);
        let (lo, hi) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let w = (hi - lo) * widen;
        assert!(xo[j] >= lo - w && xo[j] <= hi + w, "{name}: x_o[{j}] = {} outside [{lo}, {hi}] (+{w})", xo[j]);
        if let Some(z) = z_max {
            let sd = v[j].sqrt();
            if sd > 0.0 {
                assert!(((xo[j] - m[j]) / sd).abs() < z, "{name}: x_o[{j}] = {} vs mean {} sd {sd}", xo[j], m[j]);
            } else {
                assert_eq!(xo[j], m[j], "{name}: x_o[{j}]");
            }
        }
    }
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_two_moons() {
    check_observation("two_moons", 0.1, Some(5.0));
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_gaussian_linear() {
    check_observation("gaussian_linear", 0.1, Some(5.0));
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_gaussian_linear_uniform() {
    check_observation("gaussian_linear_uniform", 0.1, Some(5.0));
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_gaussian_mixture() {
    check_observation("gaussian_mixture", 0.1, Some(5.0));
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_slcp() {
    check_observation("slcp", 0.1, Some(5.0));
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_slcp_distractors() {
    // The distractors are heavy-tailed (Student-t, df 2): only a widened range check; and the
    // 8 slcp positions hold exactly slcp's observation.
    check_observation("slcp_distractors", 1.0, None);
    let (_, xd) = observation("slcp_distractors", 1);
    let (_, xs) = observation("slcp", 1);
    for (k, &p) in SLCP_DISTRACTOR_POSITIONS.iter().enumerate() {
        assert_eq!(xd[p], xs[k], "slcp value {k}");
    }
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_bernoulli_glm() {
    check_observation("bernoulli_glm", 0.1, Some(5.0));
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_bernoulli_glm_raw() {
    // binary spike train whose sufficient statistics X^T y are bernoulli_glm's observation,
    // with a plausible spike count
    let (_, y) = observation("bernoulli_glm_raw", 1);
    let (th, xo) = observation("bernoulli_glm", 1);
    assert!(y.iter().all(|&v| v == 0.0 || v == 1.0));
    let xm = bernoulli_glm_design_matrix();
    for j in 0..10 {
        let s: f64 = (0..100).map(|t| xm[t * 10 + j] * y[t]).sum();
        assert!((s - xo[j]).abs() < 1e-4 * (1.0 + xo[j].abs()), "X^T y [{j}] = {s} vs {}", xo[j]);
    }
    let xs = simulate_at(task("bernoulli_glm_raw").as_ref(), &th, 1000, 77);
    let counts: Vec<f64> = xs.chunks_exact(100).map(|r| r.iter().sum()).collect();
    let (m, v) = moments(&counts, 1);
    let k: f64 = y.iter().sum();
    assert!(((k - m[0]) / v[0].sqrt()).abs() < 5.0, "spike count {k} vs {} ± {}", m[0], v[0].sqrt());
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_sir() {
    check_observation("sir", 0.1, Some(6.0));
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn observation_lotka_volterra() {
    check_observation("lotka_volterra", 0.1, Some(6.0));
}

// ------------------------------------------------------------------ prior boxes

/// `fmpe::prior` holds the one prior type: a uniform task prior's support is the
/// `BoxPrior` a model stores, and the box turns back into the same uniform prior.
#[test]
fn uniform_priors_have_a_box_and_the_box_is_the_prior() {
    for name in TASK_NAMES {
        let t = task_by_name(name).unwrap();
        let p = t.prior();
        match p.support_box() {
            Some(b) => {
                assert!(matches!(p, Prior::Uniform { .. }), "{name}");
                b.validate(t.dim_theta()).unwrap();
                assert_eq!(&b.to_prior(), p, "{name}");
                let theta = p.sample(50, &mut row_rng(1, 0));
                assert!(theta.chunks(t.dim_theta()).all(|r| b.contains(r) && p.in_support(r)), "{name}");
            }
            None => assert!(!matches!(p, Prior::Uniform { .. }), "{name}"),
        }
    }
}
