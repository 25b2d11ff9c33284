//! The connector engine knows nothing of Matrix or of the bridge: every
//! source file under `src/connector/` is read, and any path into the crate
//! outside the engine and the normalized model (`crate::bridge`,
//! `crate::store`, `super::super::matrix`, ...), or any use of a Matrix or
//! database crate, fails the test with its file and line.

use std::path::{Path, PathBuf};

/// The crate's top-level modules the engine may use.
const ALLOWED_MODULES: [&str; 2] = ["connector", "model"];

/// External crates that belong to the Matrix or storage side.
const FORBIDDEN_CRATES: [&str; 2] = ["ruma", "sqlx"];

#[test]
fn the_connector_engine_uses_nothing_of_the_bridge_matrix_or_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src.join("connector"));
    assert!(
        files.len() > 10,
        "the engine's sources were not found: {files:?}"
    );
    let mut problems = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("reading a source file");
        let relative = file.strip_prefix(&src).expect("under src/");
        for (line, found) in outside_uses(&source, module_depth(relative)) {
            problems.push(format!("src/{}:{line}: {found}", relative.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "the connector engine must not use the bridge, Matrix or the store:\n{}",
        problems.join("\n")
    );
}

/// The scanner finds every way of reaching out, so the test above can fail.
#[test]
fn the_scanner_catches_every_way_out() {
    let reaching_out = [
        ("use crate::bridge::run::load_config;", 2),
        ("use crate::{connector::spec, store::Store};", 2),
        ("let s = crate::matrix::client::HomeserverClient::new;", 2),
        ("use super::super::login::BrowserLogin;", 2),
        ("use super::super::super::secrets::Sealed;", 3),
        ("fn f(id: &ruma::RoomId) {}", 2),
        ("use sqlx::AnyPool;", 2),
    ];
    for (code, depth) in reaching_out {
        assert_eq!(outside_uses(code, depth).len(), 1, "{code}");
    }
    let staying_in = [
        ("use super::auth::Credentials;", 2),
        ("use super::super::spec::Spec;", 3),
        ("use crate::{connector::{http, spec}, model::User};", 2),
        ("use crate::model::{Conversation, Message};", 2),
        ("//! Knows nothing of crate::bridge or ruma.", 2),
        ("let text = \"secrets\"; // crate::store is elsewhere", 2),
    ];
    for (code, depth) in staying_in {
        assert_eq!(outside_uses(code, depth), vec![], "{code}");
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reading a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// How many `super::` lead from this file's module to the crate root:
/// `connector/http.rs` is `crate::connector::http` (2), `connector/mod.rs`
/// is `crate::connector` (1).
fn module_depth(relative: &Path) -> usize {
    let components = relative.components().count();
    if relative.file_name().is_some_and(|name| name == "mod.rs") {
        components - 1
    } else {
        components
    }
}

/// `(line number, what)` for each path out of the engine in `source`, a
/// file whose module is `depth` levels below the crate root.
fn outside_uses(source: &str, depth: usize) -> Vec<(usize, String)> {
    let path = regex::Regex::new(r"\b((?:super::)+|crate::)(\{|\w+)").expect("valid regex");
    let forbidden_crate =
        regex::Regex::new(&format!(r"\b({})\b", FORBIDDEN_CRATES.join("|"))).expect("valid regex");
    let mut found = Vec::new();
    for (index, line) in source.lines().enumerate() {
        let code = without_comment(line);
        for captures in path.captures_iter(code) {
            let prefix = &captures[1];
            let supers = prefix.matches("super::").count();
            if prefix != "crate::" && supers < depth {
                continue;
            }
            let whole = captures.get(0).expect("the whole match");
            let roots = if &captures[2] == "{" {
                group_roots(&code[whole.end()..])
            } else {
                vec![captures[2].to_owned()]
            };
            for root in roots {
                if !ALLOWED_MODULES.contains(&root.as_str()) {
                    found.push((index + 1, format!("{prefix}{root}")));
                }
            }
        }
        for captures in forbidden_crate.captures_iter(code) {
            found.push((index + 1, captures[1].to_owned()));
        }
    }
    found
}

/// The line without its `//` comment (a `//` inside a string literal is
/// kept: only quotes before it are counted).
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match c {
            '"' if previous != '\\' => in_string = !in_string,
            '/' if !in_string && previous == '/' => return &line[..at - 1],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The first segment of every item of a `{a::b, c}` group, `rest` starting
/// just after its `{`.
fn group_roots(rest: &str) -> Vec<String> {
    let mut roots = Vec::new();
    let mut depth = 1;
    let mut current = String::new();
    let mut at_item_start = true;
    for c in rest.chars() {
        match c {
            '{' => {
                depth += 1;
                at_item_start = false;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => at_item_start = true,
            c if at_item_start && (c.is_alphanumeric() || c == '_') => current.push(c),
            _ if at_item_start && !current.is_empty() => {
                roots.push(std::mem::take(&mut current));
                at_item_start = false;
            }
            _ => {}
        }
    }
    if !current.is_empty() {
        roots.push(current);
    }
    roots
}
