//! The matmul kernel (`src/kernels/matmul.rs`, `shaders/matmul.wgsl`) against f64
//! references on small random inputs: every epilogue step, the ones column, strides and
//! broadcasting, the tangent multiplier (`a_mul`) and primal rows (`primal_rows`).
//! Every test runs on every matmul variant the adapter can run (portable, the
//! specialised tiled GPU variant, and the subgroup CPU variant where the adapter has
//! 8-lane subgroups), each against the same reference.
mod common;

use std::cell::Cell;
use std::sync::OnceLock;

use common::*;
use fmpe::gpu::{GpuOptions, KernelChoice, ParamsTexture};
use fmpe::kernels::{Bindings, Buf, Mat, Matmul, Op, ProgramBuilder};
use fmpe::Gpu;

/// One device per variant the adapter can run.
fn variants() -> &'static [(KernelChoice, Gpu)] {
    static V: OnceLock<Vec<(KernelChoice, Gpu)>> = OnceLock::new();
    V.get_or_init(|| {
        let base = gpu_options();
        let mut v = Vec::new();
        for choice in [KernelChoice::Portable, KernelChoice::Gpu, KernelChoice::Cpu] {
            match Gpu::with_options(&GpuOptions { kernels: choice, ..base.clone() }) {
                Ok(g) => v.push((choice, g)),
                // Only the CPU variant may be missing, and only where subgroups are.
                Err(e) => assert!(choice == KernelChoice::Cpu, "{choice:?}: {e}"),
            }
        }
        let traits = v[0].1.adapter_traits();
        assert_eq!(v.len() == 3, traits.supports_cpu_variant(), "CPU variant available iff the adapter supports it");
        v
    })
}

thread_local!(static VARIANT: Cell<usize> = const { Cell::new(0) });
thread_local!(static PARAMS_TEX: Cell<bool> = const { Cell::new(false) });

/// Runs `body` once per variant ([`run`] uses the current one); the CPU variant runs
/// twice, reading the parameters from their buffer and from the texture mirror
/// (`ParamsTexture`).
fn each_variant(body: impl Fn()) {
    for (i, (choice, _)) in variants().iter().enumerate() {
        for tex in [false, true] {
            if tex && *choice != KernelChoice::Cpu {
                continue;
            }
            eprintln!("variant {choice:?}, parameter texture {tex}");
            VARIANT.with(|v| v.set(i));
            PARAMS_TEX.with(|v| v.set(tex));
            body();
        }
    }
}

fn op(o: Op, a: f64) -> f64 {
    match o {
        Op::Id => a,
        Op::Gelu => fmpe::reference::net::gelu(a),
        Op::GeluGrad => fmpe::reference::net::gelu_grad(a),
        Op::Relu => a.max(0.0),
        Op::ReluGrad => (a > 0.0) as i32 as f64,
        Op::Sigmoid => 1.0 / (1.0 + (-a).exp()),
        Op::SigmoidGrad => a * (1.0 - a),
        Op::SigmoidDeriv => {
            let s = 1.0 / (1.0 + (-a).exp());
            s * (1.0 - s)
        }
    }
}

/// Runs one matmul whose operands live in `acts`/`params`, returns (acts, grads).
fn run(mm: &Matmul, acts: &[f64], params: &[f64], grads_len: usize) -> (Vec<f64>, Vec<f64>) {
    let gpu = &variants()[VARIANT.with(|v| v.get())].1;
    let a = gpu.storage_from("acts", &to_f32(acts));
    let p = gpu.storage_from("params", &to_f32(params));
    let g = gpu.storage("grads", grads_len as u64 * 4);
    let tex = PARAMS_TEX.with(|t| t.get()).then(|| ParamsTexture::for_gpu(gpu, params.len()).expect("a mirror on the CPU variant"));
    if let Some(t) = &tex {
        t.sync_now(gpu, &p).unwrap();
    }
    let mut b = ProgramBuilder::new(gpu);
    b.matmul(mm);
    let binds = Bindings { acts: Some(&a), params: Some(&p), grads: Some(&g), params_tex: tex.as_ref().map(|t| t.view()), ..Default::default() };
    let prog = b.build(gpu, binds).unwrap();
    prog.run(gpu).unwrap();
    (to_f64(&gpu.read_f32(&a, 0, acts.len()).unwrap()), to_f64(&gpu.read_f32(&g, 0, grads_len).unwrap()))
}

