//! A stateful simulator of Instagram's private API (`/api/v1/...`, `/rupload_*`, `/media/...`)
//! and web login, for matrix-instagram's tests. [`Simulator::start`] serves it on a loopback
//! port; its methods play the other side of chats and script failures, and `/_sim/...` offers
//! the same over HTTP (see README.md).

mod api;
mod changes;
mod control;
mod cursor;
mod drift;
mod error;
mod finish;
mod gate;
mod localize;
mod media;
mod render;
mod seed;
mod session;
mod settings;
mod signing;
mod upload;
mod web;
mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

pub use changes::MediaInfo;
pub use error::SimError;
pub use media::samples;
pub use seed::DemoSeed;
pub use session::SessionEnd;
pub use settings::{Settings, DEFAULT_SEND_LIMIT_PER_MINUTE, PAGE_CAP};
pub use world::{
    Account, ClaimEcho, DeviceHeaders, Fault, ItemKind, Presence, RequestLogEntry,
    REQUEST_LOG_CAPACITY,
};

use world::{parse_item_id, World};

pub(crate) type SharedWorld = Arc<Mutex<World>>;

/// Locks the world; a panic in another handler does not make the state unusable.
pub(crate) fn lock(shared: &SharedWorld) -> MutexGuard<'_, World> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    shared: SharedWorld,
    address: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn item_id(text: &str) -> Result<u128, SimError> {
    parse_item_id(text).ok_or(SimError::BadParameter { name: "item_id" })
}

/// All routes: the API, uploads, media, web login and the control API, behind the gate.
fn router(shared: SharedWorld) -> Router {
    Router::new()
        .route("/api/v1/{*rest}", get(api::api).post(api::api))
        .route("/rupload_igphoto/{name}", post(api::rupload))
        .route("/rupload_igvideo/{name}", post(api::rupload))
        .route("/messenger_image/{entity}", post(upload::messenger_upload))
        .route("/messenger_gif/{entity}", post(upload::messenger_upload))
        .route(
            "/messenger_video/{entity}",
            get(upload::messenger_upload).post(upload::messenger_upload),
        )
        .route(
            "/messenger_audio/{entity}",
            get(upload::messenger_upload).post(upload::messenger_upload),
        )
        .route("/media/{name}", get(api::media))
        .route(
            "/accounts/login/",
            get(web::login_page).post(web::login_submit),
        )
        .route(
            "/accounts/login/two_factor/",
            get(web::two_factor_page).post(web::two_factor_submit),
        )
        .route(
            "/challenge/",
            get(web::challenge_page).post(web::challenge_submit),
        )
        .route("/", get(web::home))
        .route("/direct/inbox/", get(web::direct_inbox))
        .nest("/_sim", control::router())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            gate::gate,
        ))
        .with_state(shared)
}

impl Simulator {
    /// Starts a simulator on 127.0.0.1 with a free port.
    ///
    /// # Panics
    /// When no loopback port can be bound: tests cannot run without one.
    pub async fn start() -> Simulator {
        Simulator::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a loopback port for the Instagram simulator")
    }

