//! The normalized messaging model: the contract between the connector engine
//! (which maps platform JSON into these shapes) and the bridge core (which
//! speaks Matrix). Field names follow the seed spec's mappings; the bridge
//! never sees Instagram's own JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A chat thread: a direct conversation or a group. Numbers may arrive as
/// strings and optional keys may be missing (platforms drift).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ConversationKind,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub participants: Vec<Participant>,
    #[serde(default, deserialize_with = "lenient::option_i64")]
    pub unread_count: Option<i64>,
    /// The newest activity in the thread (a message, a reaction, a read).
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub muted: Option<bool>,
    /// Opaque cursor to fetch older messages of this conversation, when known.
    #[serde(default)]
    pub oldest_cursor: Option<String>,
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub has_older: Option<bool>,
    /// Whether the thread waits in the pending inbox (a message request).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub pending: Option<bool>,
    /// The id of the newest message, as the conversation list shows it.
    #[serde(default, deserialize_with = "lenient::option_string")]
    pub newest_item_id: Option<String>,
    /// The group's picture, when it has one.
    #[serde(default)]
    pub picture_url: Option<String>,
    /// How far each participant (the viewer included) has read.
    #[serde(default)]
    pub last_seen: Vec<LastSeen>,
}

/// How far one participant has read a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastSeen {
    #[serde(deserialize_with = "lenient::string")]
    pub user_id: String,
    /// The newest message they have seen.
    #[serde(default, deserialize_with = "lenient::option_string")]
    pub item_id: Option<String>,
    /// When they saw it.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationKind {
    Direct,
    Group,
}

/// A person taking part in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub handle: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// The platform's own kind of item (`text`, `media`, `voice_media`, ...).
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub sender: Option<Sender>,
    #[serde(default)]
    pub is_outgoing: Option<bool>,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    #[serde(default, deserialize_with = "reply_to_unless_empty")]
    pub reply_to: Option<ReplyTo>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The sender-chosen id echoed back by the platform; used to recognise our own sends.
    #[serde(default)]
    pub client_context: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub is_self: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    #[serde(default)]
    pub sender_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// A `reply_to` without a `message_id` means "not a reply": mappings build the
/// object field by field, so a missing reply shows up as an object of nulls.
fn reply_to_unless_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ReplyTo>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(deserializer)? {
        Some(reply) if reply.get("message_id").is_some_and(|id| !id.is_null()) => {
            serde_json::from_value(reply)
                .map(Some)
                .map_err(D::Error::custom)
        }
        _ => Ok(None),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyTo {
    pub message_id: String,
    #[serde(default)]
    pub preview: Option<String>,
}

/// Media carried by a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `video`, `audio`, `gif` (`url` is the file), `share`, `link`
    /// (`url` is the target), `location` (`url` is a `geo:` URI).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub width: Option<u64>,
    #[serde(default)]
    pub height: Option<u64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub title: Option<String>,
    /// An image standing for a `share` or `link` attachment, whose `url` is
    /// the target rather than a file.
    #[serde(default)]
    pub preview_url: Option<String>,
}

/// Whether a user is online.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub user_id: String,
    pub is_active: bool,
    #[serde(default)]
    pub last_active_at: Option<DateTime<Utc>>,
}

/// A platform user looked up by id or username.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub handle: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// The result of a write action that creates nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub success: bool,
}

/// Anything an action may return, before the caller picks the shape it expects.
pub type Normalized = Value;

/// One page of the conversation list, newest activity first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    /// Opaque cursor for the next (older) page; `None` on the last page.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub has_older: bool,
    /// How many message requests wait, when the platform says.
    #[serde(default, deserialize_with = "lenient::option_i64")]
    pub pending_requests: Option<i64>,
}

/// One page of a conversation's messages, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Opaque cursor for the next (older) page; `None` on the last page.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub has_older: bool,
}

/// Deserializers that accept what drifting platforms send: ids and numbers
/// as either JSON numbers or strings, flags as booleans, 0/1 or strings.
mod lenient {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// A string, or a number written as one.
    pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        option_string(deserializer)?
            .ok_or_else(|| D::Error::custom("expected a string, found null"))
    }

    pub fn option_string<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        match Option::<Value>::deserialize(deserializer)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(other) => Err(D::Error::custom(format!(
                "expected a string or a number, found {other}"
            ))),
        }
    }

    pub fn option_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        match Option::<Value>::deserialize(deserializer)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .or_else(|| number.as_f64().map(|float| float as i64))
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("{number} is not an integer"))),
            Some(Value::Bool(flag)) => Ok(Some(i64::from(flag))),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{text:?} is not an integer"))),
            Some(other) => Err(D::Error::custom(format!(
                "expected an integer, found {other}"
            ))),
        }
    }

    pub fn option_bool<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<bool>, D::Error> {
        match Option::<Value>::deserialize(deserializer)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(flag)),
            Some(Value::Number(number)) => Ok(Some(number.as_f64() != Some(0.0))),
            Some(Value::String(text)) => match text.trim() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" | "" => Ok(Some(false)),
                other => Err(D::Error::custom(format!("{other:?} is not a flag"))),
            },
            Some(other) => Err(D::Error::custom(format!("expected a flag, found {other}"))),
        }
    }
}