fn get(buf: &[f64], params: &[f64], m: Mat, i: usize, j: usize) -> f64 {
    let idx = m.off as usize + i * m.rs as usize + j * m.cs as usize;
    if m.buf == Buf::Params as u32 { params[idx] } else { buf[idx] }
}

#[test]
fn matmul_forward_epilogue_matches_reference() {
    each_variant(|| {
        // C = res + aux' ⊙ act(gelu(A) Wᵀ + b), pre stored; odd sizes cross tile borders;
        // (36, 64, 20), (70, 68, 24) and (40, 100, 28) have every operand 16-byte aligned
        // with N a multiple of 4 (the CPU variant's vec4 epilogue); the last three give
        // the CPU variant workgroups of 52 columns: 2 for 100 (vec4 epilogue), 2 for 98
        // (scalar epilogue, 6 padded columns), 1 for 52 with K not a multiple of 4.
        for &(m, n, k) in &[(1usize, 3usize, 2usize), (70, 65, 19), (130, 7, 33), (36, 64, 20), (70, 68, 24), (40, 100, 28), (33, 98, 16), (37, 52, 30)] {
            let a_off = 0;
            let aux_off = m * k;
            let res_off = aux_off + m * n;
            let pre_off = res_off + m * n;
            let c_off = pre_off + m * n;
            let acts = rand_vec(c_off + m * n, 1 + m as u64);
            let params = rand_vec(n * k + n, 7 + n as u64);
            let mut mm = Matmul::new(
                m,
                n,
                k,
                Mat::rows(Buf::Acts, a_off, k),
                Mat::strided(Buf::Params, 0, 1, k),
                Mat::rows(Buf::Acts, c_off, n),
            );
            mm.a_op = Op::Gelu;
            mm.bias = Some(Mat::rows(Buf::Params, n * k, n));
            mm.act = Op::Sigmoid;
            mm.pre = Some(Mat::rows(Buf::Acts, pre_off, n));
            mm.aux = Some((Mat::rows(Buf::Acts, aux_off, n), Op::GeluGrad));
            mm.res = Some(Mat::rows(Buf::Acts, res_off, n));
            let (out, _) = run(&mm, &acts, &params, 1);
            let mut want_c = vec![0.0; m * n];
            let mut want_pre = vec![0.0; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut s = params[n * k + j];
                    for kk in 0..k {
                        s += op(Op::Gelu, acts[a_off + i * k + kk]) * params[j * k + kk];
                    }
                    let pre = op(Op::Sigmoid, s);
                    want_pre[i * n + j] = pre;
                    want_c[i * n + j] = acts[res_off + i * n + j] + pre * op(Op::GeluGrad, acts[aux_off + i * n + j]);
                }
            }
            assert_close("matmul pre", &out[pre_off..pre_off + m * n], &want_pre, 1e-5, 1e-4);
            assert_close("matmul C", &out[c_off..c_off + m * n], &want_c, 1e-5, 1e-4);
        }
    });
}

