//! Portals: the Matrix room of one Instagram thread of a login, created on
//! first sight and kept in step with the thread (name, avatar, members),
//! and the login's space that holds them all.
//!
//! Rooms are created by the bot (it keeps power level 100) with the
//! `private_chat` preset. Direct chats are `is_direct` and, like
//! mautrix-instagram's, have no name or avatar of their own: the bot is a
//! service member (`io.element.functional_members`), so clients name and
//! picture the room after the other person's puppet. Groups carry the
//! thread's title and picture.
//!
//! A creation is recorded before `createRoom` and the room carries a marker
//! state event, so a crash between the two finds the room again.

use ruma::api::client::room::create_room::v3::{Request as CreateRoom, RoomPreset};
use ruma::api::client::room::create_room::RoomPowerLevelsContentOverride;
use ruma::serde::Raw;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, TransactionId, UserId};
use serde_json::{json, Value};

use crate::matrix::client::{ClientError, HomeserverClient};
use crate::model::{Conversation, ConversationKind, Participant};
use crate::store::{LoginRecord, PortalRecord};

use super::pictures::{hex_sha256, picture_id};
use super::puppet::ensure_puppet;
use super::relay_error::RelayError;
use super::relay_in::txn_id;
use super::Bridge;

/// The marker state event of the bridge's rooms: `{login, thread_id}`
/// (`thread_id` is empty for a login's space).
pub const MARKER_EVENT: &str = "net.matrix_instagram.portal";

/// The `m.bridge` channel id of a login's space.
const SPACE_CHANNEL: &str = "__personal_filtering_space__";

/// The portal of this conversation: creates the room (direct or group, m.bridge state, space
/// child, puppets joined, user invited) when missing, otherwise brings name, avatar and
/// members up to date. `request` marks a message request (pending inbox).
pub async fn ensure_portal(
    bridge: &Bridge,
    login: &LoginRecord,
    conversation: &Conversation,
    request: bool,
) -> Result<PortalRecord, RelayError> {
    let mut puppets = Vec::new();
    for participant in others(login, conversation) {
        puppets.push(ensure_puppet(bridge, participant).await?);
    }
    let stored = bridge
        .store
        .portal_by_thread(&login.id, &conversation.id)
        .await?;
    let mut portal = match stored {
        Some(portal) => portal,
        None => create_portal(bridge, login, conversation, &puppets, request).await?,
    };
    let before = portal.clone();
    let room_id = parse_room(&portal.room_id)?;
    let members = members_hash(&puppets);
    if portal.members_hash.as_deref() != Some(members.as_str()) {
        sync_members(bridge, &room_id, login, &puppets).await?;
        portal.members_hash = Some(members);
    }
    update_room(bridge, &room_id, login, conversation, request, &mut portal).await?;
    if portal != before {
        bridge.store.update_portal_room(&portal).await?;
    }
    Ok(portal)
}

/// A hash of the puppets that should be in a portal.
fn members_hash(puppets: &[OwnedUserId]) -> String {
    let mut ids: Vec<&str> = puppets.iter().map(|p| p.as_str()).collect();
    ids.sort_unstable();
    hex_sha256(ids.join("\n").as_bytes())
}

/// The participants other than the login's own account.
fn others<'a>(
    login: &'a LoginRecord,
    conversation: &'a Conversation,
) -> impl Iterator<Item = &'a Participant> {
    conversation
        .participants
        .iter()
        .filter(move |participant| Some(&participant.id) != login.ig_user_id.as_ref())
}

fn parse_room(room_id: &str) -> Result<OwnedRoomId, RelayError> {
    RoomId::parse(room_id).map_err(|_| RelayError::InvalidId {
        what: "room id",
        id: room_id.to_owned(),
    })
}

fn parse_user(user_id: &str) -> Result<OwnedUserId, RelayError> {
    UserId::parse(user_id).map_err(|_| RelayError::InvalidId {
        what: "user id",
        id: user_id.to_owned(),
    })
}

/// What the room shows as the channel's name: the group's title, or the
/// other person's name in a direct chat.
fn channel_name(login: &LoginRecord, conversation: &Conversation) -> String {
    chat_title(conversation, login.ig_user_id.as_deref())
        .unwrap_or_else(|| "Instagram chat".to_owned())
}

