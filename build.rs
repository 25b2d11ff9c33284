//! Build script: rebuilds the crate when a migration changes (`sqlx::migrate!`
//! embeds `migrations/` at compile time but does not tell cargo to watch it),
//! and records the git commit for `version` as `MATRIX_INSTAGRAM_GIT_COMMIT`.
//!
//! The commit comes from the environment variable of the same name when set
//! (builds from a source archive), else from `git rev-parse --short HEAD`;
//! without git or outside a checkout the variable is simply not set.

use std::path::PathBuf;
use std::process::Command;

const COMMIT_ENV: &str = "MATRIX_INSTAGRAM_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed={COMMIT_ENV}");

    let commit = std::env::var(COMMIT_ENV)
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]));
    if let Some(commit) = commit {
        println!("cargo:rustc-env={COMMIT_ENV}={}", commit.trim());
        watch_git_head();
    }
}

/// The trimmed output of a successful git command, or None (no git, not a
/// checkout, ...).
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// Reruns the script when HEAD moves: a commit changes the branch's ref
/// (loose or packed), a checkout changes HEAD itself. `--git-path` resolves
/// each file also in worktrees, where `.git` is a file. Only existing files
/// are named, since cargo reruns every build for a missing one.
fn watch_git_head() {
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch_ref);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]).map(PathBuf::from) {
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
