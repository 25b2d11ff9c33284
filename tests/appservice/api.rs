//! The appservice API in process: the bridge's axum router on 127.0.0.1:0
//! with a SQLite store in a temporary directory, talking to a tiny fake
//! homeserver that records every request the bridge makes.

pub(crate) mod fake_homeserver;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_homeserver::FakeHomeserver;
use matrix_instagram::bridge::instagram::load_connector;
use matrix_instagram::bridge::run::{build_appservice, run_until, RunError, TRANSACTION_RETENTION};
use matrix_instagram::config::Config;
use matrix_instagram::matrix::client::{HomeserverClient, RetryPolicy};
use matrix_instagram::store::Store;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const DOMAIN: &str = "test.local";
pub(crate) const HS_TOKEN: &str = "hs_token_for_tests_0123456789";
pub(crate) const AS_TOKEN: &str = "as_token_for_tests_9876543210";
pub(crate) const BOT: &str = "@instagrambot:test.local";
pub(crate) const ALICE: &str = "@alice:test.local";
const MALLORY: &str = "@mallory:elsewhere.example";
const MAX_BODY: usize = 64 * 1024;
/// Base64 of 32 zero bytes: a valid (and obviously test-only) credential key.
pub(crate) const TEST_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The repository's Instagram connector spec, as an absolute path.
fn real_spec_path() -> String {
    format!("{}/connectors/instagram.yaml", env!("CARGO_MANIFEST_DIR"))
}

/// The text of a bridge configuration for these tests; `connector` is
/// relative to the config file's directory unless absolute.
fn config_yaml(homeserver_url: &str, database_url: &str, listen: &str, connector: &str) -> String {
    format!(
        r#"
homeserver:
  url: "{homeserver_url}"
  domain: "{DOMAIN}"
appservice:
  id: instagram
  listen: "{listen}"
  address: "http://{listen}"
  as_token: "{AS_TOKEN}"
  hs_token: "{HS_TOKEN}"
  max_body_bytes: {MAX_BODY}
bot:
  localpart: instagrambot
  displayname: Instagram bridge bot
  command_prefix: "!ig"
puppets:
  localpart_template: "instagram_{{id}}"
  displayname_template: "{{name}} (Instagram)"
database:
  url: "{database_url}"
permissions:
  "{ALICE}": user
instagram:
  connector: "{connector}"
encryption:
  key: "{TEST_KEY}"
logging:
  level: info
"#
    )
}

pub(crate) fn config(homeserver_url: &str, database_url: &str) -> Config {
    serde_norway::from_str(&config_yaml(
        homeserver_url,
        database_url,
        "127.0.0.1:0",
        &real_spec_path(),
    ))
    .expect("test configuration")
}

/// A bridge serving the appservice API on a loopback port.
struct RunningBridge {
    url: String,
    task: JoinHandle<()>,
}

impl Drop for RunningBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_bridge(homeserver_url: &str, database_url: &str) -> RunningBridge {
    let config = Arc::new(config(homeserver_url, database_url));
    let store = Store::connect(database_url).await.expect("store");
    let client = HomeserverClient::new(homeserver_url, AS_TOKEN)
        .expect("HTTP client")
        .with_retry_policy(RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        });
    // The connector path is absolute, so the config file's directory does not matter.
    let connector = load_connector(&config, Path::new("config.yaml")).expect("the real spec loads");
    let (_bridge, router) = build_appservice(config, store, client, connector).expect("appservice");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    RunningBridge { url, task }
}

/// A fake homeserver, a database file and a bridge over both.
struct Setup {
    hs: FakeHomeserver,
    hs_url: String,
    database_url: String,
    bridge: RunningBridge,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display());
    let hs = FakeHomeserver::default();
    let hs_url = hs.start().await;
    let bridge = start_bridge(&hs_url, &database_url).await;
    Setup {
        hs,
        hs_url,
        database_url,
        bridge,
        _dir: dir,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Sends a request; returns the status and the JSON body (null if none).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Setup {
    /// A request to the bridge's appservice API, without credentials.
    fn anonymous(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        http().request(method, format!("{}{path}", self.bridge.url))
    }

    /// A request to the bridge's appservice API with the hs_token.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, path).bearer_auth(HS_TOKEN)
    }

    /// Pushes a transaction as the homeserver does.
    async fn push(&self, txn_id: &str, events: Vec<Value>) -> (u16, Value) {
        let path = format!("/_matrix/app/v1/transactions/{txn_id}");
        answer(
            self.request(Method::PUT, &path)
                .json(&json!({ "events": events })),
        )
        .await
    }

    /// Pings the bridge as the homeserver does.
    async fn ping(&self) -> (u16, Value) {
        let ping = self.request(Method::POST, "/_matrix/app/v1/ping");
        answer(ping.json(&json!({ "transaction_id": "ping-1" }))).await
    }

    /// The management room of `user`, as stored.
    async fn management_room(&self, user: &str) -> Option<String> {
        let store = Store::connect(&self.database_url).await.unwrap();
        store.management_room(user).await.unwrap()
    }
}

