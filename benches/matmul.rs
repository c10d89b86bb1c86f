//! Matmul kernel throughput: `cargo bench --bench matmul` (GFLOP/s of the fused tiled
//! matmul at network-layer shapes; many dispatches in one submission).
use std::time::Instant;

use fmpe::kernels::{Bindings, Buf, Mat, Matmul, Op, ProgramBuilder};
use fmpe::Gpu;

fn main() -> fmpe::Result<()> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.adapter().map(|a| a.to_string()).unwrap_or_default());
    for &(m, n, k, reps) in &[(256usize, 64usize, 64usize, 400usize), (1024, 64, 64, 100), (256, 128, 128, 100), (64, 65, 256, 400)] {
        let acts = gpu.storage("acts", ((m * k + m * n) * 4) as u64);
        let params = gpu.storage("params", ((n * k + n) * 4) as u64);
        let mut b = ProgramBuilder::new(&gpu);
        let mut mm = Matmul::new(m, n, k, Mat::rows(Buf::Acts, 0, k), Mat::strided(Buf::Params, 0, 1, k), Mat::rows(Buf::Acts, m * k, n));
        mm.a_op = if std::env::var("NOGELU").is_ok() { Op::Id } else { Op::Gelu };
        mm.bias = Some(Mat::rows(Buf::Params, n * k, n));
        for _ in 0..reps {
            b.matmul(&mm);
        }
        let prog = b.build(&gpu, Bindings { acts: Some(&acts), params: Some(&params), ..Default::default() })?;
        prog.run(&gpu)?;
        gpu.wait()?;
        let t0 = Instant::now();
        prog.run(&gpu)?;
        gpu.wait()?;
        let s = t0.elapsed().as_secs_f64();
        let flop = 2.0 * (m * n * k * reps) as f64;
        println!("matmul [{m}x{k}]·[{k}x{n}] (GELU on load, bias): {:.2} GFLOP/s, {:.1} µs per dispatch", flop / s / 1e9, s / reps as f64 * 1e6);
    }
    Ok(())
}
