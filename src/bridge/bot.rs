//! The bridge bot: accepts invites from permitted users (a room private to
//! the user and the bot becomes their management room, see
//! [`super::management`]), refuses everyone else politely, and runs
//! commands: without prefix in the management room, with the prefix
//! (`!ig help`) elsewhere.

use ruma::events::room::member::MembershipState;
use ruma::events::room::message::{MessageType, Relation, RoomMessageEventContent};
use ruma::events::{
    AnyMessageLikeEvent, AnyMessageLikeEventContent, AnyStateEvent, AnyTimelineEvent,
    MessageLikeEvent, StateEvent,
};
use ruma::{EventId, OwnedRoomId, OwnedTransactionId, OwnedUserId, RoomId, TransactionId, UserId};

use super::commands::{CommandContext, Reply};
use super::management::{self, Audience};
use super::Bridge;
use super::{login, login_cookies, login_waiting};
use crate::config::PermissionLevel;
use crate::matrix::client::ClientError;
use crate::matrix::server::RetryTransaction;
use crate::store::StoreError;

/// What the bot says to users the configuration does not allow.
pub const REFUSAL: &str = "You are not allowed to use this bridge. \
    Ask the bridge's administrator to add you to the permissions in its configuration.";

/// Routes one timeline event to the bot.
pub async fn handle_event(
    bridge: &Bridge,
    event: AnyTimelineEvent,
) -> Result<(), RetryTransaction> {
    // Before the filter below: whoever brings someone in, a management room
    // that is no longer private stops being one.
    if let AnyTimelineEvent::State(AnyStateEvent::RoomMember(StateEvent::Original(member))) = &event
    {
        let membership = &member.content.membership;
        if matches!(membership, MembershipState::Invite | MembershipState::Join) {
            let (room_id, event_id) = (&member.room_id, member.event_id.as_str());
            management::on_newcomer(bridge, room_id, &member.state_key, membership, event_id)
                .await?;
        }
    }
    // The bridge's own users never drive the bot (this also stops loops).
    if bridge.namespace.owns(event.sender().as_str()) {
        return Ok(());
    }
    match event {
        AnyTimelineEvent::State(AnyStateEvent::RoomMember(StateEvent::Original(member))) => {
            let membership = &member.content.membership;
            if matches!(membership, MembershipState::Leave | MembershipState::Ban) {
                return management::on_departure(bridge, &member.room_id, &member.state_key).await;
            }
            let invited_bot = *membership == MembershipState::Invite
                && bridge.namespace.is_bot(member.state_key.as_str());
            if invited_bot {
                let is_direct = member.content.is_direct == Some(true);
                let invite = Invite {
                    room_id: &member.room_id,
                    inviter: &member.sender,
                    event_id: member.event_id.as_str(),
                    is_direct,
                };
                return on_bot_invite(bridge, invite).await;
            }
            Ok(())
        }
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomMessage(
            MessageLikeEvent::Original(message),
        )) => {
            on_message(
                bridge,
                &message.room_id,
                &message.sender,
                message.event_id.as_str(),
                &message.content,
            )
            .await
        }
        AnyTimelineEvent::MessageLike(AnyMessageLikeEvent::RoomEncrypted(
            MessageLikeEvent::Original(encrypted),
        )) => {
            on_encrypted(
                bridge,
                &encrypted.room_id,
                &encrypted.sender,
                encrypted.event_id.as_str(),
            )
            .await
        }
        _ => Ok(()),
    }
}

/// The bot has no encryption keys: tell a user who writes encrypted
/// messages to their management room instead of silently ignoring them.
async fn on_encrypted(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &str,
) -> Result<(), RetryTransaction> {
    let owner = management_room_owner(bridge, room_id).await?;
    if owner.as_deref() != Some(sender.as_str()) {
        return Ok(());
    }
    let notice = Reply::text(
        "This room is encrypted and I cannot read encrypted messages. \
         Start a new direct chat with me with encryption turned off and send `help` there.",
    );
    let txn_id = derived_txn_id("encrypted", event_id);
    settle(
        send_notice(bridge, room_id, &txn_id, &notice).await,
        "answering an encrypted message",
    )
}

/// Whose management room this is; a database failure makes the homeserver
/// resend the transaction.
pub(super) async fn management_room_owner(
    bridge: &Bridge,
    room_id: &RoomId,
) -> Result<Option<String>, RetryTransaction> {
    bridge
        .store
        .management_room_owner(room_id.as_str())
        .await
        .map_err(store_failed("reading the management room"))
}

/// A database failure makes the homeserver resend the transaction:
/// `.map_err(store_failed("saving x"))`.
pub(super) fn store_failed(doing: &'static str) -> impl FnOnce(StoreError) -> RetryTransaction {
    move |e| RetryTransaction(format!("{doing}: {e}"))
}