pub(crate) fn invite(event_id: &str, room_id: &str, sender: &str, is_direct: bool) -> Value {
    json!({
        "type": "m.room.member",
        "state_key": BOT,
        "sender": sender,
        "room_id": room_id,
        "event_id": event_id,
        "origin_server_ts": 1_700_000_000_000u64,
        "content": { "membership": "invite", "is_direct": is_direct },
    })
}

pub(crate) fn text_message(event_id: &str, room_id: &str, sender: &str, body: &str) -> Value {
    json!({
        "type": "m.room.message",
        "sender": sender,
        "room_id": room_id,
        "event_id": event_id,
        "origin_server_ts": 1_700_000_000_000u64,
        "content": { "msgtype": "m.text", "body": body },
    })
}

#[tokio::test]
async fn missing_token_is_unauthorized_and_wrong_token_forbidden() {
    let setup = setup().await;
    let path = "/_matrix/app/v1/transactions/t1";
    let empty = json!({"events": []});

    let (status, body) = answer(setup.anonymous(Method::PUT, path).json(&empty)).await;
    assert_eq!((status, &body["errcode"]), (401, &json!("M_UNAUTHORIZED")));

    let wrong = setup
        .anonymous(Method::PUT, path)
        .bearer_auth("not_the_hs_token")
        .json(&empty);
    let (status, body) = answer(wrong).await;
    assert_eq!((status, &body["errcode"]), (403, &json!("M_FORBIDDEN")));

    let wrong_query = format!("/_matrix/app/v1/users/@instagram_1:{DOMAIN}?access_token=nope");
    let (status, _) = answer(setup.anonymous(Method::GET, &wrong_query)).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn legacy_query_token_and_unprefixed_paths_work() {
    let setup = setup().await;
    let legacy = setup
        .anonymous(
            Method::PUT,
            &format!("/transactions/legacy1?access_token={HS_TOKEN}"),
        )
        .json(&json!({ "events": [invite("$legacy", "!legacy:test.local", ALICE, true)] }));
    assert_eq!(answer(legacy).await, (200, json!({})));
    assert_eq!(
        setup
            .hs
            .matching("POST", "/rooms/!legacy:test.local/join")
            .len(),
        1
    );

    let user = format!("/users/@instagram_42:{DOMAIN}?access_token={HS_TOKEN}");
    assert_eq!(answer(setup.anonymous(Method::GET, &user)).await.0, 200);

    let alias = format!("/rooms/%23nothing:{DOMAIN}");
    let (status, body) = answer(setup.request(Method::GET, &alias)).await;
    assert_eq!((status, &body["errcode"]), (404, &json!("M_NOT_FOUND")));
}

#[tokio::test]
async fn replayed_transaction_is_processed_once_even_after_restart() {
    let mut setup = setup().await;
    let events = vec![invite("$inv1", "!dm1:test.local", ALICE, true)];

    assert_eq!(setup.push("txn-1", events.clone()).await.0, 200);
    assert_eq!(setup.push("txn-1", events.clone()).await.0, 200);
    assert_eq!(setup.hs.matching("POST", "/join").len(), 1);

    // A new server over the same database file still knows txn-1.
    setup.bridge = start_bridge(&setup.hs_url, &setup.database_url).await;
    let (status, body) = setup.push("txn-1", events).await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(setup.hs.matching("POST", "/join").len(), 1);

    // A new transaction id is processed.
    let second = vec![invite("$inv2", "!dm2:test.local", ALICE, true)];
    assert_eq!(setup.push("txn-2", second).await.0, 200);
    assert_eq!(setup.hs.matching("POST", "/join").len(), 2);
}

#[tokio::test]
async fn malformed_event_is_skipped_and_the_good_one_processed() {
    let setup = setup().await;
    let malformed = json!({
        "type": "m.room.member",
        "sender": "not a user id",
        "room_id": "!x:test.local",
        "content": { "membership": 42 },
    });
    let good = invite("$good", "!good:test.local", ALICE, true);
    let (status, body) = setup.push("mixed", vec![malformed, good]).await;
    assert_eq!((status, body), (200, json!({})));
    let joins = setup.hs.matching("POST", "/join");
    assert_eq!(joins.len(), 1);
    assert!(joins[0].path.contains("!good:test.local"));
}

#[tokio::test]
async fn oversized_body_is_refused_and_the_server_keeps_answering() {
    let setup = setup().await;
    let padding = "x".repeat(MAX_BODY * 2);
    let oversized = setup
        .request(Method::PUT, "/_matrix/app/v1/transactions/big")
        .json(&json!({ "events": [], "padding": padding }));
    let (status, body) = answer(oversized).await;
    assert_eq!((status, &body["errcode"]), (413, &json!("M_TOO_LARGE")));
    assert_eq!(setup.ping().await, (200, json!({})));
}

#[tokio::test]
async fn user_query_answers_for_the_namespace_only() {
    let setup = setup().await;
    let query =
        |user: String| answer(setup.request(Method::GET, &format!("/_matrix/app/v1/users/{user}")));
    assert_eq!(
        query(format!("@instagram_123:{DOMAIN}")).await,
        (200, json!({}))
    );
    assert_eq!(query(BOT.to_owned()).await, (200, json!({})));
    let (status, body) = query(ALICE.to_owned()).await;
    assert_eq!(status, 404);
    assert_eq!(body["errcode"], "M_NOT_FOUND");
    let (status, _) = query("@instagram_123:other.example".to_owned()).await;
    assert_eq!(status, 404);
    // Ids in the puppet namespace that no Instagram user can have are refused.
    for invented in ["admin", "12a", "", "1 2"] {
        let (status, body) = query(format!("@instagram_{invented}:{DOMAIN}")).await;
        assert_eq!(status, 404, "{invented:?}");
        assert_eq!(body["errcode"], "M_NOT_FOUND", "{invented:?}");
    }
    // The puppet was registered before the homeserver got its answer.
    let registered: Vec<_> = setup
        .hs
        .matching("POST", "/register")
        .into_iter()
        .map(|r| r.body["username"].clone())
        .collect();
    assert_eq!(
        registered,
        vec![json!("instagram_123"), json!("instagrambot")]
    );
}

#[tokio::test]
async fn ping_answers_empty_object() {
    let setup = setup().await;
    assert_eq!(setup.ping().await, (200, json!({})));
}

#[tokio::test]
async fn direct_invite_makes_a_management_room_with_greeting() {
    let setup = setup().await;
    let room = "!mgmt:test.local";
    setup
        .push("t-inv", vec![invite("$i", room, ALICE, true)])
        .await;

    assert_eq!(setup.management_room(ALICE).await.as_deref(), Some(room));

    let sent = setup.hs.sent_messages();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].path.contains(room));
    assert!(sent[0]
        .query
        .contains("user_id=%40instagrambot%3Atest.local"));
    assert_eq!(sent[0].body["msgtype"], "m.notice");
    assert!(sent[0].body["body"].as_str().unwrap().contains("`help`"));
    assert!(sent[0].body["formatted_body"]
        .as_str()
        .unwrap()
        .contains("<code>help</code>"));
}

