//! The module tree is the architecture (docs/architecture.md): this test fails when two source
//! files import each other, directly or through others, when the engine imports anything from
//! outside `src/engine/`, or when a file grows past the size limit.
//!
//! It reads `src/**/*.rs`, drops each file's test module (everything from the first
//! `#[cfg(test)]` on), resolves `crate::`, `super::` and `self::` paths to the file that defines
//! the longest matching module, and looks for strongly connected components (Tarjan). A parent
//! module naming or re-exporting its children (`mod x; pub use x::Y;`) is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Non-test lines a source file may have ("about 600", with a little slack for a long match).
const MAX_LINES: usize = 650;

struct Source {
    /// Module path: `src/engine/gp.rs` -> ["engine", "gp"]; `src/engine/mod.rs` -> ["engine"].
    module: Vec<String>,
    /// The file is a directory module (`mod.rs`, `lib.rs`, `main.rs`).
    is_dir_module: bool,
    /// Text before the first `#[cfg(test)]`.
    code: String,
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn sources(root: &Path) -> BTreeMap<String, Source> {
    let src = root.join("src");
    let mut files = vec![];
    collect(&src, &mut files);
    let mut out = BTreeMap::new();
    for p in files {
        let text = std::fs::read_to_string(&p).expect("read source");
        let code = match text.find("#[cfg(test)]") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        let rel = p.strip_prefix(&src).expect("under src");
        let mut module: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let stem = module.last().cloned().unwrap_or_default();
        let is_dir_module = matches!(stem.as_str(), "mod" | "lib" | "main");
        if is_dir_module {
            module.pop();
        }
        let name = format!("src/{}", rel.to_string_lossy());
        out.insert(
            name,
            Source {
                module,
                is_dir_module,
                code,
            },
        );
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every module path a file's code names: `crate::a::b`, `super::x`, `self::y`, and the members
/// of groups such as `use crate::a::{b, c::d}`.
fn referenced_paths(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let base = |kind: &str| -> Vec<String> {
        match kind {
            "crate" => vec![],
            // In a directory module `self` is the directory; in a file it is the file.
            "self" => me.to_vec(),
            _ => {
                // `super` is the parent of this module.
                let mut m = me.to_vec();
                m.pop();
                m
            }
        }
    };
    let chars: Vec<char> = code.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !is_ident_char(chars[i - 1]);
        let rest: String = chars[i..chars.len().min(i + 6)].iter().collect();
        let kind = ["crate", "super", "self"]
            .into_iter()
            .find(|k| rest.starts_with(k) && chars.get(i + k.len()) == Some(&':'));
        if let (true, Some(kind)) = (at_word_start, kind) {
            i += kind.len();
            let mut path = base(kind);
            parse_tail(&chars, &mut i, &mut path, &mut out);
            out.push(path);
            continue;
        }
        i += 1;
    }
    out
}

/// Reads `::a::b` or `::a::{b, c::d}` from `chars[*i..]`, extending `path`; groups push each member.
fn parse_tail(chars: &[char], i: &mut usize, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        if chars.get(*i) == Some(&':') && chars.get(*i + 1) == Some(&':') {
            *i += 2;
        } else {
            return;
        }
        if chars.get(*i) == Some(&'{') {
            *i += 1;
            loop {
                while chars
                    .get(*i)
                    .is_some_and(|c| c.is_whitespace() || *c == ',')
                {
                    *i += 1;
                }
                match chars.get(*i) {
                    None => return,
                    Some('}') => {
                        *i += 1;
                        return;
                    }
                    _ => {}
                }
                let mut member = path.clone();
                let start = *i;
                while chars.get(*i).is_some_and(|c| is_ident_char(*c)) {
                    *i += 1;
                }
                let word: String = chars[start..*i].iter().collect();
                if word.is_empty() {
                    // `*` or something unexpected: skip one character.
                    *i += 1;
                    continue;
                }
                if word == "super" {
                    member.pop();
                } else if word != "self" {
                    member.push(word);
                }
                parse_tail(chars, i, &mut member, out);
                out.push(member);
                // skip `as alias`
                while chars.get(*i).is_some_and(|c| *c != ',' && *c != '}') {
                    *i += 1;
                }
            }
        }
        let start = *i;
        while chars.get(*i).is_some_and(|c| is_ident_char(*c)) {
            *i += 1;
        }
        if *i == start {
            return;
        }
        let word: String = chars[start..*i].iter().collect();
        if word == "super" {
            path.pop();
        } else if word != "self" {
            path.push(word);
        }
    }
}

/// File-level import graph: file -> files it imports (parent-to-child edges of directory modules
/// and edges to lib.rs / main.rs dropped).
fn graph(files: &BTreeMap<String, Source>) -> BTreeMap<String, BTreeSet<String>> {
    let by_module: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|(name, s)| (s.module.clone(), name.clone()))
        .collect();
    let resolve = |path: &[String]| -> Option<String> {
        (0..=path.len())
            .rev()
            .find_map(|k| by_module.get(&path[..k]).cloned())
    };
    let mut edges = BTreeMap::new();
    for (name, s) in files {
        let mut to = BTreeSet::new();
        for path in referenced_paths(&s.code, &s.module) {
            if let Some(target) = resolve(&path) {
                let t = &files[&target];
                let is_child = s.is_dir_module
                    && t.module.len() > s.module.len()
                    && t.module[..s.module.len()] == s.module[..];
                if target != *name && !is_child && !t.module.is_empty() {
                    to.insert(target);
                }
            }
        }
        if !s.module.is_empty() {
            edges.insert(name.clone(), to);
        }
    }
    edges
}

