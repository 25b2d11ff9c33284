//! The control API under `/_sim/...` (JSON in, JSON out): the same powers as the
//! [`crate::Simulator`] methods, for tests that drive the `instagram-sim` binary.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::SimError;
use crate::render;
use crate::session::SessionEnd;
use crate::settings::SettingsChange;
use crate::world::{parse_item_id, Fault, Presence, World};
use crate::SharedWorld;

pub(crate) fn router() -> Router<SharedWorld> {
    Router::new()
        .route("/accounts", post(create_account))
        .route("/accounts/{pk}/sessions", post(new_session))
        .route("/accounts/{pk}/two_factor", post(set_two_factor))
        .route("/accounts/{pk}/challenge", post(flag_challenge))
        .route("/accounts/{pk}/expire_session", post(expire_session))
        .route("/accounts/{pk}/checkpoint", post(flag_checkpoint))
        .route("/accounts/{pk}/kill_sessions", post(kill_sessions))
        .route("/accounts/{pk}/strikes", get(strikes))
        .route("/accounts/{pk}/presence", get(presence).post(set_presence))
        .route("/threads", post(create_thread))
        .route("/threads/{thread_id}", get(thread_snapshot))
        .route("/threads/{thread_id}/pending", post(set_pending))
        .route("/threads/{thread_id}/typing", post(set_typing))
        .route("/threads/{thread_id}/items", post(post_item))
        .route("/threads/{thread_id}/items/{item_id}/react", post(react))
        .route(
            "/threads/{thread_id}/items/{item_id}/unreact",
            post(unreact),
        )
        .route("/threads/{thread_id}/items/{item_id}/unsend", post(unsend))
        .route("/threads/{thread_id}/items/{item_id}/seen", post(mark_seen))
        .route("/faults", post(inject_fault).delete(clear_faults))
        .route("/rate_limit", post(set_rate_limit).delete(clear_rate_limit))
        .route("/requests", get(request_log).delete(clear_request_log))
        .route("/requests/count", get(request_count))
        .route("/seed/demo", post(seed_demo))
        .route("/settings", get(settings).post(change_settings))
        .route("/cursors/invalidate", post(invalidate_cursors))
        .route("/accounts/{pk}/seq_id", get(seq_id))
        .route("/accounts/{pk}/messages", post(message_user))
        .route("/threads/{thread_id}/items/{item_id}/edit", post(edit_text))
        .route(
            "/threads/{thread_id}/items/{item_id}/media",
            get(item_media),
        )
        .route("/threads/{thread_id}/members", post(add_members))
        .route(
            "/threads/{thread_id}/members/{pk}/remove",
            post(remove_member),
        )
        .route("/threads/{thread_id}/leave", post(leave_group))
        .route("/threads/{thread_id}/title", post(rename_group))
        .route("/threads/{thread_id}/picture", post(set_group_picture))
        .route("/media/{name}", get(media_bytes))
}

fn reply(result: Result<Value, SimError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => {
            let status = match error {
                SimError::ThreadNotFound { .. }
                | SimError::ItemNotFound { .. }
                | SimError::UserNotFound { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, Json(json!({"error": error.to_string()}))).into_response()
        }
    }
}

/// The answer to a change: `{}` or the error.
fn done(result: Result<(), SimError>) -> Response {
    reply(result.map(|()| json!({})))
}

fn item_id(text: &str) -> Result<u128, SimError> {
    parse_item_id(text).ok_or(SimError::BadParameter { name: "item_id" })
}

/// Runs a change on the item named in the path (`items/{item_id}/...`).
fn on_item(item: &str, change: impl FnOnce(u128) -> Result<(), SimError>) -> Response {
    done(item_id(item).and_then(change))
}

/// The thread as stored, for assertions on what the bridge's writes changed (media URLs
/// freshly signed).
pub(crate) fn snapshot(world: &World, thread_id: &str) -> Result<Value, SimError> {
    let mut snapshot = unsigned_snapshot(world, thread_id)?;
    world.sign_media_urls(&mut snapshot);
    Ok(snapshot)
}

