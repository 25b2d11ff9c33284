//! The `to_attachment` filter: turns an Instagram item or media-ish object into
//! a list of normalized attachments (`model::Attachment` fields: `type`, `url`,
//! `mime_type`, `width`, `height`, `duration_ms`, `title`, `preview_url`).
//!
//! Media (photos, videos, voice, GIFs, and the media inside clips, story and
//! reel shares, IGTV shares and disappearing media) become `image`, `video`,
//! `audio` or `gif` attachments whose `url` is the file. Shares of something
//! that lives elsewhere (a post, an `xma_*` share, a profile) become a `share`
//! attachment whose `url` is the target, with a `title` and a `preview_url`
//! image; a link item becomes a `link` attachment the same way; a location a
//! `location` attachment with a `geo:` URI.

use serde_json::{Map, Value};

/// Keys under which Instagram nests the media of an item (`media`,
/// `voice_media.media`, `clip.clip`, `story_share.media`, `felix_share.video`, ...).
const WRAPPER_KEYS: [&str; 9] = [
    "media",
    "voice_media",
    "animated_media",
    "visual_media",
    "clip",
    "story_share",
    "reel_share",
    "felix_share",
    "video",
];

/// How deep wrappers are followed; real items nest two levels at most.
const MAX_WRAPPER_DEPTH: usize = 8;

/// Every attachment found in `value`; null or anything without media gives an
/// empty list. `web_base_url` (`https://www.instagram.com`) makes the links of
/// shared posts and profiles; without it they have no `url`.
pub(crate) fn attachments(value: &Value, web_base_url: Option<&str>) -> Vec<Value> {
    let mut found = Vec::new();
    collect(value, web_base_url, &mut found, 0);
    found
}

fn collect(value: &Value, web_base_url: Option<&str>, found: &mut Vec<Value>, depth: usize) {
    if depth > MAX_WRAPPER_DEPTH {
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, web_base_url, found, depth + 1);
            }
        }
        Value::Object(object) => {
            if let Some(shared) = shares(object, web_base_url) {
                found.extend(shared);
                return;
            }
            if let Some(mut attachment) = audio(object)
                .or_else(|| video(object))
                .or_else(|| image(object))
                .or_else(|| gif(object))
            {
                if let Some(caption) = object
                    .get("caption")
                    .and_then(|caption| text_at(caption, &["text"]))
                {
                    attachment.insert("title".into(), caption.into());
                }
                found.push(Value::Object(attachment));
                return;
            }
            if let Some(inner) = WRAPPER_KEYS
                .iter()
                .filter_map(|key| object.get(*key))
                .find(|inner| !inner.is_null())
            {
                collect(inner, web_base_url, found, depth + 1);
            }
        }
        _ => {}
    }
}

/// The attachments of an item whose content lives elsewhere (decided by its
/// `item_type`), or `None` for any other object.
fn shares(item: &Map<String, Value>, web_base_url: Option<&str>) -> Option<Vec<Value>> {
    let kind = item.get("item_type")?.as_str()?;
    let payload = item.get(kind).filter(|payload| !payload.is_null())?;
    let web =
        |path: String| web_base_url.map(|base| format!("{}/{path}", base.trim_end_matches('/')));
    let one = |attachment: Option<Map<String, Value>>| {
        attachment.map(Value::Object).into_iter().collect()
    };
    Some(match kind {
        "media_share" => one(media_share(payload, web)),
        "profile" => one(profile(payload, web)),
        "location" => one(location(payload)),
        "link" => one(link(payload)),
        xma if xma.starts_with("xma_") => match payload {
            Value::Array(entries) => entries
                .iter()
                .filter_map(xma_share)
                .map(Value::Object)
                .collect(),
            single => one(xma_share(single)),
        },
        _ => return None,
    })
}

