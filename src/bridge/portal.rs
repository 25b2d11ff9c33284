//! Portals: the Matrix room of one Instagram thread of a login, created on
//! first sight and kept in step with the thread (name, avatar, members).

use crate::model::Conversation;
use crate::store::{LoginRecord, PortalRecord};

use super::relay_error::RelayError;
use super::Bridge;

/// The portal of this conversation: creates the room (direct or group, m.bridge state, space
/// child, puppets joined, user invited) when missing, otherwise brings name, avatar and
/// members up to date. `request` marks a message request (pending inbox).
pub async fn ensure_portal(
    bridge: &Bridge,
    login: &LoginRecord,
    conversation: &Conversation,
    request: bool,
) -> Result<PortalRecord, RelayError> {
    let _ = (bridge, login, conversation, request);
    todo!("relay-matrix helper: in progress")
}
