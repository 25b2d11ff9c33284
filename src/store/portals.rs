//! Portals: an Instagram thread of one login, bridged into one Matrix room.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{flag, now_millis, with_text_params, Record, Store, StoreError};
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

impl Record for PortalRecord {
    const TABLE: &'static str = "portals";
    const COLUMNS: &'static str =
        "login_mxid, thread_id, room_id, kind, name, avatar_url, encrypted, last_item_id, created_at";

    fn from_row(row: &AnyRow) -> Result<PortalRecord, sqlx::Error> {
        Ok(PortalRecord {
            login_mxid: row.try_get("login_mxid")?,
            thread_id: row.try_get("thread_id")?,
            room_id: row.try_get("room_id")?,
            kind: kind_from_text(&row.try_get::<String, _>("kind")?)?,
            name: row.try_get("name")?,
            avatar_url: row.try_get("avatar_url")?,
            encrypted: flag(row, "encrypted")?,
            last_item_id: row.try_get("last_item_id")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Store {
    /// Creates or updates the portal of (`login_mxid`, `thread_id`). The
    /// creation time of an existing portal is kept.
    pub async fn upsert_portal(&self, portal: &PortalRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(
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
        .bind(now_millis());
        self.execute(statement, "saving a portal").await?;
        Ok(())
    }

    /// The portal of one thread of a login.
    pub async fn portal_by_thread(
        &self,
        login_mxid: &str,
        thread_id: &str,
    ) -> Result<Option<PortalRecord>, StoreError> {
        self.select_one(
            "WHERE login_mxid = $1 AND thread_id = $2",
            &[login_mxid, thread_id],
            "reading a portal by thread",
        )
        .await
    }

    /// The portal bridged into a Matrix room.
    pub async fn portal_by_room(&self, room_id: &str) -> Result<Option<PortalRecord>, StoreError> {
        self.select_one("WHERE room_id = $1", &[room_id], "reading a portal by room")
            .await
    }

    /// Every portal of a login, oldest first.
    pub async fn portals_of_login(
        &self,
        login_mxid: &str,
    ) -> Result<Vec<PortalRecord>, StoreError> {
        self.select(
            "WHERE login_mxid = $1 ORDER BY created_at, thread_id",
            &[login_mxid],
            "listing a login's portals",
        )
        .await
    }

    /// Records the newest bridged item of a portal; false if there is no such portal.
    pub async fn set_portal_last_item(
        &self,
        login_mxid: &str,
        thread_id: &str,
        item_id: &str,
    ) -> Result<bool, StoreError> {
        let statement = with_text_params(
            "UPDATE portals SET last_item_id = $3 WHERE login_mxid = $1 AND thread_id = $2",
            &[login_mxid, thread_id, item_id],
        );
        Ok(self
            .execute(statement, "updating a portal's last item")
            .await?
            > 0)
    }

    /// Deletes a portal; false if there was none.
    pub async fn delete_portal(
        &self,
        login_mxid: &str,
        thread_id: &str,
    ) -> Result<bool, StoreError> {
        let statement = with_text_params(
            "DELETE FROM portals WHERE login_mxid = $1 AND thread_id = $2",
            &[login_mxid, thread_id],
        );
        Ok(self.execute(statement, "deleting a portal").await? > 0)
    }
}
