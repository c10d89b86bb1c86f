//! Matmul kernel throughput per variant: `cargo bench --bench matmul` (GFLOP/s of the
//! fused matmul at network-layer shapes and layouts; many dispatches in one
//! submission). `fmpe bench --suite` measures the same products with the network's
//! other kernels.
use std::time::Instant;

use fmpe::gpu::{GpuOptions, KernelChoice};
use fmpe::kernels::{Bindings, Buf, Mat, Matmul, Op, ProgramBuilder};
use fmpe::Gpu;

fn main() -> fmpe::Result<()> {
    for choice in [KernelChoice::Portable, KernelChoice::Gpu, KernelChoice::Cpu] {
        let gpu = match Gpu::with_options(&GpuOptions { kernels: choice, ..Default::default() }) {
            Ok(g) => g,
            Err(e) => {
                println!("{choice:?}: {e}");
                continue;
            }
        };
        println!("{choice:?} on {}", gpu.adapter().map(|a| a.to_string()).unwrap_or_default());
        for &(m, n, k) in &[(1024usize, 64usize, 64usize), (256, 64, 64), (1024, 128, 128), (256, 100, 100)] {
            let acts = gpu.storage("acts", ((m * k + m * n) * 4) as u64);
            let params = gpu.storage("params", ((n * k + n) * 4) as u64);
            let grads = gpu.storage("grads", ((n * k + n + k) * 4) as u64);
            let fwd = {
                let mut mm = Matmul::new(m, n, k, Mat::rows(Buf::Acts, 0, k), Mat::strided(Buf::Params, 0, 1, k), Mat::rows(Buf::Acts, m * k, n));
                mm.a_op = Op::Gelu;
                mm.bias = Some(Mat::rows(Buf::Params, n * k, n));
                mm
            };
            // dY [m, n] · W [n, k] -> [m, k]
            let bwd = Matmul::new(m, k, n, Mat::rows(Buf::Acts, m * k, n), Mat::rows(Buf::Params, 0, k), Mat::rows(Buf::Acts, 0, k));
            // dYᵀ [n, m] · X [m, k] -> gW [n, k] with bias column
            let wgrad = {
                let mut mm = Matmul::new(n, k, m, Mat::rows(Buf::Acts, m * k, n).t(), Mat::rows(Buf::Acts, 0, k), Mat::rows(Buf::Grads, 0, k));
                mm.bias_grad = Some(n * k);
                mm
            };
            for (name, mm) in [("X·Wᵀ gelu+bias", fwd), ("dY·W", bwd), ("dYᵀ·X +bias col", wgrad)] {
                let reps = (400_000_000 / (2 * m * n * k)).clamp(10, 2000);
                let mut b = ProgramBuilder::new(&gpu);
                for _ in 0..reps {
                    b.matmul(&mm);
                }
                let prog = b.build(&gpu, Bindings { acts: Some(&acts), params: Some(&params), grads: Some(&grads), ..Default::default() })?;
                prog.run(&gpu)?;
                gpu.wait()?;
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let t0 = Instant::now();
                    prog.run(&gpu)?;
                    gpu.wait()?;
                    best = best.min(t0.elapsed().as_secs_f64());
                }
                let flop = 2.0 * (m * n * k * reps) as f64;
                println!("  {m:>5}×{k:>3}·{k:>3}×{n:>3} {name:<16} {:7.2} GFLOP/s", flop / best / 1e9);
            }
        }
    }
    Ok(())
}
