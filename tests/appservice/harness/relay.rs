//! The fixture of the Instagram -> Matrix relay tests: Synapse, the Instagram
//! simulator, a bridge config pointed at both, and a Matrix user (`alice`)
//! whose connected Instagram login is stored (sealed, as the bot would store
//! it) before the bridge starts; plus what the tests read back from Matrix:
//! invites, room history and state, and media.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use instagram_sim::{Account, Simulator};
use matrix_instagram::bridge::instagram::{load_connector, Logins};
use matrix_instagram::bridge::run::{build_appservice, load_config};
use matrix_instagram::bridge::Bridge;
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::matrix::client::HomeserverClient;
use matrix_instagram::store::{login_id, LoginRecord, PortalRecord, Store};
use serde_json::Value;
use serde_norway::Value as Yaml;

use super::client::RoomEvent;
use super::synapse::{random_hex, SERVER_NAME};
use super::{Backend, BridgeConfig, E2e, HarnessError, HomeserverDatabase, MatrixClient, WAIT};

/// Synapse, the simulator and the bridge config, with alice's Instagram
/// login (`me`) stored. The bridge process runs only after
/// `e2e.start_bridge()`; [`RelayFixture::in_process`] gives a
/// bridge over the same config and database inside the test.
pub struct RelayFixture {
    pub sim: Simulator,
    /// alice's own Instagram account.
    pub me: Account,
    pub user: MatrixClient,
    /// alice's login to `me`: what the bridge keys her portals and messages by.
    pub login_id: String,
    pub e2e: E2e,
}

impl RelayFixture {
    /// Everything but the bridge process; `username` names alice's Instagram account.
    pub async fn prepare(backend: Backend, username: &str) -> RelayFixture {
        RelayFixture::prepare_with(backend, HomeserverDatabase::Sqlite, username, false).await
    }

    /// [`RelayFixture::prepare`], the homeserver on `homeserver`.
    pub async fn prepare_on(
        backend: Backend,
        homeserver: HomeserverDatabase,
        username: &str,
    ) -> RelayFixture {
        RelayFixture::prepare_with(backend, homeserver, username, false).await
    }

    /// [`RelayFixture::prepare`] with double puppeting: a second appservice
    /// registration covering the homeserver's users, its token in
    /// `double_puppet.as_token`.
    pub async fn prepare_double_puppeting(backend: Backend, username: &str) -> RelayFixture {
        RelayFixture::prepare_with(backend, HomeserverDatabase::Sqlite, username, true).await
    }

    async fn prepare_with(
        backend: Backend,
        homeserver: HomeserverDatabase,
        username: &str,
        double: bool,
    ) -> RelayFixture {
        let sim = Simulator::start().await;
        let me = sim
            .create_account(username, "Alice Liddell")
            .expect("creating alice's Instagram account");
        let e2e = E2e::prepare_on(backend, homeserver, &[("localhost", "user")], |config| {
            if double {
                vec![double_puppet_registration(config)]
            } else {
                Vec::new()
            }
        })
        .await;
        e2e.use_simulator(&sim);
        let user = e2e.user("alice").await;
        let login_id = login_id(&user.user_id, &me.pk.to_string());
        let fixture = RelayFixture {
            sim,
            me,
            user,
            login_id,
            e2e,
        };
        fixture.lift_request_budget();
        fixture.store_login().await;
        fixture
    }

    /// Lets the bridge use alice's login as fast as it likes, and makes its
    /// cool-downs short: the relay tests (and the relay bench) measure relaying,
    /// not the request budget, which `budget.rs` tests with its own settings.
    fn lift_request_budget(&self) {
        for (key, value) in [
            ("reads_burst", 100_000),
            ("reads_per_minute", 1_000_000),
            ("writes_burst", 100_000),
            ("writes_per_minute", 1_000_000),
            ("cool_down_ms", 500),
            ("max_cool_down_ms", 2_000),
        ] {
            self.configure(&["safety", key], value);
        }
    }

    /// Stores alice's login to `me` as connected, sealed with the config's key.
    async fn store_login(&self) {
        self.save_login(Credentials::from_cookies(self.me.cookies.clone()))
            .await;
    }

    /// alice logs in to a second Instagram account `username` (stored as
    /// connected); returns the account and the login's id.
    pub async fn add_login(&self, username: &str) -> (Account, String) {
        let account = self.instagram_user(username, "Alice Again");
        let cookies = self
            .sim
            .new_session(account.pk)
            .unwrap_or_else(|err| panic!("a session of {username}: {err}"));
        let login = self
            .logins()
            .await
            .save_new(
                &self.user.user_id,
                &account.pk.to_string(),
                Some(username.to_owned()),
                &Credentials::from_cookies(cookies),
            )
            .await
            .expect("storing alice's second login");
        (account, login.id)
    }

