//! `fmpe bench --suite`: matmul GFLOP/s per layout, training, sampling and log_prob
//! throughput for three networks, per kernel variant side by side in one process;
//! prints a table and writes JSON (schema [`SCHEMA_VERSION`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use fmpe::bench::{self, MatmulBench, MatmulLayout, OdeBench, TrainBench};
use fmpe::error::{Error, Result};
use fmpe::gpu::{GpuOptions, KernelChoice};
use fmpe::Gpu;
use serde::Serialize;

use super::util::gpu_options;

/// Version of the suite's JSON layout (bumped when a field changes meaning or goes).
pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Args, Debug)]
pub(crate) struct SuiteArgs {
    /// Run the suite (instead of the single-network figures).
    #[arg(long)]
    pub(crate) suite: bool,
    /// Kernel variants to measure side by side: auto, portable, cpu, gpu or all (every
    /// variant the adapter can run).
    #[arg(long, default_value = "auto")]
    kernels: String,
    /// Where to write the suite's JSON (default: bench-suite.json in the current folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Wall time per figure, seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

/// The whole suite, as written to JSON.
#[derive(Serialize)]
struct Suite {
    schema_version: u32,
    fmpe_version: &'static str,
    adapter: String,
    /// 1-, 5- and 15-minute load averages before and after (Linux; empty elsewhere).
    load_average_before: Vec<f64>,
    load_average_after: Vec<f64>,
    seconds_per_figure: f64,
    wall_seconds: f64,
    variants: Vec<VariantRun>,
}

#[derive(Serialize)]
struct VariantRun {
    /// The choice asked for.
    kernels: KernelChoice,
    /// The matmul variant it resolved to.
    matmul_variant: String,
    matmul: Vec<MatmulBench>,
    networks: Vec<NetworkRun>,
}

#[derive(Serialize)]
struct NetworkRun {
    name: String,
    width: usize,
    blocks: usize,
    parameters: usize,
    training: Vec<TrainBench>,
    ode: Vec<OdeBench>,
}

/// Networks of the suite: today's default, sbi's default size, and burn's comparison.
const NETWORKS: [(usize, usize); 3] = [(64, 4), (100, 5), (128, 5)];

fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default()
}

fn choices(kernels: &str) -> Result<Vec<KernelChoice>> {
    if kernels.trim().eq_ignore_ascii_case("all") {
        return Ok(vec![KernelChoice::Portable, KernelChoice::Gpu, KernelChoice::Cpu]);
    }
    Ok(vec![KernelChoice::parse(kernels)?])
}

pub(crate) fn run(a: &SuiteArgs) -> Result<()> {
    let t_start = Instant::now();
    let base = gpu_options()?;
    let mut suite = Suite {
        schema_version: SCHEMA_VERSION,
        fmpe_version: env!("CARGO_PKG_VERSION"),
        adapter: String::new(),
        load_average_before: load_average(),
        load_average_after: vec![],
        seconds_per_figure: a.seconds,
        wall_seconds: 0.0,
        variants: vec![],
    };
    // One model per network, trained once (on the first variant's device) and shared:
    // the weights do not depend on the variant.
    let (theta, x) = bench::synthetic(20_000, 2, 0);
    let mut models = Vec::new();
    for choice in choices(&a.kernels)? {
        let gpu = match Gpu::with_options(&GpuOptions { kernels: choice, ..base.clone() }) {
            Ok(g) => Arc::new(g),
            // `all` skips what the adapter cannot run; an explicit choice fails.
            Err(e @ Error::InvalidOption { .. }) if a.kernels.eq_ignore_ascii_case("all") => {
                eprintln!("skipping {choice:?}: {}", e);
                continue;
            }
            Err(e) => return Err(e),
        };
        suite.adapter = gpu.adapter().map(|a| a.to_string()).unwrap_or_default();
        let variant = gpu.matmul_variant().name();
        eprintln!("== kernels {choice:?} (matmul variant {variant})");
        let mut run = VariantRun { kernels: choice, matmul_variant: variant.into(), matmul: vec![], networks: vec![] };
        for &(rows, width) in &[(1024, 64), (256, 64), (1024, 100), (256, 100), (1024, 128)] {
            for layout in [MatmulLayout::ForwardGeluBias, MatmulLayout::BackwardData, MatmulLayout::WeightGradBias] {
                run.matmul.push(bench::matmul(&gpu, layout, rows, width, width, a.seconds / 2.0)?);
            }
        }
        for (i, &(width, blocks)) in NETWORKS.iter().enumerate() {
            let net = bench::network(width, blocks, 2);
            let mut nr = NetworkRun {
                name: format!("{width}x{blocks}"),
                width,
                blocks,
                parameters: net.layout().len,
                training: vec![],
                ode: vec![],
            };
            for batch in [256, 1024] {
                nr.training.push(bench::training(&gpu, &net, batch, &theta, &x, a.seconds)?);
            }
            if models.len() <= i {
                models.push(bench::briefly_trained(&gpu, &net, &theta[..4000], &x[..4000], 3)?);
            }
            nr.ode = bench::ode(&gpu, &models[i], &[0.1, -0.1], a.seconds)?;
            run.networks.push(nr);
        }
        print_variant(&run);
        suite.variants.push(run);
    }
    suite.load_average_after = load_average();
    suite.wall_seconds = t_start.elapsed().as_secs_f64();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("bench-suite.json"));
    let json = serde_json::to_vec_pretty(&suite).map_err(|e| Error::invalid(format!("bench JSON: {e}")))?;
    fmpe::io::atomic::write_file_atomic(&out, |w| std::io::Write::write_all(w, &json))?;
    print_comparison(&suite);
    println!(
        "load average before {:?}, after {:?}; {:.0} s; JSON written to {}",
        suite.load_average_before,
        suite.load_average_after,
        suite.wall_seconds,
        out.display()
    );
    Ok(())
}

