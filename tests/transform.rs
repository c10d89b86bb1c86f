//! Parameter transforms end to end: training statistics in θ' space, the Jacobian in
//! log_prob (against an analytic density and by integrating over the box), samples
//! mapped back (support and pushforward moments), and model.json round trips.
//!
//! The posterior tests use hand-made models whose network has zero weights and an
//! output bias `c`: the field is the constant `v = c`, so the flow maps θ₀ ~ N(0, I) to
//! z = θ₀ + c exactly, θ' = mean + std ⊙ z, θ = T⁻¹(θ'), and
//! `log q(θ) = Σ_j log N(z_j; c_j, 1) − log std_j + log |dθ'_j/dθ_j|` with
//! `z = (T(θ) − mean) / std`.
mod common;

use common::*;
use fmpe::model::{BoxPrior, Model, ModelMeta};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{GpuModel, Posterior, PosteriorOptions};

/// The posterior of `m` for `xo` on the shared test GPU.
fn posterior(m: &Model, xo: &[f64]) -> fmpe::Result<Posterior> {
    GpuModel::new(common::gpu_arc().clone(), m)?.posterior(xo)
}
use fmpe::reference;
use fmpe::train::{Control, Fmpe, TrainConfig};
use fmpe::transform::{Bijection, ThetaTransform};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A model with the constant field `c` and the given z-scoring and transform.
fn const_field_model(c: &[f64], mean: &[f64], std: &[f64], transform: ThetaTransform, prior: Option<BoxPrior>) -> Model {
    let d = c.len();
    let cfg = NetConfig { dim_theta: d, dim_x: 1, hidden: vec![8], conditioning: Conditioning::Concat, embedding: vec![] };
    let layout = cfg.layout();
    let mut params = vec![0f32; layout.len];
    for j in 0..d {
        params[layout.output.bias + j] = c[j] as f32;
    }
    let mut m = Model::with_params(cfg, params);
    m.theta_mean = mean.to_vec();
    m.theta_std = std.to_vec();
    m.info.transform = transform;
    m.info.prior = prior;
    m
}

/// The analytic log q(θ) of [`const_field_model`] for one row (f64 throughout, as
/// `log_prob` maps θ on the host).
fn analytic_log_q(m: &Model, c: &[f64], theta: &[f64]) -> f64 {
    let bij = m.info.transform.resolved(c.len());
    (0..c.len())
        .map(|j| {
            let (y, ld) = reference::transform::forward(&bij[j], theta[j]);
            let z = (y - m.theta_mean[j]) / m.theta_std[j];
            -0.5 * (z - c[j]).powi(2) - 0.5 * LN_2PI - m.theta_std[j].ln() + ld
        })
        .sum()
}

/// Logit on [−1, 2], log above 0, identity.
fn mixed() -> (Model, Vec<f64>) {
    let c = vec![0.2, 0.1, -0.3];
    let t = ThetaTransform::new(vec![Bijection::Logit { low: -1.0, high: 2.0 }, Bijection::Log { low: 0.0 }, Bijection::Identity]);
    (const_field_model(&c, &[0.3, -0.5, 1.0], &[0.8, 0.4, 2.0], t, None), c)
}

