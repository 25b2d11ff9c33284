//! The appservice API in process: the bridge's axum router on 127.0.0.1:0
//! with a SQLite store in a temporary directory, talking to a tiny fake
//! homeserver that records every request the bridge makes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use matrix_instagram::bridge::run::build_appservice;
use matrix_instagram::config::Config;
use matrix_instagram::matrix::client::{HomeserverClient, RetryPolicy};
use matrix_instagram::store::Store;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const DOMAIN: &str = "test.local";
const HS_TOKEN: &str = "hs_token_for_tests_0123456789";
const AS_TOKEN: &str = "as_token_for_tests_9876543210";
const BOT: &str = "@instagrambot:test.local";
const ALICE: &str = "@alice:test.local";
const MALLORY: &str = "@mallory:elsewhere.example";
const MAX_BODY: usize = 64 * 1024;

/// One request the bridge sent to the fake homeserver.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    body: Value,
}

/// A fake homeserver: answers what the bot needs and records everything.
#[derive(Clone, Default)]
struct FakeHomeserver {
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Extra joined members per room id (the bot and the inviter are always joined).
    extra_members: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl FakeHomeserver {
    async fn start(&self) -> String {
        let app = axum::Router::new()
            .fallback(fake_homeserver_endpoint)
            .with_state(self.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests whose path ends with `suffix` (e.g. `/join`).
    fn matching(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }

    /// Messages sent into rooms (`PUT .../send/...`).
    fn sent_messages(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/send/m.room.message/"))
            .collect()
    }

    fn add_member(&self, room_id: &str, user_id: &str) {
        self.extra_members
            .lock()
            .unwrap()
            .entry(room_id.to_owned())
            .or_default()
            .push(user_id.to_owned());
    }
}

async fn fake_homeserver_endpoint(State(hs): State<FakeHomeserver>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = percent_decode(request.uri().path());
    let query = request.uri().query().unwrap_or_default().to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    hs.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query,
        body,
    });

    let segments: Vec<&str> = path.split('/').collect();
    let answer = match (method.as_str(), segments.as_slice()) {
        ("GET", [.., "versions"]) => json!({ "versions": ["v1.1", "v1.5", "v1.11"] }),
        ("GET", [.., "account", "whoami"]) => json!({ "user_id": BOT }),
        ("POST", [.., "register"]) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({ "errcode": "M_USER_IN_USE", "error": "User ID already taken." })),
            )
                .into_response()
        }
        ("POST", [.., "rooms", room_id, "join"]) => json!({ "room_id": room_id }),
        ("GET", [.., "rooms", room_id, "joined_members"]) => {
            let mut joined = serde_json::Map::new();
            joined.insert(BOT.to_owned(), json!({}));
            let inviter = if room_id.contains("mallory") {
                MALLORY
            } else {
                ALICE
            };
            joined.insert(inviter.to_owned(), json!({}));
            for extra in hs
                .extra_members
                .lock()
                .unwrap()
                .get(*room_id)
                .cloned()
                .unwrap_or_default()
            {
                joined.insert(extra, json!({}));
            }
            json!({ "joined": joined })
        }
        ("PUT", [.., "send", _, txn_id]) => json!({ "event_id": format!("$sent-{txn_id}") }),
        _ => json!({}),
    };
    Json(answer).into_response()
}

/// Decodes `%XX` escapes (ruma escapes `!`, `:` and `@` in path segments).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn config(homeserver_url: &str, database_url: &str) -> Config {
    let yaml = format!(
        r#"
homeserver:
  url: "{homeserver_url}"
  domain: "{DOMAIN}"
appservice:
  id: instagram
  listen: "127.0.0.1:0"
  address: "http://127.0.0.1:0"
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
  connector: connectors/instagram.yaml
encryption: {{}}
logging:
  level: info
"#
    );
    serde_norway::from_str(&yaml).expect("test configuration")
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
    let client = HomeserverClient::new(homeserver_url, AS_TOKEN).with_retry_policy(RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    });
    let (_bridge, router) = build_appservice(config, store, client).expect("appservice");
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

