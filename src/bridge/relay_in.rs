//! Instagram -> Matrix relaying of items: new items (every part, then
//! reactions), changes to known items (edits, reactions), unsends, read
//! receipts and presence. Each is idempotent: Matrix transaction ids derive
//! from (login, thread, item, part), and the message table maps every part
//! to its event, so a retry after a crash neither loses nor repeats events.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use ruma::presence::PresenceState;
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedTransactionId, OwnedUserId, RoomId,
    TransactionId, UInt, UserId,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::matrix::client::{ClientError, HomeserverClient};
use crate::model::{Message, Participant, Presence};
use crate::secrets::CredentialCipher;
use crate::store::{ItemRecords, LoginRecord, MessageRecord, PortalRecord, ReactionRecord};

use super::convert::{
    convert_message, edit_content, ConvertContext, MediaKind, Mention, Part, ReplyTarget,
    PREVIEW_PART,
};
use super::double_puppet::{SOURCE, SOURCE_KEY};
use super::instagram::Logins;
use super::media::MediaError;
use super::pending_records::PendingRecords;
use super::portal::join_puppet;
use super::puppet::{ensure_puppet, puppet_id};
use super::relay_error::RelayError;
use super::relay_out;
use super::Bridge;

/// How far a participant has seen a thread: an item id when Instagram names
/// one, else the time (the newest item at or before it is taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMarker {
    pub item_id: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// A Matrix transaction id derived from `parts`: the same parts always give
/// the same id, so the homeserver drops a repeated send.
pub fn txn_id(parts: &[&str]) -> OwnedTransactionId {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let hex: String = hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("mi{hex}").into()
}

/// A hash of an item's text, to notice edits.
pub(crate) fn text_hash(text: Option<&str>) -> Option<String> {
    text.map(|text| {
        Sha256::digest(text.as_bytes())[..12]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    })
}

fn millis(time: Option<DateTime<Utc>>) -> Option<MilliSecondsSinceUnixEpoch> {
    let ms = u64::try_from(time?.timestamp_millis()).ok()?;
    UInt::new(ms).map(MilliSecondsSinceUnixEpoch)
}

/// Who an Instagram user speaks as in Matrix: their puppet, or the user's
/// own account through double puppeting.
struct Speaker<'a> {
    client: &'a HomeserverClient,
    user: OwnedUserId,
    double: bool,
    /// The Instagram user's name as their puppet record has it, when it was read.
    name: Option<String>,
}

impl Speaker<'_> {
    /// Sends one event; a speaker not in the room yet joins it first.
    async fn send(
        &self,
        bridge: &Bridge,
        room_id: &RoomId,
        txn: &TransactionId,
        event_type: &str,
        content: &Value,
        ts: Option<MilliSecondsSinceUnixEpoch>,
    ) -> Result<OwnedEventId, RelayError> {
        let mut content = content.clone();
        if self.double {
            content[SOURCE_KEY] = json!(SOURCE);
        }
        let send = || {
            self.client
                .send_raw(room_id, txn, event_type, &content, ts, Some(&self.user))
        };
        match send().await {
            Err(e) if is_forbidden(&e) => {
                self.join(bridge, room_id).await?;
                send()
                    .await
                    .map_err(RelayError::homeserver("sending a bridged event"))
            }
            sent => sent.map_err(RelayError::homeserver("sending a bridged event")),
        }
    }

    async fn join(&self, bridge: &Bridge, room_id: &RoomId) -> Result<(), RelayError> {
        if !self.double {
            return join_puppet(bridge, room_id, &self.user).await;
        }
        if let Err(e) = self.client.join(room_id, Some(&self.user)).await {
            if !is_forbidden(&e) {
                return Err(RelayError::homeserver("joining as the user")(e));
            }
            bridge
                .client
                .invite(room_id, &self.user, None)
                .await
                .map_err(RelayError::homeserver("inviting the user"))?;
            self.client
                .join(room_id, Some(&self.user))
                .await
                .map_err(RelayError::homeserver("joining as the user"))?;
        }
        Ok(())
    }

    /// Redacts an event; when the speaker may not (it left), the bot does.
    async fn redact(
        &self,
        bridge: &Bridge,
        room_id: &RoomId,
        event_id: &str,
    ) -> Result<(), RelayError> {
        let Ok(event_id) = EventId::parse(event_id) else {
            return Err(RelayError::InvalidId {
                what: "event id",
                id: event_id.to_owned(),
            });
        };
        let txn = txn_id(&["redact", event_id.as_str()]);
        let redacted = self
            .client
            .redact(room_id, &event_id, &txn, None, Some(&self.user))
            .await;
        match redacted {
            Err(e) if is_forbidden(&e) => bridge
                .client
                .redact(room_id, &event_id, &txn, None, None)
                .await
                .map(drop)
                .map_err(RelayError::homeserver("redacting a bridged event")),
            other => other
                .map(drop)
                .map_err(RelayError::homeserver("redacting a bridged event")),
        }
    }
}

