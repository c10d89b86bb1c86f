//! The matmul kernel (`src/kernels/matmul.rs`, `shaders/matmul.wgsl`) against f64
//! references on small random inputs: every epilogue step, the ones column, strides and
//! broadcasting, the tangent multiplier (`a_mul`) and primal rows (`primal_rows`).
mod common;

use common::*;
use fmpe::kernels::{Bindings, Buf, Mat, Matmul, Op, ProgramBuilder};

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
    let gpu = common::gpu();
    let a = gpu.storage_from("acts", &to_f32(acts));
    let p = gpu.storage_from("params", &to_f32(params));
    let g = gpu.storage("grads", grads_len as u64 * 4);
    let mut b = ProgramBuilder::new(gpu);
    b.matmul(mm);
    let prog = b.build(gpu, Bindings { acts: Some(&a), params: Some(&p), grads: Some(&g), ..Default::default() }).unwrap();
    prog.run(gpu).unwrap();
    (to_f64(&gpu.read_f32(&a, 0, acts.len()).unwrap()), to_f64(&gpu.read_f32(&g, 0, grads_len).unwrap()))
}

fn get(buf: &[f64], params: &[f64], m: Mat, i: usize, j: usize) -> f64 {
    let idx = m.off as usize + i * m.rs as usize + j * m.cs as usize;
    if m.buf == Buf::Params as u32 { params[idx] } else { buf[idx] }
}

#[test]
fn matmul_forward_epilogue_matches_reference() {
    // C = res + aux' ⊙ act(gelu(A) Wᵀ + b), pre stored; odd sizes cross tile borders.
    for &(m, n, k) in &[(1usize, 3usize, 2usize), (70, 65, 19), (130, 7, 33)] {
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
}

#[test]
fn matmul_weight_gradient_with_ones_column() {
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
}

#[test]
fn matmul_broadcast_rows_and_in_place_residual() {
    // C = C + aux_row ⊙ (A B): residual aliases the output; aux broadcast (row stride 0).
    let (m, n, k) = (67usize, 5usize, 3usize);
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
            assert!((out[c_off + i * n + j] - want).abs() < 1e-5, "({i},{j})");
        }
    }
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
}

#[test]
fn matmul_primal_rows_share_one_block_of_primal_rows() {
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
}
