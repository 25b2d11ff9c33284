//! The login commands end to end, as a user lives them: the real
//! `matrix-instagram` binary against a real Synapse, a Matrix user chatting
//! with the bot in a management room her client created, the Instagram
//! simulator, and the real Playwright runner in headless Chromium for
//! browser logins (`npm ci --prefix scripts` first). Each test checks what
//! the user sees (the bot's replies, her secret messages redacted in
//! Synapse, the stored login) and that no password, code or cookie value
//! reaches the bridge's log file or the room history.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use instagram_sim::{Account, Simulator};
use matrix_instagram::bridge::login::TIMED_OUT;
use matrix_instagram::bridge::login_waiting::INTERRUPTED;
use matrix_instagram::connector::auth::DeviceIdentity;
use matrix_instagram::store::LoginRecord;
use serde_json::{json, Value};

use crate::harness::{Backend, E2e, MatrixClient, WAIT};

const PASSWORD: &str = "correct horse battery staple";
const TWO_FACTOR_CODE: &str = "424242";

on_both_databases!(
    browser_login_with_and_without_two_factor_and_behind_the_consent_dialog,
    browser_login_with_and_without_two_factor_and_behind_the_consent_dialog_sqlite,
    browser_login_with_and_without_two_factor_and_behind_the_consent_dialog_postgres
);

/// The simulator with alice's Instagram account, Synapse, the bridge binary
/// pointed at both, and alice's management room.
struct LoginRoom {
    sim: Simulator,
    account: Account,
    alice: MatrixClient,
    /// alice's management room.
    room: String,
    bot: String,
    /// Everything secret the test used, by what it is, checked by
    /// [`LoginRoom::assert_never_shown`].
    secrets: Vec<(String, String)>,
    e2e: E2e,
}

impl LoginRoom {
    /// Starts everything; `configure` may change the bridge config first.
    async fn start(backend: Backend, username: &str, configure: impl FnOnce(&E2e)) -> LoginRoom {
        let sim = Simulator::start().await;
        let account = sim
            .create_account_with_password(username, "Login Test", PASSWORD)
            .expect("creating alice's Instagram account");
        let mut e2e = E2e::prepare(backend, &[("localhost", "user")]).await;
        e2e.use_simulator(&sim);
        // Everything the bridge can log, so that the secrets check sees it all.
        e2e.config
            .set(&["logging", "level"], "matrix_instagram=trace,info".into())
            .expect("setting the log level");
        configure(&e2e);
        e2e.start_bridge().await;
        let bot = e2e.bot().to_owned();
        let mut alice = e2e.user("alice").await;
        let room = open_management_room(&mut alice, &bot, trusted_direct_chat(&bot)).await;
        LoginRoom {
            sim,
            account,
            alice,
            room,
            bot,
            secrets: vec![("the password".to_owned(), PASSWORD.to_owned())],
            e2e,
        }
    }

    /// alice sends `text` to her management room; returns the event id.
    async fn say(&mut self, text: &str) -> String {
        self.alice
            .send_text(&self.room, text)
            .await
            .unwrap_or_else(|err| panic!("sending {text:?}: {err}"))
    }

    /// The bot's next message in the management room.
    async fn next_reply(&mut self) -> String {
        self.alice
            .wait_for_message(&self.room, &self.bot)
            .await
            .unwrap_or_else(|err| panic!("waiting for the bot: {err}"))
            .body()
            .to_owned()
    }

    /// alice says `text`; the bot's next message contains `expected` and is returned.
    async fn exchange(&mut self, text: &str, expected: &str) -> String {
        self.say(text).await;
        let reply = self.next_reply().await;
        assert!(
            reply.contains(expected),
            "the answer to {text:?} lacks {expected:?}: {reply:?}"
        );
        reply
    }

