//! Model selection by held-out NLL (`fmpe::select`): every candidate is trained as a
//! plain run of its configuration would be, scored on the same validation pairs, and
//! the lowest score is kept and recorded.
mod common;

use fmpe::metrics::{
    held_out_nll, held_out_prior_mass, held_out_reflection, LOW_MASS, MIRROR_RATIO_FLOOR, REFLECTION_MAX_PAIRS, REFLECT_MARGIN_SE,
};
use fmpe::model::{BoxPrior, ModelMeta};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::policy::{Configuration, Resolved};
use fmpe::posterior::{GpuModel, PosteriorOptions};
use fmpe::select::{fit_candidates, METRIC};
use fmpe::train::{Control, Fmpe, Simulations, TrainConfig, Trainer, TrainingReflection};
use fmpe::transform::{ThetaTransform, XTransform};
use fmpe::Error;

/// Standard normal draws (Box–Muller over `common::rand_vec`).
fn normals(n: usize, seed: u64) -> Vec<f64> {
    let u = common::rand_vec(2 * n, seed);
    u.chunks(2)
        .map(|r| {
            let (u1, u2) = ((r[0] + 1.0) / 2.0, (r[1] + 1.0) / 2.0);
            (-2.0 * u1.max(1e-300).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// θ ~ N(0, 1), x = θ + 0.3 ε: the posterior is N(x / 1.09, 0.09 / 1.09).
fn data(n: usize) -> (Vec<f64>, Vec<f64>) {
    let theta = normals(n, 11);
    let x = theta.iter().zip(normals(n, 12)).map(|(t, e)| t + 0.3 * e).collect();
    (theta, x)
}

fn candidate(hidden: Vec<usize>, epochs: usize, learning_rate: f64, transform: ThetaTransform) -> Configuration {
    let resolved = Resolved {
        net: NetConfig { dim_theta: 1, dim_x: 1, hidden, conditioning: Conditioning::Concat, embedding: vec![] },
        train: TrainConfig { max_epochs: epochs, patience: 100, batch_size: 64, learning_rate, seed: 3, validation_fraction: 0.2, ..Default::default() },
    };
    Configuration { resolved, transform }
}

/// A box prior [−6, 6] (wide enough for every draw of N(0, 1) here) and its logit.
fn boxed() -> (ModelMeta, ThetaTransform) {
    let prior = BoxPrior { low: vec![-6.0], high: vec![6.0] };
    let logit = ThetaTransform::from_box(&prior);
    (ModelMeta { prior: Some(prior), ..Default::default() }, logit)
}

fn sims(theta: &[f64], x: &[f64]) -> Simulations {
    let mut s = Simulations::empty(1, 1);
    s.append(theta, x, XTransform::Identity).unwrap();
    s
}

#[test]
fn the_lowest_held_out_nll_is_kept_and_equals_a_plain_run() {
    let gpu = common::gpu_arc();
    let (theta, x) = data(1_000);
    let s = sims(&theta, &x);
    // A barely trained candidate without the transform first, a trained one in the
    // logit second: the second must win on its score, not by its position, and bring
    // its transform along.
    let (meta, logit) = boxed();
    let cands = [candidate(vec![8], 1, 1e-5, ThetaTransform::identity()), candidate(vec![32, 32], 40, 3e-3, logit.clone())];
    let mut seen = Vec::new();
    let model = fit_candidates(gpu, &s, &meta, &cands, &mut |i, p| {
        seen.push((i, p.record.epoch));
        Control::Continue
    })
    .unwrap();
    // Every epoch of every candidate was reported, in order.
    assert_eq!(seen.iter().filter(|s| s.0 == 0).count(), 1);
    assert_eq!(seen.iter().filter(|s| s.0 == 1).map(|s| s.1).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    let sel = model.info.selection.as_ref().expect("a selection is recorded");
    assert_eq!(sel.metric, METRIC);
    assert_eq!(sel.candidates.len(), 2);
    let nll: Vec<f64> = sel.candidates.iter().map(|c| c.held_out_nll.unwrap()).collect();
    eprintln!("held-out NLL of the candidates: {nll:?}");
    assert!(nll[1] < nll[0] - 0.5, "the trained candidate scores far better: {nll:?}");
    assert_eq!(sel.chosen, 1);
    assert!(sel.reflection.is_none(), "the kept logit keeps every sample in the box: no sampling choice to make");
    // The candidate without the logit is sampled with rejection to the box: its score
    // includes the flow's log mass in the box (≈ 0 for a box of ±6 σ); the logit's
    // keeps all its mass there.
    let lm = sel.candidates[0].log_prior_mass.expect("rejected to the box: mass estimated");
    assert!((-0.5..=0.0).contains(&lm), "log prior mass {lm}");
    let low = sel.candidates[0].low_mass_share.expect("rejected to the box: low-mass share recorded");
    assert!((0.0..=0.1).contains(&low), "a box of ±6 σ: almost no observation has under 5 % inside ({low})");
    assert_eq!((sel.candidates[1].log_prior_mass, sel.candidates[1].low_mass_share), (None, None));
    assert_eq!(sel.candidates[1].hidden, vec![32, 32]);
    assert_eq!(model.info.net.hidden, vec![32, 32]);
    assert_eq!((&model.info.transform, &sel.candidates[0].transform), (&logit, &ThetaTransform::identity()));
    assert_eq!(model.info.prior, meta.prior);
    assert_eq!(model.info.held_out.as_ref().unwrap().nll, nll[1]);
    // The kept model is the plain run of its configuration, bit for bit.
    let (net, tc) = (&cands[1].resolved.net, &cands[1].resolved.train);
    let plain = Fmpe::new(gpu.clone(), net.clone(), ModelMeta { transform: logit.clone(), ..meta.clone() })
        .append_simulations(&theta, &x)
        .unwrap()
        .train(tc, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(plain.params, model.params);
    // Its recorded score is the held-out NLL on the trainer's validation rows, and the
    // trained model's density is close to the analytic posterior's entropy-level NLL:
    // E[−log N(θ | x / 1.09, 0.0826)] = ½ log(2πe · 0.0826) ≈ 0.173 nats.
    let rows = Trainer::new(gpu, net.clone(), tc.clone(), &theta, &x, None).unwrap().validation_rows().to_vec();
    let again = held_out_nll(&GpuModel::new(gpu.clone(), &model).unwrap(), &theta, &x, &rows).unwrap();
    assert_eq!(again.nll, nll[1]);
    assert!((nll[1] - 0.173).abs() < 0.25, "held-out NLL {} against the analytic 0.173", nll[1]);
}

#[test]
fn one_candidate_is_a_plain_run_and_bad_lists_are_named() {
    let gpu = common::gpu_arc();
    let (theta, x) = data(300);
    let s = sims(&theta, &x);
    let one = [candidate(vec![8], 3, 1e-3, ThetaTransform::identity())];
    let model = fit_candidates(gpu, &s, &ModelMeta::default(), &one, &mut |_, _| Control::Continue).unwrap();
    assert!(model.info.selection.is_none() && model.info.held_out.is_none());
    let e = fit_candidates(gpu, &s, &ModelMeta::default(), &[], &mut |_, _| Control::Continue).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "candidates", .. }), "{e:?}");
    let mut wrong = candidate(vec![8], 3, 1e-3, ThetaTransform::identity());
    wrong.resolved.net.dim_x = 2;
    let e = fit_candidates(gpu, &s, &ModelMeta::default(), &[one[0].clone(), wrong], &mut |_, _| Control::Continue).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "candidates", .. }), "{e:?}");
    assert!(e.to_string().contains("dim x 2"), "{e}");
    // A logit that does not lie on the prior box is refused before any training.
    let (meta, _) = boxed();
    let off_box = candidate(vec![8], 3, 1e-3, ThetaTransform::from_box(&BoxPrior { low: vec![-5.0], high: vec![5.0] }));
    let e = fit_candidates(gpu, &s, &meta, &[one[0].clone(), off_box], &mut |_, _| panic!("no training")).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "transform", .. }), "{e:?}");
}

