//! The training builder `Fmpe`: simulations appended in batches and mapped by the x
//! transform in the data path, the progress callback (every epoch, `Control::Stop`
//! keeps the best weights), `TrainOutcome::into_model`, and errors by option name.
mod common;

use fmpe::model::{BoxPrior, ModelMeta};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::train::{Control, Fmpe, Simulations, TrainConfig, Trainer};
use fmpe::transform::XTransform;
use fmpe::Error;

fn net() -> NetConfig {
    NetConfig { dim_theta: 2, dim_x: 1, hidden: vec![8], conditioning: Conditioning::Concat, embedding: vec![] }
}

fn data(n: usize) -> (Vec<f64>, Vec<f64>) {
    let u = common::rand_vec(2 * n, 5);
    let x = u.chunks(2).map(|r| (r[0] + r[1]).abs()).collect();
    (u, x)
}

#[test]
fn simulations_are_checked_and_x_is_mapped_when_appended() {
    let mut s = Simulations::empty(2, 1);
    s.append(&[0.1, 0.2, 0.3, 0.4], &[1.0, 3.0], XTransform::Log1p).unwrap();
    assert_eq!(s.rows(), 2);
    assert_eq!(s.x(), &[1f64.ln_1p(), 3f64.ln_1p()]);
    // Row-count mismatch, non-finite values and x outside log1p's domain: nothing appended.
    assert!(s.append(&[0.1, 0.2], &[1.0, 2.0], XTransform::Identity).is_err());
    assert!(s.append(&[0.1, f64::NAN], &[1.0], XTransform::Identity).is_err());
    let e = s.append(&[0.1, 0.2, 0.3, 0.4], &[0.5, -2.0], XTransform::Log1p).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(e.to_string().contains("row 2, column 1"), "{e}");
    assert_eq!(s.rows(), 2);
    // Constant columns are reported.
    let mut c = Simulations::empty(2, 1);
    c.append(&[0.1, 7.0, 0.2, 7.0, 0.3, 7.0], &[1.0, 2.0, 3.0], XTransform::Identity).unwrap();
    let w = c.warnings();
    assert!(w.len() == 1 && w[0].contains("theta column 2 is constant"), "{w:?}");
}

#[test]
fn configuration_errors_name_the_field_not_a_flag() {
    let tc = TrainConfig { batch_size: 0, ..Default::default() };
    let e = tc.validate().unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "batch_size", .. }), "{e:?}");
    let e = BoxPrior { low: vec![1.0, 0.0], high: vec![0.0, 1.0] }.validate(2).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "prior", .. }), "{e:?}");
    let e = NetConfig { hidden: vec![], ..net() }.validate().unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "hidden", .. }), "{e:?}");
    for e in [tc.validate().unwrap_err(), "bogus".parse::<XTransform>().unwrap_err()] {
        assert!(!e.to_string().contains("--"), "{e}");
    }
}

#[test]
fn progress_sees_every_epoch_and_stop_keeps_the_best_weights() {
    let gpu = common::gpu();
    let (theta, x) = data(200);
    let tc = TrainConfig { max_epochs: 6, batch_size: 32, seed: 4, ..Default::default() };
    // Appending in two batches is appending once.
    let whole = Fmpe::new(gpu, net(), ModelMeta::default()).append_simulations(&theta, &x).unwrap();
    let halves = Fmpe::new(gpu, net(), ModelMeta::default())
        .append_simulations(&theta[..200], &x[..100])
        .unwrap()
        .append_simulations(&theta[200..], &x[100..])
        .unwrap();
    assert_eq!(whole.simulations(), halves.simulations());
    let mut seen = Vec::new();
    let model = whole
        .train(&tc, &mut |p| {
            seen.push((p.record.epoch, p.best_epoch, p.last));
            if p.record.epoch == 3 { Control::Stop } else { Control::Continue }
        })
        .unwrap();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(model.info.history.len(), 3);
    assert_eq!(model.info.best_epoch, seen[2].1);
    assert_eq!(model.info.theta_names, vec!["theta_1", "theta_2"]);
    // The builder is the Trainer plus into_model: the same weights and statistics.
    let out = Trainer::new(gpu, net(), tc.clone(), &theta, &x, None).unwrap();
    let mut k = 0;
    let same = out
        .fit_with_progress(&mut |_| {
            k += 1;
            if k == 3 { Control::Stop } else { Control::Continue }
        })
        .unwrap()
        .into_model(ModelMeta::default());
    assert_eq!(same.params, model.params);
    assert_eq!(same.theta_mean, model.theta_mean);
    assert_eq!(same.info.history.len(), 3);
}
