//! Architecture Invariant: the modules of `aether-domain` form no cycle. Entities and
//! rules sit below the ports that name them (`store.rs`, `ephemeral.rs`, …), and a
//! module that needs another's item imports it from where it is defined, so the crate
//! can be read bottom-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `src/` and the modules its code (not its comments or tests) names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if path.extension().is_none_or(|ext| ext != "rs") || name == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut uses = BTreeSet::new();
        for line in code.lines().filter(|line| !line.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                let module: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                // `crate::StoreError` and friends are the crate root's re-exports of `error.rs`.
                let module = if module.starts_with(char::is_uppercase) { "error".to_owned() } else { module };
                if module != name {
                    uses.insert(module);
                }
            }
        }
        graph.insert(name, uses);
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    let current = path.last().unwrap().clone();
    for next in graph.get(&current).into_iter().flatten() {
        if let Some(at) = path.iter().position(|m| m == next) {
            let mut cycle = path[at..].to_vec();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if done.contains(next) {
            continue;
        }
        path.push(next.clone());
        if let Some(cycle) = cycle_from(graph, path, done) {
            return Some(cycle);
        }
        path.pop();
    }
    done.insert(current);
    None
}

#[test]
fn the_domain_modules_form_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 20, "the modules were found: {graph:?}");
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, &mut vec![module.clone()], &mut done) {
            panic!("a cycle among the domain's modules: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_ports_module_is_named_by_no_entity() {
    // The store ports depend on the entities; an entity that named them would close a loop.
    let graph = module_graph();
    let users: Vec<_> = graph.iter().filter(|(_, uses)| uses.contains("store")).map(|(name, _)| name).collect();
    assert!(users.is_empty(), "modules that depend on the store ports: {users:?}");
}