#[tokio::test]
async fn invite_from_a_stranger_is_refused_once() {
    let setup = setup().await;
    let room = "!mallory-room:test.local";
    setup
        .push("t-mal", vec![invite("$m", room, MALLORY, true)])
        .await;

    let sent = setup.hs.sent_messages();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body["body"]
        .as_str()
        .unwrap()
        .starts_with("You are not allowed to use this bridge"));
    assert_eq!(
        setup
            .hs
            .matching("POST", &format!("/rooms/{room}/leave"))
            .len(),
        1
    );
    assert_eq!(setup.management_room(MALLORY).await, None);

    // Their commands get no answer.
    setup
        .push(
            "t-mal2",
            vec![text_message("$mc", room, MALLORY, "!ig help")],
        )
        .await;
    assert_eq!(setup.hs.sent_messages().len(), 1);
}

#[tokio::test]
async fn commands_in_management_room_and_with_prefix_elsewhere() {
    let setup = setup().await;
    let dm = "!dm:test.local";
    let group = "!group:test.local";
    setup.hs.add_member(group, "@carol:test.local");
    setup
        .push(
            "t1",
            vec![
                invite("$i1", dm, ALICE, true),
                invite("$i2", group, ALICE, false),
            ],
        )
        .await;
    assert_eq!(setup.management_room(ALICE).await.as_deref(), Some(dm));
    assert_eq!(setup.hs.sent_messages().len(), 2);

    setup
        .push(
            "t2",
            vec![
                text_message("$c1", dm, ALICE, "help"),
                text_message("$c2", group, ALICE, "help"),
                text_message("$c3", group, ALICE, "!ig ping"),
                text_message("$c4", dm, ALICE, "frobnicate now"),
                text_message("$c5", dm, ALICE, "ping extra"),
                text_message("$c6", dm, BOT, "help"),
                text_message("$c7", dm, ALICE, "version"),
            ],
        )
        .await;
    let replies: Vec<(String, String)> = setup.hs.sent_messages()[2..]
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.body["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(replies.len(), 5, "{replies:#?}");

    let (room, help) = &replies[0];
    assert!(room.contains(dm));
    for command in ["help", "ping", "version"] {
        assert!(help.contains(&format!("`{command}`")), "{help}");
    }
    let (room, ping) = &replies[1];
    assert!(room.contains(group));
    assert!(
        ping.contains("You are not logged in to Instagram."),
        "{ping}"
    );
    assert_eq!(
        replies[2].1,
        "Unknown command. Send `help` for the list of commands."
    );
    assert!(
        replies[3].1.starts_with("Usage: `ping`"),
        "{}",
        replies[3].1
    );
    assert!(replies[4].1.contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn a_direct_chat_with_someone_else_invited_is_not_a_management_room() {
    let setup = setup().await;
    let (real, shared) = ("!real:test.local", "!shared:test.local");
    setup.hs.add_invitee(shared, "@bob:test.local");
    setup
        .push(
            "t-in",
            vec![
                invite("$real", real, ALICE, true),
                invite("$shared", shared, ALICE, true),
            ],
        )
        .await;
    assert_eq!(setup.management_room(ALICE).await.as_deref(), Some(real));
    let sent = setup.hs.sent_messages();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let hello = sent[1].body["body"].as_str().unwrap();
    assert!(sent[1].path.contains(shared));
    assert!(
        hello.contains("Other people are in this room or invited to it")
            && hello.contains("cannot be your management room")
            && hello.contains("`!ig help`"),
        "{hello}"
    );

    setup
        .push(
            "t-talk",
            vec![
                text_message("$chat", shared, ALICE, "frobnicate"),
                text_message("$login", shared, ALICE, "login"),
                text_message("$cancel", real, ALICE, "cancel"),
            ],
        )
        .await;
    let replies = &setup.hs.sent_messages()[2..];
    assert_eq!(replies.len(), 1, "only the real room answers: {replies:#?}");
    assert!(replies[0].path.contains(real));
    assert!(
        replies[0].body["body"]
            .as_str()
            .unwrap()
            .starts_with("You have no login in progress"),
        "`login` started nothing: {replies:#?}"
    );
    assert!(setup.hs.matching("POST", "/leave").is_empty());
}

#[tokio::test]
async fn someone_invited_into_the_management_room_ends_it_and_its_login() {
    let setup = setup().await;
    let room = "!dm:test.local";
    let bob = "@bob:test.local";
    setup
        .push("t-in", vec![invite("$in", room, ALICE, true)])
        .await;
    setup
        .push(
            "t-login",
            vec![
                text_message("$login", room, ALICE, "login"),
                text_message("$user", room, ALICE, "alice.ig"),
            ],
        )
        .await;
    let asked = setup.hs.sent_messages();
    assert!(
        asked.last().unwrap().body["body"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{asked:#?}"
    );

    let bob_invited = json!({
        "type": "m.room.member",
        "state_key": bob,
        "sender": ALICE,
        "room_id": room,
        "event_id": "$bob-invited",
        "origin_server_ts": 1_700_000_000_001u64,
        "content": { "membership": "invite" },
    });
    assert_eq!(setup.push("t-bob", vec![bob_invited]).await.0, 200);
    assert_eq!(setup.management_room(ALICE).await, None);
    let sent = setup.hs.sent_messages();
    let notice = sent.last().unwrap().body["body"].as_str().unwrap();
    assert!(
        notice.starts_with(&format!("{bob} was invited to this room"))
            && notice.contains("no longer your management room")
            && notice.contains("Do not send passwords")
            && notice.contains("I cancelled the login you started here."),
        "{notice}"
    );

    let before = setup.hs.sent_messages().len();
    setup
        .push(
            "t-after",
            vec![
                text_message("$pw", room, ALICE, "not a password any more"),
                text_message("$cancel", room, ALICE, "!ig cancel"),
            ],
        )
        .await;
    let replies = &setup.hs.sent_messages()[before..];
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert!(
        replies[0].body["body"]
            .as_str()
            .unwrap()
            .starts_with("You have no login in progress"),
        "{replies:#?}"
    );
    assert!(
        setup.hs.redacted_events().is_empty(),
        "nothing was taken for a password"
    );
    assert!(
        setup
            .hs
            .matching("POST", &format!("/rooms/{room}/leave"))
            .is_empty(),
        "the bot stays for prefixed commands"
    );
}

#[tokio::test]
async fn a_management_room_found_shared_before_a_command_ends_there() {
    let setup = setup().await;
    let room = "!dm:test.local";
    setup
        .push("t-in", vec![invite("$in", room, ALICE, true)])
        .await;
    // Bob's invite never reached the bridge (or the room was stored by an
    // older version): the state read before the command shows him.
    setup.hs.add_invitee(room, "@bob:test.local");
    setup
        .push(
            "t-cmd",
            vec![
                text_message("$login", room, ALICE, "login"),
                text_message("$cancel", room, ALICE, "!ig cancel"),
            ],
        )
        .await;
    assert_eq!(setup.management_room(ALICE).await, None);
    let replies: Vec<String> = setup.hs.sent_messages()[1..]
        .iter()
        .map(|sent| sent.body["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(
        replies[0].starts_with(
            "Other people are in this room or invited to it, so it is no longer your management room"
        ),
        "{replies:#?}"
    );
    assert!(
        replies[1].starts_with("You have no login in progress"),
        "`login` did not start: {replies:#?}"
    );
}

fn fast_client(homeserver_url: &str) -> HomeserverClient {
    HomeserverClient::new(homeserver_url, AS_TOKEN)
        .expect("HTTP client")
        .with_retry_policy(RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(5),
        })
}

#[tokio::test]
async fn client_retries_server_errors_then_succeeds() {
    let hs = FakeHomeserver::default();
    let url = hs.start().await;
    let server_error = json!({ "errcode": "M_UNKNOWN", "error": "try later" });
    hs.fail_next("/account/whoami", 502, server_error.clone());
    hs.fail_next("/account/whoami", 500, server_error);
    let user = fast_client(&url)
        .whoami(None)
        .await
        .expect("third attempt succeeds");
    assert_eq!(user.as_str(), BOT);
    let attempts = hs.matching("GET", "/account/whoami");
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts[0].authorization.as_deref(),
        Some(format!("Bearer {AS_TOKEN}").as_str())
    );
}

#[tokio::test]
async fn client_waits_for_retry_after_on_429() {
    let hs = FakeHomeserver::default();
    let url = hs.start().await;
    hs.fail_next(
        "/account/whoami",
        429,
        json!({ "errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 300 }),
    );
    let started = Instant::now();
    fast_client(&url)
        .whoami(None)
        .await
        .expect("retried after the limit");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(hs.matching("GET", "/account/whoami").len(), 2);
}

#[tokio::test]
async fn client_errors_name_endpoint_and_errcode_but_not_the_token() {
    let hs = FakeHomeserver::default();
    let url = hs.start().await;
    hs.fail_next(
        "/join",
        403,
        json!({ "errcode": "M_FORBIDDEN", "error": "You are not invited to this room." }),
    );
    let client = fast_client(&url);
    let room = ruma::RoomId::parse("!secret-room:test.local").unwrap();
    let error = client.join(&room, None).await.unwrap_err();
    assert_eq!(error.errcode(), Some("M_FORBIDDEN"));
    let message = error.to_string();
    assert!(message.contains("M_FORBIDDEN"), "{message}");
    assert!(message.contains("/join"), "{message}");
    assert!(!message.contains(AS_TOKEN), "{message}");
    assert!(!format!("{error:?}").contains(AS_TOKEN));
    assert!(!format!("{client:?}").contains(AS_TOKEN));
    // A 403 is not retried.
    assert_eq!(hs.matching("POST", "/join").len(), 1);
}

#[tokio::test]
async fn client_treats_user_in_use_as_registered_and_asserts_identity() {
    let hs = FakeHomeserver::default();
    let url = hs.start().await;
    let client = fast_client(&url);
    client
        .register_user("instagram_77")
        .await
        .expect("M_USER_IN_USE is success");
    let register = &hs.matching("POST", "/register")[0];
    assert_eq!(register.body["type"], "m.login.application_service");
    assert_eq!(register.body["username"], "instagram_77");
    assert_eq!(register.body["inhibit_login"], true);

    hs.fail_next(
        "/register",
        400,
        json!({ "errcode": "M_EXCLUSIVE", "error": "reserved" }),
    );
    let error = client.register_user("someone").await.unwrap_err();
    assert_eq!(error.errcode(), Some("M_EXCLUSIVE"));

    let room = ruma::RoomId::parse("!r:test.local").unwrap();
    let puppet = ruma::UserId::parse("@instagram_77:test.local").unwrap();
    let content = ruma::events::AnyMessageLikeEventContent::RoomMessage(
        ruma::events::room::message::RoomMessageEventContent::text_plain("hi"),
    );
    let txn_id: ruma::OwnedTransactionId = "ig-item-123".into();
    let event_id = client
        .send_message(
            &room,
            &txn_id,
            &content,
            ruma::MilliSecondsSinceUnixEpoch::from_system_time(
                std::time::UNIX_EPOCH + Duration::from_millis(1_600_000_000_000),
            ),
            Some(&puppet),
        )
        .await
        .unwrap();
    assert_eq!(event_id.as_str(), "$sent-ig-item-123");
    let sent = &hs.sent_messages()[0];
    assert!(sent
        .path
        .ends_with("/rooms/!r:test.local/send/m.room.message/ig-item-123"));
    assert!(
        sent.query.contains("user_id=%40instagram_77%3Atest.local"),
        "{}",
        sent.query
    );
    assert!(sent.query.contains("ts=1600000000000"), "{}", sent.query);
    assert_eq!(sent.body["body"], "hi");
}

#[tokio::test]
async fn ephemeral_events_are_accepted() {
    let setup = setup().await;
    let typing = json!({
        "type": "m.typing",
        "room_id": "!r:test.local",
        "content": { "user_ids": [ALICE] },
    });
    for key in ["ephemeral", "de.sorunome.msc2409.ephemeral"] {
        let path = format!("/_matrix/app/v1/transactions/eph-{key}");
        let transaction = json!({ "events": [], key: [typing.clone(), "garbage"] });
        let (status, _) = answer(setup.request(Method::PUT, &path).json(&transaction)).await;
        assert_eq!(status, 200);
    }
}

/// A loopback address nothing listens on (the port was just released).
async fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Writes a configuration file using the real connector spec and returns its path.
fn write_config(dir: &tempfile::TempDir, homeserver_url: &str, listen: &str) -> std::path::PathBuf {
    write_config_with_connector(dir, homeserver_url, listen, &real_spec_path())
}

/// Writes a configuration file naming `connector` and returns its path.
fn write_config_with_connector(
    dir: &tempfile::TempDir,
    homeserver_url: &str,
    listen: &str,
    connector: &str,
) -> std::path::PathBuf {
    let database_url = format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display());
    let path = dir.path().join("config.yaml");
    let text = config_yaml(homeserver_url, &database_url, listen, connector);
    std::fs::write(&path, text).unwrap();
    path
}

/// `run_until` in a background task, stopped on request.
struct BackgroundRun {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<Result<(), RunError>>,
}

impl BackgroundRun {
    fn start(config_path: std::path::PathBuf) -> BackgroundRun {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run_until(&config_path, async {
                let _ = stopped.await;
            })
            .await
        });
        BackgroundRun { stop, task }
    }

    /// Waits until the bridge has asked the homeserver for a ping, which it
    /// does once it serves the appservice API.
    async fn wait_for_ping(&mut self, hs: &FakeHomeserver) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while hs.ping_results().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the bridge never asked for a ping"
            );
            assert!(
                !self.task.is_finished(),
                "the bridge stopped: {:?}",
                (&mut self.task).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the bridge and checks it stopped cleanly.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("graceful shutdown")
            .unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}

/// A fake homeserver that pings back, and a config file for a bridge that
/// uses it.
async fn run_setup(dir: &tempfile::TempDir) -> (FakeHomeserver, std::path::PathBuf) {
    let hs = FakeHomeserver::default();
    let hs_url = hs.start().await;
    let listen = free_address().await;
    hs.set_bridge_url(&format!("http://{listen}"));
    (hs, write_config(dir, &hs_url, &listen))
}

#[tokio::test]
async fn run_starts_pings_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (hs, config_path) = run_setup(&dir).await;
    let mut bridge = BackgroundRun::start(config_path);
    bridge.wait_for_ping(&hs).await;

    assert_eq!(hs.ping_results(), vec![Ok(200)]);
    let ping = &hs.matching("POST", "/_matrix/client/v1/appservice/instagram/ping")[0];
    assert!(ping.body["transaction_id"].is_string());
    assert_eq!(hs.matching("GET", "/account/whoami").len(), 1);
    let register = &hs.matching("POST", "/register")[0];
    assert_eq!(register.body["username"], "instagrambot");
    let displayname = &hs.matching("PUT", &format!("/profile/{BOT}/displayname"))[0];
    assert_eq!(displayname.body["displayname"], "Instagram bridge bot");

    bridge.stop().await;
}

#[tokio::test]
async fn run_prunes_transaction_ids_past_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (hs, config_path) = run_setup(&dir).await;
    let database_url = format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display());
    let store = Store::connect(&database_url).await.unwrap();
    for txn_id in ["ancient", "recent"] {
        store.record_transaction(txn_id).await.unwrap();
    }
    // Processed just over the retention ago.
    let past_retention = chrono::Utc::now() - TRANSACTION_RETENTION - chrono::TimeDelta::minutes(1);
    let mut connection = sqlx::AnyConnection::connect(&database_url).await.unwrap();
    sqlx::query("UPDATE processed_transactions SET processed_at = $1 WHERE txn_id = 'ancient'")
        .bind(past_retention.timestamp_millis())
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    let mut bridge = BackgroundRun::start(config_path);
    bridge.wait_for_ping(&hs).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.transaction_seen("ancient").await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the old transaction id was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.transaction_seen("recent").await.unwrap());
    bridge.stop().await;
}

