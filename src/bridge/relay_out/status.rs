//! What the user sees of an outgoing event: `com.beeper.message_send_status`
//! from the bot (SUCCESS, FAIL_RETRIABLE when retrying starts or the event is
//! held, FAIL_PERMANENT with a reason), a bot read receipt on success, and a
//! short `m.notice` when it was given up or is held. Transaction ids derive
//! from (event id, status), so a restart never repeats one.

use ruma::{EventId, RoomId};
use serde_json::json;

use super::super::relay_in::txn_id;
use super::super::Bridge;

/// The event type of a send status.
const SEND_STATUS: &str = "com.beeper.message_send_status";

/// How an outgoing event fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendStatus {
    /// Instagram has it.
    Success,
    /// Not yet: it is being retried, or waits for the user to log in again.
    Retriable {
        reason: &'static str,
        message: String,
    },
    /// Given up on.
    Permanent {
        reason: &'static str,
        message: String,
        /// What went wrong, for people debugging (never a secret).
        internal: Option<String>,
        /// Only a caption was given up: the file it came with was sent.
        file_sent: bool,
    },
}

impl SendStatus {
    fn name(&self) -> &'static str {
        match self {
            SendStatus::Success => "SUCCESS",
            SendStatus::Retriable { .. } => "FAIL_RETRIABLE",
            SendStatus::Permanent { .. } => "FAIL_PERMANENT",
        }
    }
}

/// Reports `status` of `event_id` in its room: the status event, and a read
/// receipt (success) or a notice (given up). Best effort: a homeserver
/// failure is logged, never keeps the outbox from going on.
pub async fn report(bridge: &Bridge, room_id: &str, event_id: &str, status: &SendStatus) {
    let (Ok(room), Ok(event)) = (RoomId::parse(room_id), EventId::parse(event_id)) else {
        tracing::warn!(
            room_id,
            event_id,
            "cannot report a send status: invalid ids"
        );
        return;
    };
    let mut content = json!({
        "network": "instagram",
        "m.relates_to": {"rel_type": "m.reference", "event_id": event_id},
        "status": status.name(),
    });
    match status {
        SendStatus::Success => {}
        SendStatus::Retriable { reason, message } => {
            content["reason"] = json!(reason);
            content["message"] = json!(message);
        }
        SendStatus::Permanent {
            reason,
            message,
            internal,
            ..
        } => {
            content["reason"] = json!(reason);
            content["message"] = json!(message);
            if let Some(internal) = internal {
                content["internal_error"] = json!(internal);
            }
        }
    }
    let txn = txn_id(&["send-status", event_id, status.name()]);
    if let Err(e) = bridge
        .client
        .send_raw(&room, &txn, SEND_STATUS, &content, None, None)
        .await
    {
        tracing::warn!(room_id, event_id, error = %e, "cannot send a send status");
    }
    match status {
        SendStatus::Success => {
            if let Err(e) = bridge
                .client
                .read_receipt(&room, &event, bridge.namespace.bot())
                .await
            {
                tracing::warn!(room_id, event_id, error = %e, "cannot send the bot's read receipt");
            }
        }
        SendStatus::Permanent {
            message, file_sent, ..
        } => {
            let body = if *file_sent {
                format!("Your file was sent to Instagram, but its caption was not: {message}")
            } else {
                format!("Your message was not sent to Instagram: {message}")
            };
            notice(bridge, &room, &event, "failed", &body).await;
        }
        SendStatus::Retriable { .. } => {}
    }
}

/// A notice from the bot in reply to `event`, once per (event, `what`).
pub async fn notice(bridge: &Bridge, room: &RoomId, event: &EventId, what: &str, body: &str) {
    let content = json!({
        "msgtype": "m.notice",
        "body": body,
        "m.relates_to": {"m.in_reply_to": {"event_id": event}},
    });
    let txn = txn_id(&["send-notice", event.as_str(), what]);
    if let Err(e) = bridge
        .client
        .send_raw(room, &txn, "m.room.message", &content, None, None)
        .await
    {
        tracing::warn!(room_id = %room, event_id = %event, error = %e, "cannot send a notice");
    }
}
