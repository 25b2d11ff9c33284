//! Changes the other side makes that Instagram shows in more than one place: edits of a text
//! item, a stranger's first message (a message request), and group changes (members removed,
//! the group picture), each with the `action_log` item Instagram adds.

use serde_json::{json, Value};

use crate::error::SimError;
use crate::media;
use crate::world::{Edited, ItemKind, World, PROFILE_PIC_SIZE};

/// Instagram lets a message be edited 5 times within 15 minutes of sending.
const EDIT_MAX_COUNT: u32 = 5;
const EDIT_MAX_AGE_US: u64 = 15 * 60 * 1_000_000;

impl World {
    /// Replaces the text of a text item. `by` is the editor, who must be the sender and within
    /// Instagram's limits (the API's edit endpoint); `None` is the control API, which may
    /// always edit. The thread's activity moves so a poller notices.
    pub fn edit_text(
        &mut self,
        thread_id: &str,
        item_id: u128,
        by: Option<u64>,
        text: &str,
    ) -> Result<(), SimError> {
        if let Some(pk) = by {
            self.member_thread(thread_id, pk)?;
        }
        let now_us = self.next_timestamp_us();
        let item = self.thread_mut(thread_id)?.item_mut(item_id)?;
        if item.item_type != "text" {
            return Err(SimError::NotEditable {
                item_id: item_id.to_string(),
                reason: "only text messages can be edited",
            });
        }
        let count = item.edited.map_or(0, |edited| edited.count);
        if let Some(pk) = by {
            if item.user_id != pk {
                return Err(SimError::NotEditable {
                    item_id: item_id.to_string(),
                    reason: "only the sender can edit a message",
                });
            }
            if count >= EDIT_MAX_COUNT || now_us.saturating_sub(item.timestamp_us) > EDIT_MAX_AGE_US
            {
                return Err(SimError::NotEditable {
                    item_id: item_id.to_string(),
                    reason: "this message can no longer be edited",
                });
            }
        }
        item.payload = Value::String(text.to_owned());
        item.edited = Some(Edited {
            count: count + 1,
            at_us: now_us,
        });
        self.touch(thread_id)
    }

    /// `from` writes to `to`: into their 1:1 thread, or, when they have none, into a new one
    /// that lands in `to`'s message requests (pending inbox) until `to` accepts it.
    pub fn message_user(
        &mut self,
        from: u64,
        to: u64,
        kind: ItemKind,
    ) -> Result<(String, u128), SimError> {
        self.account(to)?;
        let thread_id = self.thread_with(from, &[to])?;
        let item_id = self.append_item(&thread_id, from, kind, None, None)?;
        Ok((thread_id, item_id))
    }

    /// `actor` removes `pk` from a group (an action_log; `pk` moves to `left_users`).
    pub fn remove_member(&mut self, thread_id: &str, actor: u64, pk: u64) -> Result<(), SimError> {
        self.member_thread(thread_id, actor)?;
        self.member_thread(thread_id, pk)?;
        let actor_name = self.account(actor)?.full_name.clone();
        let name = self.account(pk)?.full_name.clone();
        self.action_log(
            thread_id,
            actor,
            &format!("{actor_name} removed {name} from the group."),
        )?;
        let thread = self.thread_mut(thread_id)?;
        thread.members.retain(|member| *member != pk);
        thread.admins.retain(|admin| *admin != pk);
        if !thread.left.contains(&pk) {
            thread.left.push(pk);
        }
        Ok(())
    }

    /// `actor` sets a new group picture (a generated PNG, `thread_image` in thread objects).
    /// Returns the picture's blob name.
    pub fn set_group_picture(&mut self, thread_id: &str, actor: u64) -> Result<String, SimError> {
        self.member_thread(thread_id, actor)?;
        let actor_name = self.account(actor)?.full_name.clone();
        let serial = self.next_serial();
        let name = format!("group_{serial}.png");
        self.store_blob(name.clone(), media::png(96, 96, serial));
        self.thread_mut(thread_id)?.image = Some(name.clone());
        self.action_log(
            thread_id,
            actor,
            &format!("{actor_name} changed the group photo."),
        )?;
        Ok(name)
    }

    /// A `profile`/`xma_profile` payload that shares the account `pk` (its names, link and
    /// profile picture) instead of the fixture's user.
    pub(crate) fn share_profile(
        &self,
        item_type: &str,
        payload: &mut Value,
        pk: u64,
    ) -> Result<(), SimError> {
        let account = self.account(pk)?;
        let picture = crate::render::profile_pic_url(self, pk);
        match item_type {
            "profile" => {
                payload["pk"] = json!(pk);
                payload["pk_id"] = json!(pk.to_string());
                payload["username"] = json!(account.username);
                payload["full_name"] = json!(account.full_name);
                payload["profile_pic_url"] = json!(picture);
            }
            "xma_profile" => {
                let share = &mut payload[0];
                share["header_title_text"] = json!(account.username);
                share["target_url"] =
                    json!(format!("https://www.instagram.com/{}/", account.username));
                let icon = &mut share["header_icon_url_info"];
                icon["url"] = json!(picture);
                icon["fallback"]["url"] = json!(picture);
                icon["width"] = json!(PROFILE_PIC_SIZE);
                icon["height"] = json!(PROFILE_PIC_SIZE);
            }
            _ => return Err(SimError::BadParameter { name: "user_pk" }),
        }
        Ok(())
    }

    fn action_log(
        &mut self,
        thread_id: &str,
        actor: u64,
        description: &str,
    ) -> Result<u128, SimError> {
        self.append_item(
            thread_id,
            actor,
            json!({"item_type": "action_log", "description": description}),
            None,
            None,
        )
    }
}

/// One media file an item points at, as a test needs it to check what a client downloaded.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MediaInfo {
    /// The blob's name (the last path segment of its URLs).
    pub name: String,
    /// A freshly signed URL.
    pub url: String,
    pub content_type: String,
    pub size: usize,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

impl World {
    /// Every local media file the item (as rendered) points at, in order of appearance.
    pub fn item_media(&self, thread_id: &str, item_id: u128) -> Result<Vec<MediaInfo>, SimError> {
        let item = self.thread(thread_id)?.item(item_id)?;
        let mut rendered = crate::render::item(item, None);
        self.sign_media_urls(&mut rendered);
        let prefix = format!("{}/media/", self.base_url);
        let mut urls = Vec::new();
        collect_strings(&rendered, &prefix, &mut urls);
        let mut media: Vec<MediaInfo> = Vec::new();
        for url in urls {
            let name = url[prefix.len()..]
                .split('?')
                .next()
                .unwrap_or("")
                .to_owned();
            if media.iter().any(|known| known.name == name) {
                continue;
            }
            if let Some(blob) = self.blobs.get(&name) {
                media.push(MediaInfo {
                    name,
                    url,
                    content_type: blob.content_type.clone(),
                    size: blob.bytes.len(),
                    width: blob.width,
                    height: blob.height,
                    duration_ms: blob.duration_ms,
                });
            }
        }
        Ok(media)
    }
}

fn collect_strings(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::String(text) if text.starts_with(prefix) => out.push(text.clone()),
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_strings(item, prefix, out)),
        Value::Object(map) => map
            .values()
            .for_each(|item| collect_strings(item, prefix, out)),
        _ => {}
    }
}
