//! The `fmpe` binary on good and bad input: clear errors naming the file (and line and
//! column), exit codes (1 data/runtime, 2 usage, 3 no adapter), nothing left behind.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fmpe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fmpe")).args(args).output().expect("run fmpe")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fmpe-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

/// θ and x CSV files of a 2-D linear-Gaussian toy problem with `n` rows.
fn toy(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let th = common::rand_vec(2 * n, 1);
    let noise = common::rand_vec(2 * n, 2);
    let mut ts = String::from("theta_1,theta_2\n");
    let mut xs = String::from("x_1,x_2\n");
    for r in 0..n {
        ts += &format!("{},{}\n", th[2 * r], th[2 * r + 1]);
        xs += &format!("{},{}\n", th[2 * r] + 0.3 * noise[2 * r], th[2 * r + 1] + 0.3 * noise[2 * r + 1]);
    }
    let (t, x) = (dir.join("theta.csv"), dir.join("x.csv"));
    write(&t, &ts);
    write(&x, &xs);
    (t, x)
}

fn train_args<'a>(t: &'a str, x: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["train", "--theta", t, "--x", x, "--out", out, "--hidden", "16", "--blocks", "1", "--max-epochs", "2", "--batch-size", "32"]
}

fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention '{n}':\n{err}");
    }
}

