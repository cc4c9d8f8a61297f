//! The server's layout stays navigable: its top-level modules form layers, each importing only
//! lower ones (so there is no cycle), and no source file of the workspace is longer than 600
//! lines (test modules aside).
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

/// The server's layers, lowest first, as ARCHITECTURE.md and the crate docs list them: a module
/// imports only modules of lower layers (so the graph has no cycle).
const LAYERS: &[&[&str]] = &[
    &["tenancy", "events", "metrics", "wire"],
    &["app"],
    &["http"],
    &["auth"],
    &["gateway"],
    &["channels"],
    &["state"],
    &["web"],
    &["config"],
    &["api"],
    &["router"],
    &["runtime"],
];

/// Every import of `graph` that does not go to a lower layer of `layers`, and every module
/// `layers` does not place.
fn layering_violations(
    graph: &BTreeMap<String, BTreeSet<String>>,
    layers: &[&[&str]],
) -> Vec<String> {
    let layer_of = |module: &str| layers.iter().position(|layer| layer.contains(&module));
    let mut violations = Vec::new();
    for (module, imports) in graph {
        let Some(own) = layer_of(module) else {
            violations.push(format!("`{module}` is in no layer"));
            continue;
        };
        for import in imports {
            match layer_of(import) {
                Some(layer) if layer < own => {}
                Some(_) => violations.push(format!(
                    "`{module}` imports `{import}`, which is not below it"
                )),
                // Not a module of this crate (`crate::` followed by a re-exported item).
                None if !graph.contains_key(import) => {}
                None => violations.push(format!("`{import}` is in no layer")),
            }
        }
    }
    violations
}

#[test]
fn the_server_modules_import_only_lower_layers() {
    let source_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&source_root);
    assert!(graph.len() > 10, "the graph was not read: {graph:?}");
    // The check can fail: the router depends on the API, which must not depend on it.
    assert!(graph["router"].contains("api"));
    let violations = layering_violations(&graph, LAYERS);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn an_import_upwards_and_an_unplaced_module_are_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        layering_violations(&graph, &[&["a"], &["b"], &["c"]]),
        [
            "`a` imports `b`, which is not below it",
            "`b` imports `c`, which is not below it",
            "`d` is in no layer"
        ]
    );
    assert!(layering_violations(&graph, &[&["c", "d"], &["b"], &["a"]]).len() == 1);
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
