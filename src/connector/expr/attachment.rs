//! The `to_attachment` filter: normalizes one media object (or a list of them)
//! into attachments with the fields of `model::Attachment` (`type`, `url`,
//! `mime_type`, `width`, `height`, `duration_ms`, `title`, `preview_url`,
//! `preview_width`, `preview_height`, `waveform`).
//!
//! It reads the common shape of a media object (version lists with `url`,
//! `width` and `height`; an `audio` source; a fixed-size animated image) and
//! nothing else: which key of an item holds its media, and what a share or a
//! location is, the connector spec says with the mapping language.

use serde_json::{Map, Value};

/// Every attachment found in `value`: a media object gives one, a list one per
/// element that is media; null or anything else gives an empty list.
pub(crate) fn attachments(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.iter().filter_map(media).collect(),
        single => media(single).into_iter().collect(),
    }
}

/// One media object as an attachment: audio, video, animated image or image,
/// whichever the object holds first in that order.
fn media(value: &Value) -> Option<Value> {
    let object = value.as_object()?;
    let mut attachment = audio(object)
        .or_else(|| video(object))
        .or_else(|| animated(object))
        .or_else(|| image(object))?;
    if let Some(caption) = object
        .get("caption")
        .and_then(|caption| text_at(caption, &["text"]))
    {
        attachment.insert("title".into(), caption.into());
    }
    Some(Value::Object(attachment))
}

/// `audio.audio_src`; `duration` is in milliseconds, `waveform_data` a list of
/// amplitudes from 0 to 1.
fn audio(object: &Map<String, Value>) -> Option<Map<String, Value>> {
    let audio = object.get("audio")?;
    let url = audio.get("audio_src")?.as_str()?;
    let mut attachment = attachment(
        "audio",
        url,
        "audio/mp4",
        None,
        audio.get("duration").and_then(unsigned),
    );
    if let Some(samples) = audio.get("waveform_data").and_then(Value::as_array) {
        let waveform: Vec<Value> = samples.iter().filter_map(number).map(Value::from).collect();
        attachment.insert("waveform".into(), waveform.into());
    }
    Some(attachment)
}

/// `video_versions`: the largest version; `video_duration` is in seconds; the
/// largest `image_versions2` candidate is the preview picture.
fn video(object: &Map<String, Value>) -> Option<Map<String, Value>> {
    let best = largest(object.get("video_versions")?)?;
    let duration_ms = object
        .get("video_duration")
        .and_then(number)
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| (seconds * 1000.0).round() as u64);
    let mut attachment = attachment(
        "video",
        best.get("url")?.as_str()?,
        "video/mp4",
        Some(best),
        duration_ms,
    );
    if let Some(preview) = candidates(object) {
        if let Some(url) = preview.get("url").and_then(Value::as_str) {
            attachment.insert("preview_url".into(), url.into());
        }
        insert_size(&mut attachment, preview, "preview_");
    }
    Some(attachment)
}

/// `images.fixed_height` (GIPHY): the MP4 rendition when there is one (what
/// Matrix clients loop best), else the GIF; `is_sticker` makes it a sticker,
/// which stays an image. Its sizes are strings.
fn animated(object: &Map<String, Value>) -> Option<Map<String, Value>> {
    let fixed = object.get("images")?.get("fixed_height")?;
    let sticker = object
        .get("is_sticker")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let gif = fixed.get("url").and_then(Value::as_str);
    let (kind, url, fallback) = match fixed.get("mp4").and_then(Value::as_str) {
        Some(mp4) if !sticker => ("gif", mp4, "video/mp4"),
        _ if sticker => (
            "sticker",
            fixed.get("webp").and_then(Value::as_str).or(gif)?,
            "image/webp",
        ),
        _ => ("gif", gif?, "image/gif"),
    };
    Some(attachment(kind, url, fallback, Some(fixed), None))
}

/// `image_versions2.candidates`: the largest candidate.
fn image(object: &Map<String, Value>) -> Option<Map<String, Value>> {
    let best = candidates(object)?;
    Some(attachment(
        "image",
        best.get("url")?.as_str()?,
        "image/jpeg",
        Some(best),
        None,
    ))
}

