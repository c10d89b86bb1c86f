//! `fmpe devices`: the GPU adapters wgpu finds and the one fmpe uses.

use fmpe::error::{Error, Result};
use fmpe::gpu::AdapterSummary;
use fmpe::Gpu;
use serde::Serialize;

pub(crate) fn devices() -> Result<()> {
    let all = fmpe::gpu::list_adapters(&super::util::gpu_options()?);
    if all.is_empty() {
        return Err(Error::NoAdapter { detail: String::new() });
    }
    for (i, a) in all.iter().enumerate() {
        crate::say!("[{i}] {a}");
    }
    let gpu = Gpu::with_options(&super::util::gpu_options()?)?;
    if let Some(a) = gpu.adapter() {
        crate::say!("fmpe uses: {a}");
    }
    let t = gpu.adapter_traits();
    crate::say!(
        "kernels: {} matmul (subgroups {}, sizes {}..{}; FMPE_KERNELS=portable|cpu|gpu overrides)",
        gpu.matmul_variant().name(),
        if t.subgroups { "enabled" } else { "unavailable" },
        t.subgroup_min_size,
        t.subgroup_max_size
    );
    let entry = |index: Option<usize>, a: &AdapterSummary| Adapter {
        index,
        name: a.name.clone(),
        backend: a.backend.clone(),
        device_type: a.device_type.clone(),
        driver: a.driver.clone(),
    };
    let used = gpu.adapter().map(|u| {
        let index = all.iter().position(|a| a.name == u.name && a.backend == u.backend && a.driver == u.driver);
        entry(index, u)
    });
    let adapters = all.iter().enumerate().map(|(i, a)| entry(Some(i), a)).collect();
    super::json::emit("devices", DevicesReport { adapters, used, matmul_variant: gpu.matmul_variant().name() })
}

/// One adapter in `fmpe devices --json`.
#[derive(Serialize, Debug)]
struct Adapter {
    /// Its index (what `--adapter N` and WGPU_ADAPTER_INDEX take); `null` for an
    /// adapter not in the list.
    index: Option<usize>,
    name: String,
    backend: String,
    device_type: String,
    driver: String,
}

/// `fmpe devices --json`.
#[derive(Serialize, Debug)]
struct DevicesReport {
    /// Every adapter wgpu finds, numbered.
    adapters: Vec<Adapter>,
    /// The one fmpe opens with the current selection.
    used: Option<Adapter>,
    /// The matmul kernel variant it runs (`portable`, `cpu` or `gpu`; see `FMPE_KERNELS`).
    matmul_variant: &'static str,
}

