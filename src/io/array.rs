//! Dense 2-D arrays in `.csv` and `.npy` files.
//!
//! Everything is read into a row-major `f64` [`Matrix`] `[rows, cols]`. Errors about the
//! content name the file and, for CSV, the 1-based line and column of the offending cell.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::atomic::write_file_atomic;

/// A dense row-major `f64` matrix `[rows, cols]` read from (or to be written to) a file.
///
/// `data[r * cols + c]` is the element in row `r`, column `c` (both 0-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows (samples).
    pub rows: usize,
    /// Number of columns (dimensions).
    pub cols: usize,
    /// The `rows * cols` values, row-major.
    pub data: Vec<f64>,
    /// Column names from a CSV header row (`None` for `.npy` or headerless CSV).
    pub header: Option<Vec<String>>,
    /// 1-based source line of each row in a CSV file (blank lines skipped); `None` when
    /// rows map to lines one to one.
    pub lines: Option<Vec<usize>>,
}

impl Matrix {
    /// A matrix without header. Panics if `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(data.len(), rows * cols, "Matrix::new: data length != rows * cols");
        Matrix { rows, cols, data, header: None, lines: None }
    }

    /// The same matrix with a header (column names). Panics if `header.len() != cols`.
    pub fn with_header(mut self, header: Vec<String>) -> Self {
        assert_eq!(header.len(), self.cols, "Matrix::with_header: header length != cols");
        self.header = Some(header);
        self
    }

    /// Row `r` (0-based) as a slice of length `cols`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// The 1-based line (CSV, counting a header line) or row (`.npy`) of 0-based row `r`,
    /// assuming one line per row as written by [`write_matrix`] / sbibm.
    pub fn line_of_row(&self, r: usize) -> usize {
        if let Some(l) = self.lines.as_ref().and_then(|l| l.get(r)) {
            return *l;
        }
        r + 1 + usize::from(self.header.is_some())
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}

/// Reads a 2-D array from `path`, choosing the format by extension (`.npy` or `.csv`).
///
/// * `.npy`: float32 or float64, C or Fortran order, 2-D; a 1-D array of length `n` is read
///   as one row `[1, n]`. Other dtypes or dimensionalities give [`Error::Data`].
/// * `.csv`: comma separated. The first row is a header exactly when none of its cells
///   parses as a number (sbibm headers such as `$\beta$,$\gamma$` or `data_1,...`). Cells
///   `nan`, `inf`, `-inf` parse as non-finite numbers; the caller decides what to do with
///   them (see [`drop_nonfinite_rows`]).
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened; [`Error::Data`] (with the 1-based line and
/// column for CSV) for malformed content, an empty file, or an unsupported extension.
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    match extension(path).as_deref() {
        Some("npy") => read_npy(path),
        Some("csv") => read_csv(path),
        _ => Err(Error::data(
            path,
            None,
            None,
            "unsupported file extension; accepted extensions are .npy and .csv",
        )),
    }
}

