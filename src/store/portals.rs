//! Portals: an Instagram thread of one login, bridged into one Matrix room.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::cache::read_through;
use super::{flag, now_millis, with_text_params, Record, Store, StoreError};
use crate::model::ConversationKind;

/// A bridged thread.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalRecord {
    /// The login that sees this thread.
    pub login_id: String,
    /// The Matrix user who owns that login (the room's user).
    pub owner: String,
    pub thread_id: String,
    pub room_id: String,
    pub kind: ConversationKind,
    pub name: Option<String>,
    /// `mxc://` URI of the room avatar.
    pub avatar_url: Option<String>,
    /// Whether the Matrix room has encryption enabled.
    pub encrypted: bool,
    /// Whether the thread is a message request (pending inbox).
    pub request: bool,
    /// Whether the notice explaining the message request was posted.
    pub request_notice_sent: bool,
    /// Which picture `avatar_url` shows (its URL path without the signed query).
    pub avatar_id: Option<String>,
    /// Whether the room is a child of the login's space.
    pub in_space: bool,
    /// A hash of the participants whose puppets were last made the room's
    /// members (the membership is checked again only when it changes).
    pub members_hash: Option<String>,
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
    const COLUMNS: &'static str = "login_id, owner, thread_id, room_id, kind, name, avatar_url, \
         encrypted, request, request_notice_sent, avatar_id, in_space, members_hash, \
         created_at";

    fn from_row(row: &AnyRow) -> Result<PortalRecord, sqlx::Error> {
        Ok(PortalRecord {
            login_id: row.try_get("login_id")?,
            owner: row.try_get("owner")?,
            thread_id: row.try_get("thread_id")?,
            room_id: row.try_get("room_id")?,
            kind: kind_from_text(&row.try_get::<String, _>("kind")?)?,
            name: row.try_get("name")?,
            avatar_url: row.try_get("avatar_url")?,
            encrypted: flag(row, "encrypted")?,
            request: flag(row, "request")?,
            request_notice_sent: flag(row, "request_notice_sent")?,
            avatar_id: row.try_get("avatar_id")?,
            in_space: flag(row, "in_space")?,
            members_hash: row.try_get("members_hash")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Store {
    /// Creates or updates the portal of (`login_id`, `thread_id`). The
    /// creation time of an existing portal is kept.
    pub async fn upsert_portal(&self, portal: &PortalRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO portals \
             (login_id, thread_id, room_id, kind, name, avatar_url, encrypted, \
             request, request_notice_sent, avatar_id, in_space, members_hash, created_at, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (login_id, thread_id) DO UPDATE SET room_id = excluded.room_id, \
             kind = excluded.kind, name = excluded.name, avatar_url = excluded.avatar_url, \
             encrypted = excluded.encrypted, \
             request = excluded.request, request_notice_sent = excluded.request_notice_sent, \
             avatar_id = excluded.avatar_id, in_space = excluded.in_space, \
             members_hash = excluded.members_hash",
        )
        .bind(&portal.login_id)
        .bind(&portal.thread_id)
        .bind(&portal.room_id)
        .bind(kind_to_text(portal.kind))
        .bind(&portal.name)
        .bind(&portal.avatar_url)
        .bind(i64::from(portal.encrypted))
        .bind(i64::from(portal.request))
        .bind(i64::from(portal.request_notice_sent))
        .bind(&portal.avatar_id)
        .bind(i64::from(portal.in_space))
        .bind(&portal.members_hash)
        .bind(now_millis())
        .bind(&portal.owner);
        let saved = self.execute(statement, "saving a portal").await;
        self.forget_portal(&portal.login_id, &portal.thread_id);
        saved.map(drop)
    }

    /// Saves what the bridge keeps current about a portal's room (name,
    /// avatar, request state, space membership), leaving the rest (its room,
    /// kind and encryption) alone.
    pub async fn update_portal_room(&self, portal: &PortalRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "UPDATE portals SET name = $3, avatar_url = $4, avatar_id = $5, request = $6, \
             request_notice_sent = $7, in_space = $8, members_hash = $9 \
             WHERE login_id = $1 AND thread_id = $2",
        )
        .bind(&portal.login_id)
        .bind(&portal.thread_id)
        .bind(&portal.name)
        .bind(&portal.avatar_url)
        .bind(&portal.avatar_id)
        .bind(i64::from(portal.request))
        .bind(i64::from(portal.request_notice_sent))
        .bind(i64::from(portal.in_space))
        .bind(&portal.members_hash);
        let saved = self.execute(statement, "updating a portal's room").await;
        self.forget_portal(&portal.login_id, &portal.thread_id);
        saved.map(drop)
    }

    /// The portal of one thread of a login.
    pub async fn portal_by_thread(
        &self,
        login_id: &str,
        thread_id: &str,
    ) -> Result<Option<PortalRecord>, StoreError> {
        read_through(
            self.cache.as_deref().map(|cache| &cache.portals),
            (login_id.to_owned(), thread_id.to_owned()),
            self.select_one(
                "WHERE login_id = $1 AND thread_id = $2",
                &[login_id, thread_id],
                "reading a portal by thread",
            ),
        )
        .await
    }

    /// Forgets the remembered portal of a thread once it was written.
    fn forget_portal(&self, login_id: &str, thread_id: &str) {
        if let Some(cache) = &self.cache {
            cache
                .portals
                .forget(&(login_id.to_owned(), thread_id.to_owned()));
        }
    }

    /// The portal bridged into a Matrix room.
    pub async fn portal_by_room(&self, room_id: &str) -> Result<Option<PortalRecord>, StoreError> {
        self.select_one("WHERE room_id = $1", &[room_id], "reading a portal by room")
            .await
    }

    /// Every portal of a login, oldest first.
    pub async fn portals_of_login(&self, login_id: &str) -> Result<Vec<PortalRecord>, StoreError> {
        self.select(
            "WHERE login_id = $1 ORDER BY created_at, thread_id",
            &[login_id],
            "listing a login's portals",
        )
        .await
    }

    /// Notes that a room for `thread_id` ('' for the login's space) is about
    /// to be created, so a crash before its id is saved can be recovered.
    pub async fn start_room_creation(
        &self,
        login_id: &str,
        thread_id: &str,
    ) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO room_creations (login_id, thread_id, started_at) VALUES ($1, $2, $3) \
             ON CONFLICT (login_id, thread_id) DO NOTHING",
        )
        .bind(login_id)
        .bind(thread_id)
        .bind(now_millis());
        self.execute(statement, "recording a room creation").await?;
        Ok(())
    }

    /// Whether a creation of this room was started and not finished.
    pub async fn room_creation_pending(
        &self,
        login_id: &str,
        thread_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .select_text(
                "SELECT thread_id FROM room_creations WHERE login_id = $1 AND thread_id = $2",
                &[login_id, thread_id],
                "reading a room creation",
            )
            .await?
            .is_some())
    }

    /// Forgets a finished room creation.
    pub async fn finish_room_creation(
        &self,
        login_id: &str,
        thread_id: &str,
    ) -> Result<(), StoreError> {
        let statement = with_text_params(
            "DELETE FROM room_creations WHERE login_id = $1 AND thread_id = $2",
            &[login_id, thread_id],
        );
        self.execute(statement, "finishing a room creation").await?;
        Ok(())
    }

    /// The Matrix space of a login's portals, if created.
    pub async fn login_space(&self, login_id: &str) -> Result<Option<String>, StoreError> {
        self.select_text(
            "SELECT room_id FROM login_spaces WHERE login_id = $1",
            &[login_id],
            "reading a login's space",
        )
        .await
    }

    /// Records the Matrix space of a login's portals.
    pub async fn set_login_space(&self, login_id: &str, room_id: &str) -> Result<(), StoreError> {
        let statement = with_text_params(
            "INSERT INTO login_spaces (login_id, room_id) VALUES ($1, $2) \
             ON CONFLICT (login_id) DO UPDATE SET room_id = excluded.room_id",
            &[login_id, room_id],
        );
        self.execute(statement, "saving a login's space").await?;
        Ok(())
    }

    /// The event a participant's read receipt was last sent for in a thread.
    pub async fn read_receipt(
        &self,
        login_id: &str,
        thread_id: &str,
        ig_user_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.select_text(
            "SELECT event_id FROM read_receipts \
             WHERE login_id = $1 AND thread_id = $2 AND ig_user_id = $3",
            &[login_id, thread_id, ig_user_id],
            "reading a read receipt",
        )
        .await
    }

    /// Records the event a participant's read receipt was sent for.
    pub async fn set_read_receipt(
        &self,
        login_id: &str,
        thread_id: &str,
        ig_user_id: &str,
        event_id: &str,
    ) -> Result<(), StoreError> {
        let statement = with_text_params(
            "INSERT INTO read_receipts (login_id, thread_id, ig_user_id, event_id) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (login_id, thread_id, ig_user_id) DO UPDATE SET event_id = excluded.event_id",
            &[login_id, thread_id, ig_user_id, event_id],
        );
        self.execute(statement, "saving a read receipt").await?;
        Ok(())
    }

    /// Deletes a portal; false if there was none.
    pub async fn delete_portal(&self, login_id: &str, thread_id: &str) -> Result<bool, StoreError> {
        let statement = with_text_params(
            "DELETE FROM portals WHERE login_id = $1 AND thread_id = $2",
            &[login_id, thread_id],
        );
        let deleted = self.execute(statement, "deleting a portal").await;
        self.forget_portal(login_id, thread_id);
        Ok(deleted? > 0)
    }
}