    /// alice sends a secret; the bot's next message starts with `expected`
    /// and says it redacted the message, which Synapse now serves empty.
    async fn send_secret(&mut self, secret: &str, expected: &str) -> String {
        let event_id = self.say(secret).await;
        let reply = self.next_reply().await;
        assert!(
            reply.starts_with(expected),
            "{reply:?} does not start with {expected:?}"
        );
        assert!(reply.contains("(I redacted your message.)"), "{reply:?}");
        self.assert_redacted(&event_id).await;
        reply
    }

    /// The event was redacted: Synapse serves it with an empty content.
    async fn assert_redacted(&self, event_id: &str) {
        assert_redacted_in(&self.alice, &self.room, event_id).await;
    }

    /// alice's only Instagram login, if she has one.
    async fn login(&self) -> Option<LoginRecord> {
        let mut logins = self
            .e2e
            .store()
            .await
            .logins_of(&self.alice.user_id)
            .await
            .expect("reading alice's logins");
        assert!(logins.len() <= 1, "alice has one login at most here");
        logins.pop()
    }

    /// The stored login is connected to `self.account`, its credentials
    /// sealed; its session cookies are added to the secrets.
    async fn assert_stored(&mut self) -> BTreeMap<String, String> {
        let record = self.login().await.expect("the login is stored");
        assert_eq!(record.state, "connected");
        assert_eq!(
            record.username.as_deref(),
            Some(self.account.username.as_str())
        );
        assert_eq!(record.ig_user_id, Some(self.account.pk.to_string()));
        let credentials = self
            .e2e
            .logins()
            .await
            .credentials(&record.id)
            .await
            .expect("reading the stored credentials");
        for name in ["sessionid", "csrftoken"] {
            let value = &credentials.cookies[name];
            assert!(
                !record.credentials.as_str().contains(value.as_str()),
                "{name} is stored in the clear"
            );
        }
        self.keep_secret(&credentials.cookies);
        credentials.cookies
    }

    /// Adds the secret cookies of a session (`ds_user_id` is the account's
    /// public id) to the secrets.
    fn keep_secret(&mut self, cookies: &BTreeMap<String, String>) {
        for (name, value) in cookies {
            if name != "ds_user_id" {
                self.secrets
                    .push((format!("the cookie {name}"), value.clone()));
            }
        }
    }

    async fn assert_nothing_stored(&self) {
        assert!(self.login().await.is_none(), "a login was stored");
    }

    /// No secret of the test is in the bridge's log files (every run) or in
    /// any event of the rooms alice is in.
    async fn assert_never_shown(&self) {
        let logs = self.e2e.bridge_logs();
        assert!(
            logs.contains("Instagram login"),
            "the bridge's log did not capture the logins"
        );
        let mut history = String::new();
        for room in self.alice.joined_rooms().await.expect("alice's rooms") {
            for event in self.alice.room_history(&room).await.expect("room history") {
                history.push_str(&event.event.to_string());
            }
        }
        assert!(history.contains(&self.bot), "the room history was not read");
        for (what, secret) in &self.secrets {
            assert!(
                !logs.contains(secret.as_str()),
                "{what} is in the bridge's log"
            );
            assert!(
                !history.contains(secret.as_str()),
                "{what} is in a room's history"
            );
        }
    }
}

/// A `createRoom` body for a direct chat with the bot as Element makes it
/// (`trusted_private_chat`: the bot gets the power to redact).
fn trusted_direct_chat(bot: &str) -> Value {
    json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [bot]})
}

/// alice creates a room from `body` with only the bot invited, and waits for
/// the bot to join and greet her there; returns the room id.
async fn open_management_room(alice: &mut MatrixClient, bot: &str, body: Value) -> String {
    let room = alice
        .create_room_with(body, "creating a direct chat with the bot")
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    alice
        .wait_for_join(&room, bot)
        .await
        .expect("the bot joins the direct chat");
    let greeting = alice
        .wait_for_message(&room, bot)
        .await
        .expect("the bot greets alice");
    assert!(
        greeting.body().contains("management room"),
        "{:?}",
        greeting.body()
    );
    room
}

