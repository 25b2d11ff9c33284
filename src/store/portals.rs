//! Portals: an Instagram thread of one login, bridged into one Matrix room.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_millis, query_failed, Store, StoreError};
use crate::model::ConversationKind;

/// A bridged thread.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalRecord {
    /// The Matrix user whose login sees this thread.
    pub login_mxid: String,
    pub thread_id: String,
    pub room_id: String,
    pub kind: ConversationKind,
    pub name: Option<String>,
    /// `mxc://` URI of the room avatar.
    pub avatar_url: Option<String>,
    /// Whether the Matrix room has encryption enabled.
    pub encrypted: bool,
    /// The newest Instagram item bridged into the room (backfill resumes after it).
    pub last_item_id: Option<String>,
    /// Unix milliseconds; set by the store when the portal is first saved.
    pub created_at: i64,
}

fn kind_to_text(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::Direct => "direct",
        ConversationKind::Group => "group",
    }
}

fn kind_from_text(text: &str) -> Result<ConversationKind, sqlx::Error> {
    match text {
        "direct" => Ok(ConversationKind::Direct),
        "group" => Ok(ConversationKind::Group),
        other => Err(sqlx::Error::Decode(
            format!("unknown portal kind {other:?}").into(),
        )),
    }
}

impl PortalRecord {
    fn from_row(row: &AnyRow) -> Result<PortalRecord, sqlx::Error> {
        Ok(PortalRecord {
            login_mxid: row.try_get("login_mxid")?,
            thread_id: row.try_get("thread_id")?,
            room_id: row.try_get("room_id")?,
            kind: kind_from_text(&row.try_get::<String, _>("kind")?)?,
            name: row.try_get("name")?,
            avatar_url: row.try_get("avatar_url")?,
            encrypted: row.try_get::<i64, _>("encrypted")? != 0,
            last_item_id: row.try_get("last_item_id")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const PORTAL_COLUMNS: &str =
    "login_mxid, thread_id, room_id, kind, name, avatar_url, encrypted, last_item_id, created_at";

impl Store {
    /// Creates or updates the portal of (`login_mxid`, `thread_id`). The
    /// creation time of an existing portal is kept.
    pub async fn upsert_portal(&self, portal: &PortalRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO portals \
             (login_mxid, thread_id, room_id, kind, name, avatar_url, encrypted, last_item_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (login_mxid, thread_id) DO UPDATE SET room_id = excluded.room_id, \
             kind = excluded.kind, name = excluded.name, avatar_url = excluded.avatar_url, \
             encrypted = excluded.encrypted, last_item_id = excluded.last_item_id",
        )
        .bind(&portal.login_mxid)
        .bind(&portal.thread_id)
        .bind(&portal.room_id)
        .bind(kind_to_text(portal.kind))
        .bind(&portal.name)
        .bind(&portal.avatar_url)
        .bind(i64::from(portal.encrypted))
        .bind(&portal.last_item_id)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(query_failed("saving a portal"))?;
        Ok(())
    }

    /// The portal of one thread of a login.
    pub async fn portal_by_thread(
        &self,
        login_mxid: &str,
        thread_id: &str,
    ) -> Result<Option<PortalRecord>, StoreError> {
        let sql = format!(
            "SELECT {PORTAL_COLUMNS} FROM portals WHERE login_mxid = $1 AND thread_id = $2"
        );
        sqlx::query(&sql)
            .bind(login_mxid)
            .bind(thread_id)
            .try_map(|row: AnyRow| PortalRecord::from_row(&row))
            .fetch_optional(&self.pool)
            .await
            .map_err(query_failed("reading a portal by thread"))
    }

    /// The portal bridged into a Matrix room.
    pub async fn portal_by_room(&self, room_id: &str) -> Result<Option<PortalRecord>, StoreError> {
        let sql = format!("SELECT {PORTAL_COLUMNS} FROM portals WHERE room_id = $1");
        sqlx::query(&sql)
            .bind(room_id)
            .try_map(|row: AnyRow| PortalRecord::from_row(&row))
            .fetch_optional(&self.pool)
            .await
            .map_err(query_failed("reading a portal by room"))
    }

    /// Every portal of a login, oldest first.
    pub async fn portals_of_login(
        &self,
        login_mxid: &str,
    ) -> Result<Vec<PortalRecord>, StoreError> {
        let sql = format!(
            "SELECT {PORTAL_COLUMNS} FROM portals WHERE login_mxid = $1 \
             ORDER BY created_at, thread_id"
        );
        sqlx::query(&sql)
            .bind(login_mxid)
            .try_map(|row: AnyRow| PortalRecord::from_row(&row))
            .fetch_all(&self.pool)
            .await
            .map_err(query_failed("listing a login's portals"))
    }

    /// Records the newest bridged item of a portal; false if there is no such portal.
    pub async fn set_portal_last_item(
        &self,
        login_mxid: &str,
        thread_id: &str,
        item_id: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE portals SET last_item_id = $3 WHERE login_mxid = $1 AND thread_id = $2",
        )
        .bind(login_mxid)
        .bind(thread_id)
        .bind(item_id)
        .execute(&self.pool)
        .await
        .map_err(query_failed("updating a portal's last item"))?;
        Ok(result.rows_affected() > 0)
    }

    /// Deletes a portal; false if there was none.
    pub async fn delete_portal(
        &self,
        login_mxid: &str,
        thread_id: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM portals WHERE login_mxid = $1 AND thread_id = $2")
            .bind(login_mxid)
            .bind(thread_id)
            .execute(&self.pool)
            .await
            .map_err(query_failed("deleting a portal"))?;
        Ok(result.rows_affected() > 0)
    }
}