fn invite(event_id: &str, room_id: &str, sender: &str, is_direct: bool) -> Value {
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

fn text_message(event_id: &str, room_id: &str, sender: &str, body: &str) -> Value {
    json!({
        "type": "m.room.message",
        "sender": sender,
        "room_id": room_id,
        "event_id": event_id,
        "origin_server_ts": 1_700_000_000_000u64,
        "content": { "msgtype": "m.text", "body": body },
    })
}

async fn push(bridge_url: &str, txn_id: &str, events: Vec<Value>) -> (u16, Value) {
    let response = http()
        .put(format!("{bridge_url}/_matrix/app/v1/transactions/{txn_id}"))
        .bearer_auth(HS_TOKEN)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn missing_token_is_unauthorized_and_wrong_token_forbidden() {
    let setup = setup().await;
    let url = format!("{}/_matrix/app/v1/transactions/t1", setup.bridge.url);

    let missing = http()
        .put(&url)
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["errcode"],
        "M_UNAUTHORIZED"
    );

    let wrong = http()
        .put(&url)
        .bearer_auth("not_the_hs_token")
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["errcode"],
        "M_FORBIDDEN"
    );

    let wrong_query = http()
        .get(format!(
            "{}/_matrix/app/v1/users/@instagram_1:{DOMAIN}?access_token=nope",
            setup.bridge.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_query.status().as_u16(), 403);
}

#[tokio::test]
async fn legacy_query_token_and_unprefixed_paths_work() {
    let setup = setup().await;
    let legacy = http()
        .put(format!(
            "{}/transactions/legacy1?access_token={HS_TOKEN}",
            setup.bridge.url
        ))
        .json(&json!({ "events": [invite("$legacy", "!legacy:test.local", ALICE, true)] }))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status().as_u16(), 200);
    assert_eq!(legacy.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(
        setup
            .hs
            .matching("POST", "/rooms/!legacy:test.local/join")
            .len(),
        1
    );

    let user = http()
        .get(format!(
            "{}/users/@instagram_42:{DOMAIN}?access_token={HS_TOKEN}",
            setup.bridge.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status().as_u16(), 200);

    let alias = http()
        .get(format!("{}/rooms/%23nothing:{DOMAIN}", setup.bridge.url))
        .bearer_auth(HS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status().as_u16(), 404);
    assert_eq!(
        alias.json::<Value>().await.unwrap()["errcode"],
        "M_NOT_FOUND"
    );
}

#[tokio::test]
async fn replayed_transaction_is_processed_once_even_after_restart() {
    let mut setup = setup().await;
    let events = vec![invite("$inv1", "!dm1:test.local", ALICE, true)];

    assert_eq!(
        push(&setup.bridge.url, "txn-1", events.clone()).await.0,
        200
    );
    assert_eq!(
        push(&setup.bridge.url, "txn-1", events.clone()).await.0,
        200
    );
    assert_eq!(setup.hs.matching("POST", "/join").len(), 1);

    // A new server over the same database file still knows txn-1.
    setup.bridge = start_bridge(&setup.hs_url, &setup.database_url).await;
    let (status, body) = push(&setup.bridge.url, "txn-1", events).await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(setup.hs.matching("POST", "/join").len(), 1);

    // A new transaction id is processed.
    let second = vec![invite("$inv2", "!dm2:test.local", ALICE, true)];
    assert_eq!(push(&setup.bridge.url, "txn-2", second).await.0, 200);
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
    let (status, body) = push(&setup.bridge.url, "mixed", vec![malformed, good]).await;
    assert_eq!((status, body), (200, json!({})));
    let joins = setup.hs.matching("POST", "/join");
    assert_eq!(joins.len(), 1);
    assert!(joins[0].path.contains("!good:test.local"));
}

#[tokio::test]
async fn oversized_body_is_refused_and_the_server_keeps_answering() {
    let setup = setup().await;
    let padding = "x".repeat(MAX_BODY * 2);
    let response = http()
        .put(format!(
            "{}/_matrix/app/v1/transactions/big",
            setup.bridge.url
        ))
        .bearer_auth(HS_TOKEN)
        .json(&json!({ "events": [], "padding": padding }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["errcode"],
        "M_TOO_LARGE"
    );

    let ping = http()
        .post(format!("{}/_matrix/app/v1/ping", setup.bridge.url))
        .bearer_auth(HS_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status().as_u16(), 200);
}

#[tokio::test]
async fn user_query_answers_for_the_namespace_only() {
    let setup = setup().await;
    let query = |user: String| {
        let url = format!("{}/_matrix/app/v1/users/{user}", setup.bridge.url);
        async move {
            let response = http().get(url).bearer_auth(HS_TOKEN).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
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
}

#[tokio::test]
async fn ping_answers_empty_object() {
    let setup = setup().await;
    let response = http()
        .post(format!("{}/_matrix/app/v1/ping", setup.bridge.url))
        .bearer_auth(HS_TOKEN)
        .json(&json!({ "transaction_id": "ping-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
}

#[tokio::test]
async fn direct_invite_makes_a_management_room_with_greeting() {
    let setup = setup().await;
    let room = "!mgmt:test.local";
    push(
        &setup.bridge.url,
        "t-inv",
        vec![invite("$i", room, ALICE, true)],
    )
    .await;

    let store = Store::connect(&setup.database_url).await.unwrap();
    assert_eq!(
        store.management_room(ALICE).await.unwrap().as_deref(),
        Some(room)
    );

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
    push(
        &setup.bridge.url,
        "t-mal",
        vec![invite("$m", room, MALLORY, true)],
    )
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
    let store = Store::connect(&setup.database_url).await.unwrap();
    assert_eq!(store.management_room(MALLORY).await.unwrap(), None);

    // Their commands get no answer.
    push(
        &setup.bridge.url,
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
    push(
        &setup.bridge.url,
        "t1",
        vec![
            invite("$i1", dm, ALICE, true),
            invite("$i2", group, ALICE, false),
        ],
    )
    .await;
    let store = Store::connect(&setup.database_url).await.unwrap();
    assert_eq!(
        store.management_room(ALICE).await.unwrap().as_deref(),
        Some(dm)
    );
    assert_eq!(setup.hs.sent_messages().len(), 2);

    push(
        &setup.bridge.url,
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
        "Unknown command `frobnicate`. Send `help` for the list."
    );
    assert!(
        replies[3].1.starts_with("Usage: `ping`"),
        "{}",
        replies[3].1
    );
    assert!(replies[4].1.contains(env!("CARGO_PKG_VERSION")));
}
