//! Carries a portal's pending outbox rows out on Instagram, in order, from
//! the portal's worker. Each send is counted in the row before its request
//! goes out; a row that may have reached Instagram already (an earlier
//! attempt timed out, lost its connection or got a 5xx, or the bridge died
//! mid-send) is first looked for by its `client_context` in the thread's
//! pages since it was queued, and only sent again when it is not there. Transient failures
//! retry with backoff up to `sending.max_attempts`; permanent ones stop at
//! once; an expired session holds the row (it stays pending and goes out
//! after the next login); a cool-down of the login's request budget (Instagram
//! asked to slow down) holds the room's rows without using up their attempts
//! until it ends, when the portal's worker is rung again. Outcomes are
//! reported with [`status`].

use std::time::{Duration, Instant};

use chrono::Utc;
use ruma::{EventId, RoomId};

use super::super::budget::{paused_until, tell_cool_down};
use super::super::login_session::{LoginSession, SessionError};
use super::super::login_state::login_needs_user;
use super::super::relay_in::text_hash;
use super::super::{relay_latency, Bridge};
use super::changes::{self, ChangeError};
use super::status::{self, SendStatus};
use super::{client_context, media, Outgoing};
use crate::connector::http::Connector;
use crate::connector::session::{ConnectorError, RetryPolicy};
use crate::connector::typed::OutgoingText;
use crate::model::Message;
use crate::store::{
    LoginRecord, MessageRecord, OutboxEntry, OutboxState, PortalRecord, StoreError,
};

/// How much older than its row a sent item may look: Instagram's clock and
/// ours differ, and the lookup must not stop short of the item.
const LOOKUP_CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// The most pages a lookup reads (20 items each): a row buried deeper than
/// that since it was queued is sent again rather than read for further.
const LOOKUP_MAX_PAGES: usize = 10;

/// Why carrying an outgoing event out failed. The media and changes helpers'
/// error enums have the same variants and convert into it.
#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    /// Instagram (or the way to it) failed; the worker decides whether that
    /// is transient, ambiguous or permanent.
    #[error("{0}")]
    Instagram(ConnectorError),
    /// The bridge cannot carry this; the text is the user-facing reason.
    #[error("{0}")]
    Refused(String),
    /// The homeserver failed (a download, a redaction); retried.
    #[error("the homeserver failed: {0}")]
    Matrix(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<ChangeError> for SendFailure {
    fn from(error: ChangeError) -> SendFailure {
        match error {
            ChangeError::Instagram(error) => SendFailure::Instagram(error),
            ChangeError::Refused(reason) => SendFailure::Refused(reason),
            ChangeError::Matrix(detail) => SendFailure::Matrix(detail),
            ChangeError::Store(error) => SendFailure::Store(error),
        }
    }
}

/// What carrying an event out produced.
#[derive(Debug)]
pub enum Carried {
    /// A new Instagram item (a text, a photo): recorded as the event's message.
    Message(Box<Message>),
    /// A change of something that exists (a reaction, an edit): the row is
    /// marked sent, with the item it touched when there is one.
    Done { item_id: Option<String> },
}

/// Why a room's rows could not be carried out now (they stay pending).
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot open the login's credentials: {0}")]
    Credentials(String),
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The user has to log in again: hold the row.
    NeedsLogin,
    /// The login's requests are paused for `remaining`: hold the row, its
    /// attempt not counted (nothing was sent, or Instagram refused it unseen).
    Paused { remaining: Duration },
    /// Try again after `wait` (or the backoff); `ambiguous` when the request
    /// may have been carried out.
    Retry {
        ambiguous: bool,
        wait: Option<Duration>,
    },
    /// Give up now.
    Permanent,
}

impl SendFailure {
    fn verdict(&self) -> Verdict {
        match self {
            SendFailure::Instagram(error) if error.needs_login() => Verdict::NeedsLogin,
            SendFailure::Instagram(ConnectorError::CoolingDown { remaining, .. }) => {
                Verdict::Paused {
                    remaining: *remaining,
                }
            }
            SendFailure::Instagram(ConnectorError::RateLimited { retry_after, .. }) => {
                Verdict::Retry {
                    ambiguous: false,
                    wait: *retry_after,
                }
            }
            SendFailure::Instagram(ConnectorError::Transient { .. }) => Verdict::Retry {
                ambiguous: true,
                wait: None,
            },
            SendFailure::Instagram(_) | SendFailure::Refused(_) => Verdict::Permanent,
            SendFailure::Matrix(_) | SendFailure::Store(_) => Verdict::Retry {
                ambiguous: false,
                wait: None,
            },
        }
    }

