//! Tests of `fmpe::io`: CSV/NPY matrices, atomic writes, non-finite rows, model directories.

use std::path::{Path, PathBuf};

use fmpe::io::{
    drop_nonfinite_rows, read_matrix, read_model_dir, write_dir_atomic, write_file_atomic, write_file_atomic_with_path,
    write_matrix, write_model_dir, Matrix, StagedDir, Tensor,
};
use fmpe::Error;

/// A fresh empty directory under the target dir for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("io-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn data_err(e: Error) -> (Option<usize>, Option<usize>, String) {
    match e {
        Error::Data { line, column, message, .. } => (line, column, message),
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

#[test]
fn csv_sbibm_header_is_detected() {
    let d = scratch("hdr");
    let p = write(&d, "t.csv", "$\\beta$,$\\gamma$\n0.61479264,0.19172086\n0.5,0.25\n");
    let m = read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (2, 2));
    assert_eq!(m.header.as_deref(), Some(&["$\\beta$".to_string(), "$\\gamma$".to_string()][..]));
    assert_eq!(m.data, vec![0.61479264, 0.19172086, 0.5, 0.25]);
}

#[test]
fn csv_numeric_first_row_is_data() {
    let d = scratch("nohdr");
    let p = write(&d, "t.csv", "1,2,3\n4,5,6\n");
    let m = read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols, m.header.clone()), (2, 3, None));
    assert_eq!(m.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn csv_wrong_column_count_names_line() {
    let d = scratch("cols");
    let p = write(&d, "t.csv", "a,b\n1,2\n3,4\n5\n");
    let e = read_matrix(&p).unwrap_err();
    let text = e.to_string();
    let (line, _, msg) = data_err(e);
    assert_eq!(line, Some(4), "{text}");
    assert!(msg.contains("expected 2") && msg.contains("found 1"), "{text}");
    assert!(text.contains("t.csv") && text.contains("line 4"), "{text}");
}

#[test]
fn csv_non_numeric_cell_names_line_and_column() {
    let d = scratch("nonnum");
    let p = write(&d, "t.csv", "data_1,data_2,data_3\n1,2,3\n4,abc,6\n");
    let e = read_matrix(&p).unwrap_err();
    let text = e.to_string();
    let (line, col, msg) = data_err(e);
    assert_eq!((line, col), (Some(3), Some(2)), "{text}");
    assert_eq!(msg, "cannot parse 'abc' as a number");
    assert!(text.contains("t.csv: line 3, column 2"), "{text}");
}

#[test]
fn csv_nonfinite_cells_parse() {
    let d = scratch("nan");
    let p = write(&d, "t.csv", "nan,inf,-inf,1.5\n");
    let m = read_matrix(&p).unwrap();
    assert!(m.header.is_none());
    assert!(m.data[0].is_nan() && m.data[1] == f64::INFINITY && m.data[2] == f64::NEG_INFINITY);
    assert_eq!(m.data[3], 1.5);
}

#[test]
fn csv_empty_and_header_only_are_errors() {
    let d = scratch("empty");
    let p = write(&d, "e.csv", "");
    let msg = read_matrix(&p).unwrap_err().to_string();
    assert!(msg.contains("e.csv") && msg.contains("empty"), "{msg}");
    let p = write(&d, "h.csv", "a,b\n");
    let msg = read_matrix(&p).unwrap_err().to_string();
    assert!(msg.contains("h.csv") && msg.contains("no data rows"), "{msg}");
}

#[test]
fn unknown_extension_is_an_error() {
    let d = scratch("ext");
    let p = write(&d, "t.txt", "1,2\n");
    let msg = read_matrix(&p).unwrap_err().to_string();
    assert!(msg.contains("t.txt") && msg.contains(".npy") && msg.contains(".csv"), "{msg}");
    let missing = read_matrix(&d.join("missing.csv")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
}

#[test]
fn csv_round_trip_with_header() {
    let d = scratch("csvrt");
    let m = Matrix::new(2, 3, vec![0.1, -2.5e-7, 3.0, f64::NAN, 1e10, -0.333333343])
        .with_header(vec!["a".into(), "b".into(), "c".into()]);
    let p = d.join("m.csv");
    write_matrix(&p, &m).unwrap();
    let r = read_matrix(&p).unwrap();
    assert_eq!(r.header, m.header);
    assert_eq!((r.rows, r.cols), (2, 3));
    for (a, b) in r.data.iter().zip(&m.data) {
        assert!((a.is_nan() && b.is_nan()) || (*a as f32) == (*b as f32), "{a} vs {b}");
    }
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("m.csv")], "a temporary file was left behind");
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    order: npyz::Order,
    data: &[T],
) {
    use npyz::WriterBuilder;
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).order(order).writer(f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

#[test]
fn npy_f32_f64_c_and_fortran_order() {
    let d = scratch("npy");
    let want = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [[1,2,3],[4,5,6]]
    let fortran = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]; // the same array in column-major order
    let cases: Vec<(&str, npyz::Order, bool)> = vec![
        ("c64.npy", npyz::Order::C, true),
        ("f64.npy", npyz::Order::Fortran, true),
        ("c32.npy", npyz::Order::C, false),
        ("f32.npy", npyz::Order::Fortran, false),
    ];
    for (name, order, f64s) in cases {
        let p = d.join(name);
        let src: &[f64] = if order == npyz::Order::C { &want } else { &fortran };
        if f64s {
            write_npy(&p, &[2, 3], order, src);
        } else {
            let s32: Vec<f32> = src.iter().map(|&v| v as f32).collect();
            write_npy(&p, &[2, 3], order, &s32);
        }
        let m = read_matrix(&p).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3), "{name}");
        assert_eq!(m.data, want, "{name}");
    }
    // 1-D array -> one row
    let p = d.join("one.npy");
    write_npy(&p, &[4], npyz::Order::C, &[1.0f32, 2.0, 3.0, 4.0]);
    let m = read_matrix(&p).unwrap();
    assert_eq!((m.rows, m.cols), (1, 4));
    // round trip through write_matrix (float32, C order)
    let p = d.join("rt.npy");
    write_matrix(&p, &Matrix::new(2, 3, want.clone())).unwrap();
    assert_eq!(read_matrix(&p).unwrap().data, want);
}