fn read_npy(path: &Path) -> Result<Matrix> {
    use npyz::{DType, Order, TypeChar};
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::data(path, None, None, format!("not a valid .npy file: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    let (rows, cols) = match shape.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => {
            return Err(Error::data(
                path,
                None,
                None,
                format!("expected a 1-D or 2-D array, found shape {shape:?} ({} dimensions)", shape.len()),
            ))
        }
    };
    let fortran = npy.order() == Order::Fortran && shape.len() == 2;
    let dtype = npy.dtype();
    let bytes = match &dtype {
        DType::Plain(ts) if ts.type_char() == TypeChar::Float => ts.num_bytes(),
        _ => None,
    };
    // A header may claim any shape: check it against the file's length before
    // anything is allocated for the data.
    let file_len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let claimed = rows.checked_mul(cols).and_then(|n| n.checked_mul(bytes.unwrap_or(1)));
    if claimed.is_none_or(|b| b as u64 > file_len) {
        return Err(Error::data(
            path,
            None,
            None,
            format!(
                "the header claims shape {shape:?} ({}), more data than the whole file holds ({file_len} bytes): truncated or corrupt",
                claimed.map_or("more bytes than this machine can address".to_string(), |b| format!("{b} bytes"))
            ),
        ));
    }
    let raw: Vec<f64> = match bytes {
        Some(4) => npy
            .into_vec::<f32>()
            .map_err(|e| Error::data(path, None, None, format!("cannot read float32 data: {e}")))?
            .into_iter()
            .map(f64::from)
            .collect(),
        Some(8) => npy
            .into_vec::<f64>()
            .map_err(|e| Error::data(path, None, None, format!("cannot read float64 data: {e}")))?,
        _ => {
            return Err(Error::data(
                path,
                None,
                None,
                format!("unsupported dtype '{}'; expected float32 ('<f4') or float64 ('<f8')", dtype.descr()),
            ))
        }
    };
    if raw.len() != rows * cols {
        return Err(Error::data(
            path,
            None,
            None,
            format!("expected {} values for shape {shape:?}, found {}", rows * cols, raw.len()),
        ));
    }
    let data = if fortran {
        // column-major: element (r, c) is at c * rows + r
        let mut d = vec![0.0; rows * cols];
        for c in 0..cols {
            for r in 0..rows {
                d[r * cols + c] = raw[c * rows + r];
            }
        }
        d
    } else {
        raw
    };
    Ok(Matrix { rows, cols, data, header: None, lines: None })
}

fn parse_number(cell: &str) -> Option<f64> {
    let t = cell.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

fn read_csv(path: &Path) -> Result<Matrix> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(BufReader::new(file));
    let mut header: Option<Vec<String>> = None;
    let mut cols: Option<usize> = None;
    let mut data = Vec::new();
    let mut rows = 0usize;
    let mut first = true;
    let mut record = csv::StringRecord::new();
    let mut lines = Vec::new();
    loop {
        let more = rdr.read_record(&mut record).map_err(|e| {
            let line = e.position().map(|p| p.line() as usize);
            let msg = match e.kind() {
                csv::ErrorKind::Io(io) => format!("read error: {io}"),
                csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_string(),
                _ => e.to_string(),
            };
            Error::data(path, line, None, msg)
        })?;
        if !more {
            break;
        }
        let line = record.position().map(|p| p.line() as usize).unwrap_or(rows + 1);
        // A line with one empty cell is a blank line (csv skips truly empty lines already).
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        if first {
            first = false;
            if record.iter().all(|c| parse_number(c).is_none()) {
                header = Some(record.iter().map(str::to_string).collect());
                cols = Some(record.len());
                continue;
            }
        }
        let expected = *cols.get_or_insert(record.len());
        if record.len() != expected {
            return Err(Error::data(
                path,
                Some(line),
                None,
                format!(
                    "expected {expected} columns ({}), found {}",
                    if header.is_some() { "as in the header" } else { "as in the first row" },
                    record.len()
                ),
            ));
        }
        for (j, cell) in record.iter().enumerate() {
            match parse_number(cell) {
                Some(v) => data.push(v),
                None => {
                    return Err(Error::data(
                        path,
                        Some(line),
                        Some(j + 1),
                        format!("cannot parse '{cell}' as a number"),
                    ))
                }
            }
        }
        lines.push(line);
        rows += 1;
    }
    if rows == 0 {
        let msg = if header.is_some() {
            "the file has a header row but no data rows"
        } else {
            "the file is empty (no data rows)"
        };
        return Err(Error::data(path, None, None, msg));
    }
    let cols = cols.unwrap_or(0);
    if cols == 0 {
        return Err(Error::data(path, None, None, "the file has no columns"));
    }
    Ok(Matrix { rows, cols, data, header, lines: Some(lines) })
}

