//! Where the browser login runner (`playwright-runner.ts` with its
//! `node_modules/`) and Chromium are: the config's `login.runner_dir` and
//! `login.chromium` first, then beside the binary, then the source tree the
//! binary was built from (the runner) or the system (Chromium). The first
//! candidate that is in place wins; with none, the first one is kept so the
//! `login` answer names where it was expected.

use std::path::{Path, PathBuf};

use super::{BrowserLogin, DEFAULT_CHROMIUM, RUNNER_FILE, SCRIPTS_DIR_ENV};

/// What the search looks at; [`Search::from_environment`] fills it from the
/// running process, tests fill it by hand.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// `login.runner_dir`, resolved against the config's directory.
    pub runner_dir: Option<PathBuf>,
    /// `login.chromium`, resolved against the config's directory.
    pub chromium: Option<PathBuf>,
    /// `$MATRIX_INSTAGRAM_SCRIPTS_DIR`.
    pub scripts_dir_env: Option<PathBuf>,
    /// The directory of the running binary.
    pub exe_dir: Option<PathBuf>,
    /// The source tree the binary was built from.
    pub build_tree: Option<PathBuf>,
    /// The directories of `$PATH`.
    pub path_dirs: Vec<PathBuf>,
}

impl Search {
    /// The configured paths plus what this process knows: the environment,
    /// its own location and the build tree.
    pub fn from_environment(runner_dir: Option<PathBuf>, chromium: Option<PathBuf>) -> Search {
        Search {
            runner_dir,
            chromium,
            scripts_dir_env: std::env::var_os(SCRIPTS_DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_owned)),
            build_tree: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
            path_dirs: std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect())
                .unwrap_or_default(),
        }
    }

    /// Runner directories tried when none is named, in order.
    pub fn runner_candidates(&self) -> Vec<PathBuf> {
        let mut candidates: Vec<PathBuf> =
            self.exe_dir.iter().map(|dir| dir.join("scripts")).collect();
        candidates.extend(self.build_tree.iter().map(|dir| dir.join("scripts")));
        candidates
    }

    /// Chromium executables tried when none is named, in order.
    pub fn chromium_candidates(&self) -> Vec<PathBuf> {
        let mut candidates: Vec<PathBuf> = self
            .exe_dir
            .iter()
            .map(|dir| dir.join("chromium"))
            .collect();
        candidates.push(PathBuf::from(DEFAULT_CHROMIUM));
        for name in ["chromium", "chromium-browser"] {
            candidates.extend(self.path_dirs.iter().map(|dir| dir.join(name)));
        }
        candidates
    }

    /// The named runner directory, else the first candidate holding the
    /// runner and its packages, else the first candidate.
    pub fn runner_dir(&self) -> Option<PathBuf> {
        if let Some(named) = self.runner_dir.as_ref().or(self.scripts_dir_env.as_ref()) {
            return Some(named.clone());
        }
        let candidates = self.runner_candidates();
        candidates
            .iter()
            .find(|dir| runner_installed(dir))
            .or(candidates.first())
            .cloned()
    }

    /// The named Chromium, else the first candidate that is a file, else the
    /// first candidate.
    pub fn chromium(&self) -> PathBuf {
        if let Some(named) = &self.chromium {
            return named.clone();
        }
        let candidates = self.chromium_candidates();
        candidates
            .iter()
            .find(|path| path.is_file())
            .or(candidates.first())
            .cloned()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM))
    }

    /// A browser login using what was found.
    pub fn browser_login(&self) -> BrowserLogin {
        let scripts_dir = self
            .runner_dir()
            .unwrap_or_else(|| PathBuf::from("scripts"));
        BrowserLogin::new(scripts_dir).with_chromium(self.chromium())
    }
}