async fn run_error(config_path: &std::path::Path) -> RunError {
    tokio::time::timeout(
        Duration::from_secs(30),
        run_until(config_path, std::future::pending()),
    )
    .await
    .expect("startup fails promptly")
    .expect_err("startup must fail")
}

#[tokio::test]
async fn run_explains_a_missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let error = run_error(&dir.path().join("nope.yaml")).await;
    assert!(matches!(error, RunError::ConfigMissing { .. }));
    assert!(
        error.to_string().contains("matrix-instagram init"),
        "{error}"
    );
}

#[tokio::test]
async fn run_explains_a_rejected_as_token() {
    let dir = tempfile::tempdir().unwrap();
    let hs = FakeHomeserver::default();
    let hs_url = hs.start().await;
    hs.fail_next(
        "/account/whoami",
        401,
        json!({ "errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token" }),
    );
    let error = run_error(&write_config(&dir, &hs_url, &free_address().await)).await;
    let message = error.to_string();
    assert!(message.contains("rejected as_token"), "{message}");
    assert!(message.contains("app_service_config_files"), "{message}");
    assert!(!message.contains(AS_TOKEN));
}

#[tokio::test]
async fn run_explains_an_unreachable_homeserver() {
    let dir = tempfile::tempdir().unwrap();
    let hs_url = format!("http://{}", free_address().await);
    let error = run_error(&write_config(&dir, &hs_url, &free_address().await)).await;
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach the homeserver at {hs_url}")),
        "{message}"
    );
}

