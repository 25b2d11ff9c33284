//! Puppets: the Matrix ghost of each Instagram user, registered on first
//! sight, with display name and avatar kept current.

use ruma::OwnedUserId;

use crate::model::Participant;

use super::relay_error::RelayError;
use super::Bridge;

/// The puppet of an Instagram user, registered, with name and avatar kept current.
pub async fn ensure_puppet(
    bridge: &Bridge,
    participant: &Participant,
) -> Result<OwnedUserId, RelayError> {
    let _ = (bridge, participant);
    todo!("relay-matrix helper: in progress")
}
