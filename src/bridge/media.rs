//! Media of bridged items: download from Instagram, upload to the Matrix
//! media repository. A minimal version that turns media parts into a notice
//! with the link; the items helper's full implementation replaces it.

use ruma::UserId;
use serde_json::json;

use super::convert::Part;
use crate::matrix::client::HomeserverClient;

/// Why a part's media could not be bridged.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The CDN answered 403/410: the signed URL expired; refetch the item.
    #[error("the media URL has expired")]
    Expired,
    #[error("media transfer failed, worth retrying: {0}")]
    Transient(String),
    #[error("media cannot be bridged: {0}")]
    Permanent(String),
}

/// Downloads media from Instagram and uploads it to the homeserver.
#[derive(Debug, Clone)]
pub struct MediaBridge {
    max_bytes: u64,
}

impl MediaBridge {
    pub fn new(max_bytes: u64) -> MediaBridge {
        MediaBridge { max_bytes }
    }

    /// Downloads part.media, uploads it (as `as_user`), fills url/info (+thumbnail) into
    /// part.content; over the size limit the part becomes a notice with the link.
    pub async fn fill(
        &self,
        _client: &HomeserverClient,
        _as_user: &UserId,
        part: &mut Part,
    ) -> Result<(), MediaError> {
        if let Some(media) = part.media.take() {
            tracing::debug!(max_bytes = self.max_bytes, "media bridged as a link");
            part.event_type = "m.room.message";
            part.content = json!({
                "msgtype": "m.notice",
                "body": format!("Sent {}: {}", media.filename, media.url),
            });
        }
        Ok(())
    }
}
