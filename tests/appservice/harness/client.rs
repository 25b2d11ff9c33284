//! A small Matrix client for the tests, on the client-server API with
//! reqwest and JSON: register through Synapse's shared-secret admin API,
//! create DMs, send text and other events, and wait (with a deadline) for events via /sync.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use super::synapse::Synapse;
use super::{HarnessError, WAIT};

/// One room event seen in a /sync timeline.
#[derive(Debug, Clone)]
pub struct RoomEvent {
    pub room_id: String,
    pub event: Value,
}

impl RoomEvent {
    pub fn sender(&self) -> &str {
        self.event["sender"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.event["type"].as_str().unwrap_or_default()
    }

    /// The `body` of a message event.
    pub fn body(&self) -> &str {
        self.event["content"]["body"].as_str().unwrap_or_default()
    }
}

/// A logged-in Matrix user.
pub struct MatrixClient {
    http: reqwest::Client,
    base: url::Url,
    pub user_id: String,
    access_token: String,
    since: Option<String>,
    /// Timeline events received by /sync and not yet consumed by a wait.
    unseen: VecDeque<RoomEvent>,
    txn_counter: u64,
}

impl std::fmt::Debug for MatrixClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixClient")
            .field("user_id", &self.user_id)
            .field("access_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl MatrixClient {
    /// Registers `localpart` (not an admin: admins skip rate limits) with the
    /// shared-secret admin API, then does an initial /sync so later waits see
    /// only new events.
    pub async fn register(
        synapse: &Synapse,
        localpart: &str,
    ) -> Result<MatrixClient, HarnessError> {
        MatrixClient::register_as(synapse, localpart, false).await
    }

    /// [`MatrixClient::register`], as a server admin when `admin` (for the
    /// admin API; admins also skip rate limits).
    pub async fn register_as(
        synapse: &Synapse,
        localpart: &str,
        admin: bool,
    ) -> Result<MatrixClient, HarnessError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| HarnessError::Http {
                doing: "building an HTTP client".to_owned(),
                source,
            })?;
        let base = url::Url::parse(&synapse.url()).expect("Synapse URL is valid");
        let register_url = base
            .join("/_synapse/admin/v1/register")
            .expect("valid path");
        let nonce = send_json(
            http.get(register_url.clone()),
            "fetching a registration nonce",
        )
        .await?;
        let nonce = nonce["nonce"].as_str().unwrap_or_default().to_owned();
        let password = format!("{localpart}-password");
        let mut mac = Hmac::<Sha1>::new_from_slice(synapse.shared_secret().as_bytes())
            .expect("HMAC takes any key");
        for part in [nonce.as_str(), localpart, password.as_str()] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.update(if admin {
            b"admin".as_slice()
        } else {
            b"notadmin"
        });
        let mac: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let body = json!({"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac});
        let registered = send_json(
            http.post(register_url).json(&body),
            &format!("registering {localpart}"),
        )
        .await?;
        let field = |name: &str| {
            registered[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| HarnessError::Unexpected {
                    doing: format!("registering {localpart}"),
                    detail: format!("no {name} in {registered}"),
                })
        };
        let mut client = MatrixClient {
            http,
            base,
            user_id: field("user_id")?,
            access_token: field("access_token")?,
            since: None,
            unseen: VecDeque::new(),
            txn_counter: 0,
        };
        client.sync(Duration::ZERO).await?;
        client.unseen.clear();
        Ok(client)
    }

    /// Logs in to the homeserver at `url` with a user id and password, as a
    /// Matrix client does, then does an initial /sync so later waits see
    /// only new events.
    pub async fn log_in_with_password(
        url: &str,
        user_id: &str,
        password: &str,
    ) -> Result<MatrixClient, HarnessError> {
        let base = url::Url::parse(url).map_err(|error| HarnessError::Unexpected {
            doing: format!("parsing the homeserver URL {url}"),
            detail: error.to_string(),
        })?;
        let body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
        });
        let http = reqwest::Client::new();
        let login = send_json(
            http.post(base.join("/_matrix/client/v3/login").expect("valid path"))
                .json(&body),
            &format!("logging in as {user_id}"),
        )
        .await?;
        let access_token = login["access_token"]
            .as_str()
            .ok_or_else(|| HarnessError::Unexpected {
                doing: format!("logging in as {user_id}"),
                detail: "no access_token in the answer".to_owned(),
            })?
            .to_owned();
        let mut client = MatrixClient {
            http,
            base,
            user_id: login["user_id"].as_str().unwrap_or(user_id).to_owned(),
            access_token,
            since: None,
            unseen: VecDeque::new(),
            txn_counter: 0,
        };
        client.sync(Duration::ZERO).await?;
        client.unseen.clear();
        Ok(client)
    }

    /// Logs in again with the password set at registration: a second device.
    pub async fn login(synapse: &Synapse, localpart: &str) -> Result<Value, HarnessError> {
        let url = url::Url::parse(&synapse.url())
            .expect("valid")
            .join("/_matrix/client/v3/login")
            .expect("valid");
        let body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": format!("{localpart}-password"),
        });
        send_json(
            reqwest::Client::new().post(url).json(&body),
            &format!("logging in as {localpart}"),
        )
        .await
    }

    /// The access token, for harness helpers that make their own requests.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The homeserver's base URL.
    pub fn base_url(&self) -> &url::Url {
        &self.base
    }

    fn endpoint(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http URL has a path")
            .extend(segments);
        url
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        doing: &str,
    ) -> Result<Value, HarnessError> {
        send_json(request.bearer_auth(&self.access_token), doing).await
    }

    /// Creates a direct chat inviting `invitee`, returning the room id.
    pub async fn create_dm(&self, invitee: &str) -> Result<String, HarnessError> {
        self.create_direct_room(&[invitee]).await
    }

    /// Creates a room marked as a direct chat (`is_direct`) inviting all of
    /// `invitees` in the same request, returning the room id.
    pub async fn create_direct_room(&self, invitees: &[&str]) -> Result<String, HarnessError> {
        let body = json!({"preset": "trusted_private_chat", "is_direct": true, "invite": invitees});
        self.create_room_with(body, &format!("creating a DM with {invitees:?}"))
            .await
    }

    /// Creates a private group room (not a direct chat) inviting `invitees`.
    pub async fn create_group(&self, invitees: &[&str]) -> Result<String, HarnessError> {
        let body = json!({"preset": "private_chat", "name": "group", "invite": invitees});
        self.create_room_with(body, "creating a group room").await
    }

    /// Creates a room from a whole `createRoom` body, returning the room id.
    pub async fn create_room_with(&self, body: Value, doing: &str) -> Result<String, HarnessError> {
        let url = self.endpoint(&["_matrix", "client", "v3", "createRoom"]);
        let created = self.call(self.http.post(url).json(&body), doing).await?;
        created["room_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| HarnessError::Unexpected {
                doing: doing.to_owned(),
                detail: format!("no room_id in {created}"),
            })
    }

    /// Invites `user_id` into a room.
    pub async fn invite(&self, room_id: &str, user_id: &str) -> Result<(), HarnessError> {
        let url = self.endpoint(&["_matrix", "client", "v3", "rooms", room_id, "invite"]);
        self.call(
            self.http.post(url).json(&json!({"user_id": user_id})),
            &format!("inviting {user_id}"),
        )
        .await?;
        Ok(())
    }

    /// Joins a room this user was invited to.
    pub async fn join(&self, room_id: &str) -> Result<(), HarnessError> {
        let url = self.endpoint(&["_matrix", "client", "v3", "join", room_id]);
        self.call(
            self.http.post(url).json(&json!({})),
            &format!("joining {room_id}"),
        )
        .await?;
        Ok(())
    }

    /// Sends a plain text message, returning its event id.
    pub async fn send_text(&mut self, room_id: &str, body: &str) -> Result<String, HarnessError> {
        let content = json!({"msgtype": "m.text", "body": body});
        self.send_event(room_id, "m.room.message", &content).await
    }

    /// Sends an event of any type and content, returning its event id.
    pub async fn send_event(
        &mut self,
        room_id: &str,
        event_type: &str,
        content: &Value,
    ) -> Result<String, HarnessError> {
        self.txn_counter += 1;
        let txn = format!("t{}-{}", self.txn_counter, super::synapse::random_hex(4));
        let url = self.endpoint(&[
            "_matrix", "client", "v3", "rooms", room_id, "send", event_type, &txn,
        ]);
        let sent = self
            .call(
                self.http.put(url).json(content),
                &format!("sending a {event_type} event"),
            )
            .await?;
        Ok(sent["event_id"].as_str().unwrap_or_default().to_owned())
    }

    /// Redacts an event (this user's own, or any with the power to).
    pub async fn redact(&mut self, room_id: &str, event_id: &str) -> Result<(), HarnessError> {
        self.txn_counter += 1;
        let txn = format!("r{}-{}", self.txn_counter, super::synapse::random_hex(4));
        let url = self.endpoint(&[
            "_matrix", "client", "v3", "rooms", room_id, "redact", event_id, &txn,
        ]);
        self.call(
            self.http.put(url).json(&json!({})),
            &format!("redacting {event_id}"),
        )
        .await?;
        Ok(())
    }

    /// The rooms this user has joined.
    pub async fn joined_rooms(&self) -> Result<Vec<String>, HarnessError> {
        let url = self.endpoint(&["_matrix", "client", "v3", "joined_rooms"]);
        let joined = self
            .call(self.http.get(url), "listing joined rooms")
            .await?;
        Ok(joined["joined_rooms"]
            .as_array()
            .map(|rooms| {
                rooms
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The users currently joined to a room.
    pub async fn joined_members(&self, room_id: &str) -> Result<Vec<String>, HarnessError> {
        let url = self.endpoint(&[
            "_matrix",
            "client",
            "v3",
            "rooms",
            room_id,
            "joined_members",
        ]);
        let members = self
            .call(self.http.get(url), "listing joined members")
            .await?;
        Ok(members["joined"]
            .as_object()
            .map(|joined| joined.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// One event of a room as the homeserver serves it now (a redacted
    /// event has an empty `content`).
    pub async fn event(&self, room_id: &str, event_id: &str) -> Result<Value, HarnessError> {
        let url = self.endpoint(&[
            "_matrix", "client", "v3", "rooms", room_id, "event", event_id,
        ]);
        self.call(self.http.get(url), &format!("fetching {event_id}"))
            .await
    }

    /// The room's whole timeline, oldest first (from /messages, up to 1000 events).
    pub async fn room_history(&self, room_id: &str) -> Result<Vec<RoomEvent>, HarnessError> {
        let mut url = self.endpoint(&["_matrix", "client", "v3", "rooms", room_id, "messages"]);
        url.query_pairs_mut()
            .append_pair("dir", "b")
            .append_pair("limit", "1000");
        let page = self
            .call(self.http.get(url), "reading room history")
            .await?;
        let mut events: Vec<RoomEvent> = page["chunk"]
            .as_array()
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|event| RoomEvent {
                        room_id: room_id.to_owned(),
                        event: event.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        events.reverse();
        Ok(events)
    }

    /// The `m.room.message` events `sender` sent in a room, oldest first.
    pub async fn messages_from(
        &self,
        room_id: &str,
        sender: &str,
    ) -> Result<Vec<RoomEvent>, HarnessError> {
        Ok(self
            .room_history(room_id)
            .await?
            .into_iter()
            .filter(|event| event.kind() == "m.room.message" && event.sender() == sender)
            .collect())
    }

    /// One /sync, long-polling up to `timeout`; new timeline events of joined
    /// and left rooms are queued for the waits.
    async fn sync(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let mut url = self.endpoint(&["_matrix", "client", "v3", "sync"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("timeout", &timeout.as_millis().to_string())
                .append_pair("filter", r#"{"room":{"timeline":{"limit":100}}}"#);
            if let Some(since) = &self.since {
                query.append_pair("since", since);
            }
        }
        let response = self.call(self.http.get(url), "syncing").await?;
        for section in ["join", "leave"] {
            if let Some(rooms) = response["rooms"][section].as_object() {
                for (room_id, room) in rooms {
                    for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                        self.unseen.push_back(RoomEvent {
                            room_id: room_id.clone(),
                            event: event.clone(),
                        });
                    }
                }
            }
        }
        self.since = response["next_batch"].as_str().map(str::to_owned);
        Ok(())
    }

    /// Waits up to [`WAIT`] for a new timeline event matching `wanted`, and
    /// returns it; events before it are consumed too.
    pub async fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&RoomEvent) -> bool,
    ) -> Result<RoomEvent, HarnessError> {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(event) = self.unseen.pop_front() {
                if wanted(&event) {
                    return Ok(event);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HarnessError::Timeout {
                    what: what.to_owned(),
                    waited: WAIT,
                });
            }
            self.sync(left.min(Duration::from_secs(5))).await?;
        }
    }

    /// Waits for the next `m.room.message` from `sender` in `room_id`.
    pub async fn wait_for_message(
        &mut self,
        room_id: &str,
        sender: &str,
    ) -> Result<RoomEvent, HarnessError> {
        self.wait_for(&format!("a message from {sender} in {room_id}"), |event| {
            event.room_id == room_id && event.kind() == "m.room.message" && event.sender() == sender
        })
        .await
    }

    /// Waits until `user_id` has joined `room_id`.
    pub async fn wait_for_join(
        &mut self,
        room_id: &str,
        user_id: &str,
    ) -> Result<RoomEvent, HarnessError> {
        self.wait_for(&format!("{user_id} joining {room_id}"), |event| {
            event.room_id == room_id
                && event.kind() == "m.room.member"
                && event.event["state_key"] == user_id
                && event.event["content"]["membership"] == "join"
        })
        .await
    }

    /// Sends `command` and waits for the next message from `sender` (the bot).
    pub async fn ask(
        &mut self,
        room_id: &str,
        sender: &str,
        command: &str,
    ) -> Result<String, HarnessError> {
        self.send_text(room_id, command).await?;
        Ok(self
            .wait_for_message(room_id, sender)
            .await?
            .body()
            .to_owned())
    }
}

async fn send_json(request: reqwest::RequestBuilder, doing: &str) -> Result<Value, HarnessError> {
    let response = request.send().await.map_err(|source| HarnessError::Http {
        doing: doing.to_owned(),
        source,
    })?;
    let status = response.status();
    let text = response.text().await.map_err(|source| HarnessError::Http {
        doing: doing.to_owned(),
        source,
    })?;
    if !status.is_success() {
        return Err(HarnessError::Matrix {
            doing: doing.to_owned(),
            status: status.as_u16(),
            body: text,
        });
    }
    serde_json::from_str(&text).map_err(|err| HarnessError::Unexpected {
        doing: doing.to_owned(),
        detail: format!("invalid JSON ({err}): {text}"),
    })
}