    /// What the user is told when the event is given up.
    fn given_up(&self) -> SendStatus {
        let (reason, message) = match self {
            SendFailure::Refused(reason) => ("com.beeper.unsupported_event", reason.clone()),
            SendFailure::Instagram(error) => ("m.foreign_network_error", instagram_said(error)),
            SendFailure::Matrix(_) => (
                "m.event_not_handled",
                "the homeserver kept failing; try again later.".to_owned(),
            ),
            SendFailure::Store(_) => (
                "m.event_not_handled",
                "the bridge's database kept failing; try again later.".to_owned(),
            ),
        };
        SendStatus::Permanent {
            reason,
            message,
            internal: match self {
                SendFailure::Refused(_) => None,
                other => Some(other.to_string()),
            },
            file_sent: false,
        }
    }
}

/// A connector error in the words the user gets.
fn instagram_said(error: &ConnectorError) -> String {
    match error {
        ConnectorError::RateLimited { .. } => {
            "Instagram is rate-limiting this account; try again in a few minutes.".to_owned()
        }
        ConnectorError::Transient { .. } => {
            "Instagram did not answer (server errors or lost connections); try again later."
                .to_owned()
        }
        ConnectorError::ActionBlocked { .. } => {
            "Instagram flagged this message as spam (feedback_required) and blocks sending \
             from this account for a while; wait before you send more."
                .to_owned()
        }
        ConnectorError::NotFound { .. } => {
            "Instagram says the chat or the message it refers to no longer exists.".to_owned()
        }
        ConnectorError::Platform { message, .. } => format!("Instagram refused it ({message})."),
        other => format!("the bridge could not send it ({other})."),
    }
}

/// What the user is told while the login needs them.
fn held_message(error: Option<&ConnectorError>) -> &'static str {
    match error {
        Some(
            ConnectorError::ChallengeRequired { .. } | ConnectorError::CheckpointRequired { .. },
        ) => {
            "Instagram wants to confirm it's you: complete the security check in the Instagram \
             app, then send `login` to the bot. This message goes out once you are logged in \
             again."
        }
        _ => {
            "Your Instagram session expired; send `login` to the bot. This message goes out \
             once you are logged in again."
        }
    }
}

/// One drain of a room: the login, its credentials and the connector.
struct Drain<'a> {
    bridge: &'a Bridge,
    portal: PortalRecord,
    connector: Connector,
    /// The login and its credentials, saved when responses rotate them.
    session: LoginSession,
}

/// How carrying one row out ended.
enum RowEnd {
    /// Sent, or given up: the next row may go.
    Finished,
    /// Its first part was sent; the row, as it is now, carries the next.
    Continued(Box<OutboxEntry>),
    /// The login needs the user: the row and those after it wait.
    Held,
    /// The login's requests are paused for this long: the row and those
    /// after it wait.
    Paused(Duration),
}

/// Carries out the pending rows of a portal, in order, until they are all
/// done or one is held; rows left pending go out at the next ring. Returns
/// whether it tried a change to existing items (an edit, a reaction, an
/// unsend): a view of the thread fetched before it is stale.
pub async fn carry_out_pending(
    bridge: &Bridge,
    login_id: &str,
    thread_id: &str,
) -> Result<bool, DrainError> {
    let store = &bridge.store;
    let Some(portal) = store.portal_by_thread(login_id, thread_id).await? else {
        return Ok(false);
    };
    let rows = store.pending_outbox_of_room(&portal.room_id).await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let session = match LoginSession::open(bridge, login_id).await {
        Ok(session) => session,
        Err(SessionError::NoLogin) => return Ok(false),
        Err(SessionError::NeedsLogin) => {
            hold(bridge, &portal, &rows, None, true).await;
            return Ok(false);
        }
        Err(e @ SessionError::Unavailable) => return Err(DrainError::Credentials(e.to_string())),
    };
    let mut drain = Drain {
        bridge,
        portal,
        connector: sending_connector(bridge, login_id),
        session,
    };
    let mut outcome = Ok(());
    let mut changed = false;
    for (index, row) in rows.iter().enumerate() {
        if bridge.queues.closing() {
            break;
        }
        changed |= row.queued.kind == Outgoing::CHANGE_KIND;
        let mut ended = drain.carry_row(row).await;
        while let Ok(RowEnd::Continued(next)) = ended {
            ended = drain.carry_row(&next).await;
        }
        match ended {
            Ok(RowEnd::Finished | RowEnd::Continued(_)) => {}
            Ok(RowEnd::Held) => {
                hold(bridge, &drain.portal, &rows[index + 1..], None, false).await;
                break;
            }
            Ok(RowEnd::Paused(remaining)) => {
                pause(bridge, &drain.portal, &rows[index..], remaining).await;
                break;
            }
            Err(e) => {
                outcome = Err(e.into());
                break;
            }
        }
    }
    drain.session.save().await;
    outcome.map(|()| changed)
}

