//! Model selection by held-out NLL (`fmpe::select`): every candidate is trained as a
//! plain run of its configuration would be, scored on the same validation pairs, and
//! the lowest score is kept and recorded.
mod common;

use fmpe::metrics::{held_out_nll, held_out_prior_mass, LOW_MASS};
use fmpe::model::{BoxPrior, ModelMeta};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::policy::{Configuration, Resolved};
use fmpe::posterior::{GpuModel, PosteriorOptions};
use fmpe::select::{fit_candidates, METRIC};
use fmpe::train::{Control, Fmpe, Simulations, TrainConfig, Trainer};
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

#[test]
fn the_prior_mass_matches_the_flow_density_integrated_over_the_box() {
    // A flow trained without a transform, and a box it leaks out of: [−0.3, 0.3] holds
    // about half of the posterior N(x / 1.09, 0.287²) for |x| < 0.5; [0.6, 1.5] holds
    // under 1 % of it at x = −0.5 and about 30 % at x = 0.5, so the share of
    // observations with under 5 % inside is neither 0 nor 1.
    let gpu = common::gpu_arc();
    let (theta, x) = data(1_000);
    let cand = candidate(vec![32, 32], 40, 3e-3, ThetaTransform::identity());
    let (net, tc) = (&cand.resolved.net, &cand.resolved.train);
    let model = Fmpe::new(gpu.clone(), net.clone(), ModelMeta::default())
        .append_simulations(&theta, &x)
        .unwrap()
        .train(tc, &mut |_| Control::Continue)
        .unwrap();
    let gm = GpuModel::new(gpu.clone(), &model).unwrap();
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