#[test]
fn npy_wrong_dtype_or_ndim_is_data_error() {
    let d = scratch("npybad");
    let p = d.join("int.npy");
    write_npy(&p, &[2, 2], npyz::Order::C, &[1i32, 2, 3, 4]);
    let msg = read_matrix(&p).unwrap_err().to_string();
    assert!(msg.contains("int.npy") && msg.contains("dtype") && msg.contains("<i4"), "{msg}");
    let p = d.join("3d.npy");
    write_npy(&p, &[2, 1, 2], npyz::Order::C, &[1.0f64, 2.0, 3.0, 4.0]);
    let msg = read_matrix(&p).unwrap_err().to_string();
    assert!(msg.contains("3d.npy") && msg.contains("[2, 1, 2]"), "{msg}");
}

#[test]
fn drop_nonfinite_rows_counts_and_errors() {
    let tp = Path::new("theta.csv");
    let xp = Path::new("x.csv");
    let theta = Matrix::new(4, 1, vec![1.0, 2.0, 3.0, 4.0]).with_header(vec!["t".into()]);
    let x = Matrix::new(4, 2, vec![0.0, 1.0, f64::NAN, 1.0, 2.0, f64::INFINITY, 3.0, 3.0]);
    let (t2, x2, dropped) = drop_nonfinite_rows(&theta, &x, tp, xp).unwrap();
    assert_eq!(dropped, 2);
    assert_eq!(t2.data, vec![1.0, 4.0]);
    assert_eq!(x2.data, vec![0.0, 1.0, 3.0, 3.0]);
    assert_eq!(t2.header, theta.header);

    // row count mismatch names both files and counts
    let short = Matrix::new(3, 2, vec![0.0; 6]);
    let msg = drop_nonfinite_rows(&theta, &short, tp, xp).unwrap_err().to_string();
    assert!(msg.contains("theta.csv") && msg.contains("x.csv") && msg.contains('4') && msg.contains('3'), "{msg}");

    // non-finite theta: file, line (header counted) and column
    let bad = Matrix::new(2, 2, vec![0.0, 1.0, 2.0, f64::NAN]).with_header(vec!["a".into(), "b".into()]);
    let x2rows = Matrix::new(2, 1, vec![0.0, 0.0]);
    let e = drop_nonfinite_rows(&bad, &x2rows, tp, xp).unwrap_err();
    let text = e.to_string();
    let (line, col, _) = data_err(e);
    assert_eq!((line, col), (Some(3), Some(2)), "{text}");
    assert!(text.contains("theta.csv"), "{text}");

    // nothing left
    let allnan = Matrix::new(2, 1, vec![f64::NAN, f64::NEG_INFINITY]);
    let ok_theta = Matrix::new(2, 1, vec![0.0, 1.0]);
    let msg = drop_nonfinite_rows(&ok_theta, &allnan, tp, xp).unwrap_err().to_string();
    assert!(msg.contains("x.csv") && msg.contains("nothing"), "{msg}");
}