fn is_forbidden(error: &ClientError) -> bool {
    error.errcode() == Some("M_FORBIDDEN")
}

/// The speaker of an Instagram user in a login's portals: the user's own
/// account for the login's Instagram account when double puppeting works
/// for them, otherwise the puppet; the bot for an item without a sender.
async fn speaker<'a>(
    bridge: &'a Bridge,
    login: &LoginRecord,
    ig_user_id: &str,
) -> Result<Speaker<'a>, RelayError> {
    if ig_user_id.is_empty() {
        return Ok(Speaker {
            client: &bridge.client,
            user: bridge.namespace.bot().to_owned(),
            double: false,
            name: None,
        });
    }
    let is_self = login.ig_user_id.as_deref() == Some(ig_user_id);
    if is_self {
        if let (Some(double), Ok(user)) = (&bridge.double_puppet, UserId::parse(&login.mxid)) {
            if double.can_act_as(&user).await {
                return Ok(Speaker {
                    client: double.client(),
                    user,
                    double: true,
                    name: None,
                });
            }
        }
    }
    let (user, name) = match bridge.store.puppet(ig_user_id).await? {
        Some(puppet) if puppet.registered => (
            puppet_id(bridge, ig_user_id)?,
            puppet.displayname.or(puppet.username),
        ),
        _ => {
            let handle = if is_self {
                login.username.clone()
            } else {
                None
            };
            let participant = Participant {
                id: ig_user_id.to_owned(),
                name: None,
                handle,
                avatar_url: None,
            };
            (ensure_puppet(bridge, &participant).await?, None)
        }
    };
    Ok(Speaker {
        client: &bridge.client,
        user,
        double: false,
        name,
    })
}

pub(crate) fn portal_room(portal: &PortalRecord) -> Result<ruma::OwnedRoomId, RelayError> {
    RoomId::parse(&portal.room_id).map_err(|_| RelayError::InvalidId {
        what: "room id",
        id: portal.room_id.clone(),
    })
}

/// Whether an item is bridged as it is now, from what is recorded of it:
/// every part sent, its text unchanged since, its reactions the recorded
/// ones. Then [`relay_message`] would do nothing, and the portal's worker
/// skips it without reading anything more (a thread's newest page comes
/// with every poll that finds something new in the thread).
pub fn is_relayed(message: &Message, records: &ItemRecords) -> bool {
    if records.parts.is_empty() {
        return false;
    }
    // Mentions, the reply and the sender's name change parts' content, not
    // which parts there are.
    let no_context = ConvertContext {
        mentions: &HashMap::new(),
        reply: None,
        sender_name: "",
    };
    let parts = convert_message(message, &no_context);
    let recorded = |part_id: &str| records.parts.iter().find(|r| r.part_id == part_id);
    if parts.iter().any(|part| recorded(&part.part_id).is_none()) {
        return false;
    }
    let main = parts.first().and_then(|main| recorded(&main.part_id));
    let text = text_hash(message.content.as_deref());
    if let (Some(old), Some(new)) = (main.and_then(|r| r.content_hash.as_deref()), &text) {
        if old != new {
            return false;
        }
    }
    let wanted: BTreeMap<&str, &str> = message
        .reactions
        .iter()
        .filter_map(|r| Some((r.sender_id.as_deref()?, r.emoji.as_str())))
        .collect();
    let stored: BTreeMap<&str, &str> = records
        .reactions
        .iter()
        .map(|r| (r.sender.as_str(), r.emoji.as_str()))
        .collect();
    wanted == stored
}