fn unsigned_snapshot(world: &World, thread_id: &str) -> Result<Value, SimError> {
    let thread = world.thread(thread_id)?;
    let items: Vec<Value> = thread
        .items
        .iter()
        .rev()
        .map(|item| render::item(item, None))
        .collect();
    let mut member_state = Map::new();
    for pk in thread.members.iter().chain(thread.left.iter()) {
        let state = thread.state(*pk);
        member_state.insert(
            pk.to_string(),
            json!({
                "muted": state.muted,
                "hidden": state.hidden,
                "archived": state.hidden,
                "marked_as_unread": state.marked_as_unread,
                "pending": state.pending,
                "unread": thread.is_unread_for(*pk),
                "last_seen_at": state.last_seen.map(|(item_id, timestamp)| json!({"item_id": item_id.to_string(), "timestamp": timestamp.to_string()})),
                "typing": state.typing.map(|typing| json!({"activity_status": typing.activity_status, "at_ms": typing.at_ms})),
            }),
        );
    }
    Ok(json!({
        "thread_id": thread.thread_id,
        "thread_v2_id": thread.thread_v2_id.to_string(),
        "is_group": thread.is_group,
        "title": thread.title,
        "creator": thread.creator,
        "members": thread.members,
        "left_users": thread.left,
        "admin_user_ids": thread.admins,
        "last_activity_at": thread.last_activity_us(),
        "image": thread.image.as_ref().map(|name| world.media_url(name)),
        "items": items,
        "member_state": member_state,
    }))
}

#[derive(Deserialize)]
struct NewAccount {
    username: String,
    full_name: String,
    password: Option<String>,
}

async fn create_account(
    State(shared): State<SharedWorld>,
    Json(body): Json<NewAccount>,
) -> Response {
    let mut world = crate::lock(&shared);
    reply(
        world
            .create_account(&body.username, &body.full_name, body.password.as_deref())
            .map(|account| json!(account)),
    )
}

async fn new_session(State(shared): State<SharedWorld>, Path(pk): Path<u64>) -> Response {
    let mut world = crate::lock(&shared);
    reply(world.account(pk).map(|_| ()).map(|()| {
        let cookies = world.new_session(pk, &crate::world::random_token(32));
        json!(cookies)
    }))
}

#[derive(Deserialize)]
struct TwoFactor {
    code: Option<String>,
}

async fn set_two_factor(
    State(shared): State<SharedWorld>,
    Path(pk): Path<u64>,
    Json(body): Json<TwoFactor>,
) -> Response {
    done(crate::lock(&shared).set_two_factor(pk, body.code))
}

#[derive(Deserialize)]
struct Challenge {
    #[serde(default = "flagged_by_default")]
    flagged: bool,
}

fn flagged_by_default() -> bool {
    true
}

async fn flag_challenge(
    State(shared): State<SharedWorld>,
    Path(pk): Path<u64>,
    body: Option<Json<Challenge>>,
) -> Response {
    let flagged = body.is_none_or(|Json(challenge)| challenge.flagged);
    done(crate::lock(&shared).flag_challenge(pk, flagged))
}

async fn flag_checkpoint(
    State(shared): State<SharedWorld>,
    Path(pk): Path<u64>,
    body: Option<Json<Challenge>>,
) -> Response {
    let flagged = body.is_none_or(|Json(checkpoint)| checkpoint.flagged);
    done(crate::lock(&shared).flag_checkpoint(pk, flagged))
}

#[derive(Deserialize)]
struct KillSessions {
    #[serde(default = "logged_in_elsewhere")]
    end: SessionEnd,
}

fn logged_in_elsewhere() -> SessionEnd {
    SessionEnd::LoggedInElsewhere
}

async fn kill_sessions(
    State(shared): State<SharedWorld>,
    Path(pk): Path<u64>,
    body: Option<Json<KillSessions>>,
) -> Response {
    let end = body.map_or_else(logged_in_elsewhere, |Json(kill)| kill.end);
    done(crate::lock(&shared).kill_sessions(pk, end))
}

async fn strikes(State(shared): State<SharedWorld>, Path(pk): Path<u64>) -> Response {
    reply(
        crate::lock(&shared)
            .strikes(pk)
            .map(|strikes| json!({ "strikes": strikes })),
    )
}

async fn expire_session(State(shared): State<SharedWorld>, Path(pk): Path<u64>) -> Response {
    done(crate::lock(&shared).expire_sessions(pk))
}

async fn presence(State(shared): State<SharedWorld>, Path(pk): Path<u64>) -> Response {
    reply(
        crate::lock(&shared)
            .account(pk)
            .map(|account| json!(account.presence)),
    )
}

async fn set_presence(
    State(shared): State<SharedWorld>,
    Path(pk): Path<u64>,
    Json(body): Json<Presence>,
) -> Response {
    done(crate::lock(&shared).set_presence(pk, body))
}

#[derive(Deserialize)]
struct NewThread {
    owner_pk: u64,
    other_pks: Vec<u64>,
    title: Option<String>,
}

