//! The kernel registry: what a family file declares ([`Family`], [`KernelSpec`],
//! [`WgslConst`], [`ParamBlock`]) and what is derived from those declarations (the list
//! of kernels and shader modules, and each module's assembled WGSL source).
//!
//! A family file (`src/kernels/<family>.rs`) declares one `static FAMILY: Family` with
//! its shader modules (`shaders/<family>.wgsl` or `shaders/<family>_<part>.wgsl`), its
//! kernels (one `static` [`KernelSpec`] each), and the constants its WGSL shares with
//! Rust. Nothing else in the registry lists kernels: adding one touches its `.wgsl` and
//! its family file only.

use crate::error::{Error, Result};

/// Bind-group layout families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 0 uniform (dyn), 1 acts rw, 2 params read, 3 grads rw.
    Matmul = 0,
    /// 0 uniform (dyn), 1 acts rw, 2 data rw, 3 step uniform (`shaders/misc.wgsl`).
    Misc = 1,
    /// 0 uniform (dyn), 1 params rw, 2 grads read, 3 m rw, 4 v rw, 5 step uniform.
    Adam = 2,
    /// 0 uniform (dyn), 1 acts rw, 2 params read, 3 grads rw, 4 step uniform: the matmul
    /// layout's buffers with the step state (`shaders/c2st_lanes.wgsl`, which gathers
    /// the epoch's minibatch and files the step's loss itself).
    Lanes = 3,
}

/// One field of a `#[repr(C)]` parameter block: name, byte offset, byte size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    /// Field name (the WGSL member of the same name must have the same offset and size;
    /// fields named `pad*` are padding and only count towards the size).
    pub name: &'static str,
    /// Byte offset in the Rust struct.
    pub offset: usize,
    /// Byte size in the Rust struct.
    pub size: usize,
}

/// The layout of a Rust parameter block and the name of its WGSL twin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructLayout {
    /// Rust type name (for messages).
    pub rust_name: &'static str,
    /// Name of the WGSL struct this block mirrors.
    pub wgsl_name: &'static str,
    /// `size_of` the Rust struct, in bytes.
    pub size: usize,
    /// Every field, in declaration order.
    pub fields: Vec<FieldLayout>,
}

impl StructLayout {
    /// The layout of `T`.
    pub fn of<T: ParamBlock>() -> StructLayout {
        StructLayout {
            rust_name: std::any::type_name::<T>(),
            wgsl_name: T::WGSL_NAME,
            size: std::mem::size_of::<T>(),
            fields: T::fields(),
        }
    }
}

/// A `#[repr(C)]` block that mirrors a WGSL struct (implemented with `param_block!`).
pub trait ParamBlock: bytemuck::Pod {
    /// Name of the WGSL struct.
    const WGSL_NAME: &'static str;
    /// Every field with its offset and size.
    fn fields() -> Vec<FieldLayout>;
}

/// Implements [`ParamBlock`] for a struct: `param_block!(Ty as "WgslName" { field, ... })`.
/// List every field; the layout test checks that the sizes add up to the struct's size.
macro_rules! param_block {
    ($ty:ty as $wgsl:literal { $($f:ident),* $(,)? }) => {
        impl $crate::kernels::registry::ParamBlock for $ty {
            const WGSL_NAME: &'static str = $wgsl;
            fn fields() -> Vec<$crate::kernels::registry::FieldLayout> {
                let z = <$ty as bytemuck::Zeroable>::zeroed();
                vec![$($crate::kernels::registry::FieldLayout {
                    name: stringify!($f),
                    offset: std::mem::offset_of!($ty, $f),
                    size: std::mem::size_of_val(&z.$f),
                }),*]
            }
        }
    };
}
pub(crate) use param_block;

/// A WGSL `const NAME: u32 = VALUE;` generated from a Rust definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WgslConst {
    /// WGSL name (family prefix, upper case), e.g. `OP_GELU`, `MATMUL_FLAG_BIAS`.
    pub name: &'static str,
    /// Value.
    pub value: u32,
}

/// One compute kernel: an entry point of a shader module, its bind-group layout, its
/// parameter block, and optional pipeline-overridable constants.
///
/// Several specs may share module and entry point and differ in `variant` and
/// `constants` (e.g. tile sizes picked per adapter); each gets its own pipeline.
#[derive(Debug)]
pub struct KernelSpec {
    /// Unique name (the entry point, with `@variant` for a non-default variant).
    pub name: &'static str,
    /// Shader module (file stem under `shaders/`).
    pub module: &'static str,
    /// Entry point in that module.
    pub entry_point: &'static str,
    /// Bind-group layout family.
    pub layout: Layout,
    /// The parameter block read at binding 0.
    pub params: fn() -> StructLayout,
    /// Variant name ("" for the default).
    pub variant: &'static str,
    /// Pipeline-overridable constants (`override` declarations) of this variant.
    pub constants: &'static [(&'static str, f64)],
}

