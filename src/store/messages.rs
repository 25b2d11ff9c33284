//! Messages and reactions: which Matrix event stands for which Instagram
//! item, the record that makes relaying exactly-once in both directions.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow};

use super::{query_failed, with_text_params, Record, Store, StoreError};

/// Most item ids one `IN (...)` lists (well under the parameter limits of
/// SQLite and PostgreSQL).
const ITEMS_PER_QUERY: usize = 200;

/// One part of an Instagram item and its Matrix event (an item bridged as
/// several events has one record per part).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MessageRecord {
    pub login_id: String,
    pub thread_id: String,
    pub item_id: String,
    /// Which event of the item this is: "" for the main part.
    pub part_id: String,
    pub room_id: String,
    pub event_id: String,
    /// The Instagram user id of the sender.
    pub sender: String,
    /// Unix milliseconds.
    pub timestamp: i64,
    /// Instagram `client_context` of items the bridge sent (echo detection).
    pub client_context: Option<String>,
    /// A hash of the item's text (main part only), to notice edits.
    pub content_hash: Option<String>,
}

impl Record for MessageRecord {
    const TABLE: &'static str = "messages";
    const COLUMNS: &'static str = "login_id, thread_id, item_id, part_id, room_id, event_id, \
         sender, timestamp, client_context, content_hash";

    fn from_row(row: &AnyRow) -> Result<MessageRecord, sqlx::Error> {
        FromRow::from_row(row)
    }
}

/// [`Store::insert_message`] on any executor, so it can join a transaction.
pub(super) async fn insert_message<'e>(
    executor: impl Executor<'e, Database = Any>,
    message: &MessageRecord,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO messages \
         (login_id, thread_id, item_id, part_id, room_id, event_id, sender, timestamp, \
         client_context, content_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (login_id, thread_id, item_id, part_id) DO NOTHING",
    )
    .bind(&message.login_id)
    .bind(&message.thread_id)
    .bind(&message.item_id)
    .bind(&message.part_id)
    .bind(&message.room_id)
    .bind(&message.event_id)
    .bind(&message.sender)
    .bind(message.timestamp)
    .bind(&message.client_context)
    .bind(&message.content_hash)
    .execute(executor)
    .await
    .map_err(query_failed("recording a bridged message"))?;
    Ok(result.rows_affected() > 0)
}

/// A reaction on an Instagram item (one per sender) and its Matrix event.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ReactionRecord {
    pub login_id: String,
    pub thread_id: String,
    /// The Instagram item reacted to.
    pub item_id: String,
    /// The Instagram user id of the reacting user.
    pub sender: String,
    pub room_id: String,
    pub event_id: String,
    pub emoji: String,
}

impl Record for ReactionRecord {
    const TABLE: &'static str = "reactions";
    const COLUMNS: &'static str = "login_id, thread_id, item_id, sender, room_id, event_id, emoji";

    fn from_row(row: &AnyRow) -> Result<ReactionRecord, sqlx::Error> {
        FromRow::from_row(row)
    }
}

/// What is recorded of one Instagram item: its bridged parts (the main part
/// ("") first) and the reactions on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemRecords {
    pub parts: Vec<MessageRecord>,
    pub reactions: Vec<ReactionRecord>,
}

/// Selects one reaction by its primary key.
const REACTION_KEY: &str =
    "WHERE login_id = $1 AND thread_id = $2 AND item_id = $3 AND sender = $4";

impl Store {
    /// Records a bridged message part unless that part of its item is
    /// already recorded. Returns true if it was new, false if it was already
    /// bridged (the existing record is left unchanged).
    pub async fn insert_message(&self, message: &MessageRecord) -> Result<bool, StoreError> {
        insert_message(&self.pool, message).await
    }

