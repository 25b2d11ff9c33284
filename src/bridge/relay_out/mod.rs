//! Matrix -> Instagram: the outbox. The appservice transaction handler turns
//! each event of a portal's owner into an [`Outgoing`] payload, records it
//! durably in the outbox (keyed by event id, so a redelivered event is
//! enqueued once) before the transaction is acknowledged, and rings the
//! portal worker's doorbell; the worker (the same one that relays Instagram
//! -> Matrix, so a room's order holds both ways) carries the room's pending
//! rows out in order (`outbox_worker`). Each send's `client_context` derives
//! from the event id, so its echo in the next poll is recognized and an
//! ambiguous failure is resolved by looking for it in the thread.

pub mod changes;
pub mod media;
pub mod outbox_worker;
pub mod status;
pub mod text;
pub mod transcode;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ruma::events::room::message::{FormattedBody, MessageType, Relation, RoomMessageEventContent};
use ruma::events::{AnyMessageLikeEvent, AnyTimelineEvent, MessageLikeEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::status::SendStatus;
use super::{relay_latency, Bridge};
use crate::matrix::server::RetryTransaction;
use crate::model::Message;
use crate::store::{
    LoginRecord, NewOutboxEntry, NextOutboxPart, OutboxEntry, OutboxState, PortalRecord, StoreError,
};

/// The smallest `client_context` the bridge sends: the range instagrapi draws
/// its own from (19-digit decimals, as Instagram's apps send).
const CLIENT_CONTEXT_MIN: u64 = 6_800_011_111_111_111_111;
/// The largest `client_context` the bridge sends.
const CLIENT_CONTEXT_MAX: u64 = 6_800_099_999_999_999_999;

/// What a Matrix event asks Instagram to do, as stored in `outbox.payload`.
/// Event targets (the replied-to event) are Matrix event ids, resolved to
/// Instagram items by the worker when it carries the row out (an earlier row
/// of the same room is done by then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outgoing {
    /// A text (`m.text`, `m.notice`, `m.emote`), already plain Instagram text.
    Text {
        text: String,
        /// The Matrix event replied to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// An edit, reaction, redaction, group rename or puppet invite.
    Change(changes::Change),
    /// A photo, video, voice message or sticker; the file is fetched when
    /// the row is carried out.
    Media(media::OutgoingMedia),
    /// An event the bridge cannot carry: the worker tells the room why
    /// (a notice and FAIL_PERMANENT), in order with the room's other events.
    Refuse { reason: String },
}

impl Outgoing {
    /// The `outbox.kind` of a change to existing items.
    pub const CHANGE_KIND: &'static str = "change";

    /// The `outbox.kind` of the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            Outgoing::Text { .. } => "text",
            Outgoing::Change(_) => Outgoing::CHANGE_KIND,
            Outgoing::Media(_) => "media",
            Outgoing::Refuse { .. } => "refuse",
        }
    }

    /// What the outbox entry of `event_id` becomes once this payload is
    /// sent, when the event has a second part: a media's caption, as a text
    /// with a `client_context` of its own.
    pub fn next_part(&self, event_id: &str) -> Option<NextOutboxPart> {
        let Outgoing::Media(media) = self else {
            return None;
        };
        let caption = Outgoing::Text {
            text: media.caption.clone()?,
            reply_to: None,
        };
        Some(NextOutboxPart {
            kind: caption.kind().to_owned(),
            payload: serde_json::to_value(&caption).ok()?,
            client_context: client_context(&format!("{event_id} caption")),
        })
    }
}

