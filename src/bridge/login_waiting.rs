//! Logins in progress are kept in memory only; this keeps a small marker
//! per login in the store's key/value table (which room it talks in and what
//! it waits for) so that a restart does not forget it silently. At startup
//! ([`tell_interrupted_logins`]) the bot tells each user whose login was
//! interrupted to start again; when it was waiting for a password or a code,
//! the user's next message in that room, unless it is a command, is
//! redacted ([`redact_after_interruption`]): it was probably the secret.
//! The same goes for a login that timed out waiting for a secret (a late
//! password), in memory only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ruma::{EventId, OwnedRoomId, OwnedUserId, RoomId, TransactionId, UserId};
use serde::{Deserialize, Serialize};

use super::bot::command_line;
use super::commands::Reply;
use super::login::redact_secret;
use super::Bridge;
use crate::store::{Store, StoreError};

/// Key prefix of the marker of a login in progress (then the Matrix user id).
const IN_PROGRESS: &str = "login-in-progress:";
/// Key prefix of an interrupted login whose user's next message is redacted.
const REDACT_NEXT: &str = "login-redact-next:";

/// Why a login that waited for a secret ended without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    Restart,
    TimedOut,
}

/// What a login in progress waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitingFor {
    Username,
    Password,
    /// The answer to a question of the login steps (a 2FA code).
    Answer,
    /// Nothing: the browser is working.
    Nothing,
}

impl WaitingFor {
    /// Whether the user's next message would have been a secret.
    pub fn is_secret(self) -> bool {
        matches!(self, WaitingFor::Password | WaitingFor::Answer)
    }
}

/// The persisted state of one login in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub room_id: OwnedRoomId,
    pub waiting_for: WaitingFor,
}

/// The markers in the store, and the interrupted logins whose next message
/// is redacted. Cheap to clone.
#[derive(Clone)]
pub struct LoginMarkers {
    store: Store,
    /// Writes and deletions take turns, each checking the login in memory
    /// first, so a late write never brings back the marker of a login that
    /// ended meanwhile.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// User → the management room where their next message is redacted,
    /// and why the login ended.
    redact_next: Arc<Mutex<HashMap<OwnedUserId, (OwnedRoomId, Interruption)>>>,
}

impl LoginMarkers {
    pub fn new(store: Store) -> LoginMarkers {
        LoginMarkers {
            store,
            turn: Arc::default(),
            redact_next: Arc::default(),
        }
    }

    /// Stores `current()` as the marker of `user`'s login, unless it says
    /// the login is over (`None`).
    pub async fn write(&self, user: &UserId, current: impl FnOnce() -> Option<Marker>) {
        let _turn = self.turn.lock().await;
        let Some(marker) = current() else { return };
        let value = serde_json::to_string(&marker).unwrap_or_default();
        if let Err(e) = self.store.kv_set(&key(IN_PROGRESS, user), &value).await {
            tracing::warn!(error = %e, %user, "cannot persist the state of a login in progress");
        }
    }

    /// Deletes the marker of `user`'s login unless `in_progress()` says a
    /// login (a newer one) is under way.
    pub async fn delete(&self, user: &UserId, in_progress: impl FnOnce() -> bool) {
        let _turn = self.turn.lock().await;
        if in_progress() {
            return;
        }
        if let Err(e) = self.store.kv_delete(&key(IN_PROGRESS, user)).await {
            tracing::warn!(error = %e, %user, "cannot forget the state of a finished login");
        }
    }

    /// Why the user's login in `room_id` ended while waiting for a secret,
    /// if their next message there is to be redacted; forgotten as it is taken.
    async fn take_redact_next(&self, user: &UserId, room_id: &RoomId) -> Option<Interruption> {
        let armed = {
            let mut redact_next = self.redact_next.lock().unwrap_or_else(|e| e.into_inner());
            match redact_next.get(user) {
                Some((room, _)) if room == room_id => redact_next.remove(user),
                _ => None,
            }
        };
        let (_, why) = armed?;
        if why == Interruption::Restart {
            if let Err(e) = self.store.kv_delete(&key(REDACT_NEXT, user)).await {
                tracing::warn!(error = %e, %user, "cannot forget an interrupted login");
            }
        }
        Some(why)
    }