    /// The main record of an Instagram item: its main part ("") if bridged,
    /// else its first part.
    pub async fn message_by_item(
        &self,
        login_id: &str,
        thread_id: &str,
        item_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .message_parts(login_id, thread_id, item_id)
            .await?
            .into_iter()
            .next())
    }

    /// Every bridged part of an Instagram item, the main part ("") first.
    pub async fn message_parts(
        &self,
        login_id: &str,
        thread_id: &str,
        item_id: &str,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.select(
            "WHERE login_id = $1 AND thread_id = $2 AND item_id = $3 ORDER BY part_id",
            &[login_id, thread_id, item_id],
            "reading the parts of an Instagram item",
        )
        .await
    }

    /// What is recorded of each of a thread's items `item_ids`, by item id
    /// (items with nothing recorded are left out): two queries per 200
    /// items, however many there are.
    pub async fn item_records(
        &self,
        login_id: &str,
        thread_id: &str,
        item_ids: &[&str],
    ) -> Result<HashMap<String, ItemRecords>, StoreError> {
        let mut records: HashMap<String, ItemRecords> = HashMap::new();
        for chunk in item_ids.chunks(ITEMS_PER_QUERY) {
            let placeholders: Vec<String> = (3..chunk.len() + 3).map(|n| format!("${n}")).collect();
            let filter = |order: &str| {
                format!(
                    "WHERE login_id = $1 AND thread_id = $2 AND item_id IN ({}) ORDER BY {order}",
                    placeholders.join(", ")
                )
            };
            let params: Vec<&str> = [login_id, thread_id]
                .into_iter()
                .chain(chunk.iter().copied())
                .collect();
            let parts: Vec<MessageRecord> = self
                .select(
                    &filter("item_id, part_id"),
                    &params,
                    "reading the parts of Instagram items",
                )
                .await?;
            for part in parts {
                records
                    .entry(part.item_id.clone())
                    .or_default()
                    .parts
                    .push(part);
            }
            let reactions: Vec<ReactionRecord> = self
                .select(
                    &filter("item_id, sender"),
                    &params,
                    "reading the reactions on Instagram items",
                )
                .await?;
            for reaction in reactions {
                records
                    .entry(reaction.item_id.clone())
                    .or_default()
                    .reactions
                    .push(reaction);
            }
        }
        Ok(records)
    }

    /// The newest bridged part in a thread sent at or before `timestamp`
    /// (Unix milliseconds).
    pub async fn message_at_or_before(
        &self,
        login_id: &str,
        thread_id: &str,
        timestamp: i64,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let sql = super::select_sql::<MessageRecord>(
            "WHERE login_id = $1 AND thread_id = $2 AND timestamp <= $3 \
             ORDER BY timestamp DESC, part_id DESC LIMIT 1",
        );
        sqlx::query(&sql)
            .bind(login_id)
            .bind(thread_id)
            .bind(timestamp)
            .try_map(|row: AnyRow| <MessageRecord as Record>::from_row(&row))
            .fetch_optional(&self.pool)
            .await
            .map_err(query_failed("reading the newest message before a time"))
    }

    /// Replaces the text hash of an item's main record (after an edit was bridged).
    pub async fn set_message_content_hash(
        &self,
        record: &MessageRecord,
        content_hash: &str,
    ) -> Result<(), StoreError> {
        let statement = with_text_params(
            "UPDATE messages SET content_hash = $5 \
             WHERE login_id = $1 AND thread_id = $2 AND item_id = $3 AND part_id = $4",
            &[
                &record.login_id,
                &record.thread_id,
                &record.item_id,
                &record.part_id,
                content_hash,
            ],
        );
        self.execute(statement, "updating a message's text hash")
            .await?;
        Ok(())
    }

    /// The message record of a Matrix event (the first item, when it
    /// stands for several).
    pub async fn message_by_event(
        &self,
        room_id: &str,
        event_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self
            .messages_by_event(room_id, event_id)
            .await?
            .into_iter()
            .next())
    }

    /// Every item a Matrix event stands for, oldest first: one, or a photo
    /// and the caption sent after it.
    pub async fn messages_by_event(
        &self,
        room_id: &str,
        event_id: &str,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.select(
            "WHERE room_id = $1 AND event_id = $2 ORDER BY timestamp, item_id",
            &[room_id, event_id],
            "reading the messages of a Matrix event",
        )
        .await
    }

    /// Creates or replaces the reaction of `reaction.sender` on an item.
    pub async fn upsert_reaction(&self, reaction: &ReactionRecord) -> Result<(), StoreError> {
        let statement = with_text_params(
            "INSERT INTO reactions \
             (login_id, thread_id, item_id, sender, room_id, event_id, emoji) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (login_id, thread_id, item_id, sender) DO UPDATE SET \
             room_id = excluded.room_id, event_id = excluded.event_id, emoji = excluded.emoji",
            &[
                &reaction.login_id,
                &reaction.thread_id,
                &reaction.item_id,
                &reaction.sender,
                &reaction.room_id,
                &reaction.event_id,
                &reaction.emoji,
            ],
        );
        self.execute(statement, "saving a reaction").await?;
        Ok(())
    }

    /// The reaction of one sender on one item.
    pub async fn reaction(
        &self,
        login_id: &str,
        thread_id: &str,
        item_id: &str,
        sender: &str,
    ) -> Result<Option<ReactionRecord>, StoreError> {
        self.select_one(
            REACTION_KEY,
            &[login_id, thread_id, item_id, sender],
            "reading a reaction",
        )
        .await
    }

    /// Every reaction on one item.
    pub async fn reactions_of_item(
        &self,
        login_id: &str,
        thread_id: &str,
        item_id: &str,
    ) -> Result<Vec<ReactionRecord>, StoreError> {
        self.select(
            "WHERE login_id = $1 AND thread_id = $2 AND item_id = $3 ORDER BY sender",
            &[login_id, thread_id, item_id],
            "reading the reactions on an item",
        )
        .await
    }

    /// The reaction a Matrix event stands for (to carry out its redaction).
    pub async fn reaction_by_event(
        &self,
        room_id: &str,
        event_id: &str,
    ) -> Result<Option<ReactionRecord>, StoreError> {
        self.select_one(
            "WHERE room_id = $1 AND event_id = $2",
            &[room_id, event_id],
            "reading a reaction by Matrix event",
        )
        .await
    }

    /// Records that the bridge unsent an item for its user: the item's
    /// events are redacted already, so its absence from the next poll is
    /// not an unsend to relay.
    pub async fn mark_unsent_by_bridge(
        &self,
        login_id: &str,
        thread_id: &str,
        item_id: &str,
    ) -> Result<(), StoreError> {
        self.kv_set(&unsent_key(login_id, thread_id, item_id), "1")
            .await
    }

    /// Whether the bridge unsent this item ([`Store::mark_unsent_by_bridge`]).
    pub async fn unsent_by_bridge(
        &self,
        login_id: &str,
        thread_id: &str,
        item_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .kv_get(&unsent_key(login_id, thread_id, item_id))
            .await?
            .is_some())
    }

    /// Deletes the reaction of one sender on one item; false if there was none.
    pub async fn delete_reaction(
        &self,
        login_id: &str,
        thread_id: &str,
        item_id: &str,
        sender: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM reactions {REACTION_KEY}");
        let statement = with_text_params(&sql, &[login_id, thread_id, item_id, sender]);
        Ok(self.execute(statement, "deleting a reaction").await? > 0)
    }
}

/// The `kv` key that marks an item the bridge unsent.
fn unsent_key(login_id: &str, thread_id: &str, item_id: &str) -> String {
    format!("unsent_by_bridge\u{1f}{login_id}\u{1f}{thread_id}\u{1f}{item_id}")
}
