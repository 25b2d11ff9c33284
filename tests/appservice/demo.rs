//! The README's first command, as a newcomer runs it: from a fresh clone (of
//! this checkout's committed HEAD) it brings up Synapse, the simulator and
//! the bridge and prints how to log in; as a Matrix client we log in with
//! what it printed, open a direct chat with the bot, log in to the
//! simulator's demo account with `login`, then stop it all with SIGINT and
//! check that no process it started is left.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{free_port, tail, MatrixClient, Synapse};

/// Time for the clone's first build (only its own crates: the dependencies
/// are shared through CARGO_TARGET_DIR) and the stack's start on a loaded
/// 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Time for everything to stop after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The first command of the README's first code block, comment removed.
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut lines = readme.lines().skip_while(|line| !line.starts_with("```"));
    lines.next();
    let first = lines
        .next()
        .expect("a line in the README's first code block");
    first
        .split('#')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The cargo target directory of this test binary (`target/debug/deps/..`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/debug/deps")
        .to_owned()
}

/// The clone's CARGO_TARGET_DIR: `<target>/demo-clone`, seeded once with
/// hard links to this build's compiled dependencies so the clone compiles
/// only its own crates. Not `<target>` itself: the clone's binaries would
/// replace `target/debug/matrix-instagram` under the other tests, with the
/// (deleted) clone as its build tree.
fn clone_target_dir() -> PathBuf {
    let shared = target_dir();
    let target = shared.join("demo-clone");
    if !target.join("debug/deps").is_dir() {
        std::fs::create_dir_all(target.join("debug")).expect("creating the clone's target dir");
        for dir in ["deps", "build", ".fingerprint"] {
            let status = Command::new("cp")
                .arg("-al")
                .arg(shared.join("debug").join(dir))
                .arg(target.join("debug"))
                .status()
                .expect("running cp -al");
            assert!(status.success(), "seeding {} failed", target.display());
        }
    }
    target
}

/// The demo's process; on drop (a failed test) it is stopped with SIGTERM
/// so nothing outlives the test.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr_path: PathBuf,
    /// The demo's data folder, whose logs go into failure messages.
    data_dir: PathBuf,
    /// Every line printed so far, for failure messages.
    seen: Vec<String>,
}

impl Demo {
    fn start(clone: &Path, command: &str, stderr_path: PathBuf) -> Demo {
        let mut command_line = Command::new("bash");
        // As from a terminal: a test runner started in the background (by a
        // non-interactive shell) hands down SIGINT ignored, and bash cannot
        // trap a signal ignored on entry.
        unsafe {
            command_line.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = command_line
            .arg("-c")
            .arg(format!("exec {command}"))
            .current_dir(clone)
            .env("CARGO_TARGET_DIR", clone_target_dir())
            .env("SYNAPSE_VENV", Synapse::venv())
            .env("DEMO_SYNAPSE_PORT", free_port().to_string())
            .env("DEMO_BRIDGE_PORT", free_port().to_string())
            .env("DEMO_SIM_PORT", free_port().to_string())
            .env_remove("DATABASE_URL")
            .env_remove("DEMO_DIR")
            .env_remove("MATRIX_INSTAGRAM_SCRIPTS_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            stderr_path,
            data_dir: clone.join(".demo"),
            seen: Vec::new(),
        }
    }

    /// What the demo printed, and the ends of the logs it wrote.
    fn output(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let mut output = format!("stdout:\n{}\nstderr:\n{stderr}", self.seen.join("\n"));
        for log in [
            "synapse-start.log",
            "register.log",
            "bridge.log",
            "synapse/homeserver.log",
        ] {
            let tail = tail(&self.data_dir.join(log), 40);
            output.push_str(&format!("\n--- the end of .demo/{log}:\n{tail}"));
        }
        output
    }

    /// Reads lines until one contains `marker`; panics with the output on
    /// timeout or exit.
    fn read_until(&mut self, marker: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(marker);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no {marker:?} within {timeout:?}\n{}", self.output())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the demo stopped before {marker:?}\n{}", self.output())
                }
            }
        }
    }

    /// `key: value` lines of the summary, in order (the simulator's
    /// `password` comes after the Matrix one).
    fn fields(&self) -> Vec<(String, String)> {
        self.seen
            .iter()
            .filter_map(|line| line.trim().split_once(": "))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect()
    }

    /// The pids the demo says it started (`... (pid N)`).
    fn pids(&self) -> Vec<i32> {
        self.seen
            .iter()
            .filter_map(|line| line.split("(pid ").nth(1))
            .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
            .collect()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM runs the demo's own cleanup, which stops what it started.
            let pid = self.child.id() as i32;
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
        }
    }
}