/// One `.wgsl` file of a family.
#[derive(Debug)]
pub struct ShaderModule {
    /// Module name = file stem under `shaders/`.
    pub name: &'static str,
    /// File contents (`// #include NAME` lines are expanded by [`shader_source`]).
    pub source: &'static str,
}

/// A kernel family: the declarations of one `src/kernels/<family>.rs`.
#[derive(Debug)]
pub struct Family {
    /// Family name (= the Rust module name).
    pub name: &'static str,
    /// Its shader modules.
    pub modules: &'static [ShaderModule],
    /// Its kernels.
    pub kernels: &'static [&'static KernelSpec],
    /// Constants its WGSL shares with Rust (emitted into every module's prelude).
    pub constants: &'static [WgslConst],
    /// Further structs shared with WGSL besides the kernels' parameter blocks
    /// (e.g. the matmul operand view), checked by the layout test.
    pub structs: &'static [fn() -> StructLayout],
}

/// Shared WGSL files a module pulls in with `// #include NAME`.
const INCLUDES: [(&str, &str); 5] = [
    ("common", include_str!("../../shaders/common.wgsl")),
    ("misc", include_str!("../../shaders/misc.wgsl")),
    ("step", include_str!("../../shaders/step.wgsl")),
    ("adam_params", include_str!("../../shaders/adam_params.wgsl")),
    ("c2st_mlp_params", include_str!("../../shaders/c2st_mlp_params.wgsl")),
];

/// Every kernel, family by family.
pub fn kernels() -> impl Iterator<Item = &'static KernelSpec> {
    super::FAMILIES.iter().flat_map(|f| f.kernels.iter().copied())
}

/// Every shader module, family by family.
pub fn shader_modules() -> impl Iterator<Item = &'static ShaderModule> {
    super::FAMILIES.iter().flat_map(|f| f.modules.iter())
}

/// The generated WGSL prelude: every family's shared constants.
pub fn wgsl_prelude() -> String {
    let mut s = String::from("// Generated from the Rust definitions in src/kernels/.\n");
    for c in super::FAMILIES.iter().flat_map(|f| f.constants.iter()) {
        s.push_str(&format!("const {}: u32 = {}u;\n", c.name, c.value));
    }
    s
}

