//! Every Rust parameter block has the size and field offsets of its WGSL twin, as naga
//! lays the WGSL struct out (no GPU needed).

use fmpe::kernels::registry::{FieldLayout, StructLayout};
use fmpe::kernels::{kernels, shader_modules, shader_source, FAMILIES};

struct Parsed {
    module: naga::Module,
    layouter: naga::proc::Layouter,
}

fn parse(name: &str) -> Parsed {
    let module = naga::front::wgsl::parse_str(&shader_source(name).unwrap()).unwrap();
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    Parsed { module, layouter }
}

/// (name, byte offset, byte size) of one WGSL struct member.
type Member = (String, u32, u32);

/// Every member of the WGSL struct `name`, and its span.
fn wgsl_struct(p: &Parsed, name: &str) -> Option<(Vec<Member>, u32)> {
    p.module.types.iter().find_map(|(_, ty)| match &ty.inner {
        naga::TypeInner::Struct { members, span } if ty.name.as_deref() == Some(name) => Some((
            members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset, p.layouter[m.ty].size))
                .collect(),
            *span,
        )),
        _ => None,
    })
}

/// Compares a Rust layout with the WGSL struct of the same name in `p`.
fn check(p: &Parsed, l: &StructLayout) -> Result<(), String> {
    let (members, span) = wgsl_struct(p, l.wgsl_name).ok_or_else(|| format!("no WGSL struct {}", l.wgsl_name))?;
    let who = format!("{} vs WGSL {}", l.rust_name, l.wgsl_name);
    if span as usize != l.size {
        return Err(format!("{who}: size {} vs {span}", l.size));
    }
    let listed: usize = l.fields.iter().map(|f| f.size).sum();
    if listed != l.size {
        return Err(format!("{who}: the listed fields cover {listed} of {} bytes", l.size));
    }
    let is_pad = |n: &str| n.starts_with("pad");
    for f in l.fields.iter().filter(|f| !is_pad(f.name)) {
        let (_, off, size) =
            members.iter().find(|m| m.0 == f.name).ok_or_else(|| format!("{who}: WGSL has no member {}", f.name))?;
        if (*off as usize, *size as usize) != (f.offset, f.size) {
            return Err(format!("{who}: {} at {}+{} in Rust, {off}+{size} in WGSL", f.name, f.offset, f.size));
        }
    }
    for (name, ..) in members.iter().filter(|m| !is_pad(&m.0)) {
        if !l.fields.iter().any(|f| f.name == name) {
            return Err(format!("{who}: Rust has no field {name}"));
        }
    }
    Ok(())
}

#[test]
fn every_parameter_block_matches_its_wgsl_struct() {
    for k in kernels() {
        let p = parse(k.module);
        let l = (k.params)();
        check(&p, &l).unwrap_or_else(|e| panic!("kernel {}: {e}", k.name));
        // The block is the one bound at @group(0) @binding(0) of the kernel's module.
        let bound = p.module.global_variables.iter().find_map(|(_, g)| {
            (g.binding == Some(naga::ResourceBinding { group: 0, binding: 0 })).then(|| p.module.types[g.ty].name.clone())
        });
        assert_eq!(bound.flatten().as_deref(), Some(l.wgsl_name), "binding 0 of {}", k.module);
    }
}

#[test]
fn every_shared_struct_matches_wherever_it_is_declared() {
    for f in FAMILIES {
        for s in f.structs {
            let l = s();
            let mut seen = 0;
            for m in shader_modules() {
                let p = parse(m.name);
                if wgsl_struct(&p, l.wgsl_name).is_some() {
                    check(&p, &l).unwrap_or_else(|e| panic!("module {}: {e}", m.name));
                    seen += 1;
                }
            }
            assert!(seen > 0, "no module declares {}", l.wgsl_name);
        }
    }
}

/// The check is not vacuous: a swapped pair of fields, a wrong size and a missing
/// field are caught.
#[test]
fn the_layout_check_catches_mismatches() {
    let k = kernels().find(|k| k.name == "zscore").unwrap();
    let p = parse(k.module);
    let good = (k.params)();
    check(&p, &good).unwrap();
    let mut swapped = good.clone();
    let (a, b) = (swapped.fields[0].offset, swapped.fields[1].offset);
    swapped.fields[0].offset = b;
    swapped.fields[1].offset = a;
    assert!(check(&p, &swapped).is_err());
    let mut bigger = good.clone();
    bigger.size += 4;
    bigger.fields.push(FieldLayout { name: "extra", offset: good.size, size: 4 });
    assert!(check(&p, &bigger).is_err());
    let mut missing = good.clone();
    missing.fields.pop();
    assert!(check(&p, &missing).is_err());
}