#[tokio::test]
async fn run_explains_a_taken_listen_port() {
    let dir = tempfile::tempdir().unwrap();
    let hs = FakeHomeserver::default();
    let hs_url = hs.start().await;
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let error = run_error(&write_config(&dir, &hs_url, &listen)).await;
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot listen on {listen}")),
        "{error}"
    );
}

/// The real spec with an unclosed template in `send`'s `rest.body.text`.
fn broken_spec() -> String {
    std::fs::read_to_string(real_spec_path()).unwrap().replacen(
        r#"text: "{{params.text}}""#,
        r#"text: "{{params.text""#,
        1,
    )
}

#[tokio::test]
async fn run_loads_a_relative_connector_from_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::copy(real_spec_path(), specs.join("instagram.yaml")).unwrap();
    let hs = FakeHomeserver::default();
    let hs_url = hs.start().await;
    let listen = free_address().await;
    hs.set_bridge_url(&format!("http://{listen}"));
    // The tests run in the crate root, which has no specs/ directory.
    assert!(!Path::new("specs/instagram.yaml").exists());
    let config_path = write_config_with_connector(&dir, &hs_url, &listen, "specs/instagram.yaml");

    let mut bridge = BackgroundRun::start(config_path);
    bridge.wait_for_ping(&hs).await;
    bridge.stop().await;
}

