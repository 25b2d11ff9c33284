//! The user's read receipts and typing in a portal, carried to Instagram:
//! a receipt marks the chat read up to the newest bridged item at or before
//! the receipt's event (`mark_read`), typing starts Instagram's typing
//! indicator (resent every [`TYPING_REFRESH`] while it lasts, never more
//! often) and stops it when the user stops.
//!
//! The transaction handler only records what is wanted for the portal (a
//! `watch` channel, so only the newest receipt and typing state count) and
//! returns; each portal has its own task that talks to Instagram, so one
//! slow portal never delays another, nor the homeserver's transactions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruma::api::client::room::get_room_event;
use ruma::{EventId, OwnedEventId, RoomId};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::login_session::LoginSession;
use super::Bridge;
use crate::store::PortalRecord;

/// How often Instagram's typing indicator is sent while the user types
/// (Instagram's own clients resend it about every 10 seconds).
pub const TYPING_REFRESH: Duration = Duration::from_secs(10);

/// A portal's task ends after this long without anything to do.
const IDLE_EXIT: Duration = Duration::from_secs(600);

/// What the user did last in a portal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Wanted {
    /// The event of the user's newest read receipt.
    read_up_to: Option<OwnedEventId>,
    typing: bool,
}

/// The portals' receipt and typing tasks, by room.
#[derive(Default)]
pub struct EphemeralWorkers {
    portals: Mutex<HashMap<String, watch::Sender<Wanted>>>,
}

impl EphemeralWorkers {
    /// Changes what is wanted for a portal, starting its task when needed.
    fn update(&self, bridge: &Arc<Bridge>, portal: &PortalRecord, change: impl Fn(&mut Wanted)) {
        let mut portals = self.portals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = portals
            .get(&portal.room_id)
            .filter(|sender| !sender.is_closed())
        {
            sender.send_modify(change);
            return;
        }
        let mut wanted = Wanted::default();
        change(&mut wanted);
        if wanted == Wanted::default() {
            // Nothing to carry (someone else typing, the user not typing).
            return;
        }
        let (sender, receiver) = watch::channel(Wanted::default());
        sender.send_replace(wanted);
        tokio::spawn(run_portal(bridge.clone(), portal.clone(), receiver));
        portals.insert(portal.room_id.clone(), sender);
    }
}

/// Handles one ephemeral event of a transaction: receipts and typing of a
/// portal's owner; everything else (and the bridge's own users) is ignored.
pub async fn handle(bridge: &Bridge, event: &Value) {
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("?");
    if kind != "m.receipt" && kind != "m.typing" {
        tracing::trace!(kind, "ephemeral event ignored");
        return;
    }
    let Some(room_id) = event.get("room_id").and_then(Value::as_str) else {
        return;
    };
    let Some(bridge_arc) = bridge.supervisor.bridge() else {
        return;
    };
    let portal = match bridge.store.portal_by_room(room_id).await {
        Ok(Some(portal)) => portal,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(room = room_id, error = %e, "cannot read the portal of an ephemeral event");
            return;
        }
    };
    let content = event.get("content").unwrap_or(&Value::Null);
    let workers = &bridge.ephemeral;
    match kind {
        "m.receipt" => {
            if let Some(event_id) = newest_read(content, &portal.owner) {
                workers.update(&bridge_arc, &portal, |wanted| {
                    wanted.read_up_to = Some(event_id.clone());
                });
            }
        }
        _ => {
            let typing = typing_users(content).any(|user| user == portal.owner);
            workers.update(&bridge_arc, &portal, |wanted| wanted.typing = typing);
        }
    }
}

/// The event `user`'s public read receipt in an `m.receipt` content is at
/// (the newest, when it names several).
fn newest_read(content: &Value, user: &str) -> Option<OwnedEventId> {
    let receipts = content.as_object()?;
    receipts
        .iter()
        .filter_map(|(event_id, kinds)| {
            let ts = kinds
                .get("m.read")?
                .get(user)?
                .get("ts")
                .and_then(Value::as_i64);
            Some((ts.unwrap_or(0), event_id))
        })
        .max_by_key(|(ts, _)| *ts)
        .and_then(|(_, event_id)| EventId::parse(event_id).ok())
}

