//! Matmul kernel throughput per variant: `cargo bench --bench matmul` (GFLOP/s of the
//! fused matmul at network-layer shapes and layouts; many dispatches in one
//! submission). `fmpe bench --suite` measures the same products with the network's
//! other kernels.
use fmpe::bench::{matmul, MatmulLayout};
use fmpe::gpu::{GpuOptions, KernelChoice};
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
        for &(rows, width) in &[(1024usize, 64usize), (256, 64), (1024, 128), (256, 100)] {
            for layout in [MatmulLayout::ForwardGeluBias, MatmulLayout::BackwardData, MatmulLayout::WeightGradBias] {
                let b = matmul(&gpu, layout, rows, width, width, 1.0)?;
                println!("  {rows:>5} rows {width:>3} → {width:>3} {:<16} {:7.2} GFLOP/s", format!("{layout:?}"), b.gflops);
            }
        }
    }
    Ok(())
}
