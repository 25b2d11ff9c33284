//! Browser logins end to end: the real `auth.connect` steps of
//! connectors/instagram.yaml run by `scripts/playwright-runner.ts` in headless
//! Chromium against the simulator's web login, through `BrowserLogin`.
//!
//! These tests need Chromium and the runner's npm packages; when either is
//! missing they fail with the command that installs it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use instagram_sim::{Account, Simulator};
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::connector::http::{BaseUrls, Connector};
use matrix_instagram::login::{
    failure_message, success_message, BrowserLogin, BrowserLoginError, LoginJob, Prompt,
};

use crate::common::load_spec;

const PASSWORD: &str = "correct horse battery staple";

struct WebLogin {
    sim: Simulator,
    account: Account,
    connector: Connector,
    runner: BrowserLogin,
}

impl WebLogin {
    async fn start(username: &str) -> WebLogin {
        let runner = BrowserLogin::new(BrowserLogin::default_scripts_dir())
            .with_timeout(Duration::from_secs(90));
        if let Err(err) = runner.check_installed() {
            panic!("browser login tests need the runner and Chromium: {err}");
        }
        let sim = Simulator::start().await;
        let account = sim
            .create_account_with_password(username, "Web Login", PASSWORD)
            .expect("account");
        let spec = load_spec();
        let base_urls = BaseUrls::with_overrides(
            &spec.api,
            Some(&sim.api_base_url()),
            Some(&sim.base_url()),
            None,
        );
        let connector = Connector::new(spec, base_urls).with_timeout(Duration::from_secs(5));
        WebLogin {
            sim,
            account,
            connector,
            runner,
        }
    }

    fn job(&self, password: &str) -> LoginJob {
        let inputs = BTreeMap::from([
            ("username".to_owned(), self.account.username.clone()),
            ("password".to_owned(), password.to_owned()),
        ]);
        LoginJob::from_spec(self.connector.spec(), self.connector.base_urls(), inputs)
            .expect("the connect steps render")
    }
}

/// Answers no prompt: a login that asks one fails the test.
async fn no_prompt(prompt: Prompt) -> Option<String> {
    panic!("unexpected prompt {prompt:?}")
}

#[tokio::test]
async fn browser_login_returns_cookies_that_work_against_the_api() {
    let fx = WebLogin::start("web.login").await;
    let result = fx
        .runner
        .run(fx.job(PASSWORD), no_prompt)
        .await
        .unwrap_or_else(|err| panic!("login failed: {err}"));

    assert_eq!(
        result.extracted.get("username").map(String::as_str),
        Some("web.login")
    );
    for name in ["sessionid", "csrftoken", "ds_user_id", "mid", "ig_did"] {
        assert!(result.cookies.contains_key(name), "no {name} cookie");
    }
    assert_eq!(result.cookies["ds_user_id"], fx.account.pk.to_string());
    assert_eq!(
        success_message(fx.connector.spec(), &result).as_deref(),
        Some("Connected to Instagram as @web.login!")
    );
    // A new web session, not the API session the simulator made for the account.
    assert_ne!(result.cookies["sessionid"], fx.account.cookies["sessionid"]);

    let mut creds = Credentials::from_cookies(result.cookies.clone());
    let me = fx
        .connector
        .current_user(&mut creds)
        .await
        .unwrap_or_else(|err| panic!("current_user with the browser's cookies: {err}"));
    assert_eq!(me.handle.as_deref(), Some("web.login"));
    assert_eq!(me.id, fx.account.pk.to_string());
}

#[tokio::test]
async fn browser_login_relays_the_two_factor_prompt() {
    let fx = WebLogin::start("two.factor").await;
    fx.sim
        .set_two_factor(fx.account.pk, Some("424242"))
        .expect("2FA on");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    let result = fx
        .runner
        .run(fx.job(PASSWORD), move |prompt: Prompt| {
            seen.lock().unwrap().push(prompt);
            async { Some("424242".to_owned()) }
        })
        .await
        .unwrap_or_else(|err| panic!("2FA login failed: {err}"));

    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].name, "two_factor_code");
    assert!(asked[0].message.contains("security code"), "{asked:?}");
    let mut creds = Credentials::from_cookies(result.cookies);
    let me = fx.connector.current_user(&mut creds).await.unwrap();
    assert_eq!(me.handle.as_deref(), Some("two.factor"));
}