#[test]
fn log_prob_adds_the_jacobian_of_the_transform() {
    let (m, c) = mixed();
    let post = posterior(&m, &[0.0]).unwrap();
    // Points from the pushforward (host), then rows on / near the bounds and outside.
    let n = 200;
    let eps = rand_vec(n * 3, 7);
    let mut theta: Vec<f64> = Vec::new();
    let bij = m.info.transform.resolved(3);
    for r in 0..n {
        for j in 0..3 {
            let y = m.theta_mean[j] + m.theta_std[j] * (c[j] + 2.0 * eps[r * 3 + j]);
            theta.push(reference::transform::inverse(&bij[j], y).0);
        }
    }
    theta.extend([-1.0, 1e-3, 0.0, 2.0, 5.0, 0.0, -1.0 + 3e-6, 1e-20, 3.0]);
    let inside = theta.len() / 3;
    theta.extend([2.5, 1.0, 0.0, 0.5, 0.0, 0.0, 0.5, -0.1, 0.0]);
    let lp = post.log_prob(&theta, &PosteriorOptions::default()).unwrap();
    let want: Vec<f64> = theta.chunks(3).take(inside).map(|row| analytic_log_q(&m, &c, row)).collect();
    assert_close("log q with the transform's Jacobian", &lp[..inside], &want, 1e-3, 1e-5);
    let worst = |k: usize| lp[..k].iter().zip(&want).fold(0f64, |a, (x, y)| a.max((x - y).abs()));
    eprintln!(
        "log_prob with logit/log/identity: max |GPU − analytic| = {:.2e} over {n} interior points, {:.2e} with the {} near-bound ones (|log q| up to {:.0})",
        worst(n),
        worst(inside),
        inside - n,
        want.iter().fold(0f64, |a, v| a.max(v.abs()))
    );
    // Outside the transform's support: −∞, also when ignoring the (absent) box support.
    assert!(lp[inside..].iter().all(|v| *v == f64::NEG_INFINITY), "{:?}", &lp[inside..]);
    let lp2 = post.log_prob(&theta, &PosteriorOptions { reject_outside_prior: false, ..Default::default() }).unwrap();
    assert!(lp2[inside..].iter().all(|v| *v == f64::NEG_INFINITY), "{:?}", &lp2[inside..]);
    assert_eq!(lp2[..inside], lp[..inside]);

    // sample_and_log_prob: T⁻¹ and the Jacobian at the samples, from one forward solve.
    let (s, lq, rep) = post.sample_and_log_prob(300, &PosteriorOptions { seed: 3, ..Default::default() }).unwrap().into_parts();
    let lq = lq.unwrap();
    assert_eq!(rep.returned, 300);
    let want: Vec<f64> = s.chunks(3).map(|row| analytic_log_q(&m, &c, row)).collect();
    assert_close("sample_and_log_prob log q", &lq, &want, 1e-3, 1e-5);
    let s2 = post.sample(300, &PosteriorOptions { seed: 3, ..Default::default() }).unwrap().into_parts().0;
    let ds = s.iter().zip(&s2).fold(0f64, |a, (x, y)| a.max((x - y).abs() / (1.0 + y.abs())));
    assert!(ds <= 1e-5, "sample_and_log_prob's samples differ from sample's by {ds}");
}

#[test]
fn transformed_density_integrates_to_one_over_the_box() {
    let prior = BoxPrior { low: vec![-1.0, 0.0], high: vec![1.0, 3.0] };
    let c = [0.3, -0.2];
    let m = const_field_model(&c, &[0.2, -0.3], &[0.9, 0.7], ThetaTransform::from_box(&prior), Some(prior.clone()));
    let post = posterior(&m, &[0.0]).unwrap();
    // Midpoint rule on a k × k grid over the box.
    let k = 40;
    let (h0, h1) = (2.0 / k as f64, 3.0 / k as f64);
    let mut grid = Vec::with_capacity(2 * k * k);
    for a in 0..k {
        for b in 0..k {
            grid.push(-1.0 + (a as f64 + 0.5) * h0);
            grid.push((b as f64 + 0.5) * h1);
        }
    }
    let t0 = std::time::Instant::now();
    let lp = post.log_prob(&grid, &PosteriorOptions::default()).unwrap();
    let mass: f64 = lp.iter().map(|l| l.exp()).sum::<f64>() * h0 * h1;
    let exact: f64 = grid.chunks(2).map(|r| analytic_log_q(&m, &c, r).exp()).sum::<f64>() * h0 * h1;
    eprintln!("∫ q over the box on a {k}×{k} grid: GPU {mass:.5}, analytic density on the same grid {exact:.5} ({:.1} s)", t0.elapsed().as_secs_f64());
    assert!((mass - 1.0).abs() <= 5e-3, "the transformed density integrates to {mass}");
    assert!((mass - exact).abs() <= 1e-4, "GPU {mass} vs analytic {exact}");
    // Outside the box: −∞ whether or not the box support is ignored.
    for ignore_support in [false, true] {
        let lp = post.log_prob(&[1.2, 1.0, 0.0, -0.5], &PosteriorOptions { reject_outside_prior: !ignore_support, ..Default::default() }).unwrap();
        assert!(lp.iter().all(|v| *v == f64::NEG_INFINITY), "{lp:?}");
    }
    // Samples need no rejection.
    let (s, _, rep) = post.sample(500, &PosteriorOptions::default()).unwrap().into_parts();
    assert_eq!((rep.returned, rep.proposed), (500, 500));
    assert!(s.chunks(2).all(|r| prior.contains(r)));
}

