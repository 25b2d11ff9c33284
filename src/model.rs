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
    /// The text of the message, or of a notice (`content_type` says which).
    #[serde(default)]
    pub content: Option<String>,
    /// What the message is, for the bridge: `text`, `notice` (an action log, a
    /// call event, a placeholder: `content` is its description), `media`
    /// (`attachments`), `share` (`share`), `location` (`location`), `view_once`
    /// (`view_once`) or `unsupported` (a kind the spec does not know: `kind`).
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
    /// Entries that are not a usable reaction (no emoji) are left out.
    #[serde(default, deserialize_with = "drift::reactions")]
    pub reactions: Vec<Reaction>,
    #[serde(default, deserialize_with = "unless_missing::reply_to")]
    pub reply_to: Option<ReplyTo>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// What a `share` message points at.
    #[serde(default, deserialize_with = "unless_missing::share")]
    pub share: Option<Share>,
    /// The place of a `location` message.
    #[serde(default, deserialize_with = "unless_missing::location")]
    pub location: Option<Location>,
    /// What a `view_once` message holds (it is not downloaded: it can only be
    /// opened once, in the app).
    #[serde(default, deserialize_with = "unless_missing::view_once")]
    pub view_once: Option<ViewOnce>,
    /// How many times the text was edited, when the platform says; 0 or none
    /// means never. The text itself is always the newest.
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub edit_count: Option<u64>,
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
    #[serde(default, deserialize_with = "lenient::option_string")]
    pub sender_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// The message a reply answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyTo {
    pub message_id: String,
    /// Its text (or a short description of it), for a quote when it is not bridged.
    #[serde(default)]
    pub preview: Option<String>,
    /// Who wrote it.
    #[serde(default, deserialize_with = "lenient::option_string")]
    pub sender_id: Option<String>,
}

/// Media carried by a message: the file itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `video`, `audio`, `gif` (an animation, usually an MP4 without
    /// sound) or `sticker` (an image).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where to download the file; platform URLs are signed and expire.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub width: Option<u64>,
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub height: Option<u64>,
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub duration_ms: Option<u64>,
    /// A caption.
    #[serde(default)]
    pub title: Option<String>,
    /// A still picture of a video (its thumbnail).
    #[serde(default)]
    pub preview_url: Option<String>,
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub preview_width: Option<u64>,
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub preview_height: Option<u64>,
    /// A voice message's amplitudes, each from 0 to 1, evenly over its duration.
    #[serde(default, deserialize_with = "drift::f64s")]
    pub waveform: Vec<f64>,
}

/// Something shared that lives elsewhere: a post, a reel, a story, a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// `post`, `reel`, `video`, `story` or `profile`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The link to it on the website.
    pub url: String,
    /// The username of its owner (or of the profile shared).
    #[serde(default)]
    pub owner: Option<String>,
    /// Its caption, a profile's name, or what the share says about itself.
    #[serde(default)]
    pub caption: Option<String>,
    /// A picture standing for it.
    #[serde(default)]
    pub preview_url: Option<String>,
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub preview_width: Option<u64>,
    #[serde(default, deserialize_with = "drift::option_u64")]
    pub preview_height: Option<u64>,
}

/// A place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(default, deserialize_with = "drift::option_f64")]
    pub latitude: Option<f64>,
    #[serde(default, deserialize_with = "drift::option_f64")]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

/// Disappearing media that can only be seen in the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewOnce {
    /// `image` or `video`, when known.
    #[serde(default)]
    pub media_kind: Option<String>,
    /// The platform's view mode (`once`, `replayable`, ...).
    #[serde(default)]
    pub view_mode: Option<String>,
    /// Already viewed or expired.
    #[serde(default)]
    pub expired: bool,
}

/// Optional objects that mappings build field by field: when the thing is
/// absent they show up as an object of nulls, which means "none".
mod unless_missing {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    use super::{Location, ReplyTo, Share, ViewOnce};

    /// `Some` when `key` holds a value that is not null (or `false`).
    fn when_present<'de, D, T>(deserializer: D, key: &str) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: serde::de::DeserializeOwned,
    {
        match Option::<Value>::deserialize(deserializer)? {
            Some(object)
                if object
                    .get(key)
                    .is_some_and(|value| !value.is_null() && *value != Value::Bool(false)) =>
            {
                serde_json::from_value(object)
                    .map(Some)
                    .map_err(D::Error::custom)
            }
            _ => Ok(None),
        }
    }

    pub(super) fn reply_to<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReplyTo>, D::Error> {
        when_present(d, "message_id")
    }

    pub(super) fn share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Share>, D::Error> {
        when_present(d, "url")
    }

    pub(super) fn location<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Location>, D::Error> {
        let location: Option<Location> = when_present(d, "latitude")?;
        Ok(location.filter(|place| place.latitude.is_some() && place.longitude.is_some()))
    }

    pub(super) fn view_once<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ViewOnce>, D::Error> {
        when_present(d, "present")
    }
}

/// More of what drifting platforms send, for messages: sizes and durations
/// as numbers or strings, and lists whose odd entries are left out rather
/// than failing the whole message.
mod drift {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// A non-negative integer, or a number written as one; anything else is absent.
    pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        Ok(match Option::<Value>::deserialize(deserializer)? {
            Some(Value::Number(number)) => number.as_u64().or_else(|| {
                number
                    .as_f64()
                    .filter(|float| float.is_finite() && *float >= 0.0)
                    .map(|float| float.round() as u64)
            }),
            Some(Value::String(text)) => {
                let text = text.trim();
                text.parse::<u64>().ok().or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|float| float.is_finite() && *float >= 0.0)
                        .map(|float| float.round() as u64)
                })
            }
            _ => None,
        })
    }

    fn to_float(value: &Value) -> Option<f64> {
        match value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|float| float.is_finite())
    }

    /// A number, or a number written as one; anything else is absent.
    pub fn option_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<Value>::deserialize(deserializer)?
            .as_ref()
            .and_then(to_float))
    }

    /// A list of numbers (or numbers written as strings); other entries are left out.
    pub fn f64s<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        Ok(match Option::<Value>::deserialize(deserializer)? {
            Some(Value::Array(items)) => items.iter().filter_map(to_float).collect(),
            _ => Vec::new(),
        })
    }

    /// Reactions; entries that are not a usable reaction (no emoji) are left out.
    pub fn reactions<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<super::Reaction>, D::Error> {
        Ok(match Option::<Value>::deserialize(deserializer)? {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect(),
            _ => Vec::new(),
        })
    }
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
