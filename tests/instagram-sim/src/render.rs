//! Response JSON, built from the recorded fixtures in tests/fixtures/instagram so that key
//! sets, key order and value types stay those of real Instagram responses.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::world::{ItemRecord, Presence, ThreadRecord, World};

macro_rules! fixture_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../fixtures/instagram/", $name, ".json")))),*]
    };
}

const FIXTURES: &[(&str, &str)] = fixture_files!(
    "inbox",
    "inbox_page2_older",
    "thread_dm",
    "broadcast_text",
    "broadcast_indicate_activity",
    "item_seen",
    "current_user",
    "user_info",
    "users_search",
    "search_secondary",
    "fetch_and_subscribe_presence",
    "get_presence",
    "errors/login_required_403",
    "errors/login_required_legacy_403",
    "errors/user_has_logged_out_403",
    "errors/checkpoint_required_400",
    "errors/challenge_required_400",
    "errors/rate_limit_429",
    "errors/thread_does_not_exist_400",
    "errors/not_found_404_json",
    "errors/server_error_500",
    "errors/feedback_required_direct_400",
    "items/text",
    "items/link",
    "items/media_image",
    "items/media_video",
    "items/voice_media",
    "items/animated_media",
    "items/like",
    "items/action_log",
    "items/placeholder",
    "items/media_share",
    "items/xma_media_share",
    "items/clip",
    "items/xma_clip",
    "items/reel_share",
    "items/story_share",
    "items/xma_story_share",
    "items/xma_reel_share",
    "items/xma_reel_mention",
    "items/felix_share",
    "items/profile",
    "items/xma_profile",
    "items/location",
    "items/raven_media",
);

/// Item types that have a fixture under items/ (and so can be posted without a payload).
const ITEM_TEMPLATES: &[&str] = &[
    "text",
    "link",
    "voice_media",
    "animated_media",
    "like",
    "action_log",
    "placeholder",
    "media_share",
    "xma_media_share",
    "clip",
    "xma_clip",
    "reel_share",
    "story_share",
    "xma_story_share",
    "xma_reel_share",
    "xma_reel_mention",
    "felix_share",
    "profile",
    "xma_profile",
    "location",
    "raven_media",
];

fn fixtures() -> &'static HashMap<&'static str, Value> {
    static PARSED: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut parsed: HashMap<&'static str, Value> = FIXTURES
            .iter()
            .map(|(name, text)| {
                let value = serde_json::from_str(text)
                    .unwrap_or_else(|error| panic!("fixture {name}.json does not parse: {error}"));
                (*name, value)
            })
            .collect();
        // Parts of big fixtures, cut out once so each response clones only what it needs.
        let inbox = &parsed["inbox"];
        let mut empty_inbox = inbox.clone();
        empty_inbox["inbox"]["threads"] = json!([]);
        let mut empty_thread = parsed["thread_dm"]["thread"].clone();
        empty_thread["items"] = json!([]);
        empty_thread["users"] = json!([]);
        let derived = [
            ("part/inbox", empty_inbox),
            ("part/viewer", inbox["viewer"].clone()),
            (
                "part/thread_user",
                inbox["inbox"]["threads"][0]["users"][0].clone(),
            ),
            ("part/thread", empty_thread),
            (
                "part/last_page_cursors",
                parsed["inbox_page2_older"]["inbox"].clone(),
            ),
            (
                "part/search_user",
                parsed["users_search"]["users"][0].clone(),
            ),
        ];
        parsed.extend(derived);
        parsed
    })
}

fn fixture_ref(name: &str) -> &'static Value {
    fixtures()
        .get(name)
        .unwrap_or_else(|| panic!("fixture {name} is not embedded"))
}

/// A copy of a fixture file's JSON (`name` without `.json`).
pub fn fixture(name: &str) -> Value {
    fixture_ref(name).clone()
}

/// The response body of an error fixture (`errors/NAME.json`'s `body`).
pub fn error_body(name: &str) -> Value {
    fixture_ref(&format!("errors/{name}"))["body"].clone()
}

