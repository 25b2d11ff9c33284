//! The `check-spec` and `action` commands, run as the real binary, with a
//! cookie file or as a bridge user's stored login.

use std::path::PathBuf;
use std::process::{Command, Output};

use instagram_sim::{ClaimEcho, DemoSeed, Simulator};
use matrix_instagram::bridge::instagram::Logins;
use matrix_instagram::config::Config;
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::secrets::{CredentialCipher, CredentialKey};
use matrix_instagram::store::{login_id, Store};
use serde_json::Value;

use crate::common::spec_path;

/// Environment variables that would override the command line or the config.
const OVERRIDING_ENV: [&str; 5] = [
    "MATRIX_INSTAGRAM_API_BASE_URL",
    "MATRIX_INSTAGRAM_WEB_BASE_URL",
    "MATRIX_INSTAGRAM_UPLOAD_BASE_URL",
    "MATRIX_INSTAGRAM_KEY",
    "DATABASE_URL",
];

/// Runs the binary from the crate root (so the default `connectors/<name>.yaml` resolves).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_matrix-instagram"));
        command.args(&args).current_dir(env!("CARGO_MANIFEST_DIR"));
        for name in OVERRIDING_ENV {
            command.env_remove(name);
        }
        command.output().expect("run matrix-instagram")
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
        "OK: connectors/instagram.yaml: 36 actions\n"
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
async fn action_reads_a_file_parameter_from_the_path_the_operator_gives() {
    let login = SimLogin::start().await;
    let thread = login.seed.direct_thread_id.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.jpg");
    let picture =
        image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 80]));
    picture
        .save_with_format(&path, image::ImageFormat::Jpeg)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let conversation = format!("conversation_id={thread}");
    let photo = format!("photo={}", path.display());
    let output = login.action(&["send_photo", &conversation, &photo]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let sent: Value = serde_json::from_slice(&output.stdout).unwrap();
    let item_id = sent["id"].as_str().unwrap();
    let media = login.sim.item_media(&thread, item_id).unwrap();
    let served = login.sim.media_bytes(&media[0].name).unwrap();
    assert_eq!(served, bytes, "the item holds the file's bytes");

    let missing = dir.path().join("missing.jpg");
    let photo = format!("photo={}", missing.display());
    let output = login.action(&["send_photo", &conversation, &photo]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with(&format!(
            "error: `photo`: cannot read {}: ",
            missing.display()
        )),
        "{}",
        text(&output.stderr)
    );
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
        "error: Instagram asks you to log in again (the session has expired or was logged out; \
         message: login_required, logout_reason: 8)\n"
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
        "error: instagram needs a login: pass --cookies FILE or --login MXID\n"
    );
}

const ALICE: &str = "@alice:localhost";

/// A simulator with the demo seed, and a bridge config in a temp dir whose
/// `instagram.api_base_url` points at it and whose SQLite database holds a
/// login for [`ALICE`] with the demo account's cookies sealed by the config's key.
struct StoredLogin {
    sim: Simulator,
    seed: DemoSeed,
    config: Config,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl StoredLogin {
    async fn start() -> StoredLogin {
        let sim = Simulator::start().await;
        let seed = sim.seed_demo().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::example();
        config.database.url = format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display());
        config.encryption.key = Some(CredentialKey::generate().to_base64());
        config.instagram.connector = Some(spec_path().display().to_string());
        config.instagram.api_base_url = Some(sim.api_base_url());
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config.to_documented_yaml()).unwrap();

