//! Routes every homeserver event by its room: a portal's events go to that
//! portal (its queue, or the bot for prefixed commands such as `!ig sync`);
//! everything else (management rooms, invites, other rooms) to the bot,
//! which takes every message as a command in a management room and only
//! prefixed ones elsewhere. Events of the bridge's own users are dropped.

use ruma::events::room::message::MessageType;
use ruma::events::{AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent};

use super::bot;
use super::portal_queue;
use super::Bridge;
use crate::matrix::server::RetryTransaction;

/// Handles one timeline event of a transaction.
pub async fn route_event(bridge: &Bridge, event: AnyTimelineEvent) -> Result<(), RetryTransaction> {
    if bridge.namespace.owns(event.sender().as_str()) {
        return Ok(());
    }
    let portal = bridge
        .store
        .portal_by_room(event.room_id().as_str())
        .await
        .map_err(|e| RetryTransaction(format!("reading the portal of a room: {e}")))?;
    let Some(portal) = portal else {
        return bot::handle_event(bridge, event).await;
    };
    if is_prefixed_command(bridge, &event) {
        return bot::handle_event(bridge, event).await;
    }
    portal_queue::accept_matrix_event(&portal, &event).await
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
