//! Management rooms: when a room becomes a user's management room, and when
//! it stops being one. Logins, passwords and codes are accepted only there,
//! so it must be a real 1:1 with the bot: nobody else joined or invited, not
//! open for anyone to join. It stops being one when someone else is invited
//! or joins, or when the room state read before handling a message of its
//! owner shows it shared (the owner is told not to send secrets there, and a
//! login talking there is cancelled), when its owner leaves or the bot is
//! removed, and when a newer direct chat with the bot replaces it.

use std::collections::BTreeSet;

use ruma::events::room::join_rules::JoinRule;
use ruma::events::room::member::MembershipState;
use ruma::events::{AnyStateEvent, AnySyncStateEvent, SyncStateEvent};
use ruma::serde::Raw;
use ruma::{RoomId, UserId};

use super::bot::{derived_txn_id, management_room_owner, send_notice, settle, store_failed};
use super::commands::Reply;
use super::Bridge;
use crate::matrix::server::RetryTransaction;

/// Who can read a room, from its current state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Audience {
    /// Users joined or invited: an invitee can join and read what follows.
    pub members: BTreeSet<String>,
    /// Anyone may join without an invite.
    pub public: bool,
    /// A member event could not be read; it counts as someone else.
    pub unreadable_member: bool,
}

impl Audience {
    /// The audience of a room with this state (`GET /rooms/{id}/state`).
    pub fn of(state: &[Raw<AnyStateEvent>]) -> Audience {
        let mut audience = Audience::default();
        for raw in state {
            // As sync events: the `room_id` of each event is not needed.
            match raw.deserialize_as::<AnySyncStateEvent>() {
                Ok(AnySyncStateEvent::RoomMember(SyncStateEvent::Original(member))) => {
                    let membership = &member.content.membership;
                    if matches!(membership, MembershipState::Join | MembershipState::Invite) {
                        audience.members.insert(member.state_key.to_string());
                    }
                }
                Ok(AnySyncStateEvent::RoomJoinRules(SyncStateEvent::Original(rules))) => {
                    audience.public = matches!(rules.content.join_rule, JoinRule::Public);
                }
                Ok(_) => {}
                Err(_) => {
                    let kind = raw.get_field::<String>("type").ok().flatten();
                    if kind.as_deref() == Some("m.room.member") {
                        audience.unreadable_member = true;
                    }
                }
            }
        }
        audience
    }

    /// Whether only `user` and `bot` can read the room.
    pub fn is_private_to(&self, user: &UserId, bot: &UserId) -> bool {
        let pair = BTreeSet::from([user.to_string(), bot.to_string()]);
        !self.public && !self.unreadable_member && self.members == pair
    }

    /// Why a room offered as a direct chat is not private, for the user.
    pub fn why_shared(&self) -> &'static str {
        if self.public {
            "Anyone can join this room"
        } else {
            "Other people are in this room or invited to it"
        }
    }
}

/// Makes `room_id` the management room of `owner` (who invited the bot into
/// a room private to both), retiring their previous one, and greets them.
pub async fn adopt(
    bridge: &Bridge,
    room_id: &RoomId,
    owner: &UserId,
    event_id: &str,
) -> Result<(), RetryTransaction> {
    let previous = bridge
        .store
        .management_room(owner.as_str())
        .await
        .map_err(store_failed("reading the management room"))?;
    if let Some(previous) = previous.filter(|previous| previous != room_id.as_str()) {
        retire(bridge, &previous, room_id, event_id).await?;
    }
    bridge
        .store
        .set_management_room(owner.as_str(), room_id.as_str())
        .await
        .map_err(store_failed("saving the management room"))?;
    let greeting = Reply::text(
        "Hello! I am the Instagram bridge bot. This room is now your management room: \
         send me commands here without any prefix. Send `help` for the list of commands.",
    );
    let txn_id = derived_txn_id("greeting", event_id);
    settle(
        send_notice(bridge, room_id, &txn_id, &greeting).await,
        "greeting in the management room",
    )
}

/// A user opened a new direct chat with the bot: their old management room
/// is told where commands go now, and the bot leaves it. Done before the new
/// room is saved, so a retried transaction finds the old room again (and the
/// homeserver deduplicates the notice by its transaction id).
async fn retire(
    bridge: &Bridge,
    old_room: &str,
    new_room: &RoomId,
    event_id: &str,
) -> Result<(), RetryTransaction> {
    let Ok(old_room) = RoomId::parse(old_room) else {
        tracing::warn!(
            old_room,
            "stored management room id is invalid; replacing it"
        );
        return Ok(());
    };
    tracing::info!(%old_room, %new_room, "management room replaced by a new direct chat");
    let notice = Reply::text(format!(
        "You started a new direct chat with me, so {new_room} is now your management room. \
         Send your commands there; I am leaving this room."
    ));
    let txn_id = derived_txn_id("retired", event_id);
    settle(
        send_notice(bridge, &old_room, &txn_id, &notice).await,
        "announcing the new management room",
    )?;
    let bot = bridge.namespace.bot();
    settle(
        bridge
            .client
            .leave(
                &old_room,
                Some("replaced by a new management room"),
                Some(bot),
            )
            .await,
        "leaving the old management room",
    )
}