#[tokio::test]
async fn run_explains_a_broken_or_missing_connector_spec() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.yaml"), broken_spec()).unwrap();
    // No homeserver: the spec is loaded before anything is contacted.
    let hs_url = format!("http://{}", free_address().await);
    let listen = free_address().await;

    let config_path = write_config_with_connector(&dir, &hs_url, &listen, "broken.yaml");
    let error = run_error(&config_path).await;
    assert!(matches!(error, RunError::Connector(_)), "{error:?}");
    let spec_file = dir.path().join("broken.yaml").display().to_string();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot load the connector spec of instagram.connector: {spec_file}: action send: \
             rest.body.text: "
        )),
        "{message}"
    );

    let config_path = write_config_with_connector(&dir, &hs_url, &listen, "missing.yaml");
    let message = run_error(&config_path).await.to_string();
    let spec_file = dir.path().join("missing.yaml").display().to_string();
    assert!(
        message.starts_with(&format!(
            "cannot load the connector spec of instagram.connector: {spec_file}: cannot read the \
             file: "
        )),
        "{message}"
    );
}

#[tokio::test]
async fn binary_reports_a_broken_connector_spec_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.yaml"), broken_spec()).unwrap();
    let hs_url = format!("http://{}", free_address().await);
    let config_path =
        write_config_with_connector(&dir, &hs_url, &free_address().await, "broken.yaml");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_matrix-instagram"))
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let spec_file = dir.path().join("broken.yaml").display().to_string();
    assert!(
        stderr.starts_with(&format!(
            "error: cannot load the connector spec of instagram.connector: {spec_file}: action \
             send: rest.body.text: "
        )),
        "{stderr}"
    );
}

