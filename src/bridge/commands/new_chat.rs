//! Management-room commands that start chats: `pm <username> [message]`
//! opens the direct chat's room (creating the Instagram chat with the first
//! message when there is none yet) and `create-group <title> <username...>`
//! creates a group on Instagram, then its room.
//!
//! Instagram has no empty direct chats: a chat exists once a message was
//! sent (the app's "new message" screen creates it with the first one). So
//! an existing chat is opened at once, and a new one is created by sending
//! the message given with the command.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ruma::{RoomId, UserId};

use super::chat::{instagram_failed, open_session};
use super::inbox::{find_user, in_management_room, matrix_to, parse_username};
use super::{Command, CommandContext, CommandError, CommandHandler, CommandRegistry, Reply};
use crate::bridge::login_session::LoginSession;
use crate::bridge::portal_queue::ThreadUpdate;
use crate::config::PermissionLevel;
use crate::model::{Conversation, User};

/// Adds `pm` and `create-group`.
pub fn register(commands: &mut CommandRegistry) {
    commands.register_background(Command {
        name: "pm",
        usage: "<username> [message]",
        description: "Open your direct chat with an Instagram user here. Instagram creates a chat \
                      with its first message: with no chat yet, give the message to send.",
        min_args: 1,
        max_args: usize::MAX,
        required: PermissionLevel::User,
        handler: Arc::new(Pm),
    });
    commands.register_background(Command {
        name: "create-group",
        usage: "<title> <username...>",
        description: "Create an Instagram group with these users and open its room \
                      (quote a title with spaces).",
        min_args: 2,
        max_args: usize::MAX,
        required: PermissionLevel::User,
        handler: Arc::new(CreateGroup),
    });
}

/// The arguments of `create-group`: the title and the usernames, deduplicated.
pub fn parse_group(args: &[String]) -> Result<(String, Vec<String>), CommandError> {
    let Some((title, usernames)) = args.split_first() else {
        return Err(CommandError::Usage(
            "Give a title and usernames.".to_owned(),
        ));
    };
    let title = title.trim();
    if title.is_empty() {
        return Err(CommandError::Usage("The title is empty.".to_owned()));
    }
    let mut members: Vec<String> = Vec::new();
    for arg in usernames {
        let username = parse_username(arg)?;
        if !members.contains(&username) {
            members.push(username);
        }
    }
    if members.is_empty() {
        return Err(CommandError::Usage(
            "Name at least one user to add.".to_owned(),
        ));
    }
    Ok((title.to_owned(), members))
}

/// How long a command waits for the portal worker to create a room.
const ROOM_WAIT: Duration = Duration::from_secs(30);

