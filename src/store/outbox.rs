//! The outbox: Matrix events to carry out on Instagram, keyed by event id so
//! a redelivered event is enqueued once and a crash mid-send is retried with
//! the same `client_context` (which Instagram recognizes).

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::messages::insert_message;
use super::{now_millis, query_failed, MessageRecord, Store, StoreError};

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
    pub login_mxid: String,
    /// What to do: `message`, `reaction`, `redaction`, `read`, ...
    pub kind: String,
    /// Everything the relay needs to carry it out.
    pub payload: serde_json::Value,
    /// The Instagram `client_context`, derived from the event id.
    pub client_context: String,
}

/// An enqueued event and how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub event_id: String,
    pub room_id: String,
    pub login_mxid: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub client_context: String,
    pub state: OutboxState,
    /// How many times sending was tried.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The Instagram item created by sending, once known.
    pub item_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl OutboxEntry {
    fn from_row(row: &AnyRow) -> Result<OutboxEntry, sqlx::Error> {
        let payload: String = row.try_get("payload")?;
        Ok(OutboxEntry {
            event_id: row.try_get("event_id")?,
            room_id: row.try_get("room_id")?,
            login_mxid: row.try_get("login_mxid")?,
            kind: row.try_get("kind")?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| sqlx::Error::Decode(format!("outbox payload: {e}").into()))?,
            client_context: row.try_get("client_context")?,
            state: OutboxState::parse(&row.try_get::<String, _>("state")?)?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            item_id: row.try_get("item_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// [`Store::mark_outbox_sent`] on any executor, so it can join a transaction.
async fn mark_sent<'e>(
    executor: impl Executor<'e, Database = Any>,
    event_id: &str,
    item_id: Option<&str>,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET state = $2, item_id = $3, attempts = attempts + 1, \
         updated_at = $4 WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(OutboxState::Sent.as_str())
    .bind(item_id)
    .bind(now_millis())
    .execute(executor)
    .await
    .map_err(query_failed("marking an outgoing event sent"))?;
    Ok(result.rows_affected() > 0)
}

const OUTBOX_COLUMNS: &str = "event_id, room_id, login_mxid, kind, payload, client_context, \
     state, attempts, last_error, item_id, created_at, updated_at";

impl Store {
    /// Enqueues an event as pending. Returns false, changing nothing, if the
    /// event id is already in the outbox (a redelivered event).
    pub async fn enqueue_outbox(&self, entry: &NewOutboxEntry) -> Result<bool, StoreError> {
        let now = now_millis();
        let result = sqlx::query(
            "INSERT INTO outbox (event_id, room_id, login_mxid, kind, payload, client_context, \
             state, attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&entry.event_id)
        .bind(&entry.room_id)
        .bind(&entry.login_mxid)
        .bind(&entry.kind)
        .bind(entry.payload.to_string())
        .bind(&entry.client_context)
        .bind(OutboxState::Pending.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(query_failed("enqueueing an outgoing event"))?;
        Ok(result.rows_affected() > 0)
    }

    /// The outbox entry of a Matrix event.
    pub async fn outbox_entry(&self, event_id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE event_id = $1");
        sqlx::query(&sql)
            .bind(event_id)
            .try_map(|row: AnyRow| OutboxEntry::from_row(&row))
            .fetch_optional(&self.pool)
            .await
            .map_err(query_failed("reading an outbox entry"))
    }

    /// The outbox entry sent with an Instagram `client_context` (to
    /// recognize the echo of our own send).
    pub async fn outbox_by_client_context(
        &self,
        client_context: &str,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE client_context = $1");
        sqlx::query(&sql)
            .bind(client_context)
            .try_map(|row: AnyRow| OutboxEntry::from_row(&row))
            .fetch_optional(&self.pool)
            .await
            .map_err(query_failed("reading an outbox entry by client context"))
    }

    /// Every pending entry, oldest first (the order to send them in).
    pub async fn pending_outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = $1 ORDER BY created_at, event_id"
        );
        sqlx::query(&sql)
            .bind(OutboxState::Pending.as_str())
            .try_map(|row: AnyRow| OutboxEntry::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(query_failed("listing pending outgoing events"))
    }

    /// Marks an entry sent, counting the attempt, with the Instagram item it
    /// created if any. False if there is no such entry.
    pub async fn mark_outbox_sent(
        &self,
        event_id: &str,
        item_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        mark_sent(&self.pool, event_id, item_id).await
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
        let found = mark_sent(&mut *transaction, event_id, Some(&message.item_id)).await?;
        if found {
            insert_message(&mut *transaction, message).await?;
        }
        transaction
            .commit()
            .await
            .map_err(query_failed("committing a sent event"))?;
        Ok(found)
    }

    /// Marks an entry failed for good, counting the attempt. False if there
    /// is no such entry.
    pub async fn mark_outbox_failed(
        &self,
        event_id: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE outbox SET state = $2, last_error = $3, attempts = attempts + 1, \
             updated_at = $4 WHERE event_id = $1",
        )
        .bind(event_id)
        .bind(OutboxState::Failed.as_str())
        .bind(error)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(query_failed("marking an outgoing event failed"))?;
        Ok(result.rows_affected() > 0)
    }

    /// Counts a failed attempt that will be retried: the entry stays pending.
    /// Returns the attempts so far, or None if there is no such entry.
    pub async fn record_outbox_attempt(
        &self,
        event_id: &str,
        error: &str,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "UPDATE outbox SET last_error = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE event_id = $1 RETURNING attempts",
        )
        .bind(event_id)
        .bind(error)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_failed("counting an outgoing event's attempt"))
    }
}