#[test]
fn matmul_weight_gradient_with_ones_column() {
    each_variant(|| {
        // gW = dYᵀ relu(X), gb = Σ_rows dY, for rows = 150 (reduction over > 1 k-tile).
        let (rows, fin, fout) = (150usize, 37usize, 9usize);
        let dy_off = 0;
        let x_off = rows * fout;
        let acts = rand_vec(x_off + rows * fin, 3);
        let w_off = 5;
        let b_off = w_off + fout * fin + 3;
        let mut mm = Matmul::new(
            fout,
            fin,
            rows,
            Mat::rows(Buf::Acts, dy_off, fout).t(),
            Mat::rows(Buf::Acts, x_off, fin),
            Mat::rows(Buf::Grads, w_off, fin),
        );
        mm.b_op = Op::Relu;
        mm.bias_grad = Some(b_off);
        let (_, g) = run(&mm, &acts, &[0.0], b_off + fout);
        for o in 0..fout {
            let mut gb = 0.0;
            for r in 0..rows {
                gb += acts[dy_off + r * fout + o];
            }
            assert!((g[b_off + o] - gb).abs() < 1e-4, "bias grad {o}: {} vs {gb}", g[b_off + o]);
            for i in 0..fin {
                let mut s = 0.0;
                for r in 0..rows {
                    s += acts[dy_off + r * fout + o] * acts[x_off + r * fin + i].max(0.0);
                }
                let got = g[w_off + o * fin + i];
                assert!((got - s).abs() < 1e-4 + 1e-4 * s.abs(), "gW[{o},{i}]: {got} vs {s}");
            }
        }
        // Untouched gap between weight and bias stays zero.
        assert_eq!(g[w_off + fout * fin], 0.0);
    });
}

#[test]
fn matmul_broadcast_rows_and_in_place_residual() {
    each_variant(|| {
        // C = C + aux_row ⊙ (A B): residual aliases the output; aux broadcast (row stride 0).
        // (67, 8, 4): every operand aligned, the CPU variant's vec4 epilogue.
        for &(m, n, k) in &[(67usize, 5usize, 3usize), (67, 8, 4)] {
        let a_off = 0;
        let aux_off = m * k;
        let c_off = aux_off + n;
        let acts = rand_vec(c_off + m * n, 11);
        let params = rand_vec(k * n, 12);
        let mut mm = Matmul::new(m, n, k, Mat::rows(Buf::Acts, a_off, k), Mat::rows(Buf::Params, 0, n), Mat::rows(Buf::Acts, c_off, n));
        mm.aux = Some((Mat::rows(Buf::Acts, aux_off, n).broadcast(), Op::Id));
        mm.res = Some(Mat::rows(Buf::Acts, c_off, n));
        let (out, _) = run(&mm, &acts, &params, 1);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for kk in 0..k {
                    s += get(&acts, &params, Mat::rows(Buf::Acts, a_off, k), i, kk) * params[kk * n + j];
                }
                let want = acts[c_off + i * n + j] + acts[aux_off + j] * s;
                assert!((out[c_off + i * n + j] - want).abs() < 1e-5, "{m}x{n}x{k} ({i},{j})");
            }
        }
        }
    });
}

/// Reference of one output element: `Σ_k op_a(A(i,k)) · op_m(M(i',k)) · op_b(B(k,j))`
/// with `i' = i % primal_rows` (or `i`).
#[allow(clippy::too_many_arguments)]
fn product(acts: &[f64], params: &[f64], mm: &Matmul, i: usize, j: usize) -> f64 {
    let prow = if mm.primal_rows > 0 { i % mm.primal_rows } else { i };
    (0..mm.k)
        .map(|kk| {
            let mut a = op(mm.a_op, get(acts, params, mm.a, i, kk));
            if let Some((m, mop)) = mm.a_mul {
                a *= op(mop, get(acts, params, m, prow, kk));
            }
            a * op(mm.b_op, get(acts, params, mm.b, kk, j))
        })
        .sum()
}

