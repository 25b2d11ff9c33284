//! Instagram → Matrix conversion of one message, pure (no I/O): a normalized
//! [`Message`] becomes the Matrix events a user should see
//! (../shared/matrix-content.md), as [`Part`]s. Media parts name the file to
//! download; `media.rs` uploads it and fills in `url` and `info`.

use std::collections::HashMap;

use ruma::{EventId, OwnedEventId, OwnedUserId};
use serde_json::{json, Map, Value};

use crate::model::{Attachment, Location, Message, Share, ViewOnce};

/// A bridged Instagram user that `@username` in a text turns into a pill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub user_id: OwnedUserId,
    pub displayname: String,
}

/// What a reply answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTarget {
    /// The quoted message is bridged: a Matrix reply to its event.
    Bridged { event_id: OwnedEventId },
    /// It is not (older than the backfill): a quote line instead.
    Missing {
        sender_name: String,
        preview: Option<String>,
    },
}

/// What conversion needs to know beyond the message.
#[derive(Debug, Clone)]
pub struct ConvertContext<'a> {
    /// Bridged Instagram users by lowercase username (for mention pills).
    pub mentions: &'a HashMap<String, Mention>,
    pub reply: Option<ReplyTarget>,
    /// Display name of the sender (for notices such as "X sent a view-once photo").
    pub sender_name: &'a str,
}

/// One Matrix event of a converted message.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Stable id of this part within the item ("" for the main part, "preview",
    /// "1", ...): the Matrix txn id and the message row derive from (item id, part id).
    pub part_id: String,
    /// "m.room.message" or "m.sticker".
    pub event_type: &'static str,
    pub content: Value,
    /// Media to download from Instagram and upload, then filled into `content` by media.rs.
    pub media: Option<MediaSource>,
}

/// A file to bridge: where to download it and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    pub url: String,
    /// A picture standing for a video (uploaded too, as its `thumbnail_url`).
    pub thumbnail_url: Option<String>,
    pub filename: String,
    pub kind: MediaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Gif,
    Sticker,
}

pub const MAIN_PART: &str = "";
pub const PREVIEW_PART: &str = "preview";
const ROOM_MESSAGE: &str = "m.room.message";
const STICKER: &str = "m.sticker";
/// The most characters of a quoted message shown in a reply fallback.
const QUOTE_CHARS: usize = 100;

/// The Matrix events for `message`, main part first. Never empty: a message
/// that cannot be shown becomes a notice saying so.
pub fn convert_message(message: &Message, ctx: &ConvertContext<'_>) -> Vec<Part> {
    let text = message
        .content
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty());
    let mut parts = match message.content_type.as_deref() {
        Some("text") => text.map(|text| vec![text_part(MAIN_PART, "m.text", text, ctx)]),
        Some("notice") => text.map(|text| vec![plain(MAIN_PART, "m.notice", text)]),
        Some("media") => media_parts(&message.attachments, text, ctx),
        Some("share") => message
            .share
            .as_ref()
            .map(|share| share_parts(share, text, ctx)),
        Some("location") => message.location.as_ref().and_then(location_part),
        Some("view_once") => message
            .view_once
            .as_ref()
            .map(|view_once| vec![view_once_part(view_once, ctx.sender_name)]),
        _ => None,
    }
    .unwrap_or_else(|| vec![unsupported(message.kind.as_deref())]);
    apply_reply(&mut parts[0], ctx.reply.as_ref());
    parts
}

/// The `m.replace` content for an edited item's main part.
pub fn edit_content(new_main: &Part, target: &EventId) -> Value {
    let mut new_content = new_main.content.clone();
    if let Some(object) = new_content.as_object_mut() {
        // A replacement cannot change what the event relates to.
        object.remove("m.relates_to");
    }
    let mut edit = Map::new();
    for key in ["msgtype", "body", "format", "formatted_body"] {
        if let Some(value) = new_content.get(key).and_then(Value::as_str) {
            let value = match key {
                "body" | "formatted_body" => format!("* {value}"),
                _ => value.to_owned(),
            };
            edit.insert(key.into(), value.into());
        }
    }
    // The edit itself notifies nobody: which of its mentions are new is not
    // known here (`m.new_content` keeps them all for the final text).
    edit.insert("m.mentions".into(), json!({}));
    edit.insert("m.new_content".into(), new_content);
    edit.insert(
        "m.relates_to".into(),
        json!({"rel_type": "m.replace", "event_id": target}),
    );
    Value::Object(edit)
}

