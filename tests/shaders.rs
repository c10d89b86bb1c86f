//! Every shader module parses and validates with naga (no GPU needed).

#[test]
fn every_shader_validates_with_naga() {
    for name in fmpe::kernels::SHADER_MODULES {
        let src = fmpe::kernels::shader_source(name).unwrap();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(&src)));
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        v.validate(&module)
            .unwrap_or_else(|e| panic!("{name}.wgsl does not validate:\n{}", e.emit_to_string(&src)));
    }
}

#[test]
fn every_kernel_has_its_entry_point() {
    for k in fmpe::kernels::Kernel::ALL {
        let found = fmpe::kernels::SHADER_MODULES.iter().any(|m| {
            let src = fmpe::kernels::shader_source(m).unwrap();
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            module.entry_points.iter().any(|e| e.name == k.entry_point())
        });
        assert!(found, "no shader defines entry point {}", k.entry_point());
    }
}
