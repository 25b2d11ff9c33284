//! A tiny fake homeserver for the appservice tests: answers the client-server
//! endpoints the bridge uses, records every request, can be told to fail
//! specific endpoints, and pings the bridge back like Synapse does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{ALICE, BOT, HS_TOKEN, MALLORY};

/// One request the bridge sent to the fake homeserver.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// A room member and their membership (`join`, `invite`).
type Member = (String, &'static str);

/// Status and body queued per path suffix.
type CannedAnswers = HashMap<String, VecDeque<(u16, Value)>>;

/// The fake homeserver's state, shared with the test.
#[derive(Clone, Default)]
pub struct FakeHomeserver {
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Extra members per room id with their membership (`join`, `invite`);
    /// the bot and the inviter are always joined.
    extra_members: Arc<Mutex<HashMap<String, Vec<Member>>>>,
    /// Canned answers served (once each, in order) to requests whose path
    /// ends with the key, before the normal answer.
    faults: Arc<Mutex<CannedAnswers>>,
    /// Where the bridge's appservice API listens, for the ping callback.
    bridge_url: Arc<Mutex<Option<String>>>,
    /// Outcomes of the pings sent back to the bridge.
    ping_results: Arc<Mutex<Vec<Result<u16, String>>>>,
}

impl FakeHomeserver {
    /// Serves on a loopback port and returns the base URL.
    pub async fn start(&self) -> String {
        let app = axum::Router::new()
            .fallback(endpoint)
            .with_state(self.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests with this method whose path ends with `suffix`.
    pub fn matching(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }

    /// Messages sent into rooms (`PUT .../send/m.room.message/...`).
    pub fn sent_messages(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/send/m.room.message/"))
            .collect()
    }

    pub fn add_member(&self, room_id: &str, user_id: &str) {
        self.add_with_membership(room_id, user_id, "join");
    }

    /// `user_id` is invited to the room, not joined.
    pub fn add_invitee(&self, room_id: &str, user_id: &str) {
        self.add_with_membership(room_id, user_id, "invite");
    }

    fn add_with_membership(&self, room_id: &str, user_id: &str, membership: &'static str) {
        self.extra_members
            .lock()
            .unwrap()
            .entry(room_id.to_owned())
            .or_default()
            .push((user_id.to_owned(), membership));
    }

    /// Everyone in the room with their membership: the bot, the inviter
    /// (Mallory in her rooms, else Alice), then the extra members.
    fn members(&self, room_id: &str) -> Vec<Member> {
        let inviter = if room_id.contains("mallory") {
            MALLORY
        } else {
            ALICE
        };
        let extra = self.extra_members.lock().unwrap().get(room_id).cloned();
        [(BOT.to_owned(), "join"), (inviter.to_owned(), "join")]
            .into_iter()
            .chain(extra.unwrap_or_default())
            .collect()
    }

    /// The next request whose path ends with `suffix` gets this answer.
    pub fn fail_next(&self, suffix: &str, status: u16, body: Value) {
        self.faults
            .lock()
            .unwrap()
            .entry(suffix.to_owned())
            .or_default()
            .push_back((status, body));
    }

    /// Event ids the bridge asked to redact.
    pub fn redacted_events(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .filter_map(|r| {
                let segments: Vec<&str> = r.path.split('/').collect();
                let at = segments.iter().position(|s| *s == "redact")?;
                segments.get(at + 1).map(|event| (*event).to_owned())
            })
            .collect()
    }

    pub fn set_bridge_url(&self, url: &str) {
        *self.bridge_url.lock().unwrap() = Some(url.to_owned());
    }

    pub fn ping_results(&self) -> Vec<Result<u16, String>> {
        self.ping_results.lock().unwrap().clone()
    }

    fn take_fault(&self, path: &str) -> Option<(u16, Value)> {
        let mut faults = self.faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|(suffix, queue)| path.ends_with(suffix.as_str()) && !queue.is_empty())
            .and_then(|(_, queue)| queue.pop_front())
    }

    /// Like Synapse: `POST /_matrix/app/v1/ping` to the bridge with the
    /// hs_token, answering with the round trip or 502.
    async fn ping_bridge(&self, transaction_id: Value) -> Response {
        let Some(bridge_url) = self.bridge_url.lock().unwrap().clone() else {
            return error(502, "M_URL_NOT_SET", "no bridge URL");
        };
        let started = Instant::now();
        let outcome = reqwest::Client::new()
            .post(format!("{bridge_url}/_matrix/app/v1/ping"))
            .bearer_auth(HS_TOKEN)
            .json(&json!({ "transaction_id": transaction_id }))
            .send()
            .await;
        let result = match &outcome {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(e.to_string()),
        };
        self.ping_results.lock().unwrap().push(result.clone());
        match result {
            Ok(200) => {
                Json(json!({ "duration_ms": started.elapsed().as_millis() as u64 })).into_response()
            }
            Ok(status) => error(502, "M_BAD_STATUS", &format!("bridge answered {status}")),
            Err(e) => error(502, "M_CONNECTION_FAILED", &e),
        }
    }
}

fn error(status: u16, errcode: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({ "errcode": errcode, "error": message })),
    )
        .into_response()
}

async fn endpoint(State(hs): State<FakeHomeserver>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = percent_decode(request.uri().path());
    let query = request.uri().query().unwrap_or_default().to_owned();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    hs.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query,
        authorization,
        body: body.clone(),
    });
    if let Some((status, body)) = hs.take_fault(&path) {
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }

    let segments: Vec<&str> = path.split('/').collect();
    let answer = match (method.as_str(), segments.as_slice()) {
        ("GET", [.., "versions"]) => json!({ "versions": ["v1.1", "v1.5", "v1.11"] }),
        ("GET", [.., "account", "whoami"]) => json!({ "user_id": BOT }),
        ("POST", [.., "register"]) => {
            return error(400, "M_USER_IN_USE", "User ID already taken.");
        }
        ("POST", [.., "appservice", _, "ping"]) => {
            return hs.ping_bridge(body["transaction_id"].clone()).await;
        }
        ("POST", [.., "rooms", room_id, "join"]) => json!({ "room_id": room_id }),
        ("GET", [.., "rooms", room_id, "joined_members"]) => {
            let joined: serde_json::Map<String, Value> = hs
                .members(room_id)
                .into_iter()
                .filter(|(_, membership)| *membership == "join")
                .map(|(user, _)| (user, json!({})))
                .collect();
            json!({ "joined": joined })
        }
        ("GET", [.., "rooms", room_id, "state"]) => {
            let members = hs.members(room_id).into_iter().enumerate();
            let events: Vec<Value> = members
                .map(|(index, (user, membership))| {
                    json!({
                        "type": "m.room.member",
                        "state_key": user,
                        "sender": user,
                        "room_id": room_id,
                        "event_id": format!("$member-{index}"),
                        "origin_server_ts": 1_700_000_000_000u64,
                        "content": { "membership": membership },
                    })
                })
                .collect();
            json!(events)
        }
        ("PUT", [.., "send", _, txn_id]) => json!({ "event_id": format!("$sent-{txn_id}") }),
        ("PUT", [.., "redact", _, txn_id]) => {
            json!({ "event_id": format!("$redaction-{txn_id}") })
        }
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