/// The connector sends of the login of `login_id` go through: its request
/// budget, `sending.request_timeout_ms`, and one request per attempt (the
/// worker decides about retries, after looking for a send that may have
/// landed).
pub fn sending_connector(bridge: &Bridge, login_id: &str) -> Connector {
    bridge
        .login_connector(login_id)
        .with_timeout(Duration::from_millis(
            bridge.config.sending.request_timeout_ms,
        ))
        .with_retry_policy(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
}

/// Rows that wait for the user to log in again: a FAIL_RETRIABLE status for
/// each, and, with `notice`, a notice in the room for the first (once per
/// event, so the room is told once while the same row waits).
async fn hold(
    bridge: &Bridge,
    portal: &PortalRecord,
    rows: &[OutboxEntry],
    error: Option<&ConnectorError>,
    notice: bool,
) {
    let message = held_message(error);
    for (index, row) in rows.iter().enumerate() {
        let event_id = &row.queued.event_id;
        status::report(
            bridge,
            &portal.room_id,
            event_id,
            &SendStatus::Retriable {
                reason: "m.foreign_network_error",
                message: message.to_owned(),
            },
        )
        .await;
        if notice && index == 0 {
            if let (Ok(room), Ok(event)) =
                (RoomId::parse(&portal.room_id), EventId::parse(event_id))
            {
                let body = format!("Your message was not sent to Instagram yet. {message}");
                status::notice(bridge, &room, &event, "held", &body).await;
            }
        }
    }
}

/// Rows that wait for the end of the login's cool-down: a FAIL_RETRIABLE
/// status for each saying until when, the user told once in the management
/// room, and the portal's worker rung again when the pause is over.
async fn pause(bridge: &Bridge, portal: &PortalRecord, rows: &[OutboxEntry], remaining: Duration) {
    tell_cool_down(bridge, &portal.login_id).await;
    let message = format!(
        "Instagram asked this account to slow down; this message goes out after {}.",
        paused_until(remaining)
    );
    for row in rows {
        status::report(
            bridge,
            &portal.room_id,
            &row.queued.event_id,
            &SendStatus::Retriable {
                reason: "m.foreign_network_error",
                message: message.clone(),
            },
        )
        .await;
    }
    bridge
        .queues
        .ring_after(&portal.login_id, &portal.thread_id, remaining);
}

impl Drain<'_> {
    /// Carries one row out: looks for it first when it may have landed,
    /// sends it, retries what may pass, and reports the outcome.
    async fn carry_row(&mut self, entry: &OutboxEntry) -> Result<RowEnd, StoreError> {
        let store = &self.bridge.store;
        let event_id = entry.queued.event_id.as_str();
        let outgoing: Outgoing = match serde_json::from_value(entry.queued.payload.clone()) {
            Ok(outgoing) => outgoing,
            Err(e) => {
                let failure = SendFailure::Refused(format!(
                    "the bridge cannot read this queued event ({e})."
                ));
                return self.give_up(entry, &failure).await;
            }
        };
        let max_attempts = i64::from(self.bridge.config.sending.max_attempts);
        let mut attempts = entry.attempts;
        let mut maybe_sent = attempts > 0;
        let mut lookups_failed: i64 = 0;
        let mut last_failure: Option<SendFailure> = None;
        let mut told_retrying = false;
        loop {
            if let Some(cool_down) = self.connector.budget().and_then(|b| b.cooling_down()) {
                return Ok(RowEnd::Paused(cool_down.remaining));
            }
            if maybe_sent {
                match self.find_sent(entry).await {
                    Ok(Some(message)) => {
                        tracing::info!(event_id, item = %message.id, "found an earlier send in the thread");
                        return self
                            .sent(entry, &outgoing, Carried::Message(Box::new(message)))
                            .await;
                    }
                    Ok(None) => {}
                    Err(failure) => match failure.verdict() {
                        Verdict::NeedsLogin => return self.held(entry, &failure).await,
                        Verdict::Paused { remaining } => return Ok(RowEnd::Paused(remaining)),
                        Verdict::Permanent => return self.give_up(entry, &failure).await,
                        Verdict::Retry { wait, .. } => {
                            lookups_failed += 1;
                            if lookups_failed >= max_attempts {
                                return self.give_up(entry, &failure).await;
                            }
                            self.tell_retrying(entry, &mut told_retrying).await;
                            self.pause(wait, lookups_failed).await;
                            continue;
                        }
                    },
                }
            }
            if attempts >= max_attempts {
                let failure = last_failure.unwrap_or_else(|| {
                    SendFailure::Refused("every try to send it failed.".to_owned())
                });
                return self.give_up(entry, &failure).await;
            }
            attempts = store
                .begin_outbox_attempt(event_id)
                .await?
                .unwrap_or(attempts + 1);
            let asked = Instant::now();
            match self.dispatch(entry, &outgoing).await {
                Ok(carried) => {
                    relay_latency::outgoing_carried(event_id, asked.elapsed());
                    return self.sent(entry, &outgoing, carried).await;
                }
                Err(failure) => match failure.verdict() {
                    Verdict::NeedsLogin => return self.held(entry, &failure).await,
                    Verdict::Paused { remaining } => {
                        tracing::info!(event_id, error = %failure, "sending paused");
                        store.release_outbox_attempt(event_id).await?;
                        return Ok(RowEnd::Paused(remaining));
                    }
                    Verdict::Permanent => return self.give_up(entry, &failure).await,
                    Verdict::Retry { ambiguous, wait } => {
                        tracing::warn!(event_id, attempts, error = %failure, "sending to Instagram failed; retrying");
                        store
                            .record_outbox_error(event_id, &failure.to_string())
                            .await?;
                        maybe_sent |= ambiguous;
                        last_failure = Some(failure);
                        if attempts < max_attempts {
                            self.tell_retrying(entry, &mut told_retrying).await;
                            self.pause(wait, attempts).await;
                        }
                    }
                },
            }
        }
    }

    /// Carries one payload out.
    async fn dispatch(
        &mut self,
        entry: &OutboxEntry,
        outgoing: &Outgoing,
    ) -> Result<Carried, SendFailure> {
        match outgoing {
            Outgoing::Text { text, reply_to } => {
                let reply_item = match reply_to {
                    Some(event_id) => self.item_of_event(event_id).await?,
                    None => None,
                };
                let message = OutgoingText {
                    conversation_id: self.portal.thread_id.clone(),
                    text: text.clone(),
                    reply_to: reply_item,
                    client_context: Some(entry.queued.client_context.clone()),
                };
                self.connector
                    .send_text(&mut self.session.creds, &message)
                    .await
                    .map(|message| Carried::Message(Box::new(message)))
                    .map_err(SendFailure::Instagram)
            }
            Outgoing::Change(change) => changes::carry_out(
                self.bridge,
                &self.session.login,
                &mut self.session.creds,
                &self.portal,
                &self.portal.owner,
                change,
                &entry.queued.client_context,
            )
            .await
            .map(|done| Carried::Done {
                item_id: done.item_id().map(str::to_owned),
            })
            .map_err(SendFailure::from),
            Outgoing::Media(outgoing) => media::send_media(
                self.bridge,
                &self.session.login,
                &mut self.session.creds,
                &self.portal,
                outgoing,
                &entry.queued.client_context,
            )
            .await
            .map(|message| Carried::Message(Box::new(message)))
            .map_err(SendFailure::from),
            Outgoing::Refuse { reason } => Err(SendFailure::Refused(reason.clone())),
        }
    }

    /// The Instagram item a Matrix event of this room stands for; `None`
    /// (and a log line) when it was never bridged: the reply goes out as a
    /// plain message rather than not at all.
    async fn item_of_event(&self, event_id: &str) -> Result<Option<String>, SendFailure> {
        let record = self
            .bridge
            .store
            .message_by_event(&self.portal.room_id, event_id)
            .await?;
        if record.is_none() {
            tracing::info!(
                event_id,
                "the replied-to event is not bridged; sending without the reply"
            );
        }
        Ok(record.map(|record| record.item_id))
    }

    /// The row's item in the thread, found by its client_context: pages are
    /// read from the newest back to the first item older than the row (less
    /// [`LOOKUP_CLOCK_SLACK`]), so a send buried under a busy thread's newer
    /// messages is still found, and at most [`LOOKUP_MAX_PAGES`] of them.
    async fn find_sent(&mut self, entry: &OutboxEntry) -> Result<Option<Message>, SendFailure> {
        let queued = chrono::DateTime::from_timestamp_millis(entry.created_at).unwrap_or_default()
            - LOOKUP_CLOCK_SLACK;
        let mut cursor: Option<String> = None;
        for _ in 0..LOOKUP_MAX_PAGES {
            let page = self
                .connector
                .list_messages_page(
                    &mut self.session.creds,
                    &self.portal.thread_id,
                    cursor.as_deref(),
                )
                .await
                .map_err(SendFailure::Instagram)?;
            let reached_older = page
                .messages
                .iter()
                .any(|message| message.timestamp.is_some_and(|at| at < queued));
            if let Some(found) = page.messages.into_iter().find(|message| {
                message.client_context.as_deref() == Some(entry.queued.client_context.as_str())
            }) {
                return Ok(Some(found));
            }
            match page.cursor {
                Some(older) if page.has_older && !reached_older => cursor = Some(older),
                _ => return Ok(None),
            }
        }
        tracing::warn!(
            event_id = %entry.queued.event_id,
            pages = LOOKUP_MAX_PAGES,
            "an earlier send was not found in the thread's newest pages; sending again"
        );
        Ok(None)
    }

    /// Records a carried-out row and reports SUCCESS; a row whose payload
    /// (`outgoing`) has a next part moves on to it instead.
    async fn sent(
        &self,
        entry: &OutboxEntry,
        outgoing: &Outgoing,
        carried: Carried,
    ) -> Result<RowEnd, StoreError> {
        let event_id = &entry.queued.event_id;
        relay_latency::outgoing_done(event_id);
        match carried {
            Carried::Message(message) => {
                let record = sent_record(&self.session.login, &self.portal, entry, &message);
                if let Some(next) = outgoing.next_part(event_id) {
                    let store = &self.bridge.store;
                    let continued = store
                        .continue_outbox_send(
                            event_id,
                            &entry.queued.client_context,
                            &record,
                            &next,
                        )
                        .await?;
                    // `None`: the entry had moved on already; carry it as it is.
                    let now = match continued {
                        Some(entry) => Some(entry),
                        None => store.outbox_entry(event_id).await?,
                    };
                    return Ok(match now {
                        Some(now) if now.state == OutboxState::Pending => {
                            RowEnd::Continued(Box::new(now))
                        }
                        _ => RowEnd::Finished,
                    });
                }
                self.bridge
                    .store
                    .complete_outbox_send(event_id, &record)
                    .await?;
            }
            Carried::Done { item_id } => {
                self.bridge
                    .store
                    .mark_outbox_sent(event_id, item_id.as_deref())
                    .await?;
            }
        }
        status::report(
            self.bridge,
            &self.portal.room_id,
            event_id,
            &SendStatus::Success,
        )
        .await;
        Ok(RowEnd::Finished)
    }

    /// Gives a row up: marks it failed and tells the room why.
    async fn give_up(
        &self,
        entry: &OutboxEntry,
        failure: &SendFailure,
    ) -> Result<RowEnd, StoreError> {
        let event_id = &entry.queued.event_id;
        tracing::warn!(event_id, error = %failure, "an outgoing event was given up");
        relay_latency::outgoing_done(event_id);
        self.bridge
            .store
            .mark_outbox_failed(event_id, &failure.to_string())
            .await?;
        let mut given_up = failure.given_up();
        if let SendStatus::Permanent { file_sent, .. } = &mut given_up {
            // A row carrying a later part than its event's first: a caption.
            *file_sent = entry.queued.client_context != client_context(event_id);
        }
        status::report(self.bridge, &self.portal.room_id, event_id, &given_up).await;
        Ok(RowEnd::Finished)
    }

    /// The login needs the user: marks it (one notice in the management
    /// room), keeps the row pending and tells the portal.
    async fn held(&self, entry: &OutboxEntry, failure: &SendFailure) -> Result<RowEnd, StoreError> {
        let SendFailure::Instagram(error) = failure else {
            return Ok(RowEnd::Held);
        };
        self.bridge
            .store
            .record_outbox_error(&entry.queued.event_id, &failure.to_string())
            .await?;
        login_needs_user(self.bridge, &self.session.login.id, error).await;
        hold(
            self.bridge,
            &self.portal,
            std::slice::from_ref(entry),
            Some(error),
            true,
        )
        .await;
        Ok(RowEnd::Held)
    }

    /// One FAIL_RETRIABLE per event, when retrying starts.
    async fn tell_retrying(&self, entry: &OutboxEntry, told: &mut bool) {
        if *told {
            return;
        }
        *told = true;
        status::report(
            self.bridge,
            &self.portal.room_id,
            &entry.queued.event_id,
            &SendStatus::Retriable {
                reason: "m.foreign_network_error",
                message: "Instagram did not take the message yet; the bridge is trying again."
                    .to_owned(),
            },
        )
        .await;
    }

    /// Waits before the next try: `wait` when Instagram said how long (up to
    /// the longest backoff), else the backoff after `tries` failures.
    async fn pause(&self, wait: Option<Duration>, tries: i64) {
        let sending = &self.bridge.config.sending;
        let longest = Duration::from_millis(sending.max_backoff_ms);
        let delay = wait.map(|wait| wait.min(longest)).unwrap_or_else(|| {
            let doublings = u32::try_from(tries.saturating_sub(1)).unwrap_or(u32::MAX);
            Duration::from_millis(sending.initial_backoff_ms)
                .saturating_mul(2u32.saturating_pow(doublings))
                .min(longest)
        });
        tokio::time::sleep(delay).await;
    }
}

