//! Issue #19: the gateway's top-level modules form layers, not circles. Every
//! `crate::…` path in a module's code (tests and doc comments aside) is an
//! edge from that module to the one named; the graph must have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let path = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let name = name.strip_suffix(".rs").map_or(name.clone(), str::to_owned);
            (name != "lib" && name != "main").then_some(name)
        })
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let file = entry.unwrap().path();
            if file.is_dir() {
                stack.push(file);
                continue;
            }
            if file.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = file.strip_prefix(&src).unwrap();
            let top = relative.components().next().unwrap().as_os_str();
            let top = top.to_str().unwrap().trim_end_matches(".rs").to_owned();
            if !modules.contains(&top) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for named in path.captures_iter(line) {
                    let named = named[1].to_owned();
                    if named != top && modules.contains(&named) {
                        edges.entry(top.clone()).or_default().insert(named);
                    }
                }
            }
        }
    }
    edges
}

/// A cycle through `from`, if any (depth-first search).
fn cycle(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in edges.get(from).into_iter().flatten() {
        if path.first() == Some(next) {
            let mut found = path.clone();
            found.push(next.clone());
            return Some(found);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(found) = cycle(edges, next, path) {
                return Some(found);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn the_top_level_modules_have_no_import_cycle() {
    let edges = edges();
    for (module, uses) in &edges {
        println!("[layers] {module} -> {uses:?}");
    }
    assert!(edges.contains_key("http"), "the scan found the modules");
    for module in edges.keys() {
        let found = cycle(&edges, module, &mut vec![module.clone()]);
        assert!(
            found.is_none(),
            "import cycle: {}",
            found.unwrap().join(" -> ")
        );
    }
    // The layering the design relies on.
    for low in ["store", "token", "message", "proxy", "config"] {
        assert!(
            !edges.get(low).is_some_and(|uses| uses.contains("http")),
            "{low} must not depend on http: {:?}",
            edges.get(low)
        );
    }
}
