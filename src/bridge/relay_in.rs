//! Instagram -> Matrix relaying of items: new items (every part, then
//! reactions), changes to known items (edits, reactions), unsends, read
//! receipts and presence, each idempotent so a retry after a crash is safe.

use chrono::{DateTime, Utc};

use crate::model::{Message, Presence};
use crate::store::{LoginRecord, PortalRecord};

use super::relay_error::RelayError;
use super::Bridge;

/// How far a participant has seen a thread: an item id when Instagram names
/// one, else the time (the newest item at or before it is taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMarker {
    pub item_id: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// One Instagram item: bridges it if new (all parts, reactions), or applies what changed
/// (edit -> m.replace, reactions added/changed/removed). Skips our own sends' echoes
/// (outbox lookup by client_context).
pub async fn relay_message(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    message: &Message,
) -> Result<(), RelayError> {
    let _ = (bridge, login, portal, message);
    todo!("relay-matrix helper: in progress")
}

/// An item that disappeared (unsend): redacts its events.
pub async fn relay_unsend(
    bridge: &Bridge,
    portal: &PortalRecord,
    item_id: &str,
) -> Result<(), RelayError> {
    let _ = (bridge, portal, item_id);
    todo!("relay-matrix helper: in progress")
}

/// A participant has seen the thread up to this item/time: read receipt from the puppet.
pub async fn relay_read(
    bridge: &Bridge,
    portal: &PortalRecord,
    ig_user_id: &str,
    seen: &SeenMarker,
) -> Result<(), RelayError> {
    let _ = (bridge, portal, ig_user_id, seen);
    todo!("relay-matrix helper: in progress")
}

/// Presence of a puppet.
pub async fn relay_presence(bridge: &Bridge, presence: &Presence) -> Result<(), RelayError> {
    let _ = (bridge, presence);
    todo!("relay-matrix helper: in progress")
}
