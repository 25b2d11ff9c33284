//! The user leaving a portal room (or rejecting its invite) stops bridging
//! that chat for them, as mautrix bridges do: the portal is forgotten at
//! once (nothing more is sent to the room) and its puppets and the bot leave
//! it. The poller's progress in the thread is kept, so new activity on
//! Instagram later makes a fresh portal and invites the user again, without
//! bridging the old messages a second time.

use ruma::events::room::member::MembershipState;
use ruma::events::{AnyStateEvent, AnyTimelineEvent, StateEvent};
use ruma::{OwnedRoomId, RoomId};

use super::Bridge;
use crate::matrix::server::RetryTransaction;
use crate::store::PortalRecord;

/// Whether the event is the portal owner's own leave.
pub fn is_owner_leaving(portal: &PortalRecord, event: &AnyTimelineEvent) -> bool {
    let AnyTimelineEvent::State(AnyStateEvent::RoomMember(StateEvent::Original(member))) = event
    else {
        return false;
    };
    member.content.membership == MembershipState::Leave
        && member.state_key.as_str() == portal.owner
        && member.sender.as_str() == portal.owner
}

/// Forgets the portal and empties its room of the bridge's users.
pub async fn on_owner_left(bridge: &Bridge, portal: &PortalRecord) -> Result<(), RetryTransaction> {
    bridge
        .store
        .delete_portal(&portal.login_id, &portal.thread_id)
        .await
        .map_err(|e| RetryTransaction(format!("forgetting a portal the user left: {e}")))?;
    tracing::info!(
        login = %portal.login_id,
        thread = %portal.thread_id,
        room = %portal.room_id,
        "the user left the portal: no longer bridged there"
    );
    let Ok(room_id) = RoomId::parse(&portal.room_id) else {
        return Ok(());
    };
    // The leaves are housekeeping: they need not hold the transaction.
    match bridge.supervisor.bridge() {
        Some(bridge) => {
            tokio::spawn(async move { empty_room(&bridge, room_id).await });
        }
        None => empty_room(bridge, room_id).await,
    }
    Ok(())
}

/// The puppets leave the room, then the bot.
async fn empty_room(bridge: &Bridge, room_id: OwnedRoomId) {
    let bot = bridge.namespace.bot();
    let members = match bridge.client.joined_members(&room_id, Some(bot)).await {
        Ok(members) => members,
        Err(e) => {
            tracing::warn!(room = %room_id, error = %e, "cannot list a left portal's members");
            Vec::new()
        }
    };
    let puppets = members
        .iter()
        .filter(|member| bridge.namespace.owns(member.as_str()) && *member != bot);
    for puppet in puppets {
        if let Err(e) = bridge
            .client
            .leave(&room_id, Some("the user left this chat"), Some(puppet))
            .await
        {
            tracing::warn!(room = %room_id, %puppet, error = %e, "a puppet cannot leave a left portal");
        }
    }
    if let Err(e) = bridge
        .client
        .leave(&room_id, Some("the user left this chat"), Some(bot))
        .await
    {
        tracing::warn!(room = %room_id, error = %e, "the bot cannot leave a left portal");
    }
}