/// Strongly connected components with more than one file (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        on_stack: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(st: &mut State<'a>, v: &'a str) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on_stack.insert(v);
        let edges = st.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !st.index.contains_key(w) {
                visit(st, w);
                let lw = st.low[w];
                let lv = st.low[v];
                st.low.insert(v, lv.min(lw));
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low[v];
                st.low.insert(v, lv.min(iw));
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = vec![];
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                st.out.push(comp);
            }
        }
    }
    let mut st = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on_stack: BTreeSet::new(),
        stack: vec![],
        next: 0,
        out: vec![],
    };
    for v in edges.keys() {
        if !st.index.contains_key(v.as_str()) {
            visit(&mut st, v);
        }
    }
    st.out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_import_cycle_between_source_files() {
    let files = sources(&root());
    let found = cycles(&graph(&files));
    assert!(
        found.is_empty(),
        "import cycles between files (break each so every arrow points one way, see docs/architecture.md):\n{}",
        found
            .iter()
            .map(|c| format!("  {}", c.join(" <-> ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_engine_imports_nothing_from_outside_the_engine() {
    let files = sources(&root());
    let edges = graph(&files);
    let mut bad = vec![];
    for (name, to) in &edges {
        if name.starts_with("src/engine/") {
            for t in to {
                if !t.starts_with("src/engine/") {
                    bad.push(format!("  {name} -> {t}"));
                }
            }
            let code = &files[name].code;
            for forbidden in ["tokio::", "std::fs", "std::net", "reqwest::"] {
                if code.contains(forbidden) {
                    bad.push(format!(
                        "  {name} uses {forbidden} (the engine does no I/O)"
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the engine must stay pure:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_source_file_is_too_long() {
    let files = sources(&root());
    let long: Vec<String> = files
        .iter()
        .map(|(name, s)| (name, s.code.lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(name, n)| format!("  {name}: {n} non-test lines"))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines of non-test code (split by concern; move tests to a sibling file):\n{}",
        long.join("\n")
    );
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let files = sources(&root());
    let missing: Vec<&String> = files
        .iter()
        .filter(|(_, s)| !s.code.trim_start().starts_with("//!"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:?}"
    );
}

#[test]
fn the_checker_finds_a_cycle_and_resolves_groups() {
    // Two files naming each other through a group import, and a third that only names one.
    let mk = |module: &[&str], dir: bool, code: &str| Source {
        module: module.iter().map(|s| s.to_string()).collect(),
        is_dir_module: dir,
        code: code.to_string(),
    };
    let mut files = BTreeMap::new();
    files.insert(
        "src/a.rs".to_string(),
        mk(&["a"], false, "use crate::{b::{X, y::Z}, c};"),
    );
    files.insert("src/b/mod.rs".to_string(), mk(&["b"], true, "mod y;"));
    files.insert(
        "src/b/y.rs".to_string(),
        mk(&["b", "y"], false, "use super::super::a::Q;"),
    );
    files.insert("src/c.rs".to_string(), mk(&["c"], false, "//! c"));
    let edges = graph(&files);
    assert!(edges["src/a.rs"].contains("src/b/y.rs"));
    assert!(edges["src/a.rs"].contains("src/c.rs"));
    assert!(
        edges["src/b/mod.rs"].is_empty(),
        "parent -> child is not an import"
    );
    assert_eq!(
        cycles(&edges),
        vec![vec!["src/a.rs".to_string(), "src/b/y.rs".to_string()]]
    );
}