#[test]
fn matmul_tangent_multiplier_scales_a_on_load() {
    each_variant(|| {
        // C = (dA ⊙ gelu'(A_primal)) · Wᵀ: the tangent rule of a GELU layer fused into the
        // product; sizes cross tile borders in m and k.
        for &(m, n, k) in &[(1usize, 2usize, 3usize), (70, 9, 21)] {
            let (a_off, m_off) = (0, m * k);
            let c_off = m_off + m * k;
            let acts = rand_vec(c_off + m * n, 40 + m as u64);
            let params = rand_vec(n * k, 41);
            let mut mm = Matmul::new(m, n, k, Mat::rows(Buf::Acts, a_off, k), Mat::strided(Buf::Params, 0, 1, k), Mat::rows(Buf::Acts, c_off, n));
            mm.a_mul = Some((Mat::rows(Buf::Acts, m_off, k), Op::GeluGrad));
            let (out, _) = run(&mm, &acts, &params, 1);
            let want: Vec<f64> = (0..m * n).map(|e| product(&acts, &params, &mm, e / n, e % n)).collect();
            assert_close("matmul with a_mul", &out[c_off..c_off + m * n], &want, 1e-5, 1e-4);
            // The multiplier really enters: without it the result differs.
            let plain = Matmul { a_mul: None, ..mm };
            let differs = (0..m * n).any(|e| (product(&acts, &params, &plain, e / n, e % n) - want[e]).abs() > 1e-3);
            assert!(differs, "test inputs do not exercise a_mul");
        }
    });
}

#[test]
fn matmul_primal_rows_share_one_block_of_primal_rows() {
    each_variant(|| {
        // A stack of 3 tangent blocks of `pr` rows each: M and aux are read at row i % pr,
        // A, res and C at row i. Also an operator on M (sigmoid') and on aux (GELU').
        let (pr, stack, n, k) = (37usize, 3usize, 11usize, 6usize);
        let m = pr * stack;
        let a_off = 0;
        let m_off = a_off + m * k;
        let aux_off = m_off + pr * k;
        let res_off = aux_off + pr * n;
        let c_off = res_off + m * n;
        let acts = rand_vec(c_off + m * n, 50);
        let params = rand_vec(k * n + n, 51);
        let mut mm = Matmul::new(m, n, k, Mat::rows(Buf::Acts, a_off, k), Mat::rows(Buf::Params, 0, n), Mat::rows(Buf::Acts, c_off, n));
        mm.a_mul = Some((Mat::rows(Buf::Acts, m_off, k), Op::SigmoidDeriv));
        mm.primal_rows = pr;
        mm.bias = Some(Mat::rows(Buf::Params, k * n, n));
        mm.aux = Some((Mat::rows(Buf::Acts, aux_off, n), Op::GeluGrad));
        mm.res = Some(Mat::rows(Buf::Acts, res_off, n));
        let (out, _) = run(&mm, &acts, &params, 1);
        let want: Vec<f64> = (0..m * n)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                let s = product(&acts, &params, &mm, i, j) + params[k * n + j];
                acts[res_off + i * n + j] + s * op(Op::GeluGrad, acts[aux_off + (i % pr) * n + j])
            })
            .collect();
        assert_close("matmul with primal_rows", &out[c_off..c_off + m * n], &want, 1e-5, 1e-4);
        // Rows of different blocks with the same primal row use the same M and aux rows but
        // their own A rows: block 1 differs from block 0.
        assert!((0..pr * n).any(|e| (out[c_off + e] - out[c_off + pr * n + e]).abs() > 1e-3));
    });
}

/// A dense reference `C = op_a(A) · op_b(B)` for row-major views.
fn dense(acts: &[f64], params: &[f64], mm: &Matmul) -> Vec<f64> {
    (0..mm.m * mm.n).map(|e| product(acts, params, mm, e / mm.n, e % mm.n)).collect()
}