pub fn item_template_name(item_type: &str) -> Option<&'static str> {
    ITEM_TEMPLATES
        .iter()
        .find(|template| **template == item_type)
        .copied()
}

/// The key an item's payload sits under (raven_media keeps it under `visual_media`).
fn payload_key(item_type: &str) -> &str {
    match item_type {
        "raven_media" => "visual_media",
        other => other,
    }
}

/// The payload of an item fixture, as the starting point of a new item's payload.
pub fn item_payload_template(template: &str, item_type: &str) -> Value {
    fixture_ref(&format!("items/{template}"))[payload_key(item_type)].clone()
}

fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

fn remove(object: &mut Value, key: &str) {
    if let Some(map) = object.as_object_mut() {
        map.shift_remove(key);
    }
}

/// An item as `viewer` sees it (`None`: a neutral view, for snapshots).
pub fn item(item: &ItemRecord, viewer: Option<u64>) -> Value {
    let mut value = fixture(&format!("items/{}", item.template));
    let template_type = value["item_type"].as_str().unwrap_or("text").to_owned();
    let sent_by_viewer = viewer == Some(item.user_id);
    set(&mut value, "item_id", json!(item.item_id.to_string()));
    if value.get("message_id").is_some() {
        set(&mut value, "message_id", json!(item.message_id));
    }
    set(&mut value, "user_id", json!(item.user_id));
    set(&mut value, "timestamp", json!(item.timestamp_us));
    set(&mut value, "item_type", json!(item.item_type));
    set(&mut value, "client_context", json!(item.client_context));
    set(&mut value, "otid", json!(item.client_context));
    set(&mut value, "is_sent_by_viewer", json!(sent_by_viewer));
    set(&mut value, "uq_seq_id", json!(item.uq_seq_id));
    if sent_by_viewer {
        remove(&mut value, "send_attribution");
    } else if value.get("send_attribution").is_none() && value.get("message_id").is_some() {
        set(
            &mut value,
            "send_attribution",
            json!("igd_inbox_thread_list"),
        );
    }
    let key = payload_key(&item.item_type);
    if payload_key(&template_type) != key {
        remove(&mut value, payload_key(&template_type));
    }
    set(&mut value, key, item.payload.clone());
    remove(&mut value, "replied_to_message");
    remove(&mut value, "reactions");
    if let Some(replied) = &item.replied_to {
        set(
            &mut value,
            "replied_to_message",
            replied_item(replied, viewer),
        );
    }
    if !item.reactions.is_empty() {
        set(&mut value, "reactions", reactions(item));
    }
    // No REST capture shows an edited item; these follow the app's edit count and the
    // timestamps of the other transports (WRITE-FLOWS.md §1).
    if let Some(edited) = item.edited {
        set(&mut value, "is_edited", json!(true));
        set(&mut value, "edit_count", json!(edited.count));
        set(&mut value, "last_edited_at", json!(edited.at_us));
    }
    value
}

/// The short form of an item nested as `replied_to_message` (text_reply.json).
fn replied_item(item: &ItemRecord, viewer: Option<u64>) -> Value {
    let mut value = json!({
        "item_id": item.item_id.to_string(),
        "message_id": item.message_id,
        "user_id": item.user_id,
        "timestamp": item.timestamp_us,
        "item_type": item.item_type,
    });
    set(
        &mut value,
        payload_key(&item.item_type),
        item.payload.clone(),
    );
    set(&mut value, "client_context", json!(item.client_context));
    set(
        &mut value,
        "is_sent_by_viewer",
        json!(viewer == Some(item.user_id)),
    );
    set(&mut value, "is_shh_mode", json!(false));
    value
}

