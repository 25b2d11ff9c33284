//! Typed calls on top of [`Connector::execute`]: each runs one action of the
//! spec and deserializes its normalized result into the model's types. The
//! action names and their parameters are the contract with the spec files.

mod chats;

pub use chats::ThreadChange;

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::auth::Credentials;
use super::http::{Connector, FileData};
use super::session::ConnectorError;
use crate::model::{Conversation, ConversationPage, Message, MessagePage, Outcome, Presence, User};

/// A text message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingText {
    pub conversation_id: String,
    pub text: String,
    /// The id of the message this one replies to.
    pub reply_to: Option<String>,
    /// The send's key (a decimal number, derived from the Matrix event id by
    /// the bridge), echoed back by the platform on the item; generated when
    /// `None`. The platform does not promise to dedupe on it.
    pub client_context: Option<String>,
}

/// The kind of media an attachment send uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Photo,
    Video,
    Voice,
}

impl MediaKind {
    fn action(self) -> &'static str {
        match self {
            MediaKind::Photo => "send_photo",
            MediaKind::Video => "send_video",
            MediaKind::Voice => "send_voice",
        }
    }

    fn param(self) -> &'static str {
        match self {
            MediaKind::Photo => "photo",
            MediaKind::Video => "video",
            MediaKind::Voice => "audio",
        }
    }
}

/// A change to one message, for [`Connector::write_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageWrite<'a> {
    /// Reacts with this emoji, replacing the user's previous reaction.
    React(&'a str),
    /// Removes the user's reaction.
    Unreact,
    /// Unsends one of the user's own messages.
    Delete,
    /// Marks the conversation read up to this message.
    MarkRead,
}

impl MessageWrite<'_> {
    fn action(self) -> &'static str {
        match self {
            MessageWrite::React(_) => "react",
            MessageWrite::Unreact => "unreact",
            MessageWrite::Delete => "delete",
            MessageWrite::MarkRead => "mark_read",
        }
    }
}

