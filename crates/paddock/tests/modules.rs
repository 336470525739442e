//! The workspace's module structure, read from the sources: no import loop
//! between the modules of any crate (a module that imports, directly or
//! through others, a module that imports it back), and no function in the
//! instance reconciler longer than 80 lines. A loop is reported with the
//! `use` of each step, so the fix starts from the message.
//!
//! Imports are read from `crate::`, `super::` and `self::` paths and from
//! `use` paths that start at a child module, outside comments and outside a
//! trailing `#[cfg(test)] mod tests`. The crate root is the crate's facade
//! (it declares and re-exports modules) and is not a node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every module of the crate at `src`, by path (`a::b`), with its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("a source folder reads") {
            let p = e.expect("an entry").path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            // Binaries of their own (src/bin) are crates of their own.
            if parts.first().is_some_and(|f| f == "bin") {
                continue;
            }
            out.insert(parts.join("::"), p);
        }
    }
    out
}

/// The code of a file: without comments and without its trailing test module.
fn code(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            // `//` inside a string (a URL) is rare in paths; a whole-line comment is the case that matters.
            Some(i) if l[..i].trim().is_empty() => "",
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a use tree starting at `s` names: `a::b::{c, d::e}` gives
/// `a::b::c` and `a::b::d::e`. Returns them and how far it read.
fn tree(s: &[u8], mut i: usize, prefix: &str) -> (Vec<String>, usize) {
    let mut path = prefix.to_string();
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < s.len() && s[i] == b'{' {
            i += 1;
            let mut out = Vec::new();
            loop {
                let (mut got, j) = tree(s, i, &path);
                out.append(&mut got);
                i = j;
                while i < s.len() && (s[i].is_ascii_whitespace() || s[i] == b',') {
                    i += 1;
                }
                if i >= s.len() || s[i] == b'}' {
                    return (out, i + 1);
                }
            }
        }
        let start = i;
        while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
            i += 1;
        }
        let seg = String::from_utf8_lossy(&s[start..i]).into_owned();
        if !seg.is_empty() {
            path = if path.is_empty() { seg } else { format!("{path}::{seg}") };
        }
        if s[i..].starts_with(b"::") {
            i += 2;
        } else {
            return (vec![path], i);
        }
    }
}

/// The module `path` resolves to: its longest prefix that is a module.
fn resolve<'a>(path: &str, mods: &'a BTreeMap<String, PathBuf>) -> Option<&'a String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len()).rev().find_map(|n| mods.get_key_value(&segs[..n].join("::")).map(|(k, _)| k))
}

/// The modules each module imports, with the path that names each.
fn imports(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (m, file) in mods.iter().filter(|(m, _)| !m.is_empty()) {
        let text = code(&std::fs::read_to_string(file).expect("a source file reads"));
        let bytes = text.as_bytes();
        let parent: Vec<&str> = m.split("::").collect();
        let parent = parent[..parent.len() - 1].join("::");
        let mut edges = BTreeMap::new();
        let mut add = |full: String| {
            if let Some(to) = resolve(&full, mods).filter(|to| !to.is_empty() && *to != m) {
                edges.entry(to.clone()).or_insert(full);
            }
        };
        for (i, _) in text.char_indices() {
            let before_ok =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
            if !before_ok {
                continue;
            }
            let rest = &text[i..];
            let base = if rest.starts_with("crate::") {
                Some((String::new(), 7))
            } else if rest.starts_with("super::") {
                Some((parent.clone(), 7))
            } else if rest.starts_with("self::") {
                Some((m.clone(), 6))
            } else if let Some(u) = rest.strip_prefix("use ") {
                // `use child::...` from a module with children.
                let first: String = u.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let child = format!("{m}::{first}");
                mods.contains_key(&child).then(|| (m.clone(), 4))
            } else {
                None
            };
            if let Some((base, skip)) = base {
                for p in tree(bytes, i + skip, &base).0 {
                    add(p);
                }
            }
        }
        out.insert(m.clone(), edges);
    }
    out
}

