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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// A crate's modules, each with the file that holds it.
struct Tree {
    modules: BTreeMap<ModPath, PathBuf>,
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
        self.modules.insert(path.clone(), file.clone());
        for decl in out_of_line_mods(&text, &code) {
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

struct ModDecl {
    name: String,
    path_attr: Option<String>,
}

/// `mod name;` declarations (not inline `mod name { … }`), with the
/// `#[path = "…"]` attribute just above one, if any.
fn out_of_line_mods(text: &str, code: &str) -> Vec<ModDecl> {
    let raw_lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "mod") else {
            continue;
        };
        let before_ok = words[..at]
            .iter()
            .all(|w| w.starts_with("pub") || w.starts_with("#["));
        let Some(name) = words.get(at + 1).and_then(|w| w.strip_suffix(';')) else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let path_attr = (0..i)
            .rev()
            .map(|j| raw_lines[j].trim())
            .take_while(|l| l.starts_with("#["))
            .find_map(|l| {
                l.strip_prefix("#[path = \"")
                    .and_then(|rest| rest.strip_suffix("\"]"))
                    .map(str::to_string)
            });
        found.push(ModDecl {
            name: name.to_string(),
            path_attr,
        });
    }
    found
}

/// The source with comments, string literals and character literals
/// replaced by spaces (newlines kept), so that what is left is code and
/// line numbers still match.
fn blank_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            for ch in &chars[i..j.min(chars.len())] {
                out.push(blank(*ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&k| chars[k] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path that starts at `crate`, `self` or `super` in the code, as
/// written (use trees expanded), with its line and the inline modules it
/// sits in.
fn paths_in(code: &str) -> Vec<(Vec<String>, usize, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    // Inline modules open at a brace depth: (name, depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c == '{' {
            depth += 1;
            if let Some(name) = pending_mod.take() {
                inline.push((name, depth));
            }
            i += 1;
            continue;
        }
        if c == '}' {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if c == ';' {
            pending_mod = None;
        }
        if !is_ident(c) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if word == "mod" {
            let rest: String = chars[i..].iter().take(80).collect();
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| is_ident(*c))
                .collect();
            if !name.is_empty() {
                pending_mod = Some(name);
            }
            continue;
        }
        if !matches!(word.as_str(), "crate" | "self" | "super") {
            continue;
        }
        if chars.get(i) != Some(&':') || chars.get(i + 1) != Some(&':') {
            continue;
        }
        let (tree_text, end) = take_path(&chars, start);
        let mods: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
        for path in expand_use_tree(&tree_text) {
            found.push((path, line, mods.clone()));
        }
        line += chars[start..end].iter().filter(|c| **c == '\n').count();
        i = end;
    }
    found
}

/// The text of a path or use tree starting at `start`: identifiers, `::`,
/// and balanced `{…}` groups.
fn take_path(chars: &[char], start: usize) -> (String, usize) {
    let mut i = start;
    let mut depth = 0;
    while i < chars.len() {
        let c = chars[i];
        let ok = is_ident(c)
            || c == ':'
            || c == '*'
            || (depth > 0 && (c == ',' || c.is_whitespace()))
            || c == '{'
            || (c == '}' && depth > 0);
        if !ok {
            break;
        }
        if c == '{' {
            depth += 1;
        }
        if c == '}' {
            depth -= 1;
            if depth == 0 {
                i += 1;
                break;
            }
        }
        i += 1;
    }
    (chars[start..i].iter().collect(), i)
}

/// `crate::a::{b, c::d}` into `crate::a::b` and `crate::a::c::d`, as
/// segments. `as` renames and globs end a path.
fn expand_use_tree(text: &str) -> Vec<Vec<String>> {
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(open) = text.find('{') else {
        return vec![segments(&text)];
    };
    let prefix = &text[..open];
    let inner = &text[open + 1..text.rfind('}').unwrap_or(text.len())];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut begin = 0;
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[begin..k]);
                begin = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[begin..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            let joined = if p == "self" {
                prefix.trim_end_matches("::").to_string()
            } else {
                format!("{prefix}{p}")
            };
            expand_use_tree(&joined)
        })
        .collect()
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty() && s != "*")
        .collect()
}

/// Every reference of a crate's code to its own modules.
fn references(tree: &Tree) -> Vec<Reference> {
    let mut refs = Vec::new();
    for (module, file) in &tree.modules {
        let text = std::fs::read_to_string(file).expect("read above");
        let code = blank_comments_and_strings(&text);
        for (path, line, inline) in paths_in(&code) {
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