fn expand(out: &mut String, src: &str, spec: Option<&[(&str, f64)]>, done: &mut Vec<&'static str>) -> Result<()> {
    for line in unroll(src, spec)?.lines() {
        if let Some(name) = line.trim().strip_prefix("// #include ") {
            let name = name.trim();
            let (n, body) = INCLUDES
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| Error::invalid(format!("unknown WGSL include '{name}'")))?;
            if !done.contains(n) {
                done.push(n);
                expand(out, body, spec, done)?;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(())
}

/// Expands `// #unroll NAME COUNT [LIVE]` … `// #end` blocks (nestable): the lines
/// between are repeated COUNT times with `{NAME}` replaced by 0, 1, …, COUNT − 1.
/// Kernels use it where an index must be a literal (e.g. `subgroupBroadcast`'s lane, or
/// an accumulator that must stay in registers), so the source need not spell out every
/// copy.
///
/// LIVE says how many copies a specialised pipeline keeps: with `spec` (the pipeline's
/// override constants) the block is repeated `min(COUNT, LIVE)` times. LIVE is a
/// product of `*`-separated factors: an integer, a constant's value (`CW`), a value
/// divided by an integer and rounded down (`CW/4`) or up (`CW/^8`: the copies `b`
/// with `8 b < CW`), or a negated flag (`!C_VEC`: 1 when the constant is 0). The copies
/// it drops must be dead code in that pipeline (the kernel guards each
/// copy with the same condition, so the generic source stays correct); dropping them
/// before the driver sees the module spares it compiling code it would only delete
/// (on lavapipe, about 1 s per matmul pipeline).
///
/// # Errors
/// [`Error::Invalid`] for a malformed directive, a missing `// #end`, or a LIVE factor
/// naming a constant `spec` does not set.
pub fn unroll(src: &str, spec: Option<&[(&str, f64)]>) -> Result<String> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(head) = lines[i].trim().strip_prefix("// #unroll ") else {
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
            continue;
        };
        let bad = || Error::invalid(format!("bad WGSL unroll directive '{}'", lines[i].trim()));
        let mut parts = head.split_whitespace();
        let (name, mut count) = match (parts.next(), parts.next().and_then(|c| c.parse::<usize>().ok())) {
            (Some(n), Some(c)) => (n, c),
            _ => return Err(bad()),
        };
        if let Some(live) = parts.next() {
            // Checked even without constants, so the generic source's tests catch a
            // malformed product before any pipeline is specialised.
            let value = match spec {
                Some(spec) => live_count(live, spec),
                None => live_syntax_ok(live).then_some(count),
            };
            count = count.min(value.ok_or_else(bad)?);
        }
        // The matching `// #end`, counting nested blocks.
        let mut depth = 1;
        let mut j = i + 1;
        while j < lines.len() {
            let t = lines[j].trim();
            if t.starts_with("// #unroll ") {
                depth += 1;
            } else if t == "// #end" {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            j += 1;
        }
        if depth != 0 {
            return Err(Error::invalid(format!("WGSL unroll '{name}' has no matching '// #end'")));
        }
        let body = unroll(&lines[i + 1..j].join("\n"), spec)?;
        let token = format!("{{{name}}}");
        for v in 0..count {
            out.push_str(&body.replace(&token, &v.to_string()));
        }
        i = j + 1;
    }
    Ok(out)
}

/// Whether `live` is a well-formed LIVE product (see [`unroll`]) whatever the
/// constants: factors `INT`, `NAME`, `NAME/INT` or `NAME/^INT` (INT > 0) or `!NAME`,
/// NAME an upper-case WGSL identifier.
fn live_syntax_ok(live: &str) -> bool {
    let name = |n: &str| {
        n.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && n.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    live.split('*').all(|f| {
        f.parse::<usize>().is_ok()
            || f.strip_prefix('!').is_some_and(name)
            || f.split_once('/').is_some_and(|(c, d)| name(c) && divisor(d).is_some())
            || name(f)
    })
}

/// The divisor of a LIVE factor `NAME/INT` or `NAME/^INT` (the text after `/`) and
/// whether the quotient is rounded up (`^`); `None` unless INT is a positive integer.
fn divisor(d: &str) -> Option<(usize, bool)> {
    let (d, up) = match d.strip_prefix('^') {
        Some(d) => (d, true),
        None => (d, false),
    };
    d.parse::<usize>().ok().filter(|&d| d > 0).map(|d| (d, up))
}

/// The value of an unroll directive's LIVE product (see [`unroll`]) under `spec`;
/// `None` when a factor is malformed or names a constant `spec` does not set.
fn live_count(live: &str, spec: &[(&str, f64)]) -> Option<usize> {
    let value = |name: &str| spec.iter().rev().find(|(n, _)| *n == name).map(|&(_, v)| v.max(0.0) as usize);
    live.split('*').try_fold(1usize, |acc, f| {
        let v = if let Ok(n) = f.parse::<usize>() {
            n
        } else if let Some(flag) = f.strip_prefix('!') {
            (value(flag)? == 0) as usize
        } else if let Some((c, d)) = f.split_once('/') {
            match divisor(d)? {
                (d, false) => value(c)? / d,
                (d, true) => value(c)?.div_ceil(d),
            }
        } else {
            value(f)?
        };
        Some(acc * v)
    })
}

/// The generic WGSL source of one shader module (what its kernels of the default
/// variant compile; specialised pipelines compile [`specialized_source`]): the generated
/// constants ([`wgsl_prelude`]), then the module with its `// #include NAME` lines
/// replaced by the shared files they name (each at most once) and every unrolled copy.
///
/// # Errors
/// [`Error::Invalid`] for an unknown module or include name.
pub fn shader_source(module: &str) -> Result<String> {
    specialized_source(module, None)
}

/// [`shader_source`] for a pipeline specialised with the override constants `spec`:
/// the unrolled blocks keep only the copies those constants leave live (see
/// [`unroll`]); `None` keeps every copy.
///
/// # Errors
/// As [`shader_source`]; [`Error::Invalid`] when an unroll directive names a constant
/// `spec` does not set.
pub fn specialized_source(module: &str, spec: Option<&[(&str, f64)]>) -> Result<String> {
    let m = shader_modules()
        .find(|m| m.name == module)
        .ok_or_else(|| Error::invalid(format!("unknown shader module '{module}'")))?;
    let mut out = wgsl_prelude();
    expand(&mut out, m.source, spec, &mut Vec::new())?;
    Ok(out)
}