async fn assert_redacted_in(user: &MatrixClient, room: &str, event_id: &str) {
    let event = user
        .event(room, event_id)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(event["content"], json!({}), "not redacted: {event}");
    assert!(
        event["unsigned"]["redacted_because"].is_object(),
        "not redacted: {event}"
    );
}

/// The browser login as the user lives it: the password asked in chat and
/// redacted, the login stored sealed, `ping` and `help`; then behind the
/// cookie-consent dialog EU visitors get; then with a two-factor code asked
/// in chat and redacted.
async fn browser_login_with_and_without_two_factor_and_behind_the_consent_dialog(backend: Backend) {
    let mut room = LoginRoom::start(backend, "login.full", |_| {}).await;
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("@login.full", "Now send the password of @login.full")
        .await;
    room.send_secret(PASSWORD, "Logging in to Instagram as @login.full")
        .await;
    assert_eq!(
        room.next_reply().await,
        "Connected to Instagram as @login.full!"
    );
    room.assert_stored().await;
    room.exchange("ping", "Logged in as @login.full (connected).")
        .await;
    let help = room.exchange("help", "Commands").await;
    for command in [
        "`login`",
        "`logout [username]`",
        "`list-logins`",
        "`cancel`",
    ] {
        assert!(help.contains(command), "{help}");
    }
    room.exchange("logout", "Logged out of @login.full.").await;
    room.assert_nothing_stored().await;

    let mut settings = room.sim.settings();
    settings.consent_dialog = true;
    room.sim.set_settings(settings);
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.full", "Now send the password").await;
    room.send_secret(PASSWORD, "Logging in to Instagram").await;
    assert_eq!(
        room.next_reply().await,
        "Connected to Instagram as @login.full!"
    );
    room.assert_stored().await;
    room.exchange("logout", "Logged out of @login.full.").await;

    room.sim
        .set_two_factor(room.account.pk, Some(TWO_FACTOR_CODE))
        .expect("2FA on");
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.full", "Now send the password").await;
    room.send_secret(PASSWORD, "Logging in to Instagram").await;
    let question = room.next_reply().await;
    assert!(
        question.starts_with("Instagram asks for your two-factor code.")
            && question.contains("Send the 6-digit code here"),
        "{question:?}"
    );
    room.secrets
        .push(("the 2FA code".to_owned(), TWO_FACTOR_CODE.to_owned()));
    room.send_secret(TWO_FACTOR_CODE, "Thanks, sending your answer to Instagram.")
        .await;
    assert_eq!(
        room.next_reply().await,
        "Connected to Instagram as @login.full!"
    );
    room.assert_stored().await;
    room.exchange("ping", "Logged in as @login.full (connected).")
        .await;
    room.assert_never_shown().await;
}

/// A wrong password and a challenge are explained and store nothing; where
/// the bot lacks the power to redact (a direct chat made by a client that
/// gives the invitee none), it asks the user to delete the password herself.
#[tokio::test]
async fn failed_browser_logins_are_explained_and_store_nothing() {
    let mut room = LoginRoom::start(Backend::Sqlite, "login.failing", |_| {}).await;
    let bot = room.bot.clone();
    let powerless = json!({"preset": "private_chat", "is_direct": true, "invite": [bot]});
    room.room = open_management_room(&mut room.alice, &bot, powerless).await;

    let wrong = "not the password at all";
    room.secrets
        .push(("the wrong password".to_owned(), wrong.to_owned()));
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.failing", "Now send the password")
        .await;
    let wrong_event = room.say(wrong).await;
    let reply = room.next_reply().await;
    assert!(
        reply.starts_with("Logging in to Instagram as @login.failing")
            && reply.ends_with("I could not redact your message: please delete it yourself."),
        "{reply:?}"
    );
    let kept = room
        .alice
        .event(&room.room, &wrong_event)
        .await
        .expect("the password event");
    assert_eq!(
        kept["content"]["body"], wrong,
        "Synapse refused the redaction"
    );
    assert_eq!(
        room.next_reply().await,
        "Login failed: Instagram did not accept that username and password."
    );
    room.assert_nothing_stored().await;
    // alice deletes it herself, as she was asked.
    room.alice
        .redact(&room.room, &wrong_event)
        .await
        .expect("alice redacts her password");
    // The flow is over: the next message is a command again.
    room.exchange("ping", "You are not logged in to Instagram.")
        .await;

    room.room = open_management_room(&mut room.alice, &bot, trusted_direct_chat(&bot)).await;
    room.sim
        .flag_challenge(room.account.pk)
        .expect("challenge on");
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.failing", "Now send the password")
        .await;
    room.send_secret(PASSWORD, "Logging in to Instagram").await;
    let failed = room.next_reply().await;
    assert!(
        failed.starts_with("Login failed: Instagram wants to confirm this login"),
        "{failed:?}"
    );
    room.assert_nothing_stored().await;
    room.assert_never_shown().await;
}

