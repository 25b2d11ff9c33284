//! The `check-spec` and `action` commands, run as the real binary.

use std::path::Path;
use std::process::{Command, Output};

use instagram_sim::Simulator;
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

fn write_cookie_file(dir: &Path, cookies: &std::collections::BTreeMap<String, String>) -> String {
    let path = dir.join("cookies.json");
    std::fs::write(&path, serde_json::to_string(cookies).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
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
    let sim = Simulator::start().await;
    let seed = sim.seed_demo().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cookies = write_cookie_file(dir.path(), &seed.demo.cookies);
    let base = [
        "--cookies".to_owned(),
        cookies,
        "--api-base-url".to_owned(),
        sim.api_base_url(),
    ];

    let mut args: Vec<String> = ["action", "instagram", "list_conversations", "limit=3"]
        .map(String::from)
        .to_vec();
    args.extend(base.clone());
    let output = run(args).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let conversations: Value = serde_json::from_slice(&output.stdout).unwrap();
    let conversations = conversations.as_array().unwrap();
    assert_eq!(conversations.len(), 3);
    assert_eq!(
        conversations[0]["id"],
        Value::String(seed.direct_thread_id.clone())
    );
    assert_eq!(conversations[0]["type"], "direct");

    let mut args: Vec<String> = ["action", "instagram", "send", "--raw"]
        .map(String::from)
        .to_vec();
    args.push(format!("conversation_id={}", seed.direct_thread_id));
    args.push("text=hello from the CLI".into());
    args.extend(base.clone());
    let output = run(args).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let raw: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        raw["action"], "item_ack",
        "--raw prints Instagram's own answer"
    );
    let newest = sim.thread_snapshot(&seed.direct_thread_id).unwrap()["items"][0].clone();
    assert_eq!(newest["text"], "hello from the CLI");
    assert_eq!(newest["item_id"], raw["payload"]["item_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_errors_go_to_stderr_without_secrets() {
    let sim = Simulator::start().await;
    let seed = sim.seed_demo().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cookies = write_cookie_file(dir.path(), &seed.demo.cookies);
    let base = [
        "--cookies".to_owned(),
        cookies,
        "--api-base-url".to_owned(),
        sim.api_base_url(),
    ];

    let mut args: Vec<String> = ["action", "instagram", "list_conversations", "limit=lots"]
        .map(String::from)
        .to_vec();
    args.extend(base.clone());
    let output = run(args).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: invalid parameters for list_conversations: `limit` must be a number, not `lots`\n"
    );

    sim.expire_session(seed.demo.pk).unwrap();
    let mut args: Vec<String> = ["action", "instagram", "list_conversations"]
        .map(String::from)
        .to_vec();
    args.extend(base.clone());
    let output = run(args).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        "error: Instagram asks you to log in again (the session has expired or was logged out)\n"
    );
    assert!(output.stdout.is_empty());
    for secret in seed.demo.cookies.values() {
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
