//! Puppets: the Matrix ghost users that stand for Instagram users.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{flag, Record, Store, StoreError};

/// An Instagram user's ghost and what has been set on its Matrix profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuppetRecord {
    pub ig_user_id: String,
    pub mxid: String,
    pub displayname: Option<String>,
    /// `mxc://` URI of the avatar.
    pub avatar_url: Option<String>,
    /// Whether `displayname` has been set on the Matrix profile.
    pub name_set: bool,
    /// Whether `avatar_url` has been set on the Matrix profile.
    pub avatar_set: bool,
    /// Whether the ghost has been registered with the homeserver.
    pub registered: bool,
}

impl Record for PuppetRecord {
    const TABLE: &'static str = "puppets";
    const COLUMNS: &'static str =
        "ig_user_id, mxid, displayname, avatar_url, name_set, avatar_set, registered";

    fn from_row(row: &AnyRow) -> Result<PuppetRecord, sqlx::Error> {
        Ok(PuppetRecord {
            ig_user_id: row.try_get("ig_user_id")?,
            mxid: row.try_get("mxid")?,
            displayname: row.try_get("displayname")?,
            avatar_url: row.try_get("avatar_url")?,
            name_set: flag(row, "name_set")?,
            avatar_set: flag(row, "avatar_set")?,
            registered: flag(row, "registered")?,
        })
    }
}

impl Store {
    /// Creates or replaces the puppet of `puppet.ig_user_id`.
    pub async fn upsert_puppet(&self, puppet: &PuppetRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO puppets \
             (ig_user_id, mxid, displayname, avatar_url, name_set, avatar_set, registered) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (ig_user_id) DO UPDATE SET mxid = excluded.mxid, \
             displayname = excluded.displayname, avatar_url = excluded.avatar_url, \
             name_set = excluded.name_set, avatar_set = excluded.avatar_set, \
             registered = excluded.registered",
        )
        .bind(&puppet.ig_user_id)
        .bind(&puppet.mxid)
        .bind(&puppet.displayname)
        .bind(&puppet.avatar_url)
        .bind(i64::from(puppet.name_set))
        .bind(i64::from(puppet.avatar_set))
        .bind(i64::from(puppet.registered));
        self.execute(statement, "saving a puppet").await?;
        Ok(())
    }

    /// The puppet of an Instagram user.
    pub async fn puppet(&self, ig_user_id: &str) -> Result<Option<PuppetRecord>, StoreError> {
        self.select_one("WHERE ig_user_id = $1", &[ig_user_id], "reading a puppet")
            .await
    }

    /// The puppet with a Matrix user id.
    pub async fn puppet_by_mxid(&self, mxid: &str) -> Result<Option<PuppetRecord>, StoreError> {
        self.select_one("WHERE mxid = $1", &[mxid], "reading a puppet by Matrix id")
            .await
    }
}