/// `cancel` at every step: before a login, while the bot waits for the
/// username, while the browser runs, while the login waits for the 2FA
/// code. A cancelled login says nothing more and stores nothing.
#[tokio::test]
async fn cancel_stops_the_login_at_every_step() {
    let mut room = LoginRoom::start(Backend::Sqlite, "login.cancel", |_| {}).await;
    room.exchange("cancel", "You have no login in progress")
        .await;
    room.sim
        .set_two_factor(room.account.pk, Some(TWO_FACTOR_CODE))
        .expect("2FA on");
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("cancel", "Login cancelled.").await;

    // While the browser runs its steps (it would ask for the code next).
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.cancel", "Now send the password").await;
    room.send_secret(PASSWORD, "Logging in to Instagram").await;
    room.exchange("cancel", "Login cancelled.").await;
    room.assert_nothing_stored().await;

    // While the login waits for the code.
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.cancel", "Now send the password").await;
    room.send_secret(PASSWORD, "Logging in to Instagram").await;
    let question = room.next_reply().await;
    assert!(question.contains("two-factor code"), "{question:?}");
    room.exchange("cancel", "Login cancelled.").await;
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("cancel", "Login cancelled.").await;
    room.assert_nothing_stored().await;

    // The cancelled browser logins said nothing after their cancel: one
    // question in all, no success or failure.
    let said: Vec<String> = room
        .alice
        .messages_from(&room.room, &room.bot)
        .await
        .expect("room history")
        .iter()
        .map(|event| event.body().to_owned())
        .collect();
    let questions = said
        .iter()
        .filter(|s| s.contains("two-factor code"))
        .count();
    assert_eq!(questions, 1, "{said:#?}");
    assert!(
        !said
            .iter()
            .any(|s| s.starts_with("Connected") || s.starts_with("Login failed")),
        "{said:#?}"
    );
    room.assert_never_shown().await;
}

/// The questions time out (`login.question_timeout_ms`, short here) with a
/// notice: the username never sent, then the 2FA code (the browser is
/// stopped). A code sent late is redacted, not taken for a command.
#[tokio::test]
async fn unanswered_login_questions_time_out_with_a_notice() {
    let mut room = LoginRoom::start(Backend::Sqlite, "login.timeout", |e2e| {
        e2e.config
            .set(&["login", "question_timeout_ms"], 3000.into())
            .expect("a short question timeout");
    })
    .await;
    room.exchange("login", "Send your Instagram username").await;
    assert_eq!(room.next_reply().await, TIMED_OUT);
    room.exchange("cancel", "You have no login in progress")
        .await;

    room.sim
        .set_two_factor(room.account.pk, Some(TWO_FACTOR_CODE))
        .expect("2FA on");
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.timeout", "Now send the password")
        .await;
    room.send_secret(PASSWORD, "Logging in to Instagram").await;
    let question = room.next_reply().await;
    assert!(question.contains("two-factor code"), "{question:?}");
    assert_eq!(room.next_reply().await, TIMED_OUT);

    room.secrets
        .push(("the late 2FA code".to_owned(), TWO_FACTOR_CODE.to_owned()));
    let reply = room
        .send_secret(TWO_FACTOR_CODE, "Your login had timed out")
        .await;
    assert!(reply.contains("Send `login` to start again."), "{reply:?}");
    room.exchange("oops", "Unknown command").await;
    room.assert_nothing_stored().await;
    room.exchange("login", "Send your Instagram username").await;
    room.assert_never_shown().await;
}