#[test]
fn matmul_every_layout_on_ragged_shapes() {
    // The three products of a network layer on shapes that are not multiples of any
    // tile: rows 1..257, columns 1..130 (column groups of 8 and blocks of 64 both
    // ragged), K not a multiple of 4; widths 36, 52 and 100 as the columns of each
    // product (the CPU variant's workgroups of 36 and 52 columns, B read along k, along
    // j and one element at a time, the weight gradient's bias column beside them).
    each_variant(|| {
        for &(m, n, k) in &[(1usize, 1usize, 1usize), (7, 2, 5), (33, 65, 3), (257, 100, 37), (40, 130, 66), (9, 8, 64), (100, 64, 64), (37, 36, 12), (70, 128, 128), (5, 4, 4), (31, 100, 100), (44, 36, 20), (64, 52, 100), (96, 100, 36), (33, 100, 52), (40, 100, 10), (65, 12, 100)] {
            let x_off = 0;
            let y_off = m * k;
            let acts = rand_vec(y_off + m * n + m * k, 60 + (m * n * k) as u64);
            let params = rand_vec(n * k + n, 61 + m as u64);
            // Forward X·Wᵀ + b with GELU on load: W [n, k].
            let mut fwd = Matmul::new(m, n, k, Mat::rows(Buf::Acts, x_off, k), Mat::strided(Buf::Params, 0, 1, k), Mat::rows(Buf::Acts, y_off, n));
            fwd.a_op = Op::Gelu;
            fwd.bias = Some(Mat::rows(Buf::Params, n * k, n));
            let (out, _) = run(&fwd, &acts, &params, 1);
            let want: Vec<f64> = dense(&acts, &params, &fwd).iter().enumerate().map(|(e, v)| v + params[n * k + e % n]).collect();
            assert_close(&format!("X·Wᵀ {m}x{n}x{k}"), &out[y_off..y_off + m * n], &want, 1e-5, 1e-4);
            // Backward data dY·W: dY [m, n] in acts, W [n, k] row-major, into [m, k].
            let d_off = y_off + m * n;
            let bwd = Matmul::new(m, k, n, Mat::rows(Buf::Acts, y_off, n), Mat::rows(Buf::Params, 0, k), Mat::rows(Buf::Acts, d_off, k));
            let (out, _) = run(&bwd, &acts, &params, 1);
            assert_close(&format!("dY·W {m}x{n}x{k}"), &out[d_off..d_off + m * k], &dense(&acts, &params, &bwd), 1e-5, 1e-4);
            // Weight gradient dYᵀ·X [n, k] with the bias column Σ_rows dY into grads.
            let mut wg = Matmul::new(n, k, m, Mat::rows(Buf::Acts, y_off, n).t(), Mat::rows(Buf::Acts, x_off, k), Mat::rows(Buf::Grads, 0, k));
            wg.bias_grad = Some(n * k);
            let (_, g) = run(&wg, &acts, &params, n * k + n);
            assert_close(&format!("dYᵀ·X {m}x{n}x{k}"), &g[..n * k], &dense(&acts, &params, &wg), 1e-5, 1e-4);
            let gb: Vec<f64> = (0..n).map(|j| (0..m).map(|i| acts[y_off + i * n + j]).sum()).collect();
            assert_close(&format!("bias column {m}x{n}x{k}"), &g[n * k..], &gb, 1e-5, 1e-4);
        }
    });
}

#[test]
fn matmul_variants_agree_to_rounding() {
    // All variants sum over k in ascending order with one multiply-add per term, so on
    // an adapter that evaluates fma the same way in every kernel they agree exactly; at
    // the least they agree to rounding.
    let (m, n, k) = (100usize, 64usize, 64usize);
    let acts = rand_vec(m * k + m * n, 70);
    let params = rand_vec(n * k + n, 71);
    let mut mm = Matmul::new(m, n, k, Mat::rows(Buf::Acts, 0, k), Mat::strided(Buf::Params, 0, 1, k), Mat::rows(Buf::Acts, m * k, n));
    mm.a_op = Op::Gelu;
    mm.bias = Some(Mat::rows(Buf::Params, n * k, n));
    let mut results = Vec::new();
    for i in 0..variants().len() {
        VARIANT.with(|v| v.set(i));
        results.push(run(&mm, &acts, &params, 1).0[m * k..].to_vec());
    }
    for r in &results[1..] {
        assert_close("variant vs portable", r, &results[0], 1e-6, 1e-6);
    }
}

