//! Management-room commands that read the sender's Instagram inbox: `list`
//! (chats with unread counts, a page at a time), `unread`, `search <text>`
//! (each found message linked to its bridged event) and `presence <username>`.
//! They show the whole inbox, so they answer only in the management room.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::chat::{instagram_failed, open_session};
use super::{Command, CommandContext, CommandError, CommandHandler, CommandRegistry, Reply};
use crate::bridge::login_session::LoginSession;
use crate::config::PermissionLevel;
use crate::model::{Conversation, Message};
use crate::store::{LoginRecord, StoreError};

/// Chats per `list` page (the inbox page Instagram answers).
const PAGE_SIZE: usize = 20;
/// The deepest `list` page: each page costs one Instagram request.
pub const MAX_PAGE: usize = 25;
/// Messages `search` shows.
const MAX_SEARCH_RESULTS: usize = 20;

/// Adds the inbox commands.
pub fn register(commands: &mut CommandRegistry) {
    commands.register_background(Command {
        name: "list",
        usage: "[page]",
        description: "List your Instagram chats, newest first, with unread counts (20 a page).",
        min_args: 0,
        max_args: 1,
        required: PermissionLevel::User,
        handler: Arc::new(List),
    });
    commands.register_background(Command {
        name: "unread",
        usage: "",
        description: "Show your unread Instagram chats and their newest message.",
        min_args: 0,
        max_args: 0,
        required: PermissionLevel::User,
        handler: Arc::new(Unread),
    });
    commands.register_background(Command {
        name: "search",
        usage: "<text>",
        description: "Search your Instagram messages; each result links to its message here when \
                      it is bridged.",
        min_args: 1,
        max_args: usize::MAX,
        required: PermissionLevel::User,
        handler: Arc::new(Search),
    });
    commands.register_background(Command {
        name: "presence",
        usage: "<username>",
        description: "Show whether an Instagram user is active now, or when they last were.",
        min_args: 1,
        max_args: 1,
        required: PermissionLevel::User,
        handler: Arc::new(PresenceOf),
    });
}

/// Refuses a command that shows the inbox outside the management room.
pub(super) fn in_management_room(
    ctx: &CommandContext<'_>,
    command: &str,
) -> Result<(), CommandError> {
    if ctx.in_management_room {
        Ok(())
    } else {
        Err(CommandError::Failed(format!(
            "`{command}` shows your Instagram inbox, so it works only in your management room \
             (your direct chat with me)"
        )))
    }
}

/// The page number of `list [page]`.
pub fn parse_page(arg: Option<&str>) -> Result<usize, CommandError> {
    let Some(arg) = arg else {
        return Ok(1);
    };
    match arg.parse::<usize>() {
        Ok(page) if (1..=MAX_PAGE).contains(&page) => Ok(page),
        _ => Err(CommandError::Usage(format!(
            "`{arg}` is not a page number (1 to {MAX_PAGE})."
        ))),
    }
}

/// An Instagram username as typed (an `@` in front is allowed).
pub fn parse_username(arg: &str) -> Result<String, CommandError> {
    let name = arg.strip_prefix('@').unwrap_or(arg);
    let valid = !name.is_empty()
        && name.len() <= 30
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    if valid {
        Ok(name.to_lowercase())
    } else {
        Err(CommandError::Usage(format!(
            "`{arg}` is not an Instagram username (letters, digits, `.` and `_`, at most 30)."
        )))
    }
}

/// What the user calls a chat: the group's title, else the other people.
pub fn chat_name(viewer: Option<&str>, conversation: &Conversation) -> String {
    crate::bridge::portal::chat_title(conversation, viewer)
        .unwrap_or_else(|| "a chat with yourself".to_owned())
}

/// A matrix.to link to a room, or to one event in it.
pub fn matrix_to(room_id: &str, event_id: Option<&str>) -> String {
    let encode = |id: &str| url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>();
    match event_id {
        Some(event_id) => format!(
            "https://matrix.to/#/{}/{}",
            encode(room_id),
            encode(event_id)
        ),
        None => format!("https://matrix.to/#/{}", encode(room_id)),
    }
}

fn database_failed(e: StoreError) -> CommandError {
    tracing::error!(error = %e, "a command cannot read the database");
    CommandError::Failed("the bridge's database is unavailable".to_owned())
}

/// The rooms of the login's bridged chats, by thread id.
async fn portal_rooms(
    ctx: &CommandContext<'_>,
    login: &LoginRecord,
) -> Result<HashMap<String, String>, CommandError> {
    Ok(ctx
        .bridge
        .store
        .portals_of_login(&login.id)
        .await
        .map_err(database_failed)?
        .into_iter()
        .map(|portal| (portal.thread_id, portal.room_id))
        .collect())
}

fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A one-line preview of a message's text.
fn preview(message: &Message) -> String {
    let text = message
        .content
        .as_deref()
        .filter(|text| !text.trim().is_empty())
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "));
    match text {
        Some(text) if text.chars().count() > 80 => {
            format!("“{}…”", text.chars().take(80).collect::<String>())
        }
        Some(text) => format!("“{text}”"),
        None => format!("({})", message.kind.as_deref().unwrap_or("a message")),
    }
}

