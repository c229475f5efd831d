//! Rust source read as text, for the layout check: comments and string
//! literals blanked (line numbers kept), out-of-line `mod` declarations with
//! their `#[path]`, and every path that starts at `crate`, `self` or `super`
//! with `use` trees expanded.

pub(super) struct ModDecl {
    pub(super) name: String,
    pub(super) path_attr: Option<String>,
}

/// `mod name;` declarations (not inline `mod name { … }`), with the
/// `#[path = "…"]` attribute just above one, if any.
pub(super) fn out_of_line_mods(text: &str, code: &str) -> Vec<ModDecl> {
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
pub(super) fn blank_comments_and_strings(text: &str) -> String {
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

pub(super) fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path that starts at `crate`, `self` or `super` in the code, as
/// written (use trees expanded), with its line and the inline modules it
/// sits in.
pub(super) fn paths_in(code: &str) -> Vec<(Vec<String>, usize, Vec<String>)> {
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
pub(super) fn take_path(chars: &[char], start: usize) -> (String, usize) {
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
pub(super) fn expand_use_tree(text: &str) -> Vec<Vec<String>> {
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

pub(super) fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        .filter(|s| !s.is_empty() && s != "*")
        .collect()
}
