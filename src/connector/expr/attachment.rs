//! The `to_attachment` filter: turns an Instagram item or media-ish object into
//! a list of normalized attachments (`model::Attachment` fields: `type`, `url`,
//! `mime_type`, `width`, `height`, `duration_ms`).

use serde_json::{Map, Value};

/// Keys under which Instagram nests the media of an item (`media`, `voice_media.media`, ...).
const WRAPPER_KEYS: [&str; 4] = ["media", "voice_media", "animated_media", "visual_media"];

/// How deep wrappers are followed; real items nest two levels at most.
const MAX_WRAPPER_DEPTH: usize = 8;

/// Every attachment found in `value`; null or anything without media gives an empty list.
pub(crate) fn attachments(value: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    collect(value, &mut found, 0);
    found
}

fn collect(value: &Value, found: &mut Vec<Value>, depth: usize) {
    if depth > MAX_WRAPPER_DEPTH {
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, found, depth + 1);
            }
        }
        Value::Object(object) => {
            if let Some(attachment) = audio(object)
                .or_else(|| video(object))
                .or_else(|| image(object))
                .or_else(|| gif(object))
            {
                found.push(attachment);
                return;
            }
            if let Some(inner) = WRAPPER_KEYS
                .iter()
                .filter_map(|key| object.get(*key))
                .find(|inner| !inner.is_null())
            {
                collect(inner, found, depth + 1);
            }
        }
        _ => {}
    }
}

/// `voice_media.media`: `audio.audio_src`, duration already in milliseconds.
fn audio(object: &Map<String, Value>) -> Option<Value> {
    let audio = object.get("audio")?;
    let url = audio.get("audio_src")?.as_str()?;
    Some(attachment(
        "audio",
        url,
        "audio/mp4",
        None,
        None,
        audio.get("duration").and_then(unsigned),
    ))
}

/// `media` with `video_versions`: the largest version; `video_duration` is in seconds.
fn video(object: &Map<String, Value>) -> Option<Value> {
    let best = largest(object.get("video_versions")?)?;
    let duration_ms = object
        .get("video_duration")
        .and_then(Value::as_f64)
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| (seconds * 1000.0).round() as u64);
    Some(attachment(
        "video",
        best.get("url")?.as_str()?,
        "video/mp4",
        best.get("width").and_then(unsigned),
        best.get("height").and_then(unsigned),
        duration_ms,
    ))
}

/// `media` or `visual_media.media` with `image_versions2.candidates`: the largest candidate.
fn image(object: &Map<String, Value>) -> Option<Value> {
    let best = largest(object.get("image_versions2")?.get("candidates")?)?;
    Some(attachment(
        "image",
        best.get("url")?.as_str()?,
        "image/jpeg",
        best.get("width").and_then(unsigned),
        best.get("height").and_then(unsigned),
        None,
    ))
}

/// `animated_media.images.fixed_height` (GIPHY); its dimensions are strings.
fn gif(object: &Map<String, Value>) -> Option<Value> {
    let fixed = object.get("images")?.get("fixed_height")?;
    Some(attachment(
        "gif",
        fixed.get("url")?.as_str()?,
        "image/gif",
        fixed.get("width").and_then(unsigned),
        fixed.get("height").and_then(unsigned),
        None,
    ))
}

/// The version with the most pixels (the first one on ties).
fn largest(versions: &Value) -> Option<&Value> {
    let versions = versions.as_array()?;
    let area = |version: &Value| {
        let width = version.get("width").and_then(unsigned).unwrap_or(0);
        let height = version.get("height").and_then(unsigned).unwrap_or(0);
        width.saturating_mul(height)
    };
    versions
        .iter()
        .filter(|version| version.get("url").is_some_and(Value::is_string))
        .reduce(|best, version| {
            if area(version) > area(best) {
                version
            } else {
                best
            }
        })
}

/// A non-negative integer given as a number or a numeric string.
fn unsigned(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The MIME type from the URL's file extension, or `fallback`.
fn mime_type(url: &str, fallback: &'static str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let extension = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        // `.mp4` holds voice notes as well as videos: the attachment kind decides.
        Some("mp4") if fallback.starts_with("audio/") => fallback,
        Some("mp4") => "video/mp4",
        Some("m4a") => "audio/mp4",
        _ => fallback,
    }
}

fn attachment(
    kind: &str,
    url: &str,
    fallback_mime: &'static str,
    width: Option<u64>,
    height: Option<u64>,
    duration_ms: Option<u64>,
) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), kind.into());
    object.insert("url".into(), url.into());
    object.insert("mime_type".into(), mime_type(url, fallback_mime).into());
    for (key, value) in [
        ("width", width),
        ("height", height),
        ("duration_ms", duration_ms),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), value.into());
        }
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/instagram/items/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn image_takes_the_largest_candidate() {
        let found = attachments(&item("media_image")["media"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["type"], "image");
        assert_eq!(found[0]["mime_type"], "image/jpeg");
        assert_eq!(
            (found[0]["width"].as_u64(), found[0]["height"].as_u64()),
            (Some(1080), Some(1440))
        );
        assert!(found[0]["url"]
            .as_str()
            .unwrap()
            .contains("dmphoto1_1080x1440"));
    }

    #[test]
    fn video_takes_the_largest_version_and_its_duration() {
        let found = attachments(&item("media_video")["media"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["type"], "video");
        assert_eq!(found[0]["mime_type"], "video/mp4");
        assert_eq!(found[0]["width"], 720);
        assert_eq!(found[0]["height"], 1280);
        assert_eq!(found[0]["duration_ms"], 8200);
        assert!(found[0]["url"].as_str().unwrap().contains("dmvideo1_101"));
    }

    #[test]
    fn whole_items_are_unwrapped() {
        let voice = attachments(&item("voice_media"));
        assert_eq!(voice.len(), 1);
        assert_eq!(voice[0]["type"], "audio");
        assert_eq!(voice[0]["mime_type"], "audio/mp4");
        assert_eq!(voice[0]["duration_ms"], 4521);
        assert!(voice[0]["url"]
            .as_str()
            .unwrap()
            .contains("voice_3632500000000000003"));

        let gif = attachments(&item("animated_media"));
        assert_eq!(gif.len(), 1);
        assert_eq!(gif[0]["type"], "gif");
        assert_eq!(gif[0]["mime_type"], "image/gif");
        assert_eq!(
            (gif[0]["width"].as_u64(), gif[0]["height"].as_u64()),
            (Some(356), Some(200))
        );

        let raven = attachments(&item("raven_media"));
        assert_eq!(raven.len(), 1);
        assert_eq!(raven[0]["type"], "image");
        assert_eq!(raven[0]["width"], 1080);
        assert_eq!(raven[0]["height"], 1920);

        let image = attachments(&item("media_image"));
        assert_eq!(image[0]["type"], "image");
    }

    #[test]
    fn nothing_to_attach_gives_an_empty_list() {
        assert!(attachments(&Value::Null).is_empty());
        assert!(attachments(&item("raven_media_expired")).is_empty());
        assert!(attachments(&item("text")).is_empty());
        assert!(attachments(&item("text")["media"]).is_empty());
        assert!(attachments(&json!({"media": {"video_versions": []}})).is_empty());
    }

    #[test]
    fn lists_are_flattened() {
        let both = json!([item("media_image")["media"], item("voice_media")]);
        let found = attachments(&both);
        let kinds: Vec<&str> = found.iter().map(|a| a["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["image", "audio"]);
    }
}
