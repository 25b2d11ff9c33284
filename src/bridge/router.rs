//! Routes every homeserver event by its room: a portal's events go to that
//! portal (the outbox and its worker, or the bot for prefixed commands such
//! as `!ig sync`);
//! everything else (management rooms, invites, other rooms) to the bot,
//! which takes every message as a command in a management room and only
//! prefixed ones elsewhere. The owner leaving a portal's room ends that
//! portal ([`super::departure`]). Events of the bridge's own users are dropped, and
//! so are those the bridge sent as a double puppet (the user's own account),
//! which come back like the user's own events.

use ruma::events::room::message::MessageType;
use ruma::events::{AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent};
use ruma::serde::Raw;
use serde_json::Value;

use super::bot;
use super::departure;
use super::double_puppet::SOURCE_KEY;
use super::relay_out;
use super::Bridge;
use crate::matrix::server::RetryTransaction;

/// Handles one timeline event of a transaction. The transaction handler
/// skips the bridge's own echoes ([`is_own_echo`]) before this is called.
pub async fn route_event(bridge: &Bridge, event: AnyTimelineEvent) -> Result<(), RetryTransaction> {
    let portal = bridge
        .store
        .portal_by_room(event.room_id().as_str())
        .await
        .map_err(|e| RetryTransaction(format!("reading the portal of a room: {e}")))?;
    let Some(portal) = portal else {
        return bot::handle_event(bridge, event).await;
    };
    if departure::is_owner_leaving(&portal, &event) {
        return departure::on_owner_left(bridge, &portal).await;
    }
    if is_prefixed_command(bridge, &event) {
        return bot::handle_event(bridge, event).await;
    }
    relay_out::accept_matrix_event(bridge, &portal, &event).await
}

/// An event the bridge sent itself: from one of its users, or as a double
/// puppet (the user's own account).
pub fn is_own_echo(bridge: &Bridge, event: &AnyTimelineEvent, raw: &Raw<AnyTimelineEvent>) -> bool {
    bridge.namespace.owns(event.sender().as_str()) || double_puppeted(raw)
}

/// A text message that starts with the command prefix.
fn is_prefixed_command(bridge: &Bridge, event: &AnyTimelineEvent) -> bool {
    let AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
        MessageLikeEvent::Original(message),
    )) = event
    else {
        return false;
    };
    let MessageType::Text(text) = &message.content.msgtype else {
        return false;
    };
    bot::command_line(&text.body, &bridge.config.bot.command_prefix, false).is_some()
}

/// Whether the bridge sent this event as a double puppet.
fn double_puppeted(raw: &Raw<AnyTimelineEvent>) -> bool {
    raw.get_field::<Value>("content")
        .ok()
        .flatten()
        .is_some_and(|content| content.get(SOURCE_KEY).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(content: Value) -> Raw<AnyTimelineEvent> {
        Raw::new(&json!({
            "type": "m.room.message",
            "event_id": "$e",
            "room_id": "!r:example.org",
            "sender": "@alice:example.org",
            "origin_server_ts": 1,
            "content": content,
        }))
        .unwrap()
        .cast_unchecked()
    }

    #[test]
    fn double_puppet_echoes_are_recognised() {
        let echo = raw(json!({"msgtype": "m.text", "body": "hi", SOURCE_KEY: "matrix-instagram"}));
        assert!(double_puppeted(&echo));
        let typed = raw(json!({"msgtype": "m.text", "body": "hi"}));
        assert!(!double_puppeted(&typed));
    }
}
