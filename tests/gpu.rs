//! The GPU context: adapter options (parsed from variables the caller supplies, serde
//! round trip, selectors that match nothing), a borrowed device, and the per-device
//! cache the kernels use.
mod common;

use fmpe::gpu::{choose_matmul, AdapterSelector, AdapterTraits, GpuOptions, KernelChoice, MatmulVariant, PowerPreference};
use fmpe::kernels::{stats, Bindings, ProgramBuilder, StatsParams};
use fmpe::{Error, Gpu};

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

#[test]
fn options_from_variables() {
    assert_eq!(GpuOptions::from_vars(vars(&[])).unwrap(), GpuOptions::default());
    assert_eq!(GpuOptions::from_vars(vars(&[("WGPU_BACKEND", ""), ("WGPU_ADAPTER_NAME", " ")])).unwrap(), GpuOptions::default());
    let o = GpuOptions::from_vars(vars(&[("WGPU_BACKEND", "vulkan"), ("WGPU_ADAPTER_INDEX", "1"), ("WGPU_POWER_PREF", "low")])).unwrap();
    assert_eq!(o.backends.as_deref(), Some("vulkan"));
    assert_eq!(o.adapter, AdapterSelector::Index(1));
    assert_eq!(o.power_preference, PowerPreference::LowPower);
    let o = GpuOptions::from_vars(vars(&[("WGPU_ADAPTER_INDEX", "1"), ("WGPU_ADAPTER_NAME", "llvmpipe")])).unwrap();
    assert_eq!(o.adapter, AdapterSelector::Name("llvmpipe".into()), "the name wins over the index");
}

#[test]
fn kernel_choice_from_variables() {
    for (v, want) in [("cpu", KernelChoice::Cpu), ("GPU", KernelChoice::Gpu), ("portable", KernelChoice::Portable), ("auto", KernelChoice::Auto)] {
        assert_eq!(GpuOptions::from_vars(vars(&[("FMPE_KERNELS", v)])).unwrap().kernels, want);
    }
    match GpuOptions::from_vars(vars(&[("FMPE_KERNELS", "fast")])) {
        Err(Error::InvalidOption { name, message }) => {
            assert_eq!(name, "kernels");
            assert!(message.contains("'fast'"), "{message}");
        }
        other => panic!("expected an option error, got {other:?}"),
    }
}

fn traits(device_type: Option<wgpu::DeviceType>, subgroups: bool, min: u32, max: u32) -> AdapterTraits {
    AdapterTraits { device_type, subgroups, subgroup_min_size: min, subgroup_max_size: max }
}

#[test]
fn kernel_selection_rule_on_fake_adapters() {
    use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu};
    let lavapipe = traits(Some(Cpu), true, 8, 8);
    let discrete = traits(Some(DiscreteGpu), true, 32, 32);
    let no_subgroups = traits(Some(Cpu), false, 8, 8);
    let wide_cpu = traits(Some(Cpu), true, 4, 16); // e.g. WARP: sizes vary
    let borrowed = traits(None, true, 0, 0);
    let auto = |t: &AdapterTraits| choose_matmul(KernelChoice::Auto, t).unwrap();
    assert_eq!(auto(&lavapipe), MatmulVariant::Cpu);
    assert_eq!(auto(&discrete), MatmulVariant::Gpu);
    assert_eq!(auto(&traits(Some(IntegratedGpu), false, 0, 0)), MatmulVariant::Gpu);
    assert_eq!(auto(&no_subgroups), MatmulVariant::Gpu, "a CPU adapter without subgroups gets the specialised tiles");
    assert_eq!(auto(&wide_cpu), MatmulVariant::Gpu, "the CPU kernel needs exactly 8 lanes");
    assert_eq!(auto(&borrowed), MatmulVariant::Gpu, "unknown adapter: nothing beyond WebGPU's core");
    // Explicit choices are honoured, and an impossible one is an option error.
    assert_eq!(choose_matmul(KernelChoice::Portable, &lavapipe).unwrap(), MatmulVariant::Portable);
    assert_eq!(choose_matmul(KernelChoice::Gpu, &lavapipe).unwrap(), MatmulVariant::Gpu);
    assert_eq!(choose_matmul(KernelChoice::Cpu, &lavapipe).unwrap(), MatmulVariant::Cpu);
    for t in [discrete, no_subgroups, wide_cpu, borrowed] {
        assert!(matches!(choose_matmul(KernelChoice::Cpu, &t), Err(Error::InvalidOption { .. })), "{t:?}");
    }
}

#[test]
fn the_device_reports_the_variant_it_runs() {
    let gpu = common::gpu();
    let t = gpu.adapter_traits();
    assert_eq!(gpu.matmul_variant(), choose_matmul(common::gpu_options().kernels, &t).unwrap());
    // A borrowed device starts from the rule without its adapter, and learns it.
    let borrowed = Gpu::from_device(gpu.device.clone(), gpu.queue.clone()).unwrap();
    assert_eq!(borrowed.adapter_traits().device_type, None);
    let portable = borrowed.with_kernels(KernelChoice::Portable).unwrap();
    assert_eq!(portable.matmul_variant(), MatmulVariant::Portable);
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