fn candidates(object: &Map<String, Value>) -> Option<&Value> {
    largest(object.get("image_versions2")?.get("candidates")?)
}

/// The non-empty string at `path` inside `value`.
fn text_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |value, key| value.get(*key))?
        .as_str()
        .filter(|text| !text.trim().is_empty())
}

/// The version with a `url` and the most pixels (`width` × `height`, numbers
/// or numeric strings; the first one on ties); `None` for anything but a list.
pub(crate) fn largest(versions: &Value) -> Option<&Value> {
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
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A number given as a number or a numeric string.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
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

/// `width` and `height` of `size` (when given) under `prefix`.
fn insert_size(object: &mut Map<String, Value>, size: &Value, prefix: &str) {
    for key in ["width", "height"] {
        if let Some(value) = size.get(key).and_then(unsigned) {
            object.insert(format!("{prefix}{key}"), value.into());
        }
    }
}

fn attachment(
    kind: &str,
    url: &str,
    fallback_mime: &'static str,
    size: Option<&Value>,
    duration_ms: Option<u64>,
) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("type".into(), kind.into());
    object.insert("url".into(), url.into());
    object.insert("mime_type".into(), mime_type(url, fallback_mime).into());
    if let Some(size) = size {
        insert_size(&mut object, size, "");
    }
    if let Some(duration_ms) = duration_ms {
        object.insert("duration_ms".into(), duration_ms.into());
    }
    object
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
    fn video_takes_the_largest_version_its_duration_and_a_preview() {
        let found = attachments(&item("media_video")["media"]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["type"], "video");
        assert_eq!(found[0]["mime_type"], "video/mp4");
        assert_eq!(found[0]["width"], 720);
        assert_eq!(found[0]["height"], 1280);
        assert_eq!(found[0]["duration_ms"], 8200);
        assert!(found[0]["url"].as_str().unwrap().contains("dmvideo1_101"));
        assert!(found[0]["preview_url"].is_string());
        assert!(found[0]["preview_width"].is_u64());
    }

    #[test]
    fn audio_has_its_duration_and_waveform() {
        let voice = attachments(&item("voice_media")["voice_media"]["media"]);
        assert_eq!(voice.len(), 1);
        assert_eq!(voice[0]["type"], "audio");
        assert_eq!(voice[0]["mime_type"], "audio/mp4");
        assert_eq!(voice[0]["duration_ms"], 4521);
        assert_eq!(voice[0]["waveform"].as_array().unwrap().len(), 10);
        assert_eq!(voice[0]["waveform"][3], 0.91);
    }

    #[test]
    fn animated_images_prefer_mp4_and_stickers_stay_images() {
        let payload = item("animated_media")["animated_media"].clone();
        let gif = attachments(&payload);
        assert_eq!(gif[0]["type"], "gif");
        assert_eq!(gif[0]["mime_type"], "video/mp4");
        assert!(gif[0]["url"].as_str().unwrap().ends_with("200.mp4"));
        assert_eq!(
            (gif[0]["width"].as_u64(), gif[0]["height"].as_u64()),
            (Some(356), Some(200))
        );
        let mut sticker = payload;
        sticker["is_sticker"] = json!(true);
        let sticker = attachments(&sticker);
        assert_eq!(sticker[0]["type"], "sticker");
        assert_eq!(sticker[0]["mime_type"], "image/webp");
    }

    #[test]
    fn wrappers_and_non_media_give_nothing() {
        assert!(attachments(&Value::Null).is_empty());
        // Which key holds the media is the spec's business, not the filter's.
        assert!(attachments(&item("media_image")).is_empty());
        assert!(attachments(&item("raven_media_expired")["visual_media"]["media"]).is_empty());
        assert!(attachments(&json!({"video_versions": []})).is_empty());
    }

    #[test]
    fn lists_give_one_attachment_per_media() {
        let both = json!([
            item("media_image")["media"],
            null,
            item("voice_media")["voice_media"]["media"]
        ]);
        let kinds: Vec<String> = attachments(&both)
            .iter()
            .map(|a| a["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["image", "audio"]);
    }
}