/// One Instagram item: bridges it if new (all parts, reactions), or applies what changed
/// (edit -> m.replace, reactions added/changed/removed). Our own sends' echoes
/// (found in the outbox by client_context) are not bridged: a send whose
/// answer was lost (crash, timeout) is recorded as sent instead.
pub async fn relay_message(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    message: &Message,
) -> Result<(), RelayError> {
    let done = bridge
        .store
        .message_parts(&login.id, &portal.thread_id, &message.id)
        .await?;
    let mut pending = PendingRecords::default();
    let relayed = relay_recorded(bridge, login, portal, message, done, &mut pending).await;
    pending.settle().await?;
    relayed
}

/// [`relay_message`] with the item's recorded parts (`done`) already read
/// (the portal's worker reads those of a whole update at once), leaving
/// the new parts' records written in `pending`.
pub async fn relay_recorded(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    message: &Message,
    done: Vec<MessageRecord>,
    pending: &mut PendingRecords,
) -> Result<(), RelayError> {
    let store = &bridge.store;
    // Only the login's own account can send an echo of the bridge's send.
    let may_be_echo = match (&message.sender, &login.ig_user_id) {
        (Some(sender), Some(own)) => sender.id == *own,
        _ => true,
    };
    if done.is_empty() && may_be_echo {
        if let Some(client_context) = message.client_context.as_deref() {
            if let Some(entry) = store.outbox_by_client_context(client_context).await? {
                if entry.queued.login_id == login.id {
                    tracing::debug!(item = %message.id, "echo of our own send");
                    return relay_out::record_echo(bridge, login, portal, &entry, message)
                        .await
                        .map_err(RelayError::from);
                }
            }
        }
    }
    let room_id = portal_room(portal)?;
    let sender_id = message
        .sender
        .as_ref()
        .map(|sender| sender.id.clone())
        .unwrap_or_default();
    let speaker = speaker(bridge, login, &sender_id).await?;
    let sender_name = match &speaker.name {
        Some(name) => name.clone(),
        None => display_name(bridge, &sender_id).await?,
    };
    if message.reply_to.is_some() {
        // The reply's target may be an item whose record is still being written.
        pending.settle().await?;
    }
    let parts = convert(bridge, login, portal, message, &sender_name).await?;

    let missing: Vec<Part> = parts
        .iter()
        .filter(|part| !done.iter().any(|record| record.part_id == part.part_id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let missing = fill_media(bridge, login, portal, message, &speaker, missing).await?;
        let main_part_id = parts.first().map(|part| part.part_id.as_str());
        for part in &missing {
            let txn = txn_id(&[&login.id, &portal.thread_id, &message.id, &part.part_id]);
            let ts = millis(message.timestamp);
            let event_id = speaker
                .send(bridge, &room_id, &txn, part.event_type, &part.content, ts)
                .await?;
            let is_main = Some(part.part_id.as_str()) == main_part_id;
            pending.write(
                store,
                MessageRecord {
                    login_id: login.id.clone(),
                    thread_id: portal.thread_id.clone(),
                    item_id: message.id.clone(),
                    part_id: part.part_id.clone(),
                    room_id: portal.room_id.clone(),
                    event_id: event_id.to_string(),
                    sender: sender_id.clone(),
                    timestamp: message.timestamp.map_or(0, |t| t.timestamp_millis()),
                    client_context: message.client_context.clone(),
                    content_hash: if is_main {
                        text_hash(message.content.as_deref())
                    } else {
                        None
                    },
                },
            );
        }
    }
    if let Some(main) = parts.first() {
        if let Some(record) = done.iter().find(|record| record.part_id == main.part_id) {
            apply_edit(bridge, &room_id, &speaker, record, message, main).await?;
        }
    }
    // A new item without reactions has none bridged either.
    if done.is_empty() && message.reactions.is_empty() {
        return Ok(());
    }
    // The reactions' target is the item's own record.
    pending.settle().await?;
    sync_reactions(bridge, login, portal, &room_id, message).await
}

/// Converts an item with what the conversion needs: mention pills of
/// bridged users, the reply target, the sender's name.
async fn convert(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    message: &Message,
    sender_name: &str,
) -> Result<Vec<Part>, RelayError> {
    let store = &bridge.store;
    let mentions = mentions(bridge, message.content.as_deref().unwrap_or_default()).await?;
    let reply = match &message.reply_to {
        None => None,
        Some(reply) => Some(
            match store
                .message_by_item(&login.id, &portal.thread_id, &reply.message_id)
                .await?
                .and_then(|record| EventId::parse(record.event_id).ok())
            {
                Some(event_id) => ReplyTarget::Bridged { event_id },
                None => ReplyTarget::Missing {
                    sender_name: match &reply.sender_id {
                        Some(author) => display_name(bridge, author).await?,
                        None => "Someone".to_owned(),
                    },
                    preview: reply.preview.clone(),
                },
            },
        ),
    };
    let ctx = ConvertContext {
        mentions: &mentions,
        reply,
        sender_name,
    };
    Ok(convert_message(message, &ctx))
}

/// How an Instagram user is called in quotes and notices: their puppet's
/// name, else their username, else their id.
async fn display_name(bridge: &Bridge, ig_user_id: &str) -> Result<String, RelayError> {
    Ok(match bridge.store.puppet(ig_user_id).await? {
        Some(puppet) => puppet
            .displayname
            .or(puppet.username)
            .unwrap_or_else(|| ig_user_id.to_owned()),
        None => ig_user_id.to_owned(),
    })
}

/// The lowercase usernames named as `@username` in `text` (an `@` inside a
/// word, as in an e-mail address, names no one), each once.
fn mentioned_usernames(text: &str) -> Vec<String> {
    let mut usernames: Vec<String> =
        text.match_indices('@')
            .filter(|(at, _)| {
                text[..*at].chars().next_back().is_none_or(|before| {
                    !(before.is_alphanumeric() || before == '.' || before == '_')
                })
            })
            .map(|(at, _)| {
                text[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                    .collect::<String>()
                    .trim_end_matches('.')
                    .to_lowercase()
            })
            .filter(|name| !name.is_empty())
            .collect();
    usernames.sort();
    usernames.dedup();
    usernames
}

/// Bridged users named as `@username` in `text`, by lowercase username.
async fn mentions(bridge: &Bridge, text: &str) -> Result<HashMap<String, Mention>, RelayError> {
    let usernames = mentioned_usernames(text);
    let names: Vec<&str> = usernames.iter().map(String::as_str).collect();
    let mut found = HashMap::new();
    for puppet in bridge.store.puppets_by_usernames(&names).await? {
        let (Some(username), Ok(user_id)) = (puppet.username, UserId::parse(&puppet.mxid)) else {
            continue;
        };
        let displayname = puppet.displayname.unwrap_or_else(|| username.clone());
        found.insert(
            username.to_lowercase(),
            Mention {
                user_id,
                displayname,
            },
        );
    }
    Ok(found)
}

/// Uploads the media of `parts`; an expired media URL gets the item fetched
/// again, once, for fresh URLs.
async fn fill_media(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    message: &Message,
    speaker: &Speaker<'_>,
    mut parts: Vec<Part>,
) -> Result<Vec<Part>, RelayError> {
    let media_error = |source| RelayError::Media {
        item_id: message.id.clone(),
        source,
    };
    let mut refetched = false;
    let mut index = 0;
    while index < parts.len() {
        let filled = bridge
            .media
            .fill(&bridge.client, &speaker.user, &mut parts[index])
            .await;
        match filled {
            Ok(()) => index += 1,
            Err(MediaError::Expired) if !refetched => {
                refetched = true;
                let fresh = match refetch(bridge, login, portal, message).await {
                    Ok(fresh) => fresh,
                    // Gone from the thread's newest page: the old URL is all there is.
                    Err(RelayError::Media { .. }) => {
                        give_up_media(&mut parts, &mut index, message, &MediaError::Expired);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let sender_id = fresh
                    .sender
                    .as_ref()
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                let converted = convert(bridge, login, portal, &fresh, &sender_id).await?;
                // Every part not filled yet takes the fresh version (its URLs
                // were signed together with the expired one).
                for part in &mut parts[index..] {
                    match converted.iter().find(|again| again.part_id == part.part_id) {
                        Some(again) => *part = again.clone(),
                        None if part.media.is_some() => {
                            return Err(media_error(MediaError::Expired))
                        }
                        None => {}
                    }
                }
            }
            Err(error @ (MediaError::Expired | MediaError::Permanent(_))) => {
                give_up_media(&mut parts, &mut index, message, &error);
            }
            Err(error) => return Err(media_error(error)),
        }
    }
    Ok(parts)
}

/// A file that can never be had stands aside without losing the message: a
/// text keeps its words (its link preview goes without a picture), a share's
/// preview picture is left out, and a photo, video or voice message becomes
/// a notice saying what it was.
fn give_up_media(parts: &mut Vec<Part>, index: &mut usize, message: &Message, error: &MediaError) {
    tracing::warn!(item = %message.id, %error, "a file of the item cannot be bridged");
    let part = &mut parts[*index];
    let Some(media) = part.media.take() else {
        *index += 1;
        return;
    };
    if part.content["msgtype"] == "m.text" {
        *index += 1;
    } else if part.part_id == PREVIEW_PART {
        parts.remove(*index);
    } else {
        let what = match media.kind {
            MediaKind::Image => "A photo",
            MediaKind::Video => "A video",
            MediaKind::Audio => "A voice message",
            MediaKind::Gif => "A GIF",
            MediaKind::Sticker => "A sticker",
        };
        part.event_type = "m.room.message";
        part.content = json!({
            "msgtype": "m.notice",
            "body": format!(
                "{what} could not be bridged: Instagram no longer serves its file. \
                 Open Instagram to see it."
            ),
        });
        *index += 1;
    }
}

/// The item as Instagram shows it now (fresh media URLs).
async fn refetch(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    message: &Message,
) -> Result<Message, RelayError> {
    let failed = |detail: String| RelayError::Refetch {
        item_id: message.id.clone(),
        detail,
    };
    let key = bridge
        .config
        .credential_key()
        .map_err(|e| failed(e.to_string()))?;
    let logins = Logins::new(bridge.store.clone(), CredentialCipher::new(&key));
    let mut credentials = logins
        .credentials(&login.id)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let fresh = bridge
        .login_connector(&login.id)
        .get_message(&mut credentials, &portal.thread_id, &message.id)
        .await
        .map_err(|e| failed(e.to_string()))?;
    // Gone from the thread (unsent meanwhile): its media cannot be had.
    fresh.ok_or(RelayError::Media {
        item_id: message.id.clone(),
        source: MediaError::Expired,
    })
}

/// The item's text changed since it was bridged: an `m.replace` of its main event.
async fn apply_edit(
    bridge: &Bridge,
    room_id: &RoomId,
    speaker: &Speaker<'_>,
    record: &MessageRecord,
    message: &Message,
    main: &Part,
) -> Result<(), RelayError> {
    let (Some(old), Some(new)) = (
        record.content_hash.as_deref(),
        text_hash(message.content.as_deref()),
    ) else {
        return Ok(());
    };
    if old == new {
        return Ok(());
    }
    let Ok(target) = EventId::parse(&record.event_id) else {
        return Err(RelayError::InvalidId {
            what: "event id",
            id: record.event_id.clone(),
        });
    };
    let content = edit_content(main, &target);
    let txn = txn_id(&[
        &record.login_id,
        &record.thread_id,
        &record.item_id,
        "edit",
        &new,
    ]);
    speaker
        .send(bridge, room_id, &txn, "m.room.message", &content, None)
        .await?;
    bridge.store.set_message_content_hash(record, &new).await?;
    Ok(())
}

/// Makes the item's Matrix reactions match Instagram's: one per user; a
/// changed emoji redacts the old reaction, a removed one is redacted.
async fn sync_reactions(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    room_id: &RoomId,
    message: &Message,
) -> Result<(), RelayError> {
    let store = &bridge.store;
    let Some(target) = store
        .message_by_item(&login.id, &portal.thread_id, &message.id)
        .await?
    else {
        return Ok(());
    };
    let wanted: BTreeMap<&str, (&str, Option<DateTime<Utc>>)> = message
        .reactions
        .iter()
        .filter_map(|r| Some((r.sender_id.as_deref()?, (r.emoji.as_str(), r.timestamp))))
        .collect();
    let stored = store
        .reactions_of_item(&login.id, &portal.thread_id, &message.id)
        .await?;
    for old in &stored {
        let kept = wanted
            .get(old.sender.as_str())
            .is_some_and(|(emoji, _)| *emoji == old.emoji);
        if !kept {
            let speaker = speaker(bridge, login, &old.sender).await?;
            speaker.redact(bridge, room_id, &old.event_id).await?;
            store
                .delete_reaction(&login.id, &portal.thread_id, &message.id, &old.sender)
                .await?;
        }
    }
    for (sender, (emoji, at)) in wanted {
        let unchanged = stored
            .iter()
            .any(|old| old.sender == sender && old.emoji == emoji);
        if unchanged {
            continue;
        }
        let speaker = speaker(bridge, login, sender).await?;
        let content = json!({"m.relates_to": {
            "rel_type": "m.annotation",
            "event_id": target.event_id,
            "key": emoji,
        }});
        let txn = txn_id(&[
            &login.id,
            &portal.thread_id,
            &message.id,
            "reaction",
            sender,
            emoji,
        ]);
        let event_id = speaker
            .send(bridge, room_id, &txn, "m.reaction", &content, millis(at))
            .await?;
        store
            .upsert_reaction(&ReactionRecord {
                login_id: login.id.clone(),
                thread_id: portal.thread_id.clone(),
                item_id: message.id.clone(),
                sender: sender.to_owned(),
                room_id: portal.room_id.clone(),
                event_id: event_id.to_string(),
                emoji: emoji.to_owned(),
            })
            .await?;
    }
    Ok(())
}

/// The login of a portal.
async fn portal_login(bridge: &Bridge, portal: &PortalRecord) -> Result<LoginRecord, RelayError> {
    bridge
        .store
        .login(&portal.login_id)
        .await?
        .ok_or_else(|| RelayError::InvalidId {
            what: "login of portal",
            id: portal.login_id.clone(),
        })
}

/// An item that disappeared (unsend): redacts its events. The records stay,
/// so the item is never bridged again.
pub async fn relay_unsend(
    bridge: &Bridge,
    portal: &PortalRecord,
    item_id: &str,
) -> Result<(), RelayError> {
    let store = &bridge.store;
    let parts = store
        .message_parts(&portal.login_id, &portal.thread_id, item_id)
        .await?;
    if parts.is_empty() {
        return Ok(());
    }
    // Unsent by the bridge for its user: the events are redacted already.
    let unsent_by_bridge = store
        .unsent_by_bridge(&portal.login_id, &portal.thread_id, item_id)
        .await?;
    if !unsent_by_bridge {
        let login = portal_login(bridge, portal).await?;
        let room_id = portal_room(portal)?;
        for part in &parts {
            // A photo's event stands for its caption too: the caption
            // unsent alone leaves the photo.
            let items = store
                .messages_by_event(&portal.room_id, &part.event_id)
                .await?;
            if items.first().is_some_and(|first| first.item_id != item_id) {
                continue;
            }
            let speaker = speaker(bridge, &login, &part.sender).await?;
            speaker.redact(bridge, &room_id, &part.event_id).await?;
        }
    }
    for reaction in store
        .reactions_of_item(&portal.login_id, &portal.thread_id, item_id)
        .await?
    {
        store
            .delete_reaction(
                &portal.login_id,
                &portal.thread_id,
                item_id,
                &reaction.sender,
            )
            .await?;
    }
    Ok(())
}

/// A participant has seen the thread up to this item/time: read receipt from the puppet.
pub async fn relay_read(
    bridge: &Bridge,
    portal: &PortalRecord,
    ig_user_id: &str,
    seen: &SeenMarker,
) -> Result<(), RelayError> {
    let store = &bridge.store;
    let (login_id, thread_id) = (&portal.login_id, &portal.thread_id);
    let by_item = match seen.item_id.as_deref() {
        Some(item_id) => store
            .message_parts(login_id, thread_id, item_id)
            .await?
            .pop(),
        None => None,
    };
    let record = match (by_item, seen.at) {
        (Some(record), _) => record,
        (None, Some(at)) => {
            let Some(record) = store
                .message_at_or_before(login_id, thread_id, at.timestamp_millis())
                .await?
            else {
                return Ok(());
            };
            record
        }
        (None, None) => return Ok(()),
    };
    // Sending a message marks it read for its sender (clients show the
    // sender's receipt there without one), and Instagram's read state of a
    // sender usually is their own newest message: a receipt would only cost
    // the homeserver a request per update.
    if record.sender == ig_user_id {
        return Ok(());
    }
    if store
        .read_receipt(login_id, thread_id, ig_user_id)
        .await?
        .as_deref()
        == Some(record.event_id.as_str())
    {
        return Ok(());
    }
    let login = portal_login(bridge, portal).await?;
    let is_self = login.ig_user_id.as_deref() == Some(ig_user_id);
    if is_self && bridge.double_puppet.is_none() {
        return Ok(());
    }
    let room_id = portal_room(portal)?;
    let event_id = EventId::parse(&record.event_id).map_err(|_| RelayError::InvalidId {
        what: "event id",
        id: record.event_id.clone(),
    })?;
    let speaker = speaker(bridge, &login, ig_user_id).await?;
    let receipt = || {
        speaker
            .client
            .read_receipt(&room_id, &event_id, &speaker.user)
    };
    match receipt().await {
        Err(e) if is_forbidden(&e) => {
            speaker.join(bridge, &room_id).await?;
            receipt()
                .await
                .map_err(RelayError::homeserver("sending a read receipt"))?;
        }
        other => other.map_err(RelayError::homeserver("sending a read receipt"))?,
    }
    store
        .set_read_receipt(login_id, thread_id, ig_user_id, &record.event_id)
        .await?;
    Ok(())
}

/// Presence of a puppet (only of users the bridge has a puppet for).
pub async fn relay_presence(bridge: &Bridge, presence: &Presence) -> Result<(), RelayError> {
    let Some(puppet) = bridge.store.puppet(&presence.user_id).await? else {
        return Ok(());
    };
    let user = puppet_id(bridge, &puppet.ig_user_id)?;
    let state = if presence.is_active {
        PresenceState::Online
    } else {
        PresenceState::Offline
    };
    bridge
        .client
        .set_presence(&user, state, None)
        .await
        .map_err(RelayError::homeserver("setting a puppet's presence"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_stable_and_distinct() {
        let first = txn_id(&["@a:x", "t1", "item1", ""]);
        assert_eq!(first, txn_id(&["@a:x", "t1", "item1", ""]));
        assert_ne!(first, txn_id(&["@a:x", "t1", "item1", "preview"]));
        assert_ne!(first, txn_id(&["@a:x", "t1item1", "", ""]));
        assert!(first.as_str().starts_with("mi") && first.as_str().len() == 34);
    }

    #[test]
    fn mentions_are_words_starting_with_an_at() {
        assert_eq!(
            mentioned_usernames("hi @Bob.B, ask @carol_1. and @bob.b again"),
            vec!["bob.b", "carol_1"]
        );
        assert!(mentioned_usernames("mail me at alice@bob.b or @ alone").is_empty());
        assert_eq!(mentioned_usernames("(@dan)"), vec!["dan"]);
    }

    fn item(value: Value) -> Message {
        let mut fields = json!({"id": "i1", "conversation_id": "t1"});
        if let (Some(fields), Some(more)) = (fields.as_object_mut(), value.as_object()) {
            fields.extend(more.clone());
        }
        serde_json::from_value(fields).unwrap()
    }

    fn part(part_id: &str, text: Option<&str>) -> MessageRecord {
        MessageRecord {
            login_id: "l".to_owned(),
            thread_id: "t1".to_owned(),
            item_id: "i1".to_owned(),
            part_id: part_id.to_owned(),
            room_id: "!r:x".to_owned(),
            event_id: format!("$e{part_id}"),
            sender: "bob".to_owned(),
            timestamp: 0,
            client_context: None,
            content_hash: text_hash(text),
        }
    }

    fn reaction(sender: &str, emoji: &str) -> ReactionRecord {
        ReactionRecord {
            login_id: "l".to_owned(),
            thread_id: "t1".to_owned(),
            item_id: "i1".to_owned(),
            sender: sender.to_owned(),
            room_id: "!r:x".to_owned(),
            event_id: "$r".to_owned(),
            emoji: emoji.to_owned(),
        }
    }

    #[test]
    fn an_item_is_relayed_when_parts_text_and_reactions_match_the_records() {
        let text = item(json!({"content_type": "text", "content": "hi",
            "reactions": [{"emoji": "❤️", "sender_id": "carol"}]}));
        let records = ItemRecords {
            parts: vec![part("", Some("hi"))],
            reactions: vec![reaction("carol", "❤️")],
        };
        assert!(is_relayed(&text, &records));
        assert!(!is_relayed(&text, &ItemRecords::default()), "never bridged");

        let edited = item(json!({"content_type": "text", "content": "hi!",
            "reactions": [{"emoji": "❤️", "sender_id": "carol"}]}));
        assert!(!is_relayed(&edited, &records), "its text changed");
        let unreacted = item(json!({"content_type": "text", "content": "hi"}));
        assert!(!is_relayed(&unreacted, &records), "a reaction was removed");
        let changed = item(json!({"content_type": "text", "content": "hi",
            "reactions": [{"emoji": "😂", "sender_id": "carol"}]}));
        assert!(!is_relayed(&changed, &records), "a reaction changed");

        let captioned = item(json!({"content_type": "media", "content": "look",
            "attachments": [{"type": "image", "url": "https://cdn.example/a.jpg"}]}));
        let main_only = ItemRecords {
            parts: vec![part("", Some("look"))],
            reactions: Vec::new(),
        };
        assert!(
            !is_relayed(&captioned, &main_only),
            "its caption is not sent yet"
        );
        let both = ItemRecords {
            parts: vec![part("", Some("look")), part("text", None)],
            reactions: Vec::new(),
        };
        assert!(is_relayed(&captioned, &both));
    }

    #[test]
    fn text_hashes_change_with_the_text() {
        assert_eq!(text_hash(Some("hi")), text_hash(Some("hi")));
        assert_ne!(text_hash(Some("hi")), text_hash(Some("hi!")));
        assert_eq!(text_hash(None), None);
    }
}