/// A flow trained without a transform on `theta`, `x` (1 × 1): the untruncated
/// posterior, for the checks against a box it leaks out of.
fn untransformed_flow(theta: &[f64], x: &[f64]) -> GpuModel {
    let gpu = common::gpu_arc();
    let cand = candidate(vec![32, 32], 40, 3e-3, ThetaTransform::identity());
    let (net, tc) = (&cand.resolved.net, &cand.resolved.train);
    let model = Fmpe::new(gpu.clone(), net.clone(), ModelMeta::default())
        .append_simulations(theta, x)
        .unwrap()
        .train(tc, &mut |_| Control::Continue)
        .unwrap();
    GpuModel::new(gpu.clone(), &model).unwrap()
}

#[test]
fn the_prior_mass_matches_the_flow_density_integrated_over_the_box() {
    // A flow trained without a transform, and a box it leaks out of: [−0.3, 0.3] holds
    // about half of the posterior N(x / 1.09, 0.287²) for |x| < 0.5; [0.6, 1.5] holds
    // under 1 % of it at x = −0.5 and about 30 % at x = 0.5, so the share of
    // observations with under 5 % inside is neither 0 nor 1.
    let (theta, x) = data(1_000);
    let gm = untransformed_flow(&theta, &x);
    let rows: Vec<usize> = (0..x.len()).filter(|&r| x[r].abs() < 0.5).take(40).collect();
    assert_eq!(rows.len(), 40);
    // The mass of each observation from the flow's own density, by the midpoint rule
    // over the box.
    let quadrature = |b: &BoxPrior| -> Vec<f64> {
        let k = 120;
        let (lo, w) = (b.low[0], b.high[0] - b.low[0]);
        let h = w / k as f64;
        let grid: Vec<f64> = (0..k).map(|i| lo + (i as f64 + 0.5) * h).collect();
        let th: Vec<f64> = rows.iter().flat_map(|_| grid.iter().copied()).collect();
        let xs: Vec<f64> = rows.iter().flat_map(|&r| std::iter::repeat_n(x[r], k)).collect();
        let opts = PosteriorOptions { reject_outside_prior: false, ..Default::default() };
        let lq = gm.log_prob_pairs(&th, &xs, &opts).unwrap();
        lq.chunks(k).map(|c| c.iter().map(|v| v.exp()).sum::<f64>() * h).collect()
    };
    let b = BoxPrior { low: vec![-0.3], high: vec![0.3] };
    let est = held_out_prior_mass(&gm, &b, &x, &rows, 256, 7).unwrap();
    let quad = quadrature(&b).iter().map(|m| m.ln()).sum::<f64>() / rows.len() as f64;
    eprintln!("mean log mass in the box: sampled {:.4}, integrated {quad:.4}", est.mean_log);
    assert!(quad < -0.2, "the flow leaks out of the box: {quad}");
    assert!((est.mean_log - quad).abs() < 0.05, "sampled {} against integrated {quad}", est.mean_log);
    assert_eq!((est.observations, est.low_share), (40, 0.0), "about half the mass inside everywhere");
    // A box in the tail: the share of observations with under 5 % inside.
    let tail = BoxPrior { low: vec![0.6], high: vec![1.5] };
    let est = held_out_prior_mass(&gm, &tail, &x, &rows, 256, 7).unwrap();
    let quad = quadrature(&tail);
    let share = quad.iter().filter(|&&m| m < LOW_MASS).count() as f64 / rows.len() as f64;
    eprintln!("share under {LOW_MASS}: sampled {:.3}, integrated {share:.3}", est.low_share);
    assert!(share > 0.2 && share < 0.8, "the tail box splits the observations: {share}");
    assert!((est.low_share - share).abs() <= 0.151, "sampled {} against integrated {share}", est.low_share);
    assert!(held_out_prior_mass(&gm, &b, &x, &[], 64, 7).is_err());
    assert!(held_out_prior_mass(&gm, &b, &x, &rows, 0, 7).is_err());
}

