//! Puppets: the Matrix ghost users that stand for Instagram users.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::cache::read_through;
use super::{flag, Record, Store, StoreError};

/// An Instagram user's ghost and what has been set on its Matrix profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuppetRecord {
    pub ig_user_id: String,
    pub mxid: String,
    /// The Instagram username (for mention pills).
    pub username: Option<String>,
    pub displayname: Option<String>,
    /// `mxc://` URI of the avatar.
    pub avatar_url: Option<String>,
    /// Whether `displayname` has been set on the Matrix profile.
    pub name_set: bool,
    /// Whether `avatar_url` has been set on the Matrix profile.
    pub avatar_set: bool,
    /// Whether the ghost has been registered with the homeserver.
    pub registered: bool,
    /// Which picture `avatar_url` shows (its URL path without the signed query).
    pub avatar_id: Option<String>,
    /// SHA-256 (hex) of that picture, so an unchanged picture is not uploaded again.
    pub avatar_hash: Option<String>,
}

impl Record for PuppetRecord {
    const TABLE: &'static str = "puppets";
    const COLUMNS: &'static str = "ig_user_id, mxid, username, displayname, avatar_url, \
         name_set, avatar_set, registered, avatar_id, avatar_hash";

    fn from_row(row: &AnyRow) -> Result<PuppetRecord, sqlx::Error> {
        Ok(PuppetRecord {
            ig_user_id: row.try_get("ig_user_id")?,
            mxid: row.try_get("mxid")?,
            username: row.try_get("username")?,
            displayname: row.try_get("displayname")?,
            avatar_url: row.try_get("avatar_url")?,
            name_set: flag(row, "name_set")?,
            avatar_set: flag(row, "avatar_set")?,
            registered: flag(row, "registered")?,
            avatar_id: row.try_get("avatar_id")?,
            avatar_hash: row.try_get("avatar_hash")?,
        })
    }
}

impl Store {
    /// Creates or replaces the puppet of `puppet.ig_user_id`.
    pub async fn upsert_puppet(&self, puppet: &PuppetRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO puppets \
             (ig_user_id, mxid, username, displayname, avatar_url, name_set, avatar_set, \
             registered, avatar_id, avatar_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (ig_user_id) DO UPDATE SET mxid = excluded.mxid, \
             username = excluded.username, \
             displayname = excluded.displayname, avatar_url = excluded.avatar_url, \
             name_set = excluded.name_set, avatar_set = excluded.avatar_set, \
             registered = excluded.registered, avatar_id = excluded.avatar_id, \
             avatar_hash = excluded.avatar_hash",
        )
        .bind(&puppet.ig_user_id)
        .bind(&puppet.mxid)
        .bind(&puppet.username)
        .bind(&puppet.displayname)
        .bind(&puppet.avatar_url)
        .bind(i64::from(puppet.name_set))
        .bind(i64::from(puppet.avatar_set))
        .bind(i64::from(puppet.registered))
        .bind(&puppet.avatar_id)
        .bind(&puppet.avatar_hash);
        let saved = self.execute(statement, "saving a puppet").await;
        if let Some(cache) = &self.cache {
            cache.puppets.forget(&puppet.ig_user_id);
        }
        saved.map(drop)
    }

    /// The puppet of an Instagram user.
    pub async fn puppet(&self, ig_user_id: &str) -> Result<Option<PuppetRecord>, StoreError> {
        read_through(
            self.cache.as_deref().map(|cache| &cache.puppets),
            ig_user_id.to_owned(),
            self.select_one("WHERE ig_user_id = $1", &[ig_user_id], "reading a puppet"),
        )
        .await
    }

    /// The puppets whose Instagram username is one of `usernames` (lowercase).
    pub async fn puppets_by_usernames(
        &self,
        usernames: &[&str],
    ) -> Result<Vec<PuppetRecord>, StoreError> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=usernames.len()).map(|n| format!("${n}")).collect();
        let filter = format!("WHERE LOWER(username) IN ({})", placeholders.join(", "));
        self.select(&filter, usernames, "reading puppets by username")
            .await
    }

    /// The puppet with a Matrix user id.
    pub async fn puppet_by_mxid(&self, mxid: &str) -> Result<Option<PuppetRecord>, StoreError> {
        self.select_one("WHERE mxid = $1", &[mxid], "reading a puppet by Matrix id")
            .await
    }
}