/// Opens the room of a conversation: re-invites the user into an existing
/// one, or has the portal's worker create it; `None` when the room is not
/// there yet after [`ROOM_WAIT`] (the worker goes on creating it).
async fn open_room(
    ctx: &CommandContext<'_>,
    session: &LoginSession,
    conversation: &Conversation,
) -> Result<Option<String>, CommandError> {
    let bridge = ctx.bridge;
    let login_id = &session.login.id;
    if let Some(portal) = stored_portal(ctx, login_id, &conversation.id).await? {
        // The user may have been invited long ago and forgotten the invite.
        if let (Ok(room), Ok(user)) = (
            RoomId::parse(&portal.room_id),
            UserId::parse(ctx.sender.as_str()),
        ) {
            if let Err(e) = bridge
                .client
                .invite(&room, &user, Some(bridge.namespace.bot()))
                .await
            {
                tracing::debug!(error = %e, "the user is already in the chat's room");
            }
        }
        return Ok(Some(portal.room_id));
    }
    let Some(shared) = bridge.supervisor.bridge() else {
        return Err(CommandError::Failed(
            "the bridge is shutting down".to_owned(),
        ));
    };
    // The thread's ordered worker creates the room, as for any thread, so a
    // poll that sees the new chat at the same moment cannot make a second one.
    let update = ThreadUpdate::new(
        login_id.clone(),
        conversation.clone(),
        conversation.pending == Some(true),
    );
    let deadline = tokio::time::Instant::now() + ROOM_WAIT;
    let mut offered = false;
    while tokio::time::Instant::now() < deadline {
        offered = offered || bridge.queues.offer(&shared, update.clone());
        if offered {
            if let Some(portal) = stored_portal(ctx, login_id, &conversation.id).await? {
                return Ok(Some(portal.room_id));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
}

async fn stored_portal(
    ctx: &CommandContext<'_>,
    login_id: &str,
    thread_id: &str,
) -> Result<Option<crate::store::PortalRecord>, CommandError> {
    ctx.bridge
        .store
        .portal_by_thread(login_id, thread_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the portal");
            CommandError::Failed("the bridge's database is unavailable".to_owned())
        })
}

/// Where the user finds the room.
fn room_link(room: Option<&str>) -> String {
    match room {
        Some(room) => format!("you are invited to its room: {}", matrix_to(room, None)),
        None => "its room is being created and you will be invited to it".to_owned(),
    }
}

struct Pm;

#[async_trait]
impl CommandHandler for Pm {
    async fn run(&self, ctx: &CommandContext<'_>, args: &[String]) -> Result<Reply, CommandError> {
        in_management_room(ctx, "pm")?;
        let username = parse_username(&args[0])?;
        let text = args[1..].join(" ");
        let mut session = open_session(ctx).await?;
        let result = pm(ctx, &mut session, &username, text.trim()).await;
        session.save().await;
        result
    }
}

async fn pm(
    ctx: &CommandContext<'_>,
    session: &mut LoginSession,
    username: &str,
    text: &str,
) -> Result<Reply, CommandError> {
    let user: User = find_user(session, username).await?;
    if Some(&user.id) == session.login.ig_user_id.as_ref() {
        return Err(CommandError::Failed(
            "that is your own account; name someone else".to_owned(),
        ));
    }
    let connector = session.connector.clone();
    let existing = connector
        .conversation_with(&mut session.creds, std::slice::from_ref(&user.id))
        .await
        .map_err(|e| instagram_failed(&e))?;
    let (conversation, sent) = match existing {
        Some(conversation) => {
            if !text.is_empty() {
                let message = crate::connector::typed::OutgoingText {
                    conversation_id: conversation.id.clone(),
                    text: text.to_owned(),
                    ..Default::default()
                };
                connector
                    .send_text(&mut session.creds, &message)
                    .await
                    .map_err(|e| instagram_failed(&e))?;
            }
            (conversation, !text.is_empty())
        }
        None if text.is_empty() => {
            return Ok(Reply::text(format!(
                "You have no chat with @{username} on Instagram yet, and Instagram starts a chat \
                 with its first message: send `pm {username} <message>`."
            )));
        }
        None => {
            let sent = connector
                .send_to_user(&mut session.creds, &user.id, text, None)
                .await
                .map_err(|e| instagram_failed(&e))?;
            let conversation = connector
                .get_conversation(&mut session.creds, &sent.conversation_id)
                .await
                .map_err(|e| instagram_failed(&e))?;
            (conversation, true)
        }
    };
    let room = open_room(ctx, session, &conversation).await?;
    // The poller relays the new message (and any others) into the room.
    ctx.bridge
        .supervisor
        .poll_now(&session.login.id, Some(&conversation.id));
    let sent = if sent { " and sent your message" } else { "" };
    Ok(Reply::text(format!(
        "Opened your chat with @{username}{sent}; {}",
        room_link(room.as_deref())
    )))
}

struct CreateGroup;

#[async_trait]
impl CommandHandler for CreateGroup {
    async fn run(&self, ctx: &CommandContext<'_>, args: &[String]) -> Result<Reply, CommandError> {
        in_management_room(ctx, "create-group")?;
        let (title, usernames) = parse_group(args)?;
        let mut session = open_session(ctx).await?;
        let result = create_group(ctx, &mut session, &title, &usernames).await;
        session.save().await;
        result
    }
}

async fn create_group(
    ctx: &CommandContext<'_>,
    session: &mut LoginSession,
    title: &str,
    usernames: &[String],
) -> Result<Reply, CommandError> {
    let mut user_ids = Vec::new();
    for username in usernames {
        let user = find_user(session, username).await?;
        if Some(&user.id) != session.login.ig_user_id.as_ref() && !user_ids.contains(&user.id) {
            user_ids.push(user.id);
        }
    }
    if user_ids.is_empty() {
        return Err(CommandError::Usage(
            "Name at least one user besides yourself.".to_owned(),
        ));
    }
    let conversation = session
        .connector
        .create_group(&mut session.creds, &user_ids, title)
        .await
        .map_err(|e| instagram_failed(&e))?;
    let room = open_room(ctx, session, &conversation).await?;
    let members: Vec<String> = usernames.iter().map(|u| format!("@{u}")).collect();
    Ok(Reply::text(format!(
        "Created the Instagram group “{title}” with {}; {}",
        members.join(", "),
        room_link(room.as_deref())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn group_arguments() {
        let (title, members) = parse_group(&args(&["Trip 2027", "@Bob", "carol", "bob"])).unwrap();
        assert_eq!(title, "Trip 2027");
        assert_eq!(members, vec!["bob", "carol"]);
        assert!(matches!(
            parse_group(&args(&["  ", "bob"])),
            Err(CommandError::Usage(text)) if text.contains("title")
        ));
        assert!(matches!(
            parse_group(&args(&["Trip", "not a name"])),
            Err(CommandError::Usage(text)) if text.contains("not a name")
        ));
        assert!(matches!(
            parse_group(&args(&["Trip"])),
            Err(CommandError::Usage(_))
        ));
    }
}