#[test]
fn train_rejects_bad_files_and_leaves_no_model() {
    let d = tmpdir("bad");
    let (t, x) = toy(&d, 50);
    let out = d.join("model");
    let (ts, xs, os) = (t.to_str().unwrap(), x.to_str().unwrap(), out.to_str().unwrap());

    // Missing file.
    let missing = d.join("nope.csv");
    let o = fmpe(&train_args(missing.to_str().unwrap(), xs, os));
    assert_fails(&o, 1, &["nope.csv"]);

    // Wrong column count on line 4.
    let bad = d.join("bad_cols.csv");
    write(&bad, "a,b\n1,2\n3,4\n5\n");
    let o = fmpe(&train_args(bad.to_str().unwrap(), xs, os));
    assert_fails(&o, 1, &["bad_cols.csv", "line 4"]);

    // Non-numeric cell below the header: line 3, column 2.
    let bad = d.join("bad_cell.csv");
    write(&bad, "a,b\n1,2\n3,abc\n");
    let o = fmpe(&train_args(bad.to_str().unwrap(), xs, os));
    assert_fails(&o, 1, &["bad_cell.csv", "line 3", "column 2"]);

    // Row-count mismatch between θ and x.
    let short = d.join("short.csv");
    write(&short, "a,b\n1,2\n3,4\n");
    let o = fmpe(&train_args(short.to_str().unwrap(), xs, os));
    assert_fails(&o, 1, &["short.csv", "x.csv", "rows"]);

    // NaN in θ.
    let nan = d.join("nan_theta.csv");
    let mut lines: Vec<String> = std::fs::read_to_string(&t).unwrap().lines().map(String::from).collect();
    lines[2] = "nan,0.5".into();
    write(&nan, &(lines.join("\n") + "\n"));
    let o = fmpe(&train_args(nan.to_str().unwrap(), xs, os));
    assert_fails(&o, 1, &["nan_theta.csv", "line 3", "column 1"]);

    // Task dimension mismatch.
    let mut a = train_args(ts, xs, os);
    a.extend(["--task", "gaussian_linear"]);
    let o = fmpe(&a);
    assert_fails(&o, 1, &["theta.csv", "gaussian_linear"]);

    // Invalid option values exit with 2, the library's field names shown as flags.
    for (flag, value, needle) in [
        ("--learning-rate", "-1", "--learning-rate: must be a positive number"),
        ("--sigma-min", "1.5", "--sigma-min: must be in [0, 1)"),
        ("--validation-fraction", "1.5", "--validation-fraction: must be in [0, 1)"),
        ("--prior-low", "1,1", "--prior-low/--prior-high: low must be below high (component 1"),
    ] {
        let arg = format!("{flag}={value}");
        let mut a = train_args(ts, xs, os);
        a.push(&arg);
        if flag == "--prior-low" {
            a.push("--prior-high=0,0");
        }
        assert_fails(&fmpe(&a), 2, &[needle]);
    }

    // Usage errors exit with 2.
    let o = fmpe(&["train", "--theta", ts]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = fmpe(&["train", "--theta", ts, "--x", xs, "--out", os, "--conditioning", "nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    assert!(!out.exists(), "a failed command left {} behind", out.display());
    let leftovers: Vec<_> = std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn no_adapter_exits_with_code_3() {
    common::gpu(); // a GPU test: without an adapter it fails here, never skips
    let d = tmpdir("noadapter");
    let o = Command::new(env!("CARGO_BIN_EXE_fmpe"))
        .args(["bench", "--train-steps", "1"])
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-xyz")
        .current_dir(&d)
        .output()
        .unwrap();
    assert_fails(&o, 3, &["no GPU adapter", "mesa-vulkan-drivers"]);
}

#[test]
fn train_drops_failed_simulations_then_sample_checks_the_observation() {
    common::gpu(); // a GPU test: without an adapter it fails here, never skips
    let d = tmpdir("good");
    let (t, _) = toy(&d, 60);
    // x with two NaN rows (failed simulations).
    let (_, x) = toy(&d, 60);
    let mut s = std::fs::read_to_string(&x).unwrap();
    let lines: Vec<String> = s.lines().map(String::from).collect();
    let mut v = lines.clone();
    v[5] = "nan,1".into();
    v[9] = "2,inf".into();
    s = v.join("\n") + "\n";
    write(&x, &s);
    let out = d.join("model");
    let o = fmpe(&train_args(t.to_str().unwrap(), x.to_str().unwrap(), out.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("dropped 2 simulations"), "{}", stderr(&o));
    assert!(out.join("model.json").exists() && out.join("model.safetensors").exists());
    // The training curve is written inside the staging directory, before the rename.
    assert!(std::fs::metadata(out.join("training_curve.png")).unwrap().len() > 1000);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(json["dropped_rows"], 2);
    assert_eq!(json["theta_names"][1], "theta_2");
    // The held-out NLL of the kept weights on every validation pair.
    let nll = json["held_out"]["nll"].as_f64().expect("held_out.nll in model.json");
    assert!(nll.is_finite(), "{nll}");
    assert_eq!(json["held_out"]["pairs"], json["n_val"]);
    assert!(stderr(&o).contains("held-out NLL"), "{}", stderr(&o));

    let m = out.to_str().unwrap();
    let samples = d.join("s.csv");
    // Observation with the wrong dimension.
    let obs = d.join("obs3.csv");
    write(&obs, "a,b,c\n1,2,3\n");
    let o = fmpe(&["sample", "--model", m, "--observation", obs.to_str().unwrap(), "--out", samples.to_str().unwrap(), "--num-samples", "10"]);
    assert_fails(&o, 1, &["obs3.csv", "dim_x = 2"]);
    // Several rows.
    let obs = d.join("obs_rows.csv");
    write(&obs, "a,b\n1,2\n3,4\n");
    let o = fmpe(&["sample", "--model", m, "--observation", obs.to_str().unwrap(), "--out", samples.to_str().unwrap(), "--num-samples", "10"]);
    assert_fails(&o, 1, &["obs_rows.csv", "exactly one row"]);
    assert!(!samples.exists());
    // A good observation: CSV with the model's parameter names as header.
    let obs = d.join("obs.csv");
    write(&obs, "a,b\n0.1,-0.2\n");
    let o = fmpe(&["sample", "--model", m, "--observation", obs.to_str().unwrap(), "--out", samples.to_str().unwrap(), "--num-samples", "25", "--solver", "rk4", "--steps", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&samples).unwrap();
    assert_eq!(text.lines().next().unwrap(), "theta_1,theta_2");
    assert_eq!(text.lines().count(), 26);
    // A missing model directory names the file.
    let o = fmpe(&["sample", "--model", d.join("nomodel").to_str().unwrap(), "--observation", obs.to_str().unwrap(), "--out", samples.to_str().unwrap()]);
    assert_fails(&o, 1, &["nomodel"]);
}

#[test]
fn embedding_flag_is_validated_and_stored_in_the_model() {
    let d = tmpdir("embedding");
    let (t, x) = toy(&d, 60);
    let out = d.join("model");
    let (ts, xs, os) = (t.to_str().unwrap(), x.to_str().unwrap(), out.to_str().unwrap());
    for bad in ["0,4", "8,,4", "wide", ""] {
        let mut a = train_args(ts, xs, os);
        a.extend(["--embedding", bad]);
        let o = fmpe(&a);
        assert_fails(&o, 2, &["--embedding"]);
    }
    assert!(!out.exists());
    common::gpu(); // a GPU test: without an adapter it fails here, never skips
    let mut a = train_args(ts, xs, os);
    a.extend(["--embedding", "8,4"]);
    let o = fmpe(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(json["net"]["embedding"], serde_json::json!([8, 4]));
    let obs = d.join("obs.csv");
    write(&obs, "a,b\n0.1,-0.2\n");
    let samples = d.join("s.csv");
    let o = fmpe(&["sample", "--model", os, "--observation", obs.to_str().unwrap(), "--out", samples.to_str().unwrap(), "--num-samples", "20", "--solver", "rk4", "--steps", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&samples).unwrap().lines().count(), 21);
    // x of dimension 2: `auto` (the default) means no embedding.
    let auto = d.join("auto");
    let o = fmpe(&train_args(ts, xs, auto.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(auto.join("model.json")).unwrap()).unwrap();
    assert!(json["net"].get("embedding").is_none(), "{}", json["net"]);
    assert!(fmpe::net::auto_embedding(32).is_empty());
    assert_eq!(fmpe::net::auto_embedding(100), vec![128, 128, 32]);
}

#[test]
fn train_records_the_parameter_transform_and_no_transform_turns_it_off() {
    common::gpu(); // a GPU test: without an adapter it fails here, never skips
    let d = tmpdir("transform");
    let (t, x) = toy(&d, 60); // θ in [-1, 1)
    let (ts, xs) = (t.to_str().unwrap(), x.to_str().unwrap());
    let kinds = |out: &Path| -> Vec<serde_json::Value> {
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
        json["transform"].as_array().unwrap().clone()
    };

    // A box prior: logit per component, on by default, recorded in model.json.
    let out = d.join("logit");
    let mut a = train_args(ts, xs, out.to_str().unwrap());
    a.extend(["--prior-low=-1,-1", "--prior-high", "1,1"]);
    let o = fmpe(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("parameter transform") && stderr(&o).contains("logit on [-1, 1]"), "{}", stderr(&o));
    assert_eq!(kinds(&out), vec![serde_json::json!({"kind": "logit", "low": -1.0, "high": 1.0}); 2]);
    // `sample` reads it from the model: every sample lands in the box, none is rejected.
    let obs = d.join("obs.csv");
    write(&obs, "a,b\n0.1,-0.2\n");
    let samples = d.join("s.csv");
    let o = fmpe(&["sample", "--model", out.to_str().unwrap(), "--observation", obs.to_str().unwrap(), "--out", samples.to_str().unwrap(), "--num-samples", "40", "--solver", "rk4", "--steps", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("40 proposed"), "{}", String::from_utf8_lossy(&o.stdout));
    let text = std::fs::read_to_string(&samples).unwrap();
    for line in text.lines().skip(1) {
        assert!(line.split(',').all(|v| v.parse::<f64>().unwrap().abs() <= 1.0), "sample outside the box: {line}");
    }

    // --no-transform: identity per component.
    let plain = d.join("plain");
    let mut a = train_args(ts, xs, plain.to_str().unwrap());
    a.extend(["--prior-low=-1,-1", "--prior-high", "1,1", "--no-transform"]);
    let o = fmpe(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(kinds(&plain), vec![serde_json::json!({"kind": "identity"}); 2]);

    // θ outside a narrower box: an error naming file, line and column, and the way out.
    let bad = d.join("bad");
    let mut a = train_args(ts, xs, bad.to_str().unwrap());
    a.extend(["--prior-low=-0.5,-0.5", "--prior-high", "0.5,0.5"]);
    let o = fmpe(&a);
    assert_fails(&o, 1, &["theta.csv", "line ", "column ", "outside the prior box [-0.5, 0.5]", "--no-transform"]);
    assert!(!bad.exists());
}

#[test]
fn x_transform_flag_is_checked_against_the_data() {
    let d = tmpdir("xtransform");
    let (t, x) = toy(&d, 60);
    let out = d.join("model");
    let (ts, xs, os) = (t.to_str().unwrap(), x.to_str().unwrap(), out.to_str().unwrap());
    let mut a = train_args(ts, xs, os);
    a.extend(["--x-transform", "bogus"]);
    assert_fails(&fmpe(&a), 2, &["--x-transform", "bogus"]);
    // x ≤ −1 under log1p: file, line and column.
    let mut lines: Vec<String> = vec!["x_1,x_2".into()];
    lines.extend((0..60).map(|r| format!("{},{}", 0.1 * r as f64, 2.0)));
    lines[4] = "0.5,-1.5".into();
    write(&x, &(lines.join("\n") + "\n"));
    common::gpu(); // a GPU test: without an adapter it fails here, never skips
    let mut a = train_args(ts, xs, os);
    a.extend(["--x-transform", "log1p"]);
    assert_fails(&fmpe(&a), 1, &["x.csv", "line 5", "column 2", "log1p"]);
    assert!(!out.exists());
}

fn sbibm_dir() -> PathBuf {
    match std::env::var_os("FMPE_SBIBM_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("shared").join("sbibm"),
    }
}

/// Flags of a seconds-long `evaluate` on two_moons (tiny network, two epochs, no C2ST).
fn evaluate_args<'a>(sbibm: &'a str, out: &'a str, obs: &'a str) -> Vec<&'a str> {
    vec![
        "evaluate", "--task", "two_moons", "--num-simulations", "400", "--observations", obs, "--num-samples", "300",
        "--sbibm-dir", sbibm, "--out", out, "--hidden", "16", "--blocks", "1", "--max-epochs", "2", "--batch-size", "64",
        "--no-c2st",
    ]
}

/// The cells of an `evaluate` results.json.
fn eval_cells(out: &Path) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    json["cells"].as_array().unwrap().clone()
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn evaluate_writes_cells_tables_and_plots_and_resumes_by_key() {
    let dir = tmpdir("evaluate");
    let sbibm = sbibm_dir();
    let (sb, out) = (sbibm.to_str().unwrap(), dir.join("eval"));
    let os = out.to_str().unwrap();
    let o = fmpe(&evaluate_args(sb, os, "1,3"));
    assert!(o.status.success(), "{}", stderr(&o));
    let cells = eval_cells(&out);
    let obs: Vec<u64> = cells.iter().map(|r| r["observation"].as_u64().unwrap()).collect();
    assert_eq!(obs, vec![1, 3]);
    for c in &cells {
        assert!(c["c2st"].is_null(), "--no-c2st must not report a score");
        assert_eq!((c["npe"].as_f64(), c["num_simulations"].as_u64()), (None, Some(400)), "no anchor at 400 simulations");
        let model = PathBuf::from(c["model"].as_str().unwrap());
        let k = c["observation"].as_u64().unwrap();
        let s = fmpe::io::read_matrix(&model.join(format!("samples_obs{k}.csv"))).unwrap();
        assert_eq!((s.rows, s.cols), (300, 2));
        // Default logit transform: every sample lies strictly inside two_moons' prior box.
        assert!(s.data.iter().all(|v| v.abs() < 1.0), "sample outside [-1, 1]");
        assert!(model.join(format!("pairplot_obs{k}.png")).is_file() && model.join("model.json").is_file());
        assert!(c["held_out_nll"].as_f64().unwrap().is_finite());
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // The same command again reuses both cells (and trains nothing).
    let o = fmpe(&evaluate_args(sb, os, "1,3"));
    assert!(o.status.success() && stdout(&o).contains("2 cells (2 reused)"), "{}", stdout(&o));
    assert_eq!(eval_cells(&out), cells);
    // Another observation, or another sample count, reuses the trained model; a
    // changed sampling option makes new cells, a changed training option a new model.
    let o = fmpe(&evaluate_args(sb, os, "1-2"));
    assert!(o.status.success() && stdout(&o).contains("(1 reused)") && stderr(&o).contains("reusing the model"), "{}", stderr(&o));
    let mut args = evaluate_args(sb, os, "1");
    args.extend(["--num-samples", "200"]);
    let o = fmpe(&args);
    assert!(o.status.success() && stdout(&o).contains("1 cells (0 reused)") && stderr(&o).contains("reusing the model"), "{}", stdout(&o));
    let mut args = evaluate_args(sb, os, "1");
    args.extend(["--learning-rate", "2e-3"]);
    let o = fmpe(&args);
    assert!(o.status.success() && stdout(&o).contains("1 cells (0 reused)") && !stderr(&o).contains("reusing the model"), "{}", stderr(&o));
    // Model selection by held-out NLL: at 400 simulations (the small tier) the policy
    // trains with and without the logit transform and keeps the lower score, recorded
    // in model.json and the cell; `--select-transform off` trains one model.
    let cell = eval_cells(&out).remove(0);
    let sel = cell["selection"].as_array().unwrap_or_else(|| panic!("no selection in {cell}"));
    let nll: Vec<(bool, f64)> = sel.iter().map(|c| (c["parameter_transform"].as_bool().unwrap(), c["held_out_nll"].as_f64().unwrap())).collect();
    assert_eq!(nll.iter().map(|c| c.0).collect::<Vec<_>>(), [true, false], "{cell}");
    let kept = if nll[1].1 < nll[0].1 { "none" } else { "transform" };
    assert_eq!(cell["parameter_transform"].as_str(), Some(kept), "{cell}");
    // Without the logit the candidate is sampled with rejection to the box: its score is
    // the flow's own held-out NLL (the cell's, when kept) plus its log mass in the box.
    assert!(sel[0]["log_prior_mass"].is_null() && sel[0]["low_mass_share"].is_null(), "{cell}");
    let mass = sel[1]["log_prior_mass"].as_f64().unwrap_or_else(|| panic!("no prior mass in {cell}"));
    assert!(mass <= 0.0, "{cell}");
    // and how often the held-out observations have under 5 % of it inside the box.
    let low = sel[1]["low_mass_share"].as_f64().unwrap_or_else(|| panic!("no low-mass share in {cell}"));
    assert!((0.0..=1.0).contains(&low), "{cell}");
    let own = if kept == "none" { nll[1].1 - mass } else { nll[0].1 };
    assert!((cell["held_out_nll"].as_f64().unwrap() - own).abs() < 1e-9, "{cell}");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(PathBuf::from(cell["model"].as_str().unwrap()).join("model.json")).unwrap()).unwrap();
    assert_eq!(model["selection"]["chosen"].as_u64(), Some(if kept == "none" { 1 } else { 0 }), "{model}");
    let mut args = evaluate_args(sb, os, "1");
    args.extend(["--select-transform", "off"]);
    let o = fmpe(&args);
    assert!(o.status.success() && stdout(&o).contains("1 cells (0 reused)"), "{}", stderr(&o));
    let cell = eval_cells(&out).remove(0);
    assert!(cell["selection"].is_null() && cell["parameter_transform"] == "transform", "{cell}");
    assert_fails(&fmpe(&[&evaluate_args(sb, os, "1")[..], &["--select-transform", "maybe"]].concat()), 2, &["--select-transform"]);
    // --tasks all and a budget list parse; a bad list is a usage error naming the flag.
    assert_fails(&fmpe(&evaluate_args(sb, dir.join("e2").to_str().unwrap(), "0-3")), 2, &["--observations"]);
    let e3 = dir.join("e3");
    let mut args = evaluate_args(sb, e3.to_str().unwrap(), "1");
    args.extend(["--num-simulations", "400,x"]);
    assert_fails(&fmpe(&args), 2, &["--num-simulations"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs ../shared/sbibm (CI runs it with --include-ignored)"]
fn evaluate_records_observations_whose_rejection_gives_up_and_still_writes_its_outputs() {
    // Without the transform an untrained flow puts mass outside two_moons' box, and a
    // microsecond sampling budget makes rejection give up on every observation: the run
    // still writes its model and tables, marks each observation failed, and exits with 4.
    let dir = tmpdir("evaluate-fail");
    let sbibm = sbibm_dir();
    let out = dir.join("eval");
    let mut args = evaluate_args(sbibm.to_str().unwrap(), out.to_str().unwrap(), "1-2");
    args.extend(["--no-transform", "--max-sampling-time", "0.000001"]);
    let o = fmpe(&args);
    assert_fails(&o, 4, &["observation 1: failed", "two_moons 400 observation 1, two_moons 400 observation 2", "--max-sampling-time"]);
    for r in eval_cells(&out) {
        assert!(r["error"].as_str().unwrap().contains("prior support"), "{r}");
        assert!(PathBuf::from(r["model"].as_str().unwrap()).join("model.json").is_file());
    }
    assert!(std::fs::read_to_string(out.join("results.md")).unwrap().contains("failed"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// With no network or training flag, `train` takes the budget policy's values: it says
/// them before training and stores them, with the tier and the explicit flags, in
/// model.json; config.toml keeps `auto`, and an explicit flag wins.
#[test]
fn train_resolves_the_budget_policy_and_records_it() {
    common::gpu(); // a GPU test: without an adapter it fails here, never skips
    let d = tmpdir("policy");
    let (t, x) = toy(&d, 60);
    let out = d.join("model");
    let (ts, xs, os) = (t.to_str().unwrap(), x.to_str().unwrap(), out.to_str().unwrap());
    let o = fmpe(&["train", "--theta", ts, "--x", xs, "--out", os, "--max-epochs", "2", "--weight-decay", "1e-4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("policy small (60 simulations, dim θ 2, dim x 2): network 10 × 64 concat conditioning, no x-embedding; batch 32,"),
        "{err}"
    );
    assert!(err.contains("explicit: max_epochs, weight_decay"), "{err}");
    // No prior box here: no transform to compare, one model.
    assert!(!err.contains("selection:"), "{err}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(json["net"]["hidden"], serde_json::json!(vec![64; 10]));
    assert!(json["selection"].is_null(), "{json}");
    let tc = &json["train"];
    // dim θ 2: the small tier keeps α = 4.
    assert_eq!(tc["time_prior_exponent"].as_f64(), Some(4.0));
    assert_eq!((tc["batch_size"].as_u64(), tc["max_epochs"].as_u64(), tc["patience"].as_u64()), (Some(32), Some(2), Some(20)));
    assert_eq!((tc["validation_fraction"].as_f64(), tc["weight_decay"].as_f64()), (Some(0.2), Some(1e-4)));
    assert_eq!(tc["policy"]["tier"], "small");
    assert_eq!(tc["policy"]["num_simulations"], 60);
    assert_eq!(tc["policy"]["explicit"], serde_json::json!(["max_epochs", "weight_decay"]));
    // 12 validation rows, 48 training rows.
    assert_eq!((json["n_train"].as_u64(), json["n_val"].as_u64()), (Some(48), Some(12)));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("batch_size = \"auto\"") && config.contains("max_epochs = 2"), "{config}");
    assert!(config.contains("time_prior_exponent = \"auto\""), "{config}");
    // `auto` is also accepted explicitly; a bad value names the flag.
    let o = fmpe(&["train", "--theta", ts, "--x", xs, "--out", os, "--batch-size", "many"]);
    assert_fails(&o, 2, &["--batch-size", "expected auto or a value"]);
}