/// What people call a chat: the group's title, else the names (or
/// usernames) of the participants other than `viewer`; None when there is
/// nobody else.
pub fn chat_title(conversation: &Conversation, viewer: Option<&str>) -> Option<String> {
    if let Some(name) = conversation.name.as_deref().filter(|name| !name.is_empty()) {
        return Some(name.to_owned());
    }
    let names: Vec<&str> = conversation
        .participants
        .iter()
        .filter(|p| Some(p.id.as_str()) != viewer)
        .map(|p| {
            p.name
                .as_deref()
                .filter(|name| !name.is_empty())
                .or(p.handle.as_deref())
                .unwrap_or(&p.id)
        })
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// The `m.bridge` / `uk.half-shot.bridge` content of a channel.
fn bridge_info(bridge: &Bridge, channel_id: &str, channel_name: &str) -> Value {
    let bot = bridge.namespace.bot().as_str();
    json!({
        "bridgebot": bot,
        "creator": bot,
        "protocol": {
            "id": "instagram",
            "displayname": "Instagram",
            "external_url": "https://www.instagram.com/",
        },
        "channel": {"id": channel_id, "displayname": channel_name},
    })
}

/// The state key of a channel's bridge info.
fn bridge_state_key(channel_id: &str) -> String {
    format!("net.matrix-instagram://instagram/{channel_id}")
}

fn state_event(kind: &str, state_key: &str, content: Value) -> Result<Raw<Value>, RelayError> {
    let event = json!({"type": kind, "state_key": state_key, "content": content});
    serde_json::value::to_raw_value(&event)
        .map(Raw::from_json)
        .map_err(|e| RelayError::InvalidId {
            what: "state event",
            id: e.to_string(),
        })
}

/// Creates the portal's room (or finds the one a crashed run created) and
/// saves it at once.
async fn create_portal(
    bridge: &Bridge,
    login: &LoginRecord,
    conversation: &Conversation,
    puppets: &[OwnedUserId],
    request: bool,
) -> Result<PortalRecord, RelayError> {
    let store = &bridge.store;
    let space = ensure_space(bridge, login).await?;
    let direct = conversation.kind == ConversationKind::Direct;
    let mut portal = PortalRecord {
        login_id: login.id.clone(),
        owner: login.mxid.clone(),
        thread_id: conversation.id.clone(),
        room_id: String::new(),
        kind: conversation.kind,
        name: if direct {
            None
        } else {
            conversation.name.clone().filter(|name| !name.is_empty())
        },
        avatar_url: None,
        encrypted: false,
        request,
        request_notice_sent: false,
        avatar_id: None,
        in_space: false,
        members_hash: None,
        created_at: 0,
    };
    let found = if store
        .room_creation_pending(&login.id, &conversation.id)
        .await?
    {
        find_created_room(bridge, login, &conversation.id).await?
    } else {
        None
    };
    let room_id = match found {
        Some(room_id) => room_id,
        None => {
            if !direct {
                if let Some(url) = conversation.picture_url.as_deref() {
                    set_group_picture(bridge, None, url, &mut portal).await;
                }
            }
            store
                .start_room_creation(&login.id, &conversation.id)
                .await?;
            let request = create_request(bridge, login, conversation, puppets, &space, &portal)?;
            bridge
                .client
                .create_room(request, None)
                .await
                .map_err(RelayError::homeserver("creating a portal room"))?
        }
    };
    portal.room_id = room_id.to_string();
    store.upsert_portal(&portal).await?;
    store
        .finish_room_creation(&login.id, &conversation.id)
        .await?;
    tracing::info!(login = %login.id, thread = %conversation.id, room = %room_id, "portal created");
    let partner = puppets.first().filter(|_| direct);
    join_user(bridge, &room_id, login, partner).await;
    Ok(store
        .portal_by_thread(&login.id, &conversation.id)
        .await?
        .unwrap_or(portal))
}

/// The `createRoom` request of a portal.
fn create_request(
    bridge: &Bridge,
    login: &LoginRecord,
    conversation: &Conversation,
    puppets: &[OwnedUserId],
    space: &RoomId,
    portal: &PortalRecord,
) -> Result<CreateRoom, RelayError> {
    let user = parse_user(&login.mxid)?;
    let channel = channel_name(login, conversation);
    let info = bridge_info(bridge, &conversation.id, &channel);
    let state_key = bridge_state_key(&conversation.id);
    let domain = &bridge.config.homeserver.domain;
    let mut initial_state = vec![
        state_event("m.bridge", &state_key, info.clone())?,
        state_event("uk.half-shot.bridge", &state_key, info)?,
        state_event(
            "io.element.functional_members",
            "",
            json!({"service_members": [bridge.namespace.bot().as_str()]}),
        )?,
        state_event(
            MARKER_EVENT,
            "",
            json!({"login": login.id, "thread_id": conversation.id}),
        )?,
        state_event(
            "m.space.parent",
            space.as_str(),
            json!({"via": [domain], "canonical": true}),
        )?,
    ];
    if let Some(avatar) = &portal.avatar_url {
        initial_state.push(state_event("m.room.avatar", "", json!({"url": avatar}))?);
    }
    let mut request = CreateRoom::new();
    request.preset = Some(RoomPreset::PrivateChat);
    request.is_direct = conversation.kind == ConversationKind::Direct;
    request.name = portal.name.clone();
    request.invite = std::iter::once(user)
        .chain(puppets.iter().cloned())
        .collect();
    request.initial_state = initial_state.into_iter().map(Raw::cast_unchecked).collect();
    if conversation.kind == ConversationKind::Group {
        request.power_level_content_override = Some(group_power_levels()?);
    }
    Ok(request)
}

/// Synapse's own defaults for who may send which state, except that in a
/// group everyone may rename the room: the bridge renames the group on
/// Instagram (a direct chat has no name of its own there).
fn group_power_levels() -> Result<Raw<RoomPowerLevelsContentOverride>, RelayError> {
    Raw::new(&json!({"events": {
        "m.room.name": 0,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.canonical_alias": 50,
        "m.room.avatar": 50,
        "m.room.tombstone": 100,
        "m.room.server_acl": 100,
        "m.room.encryption": 100,
    }}))
    .map(Raw::cast_unchecked)
    .map_err(|e| RelayError::InvalidId {
        what: "power levels",
        id: e.to_string(),
    })
}

/// A room a crashed run created for (login, thread) before saving it: one
/// of the bot's rooms whose marker names them.
async fn find_created_room(
    bridge: &Bridge,
    login: &LoginRecord,
    thread_id: &str,
) -> Result<Option<OwnedRoomId>, RelayError> {
    let rooms = bridge
        .client
        .joined_rooms(None)
        .await
        .map_err(RelayError::homeserver("listing the bot's rooms"))?;
    for room_id in rooms {
        let marker = bridge
            .client
            .state_event(&room_id, MARKER_EVENT, "", None)
            .await
            .map_err(RelayError::homeserver("reading a room's portal marker"))?;
        if marker.is_some_and(|m| m["login"] == login.id.as_str() && m["thread_id"] == thread_id) {
            tracing::info!(room = %room_id, thread = thread_id, "found the room of an interrupted portal creation");
            return Ok(Some(room_id));
        }
    }
    Ok(None)
}

/// The login's space, created on first use with the user invited.
pub async fn ensure_space(bridge: &Bridge, login: &LoginRecord) -> Result<OwnedRoomId, RelayError> {
    let store = &bridge.store;
    if let Some(room_id) = store.login_space(&login.id).await? {
        return parse_room(&room_id);
    }
    let _creating = bridge.space_creation.lock().await;
    // Another worker may have made it while this one waited.
    if let Some(room_id) = store.login_space(&login.id).await? {
        return parse_room(&room_id);
    }
    let found = if store.room_creation_pending(&login.id, "").await? {
        find_created_room(bridge, login, "").await?
    } else {
        None
    };
    let room_id = match found {
        Some(room_id) => room_id,
        None => {
            let state_key = bridge_state_key(SPACE_CHANNEL);
            let info = bridge_info(bridge, SPACE_CHANNEL, "Instagram");
            let mut request = CreateRoom::new();
            request.preset = Some(RoomPreset::PrivateChat);
            request.name = Some(match &login.username {
                Some(username) => format!("Instagram (@{username})"),
                None => "Instagram".to_owned(),
            });
            request.topic = Some("Your Instagram chats".to_owned());
            request.invite = vec![parse_user(&login.mxid)?];
            let creation = json!({"type": "m.space"});
            request.creation_content = Some(Raw::from_json(
                serde_json::value::to_raw_value(&creation).expect("a JSON object serializes"),
            ));
            request.initial_state = vec![
                state_event("m.bridge", &state_key, info.clone())?,
                state_event("uk.half-shot.bridge", &state_key, info)?,
                state_event(
                    MARKER_EVENT,
                    "",
                    json!({"login": login.id, "thread_id": ""}),
                )?,
            ]
            .into_iter()
            .map(Raw::cast_unchecked)
            .collect();
            store.start_room_creation(&login.id, "").await?;
            bridge
                .client
                .create_room(request, None)
                .await
                .map_err(RelayError::homeserver("creating the login's space"))?
        }
    };
    store.set_login_space(&login.id, room_id.as_str()).await?;
    store.finish_room_creation(&login.id, "").await?;
    join_user(bridge, &room_id, login, None).await;
    Ok(room_id)
}

/// With double puppeting, the user joins the room at once and a direct
/// chat goes into their `m.direct` under the partner's puppet, as if they
/// had accepted it (best effort: without it, the invite waits for them).
async fn join_user(
    bridge: &Bridge,
    room_id: &RoomId,
    login: &LoginRecord,
    partner: Option<&OwnedUserId>,
) {
    let Some(double) = &bridge.double_puppet else {
        return;
    };
    let Ok(user) = UserId::parse(&login.mxid) else {
        return;
    };
    if let Err(error) = double.client().join(room_id, Some(&user)).await {
        tracing::debug!(%error, room = %room_id, "the user's double puppet cannot join");
        return;
    }
    if let Some(partner) = partner {
        if let Err(error) = mark_direct(double.client(), &user, partner, room_id).await {
            tracing::warn!(%error, room = %room_id, "cannot mark the portal as a direct chat");
        }
    }
}

/// Adds `room_id` to the user's `m.direct` under `partner`.
async fn mark_direct(
    client: &HomeserverClient,
    user: &UserId,
    partner: &UserId,
    room_id: &RoomId,
) -> Result<(), ClientError> {
    let mut direct = client
        .account_data(user, "m.direct")
        .await?
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let rooms = &mut direct[partner.as_str()];
    if !rooms.is_array() {
        *rooms = json!([]);
    }
    let Some(list) = rooms.as_array_mut() else {
        return Ok(());
    };
    if list.iter().any(|room| room == room_id.as_str()) {
        return Ok(());
    }
    list.push(json!(room_id.as_str()));
    client.set_account_data(user, "m.direct", &direct).await
}

/// Joins `user` (a puppet) to the room, inviting it first when needed.
pub async fn join_puppet(
    bridge: &Bridge,
    room_id: &RoomId,
    user: &UserId,
) -> Result<(), RelayError> {
    match bridge.client.join(room_id, Some(user)).await {
        Ok(()) => return Ok(()),
        Err(e) if e.errcode() == Some("M_FORBIDDEN") => {}
        Err(e) => return Err(RelayError::homeserver("joining a puppet")(e)),
    }
    invite(bridge, room_id, user).await?;
    bridge
        .client
        .join(room_id, Some(user))
        .await
        .map_err(RelayError::homeserver("joining a puppet"))
}

/// The bot invites `user`; an invite to someone already there is fine.
async fn invite(bridge: &Bridge, room_id: &RoomId, user: &UserId) -> Result<(), RelayError> {
    match bridge.client.invite(room_id, user, None).await {
        Ok(()) => Ok(()),
        Err(ClientError::Matrix { status: 403, .. }) => Ok(()),
        Err(e) => Err(RelayError::homeserver("inviting a puppet")(e)),
    }
}

/// Puppets of the participants join; puppets of people who left leave (the
/// puppet of the login's own account stays: it speaks for the user).
async fn sync_members(
    bridge: &Bridge,
    room_id: &RoomId,
    login: &LoginRecord,
    puppets: &[OwnedUserId],
) -> Result<(), RelayError> {
    let joined = bridge
        .client
        .joined_members(room_id, None)
        .await
        .map_err(RelayError::homeserver("listing a portal's members"))?;
    for puppet in puppets {
        if !joined.contains(puppet) {
            join_puppet(bridge, room_id, puppet).await?;
        }
    }
    let own = login
        .ig_user_id
        .as_deref()
        .and_then(|id| bridge.namespace.puppet(id));
    for member in joined {
        let departed = bridge.namespace.is_puppet(member.as_str())
            && !puppets.contains(&member)
            && own.as_ref() != Some(&member);
        if departed {
            bridge
                .client
                .leave(room_id, None, Some(&member))
                .await
                .map_err(RelayError::homeserver("a puppet leaving a portal"))?;
        }
    }
    Ok(())
}

/// Brings the room's name, avatar, request state and space membership up
/// to date with the conversation (the caller saves what changed).
async fn update_room(
    bridge: &Bridge,
    room_id: &RoomId,
    login: &LoginRecord,
    conversation: &Conversation,
    request: bool,
    portal: &mut PortalRecord,
) -> Result<(), RelayError> {
    if conversation.kind == ConversationKind::Group {
        let name = conversation.name.clone().filter(|name| !name.is_empty());
        if name.is_some() && name != portal.name {
            bridge
                .client
                .send_raw_state(room_id, "m.room.name", "", &json!({"name": name}), None)
                .await
                .map_err(RelayError::homeserver("renaming a portal"))?;
            portal.name = name;
        }
        if let Some(url) = conversation.picture_url.as_deref() {
            set_group_picture(bridge, Some(room_id), url, portal).await;
        }
    }
    if !portal.in_space {
        let space = ensure_space(bridge, login).await?;
        let via = json!({"via": [bridge.config.homeserver.domain]});
        bridge
            .client
            .send_raw_state(&space, "m.space.child", room_id.as_str(), &via, None)
            .await
            .map_err(RelayError::homeserver("adding a portal to the space"))?;
        portal.in_space = true;
    }
    if request != portal.request {
        portal.request = request;
        portal.request_notice_sent &= request;
    }
    if portal.request && !portal.request_notice_sent {
        send_request_notice(bridge, room_id, login, conversation).await?;
        portal.request_notice_sent = true;
    }
    Ok(())
}

/// Uploads a group's picture when it changed, and sets it on the room when
/// there is one yet (`room_id`). A failure is logged and tried again on the
/// next update: a picture must not hold up messages.
async fn set_group_picture(
    bridge: &Bridge,
    room_id: Option<&RoomId>,
    url: &str,
    portal: &mut PortalRecord,
) {
    if let Err(error) = try_set_group_picture(bridge, room_id, url, portal).await {
        tracing::warn!(thread = %portal.thread_id, %error, "cannot update a group's picture");
    }
}

async fn try_set_group_picture(
    bridge: &Bridge,
    room_id: Option<&RoomId>,
    url: &str,
    portal: &mut PortalRecord,
) -> Result<(), RelayError> {
    let avatar_id = picture_id(url);
    if portal.avatar_id.as_deref() == Some(avatar_id.as_str()) {
        return Ok(());
    }
    let uploaded = bridge
        .pictures
        .upload_if_changed(&bridge.client, bridge.namespace.bot(), url, None)
        .await?;
    let Some(uploaded) = uploaded else {
        return Ok(());
    };
    if let Some(room_id) = room_id {
        bridge
            .client
            .send_raw_state(
                room_id,
                "m.room.avatar",
                "",
                &json!({"url": uploaded.mxc.as_str()}),
                None,
            )
            .await
            .map_err(RelayError::homeserver("setting a portal's avatar"))?;
    }
    portal.avatar_url = Some(uploaded.mxc.to_string());
    portal.avatar_id = Some(avatar_id);
    Ok(())
}

/// Explains a message request, once: nothing is marked read on Instagram
/// until the user accepts it.
async fn send_request_notice(
    bridge: &Bridge,
    room_id: &RoomId,
    login: &LoginRecord,
    conversation: &Conversation,
) -> Result<(), RelayError> {
    let who = channel_name(login, conversation);
    let prefix = &bridge.config.bot.command_prefix;
    let body = format!(
        "{who} sent you a message request on Instagram. Their messages appear here, but \
         Instagram is not told you read them while the request is pending. Send \
         `{prefix} accept` in this room to accept the request."
    );
    let txn = txn_id(&[&login.id, &conversation.id, "request-notice"]);
    send_bot_notice(
        bridge,
        room_id,
        &txn,
        &body,
        "posting the message request notice",
    )
    .await
}

/// An `m.notice` from the bot in a portal; `txn` makes a repeat a no-op.
pub(crate) async fn send_bot_notice(
    bridge: &Bridge,
    room_id: &RoomId,
    txn: &TransactionId,
    body: &str,
    doing: &'static str,
) -> Result<(), RelayError> {
    bridge
        .client
        .send_raw(
            room_id,
            txn,
            "m.room.message",
            &json!({"msgtype": "m.notice", "body": body}),
            None,
            None,
        )
        .await
        .map_err(RelayError::homeserver(doing))?;
    Ok(())
}
