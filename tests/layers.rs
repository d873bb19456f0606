//! The architecture, kept: the module graph, derived from the `crate::` paths in
//! `src/**/*.rs`, must follow the layer order below. A module may import only from layers
//! below its own, so there is no cycle, no upward import, and no import between modules
//! of one layer. The order is written here once; the README's "Layout of the code" shows
//! the drawing this test prints, and the test checks that it does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the bottom up: (modules, what the layer is).
const LAYERS: &[(&[&str], &str)] = &[
    (
        &["model"],
        "the shared vocabulary: policies, checks, health handles, wire records, counters",
    ),
    (
        &["geo"],
        "where the client is: GeoIP, site networks, distances",
    ),
    (&["config"], "YAML files -> validated configuration"),
    (
        &["cluster", "health", "select", "sign"],
        "health by quorum with peers; probes and their schedule; selection policies over members; online signing",
    ),
    (&["zone"], "the compiled table (compile, lookups)"),
    (&["resolve"], "the one decision path: query + table -> plan"),
    (
        &["cookie", "forward", "metrics", "rrl", "xfr"],
        "DNS Cookies; forwarding and its cache; the metrics text; rate limiting; zone transfers",
    ),
    (
        &["state"],
        "the running state: table handle, probes, counters, forwarder, reloads",
    ),
    (
        &["admin", "dns"],
        "the admin API; the DNS front end (fast path and general path)",
    ),
    (
        &["review", "server"],
        "comparing two configurations' answers; start-up and shutdown, file watching",
    ),
    (&["cli"], "the `meridian` command"),
];

/// The top-level module a source file belongs to (`None` for the crate root files).
fn module_of(path: &Path, src: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Whether the file is its module's root (`src/x.rs` or `src/x/mod.rs`), where `super::`
/// would reach the crate root.
fn is_module_root(path: &Path, src: &Path) -> bool {
    let rel = path.strip_prefix(src).unwrap();
    let parts: Vec<_> = rel.components().collect();
    parts.len() == 1 || (parts.len() == 2 && rel.ends_with("mod.rs"))
}

/// The code without comments and string literals, so that paths in prose do not count.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Whether `super::` appears outside every inline `mod name { ... }` block (inside one,
/// such as `mod tests`, it names the file's own module).
fn reaches_crate_root(code: &str) -> bool {
    let mut inline = Vec::new();
    for (i, _) in code.match_indices("mod ") {
        let rest = &code[i + 4..];
        let name = ident_at(rest);
        if name.is_empty() || !rest[name.len()..].trim_start().starts_with('{') {
            continue;
        }
        let open = i + 4 + rest.find('{').unwrap();
        let mut depth = 0;
        for (j, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        inline.push(open..open + j);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    code.match_indices("super::")
        .any(|(i, _)| !inline.iter().any(|r| r.contains(&i)))
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named by `crate::` paths in the code, including grouped ones
/// (`use crate::{a::X, b}`).
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = code[i + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident_at(group[start..j].trim()).to_string());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident_at(group[start..j].trim()).to_string());
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident_at(rest).to_string());
        }
    }
    found.remove("");
    found
}

/// Every problem with the module graph of these sources (path -> text).
fn check(sources: &BTreeMap<PathBuf, String>, src: &Path) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (mods, _))| mods.iter().map(move |m| (*m, i)))
        .collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in sources {
        let Some(module) = module_of(path, src) else {
            continue;
        };
        let code = code_only(text);
        if is_module_root(path, src) && reaches_crate_root(&code) {
            problems.push(format!(
                "{}: `super::` from a module's root reaches the crate root; write `crate::`",
                path.display()
            ));
        }
        if !layer_of.contains_key(module.as_str()) {
            problems.push(format!(
                "{}: module `{module}` is in no layer; add it to LAYERS in tests/layers.rs",
                path.display()
            ));
        }
        for import in crate_imports(&code) {
            if import != module {
                graph
                    .entry(module.clone())
                    .or_default()
                    .insert(import.clone());
                let (from, to) = (layer_of.get(module.as_str()), layer_of.get(import.as_str()));
                if let (Some(&from), Some(&to)) = (from, to)
                    && to >= from
                {
                    let how = if to == from { "beside" } else { "above" };
                    problems.push(format!(
                        "{}: `{module}` imports `crate::{import}`, which sits {how} it",
                        path.display()
                    ));
                }
            }
        }
    }
    problems.extend(cycles(&graph));
    problems.sort();
    problems.dedup();
    problems
}

/// Every cycle in the graph, each as `a -> b -> a`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            out.push(format!("import cycle: {}", cycle.join(" -> ")));
            return;
        }
        if !done.insert(node.to_string()) {
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, out);
        }
        path.pop();
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

/// The layers as the README draws them: top (what is imported least) first.
fn drawing() -> String {
    let mut out = String::new();
    for (mods, what) in LAYERS.iter().rev() {
        out.push_str(&format!("{:<40}{what}\n", mods.join(" · ")));
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn modules_import_only_from_layers_below() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources: BTreeMap<PathBuf, String> = files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    let modules: BTreeSet<String> = sources.keys().filter_map(|p| module_of(p, &src)).collect();
    assert!(modules.len() >= 10, "found only {modules:?}");
    let problems = check(&sources, &src);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_layer_exists_and_the_readme_draws_this_order() {
    let src = root().join("src");
    for (mods, _) in LAYERS {
        for m in *mods {
            assert!(
                src.join(format!("{m}.rs")).is_file() || src.join(m).join("mod.rs").is_file(),
                "LAYERS names `{m}`, which is not a module in src/"
            );
        }
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let drawing = drawing();
    assert!(
        readme.contains(&drawing),
        "the README's layout section should show the layers as:\n{drawing}"
    );
}

#[test]
fn the_check_finds_cycles_upward_and_sideways_imports() {
    let src = Path::new("/x/src");
    let sources: BTreeMap<PathBuf, String> = [
        (
            "model/mod.rs",
            "use crate::zone::Table; // crate::cli in a comment\n",
        ),
        (
            "zone/mod.rs",
            "use crate::{model::Wire, select};\nlet s = \"crate::cli\";\n",
        ),
        ("admin/mod.rs", "fn f() { crate::dns::start(); }\n"),
        (
            "dns/mod.rs",
            "use super::state::Meridian;\nmod tests { use super::*; }\n",
        ),
        (
            "geo.rs",
            "fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        ("dns/udp.rs", "use super::fast; use crate::resolve::plan;\n"),
        ("newthing.rs", "use crate::model::Policy;\n"),
    ]
    .into_iter()
    .map(|(p, t)| (src.join(p), t.to_string()))
    .collect();
    let problems = check(&sources, src);
    let expect = [
        "/x/src/admin/mod.rs: `admin` imports `crate::dns`, which sits beside it",
        "/x/src/dns/mod.rs: `super::` from a module's root reaches the crate root; write `crate::`",
        "/x/src/model/mod.rs: `model` imports `crate::zone`, which sits above it",
        "/x/src/newthing.rs: module `newthing` is in no layer; add it to LAYERS in tests/layers.rs",
        "import cycle: model -> zone -> model",
    ];
    assert_eq!(problems, expect, "{problems:#?}");
}