    /// Starts a simulator on `address` (port 0 picks a free one).
    pub async fn bind(address: SocketAddr) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(World::new(format!("http://{address}"))));
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "instagram simulator stopped");
            }
        });
        Ok(Simulator {
            shared,
            address,
            server,
        })
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.shared)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `http://127.0.0.1:PORT/api/v1`
    pub fn api_base_url(&self) -> String {
        format!("{}/api/v1", self.base_url())
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A new account with a random web password and a fresh API session.
    pub fn create_account(&self, username: &str, full_name: &str) -> Result<Account, SimError> {
        self.world().create_account(username, full_name, None)
    }

    pub fn create_account_with_password(
        &self,
        username: &str,
        full_name: &str,
        password: &str,
    ) -> Result<Account, SimError> {
        self.world()
            .create_account(username, full_name, Some(password))
    }

    /// Cookies of another session of `pk` (the earlier ones stay valid).
    pub fn new_session(&self, pk: u64) -> Result<BTreeMap<String, String>, SimError> {
        let mut world = self.world();
        world.account(pk)?;
        Ok(world.new_session(pk, &world::random_token(32)))
    }

    /// Makes the web login of `pk` ask for `code` after the password (`None`: no 2FA).
    pub fn set_two_factor(&self, pk: u64, code: Option<&str>) -> Result<(), SimError> {
        self.world().set_two_factor(pk, code.map(str::to_owned))
    }

    /// From now on API calls of `pk` answer 400 challenge_required, and the web login shows
    /// the challenge page, until "This was me" is clicked or [`Self::clear_challenge`].
    pub fn flag_challenge(&self, pk: u64) -> Result<(), SimError> {
        self.world().flag_challenge(pk, true)
    }

    pub fn clear_challenge(&self, pk: u64) -> Result<(), SimError> {
        self.world().flag_challenge(pk, false)
    }

    /// From now on API calls of `pk` answer 400 `checkpoint_required` (with
    /// `checkpoint_url` and `lock`) until [`Self::clear_checkpoint`].
    pub fn flag_checkpoint(&self, pk: u64) -> Result<(), SimError> {
        self.world().flag_checkpoint(pk, true)
    }

    pub fn clear_checkpoint(&self, pk: u64) -> Result<(), SimError> {
        self.world().flag_checkpoint(pk, false)
    }

    /// Ends every live session of `pk` (e.g. the account logged in elsewhere): their next
    /// requests answer the body of `end`. Sessions opened later work.
    pub fn kill_sessions(&self, pk: u64, end: SessionEnd) -> Result<(), SimError> {
        self.world().kill_sessions(pk, end)
    }

    /// How many offences (requests refused for going over the budget) still count
    /// against the live sessions of `pk`; they decay after `Settings::strike_decay`.
    pub fn strikes(&self, pk: u64) -> Result<usize, SimError> {
        self.world().strikes(pk)
    }

    /// Invalidates every session of `pk`: their requests answer 403 login_required.
    pub fn expire_session(&self, pk: u64) -> Result<(), SimError> {
        self.world().expire_sessions(pk)
    }

    pub fn set_presence(&self, pk: u64, presence: Presence) -> Result<(), SimError> {
        self.world().set_presence(pk, presence)
    }

    pub fn presence(&self, pk: u64) -> Result<Presence, SimError> {
        Ok(self.world().account(pk)?.presence)
    }

    /// A thread of `owner` and `others` (a group when several others or a title); returns
    /// its thread_id. A group starts with a "created the group" action_log item.
    pub fn create_thread(
        &self,
        owner: u64,
        others: &[u64],
        title: Option<&str>,
    ) -> Result<String, SimError> {
        self.world().create_thread(owner, others, title)
    }

    /// Puts the thread in `pk`'s message requests (pending inbox), or takes it out.
    pub fn set_pending(&self, thread_id: &str, pk: u64, pending: bool) -> Result<(), SimError> {
        self.world().set_pending(thread_id, pk, pending)
    }

    pub fn post_text(&self, thread_id: &str, from: u64, text: &str) -> Result<String, SimError> {
        self.post_item(thread_id, from, json!({"item_type": "text", "text": text}))
    }

    pub fn post_reply(
        &self,
        thread_id: &str,
        from: u64,
        text: &str,
        replied_to_item_id: &str,
    ) -> Result<String, SimError> {
        let replied_to = item_id(replied_to_item_id)?;
        Ok(self
            .world()
            .append_item(
                thread_id,
                from,
                json!({"item_type": "text", "text": text}),
                None,
                Some(replied_to),
            )?
            .to_string())
    }

    /// Posts any item kind (see [`ItemKind`]); media kinds get downloadable URLs.
    pub fn post_item(
        &self,
        thread_id: &str,
        from: u64,
        kind: ItemKind,
    ) -> Result<String, SimError> {
        Ok(self
            .world()
            .append_item(thread_id, from, kind, None, None)?
            .to_string())
    }

    pub fn react(
        &self,
        thread_id: &str,
        item_id_text: &str,
        from: u64,
        emoji: &str,
    ) -> Result<(), SimError> {
        self.world().react(
            thread_id,
            item_id(item_id_text)?,
            from,
            Some(emoji.to_owned()),
            None,
        )
    }

    pub fn unreact(&self, thread_id: &str, item_id_text: &str, from: u64) -> Result<(), SimError> {
        self.world()
            .unreact(thread_id, item_id(item_id_text)?, from)
    }

    /// Removes an item, whoever sent it (the sender unsending it).
    pub fn unsend(&self, thread_id: &str, item_id_text: &str) -> Result<(), SimError> {
        self.world().unsend(thread_id, item_id(item_id_text)?, None)
    }

    pub fn mark_seen(&self, thread_id: &str, pk: u64, item_id_text: &str) -> Result<(), SimError> {
        self.world()
            .mark_seen(thread_id, pk, item_id(item_id_text)?)
    }

    /// `pk` starts (1) or stops (0) typing in the thread.
    pub fn set_typing(
        &self,
        thread_id: &str,
        pk: u64,
        activity_status: u8,
    ) -> Result<(), SimError> {
        self.world().set_typing(thread_id, pk, activity_status)
    }

    /// What the thread holds now: items (newest first, neutral view), members, and each
    /// member's muted/hidden/marked_as_unread/pending/typing/last_seen_at state.
    pub fn thread_snapshot(&self, thread_id: &str) -> Result<Value, SimError> {
        control::snapshot(&self.world(), thread_id)
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// At most `max_requests` API requests per `per` window; more answer 429.
    pub fn set_rate_limit(&self, max_requests: usize, per: Duration) {
        self.world().set_rate_limit(Some((max_requests, per)));
    }

    pub fn clear_rate_limit(&self) {
        self.world().set_rate_limit(None);
    }

    /// Requests seen with this method and path (full, or relative to `/api/v1/`); exact
    /// even when the log has dropped old entries.
    pub fn request_count(&self, method: &str, path: &str) -> usize {
        self.world().request_count(method, path)
    }

    /// The newest requests (at most [`REQUEST_LOG_CAPACITY`]), oldest first.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.world().request_log()
    }

    pub fn clear_request_log(&self) {
        self.world().clear_request_log();
    }

    // ---- how strictly Instagram is played ----

    pub fn settings(&self) -> Settings {
        self.world().settings
    }

    pub fn set_settings(&self, settings: Settings) {
        self.world().settings = settings;
    }

    /// How long inbox and thread cursors stay valid (default 10 minutes; zero: never).
    pub fn set_cursor_ttl(&self, ttl: Duration) {
        self.world().settings.cursor_ttl = ttl;
    }

    /// How long signed media URLs stay valid, in whole seconds (default one day).
    pub fn set_media_url_ttl(&self, ttl: Duration) {
        self.world().settings.media_url_ttl = ttl;
    }

    /// Short pages: pages hold half the limit when a full page would still leave older ones.
    pub fn set_short_pages(&self, on: bool) {
        self.world().settings.short_pages = on;
    }

    /// Drift mode: numbers as strings, optional keys missing, and an item of an unknown kind
    /// after every item posted while it is on.
    pub fn set_drift(&self, on: bool) {
        self.world().settings.drift = on;
    }

    /// Every cursor handed out so far goes stale (as when Instagram drops its state).
    pub fn invalidate_cursors(&self) {
        self.world().cursors.clear();
    }

    /// The inbox `seq_id` `pk` sees now; it grows with every change `pk` can see.
    pub fn seq_id(&self, pk: u64) -> Result<u64, SimError> {
        let world = self.world();
        world.account(pk)?;
        Ok(world.seq_id(pk))
    }

    // ---- more of the other side ----

    /// The sender edits a text item (`is_edited`, `edit_count`, `last_edited_at` appear; the
    /// thread's activity moves).
    pub fn edit_text(
        &self,
        thread_id: &str,
        item_id_text: &str,
        text: &str,
    ) -> Result<(), SimError> {
        self.world()
            .edit_text(thread_id, item_id(item_id_text)?, None, text)
    }

    /// `from` writes to `to` directly: into their 1:1 thread, or a new thread that lands in
    /// `to`'s pending inbox (a message request). Returns (thread_id, item_id).
    pub fn message_user(
        &self,
        from: u64,
        to: u64,
        kind: ItemKind,
    ) -> Result<(String, String), SimError> {
        let (thread_id, item_id) = self.world().message_user(from, to, kind)?;
        Ok((thread_id, item_id.to_string()))
    }

    /// `actor` adds members to a group ("X added Y to the group." action_log).
    pub fn add_members(&self, thread_id: &str, actor: u64, pks: &[u64]) -> Result<(), SimError> {
        self.world().add_users(thread_id, actor, pks)
    }

    /// `actor` removes `pk` ("X removed Y from the group."; `pk` moves to `left_users`).
    pub fn remove_member(&self, thread_id: &str, actor: u64, pk: u64) -> Result<(), SimError> {
        self.world().remove_member(thread_id, actor, pk)
    }

    /// `pk` leaves the group ("X left the group.").
    pub fn leave_group(&self, thread_id: &str, pk: u64) -> Result<(), SimError> {
        self.world().leave(thread_id, pk)
    }

    /// `actor` renames the group ("X named the group T.").
    pub fn rename_group(&self, thread_id: &str, actor: u64, title: &str) -> Result<(), SimError> {
        self.world().update_title(thread_id, actor, title)
    }

    /// `actor` sets a new group picture ("X changed the group photo."); returns the blob
    /// name of the picture (`thread_image` in thread objects).
    pub fn set_group_picture(&self, thread_id: &str, actor: u64) -> Result<String, SimError> {
        self.world().set_group_picture(thread_id, actor)
    }

    /// The media files an item points at: name, fresh signed URL, type, size, dimensions,
    /// duration.
    pub fn item_media(
        &self,
        thread_id: &str,
        item_id_text: &str,
    ) -> Result<Vec<MediaInfo>, SimError> {
        self.world().item_media(thread_id, item_id(item_id_text)?)
    }

    /// A freshly signed URL of a media blob, by name, as the CDN hands it out.
    pub fn signed_media_url(&self, name: &str) -> String {
        let world = self.world();
        let mut url = serde_json::Value::String(world.media_url(name));
        world.sign_media_urls(&mut url);
        url.as_str().unwrap_or_default().to_owned()
    }

    /// The bytes of a media blob, by name (no signature needed).
    pub fn media_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.world().blobs.get(name).map(|blob| blob.bytes.clone())
    }

    /// Loads the demo dataset (see README.md) and returns its accounts and threads.
    pub fn seed_demo(&self) -> Result<DemoSeed, SimError> {
        seed::seed_demo(&mut self.world())
    }
}
