//! The `login`, `logout` and `cancel` bot commands end to end, in process:
//! the Instagram simulator, a fake homeserver that records what the bot sends
//! (and accepts or refuses redactions), and the bridge over SQLite with the
//! real connector spec pointed at the simulator. Logins run the real
//! Playwright runner in headless Chromium (`npm ci --prefix scripts` first).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instagram_sim::{Account, Simulator};
use matrix_instagram::bridge::instagram::{load_connector, Logins};
use matrix_instagram::bridge::login::TIMED_OUT;
use matrix_instagram::bridge::login_waiting::{tell_interrupted_logins, INTERRUPTED};
use matrix_instagram::bridge::run::build_appservice;
use matrix_instagram::config::Config;
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::login::BrowserLogin;
use matrix_instagram::matrix::client::HomeserverClient;
use matrix_instagram::secrets::{CredentialCipher, CredentialKey};
use matrix_instagram::store::{LoginRecord, Store};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::subscriber::DefaultGuard;

use crate::api::fake_homeserver::FakeHomeserver;
use crate::api::{config, invite, text_message, ALICE, AS_TOKEN, HS_TOKEN, TEST_KEY};

const PASSWORD: &str = "correct horse battery staple";
const DM: &str = "!login-dm:test.local";
/// How long a browser login may take before a test gives up waiting.
const LOGIN_WAIT: Duration = Duration::from_secs(90);

/// Everything the bridge logs while a test runs (this test's thread only:
/// `#[tokio::test]` runs the bridge's tasks on it).
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The simulator with one account, the fake homeserver, and the bridge over
/// both, with Alice's management room set up.
struct LoginSetup {
    sim: Simulator,
    account: Account,
    hs: FakeHomeserver,
    bridge_url: String,
    database_url: String,
    config: Arc<Config>,
    log: CapturedLog,
    sent_events: AtomicUsize,
    server: JoinHandle<()>,
    _log_guard: DefaultGuard,
    _dir: tempfile::TempDir,
}

impl Drop for LoginSetup {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LoginSetup {
    async fn start(username: &str) -> LoginSetup {
        let runner = BrowserLogin::new(BrowserLogin::default_scripts_dir());
        if let Err(err) = runner.check_installed() {
            panic!("login tests need the browser login runner and Chromium: {err}");
        }
        LoginSetup::start_with(username, |_| {}).await
    }

    /// [`LoginSetup::start`] with the config changed by `edit` first.
    async fn start_with(username: &str, edit: impl FnOnce(&mut Config)) -> LoginSetup {
        let log = CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("matrix_instagram=trace,warn")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let log_guard = tracing::subscriber::set_default(subscriber);

        let sim = Simulator::start().await;
        let account = sim
            .create_account_with_password(username, "Login Test", PASSWORD)
            .expect("account");
        let hs = FakeHomeserver::default();
        let hs_url = hs.start().await;
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display());

        let mut config = config(&hs_url, &database_url);
        config.instagram.api_base_url = Some(sim.api_base_url());
        config.instagram.web_base_url = Some(sim.base_url());
        edit(&mut config);
        let config = Arc::new(config);
        let (bridge_url, server) = serve_bridge(&config, &database_url).await;

        let setup = LoginSetup {
            sim,
            account,
            hs,
            bridge_url,
            database_url,
            config,
            log,
            sent_events: AtomicUsize::new(0),
            server,
            _log_guard: log_guard,
            _dir: dir,
        };
        setup.push(invite("$invite", DM, ALICE, true)).await;
        setup.wait_for_reply("management room").await;
        setup
    }

    /// Stops the bridge and starts a new one over the same database, as a
    /// restart does (what the bridge does at startup included).
    async fn restart(&mut self) {
        self.server.abort();
        let (bridge_url, server) = serve_bridge(&self.config, &self.database_url).await;
        self.bridge_url = bridge_url;
        self.server = server;
    }

