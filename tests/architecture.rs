//! The house rules of docs/ARCHITECTURE.md, checked: which crate may depend on which, that no
//! library depends on the CLI's crates (clap, anyhow, indicatif), that the plotting crate knows
//! no tensor crate, and that no crate has an import cycle between its modules.
//!
//! Dependencies come from `cargo metadata` (the manifests); module imports from the sources
//! (`crate::<module>` paths), so a rule broken anywhere fails here with the edge that breaks it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's crates, lowest layer first: a crate may depend (normal or build dependency)
/// only on crates listed before it. The CLI is last; the root test package is not a layer.
const LAYERS: [&str; 12] = [
    "backlens-ops",
    "backlens-data",
    "backlens-hub",
    "backlens-plot",
    "backlens-algebra",
    "backlens-lens",
    "backlens-model",
    "backlens-edit",
    "backlens",
    "backlens-reproduce",
    "backlens-cli",
    // Not a crate of its own: the slot keeps the list's length honest when a crate is added
    // (the test below fails on any workspace member missing from the list).
    "backlens-tests",
];

/// Crates that only the binary may use.
const CLI_ONLY: [&str; 3] = ["clap", "anyhow", "indicatif"];

/// Tensor crates that the plotting crate must not depend on.
const TENSOR_CRATES: [&str; 4] = ["candle-core", "candle-nn", "faer", "gemm"];

struct Package {
    name: String,
    /// Normal and build dependencies (dev-dependencies are the tests' business).
    dependencies: Vec<String>,
    src: PathBuf,
}

fn workspace_packages() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            Package {
                name: p["name"].as_str().expect("name").to_string(),
                dependencies: p["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .filter(|d| d["kind"].as_str() != Some("dev"))
                    .map(|d| d["name"].as_str().expect("dependency name").to_string())
                    .collect(),
                src: manifest.parent().expect("manifest folder").join("src"),
            }
        })
        .collect()
}

#[test]
fn every_crate_depends_only_on_lower_layers() {
    let packages = workspace_packages();
    let layer = |name: &str| LAYERS.iter().position(|l| *l == name);
    let mut broken = Vec::new();
    for p in &packages {
        let Some(own) = layer(&p.name) else {
            broken.push(format!("{} is not in LAYERS: add it where it belongs", p.name));
            continue;
        };
        if p.name == "backlens-tests" {
            continue;
        }
        for d in &p.dependencies {
            if let Some(dep) = layer(d) {
                if dep >= own {
                    broken.push(format!("{} depends on {d}, which is not below it", p.name));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn only_the_cli_uses_clap_anyhow_and_indicatif() {
    let broken: Vec<String> = workspace_packages()
        .iter()
        .filter(|p| p.name != "backlens-cli")
        .flat_map(|p| {
            p.dependencies
                .iter()
                .filter(|d| CLI_ONLY.contains(&d.as_str()))
                .map(|d| format!("{} depends on {d}", p.name))
        })
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_plotting_crate_knows_no_tensor_crate() {
    let packages = workspace_packages();
    let plot = packages.iter().find(|p| p.name == "backlens-plot").expect("backlens-plot is a member");
    let tensor: Vec<&String> = plot.dependencies.iter().filter(|d| TENSOR_CRATES.contains(&d.as_str())).collect();
    assert!(tensor.is_empty(), "backlens-plot depends on {tensor:?}");
}

/// The top-level module a source file belongs to (`reproduce/neurons/draw.rs` -> `neurons`);
/// `None` for the crate root, which re-exports and so may name every module.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(stem) => Some(stem.to_string()),
        None => Some(first), // a folder module
    }
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The modules named after `crate::` in `text`, e.g. `use crate::keys::Key` or
/// `use crate::{apply::Edit, eval}` give `keys`, `apply`, `eval`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for (i, _) in text.match_indices("crate::") {
        // `$crate::` in macros names the crate root, not a module edge worth keeping.
        if text[..i].ends_with('$') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of each top-level item of the group (nested groups skipped).
            let (mut depth, mut item_start) = (0usize, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[j..]);
                        if !name.is_empty() {
                            found.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// A cycle in `graph`, if there is one, as the list of modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).expect("on the stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut cycles = Vec::new();
    for p in workspace_packages() {
        if !p.src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&p.src, &mut files);
        let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&p.src, f)).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let Some(from) = top_module(&p.src, file) else { continue };
            // Comments (doc links included) are not imports, and neither is the unit-test module
            // at the end of a file (`#[cfg(test)]`): a test may use any module of its crate.
            let source = std::fs::read_to_string(file).expect("readable source");
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            let text: String =
                code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
            let edges = graph.entry(from.clone()).or_default();
            for to in crate_paths(&text) {
                if to != from && modules.contains(&to) {
                    edges.insert(to);
                }
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{}: {}", p.name, cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles between modules:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles_and_the_path_reader_reads_groups() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c")])), None);
    let cycle = find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    let paths = crate_paths("use crate::{apply::{Edit, Guard}, eval};\nuse crate::keys::Key;\n$crate::Trace");
    assert_eq!(paths.into_iter().collect::<Vec<_>>(), ["apply", "eval", "keys"]);
}