impl Connector {
    /// Runs `action` and deserializes its normalized result into `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        action: &str,
        params: Value,
        creds: &mut Credentials,
    ) -> Result<T, ConnectorError> {
        let output = self.execute(action, params, creds).await?;
        decode(action, output.normalized)
    }

    /// The logged-in user (`current_user`).
    pub async fn current_user(&self, creds: &mut Credentials) -> Result<User, ConnectorError> {
        self.call("current_user", json!({}), creds).await
    }

    /// One page of the conversation list (`list_conversations_page`).
    pub async fn list_conversations_page(
        &self,
        creds: &mut Credentials,
        cursor: Option<&str>,
    ) -> Result<ConversationPage, ConnectorError> {
        self.call(
            "list_conversations_page",
            json!({ "cursor": cursor }),
            creds,
        )
        .await
    }

    /// The message requests: conversations of the pending inbox (`list_pending`).
    pub async fn list_pending(
        &self,
        creds: &mut Credentials,
    ) -> Result<Vec<Conversation>, ConnectorError> {
        self.call("list_pending", json!({}), creds).await
    }

    /// One conversation's details (`get_conversation`).
    pub async fn get_conversation(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
    ) -> Result<Conversation, ConnectorError> {
        self.call(
            "get_conversation",
            json!({ "conversation_id": conversation_id }),
            creds,
        )
        .await
    }

    /// One page of messages, newest first (`list_page`).
    pub async fn list_messages_page(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        cursor: Option<&str>,
    ) -> Result<MessagePage, ConnectorError> {
        self.call(
            "list_page",
            json!({ "conversation_id": conversation_id, "cursor": cursor }),
            creds,
        )
        .await
    }

    /// One message of a conversation's newest page (`get`); `None` when it is not there.
    pub async fn get_message(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        message_id: &str,
    ) -> Result<Option<Message>, ConnectorError> {
        self.call(
            "get",
            json!({ "conversation_id": conversation_id, "message_id": message_id }),
            creds,
        )
        .await
    }

    /// Sends a text, as a reply when `reply_to` is set (`send`).
    pub async fn send_text(
        &self,
        creds: &mut Credentials,
        message: &OutgoingText,
    ) -> Result<Message, ConnectorError> {
        self.call(
            "send",
            json!({
                "conversation_id": message.conversation_id,
                "text": message.text,
                "reply_to": message.reply_to,
                "client_context": message.client_context,
            }),
            creds,
        )
        .await
    }

    /// Uploads and sends a photo, video or voice message (`send_photo`, ...).
    pub async fn send_media(
        &self,
        creds: &mut Credentials,
        kind: MediaKind,
        conversation_id: &str,
        file: FileData,
        client_context: Option<&str>,
    ) -> Result<Message, ConnectorError> {
        let params =
            json!({ "conversation_id": conversation_id, "client_context": client_context });
        self.send_attachment(creds, kind, params, file).await
    }

    /// Uploads and sends a voice message with its waveform, amplitudes from 0
    /// to 1 (`send_voice`); an empty waveform leaves the spec's default.
    pub async fn send_voice(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        file: FileData,
        waveform: &[f64],
        client_context: Option<&str>,
    ) -> Result<Message, ConnectorError> {
        let mut params =
            json!({ "conversation_id": conversation_id, "client_context": client_context });
        if !waveform.is_empty() {
            params["waveform"] = json!(waveform);
        }
        self.send_attachment(creds, MediaKind::Voice, params, file)
            .await
    }

    async fn send_attachment(
        &self,
        creds: &mut Credentials,
        kind: MediaKind,
        params: Value,
        file: FileData,
    ) -> Result<Message, ConnectorError> {
        let files = HashMap::from([(kind.param().to_owned(), file)]);
        let output = self
            .execute_with_files(kind.action(), params, files, creds)
            .await?;
        decode(kind.action(), output.normalized)
    }

    /// Changes one message of a conversation: reacts, removes the user's
    /// reaction, unsends it (`delete`) or marks the conversation read up to it.
    pub async fn write_message(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        message_id: &str,
        write: MessageWrite<'_>,
    ) -> Result<(), ConnectorError> {
        self.write_message_with_context(creds, conversation_id, message_id, write, None)
            .await
    }

    /// [`Connector::write_message`] with the write's own `client_context` (a
    /// decimal number; generated when `None`). `Delete` sends none.
    pub async fn write_message_with_context(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        message_id: &str,
        write: MessageWrite<'_>,
        client_context: Option<&str>,
    ) -> Result<(), ConnectorError> {
        let mut params = json!({ "conversation_id": conversation_id, "message_id": message_id });
        if let MessageWrite::React(emoji) = write {
            params["emoji"] = json!(emoji);
        }
        if write != MessageWrite::Delete {
            params["client_context"] = json!(client_context);
        }
        self.write(write.action(), params, creds).await
    }

    /// Reacts to a message with `emoji`, or removes the user's reaction
    /// (`None`), under the caller's `client_context` (`react`, `unreact`), so
    /// that a repeated change is the same change.
    pub async fn set_reaction(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        message_id: &str,
        emoji: Option<&str>,
        client_context: &str,
    ) -> Result<(), ConnectorError> {
        let mut params = json!({
            "conversation_id": conversation_id,
            "message_id": message_id,
            "client_context": client_context,
        });
        let action = match emoji {
            Some(emoji) => {
                params["emoji"] = json!(emoji);
                "react"
            }
            None => "unreact",
        };
        self.write(action, params, creds).await
    }

    /// Replaces the text of one of the user's own text messages (`edit`);
    /// `client_context` is the edited message's, when known.
    pub async fn edit_message(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        message_id: &str,
        text: &str,
        client_context: Option<&str>,
    ) -> Result<(), ConnectorError> {
        let params = json!({
            "conversation_id": conversation_id,
            "message_id": message_id,
            "text": text,
            "client_context": client_context,
        });
        self.write("edit", params, creds).await
    }

    /// Sets a group conversation's title (`rename`).
    pub async fn rename_conversation(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        title: &str,
    ) -> Result<Conversation, ConnectorError> {
        let params = json!({ "conversation_id": conversation_id, "title": title });
        self.call("rename", params, creds).await
    }

    /// Adds users to a group conversation (`add_users`).
    pub async fn add_users(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        user_ids: &[&str],
    ) -> Result<Conversation, ConnectorError> {
        let params = json!({ "conversation_id": conversation_id, "user_ids": user_ids });
        self.call("add_users", params, creds).await
    }

    /// Starts or stops the typing indicator (`send_typing`).
    pub async fn set_typing(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        typing: bool,
    ) -> Result<(), ConnectorError> {
        let params = json!({ "conversation_id": conversation_id, "typing": typing });
        self.write("send_typing", params, creds).await
    }

    /// Whether the given users are online (`get_presence`).
    pub async fn presence(
        &self,
        creds: &mut Credentials,
        user_ids: &[String],
    ) -> Result<Vec<Presence>, ConnectorError> {
        self.call("get_presence", json!({ "user_ids": user_ids }), creds)
            .await
    }

    /// A user by username (`lookup_user`).
    pub async fn lookup_user(
        &self,
        creds: &mut Credentials,
        username: &str,
    ) -> Result<User, ConnectorError> {
        self.call("lookup_user", json!({ "username": username }), creds)
            .await
    }

    /// Runs a write action whose result is `{success: bool}`.
    async fn write(
        &self,
        action: &str,
        params: Value,
        creds: &mut Credentials,
    ) -> Result<(), ConnectorError> {
        let outcome: Outcome = self.call(action, params, creds).await?;
        if outcome.success {
            Ok(())
        } else {
            Err(ConnectorError::MalformedResponse {
                action: action.to_owned(),
                message: "the platform did not confirm the change".to_owned(),
            })
        }
    }
}

fn decode<T: DeserializeOwned>(action: &str, normalized: Value) -> Result<T, ConnectorError> {
    serde_path_to_error::deserialize(normalized).map_err(|err| ConnectorError::MalformedResponse {
        action: action.to_owned(),
        message: format!(
            "the mapped result does not fit the model at {}: {}",
            err.path(),
            err.inner()
        ),
    })
}
