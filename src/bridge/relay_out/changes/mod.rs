//! Matrix events that change something on Instagram rather than send a
//! message: edits, reactions, redactions (unreact, unsend), a group portal's
//! new name and puppets invited into a group portal. [`classify`] recognises
//! them (the outbox stores the [`Change`] as its payload); [`carry_out`]
//! resolves their Matrix targets to Instagram items and does them, recording
//! what it did so that the next poll does not bridge it back.

mod classify;
mod group;
mod items;

use serde::{Deserialize, Serialize};

use super::outbox_worker::sending_connector;
use crate::bridge::relay_error::RelayError;
use crate::bridge::Bridge;
use crate::connector::auth::Credentials;
use crate::connector::session::ConnectorError;
use crate::store::{LoginRecord, PortalRecord, StoreError};

pub use classify::classify;

/// A change to carry out on Instagram. Targets are Matrix event ids, resolved
/// to Instagram items when the change is carried out (the row that sent the
/// target is done by then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// An `m.replace` edit of a message: its new text.
    Edit { target_event: String, text: String },
    /// An `m.reaction` (`reaction_event`) with the emoji `key`.
    React {
        target_event: String,
        key: String,
        reaction_event: String,
    },
    /// A redaction: of one of the user's reactions (unreact) or messages (unsend).
    Redact { target_event: String },
    /// A new `m.room.name` of a group portal.
    Rename { title: String },
    /// A puppet invited into the portal: add its Instagram user.
    Invite {
        user_mxid: String,
        ig_user_id: String,
    },
}

/// What was done on Instagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeDone {
    Edited {
        item_id: String,
    },
    Reacted {
        item_id: String,
    },
    Unreacted {
        item_id: String,
    },
    Unsent {
        item_id: String,
    },
    Renamed,
    UserAdded {
        ig_user_id: String,
    },
    /// The target is not on Instagram (never bridged, already unsent, or a
    /// reaction already removed): there is nothing to do.
    NothingToDo,
}

impl ChangeDone {
    /// The Instagram item the change applied to, when it applied to one.
    pub fn item_id(&self) -> Option<&str> {
        match self {
            ChangeDone::Edited { item_id }
            | ChangeDone::Reacted { item_id }
            | ChangeDone::Unreacted { item_id }
            | ChangeDone::Unsent { item_id } => Some(item_id),
            ChangeDone::Renamed | ChangeDone::UserAdded { .. } | ChangeDone::NothingToDo => None,
        }
    }
}

/// Why a change was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Instagram (or the way to it) failed; the outbox worker decides whether
    /// that is transient, ambiguous or permanent.
    #[error(transparent)]
    Instagram(ConnectorError),
    /// The bridge cannot carry this; the text is the user-facing reason.
    #[error("{0}")]
    Refused(String),
    /// The homeserver failed (a redaction, a puppet joining); retried.
    #[error("the homeserver failed: {0}")]
    Matrix(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RelayError> for ChangeError {
    fn from(error: RelayError) -> ChangeError {
        match error {
            RelayError::Store(error) => ChangeError::Store(error),
            other => ChangeError::Matrix(other.to_string()),
        }
    }
}

/// Carries out `change`, made by `sender_mxid` in `portal` of `login`, on
/// Instagram. `client_context` is the one the outbox derived from the
/// change's event id (reactions carry it, so a retry is the same reaction).
pub async fn carry_out(
    bridge: &Bridge,
    login: &LoginRecord,
    creds: &mut Credentials,
    portal: &PortalRecord,
    sender_mxid: &str,
    change: &Change,
    client_context: &str,
) -> Result<ChangeDone, ChangeError> {
    if sender_mxid != login.mxid {
        return Err(ChangeError::Refused(format!(
            "Only {} can change this chat on Instagram",
            login.mxid
        )));
    }
    let target = items::Target {
        bridge,
        connector: sending_connector(bridge, &login.id),
        login,
        portal,
    };
    match change {
        Change::Edit { target_event, text } => {
            items::edit(&target, creds, target_event, text).await
        }
        Change::React {
            target_event,
            key,
            reaction_event,
        } => {
            items::react(
                &target,
                creds,
                target_event,
                key,
                reaction_event,
                client_context,
            )
            .await
        }
        Change::Redact { target_event } => {
            items::redact(&target, creds, target_event, client_context).await
        }
        Change::Rename { title } => {
            group::rename(bridge, &target.connector, creds, portal, title).await
        }
        Change::Invite { ig_user_id, .. } => {
            group::add_user(bridge, &target.connector, creds, portal, ig_user_id).await
        }
    }
}

/// The login's own Instagram user id (a login that never told it cannot be
/// matched to its messages).
fn own_ig_user_id(login: &LoginRecord) -> Result<&str, ChangeError> {
    login.ig_user_id.as_deref().ok_or_else(|| {
        ChangeError::Refused(
            "The bridge does not know your Instagram account yet; send `login` to the bot"
                .to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_stored_as_tagged_json() {
        let change = Change::React {
            target_event: "$target".to_owned(),
            key: "👍".to_owned(),
            reaction_event: "$reaction".to_owned(),
        };
        let stored = serde_json::to_value(&change).unwrap();
        assert_eq!(
            stored,
            json!({"change": "react", "target_event": "$target", "key": "👍",
                   "reaction_event": "$reaction"})
        );
        assert_eq!(serde_json::from_value::<Change>(stored).unwrap(), change);
        let rename = json!({"change": "rename", "title": "Weekend"});
        assert_eq!(
            serde_json::from_value::<Change>(rename).unwrap(),
            Change::Rename {
                title: "Weekend".to_owned()
            }
        );
    }
}
