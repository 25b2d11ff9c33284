//! Changes to a group conversation: its title (the portal's `m.room.name`)
//! and its members (puppets invited into the portal).

use crate::bridge::portal::join_puppet;
use crate::bridge::puppet::ensure_puppet;
use crate::bridge::relay_in::portal_room;
use crate::bridge::Bridge;
use crate::connector::auth::Credentials;
use crate::connector::http::Connector;
use crate::model::ConversationKind;
use crate::store::PortalRecord;

use super::{ChangeDone, ChangeError};

const DIRECT_RENAME: &str = "Instagram one-to-one chats have no name of their own; \
     only group chats can be renamed";
const DIRECT_INVITE: &str = "Instagram cannot add people to a one-to-one chat; \
     start a group chat with them instead";
const EMPTY_TITLE: &str = "Instagram group chats cannot have an empty name";

/// Sets the group's title on Instagram.
pub(super) async fn rename(
    bridge: &Bridge,
    connector: &Connector,
    creds: &mut Credentials,
    portal: &PortalRecord,
    title: &str,
) -> Result<ChangeDone, ChangeError> {
    if portal.kind != ConversationKind::Group {
        return Err(ChangeError::Refused(DIRECT_RENAME.to_owned()));
    }
    if title.trim().is_empty() {
        return Err(ChangeError::Refused(EMPTY_TITLE.to_owned()));
    }
    let conversation = connector
        .rename_conversation(creds, &portal.thread_id, title)
        .await
        .map_err(ChangeError::Instagram)?;
    // The portal's name is what the poll compares the title with: recorded,
    // the bridge does not set the same name on the room again. Read afresh
    // so that what the poller saved meanwhile is kept.
    let store = &bridge.store;
    if let Some(mut current) = store.portal_by_room(&portal.room_id).await? {
        current.name = conversation
            .name
            .filter(|name| !name.is_empty())
            .or_else(|| Some(title.to_owned()));
        store.update_portal_room(&current).await?;
    }
    Ok(ChangeDone::Renamed)
}

/// Adds the Instagram user of an invited puppet to the group; the puppet
/// then joins the portal with the user's Instagram name.
pub(super) async fn add_user(
    bridge: &Bridge,
    connector: &Connector,
    creds: &mut Credentials,
    portal: &PortalRecord,
    ig_user_id: &str,
) -> Result<ChangeDone, ChangeError> {
    if portal.kind != ConversationKind::Group {
        return Err(ChangeError::Refused(DIRECT_INVITE.to_owned()));
    }
    let conversation = connector
        .add_users(creds, &portal.thread_id, &[ig_user_id])
        .await
        .map_err(ChangeError::Instagram)?;
    if let Some(participant) = conversation
        .participants
        .iter()
        .find(|participant| participant.id == ig_user_id)
    {
        let puppet = ensure_puppet(bridge, participant).await?;
        join_puppet(bridge, &portal_room(portal)?, &puppet).await?;
    }
    Ok(ChangeDone::UserAdded {
        ig_user_id: ig_user_id.to_owned(),
    })
}
