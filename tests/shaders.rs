//! Every shader module parses and validates with naga, and every kernel's entry point
//! exists in the module its spec names (no GPU needed).

use fmpe::kernels::{kernels, shader_modules, shader_source, FAMILIES};

fn parse(name: &str) -> naga::Module {
    let src = shader_source(name).unwrap();
    naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(&src)))
}

#[test]
fn every_shader_validates_with_naga() {
    for m in shader_modules() {
        let src = shader_source(m.name).unwrap();
        let module = parse(m.name);
        // The CPU matmul uses subgroup operations (a device feature fmpe requests where
        // the adapter has it); everything else needs nothing beyond WebGPU's core.
        let caps = if src.contains("subgroupBroadcast") { naga::valid::Capabilities::SUBGROUP } else { naga::valid::Capabilities::empty() };
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE).subgroup_operations(naga::valid::SubgroupOperationSet::all());
        v.validate(&module)
            .unwrap_or_else(|e| panic!("{}.wgsl does not validate:\n{}", m.name, e.emit_to_string(&src)));
    }
}

#[test]
fn every_kernel_has_its_entry_point_in_its_own_module() {
    for k in kernels() {
        let module = parse(k.module);
        assert!(
            module.entry_points.iter().any(|e| e.name == k.entry_point),
            "module {} has no entry point {} (kernel {})",
            k.module,
            k.entry_point,
            k.name
        );
    }
}

#[test]
fn every_entry_point_belongs_to_a_kernel() {
    for m in shader_modules() {
        for e in parse(m.name).entry_points {
            assert!(
                kernels().any(|k| k.module == m.name && k.entry_point == e.name),
                "entry point {} of {} has no kernel spec",
                e.name,
                m.name
            );
        }
    }
}

#[test]
fn registry_names_are_unique_and_files_follow_their_family() {
    let mut names: Vec<&str> = kernels().map(|k| k.name).collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "kernel names must be unique");
    let mut consts: Vec<&str> = FAMILIES.iter().flat_map(|f| f.constants.iter().map(|c| c.name)).collect();
    let n = consts.len();
    consts.sort();
    consts.dedup();
    assert_eq!(consts.len(), n, "WGSL constant names must be unique");
    for f in FAMILIES {
        for m in f.modules {
            assert!(
                m.name == f.name || m.name.starts_with(&format!("{}_", f.name)),
                "shader {} of family {} must be named {}.wgsl or {}_*.wgsl",
                m.name,
                f.name,
                f.name,
                f.name
            );
        }
        for k in f.kernels {
            assert!(f.modules.iter().any(|m| m.name == k.module), "kernel {} names a module outside family {}", k.name, f.name);
        }
    }
}

#[test]
fn wgsl_constants_come_from_the_rust_definitions() {
    let src = shader_source("matmul").unwrap();
    assert!(src.contains(&format!("const OP_GELU: u32 = {}u;", fmpe::kernels::Op::Gelu as u32)));
    assert!(src.contains(&format!("const MATMUL_FLAG_AMUL: u32 = {}u;", fmpe::kernels::matmul::FLAG_AMUL)));
    let src = shader_source("transform").unwrap();
    assert!(src.contains(&format!("const TRANSFORM_DATA: u32 = {}u;", fmpe::kernels::TransformParams::DATA)));
    // No shader defines a shared constant itself.
    for m in shader_modules() {
        for c in FAMILIES.iter().flat_map(|f| f.constants) {
            assert!(!m.source.contains(&format!("const {}:", c.name)), "{} redefines {}", m.name, c.name);
        }
    }
}