/// The message record of a sent item: its main part, the event it stands
/// for, and its text hash (so a later edit is noticed, and the unchanged
/// echo is not taken for one).
pub fn sent_record(
    login: &LoginRecord,
    portal: &PortalRecord,
    entry: &OutboxEntry,
    message: &Message,
) -> MessageRecord {
    MessageRecord {
        login_id: login.id.clone(),
        thread_id: portal.thread_id.clone(),
        item_id: message.id.clone(),
        part_id: String::new(),
        room_id: portal.room_id.clone(),
        event_id: entry.queued.event_id.clone(),
        sender: message
            .sender
            .as_ref()
            .map(|sender| sender.id.clone())
            .or_else(|| login.ig_user_id.clone())
            .unwrap_or_default(),
        timestamp: message
            .timestamp
            .unwrap_or_else(Utc::now)
            .timestamp_millis(),
        client_context: Some(entry.queued.client_context.clone()),
        content_hash: text_hash(message.content.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instagram(error: ConnectorError) -> SendFailure {
        SendFailure::Instagram(error)
    }

    #[test]
    fn failures_are_sorted_by_what_helps() {
        let platform = || "Instagram".to_owned();
        assert_eq!(
            instagram(ConnectorError::RateLimited {
                platform: platform(),
                retry_after: Some(Duration::from_secs(3)),
            })
            .verdict(),
            Verdict::Retry {
                ambiguous: false,
                wait: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            instagram(ConnectorError::Transient {
                platform: platform(),
                message: "timed out".to_owned(),
            })
            .verdict(),
            Verdict::Retry {
                ambiguous: true,
                wait: None
            }
        );
        assert_eq!(
            instagram(ConnectorError::SessionExpired {
                platform: platform(),
                status: 403,
                detail: None,
            })
            .verdict(),
            Verdict::NeedsLogin
        );
        for permanent in [
            instagram(ConnectorError::ActionBlocked {
                platform: platform(),
                message: "feedback_required".to_owned(),
            }),
            instagram(ConnectorError::NotFound {
                platform: platform(),
                status: 404,
                message: "gone".to_owned(),
            }),
            SendFailure::Refused("no files".to_owned()),
        ] {
            assert_eq!(permanent.verdict(), Verdict::Permanent, "{permanent}");
        }
    }

    #[test]
    fn given_up_events_say_why_in_plain_words() {
        let blocked = instagram(ConnectorError::ActionBlocked {
            platform: "Instagram".to_owned(),
            message: "feedback_required".to_owned(),
        });
        let SendStatus::Permanent {
            reason, message, ..
        } = blocked.given_up()
        else {
            panic!("not permanent");
        };
        assert_eq!(reason, "m.foreign_network_error");
        assert!(message.contains("spam (feedback_required)"), "{message}");
        let refused = SendFailure::Refused("Instagram direct messages cannot carry files.".into());
        assert_eq!(
            refused.given_up(),
            SendStatus::Permanent {
                reason: "com.beeper.unsupported_event",
                message: "Instagram direct messages cannot carry files.".to_owned(),
                internal: None,
                file_sent: false,
            }
        );
    }
}