/// A text with `@username` of bridged users as pills.
fn text_part(part_id: &str, msgtype: &str, text: &str, ctx: &ConvertContext<'_>) -> Part {
    let mut content = json!({"msgtype": msgtype, "body": text});
    let pills = pills(text, ctx.mentions);
    let mut user_ids: Vec<&str> = Vec::new();
    if !pills.is_empty() {
        let mut html = String::new();
        let mut at = 0;
        for (start, end, mention) in &pills {
            html.push_str(&html_text(&text[at..*start]));
            html.push_str(&format!(
                "<a href=\"https://matrix.to/#/{}\">{}</a>",
                mention.user_id,
                escape_html(&mention.displayname)
            ));
            if !user_ids.contains(&mention.user_id.as_str()) {
                user_ids.push(mention.user_id.as_str());
            }
            at = *end;
        }
        html.push_str(&html_text(&text[at..]));
        content["format"] = "org.matrix.custom.html".into();
        content["formatted_body"] = html.into();
    }
    content["m.mentions"] = if user_ids.is_empty() {
        json!({})
    } else {
        json!({"user_ids": user_ids})
    };
    part(part_id, content)
}

/// Byte ranges of `@username` in `text` that name a bridged user. A username
/// is letters, digits, `.` and `_`, not glued to a word before it (an e-mail
/// address is not a mention); a trailing `.` ends the sentence, not the name.
fn pills<'m>(
    text: &str,
    mentions: &'m HashMap<String, Mention>,
) -> Vec<(usize, usize, &'m Mention)> {
    let is_name = |c: char| c.is_alphanumeric() || c == '.' || c == '_';
    let mut found = Vec::new();
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let glued = previous.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.');
        previous = Some(c);
        if c != '@' || glued {
            continue;
        }
        let name_start = start + 1;
        let mut name_end = name_start;
        while let Some(&(index, next)) = chars.peek() {
            if !is_name(next) {
                break;
            }
            name_end = index + next.len_utf8();
            previous = Some(next);
            chars.next();
        }
        let mut name = &text[name_start..name_end];
        while !mentions.contains_key(&name.to_lowercase()) && name.ends_with('.') {
            name = &name[..name.len() - 1];
        }
        if let Some(mention) = mentions.get(&name.to_lowercase()) {
            found.push((start, name_start + name.len(), mention));
        }
    }
    found
}