/// E[f(T⁻¹(mean + std (c + ε)))] for ε ~ N(0, 1), by the trapezoid rule on [−10, 10].
fn pushforward_moment(b: &Bijection, mean: f64, std: f64, c: f64, f: impl Fn(f64) -> f64) -> f64 {
    let steps = 20_000;
    let h = 20.0 / steps as f64;
    (0..=steps)
        .map(|i| {
            let e = -10.0 + i as f64 * h;
            let w = if i == 0 || i == steps { 0.5 } else { 1.0 };
            w * h * (-0.5 * e * e - 0.5 * LN_2PI).exp() * f(reference::transform::inverse(b, mean + std * (c + e)).0)
        })
        .sum()
}

#[test]
fn samples_are_mapped_back_with_the_pushforward_moments() {
    let (m, c) = mixed();
    let post = posterior(&m, &[0.0]).unwrap();
    let n = 4000;
    let (s, _, rep) = post.sample(n, &PosteriorOptions { seed: 11, ..Default::default() }).unwrap().into_parts();
    assert_eq!(rep.returned, n);
    let bij = m.info.transform.resolved(3);
    for row in s.chunks(3) {
        assert!((-1.0..=2.0).contains(&row[0]) && row[1] > 0.0, "sample outside the support: {row:?}");
    }
    for j in 0..3 {
        let col: Vec<f64> = s.chunks(3).map(|r| r[j]).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let (mu, sd, cj) = (m.theta_mean[j], m.theta_std[j], c[j]);
        let e1 = pushforward_moment(&bij[j], mu, sd, cj, |v| v);
        let e2 = pushforward_moment(&bij[j], mu, sd, cj, |v| v * v);
        let (em, ev) = (e1, e2 - e1 * e1);
        // Closed forms where they exist: log-normal and normal.
        if let Bijection::Log { .. } = bij[j] {
            let (lm, ls) = (mu + sd * cj, sd);
            assert!((em - (lm + 0.5 * ls * ls).exp()).abs() < 1e-6 && (ev - ((ls * ls).exp() - 1.0) * (2.0 * lm + ls * ls).exp()).abs() < 1e-6);
        }
        if bij[j] == Bijection::Identity {
            assert!((em - (mu + sd * cj)).abs() < 1e-6 && (ev - sd * sd).abs() < 1e-6);
        }
        let se_m = (ev / n as f64).sqrt();
        let e4 = pushforward_moment(&bij[j], mu, sd, cj, |v| (v - em).powi(4));
        let se_v = ((e4 - ev * ev) / n as f64).sqrt();
        eprintln!(
            "component {} ({}): sample mean {mean:.4} vs {em:.4} (z = {:.2}), variance {var:.4} vs {ev:.4} (z = {:.2})",
            j + 1,
            bij[j],
            (mean - em) / se_m,
            (var - ev) / se_v
        );
        assert!((mean - em).abs() <= 4.0 * se_m, "component {j}: mean {mean} vs {em}");
        assert!((var - ev).abs() <= 4.0 * se_v, "component {j}: variance {var} vs {ev}");
    }
}