#[test]
fn binary_reports_startup_failure_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_matrix-instagram"))
        .arg("--config")
        .arg(dir.path().join("missing.yaml"))
        .arg("run")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: configuration file"), "{stderr}");
    assert!(stderr.contains("matrix-instagram init"), "{stderr}");
}

#[tokio::test]
async fn leaving_the_management_room_forgets_it() {
    let setup = setup().await;
    let room = "!bye:test.local";
    setup
        .push("t-in", vec![invite("$in", room, ALICE, true)])
        .await;
    assert_eq!(setup.management_room(ALICE).await.as_deref(), Some(room));

    let leave = json!({
        "type": "m.room.member",
        "state_key": ALICE,
        "sender": ALICE,
        "room_id": room,
        "event_id": "$leave",
        "origin_server_ts": 1_700_000_000_001u64,
        "content": { "membership": "leave" },
    });
    assert_eq!(setup.push("t-out", vec![leave]).await.0, 200);
    assert_eq!(setup.management_room(ALICE).await, None);
    assert_eq!(
        setup
            .hs
            .matching("POST", &format!("/rooms/{room}/leave"))
            .len(),
        1
    );
}

#[tokio::test]
async fn unreachable_homeserver_makes_the_transaction_retry() {
    let setup = setup().await;
    let room = "!flaky:test.local";
    setup.hs.fail_next(
        "/join",
        502,
        json!({ "errcode": "M_UNKNOWN", "error": "bad gateway" }),
    );
    let events = vec![invite("$f", room, ALICE, true)];
    let (status, body) = setup.push("t-flaky", events.clone()).await;
    assert_eq!(status, 500);
    assert_eq!(body["errcode"], "M_UNKNOWN");

    // The homeserver retries the same transaction: now it is processed.
    assert_eq!(setup.push("t-flaky", events).await.0, 200);
    assert_eq!(setup.management_room(ALICE).await.as_deref(), Some(room));
    assert_eq!(setup.hs.matching("POST", "/join").len(), 2);
}

