//! Structure checks over the source tree, without compiling it:
//!
//! * no import circle between the top-level modules of `src/` (a module is `src/X.rs` or
//!   the folder `src/X/`): every `crate::X` path in code (`use crate::X::..`,
//!   `use crate::{X::.., Y}`, `crate::X::f(..)`) is an edge from the module of the file to
//!   `X`. Comments (so doc links like ``[`crate::io::read_matrix`]``), string literals and
//!   `#[cfg(test)]` modules (unit tests may use any module, e.g. the f64 reference) are
//!   not scanned. Files of the binary (`src/main.rs`, `src/cli/**`) reach the library as
//!   `fmpe::..`, which cannot close a circle, and are scanned like the rest;
//! * no function in `src/` longer than [`MAX_FN_LINES`] lines (from the line of its `fn`
//!   keyword to the line of its closing brace), except those in [`LONG_FN_EXCEPTIONS`].
//!
//! The scanner is a small lexer (comments, nested block comments, strings, raw strings,
//! char literals versus lifetimes), enough for rustfmt-formatted code; its own unit
//! checks are the `scanner_*` tests below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function body allowed, in lines (issue 9).
const MAX_FN_LINES: usize = 120;

/// Functions allowed to be longer than [`MAX_FN_LINES`]: `(file under src/, function name,
/// why)`. Each entry must say why splitting the function would make it harder to read;
/// an entry whose function is gone or no longer too long fails the test, so the list
/// cannot go stale.
const LONG_FN_EXCEPTIONS: &[(&str, &str, &str)] = &[
    // (none: every function in src/ is at most MAX_FN_LINES lines)
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot read {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The path of `file` relative to the crate root, with `/` separators (`src/io/array.rs`).
fn rel(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    file.strip_prefix(root).unwrap_or(file).components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// The top-level module a file under `src/` belongs to (`src/io/array.rs` → `io`,
/// `src/plot.rs` → `plot`); `None` for the crate roots `lib.rs` and `main.rs`.
fn top_module(file: &Path) -> Option<String> {
    let r = file.strip_prefix(src_dir()).ok()?;
    let first = r.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// A source file reduced to code: every comment, string literal and char literal is
/// replaced by spaces (newlines kept, so byte offsets and line numbers stay valid).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            blank(&mut out, start, i);
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            blank(&mut out, start, i);
        } else if (b[i] == b'r' || (b[i] == b'b' && b.get(i + 1) == Some(&b'r')))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && raw_string_hashes(&b[i..]).is_some()
        {
            let skip = usize::from(b[i] == b'b');
            let hashes = raw_string_hashes(&b[i..]).unwrap();
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            i += skip + 1 + hashes + 1;
            while i < b.len() && !b[i..].starts_with(&close) {
                i += 1;
            }
            i = (i + close.len()).min(b.len());
            blank(&mut out, start, i);
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            blank(&mut out, start, i);
        } else if b[i] == b'\'' {
            // A char literal ('a', '\n', '\u{..}', 'é') or a lifetime / label ('a, 'static).
            if b.get(i + 1) == Some(&b'\\') {
                i += 3; // the quote, the backslash and the escaped character
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i = (i + 1).min(b.len());
                blank(&mut out, start, i);
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1 + ch_len) == Some(&b'\'') {
                    i += ch_len + 2;
                    blank(&mut out, start, i);
                } else {
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were replaced")
}

/// For `r"..."`, `r#"..."#`, `br"..."`: the number of `#`; `None` if `s` does not start a
/// raw string.
fn raw_string_hashes(s: &[u8]) -> Option<usize> {
    let s = s.strip_prefix(b"b").unwrap_or(s);
    let s = s.strip_prefix(b"r")?;
    let hashes = s.iter().take_while(|&&c| c == b'#').count();
    (s.get(hashes) == Some(&b'"')).then_some(hashes)
}

/// 1-based line of byte offset `pos`.
fn line_of(code: &str, pos: usize) -> usize {
    code[..pos].bytes().filter(|&c| c == b'\n').count() + 1
}

/// Offset of the brace matching the `{` at `open` (`code` is comment- and string-free).
fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in code[open..].bytes().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + k);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Offsets of the whole-word occurrences of `word` in `code`.
fn word_positions<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).map(|(p, _)| p).filter(move |&p| {
        let b = code.as_bytes();
        (p == 0 || !is_ident(b[p - 1])) && b.get(p + word.len()).is_none_or(|&c| !is_ident(c))
    })
}

/// `code` with the bodies of `#[cfg(test)]` items (unit-test modules) blanked out.
fn without_test_modules(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    for (p, _) in code.match_indices("#[cfg(test)]") {
        let Some(open) = code[p..].find('{').map(|o| p + o) else { continue };
        // Only when the attribute's item starts a block before any `;` (a module, fn, impl).
        if code[p..open].contains(';') {
            continue;
        }
        if let Some(close) = matching_brace(code, open) {
            for c in &mut out[p..=close] {
                if *c != b'\n' {
                    *c = b' ';
                }
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The first identifier at `s` (after whitespace).
fn ident_at(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let n = s.bytes().take_while(|&c| is_ident(c)).count();
    (n > 0).then(|| &s[..n])
}

/// Top-level module names a `crate::` path at `rest` (the text after `crate::`) names:
/// one identifier, or for `{a::x, b, c::{..}}` the first identifier of each item.
fn targets(rest: &str) -> Vec<String> {
    let t = rest.trim_start();
    if let Some(group) = t.strip_prefix('{') {
        let mut names = Vec::new();
        let (mut depth, mut item_start) = (0usize, 0usize);
        for (k, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    names.extend(ident_at(&group[item_start..k]).map(str::to_string));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    names.extend(ident_at(&group[item_start..k]).map(str::to_string));
                    item_start = k + 1;
                }
                _ => {}
            }
        }
        names
    } else {
        ident_at(t).map(str::to_string).into_iter().collect()
    }
}

/// One `crate::` edge: from module, to module, where (file:line).
#[derive(Clone, Debug)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

/// Every `crate::X` edge between two different top-level modules of `src/`.
fn crate_edges() -> Vec<Edge> {
    let modules: BTreeSet<String> = rust_files(&src_dir()).iter().filter_map(|f| top_module(f)).collect();
    let mut edges = Vec::new();
    for file in rust_files(&src_dir()) {
        let Some(from) = top_module(&file) else { continue };
        let src = std::fs::read_to_string(&file).unwrap();
        let code = without_test_modules(&code_only(&src));
        for p in word_positions(&code, "crate") {
            let Some(rest) = code[p + 5..].strip_prefix("::") else { continue };
            if p > 0 && code.as_bytes()[p - 1] == b'$' {
                continue; // `$crate` in a macro
            }
            for to in targets(rest) {
                if to != from && modules.contains(&to) {
                    edges.push(Edge { from: from.clone(), to, at: format!("{}:{}", rel(&file), line_of(&code, p)) });
                }
            }
        }
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(next) = s.graph.get(v) {
            for w in next {
                if !s.index.contains_key(w.as_str()) {
                    visit(s, w);
                    let lw = s.low[w.as_str()];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w.as_str()) {
                    let iw = s.index[w.as_str()];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// A shortest circle through `start` inside `comp` (breadth-first), as module names
/// `start → .. → start`.
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, comp: &[String], start: &str) -> Vec<String> {
    let inside: BTreeSet<&str> = comp.iter().map(String::as_str).collect();
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten().map(String::as_str).filter(|w| inside.contains(w)) {
            if w == start {
                let mut path = vec![v.to_string()];
                let mut cur = v;
                while cur != start {
                    cur = prev[cur];
                    path.push(cur.to_string());
                }
                path.reverse();
                path.push(start.to_string());
                return path;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start.to_string()]
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let edges = crate_edges();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &edges {
        graph.entry(e.from.clone()).or_default().insert(e.to.clone());
    }
    let comps = cycles(&graph);
    let mut report = String::new();
    for comp in &comps {
        report += &format!("modules that reach each other: {}\n", comp.join(", "));
        // The shortest circle through each module of the component, each printed once.
        let mut seen = BTreeSet::new();
        for m in comp {
            let circle = circle_through(&graph, comp, m);
            let mut key = circle[..circle.len() - 1].to_vec();
            key.sort();
            if !seen.insert(key) {
                continue;
            }
            report += &format!("  circle: {}\n", circle.join(" → "));
            for pair in circle.windows(2) {
                let at: Vec<&str> =
                    edges.iter().filter(|e| e.from == pair[0] && e.to == pair[1]).map(|e| e.at.as_str()).take(3).collect();
                report += &format!("    {} → {}: {}\n", pair[0], pair[1], at.join(", "));
            }
        }
    }
    assert!(comps.is_empty(), "import circles between the top-level modules of src/:\n{report}");
}

/// One function: file, name, first and last line.
#[derive(Debug)]
struct FnSpan {
    file: String,
    name: String,
    first: usize,
    last: usize,
}

impl FnSpan {
    fn lines(&self) -> usize {
        self.last - self.first + 1
    }
}

/// Every function with a body in `code` (comment- and string-free source of `file`).
fn functions(file: &str, code: &str) -> Vec<FnSpan> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for p in word_positions(code, "fn") {
        let Some(name) = ident_at(&code[p + 2..]) else { continue }; // `fn(..)` pointer types
        // The body is the first `{` outside parentheses and brackets; a `;` there first
        // means a declaration without body (in a trait).
        let (mut depth, mut open) = (0i32, None);
        for (k, &c) in b[p..].iter().enumerate() {
            match c {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'{' if depth == 0 => {
                    open = Some(p + k);
                    break;
                }
                b';' if depth == 0 => break,
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let Some(close) = matching_brace(code, open) else { continue };
        out.push(FnSpan { file: file.to_string(), name: name.to_string(), first: line_of(code, p), last: line_of(code, close) });
    }
    out
}

fn all_functions() -> Vec<FnSpan> {
    rust_files(&src_dir())
        .iter()
        .flat_map(|f| functions(&rel(f), &code_only(&std::fs::read_to_string(f).unwrap())))
        .collect()
}

#[test]
fn no_function_in_src_is_longer_than_the_limit() {
    let fns = all_functions();
    assert!(fns.len() > 100, "the scanner found only {} functions in src/", fns.len());
    let excepted = |f: &FnSpan| LONG_FN_EXCEPTIONS.iter().any(|(file, name, _)| *file == f.file && *name == f.name);
    let mut long: Vec<&FnSpan> = fns.iter().filter(|f| f.lines() > MAX_FN_LINES && !excepted(f)).collect();
    long.sort_by_key(|f| std::cmp::Reverse(f.lines()));
    let stale: Vec<String> = LONG_FN_EXCEPTIONS
        .iter()
        .filter(|(file, name, _)| !fns.iter().any(|f| f.file == *file && f.name == *name && f.lines() > MAX_FN_LINES))
        .map(|(file, name, _)| format!("{file}: fn {name}"))
        .collect();
    let list: String =
        long.iter().map(|f| format!("  {}:{}  fn {}  ({} lines)\n", f.file, f.first, f.name, f.lines())).collect();
    assert!(
        long.is_empty(),
        "functions longer than {MAX_FN_LINES} lines (split them, or add an entry with the reason to \
         LONG_FN_EXCEPTIONS in tests/structure.rs):\n{list}"
    );
    assert!(stale.is_empty(), "LONG_FN_EXCEPTIONS entries that are no longer needed: {stale:?}");
}

// ------------------------------------------------------------- the scanner itself

#[test]
fn scanner_blanks_comments_strings_and_chars_but_not_lifetimes() {
    let src = "fn a<'x>(s: &'x str) -> char { // crate::io in a comment\n    let _ = \"crate::gpu {\"; \
               /* crate::kernels /* nested */ { */ let _ = r#\"crate::net \"{\"#; '{'; '\\''; '}' }\n";
    let code = code_only(src);
    assert_eq!(code.len(), src.len());
    assert!(!code.contains("crate::"), "{code}");
    assert!(code.contains("'x"), "lifetimes are kept: {code}");
    assert_eq!(code.matches('{').count(), 1, "only the body's brace is left: {code}");
    let f = functions("t.rs", &code);
    assert_eq!((f.len(), f[0].name.as_str(), f[0].first, f[0].last), (1, "a", 1, 2));
}

#[test]
fn scanner_reads_grouped_and_inline_crate_paths() {
    assert_eq!(targets("{gpu::Gpu, kernels::{Arena, Kernel}, io}; x"), vec!["gpu", "kernels", "io"]);
    assert_eq!(targets("train::fit_model(&gpu)"), vec!["train"]);
    let code = code_only("#[cfg(test)]\nmod tests {\n    use crate::reference;\n}\nfn f() { crate::model::x(); }\n");
    let code = without_test_modules(&code);
    assert!(!code.contains("reference") && code.contains("crate::model"), "{code}");
    let f = functions("t.rs", "trait T { fn g(&self) -> [u8; 4]; fn h() {} }");
    assert_eq!(f.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["h"]);
}

#[test]
fn scanner_finds_a_three_module_circle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")] {
        g.entry(a.into()).or_default().insert(b.into());
    }
    let comps = cycles(&g);
    assert_eq!(comps, vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    assert_eq!(circle_through(&g, &comps[0], "a"), vec!["a", "b", "c", "a"]);
}