/// One part per file; text sent with the media follows it.
fn media_parts(
    attachments: &[Attachment],
    text: Option<&str>,
    ctx: &ConvertContext<'_>,
) -> Option<Vec<Part>> {
    let mut parts: Vec<Part> = attachments
        .iter()
        .filter(|attachment| attachment.url.is_some())
        .enumerate()
        .filter_map(|(index, attachment)| {
            let part_id = if index == 0 {
                MAIN_PART.to_owned()
            } else {
                index.to_string()
            };
            media_part(part_id, attachment)
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    if let Some(text) = text {
        parts.push(text_part("text", "m.text", text, ctx));
    }
    Some(parts)
}

fn media_part(part_id: String, attachment: &Attachment) -> Option<Part> {
    let url = attachment.url.clone()?;
    let kind = match attachment.kind.as_str() {
        "image" => MediaKind::Image,
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        "gif" => MediaKind::Gif,
        "sticker" => MediaKind::Sticker,
        _ => return None,
    };
    let mimetype = attachment
        .mime_type
        .clone()
        .unwrap_or_else(|| default_mimetype(kind).to_owned());
    let filename = format!("{}.{}", file_stem(kind), extension(&mimetype));
    let mut info = Map::new();
    info.insert("mimetype".into(), mimetype.clone().into());
    if let Some(width) = attachment.width {
        info.insert("w".into(), width.into());
    }
    if let Some(height) = attachment.height {
        info.insert("h".into(), height.into());
    }
    if let Some(duration) = attachment.duration_ms {
        info.insert("duration".into(), duration.into());
    }
    let mut content = Map::new();
    let event_type = match kind {
        MediaKind::Sticker => STICKER,
        _ => ROOM_MESSAGE,
    };
    let msgtype = match kind {
        MediaKind::Image => Some("m.image"),
        MediaKind::Video => Some("m.video"),
        MediaKind::Audio => Some("m.audio"),
        // An animation without sound: a looping video, or a GIF image.
        MediaKind::Gif if mimetype.starts_with("video/") => Some("m.video"),
        MediaKind::Gif => Some("m.image"),
        MediaKind::Sticker => None,
    };
    if let Some(msgtype) = msgtype {
        content.insert("msgtype".into(), msgtype.into());
    }
    match &attachment.title {
        // A caption (Matrix v1.10): `body` is the caption, `filename` the file.
        Some(caption) if !caption.trim().is_empty() => {
            content.insert("body".into(), caption.trim().into());
            content.insert("filename".into(), filename.clone().into());
        }
        _ => {
            content.insert("body".into(), filename.clone().into());
        }
    }
    if kind == MediaKind::Gif {
        for flag in [
            "fi.mau.gif",
            "fi.mau.loop",
            "fi.mau.autoplay",
            "fi.mau.no_audio",
        ] {
            info.insert(flag.into(), true.into());
        }
    }
    if kind == MediaKind::Audio {
        // Instagram's audio messages are voice messages.
        let mut audio = Map::new();
        if let Some(duration) = attachment.duration_ms {
            audio.insert("duration".into(), duration.into());
        }
        if !attachment.waveform.is_empty() {
            let waveform: Vec<u64> = attachment
                .waveform
                .iter()
                .map(|amplitude| (amplitude.clamp(0.0, 1.0) * 1024.0).round() as u64)
                .collect();
            audio.insert("waveform".into(), waveform.into());
        }
        content.insert("org.matrix.msc1767.audio".into(), audio.into());
        content.insert("org.matrix.msc3245.voice".into(), json!({}));
    }
    content.insert("info".into(), info.into());
    let thumbnail_url = match kind {
        MediaKind::Video | MediaKind::Gif => attachment.preview_url.clone(),
        _ => None,
    };
    Some(Part {
        part_id,
        event_type,
        content: content.into(),
        media: Some(MediaSource {
            url,
            thumbnail_url,
            filename,
            kind,
        }),
    })
}

/// A share: a text with the link (and the sender's own words, if any), then
/// the preview picture.
fn share_parts(share: &Share, text: Option<&str>, ctx: &ConvertContext<'_>) -> Vec<Part> {
    let what = match share.kind.as_deref() {
        Some("post") => "a post",
        Some("reel") => "a reel",
        Some("video") => "a video",
        Some("story") => "a story",
        Some("profile") => "a profile",
        _ => "a link",
    };
    let owner = share.owner.as_deref().filter(|owner| !owner.is_empty());
    let headline = match (share.kind.as_deref(), owner) {
        (Some("profile"), Some(owner)) => format!("Shared the profile of @{owner}"),
        (_, Some(owner)) => format!("Shared {what} by @{owner}"),
        (_, None) => format!("Shared {what}"),
    };
    let caption = share
        .caption
        .as_deref()
        .map(str::trim)
        .filter(|caption| !caption.is_empty());
    let mut main = text.map_or_else(
        || json!({"msgtype": "m.text", "m.mentions": {}}),
        |text| text_part(MAIN_PART, "m.text", text, ctx).content,
    );
    let mut body = String::new();
    let mut html = String::new();
    if let Some(text) = text {
        body.push_str(&format!("{text}\n\n"));
        let words = main
            .get("formatted_body")
            .and_then(Value::as_str)
            .map_or_else(|| html_text(text), str::to_owned);
        html.push_str(&format!("{words}<br><br>"));
    }
    body.push_str(&format!("{headline}: {}", share.url));
    html.push_str(&format!(
        "{}: <a href=\"{}\">{}</a>",
        escape_html(&headline),
        escape_html(&share.url),
        escape_html(&share.url)
    ));
    if let Some(caption) = caption {
        body.push_str(&format!("\n{caption}"));
        html.push_str(&format!(
            "<br><blockquote>{}</blockquote>",
            html_text(caption)
        ));
    }
    let mut preview = json!({"matched_url": share.url, "og:url": share.url, "og:title": headline});
    if let Some(caption) = caption {
        preview["og:description"] = caption.into();
    }
    main["body"] = body.into();
    main["format"] = "org.matrix.custom.html".into();
    main["formatted_body"] = html.into();
    main["com.beeper.linkpreviews"] = json!([preview]);
    let preview_source = share
        .preview_url
        .clone()
        .filter(|url| !url.is_empty())
        .map(|url| MediaSource {
            url,
            thumbnail_url: None,
            filename: "preview.jpg".to_owned(),
            kind: MediaKind::Image,
        });
    // The text's media is its link preview's image (media.rs puts it in
    // `com.beeper.linkpreviews`); the same picture follows as an image.
    let mut parts = vec![Part {
        media: preview_source.clone(),
        ..part(MAIN_PART, main)
    }];
    if let Some(source) = preview_source {
        let mut info = json!({"mimetype": "image/jpeg"});
        if let (Some(width), Some(height)) = (share.preview_width, share.preview_height) {
            info["w"] = width.into();
            info["h"] = height.into();
        }
        parts.push(Part {
            part_id: PREVIEW_PART.to_owned(),
            event_type: ROOM_MESSAGE,
            content: json!({"msgtype": "m.image", "body": "preview.jpg", "info": info}),
            media: Some(source),
        });
    }
    parts
}

fn location_part(place: &Location) -> Option<Vec<Part>> {
    let (latitude, longitude) = (place.latitude?, place.longitude?);
    let geo_uri = format!("geo:{latitude},{longitude}");
    let described: Vec<&str> = [place.name.as_deref(), place.address.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .collect();
    let description = if described.is_empty() {
        "Location".to_owned()
    } else {
        described.join(", ")
    };
    Some(vec![part(
        MAIN_PART,
        json!({
            "msgtype": "m.location",
            "body": format!("{description} ({geo_uri})"),
            "geo_uri": geo_uri,
            "org.matrix.msc3488.location": {"uri": geo_uri, "description": description},
        }),
    )])
}

fn view_once_part(view_once: &ViewOnce, sender_name: &str) -> Part {
    let what = match view_once.media_kind.as_deref() {
        Some("video") => "video",
        Some("image") => "photo",
        _ => "photo or video",
    };
    let text = if view_once.expired {
        format!("{sender_name} sent a view-once {what}, which was already viewed or has expired.")
    } else {
        format!("{sender_name} sent a view-once {what}; open Instagram to see it.")
    };
    plain(MAIN_PART, "m.notice", &text)
}

fn unsupported(kind: Option<&str>) -> Part {
    let kind = kind.filter(|kind| !kind.is_empty()).unwrap_or("unknown");
    plain(
        MAIN_PART,
        "m.notice",
        &format!("Unsupported Instagram message ({kind}); open Instagram to see it."),
    )
}

/// Makes the main part a reply: a relation when the quoted event is bridged,
/// a quote line (`> name: preview`) otherwise.
fn apply_reply(main: &mut Part, reply: Option<&ReplyTarget>) {
    let Some(content) = main.content.as_object_mut() else {
        return;
    };
    match reply {
        None => {}
        Some(ReplyTarget::Bridged { event_id }) => {
            content.insert(
                "m.relates_to".into(),
                json!({"m.in_reply_to": {"event_id": event_id}}),
            );
        }
        Some(ReplyTarget::Missing {
            sender_name,
            preview,
        }) => {
            let preview = preview
                .as_deref()
                .and_then(|text| text.lines().map(str::trim).find(|line| !line.is_empty()))
                .map_or_else(|| "an earlier message".to_owned(), shorten);
            let quote = format!("> {sender_name}: {preview}");
            let quote_html = format!(
                "<blockquote><b>{}</b>: {}</blockquote>",
                escape_html(sender_name),
                escape_html(&preview)
            );
            let is_file = main.event_type == STICKER
                || matches!(
                    content.get("msgtype").and_then(Value::as_str),
                    Some("m.image" | "m.video" | "m.audio" | "m.file")
                );
            if is_file && !content.contains_key("filename") {
                // A file's body becomes its caption (Matrix v1.10).
                if let Some(filename) = content.get("body").cloned() {
                    content.insert("filename".into(), filename);
                }
                content.insert("body".into(), quote.into());
                return;
            }
            let body = content.get("body").and_then(Value::as_str).unwrap_or("");
            let new_body = format!("{quote}\n\n{body}");
            let html = content
                .get("formatted_body")
                .and_then(Value::as_str)
                .map_or_else(|| html_text(body), str::to_owned);
            content.insert("body".into(), new_body.into());
            content.insert("format".into(), "org.matrix.custom.html".into());
            content.insert(
                "formatted_body".into(),
                format!("{quote_html}{html}").into(),
            );
        }
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= QUOTE_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(QUOTE_CHARS).collect();
    format!("{}…", cut.trim_end())
}

fn plain(part_id: &str, msgtype: &str, text: &str) -> Part {
    part(part_id, json!({"msgtype": msgtype, "body": text}))
}

fn part(part_id: &str, content: Value) -> Part {
    Part {
        part_id: part_id.to_owned(),
        event_type: ROOM_MESSAGE,
        content,
        media: None,
    }
}

fn default_mimetype(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image/jpeg",
        MediaKind::Video | MediaKind::Gif => "video/mp4",
        MediaKind::Audio => "audio/mp4",
        MediaKind::Sticker => "image/webp",
    }
}

fn file_stem(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "photo",
        MediaKind::Video => "video",
        MediaKind::Audio => "voice",
        MediaKind::Gif => "animation",
        MediaKind::Sticker => "sticker",
    }
}

/// The usual file extension of a MIME type.
pub(crate) fn extension(mimetype: &str) -> &'static str {
    match mimetype.split(';').next().unwrap_or("").trim() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        _ => "bin",
    }
}