#[test]
fn cpu_variant_reads_network_products_with_vector_loads() {
    use fmpe::kernels::matmul::{cpu_layout, CpuLayout};
    // A hidden layer 64 → 64 at 256 rows, as the network records it.
    let (m, w) = (256usize, 64usize);
    let x = Mat::rows(Buf::Acts, 0, w);
    let y = Mat::rows(Buf::Acts, m * w, w);
    let fwd = Matmul::new(m, w, w, x, Mat::strided(Buf::Params, 128, 1, w), y);
    assert_eq!(cpu_layout(&fwd), CpuLayout { k4: true, a_kvec: true, a_ivec: false, b_mode: 1, columns: 64, c_vec: true });
    let bwd = Matmul::new(m, w, w, y, Mat::rows(Buf::Params, 128, w), x);
    assert_eq!(cpu_layout(&bwd), CpuLayout { k4: true, a_kvec: true, a_ivec: false, b_mode: 2, columns: 64, c_vec: true });
    let mut wg = Matmul::new(w, w, m, y.t(), x, Mat::rows(Buf::Grads, 128, w));
    wg.bias_grad = Some(128 + w * w);
    // The bias column is a separate row sum, not a 65th column: one block of 64.
    assert_eq!(cpu_layout(&wg), CpuLayout { k4: true, a_kvec: false, a_ivec: true, b_mode: 2, columns: 64, c_vec: true });
    // The input layer (K = 1 + dim θ + dim x = 5) and a misaligned weight fall back to
    // scalar loads; the output layer (2 columns) computes 4 columns with scalar
    // stores.
    let input = Matmul::new(m, w, 5, Mat::rows(Buf::Acts, 0, 5), Mat::strided(Buf::Params, 0, 1, 5), y);
    assert_eq!(cpu_layout(&input), CpuLayout { k4: false, a_kvec: false, a_ivec: false, b_mode: 0, columns: 64, c_vec: true });
    let odd = Matmul::new(m, w, w, x, Mat::strided(Buf::Params, 130, 1, w), y);
    assert_eq!(cpu_layout(&odd).b_mode, 0);
    let out = Matmul::new(m, 2, w, x, Mat::strided(Buf::Params, 0, 1, w), y);
    assert_eq!(cpu_layout(&out), CpuLayout { k4: true, a_kvec: true, a_ivec: false, b_mode: 1, columns: 4, c_vec: false });
    // Width 100 (sbi's default network, the C2ST classifier at dim 10): two workgroups
    // of 52 columns (104 computed), in each of the three products; the bias column of
    // the weight gradient does not count.
    let (x, y) = (Mat::rows(Buf::Acts, 0, 100), Mat::rows(Buf::Acts, m * 100, 100));
    let fwd = Matmul::new(m, 100, 100, x, Mat::strided(Buf::Params, 128, 1, 100), y);
    assert_eq!(cpu_layout(&fwd), CpuLayout { k4: true, a_kvec: true, a_ivec: false, b_mode: 1, columns: 52, c_vec: true });
    let bwd = Matmul::new(m, 100, 100, y, Mat::rows(Buf::Params, 128, 100), x);
    assert_eq!(cpu_layout(&bwd), CpuLayout { k4: true, a_kvec: true, a_ivec: false, b_mode: 2, columns: 52, c_vec: true });
    let mut wg = Matmul::new(100, 100, m, y.t(), x, Mat::rows(Buf::Grads, 128, 100));
    wg.bias_grad = Some(128 + 100 * 100);
    assert_eq!(cpu_layout(&wg), CpuLayout { k4: true, a_kvec: false, a_ivec: true, b_mode: 2, columns: 52, c_vec: true });
}

#[test]
fn cpu_columns_spread_over_the_fewest_workgroups_in_multiples_of_4() {
    use fmpe::kernels::matmul::cpu_columns;
    // (columns of C, columns per workgroup): ⌈n / 64⌉ workgroups, n spread evenly and
    // rounded up to a multiple of 4.
    for (n, cw) in [(1, 4), (2, 4), (4, 4), (5, 8), (36, 36), (52, 52), (64, 64), (65, 36), (100, 52), (128, 64), (129, 44), (130, 44), (200, 52)] {
        assert_eq!(cpu_columns(n), cw, "{n} columns");
        assert!(cw % 4 == 0 && cw <= 64);
        assert_eq!((n as u32).div_ceil(cw), (n as u32).div_ceil(64), "{n} columns: the fewest workgroups");
        assert!((n as u32).div_ceil(cw) * cw - (n as u32) < 4 * (n as u32).div_ceil(64), "{n} columns: under 4 padded per workgroup");
    }
}

