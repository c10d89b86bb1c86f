//! The GPU context: adapter options (parsed from variables the caller supplies, serde
//! round trip, selectors that match nothing), a borrowed device, and the per-device
//! cache the kernels use.
mod common;

use fmpe::gpu::{AdapterSelector, GpuOptions, PowerPreference};
use fmpe::kernels::{stats, Bindings, ProgramBuilder, StatsParams};
use fmpe::{Error, Gpu};

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

#[test]
fn options_from_variables() {
    assert_eq!(GpuOptions::from_vars(vars(&[])), GpuOptions::default());
    assert_eq!(GpuOptions::from_vars(vars(&[("WGPU_BACKEND", ""), ("WGPU_ADAPTER_NAME", " ")])), GpuOptions::default());
    let o = GpuOptions::from_vars(vars(&[("WGPU_BACKEND", "vulkan"), ("WGPU_ADAPTER_INDEX", "1"), ("WGPU_POWER_PREF", "low")]));
    assert_eq!(o.backends.as_deref(), Some("vulkan"));
    assert_eq!(o.adapter, AdapterSelector::Index(1));
    assert_eq!(o.power_preference, PowerPreference::LowPower);
    let o = GpuOptions::from_vars(vars(&[("WGPU_ADAPTER_INDEX", "1"), ("WGPU_ADAPTER_NAME", "llvmpipe")]));
    assert_eq!(o.adapter, AdapterSelector::Name("llvmpipe".into()), "the name wins over the index");
}

#[test]
fn options_are_serde_types() {
    let o = GpuOptions { adapter: AdapterSelector::Name("lavapipe".into()), backends: Some("vulkan".into()), ..Default::default() };
    let back: GpuOptions = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(back, o);
    let partial: GpuOptions = serde_json::from_str(r#"{"adapter": {"Index": 0}}"#).unwrap();
    assert_eq!(partial, GpuOptions { adapter: AdapterSelector::Index(0), ..Default::default() });
}

#[test]
fn selectors_that_match_nothing_are_no_adapter_errors() {
    let by_name = GpuOptions { adapter: AdapterSelector::Name("no such adapter 12345".into()), ..common::gpu_options() };
    assert!(matches!(Gpu::with_options(&by_name), Err(Error::NoAdapter { .. })));
    let by_index = GpuOptions { adapter: AdapterSelector::Index(10_000), ..common::gpu_options() };
    assert!(matches!(Gpu::with_options(&by_index), Err(Error::NoAdapter { .. })));
}

#[test]
fn an_adapter_found_by_index_opens() {
    let opts = common::gpu_options();
    let listed = fmpe::gpu::list_adapters(&opts);
    assert!(!listed.is_empty(), "GPU tests need an adapter");
    let gpu = Gpu::with_options(&GpuOptions { adapter: AdapterSelector::Index(0), ..opts }).unwrap();
    assert_eq!(gpu.adapter().map(|a| a.name.clone()), Some(listed[0].name.clone()));
}

#[test]
fn a_borrowed_device_runs_kernels_with_its_own_cache() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    let owner = common::gpu();
    let gpu = Gpu::from_device(owner.device.clone(), owner.queue.clone()).unwrap();
    send_sync(&gpu);
    // z-score one column of 4 values on the borrowed context.
    let data = gpu.storage_from("data", &[1.0, 2.0, 3.0, 4.0]);
    let acts = gpu.storage("acts", 16);
    let p = StatsParams { rows: 4, cols: 1, off: 0, stats_off: 0 };
    let mut b = ProgramBuilder::new(&gpu);
    stats::column_stats(&mut b, &p);
    stats::zscore(&mut b, &p);
    b.build(&gpu, Bindings { acts: Some(&acts), data: Some(&data), ..Default::default() }).unwrap().run(&gpu).unwrap();
    let z = gpu.read_f32(&data, 0, 4).unwrap();
    let sd = (5.0f32 / 3.0).sqrt();
    for (got, want) in z.iter().zip([-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]) {
        assert!((got - want).abs() < 1e-6, "{z:?}");
    }
    assert_eq!(gpu.dispatch_count(), 2);
    assert_eq!(owner.dispatch_count(), 0, "counters belong to the context");
    // The cache holds one value per type and context.
    let a = gpu.cached(|_| Ok(41u64)).unwrap();
    let b = gpu.cached(|_| Ok(0u64)).unwrap();
    assert_eq!((*a, *b), (41, 41));
}