    /// alice logs in again (a new Instagram session, stored as connected),
    /// as the bot's `login` would leave it.
    pub async fn log_in_again(&self) {
        let cookies = self
            .sim
            .new_session(self.me.pk)
            .unwrap_or_else(|err| panic!("a new session: {err}"));
        self.save_login(Credentials::from_cookies(cookies)).await;
    }

    async fn save_login(&self, credentials: Credentials) {
        self.logins()
            .await
            .save_new(
                &self.user.user_id,
                &self.me.pk.to_string(),
                Some(self.me.username.clone()),
                &credentials,
            )
            .await
            .expect("storing alice's login");
    }

    /// The bridge's database, opened by the test.
    pub async fn store(&self) -> Store {
        self.e2e.store().await
    }

    /// The bridge's stored logins, sealed with the config's key.
    async fn logins(&self) -> Logins {
        self.e2e.logins().await
    }

    /// alice's Instagram credentials as the bridge stored them.
    pub async fn credentials(&self) -> Credentials {
        self.logins()
            .await
            .credentials(&self.login_id)
            .await
            .expect("reading alice's credentials")
    }

    /// alice's stored login.
    pub async fn login(&self) -> LoginRecord {
        self.store()
            .await
            .login(&self.login_id)
            .await
            .expect("reading the login")
            .expect("alice has a login")
    }

    /// A bridge built in the test process over the same config and database
    /// as the bridge process (it serves no appservice API).
    pub async fn in_process(&self) -> Arc<Bridge> {
        let path = &self.e2e.config.config_path;
        let config = Arc::new(load_config(path).unwrap_or_else(|err| panic!("{err}")));
        let connector = load_connector(&config, path).unwrap_or_else(|err| panic!("{err}"));
        let client = HomeserverClient::new(&config.homeserver.url, &config.appservice.as_token)
            .expect("homeserver client");
        let (bridge, _router) = build_appservice(config, self.store().await, client, connector)
            .unwrap_or_else(|err| panic!("{err}"));
        bridge
    }

    /// Sets one key of the bridge's config (before the bridge starts).
    pub fn configure(&self, keys: &[&str], value: impl Into<Yaml>) {
        self.e2e
            .config
            .set(keys, value.into())
            .unwrap_or_else(|err| panic!("{err}"));
    }

    /// Polls every 200 ms (400 ms idle, message requests too), backing off
    /// at most a second: a test sees Instagram's changes quickly.
    pub fn poll_fast(&self) {
        for (key, value) in [
            ("active_interval_ms", 200),
            ("idle_interval_ms", 400),
            ("max_backoff_ms", 1_000),
            ("requests_interval_ms", 400),
            ("request_timeout_ms", 1_000),
        ] {
            self.configure(&["polling", key], value);
        }
    }

    /// Polls so seldom that only `sync` brings a change within a test.
    pub fn poll_seldom(&self) {
        for key in ["active_interval_ms", "idle_interval_ms"] {
            self.configure(&["polling", key], 600_000);
        }
    }

    /// Another Instagram user in the simulator.
    pub fn instagram_user(&self, username: &str, full_name: &str) -> Account {
        self.sim
            .create_account(username, full_name)
            .unwrap_or_else(|err| panic!("creating {username}: {err}"))
    }

    /// A friend on Instagram and alice's 1:1 thread with them: `(friend, thread id)`.
    pub fn friend_thread(&self, username: &str, full_name: &str) -> (Account, String) {
        let friend = self.instagram_user(username, full_name);
        let thread = self
            .sim
            .create_thread(self.me.pk, &[friend.pk], None)
            .unwrap_or_else(|err| panic!("creating alice's thread with {username}: {err}"));
        (friend, thread)
    }

    /// [`RelayFixture::friend_thread`] with a first message `text` from the
    /// friend (a thread gets its portal with its first message):
    /// `(friend, thread id, item id)`.
    pub fn friend_thread_saying(
        &self,
        username: &str,
        full_name: &str,
        text: &str,
    ) -> (Account, String, String) {
        let (friend, thread) = self.friend_thread(username, full_name);
        let item = self
            .sim
            .post_text(&thread, friend.pk, text)
            .unwrap_or_else(|err| panic!("posting {username}'s {text:?}: {err}"));
        (friend, thread, item)
    }

