//! The database layer: one code path over sqlx's `Any` driver for SQLite
//! (the default) and PostgreSQL; migrations in `migrations/` run at connect.

/// Why a database operation failed, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed while {doing}: {source}")]
    Query { doing: &'static str, source: sqlx::Error },
}

/// A bridge user's Instagram login.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginRecord {
    /// The Matrix user who owns the login.
    pub mxid: String,
    pub ig_user_id: Option<String>,
    pub username: Option<String>,
    /// Encrypted credential blob (cookies and auth state).
    pub credentials: Vec<u8>,
    /// Stable per-login device identity (`device.uuid`).
    pub device_uuid: String,
    /// `connected`, `disconnected`, `challenge_required`, ...
    pub state: String,
}

/// The database handle; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let _ = url;
        todo!("Store::connect")
    }

    /// Whether a homeserver transaction was already processed.
    pub async fn transaction_seen(&self, txn_id: &str) -> Result<bool, StoreError> {
        let _ = txn_id;
        todo!()
    }

    /// Records a homeserver transaction as processed.
    pub async fn record_transaction(&self, txn_id: &str) -> Result<(), StoreError> {
        let _ = txn_id;
        todo!()
    }

    /// The management room of a Matrix user, if they have one.
    pub async fn management_room(&self, mxid: &str) -> Result<Option<String>, StoreError> {
        let _ = mxid;
        todo!()
    }

    /// The Matrix user whose management room this is, if it is one.
    pub async fn management_room_owner(&self, room_id: &str) -> Result<Option<String>, StoreError> {
        let _ = room_id;
        todo!()
    }

    pub async fn set_management_room(&self, mxid: &str, room_id: &str) -> Result<(), StoreError> {
        let _ = (mxid, room_id);
        todo!()
    }

    pub async fn login(&self, mxid: &str) -> Result<Option<LoginRecord>, StoreError> {
        let _ = mxid;
        todo!()
    }
}