async fn create_thread(State(shared): State<SharedWorld>, Json(body): Json<NewThread>) -> Response {
    reply(
        crate::lock(&shared)
            .create_thread(body.owner_pk, &body.other_pks, body.title.as_deref())
            .map(|thread_id| json!({"thread_id": thread_id})),
    )
}

async fn thread_snapshot(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
) -> Response {
    reply(snapshot(&crate::lock(&shared), &thread_id))
}

#[derive(Deserialize)]
struct Pending {
    pk: u64,
    pending: bool,
}

async fn set_pending(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
    Json(body): Json<Pending>,
) -> Response {
    done(crate::lock(&shared).set_pending(&thread_id, body.pk, body.pending))
}

#[derive(Deserialize)]
struct TypingChange {
    pk: u64,
    activity_status: u8,
}

async fn set_typing(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
    Json(body): Json<TypingChange>,
) -> Response {
    done(crate::lock(&shared).set_typing(&thread_id, body.pk, body.activity_status))
}

#[derive(Deserialize)]
struct NewItem {
    from_pk: u64,
    text: Option<String>,
    item: Option<Value>,
    replied_to_item_id: Option<String>,
    client_context: Option<String>,
}

async fn post_item(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
    Json(body): Json<NewItem>,
) -> Response {
    let result = (|| {
        let kind = match (body.item, body.text) {
            (Some(item), _) => item,
            (None, Some(text)) => json!({"item_type": "text", "text": text}),
            (None, None) => return Err(SimError::BadParameter { name: "item" }),
        };
        let replied_to = body
            .replied_to_item_id
            .as_deref()
            .map(item_id)
            .transpose()?;
        let item_id = crate::lock(&shared).append_item(
            &thread_id,
            body.from_pk,
            kind,
            body.client_context,
            replied_to,
        )?;
        Ok(json!({"item_id": item_id.to_string()}))
    })();
    reply(result)
}

#[derive(Deserialize)]
struct ReactionChange {
    from_pk: u64,
    emoji: Option<String>,
}

async fn react(
    State(shared): State<SharedWorld>,
    Path((thread_id, item)): Path<(String, String)>,
    Json(body): Json<ReactionChange>,
) -> Response {
    on_item(&item, |item_id| {
        crate::lock(&shared).react(&thread_id, item_id, body.from_pk, body.emoji, None)
    })
}

async fn unreact(
    State(shared): State<SharedWorld>,
    Path((thread_id, item)): Path<(String, String)>,
    Json(body): Json<ReactionChange>,
) -> Response {
    on_item(&item, |item_id| {
        crate::lock(&shared).unreact(&thread_id, item_id, body.from_pk)
    })
}

async fn unsend(
    State(shared): State<SharedWorld>,
    Path((thread_id, item)): Path<(String, String)>,
) -> Response {
    on_item(&item, |item_id| {
        crate::lock(&shared).unsend(&thread_id, item_id, None)
    })
}

#[derive(Deserialize)]
struct Seen {
    pk: u64,
}

async fn mark_seen(
    State(shared): State<SharedWorld>,
    Path((thread_id, item)): Path<(String, String)>,
    Json(body): Json<Seen>,
) -> Response {
    on_item(&item, |item_id| {
        crate::lock(&shared).mark_seen(&thread_id, body.pk, item_id)
    })
}

async fn inject_fault(State(shared): State<SharedWorld>, Json(fault): Json<Fault>) -> Response {
    crate::lock(&shared).faults.push(fault);
    done(Ok(()))
}

async fn clear_faults(State(shared): State<SharedWorld>) -> Response {
    crate::lock(&shared).faults.clear();
    done(Ok(()))
}

#[derive(Deserialize)]
struct RateLimit {
    max_requests: usize,
    per_ms: u64,
}

async fn set_rate_limit(
    State(shared): State<SharedWorld>,
    Json(body): Json<RateLimit>,
) -> Response {
    crate::lock(&shared).set_rate_limit(Some((
        body.max_requests,
        Duration::from_millis(body.per_ms),
    )));
    done(Ok(()))
}

async fn clear_rate_limit(State(shared): State<SharedWorld>) -> Response {
    crate::lock(&shared).set_rate_limit(None);
    done(Ok(()))
}

async fn request_log(State(shared): State<SharedWorld>) -> Response {
    reply(Ok(json!(crate::lock(&shared).request_log())))
}

async fn clear_request_log(State(shared): State<SharedWorld>) -> Response {
    crate::lock(&shared).clear_request_log();
    done(Ok(()))
}

#[derive(Deserialize)]
struct CountQuery {
    method: String,
    path: String,
}