#[test]
fn model_dir_round_trip_and_replace() {
    let d = scratch("model");
    let dir = d.join("m1");
    let json = serde_json::json!({"task": "two_moons", "hidden": [64, 64]});
    let tensors = vec![
        Tensor { name: "layers.0.weight".into(), shape: vec![2, 3], data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] },
        Tensor { name: "layers.0.bias".into(), shape: vec![2], data: vec![-1.0, 0.5] },
    ];
    write_model_dir(&dir, &json, &tensors).unwrap();
    let (j2, mut t2) = read_model_dir(&dir).unwrap();
    assert_eq!(j2, json);
    t2.sort_by(|a, b| b.name.cmp(&a.name));
    assert_eq!(t2, tensors);
    // the JSON is pretty-printed
    assert!(std::fs::read_to_string(dir.join("model.json")).unwrap().contains("\n  \"task\""));

    // replace an existing model directory
    let json2 = serde_json::json!({"task": "slcp"});
    write_model_dir(&dir, &json2, &tensors[1..]).unwrap();
    let (j3, t3) = read_model_dir(&dir).unwrap();
    assert_eq!((j3, t3.len()), (json2, 1));

    // no temporary or old directories remain
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("m1")]);

    // invalid tensors: nothing written, nothing left behind
    let bad = vec![Tensor { name: "w".into(), shape: vec![3], data: vec![1.0] }];
    assert!(matches!(write_model_dir(&d.join("m2"), &json, &bad), Err(Error::Invalid(_))));
    assert!(!d.join("m2").exists());

    // refuses to replace a directory that is not a model directory
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "x").unwrap();
    assert!(write_model_dir(&other, &json, &tensors).is_err());
    assert!(other.join("keep.txt").exists());
}

#[test]
fn model_dir_read_errors_name_the_file() {
    let d = scratch("modelbad");
    let msg = read_model_dir(&d).unwrap_err().to_string();
    assert!(msg.contains("model.json"), "{msg}");
    std::fs::write(d.join("model.json"), "{\"a\": 1}").unwrap();
    let msg = read_model_dir(&d).unwrap_err().to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
    std::fs::write(d.join("model.safetensors"), b"garbage!").unwrap();
    let msg = read_model_dir(&d).unwrap_err().to_string();
    assert!(msg.contains("model.safetensors") && msg.contains("safetensors"), "{msg}");
    std::fs::write(d.join("model.json"), "{\"a\": ").unwrap();
    let msg = read_model_dir(&d).unwrap_err().to_string();
    assert!(msg.contains("model.json") && msg.contains("line 1"), "{msg}");
}

#[test]
fn model_with_embedding_round_trips_and_models_without_one_keep_their_json() {
    use fmpe::model::Model;
    use fmpe::net::{init_params, Conditioning, NetConfig};
    use rand::SeedableRng;
    let d = scratch("embedding");
    let cfg = NetConfig { dim_theta: 2, dim_x: 7, hidden: vec![8, 12], conditioning: Conditioning::Concat, embedding: vec![5, 3] };
    let params = init_params(&cfg, &mut rand::rngs::StdRng::seed_from_u64(1));
    let mut m = Model::with_params(cfg.clone(), params);
    m.x_mean = (0..7).map(|i| i as f64 * 0.25).collect();
    m.save(&d.join("emb")).unwrap();
    let (json, tensors) = read_model_dir(&d.join("emb")).unwrap();
    assert_eq!(json["net"]["embedding"], serde_json::json!([5, 3]));
    let shape = |name: &str| tensors.iter().find(|t| t.name == name).map(|t| t.shape.clone());
    assert_eq!(shape("embedding.0.weight"), Some(vec![5, 7]), "PyTorch [out, in]");
    assert_eq!(shape("embedding.0.bias"), Some(vec![5]));
    assert_eq!(shape("embedding.1.weight"), Some(vec![3, 5]));
    assert_eq!(shape("embedding.1.bias"), Some(vec![3]));
    assert_eq!(shape("input.weight"), Some(vec![8, 1 + 2 + 3]), "the input layer reads [t, θ, e]");
    let back = Model::load(&d.join("emb")).unwrap();
    assert_eq!(back, m);
    // The embedding tensors are the first ones of the flat layout.
    let l = cfg.layout();
    assert_eq!((l.embedding[0].weight, l.input.weight), (0, 5 * 7 + 5 + 3 * 5 + 3));

    // Without an embedding, model.json has no "embedding" key (as written before the
    // option existed), and such a file loads with an empty embedding.
    let plain = NetConfig { embedding: vec![], ..cfg };
    let params = init_params(&plain, &mut rand::rngs::StdRng::seed_from_u64(2));
    let m = Model::with_params(plain, params);
    m.save(&d.join("plain")).unwrap();
    let (json, _) = read_model_dir(&d.join("plain")).unwrap();
    assert!(json["net"].get("embedding").is_none(), "{}", json["net"]);
    assert_eq!(Model::load(&d.join("plain")).unwrap(), m);

    // A model directory whose tensors disagree with the declared embedding is an error.
    let mut wrong = json.clone();
    wrong["net"]["embedding"] = serde_json::json!([4]);
    let (_, tensors) = read_model_dir(&d.join("plain")).unwrap();
    write_model_dir(&d.join("wrong"), &wrong, &tensors).unwrap();
    let msg = Model::load(&d.join("wrong")).unwrap_err().to_string();
    assert!(msg.contains("embedding.0.weight"), "{msg}");
}

