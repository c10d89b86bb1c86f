//! The C2ST kernels (`src/kernels/c2st.rs`) that are not a network: the fold shuffle
//! (and the slot table of folds trained together), the logistic loss with its gradient,
//! the loss sum of the fused path, and the held-out accuracy, against f64 formulas.
//! (The classifier itself is checked end to end in tests/c2st.rs.)
mod common;

use common::*;
use fmpe::kernels::{c2st, Bindings, C2stParams, ProgramBuilder, StepState};

fn run(acts: &[f64], data: &[f64], step_in_epoch: u32, record: impl FnOnce(&mut ProgramBuilder)) -> Vec<f64> {
    let gpu = common::gpu();
    let ab = gpu.storage_from("acts", &to_f32(acts));
    let db = gpu.storage_from("data", &to_f32(data));
    let sb = gpu.uniform_from("step", bytemuck::bytes_of(&StepState { step_in_epoch, ..Default::default() }));
    let mut b = ProgramBuilder::new(gpu);
    record(&mut b);
    b.build(gpu, Bindings { acts: Some(&ab), data: Some(&db), step: Some(&sb), ..Default::default() }).unwrap().run(gpu).unwrap();
    to_f64(&gpu.read_f32(&ab, 0, acts.len()).unwrap())
}

#[test]
fn shuffle_permutes_rows_with_their_labels() {
    let (n_a, n_b, d) = (150usize, 113usize, 2usize);
    let n = n_a + n_b;
    // Row r of the data holds (r, -r): the shuffled rows tell where they came from.
    let data: Vec<f64> = (0..n).flat_map(|r| [r as f64, -(r as f64)]).collect();
    let (x, y) = (0usize, n * d);
    let p = C2stParams { rows: n as u32, d: d as u32, n_total: n as u32, n_a: n_a as u32, seed_lo: 9, x_off: x as u32, y_off: y as u32, ..Default::default() };
    let got = run(&vec![0.0; y + n], &data, 0, |b| c2st::c2st_shuffle(b, &p));
    let mut src: Vec<usize> = (0..n).map(|q| got[x + q * d] as usize).collect();
    for q in 0..n {
        assert_eq!(got[x + q * d + 1], -got[x + q * d], "row {q} moved as a whole");
        assert_eq!(got[y + q], (src[q] >= n_a) as u8 as f64, "label of row {q}");
    }
    assert_ne!(src, (0..n).collect::<Vec<_>>(), "rows are shuffled");
    src.sort();
    assert_eq!(src, (0..n).collect::<Vec<_>>(), "a permutation of all rows");
}

#[test]
fn bce_loss_sum_and_accuracy_match_formulas() {
    let rows = 300usize; // more than one workgroup's 256 threads
    let (z, yb, dz, loss, w, wsq, ytest, acc) = (0usize, 512usize, 1024usize, 1536usize, 1600usize, 1700usize, 1800usize, 2200usize);
    let mut acts = rand_vec(acc + 1, 90).iter().map(|v| 4.0 * v).collect::<Vec<f64>>();
    for e in 0..rows {
        acts[yb + e] = (acts[yb + e] > 0.0) as u8 as f64;
        acts[ytest + e] = (acts[ytest + e] > 0.0) as u8 as f64;
    }
    acts[z] = 40.0; // a clipped loss: bce ≤ −ln(f32 ε)
    let acts = to_f64(&to_f32(&acts));
    let (alpha, n_w) = (0.01f32, 50usize);
    // The weights come from `data` (the training step binds the parameters there).
    let data = to_f64(&to_f32(&rand_vec(w + n_w, 91)));
    let p = C2stParams {
        rows: rows as u32,
        z_off: z as u32,
        yb_off: yb as u32,
        dz_off: dz as u32,
        loss_off: loss as u32,
        wsq_off: wsq as u32,
        scale: 1.0 / rows as f32,
        alpha,
        n_w: n_w as u32,
        w_off: w as u32,
        y_off: ytest as u32,
        test_start: 0,
        out_off: acc as u32,
        ..Default::default()
    };
    let got = run(&acts, &data, 2, |b| {
        c2st::c2st_bce(b, &p, 1);
        c2st::c2st_loss_sum(b, &C2stParams { loss_off: (loss + 10) as u32, ..p }, 1);
        c2st::c2st_accuracy(b, &p);
    });
    let eps = f32::EPSILON as f64;
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let bce: f64 = (0..rows)
        .map(|e| {
            let (zv, y) = (acts[z + e], acts[yb + e]);
            (zv.max(0.0) - zv * y + (1.0 + (-zv.abs()).exp()).ln()).clamp(eps, -eps.ln())
        })
        .sum();
    let w2: f64 = (0..n_w).map(|k| data[w + k].powi(2)).sum();
    assert_close("bce + L2 into slot step_in_epoch", &got[loss + 2..loss + 3], &[bce + 0.5 * alpha as f64 * w2], 1e-4, 1e-5);
    let dz_want: Vec<f64> = (0..rows).map(|e| (sig(acts[z + e]) - acts[yb + e]) / rows as f64).collect();
    assert_close("dL/dz", &got[dz..dz + rows], &dz_want, 1e-7, 1e-5);
    // loss_sum over z as per-row losses plus the L2 term from wsq_off.
    let sum: f64 = (0..rows).map(|e| acts[z + e]).sum::<f64>() + 0.5 * alpha as f64 * acts[wsq];
    assert_close("loss sum", &got[loss + 12..loss + 13], &[sum], 1e-4, 1e-5);
    let correct = (0..rows).filter(|&e| ((acts[z + e] > 0.0) as u8 as f64) == acts[ytest + e]).count();
    assert_eq!(got[acc], correct as f64, "held-out accuracy count");
}

