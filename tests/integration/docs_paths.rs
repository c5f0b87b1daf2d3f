//! docs/architecture.md and CONTRIBUTING.md stay true to the code: every crate
//! directory, file and `file.rs::item` they name in backticks exists.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    regatta_tests::repo_root()
}

/// Every source file of the workspace, relative to the root.
fn sources(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || ["target", "models", "node_modules"].contains(&name.as_str()) {
            continue;
        }
        let rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if e.path().is_dir() {
            out.push(format!("{rel}/"));
            sources(&e.path(), &rel, out);
        } else {
            out.push(rel);
        }
    }
}

/// The paths a document names: backticked words that look like a file
/// (`engine/src/io/staged.rs`, `state.rs::fail_task`) or a directory of the
/// workspace (`actors/src/whisper/`).
fn named_paths(text: &str, top_dirs: &[String]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (i, quoted) in text.split('`').enumerate() {
        // Outside the repository (`../shared/`), patterns and placeholders are
        // not paths of the workspace.
        if i % 2 == 0
            || quoted.starts_with("../")
            || quoted.contains(' ')
            || quoted.contains('*')
            || quoted.contains('<')
        {
            continue;
        }
        let (path, item) = match quoted.split_once("::") {
            Some((p, item)) => (p, Some(item.to_string())),
            None => (quoted, None),
        };
        let is_file = [".rs", ".md", ".py", ".sh", ".toml"]
            .iter()
            .any(|ext| path.ends_with(ext));
        let is_dir = path.ends_with('/')
            && top_dirs
                .iter()
                .any(|d| path.split('/').next() == Some(d.trim_end_matches('/')));
        if is_file || is_dir {
            out.push((path.trim_start_matches("./").to_string(), item));
        }
    }
    out
}

fn check(doc: &str) {
    let root = root();
    let text = std::fs::read_to_string(root.join(doc)).unwrap();
    let mut files = Vec::new();
    sources(&root, "", &mut files);
    let top_dirs: Vec<String> = files
        .iter()
        .filter(|f| f.ends_with('/') && f.matches('/').count() == 1)
        .cloned()
        .collect();
    let named = named_paths(&text, &top_dirs);
    assert!(named.len() > 5, "{doc} names almost no paths: {named:?}");
    for (path, item) in named {
        // A full path from the root, or a shorter one (`driver/results.rs`)
        // that ends exactly one workspace path.
        let found: Vec<&String> = files
            .iter()
            .filter(|f| **f == path || f.ends_with(&format!("/{path}")))
            .collect();
        assert!(
            !found.is_empty(),
            "{doc} names `{path}`, which does not exist"
        );
        if let Some(item) = item {
            let item = item.trim_end_matches("()");
            let defined = found
                .iter()
                .any(|f| std::fs::read_to_string(root.join(f)).is_ok_and(|src| src.contains(item)));
            assert!(
                defined,
                "{doc} names `{path}::{item}`, which {path} does not hold"
            );
        }
    }
}

#[test]
fn architecture_names_only_what_exists() {
    check("docs/architecture.md");
}

#[test]
fn contributing_names_only_what_exists() {
    check("CONTRIBUTING.md");
}