/// Someone was invited to or joined a room. When it is a management room
/// and they are neither its owner nor the bot, it stops being one (see
/// [`end_shared`]).
pub async fn on_newcomer(
    bridge: &Bridge,
    room_id: &RoomId,
    newcomer: &UserId,
    membership: &MembershipState,
    event_id: &str,
) -> Result<(), RetryTransaction> {
    if bridge.namespace.is_bot(newcomer.as_str()) {
        return Ok(());
    }
    let Some(owner) = management_room_owner(bridge, room_id).await? else {
        return Ok(());
    };
    if owner == newcomer.as_str() {
        return Ok(());
    }
    let entered = if *membership == MembershipState::Invite {
        "was invited to"
    } else {
        "joined"
    };
    let Ok(owner) = UserId::parse(owner.as_str()) else {
        tracing::warn!(%room_id, "stored management room owner is invalid; forgetting the room");
        return forget(bridge, room_id).await;
    };
    let reason = format!("{newcomer} {entered} this room");
    end_shared(bridge, room_id, &owner, &reason, event_id).await
}

/// Confirms, before a message of its owner is handled there, that a
/// management room is still private to the owner and the bot (this catches
/// rooms shared in ways the bot missed: an invite it was not sent, a room
/// stored by an older version); if it is not, it stops being one. False
/// when the message must not be handled as in a management room.
pub async fn confirm_private(
    bridge: &Bridge,
    room_id: &RoomId,
    owner: &UserId,
    event_id: &str,
) -> Result<bool, RetryTransaction> {
    let bot = bridge.namespace.bot();
    let state = match bridge.client.room_state(room_id, Some(bot)).await {
        Ok(state) => state,
        Err(e) => {
            // Unconfirmed: the message is handled as in any shared room.
            settle(Err(e), "reading who is in the management room")?;
            return Ok(false);
        }
    };
    let audience = Audience::of(&state);
    if audience.is_private_to(owner, bot) {
        return Ok(true);
    }
    end_shared(bridge, room_id, owner, audience.why_shared(), event_id).await?;
    Ok(false)
}

/// A management room is shared now (`reason` says how): it stops being one.
/// The owner is told there that secrets must not be sent there any more, a
/// login talking in that room is cancelled, and the store forgets the room.
/// The bot stays: prefixed commands keep working there, as in any shared room.
async fn end_shared(
    bridge: &Bridge,
    room_id: &RoomId,
    owner: &UserId,
    reason: &str,
    event_id: &str,
) -> Result<(), RetryTransaction> {
    tracing::warn!(%room_id, %owner, reason, "management room is shared now; it is one no more");
    // Looked at before the notice and cancelled after it, so a retried
    // transaction sends the same words (deduplicated by the homeserver).
    let login_here = bridge.login_flows.in_progress_in(owner, room_id);
    let notice = Reply::text(shared_notice(
        reason,
        login_here,
        &bridge.config.bot.command_prefix,
    ));
    let txn_id = derived_txn_id("shared", event_id);
    settle(
        send_notice(bridge, room_id, &txn_id, &notice).await,
        "telling the owner their management room is shared",
    )?;
    if bridge.login_flows.cancel_in(owner, room_id) {
        tracing::info!(user = %owner, "login cancelled: its room is shared now");
    }
    forget(bridge, room_id).await
}

async fn forget(bridge: &Bridge, room_id: &RoomId) -> Result<(), RetryTransaction> {
    bridge
        .store
        .delete_management_room(room_id.as_str())
        .await
        .map_err(store_failed("forgetting a shared management room"))?;
    Ok(())
}

/// What the bot tells the owner of a management room that is shared now.
fn shared_notice(reason: &str, login_cancelled: bool, prefix: &str) -> String {
    let cancelled = if login_cancelled {
        " I cancelled the login you started here."
    } else {
        ""
    };
    format!(
        "{reason}, so it is no longer your management room: other people can read it. \
         Do not send passwords, two-factor codes or any other secret here.{cancelled} \
         To manage the bridge, start a new direct chat with only me; here, commands need \
         the prefix (`{prefix} help`)."
    )
}

