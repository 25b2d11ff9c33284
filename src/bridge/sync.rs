//! The `sync` command: polls the sender's Instagram login now; in a portal
//! it also fetches that chat's messages even if the inbox shows no change.

use std::sync::Arc;

use async_trait::async_trait;

use super::commands::{
    Command, CommandContext, CommandError, CommandHandler, CommandRegistry, Reply,
};
use super::login_state::LoginState;
use crate::config::PermissionLevel;

/// Adds `sync` to the bot's commands.
pub fn register(commands: &mut CommandRegistry) {
    commands.register(Command {
        name: "sync",
        usage: "",
        description: "Fetch new Instagram messages now (in a chat: that chat's messages).",
        min_args: 0,
        max_args: 0,
        required: PermissionLevel::User,
        handler: Arc::new(Sync),
    });
}

struct Sync;

#[async_trait]
impl CommandHandler for Sync {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        let Some(login) = ctx.sender_login().await? else {
            return Ok(Reply::text(format!(
                "You are not logged in to Instagram. Send `login` in your management room \
                 (`{}` elsewhere).",
                ctx.invocation("login")
            )));
        };
        if LoginState::of(&login).needs_user() {
            return Ok(Reply::text(
                "Your Instagram login needs you: send `login` in your management room to reconnect.",
            ));
        }
        let portal = ctx
            .bridge
            .store
            .portal_by_room(ctx.room_id.as_str())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the portal");
                CommandError::Failed("the bridge's database is unavailable".to_owned())
            })?;
        let thread = match &portal {
            Some(portal) if portal.login_mxid != login.mxid => {
                return Err(CommandError::Failed(
                    "this chat belongs to another user's Instagram login".to_owned(),
                ))
            }
            Some(portal) => Some(portal.thread_id.as_str()),
            None => None,
        };
        if ctx.bridge.supervisor.poll_now(&login.mxid, thread) {
            Ok(Reply::text("Syncing with Instagram now."))
        } else {
            Err(CommandError::Failed(
                "your Instagram login is not being polled; send `login` to reconnect".to_owned(),
            ))
        }
    }
}
