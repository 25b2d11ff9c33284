//! The poller's durable view of a login (synced once; the newest activity it
//! saw) and of each of its Instagram threads: whether it is bridged, how far it was relayed (newest handled item, activity time),
//! its newest page (to notice unsends) and the read receipts relayed. The
//! portal worker advances it after relaying, so a crash at any point makes
//! the next poll fetch the same items again (relaying is idempotent).

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{flag, Record, Store, StoreError};

/// One item of a thread's newest page: its id and Unix microseconds.
pub type PageItem = (String, i64);

/// What the poller knows of one thread.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThreadState {
    pub login_mxid: String,
    pub thread_id: String,
    /// Whether the thread has (or is getting) a portal.
    pub bridged: bool,
    /// Whether it is a message request (pending inbox).
    pub request: bool,
    /// The newest item handled.
    pub last_item_id: Option<String>,
    /// Unix microseconds of `last_item_id`.
    pub last_item_at: Option<i64>,
    /// Unix microseconds of the thread's activity when last relayed.
    pub activity_at: Option<i64>,
    /// The newest page as last fetched, newest first.
    pub newest_page: Vec<PageItem>,
    /// Instagram user id -> the item their relayed read receipt is for.
    pub seen: BTreeMap<String, String>,
}

impl Record for ThreadState {
    const TABLE: &'static str = "poll_threads";
    const COLUMNS: &'static str = "login_mxid, thread_id, bridged, request, last_item_id, \
         last_item_at, activity_at, newest_page, seen";

    fn from_row(row: &AnyRow) -> Result<ThreadState, sqlx::Error> {
        let json = |column: &str| -> Result<String, sqlx::Error> { row.try_get(column) };
        let decode = |what: &str, e: serde_json::Error| {
            sqlx::Error::Decode(format!("poll_threads.{what}: {e}").into())
        };
        Ok(ThreadState {
            login_mxid: row.try_get("login_mxid")?,
            thread_id: row.try_get("thread_id")?,
            bridged: flag(row, "bridged")?,
            request: flag(row, "request")?,
            last_item_id: row.try_get("last_item_id")?,
            last_item_at: row.try_get("last_item_at")?,
            activity_at: row.try_get("activity_at")?,
            newest_page: serde_json::from_str(&json("newest_page")?)
                .map_err(|e| decode("newest_page", e))?,
            seen: serde_json::from_str(&json("seen")?).map_err(|e| decode("seen", e))?,
        })
    }
}

/// What the poller knows of a login it has synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginSync {
    /// Unix microseconds of the newest activity a successful poll saw.
    pub watermark: Option<i64>,
}

impl Store {
    /// The poller's record of a login; `None` until its first sync.
    pub async fn login_sync(&self, login_mxid: &str) -> Result<Option<LoginSync>, StoreError> {
        sqlx::query("SELECT watermark FROM poll_logins WHERE login_mxid = $1")
            .bind(login_mxid)
            .try_map(|row: AnyRow| {
                Ok(LoginSync {
                    watermark: row.try_get("watermark")?,
                })
            })
            .fetch_optional(&self.pool)
            .await
            .map_err(super::query_failed("reading the poller's login"))
    }

