//! Changes to one Instagram item: edits, reactions, unreact and unsend. Each
//! records what it did (the text hash, the reactions table, an unsend mark)
//! so that the next poll finds Instagram as the bridge left it.

use chrono::Utc;
use ruma::{EventId, RoomId};

use super::{own_ig_user_id, ChangeDone, ChangeError};
use crate::bridge::relay_in::{portal_room, text_hash, txn_id};
use crate::bridge::Bridge;
use crate::connector::auth::Credentials;
use crate::connector::http::Connector;
use crate::connector::session::ConnectorError;
use crate::connector::typed::MessageWrite;
use crate::store::{LoginRecord, MessageRecord, PortalRecord, ReactionRecord};

/// Instagram lets a message be edited this long after it was sent...
const EDIT_WINDOW_MS: i64 = 15 * 60 * 1000;
/// ... and this many times (mautrix-meta's capabilities say the same).
const MAX_EDITS: u64 = 5;

const CANNOT_EDIT: &str = "Instagram cannot edit this message";
const NOT_OWN_MESSAGE: &str = "Only your own messages can be unsent on Instagram";
const NOT_OWN_REACTION: &str = "Only your own reactions can be removed on Instagram";
const NOT_BRIDGED: &str = "This message is not on Instagram, so it cannot be reacted to";

/// Where a change applies: the portal of a login.
pub(super) struct Target<'a> {
    pub bridge: &'a Bridge,
    /// The outbox's sending connector: one request per attempt.
    pub connector: Connector,
    pub login: &'a LoginRecord,
    pub portal: &'a PortalRecord,
}

impl Target<'_> {
    /// The Instagram item (its main record) a Matrix event of the portal
    /// stands for: the first, when it stands for several.
    async fn message(&self, event_id: &str) -> Result<Option<MessageRecord>, ChangeError> {
        Ok(self.messages(event_id).await?.into_iter().next())
    }

    /// Every Instagram item (its main record) a Matrix event of the portal
    /// stands for, oldest first: one, or a photo and its caption.
    async fn messages(&self, event_id: &str) -> Result<Vec<MessageRecord>, ChangeError> {
        let store = &self.bridge.store;
        let mut items: Vec<MessageRecord> = Vec::new();
        for part in store
            .messages_by_event(&self.portal.room_id, event_id)
            .await?
        {
            if items.iter().any(|item| item.item_id == part.item_id) {
                continue;
            }
            let main = store
                .message_by_item(&self.login.id, &self.portal.thread_id, &part.item_id)
                .await?;
            items.push(main.unwrap_or(part));
        }
        Ok(items)
    }

    /// The bot redacts an event of the portal (it created the room, so it may).
    async fn redact(&self, room_id: &RoomId, event_id: &str) -> Result<(), ChangeError> {
        let event_id = EventId::parse(event_id)
            .map_err(|_| ChangeError::Matrix(format!("{event_id:?} is not an event id")))?;
        // The id relay_in uses for the same redaction: a repeat is a no-op.
        let txn = txn_id(&["redact", event_id.as_str()]);
        self.bridge
            .client
            .redact(room_id, &event_id, &txn, None, None)
            .await
            .map_err(|e| ChangeError::Matrix(format!("redacting a bridged event: {e}")))?;
        Ok(())
    }
}

/// Edits the text of one of the user's own text messages.
pub(super) async fn edit(
    target: &Target<'_>,
    creds: &mut Credentials,
    target_event: &str,
    text: &str,
) -> Result<ChangeDone, ChangeError> {
    let refused = || ChangeError::Refused(CANNOT_EDIT.to_owned());
    let own = own_ig_user_id(target.login)?;
    let record = target.message(target_event).await?.ok_or_else(refused)?;
    let is_own_text = record.sender == own
        && record.part_id.is_empty()
        && record.content_hash.is_some()
        && !text.trim().is_empty();
    if !is_own_text {
        return Err(refused());
    }
    let thread_id = &target.portal.thread_id;
    let current = target
        .connector
        .get_message(creds, thread_id, &record.item_id)
        .await
        .map_err(ChangeError::Instagram)?;
    // Instagram's own view of the item when it is on the thread's newest
    // page; an older item is past the edit window anyway.
    let sent_at = match &current {
        Some(item) => {
            if item.content_type.as_deref() != Some("text")
                || item.edit_count.unwrap_or(0) >= MAX_EDITS
            {
                return Err(refused());
            }
            item.timestamp
                .map_or(record.timestamp, |t| t.timestamp_millis())
        }
        None => record.timestamp,
    };
    if Utc::now().timestamp_millis() - sent_at > EDIT_WINDOW_MS {
        return Err(refused());
    }
    target
        .connector
        .edit_message(
            creds,
            thread_id,
            &record.item_id,
            text,
            record.client_context.as_deref(),
        )
        .await
        .map_err(ChangeError::Instagram)?;
    // The poll compares the item's text with this hash: the edit is not
    // bridged back as a second m.replace.
    if let Some(hash) = text_hash(Some(text)) {
        target
            .bridge
            .store
            .set_message_content_hash(&record, &hash)
            .await?;
    }
    Ok(ChangeDone::Edited {
        item_id: record.item_id,
    })
}

