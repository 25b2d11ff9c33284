//! Makes the media of a posted item real and local: every CDN URL in a fixture payload is
//! replaced by a `/media/` blob of the right kind (PNG, MP4), and the width and height next
//! to it are set to the blob's own, so a client can check what it downloads.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::media::{self, Blob};
use crate::world::World;

/// Fixture images are scaled by this much (1080 px becomes 128 px), so blobs stay small.
const SCALE: (u32, u32) = (128, 1080);
/// Profile pictures and header icons, and images given without dimensions.
const ICON_SIZE: (u32, u32) = (64, 64);

/// Remote URL → (local URL, width, height), so one picture named twice stays one blob.
type Localized = HashMap<String, (String, u32, u32)>;

/// A URL that points at Instagram's (or Giphy's) CDN, not at a page a user would open.
fn is_remote_media(key: &str, text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    key != "target_url"
        && key != "link_url"
        && host != "www.instagram.com"
        && host != "instagram.com"
}

fn dimension(value: Option<&Value>) -> u32 {
    value
        .and_then(|value| value.as_u64().or_else(|| value.as_str()?.parse().ok()))
        .unwrap_or(0) as u32
}

/// Sets a dimension keeping the fixture's type (animated_media sizes are strings).
fn set_dimension(map: &mut Map<String, Value>, key: &str, value: u32) {
    let new = match map.get(key) {
        Some(Value::String(_)) => json!(value.to_string()),
        _ => json!(value),
    };
    map.insert(key.to_owned(), new);
}

/// The remote file's name without extension, kept in the local name so that a local file
/// still says which fixture picture it stands for.
fn stem(remote: &str) -> String {
    let file = remote
        .split('?')
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    let base = file.split('.').next().unwrap_or("");
    base.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(48)
        .collect()
}

fn scaled(width: u32, height: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return ICON_SIZE;
    }
    let scale = |side: u32| (side * SCALE.0 / SCALE.1).clamp(1, 256);
    (scale(width), scale(height))
}

impl World {
    /// Stores a blob under `name` and returns its (unsigned) URL.
    pub(crate) fn store_blob(&mut self, name: String, blob: Blob) -> String {
        let url = self.media_url(&name);
        self.blobs.insert(name, blob);
        url
    }

    /// Replaces the CDN URLs of a fixture payload with local blobs (`seed` keeps names and
    /// bytes unique to the item).
    pub(crate) fn localize(&mut self, payload: &mut Value, seed: u64) {
        let mut done = Localized::new();
        self.localize_in(payload, "", seed, &mut done);
    }

    fn local_blob(
        &mut self,
        remote: &str,
        video: bool,
        size: (u32, u32),
        seed: u64,
        done: &mut Localized,
    ) -> (String, u32, u32) {
        if let Some(local) = done.get(remote) {
            return local.clone();
        }
        let index = done.len();
        let name = format!("{seed}_{index}_{}", stem(remote));
        let local = if video {
            let url = self.store_blob(
                format!("{name}.mp4"),
                media::video(seed.wrapping_mul(31).wrapping_add(index as u64)),
            );
            (url, media::VIDEO_SIZE.0, media::VIDEO_SIZE.1)
        } else {
            let url = self.store_blob(
                format!("{name}.png"),
                media::png(size.0, size.1, seed.wrapping_add(index as u64)),
            );
            (url, size.0, size.1)
        };
        done.insert(remote.to_owned(), local.clone());
        local
    }

    fn localize_in(&mut self, value: &mut Value, key: &str, seed: u64, done: &mut Localized) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.localize_in(item, key, seed, done);
                }
            }
            Value::Object(map) => {
                let remote = map
                    .get("url")
                    .and_then(Value::as_str)
                    .filter(|url| is_remote_media("url", url))
                    .map(str::to_owned);
                if let Some(remote) = remote {
                    if map.contains_key("width") && map.contains_key("height") {
                        let size =
                            scaled(dimension(map.get("width")), dimension(map.get("height")));
                        let video = key == "video_versions";
                        let (url, width, height) =
                            self.local_blob(&remote, video, size, seed, done);
                        map.insert("url".into(), json!(url));
                        set_dimension(map, "width", width);
                        set_dimension(map, "height", height);
                        if map.contains_key("mime_type") {
                            let mime = if video { "video/mp4" } else { "image/png" };
                            map.insert("mime_type".into(), json!(mime));
                        }
                    }
                }
                // Sized pictures first, so that a bare URL naming the same picture (an xma
                // `preview_url` beside its `preview_url_info`) gets the sized blob.
                for strings in [false, true] {
                    for (child_key, child) in map.iter_mut() {
                        if child.is_string() == strings {
                            self.localize_in(child, child_key, seed, done);
                        }
                    }
                }
                // xma previews state their type beside the URL; the local pictures are PNGs.
                if map.contains_key("preview_url_mime_type") {
                    map.insert("preview_url_mime_type".into(), json!("image/png"));
                }
                // The local video is the one every video item serves.
                if map.contains_key("video_versions") && map.contains_key("video_duration") {
                    map.insert(
                        "video_duration".into(),
                        json!(media::VIDEO_DURATION_MS as f64 / 1000.0),
                    );
                }
            }
            Value::String(text)
                if is_remote_media(key, text) && !text.starts_with(&self.base_url) =>
            {
                let video = key.contains("video");
                let (url, _, _) = self.local_blob(&text.clone(), video, ICON_SIZE, seed, done);
                *text = url;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdn_urls_become_local_blobs_with_their_own_dimensions() {
        let mut world = World::new("http://127.0.0.1:1".into());
        let mut payload = json!({
            "image_versions2": {"candidates": [{"width": 1080, "height": 1350, "url": "https://scontent.cdninstagram.com/a.jpg"}]},
            "video_versions": [{"type": 101, "width": 720, "height": 1280, "url": "https://scontent.cdninstagram.com/a.mp4"}],
            "preview_url": "https://scontent.cdninstagram.com/p.jpg",
            "preview_url_info": {"url": "https://scontent.cdninstagram.com/p.jpg", "width": 1080, "height": 1080},
            "target_url": "https://www.instagram.com/p/X/",
        });
        world.localize(&mut payload, 9);
        let candidate = &payload["image_versions2"]["candidates"][0];
        let name = candidate["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        let blob = &world.blobs[name];
        assert_eq!(
            (blob.width, blob.height),
            (Some(128), Some(160)),
            "scaled from 1080x1350"
        );
        assert_eq!(candidate["width"], 128);
        let video = &payload["video_versions"][0];
        assert_eq!(
            (video["width"].clone(), video["height"].clone()),
            (json!(72), json!(128))
        );
        assert_eq!(payload["preview_url"], payload["preview_url_info"]["url"]);
        assert_eq!(payload["preview_url_info"]["width"], 128);
        assert_eq!(payload["target_url"], "https://www.instagram.com/p/X/");
        assert!(payload.to_string().matches("cdninstagram").count() == 0);
    }
}