    /// Records a successful poll of a login (its first makes it synced);
    /// a `None` watermark keeps the previous one.
    pub async fn save_login_sync(
        &self,
        login_mxid: &str,
        watermark: Option<i64>,
    ) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO poll_logins (login_mxid, watermark) VALUES ($1, $2) \
             ON CONFLICT (login_mxid) DO UPDATE SET \
             watermark = COALESCE(excluded.watermark, poll_logins.watermark)",
        )
        .bind(login_mxid)
        .bind(watermark);
        self.execute(statement, "saving the poller's login").await?;
        Ok(())
    }

    /// Records when a poll of a synced login last succeeded (Unix
    /// milliseconds); nothing before its first sync.
    pub async fn record_poll_success(&self, login_mxid: &str, at: i64) -> Result<(), StoreError> {
        let statement =
            sqlx::query("UPDATE poll_logins SET last_success_at = $2 WHERE login_mxid = $1")
                .bind(login_mxid)
                .bind(at);
        self.execute(statement, "recording a successful poll")
            .await?;
        Ok(())
    }

    /// When a poll of the login last succeeded (Unix milliseconds), if ever.
    pub async fn last_poll_success(&self, login_mxid: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query("SELECT last_success_at FROM poll_logins WHERE login_mxid = $1")
            .bind(login_mxid)
            .try_map(|row: AnyRow| row.try_get::<Option<i64>, _>("last_success_at"))
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
            .map_err(super::query_failed(
                "reading a login's last successful poll",
            ))
    }

    /// Every thread the poller knows of for a login.
    pub async fn thread_states(&self, login_mxid: &str) -> Result<Vec<ThreadState>, StoreError> {
        self.select(
            "WHERE login_mxid = $1 ORDER BY thread_id",
            &[login_mxid],
            "listing the poller's threads",
        )
        .await
    }

    /// One thread's state, if the poller knows it.
    pub async fn thread_state(
        &self,
        login_mxid: &str,
        thread_id: &str,
    ) -> Result<Option<ThreadState>, StoreError> {
        self.select_one(
            "WHERE login_mxid = $1 AND thread_id = $2",
            &[login_mxid, thread_id],
            "reading the poller's thread",
        )
        .await
    }

    /// Creates or replaces a thread's state.
    pub async fn save_thread_state(&self, state: &ThreadState) -> Result<(), StoreError> {
        let page = serde_json::to_string(&state.newest_page).unwrap_or_else(|_| "[]".to_owned());
        let seen = serde_json::to_string(&state.seen).unwrap_or_else(|_| "{}".to_owned());
        let statement = sqlx::query(
            "INSERT INTO poll_threads (login_mxid, thread_id, bridged, request, last_item_id, \
             last_item_at, activity_at, newest_page, seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (login_mxid, thread_id) DO UPDATE SET bridged = excluded.bridged, \
             request = excluded.request, last_item_id = excluded.last_item_id, \
             last_item_at = excluded.last_item_at, activity_at = excluded.activity_at, \
             newest_page = excluded.newest_page, seen = excluded.seen",
        )
        .bind(&state.login_mxid)
        .bind(&state.thread_id)
        .bind(i64::from(state.bridged))
        .bind(i64::from(state.request))
        .bind(&state.last_item_id)
        .bind(state.last_item_at)
        .bind(state.activity_at)
        .bind(page)
        .bind(seen);
        self.execute(statement, "saving the poller's thread")
            .await?;
        Ok(())
    }

    /// Records that `item_id` (at `at`, Unix microseconds) was relayed: the
    /// thread's progress moves forward, never back.
    pub async fn advance_thread(
        &self,
        login_mxid: &str,
        thread_id: &str,
        item_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "UPDATE poll_threads SET last_item_id = $3, last_item_at = $4 \
             WHERE login_mxid = $1 AND thread_id = $2 \
             AND (last_item_at IS NULL OR last_item_at <= $4)",
        )
        .bind(login_mxid)
        .bind(thread_id)
        .bind(item_id)
        .bind(at);
        self.execute(statement, "advancing the poller's thread")
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn thread_progress_roundtrips_and_only_moves_forward() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let state = ThreadState {
            login_mxid: "@alice:x".to_owned(),
            thread_id: "t1".to_owned(),
            bridged: true,
            request: true,
            last_item_id: Some("i2".to_owned()),
            last_item_at: Some(200),
            activity_at: Some(250),
            newest_page: vec![("i2".to_owned(), 200), ("i1".to_owned(), 100)],
            seen: [("bob".to_owned(), "i1".to_owned())].into(),
        };
        store.save_thread_state(&state).await.unwrap();
        assert_eq!(
            store.thread_state("@alice:x", "t1").await.unwrap(),
            Some(state.clone())
        );

        store
            .advance_thread("@alice:x", "t1", "i1", 100)
            .await
            .unwrap();
        let read = store.thread_state("@alice:x", "t1").await.unwrap().unwrap();
        assert_eq!(read.last_item_id.as_deref(), Some("i2"), "never moves back");
        store
            .advance_thread("@alice:x", "t1", "i3", 300)
            .await
            .unwrap();
        let read = store.thread_states("@alice:x").await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].last_item_id.as_deref(), Some("i3"));
        assert_eq!(read[0].last_item_at, Some(300));
        assert_eq!(read[0].newest_page, state.newest_page);

        assert_eq!(store.login_sync("@alice:x").await.unwrap(), None);
        store.record_poll_success("@alice:x", 42).await.unwrap();
        assert_eq!(
            store.last_poll_success("@alice:x").await.unwrap(),
            None,
            "nothing before the first sync"
        );
        store.save_login_sync("@alice:x", Some(500)).await.unwrap();
        store.record_poll_success("@alice:x", 42).await.unwrap();
        store.save_login_sync("@alice:x", None).await.unwrap();
        assert_eq!(store.last_poll_success("@alice:x").await.unwrap(), Some(42));
        assert_eq!(
            store.login_sync("@alice:x").await.unwrap(),
            Some(LoginSync {
                watermark: Some(500)
            })
        );

        assert!(store.delete_login("@alice:x").await.is_ok());
        assert!(store.thread_states("@alice:x").await.unwrap().is_empty());
        assert_eq!(store.login_sync("@alice:x").await.unwrap(), None);
    }
}