#[test]
fn cpu_variant_drops_vector_loads_when_a_batch_stride_is_misaligned() {
    // The weight gradient of a 64-wide layer over 256 rows (A = dYᵀ row-contiguous, B = X
    // j-contiguous): vec4 loads when both batch strides are multiples of 4, scalar loads
    // when only the parameter stride is not (every offset of a member moves by it).
    use fmpe::kernels::matmul::cpu_layout;
    let mut wg = Matmul::new(64, 64, 256, Mat::rows(Buf::Acts, 0, 64).t(), Mat::rows(Buf::Acts, 16384, 64), Mat::rows(Buf::Grads, 0, 64));
    wg.bias_grad = Some(4096);
    wg.batch = Some((4, 32768));
    wg.batch_param_stride = Some(4160);
    let l = cpu_layout(&wg);
    assert!(l.a_ivec && l.b_mode == 2 && l.c_vec, "{l:?}");
    wg.batch_param_stride = Some(4161);
    let l = cpu_layout(&wg);
    assert!(!l.a_kvec && !l.a_ivec && l.b_mode == 0 && !l.c_vec, "{l:?}");
}

/// `mm` with every operand offset moved by `by` in acts and by `by_par` in params and
/// grads (the bias-gradient offset too): the product a batch member z computes with
/// `by = z · stride`, `by_par = z · batch_param_stride`.
fn shifted(mm: &Matmul, by: usize, by_par: usize) -> Matmul {
    let sh = |m: Mat| Mat { off: m.off + if m.buf == Buf::Acts as u32 { by } else { by_par } as u32, ..m };
    Matmul {
        a: sh(mm.a),
        b: sh(mm.b),
        c: sh(mm.c),
        bias: mm.bias.map(sh),
        aux: mm.aux.map(|(m, o)| (sh(m), o)),
        res: mm.res.map(sh),
        pre: mm.pre.map(sh),
        a_mul: mm.a_mul.map(|(m, o)| (sh(m), o)),
        bias_grad: mm.bias_grad.map(|o| o + by_par),
        batch: None,
        batch_param_stride: None,
        ..*mm
    }
}

