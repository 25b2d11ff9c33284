//! The `check-spec` and `action` commands, run as the real binary.

use std::process::{Command, Output};

use instagram_sim::{DemoSeed, Simulator};
use serde_json::Value;

use crate::common::spec_path;

/// Runs the binary from the crate root (so the default `connectors/<name>.yaml` resolves).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_matrix-instagram"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("MATRIX_INSTAGRAM_API_BASE_URL")
            .output()
            .expect("run matrix-instagram")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A simulator with the demo seed, and the demo account's cookie file.
struct SimLogin {
    sim: Simulator,
    seed: DemoSeed,
    cookie_file: String,
    _dir: tempfile::TempDir,
}

impl SimLogin {
    async fn start() -> SimLogin {
        let sim = Simulator::start().await;
        let seed = sim.seed_demo().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookies.json");
        std::fs::write(&path, serde_json::to_string(&seed.demo.cookies).unwrap()).unwrap();
        SimLogin {
            sim,
            seed,
            cookie_file: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    /// Runs `action instagram ARGS...` logged in with the cookie file against the simulator.
    async fn action(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = ["action", "instagram"]
            .iter()
            .chain(args)
            .map(|arg| (*arg).to_owned())
            .collect();
        all.extend([
            "--cookies".to_owned(),
            self.cookie_file.clone(),
            "--api-base-url".to_owned(),
            self.sim.api_base_url(),
        ]);
        run(all).await
    }
}

#[tokio::test]
async fn check_spec_accepts_the_real_spec() {
    let output = run(vec![
        "check-spec".into(),
        "connectors/instagram.yaml".into(),
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "OK: connectors/instagram.yaml: 34 actions\n"
    );
}

#[tokio::test]
async fn check_spec_prints_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let spec = std::fs::read_to_string(spec_path())
        .unwrap()
        .replacen(r#"text: "{{params.text}}""#, r#"text: "{{params.text""#, 1)
        .replacen(
            "    rest:\n      method: POST",
            "    rest:\n      metod: POST",
            1,
        );
    std::fs::write(&broken, spec).unwrap();
    let output = run(vec!["check-spec".into(), broken.to_str().unwrap().into()]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let file = broken.display().to_string();
    assert!(
        stderr.contains(&format!("{file}: action send: rest.body.text: ")),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `metod`"), "{stderr}");
    assert!(stderr.ends_with("2 problem(s) found\n"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_runs_against_the_simulator_with_a_cookie_file() {
    let login = SimLogin::start().await;
    let thread = login.seed.direct_thread_id.clone();

    let output = login.action(&["list_conversations", "limit=3"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let conversations: Value = serde_json::from_slice(&output.stdout).unwrap();
    let conversations = conversations.as_array().unwrap();
    assert_eq!(conversations.len(), 3);
    assert_eq!(conversations[0]["id"], Value::String(thread.clone()));
    assert_eq!(conversations[0]["type"], "direct");

    let conversation = format!("conversation_id={thread}");
    let output = login
        .action(&["send", "--raw", &conversation, "text=hello from the CLI"])
        .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let raw: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        raw["action"], "item_ack",
        "--raw prints Instagram's own answer"
    );
    let newest = login.sim.thread_snapshot(&thread).unwrap()["items"][0].clone();
    assert_eq!(newest["text"], "hello from the CLI");
    assert_eq!(newest["item_id"], raw["payload"]["item_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_errors_go_to_stderr_without_secrets() {
    let login = SimLogin::start().await;

    let output = login.action(&["list_conversations", "limit=lots"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: invalid parameters for list_conversations: `limit` must be a number, not `lots`\n"
    );

    login.sim.expire_session(login.seed.demo.pk).unwrap();
    let output = login.action(&["list_conversations"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        "error: Instagram asks you to log in again (the session has expired or was logged out)\n"
    );
    assert!(output.stdout.is_empty());
    for secret in login.seed.demo.cookies.values() {
        assert!(!stderr.contains(secret.as_str()));
    }

    let output = run(["action", "instagram", "list_conversations"]
        .map(String::from)
        .to_vec())
    .await;
    assert_eq!(
        text(&output.stderr),
        "error: instagram needs a login: pass --cookies FILE\n"
    );
}