#[test]
fn training_z_scores_the_transformed_theta_and_rejects_data_outside_the_support() {
    let gpu = common::gpu();
    let n = 300;
    let u = rand_vec(2 * n, 21);
    let mut theta: Vec<f64> = (0..n).flat_map(|r| [u[2 * r], (1.5 * u[2 * r + 1]).exp()]).collect();
    theta[0] = -1.0; // on the box bound: clamped
    theta[2] = 1.0;
    let x: Vec<f64> = theta.chunks(2).map(|r| r[0] + 0.1 * r[1]).collect();
    let t = ThetaTransform::new(vec![Bijection::Logit { low: -1.0, high: 1.0 }, Bijection::Log { low: 0.0 }]);
    let cfg = NetConfig { dim_theta: 2, dim_x: 1, hidden: vec![8], conditioning: Conditioning::Concat, embedding: vec![] };
    let tc = TrainConfig { max_epochs: 1, batch_size: 64, validation_fraction: 0.0, ..Default::default() };
    let fit = |theta: &[f64], meta: ModelMeta| {
        Fmpe::new(gpu, cfg.clone(), meta).append_simulations(theta, &x)?.train(&tc, &mut |_| Control::Continue)
    };
    let meta = ModelMeta { transform: t.clone(), ..Default::default() };
    let model = fit(&theta, meta).unwrap();
    assert_eq!(model.info.transform, t);
    let (y, _) = reference::transform::forward_rows(&t.components, &theta.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>());
    let (mean, std) = reference::zscore_stats(&y, n, 2);
    eprintln!("θ' statistics: GPU mean {:?} std {:?}, reference {mean:?} {std:?}", model.theta_mean, model.theta_std);
    assert_close("mean of θ'", &model.theta_mean, &mean, 1e-4, 1e-4);
    assert_close("std of θ'", &model.theta_std, &std, 1e-4, 1e-4);

    // Outside the box, or at the log's bound: an error naming the row.
    for (row, col, v) in [(4usize, 0usize, 1.5), (9, 1, 0.0)] {
        let mut bad = theta.clone();
        bad[row * 2 + col] = v;
        let meta = ModelMeta { transform: t.clone(), ..Default::default() };
        let err = fit(&bad, meta).unwrap_err().to_string();
        assert!(err.contains(&format!("theta row {}", row + 1)) && err.contains("without the parameter transform"), "{err}");
        assert!(!err.contains("--"), "the library names no flag: {err}");
    }
    // A logit on other bounds than the stored prior box is refused before training.
    let meta = ModelMeta {
        transform: t.clone(),
        prior: Some(BoxPrior { low: vec![-2.0, 0.0], high: vec![2.0, 100.0] }),
        ..Default::default()
    };
    let err = fit(&theta, meta).unwrap_err();
    assert!(matches!(err, fmpe::Error::InvalidOption { name: "transform", .. }), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("component 1") && err.contains("prior box is [-2, 2]"), "{err}");
    // No transform: the same data trains in θ (stats of θ itself).
    let plain = fit(&theta, ModelMeta::default()).unwrap();
    assert!(plain.info.transform.is_identity() && plain.info.transform.components.len() == 2);
    let (mean, _) = reference::zscore_stats(&theta, n, 2);
    assert_close("mean of θ", &plain.theta_mean, &mean, 1e-4, 1e-4);
}