    /// Waits until the bridge has a portal for `thread_id` of alice's login.
    pub async fn wait_for_portal(&self, thread_id: &str) -> PortalRecord {
        self.wait_for_portal_of(&self.login_id, thread_id).await
    }

    /// Waits until the bridge has a portal for `thread_id` of the login `login_id`.
    pub async fn wait_for_portal_of(&self, login_id: &str, thread_id: &str) -> PortalRecord {
        let store = self.store().await;
        let found = poll(&format!("a portal for thread {thread_id}"), || async {
            store
                .portal_by_thread(login_id, thread_id)
                .await
                .ok()
                .flatten()
        })
        .await;
        found.unwrap_or_else(|err| panic!("{err}"))
    }

    /// Rooms alice is invited to, each with its stripped invite state.
    pub async fn invites(&self) -> Result<Vec<(String, Vec<Value>)>, HarnessError> {
        let sync = self.initial_sync("syncing for invites").await?;
        Ok(sync["rooms"]["invite"]
            .as_object()
            .map(|rooms| {
                rooms
                    .iter()
                    .map(|(room_id, room)| {
                        let state = room["invite_state"]["events"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        (room_id.clone(), state)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Waits for alice's invite to `room_id` and returns its stripped state.
    pub async fn wait_for_invite(&self, room_id: &str) -> Vec<Value> {
        let found = poll(&format!("alice's invite to {room_id}"), || async {
            self.invites()
                .await
                .ok()?
                .into_iter()
                .find(|(room, _)| room == room_id)
                .map(|(_, state)| state)
        })
        .await;
        found.unwrap_or_else(|err| panic!("{err}"))
    }

    /// Waits for the invite to the portal of `thread_id` and joins it; returns the room id.
    pub async fn join_portal(&self, thread_id: &str) -> String {
        self.join_portal_of(&self.login_id, thread_id).await
    }

    /// [`RelayFixture::join_portal`] for a thread of the login `login_id`.
    pub async fn join_portal_of(&self, login_id: &str, thread_id: &str) -> String {
        let portal = self.wait_for_portal_of(login_id, thread_id).await;
        self.wait_for_invite(&portal.room_id).await;
        self.user
            .join(&portal.room_id)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        portal.room_id
    }

    /// The current state event `kind`/`state_key` of a room alice is in, if any.
    pub async fn state(
        &self,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Value>, HarnessError> {
        let url = self.url(&[
            "_matrix", "client", "v3", "rooms", room_id, "state", kind, state_key,
        ]);
        match self.get_json(url, &format!("reading {kind} state")).await {
            Ok(content) => Ok(Some(content)),
            Err(HarnessError::Matrix { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The read receipts in a room alice is in: (user, event id) pairs.
    pub async fn read_receipts(
        &self,
        room_id: &str,
    ) -> Result<Vec<(String, String)>, HarnessError> {
        let sync = self.initial_sync("syncing for receipts").await?;
        let mut receipts = Vec::new();
        let ephemeral = sync["rooms"]["join"][room_id]["ephemeral"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for event in ephemeral.iter().filter(|e| e["type"] == "m.receipt") {
            for (event_id, kinds) in event["content"].as_object().into_iter().flatten() {
                for user in kinds["m.read"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(u, _)| u)
                {
                    receipts.push((user.clone(), event_id.clone()));
                }
            }
        }
        Ok(receipts)
    }

    /// Waits until `user_id`'s read receipt in `room_id` is at `event_id`.
    pub async fn wait_for_receipt(&self, room_id: &str, user_id: &str, event_id: &str) {
        let wanted = (user_id.to_owned(), event_id.to_owned());
        let found = poll(
            &format!("{user_id}'s read receipt at {event_id}"),
            || async {
                let receipts = self.read_receipts(room_id).await.ok()?;
                receipts.contains(&wanted).then_some(())
            },
        )
        .await;
        found.unwrap_or_else(|err| panic!("{err}"));
    }

    /// A fresh /sync without `since`. Synapse caches identical sync requests
    /// for a while, so each one carries a filter no other request has.
    async fn initial_sync(&self, doing: &str) -> Result<Value, HarnessError> {
        static SYNCS: AtomicU64 = AtomicU64::new(0);
        let nonce = SYNCS.fetch_add(1, Ordering::SeqCst);
        let filter = format!(
            r#"{{"room":{{"timeline":{{"limit":1}}}},"presence":{{"types":["x.nonce.{nonce}"]}}}}"#
        );
        let mut url = self.url(&["_matrix", "client", "v3", "sync"]);
        url.query_pairs_mut().append_pair("filter", &filter);
        self.get_json(url, doing).await
    }

    /// alice's global account data of one type (`m.direct`, ...).
    pub async fn account_data(&self, kind: &str) -> Result<Value, HarnessError> {
        let url = self.url(&[
            "_matrix",
            "client",
            "v3",
            "user",
            &self.user.user_id,
            "account_data",
            kind,
        ]);
        self.get_json(url, &format!("reading alice's {kind}")).await
    }

    /// A user's presence (`online`, `offline`, ...).
    pub async fn presence(&self, user_id: &str) -> Result<String, HarnessError> {
        let url = self.url(&["_matrix", "client", "v3", "presence", user_id, "status"]);
        let status = self.get_json(url, "reading presence").await?;
        Ok(status["presence"].as_str().unwrap_or_default().to_owned())
    }

    /// Downloads an `mxc://` URI with authenticated media.
    pub async fn download(&self, mxc: &str) -> Result<Vec<u8>, HarnessError> {
        let (server, media_id) = mxc
            .strip_prefix("mxc://")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(|| HarnessError::Unexpected {
                doing: "downloading media".to_owned(),
                detail: format!("{mxc} is not an mxc:// URI"),
            })?;
        let url = self.url(&[
            "_matrix", "client", "v1", "media", "download", server, media_id,
        ]);
        self.get_bytes(url, &format!("downloading {mxc}")).await
    }

    /// The global profile of a user (`displayname`, `avatar_url`).
    pub async fn profile(&self, user_id: &str) -> Result<Value, HarnessError> {
        let url = self.url(&["_matrix", "client", "v3", "profile", user_id]);
        self.get_json(url, &format!("reading the profile of {user_id}"))
            .await
    }

    /// Polls the room's timeline until `done` holds for it; returns that timeline.
    pub async fn wait_for_history(
        &self,
        room_id: &str,
        what: &str,
        done: impl Fn(&[RoomEvent]) -> bool,
    ) -> Vec<RoomEvent> {
        let found = poll(what, || async {
            let history = self.user.room_history(room_id).await.ok()?;
            done(&history).then_some(history)
        })
        .await;
        found.unwrap_or_else(|err| panic!("{err}"))
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.user.base_url().clone();
        url.path_segments_mut()
            .expect("http URL has a path")
            .extend(segments);
        url
    }

    async fn get_json(&self, url: url::Url, doing: &str) -> Result<Value, HarnessError> {
        let bytes = self.get_bytes(url, doing).await?;
        serde_json::from_slice(&bytes).map_err(|err| HarnessError::Unexpected {
            doing: doing.to_owned(),
            detail: format!("invalid JSON ({err}): {}", String::from_utf8_lossy(&bytes)),
        })
    }

    /// The body of an authenticated GET as alice; anything but 200 is an error.
    async fn get_bytes(&self, url: url::Url, doing: &str) -> Result<Vec<u8>, HarnessError> {
        let http = |source| HarnessError::Http {
            doing: doing.to_owned(),
            source,
        };
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(self.user.access_token())
            .send()
            .await
            .map_err(http)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(http)?;
        if status != 200 {
            return Err(HarnessError::Matrix {
                doing: doing.to_owned(),
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(bytes.to_vec())
    }
}

/// Writes the double puppeting registration beside the bridge's and puts
/// its token in the bridge config; returns the registration's path.
fn double_puppet_registration(config: &BridgeConfig) -> PathBuf {
    let token = format!("doublepuppet-{}", random_hex(16));
    let registration = format!(
        "id: doublepuppet\nurl: null\nas_token: {token}\nhs_token: {}\n\
         sender_localpart: doublepuppet-{}\nrate_limited: false\nnamespaces:\n  users:\n    \
         - regex: '@.*:{SERVER_NAME}'\n      exclusive: false\n",
        random_hex(16),
        random_hex(4),
    );
    let path = config.dir.join("doublepuppet.yaml");
    std::fs::write(&path, registration).expect("writing the double puppet registration");
    config
        .set(&["double_puppet", "as_token"], Yaml::from(token))
        .unwrap_or_else(|err| panic!("{err}"));
    path
}

/// Calls `attempt` until it yields something, for up to [`WAIT`].
pub async fn poll<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = attempt().await {
            return Ok(found);
        }
        if started.elapsed() > WAIT {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                waited: WAIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