// ------------------------------------------------------------------ atomic writes

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Eight threads of one process write the same file at once. With temporary names made
/// from the process id they would share one temporary file and interleave; with names
/// unique per call every write is whole, the last rename wins, nothing is left behind.
#[test]
fn atomic_file_writes_from_threads_of_one_process_do_not_mix() {
    let d = scratch("atomic-threads");
    let target = d.join("samples.csv");
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let target = &target;
            s.spawn(move || {
                for _ in 0..20 {
                    write_file_atomic(target, |w| {
                        use std::io::Write;
                        for _ in 0..2000 {
                            w.write_all(&[b'a' + t; 16])?;
                        }
                        Ok(())
                    })
                    .unwrap();
                }
            });
        }
    });
    let bytes = std::fs::read(&target).unwrap();
    assert_eq!(bytes.len(), 32_000);
    assert!(bytes.iter().all(|&c| c == bytes[0]), "the file mixes the output of several writers");
    assert_eq!(names(&d), vec!["samples.csv"], "a temporary file was left behind");
}

/// An error while writing leaves the previous file as it was and no temporary.
#[test]
fn atomic_file_write_error_keeps_the_old_file() {
    let d = scratch("atomic-error");
    let target = d.join("x.npy");
    std::fs::write(&target, "old").unwrap();
    let e = write_file_atomic(&target, |w| {
        use std::io::Write;
        w.write_all(b"half")?;
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(matches!(&e, Error::Io { .. }) && e.to_string().contains("x.npy"), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
    assert_eq!(names(&d), vec!["x.npy"]);
    // The path-based variant: the writer gets a fresh path with the target's extension.
    let png = d.join("plot.png");
    write_file_atomic_with_path(&png, |tmp| {
        assert_eq!(tmp.extension().unwrap(), "png");
        assert_eq!(tmp.parent(), png.parent());
        assert!(tmp.file_name().unwrap().to_string_lossy().starts_with(".plot.png.tmp-"), "{}", tmp.display());
        std::fs::write(tmp, "png bytes").map_err(|e| Error::io(tmp, e))
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&png).unwrap(), "png bytes");
    assert!(write_file_atomic_with_path(&png, |_| Err(Error::invalid("no"))).is_err());
    assert_eq!(std::fs::read_to_string(&png).unwrap(), "png bytes");
    assert_eq!(names(&d), vec!["plot.png", "x.npy"]);
}

/// Files and directories get the permissions a plain create gives (umask applied), not
/// `tempfile`'s private 0600 / 0700.
#[cfg(unix)]
#[test]
fn atomic_writes_keep_the_usual_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch("atomic-mode");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::write(d.join("plain.csv"), "1").unwrap();
    std::fs::create_dir(d.join("plain_dir")).unwrap();
    write_matrix(&d.join("m.csv"), &Matrix::new(1, 1, vec![1.0])).unwrap();
    write_dir_atomic(&d.join("out"), |_| Ok(())).unwrap();
    assert_eq!(mode(&d.join("m.csv")), mode(&d.join("plain.csv")));
    assert_eq!(mode(&d.join("out")), mode(&d.join("plain_dir")));
}

/// A staged directory appears whole or not at all; an existing one is replaced; two
/// staged directories for one destination never share a temporary.
#[test]
fn atomic_directories_replace_or_stay_as_they_were() {
    let d = scratch("atomic-dir");
    let out = d.join("nested").join("run");
    let a = StagedDir::new(&out).unwrap();
    let b = StagedDir::new(&out).unwrap();
    assert_ne!(a.path(), b.path());
    assert_eq!(a.dest(), out.as_path());
    std::fs::write(a.path().join("samples.csv"), "a").unwrap();
    drop(b); // not committed: removed
    assert!(!out.exists());
    a.commit().unwrap();
    assert_eq!(names(&out), vec!["samples.csv"]);
    // Replace the existing directory.
    write_dir_atomic(&out, |tmp| std::fs::write(tmp.join("summary.json"), "{}").map_err(|e| Error::io(tmp, e))).unwrap();
    assert_eq!(names(&out), vec!["summary.json"]);
    // An error in the filling closure leaves the directory as it was.
    let e = write_dir_atomic(&out, |tmp| {
        std::fs::write(tmp.join("half"), "").unwrap();
        Err(Error::invalid("stopped"))
    });
    assert!(e.is_err());
    assert_eq!(names(&out), vec!["summary.json"]);
    assert_eq!(names(&d.join("nested")), vec!["run"], "a temporary directory was left behind");
}
