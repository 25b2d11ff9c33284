//! Logins (a Matrix user's Instagram accounts, each with its sealed
//! credentials; a user may have several) and management rooms (where a
//! Matrix user talks to the bridge bot).

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::FromRow;

use super::{now_millis, query_failed, with_text_params, Record, Store, StoreError};
use crate::secrets::Sealed;

/// A bridge user's Instagram login.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct LoginRecord {
    /// The login's own id: what everything bridged through it is keyed by
    /// ([`login_id`] for a new login).
    pub id: String,
    /// The Matrix user who owns the login.
    pub mxid: String,
    pub ig_user_id: Option<String>,
    pub username: Option<String>,
    /// Credentials (cookies and auth state) sealed by
    /// [`crate::secrets::CredentialCipher`] for `id`.
    #[sqlx(try_from = "String")]
    pub credentials: Sealed,
    /// Stable per-login device identity (`device.uuid`).
    pub device_uuid: String,
    /// `connected`, `disconnected`, `challenge_required`, ...
    pub state: String,
}

/// The id of a new login of `mxid` to the Instagram account `ig_user_id`:
/// the same for every login of that user to that account, so logging in
/// again is the same login. The account id is hashed in: login ids are
/// logged, and `ds_user_id` is one of the session's cookies.
pub fn login_id(mxid: &str, ig_user_id: &str) -> String {
    let digest = Sha256::digest(format!("{mxid}\n{ig_user_id}").as_bytes());
    let account: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{mxid}/{account}")
}

impl Record for LoginRecord {
    const TABLE: &'static str = "logins";
    const COLUMNS: &'static str = "id, mxid, ig_user_id, username, credentials, device_uuid, state";

    fn from_row(row: &AnyRow) -> Result<LoginRecord, sqlx::Error> {
        FromRow::from_row(row)
    }
}

/// What a login's deletion removes before the login itself, children first:
/// the statement and what it is doing, for errors.
const BRIDGED_BY_LOGIN: [(&str, &str); 9] = [
    (
        "DELETE FROM poll_threads WHERE login_id = $1",
        "deleting what the poller knows of a login's threads",
    ),
    (
        "DELETE FROM poll_logins WHERE login_id = $1",
        "deleting what the poller knows of a login",
    ),
    (
        "DELETE FROM read_receipts WHERE login_id = $1",
        "deleting a login's read receipts",
    ),
    (
        "DELETE FROM room_creations WHERE login_id = $1",
        "deleting a login's room creations",
    ),
    (
        "DELETE FROM login_spaces WHERE login_id = $1",
        "deleting a login's space",
    ),
    (
        "DELETE FROM reactions WHERE login_id = $1",
        "deleting a login's reactions",
    ),
    (
        "DELETE FROM messages WHERE login_id = $1",
        "deleting a login's messages",
    ),
    (
        "DELETE FROM outbox WHERE login_id = $1",
        "deleting a login's outgoing events",
    ),
    (
        "DELETE FROM portals WHERE login_id = $1",
        "deleting a login's portals",
    ),
];

impl Store {
    /// Creates or replaces the login `login.id`.
    pub async fn upsert_login(&self, login: &LoginRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO logins \
             (id, mxid, ig_user_id, username, credentials, device_uuid, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (id) DO UPDATE SET mxid = excluded.mxid, \
             ig_user_id = excluded.ig_user_id, \
             username = excluded.username, credentials = excluded.credentials, \
             device_uuid = excluded.device_uuid, state = excluded.state, \
             updated_at = excluded.updated_at",
        )
        .bind(&login.id)
        .bind(&login.mxid)
        .bind(&login.ig_user_id)
        .bind(&login.username)
        .bind(login.credentials.as_str())
        .bind(&login.device_uuid)
        .bind(&login.state)
        .bind(now_millis());
        self.execute(statement, "saving a login").await?;
        Ok(())
    }

    /// The login `id`, if there is one.
    pub async fn login(&self, id: &str) -> Result<Option<LoginRecord>, StoreError> {
        self.select_one("WHERE id = $1", &[id], "reading a login")
            .await
    }

    /// The logins of a Matrix user, oldest first.
    pub async fn logins_of(&self, mxid: &str) -> Result<Vec<LoginRecord>, StoreError> {
        self.select(
            "WHERE mxid = $1 ORDER BY created_at, id",
            &[mxid],
            "reading a user's logins",
        )
        .await
    }

