//! Bridge bookkeeping: processed homeserver transactions and the key/value
//! table for small state such as a login's inbox sequence id.

use super::{now_millis, with_text_params, Store, StoreError};

impl Store {
    /// Whether a homeserver transaction was already processed.
    pub async fn transaction_seen(&self, txn_id: &str) -> Result<bool, StoreError> {
        let found = self
            .select_text(
                "SELECT txn_id FROM processed_transactions WHERE txn_id = $1",
                &[txn_id],
                "checking a homeserver transaction id",
            )
            .await?;
        Ok(found.is_some())
    }

    /// Records a homeserver transaction as processed (again is harmless).
    pub async fn record_transaction(&self, txn_id: &str) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO processed_transactions (txn_id, processed_at) VALUES ($1, $2) \
             ON CONFLICT (txn_id) DO NOTHING",
        )
        .bind(txn_id)
        .bind(now_millis());
        self.execute(statement, "recording a homeserver transaction id")
            .await?;
        Ok(())
    }

    /// Whether a timeline event was already handled (by an earlier attempt
    /// at a transaction that then failed part-way through).
    pub async fn event_seen(&self, event_id: &str) -> Result<bool, StoreError> {
        let found = self
            .select_text(
                "SELECT event_id FROM processed_events WHERE event_id = $1",
                &[event_id],
                "checking a handled event id",
            )
            .await?;
        Ok(found.is_some())
    }

    /// Records a timeline event as handled (again is harmless).
    pub async fn record_event(&self, event_id: &str) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(now_millis());
        self.execute(statement, "recording a handled event id")
            .await?;
        Ok(())
    }

    /// Forgets homeserver transactions and handled events recorded before
    /// `cutoff` (the homeserver retries a transaction for minutes, never for
    /// days); returns how many were forgotten.
    pub async fn prune_transactions(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let mut forgotten = 0;
        for (table, doing) in [
            (
                "processed_transactions",
                "pruning old homeserver transaction ids",
            ),
            ("processed_events", "pruning old handled event ids"),
        ] {
            let sql = format!("DELETE FROM {table} WHERE processed_at < $1");
            let statement = sqlx::query(&sql).bind(cutoff.timestamp_millis());
            forgotten += self.execute(statement, doing).await?;
        }
        Ok(forgotten)
    }

    /// The value stored under `key`, if any.
    pub async fn kv_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.select_text(
            "SELECT value FROM kv WHERE key = $1",
            &[key],
            "reading a bridge state value",
        )
        .await
    }

    /// Stores `value` under `key`, replacing what was there.
    pub async fn kv_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let statement = with_text_params(
            "INSERT INTO kv (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[key, value],
        );
        self.execute(statement, "writing a bridge state value")
            .await?;
        Ok(())
    }

    /// Every key starting with `prefix`, with its value, in key order.
    pub async fn kv_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        // The part before any LIKE wildcard, then anything.
        let literal = prefix.split(['%', '_']).next().unwrap_or_default();
        let pattern = format!("{literal}%");
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM kv WHERE key LIKE $1 ORDER BY key")
                .bind(pattern)
                .fetch_all(&self.pool)
                .await
                .map_err(super::query_failed("reading bridge state values"))?;
        // A wildcard in `prefix` matched more: keep exact prefixes only.
        Ok(rows
            .into_iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .collect())
    }

    /// Forgets the value stored under `key` (none is fine).
    pub async fn kv_delete(&self, key: &str) -> Result<(), StoreError> {
        let statement = with_text_params("DELETE FROM kv WHERE key = $1", &[key]);
        self.execute(statement, "deleting a bridge state value")
            .await?;
        Ok(())
    }
}