async fn request_count(
    State(shared): State<SharedWorld>,
    Query(query): Query<CountQuery>,
) -> Response {
    let count = crate::lock(&shared).request_count(&query.method, &query.path);
    reply(Ok(json!({"count": count})))
}

async fn seed_demo(State(shared): State<SharedWorld>) -> Response {
    reply(crate::seed::seed_demo(&mut crate::lock(&shared)).map(|seed| json!(seed)))
}

async fn settings(State(shared): State<SharedWorld>) -> Response {
    reply(Ok(json!(crate::lock(&shared).settings)))
}

async fn change_settings(
    State(shared): State<SharedWorld>,
    Json(change): Json<SettingsChange>,
) -> Response {
    let mut world = crate::lock(&shared);
    change.apply(&mut world.settings);
    reply(Ok(json!(world.settings)))
}

async fn invalidate_cursors(State(shared): State<SharedWorld>) -> Response {
    crate::lock(&shared).cursors.clear();
    done(Ok(()))
}

async fn seq_id(State(shared): State<SharedWorld>, Path(pk): Path<u64>) -> Response {
    let world = crate::lock(&shared);
    reply(
        world
            .account(pk)
            .map(|_| json!({"seq_id": world.seq_id(pk)})),
    )
}

#[derive(Deserialize)]
struct DirectMessage {
    from_pk: u64,
    text: Option<String>,
    item: Option<Value>,
}

async fn message_user(
    State(shared): State<SharedWorld>,
    Path(to): Path<u64>,
    Json(body): Json<DirectMessage>,
) -> Response {
    let kind = match (body.item, body.text) {
        (Some(item), _) => item,
        (None, Some(text)) => json!({"item_type": "text", "text": text}),
        (None, None) => return reply(Err(SimError::BadParameter { name: "item" })),
    };
    reply(
        crate::lock(&shared)
            .message_user(body.from_pk, to, kind)
            .map(|(thread_id, item_id)| json!({"thread_id": thread_id, "item_id": item_id.to_string()})),
    )
}

#[derive(Deserialize)]
struct Edit {
    text: String,
}

async fn edit_text(
    State(shared): State<SharedWorld>,
    Path((thread_id, item)): Path<(String, String)>,
    Json(body): Json<Edit>,
) -> Response {
    on_item(&item, |item_id| {
        crate::lock(&shared).edit_text(&thread_id, item_id, None, &body.text)
    })
}

async fn item_media(
    State(shared): State<SharedWorld>,
    Path((thread_id, item)): Path<(String, String)>,
) -> Response {
    reply(item_id(&item).and_then(|item_id| {
        crate::lock(&shared)
            .item_media(&thread_id, item_id)
            .map(|media| json!(media))
    }))
}

#[derive(Deserialize)]
struct NewMembers {
    actor_pk: u64,
    pks: Vec<u64>,
}

async fn add_members(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
    Json(body): Json<NewMembers>,
) -> Response {
    done(crate::lock(&shared).add_users(&thread_id, body.actor_pk, &body.pks))
}

#[derive(Deserialize)]
struct Actor {
    actor_pk: u64,
}

async fn remove_member(
    State(shared): State<SharedWorld>,
    Path((thread_id, pk)): Path<(String, u64)>,
    Json(body): Json<Actor>,
) -> Response {
    done(crate::lock(&shared).remove_member(&thread_id, body.actor_pk, pk))
}

async fn leave_group(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
    Json(body): Json<Seen>,
) -> Response {
    done(crate::lock(&shared).leave(&thread_id, body.pk))
}

#[derive(Deserialize)]
struct Rename {
    actor_pk: u64,
    title: String,
}

async fn rename_group(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
    Json(body): Json<Rename>,
) -> Response {
    done(crate::lock(&shared).update_title(&thread_id, body.actor_pk, &body.title))
}

async fn set_group_picture(
    State(shared): State<SharedWorld>,
    Path(thread_id): Path<String>,
    Json(body): Json<Actor>,
) -> Response {
    reply(
        crate::lock(&shared)
            .set_group_picture(&thread_id, body.actor_pk)
            .map(|name| json!({"name": name})),
    )
}

/// The bytes of a blob by name, without the URL signature (for comparing downloads).
async fn media_bytes(State(shared): State<SharedWorld>, Path(name): Path<String>) -> Response {
    match crate::lock(&shared).blobs.get(&name) {
        Some(blob) => (
            StatusCode::OK,
            [("content-type", blob.content_type.clone())],
            blob.bytes.clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no media named {name}")})),
        )
            .into_response(),
    }
}