fn print_variant(r: &VariantRun) {
    println!("kernels {:?} (matmul variant {})", r.kernels, r.matmul_variant);
    println!("  {:<22} {:>6} {:>6} {:>8}", "matmul layout", "rows", "width", "GFLOP/s");
    for m in &r.matmul {
        println!("  {:<22} {:>6} {:>6} {:>8.2}", format!("{:?}", m.layout), m.rows, m.fan_in, m.gflops);
    }
    for n in &r.networks {
        println!("  network {} ({} parameters)", n.name, n.parameters);
        for t in &n.training {
            println!(
                "    training batch {:>5}: {:>9.0} examples/s ({:.1} steps/s; {} dispatches, {:.2} submissions per step)",
                t.batch, t.examples_per_second, t.steps_per_second, t.dispatches_per_step, t.submissions_per_step
            );
        }
        for o in &n.ode {
            let unit = if o.what.starts_with("log_prob") { "evaluations/s" } else { "draws/s" };
            println!(
                "    {:<22} {:>9.0} {unit} ({} timed; {:.1} steps each; {} dispatches per ODE step, {} steps per submission)",
                o.what, o.per_second, o.count, o.steps_per_sample, o.dispatches_per_ode_step, o.ode_steps_per_submission
            );
        }
    }
}

/// With several variants: each headline figure side by side.
fn print_comparison(s: &Suite) {
    if s.variants.len() < 2 {
        return;
    }
    let names: Vec<String> = s.variants.iter().map(|v| format!("{:?}", v.kernels).to_lowercase()).collect();
    println!("\n{:<40} {}", "figure", names.iter().map(|n| format!("{n:>10}")).collect::<String>());
    let row = |label: String, vals: Vec<f64>| {
        println!("{label:<40} {}", vals.iter().map(|v| format!("{v:>10.1}")).collect::<String>());
    };
    for (i, m) in s.variants[0].matmul.iter().enumerate() {
        row(format!("matmul {:?} {}x{} GFLOP/s", m.layout, m.rows, m.fan_in), s.variants.iter().map(|v| v.matmul[i].gflops).collect());
    }
    for (ni, n) in s.variants[0].networks.iter().enumerate() {
        for (ti, t) in n.training.iter().enumerate() {
            row(
                format!("{} training b{} examples/s", n.name, t.batch),
                s.variants.iter().map(|v| v.networks[ni].training[ti].examples_per_second).collect(),
            );
        }
        for (oi, o) in n.ode.iter().enumerate() {
            row(format!("{} {} /s", n.name, o.what), s.variants.iter().map(|v| v.networks[ni].ode[oi].per_second).collect());
        }
    }
}