/// A homeserver failure that may pass (unreachable, 5xx, 429) makes the
/// homeserver resend the transaction; others are logged and dropped.
pub(super) fn settle(result: Result<(), ClientError>, doing: &str) -> Result<(), RetryTransaction> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_transient(&e) => Err(RetryTransaction(format!("{doing}: {e}"))),
        Err(e) => {
            tracing::warn!(error = %e, "{doing} failed");
            Ok(())
        }
    }
}

fn is_transient(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } => true,
        ClientError::Matrix { status, .. } => *status == 429 || *status >= 500,
        ClientError::Setup(_) | ClientError::Build { .. } | ClientError::Response { .. } => false,
    }
}

/// An invitation of the bot into a room.
struct Invite<'a> {
    room_id: &'a RoomId,
    inviter: &'a UserId,
    event_id: &'a str,
    /// The inviter marked the room as a direct chat.
    is_direct: bool,
}

async fn on_bot_invite(bridge: &Bridge, invite: Invite<'_>) -> Result<(), RetryTransaction> {
    let Invite {
        room_id,
        inviter,
        event_id,
        is_direct,
    } = invite;
    let bot = bridge.namespace.bot();
    let permission = bridge.config.permission(inviter.as_str());
    tracing::info!(%room_id, %inviter, ?permission, "bot invited");
    settle(
        bridge.client.join(room_id, Some(bot)).await,
        "joining on invite",
    )?;

    if permission < PermissionLevel::User {
        let refusal = Reply::text(REFUSAL);
        let txn_id = derived_txn_id("refusal", event_id);
        settle(
            send_notice(bridge, room_id, &txn_id, &refusal).await,
            "sending the refusal",
        )?;
        return settle(
            bridge
                .client
                .leave(room_id, Some("not allowed to use this bridge"), Some(bot))
                .await,
            "leaving after refusal",
        );
    }

    let state = match bridge.client.room_state(room_id, Some(bot)).await {
        Ok(state) => state,
        Err(e) => return settle(Err(e), "reading who is in the room"),
    };
    let audience = Audience::of(&state);
    if audience.is_private_to(inviter, bot) {
        return management::adopt(bridge, room_id, inviter, event_id).await;
    }
    let prefix = &bridge.config.bot.command_prefix;
    let hello = if is_direct {
        tracing::info!(%room_id, %inviter, "direct chat shared with others: not a management room");
        format!(
            "Hello! {}, so it cannot be your management room: do not send passwords or codes \
             here. Commands here need the prefix: send `{prefix} help` for the list. \
             For a management room, start a direct chat with only me.",
            audience.why_shared()
        )
    } else {
        format!("Hello! Commands in this room need the prefix: send `{prefix} help` for the list.")
    };
    let txn_id = derived_txn_id("hello", event_id);
    settle(
        send_notice(bridge, room_id, &txn_id, &Reply::text(hello)).await,
        "greeting in a shared room",
    )
}

async fn on_message(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &str,
    content: &RoomMessageEventContent,
) -> Result<(), RetryTransaction> {
    let MessageType::Text(text) = &content.msgtype else {
        return Ok(());
    };
    if matches!(content.relates_to, Some(Relation::Replacement(_))) {
        return Ok(());
    }
    let permission = bridge.config.permission(sender.as_str());
    if permission < PermissionLevel::User {
        return Ok(());
    }
    let owner = management_room_owner(bridge, room_id).await?;
    let mut in_management_room = owner.as_deref() == Some(sender.as_str());
    if in_management_room {
        in_management_room = management::confirm_private(bridge, room_id, sender, event_id).await?;
    }
    if in_management_room {
        if let Some(reply) =
            answer_after_restart(bridge, room_id, sender, event_id, &text.body).await
        {
            let txn_id = derived_txn_id("interrupted", event_id);
            // Never resent: the message was probably a password.
            if let Err(RetryTransaction(problem)) = settle(
                send_notice(bridge, room_id, &txn_id, &reply).await,
                "answering after an interrupted login",
            ) {
                tracing::warn!(
                    problem,
                    "the answer after an interrupted login was not sent"
                );
            }
            return Ok(());
        }
        if let Some(reply) = answer_login(bridge, room_id, sender, event_id, &text.body).await {
            let txn_id = derived_txn_id("answer", event_id);
            // Never resent: the message was consumed as a login answer.
            if let Err(RetryTransaction(problem)) = settle(
                send_notice(bridge, room_id, &txn_id, &reply).await,
                "answering a login message",
            ) {
                tracing::warn!(problem, "the answer to a login message was not sent");
            }
            return Ok(());
        }
    }
    let prefix = bridge.config.bot.command_prefix.as_str();
    let Some(line) = command_line(&text.body, prefix, in_management_room) else {
        return Ok(());
    };

    if let Some(paste) = login_cookies::paste_of(line) {
        return on_cookie_paste(bridge, room_id, sender, event_id, in_management_room, paste).await;
    }
    let command = CommandRun {
        sender: sender.to_owned(),
        room_id: room_id.to_owned(),
        event_id: event_id.to_owned(),
        line: line.to_owned(),
        permission,
        in_management_room,
    };
    // Commands that wait on Instagram run beside the transactions, which go
    // on meanwhile (a reply that cannot be sent is logged); the others in order.
    let background = bridge.commands.runs_in_background(line);
    match bridge.supervisor.bridge().filter(|_| background) {
        Some(bridge) => {
            tokio::spawn(async move {
                if let Err(RetryTransaction(problem)) = command.run(&bridge).await {
                    tracing::warn!(problem, "the reply to a command was not sent");
                }
            });
            Ok(())
        }
        None => command.run(bridge).await,
    }
}