#[test]
fn model_json_keeps_the_transform_and_old_models_load_as_identity() {
    let dir = std::env::temp_dir().join(format!("fmpe-transform-model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (m, _) = mixed();
    m.save(&dir).unwrap();
    let back = Model::load(&dir).unwrap();
    assert_eq!((&back.info, &back.params), (&m.info, &m.params));
    let path = dir.join("model.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["transform"][0], serde_json::json!({"kind": "logit", "low": -1.0, "high": 2.0}));
    assert_eq!(json["transform"][1], serde_json::json!({"kind": "log", "low": 0.0}));
    assert_eq!(json["transform"][2], serde_json::json!({"kind": "identity"}));

    // Version 2 is written; a newer version is refused with a clear message.
    assert_eq!(json["format_version"], 2);
    let mut newer = json.clone();
    newer["format_version"] = serde_json::json!(3);
    std::fs::write(&path, serde_json::to_string_pretty(&newer).unwrap()).unwrap();
    let err = Model::load(&dir).unwrap_err().to_string();
    assert!(err.contains("model.json") && err.contains("format version 3"), "{err}");

    // A model.json from before transforms: version 1, no "transform" key.
    json.as_object_mut().unwrap().remove("transform");
    json["format_version"] = serde_json::json!(1);
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let old = Model::load(&dir).unwrap();
    assert!(old.info.transform.is_identity() && old.info.transform.components.is_empty());
    assert_eq!(old.params, m.params);

    // A broken transform names model.json.
    json["transform"] = serde_json::json!([{"kind": "logit", "low": 1.0, "high": 1.0}, {"kind": "identity"}, {"kind": "identity"}]);
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let err = Model::load(&dir).unwrap_err().to_string();
    assert!(err.contains("model.json") && err.contains("component 1"), "{err}");
    json["transform"] = serde_json::json!([{"kind": "logit", "low": -1.0, "high": 1.0}]);
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let err = Model::load(&dir).unwrap_err().to_string();
    assert!(err.contains("model.json") && err.contains("1 components"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn transforms_for_task_priors() {
    use fmpe::tasks::task_by_name;
    let kinds = |name: &str| -> Vec<String> {
        let t = ThetaTransform::for_prior(task_by_name(name).unwrap().prior());
        t.resolved(task_by_name(name).unwrap().dim_theta())
            .iter()
            .map(|b| serde_json::to_value(b).unwrap()["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds("two_moons"), ["logit", "logit"]);
    assert_eq!(kinds("sir"), ["log", "log"]);
    assert_eq!(kinds("lotka_volterra"), ["log"; 4]);
    assert_eq!(kinds("gaussian_linear"), ["identity"; 10]);
    assert_eq!(
        ThetaTransform::for_prior(task_by_name("gaussian_mixture").unwrap().prior()).components[1],
        Bijection::Logit { low: -10.0, high: 10.0 }
    );
}

#[test]
fn kernel_bounds_round_inward_and_a_box_logit_covers_its_prior() {
    // 0.3 and 0.7 are not f32 numbers: the kernel's bounds must lie inside the f64 box, so
    // T⁻¹ saturated onto a bound still passes the prior check.
    let b = BoxPrior { low: vec![0.3, -1.0], high: vec![0.7, 1.0] };
    let t = ThetaTransform::from_box(&b);
    let table = t.gpu_table(2);
    for j in 0..2 {
        let (lo, hi, w) = (table[4 * j + 1] as f64, table[4 * j + 2] as f64, table[4 * j + 3] as f64);
        assert!(lo >= b.low[j] && hi <= b.high[j] && lo < hi, "component {j}: [{lo}, {hi}]");
        assert!(b.low[j] - lo > -1e-7 && b.high[j] - hi < 1e-7, "component {j}: rounded too far");
        assert!((w - (hi - lo)).abs() <= 1e-7 * (hi - lo));
    }
    assert!(b.contains(&[table[1] as f64, table[5] as f64]) && b.contains(&[table[2] as f64, table[6] as f64]));
    assert!(t.covers(&b));
    assert!(!t.covers(&BoxPrior { low: vec![0.3, -2.0], high: vec![0.7, 1.0] }));
    assert!(!ThetaTransform::identity().covers(&b));
    // A width that overflows f32 is refused.
    let huge = ThetaTransform::from_box(&BoxPrior { low: vec![-3e38], high: vec![3e38] });
    assert!(huge.validate(1).unwrap_err().to_string().contains("finite width"));
}

#[test]
fn x_transform_maps_the_observation_and_checks_its_domain() {
    use fmpe::transform::XTransform;
    use rand::SeedableRng;
    // Host mapping and its errors.
    let mut x = vec![0.0, 1.0, 9.0, f64::NAN];
    XTransform::Log1p.apply(&mut x, 2).unwrap();
    assert_eq!(&x[..3], &[0.0, 2f64.ln(), 10f64.ln()]);
    assert!(x[3].is_nan());
    let err = XTransform::Log1p.apply(&mut [0.5, 2.0, -1.0, 3.0], 2).unwrap_err().to_string();
    assert!(err.contains("x row 2, column 1") && err.contains("x > -1"), "{err}");
    assert!("bogus".parse::<XTransform>().is_err());

    // A model with log1p sees log1p(x_o): its samples equal those of the same network
    // without the transform given log1p(x_o) (same seed, same steps).
    let cfg = NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![16], conditioning: Conditioning::Concat, embedding: vec![] };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let params = fmpe::net::init_params(&cfg, &mut rng);
    let plain = Model::with_params(cfg.clone(), params);
    let mut logx = plain.clone();
    logx.info.x_transform = XTransform::Log1p;
    let x_o = [0.5, 3.0, 20.0];
    let x_log: Vec<f64> = x_o.iter().map(|v: &f64| v.ln_1p()).collect();
    let opts = PosteriorOptions { seed: 3, solver: fmpe::posterior::Solver::Rk4 { steps: 8 }, ..Default::default() };
    let a = posterior(&logx, &x_o).unwrap().sample(64, &opts).unwrap().into_parts().0;
    let b = posterior(&plain, &x_log).unwrap().sample(64, &opts).unwrap().into_parts().0;
    let c = posterior(&plain, &x_o).unwrap().sample(64, &opts).unwrap().into_parts().0;
    assert_eq!(a, b);
    assert!(a.iter().zip(&c).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max) > 1e-3, "x does not reach the network");
    let err = posterior(&logx, &[0.5, -1.5, 2.0]).err().unwrap().to_string();
    assert!(err.contains("observation") && err.contains("column 2"), "{err}");

    // model.json keeps it; identity is not written (older readers stay compatible).
    let dir = std::env::temp_dir().join(format!("fmpe-xtransform-model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    logx.save(&dir).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(json["x_transform"], "log1p");
    assert_eq!(Model::load(&dir).unwrap().info.x_transform, XTransform::Log1p);
    std::fs::remove_dir_all(&dir).unwrap();
    plain.save(&dir).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    assert!(json.get("x_transform").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