        let login = StoredLogin {
            sim,
            seed,
            config,
            config_path,
            _dir: dir,
        };
        let credentials = Credentials::new(login.seed.demo.cookies.clone());
        let (logins, store) = login.logins().await;
        logins
            .save_new(
                ALICE,
                &login.seed.demo.pk.to_string(),
                Some(login.seed.demo.username.clone()),
                &credentials,
            )
            .await
            .unwrap();
        store.close().await;
        login
    }

    /// The stored logins, through the config's database and key.
    async fn logins(&self) -> (Logins, Store) {
        let store = Store::connect(&self.config.database.url).await.unwrap();
        let key = self.config.credential_key().unwrap();
        (
            Logins::new(store.clone(), CredentialCipher::new(&key)),
            store,
        )
    }

    /// Runs `-c CONFIG action instagram ARGS...`.
    async fn action(&self, args: &[&str]) -> Output {
        let mut all = vec!["-c".to_owned(), self.config_path.display().to_string()];
        all.extend(
            ["action", "instagram"]
                .iter()
                .chain(args)
                .map(|arg| (*arg).to_owned()),
        );
        run(all).await
    }

    /// Fails if a secret cookie value of the login appears in the output
    /// (`ds_user_id` is the account's public id, printed as a participant).
    fn assert_no_cookie_in(&self, output: &Output) {
        let printed = format!("{}{}", text(&output.stdout), text(&output.stderr));
        for (name, secret) in &self.seed.demo.cookies {
            if name != "ds_user_id" {
                assert!(
                    !printed.contains(secret.as_str()),
                    "cookie {name} was printed"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_runs_as_a_stored_login_and_saves_its_auth_state() {
    let login = StoredLogin::start().await;

    let output = login
        .action(&["list_conversations", "limit=2", "--login", ALICE])
        .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    login.assert_no_cookie_in(&output);
    let conversations: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = conversations
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, login.seed.thread_ids[..2]);
    let log = login.sim.request_log();
    assert_eq!(log.len(), 1, "went to the simulator through api_base_url");
    assert_eq!(log[0].pk, Some(login.seed.demo.pk));

    let (logins, store) = login.logins().await;
    let saved = logins
        .credentials(&login_id(ALICE, &login.seed.demo.pk.to_string()))
        .await
        .unwrap();
    store.close().await;
    let claim = saved
        .state
        .get("ig_www_claim")
        .expect("the claim was saved");
    assert!(claim.starts_with("hmac."), "a claim the simulator issued");
    assert_eq!(saved.cookies, login.seed.demo.cookies);

    // The next run sends the saved claim back: it is the simulator's.
    login.sim.clear_request_log();
    let output = login.action(&["current_user", "--login", ALICE]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    login.assert_no_cookie_in(&output);
    assert_eq!(login.sim.request_log()[0].www_claim, ClaimEcho::Matches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_with_login_explains_what_is_wrong() {
    let login = StoredLogin::start().await;

    let output = login
        .action(&["list_conversations", "--login", "@bob:localhost"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: @bob:localhost has no Instagram login; log in with the bot's `login` command\n"
    );

    let output = login
        .action(&[
            "list_conversations",
            "--login",
            ALICE,
            "--cookies",
            "cookies.json",
        ])
        .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("'--login <MXID>' cannot be used with '--cookies <COOKIES>'"),
        "{stderr}"
    );

    let mut other_key = login.config.clone();
    other_key.encryption.key = Some(CredentialKey::generate().to_base64());
    std::fs::write(&login.config_path, other_key.to_documented_yaml()).unwrap();
    let output = login
        .action(&["list_conversations", "--login", ALICE])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: cannot open the Instagram credentials stored for the login {}: stored \
             credentials cannot be decrypted with the configured key\n",
            login_id(ALICE, &login.seed.demo.pk.to_string())
        )
    );
    login.assert_no_cookie_in(&output);
    assert!(login.sim.request_log().is_empty(), "nothing was sent");

    let missing = login.config_path.with_file_name("missing.yaml");
    let output = run(vec![
        "-c".to_owned(),
        missing.display().to_string(),
        "action".to_owned(),
        "instagram".to_owned(),
        "list_conversations".to_owned(),
        "--login".to_owned(),
        ALICE.to_owned(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("create one with `matrix-instagram init`"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_state_from_a_failed_action_is_saved_too() {
    let login = StoredLogin::start().await;

    let output = login
        .action(&[
            "get_conversation",
            "conversation_id=999999",
            "--login",
            ALICE,
        ])
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    login.assert_no_cookie_in(&output);

    let (logins, store) = login.logins().await;
    let saved = logins
        .credentials(&login_id(ALICE, &login.seed.demo.pk.to_string()))
        .await
        .unwrap();
    store.close().await;
    assert!(
        saved.state.contains_key("ig_www_claim"),
        "the claim of the failed response was saved"
    );
}