    /// Pushes one event in its own transaction, as the homeserver does.
    async fn push(&self, event: Value) {
        let number = self.sent_events.fetch_add(1, Ordering::SeqCst);
        let url = format!(
            "{}/_matrix/app/v1/transactions/login-{number}",
            self.bridge_url
        );
        let response = reqwest::Client::new()
            .put(url)
            .bearer_auth(HS_TOKEN)
            .json(&json!({ "events": [event] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    /// Alice writes `body` in her management room; returns the event id.
    async fn say(&self, body: &str) -> String {
        let event_id = format!("$alice-{}", self.sent_events.load(Ordering::SeqCst));
        self.push(text_message(&event_id, DM, ALICE, body)).await;
        event_id
    }

    /// Everything the bot said, in order.
    fn replies(&self) -> Vec<String> {
        self.hs
            .sent_messages()
            .iter()
            .map(|r| r.body["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until the bot says something containing `text`; returns it.
    async fn wait_for_reply(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(reply) = self.replies().into_iter().find(|r| r.contains(text)) {
                return reply;
            }
            assert!(
                started.elapsed() < LOGIN_WAIT,
                "the bot never said {text:?}; it said {:#?}",
                self.replies()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Alice says `body` and the bot's next reply contains `expected`.
    async fn exchange(&self, body: &str, expected: &str) -> String {
        let before = self.replies().len();
        self.say(body).await;
        let replies = self.replies();
        let reply = replies.get(before).unwrap_or_else(|| {
            panic!("no reply to {body:?}; the bot said {replies:#?}");
        });
        assert!(reply.contains(expected), "{reply:?} lacks {expected:?}");
        reply.clone()
    }

    async fn store(&self) -> Store {
        Store::connect(&self.database_url).await.unwrap()
    }

    /// After a cancel: the runner stops without a word to the user and
    /// without storing anything.
    async fn assert_silent_and_nothing_stored(&self) {
        let said = self.replies().len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(self.replies().len(), said, "{:#?}", self.replies());
        assert!(alice_login(&self.store().await).await.is_none());
    }

    /// Checks that no secret appears in the bridge's log or the bot's messages.
    fn assert_never_shown(&self, secrets: &[&str]) {
        let log = self.log.text();
        assert!(log.contains("Instagram login"), "the log was not captured");
        let replies = self.replies().join("\n");
        for secret in secrets {
            assert!(!log.contains(secret), "a secret is in the log:\n{log}");
            assert!(
                !replies.contains(secret),
                "a secret is in the bot's messages"
            );
        }
    }
}

/// Builds the bridge over `database_url`, runs its startup steps that
/// concern logins, and serves its appservice API on a free port.
async fn serve_bridge(config: &Arc<Config>, database_url: &str) -> (String, JoinHandle<()>) {
    let store = Store::connect(database_url).await.expect("store");
    let client = HomeserverClient::new(&config.homeserver.url, AS_TOKEN).expect("HTTP client");
    // The connector path is absolute, so the config file's directory does not matter.
    let connector = load_connector(config, Path::new("config.yaml")).expect("spec");
    let (bridge, router) =
        build_appservice(config.clone(), store, client, connector).expect("appservice");
    tell_interrupted_logins(&bridge)
        .await
        .expect("interrupted logins told");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bridge_url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (bridge_url, server)
}

fn logins(store: Store) -> Logins {
    Logins::new(
        store,
        CredentialCipher::new(&CredentialKey::from_base64(TEST_KEY).unwrap()),
    )
}

#[tokio::test]
async fn login_stores_sealed_credentials_and_redacts_the_password() {
    let setup = LoginSetup::start("login.full").await;
    setup
        .exchange("login", "Send your Instagram username")
        .await;
    setup
        .exchange("@login.full", "Now send the password of @login.full")
        .await;
    let password_event = setup.say(PASSWORD).await;
    let reply = setup.wait_for_reply("Logging in to Instagram").await;
    assert!(reply.contains("I redacted your message"), "{reply}");
    assert_eq!(setup.hs.redacted_events(), vec![password_event]);

    setup
        .wait_for_reply("Connected to Instagram as @login.full!")
        .await;
    let store = setup.store().await;
    let record = alice_login(&store).await.expect("login stored");
    assert_eq!(record.state, "connected");
    assert_eq!(record.username.as_deref(), Some("login.full"));
    assert_eq!(
        record.ig_user_id.as_deref(),
        Some(setup.account.pk.to_string().as_str())
    );
    let credentials = logins(store).credentials(&record.id).await.unwrap();
    let session = credentials.cookies["sessionid"].clone();
    assert!(
        !record.credentials.as_str().contains(&session),
        "credentials are stored in the clear"
    );

    setup
        .exchange("ping", "Logged in as @login.full (connected).")
        .await;
    let help = setup.exchange("help", "Commands").await;
    for command in [
        "`login`",
        "`logout [username]`",
        "`list-logins`",
        "`cancel`",
    ] {
        assert!(help.contains(command), "{help}");
    }
    setup.assert_never_shown(&[PASSWORD, &session, &credentials.cookies["csrftoken"]]);
}

#[tokio::test]
async fn two_factor_code_is_asked_in_chat_and_redacted() {
    let setup = LoginSetup::start("login.twofactor").await;
    setup
        .sim
        .set_two_factor(setup.account.pk, Some("424242"))
        .expect("2FA on");
    setup.say("login").await;
    setup.say("login.twofactor").await;
    setup.say(PASSWORD).await;
    let question = setup.wait_for_reply("two-factor code").await;
    assert!(question.contains("Send the 6-digit code"), "{question}");

    // The homeserver refuses: the user is asked to delete the code.
    setup.hs.refuse_redactions();
    let code_event = setup.say("424242").await;
    let reply = setup.wait_for_reply("sending your answer").await;
    assert!(reply.contains("please delete it yourself"), "{reply}");
    assert!(setup.hs.redacted_events().contains(&code_event));

    setup
        .wait_for_reply("Connected to Instagram as @login.twofactor!")
        .await;
    let record = alice_login(&setup.store().await).await;
    assert_eq!(record.expect("stored").state, "connected");
    setup.assert_never_shown(&[PASSWORD, "424242"]);
}

#[tokio::test]
async fn wrong_password_is_explained_and_nothing_is_stored() {
    let setup = LoginSetup::start("login.wrong").await;
    setup.say("login").await;
    setup.say("login.wrong").await;
    let wrong = "not the password at all";
    setup.say(wrong).await;
    setup
        .wait_for_reply("Login failed: Instagram did not accept that username and password.")
        .await;
    assert!(alice_login(&setup.store().await).await.is_none());
    // The flow is over: the next message is a command again.
    setup
        .exchange("ping", "You are not logged in to Instagram.")
        .await;
    setup.assert_never_shown(&[wrong]);
}

#[tokio::test]
async fn a_challenge_is_explained_and_nothing_is_stored() {
    let setup = LoginSetup::start("login.challenge").await;
    setup
        .sim
        .flag_challenge(setup.account.pk)
        .expect("challenge on");
    setup.say("login").await;
    setup.say("login.challenge").await;
    setup.say(PASSWORD).await;
    setup
        .wait_for_reply("Login failed: Instagram wants to confirm this login")
        .await;
    assert!(alice_login(&setup.store().await).await.is_none());
    setup.assert_never_shown(&[PASSWORD]);
}

#[tokio::test]
async fn login_without_the_runner_says_so_before_asking_anything() {
    let setup = LoginSetup::start_with("login.norunner", |config| {
        config.login.runner_dir = Some("/nonexistent/runner".to_owned());
    })
    .await;
    let reply = setup
        .exchange("login", "Logging in is not available on this bridge")
        .await;
    assert!(
        reply.contains("/nonexistent/runner/playwright-runner.ts is missing"),
        "{reply}"
    );
    assert!(reply.contains("login.runner_dir"), "{reply}");
    setup
        .exchange("cancel", "You have no login in progress")
        .await;
}

#[tokio::test]
async fn cancel_stops_the_login_and_a_new_one_can_start() {
    let setup = LoginSetup::start("login.cancel").await;
    setup
        .exchange("cancel", "You have no login in progress")
        .await;
    setup
        .sim
        .set_two_factor(setup.account.pk, Some("424242"))
        .expect("2FA on");
    setup.say("login").await;
    // While the bot waits for the username, `cancel` is still a command.
    setup.exchange("cancel", "Login cancelled.").await;
    // While the browser runs its steps.
    setup.say("login").await;
    setup.say("login.cancel").await;
    setup.say(PASSWORD).await;
    setup.exchange("cancel", "Login cancelled.").await;
    setup.assert_silent_and_nothing_stored().await;
    // While the login waits for the 2FA code.
    setup.say("login").await;
    setup.say("login.cancel").await;
    setup.say(PASSWORD).await;
    setup.wait_for_reply("two-factor code").await;
    setup.exchange("cancel", "Login cancelled.").await;
    setup.assert_silent_and_nothing_stored().await;
    setup
        .exchange("login", "Send your Instagram username")
        .await;
}

/// alice's only login, if she has one.
async fn alice_login(store: &Store) -> Option<LoginRecord> {
    let mut logins = store.logins_of(ALICE).await.unwrap();
    assert!(logins.len() <= 1, "alice has one login at most here");
    logins.pop()
}

#[tokio::test]
async fn a_second_account_is_a_second_login_and_logout_names_one() {
    let setup = LoginSetup::start("login.logout").await;
    let credentials = Credentials::from_cookies(setup.account.cookies.clone());
    logins(setup.store().await)
        .save_new(
            ALICE,
            &setup.account.pk.to_string(),
            Some("login.logout".to_owned()),
            &credentials,
        )
        .await
        .unwrap();
    let second = setup
        .sim
        .create_account("login.second", "Second Alice")
        .unwrap();
    let cookies = setup.sim.new_session(second.pk).unwrap();
    let (_, paste) = cookie_pastes(&cookies).swap_remove(0);
    setup
        .exchange(
            &format!("login-cookies {paste}"),
            "Connected to Instagram as @login.second!",
        )
        .await;
    let listed = setup
        .exchange("list-logins", "Your Instagram logins:")
        .await;
    assert!(
        listed.contains("1. Logged in as @login.logout (connected).")
            && listed.contains("2. Logged in as @login.second (connected)."),
        "{listed}"
    );
    let ping = setup.exchange("ping", "The bridge is running").await;
    assert!(
        ping.contains("@login.logout") && ping.contains("@login.second"),
        "{ping}"
    );

    // A third login may be added; logging in says which ones exist.
    setup
        .exchange(
            "login",
            "You are logged in as @login.logout, @login.second. Logging in to another account \
             adds a login",
        )
        .await;
    setup.exchange("cancel", "Login cancelled.").await;

    // Commands that act on one login ask which one.
    setup
        .exchange(
            "logout",
            "You have several Instagram logins (@login.logout, @login.second): say which one",
        )
        .await;
    setup
        .exchange("list", "You have several Instagram logins")
        .await;
    setup
        .exchange(
            "logout nobody",
            "You have no Instagram login @nobody; yours: @login.logout, @login.second.",
        )
        .await;
    setup
        .exchange("logout @login.second", "Logged out of @login.second.")
        .await;
    let left = alice_login(&setup.store().await)
        .await
        .expect("one login left");
    assert_eq!(left.username.as_deref(), Some("login.logout"));
    setup
        .exchange("logout", "Logged out of @login.logout.")
        .await;
    assert!(alice_login(&setup.store().await).await.is_none());
    setup
        .exchange("logout", "You are not logged in to Instagram.")
        .await;
    setup
        .exchange("ping", "You are not logged in to Instagram.")
        .await;
    setup.assert_never_shown(&[&cookies["sessionid"], &cookies["csrftoken"]]);

    // Passwords are not asked for in shared rooms.
    let group = "!login-group:test.local";
    setup.hs.add_member(group, "@carol:test.local");
    setup
        .push(invite("$group-invite", group, ALICE, false))
        .await;
    let before = setup.replies().len();
    setup
        .push(text_message("$group-login", group, ALICE, "!ig login"))
        .await;
    let reply = &setup.replies()[before];
    assert!(
        reply.starts_with("Log in from your management room"),
        "{reply}"
    );
}

/// Every form of `login-cookies` a browser gives, from a fresh simulator
/// session each.
fn cookie_pastes(
    cookies: &std::collections::BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let header = cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let object = serde_json::to_string_pretty(cookies).unwrap();
    let export: Vec<Value> = cookies
        .iter()
        .map(|(name, value)| {
            json!({
                "domain": ".instagram.com", "hostOnly": false, "httpOnly": name == "sessionid",
                "name": name, "path": "/", "sameSite": "no_restriction", "secure": true,
                "session": false, "storeId": "0", "value": value, "expirationDate": 1_790_000_000.5,
            })
        })
        .collect();
    vec![
        ("a Cookie header", format!("Cookie: {header}")),
        ("name=value pairs", header.clone()),
        ("a JSON object", object),
        (
            "an extension's export",
            serde_json::to_string_pretty(&export).unwrap(),
        ),
        (
            "cURL (bash)",
            format!(
                "curl 'https://www.instagram.com/api/v1/users/web_profile_info/?username=x' \\\n  -H 'accept: */*' \\\n  -H 'cookie: {header}' \\\n  -H 'x-ig-app-id: 936619743392459' \\\n  --compressed"
            ),
        ),
        (
            "cURL (cmd)",
            format!(
                "curl \"https://www.instagram.com/\" ^\n  -H \"accept: text/html\" ^\n  -b \"{header}\" ^\n  --compressed"
            ),
        ),
    ]
}

#[tokio::test]
async fn login_cookies_reads_every_format_redacts_it_and_stores_the_login() {
    let setup = LoginSetup::start_with("login.cookies", |_| {}).await;
    let mut secrets = Vec::new();
    let pk = setup.account.pk;
    let formats = cookie_pastes(&setup.sim.new_session(pk).unwrap()).len();
    for index in 0..formats {
        let cookies = setup.sim.new_session(pk).unwrap();
        let (format, paste) = cookie_pastes(&cookies).swap_remove(index);
        let before = setup.replies().len();
        let event = setup.say(&format!("login-cookies {paste}")).await;
        let reply = &setup.replies()[before];
        assert!(
            reply.starts_with("Connected to Instagram as @login.cookies!"),
            "{format}: {reply}"
        );
        assert!(
            reply.contains("I redacted your message"),
            "{format}: {reply}"
        );
        assert!(setup.hs.redacted_events().contains(&event), "{format}");

        let store = setup.store().await;
        let record = alice_login(&store).await.expect("login stored");
        assert_eq!(record.state, "connected", "{format}");
        assert_eq!(record.username.as_deref(), Some("login.cookies"));
        assert_eq!(record.ig_user_id, Some(pk.to_string()));
        let stored = logins(store).credentials(&record.id).await.unwrap();
        assert_eq!(stored.cookies, cookies, "{format}");
        assert!(!record.credentials.as_str().contains(&cookies["sessionid"]));
        setup
            .exchange("ping", "Logged in as @login.cookies (connected).")
            .await;
        setup
            .exchange("logout", "Logged out of @login.cookies.")
            .await;
        secrets.push(cookies["sessionid"].clone());
        secrets.push(cookies["csrftoken"].clone());
    }
    let formats_reply = setup.exchange("login-cookies", "Cookie header").await;
    assert!(formats_reply.contains("curl '"), "{formats_reply}");
    let help = setup.exchange("help", "`login-cookies <cookies>`").await;
    assert!(help.contains("`login`"), "{help}");
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    setup.assert_never_shown(&secrets);
}

#[tokio::test]
async fn broken_cookie_pastes_are_explained_redacted_and_not_stored() {
    let setup = LoginSetup::start_with("login.badcookies", |_| {}).await;
    let pk = setup.account.pk;
    let mut cookies = setup.sim.new_session(pk).unwrap();
    let session = cookies.remove("sessionid").unwrap();
    let header_without_session = cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let expired = setup.sim.new_session(pk).unwrap();
    setup.sim.expire_session(pk).unwrap();
    let expired_header = expired
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let other_site = format!(
        r#"[{{"domain": ".facebook.com", "name": "xs", "value": "{session}"}},
            {{"domain": ".facebook.com", "name": "c_user", "value": "100"}}]"#
    );
    let cases = [
        (
            header_without_session.clone(),
            "The cookie sessionid is missing.",
        ),
        (other_site, "Those cookies are of facebook.com, not of instagram.com"),
        (
            format!("curl 'https://www.facebook.com/' -H 'cookie: {expired_header}'"),
            "Those cookies are of www.facebook.com, not of instagram.com",
        ),
        (
            format!("my session is {session}"),
            "I could not read your cookies: it is not JSON, a cURL command, or cookies written as name=value pairs",
        ),
        (
            format!("{{\"sessionid\": \"{session}\""),
            "I could not read your cookies: it starts like JSON but is not valid JSON",
        ),
        (
            expired_header.clone(),
            "Instagram says this session is no longer valid (it expired or was logged out).",
        ),
    ];
    for (paste, expected) in cases {
        let before = setup.replies().len();
        let event = setup.say(&format!("login-cookies {paste}")).await;
        let reply = &setup.replies()[before];
        assert!(reply.starts_with(expected), "{reply:?} lacks {expected:?}");
        assert!(reply.contains("I redacted your message"), "{reply}");
        assert!(setup.hs.redacted_events().contains(&event));
        assert!(alice_login(&setup.store().await).await.is_none());
    }
    let unreadable = setup
        .replies()
        .into_iter()
        .find(|r| r.contains("I could not read"));
    assert!(unreadable
        .unwrap()
        .contains("a request to instagram.com copied as cURL"));

    // In a shared room the paste is redacted and refused.
    let group = "!cookies-group:test.local";
    setup.hs.add_member(group, "@carol:test.local");
    setup
        .push(invite("$cookies-invite", group, ALICE, false))
        .await;
    let before = setup.replies().len();
    let paste = format!("!ig login-cookies Cookie: sessionid={session}; {header_without_session}");
    setup
        .push(text_message("$cookies-group", group, ALICE, &paste))
        .await;
    let reply = &setup.replies()[before];
    assert!(
        reply.starts_with("Cookies are as secret as your password"),
        "{reply}"
    );
    assert!(setup
        .hs
        .redacted_events()
        .contains(&"$cookies-group".to_owned()));
    assert!(alice_login(&setup.store().await).await.is_none());

    let mut secrets = vec![session.as_str(), expired["sessionid"].as_str()];
    secrets.extend(cookies.values().map(String::as_str));
    setup.assert_never_shown(&secrets);
}

#[tokio::test]
async fn unanswered_login_questions_time_out_with_a_notice() {
    let setup = LoginSetup::start_with("login.timeout", |config| {
        config.login.question_timeout_ms = 3000;
    })
    .await;
    // The username is never sent.
    setup
        .exchange("login", "Send your Instagram username")
        .await;
    let notice = setup.wait_for_reply("timed out").await;
    assert_eq!(notice, TIMED_OUT);
    setup
        .exchange("cancel", "You have no login in progress")
        .await;

    // The 2FA code is never sent: the browser is stopped, nothing stored.
    setup
        .sim
        .set_two_factor(setup.account.pk, Some("424242"))
        .expect("2FA on");
    setup.say("login").await;
    setup.say("login.timeout").await;
    setup.say(PASSWORD).await;
    setup.wait_for_reply("two-factor code").await;
    let started = setup.replies().len();
    let deadline = Instant::now() + LOGIN_WAIT;
    while setup.replies()[started..].iter().all(|r| r != TIMED_OUT) {
        assert!(Instant::now() < deadline, "{:#?}", setup.replies());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The login is over: a late code is redacted, not taken as an answer.
    let late = setup.say("424242").await;
    let reply = setup.wait_for_reply("Your login had timed out").await;
    assert!(reply.contains("I redacted your message"), "{reply}");
    assert!(setup.hs.redacted_events().contains(&late));
    setup.exchange("oops", "Unknown command").await;
    assert!(alice_login(&setup.store().await).await.is_none());
    assert_eq!(
        setup.replies().iter().filter(|r| *r == TIMED_OUT).count(),
        2,
        "{:#?}",
        setup.replies()
    );
    setup
        .exchange("login", "Send your Instagram username")
        .await;
    setup.assert_never_shown(&[PASSWORD]);
}

/// How many times the bot said a restart interrupted the login.
fn interrupted(setup: &LoginSetup) -> usize {
    setup
        .replies()
        .iter()
        .filter(|reply| *reply == INTERRUPTED)
        .count()
}

#[tokio::test]
async fn a_login_interrupted_by_a_restart_is_told_and_the_password_redacted() {
    let mut setup = LoginSetup::start_with("login.restart", |_| {}).await;
    setup.say("login").await;
    setup
        .exchange("login.restart", "Now send the password of @login.restart")
        .await;
    setup.restart().await;
    assert_eq!(interrupted(&setup), 1, "{:#?}", setup.replies());

    // The password meant for the lost login is redacted, not a command.
    let before = setup.replies().len();
    let password_event = setup.say(PASSWORD).await;
    let reply = &setup.replies()[before];
    assert!(
        reply.starts_with("Your login was interrupted by a restart of the bridge"),
        "{reply}"
    );
    assert!(reply.contains("I redacted your message"), "{reply}");
    assert_eq!(setup.hs.redacted_events(), vec![password_event]);
    // Only that one message.
    setup.exchange("oops", "Unknown command").await;
    assert_eq!(setup.hs.redacted_events().len(), 1);

    // Interrupted at the password again: a command next runs as usual.
    setup.say("login").await;
    setup.say("login.restart").await;
    setup.restart().await;
    assert_eq!(interrupted(&setup), 2);
    setup
        .exchange("ping", "You are not logged in to Instagram.")
        .await;
    setup.exchange("oops", "Unknown command").await;
    assert_eq!(setup.hs.redacted_events().len(), 1);

    // Interrupted at the username: told, nothing redacted.
    setup.say("login").await;
    setup.restart().await;
    assert_eq!(interrupted(&setup), 3);
    setup.exchange("someone", "Unknown command").await;
    assert_eq!(setup.hs.redacted_events().len(), 1);

    // A cancelled login is not reported after a restart.
    setup.say("login").await;
    setup.exchange("cancel", "Login cancelled.").await;
    let store = setup.store().await;
    let deadline = Instant::now() + LOGIN_WAIT;
    while !store
        .kv_with_prefix("login-in-progress:")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the cancelled login's marker stays"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    setup.restart().await;
    assert_eq!(interrupted(&setup), 3, "{:#?}", setup.replies());
    setup.assert_never_shown(&[PASSWORD]);
}
