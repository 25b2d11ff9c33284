//! Typed calls for managing chats: flags of a thread (mute, archive, unread,
//! accepting a message request), the unread inbox, message search, starting
//! a direct chat or a group. A child of [`super`] so they share its `write`.

use serde_json::json;

use super::super::auth::Credentials;
use super::super::http::Connector;
use super::super::session::ConnectorError;
use crate::model::{Conversation, Message};

/// A change of how the user's inbox shows one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadChange {
    Mute,
    Unmute,
    /// Hides the conversation from the inbox until new activity.
    Archive,
    MarkUnread,
    /// Accepts a message request: the conversation moves into the inbox.
    Approve,
}

impl ThreadChange {
    fn action(self) -> &'static str {
        match self {
            ThreadChange::Mute => "mute",
            ThreadChange::Unmute => "unmute",
            ThreadChange::Archive => "archive",
            ThreadChange::MarkUnread => "mark_unread",
            ThreadChange::Approve => "approve",
        }
    }
}

impl Connector {
    /// Mutes, unmutes, archives, marks unread or accepts a conversation.
    pub async fn change_thread(
        &self,
        creds: &mut Credentials,
        conversation_id: &str,
        change: ThreadChange,
    ) -> Result<(), ConnectorError> {
        let params = json!({ "conversation_id": conversation_id });
        self.write(change.action(), params, creds).await
    }

    /// The conversations with unread messages (`list_conversations`, filter `unread`).
    pub async fn unread_conversations(
        &self,
        creds: &mut Credentials,
    ) -> Result<Vec<Conversation>, ConnectorError> {
        self.call(
            "list_conversations",
            json!({ "filter": "unread", "limit": 50 }),
            creds,
        )
        .await
    }

    /// The newest message of every unread conversation (`get_unread`).
    pub async fn unread_messages(
        &self,
        creds: &mut Credentials,
    ) -> Result<Vec<Message>, ConnectorError> {
        self.call("get_unread", json!({ "limit": 50 }), creds).await
    }

    /// Messages whose text matches `query` (`search`).
    pub async fn search_messages(
        &self,
        creds: &mut Credentials,
        query: &str,
    ) -> Result<Vec<Message>, ConnectorError> {
        self.call("search", json!({ "query": query }), creds).await
    }

    /// The conversation of exactly these users and the viewer, if one exists
    /// (`get_conversation_with`).
    pub async fn conversation_with(
        &self,
        creds: &mut Credentials,
        user_ids: &[String],
    ) -> Result<Option<Conversation>, ConnectorError> {
        self.call(
            "get_conversation_with",
            json!({ "user_ids": user_ids }),
            creds,
        )
        .await
    }

    /// Sends a text to a user, starting the direct conversation when there is
    /// none yet (`send_to_user`).
    pub async fn send_to_user(
        &self,
        creds: &mut Credentials,
        user_id: &str,
        text: &str,
        client_context: Option<&str>,
    ) -> Result<Message, ConnectorError> {
        self.call(
            "send_to_user",
            json!({ "user_id": user_id, "text": text, "client_context": client_context }),
            creds,
        )
        .await
    }

    /// Starts a group conversation (`create_group`).
    pub async fn create_group(
        &self,
        creds: &mut Credentials,
        user_ids: &[String],
        title: &str,
    ) -> Result<Conversation, ConnectorError> {
        self.call(
            "create_group",
            json!({ "user_ids": user_ids, "title": title }),
            creds,
        )
        .await
    }
}
