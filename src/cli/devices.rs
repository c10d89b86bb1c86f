//! `fmpe devices`: the GPU adapters wgpu finds and the one fmpe uses.

use fmpe::error::{Error, Result};
use fmpe::Gpu;

pub(crate) fn devices() -> Result<()> {
    let all = fmpe::gpu::list_adapters(&super::util::gpu_options()?);
    if all.is_empty() {
        return Err(Error::NoAdapter { detail: String::new() });
    }
    for (i, a) in all.iter().enumerate() {
        println!("[{i}] {a}");
    }
    let gpu = Gpu::with_options(&super::util::gpu_options()?)?;
    if let Some(a) = gpu.adapter() {
        println!("fmpe uses: {a}");
    }
    let t = gpu.adapter_traits();
    println!(
        "kernels: {} matmul (subgroups {}, sizes {}..{}; FMPE_KERNELS=portable|cpu|gpu overrides)",
        gpu.matmul_variant().name(),
        if t.subgroups { "enabled" } else { "unavailable" },
        t.subgroup_min_size,
        t.subgroup_max_size
    );
    Ok(())
}