/// The users an `m.typing` content says are typing.
fn typing_users(content: &Value) -> impl Iterator<Item = &str> {
    content
        .get("user_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// One portal's task: carries the newest wanted state to Instagram.
async fn run_portal(
    bridge: Arc<Bridge>,
    portal: PortalRecord,
    mut wanted: watch::Receiver<Wanted>,
) {
    let mut read_event: Option<OwnedEventId> = None;
    let mut read_item: Option<String> = None;
    let mut typing_since: Option<Instant> = None;
    loop {
        let refresh = typing_since.map(|sent| sent + TYPING_REFRESH);
        let woke = tokio::select! {
            changed = wanted.changed() => changed.is_ok(),
            () = sleep_until(refresh) => true,
            () = tokio::time::sleep(IDLE_EXIT), if typing_since.is_none() => false,
        };
        if !woke {
            return;
        }
        let now = wanted.borrow_and_update().clone();
        if let Some(event_id) = now.read_up_to.filter(|e| Some(e) != read_event.as_ref()) {
            read_event = Some(event_id.clone());
            if let Some(item) = mark_read(&bridge, &portal, &event_id, read_item.as_deref()).await {
                read_item = Some(item);
            }
        }
        match (now.typing, typing_since) {
            (true, Some(sent)) if sent.elapsed() < TYPING_REFRESH => {}
            (true, _) => {
                set_typing(&bridge, &portal, true).await;
                typing_since = Some(Instant::now());
            }
            (false, Some(_)) => {
                set_typing(&bridge, &portal, false).await;
                typing_since = None;
            }
            (false, None) => {}
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Marks the chat read up to the newest item at or before `event_id`;
/// returns the item marked (or already marked: `done`).
async fn mark_read(
    bridge: &Bridge,
    portal: &PortalRecord,
    event_id: &EventId,
    done: Option<&str>,
) -> Option<String> {
    let portal = &still_bridged(bridge, portal).await?;
    let item = match item_read(bridge, portal, event_id).await {
        Ok(Some(item)) => item,
        Ok(None) => {
            tracing::debug!(room = %portal.room_id, %event_id, "a read receipt before any bridged message");
            return None;
        }
        Err(problem) => {
            tracing::warn!(room = %portal.room_id, %event_id, problem, "cannot resolve a read receipt");
            return None;
        }
    };
    if done == Some(item.as_str()) {
        return Some(item);
    }
    let mut session = match LoginSession::open(bridge, &portal.login_id).await {
        Ok(session) => session,
        Err(e) => {
            tracing::debug!(login = %portal.login_id, error = %e, "read receipt not carried");
            return None;
        }
    };
    let result = session
        .connector
        .write_message(
            &mut session.creds,
            &portal.thread_id,
            &item,
            crate::connector::typed::MessageWrite::MarkRead,
        )
        .await;
    session.save().await;
    match result {
        Ok(()) => {
            tracing::debug!(thread = %portal.thread_id, item, "marked read on Instagram");
            Some(item)
        }
        Err(e) => {
            tracing::warn!(thread = %portal.thread_id, error = %e, "cannot mark the chat read on Instagram");
            None
        }
    }
}

/// The portal as stored now, unless it is gone (the user left) or a message
/// request: Instagram is told nothing of a request the user has not accepted.
async fn still_bridged(bridge: &Bridge, portal: &PortalRecord) -> Option<PortalRecord> {
    match bridge.store.portal_by_room(&portal.room_id).await {
        Ok(Some(portal)) if !portal.request => Some(portal),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(room = %portal.room_id, error = %e, "cannot read a portal");
            None
        }
    }
}

/// The Instagram item a receipt on `event_id` reads up to: the event's own
/// item when it is bridged (sent from Instagram or from Matrix), else the
/// newest bridged item sent at or before it.
async fn item_read(
    bridge: &Bridge,
    portal: &PortalRecord,
    event_id: &EventId,
) -> Result<Option<String>, String> {
    let store = &bridge.store;
    if let Some(record) = store
        .message_by_event(&portal.room_id, event_id.as_str())
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(Some(record.item_id));
    }
    let room_id = RoomId::parse(&portal.room_id).map_err(|e| e.to_string())?;
    let request = get_room_event::v3::Request::new(room_id, event_id.to_owned());
    let response = bridge
        .client
        .send(request, Some(bridge.namespace.bot()))
        .await
        .map_err(|e| e.to_string())?;
    let Some(sent_at) = response
        .event
        .get_field::<i64>("origin_server_ts")
        .ok()
        .flatten()
    else {
        return Err("the event has no origin_server_ts".to_owned());
    };
    Ok(store
        .message_at_or_before(&portal.login_id, &portal.thread_id, sent_at)
        .await
        .map_err(|e| e.to_string())?
        .map(|record| record.item_id))
}

async fn set_typing(bridge: &Bridge, portal: &PortalRecord, typing: bool) {
    let Some(portal) = &still_bridged(bridge, portal).await else {
        return;
    };
    let mut session = match LoginSession::open(bridge, &portal.login_id).await {
        Ok(session) => session,
        Err(e) => {
            tracing::debug!(login = %portal.login_id, error = %e, "typing not carried");
            return;
        }
    };
    let result = session
        .connector
        .set_typing(&mut session.creds, &portal.thread_id, typing)
        .await;
    session.save().await;
    if let Err(e) = result {
        tracing::warn!(thread = %portal.thread_id, typing, error = %e, "cannot send typing to Instagram");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_public_receipt_of_the_user_counts() {
        let content = json!({
            "$old:x": {"m.read": {"@alice:x": {"ts": 10}}},
            "$new:x": {"m.read": {"@alice:x": {"ts": 20}, "@bob:x": {"ts": 30}}},
            "$bob:x": {"m.read": {"@bob:x": {"ts": 40}}},
            "$private:x": {"m.read.private": {"@alice:x": {"ts": 50}}},
        });
        assert_eq!(
            newest_read(&content, "@alice:x").map(|e| e.to_string()),
            Some("$new:x".to_owned())
        );
        assert_eq!(newest_read(&content, "@carol:x"), None);
    }

    #[test]
    fn typing_lists_the_users() {
        let content = json!({"user_ids": ["@alice:x", "@bob:x"]});
        assert_eq!(
            typing_users(&content).collect::<Vec<_>>(),
            vec!["@alice:x", "@bob:x"]
        );
        assert_eq!(typing_users(&json!({})).count(), 0);
    }
}
