//! The outbox: Matrix events to carry out on Instagram, keyed by event id so
//! a redelivered event is enqueued once, numbered in arrival order so each
//! room's events go out in order, and counting the sends started so a crash
//! mid-send is found out (the worker then looks for the send's
//! `client_context` in the thread before it sends again).

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::messages::insert_message;
use super::{now_millis, query_failed, MessageRecord, Record, Store, StoreError};

/// Where an outbox entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Not yet carried out; sent (again) by the relay.
    Pending,
    /// Carried out on Instagram.
    Sent,
    /// Given up on; `last_error` says why.
    Failed,
}

impl OutboxState {
    fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<OutboxState, sqlx::Error> {
        match text {
            "pending" => Ok(OutboxState::Pending),
            "sent" => Ok(OutboxState::Sent),
            "failed" => Ok(OutboxState::Failed),
            other => Err(sqlx::Error::Decode(
                format!("unknown outbox state {other:?}").into(),
            )),
        }
    }
}

/// A Matrix event to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxEntry {
    pub event_id: String,
    pub room_id: String,
    /// The login that carries the event out.
    pub login_id: String,
    /// What to do: `message`, `reaction`, `redaction`, `read`, ...
    pub kind: String,
    /// Everything the relay needs to carry it out.
    pub payload: serde_json::Value,
    /// The Instagram `client_context`, derived from the event id.
    pub client_context: String,
}

/// What an outbox entry becomes once its first part is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NextOutboxPart {
    pub kind: String,
    pub payload: serde_json::Value,
    pub client_context: String,
}