/// Folds trained together: `c2st_batch`, `c2st_bce` and `c2st_loss_sum` over 2 folds in
/// one dispatch each write exactly what each fold alone writes (fold z alone: stream z,
/// test block z, every per-fold offset shifted by z · fold_stride, its loss slots by
/// z · loss_stride), and fold 1's minibatch avoids its own test block. Which fold a slot
/// trains comes from the slot table: swapped, slot 0 gathers fold 1's minibatch.
#[test]
fn folds_together_match_each_fold_alone() {
    let (n, d, test_len, rows) = (100usize, 3usize, 20usize, 32usize);
    let (x, y, f0, stride, loss, loss_stride, table) = (0usize, 300usize, 512usize, 512usize, 448usize, 8usize, 440usize);
    let (xb, yb, z, dz, wsq, bce) = (f0, f0 + 128, f0 + 192, f0 + 256, f0 + 320, f0 + 384);
    let mut acts = rand_vec(f0 + 2 * stride, 5);
    // The slot table: slot z trains fold z (alone: slot 0, fold `stream`).
    acts[table] = 0.0;
    acts[table + 1] = 1.0;
    // Row r of x holds (r, r, r), its label r % 2: the gathered rows tell where they came from.
    for r in 0..n {
        for j in 0..d {
            acts[x + r * d + j] = r as f64;
        }
        acts[y + r] = (r % 2) as f64;
    }
    let acts = to_f64(&to_f32(&acts));
    let data = to_f64(&to_f32(&rand_vec(2 * stride, 6)));
    let p = C2stParams {
        rows: rows as u32,
        d: d as u32,
        n_total: n as u32,
        n_a: 50,
        n_train: (n - test_len) as u32,
        test_start: 0,
        test_len: test_len as u32,
        batch: rows as u32,
        seed_lo: 3,
        x_off: x as u32,
        y_off: y as u32,
        xb_off: xb as u32,
        yb_off: yb as u32,
        z_off: z as u32,
        dz_off: dz as u32,
        loss_off: loss as u32,
        wsq_off: wsq as u32,
        scale: 1.0 / rows as f32,
        alpha: 0.01,
        n_w: 40,
        w_off: 0,
        slot_fold_off: table as u32,
        ..Default::default()
    };
    let record = |p: C2stParams, folds: usize| {
        move |b: &mut ProgramBuilder| {
            c2st::c2st_batch(b, &p, folds);
            c2st::c2st_bce(b, &p, folds);
            // The per-row losses at bce (shifted with the fold like z_off).
            c2st::c2st_loss_sum(b, &C2stParams { z_off: p.z_off + (bce - z) as u32, loss_off: p.loss_off + 4, ..p }, folds);
        }
    };
    let both = run(&acts, &data, 1, record(C2stParams { fold_stride: stride as u32, loss_stride: loss_stride as u32, ..p }, 2));
    let mut merged = acts.clone();
    for fold in 0..2usize {
        let sh = (fold * stride) as u32;
        let alone = C2stParams {
            stream: fold as u32,
            test_start: (fold * test_len) as u32,
            xb_off: p.xb_off + sh,
            yb_off: p.yb_off + sh,
            z_off: p.z_off + sh,
            dz_off: p.dz_off + sh,
            wsq_off: p.wsq_off + sh,
            w_off: sh,
            loss_off: p.loss_off + (fold * loss_stride) as u32,
            ..p
        };
        let got = run(&acts, &data, 1, |b| record(alone, 1)(b));
        // Fold 1's minibatch rows are training rows: outside its test block 20..40.
        for r in 0..rows {
            let src = got[xb + fold * stride + r * d];
            let in_test = (fold * test_len..(fold + 1) * test_len).contains(&(src as usize));
            assert!(!in_test && got[yb + fold * stride + r] == (src as usize % 2) as f64, "fold {fold} row {r} from {src}");
        }
        for (i, v) in got.iter().enumerate() {
            if *v != acts[i] {
                merged[i] = *v;
            }
        }
    }
    assert_ne!(merged, acts, "the kernels wrote something");
    for (i, (a, b)) in both.iter().zip(&merged).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "element {i}: together {a}, alone {b}");
    }
    // The table swapped: slot 0 trains fold 1 and slot 1 fold 0.
    let mut swapped = acts.clone();
    swapped[table] = 1.0;
    swapped[table + 1] = 0.0;
    let got = run(&swapped, &data, 1, record(C2stParams { fold_stride: stride as u32, loss_stride: loss_stride as u32, ..p }, 2));
    for (slot, fold) in [(0usize, 1usize), (1, 0)] {
        for e in 0..rows * d + rows {
            // the minibatch rows (xb), then its labels (yb)
            let i = if e < rows * d { xb + e } else { yb + e - rows * d };
            assert_eq!(got[i + slot * stride], both[i + fold * stride], "slot {slot} holds fold {fold}'s minibatch (element {e})");
        }
    }
}

