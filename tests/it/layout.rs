//! The house rules, checked: in every crate of the workspace, no two modules
//! import each other, at any level, and no folder is a drawer.
//!
//! The rule is the levelized one. Take any module (the crate root
//! included) and its direct children. Child `a` depends on sibling `b` if
//! any file or inline module under `a` names anything under `b`
//! (`use crate::b::…`, `crate::b::X` in code, `super::b::…`). Those
//! sibling dependencies must form no cycle. A module and its own
//! descendants may name each other freely: a parent declares and
//! re-exports its parts, and the parts of one concept (`session.rs` and
//! `session/input.rs`) share its private items.
//!
//! This reads the source text rather than asking the compiler: comments and
//! string literals are blanked first, then `use` trees and inline paths are
//! resolved against the module tree built from the files and their `mod`
//! declarations (`#[path]` included). A path that names a re-export
//! resolves to the module that re-exports it, which is what the reader of
//! the import sees too.

mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use source::{blank_comments_and_strings, out_of_line_mods, paths_in};

/// The crates checked, by the folder of their library root, from the
/// workspace root. Binaries (`main.rs`) use their library as an outside
/// crate, so they have no place in its graph.
const CRATES: &[&str] = &["src", "actors/src", "codec/src", "client/src"];

/// Folder and file names that are drawers, not concepts (STYLE.md).
const DRAWERS: &[&str] = &["handlers", "services", "utils", "models", "helpers", "misc"];

type ModPath = Vec<String>;

/// One reference from code to a module of its own crate.
#[derive(Debug, Clone)]
struct Reference {
    from: ModPath,
    to: ModPath,
    file: PathBuf,
    line: usize,
}

/// A crate's modules, each with the file that holds it and its code
/// (comments and strings blanked), read once.
struct Tree {
    modules: BTreeMap<ModPath, (PathBuf, String)>,
}

impl Tree {
    /// Reads the module tree from the crate root `lib.rs` in `dir`.
    fn read(dir: &Path) -> Self {
        let mut tree = Tree {
            modules: BTreeMap::new(),
        };
        tree.add(Vec::new(), dir.join("lib.rs"), dir);
        tree
    }

    fn add(&mut self, path: ModPath, file: PathBuf, children_dir: &Path) {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let code = blank_comments_and_strings(&text);
        let decls = out_of_line_mods(&text, &code);
        self.modules.insert(path.clone(), (file.clone(), code));
        for decl in decls {
            let child_file = match &decl.path_attr {
                Some(p) => file.parent().expect("a file has a folder").join(p),
                None => {
                    let flat = children_dir.join(format!("{}.rs", decl.name));
                    if flat.exists() {
                        flat
                    } else {
                        children_dir.join(&decl.name).join("mod.rs")
                    }
                }
            };
            let mut child = path.clone();
            child.push(decl.name.clone());
            let grandchildren = children_dir.join(&decl.name);
            self.add(child, child_file, &grandchildren);
        }
    }

    /// The longest prefix of `path` that is a module (inline modules are
    /// not in the tree: a reference to one resolves to its file's module).
    fn resolve(&self, path: &[String]) -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| self.modules.contains_key(p))
            .unwrap_or_default()
    }
}

/// Every reference of a crate's code to its own modules.
fn references(tree: &Tree) -> Vec<Reference> {
    let mut refs = Vec::new();
    for (module, (file, code)) in &tree.modules {
        for (path, line, inline) in paths_in(code) {
            let mut here = module.clone();
            here.extend(inline);
            let mut target: ModPath = Vec::new();
            let mut rest = path.as_slice();
            match rest.first().map(String::as_str) {
                Some("crate") => rest = &rest[1..],
                _ => {
                    target = here.clone();
                    while let Some(first) = rest.first() {
                        match first.as_str() {
                            "self" => {}
                            "super" => {
                                target.pop();
                            }
                            _ => break,
                        }
                        rest = &rest[1..];
                    }
                }
            }
            target.extend(rest.iter().cloned());
            refs.push(Reference {
                from: module.clone(),
                to: tree.resolve(&target),
                file: file.clone(),
                line,
            });
        }
    }
    refs
}

/// Sibling dependencies, per parent module: `parent -> (a -> b -> the
/// references that make the edge)`.
type Levels = BTreeMap<ModPath, BTreeMap<String, BTreeMap<String, Vec<Reference>>>>;

