//! The bridge's log output when it goes to a file: plain text without
//! terminal colour codes, or one JSON object per line with `logging.format: json`.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `init` then `run` in `dir` with the log format `format` and the
/// config changed by `edit`, against a homeserver nobody listens on (the run
/// stops after its first log lines), with stderr going to a file; returns
/// that file's bytes.
fn log_of_a_failed_start(dir: &Path, format: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_matrix-instagram");
    let init = Command::new(bin)
        .current_dir(dir)
        .args(["init", "--homeserver-url", &format!("http://{closed_port}")])
        .output()
        .expect("running init");
    assert!(init.status.success(), "{init:?}");
    let config_path = dir.join("config.yaml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = edit(config.replace("format: \"pretty\"", &format!("format: \"{format}\"")));
    std::fs::write(&config_path, config).unwrap();

    let log_path = dir.join(format!("{format}.log"));
    let status = Command::new(bin)
        .current_dir(dir)
        .arg("run")
        .env_remove("DATABASE_URL")
        .env_remove("MATRIX_INSTAGRAM_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .status()
        .expect("running the bridge");
    assert!(!status.success(), "no homeserver: the run must fail");
    std::fs::read(&log_path).unwrap()
}

#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_a_failed_start(dir.path(), "pretty", |config| config);
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("starting matrix-instagram"), "{text}");
    assert!(text.contains("cannot reach the homeserver"), "{text}");
    assert!(
        !log.contains(&0x1b),
        "an ESC byte in the log file: {text:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_a_failed_start(dir.path(), "json", |config| config);
    let text = String::from_utf8(log).unwrap();
    let mut lines = text.lines();
    // The last line is the startup error, printed as text after tracing.
    let error = lines.next_back().unwrap();
    assert!(
        error.starts_with("error: cannot reach the homeserver"),
        "{text}"
    );
    let objects: Vec<serde_json::Value> = lines
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        objects
            .iter()
            .any(|object| object["fields"]["message"] == "starting matrix-instagram"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[test]
fn a_missing_login_runner_is_one_startup_warning_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_a_failed_start(dir.path(), "pretty", |config| {
        config.replace(
            "  # runner_dir: \"/opt/matrix-instagram/scripts\"",
            "  runner_dir: \"no-runner-here\"",
        )
    });
    let text = String::from_utf8_lossy(&log);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("browser login unavailable"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains(" WARN "), "{text}");
    // Relative to the config's directory (here the working directory).
    assert!(
        warnings[0].contains("no-runner-here/playwright-runner.ts is missing"),
        "{text}"
    );
    // Startup went on to the homeserver check.
    assert!(text.contains("cannot reach the homeserver"), "{text}");
}
