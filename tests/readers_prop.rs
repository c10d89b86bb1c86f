//! Readers that never panic: property-based tests feed the CSV, `.npy` and model
//! readers random and mutated bytes (truncations, huge claimed shapes, invalid UTF-8,
//! quoted cells, mixed line endings, flipped bytes). Every call returns (an error, or a
//! matrix / model for inputs that happen to be valid) without panicking, and a counting
//! global allocator shows that the read's peak allocation stays within 2 × the file
//! size + 1 MiB (inputs up to 64 KiB). 256 cases per reader.
//!
//! The three readers run in one `#[test]` so that no other test thread allocates while
//! the peak is measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::SeqCst) + l.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::SeqCst) + new - l.size();
                PEAK.fetch_max(now, Ordering::SeqCst);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::SeqCst);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MIB: usize = 1 << 20;

/// Runs `read` and returns the peak of bytes allocated above those live before it.
fn peak_of<T>(read: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = read();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

fn check_peak(what: &str, file_size: usize, peak: usize) -> Result<(), TestCaseError> {
    prop_assert!(peak <= 2 * file_size + MIB, "{what}: peak allocation {peak} B for a {file_size}-byte file");
    Ok(())
}

/// Mutations of a byte string: truncate, flip a byte, insert bytes, or none.
fn mutate(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = base.len().max(1);
    (0u8..4, 0..n, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..16)).prop_map(move |(op, at, b, ins)| {
        let mut v = base.clone();
        match op {
            0 => v.truncate(at),
            1 if !v.is_empty() => {
                let i = at % v.len();
                v[i] ^= b.max(1);
            }
            2 => {
                let at = at.min(v.len());
                v.splice(at..at, ins);
            }
            _ => {}
        }
        v
    })
}

/// CSV-ish text: cells of numbers, words, quotes, NaN, huge exponents; separators and
/// mixed line endings; sometimes invalid UTF-8.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let cell = prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        (-1000i64..1000).prop_map(|v| v.to_string()),
        Just("1e999999".to_string()),
        Just("\"1,5\"".to_string()),
        Just("\"unterminated".to_string()),
        Just("nan".to_string()),
        Just(String::new()),
        "[a-z_ ]{0,6}",
    ];
    let sep = prop_oneof![Just(","), Just(",,"), Just(";")];
    let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("")];
    let row = (proptest::collection::vec((cell, sep), 1..6), eol).prop_map(|(cells, eol)| {
        let mut s: String = cells.into_iter().map(|(c, s)| format!("{c}{s}")).collect();
        s.pop();
        s + eol
    });
    (proptest::collection::vec(row, 0..40), proptest::collection::vec(any::<u8>(), 0..8), any::<bool>())
        .prop_map(|(rows, junk, bad_utf8)| {
            let mut v = rows.concat().into_bytes();
            if bad_utf8 {
                v.extend_from_slice(&[0xff, 0xfe]);
                v.extend(junk);
            }
            v
        })
        .prop_flat_map(mutate)
}

/// A .npy file: a valid magic and header with a random (often lying, often huge) shape,
/// dtype and order, then a random amount of data; then mutated.
fn npy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let dims = prop_oneof![
        proptest::collection::vec(0u64..8, 0..4),
        proptest::collection::vec(any::<u64>(), 1..3),
        Just(vec![1u64 << 40, 1u64 << 40]),
    ];
    let descr = prop_oneof![Just("<f8"), Just("<f4"), Just(">f8"), Just("<i4"), Just("|u1"), Just("<c16")];
    (dims, descr, any::<bool>(), 0usize..300, any::<u8>())
        .prop_map(|(dims, descr, fortran, data_len, fill)| {
            let shape = dims.iter().map(|d| format!("{d}, ")).collect::<String>();
            let mut header = format!("{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({shape}), }}", if fortran { "True" } else { "False" });
            while (10 + header.len() + 1) % 64 != 0 {
                header.push(' ');
            }
            header.push('\n');
            let mut v = b"\x93NUMPY\x01\x00".to_vec();
            v.extend_from_slice(&(header.len() as u16).to_le_bytes());
            v.extend_from_slice(header.as_bytes());
            v.extend(std::iter::repeat_n(fill, data_len));
            v
        })
        .prop_flat_map(mutate)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fmpe-prop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(name: &str, strategy: impl Strategy<Value = Vec<u8>>, case: impl Fn(&[u8]) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    runner.run(&strategy, |bytes| case(&bytes)).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn matrix_case(path: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    std::fs::write(path, bytes).unwrap();
    let (res, peak) = peak_of(|| fmpe::io::read_matrix(path));
    if let Err(e) = &res {
        prop_assert!(e.to_string().contains(path.to_str().unwrap()), "the error names the file: {e}");
    }
    check_peak(&path.display().to_string(), bytes.len(), peak)
}

/// A small valid model directory's two files, as bytes.
fn model_files() -> (Vec<u8>, Vec<u8>) {
    use fmpe::net::{Conditioning, NetConfig};
    let net = NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![8], conditioning: Conditioning::Concat, embedding: vec![] };
    let len = net.layout().len;
    let mut model = fmpe::model::Model::with_params(net, (0..len).map(|i| i as f32 * 1e-3).collect());
    model.theta_std = vec![1.0; 2];
    model.x_std = vec![1.0; 3];
    let d = tmp("model-src");
    let dir = d.join("m");
    model.save(&dir).unwrap();
    let files = (std::fs::read(dir.join("model.json")).unwrap(), std::fs::read(dir.join("model.safetensors")).unwrap());
    let _ = std::fs::remove_dir_all(&d);
    files
}

#[test]
fn readers_return_errors_on_random_and_mutated_bytes_within_bounded_memory() {
    let d = tmp("readers");
    let csv = d.join("m.csv");
    run("csv", csv_bytes(), |b| matrix_case(&csv, b));
    let npy = d.join("m.npy");
    run("npy", npy_bytes(), |b| matrix_case(&npy, b));

    let (json, st) = model_files();
    let dir = d.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    let assert_valid = fmpe::model::Model::load(&{
        std::fs::write(dir.join("model.json"), &json).unwrap();
        std::fs::write(dir.join("model.safetensors"), &st).unwrap();
        dir.clone()
    });
    assert!(assert_valid.is_ok(), "the unmutated model loads: {assert_valid:?}");
    let both = (mutate(json.clone()), mutate(st.clone()), 0u8..3).prop_map(move |(j, s, which)| match which {
        0 => (j, st.clone()),
        1 => (json.clone(), s),
        _ => (j, s),
    });
    let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    runner
        .run(&both, |(j, s)| {
            std::fs::write(dir.join("model.json"), &j).unwrap();
            std::fs::write(dir.join("model.safetensors"), &s).unwrap();
            let (_res, peak) = peak_of(|| fmpe::model::Model::load(&dir));
            check_peak("model", j.len() + s.len(), peak)
        })
        .unwrap_or_else(|e| panic!("model: {e}"));
    let _ = std::fs::remove_dir_all(&d);
}