fn levels(refs: &[Reference]) -> Levels {
    let mut levels = Levels::new();
    for r in refs {
        let common = r.from.iter().zip(&r.to).take_while(|(a, b)| a == b).count();
        // One is the other's ancestor: a parent and its own parts.
        if common == r.from.len() || common == r.to.len() {
            continue;
        }
        levels
            .entry(r.from[..common].to_vec())
            .or_default()
            .entry(r.from[common].clone())
            .or_default()
            .entry(r.to[common].clone())
            .or_default()
            .push(r.clone());
    }
    levels
}

/// One cycle in a graph, if there is any.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, Vec<Reference>>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, Vec<Reference>>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).map(|m| m.keys()).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|n| n == next).expect("on the stack");
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str()) {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        path.join("::")
    }
}

/// Every circle found in one crate, each with a reference per edge.
fn circles(dir: &Path) -> Vec<String> {
    let tree = Tree::read(dir);
    let refs = references(&tree);
    let mut report = Vec::new();
    for (parent, graph) in levels(&refs) {
        if let Some(cycle) = find_cycle(&graph) {
            let mut text = format!(
                "{}: import circle among the children of {}: {}",
                dir.display(),
                name(&parent),
                cycle.join(" -> ")
            );
            for pair in cycle.windows(2) {
                let r = &graph[&pair[0]][&pair[1]][0];
                text.push_str(&format!(
                    "\n    {} -> {}: {}:{} names {}",
                    pair[0],
                    pair[1],
                    r.file.display(),
                    r.line,
                    name(&r.to)
                ));
            }
            report.push(text);
        }
    }
    report
}

#[test]
fn no_import_circles_in_any_crate() {
    let mut report = Vec::new();
    for krate in CRATES {
        let dir = workspace().join(krate);
        let tree = Tree::read(&dir);
        assert!(
            tree.modules.len() > 3,
            "{krate}: only {} modules found; the checker lost its way",
            tree.modules.len()
        );
        report.extend(circles(&dir));
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn no_drawer_folders() {
    for krate in CRATES {
        let tree = Tree::read(&workspace().join(krate));
        for module in tree.modules.keys() {
            for segment in module {
                assert!(
                    !DRAWERS.contains(&segment.as_str()),
                    "{krate}: module {} is a drawer (STYLE.md): name it after what it holds",
                    name(module)
                );
            }
        }
    }
}

/// The checker itself: it must see a circle where there is one, through a
/// use tree, an inline path and `super`, and not where a parent and its
/// part name each other.
#[test]
fn the_checker_finds_a_circle_it_is_shown() {
    let dir = std::env::temp_dir().join(format!("flacstream-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).expect("temp dir");
    let write = |file: &str, text: &str| std::fs::write(dir.join(file), text).expect("write");
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    write(
        "a.rs",
        "//! crate::b in a comment does not count\npub mod part;\nuse part::X;\n",
    );
    write(
        "a/part.rs",
        "use super::super::b::Y;\npub struct X;\nfn f() { let _ = \"crate::c\"; }\n",
    );
    write("b.rs", "use crate::{c::{self, Z}};\npub struct Y;\n");
    write("c.rs", "pub struct Z;\n");
    assert!(circles(&dir).is_empty(), "{:?}", circles(&dir));
    write(
        "c.rs",
        "pub struct Z;\nfn g() { let _ = crate::a::part::X; }\n",
    );
    let found = circles(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("a -> b -> c -> a"), "{}", found[0]);
    assert!(found[0].contains("a/part.rs:1 names b"), "{}", found[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Prints each crate's sibling dependencies, level by level, for a reader
/// (ARCHITECTURE.md): `cargo test -p flacstream --test it layout::print_the_graph --
/// --ignored --nocapture`.
#[test]
#[ignore = "prints the graph; checks nothing"]
fn print_the_graph() {
    for krate in CRATES {
        let tree = Tree::read(&workspace().join(krate));
        println!("# {krate}");
        for (parent, graph) in levels(&references(&tree)) {
            println!("  in {}:", name(&parent));
            for (from, targets) in graph {
                let to: Vec<&str> = targets.keys().map(String::as_str).collect();
                println!("    {from} -> {}", to.join(", "));
            }
        }
    }
}
