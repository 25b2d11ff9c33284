//! The `sync` command: polls the sender's Instagram logins now (the portal's in a
//! portal, where it also fetches that chat's messages even if the inbox shows no change).

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
        let portal = ctx
            .bridge
            .store
            .portal_by_room(ctx.room_id.as_str())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the portal");
                CommandError::Failed("the bridge's database is unavailable".to_owned())
            })?;
        // Outside a portal with no login named, every login of the user polls.
        let logins = match (&portal, &ctx.login_choice) {
            (None, None) => ctx.sender_logins().await?,
            _ => vec![ctx.chosen_login().await?],
        };
        if logins.is_empty() {
            return Ok(Reply::text(format!(
                "You are not logged in to Instagram. Send `login` in your management room \
                 (`{}` elsewhere).",
                ctx.invocation("login")
            )));
        }
        let thread = portal.as_ref().map(|portal| portal.thread_id.as_str());
        let mut polled = Vec::new();
        let mut stopped = Vec::new();
        for login in &logins {
            let name = format!("@{}", login.username.as_deref().unwrap_or("?"));
            if !LoginState::of(login).needs_user()
                && ctx.bridge.supervisor.poll_now(&login.id, thread)
            {
                polled.push(name);
            } else {
                stopped.push(name);
            }
        }
        if stopped.is_empty() {
            return Ok(Reply::text("Syncing with Instagram now."));
        }
        let mut text = String::new();
        if !polled.is_empty() {
            text.push_str(&format!("Syncing {} now. ", polled.join(", ")));
        }
        text.push_str(&format!(
            "Not polled, the login needs you: {}; send `login` in your management room to \
             reconnect.",
            stopped.join(", ")
        ));
        if polled.is_empty() {
            Err(CommandError::Failed(text))
        } else {
            Ok(Reply::text(text))
        }
    }
}