/// A shared feed post: a link to it, the author and caption, its largest image.
fn media_share(
    media: &Value,
    web: impl Fn(String) -> Option<String>,
) -> Option<Map<String, Value>> {
    let author = text_at(media, &["user", "username"]).map(|name| format!("@{name}"));
    let caption = text_at(media, &["caption", "text"]);
    let preview = media
        .get("image_versions2")
        .and_then(|versions| largest(versions.get("candidates")?));
    Some(share(
        "share",
        media
            .get("code")
            .and_then(Value::as_str)
            .and_then(|code| web(format!("p/{code}/"))),
        joined(&[author.as_deref(), caption]),
        preview.and_then(|best| best.get("url")?.as_str()),
        preview,
    ))
}

/// `xma_media_share`, `xma_clip`, `xma_story_share`, `xma_profile`, ...: one
/// entry of the list, with its own target URL and preview.
fn xma_share(entry: &Value) -> Option<Map<String, Value>> {
    let header = text_at(entry, &["header_title_text"]);
    let title = text_at(entry, &["title_text"]).filter(|title| Some(*title) != header);
    let detail = text_at(entry, &["caption_body_text"])
        .or_else(|| text_at(entry, &["header_subtitle_text"]));
    let preview = entry
        .get("preview_url_info")
        .or_else(|| entry.get("header_icon_url_info"))
        .filter(|info| info.get("url").is_some_and(Value::is_string));
    let preview_url = preview
        .and_then(|info| info.get("url")?.as_str())
        .or_else(|| text_at(entry, &["preview_url"]));
    let mut attachment = share(
        "share",
        text_at(entry, &["target_url"]).map(str::to_owned),
        joined(&[header, title, detail]),
        preview_url,
        preview,
    );
    if let Some(mime) = text_at(entry, &["preview_url_mime_type"]) {
        attachment.insert("mime_type".into(), mime.into());
    }
    Some(attachment)
}

/// A shared profile: a link to it, the name and handle, the profile picture.
fn profile(user: &Value, web: impl Fn(String) -> Option<String>) -> Option<Map<String, Value>> {
    let username = text_at(user, &["username"])?;
    let handle = format!("@{username}");
    let title = match text_at(user, &["full_name"]) {
        Some(name) => format!("{name} ({handle})"),
        None => handle,
    };
    Some(share(
        "share",
        web(format!("{username}/")),
        Some(title),
        text_at(user, &["profile_pic_url"]),
        None,
    ))
}

/// A shared place: a `geo:` URI (what Matrix `m.location` takes) and its name.
fn location(place: &Value) -> Option<Map<String, Value>> {
    let latitude = place.get("lat")?.as_f64()?;
    let longitude = place.get("lng")?.as_f64()?;
    let name = text_at(place, &["name"]).or_else(|| text_at(place, &["short_name"]));
    Some(share(
        "location",
        Some(format!("geo:{latitude},{longitude}")),
        name.map(str::to_owned),
        None,
        None,
    ))
}

/// A link item's preview: the URL, the page title and image.
fn link(payload: &Value) -> Option<Map<String, Value>> {
    let context = payload.get("link_context")?;
    Some(share(
        "link",
        Some(text_at(context, &["link_url"])?.to_owned()),
        text_at(context, &["link_title"]).map(str::to_owned),
        text_at(context, &["link_image_url"]),
        None,
    ))
}

/// A `share`, `link` or `location` attachment; `dimensions` (an object with
/// `width` and `height`) describe the preview image.
fn share(
    kind: &str,
    url: Option<String>,
    title: Option<String>,
    preview_url: Option<&str>,
    dimensions: Option<&Value>,
) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("type".into(), kind.into());
    if let Some(url) = url {
        object.insert("url".into(), url.into());
    }
    if let Some(title) = title {
        object.insert("title".into(), title.into());
    }
    if let Some(preview_url) = preview_url {
        object.insert(
            "mime_type".into(),
            mime_type(preview_url, "image/jpeg").into(),
        );
        object.insert("preview_url".into(), preview_url.into());
    }
    for key in ["width", "height"] {
        if let Some(size) = dimensions
            .and_then(|value| value.get(key))
            .and_then(unsigned)
        {
            object.insert(key.into(), size.into());
        }
    }
    object
}