/// Text as HTML: escaped, line breaks kept.
fn html_text(text: &str) -> String {
    escape_html(text).replace('\n', "<br>")
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::owned_event_id;

    fn message(fields: Value) -> Message {
        let mut base = json!({"id": "item1", "conversation_id": "thread1"});
        for (key, value) in fields.as_object().unwrap() {
            base[key] = value.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn mentions() -> HashMap<String, Mention> {
        HashMap::from([(
            "bob_builder".to_owned(),
            Mention {
                user_id: "@instagram_42:example.org".try_into().unwrap(),
                displayname: "Bob <Builder>".to_owned(),
            },
        )])
    }

    fn convert(message: &Message, reply: Option<ReplyTarget>) -> Vec<Part> {
        let mentions = mentions();
        convert_message(
            message,
            &ConvertContext {
                mentions: &mentions,
                reply,
                sender_name: "Alice",
            },
        )
    }

    fn one(message: &Message) -> Part {
        let mut parts = convert(message, None);
        assert_eq!(parts.len(), 1, "{parts:?}");
        parts.remove(0)
    }

    #[test]
    fn text_keeps_links_and_has_no_mentions() {
        let part = one(&message(json!({
            "content_type": "text", "kind": "link",
            "content": "menu at https://example.org/menu?a=1&b=2"
        })));
        assert_eq!(part.part_id, "");
        assert_eq!(part.event_type, "m.room.message");
        assert_eq!(
            part.content,
            json!({"msgtype": "m.text", "body": "menu at https://example.org/menu?a=1&b=2", "m.mentions": {}})
        );
        assert_eq!(part.media, None);
    }

    #[test]
    fn bridged_usernames_become_pills() {
        let part = one(&message(json!({
            "content_type": "text",
            "content": "@Bob_Builder bring <the> speaker, @bob_builder. not@bob_builder @stranger"
        })));
        assert_eq!(part.content["format"], "org.matrix.custom.html");
        assert_eq!(
            part.content["formatted_body"],
            "<a href=\"https://matrix.to/#/@instagram_42:example.org\">Bob &lt;Builder&gt;</a> bring &lt;the&gt; speaker, \
             <a href=\"https://matrix.to/#/@instagram_42:example.org\">Bob &lt;Builder&gt;</a>. not@bob_builder @stranger"
        );
        assert_eq!(
            part.content["m.mentions"],
            json!({"user_ids": ["@instagram_42:example.org"]})
        );
        assert_eq!(
            part.content["body"],
            "@Bob_Builder bring <the> speaker, @bob_builder. not@bob_builder @stranger"
        );
    }

    #[test]
    fn replies_relate_to_the_bridged_event_or_quote_it() {
        let text = message(json!({"content_type": "text", "content": "yes, still on"}));
        let event_id = owned_event_id!("$original:example.org");
        let bridged = convert(
            &text,
            Some(ReplyTarget::Bridged {
                event_id: event_id.clone(),
            }),
        );
        assert_eq!(
            bridged[0].content["m.relates_to"],
            json!({"m.in_reply_to": {"event_id": "$original:example.org"}})
        );
        assert_eq!(bridged[0].content["body"], "yes, still on");

        let missing = convert(
            &text,
            Some(ReplyTarget::Missing {
                sender_name: "Bob".to_owned(),
                preview: Some("are we still on\nfor saturday?".to_owned()),
            }),
        );
        assert_eq!(missing[0].content.get("m.relates_to"), None);
        assert_eq!(
            missing[0].content["body"],
            "> Bob: are we still on\n\nyes, still on"
        );
        assert_eq!(
            missing[0].content["formatted_body"],
            "<blockquote><b>Bob</b>: are we still on</blockquote>yes, still on"
        );
    }

    #[test]
    fn a_like_is_a_heart() {
        let part = one(&message(
            json!({"content_type": "text", "kind": "like", "content": "❤️"}),
        ));
        assert_eq!(part.content["msgtype"], "m.text");
        assert_eq!(part.content["body"], "❤️");
    }

    #[test]
    fn photos_and_videos_name_their_files() {
        let photo = one(&message(json!({"content_type": "media", "attachments": [
            {"type": "image", "url": "https://cdn/p.jpg", "mime_type": "image/jpeg", "width": 1080, "height": 1440}
        ]})));
        assert_eq!(
            photo.content,
            json!({"msgtype": "m.image", "body": "photo.jpg",
                   "info": {"mimetype": "image/jpeg", "w": 1080, "h": 1440}})
        );
        assert_eq!(
            photo.media,
            Some(MediaSource {
                url: "https://cdn/p.jpg".to_owned(),
                thumbnail_url: None,
                filename: "photo.jpg".to_owned(),
                kind: MediaKind::Image
            })
        );

        let video = one(&message(json!({"content_type": "media", "attachments": [
            {"type": "video", "url": "https://cdn/v.mp4", "mime_type": "video/mp4",
             "width": 720, "height": 1280, "duration_ms": 8200, "preview_url": "https://cdn/v.jpg"}
        ]})));
        assert_eq!(
            video.content,
            json!({"msgtype": "m.video", "body": "video.mp4",
                   "info": {"mimetype": "video/mp4", "w": 720, "h": 1280, "duration": 8200}})
        );
        let source = video.media.unwrap();
        assert_eq!(source.kind, MediaKind::Video);
        assert_eq!(source.thumbnail_url.as_deref(), Some("https://cdn/v.jpg"));
    }

    #[test]
    fn voice_messages_carry_duration_waveform_and_the_voice_flag() {
        let voice = one(&message(json!({"content_type": "media", "attachments": [
            {"type": "audio", "url": "https://cdn/a.mp4", "mime_type": "audio/mp4",
             "duration_ms": 4521, "waveform": [0.0, 0.5, 1.0, 1.5]}
        ]})));
        assert_eq!(
            voice.content,
            json!({"msgtype": "m.audio", "body": "voice.m4a",
                   "org.matrix.msc1767.audio": {"duration": 4521, "waveform": [0, 512, 1024, 1024]},
                   "org.matrix.msc3245.voice": {},
                   "info": {"mimetype": "audio/mp4", "duration": 4521}})
        );
        assert_eq!(voice.media.unwrap().kind, MediaKind::Audio);
    }

    #[test]
    fn gifs_are_looping_silent_videos_and_stickers_are_stickers() {
        let gif = one(&message(json!({"content_type": "media", "attachments": [
            {"type": "gif", "url": "https://giphy/200.mp4", "mime_type": "video/mp4", "width": 356, "height": 200}
        ]})));
        assert_eq!(gif.event_type, "m.room.message");
        assert_eq!(
            gif.content,
            json!({"msgtype": "m.video", "body": "animation.mp4",
                   "info": {"mimetype": "video/mp4", "w": 356, "h": 200,
                            "fi.mau.gif": true, "fi.mau.loop": true,
                            "fi.mau.autoplay": true, "fi.mau.no_audio": true}})
        );
        let sticker = one(&message(json!({"content_type": "media", "attachments": [
            {"type": "sticker", "url": "https://giphy/200.webp", "mime_type": "image/webp", "width": 200, "height": 200}
        ]})));
        assert_eq!(sticker.event_type, "m.sticker");
        assert_eq!(
            sticker.content,
            json!({"body": "sticker.webp", "info": {"mimetype": "image/webp", "w": 200, "h": 200}})
        );
        assert_eq!(sticker.media.unwrap().kind, MediaKind::Sticker);
    }

    #[test]
    fn a_reply_with_a_file_quotes_in_its_caption() {
        let parts = convert(
            &message(json!({"content_type": "media", "attachments": [
                {"type": "image", "url": "https://cdn/p.jpg", "mime_type": "image/jpeg"}
            ]})),
            Some(ReplyTarget::Missing {
                sender_name: "Bob".to_owned(),
                preview: None,
            }),
        );
        assert_eq!(parts[0].content["body"], "> Bob: an earlier message");
        assert_eq!(parts[0].content["filename"], "photo.jpg");
    }

    #[test]
    fn shares_link_to_instagram_with_a_preview_picture() {
        let parts = convert(
            &message(json!({"content_type": "share", "kind": "clip", "share": {
                "kind": "reel", "url": "https://www.instagram.com/reel/CODE/", "owner": "someone",
                "caption": "full send", "preview_url": "https://cdn/r.jpg",
                "preview_width": 720, "preview_height": 1280
            }})),
            None,
        );
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].content,
            json!({
                "msgtype": "m.text",
                "m.mentions": {},
                "body": "Shared a reel by @someone: https://www.instagram.com/reel/CODE/\nfull send",
                "format": "org.matrix.custom.html",
                "formatted_body": "Shared a reel by @someone: <a href=\"https://www.instagram.com/reel/CODE/\">https://www.instagram.com/reel/CODE/</a><br><blockquote>full send</blockquote>",
                "com.beeper.linkpreviews": [{
                    "matched_url": "https://www.instagram.com/reel/CODE/",
                    "og:url": "https://www.instagram.com/reel/CODE/",
                    "og:title": "Shared a reel by @someone",
                    "og:description": "full send"
                }]
            })
        );
        assert_eq!(parts[0].media, parts[1].media, "the link preview's image");
        let quoted = convert(
            &message(json!({"content_type": "share", "share": {
                "url": "https://www.instagram.com/p/CODE/", "preview_url": "https://cdn/r.jpg"
            }})),
            Some(ReplyTarget::Missing {
                sender_name: "Bob".to_owned(),
                preview: Some("look".to_owned()),
            }),
        );
        assert_eq!(
            quoted[0].content["body"],
            "> Bob: look\n\nShared a link: https://www.instagram.com/p/CODE/"
        );
        assert_eq!(parts[1].part_id, "preview");
        assert_eq!(
            parts[1].content,
            json!({"msgtype": "m.image", "body": "preview.jpg",
                   "info": {"mimetype": "image/jpeg", "w": 720, "h": 1280}})
        );
        assert_eq!(parts[1].media.as_ref().unwrap().url, "https://cdn/r.jpg");
    }

    #[test]
    fn a_story_reply_keeps_its_words_and_profiles_read_naturally() {
        let parts = convert(
            &message(
                json!({"content_type": "share", "content": "lol @bob_builder", "share": {
                    "kind": "story", "url": "https://www.instagram.com/stories/alice/1/", "owner": "alice"
                }}),
            ),
            None,
        );
        assert_eq!(parts.len(), 1, "no preview picture, no preview part");
        assert_eq!(
            parts[0].content["body"],
            "lol @bob_builder\n\nShared a story by @alice: https://www.instagram.com/stories/alice/1/"
        );
        assert!(parts[0].content["formatted_body"]
            .as_str()
            .unwrap()
            .starts_with("lol <a href=\"https://matrix.to/#/@instagram_42:example.org\">"));
        assert_eq!(
            parts[0].content["m.mentions"],
            json!({"user_ids": ["@instagram_42:example.org"]})
        );

        let profile = convert(
            &message(json!({"content_type": "share", "share": {
                "kind": "profile", "url": "https://www.instagram.com/someone/", "owner": "someone",
                "caption": "Some Creator"
            }})),
            None,
        );
        assert_eq!(
            profile[0].content["body"],
            "Shared the profile of @someone: https://www.instagram.com/someone/\nSome Creator"
        );
    }

    #[test]
    fn locations_have_a_geo_uri() {
        let part = one(&message(json!({"content_type": "location", "location": {
            "latitude": 28.5421, "longitude": -81.3775, "name": "Orlando, Florida", "address": ""
        }})));
        assert_eq!(
            part.content,
            json!({
                "msgtype": "m.location",
                "body": "Orlando, Florida (geo:28.5421,-81.3775)",
                "geo_uri": "geo:28.5421,-81.3775",
                "org.matrix.msc3488.location": {"uri": "geo:28.5421,-81.3775", "description": "Orlando, Florida"}
            })
        );
    }

    #[test]
    fn view_once_media_is_a_notice() {
        let live = one(&message(json!({"content_type": "view_once", "view_once": {
            "present": true, "media_kind": "video", "view_mode": "once"
        }})));
        assert_eq!(
            live.content,
            json!({"msgtype": "m.notice", "body": "Alice sent a view-once video; open Instagram to see it."})
        );
        assert_eq!(live.media, None);
        let gone = one(&message(json!({"content_type": "view_once", "view_once": {
            "present": true, "media_kind": "image", "expired": true
        }})));
        assert_eq!(
            gone.content["body"],
            "Alice sent a view-once photo, which was already viewed or has expired."
        );
    }

    #[test]
    fn action_logs_and_call_events_are_notices_with_their_text() {
        for (kind, text) in [
            ("action_log", "Alice named the group Weekend plans."),
            ("video_call_event", "Video chat ended"),
        ] {
            let part = one(&message(
                json!({"content_type": "notice", "kind": kind, "content": text}),
            ));
            assert_eq!(part.content, json!({"msgtype": "m.notice", "body": text}));
        }
    }

    #[test]
    fn unknown_or_empty_kinds_name_themselves() {
        for fields in [
            json!({"content_type": "unsupported", "kind": "poll_vote"}),
            json!({"content_type": "media", "kind": "poll_vote", "attachments": []}),
            json!({"content_type": "share", "kind": "poll_vote"}),
            json!({"content_type": "text", "kind": "poll_vote", "content": "  "}),
            json!({"kind": "poll_vote"}),
        ] {
            let part = one(&message(fields));
            assert_eq!(
                part.content,
                json!({"msgtype": "m.notice",
                       "body": "Unsupported Instagram message (poll_vote); open Instagram to see it."})
            );
        }
    }

    #[test]
    fn edits_replace_the_main_part() {
        let event_id = owned_event_id!("$original:example.org");
        let new_main = convert(
            &message(json!({"content_type": "text", "content": "see you at 8, @bob_builder"})),
            Some(ReplyTarget::Bridged {
                event_id: owned_event_id!("$quoted:example.org"),
            }),
        )
        .remove(0);
        let edit = edit_content(&new_main, &event_id);
        assert_eq!(edit["msgtype"], "m.text");
        assert_eq!(edit["body"], "* see you at 8, @bob_builder");
        assert!(edit["formatted_body"]
            .as_str()
            .unwrap()
            .starts_with("* see you at 8, <a "));
        assert_eq!(edit["m.mentions"], json!({}));
        assert_eq!(
            edit["m.relates_to"],
            json!({"rel_type": "m.replace", "event_id": "$original:example.org"})
        );
        assert_eq!(edit["m.new_content"]["body"], "see you at 8, @bob_builder");
        assert_eq!(
            edit["m.new_content"]["m.mentions"],
            json!({"user_ids": ["@instagram_42:example.org"]})
        );
        assert_eq!(edit["m.new_content"].get("m.relates_to"), None);
    }
}
