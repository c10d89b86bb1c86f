//! Simulator constants of sbibm 1.1.0, embedded from `data/sbibm/` (MIT, see
//! `NOTICE-sbibm.md`) and parsed once on first use.

use std::sync::OnceLock;

/// A parsed embedded CSV: `[rows, cols]` row-major, header row skipped.
pub(crate) struct Table {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

/// Parses an embedded CSV with one header row. Panics on malformed content (the files
/// are part of the crate and covered by its tests).
fn parse(name: &str, text: &str) -> Table {
    let mut rows = 0;
    let mut cols = 0;
    let mut data = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let before = data.len();
        for cell in line.split(',') {
            let v: f64 = cell
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("embedded {name}: line {}: bad number '{cell}'", i + 1));
            data.push(v);
        }
        let c = data.len() - before;
        if rows == 0 {
            cols = c;
        }
        assert_eq!(c, cols, "embedded {name}: line {}: wrong number of columns", i + 1);
        rows += 1;
    }
    Table { rows, cols, data }
}

macro_rules! embedded {
    ($fn_name:ident, $path:literal, $rows:expr, $cols:expr) => {
        pub(crate) fn $fn_name() -> &'static Table {
            static CELL: OnceLock<Table> = OnceLock::new();
            CELL.get_or_init(|| {
                let t = parse($path, include_str!(concat!("../../data/sbibm/", $path)));
                assert_eq!((t.rows, t.cols), ($rows, $cols), "embedded {}: unexpected shape", $path);
                t
            })
        }
    };
}

// bernoulli_glm / bernoulli_glm_raw
embedded!(bernoulli_design_matrix, "bernoulli_glm/design_matrix.csv", 100, 10);
embedded!(bernoulli_prior_precision, "bernoulli_glm/prior_precision_matrix.csv", 10, 10);
embedded!(bernoulli_stimulus, "bernoulli_glm/stimulus_I.csv", 100, 1);

// slcp_distractors
embedded!(gmm_loc, "slcp_distractors/gmm_loc.csv", 20, 92);
embedded!(gmm_scale_tril, "slcp_distractors/gmm_scale_tril.csv", 1840, 92);
embedded!(gmm_weights, "slcp_distractors/gmm_weights.csv", 20, 1);
embedded!(gmm_df, "slcp_distractors/gmm_df.csv", 20, 1);
embedded!(permutation_idx, "slcp_distractors/permutation_idx.csv", 100, 1);