/// The step for CPU adapters (`c2st_lanes_rows`, `c2st_lanes_grads`) against the f64
/// mirror `fmpe::reference::c2st::step`: every activation, delta, loss and gradient of
/// two fold slots in one dispatch each (slot z's parameters, minibatch and workspace
/// `z · stride` further), for the benchmark's d = 10 (hidden width 100, not a multiple
/// of the 32 output rows of a gradient workgroup: three full blocks of output rows and
/// a partial one), and every other dimension the C2ST gives these kernels (d = 2:
/// only a partial block; d = 12: the widest, with two groups of input features), with
/// minibatches in blocks of 40 rows (5 per lane: sklearn's 200 rows, a last minibatch
/// of 37 after full ones of 200, a single one of 37) and of 32 (4 per lane: 64 rows, a
/// last minibatch of 90 after full ones of 96). The kernels gather their minibatch from the
/// shuffled data themselves: the rows they train on (and write for the gradient kernel)
/// are the ones `c2st_batch` gathers for the same fold, epoch and step (the slot table
/// swapped: slot 0 trains fold 1), and the step's loss lands in the slot's loss slot for
/// that step. Runs where the adapter has the CPU kernel variant (lavapipe, which CI
/// uses); elsewhere the C2ST never chooses these kernels.
#[test]
fn lanes_step_matches_the_reference() {
    use fmpe::gpu::{GpuOptions, KernelChoice};
    use fmpe::kernels::MlpParams;
    use fmpe::reference::c2st::{step, Layout};
    let gpu = match fmpe::Gpu::with_options(&GpuOptions { kernels: KernelChoice::Cpu, ..common::gpu_options() }) {
        Ok(g) => g,
        Err(e) => {
            assert!(!common::gpu().adapter_traits().supports_cpu_variant(), "the CPU variant should run here: {e}");
            eprintln!("lanes_step_matches_the_reference: no CPU kernel variant on this adapter ({e}); nothing to check");
            return;
        }
    };
    // (d, minibatch rows, full minibatch size): the rows per lane follow the full size.
    for (d, rows, batch) in [(10usize, 200usize, 200usize), (10, 37, 200), (4, 64, 64), (2, 200, 200), (6, 200, 200), (8, 90, 96), (12, 37, 37)] {
        let per_lane = if [64, 96].contains(&batch) { 4 } else { 5 };
        assert_eq!(fmpe::kernels::c2st::lanes_rows_per_lane(batch as u32), per_lane, "minibatches of {batch} rows");
        let h = 10 * d;
        let net = Layout::new(d, h);
        // Workspace of one slot (offsets multiples of 4; `c2st_batch`'s minibatch at
        // xr, yr), then the slot stride; after the slots the shuffled data (n rows, the
        // test blocks of folds 0 and 1 first), the slot table and the loss slots.
        let (xb, yb, dz, bce, wsq) = (0usize, 2048usize, 2304usize, 2560usize, 2816usize);
        let (h1, h2, d1, d2) = (3072usize, 3072 + 20480, 3072 + 2 * 20480, 3072 + 3 * 20480);
        let (xr, yr) = (3072 + 4 * 20480, 3072 + 4 * 20480 + 2560);
        let stride = yr + 256;
        let slots = 2usize;
        let (n, test_len, step_in_epoch, alpha) = (700usize, 100usize, 2u32, 0.01f64);
        let (x_off, y_off) = (slots * stride, slots * stride + n * d);
        let (table, loss, loss_stride) = (y_off + n, y_off + n + 4, 8usize);
        let mut acts = vec![0.0; loss + slots * loss_stride];
        acts[x_off..x_off + n * d].copy_from_slice(&to_f64(&to_f32(&rand_vec(n * d, 50).iter().map(|v| 2.0 * v).collect::<Vec<f64>>())));
        for (i, v) in rand_vec(n, 60).iter().enumerate() {
            acts[y_off + i] = (*v > 0.0) as u8 as f64;
        }
        // Slot 0 trains fold 1, slot 1 fold 0.
        acts[table] = 1.0;
        let fold = C2stParams {
            rows: rows as u32,
            d: d as u32,
            n_total: n as u32,
            n_train: (n - test_len) as u32,
            test_len: test_len as u32,
            batch: batch as u32,
            seed_lo: 11,
            seed_hi: 2,
            stream: 0,
            x_off: x_off as u32,
            y_off: y_off as u32,
            xb_off: xr as u32,
            yb_off: yr as u32,
            fold_stride: stride as u32,
            slot_fold_off: table as u32,
            ..Default::default()
        };
        let ab = gpu.storage_from("acts", &to_f32(&acts));
        let sb = gpu.uniform_from("step", bytemuck::bytes_of(&StepState { epoch: 3, step_in_epoch, ..Default::default() }));
        let mut b = ProgramBuilder::new(&gpu);
        c2st::c2st_batch(&mut b, &fold, slots);
        b.build(&gpu, Bindings { acts: Some(&ab), step: Some(&sb), ..Default::default() }).unwrap().run(&gpu).unwrap();
        let gathered = to_f64(&gpu.read_f32(&ab, 0, acts.len()).unwrap());
        // Weights and biases with some units off.
        let mut params = vec![0.0; slots * stride];
        let mut want = Vec::new();
        for z in 0..slots {
            let p: Vec<f64> = rand_vec(net.len(), 40 + z as u64).iter().enumerate().map(|(i, v)| v * if i < net.w2() { 0.6 } else { 0.25 }).collect();
            let p = to_f64(&to_f32(&p));
            params[z * stride..z * stride + net.len()].copy_from_slice(&p);
            let x = &gathered[z * stride + xr..z * stride + xr + rows * d];
            let y = &gathered[z * stride + yr..z * stride + yr + rows];
            want.push((x.to_vec(), step(net, &p, x, y)));
        }
        let pb = gpu.storage_from("params", &to_f32(&params));
        let gb = gpu.storage_from("grads", &vec![0f32; slots * stride]);
        let mp = MlpParams {
            rows: rows as u32,
            d: d as u32,
            h: h as u32,
            n_params: net.len() as u32,
            n_weights: net.n_weights() as u32,
            w1: 0,
            w2: net.w2() as u32,
            w3: net.w3() as u32,
            b1: net.b1() as u32,
            b2: net.b2() as u32,
            b3: net.b3() as u32,
            xb_off: xb as u32,
            yb_off: yb as u32,
            h1_off: h1 as u32,
            h2_off: h2 as u32,
            d1_off: d1 as u32,
            d2_off: d2 as u32,
            dz_off: dz as u32,
            bce_off: bce as u32,
            wsq_off: wsq as u32,
            scale: 1.0 / rows as f32,
            fold_stride: stride as u32,
            x_off: fold.x_off,
            y_off: fold.y_off,
            n_train: fold.n_train,
            test_start: fold.test_start,
            test_len: fold.test_len,
            batch: fold.batch,
            seed_lo: fold.seed_lo,
            seed_hi: fold.seed_hi,
            stream: fold.stream,
            slot_fold_off: fold.slot_fold_off,
            loss_off: loss as u32,
            loss_stride: loss_stride as u32,
            alpha: alpha as f32,
            pad: [0.0; 3],
        };
        let mut b = ProgramBuilder::new(&gpu);
        c2st::c2st_lanes_rows(&mut b, &mp, slots);
        c2st::c2st_lanes_grads(&mut b, &mp, slots);
        b.build(&gpu, Bindings { acts: Some(&ab), params: Some(&pb), grads: Some(&gb), step: Some(&sb), ..Default::default() }).unwrap().run(&gpu).unwrap();
        let got = to_f64(&gpu.read_f32(&ab, 0, acts.len()).unwrap());
        let grads = to_f64(&gpu.read_f32(&gb, 0, slots * stride).unwrap());
        for (z, (x, w)) in want.iter().enumerate() {
            let at = |off: usize, len: usize| &got[z * stride + off..z * stride + off + len];
            let what = |s: &str| format!("d = {d}, {rows} rows (of {batch}), slot {z}: {s}");
            assert_eq!(at(xb, rows * d), &x[..], "{}", what("the minibatch c2st_batch gathers"));
            let reported = w.bce.iter().sum::<f64>() + 0.5 * alpha * w.wsq;
            let filed = got[loss + z * loss_stride + step_in_epoch as usize];
            assert!((filed - reported).abs() <= 1e-5 * reported, "{}", what(&format!("step loss {filed}, expected {reported}")));
            assert!(got[loss + z * loss_stride..loss + (z + 1) * loss_stride].iter().filter(|&&v| v != 0.0).count() == 1, "{}", what("one loss slot written"));
            assert_close(&what("h1"), at(h1, rows * h), &w.h1, 1e-5, 1e-5);
            assert_close(&what("h2"), at(h2, rows * h), &w.h2, 1e-5, 1e-5);
            assert_close(&what("per-row loss"), at(bce, rows), &w.bce, 1e-5, 1e-5);
            assert_close(&what("dL/dz"), at(dz, rows), &w.dz, 1e-7, 1e-5);
            assert_close(&what("delta 2"), at(d2, rows * h), &w.d2, 1e-8, 1e-4);
            assert_close(&what("delta 1"), at(d1, rows * h), &w.d1, 1e-8, 1e-4);
            assert_close(&what("gradients"), &grads[z * stride..z * stride + net.len()], &w.grads, 1e-7, 1e-4);
            assert_close(&what("sum of squared weights"), at(wsq, 1), &[w.wsq], 1e-4, 1e-5);
            // Nothing is written past the minibatch's rows or the parameters.
            for (name, off, width) in [("minibatch", xb, d), ("h1", h1, h), ("h2", h2, h), ("delta 1", d1, h), ("delta 2", d2, h), ("per-row loss", bce, 1), ("dL/dz", dz, 1)] {
                assert!(at(off + rows * width, width).iter().all(|&v| v == 0.0), "{}", what(&format!("{name}: rows past the minibatch stay untouched")));
            }
            assert!(grads[z * stride + net.len()..(z + 1) * stride].iter().all(|&v| v == 0.0), "{}", what("no gradient past the parameters"));
            assert!(w.h1.contains(&0.0) && w.h2.iter().any(|&v| v > 0.0), "{}", what("some units off, some on"));
        }
    }
}