/// A restart of the bridge (SIGTERM, started again) during a login is told
/// to the user; when the login waited for her password, her next message is
/// redacted, and only that one. A cancelled login is not reported. After a
/// restart without the browser runner installed, `login` says so at once.
#[tokio::test]
async fn a_login_interrupted_by_a_restart_is_told_and_the_password_redacted() {
    let mut room = LoginRoom::start(Backend::Sqlite, "login.restart", |_| {}).await;
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.restart", "Now send the password of @login.restart")
        .await;
    restart(&mut room.e2e).await;
    assert_eq!(room.next_reply().await, INTERRUPTED);
    let reply = room
        .send_secret(
            PASSWORD,
            "Your login was interrupted by a restart of the bridge",
        )
        .await;
    assert!(reply.contains("Send `login` to start again."), "{reply:?}");
    let after = room.say("only the first message is redacted").await;
    assert!(room.next_reply().await.starts_with("Unknown command"));
    assert_not_redacted(&room, &after).await;

    // Interrupted at the password again: a command next runs as usual.
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("login.restart", "Now send the password")
        .await;
    restart(&mut room.e2e).await;
    assert_eq!(room.next_reply().await, INTERRUPTED);
    room.exchange("ping", "You are not logged in to Instagram.")
        .await;
    let after = room.say("not redacted either").await;
    assert!(room.next_reply().await.starts_with("Unknown command"));
    assert_not_redacted(&room, &after).await;

    // Interrupted at the username: told, nothing redacted.
    room.exchange("login", "Send your Instagram username").await;
    restart(&mut room.e2e).await;
    assert_eq!(room.next_reply().await, INTERRUPTED);
    let username = room.say("someone").await;
    assert!(room.next_reply().await.starts_with("Unknown command"));
    assert_not_redacted(&room, &username).await;

    // A cancelled login is not reported after a restart.
    room.exchange("login", "Send your Instagram username").await;
    room.exchange("cancel", "Login cancelled.").await;
    let store = room.e2e.store().await;
    let deadline = Instant::now() + WAIT;
    while !store
        .kv_with_prefix("login-in-progress:")
        .await
        .expect("reading the markers")
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the cancelled login's marker stays"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    room.e2e.stop_bridge();
    room.e2e
        .config
        .set(&["login", "runner_dir"], "/nonexistent/runner".into())
        .expect("removing the runner");
    room.e2e.start_bridge().await;
    // The first answer after the restart is this one, not a notice.
    let reply = room
        .exchange("login", "Logging in is not available on this bridge")
        .await;
    assert!(
        reply.contains("/nonexistent/runner/playwright-runner.ts is missing")
            && reply.contains("login.runner_dir"),
        "{reply:?}"
    );
    room.exchange("cancel", "You have no login in progress")
        .await;
    let interrupted = room
        .alice
        .messages_from(&room.room, &room.bot)
        .await
        .expect("room history")
        .iter()
        .filter(|event| event.body() == INTERRUPTED)
        .count();
    assert_eq!(interrupted, 3);
    room.assert_never_shown().await;
}

/// Stops the bridge gracefully and starts it again on the same config and database.
async fn restart(e2e: &mut E2e) {
    e2e.stop_bridge();
    e2e.start_bridge().await;
}

async fn assert_not_redacted(room: &LoginRoom, event_id: &str) {
    let event = room
        .alice
        .event(&room.room, event_id)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(event["content"]["body"].is_string(), "redacted: {event}");
}

