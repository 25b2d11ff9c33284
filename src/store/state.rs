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

    /// Forgets homeserver transactions processed before `cutoff` (the
    /// homeserver retries a transaction for minutes, never for days);
    /// returns how many were forgotten.
    pub async fn prune_transactions(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let statement = sqlx::query("DELETE FROM processed_transactions WHERE processed_at < $1")
            .bind(cutoff.timestamp_millis());
        self.execute(statement, "pruning old homeserver transaction ids")
            .await
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
}
