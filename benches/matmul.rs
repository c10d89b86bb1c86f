//! Matmul kernel throughput per variant: `cargo bench --bench matmul` (GFLOP/s of the
//! fused matmul at network-layer shapes and layouts; many dispatches in one
//! submission). The CPU variant runs twice, alternately, reading the weights from
//! their storage buffer and from the texture mirror the network's programs use
//! (`fmpe::gpu::ParamsTexture`); medians of 5. `fmpe bench --suite` measures the same
//! products with the network's other kernels.
use fmpe::bench::{matmul_with, MatmulLayout};
use fmpe::gpu::{GpuOptions, KernelChoice};
use fmpe::Gpu;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

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
        let cpu = choice == KernelChoice::Cpu;
        let reps = if cpu { 5 } else { 1 };
        for &(rows, width) in &[(1024usize, 64usize), (256, 64), (1024, 100), (256, 100), (1024, 128)] {
            for layout in [MatmulLayout::ForwardGeluBias, MatmulLayout::BackwardData, MatmulLayout::WeightGradBias] {
                let (mut tex, mut buf) = (Vec::new(), Vec::new());
                for _ in 0..reps {
                    tex.push(matmul_with(&gpu, layout, rows, width, width, 0.3, true)?.gflops);
                    if cpu {
                        buf.push(matmul_with(&gpu, layout, rows, width, width, 0.3, false)?.gflops);
                    }
                }
                let what = format!("{rows:>5} rows {width:>3} → {width:>3} {layout:?}");
                if cpu {
                    println!("  {what:<42} {:7.2} GFLOP/s (weights from their buffer: {:.2})", median(tex), median(buf));
                } else {
                    println!("  {what:<42} {:7.2} GFLOP/s", median(tex));
                }
            }
        }
    }
    Ok(())
}
