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

#[test]
fn unroll_keeps_the_live_copies_of_a_specialised_pipeline() {
    use fmpe::kernels::registry::unroll;
    let src = "// #unroll b 8 NB\nb{b}\n// #end\n// #unroll g 16 NB*2*C_VEC\ng{g}\n// #end\n// #unroll q 4 NB/4*!C_VEC\nq{q}\n// #end\n";
    let lines = |s: &str, p: char| s.lines().filter(|l| l.starts_with(p)).count();
    // Without constants every copy stays (the generic module).
    let all = unroll(src, None).unwrap();
    assert_eq!((lines(&all, 'b'), lines(&all, 'g'), lines(&all, 'q')), (8, 16, 4));
    // NB = 3 with the vec4 epilogue: 3, 6, 0 copies.
    let s = unroll(src, Some(&[("NB", 3.0), ("C_VEC", 1.0)])).unwrap();
    assert_eq!((lines(&s, 'b'), lines(&s, 'g'), lines(&s, 'q')), (3, 6, 0));
    assert!(s.contains("b2\n") && !s.contains("b3\n") && s.contains("g5\n") && !s.contains("g6\n"));
    // NB = 8 without the vec4 epilogue: 8, 0 and 8/4 = 2 copies.
    let s = unroll(src, Some(&[("NB", 8.0), ("C_VEC", 0.0)])).unwrap();
    assert_eq!((lines(&s, 'b'), lines(&s, 'g'), lines(&s, 'q')), (8, 0, 2));
    // The last value of a repeated constant wins (a spec overriding the kernel's own).
    let s = unroll(src, Some(&[("NB", 8.0), ("C_VEC", 0.0), ("NB", 1.0)])).unwrap();
    assert_eq!(lines(&s, 'b'), 1);
    // A LIVE factor naming a constant the pipeline does not set is an error, not a guess.
    let e = unroll(src, Some(&[("NB", 2.0)])).unwrap_err().to_string();
    assert!(e.contains("#unroll g 16 NB*2*C_VEC"), "{e}");
    assert!(unroll("// #unroll b 8 NB/0\n// #end\n", Some(&[("NB", 2.0)])).is_err());
    assert!(unroll("// #unroll b 8 NB/^0\n// #end\n", Some(&[("NB", 2.0)])).is_err());
}

#[test]
fn unroll_divides_rounding_up_with_a_caret() {
    use fmpe::kernels::registry::unroll;
    // `CW/^8`: the copies b with 8 b < CW; `CW/8` rounds down.
    let src = "// #unroll b 8 CW/^8\nb{b}\n// #end\n// #unroll h 2 CW/^32*C_VEC\nh{h}\n// #end\n// #unroll d 8 CW/8\nd{d}\n// #end\n";
    let lines = |s: &str, p: char| s.lines().filter(|l| l.starts_with(p)).count();
    for (cw, b, h, d) in [(4.0, 1, 1, 0), (8.0, 1, 1, 1), (36.0, 5, 2, 4), (52.0, 7, 2, 6), (64.0, 8, 2, 8)] {
        let s = unroll(src, Some(&[("CW", cw), ("C_VEC", 1.0)])).unwrap();
        assert_eq!((lines(&s, 'b'), lines(&s, 'h'), lines(&s, 'd')), (b, h, d), "CW = {cw}");
    }
    let s = unroll(src, Some(&[("CW", 52.0), ("C_VEC", 0.0)])).unwrap();
    assert_eq!(lines(&s, 'h'), 0);
    // COUNT still bounds the copies; without constants every copy stays.
    assert_eq!(lines(&unroll(src, Some(&[("CW", 100.0), ("C_VEC", 1.0)])).unwrap(), 'b'), 8);
    assert_eq!(lines(&unroll(src, None).unwrap(), 'b'), 8);
}

#[test]
fn a_specialised_cpu_matmul_source_is_smaller_and_still_validates() {
    use fmpe::kernels::specialized_source;
    let generic = shader_source("matmul_cpu").unwrap();
    let spec = [("CW", 8.0), ("C_VEC", 1.0)];
    let small = specialized_source("matmul_cpu", Some(&spec)).unwrap();
    // One column group instead of eight in every k loop, 2 vec4 stores instead of 16 + 64
    // scalar ones: the module the driver compiles shrinks several times over.
    assert!(small.len() * 3 < generic.len(), "{} vs {} bytes", small.len(), generic.len());
    // Other column widths keep a module that validates (52: a partial 8-column group and
    // a partial 32-column half; 4: half of one group).
    let wide = [(64.0, 0.0), (52.0, 1.0), (52.0, 0.0), (36.0, 1.0), (4.0, 0.0)].map(|(cw, v)| specialized_source("matmul_cpu", Some(&[("CW", cw), ("C_VEC", v)])).unwrap());
    for src in std::iter::once(&small).chain(&wide) {
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::SUBGROUP);
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE).subgroup_operations(naga::valid::SubgroupOperationSet::all());
        v.validate(&module).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
    }
}

#[test]
fn a_malformed_live_product_fails_even_in_the_generic_source() {
    use fmpe::kernels::registry::unroll;
    // Well-formed LIVE products leave the generic expansion alone (every copy).
    assert_eq!(unroll("// #unroll b 3 NB/4*!C_VEC*2\nb{b}\n// #end\n", None).unwrap(), "b0\nb1\nb2\n");
    assert_eq!(unroll("// #unroll b 3 CW/^8\nb{b}\n// #end\n", None).unwrap(), "b0\nb1\nb2\n");
    for bad in ["NB/0", "NB/", "nb", "!", "NB**2", "NB/X", "NB/^", "NB/^0", "NB^4", "NB/4^"] {
        let src = format!("// #unroll b 3 {bad}\nb{{b}}\n// #end\n");
        assert!(unroll(&src, None).is_err(), "{bad} accepted");
    }
}