/// The `client_context` of the send of a Matrix event: a decimal number in
/// Instagram's own form, the same for the same event every time (a restart
/// or retry sends the same one, and its echo is recognized by it).
pub fn client_context(event_id: &str) -> String {
    let digest = Sha256::digest(event_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let span = CLIENT_CONTEXT_MAX - CLIENT_CONTEXT_MIN + 1;
    (CLIENT_CONTEXT_MIN + u64::from_be_bytes(first) % span).to_string()
}

/// A timeline event of a portal that is not a prefixed command: classifies it
/// and, if it is the portal owner's and asks for something, enqueues it
/// before the transaction is acknowledged and rings the portal's worker.
pub async fn accept_matrix_event(
    bridge: &Bridge,
    portal: &PortalRecord,
    event: &AnyTimelineEvent,
) -> Result<(), RetryTransaction> {
    let accepted = Instant::now();
    let event_id = event.event_id().as_str();
    if event.sender().as_str() != portal.owner {
        tracing::debug!(
            room_id = %portal.room_id,
            event_id,
            sender = %event.sender(),
            "an event of someone else than the portal's owner; not carried to Instagram"
        );
        return Ok(());
    }
    let classified = classify(bridge, event)
        .await
        .map_err(|e| RetryTransaction(format!("classifying an outgoing event: {e}")))?;
    let Some(outgoing) = classified else {
        return Ok(());
    };
    let entry = NewOutboxEntry {
        event_id: event_id.to_owned(),
        room_id: portal.room_id.clone(),
        login_id: portal.login_id.clone(),
        kind: outgoing.kind().to_owned(),
        payload: serde_json::to_value(&outgoing)
            .map_err(|e| RetryTransaction(format!("encoding an outgoing event: {e}")))?,
        client_context: client_context(event_id),
    };
    bridge
        .store
        .enqueue_outbox(&entry)
        .await
        .map_err(|e| RetryTransaction(format!("enqueueing an outgoing event: {e}")))?;
    relay_latency::outgoing_accepted(event_id, accepted);
    bridge.queues.ring(&portal.login_id, &portal.thread_id);
    Ok(())
}

/// What a portal event asks Instagram to do; `None` for events that ask
/// nothing (state events, redacted events).
async fn classify(
    bridge: &Bridge,
    event: &AnyTimelineEvent,
) -> Result<Option<Outgoing>, StoreError> {
    if let Some(change) = changes::classify(bridge, event) {
        return change_with_plain_text(bridge, event, change).await;
    }
    let AnyTimelineEvent::MessageLike(message) = event else {
        return Ok(None);
    };
    let Some(content) = message.original_content() else {
        return Ok(None);
    };
    let refuse = |reason: &str| {
        Ok(Some(Outgoing::Refuse {
            reason: reason.to_owned(),
        }))
    };
    match media::classify(&content) {
        Ok(Some(mut media)) => {
            if let AnyMessageLikeEvent::RoomMessage(MessageLikeEvent::Original(original)) = message
            {
                media.caption = caption_text(bridge, &original.content.msgtype).await?;
            }
            return Ok(Some(Outgoing::Media(media)));
        }
        Ok(None) => {}
        Err(reason) => return refuse(&reason),
    }
    match message {
        AnyMessageLikeEvent::RoomMessage(MessageLikeEvent::Original(original)) => {
            let content = &original.content;
            match &content.msgtype {
                MessageType::Text(_) | MessageType::Notice(_) | MessageType::Emote(_) => {
                    outgoing_text(bridge, content).await
                }
                MessageType::File(_) => refuse("Instagram direct messages cannot carry files."),
                other => refuse(&format!(
                    "Instagram direct messages cannot carry this kind of message ({}).",
                    other.msgtype()
                )),
            }
        }
        AnyMessageLikeEvent::RoomEncrypted(_) => refuse(
            "The bridge cannot read encrypted messages, so this one was not sent to Instagram.",
        ),
        other => refuse(&format!(
            "The bridge cannot carry {} events to Instagram.",
            other.event_type()
        )),
    }
}

/// A change, with an edit's new text made plain Instagram text as a new
/// message's would be (mention pills become `@username`).
async fn change_with_plain_text(
    bridge: &Bridge,
    event: &AnyTimelineEvent,
    change: changes::Change,
) -> Result<Option<Outgoing>, StoreError> {
    let changes::Change::Edit { target_event, .. } = &change else {
        return Ok(Some(Outgoing::Change(change)));
    };
    let AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
        MessageLikeEvent::Original(original),
    )) = event
    else {
        return Ok(Some(Outgoing::Change(change)));
    };
    let Some(Relation::Replacement(replacement)) = &original.content.relates_to else {
        return Ok(Some(Outgoing::Change(change)));
    };
    let new_content = RoomMessageEventContent::new(replacement.new_content.msgtype.clone());
    Ok(Some(match outgoing_text(bridge, &new_content).await? {
        Some(Outgoing::Text { text, .. }) => Outgoing::Change(changes::Change::Edit {
            target_event: target_event.clone(),
            text,
        }),
        // Not a text (a new caption of a photo, say), or no text left.
        _ => Outgoing::Refuse {
            reason: "Instagram cannot edit this message".to_owned(),
        },
    }))
}

/// A text message as Instagram text; a message left without text (only a
/// reply fallback, say) is refused.
async fn outgoing_text(
    bridge: &Bridge,
    content: &RoomMessageEventContent,
) -> Result<Option<Outgoing>, StoreError> {
    let reply_to = match &content.relates_to {
        Some(Relation::Reply(reply)) => Some(reply.in_reply_to.event_id.to_string()),
        _ => None,
    };
    let (body, formatted) = match &content.msgtype {
        MessageType::Text(text) => (&text.body, &text.formatted),
        MessageType::Notice(notice) => (&notice.body, &notice.formatted),
        MessageType::Emote(emote) => (&emote.body, &emote.formatted),
        _ => return Ok(None),
    };
    let mut text = plain_text(bridge, body, formatted.as_ref(), reply_to.is_some()).await?;
    if text.is_empty() {
        return Ok(Some(Outgoing::Refuse {
            reason: "The message has no text to send.".to_owned(),
        }));
    }
    if matches!(content.msgtype, MessageType::Emote(_)) {
        text = text::emote(&text);
    }
    Ok(Some(Outgoing::Text { text, reply_to }))
}

/// A media event's caption as plain Instagram text, if it has one.
async fn caption_text(
    bridge: &Bridge,
    msgtype: &MessageType,
) -> Result<Option<String>, StoreError> {
    let Some((body, formatted)) = media::caption(msgtype) else {
        return Ok(None);
    };
    let text = plain_text(bridge, body, formatted, false).await?;
    Ok((!text.is_empty()).then_some(text))
}