/// A Cookie header's `name=value; ...` of `cookies`.
fn cookie_header(cookies: &BTreeMap<String, String>) -> String {
    cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every form of `login-cookies` a browser gives, of one session.
fn cookie_pastes(cookies: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
    let header = cookie_header(cookies);
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

/// `login-cookies` with every format a browser gives (each a fresh
/// session), each redacted and stored; every broken paste explained,
/// redacted and not stored; a paste in a shared room refused and redacted.
#[tokio::test]
async fn login_cookies_reads_every_format_and_explains_every_broken_paste() {
    let mut room = LoginRoom::start(Backend::Sqlite, "login.cookies", |_| {}).await;
    let pk = room.account.pk;
    let formats = cookie_pastes(&room.account.cookies).len();
    for index in 0..formats {
        let cookies = room.sim.new_session(pk).expect("a new session");
        let (format, paste) = cookie_pastes(&cookies).swap_remove(index);
        let reply = room
            .send_secret(
                &format!("login-cookies {paste}"),
                "Connected to Instagram as @login.cookies!",
            )
            .await;
        assert!(!reply.contains("could not"), "{format}: {reply}");
        let stored = room.assert_stored().await;
        assert_eq!(stored, cookies, "{format}");
        room.exchange("ping", "Logged in as @login.cookies (connected).")
            .await;
        room.exchange("logout", "Logged out of @login.cookies.")
            .await;
    }
    let formats_reply = room.exchange("login-cookies", "Cookie header").await;
    assert!(formats_reply.contains("curl '"), "{formats_reply}");
    let help = room.exchange("help", "`login-cookies <cookies>`").await;
    assert!(help.contains("`login`"), "{help}");

    let mut cookies = room.sim.new_session(pk).expect("a new session");
    let session = cookies.remove("sessionid").expect("a session cookie");
    let header_without_session = cookie_header(&cookies);
    let expired = room.sim.new_session(pk).expect("a new session");
    room.sim.expire_session(pk).expect("the session expires");
    let expired_header = cookie_header(&expired);
    room.secrets
        .push(("the cookie sessionid".to_owned(), session.clone()));
    room.keep_secret(&cookies);
    room.keep_secret(&expired);
    let other_site = format!(
        r#"[{{"domain": ".facebook.com", "name": "xs", "value": "{session}"}},
            {{"domain": ".facebook.com", "name": "c_user", "value": "100"}}]"#
    );
    let cases = [
        (
            header_without_session.clone(),
            "The cookie sessionid is missing.",
        ),
        (
            other_site,
            "Those cookies are of facebook.com, not of instagram.com",
        ),
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
        let reply = room
            .send_secret(&format!("login-cookies {paste}"), expected)
            .await;
        if expected.starts_with("I could not read") {
            assert!(
                reply.contains("a request to instagram.com copied as cURL"),
                "{reply:?}"
            );
        }
        room.assert_nothing_stored().await;
    }

    // In a room shared with bob (where the bot may redact), the paste is
    // redacted and refused.
    let bob = room.e2e.user("bob").await;
    let bot = room.bot.clone();
    // The creator has all power (room version 12); the bot may redact.
    let mut powers = serde_json::Map::new();
    powers.insert(bot.clone(), json!(50));
    let group = room
        .alice
        .create_room_with(
            json!({
                "preset": "private_chat", "name": "group", "invite": [bob.user_id, bot],
                "power_level_content_override": {"users": powers},
            }),
            "creating a group with bob and the bot",
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    bob.join(&group).await.expect("bob joins");
    room.alice
        .wait_for_join(&group, &bot)
        .await
        .expect("the bot joins the group");
    room.alice
        .wait_for_message(&group, &bot)
        .await
        .expect("the bot says hello in the group");
    let paste = format!("!ig login-cookies Cookie: sessionid={session}; {header_without_session}");
    let paste_event = room
        .alice
        .send_text(&group, &paste)
        .await
        .expect("pasting in the group");
    let refusal = room
        .alice
        .wait_for_message(&group, &bot)
        .await
        .expect("the bot refuses")
        .body()
        .to_owned();
    assert!(
        refusal.starts_with("Cookies are as secret as your password"),
        "{refusal:?}"
    );
    assert_redacted_in(&room.alice, &group, &paste_event).await;
    room.assert_nothing_stored().await;
    room.assert_never_shown().await;
}

/// A second Instagram account is a second login; `list-logins` shows both,
/// commands that act on one login ask which, and `logout <username>` ends
/// the one named.
#[tokio::test]
async fn a_second_account_is_a_second_login_and_logout_names_one() {
    let mut room = LoginRoom::start(Backend::Sqlite, "login.first", |_| {}).await;
    let first = room.sim.new_session(room.account.pk).expect("a session");
    room.send_secret(
        &format!("login-cookies {}", cookie_header(&first)),
        "Connected to Instagram as @login.first!",
    )
    .await;
    let second = room
        .sim
        .create_account("login.second", "Second Alice")
        .expect("a second account");
    let cookies = room.sim.new_session(second.pk).expect("a session");
    room.keep_secret(&first);
    room.keep_secret(&cookies);
    room.send_secret(
        &format!("login-cookies {}", cookie_header(&cookies)),
        "Connected to Instagram as @login.second!",
    )
    .await;
    let listed = room.exchange("list-logins", "Your Instagram logins:").await;
    assert!(
        listed.contains("1. Logged in as @login.first (connected).")
            && listed.contains("2. Logged in as @login.second (connected)."),
        "{listed}"
    );
    let ping = room.exchange("ping", "The bridge is running").await;
    assert!(
        ping.contains("@login.first") && ping.contains("@login.second"),
        "{ping}"
    );

    // Logging in again to the first account is the same login, and its new
    // session shows Instagram the login's one device from its first request.
    let device_before = first_login_device(&room).await;
    let again = room.sim.new_session(room.account.pk).expect("a session");
    room.keep_secret(&again);
    room.send_secret(
        &format!("login-cookies {}", cookie_header(&again)),
        "Connected to Instagram as @login.first!",
    )
    .await;
    room.exchange("list-logins", "2. Logged in as @login.second (connected).")
        .await;
    assert_eq!(first_login_device(&room).await, device_before);
    let first_pk = Some(room.account.pk);
    let seen: BTreeSet<Option<String>> = room
        .sim
        .request_log()
        .into_iter()
        .filter(|entry| entry.pk == first_pk)
        .map(|entry| {
            assert_ne!(entry.status, 400, "{} {}", entry.method, entry.path);
            entry.device.device_id
        })
        .collect();
    assert_eq!(seen, BTreeSet::from([Some(device_before.uuid)]));
    room.exchange(
        "login",
        "You are logged in as @login.first, @login.second. Logging in to another account \
         adds a login",
    )
    .await;
    room.exchange("cancel", "Login cancelled.").await;
    room.exchange(
        "logout",
        "You have several Instagram logins (@login.first, @login.second): say which one",
    )
    .await;
    room.exchange("list", "You have several Instagram logins")
        .await;
    room.exchange(
        "logout nobody",
        "You have no Instagram login @nobody; yours: @login.first, @login.second.",
    )
    .await;
    room.exchange("logout @login.second", "Logged out of @login.second.")
        .await;
    let left = room.login().await.expect("one login left");
    assert_eq!(left.username.as_deref(), Some("login.first"));
    room.exchange("logout", "Logged out of @login.first.").await;
    room.assert_nothing_stored().await;
    room.exchange("logout", "You are not logged in to Instagram.")
        .await;
    room.assert_never_shown().await;
}

/// The device identity stored with alice's login to her first account.
async fn first_login_device(room: &LoginRoom) -> DeviceIdentity {
    let login = room
        .e2e
        .store()
        .await
        .login_of_account(&room.alice.user_id, &room.account.pk.to_string())
        .await
        .expect("reading the login")
        .expect("the first login is stored");
    room.e2e
        .logins()
        .await
        .credentials(&login.id)
        .await
        .expect("reading its credentials")
        .device()
}