/// The held-out choice between rejection and reflection, against a host computation
/// of the same quantities and against two cases with a known answer. The flow is the
/// untruncated posterior N(x / 1.09, 0.287²), which leaks out of the box [−0.3, 1.5]
/// at its lower bound (the upper one is over 3.6 σ away, so the images across it, which
/// the comparison leaves out, carry almost nothing):
/// held-out θ drawn from the flow and rejected to the box follow the rejection density
/// exactly, so rejection must be kept; θ drawn from the flow and folded into the box
/// follow the reflected density exactly, so reflection must be chosen.
#[test]
fn reflection_is_chosen_where_the_folded_density_is_the_truth() {
    let (theta, x) = data(1_000);
    let gm = untransformed_flow(&theta, &x);
    let b = BoxPrior { low: vec![-0.3], high: vec![1.5] };
    let rows: Vec<usize> = (0..x.len()).filter(|&r| x[r].abs() < 0.5).take(REFLECTION_MAX_PAIRS).collect();
    let xs: Vec<f64> = rows.iter().map(|&r| x[r]).collect();
    let draw = |reject: bool, seed: u64| -> Vec<f64> {
        let opts = PosteriorOptions { reject_outside_prior: reject, reflect_outside_prior: Some(false), seed, ..Default::default() };
        let mut th = theta.clone();
        for (s, &r) in gm.sample_batched(&xs, 1, &opts).unwrap().iter().zip(&rows) {
            th[r] = s.row(0)[0];
        }
        th
    };
    // Rejection is the truth.
    let rejected = draw(true, 21);
    let kept = held_out_reflection(&gm, &b, &rejected, &x, &rows, 256, 7).unwrap();
    eprintln!("rejection is the truth: {kept:?}");
    assert!(!kept.reflect && kept.rejected_nll < kept.reflected_nll, "{kept:?}");
    assert_eq!(kept.pairs, rows.len());
    // Reflection is the truth.
    let mut folded = draw(false, 22);
    for &r in &rows {
        b.reflect(&mut folded[r..r + 1]);
    }
    let refl = held_out_reflection(&gm, &b, &folded, &x, &rows, 256, 7).unwrap();
    eprintln!("reflection is the truth: {refl:?}");
    assert!(refl.reflect && refl.reflected_nll < refl.rejected_nll - REFLECT_MARGIN_SE * refl.difference_se, "{refl:?}");
    // The same numbers from the public pieces: M(x) from 256 draws with seed 7 (the
    // same draws, sample by sample), log q at θ and at its mirror across the nearer bound.
    let free = PosteriorOptions { reject_outside_prior: false, seed: 7, ..Default::default() };
    let mass: Vec<f64> = gm.sample_batched(&xs, 256, &free).unwrap().iter().map(|s| (0..256).filter(|&i| b.contains(s.row(i))).count() as f64 / 256.0).collect();
    let th: Vec<f64> = rows.iter().map(|&r| folded[r]).collect();
    let mirror: Vec<f64> = th.iter().map(|&v| if 1.5 - v < v + 0.3 { 3.0 - v } else { -0.6 - v }).collect();
    let lq = gm.log_prob_pairs(&th, &xs, &free).unwrap();
    let lm = gm.log_prob_pairs(&mirror, &xs, &free).unwrap();
    let rej: Vec<f64> = (0..rows.len()).map(|i| -lq[i] + mass[i].max(0.5 / 256.0).ln()).collect();
    let diff: Vec<f64> = (0..rows.len()).map(|i| -(lq[i].exp() + lm[i].exp()).ln() - rej[i]).collect();
    let n = rows.len() as f64;
    let mean = diff.iter().sum::<f64>() / n;
    let se = (diff.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
    let rej_mean = rej.iter().sum::<f64>() / n;
    assert!((refl.rejected_nll - rej_mean).abs() < 1e-9, "{} vs {rej_mean}", refl.rejected_nll);
    assert!((refl.reflected_nll - (rej_mean + mean)).abs() < 1e-9, "{} vs {}", refl.reflected_nll, rej_mean + mean);
    assert!((refl.difference_se - se).abs() < 1e-9, "{} vs {se}", refl.difference_se);
    assert!(held_out_reflection(&gm, &b, &folded, &x, &[], 256, 7).is_err());
    assert!(held_out_reflection(&gm, &b, &folded, &x, &rows, 0, 7).is_err());
}

/// In two dimensions the comparison also sums the image mirrored in both components
/// where each one-component image carries at least `MIRROR_RATIO_FLOOR` of the point's
/// density: checked against the same sum from `log_prob_pairs` on a random flow that
/// leaks out of a box at a corner.
#[test]
fn reflection_sums_the_corner_image_where_both_components_leak() {
    let gpu = common::gpu_arc();
    let cfg = NetConfig { dim_theta: 2, dim_x: 1, hidden: vec![16, 16], conditioning: Conditioning::Concat, embedding: vec![] };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    let model = fmpe::model::Model::with_params(cfg.clone(), fmpe::net::init_params(&cfg, &mut rng));
    let gm = GpuModel::new(gpu.clone(), &model).unwrap();
    let b = BoxPrior { low: vec![-0.2, -0.5], high: vec![1.5, 0.1] };
    let n = 40;
    let u = common::rand_vec(3 * n, 9);
    let theta: Vec<f64> = u[..2 * n].chunks(2).flat_map(|c| [-0.2 + 1.7 * (c[0] + 1.0) / 2.0, -0.5 + 0.6 * (c[1] + 1.0) / 2.0]).collect();
    let x: Vec<f64> = u[2 * n..].to_vec();
    let rows: Vec<usize> = (0..n).collect();
    let got = held_out_reflection(&gm, &b, &theta, &x, &rows, 128, 3).unwrap();
    let free = PosteriorOptions { reject_outside_prior: false, seed: 3, ..Default::default() };
    let mass: Vec<f64> = gm.sample_batched(&x, 128, &free).unwrap().iter().map(|s| (0..128).filter(|&i| b.contains(s.row(i))).count() as f64 / 128.0).collect();
    let mirror = |v: f64, j: usize| if b.high[j] - v < v - b.low[j] { 2.0 * b.high[j] - v } else { 2.0 * b.low[j] - v };
    let mut th = Vec::new();
    for r in 0..n {
        let (a, c) = (theta[2 * r], theta[2 * r + 1]);
        th.extend_from_slice(&[a, c, mirror(a, 0), c, a, mirror(c, 1), mirror(a, 0), mirror(c, 1)]);
    }
    let xs: Vec<f64> = x.iter().flat_map(|&v| [v; 4]).collect();
    let lq = gm.log_prob_pairs(&th, &xs, &free).unwrap();
    let (mut corners, mut rej, mut diff) = (0, Vec::new(), Vec::new());
    for (r, g) in lq.chunks(4).enumerate() {
        let both = g[1] - g[0] >= MIRROR_RATIO_FLOOR.ln() && g[2] - g[0] >= MIRROR_RATIO_FLOOR.ln();
        corners += usize::from(both);
        let sum = g[0].exp() + g[1].exp() + g[2].exp() + if both { g[3].exp() } else { 0.0 };
        let rejected = -g[0] + mass[r].max(0.5 / 128.0).ln();
        rej.push(rejected);
        diff.push(-sum.ln() - rejected);
    }
    assert!(corners >= 5, "the check needs pairs whose corner image counts ({corners} of {n})");
    let m = n as f64;
    let mean = diff.iter().sum::<f64>() / m;
    let rej_mean = rej.iter().sum::<f64>() / m;
    assert!((got.rejected_nll - rej_mean).abs() < 1e-9, "{} vs {rej_mean}", got.rejected_nll);
    assert!((got.reflected_nll - (rej_mean + mean)).abs() < 1e-9, "{} vs {}", got.reflected_nll, rej_mean + mean);
    assert_eq!(got.pairs, n);
}

/// A candidate trained on the reflected density (`TrainConfig::reflect`) is scored by
/// the folded density's held-out NLL, on the same first `REFLECTION_MAX_PAIRS` pairs as
/// every other candidate, and the kept flow reflects by default. θ ~ U(−1, 1),
/// x = θ + 0.3 ε: the posterior at x_o = 1 is N(1, 0.09) cut off at the bound 1, with
/// P(θ > 0.9 | x_o) = (Φ(0) − Φ(−1/3)) / (Φ(0) − Φ(−20/3)) = 0.261.
#[test]
fn a_flow_trained_on_the_reflected_density_is_scored_and_sampled_folded() {
    let gpu = common::gpu_arc();
    let n = 2_000;
    let theta: Vec<f64> = common::rand_vec(n, 31);
    let x: Vec<f64> = theta.iter().zip(normals(n, 32)).map(|(t, e)| t + 0.3 * e).collect();
    let s = sims(&theta, &x);
    let prior = BoxPrior { low: vec![-1.0], high: vec![1.0] };
    let meta = ModelMeta { prior: Some(prior.clone()), ..Default::default() };
    let logit = ThetaTransform::from_box(&prior);
    let mut reflecting = candidate(vec![32, 32], 150, 3e-3, ThetaTransform::identity());
    reflecting.resolved.train.reflect = Some(TrainingReflection { low: vec![-1.0], high: vec![1.0], margin: 0.1 });
    // A barely trained logit first: the reflecting candidate wins on its score.
    let cands = [candidate(vec![8], 1, 1e-5, logit), reflecting.clone()];
    let model = fit_candidates(gpu, &s, &meta, &cands, &mut |_, _| Control::Continue).unwrap();
    let sel = model.info.selection.as_ref().unwrap();
    eprintln!("{:?}", sel.candidates.iter().map(|c| (c.held_out_nll, c.reflect_training)).collect::<Vec<_>>());
    assert_eq!(sel.chosen, 1);
    assert_eq!(sel.candidates.iter().map(|c| c.reflect_training).collect::<Vec<_>>(), [false, true]);
    let r = sel.reflection.expect("the folded density is scored");
    assert_eq!(sel.candidates[1].held_out_nll, Some(r.reflected_nll));
    assert_eq!((sel.candidates[1].log_prior_mass, sel.candidates[1].low_mass_share), (None, None));
    // Both candidates on the first REFLECTION_MAX_PAIRS validation pairs (400 exist).
    assert_eq!(r.pairs, REFLECTION_MAX_PAIRS);
    assert_eq!(model.info.held_out.as_ref().unwrap().pairs, REFLECTION_MAX_PAIRS);
    assert_eq!(model.info.train.reflect, reflecting.resolved.train.reflect);
    // Sampled folded into the box by default, and close to the cut-off posterior at its
    // edge.
    let gm = GpuModel::new(gpu.clone(), &model).unwrap();
    assert!(gm.reflects_by_default());
    let draws = gm.posterior(&[1.0]).unwrap().sample(4_000, &PosteriorOptions { seed: 5, ..Default::default() }).unwrap();
    let v = draws.as_slice();
    assert!(v.iter().all(|t| (-1.0..=1.0).contains(t)));
    let edge = v.iter().filter(|&&t| t > 0.9).count() as f64 / v.len() as f64;
    eprintln!("share above 0.9: {edge:.3} (cut-off posterior 0.261)");
    assert!((edge - 0.261).abs() < 0.05, "share above 0.9: {edge}");
    // Log-densities of folded samples are not evaluated, and rejecting this flow would
    // be biased: refused under the default, done when asked for by name.
    let post = gm.posterior(&[1.0]).unwrap();
    let e = post.sample_and_log_prob(10, &PosteriorOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "reflect_outside_prior", .. }), "{e:?}");
    let rejected = post.sample_and_log_prob(10, &PosteriorOptions { reflect_outside_prior: Some(false), ..Default::default() }).unwrap();
    assert!(rejected.as_slice().iter().all(|t| (-1.0..=1.0).contains(t)));
    let free = PosteriorOptions { reject_outside_prior: false, ..Default::default() };
    assert_eq!(post.sample_and_log_prob(10, &free).unwrap().log_prob().unwrap().len(), 10);
    // Refused: a box that is not the model's prior, with a parameter transform, a box
    // of another dimension, θ outside the box.
    let mut off = reflecting.clone();
    off.resolved.train.reflect = Some(TrainingReflection { low: vec![-1.0], high: vec![2.0], margin: 0.1 });
    let e = fit_candidates(gpu, &s, &meta, &[off], &mut |_, _| panic!("no training")).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "reflect", .. }), "{e:?}");
    let (net, tc) = (&reflecting.resolved.net, &reflecting.resolved.train);
    let e = Trainer::with_transform(gpu, net.clone(), tc.clone(), &theta, &x, None, &ThetaTransform::from_box(&prior)).err().unwrap();
    assert!(matches!(e, Error::InvalidOption { name: "reflect", .. }), "{e:?}");
    let wide = TrainConfig { reflect: Some(TrainingReflection { low: vec![-1.0; 2], high: vec![1.0; 2], margin: 0.1 }), ..tc.clone() };
    let e = Trainer::new(gpu, net.clone(), wide, &theta, &x, None).err().unwrap();
    assert!(matches!(e, Error::InvalidOption { name: "reflect", .. }), "{e:?}");
    let mut outside = theta.clone();
    outside[7] = 1.5;
    let e = Trainer::new(gpu, net.clone(), tc.clone(), &outside, &x, None).err().unwrap();
    assert!(e.to_string().contains("theta row 8, column 1"), "{e}");
}