/// A message's text as plain Instagram text: its HTML form when it has one
/// (pills become `@username`, a reply's fallback is left out), else its
/// body (`is_reply`: without the reply fallback).
async fn plain_text(
    bridge: &Bridge,
    body: &str,
    formatted: Option<&FormattedBody>,
    is_reply: bool,
) -> Result<String, StoreError> {
    let html = formatted
        .filter(|formatted| formatted.format.as_str() == "org.matrix.custom.html")
        .map(|formatted| formatted.body.as_str());
    Ok(match html {
        Some(html) => text::html_to_plain(html, &mention_names(bridge, html).await?),
        None if is_reply => text::strip_reply_fallback(body).trim().to_owned(),
        None => body.trim().to_owned(),
    })
}

/// `@username` of each puppet a pill in `html` points at.
async fn mention_names(bridge: &Bridge, html: &str) -> Result<HashMap<String, String>, StoreError> {
    let mut names = HashMap::new();
    for user in text::pill_targets(html) {
        if !bridge.namespace.is_puppet(&user) {
            continue;
        }
        if let Some(username) = bridge
            .store
            .puppet_by_mxid(&user)
            .await?
            .and_then(|puppet| puppet.username)
        {
            names.insert(user, format!("@{username}"));
        }
    }
    Ok(names)
}

/// A polled item that is the echo of one of our sends. When the worker did
/// not record it (the send's answer was lost: a crash, a timeout, a row given
/// up after an ambiguous failure), records it as sent now and reports
/// SUCCESS; it is never bridged back either way.
pub async fn record_echo(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    entry: &OutboxEntry,
    message: &Message,
) -> Result<(), StoreError> {
    if entry.state == OutboxState::Sent && entry.item_id.is_some() {
        return Ok(());
    }
    let record = outbox_worker::sent_record(login, portal, entry, message);
    let event_id = &entry.queued.event_id;
    if let Some(next) = entry_next_part(entry) {
        // The first part went: the worker sends the next one.
        let continued = bridge
            .store
            .continue_outbox_send(event_id, &entry.queued.client_context, &record, &next)
            .await?;
        if continued.is_some() {
            tracing::info!(event_id, item = %message.id, "recorded a first part from its echo");
            bridge.queues.ring(&portal.login_id, &portal.thread_id);
        }
        return Ok(());
    }
    if bridge.store.complete_outbox_send(event_id, &record).await? {
        tracing::info!(event_id, item = %message.id, "recorded a send from its echo");
        status::report(
            bridge,
            &entry.queued.room_id,
            event_id,
            &SendStatus::Success,
        )
        .await;
    }
    Ok(())
}

/// The next part of an outbox entry, once its payload is sent (`None` for
/// an entry of one part, or one whose payload cannot be read).
pub fn entry_next_part(entry: &OutboxEntry) -> Option<NextOutboxPart> {
    serde_json::from_value::<Outgoing>(entry.queued.payload.clone())
        .ok()?
        .next_part(&entry.queued.event_id)
}

/// Rings the worker of every portal with pending outbox rows of `login_id`
/// (or of every login): at startup and after a login, so what was waiting
/// (a crash, an expired session) goes out.
pub async fn resume_pending(bridge: Arc<Bridge>, login_id: Option<String>) {
    let rooms = match bridge
        .store
        .rooms_with_pending_outbox(login_id.as_deref())
        .await
    {
        Ok(rooms) => rooms,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the rooms with messages to send");
            return;
        }
    };
    for (login, room_id) in rooms {
        match bridge.store.portal_by_room(&room_id).await {
            Ok(Some(portal)) if portal.login_id == login => {
                bridge.queues.ring(&portal.login_id, &portal.thread_id);
            }
            Ok(_) => {
                tracing::warn!(%room_id, "messages to send in a room that is no portal of their login")
            }
            Err(e) => tracing::error!(%room_id, error = %e, "cannot read a portal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_contexts_are_stable_decimals_in_instagrams_range() {
        let first = client_context("$abc:example.org");
        assert_eq!(first, client_context("$abc:example.org"));
        assert_ne!(first, client_context("$abd:example.org"));
        for event in ["$a", "$b", "$c", "$0123456789"] {
            let context: u64 = client_context(event).parse().unwrap();
            assert!((CLIENT_CONTEXT_MIN..=CLIENT_CONTEXT_MAX).contains(&context));
        }
    }

    #[test]
    fn payloads_keep_their_shape() {
        let text = Outgoing::Text {
            text: "hi".to_owned(),
            reply_to: Some("$r".to_owned()),
        };
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            serde_json::json!({"kind": "text", "text": "hi", "reply_to": "$r"})
        );
        let refuse: Outgoing =
            serde_json::from_value(serde_json::json!({"kind": "refuse", "reason": "no"})).unwrap();
        assert_eq!(refuse.kind(), "refuse");
    }
}