/// Processes whose command line mentions `dir` (the clone: Synapse's config,
/// the bridge's config and binaries built from it live there).
fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purpose: it runs nothing and holds no port.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_first_command_brings_up_a_working_local_bridge() {
    let command = readme_first_command();
    assert!(
        command.starts_with("scripts/demo"),
        "the README starts with the demo: {command:?}"
    );
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("matrix-instagram");
    let cloned = Command::new("git")
        .args(["clone", "--quiet", env!("CARGO_MANIFEST_DIR")])
        .arg(&clone)
        .status()
        .expect("running git clone");
    assert!(cloned.success(), "git clone failed");
    // The runner's npm packages come from this checkout rather than the
    // network (the demo runs `npm ci` only when they are missing).
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/node_modules"),
        clone.join("scripts/node_modules"),
    )
    .expect("linking scripts/node_modules");

    let mut demo = Demo::start(&clone, &command, work.path().join("demo.stderr"));
    demo.read_until("Ctrl-C stops everything", START_TIMEOUT);
    let fields = demo.fields();
    let field = |key: &str, nth: usize| {
        fields
            .iter()
            .filter(|(name, _)| name == key)
            .nth(nth)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("no {key:?} in the demo's summary\n{}", demo.output()))
    };
    let (homeserver, user, password) = (
        field("homeserver", 0),
        field("user", 0),
        field("password", 0),
    );
    let (ig_username, ig_password) = (field("username", 0), field("password", 1));
    let bot = demo
        .seen
        .iter()
        .find_map(|line| line.strip_prefix("Start a direct chat with "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no bot named\n{}", demo.output()))
        .to_owned();
    assert!(
        clone.join(".demo/config.yaml").is_file(),
        "the data lives in one folder of the clone"
    );

    let mut client = MatrixClient::log_in_with_password(&homeserver, &user, &password)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "logging in with the printed credentials: {e}\n{}",
                demo.output()
            )
        });
    let room = client
        .create_dm(&bot)
        .await
        .unwrap_or_else(|e| panic!("a direct chat with the bot: {e}\n{}", demo.output()));
    client
        .wait_for_join(&room, &bot)
        .await
        .unwrap_or_else(|e| panic!("the bot joins: {e}\n{}", demo.output()));
    let greeting = client
        .wait_for_message(&room, &bot)
        .await
        .unwrap_or_else(|e| panic!("a greeting: {e}\n{}", demo.output()));
    assert!(
        greeting.body().contains("management room"),
        "{:?}",
        greeting.body()
    );

    for (said, expected) in [
        ("login", "username"),
        (ig_username.as_str(), "password"),
        (ig_password.as_str(), "I redacted your message"),
    ] {
        let answer = client
            .ask(&room, &bot, said)
            .await
            .unwrap_or_else(|e| panic!("an answer to {said:?}: {e}\n{}", demo.output()));
        assert!(answer.contains(expected), "{answer:?}\n{}", demo.output());
    }
    let connected = client
        .wait_for_message(&room, &bot)
        .await
        .unwrap_or_else(|e| panic!("the login ends: {e}\n{}", demo.output()));
    assert_eq!(
        connected.body(),
        format!("Connected to Instagram as @{ig_username}!"),
        "{}",
        demo.output()
    );

    let pids = demo.pids();
    assert_eq!(
        pids.len(),
        3,
        "Synapse, the simulator and the bridge: {pids:?}\n{}",
        demo.output()
    );
    unsafe { libc::kill(demo.child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    let status = loop {
        if let Some(status) = demo.child.try_wait().expect("waiting for the demo") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop on SIGINT\n{}",
            demo.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}\n{}", demo.output());
    while pids.iter().any(|pid| alive(*pid)) || !processes_mentioning(&clone).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?} {:?}",
            pids.iter().filter(|pid| alive(**pid)).collect::<Vec<_>>(),
            processes_mentioning(&clone)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