    /// Redacts `user`'s next message in `room_id` unless it is a command.
    pub fn arm_redact_next(&self, user: OwnedUserId, room_id: OwnedRoomId, why: Interruption) {
        self.redact_next
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, (room_id, why));
    }
}

fn key(prefix: &str, user: &UserId) -> String {
    format!("{prefix}{user}")
}

/// What the bot tells a user whose login a restart interrupted.
pub const INTERRUPTED: &str = "The bridge restarted while you were logging in, so that login \
    was lost. Send `login` to start again.";

/// At startup: every login that was in progress when the bridge stopped is
/// told to the user, and where it waited for a secret, the user's next
/// message is redacted. Also re-arms redactions of earlier runs the user
/// has not written since.
pub async fn tell_interrupted_logins(bridge: &Bridge) -> Result<(), StoreError> {
    let Some(markers) = bridge.login_flows.markers() else {
        return Ok(());
    };
    let store = &bridge.store;
    for (key, value) in store.kv_with_prefix(REDACT_NEXT).await? {
        let user = UserId::parse(&key[REDACT_NEXT.len()..]);
        let room = RoomId::parse(value);
        if let (Ok(user), Ok(room)) = (user, room) {
            markers.arm_redact_next(user, room, Interruption::Restart);
        }
    }
    for (key, value) in store.kv_with_prefix(IN_PROGRESS).await? {
        let user = UserId::parse(&key[IN_PROGRESS.len()..]);
        let marker = serde_json::from_str::<Marker>(&value);
        let (Ok(user), Ok(marker)) = (user, marker) else {
            tracing::warn!(key, "unreadable marker of a login in progress: forgotten");
            store.kv_delete(&key).await?;
            continue;
        };
        tracing::info!(%user, waiting_for = ?marker.waiting_for, "an Instagram login was interrupted by the restart");
        if marker.waiting_for.is_secret() {
            store
                .kv_set(&self::key(REDACT_NEXT, &user), marker.room_id.as_str())
                .await?;
            markers.arm_redact_next(user.clone(), marker.room_id.clone(), Interruption::Restart);
        }
        let content = ruma::events::AnyMessageLikeEventContent::RoomMessage(
            ruma::events::room::message::RoomMessageEventContent::notice_plain(INTERRUPTED),
        );
        let sent = bridge
            .client
            .send_message(
                &marker.room_id,
                &TransactionId::new(),
                &content,
                None,
                Some(bridge.namespace.bot()),
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, %user, "cannot tell the user their login was interrupted");
        }
        store.kv_delete(&key).await?;
    }
    Ok(())
}

/// The first message of a user in the management room after their login
/// was interrupted while waiting for a secret: redacted unless it is a
/// command. Returns the reply, or `None` when the message goes on as usual.
pub async fn redact_after_interruption(
    bridge: &Bridge,
    room_id: &RoomId,
    sender: &UserId,
    event_id: &EventId,
    body: &str,
) -> Option<Reply> {
    let markers = bridge.login_flows.markers()?;
    let why = markers.take_redact_next(sender, room_id).await?;
    let prefix = bridge.config.bot.command_prefix.as_str();
    let is_command = command_line(body, prefix, true)
        .and_then(|line| line.split_whitespace().next())
        .is_some_and(|name| bridge.commands.get(&name.to_lowercase()).is_some());
    if is_command {
        return None;
    }
    tracing::info!(user = %sender, ?why, "redacting the first message after an interrupted login");
    let redaction = redact_secret(bridge, room_id, event_id).await;
    let ended = match why {
        Interruption::Restart => "Your login was interrupted by a restart of the bridge",
        Interruption::TimedOut => "Your login had timed out",
    };
    Some(Reply::text(format!(
        "{ended}, so I did not use that message: it may have been your password or code. \
         Send `login` to start again.{redaction}"
    )))
}