fn reactions(item: &ItemRecord) -> Value {
    let likes: Vec<Value> = item
        .reactions
        .iter()
        .filter(|reaction| reaction.emoji.is_none())
        .map(|reaction| {
            json!({
                "sender_id": reaction.sender_id,
                "timestamp": reaction.timestamp_us,
                "client_context": reaction.client_context,
                "super_react_type": "none",
            })
        })
        .collect();
    let emojis: Vec<Value> = item
        .reactions
        .iter()
        .filter_map(|reaction| {
            let emoji = reaction.emoji.as_ref()?;
            Some(json!({
                "timestamp": reaction.timestamp_us,
                "client_context": reaction.client_context,
                "sender_id": reaction.sender_id,
                "emoji": emoji,
                "super_react_type": "none",
            }))
        })
        .collect();
    json!({"likes_count": likes.len(), "likes": likes, "emojis": emojis})
}

fn short_name(full_name: &str) -> &str {
    full_name.split_whitespace().next().unwrap_or(full_name)
}

/// A user as listed in a thread's `users` (and `inviter`).
pub fn thread_user(world: &World, pk: u64) -> Value {
    let mut value = fixture("part/thread_user");
    let Some(account) = world.accounts.get(&pk) else {
        return value;
    };
    set(&mut value, "pk", json!(pk));
    set(&mut value, "pk_id", json!(pk.to_string()));
    set(&mut value, "full_name", json!(account.full_name));
    set(&mut value, "username", json!(account.username));
    set(
        &mut value,
        "short_name",
        json!(short_name(&account.full_name)),
    );
    set(
        &mut value,
        "profile_pic_url",
        json!(profile_pic_url(world, pk)),
    );
    set(
        &mut value,
        "profile_pic_id",
        json!(format!("{}_{pk}", pk % 1_000_000)),
    );
    set(
        &mut value,
        "interop_messaging_user_fbid",
        json!(pk + 7_200_000_000_000),
    );
    set(&mut value, "fbid_v2", json!(pk + 55_000_000_000));
    set(&mut value, "strong_id__", json!(pk.to_string()));
    value
}

pub fn profile_pic_url(world: &World, pk: u64) -> String {
    world.media_url(&format!("profile_{pk}.png"))
}

/// Overwrites the common user fields of a user-shaped fixture object.
fn fill_user(world: &World, value: &mut Value, pk: u64) {
    let Some(account) = world.accounts.get(&pk) else {
        return;
    };
    set(value, "pk", json!(pk));
    set(value, "pk_id", json!(pk.to_string()));
    set(value, "username", json!(account.username));
    set(value, "full_name", json!(account.full_name));
    set(value, "profile_pic_url", json!(profile_pic_url(world, pk)));
    if value.get("strong_id__").is_some() {
        set(value, "strong_id__", json!(pk.to_string()));
    }
    if value.get("id").is_some() {
        set(value, "id", json!(pk.to_string()));
    }
    if value.get("fbid_v2").is_some() {
        set(value, "fbid_v2", json!(pk + 55_000_000_000));
    }
    if value.get("interop_messaging_user_fbid").is_some() {
        set(
            value,
            "interop_messaging_user_fbid",
            json!(pk + 7_200_000_000_000),
        );
    }
}

/// The inbox's `viewer` object.
pub fn viewer(world: &World, pk: u64) -> Value {
    let mut value = fixture("part/viewer");
    fill_user(world, &mut value, pk);
    value
}

/// `accounts/current_user/` body.
pub fn current_user(world: &World, pk: u64) -> Value {
    let mut body = fixture("current_user");
    fill_user(world, &mut body["user"], pk);
    if let Some(account) = world.accounts.get(&pk) {
        body["user"]["email"] = json!(format!("{}@example.com", account.username));
    }
    body
}

/// `users/{pk}/info/` and `users/{username}/usernameinfo/` body.
pub fn user_info(world: &World, pk: u64) -> Value {
    let mut body = fixture("user_info");
    fill_user(world, &mut body["user"], pk);
    body
}

/// One entry of `users/search/`.
pub fn search_user(world: &World, pk: u64) -> Value {
    let mut value = fixture("part/search_user");
    fill_user(world, &mut value, pk);
    value
}