struct List;

#[async_trait]
impl CommandHandler for List {
    async fn run(&self, ctx: &CommandContext<'_>, args: &[String]) -> Result<Reply, CommandError> {
        in_management_room(ctx, "list")?;
        let page_number = parse_page(args.first().map(String::as_str))?;
        let mut session = open_session(ctx).await?;
        let result = read_page(&mut session, page_number).await;
        session.save().await;
        let Some(page) = result? else {
            return Ok(Reply::text(format!(
                "There is no page {page_number}: your inbox has fewer chats."
            )));
        };
        let rooms = portal_rooms(ctx, &session.login).await?;
        if page.conversations.is_empty() {
            return Ok(Reply::text("Your Instagram inbox is empty."));
        }
        let first = (page_number - 1) * PAGE_SIZE + 1;
        let mut text = format!("Your Instagram chats (page {page_number}):");
        for (index, conversation) in page.conversations.iter().enumerate() {
            text.push_str(&format!(
                "\n{}. {}",
                first + index,
                chat_name(session.login.ig_user_id.as_deref(), conversation)
            ));
            match conversation.unread_count {
                Some(count) if count > 0 => text.push_str(&format!(" · {count} unread")),
                _ => {}
            }
            if conversation.muted == Some(true) {
                text.push_str(" · muted");
            }
            if let Some(room) = rooms.get(&conversation.id) {
                text.push_str(&format!(" · {}", matrix_to(room, None)));
            }
        }
        if page.has_older {
            text.push_str(&format!("\nOlder chats: send `list {}`.", page_number + 1));
        }
        Ok(Reply::text(text))
    }
}

/// Inbox page `number` (1 is the newest), or `None` past the last page.
async fn read_page(
    session: &mut LoginSession,
    number: usize,
) -> Result<Option<crate::model::ConversationPage>, CommandError> {
    let mut cursor: Option<String> = None;
    for reached in 1..=number {
        let page = session
            .connector
            .list_conversations_page(&mut session.creds, cursor.as_deref())
            .await
            .map_err(|e| instagram_failed(&e))?;
        if reached == number {
            return Ok(Some(page));
        }
        match page.cursor.filter(|_| page.has_older) {
            Some(next) => cursor = Some(next),
            None => return Ok(None),
        }
    }
    Ok(None)
}

struct Unread;

#[async_trait]
impl CommandHandler for Unread {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        in_management_room(ctx, "unread")?;
        let mut session = open_session(ctx).await?;
        let connector = session.connector.clone();
        let conversations = connector.unread_conversations(&mut session.creds).await;
        let messages = match &conversations {
            Ok(_) => Some(connector.unread_messages(&mut session.creds).await),
            Err(_) => None,
        };
        session.save().await;
        let conversations = conversations.map_err(|e| instagram_failed(&e))?;
        let newest: HashMap<String, Message> = match messages {
            Some(messages) => messages
                .map_err(|e| instagram_failed(&e))?
                .into_iter()
                .map(|message| (message.conversation_id.clone(), message))
                .collect(),
            None => HashMap::new(),
        };
        if conversations.is_empty() {
            return Ok(Reply::text("You have no unread Instagram chats."));
        }
        let rooms = portal_rooms(ctx, &session.login).await?;
        let mut text = format!("Unread Instagram chats ({}):", conversations.len());
        for conversation in &conversations {
            text.push_str(&format!(
                "\n• {}",
                chat_name(session.login.ig_user_id.as_deref(), conversation)
            ));
            if let Some(message) = newest.get(&conversation.id) {
                text.push_str(&format!(": {}", preview(message)));
            }
            if let Some(room) = rooms.get(&conversation.id) {
                text.push_str(&format!(" · {}", matrix_to(room, None)));
            }
        }
        Ok(Reply::text(text))
    }
}

struct Search;

#[async_trait]
impl CommandHandler for Search {
    async fn run(&self, ctx: &CommandContext<'_>, args: &[String]) -> Result<Reply, CommandError> {
        in_management_room(ctx, "search")?;
        let query = args.join(" ");
        if query.trim().is_empty() {
            return Err(CommandError::Usage("Say what to search for.".to_owned()));
        }
        let mut session = open_session(ctx).await?;
        let result = session
            .connector
            .search_messages(&mut session.creds, &query)
            .await;
        session.save().await;
        let found = result.map_err(|e| instagram_failed(&e))?;
        if found.is_empty() {
            return Ok(Reply::text(format!(
                "No Instagram message matches “{query}”."
            )));
        }
        let store = &ctx.bridge.store;
        let login = &session.login;
        let mut text = format!("Messages matching “{query}”:");
        for message in found.iter().take(MAX_SEARCH_RESULTS) {
            let sender_id = message.sender.as_ref().map(|s| s.id.as_str());
            let sender = if sender_id.is_some() && sender_id == login.ig_user_id.as_deref() {
                "you".to_owned()
            } else {
                match sender_id {
                    Some(id) => match store.puppet(id).await.map_err(database_failed)? {
                        Some(puppet) => puppet
                            .username
                            .map(|username| format!("@{username}"))
                            .unwrap_or(puppet.displayname.unwrap_or_else(|| id.to_owned())),
                        None => id.to_owned(),
                    },
                    None => "someone".to_owned(),
                }
            };
            text.push_str(&format!("\n• {sender}"));
            if let Some(at) = message.timestamp {
                text.push_str(&format!(" ({})", format_time(at)));
            }
            text.push_str(&format!(": {}", preview(message)));
            let record = store
                .message_by_item(&login.id, &message.conversation_id, &message.id)
                .await
                .map_err(database_failed)?;
            match record {
                Some(record) => text.push_str(&format!(
                    " · {}",
                    matrix_to(&record.room_id, Some(&record.event_id))
                )),
                None => text.push_str(" · not bridged"),
            }
        }
        if found.len() > MAX_SEARCH_RESULTS {
            text.push_str(&format!(
                "\n…and {} more; search for something more precise.",
                found.len() - MAX_SEARCH_RESULTS
            ));
        }
        Ok(Reply::text(text))
    }
}