/// Writes `m` to `path`, choosing the format by extension:
///
/// * `.csv`: the header row (if `m.header` is set), then one line per row, each value
///   printed as the shortest decimal that round-trips the value rounded to `f32`
///   (non-finite values as `NaN`, `inf`, `-inf`).
/// * `.npy`: float32, C order, shape `[rows, cols]`.
///
/// The file is written to a temporary file in the same directory (a name unique per call)
/// and renamed onto `path`, so readers never see a half-written file
/// ([`write_file_atomic`]).
///
/// # Errors
/// [`Error::Invalid`] if `m.data.len() != rows * cols` or the header length is wrong;
/// [`Error::Data`] for an unsupported extension; [`Error::Io`] on write failure.
pub fn write_matrix(path: &Path, m: &Matrix) -> Result<()> {
    if m.data.len() != m.rows * m.cols {
        return Err(Error::invalid(format!(
            "cannot write {}: matrix data has {} values, expected rows * cols = {} * {}",
            path.display(),
            m.data.len(),
            m.rows,
            m.cols
        )));
    }
    if let Some(h) = &m.header {
        if h.len() != m.cols {
            return Err(Error::invalid(format!(
                "cannot write {}: header has {} names for {} columns",
                path.display(),
                h.len(),
                m.cols
            )));
        }
    }
    let ext = extension(path);
    if !matches!(ext.as_deref(), Some("csv") | Some("npy")) {
        return Err(Error::data(
            path,
            None,
            None,
            "unsupported file extension; accepted extensions are .npy and .csv",
        ));
    }
    write_file_atomic(path, |w| match ext.as_deref() {
        Some("csv") => write_csv_to(w, m),
        _ => write_npy_to(w, m),
    })
}

fn write_csv_to(w: &mut impl Write, m: &Matrix) -> std::io::Result<()> {
    let mut wr = csv::WriterBuilder::new().from_writer(w);
    if let Some(h) = &m.header {
        wr.write_record(h)?;
    }
    let mut cells: Vec<String> = Vec::with_capacity(m.cols);
    for r in 0..m.rows {
        cells.clear();
        cells.extend(m.row(r).iter().map(|&v| format!("{}", v as f32)));
        wr.write_record(&cells)?;
    }
    wr.flush()?;
    Ok(())
}

fn write_npy_to(w: &mut impl Write, m: &Matrix) -> std::io::Result<()> {
    use npyz::WriterBuilder;
    let mut wr = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[m.rows as u64, m.cols as u64])
        .writer(w)
        .begin_nd()?;
    wr.extend(m.data.iter().map(|&v| v as f32))?;
    wr.finish()
}

/// Writes a `[rows, cols]` matrix whose rows arrive in chunks, as `.csv` (with the
/// optional `header`) or `.npy` (f32, like [`write_matrix`]), atomically, holding one
/// chunk at a time: `next_chunk` returns the next rows (row-major, a whole number of
/// rows) until all `rows` are written; it is not called again after that.
///
/// # Errors
/// [`Error::Data`] for an unsupported extension; [`Error::Invalid`] when a chunk is not
/// a whole number of rows, would pass `rows`, is empty before the end, or the header
/// length is wrong; whatever `next_chunk` returns; [`Error::Io`] on write failure. The
/// file is not created on error.
pub fn write_matrix_chunks(
    path: &Path,
    rows: usize,
    cols: usize,
    header: Option<&[String]>,
    next_chunk: &mut dyn FnMut() -> Result<Vec<f64>>,
) -> Result<()> {
    let ext = extension(path);
    if !matches!(ext.as_deref(), Some("csv") | Some("npy")) {
        return Err(Error::data(path, None, None, "unsupported file extension; accepted extensions are .npy and .csv"));
    }
    if cols == 0 || header.is_some_and(|h| h.len() != cols) {
        return Err(Error::invalid(format!("cannot write {}: {cols} columns and a header of another length", path.display())));
    }
    let mut failure: Option<Error> = None;
    let mut pull = |done: usize| -> std::io::Result<Vec<f64>> {
        let chunk = next_chunk().map_err(|e| {
            failure = Some(e);
            std::io::Error::other("chunk failed")
        })?;
        if chunk.is_empty() || !chunk.len().is_multiple_of(cols) || done + chunk.len() / cols > rows {
            failure = Some(Error::invalid(format!(
                "cannot write {}: a chunk of {} values does not fit the remaining {} rows of {cols} columns",
                path.display(),
                chunk.len(),
                rows - done
            )));
            return Err(std::io::Error::other("bad chunk"));
        }
        Ok(chunk)
    };
    let res = write_file_atomic(path, |w| {
        let mut done = 0;
        if ext.as_deref() == Some("csv") {
            let mut wr = csv::WriterBuilder::new().from_writer(w);
            if let Some(h) = header {
                wr.write_record(h)?;
            }
            let mut cells: Vec<String> = Vec::with_capacity(cols);
            while done < rows {
                let chunk = pull(done)?;
                for row in chunk.chunks(cols) {
                    cells.clear();
                    cells.extend(row.iter().map(|&v| format!("{}", v as f32)));
                    wr.write_record(&cells)?;
                }
                done += chunk.len() / cols;
            }
            wr.flush()
        } else {
            use npyz::WriterBuilder;
            let mut wr = npyz::WriteOptions::new().default_dtype().shape(&[rows as u64, cols as u64]).writer(w).begin_nd()?;
            while done < rows {
                let chunk = pull(done)?;
                wr.extend(chunk.iter().map(|&v| v as f32))?;
                done += chunk.len() / cols;
            }
            wr.finish()
        }
    });
    match (res, failure) {
        (_, Some(e)) => Err(e),
        (r, None) => r,
    }
}