/// The non-empty string at `path` inside `value`.
fn text_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |value, key| value.get(*key))?
        .as_str()
        .filter(|text| !text.trim().is_empty())
}

/// The present parts joined with ` — `, or `None` when there are none.
fn joined(parts: &[Option<&str>]) -> Option<String> {
    let present: Vec<&str> = parts.iter().flatten().copied().collect();
    (!present.is_empty()).then(|| present.join(" — "))
}

/// `voice_media.media`: `audio.audio_src`, duration already in milliseconds.
fn audio(object: &Map<String, Value>) -> Option<Map<String, Value>> {
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
fn video(object: &Map<String, Value>) -> Option<Map<String, Value>> {
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
fn image(object: &Map<String, Value>) -> Option<Map<String, Value>> {
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
fn gif(object: &Map<String, Value>) -> Option<Map<String, Value>> {
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
) -> Map<String, Value> {
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
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attachments_of(value: &Value) -> Vec<Value> {
        attachments(value, Some("https://www.instagram.com"))
    }

    fn item(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/instagram/items/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn image_takes_the_largest_candidate() {
        let found = attachments_of(&item("media_image")["media"]);
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
        let found = attachments_of(&item("media_video")["media"]);
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
        let voice = attachments_of(&item("voice_media"));
        assert_eq!(voice.len(), 1);
        assert_eq!(voice[0]["type"], "audio");
        assert_eq!(voice[0]["mime_type"], "audio/mp4");
        assert_eq!(voice[0]["duration_ms"], 4521);
        assert!(voice[0]["url"]
            .as_str()
            .unwrap()
            .contains("voice_3632500000000000003"));

        let gif = attachments_of(&item("animated_media"));
        assert_eq!(gif.len(), 1);
        assert_eq!(gif[0]["type"], "gif");
        assert_eq!(gif[0]["mime_type"], "image/gif");
        assert_eq!(
            (gif[0]["width"].as_u64(), gif[0]["height"].as_u64()),
            (Some(356), Some(200))
        );

        let raven = attachments_of(&item("raven_media"));
        assert_eq!(raven.len(), 1);
        assert_eq!(raven[0]["type"], "image");
        assert_eq!(raven[0]["width"], 1080);
        assert_eq!(raven[0]["height"], 1920);

        let image = attachments_of(&item("media_image"));
        assert_eq!(image[0]["type"], "image");
    }

    #[test]
    fn nothing_to_attach_gives_an_empty_list() {
        assert!(attachments_of(&Value::Null).is_empty());
        assert!(attachments_of(&item("raven_media_expired")).is_empty());
        assert!(attachments_of(&item("text")).is_empty());
        assert!(attachments_of(&item("text")["media"]).is_empty());
        assert!(attachments_of(&json!({"media": {"video_versions": []}})).is_empty());
    }

    #[test]
    fn shares_link_to_the_website_only_when_given_its_address() {
        let post = item("media_share");
        let linked = attachments(&post, Some("http://127.0.0.1:9/"));
        assert_eq!(linked[0]["url"], "http://127.0.0.1:9/p/DAbcPost001/");
        let unlinked = attachments(&post, None);
        assert_eq!(unlinked[0].get("url"), None);
        assert_eq!(unlinked[0]["type"], "share");
        assert!(unlinked[0]["preview_url"]
            .as_str()
            .unwrap()
            .contains("DAbcPost001_1080x1350"));
    }

    #[test]
    fn lists_are_flattened() {
        let both = json!([item("media_image")["media"], item("voice_media")]);
        let found = attachments_of(&both);
        let kinds: Vec<&str> = found.iter().map(|a| a["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["image", "audio"]);
    }
}