/// A command line to run and answer.
struct CommandRun {
    sender: OwnedUserId,
    room_id: OwnedRoomId,
    event_id: String,
    line: String,
    permission: PermissionLevel,
    in_management_room: bool,
}

impl CommandRun {
    async fn run(self, bridge: &Bridge) -> Result<(), RetryTransaction> {
        let ctx = CommandContext {
            bridge,
            sender: &self.sender,
            room_id: &self.room_id,
            permission: self.permission,
            in_management_room: self.in_management_room,
            login_choice: None,
        };
        let reply = bridge.commands.dispatch(&ctx, &self.line).await;
        let txn_id = derived_txn_id("reply", &self.event_id);
        settle(
            send_notice(bridge, &self.room_id, &txn_id, &reply).await,
            "replying to a command",
        )
    }
}

/// `login-cookies <paste>`: taken from the raw text (the command parser
/// would mangle quotes), and never resent: the paste was consumed.
async fn on_cookie_paste(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &str,
    in_management_room: bool,
    paste: &str,
) -> Result<(), RetryTransaction> {
    let Ok(parsed_id) = EventId::parse(event_id) else {
        return Ok(());
    };
    let reply = login_cookies::log_in_with_paste(
        bridge,
        room_id,
        sender,
        &parsed_id,
        in_management_room,
        paste,
    )
    .await;
    let txn_id = derived_txn_id("reply", event_id);
    if let Err(RetryTransaction(problem)) = settle(
        send_notice(bridge, room_id, &txn_id, &reply).await,
        "answering a cookie login",
    ) {
        tracing::warn!(problem, "the answer to a cookie login was not sent");
    }
    Ok(())
}

/// Redacts the first message after a login interrupted while waiting for a secret.
async fn answer_after_restart(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &str,
    body: &str,
) -> Option<Reply> {
    let event_id = EventId::parse(event_id).ok()?;
    login_waiting::redact_after_interruption(bridge, room_id, sender, &event_id, body).await
}

/// Hands the message to the sender's login in progress when it waits for input.
async fn answer_login(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &str,
    body: &str,
) -> Option<Reply> {
    let event_id = EventId::parse(event_id).ok()?;
    login::answer_waiting_flow(bridge, room_id, sender, &event_id, body).await
}

/// The command text of a message, if it is addressed to the bot: every
/// message in the management room (an optional prefix is dropped), only
/// prefixed ones elsewhere.
pub fn command_line<'a>(body: &'a str, prefix: &str, in_management_room: bool) -> Option<&'a str> {
    let body = body.trim();
    let after_prefix = body
        .strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        .map(str::trim_start);
    match (after_prefix, in_management_room) {
        (Some(rest), _) => Some(rest),
        (None, true) => Some(body),
        (None, false) => None,
    }
}

/// A transaction id derived from what the bot answers, so a transaction
/// processed again (after a crash) makes the homeserver deduplicate the send.
pub(super) fn derived_txn_id(kind: &str, source: &str) -> OwnedTransactionId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(source.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("mi-{kind}-{hex}").into()
}

pub(super) async fn send_notice(
    bridge: &Bridge,
    room_id: &RoomId,
    txn_id: &TransactionId,
    reply: &Reply,
) -> Result<(), ClientError> {
    let content = AnyMessageLikeEventContent::RoomMessage(RoomMessageEventContent::notice_html(
        reply.plain.clone(),
        reply.html.clone(),
    ));
    bridge
        .client
        .send_message(
            room_id,
            txn_id,
            &content,
            None,
            Some(bridge.namespace.bot()),
        )
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_room_takes_every_message() {
        assert_eq!(command_line("help", "!ig", true), Some("help"));
        assert_eq!(command_line("  !ig ping ", "!ig", true), Some("ping"));
    }

    #[test]
    fn other_rooms_need_the_prefix() {
        assert_eq!(command_line("help", "!ig", false), None);
        assert_eq!(command_line("!ig help", "!ig", false), Some("help"));
        assert_eq!(command_line("!ig", "!ig", false), Some(""));
        assert_eq!(command_line("!igloo help", "!ig", false), None);
    }

    #[test]
    fn transaction_ids_are_stable_and_distinct() {
        let a = derived_txn_id("reply", "$event1");
        assert_eq!(a, derived_txn_id("reply", "$event1"));
        assert_ne!(a, derived_txn_id("reply", "$event2"));
        assert_ne!(a, derived_txn_id("greeting", "$event1"));
    }
}