/// The box reaches the gather in the units the flow trains in: θ in (1, 5) per
/// component (mean 3, std 1.15, so a box left in original units would cut through the
/// z-scored data). With a box whose band holds no θ (`[0.9, 5.1]`, band 0.084 wide)
/// training is bit for bit the plain run's; with the box at the data's edge (`[1, 5]`)
/// components are mirrored and the history differs from the first epoch on.
#[test]
fn training_reflects_only_the_components_in_the_band_of_the_box() {
    let gpu = common::gpu();
    let n = 600;
    let theta: Vec<f64> = common::rand_vec(2 * n, 41).iter().map(|u| 3.0 + 2.0 * u).collect();
    let x: Vec<f64> = theta.iter().zip(normals(2 * n, 42)).map(|(t, e)| t + 0.3 * e).collect();
    let net = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16], conditioning: Conditioning::Concat, embedding: vec![] };
    let tc = TrainConfig { max_epochs: 3, batch_size: 64, seed: 9, validation_fraction: 0.2, ..Default::default() };
    let run = |reflect: Option<TrainingReflection>| {
        let out = Trainer::new(gpu, net.clone(), TrainConfig { reflect, ..tc.clone() }, &theta, &x, None).unwrap().fit().unwrap();
        (out.params, out.history.iter().map(|r| (r.train_loss, r.val_loss)).collect::<Vec<_>>())
    };
    let plain = run(None);
    let wide = run(Some(TrainingReflection { low: vec![0.9; 2], high: vec![5.1; 2], margin: 0.02 }));
    assert_eq!(wide, plain, "no θ lies in the band: nothing may be mirrored");
    let edge = run(Some(TrainingReflection { low: vec![1.0; 2], high: vec![5.0; 2], margin: 0.1 }));
    assert_ne!(edge.1[0], plain.1[0], "θ at the box's edge: components are mirrored");
}
