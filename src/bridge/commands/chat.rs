//! Commands in a chat's room (with the prefix, `!ig mute`): `mute`,
//! `unmute`, `archive`, `mark-unread` and `accept` (a message request). Each
//! acts on the chat the room bridges, with the sender's Instagram login.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Command, CommandContext, CommandError, CommandHandler, CommandRegistry, Reply};
use crate::bridge::login_session::{describe_failure, LoginSession};
use crate::config::PermissionLevel;
use crate::connector::typed::ThreadChange;
use crate::store::{PortalRecord, ThreadState};

/// Adds the chat commands.
pub fn register(commands: &mut CommandRegistry) {
    let changes = [
        (
            "mute",
            "In a chat: mute its notifications on Instagram.",
            ThreadChange::Mute,
            "Muted this chat on Instagram.",
        ),
        (
            "unmute",
            "In a chat: unmute its notifications on Instagram.",
            ThreadChange::Unmute,
            "Unmuted this chat on Instagram.",
        ),
        (
            "archive",
            "In a chat: archive it on Instagram (it comes back with new messages).",
            ThreadChange::Archive,
            "Archived this chat on Instagram.",
        ),
        (
            "mark-unread",
            "In a chat: mark it unread on Instagram.",
            ThreadChange::MarkUnread,
            "Marked this chat unread on Instagram.",
        ),
    ];
    for (name, description, change, done) in changes {
        commands.register_background(Command {
            name,
            usage: "",
            description,
            min_args: 0,
            max_args: 0,
            required: PermissionLevel::User,
            handler: Arc::new(ChangeThread { name, change, done }),
        });
    }
    commands.register_background(Command {
        name: "accept",
        usage: "",
        description: "In a message request's room: accept the request (the chat moves to your \
                      Instagram inbox).",
        min_args: 0,
        max_args: 0,
        required: PermissionLevel::User,
        handler: Arc::new(Accept),
    });
}

/// The session of the portal's login and the portal of the room the
/// command came from.
pub(super) async fn chat_here(
    ctx: &CommandContext<'_>,
    command: &str,
) -> Result<(LoginSession, PortalRecord), CommandError> {
    let portal = ctx
        .bridge
        .store
        .portal_by_room(ctx.room_id.as_str())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the portal");
            CommandError::Failed("the bridge's database is unavailable".to_owned())
        })?;
    let Some(portal) = portal else {
        return Err(CommandError::Usage(format!(
            "`{command}` works in the room of an Instagram chat: send `{} {command}` there.",
            ctx.prefix()
        )));
    };
    let session = open_session(ctx).await?;
    Ok((session, portal))
}

/// The session of the login the command acts on (the portal's, or the
/// sender's chosen one); a reply-ready error when there is none.
pub(super) async fn open_session(ctx: &CommandContext<'_>) -> Result<LoginSession, CommandError> {
    let login = ctx.chosen_login().await?;
    LoginSession::open(ctx.bridge, &login.id)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))
}

/// An Instagram failure as the user reads it.
pub(super) fn instagram_failed(error: &crate::connector::session::ConnectorError) -> CommandError {
    CommandError::Failed(describe_failure(error))
}

struct ChangeThread {
    name: &'static str,
    change: ThreadChange,
    done: &'static str,
}

#[async_trait]
impl CommandHandler for ChangeThread {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        let (mut session, portal) = chat_here(ctx, self.name).await?;
        let result = session
            .connector
            .change_thread(&mut session.creds, &portal.thread_id, self.change)
            .await;
        session.save().await;
        result.map_err(|e| instagram_failed(&e))?;
        Ok(Reply::text(self.done))
    }
}

struct Accept;

#[async_trait]
impl CommandHandler for Accept {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        let (mut session, mut portal) = chat_here(ctx, "accept").await?;
        if !portal.request {
            return Ok(Reply::text(
                "This chat is not a message request: it is already in your Instagram inbox.",
            ));
        }
        let result = session
            .connector
            .change_thread(&mut session.creds, &portal.thread_id, ThreadChange::Approve)
            .await;
        session.save().await;
        result.map_err(|e| instagram_failed(&e))?;
        no_longer_a_request(ctx, &mut portal).await.map_err(|e| {
            tracing::error!(error = %e, "cannot record the accepted request");
            CommandError::Failed(
                "Instagram accepted the request, but the bridge could not record it".to_owned(),
            )
        })?;
        Ok(Reply::text(
            "Accepted the message request: the chat is in your Instagram inbox now.",
        ))
    }
}

/// The portal and the poller's view of the thread stop calling it a request.
async fn no_longer_a_request(
    ctx: &CommandContext<'_>,
    portal: &mut PortalRecord,
) -> Result<(), crate::store::StoreError> {
    let store = &ctx.bridge.store;
    portal.request = false;
    store.update_portal_room(portal).await?;
    let state = store
        .thread_state(&portal.login_id, &portal.thread_id)
        .await?;
    if let Some(mut state) = state.filter(|state: &ThreadState| state.request) {
        state.request = false;
        store.save_thread_state(&state).await?;
    }
    Ok(())
}
