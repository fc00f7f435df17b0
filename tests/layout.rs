//! The layout's rule that no two files import each other (STYLE: a circle is one design decision made
//! twice), checked over every source file of the workspace: a file "uses" another when it names a path
//! into it (`crate::a::b`, `super::x`, a `use crate::{a, b}` group, or a child module it declares as
//! `child::item`). Test modules (`#[cfg(test)] mod tests`) and comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source roots: each crate's module tree.
const ROOTS: &[&str] = &[
    "crates/storage/src",
    "crates/inference/src",
    "crates/actors/src",
    "crates/grpc-api/src",
    "src",
    "bin",
];

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

/// A file's module path within its crate (`mod.rs`, `lib.rs` and `main.rs` name their folder).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its test module.
fn code_of(text: &str) -> String {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => code[..at].to_owned(),
        None => code,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `prefix::a::b...` path in `code` where `prefix` is a whole word, as its segments after it.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let needle = format!("{prefix}::");
    let mut out = Vec::new();
    for (at, _) in code.match_indices(&needle) {
        // A whole word, not the tail of a longer path (`super::super::x` is one path).
        if code[..at].chars().next_back().is_some_and(is_ident) || code[..at].ends_with("::") {
            continue;
        }
        let rest = &code[at + needle.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c}`: the first segment of each item.
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let first: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                if !first.is_empty() {
                    out.push(vec![first]);
                }
            }
            continue;
        }
        let mut segments = Vec::new();
        for segment in rest.split("::") {
            let ident: String = segment.chars().take_while(|c| is_ident(*c)).collect();
            let whole = ident.len() == segment.len();
            if !ident.is_empty() {
                segments.push(ident);
            }
            // The path ends where a segment holds more than a name.
            if !whole || segments.is_empty() {
                break;
            }
        }
        out.push(segments);
    }
    out
}

#[test]
fn no_two_files_import_each_other() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut edges: BTreeSet<(PathBuf, PathBuf)> = BTreeSet::new();
    let mut files_seen = 0;
    for root in ROOTS {
        let root = top.join(root);
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        let modules: BTreeMap<Vec<String>, PathBuf> = files
            .iter()
            .map(|f| (module_of(&root, f), f.clone()))
            .collect();
        // The file holding the longest prefix of `path` that is a module.
        let resolve = |path: &[String]| -> Option<&PathBuf> {
            (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
        };
        for (module, file) in &modules {
            files_seen += 1;
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            let mut targets = Vec::new();
            for path in paths_after(&code, "crate") {
                targets.extend(resolve(&path));
            }
            for path in paths_after(&code, "super") {
                let mut base = module.clone();
                base.pop();
                let mut path = path.as_slice();
                while path.first().is_some_and(|s| s == "super") {
                    base.pop();
                    path = &path[1..];
                }
                base.extend(path.iter().cloned());
                targets.extend(resolve(&base));
            }
            // Children it declares and names (`child::item`).
            for line in code.lines() {
                let line = line.trim_start();
                let line = line
                    .strip_prefix("pub(crate) ")
                    .or_else(|| line.strip_prefix("pub(super) "))
                    .or_else(|| line.strip_prefix("pub "))
                    .unwrap_or(line);
                let Some(child) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';'))
                else {
                    continue;
                };
                let mut child_path = module.clone();
                child_path.push(child.to_owned());
                if !paths_after(&code, child).is_empty() {
                    targets.extend(modules.get(&child_path));
                }
            }
            for target in targets {
                if target != file {
                    edges.insert((file.clone(), target.clone()));
                }
            }
        }
    }
    assert!(files_seen > 120, "only {files_seen} files read");
    assert!(edges.len() > 200, "only {} uses found", edges.len());
    let circles: Vec<String> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| {
            format!(
                "{} <-> {}",
                a.strip_prefix(top).unwrap().display(),
                b.strip_prefix(top).unwrap().display()
            )
        })
        .collect();
    assert!(
        circles.is_empty(),
        "files that import each other (move the shared piece down):\n{}",
        circles.join("\n")
    );
}

#[test]
fn paths_are_found_in_code_groups_and_after_super() {
    let code = "use crate::{a, b::c};\nlet x = super::super::d::e(); foo_crate::no;";
    assert_eq!(paths_after(code, "crate"), [vec!["a"], vec!["b"]]);
    assert_eq!(paths_after(code, "super"), [vec!["super", "d", "e"]]);
    assert_eq!(code_of("a // crate::x\n#[cfg(test)]\nmod tests {}"), "a \n");
}