/// A thread as `viewer` sees it, holding `items` (newest first).
pub fn thread(
    world: &World,
    thread: &ThreadRecord,
    viewer: Option<u64>,
    items: &[&ItemRecord],
    has_older: bool,
    has_newer: bool,
) -> Value {
    let mut value = fixture("part/thread");
    let viewer_state = viewer.map(|pk| thread.state(pk)).unwrap_or_default();
    let others: Vec<u64> = thread
        .members
        .iter()
        .copied()
        .filter(|pk| Some(*pk) != viewer)
        .collect();
    set(&mut value, "has_older", json!(has_older));
    set(&mut value, "has_newer", json!(has_newer));
    set(&mut value, "pending", json!(viewer_state.pending));
    set(
        &mut value,
        "items",
        Value::Array(items.iter().map(|record| item(record, viewer)).collect()),
    );
    set(&mut value, "canonical", json!(!thread.is_group));
    set(&mut value, "thread_id", json!(thread.thread_id));
    set(
        &mut value,
        "thread_v2_id",
        json!(thread.thread_v2_id.to_string()),
    );
    set(
        &mut value,
        "users",
        Value::Array(others.iter().map(|pk| thread_user(world, *pk)).collect()),
    );
    set(
        &mut value,
        "viewer_id",
        json!(viewer.unwrap_or(thread.creator)),
    );
    set(&mut value, "muted", json!(viewer_state.muted));
    set(&mut value, "admin_user_ids", json!(thread.admins));
    set(&mut value, "archived", json!(viewer_state.hidden));
    set(
        &mut value,
        "oldest_cursor",
        items
            .last()
            .map_or(Value::Null, |record| json!(record.item_id.to_string())),
    );
    set(
        &mut value,
        "newest_cursor",
        items
            .first()
            .map_or(Value::Null, |record| json!(record.item_id.to_string())),
    );
    match thread.items.last() {
        Some(newest) => set(&mut value, "last_permanent_item", item(newest, viewer)),
        None => remove(&mut value, "last_permanent_item"),
    }
    let title = match (&thread.title, thread.is_group) {
        (Some(title), _) => title.clone(),
        (None, false) => others
            .first()
            .and_then(|pk| world.accounts.get(pk))
            .map_or_else(String::new, |account| account.full_name.clone()),
        (None, true) => others
            .iter()
            .filter_map(|pk| world.accounts.get(pk))
            .map(|account| short_name(&account.full_name).to_owned())
            .collect::<Vec<_>>()
            .join(", "),
    };
    set(&mut value, "thread_title", json!(title));
    if let Some(image) = &thread.image {
        // Constructed: no capture of a group picture was found; the shape of a media's
        // `image_versions2`.
        set(
            &mut value,
            "thread_image",
            json!({"image_versions2": {"candidates": [{"width": 96, "height": 96, "url": world.media_url(image)}]}}),
        );
    }
    set(&mut value, "is_group", json!(thread.is_group));
    let last_activity = thread.last_activity_us();
    set(
        &mut value,
        "last_activity_at",
        json!(last_activity / 1000 * 1000),
    );
    let last_non_sender = thread
        .items
        .iter()
        .rev()
        .find(|record| Some(record.user_id) != viewer)
        .map_or(last_activity, |record| record.timestamp_us);
    set(
        &mut value,
        "last_non_sender_item_at",
        json!(last_non_sender),
    );
    set(
        &mut value,
        "marked_as_unread",
        json!(viewer_state.marked_as_unread),
    );
    set(
        &mut value,
        "messaging_thread_key",
        json!(thread.messaging_thread_key),
    );
    let mut last_seen_at = Map::new();
    for pk in &thread.members {
        if let Some((item_id, timestamp)) = thread.state(*pk).last_seen {
            last_seen_at.insert(
                pk.to_string(),
                json!({
                    "item_id": item_id.to_string(),
                    "timestamp": timestamp.to_string(),
                    "created_at": timestamp.to_string(),
                    "shh_seen_state": {},
                }),
            );
        }
    }
    set(&mut value, "last_seen_at", Value::Object(last_seen_at));
    set(&mut value, "inviter", thread_user(world, thread.creator));
    set(&mut value, "thread_type", json!("private"));
    let unread = viewer.is_some_and(|pk| thread.is_unread_for(pk));
    set(&mut value, "read_state", json!(u8::from(unread)));
    set(
        &mut value,
        "left_users",
        Value::Array(
            thread
                .left
                .iter()
                .map(|pk| thread_user(world, *pk))
                .collect(),
        ),
    );
    set(&mut value, "named", json!(thread.title.is_some()));
    set(&mut value, "uq_seq_id", json!(thread.next_uq_seq_id));
    if viewer_state.pending {
        set(&mut value, "pending_score", json!(last_activity));
        set(&mut value, "valued_request", json!(false));
    }
    value
}

