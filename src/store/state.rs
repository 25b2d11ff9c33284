//! Bridge bookkeeping: processed homeserver transactions and the key/value
//! table for small state such as a login's inbox sequence id.

use super::{now_millis, query_failed, Store, StoreError};

impl Store {
    /// Whether a homeserver transaction was already processed.
    pub async fn transaction_seen(&self, txn_id: &str) -> Result<bool, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT txn_id FROM processed_transactions WHERE txn_id = $1")
                .bind(txn_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(query_failed("checking a homeserver transaction id"))?;
        Ok(found.is_some())
    }

    /// Records a homeserver transaction as processed (again is harmless).
    pub async fn record_transaction(&self, txn_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO processed_transactions (txn_id, processed_at) VALUES ($1, $2) \
             ON CONFLICT (txn_id) DO NOTHING",
        )
        .bind(txn_id)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(query_failed("recording a homeserver transaction id"))?;
        Ok(())
    }

    /// Forgets homeserver transactions processed before `cutoff` (the
    /// homeserver retries a transaction for minutes, never for days);
    /// returns how many were forgotten.
    pub async fn prune_transactions(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM processed_transactions WHERE processed_at < $1")
            .bind(cutoff.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(query_failed("pruning old homeserver transaction ids"))?;
        Ok(result.rows_affected())
    }

    /// The value stored under `key`, if any.
    pub async fn kv_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM kv WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_failed("reading a bridge state value"))
    }

    /// Stores `value` under `key`, replacing what was there.
    pub async fn kv_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO kv (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(query_failed("writing a bridge state value"))?;
        Ok(())
    }
}