#[test]
fn matmul_batch_computes_independent_products_on_ragged_shapes() {
    // A batch of 3 products per dispatch (`Matmul::batch`), each in its own slice of
    // acts, params and grads: the three products of a layer (forward with bias, ReLU
    // and pre; backward data with a ReLU' aux; weight gradient with the bias column),
    // on ragged shapes and on aligned ones (the CPU variant's vec4 paths), with a
    // stride that is a multiple of 4 and one that is not (scalar fallback), and with
    // the parameters and gradients at a stride of their own
    // (`Matmul::batch_param_stride`, the same layer of every residual block). Every
    // member against the f64 reference of its own slice, and nothing outside the
    // members' outputs written.
    each_variant(|| {
        for &(m, n, k, pad) in &[(7usize, 2usize, 5usize, 0usize), (33, 65, 3, 1), (36, 64, 20, 0), (70, 100, 12, 3), (200, 100, 100, 0)] {
            for own_param_stride in [false, true] {
                let count = 3;
                let (x_off, y_off) = (0, m * k);
                let d_off = y_off + m * n;
                let pre_off = d_off + m * k;
                let stride = (pre_off + m * n).next_multiple_of(64) + pad;
                // The parameters (W [n, k], then b [n]) one layer apart, or at the acts stride.
                let pstride = if own_param_stride { (n * k + n).next_multiple_of(4) + pad } else { stride };
                let acts = rand_vec(count * stride, 80 + (m * n * k) as u64);
                let params = rand_vec(count * pstride, 81 + m as u64);
                let grads_len = count * pstride;
                let tag = |what: &str, z: usize| format!("{what} {m}x{n}x{k} stride {stride} / {pstride} member {z}");
                // Forward X·Wᵀ + b, ReLU, pre-activation stored too (W [n, k]).
                let mut fwd = Matmul::new(m, n, k, Mat::rows(Buf::Acts, x_off, k), Mat::strided(Buf::Params, 0, 1, k), Mat::rows(Buf::Acts, y_off, n));
                fwd.bias = Some(Mat::rows(Buf::Params, n * k, n));
                fwd.act = Op::Relu;
                fwd.pre = Some(Mat::rows(Buf::Acts, pre_off, n));
                // Backward data dY·W times ReLU'(X) into [m, k].
                let mut bwd = Matmul::new(m, k, n, Mat::rows(Buf::Acts, y_off, n), Mat::rows(Buf::Params, 0, k), Mat::rows(Buf::Acts, d_off, k));
                bwd.aux = Some((Mat::rows(Buf::Acts, x_off, k), Op::ReluGrad));
                // Weight gradient dYᵀ·X [n, k] with the bias column into grads.
                let mut wg = Matmul::new(n, k, m, Mat::rows(Buf::Acts, y_off, n).t(), Mat::rows(Buf::Acts, x_off, k), Mat::rows(Buf::Grads, 0, k));
                wg.bias_grad = Some(n * k);
                for mm in [&mut fwd, &mut bwd, &mut wg] {
                    mm.batch = Some((count, stride));
                    mm.batch_param_stride = own_param_stride.then_some(pstride);
                }
                let (out, _) = run(&fwd, &acts, &params, 1);
                let mut written = vec![false; acts.len()];
                for z in 0..count {
                    let one = shifted(&fwd, z * stride, z * pstride);
                    let (base, pbase) = (z * stride, z * pstride);
                    let pre: Vec<f64> = dense(&acts, &params, &one).iter().enumerate().map(|(e, v)| v + params[pbase + n * k + e % n]).collect();
                    let relu: Vec<f64> = pre.iter().map(|v| v.max(0.0)).collect();
                    assert_close(&tag("batched X·Wᵀ", z), &out[base + y_off..base + y_off + m * n], &relu, 1e-5, 1e-4);
                    assert_close(&tag("batched pre", z), &out[base + pre_off..base + pre_off + m * n], &relu, 1e-5, 1e-4);
                    written[base + y_off..base + y_off + m * n].fill(true);
                    written[base + pre_off..base + pre_off + m * n].fill(true);
                }
                for (i, (o, a)) in out.iter().zip(&acts).enumerate() {
                    assert!(written[i] || (o - a).abs() < 1e-6, "{}: acts[{i}] changed", tag("batched X·Wᵀ", 0));
                }
                let (out, _) = run(&bwd, &acts, &params, 1);
                for z in 0..count {
                    let one = shifted(&bwd, z * stride, z * pstride);
                    let base = z * stride;
                    let want: Vec<f64> = dense(&acts, &params, &one)
                        .iter()
                        .enumerate()
                        .map(|(e, v)| if acts[base + x_off + e] > 0.0 { *v } else { 0.0 })
                        .collect();
                    assert_close(&tag("batched dY·W ⊙ relu'", z), &out[base + d_off..base + d_off + m * k], &want, 1e-5, 1e-4);
                }
                let (_, g) = run(&wg, &acts, &params, grads_len);
                for z in 0..count {
                    let one = shifted(&wg, z * stride, z * pstride);
                    let (base, pbase) = (z * stride, z * pstride);
                    assert_close(&tag("batched dYᵀ·X", z), &g[pbase..pbase + n * k], &dense(&acts, &params, &one), 1e-5, 1e-4);
                    let gb: Vec<f64> = (0..n).map(|j| (0..m).map(|i| acts[base + y_off + i * n + j]).sum()).collect();
                    assert_close(&tag("batched bias column", z), &g[pbase + n * k..pbase + n * k + n], &gb, 1e-5, 1e-4);
                    assert!(g[pbase + n * k + n..(z + 1) * pstride].iter().all(|v| *v == 0.0), "{}: grads past the member written", tag("", z));
                }
            }
        }
    });
}