#[tokio::test]
async fn a_retried_transaction_skips_the_events_already_handled() {
    let setup = setup().await;
    // Carol is not permitted: her invite is answered with one refusal.
    let carol = "@carol:test.local";
    let (first, second) = ("!first:test.local", "!second:test.local");
    // The second event's join fails, so the homeserver must resend the
    // whole transaction; the first event was already handled by then.
    setup.hs.fail_next(
        &format!("{second}/join"),
        502,
        json!({ "errcode": "M_UNKNOWN", "error": "bad gateway" }),
    );
    let events = vec![
        invite("$first", first, ALICE, true),
        invite("$second", second, carol, true),
    ];
    assert_eq!(setup.push("t-partial", events.clone()).await.0, 500);
    assert_eq!(setup.push("t-partial", events).await.0, 200);

    let joins_to = |room: &str| setup.hs.matching("POST", &format!("{room}/join")).len();
    assert_eq!(joins_to(first), 1, "the handled event is not handled again");
    assert_eq!(
        joins_to(second),
        2,
        "the failed event is handled on the retry"
    );
    let messages_in = |room: &str| {
        let in_room = format!("/rooms/{room}/send/");
        setup
            .hs
            .sent_messages()
            .iter()
            .filter(|sent| sent.path.contains(&in_room))
            .count()
    };
    assert_eq!(messages_in(first), 1, "one greeting, not two");
    assert_eq!(setup.management_room(ALICE).await.as_deref(), Some(first));
    assert_eq!(messages_in(second), 1, "one refusal, sent on the retry");
}

#[tokio::test]
async fn unknown_endpoints_and_methods_get_matrix_errors() {
    let setup = setup().await;
    let unknown = setup.request(Method::GET, "/_matrix/app/v1/thirdparty/protocol/x");
    let (status, body) = answer(unknown).await;
    assert_eq!((status, &body["errcode"]), (404, &json!("M_UNRECOGNIZED")));

    let wrong_method = setup.request(Method::GET, "/_matrix/app/v1/transactions/t");
    let (status, body) = answer(wrong_method).await;
    assert_eq!((status, &body["errcode"]), (405, &json!("M_UNRECOGNIZED")));

    let not_json = setup
        .request(Method::PUT, "/_matrix/app/v1/transactions/t")
        .body("{not json");
    let (status, body) = answer(not_json).await;
    assert_eq!((status, &body["errcode"]), (400, &json!("M_NOT_JSON")));
}

#[tokio::test]
async fn encrypted_messages_in_the_management_room_get_an_explanation() {
    let setup = setup().await;
    let room = "!secret:test.local";
    setup
        .push("t-in", vec![invite("$in", room, ALICE, true)])
        .await;
    let encrypted = json!({
        "type": "m.room.encrypted",
        "sender": ALICE,
        "room_id": room,
        "event_id": "$enc",
        "origin_server_ts": 1_700_000_000_002u64,
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "AwgAEn...",
            "device_id": "ALICEDEVICE",
            "sender_key": "c2VuZGVyX2tleQ",
            "session_id": "c2Vzc2lvbl9pZA",
        },
    });
    assert_eq!(setup.push("t-enc", vec![encrypted]).await.0, 200);
    let sent = setup.hs.sent_messages();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[1].body["body"]
        .as_str()
        .unwrap()
        .starts_with("This room is encrypted"));
}

#[tokio::test]
async fn a_second_direct_chat_becomes_the_management_room() {
    let setup = setup().await;
    let (old, new) = ("!first:test.local", "!second:test.local");
    setup
        .push("t-first", vec![invite("$first", old, ALICE, true)])
        .await;
    let (status, _) = setup
        .push("t-second", vec![invite("$second", new, ALICE, true)])
        .await;
    assert_eq!(status, 200);

    assert_eq!(setup.management_room(ALICE).await.as_deref(), Some(new));
    let store = Store::connect(&setup.database_url).await.unwrap();
    assert_eq!(store.management_room_owner(old).await.unwrap(), None);

    // Greeting in the first room, the hand-over notice there, then the greeting in the new one.
    let sent = setup.hs.sent_messages();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert!(sent[1].path.contains(old));
    let handover = sent[1].body["body"].as_str().unwrap();
    assert!(
        handover.contains(&format!("{new} is now your management room")),
        "{handover}"
    );
    assert!(sent[2].path.contains(new));
    assert!(sent[2].body["body"]
        .as_str()
        .unwrap()
        .contains("This room is now your management room"));
    let left = setup.hs.matching("POST", &format!("/rooms/{old}/leave"));
    assert_eq!(left.len(), 1);
    assert!(setup
        .hs
        .matching("POST", &format!("/rooms/{new}/leave"))
        .is_empty());

    // Commands without prefix now work in the new room only.
    setup
        .push(
            "t-cmds",
            vec![
                text_message("$old-help", old, ALICE, "help"),
                text_message("$new-help", new, ALICE, "help"),
            ],
        )
        .await;
    let replies = &setup.hs.sent_messages()[3..];
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert!(replies[0].path.contains(new));
}