/// An enqueued event and how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// What was enqueued.
    pub queued: NewOutboxEntry,
    pub state: OutboxState,
    /// How many sends were started (counted before each request: a
    /// non-zero count means Instagram may have the item already).
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The Instagram item created by sending, once known.
    pub item_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl Record for OutboxEntry {
    const TABLE: &'static str = "outbox";
    const COLUMNS: &'static str = "event_id, room_id, login_id, kind, payload, client_context, \
         state, attempts, last_error, item_id, created_at, updated_at";

    fn from_row(row: &AnyRow) -> Result<OutboxEntry, sqlx::Error> {
        let payload: String = row.try_get("payload")?;
        Ok(OutboxEntry {
            queued: NewOutboxEntry {
                event_id: row.try_get("event_id")?,
                room_id: row.try_get("room_id")?,
                login_id: row.try_get("login_id")?,
                kind: row.try_get("kind")?,
                payload: serde_json::from_str(&payload)
                    .map_err(|e| sqlx::Error::Decode(format!("outbox payload: {e}").into()))?,
                client_context: row.try_get("client_context")?,
            },
            state: OutboxState::parse(&row.try_get::<String, _>("state")?)?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            item_id: row.try_get("item_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Ends an entry's life as `state` (sent or failed), recording the created
/// item or the error (a `None` keeps what is stored); on any executor, so it
/// can join a transaction. False if there is no such entry.
async fn finish<'e>(
    executor: impl Executor<'e, Database = Any>,
    event_id: &str,
    state: OutboxState,
    item_id: Option<&str>,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET state = $2, item_id = COALESCE($3, item_id), \
         last_error = COALESCE($4, last_error), updated_at = $5 \
         WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(state.as_str())
    .bind(item_id)
    .bind(error)
    .bind(now_millis())
    .execute(executor)
    .await
    .map_err(query_failed(match state {
        OutboxState::Failed => "marking an outgoing event failed",
        OutboxState::Sent | OutboxState::Pending => "marking an outgoing event sent",
    }))?;
    Ok(result.rows_affected() > 0)
}

impl Store {
    /// Enqueues an event as pending, after every event enqueued before it.
    /// Returns false, changing nothing, if the event id is already in the
    /// outbox (a redelivered event).
    pub async fn enqueue_outbox(&self, entry: &NewOutboxEntry) -> Result<bool, StoreError> {
        // The homeserver sends an appservice one transaction at a time, so
        // enqueues do not race for a position. `WHERE TRUE` keeps SQLite
        // from reading ON CONFLICT as a join constraint.
        let statement = sqlx::query(
            "INSERT INTO outbox (event_id, room_id, login_id, kind, payload, client_context, \
             state, attempts, created_at, updated_at, position) \
             SELECT $1, $2, $3, $4, $5, $6, $7, 0, $8, $8, COALESCE(MAX(position), 0) + 1 \
             FROM outbox WHERE TRUE \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&entry.event_id)
        .bind(&entry.room_id)
        .bind(&entry.login_id)
        .bind(&entry.kind)
        .bind(entry.payload.to_string())
        .bind(&entry.client_context)
        .bind(OutboxState::Pending.as_str())
        .bind(now_millis());
        Ok(self
            .execute(statement, "enqueueing an outgoing event")
            .await?
            > 0)
    }

    /// The outbox entry of a Matrix event.
    pub async fn outbox_entry(&self, event_id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        self.select_one(
            "WHERE event_id = $1",
            &[event_id],
            "reading an outbox entry",
        )
        .await
    }

    /// The outbox entry sent with an Instagram `client_context` (to
    /// recognize the echo of our own send).
    pub async fn outbox_by_client_context(
        &self,
        client_context: &str,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.select_one(
            "WHERE client_context = $1",
            &[client_context],
            "reading an outbox entry by client context",
        )
        .await
    }

    /// Every pending entry, oldest first (the order to send them in).
    pub async fn pending_outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.select(
            "WHERE state = $1 ORDER BY position, created_at",
            &[OutboxState::Pending.as_str()],
            "listing pending outgoing events",
        )
        .await
    }

    /// The pending entries of one room, in the order they arrived.
    pub async fn pending_outbox_of_room(
        &self,
        room_id: &str,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.select(
            "WHERE room_id = $1 AND state = $2 ORDER BY position, created_at",
            &[room_id, OutboxState::Pending.as_str()],
            "listing a room's pending outgoing events",
        )
        .await
    }

    /// The rooms with pending entries, with the login of each, of one login
    /// or of all.
    pub async fn rooms_with_pending_outbox(
        &self,
        login_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (sql, params): (&str, Vec<&str>) = match login_id {
            Some(login) => (
                "SELECT DISTINCT login_id, room_id FROM outbox \
                 WHERE state = $1 AND login_id = $2",
                vec![OutboxState::Pending.as_str(), login],
            ),
            None => (
                "SELECT DISTINCT login_id, room_id FROM outbox WHERE state = $1",
                vec![OutboxState::Pending.as_str()],
            ),
        };
        super::with_text_params(sql, &params)
            .try_map(|row: AnyRow| Ok((row.try_get(0)?, row.try_get(1)?)))
            .fetch_all(&self.pool)
            .await
            .map_err(query_failed("listing rooms with pending outgoing events"))
    }

    /// Counts a send about to start, before its request goes out: after a
    /// crash, a non-zero count says the item may exist already. Returns the
    /// sends started so far, or None if there is no such entry.
    pub async fn begin_outbox_attempt(&self, event_id: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "UPDATE outbox SET attempts = attempts + 1, updated_at = $2 \
             WHERE event_id = $1 RETURNING attempts",
        )
        .bind(event_id)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_failed("counting an outgoing event's attempt"))
    }

    /// Takes back the count of a send Instagram refused before doing anything
    /// (it asked to slow down) or that was never sent: it does not use up the
    /// entry's attempts. False if there is no such entry.
    pub async fn release_outbox_attempt(&self, event_id: &str) -> Result<bool, StoreError> {
        let statement = sqlx::query(
            "UPDATE outbox SET attempts = attempts - 1, updated_at = $2 \
             WHERE event_id = $1 AND attempts > 0",
        )
        .bind(event_id)
        .bind(now_millis());
        Ok(self
            .execute(statement, "taking back an outgoing event's attempt")
            .await?
            > 0)
    }

    /// Marks an entry sent, with the Instagram item it created if any. False
    /// if there is no such entry.
    pub async fn mark_outbox_sent(
        &self,
        event_id: &str,
        item_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        finish(&self.pool, event_id, OutboxState::Sent, item_id, None).await
    }

    /// Marks an entry sent and records the message it created, in one
    /// database transaction: a crash leaves either both or neither. False,
    /// recording nothing, if there is no such entry.
    pub async fn complete_outbox_send(
        &self,
        event_id: &str,
        message: &MessageRecord,
    ) -> Result<bool, StoreError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(query_failed("starting to record a sent event"))?;
        let found = finish(
            &mut *transaction,
            event_id,
            OutboxState::Sent,
            Some(&message.item_id),
            None,
        )
        .await?;
        if found {
            insert_message(&mut *transaction, message).await?;
        }
        transaction
            .commit()
            .await
            .map_err(query_failed("committing a sent event"))?;
        Ok(found)
    }

    /// Records the first part of an event sent (`sent`) and turns the entry
    /// into its next part, pending and unsent, with that part's own kind,
    /// payload and `client_context` (a photo's caption after the photo).
    /// Only an entry still at `sent_client_context` moves on: the entry as
    /// it is now, or `None` when it had moved on already (the worker and an
    /// echo both saw the first part go).
    pub async fn continue_outbox_send(
        &self,
        event_id: &str,
        sent_client_context: &str,
        sent: &MessageRecord,
        next: &NextOutboxPart,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(query_failed("starting to record a sent part"))?;
        let moved = sqlx::query(
            "UPDATE outbox SET kind = $3, payload = $4, client_context = $5, state = $6, \
             attempts = 0, last_error = NULL, item_id = NULL, updated_at = $7 \
             WHERE event_id = $1 AND client_context = $2 AND state <> $8",
        )
        .bind(event_id)
        .bind(sent_client_context)
        .bind(&next.kind)
        .bind(next.payload.to_string())
        .bind(&next.client_context)
        .bind(OutboxState::Pending.as_str())
        .bind(now_millis())
        .bind(OutboxState::Sent.as_str())
        .execute(&mut *transaction)
        .await
        .map_err(query_failed("turning an outgoing event to its next part"))?
        .rows_affected()
            > 0;
        if !moved {
            return Ok(None);
        }
        insert_message(&mut *transaction, sent).await?;
        transaction
            .commit()
            .await
            .map_err(query_failed("committing a sent part"))?;
        self.outbox_entry(event_id).await
    }

    /// Marks an entry failed for good. False if there is no such entry.
    pub async fn mark_outbox_failed(
        &self,
        event_id: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        finish(&self.pool, event_id, OutboxState::Failed, None, Some(error)).await
    }

    /// Records why an attempt failed while the entry stays pending (it is
    /// retried, or held until the user logs in again). False if there is no
    /// such entry.
    pub async fn record_outbox_error(
        &self,
        event_id: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        let statement =
            sqlx::query("UPDATE outbox SET last_error = $2, updated_at = $3 WHERE event_id = $1")
                .bind(event_id)
                .bind(error)
                .bind(now_millis());
        Ok(self
            .execute(statement, "recording an outgoing event's error")
            .await?
            > 0)
    }
}