#[tokio::test]
async fn a_wrong_two_factor_code_is_reported() {
    let fx = WebLogin::start("two.factor.wrong").await;
    fx.sim
        .set_two_factor(fx.account.pk, Some("424242"))
        .expect("2FA on");
    let err = fx
        .runner
        .run(fx.job(PASSWORD), |_| async { Some("000000".to_owned()) })
        .await
        .expect_err("a wrong code must not log in");
    assert_eq!(err.kind(), Some("two_factor_failed"), "{err}");
    // The failing step inside if_selector (step 7) keeps its own number.
    assert!(
        matches!(&err, BrowserLoginError::StepFailed { step, .. } if step == "9.4"),
        "{err:?}"
    );
    assert!(err.to_string().contains("security code"), "{err}");
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let fx = WebLogin::start("wrong.password").await;
    let err = fx
        .runner
        .run(fx.job("not the password"), no_prompt)
        .await
        .expect_err("a wrong password must not log in");
    assert_eq!(err.kind(), Some("bad_credentials"), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("password was incorrect"), "{shown}");
    assert!(!shown.contains("not the password"), "{shown}");
    assert_eq!(
        failure_message(fx.connector.spec(), &err),
        "Instagram did not accept that username and password."
    );
}

#[tokio::test]
async fn a_challenge_is_reported_as_one() {
    let fx = WebLogin::start("challenged").await;
    fx.sim.flag_challenge(fx.account.pk).expect("flag");
    let err = fx
        .runner
        .run(fx.job(PASSWORD), no_prompt)
        .await
        .expect_err("a challenged login must not finish");
    assert!(
        matches!(err, BrowserLoginError::Challenge { .. }),
        "{err:?}"
    );
    // The error names the page without its query (a login token).
    assert!(!err.to_string().contains("token="), "{err}");
    assert!(
        failure_message(fx.connector.spec(), &err).starts_with("Instagram wants to confirm"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unanswered_prompt_ends_the_login() {
    let fx = WebLogin::start("gave.up").await;
    fx.sim
        .set_two_factor(fx.account.pk, Some("424242"))
        .expect("2FA on");
    let err = fx
        .runner
        .run(fx.job(PASSWORD), |_| async { None })
        .await
        .expect_err("no answer, no login");
    assert!(
        matches!(&err, BrowserLoginError::PromptUnanswered { name } if name == "two_factor_code"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_overall_timeout_stops_a_waiting_login() {
    let fx = WebLogin::start("slow.user").await;
    fx.sim
        .set_two_factor(fx.account.pk, Some("424242"))
        .expect("2FA on");
    // Long enough to reach the 2FA question on a busy machine.
    let runner = fx.runner.clone().with_timeout(Duration::from_secs(25));
    let err = runner
        .run(fx.job(PASSWORD), |_| std::future::pending())
        .await
        .expect_err("a user who never answers times out");
    assert!(
        matches!(&err, BrowserLoginError::Timeout { last_step: Some(step), .. } if step.starts_with('9')),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_runner_names_the_install_command() {
    let scripts = tempfile::tempdir().expect("temp dir");
    std::fs::write(scripts.path().join("playwright-runner.ts"), "").expect("write");
    let runner = BrowserLogin::new(scripts.path());
    let err = runner.check_installed().expect_err("no node_modules");
    let shown = err.to_string();
    assert!(
        matches!(err, BrowserLoginError::RunnerMissing { .. }),
        "{err:?}"
    );
    assert!(
        shown.contains(&format!("npm ci --prefix {}", scripts.path().display())),
        "{shown}"
    );

    let err = BrowserLogin::new(BrowserLogin::default_scripts_dir())
        .with_chromium("/nonexistent/chromium")
        .run(
            LoginJob {
                launch: serde_json::json!({}),
                steps: serde_json::json!([]),
                inputs: BTreeMap::new(),
            },
            no_prompt,
        )
        .await
        .expect_err("no browser");
    assert!(
        err.to_string()
            .contains("apt-get install -y --no-install-recommends chromium"),
        "{err}"
    );
}

#[tokio::test]
async fn a_crashed_runner_reports_its_stderr_without_secrets() {
    let scripts = tempfile::tempdir().expect("temp dir");
    // A runner that dies after echoing its job (the password included) on stderr.
    std::fs::write(
        scripts.path().join("playwright-runner.ts"),
        "import { createInterface } from \"node:readline\";\n\
         const lines = createInterface({ input: process.stdin });\n\
         lines.once(\"line\", (line: string) => { process.stderr.write(`boom: ${line}\\n`); process.exit(3); });\n",
    )
    .expect("write runner");
    std::os::unix::fs::symlink(
        BrowserLogin::default_scripts_dir().join("node_modules"),
        scripts.path().join("node_modules"),
    )
    .expect("link node_modules");
    let job = LoginJob {
        launch: serde_json::json!({}),
        steps: serde_json::json!([]),
        inputs: BTreeMap::from([("password".to_owned(), PASSWORD.to_owned())]),
    };
    let err = BrowserLogin::new(scripts.path())
        .run(job, no_prompt)
        .await
        .expect_err("the runner crashed");
    let BrowserLoginError::Crashed {
        status,
        stderr_tail,
    } = &err
    else {
        panic!("not a crash: {err:?}");
    };
    assert!(status.contains('3'), "{status}");
    assert!(stderr_tail.contains("boom"), "{stderr_tail}");
    assert!(stderr_tail.contains("[redacted]"), "{stderr_tail}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD), "{err:?}");
}

/// Turns on the simulator's cookie-consent dialog (EU visitors).
fn show_consent_dialog(sim: &Simulator) {
    let mut settings = sim.settings();
    settings.consent_dialog = true;
    sim.set_settings(settings);
}

#[tokio::test]
async fn the_consent_dialog_is_declined_and_the_login_goes_on() {
    let fx = WebLogin::start("eu.login").await;
    show_consent_dialog(&fx.sim);
    let result = fx
        .runner
        .run(fx.job(PASSWORD), no_prompt)
        .await
        .unwrap_or_else(|err| panic!("login behind the consent dialog failed: {err}"));
    assert_eq!(result.cookies["ds_user_id"], fx.account.pk.to_string());
    let mut creds = Credentials::from_cookies(result.cookies);
    let me = fx.connector.current_user(&mut creds).await.unwrap();
    assert_eq!(me.handle.as_deref(), Some("eu.login"));
}

#[tokio::test]
async fn the_consent_dialog_then_two_factor() {
    let fx = WebLogin::start("eu.twofactor").await;
    show_consent_dialog(&fx.sim);
    fx.sim
        .set_two_factor(fx.account.pk, Some("424242"))
        .expect("2FA on");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    let result = fx
        .runner
        .run(fx.job(PASSWORD), move |prompt: Prompt| {
            seen.lock().unwrap().push(prompt.name);
            async { Some("424242".to_owned()) }
        })
        .await
        .unwrap_or_else(|err| panic!("2FA login behind the consent dialog failed: {err}"));
    assert_eq!(*asked.lock().unwrap(), vec!["two_factor_code".to_owned()]);
    assert_eq!(result.extracted["username"], "eu.twofactor");
    assert_eq!(result.cookies["ds_user_id"], fx.account.pk.to_string());
}

/// What `/proc` shows of one process: its state and process group.
fn process_state_and_group(pid: &str) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

/// Live processes (pid, process group) whose command line holds `marker`,
/// or that are in one of `groups`.
fn live_processes(marker: &str, groups: &[i32]) -> Vec<(String, i32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let Some((state, group)) = process_state_and_group(&pid) else {
            continue;
        };
        if state == 'Z' {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let marked = String::from_utf8_lossy(&cmdline).contains(marker);
        if marked || groups.contains(&group) {
            found.push((pid, group));
        }
    }
    found
}

/// A marker for one test's browser: Chromium ignores unknown switches, and
/// keeps them in its command line where `/proc` shows them.
fn marked_job(job: LoginJob) -> (LoginJob, String) {
    let marker = format!("--matrix-instagram-test={}", uuid::Uuid::new_v4());
    let mut job = job;
    job.launch["args"] = serde_json::json!([marker.clone()]);
    (job, marker)
}

#[tokio::test]
async fn a_cancelled_login_leaves_no_browser_process() {
    let fx = WebLogin::start("web.nobrowser").await;
    fx.sim
        .set_two_factor(fx.account.pk, Some("424242"))
        .expect("2FA on");
    let (job, marker) = marked_job(fx.job(PASSWORD));
    let browser_groups = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&browser_groups);
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let cancel = Mutex::new(Some(cancel));
    let watched = marker.clone();
    // While the login waits for the code, the browser runs: note its group, then cancel.
    let answer = move |_prompt: Prompt| {
        let running = live_processes(&watched, &[]);
        seen.lock()
            .unwrap()
            .extend(running.into_iter().map(|(_, group)| group));
        if let Some(cancel) = cancel.lock().unwrap().take() {
            cancel.send(()).unwrap();
        }
        std::future::pending::<Option<String>>()
    };
    let err = fx
        .runner
        .run_cancellable(job, answer, async {
            cancelled.await.unwrap();
        })
        .await
        .expect_err("a cancelled login must not log in");
    assert!(matches!(err, BrowserLoginError::Cancelled), "{err:?}");
    let groups = browser_groups.lock().unwrap().clone();
    assert!(!groups.is_empty(), "the browser was not seen running");
    let left = live_processes(&marker, &groups);
    assert!(
        left.is_empty(),
        "browser processes outlived the login: {left:?}"
    );
}

/// A runner like the real one at its worst: it starts a detached child (as
/// Playwright starts Chromium, leading a group of its own), both ignore
/// SIGTERM, and it waits on a question forever.
const STUBBORN_RUNNER: &str = r#"import { spawn } from "node:child_process";
process.on("SIGTERM", () => undefined);
spawn("sh", ["-c", "trap '' TERM; sleep 1000; :", "@MARKER@"], { detached: true, stdio: "ignore" });
process.stdout.write(JSON.stringify({ prompt: { name: "code", message: "?" } }) + "\n");
setInterval(() => undefined, 1000);
"#;

/// A scripts directory holding [`STUBBORN_RUNNER`] (its child's command
/// line holding `marker`) and the real node_modules.
fn stubborn_runner(marker: &str) -> tempfile::TempDir {
    let scripts = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        scripts.path().join("playwright-runner.ts"),
        STUBBORN_RUNNER.replace("@MARKER@", marker),
    )
    .expect("write runner");
    std::os::unix::fs::symlink(
        BrowserLogin::default_scripts_dir().join("node_modules"),
        scripts.path().join("node_modules"),
    )
    .expect("link node_modules");
    scripts
}

fn empty_job() -> LoginJob {
    LoginJob {
        launch: serde_json::json!({}),
        steps: serde_json::json!([]),
        inputs: BTreeMap::new(),
    }
}

#[tokio::test]
async fn a_runner_ignoring_sigterm_is_killed_with_its_detached_children() {
    let marker = format!("stubborn-{}", uuid::Uuid::new_v4());
    let scripts = stubborn_runner(&marker);
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let cancel = Mutex::new(Some(cancel));
    let watched = marker.clone();
    let answer = move |_prompt: Prompt| {
        let watched = watched.clone();
        let cancel = cancel.lock().unwrap().take();
        async move {
            // The detached child may take a moment to start.
            while live_processes(&watched, &[]).is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(cancel) = cancel {
                cancel.send(()).unwrap();
            }
            std::future::pending::<Option<String>>().await
        }
    };
    let err = BrowserLogin::new(scripts.path())
        .run_cancellable(empty_job(), answer, async {
            cancelled.await.unwrap();
        })
        .await
        .expect_err("cancelled");
    assert!(matches!(err, BrowserLoginError::Cancelled), "{err:?}");
    let left = live_processes(&marker, &[]);
    assert!(
        left.is_empty(),
        "the runner's children outlived it: {left:?}"
    );
}

#[tokio::test]
async fn an_abandoned_login_takes_its_runner_and_children_along() {
    let marker = format!("abandoned-{}", uuid::Uuid::new_v4());
    let scripts = stubborn_runner(&marker);
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let started = Mutex::new(Some(started));
    let watched = marker.clone();
    let answer = move |_prompt: Prompt| {
        let watched = watched.clone();
        let started = started.lock().unwrap().take();
        async move {
            while live_processes(&watched, &[]).is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(started) = started {
                started.send(()).unwrap();
            }
            std::future::pending::<Option<String>>().await
        }
    };
    let runner = BrowserLogin::new(scripts.path());
    let login = runner.run(empty_job(), answer);
    // The login future is dropped while it waits (a bridge shutting down).
    tokio::select! {
        _ = login => panic!("the stubborn login cannot end"),
        _ = running => {}
    }
    // Killed on drop; a killed process takes a moment to go.
    let mut left = live_processes(&marker, &[]);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = live_processes(&marker, &[]);
    }
    assert!(
        left.is_empty(),
        "the runner's children outlived it: {left:?}"
    );
}

#[tokio::test]
async fn a_cancelled_login_stops_the_runner() {
    let fx = WebLogin::start("web.cancel").await;
    fx.sim
        .set_two_factor(fx.account.pk, Some("424242"))
        .expect("2FA on");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let cancel = Mutex::new(Some(cancel));
    // The question is never answered: the login is cancelled instead.
    let answer = move |prompt: Prompt| {
        seen.lock().unwrap().push(prompt.name);
        if let Some(cancel) = cancel.lock().unwrap().take() {
            cancel.send(()).unwrap();
        }
        std::future::pending::<Option<String>>()
    };
    let started = std::time::Instant::now();
    let err = fx
        .runner
        .run_cancellable(fx.job(PASSWORD), answer, async {
            cancelled.await.unwrap();
        })
        .await
        .expect_err("a cancelled login must not log in");
    assert!(matches!(err, BrowserLoginError::Cancelled), "{err:?}");
    assert_eq!(*asked.lock().unwrap(), vec!["two_factor_code".to_owned()]);
    // Stopped at once, not after the runner's 90 s limit.
    assert!(started.elapsed() < Duration::from_secs(60));
}
