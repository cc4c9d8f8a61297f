//! The server's layout stays navigable: its top-level modules import each other without a
//! cycle, and no source file of the workspace is longer than 600 lines (test modules aside).
//!
//! The graph is read from the source: a module `a` depends on `b` when a file under `a` names
//! `crate::b` (in a path or a grouped `use crate::{b, ...}`) before its `#[cfg(test)]` module.
//! Comments are ignored; unit tests may reach anywhere.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file, counted up to its `#[cfg(test)]` module.
const MAX_LINES: usize = 600;

fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `source` before its test module (`#[cfg(test)]` followed by a `mod` line; a
/// test-only item elsewhere in the file does not end it).
fn production_lines(source: &str) -> Vec<&str> {
    let lines: Vec<&str> = source.lines().collect();
    let end = lines
        .windows(2)
        .position(|pair| {
            pair[0].starts_with("#[cfg(test)]")
                && (pair[1].starts_with("mod ") || pair[1].starts_with("pub mod "))
        })
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// The source up to its test module, without `//` comments (doc comments name modules they do
/// not import).
fn code(source: &str) -> String {
    production_lines(source)
        .into_iter()
        .map(|line| match line.find("//") {
            // `"http://..."` in a string is not a comment; a `//` after a quote is taken as one
            // only if no quote follows it on the line.
            Some(at) if !line[at..].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first identifier of each path in `crate::...` and `crate::{a, b::c, ...}`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let identifier = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = 0;
            for (index, character) in group.char_indices() {
                match character {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(identifier(&group[start..index]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(identifier(&group[start..index]));
                        start = index + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(identifier(rest));
        }
    }
    found.remove("");
    found
}

/// The top-level module a file belongs to (`src/gateway/server.rs` → `gateway`).
fn module_of(source_root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(source_root).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

fn module_graph(source_root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(source_root) {
        let module = module_of(source_root, &file);
        if module == "lib" || module == "main" {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        let mut references = crate_references(&code(&source));
        references.remove(&module);
        graph.entry(module).or_default().extend(references);
    }
    graph
}

/// A cycle of `graph`, if it has one (depth-first search, white/grey/black).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(cycle) = visit(next, graph, path, done)
            {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_server_modules_import_each_other_without_a_cycle() {
    let source_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&source_root);
    assert!(graph.len() > 10, "the graph was not read: {graph:?}");
    // The check can fail: the router depends on the API, which must not depend on it.
    assert!(graph["router"].contains("api"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the server's modules import each other in a cycle: {}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let references = crate_references("use crate::{app::{A, B}, http};\nlet x = crate::wire::f();");
    assert_eq!(
        references.into_iter().collect::<Vec<_>>(),
        ["app", "http", "wire"]
    );
    let source = "a\n#[cfg(test)]\nfn helper() {}\nb\n#[cfg(test)]\nmod tests {}\n";
    assert_eq!(
        production_lines(source),
        ["a", "#[cfg(test)]", "fn helper() {}", "b"]
    );
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut long = Vec::new();
    for crate_source in [
        "src",
        "preloop-core/src",
        "preloop-store/src",
        "preloop-trackers/src",
        "preloop-server/src",
        "preloop-testkit/src",
    ] {
        for file in rust_files(&workspace.join(crate_source)) {
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&file).unwrap();
            let lines = production_lines(&source).len();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "longer than {MAX_LINES} lines: {long:?}");
}