/// Reacts to an item. Instagram keeps one reaction per user, so a previous
/// reaction of the user is replaced there, and its Matrix event redacted.
pub(super) async fn react(
    target: &Target<'_>,
    creds: &mut Credentials,
    target_event: &str,
    key: &str,
    reaction_event: &str,
    client_context: &str,
) -> Result<ChangeDone, ChangeError> {
    let own = own_ig_user_id(target.login)?;
    let (login, portal) = (target.login, target.portal);
    let record = target
        .message(target_event)
        .await?
        .ok_or_else(|| ChangeError::Refused(NOT_BRIDGED.to_owned()))?;
    let store = &target.bridge.store;
    let previous = store
        .reaction(&login.id, &portal.thread_id, &record.item_id, own)
        .await?;
    target
        .connector
        .set_reaction(
            creds,
            &portal.thread_id,
            &record.item_id,
            Some(key),
            client_context,
        )
        .await
        .map_err(ChangeError::Instagram)?;
    // Redacted before the record moves on, so that a retry after a failed
    // redaction still knows the old event.
    if let Some(previous) = previous.filter(|previous| previous.event_id != reaction_event) {
        target
            .redact(&portal_room(portal)?, &previous.event_id)
            .await?;
    }
    // The poll sees this emoji from the user and leaves it alone.
    store
        .upsert_reaction(&ReactionRecord {
            login_id: login.id.clone(),
            thread_id: portal.thread_id.clone(),
            item_id: record.item_id.clone(),
            sender: own.to_owned(),
            room_id: portal.room_id.clone(),
            event_id: reaction_event.to_owned(),
            emoji: key.to_owned(),
        })
        .await?;
    Ok(ChangeDone::Reacted {
        item_id: record.item_id,
    })
}

/// A redaction: of one of the user's reactions, it removes the reaction; of
/// one of the user's messages, it unsends the message.
pub(super) async fn redact(
    target: &Target<'_>,
    creds: &mut Credentials,
    target_event: &str,
    client_context: &str,
) -> Result<ChangeDone, ChangeError> {
    let own = own_ig_user_id(target.login)?;
    let store = &target.bridge.store;
    let portal = target.portal;
    if let Some(reaction) = store
        .reaction_by_event(&portal.room_id, target_event)
        .await?
    {
        if reaction.sender != own {
            return Err(ChangeError::Refused(NOT_OWN_REACTION.to_owned()));
        }
        return unreact(target, creds, &reaction, client_context).await;
    }
    let records = target.messages(target_event).await?;
    let Some(first) = records.first() else {
        // Never bridged (a failed send), or already unsent.
        return Ok(ChangeDone::NothingToDo);
    };
    if records.iter().any(|record| record.sender != own) {
        return Err(ChangeError::Refused(NOT_OWN_MESSAGE.to_owned()));
    }
    // A photo and its caption are unsent together (a repeat after a failure
    // finds the first one gone and goes on).
    for record in &records {
        unsend(target, creds, record, target_event).await?;
    }
    Ok(ChangeDone::Unsent {
        item_id: first.item_id.clone(),
    })
}

async fn unreact(
    target: &Target<'_>,
    creds: &mut Credentials,
    reaction: &ReactionRecord,
    client_context: &str,
) -> Result<ChangeDone, ChangeError> {
    target
        .connector
        .set_reaction(
            creds,
            &reaction.thread_id,
            &reaction.item_id,
            None,
            client_context,
        )
        .await
        .map_err(ChangeError::Instagram)?;
    // The poll sees no reaction of the user and none recorded: nothing to redact.
    target
        .bridge
        .store
        .delete_reaction(
            &reaction.login_id,
            &reaction.thread_id,
            &reaction.item_id,
            &reaction.sender,
        )
        .await?;
    Ok(ChangeDone::Unreacted {
        item_id: reaction.item_id.clone(),
    })
}

/// Unsends the item, then redacts its other events (a share's preview),
/// forgets its reactions and marks it unsent by the bridge (the poll then
/// redacts nothing again). Its message records stay, so it is never bridged
/// again.
async fn unsend(
    target: &Target<'_>,
    creds: &mut Credentials,
    record: &MessageRecord,
    redacted_event: &str,
) -> Result<(), ChangeError> {
    let (bridge, portal) = (target.bridge, target.portal);
    let deleted = target
        .connector
        .write_message(
            creds,
            &portal.thread_id,
            &record.item_id,
            MessageWrite::Delete,
        )
        .await;
    match deleted {
        // Already gone from Instagram (unsent from the app meanwhile): done.
        Ok(()) | Err(ConnectorError::NotFound { .. }) => {}
        Err(error) => return Err(ChangeError::Instagram(error)),
    }
    let store = &bridge.store;
    let room_id = portal_room(portal)?;
    let parts = store
        .message_parts(&record.login_id, &record.thread_id, &record.item_id)
        .await?;
    for part in parts.iter().filter(|part| part.event_id != redacted_event) {
        target.redact(&room_id, &part.event_id).await?;
    }
    for reaction in store
        .reactions_of_item(&record.login_id, &record.thread_id, &record.item_id)
        .await?
    {
        store
            .delete_reaction(
                &reaction.login_id,
                &reaction.thread_id,
                &reaction.item_id,
                &reaction.sender,
            )
            .await?;
    }
    store
        .mark_unsent_by_bridge(&record.login_id, &record.thread_id, &record.item_id)
        .await?;
    Ok(())
}