/// Someone left (or was removed from) a room: when the owner of a management
/// room leaves it, or the bot is kicked from one, it stops being one.
pub async fn on_departure(
    bridge: &Bridge,
    room_id: &RoomId,
    departed: &UserId,
) -> Result<(), RetryTransaction> {
    let owner = management_room_owner(bridge, room_id).await?;
    let Some(owner) = owner else {
        return Ok(());
    };
    let bot = bridge.namespace.bot();
    if owner != departed.as_str() && departed != bot {
        return Ok(());
    }
    tracing::info!(%room_id, %owner, %departed, "management room abandoned");
    bridge
        .store
        .delete_management_room(room_id.as_str())
        .await
        .map_err(store_failed("forgetting the management room"))?;
    if departed == bot {
        return Ok(());
    }
    settle(
        bridge.client.leave(room_id, None, Some(bot)).await,
        "leaving an abandoned management room",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::user_id;
    use serde_json::{json, Value};

    fn member(user: &str, membership: &str) -> Value {
        json!({
            "type": "m.room.member",
            "state_key": user,
            "sender": user,
            "room_id": "!room:example.org",
            "event_id": format!("${}-{membership}", user.replace([':', '@', '.'], "")),
            "origin_server_ts": 1,
            "content": { "membership": membership },
        })
    }

    fn join_rule(rule: &str) -> Value {
        json!({
            "type": "m.room.join_rules",
            "state_key": "",
            "sender": "@alice:example.org",
            "event_id": "$rules",
            "origin_server_ts": 1,
            "content": { "join_rule": rule },
        })
    }

    fn audience(events: &[Value]) -> Audience {
        let state: Vec<Raw<AnyStateEvent>> = events
            .iter()
            .map(|event| serde_json::from_value(event.clone()).expect("a raw event"))
            .collect();
        Audience::of(&state)
    }

    const ALICE: &str = "@alice:example.org";
    const BOT: &str = "@bot:example.org";

    fn private_to_alice(events: &[Value]) -> bool {
        audience(events).is_private_to(user_id!("@alice:example.org"), user_id!("@bot:example.org"))
    }

    #[test]
    fn a_room_of_the_user_and_the_bot_is_private() {
        let room = [
            member(ALICE, "join"),
            member(BOT, "join"),
            join_rule("invite"),
        ];
        assert!(private_to_alice(&room));
        let bot_invited = [member(ALICE, "join"), member(BOT, "invite")];
        assert!(private_to_alice(&bot_invited));
    }

    #[test]
    fn an_invited_third_user_makes_the_room_shared() {
        let room = [
            member(ALICE, "join"),
            member(BOT, "join"),
            member("@bob:example.org", "invite"),
        ];
        assert!(!private_to_alice(&room));
        assert_eq!(
            audience(&room).why_shared(),
            "Other people are in this room or invited to it"
        );
    }

    #[test]
    fn people_who_left_or_were_banned_do_not_count() {
        let room = [
            member(ALICE, "join"),
            member(BOT, "join"),
            member("@bob:example.org", "leave"),
            member("@eve:example.org", "ban"),
        ];
        assert!(private_to_alice(&room));
    }

    #[test]
    fn a_public_room_is_never_private() {
        let room = [
            member(ALICE, "join"),
            member(BOT, "join"),
            join_rule("public"),
        ];
        assert!(!private_to_alice(&room));
        assert_eq!(audience(&room).why_shared(), "Anyone can join this room");
    }

    #[test]
    fn an_unreadable_member_event_counts_as_someone_else() {
        let mut broken = member("@bob:example.org", "join");
        broken["content"] = json!("not an object");
        let room = [member(ALICE, "join"), member(BOT, "join"), broken];
        assert!(audience(&room).unreadable_member);
        assert!(!private_to_alice(&room));
    }

    #[test]
    fn the_user_must_be_in_the_room() {
        let room = [member("@bob:example.org", "join"), member(BOT, "join")];
        assert!(!private_to_alice(&room));
    }

    #[test]
    fn the_shared_notice_warns_about_secrets_and_names_the_way_out() {
        let text = shared_notice("@bob:example.org was invited to this room", true, "!ig");
        assert!(text.starts_with(
            "@bob:example.org was invited to this room, so it is no longer your management room"
        ));
        assert!(text.contains("Do not send passwords, two-factor codes"));
        assert!(text.contains("I cancelled the login you started here."));
        assert!(text.contains("`!ig help`"));
        let joined = shared_notice("@bob:example.org joined this room", false, "!ig");
        assert!(!joined.contains("cancelled"));
    }
}