    /// The login of `mxid` to the Instagram account `ig_user_id`, if any.
    pub async fn login_of_account(
        &self,
        mxid: &str,
        ig_user_id: &str,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.select_one(
            "WHERE mxid = $1 AND ig_user_id = $2",
            &[mxid, ig_user_id],
            "reading a user's login to an account",
        )
        .await
    }

    /// Every login, ordered by Matrix user and age.
    pub async fn list_logins(&self) -> Result<Vec<LoginRecord>, StoreError> {
        self.select("ORDER BY mxid, created_at, id", &[], "listing logins")
            .await
    }

    /// Changes only the state of a login; false if there is no such login.
    pub async fn set_login_state(&self, id: &str, state: &str) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE logins SET state = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(state)
            .bind(now_millis());
        Ok(self.execute(statement, "updating a login's state").await? > 0)
    }

    /// Replaces a login's state `from` (as stored) by `to`; false if the
    /// login is gone or its state is no longer `from` (someone changed it
    /// first), so a change is acted on once.
    pub async fn replace_login_state(
        &self,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError> {
        let statement = sqlx::query(
            "UPDATE logins SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(now_millis());
        Ok(self.execute(statement, "changing a login's state").await? > 0)
    }

    /// Replaces only the sealed credentials of a login (its auth state
    /// changed); false if there is no such login.
    pub async fn set_login_credentials(
        &self,
        id: &str,
        credentials: &Sealed,
    ) -> Result<bool, StoreError> {
        let statement =
            sqlx::query("UPDATE logins SET credentials = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(credentials.as_str())
                .bind(now_millis());
        Ok(self
            .execute(statement, "updating a login's credentials")
            .await?
            > 0)
    }

    /// Deletes a login with everything bridged through it (portals,
    /// messages, reactions, outbox entries), in one database transaction so
    /// no half-deleted login is ever seen. False if there was no login (the
    /// rest is deleted anyway).
    pub async fn delete_login(&self, id: &str) -> Result<bool, StoreError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(query_failed("starting to delete a login"))?;
        for (sql, doing) in BRIDGED_BY_LOGIN {
            with_text_params(sql, &[id])
                .execute(&mut *transaction)
                .await
                .map_err(query_failed(doing))?;
        }
        let deleted = with_text_params("DELETE FROM logins WHERE id = $1", &[id])
            .execute(&mut *transaction)
            .await
            .map_err(query_failed("deleting a login"))?;
        let committed = transaction
            .commit()
            .await
            .map_err(query_failed("committing a login's deletion"));
        if let Some(cache) = &self.cache {
            cache.portals.forget_where(|(login_id, _)| login_id == id);
        }
        committed?;
        Ok(deleted.rows_affected() > 0)
    }

    /// The management room of a Matrix user, if they have one.
    pub async fn management_room(&self, mxid: &str) -> Result<Option<String>, StoreError> {
        self.select_text(
            "SELECT room_id FROM management_rooms WHERE mxid = $1",
            &[mxid],
            "reading a user's management room",
        )
        .await
    }

    /// The Matrix user whose management room this is, if it is one.
    pub async fn management_room_owner(&self, room_id: &str) -> Result<Option<String>, StoreError> {
        self.select_text(
            "SELECT mxid FROM management_rooms WHERE room_id = $1",
            &[room_id],
            "reading a management room's owner",
        )
        .await
    }

    /// Makes `room_id` the management room of `mxid`, replacing any previous
    /// one. Fails if the room is already another user's management room.
    pub async fn set_management_room(&self, mxid: &str, room_id: &str) -> Result<(), StoreError> {
        let statement = with_text_params(
            "INSERT INTO management_rooms (mxid, room_id) VALUES ($1, $2) \
             ON CONFLICT (mxid) DO UPDATE SET room_id = excluded.room_id",
            &[mxid, room_id],
        );
        self.execute(statement, "saving a user's management room")
            .await?;
        Ok(())
    }

    /// Forgets a management room (the user left it); false if it was none.
    pub async fn delete_management_room(&self, room_id: &str) -> Result<bool, StoreError> {
        let statement = with_text_params(
            "DELETE FROM management_rooms WHERE room_id = $1",
            &[room_id],
        );
        Ok(self
            .execute(statement, "deleting a management room")
            .await?
            > 0)
    }
}