/// Looks a username up; an unknown user is a plain answer.
pub(super) async fn find_user(
    session: &mut LoginSession,
    username: &str,
) -> Result<crate::model::User, CommandError> {
    let result = session
        .connector
        .lookup_user(&mut session.creds, username)
        .await;
    match result {
        Ok(user) => Ok(user),
        Err(crate::connector::session::ConnectorError::NotFound { .. }) => Err(
            CommandError::Failed(format!("there is no Instagram user @{username}")),
        ),
        Err(e) => Err(instagram_failed(&e)),
    }
}

struct PresenceOf;

#[async_trait]
impl CommandHandler for PresenceOf {
    async fn run(&self, ctx: &CommandContext<'_>, args: &[String]) -> Result<Reply, CommandError> {
        in_management_room(ctx, "presence")?;
        let username = parse_username(&args[0])?;
        let mut session = open_session(ctx).await?;
        let result = presence_of(&mut session, &username).await;
        session.save().await;
        result
    }
}

async fn presence_of(session: &mut LoginSession, username: &str) -> Result<Reply, CommandError> {
    let user = find_user(session, username).await?;
    let presence = session
        .connector
        .presence(&mut session.creds, std::slice::from_ref(&user.id))
        .await
        .map_err(|e| instagram_failed(&e))?;
    let entry = presence.into_iter().find(|p| p.user_id == user.id);
    let text = match entry {
        Some(p) if p.is_active => format!("@{username} is active on Instagram now."),
        Some(p) => match p.last_active_at {
            Some(at) => format!(
                "@{username} is not active now; last active {}.",
                format_time(at)
            ),
            None => format!("@{username} is not active now."),
        },
        None => format!(
            "Instagram shows no activity status for @{username} (they may have turned it off)."
        ),
    };
    Ok(Reply::text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers() {
        assert_eq!(parse_page(None).unwrap(), 1);
        assert_eq!(parse_page(Some("3")).unwrap(), 3);
        for bad in ["0", "-1", "two", "26", "1.5"] {
            let error = parse_page(Some(bad)).unwrap_err();
            assert!(
                matches!(&error, CommandError::Usage(text) if text.contains(bad)),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(parse_username("@Friend.One").unwrap(), "friend.one");
        assert_eq!(parse_username("a_b.c9").unwrap(), "a_b.c9");
        for bad in ["@", "", "bad name", "x/y", &"a".repeat(31), "émile"] {
            assert!(
                matches!(parse_username(bad), Err(CommandError::Usage(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn matrix_to_links_encode_ids() {
        assert_eq!(
            matrix_to("!room:example.org", Some("$ev/ent+1")),
            "https://matrix.to/#/%21room%3Aexample.org/%24ev%2Fent%2B1"
        );
        assert_eq!(matrix_to("!r:x", None), "https://matrix.to/#/%21r%3Ax");
    }

    #[test]
    fn chats_are_named_after_title_or_people() {
        use crate::model::{ConversationKind, Participant};
        let person = |id: &str, name: Option<&str>, handle: Option<&str>| Participant {
            id: id.to_owned(),
            name: name.map(str::to_owned),
            handle: handle.map(str::to_owned),
            avatar_url: None,
        };
        let mut conversation = Conversation {
            id: "9".to_owned(),
            kind: ConversationKind::Direct,
            name: None,
            participants: vec![
                person("1", Some("Alice"), Some("alice")),
                person("2", Some("Bob B"), Some("bob")),
                person("3", None, Some("carol")),
            ],
            unread_count: None,
            updated_at: None,
            muted: None,
            oldest_cursor: None,
            has_older: None,
            pending: None,
            newest_item_id: None,
            picture_url: None,
            last_seen: Vec::new(),
        };
        assert_eq!(chat_name(Some("1"), &conversation), "Bob B, carol");
        conversation.name = Some("Trip".to_owned());
        assert_eq!(chat_name(Some("1"), &conversation), "Trip");
    }
}