/// Checks a training set read from two files and removes failed simulations.
///
/// `theta` is `[n, dim_theta]`, `x` is `[n, dim_x]`, row `i` of one belonging to row `i` of
/// the other. Rows whose `x` contains NaN or ±inf (failed simulations, as the sbibm
/// simulators produce them) are dropped together with their `theta` row.
///
/// Returns `(theta, x, dropped)` with the kept rows in their original order.
///
/// # Errors
/// [`Error::Invalid`] if the row counts differ (naming both files and counts);
/// [`Error::Data`] if any `theta` value is non-finite (naming the file, its 1-based line or
/// row, and column), or if no row is left after dropping.
pub fn drop_nonfinite_rows(
    theta: &Matrix,
    x: &Matrix,
    theta_path: &Path,
    x_path: &Path,
) -> Result<(Matrix, Matrix, usize)> {
    if theta.rows != x.rows {
        return Err(Error::invalid(format!(
            "{} has {} rows but {} has {} rows; theta and x must have one row per simulation",
            theta_path.display(),
            theta.rows,
            x_path.display(),
            x.rows
        )));
    }
    for r in 0..theta.rows {
        if let Some(c) = theta.row(r).iter().position(|v| !v.is_finite()) {
            return Err(Error::data(
                theta_path,
                Some(theta.line_of_row(r)),
                Some(c + 1),
                format!("non-finite parameter value {} (data row {}); theta must be finite", theta.row(r)[c], r + 1),
            ));
        }
    }
    let mut t_data = Vec::with_capacity(theta.data.len());
    let mut x_data = Vec::with_capacity(x.data.len());
    let (mut t_lines, mut x_lines) = (Vec::new(), Vec::new());
    let mut kept = 0usize;
    for r in 0..x.rows {
        if x.row(r).iter().all(|v| v.is_finite()) {
            t_data.extend_from_slice(theta.row(r));
            x_data.extend_from_slice(x.row(r));
            t_lines.push(theta.line_of_row(r));
            x_lines.push(x.line_of_row(r));
            kept += 1;
        }
    }
    let dropped = x.rows - kept;
    if kept == 0 {
        return Err(Error::data(
            x_path,
            None,
            None,
            format!("all {} rows contain NaN or infinite values; nothing is left to train on", x.rows),
        ));
    }
    Ok((
        Matrix { rows: kept, cols: theta.cols, data: t_data, header: theta.header.clone(), lines: Some(t_lines) },
        Matrix { rows: kept, cols: x.cols, data: x_data, header: x.header.clone(), lines: Some(x_lines) },
        dropped,
    ))
}