/// The loops of a graph: its strongly connected components of more than one module.
fn loops(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        g: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    self.low.entry(v).and_modify(|l| *l = (*l).min(lw));
                } else if self.on.contains(w.as_str()) {
                    let iw = self.index[w.as_str()];
                    self.low.entry(v).and_modify(|l| *l = (*l).min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// The loops kubesim still has, named so that no new module joins them and
/// none other appears: its `Cluster` type is defined in `cluster/mod.rs` and
/// implemented across `cluster/{read,write,update,delete}.rs`, which call
/// admission and the simulated controllers that take the `Cluster` back;
/// and the store holds the Service allocations that are keyed by its keys.
/// (Paddock's own crates, the controller and the API among them, have none.)
const KNOWN: &[(&str, &[&str])] = &[
    ("kubesim", &["allocations", "store"]),
    (
        "kubesim",
        &[
            "admission",
            "cluster",
            "cluster::delete",
            "cluster::read",
            "cluster::update",
            "cluster::write",
            "sim",
            "sim::crds",
            "sim::storage",
        ],
    ),
];

#[test]
fn no_crate_has_an_import_loop_between_its_modules() {
    let mut found = Vec::new();
    let mut crates: Vec<PathBuf> =
        std::fs::read_dir(crates_dir()).expect("crates/ reads").map(|e| e.expect("an entry").path()).collect();
    crates.sort();
    for krate in crates.iter().filter(|c| c.join("src").is_dir()) {
        let mods = modules(&krate.join("src"));
        let graph = imports(&mods);
        let name = krate.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let known: Vec<Vec<String>> =
            KNOWN.iter().filter(|(k, _)| *k == name).map(|(_, m)| m.iter().map(|s| s.to_string()).collect()).collect();
        let comps = loops(&graph);
        for gone in known.iter().filter(|k| !comps.contains(k)) {
            found.push(format!("{name}: the known loop {gone:?} is gone or changed: take it out of KNOWN"));
        }
        for comp in comps.into_iter().filter(|c| !known.contains(c)) {
            let mut steps = Vec::new();
            for a in &comp {
                for (b, via) in &graph[a] {
                    if comp.contains(b) {
                        steps.push(format!("    {a} -> {b} (names {via})"));
                    }
                }
            }
            found.push(format!("{name}: {} modules import each other:\n{}", comp.len(), steps.join("\n")));
        }
    }
    assert!(found.is_empty(), "import loops:\n{}", found.join("\n"));
}

#[test]
fn the_reader_finds_imports_of_every_kind() {
    let mods: BTreeMap<String, PathBuf> =
        ["", "a", "a::b", "c", "c::d"].iter().map(|m| (m.to_string(), PathBuf::new())).collect();
    let s = "crate::a::{b::X, Y}, c::d::Z";
    let (paths, _) = tree(s.as_bytes(), 7, "");
    assert_eq!(paths, ["a::b::X", "a::Y"]);
    assert_eq!(resolve("a::b::X", &mods).map(String::as_str), Some("a::b"));
    assert_eq!(resolve("c::d::Z::f", &mods).map(String::as_str), Some("c::d"));
    // A loop of two, and none in a chain.
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string(), String::new());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(loops(&g(&[("a", "b"), ("b", "a"), ("b", "c")])), vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(loops(&g(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(code("use x;\n// crate::a\n#[cfg(test)]\nmod tests { crate::b }"), "use x;\n");
}

/// The functions of a file longer than `max` lines, by name.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let trimmed = l.trim_start();
        let indent = l.len() - trimmed.len();
        let head =
            trimmed.trim_start_matches("pub(super) ").trim_start_matches("pub(crate) ").trim_start_matches("pub ");
        let head = head.trim_start_matches("async ");
        if let Some(rest) = head.strip_prefix("fn ")
            && !l.trim_end().ends_with(';')
        {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let close = format!("{}}}", " ".repeat(indent));
            let end = (i + 1..lines.len()).find(|&j| lines[j].trim_end() == close).unwrap_or(lines.len() - 1);
            if end - i + 1 > max {
                out.push((name, end - i + 1));
            }
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn the_instance_reconcilers_functions_are_short() {
    let dir = crates_dir().join("controller/src/instance");
    let mut long = Vec::new();
    for e in std::fs::read_dir(&dir).expect("the instance module reads") {
        let p = e.expect("an entry").path();
        let text = std::fs::read_to_string(&p).expect("a file reads");
        for (name, n) in long_functions(&code(&text), 80) {
            long.push(format!("{}: {name} is {n} lines", p.display()));
        }
    }
    assert!(long.is_empty(), "functions over 80 lines:\n{}", long.join("\n"));
    assert_eq!(long_functions("fn a() {\n    x\n}\n", 2), vec![("a".to_string(), 3)]);
}