/// One `user_presence` entry: the shape of `fetch_and_subscribe_presence.json` (with
/// `user_id` and `in_threads`) or of `get_presence.json`.
pub fn presence_entry(subscribed: bool, pk: u64, presence: Presence) -> Value {
    let fixture_name = if subscribed {
        "fetch_and_subscribe_presence"
    } else {
        "get_presence"
    };
    // Both fixtures hold an entry for this pk; it is the template of every entry.
    let mut value = fixture_ref(fixture_name)["user_presence"]["17841400000000002"].clone();
    if value.get("user_id").is_some() {
        set(&mut value, "user_id", json!(pk.to_string()));
    }
    set(&mut value, "is_active", json!(presence.is_active));
    set(
        &mut value,
        "last_activity_at_ms",
        json!(presence.last_activity_at_ms),
    );
    value
}

/// The inbox response wrapper (`inbox.json`) around rendered threads.
pub struct InboxPage {
    pub threads: Vec<Value>,
    /// (last activity µs, thread_v2_id) of the first and last thread on the page.
    pub first: Option<(u64, u64)>,
    pub last: Option<(u64, u64)>,
    pub has_older: bool,
    pub oldest_cursor: Option<String>,
    pub unseen_count: usize,
    pub pending_count: usize,
}

pub fn inbox(world: &World, viewer_pk: u64, page: InboxPage) -> Value {
    let mut body = fixture("part/inbox");
    set(&mut body, "viewer", viewer(world, viewer_pk));
    let inbox = &mut body["inbox"];
    set(inbox, "threads", Value::Array(page.threads));
    set(inbox, "has_older", json!(page.has_older));
    set(inbox, "unseen_count", json!(page.unseen_count));
    set(
        inbox,
        "unseen_count_ts",
        json!(crate::world::now_ms() * 1000),
    );
    match page.oldest_cursor {
        Some(cursor) => set(inbox, "oldest_cursor", json!(cursor)),
        None => remove(inbox, "oldest_cursor"),
    }
    let sentinels = fixture_ref("part/last_page_cursors");
    let cursor = |bound: Option<(u64, u64)>, sentinel: &Value| {
        bound.map_or_else(
            || sentinel.clone(),
            |(activity_us, v2)| {
                json!({
                    "cursor_timestamp_seconds": activity_us / 1_000_000,
                    "cursor_relevancy_score": 0,
                    "cursor_thread_v2_id": v2,
                })
            },
        )
    };
    set(
        inbox,
        "prev_cursor",
        cursor(page.first, &sentinels["prev_cursor"]),
    );
    let next = if page.has_older { page.last } else { None };
    set(
        inbox,
        "next_cursor",
        cursor(next, &sentinels["next_cursor"]),
    );
    set(inbox, "pinned_threads", json!([]));
    set(&mut body, "seq_id", json!(world.seq_id(viewer_pk)));
    set(&mut body, "snapshot_at_ms", json!(crate::world::now_ms()));
    set(
        &mut body,
        "pending_requests_total",
        json!(page.pending_count),
    );
    set(&mut body, "has_pending_top_requests", json!(false));
    set(
        &mut body,
        "unread_pending_requests",
        json!(page.pending_count),
    );
    body
}