/// Whether `dir` holds the runner and the packages it imports.
fn runner_installed(dir: &Path) -> bool {
    dir.join(RUNNER_FILE).is_file()
        && super::RUNNER_PACKAGES
            .iter()
            .all(|package| dir.join("node_modules").join(package).is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner directory with the runner file and, if `packages`, its packages.
    fn runner_at(dir: &Path, packages: bool) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(RUNNER_FILE), "").unwrap();
        if packages {
            for package in super::super::RUNNER_PACKAGES {
                std::fs::create_dir_all(dir.join("node_modules").join(package)).unwrap();
            }
        }
    }

    #[test]
    fn a_named_runner_wins_then_beside_the_binary_then_the_build_tree() {
        let root = tempfile::tempdir().unwrap();
        let (configured, exe, tree) = (
            root.path().join("configured"),
            root.path().join("bin"),
            root.path().join("tree"),
        );
        runner_at(&exe.join("scripts"), true);
        runner_at(&tree.join("scripts"), true);
        let mut search = Search {
            runner_dir: Some(configured.clone()),
            scripts_dir_env: Some(root.path().join("from-env")),
            exe_dir: Some(exe.clone()),
            build_tree: Some(tree.clone()),
            ..Search::default()
        };
        assert_eq!(
            search.runner_dir(),
            Some(configured),
            "the config's choice stands even when nothing is there"
        );
        search.runner_dir = None;
        assert_eq!(search.runner_dir(), Some(root.path().join("from-env")));
        search.scripts_dir_env = None;
        assert_eq!(search.runner_dir(), Some(exe.join("scripts")));

        std::fs::remove_dir_all(exe.join("scripts/node_modules")).unwrap();
        assert_eq!(
            search.runner_dir(),
            Some(tree.join("scripts")),
            "a runner without its packages is skipped"
        );

        std::fs::remove_dir_all(tree.join("scripts")).unwrap();
        assert_eq!(
            search.runner_dir(),
            Some(exe.join("scripts")),
            "with none in place, the first candidate is named"
        );
    }

    #[test]
    fn chromium_is_found_from_the_config_then_beside_the_binary_then_the_system() {
        let root = tempfile::tempdir().unwrap();
        let configured = root.path().join("my-chromium");
        let exe = root.path().join("bin");
        let path_dir = root.path().join("path");
        std::fs::create_dir_all(&exe).unwrap();
        std::fs::create_dir_all(&path_dir).unwrap();
        std::fs::write(&configured, "").unwrap();
        std::fs::write(exe.join("chromium"), "").unwrap();
        std::fs::write(path_dir.join("chromium-browser"), "").unwrap();
        let mut search = Search {
            chromium: Some(configured.clone()),
            exe_dir: Some(exe.clone()),
            path_dirs: vec![path_dir.clone()],
            ..Search::default()
        };
        assert_eq!(search.chromium(), configured);
        search.chromium = Some(root.path().join("missing-chromium"));
        assert_eq!(
            search.chromium(),
            root.path().join("missing-chromium"),
            "the config's choice stands even when nothing is there"
        );
        search.chromium = None;
        assert_eq!(search.chromium(), exe.join("chromium"));
        std::fs::remove_file(exe.join("chromium")).unwrap();
        let system = Path::new(DEFAULT_CHROMIUM);
        let expected = if system.is_file() {
            system.to_owned()
        } else {
            path_dir.join("chromium-browser")
        };
        assert_eq!(search.chromium(), expected);
        assert_eq!(
            search.chromium_candidates(),
            [
                exe.join("chromium"),
                system.to_owned(),
                path_dir.join("chromium"),
                path_dir.join("chromium-browser"),
            ]
        );
    }

    #[test]
    fn a_runner_found_nowhere_is_reported_where_it_was_expected() {
        let search = Search {
            runner_dir: Some(PathBuf::from("/nowhere/runner")),
            ..Search::default()
        };
        let error = search
            .browser_login()
            .check_installed()
            .expect_err("no runner anywhere");
        let text = error.to_string();
        assert!(text.contains("runner is not installed"), "{text}");
        assert!(
            text.contains("/nowhere/runner/playwright-runner.ts"),
            "{text}"
        );
        assert!(text.contains("login.runner_dir"), "{text}");
    }
}
