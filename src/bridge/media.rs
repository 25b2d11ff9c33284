//! Media of bridged messages: downloads a converted part's file from
//! Instagram's CDN (plain HTTP, no cookies: the URLs are signed), uploads it
//! to the Matrix media repository as the sending puppet, and fills `url` and
//! `info` (mimetype, size, dimensions, a video's thumbnail) into the part.
//! Files over the size limit become a notice with the link instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ruma::UserId;
use serde_json::{json, Map, Value};

use super::convert::{extension, MediaKind, MediaSource, Part};
use crate::matrix::client::{ClientError, HomeserverClient};

/// How long one download may take, headers and body.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How many recent uploads are remembered.
const RECENT_UPLOADS: usize = 256;
/// Bundled link previews of a text (MSC4095's unstable name, which Beeper shows).
const LINK_PREVIEWS: &str = "com.beeper.linkpreviews";

/// Why a part's media could not be bridged.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The CDN refused the signed URL (403/410): it expired; fetch the item
    /// again for a fresh one.
    #[error("the media URL has expired")]
    Expired,
    /// Worth retrying later: network trouble, a timeout, 429 or 5xx.
    #[error("media could not be bridged for now: {0}")]
    Transient(String),
    /// Retrying will not help: the file is gone or the homeserver refuses it.
    #[error("media cannot be bridged: {0}")]
    Permanent(String),
}

/// Downloads and uploads message media.
#[derive(Debug, Clone)]
pub struct MediaBridge {
    http: reqwest::Client,
    max_bytes: u64,
    /// Recent uploads by source URL: a picture used twice (a share's link
    /// preview and its preview part) is transferred once.
    recent: Arc<Mutex<HashMap<String, Uploaded>>>,
}

/// A downloaded file.
struct Download {
    bytes: Vec<u8>,
    mimetype: String,
}

/// What a download gave: the file, or the news that it is too large.
enum Fetched {
    File(Download),
    TooLarge { size: Option<u64> },
}

/// A file in the media repository.
#[derive(Debug, Clone)]
struct Uploaded {
    mxc: String,
    mimetype: String,
    size: usize,
    dimensions: Option<(u64, u64)>,
}

/// What a transfer gave: the uploaded file, or the news that it is too large.
enum Transfer {
    Uploaded(Uploaded),
    TooLarge { size: Option<u64> },
}

impl MediaBridge {
    /// A bridge for files of at most `max_bytes` bytes.
    pub fn new(max_bytes: u64) -> MediaBridge {
        let http = reqwest::Client::builder()
            .timeout(DOWNLOAD_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            // Building a client without custom TLS roots or proxies only fails
            // when the TLS backend cannot start at all.
            .unwrap_or_default();
        MediaBridge {
            http,
            max_bytes,
            recent: Arc::default(),
        }
    }

    /// Downloads `part.media`, uploads it (as `as_user`), fills url/info
    /// (+thumbnail) into `part.content`; over the size limit the part becomes
    /// a notice with the link. A part without media is left alone. For a text
    /// with a link preview (a share), the media is the preview's image: it
    /// goes into `com.beeper.linkpreviews`, and the text stays as it is when
    /// the image cannot be had.
    pub async fn fill(
        &self,
        client: &HomeserverClient,
        as_user: &UserId,
        part: &mut Part,
    ) -> Result<(), MediaError> {
        let Some(source) = part.media.clone() else {
            return Ok(());
        };
        if part.content.get(LINK_PREVIEWS).is_some() {
            return self.fill_link_preview(client, as_user, part, &source).await;
        }
        let expected = part
            .content
            .get("info")
            .and_then(|info| info.get("mimetype"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let uploaded = match self
            .transfer(client, as_user, &source, expected.as_deref())
            .await?
        {
            Transfer::Uploaded(uploaded) => uploaded,
            Transfer::TooLarge { size } => {
                self.too_large(part, &source, size);
                return Ok(());
            }
        };
        let filename = renamed(&source.filename, &uploaded.mimetype);
        let Some(content) = part.content.as_object_mut() else {
            return Err(MediaError::Permanent(
                "the converted content is not an object".to_owned(),
            ));
        };
        if content.get("body").and_then(Value::as_str) == Some(source.filename.as_str()) {
            content.insert("body".into(), filename.clone().into());
        }
        if content.contains_key("filename") {
            content.insert("filename".into(), filename.into());
        }
        content.insert("url".into(), uploaded.mxc.clone().into());
        let info = info_of(content);
        info.insert("mimetype".into(), uploaded.mimetype.into());
        info.insert("size".into(), uploaded.size.into());
        if let Some((width, height)) = uploaded.dimensions {
            info.insert("w".into(), width.into());
            info.insert("h".into(), height.into());
        }
        if let Some(thumbnail) = &source.thumbnail_url {
            self.fill_thumbnail(client, as_user, thumbnail, info)
                .await?;
        }
        Ok(())
    }

    /// The image of a text's link preview: `og:image` and its size and type.
    async fn fill_link_preview(
        &self,
        client: &HomeserverClient,
        as_user: &UserId,
        part: &mut Part,
        source: &MediaSource,
    ) -> Result<(), MediaError> {
        let uploaded = match self.transfer(client, as_user, source, None).await {
            Ok(Transfer::Uploaded(uploaded)) => uploaded,
            Ok(Transfer::TooLarge { .. }) => return Ok(()),
            Err(MediaError::Expired) => return Err(MediaError::Expired),
            Err(err) => {
                tracing::warn!(error = %err, "a link preview image could not be bridged");
                return Ok(());
            }
        };
        let Some(preview) = part
            .content
            .get_mut(LINK_PREVIEWS)
            .and_then(|previews| previews.get_mut(0))
            .and_then(Value::as_object_mut)
        else {
            return Ok(());
        };
        preview.insert("og:image".into(), uploaded.mxc.into());
        preview.insert("og:image:type".into(), uploaded.mimetype.into());
        preview.insert("matrix:image:size".into(), uploaded.size.into());
        if let Some((width, height)) = uploaded.dimensions {
            preview.insert("og:image:width".into(), width.into());
            preview.insert("og:image:height".into(), height.into());
        }
        Ok(())
    }

    /// Uploads a video's preview picture as its thumbnail. A thumbnail that
    /// cannot be had leaves the video without one, unless its URL expired
    /// (then the whole item is fetched again anyway).
    async fn fill_thumbnail(
        &self,
        client: &HomeserverClient,
        as_user: &UserId,
        url: &str,
        info: &mut Map<String, Value>,
    ) -> Result<(), MediaError> {
        let source = MediaSource {
            url: url.to_owned(),
            thumbnail_url: None,
            filename: "thumbnail.jpg".to_owned(),
            kind: MediaKind::Image,
        };
        let uploaded = match self.transfer(client, as_user, &source, None).await {
            Ok(Transfer::Uploaded(uploaded)) => uploaded,
            Ok(Transfer::TooLarge { .. }) => return Ok(()),
            Err(MediaError::Expired) => return Err(MediaError::Expired),
            Err(err) => {
                tracing::warn!(error = %err, "a video thumbnail could not be bridged");
                return Ok(());
            }
        };
        let mut thumbnail_info = json!({"mimetype": uploaded.mimetype, "size": uploaded.size});
        if let Some((width, height)) = uploaded.dimensions {
            thumbnail_info["w"] = width.into();
            thumbnail_info["h"] = height.into();
        }
        info.insert("thumbnail_url".into(), uploaded.mxc.into());
        info.insert("thumbnail_info".into(), thumbnail_info);
        Ok(())
    }

    /// Downloads `source` and uploads it, or finds it uploaded recently.
    /// `expected` is the type conversion assumed, for files that do not say.
    async fn transfer(
        &self,
        client: &HomeserverClient,
        as_user: &UserId,
        source: &MediaSource,
        expected: Option<&str>,
    ) -> Result<Transfer, MediaError> {
        if let Some(uploaded) = self.recently_uploaded(&source.url) {
            return Ok(Transfer::Uploaded(uploaded));
        }
        let download = match self.download(&source.url).await? {
            Fetched::File(download) => download,
            Fetched::TooLarge { size } => return Ok(Transfer::TooLarge { size }),
        };
        let mimetype = settle_mimetype(&download, source.kind, expected);
        let filename = renamed(&source.filename, &mimetype);
        let size = download.bytes.len();
        let dimensions = image_dimensions(&download.bytes);
        let mxc = upload(client, as_user, download.bytes, &mimetype, &filename).await?;
        let uploaded = Uploaded {
            mxc: mxc.to_string(),
            mimetype,
            size,
            dimensions,
        };
        self.remember(&source.url, &uploaded);
        Ok(Transfer::Uploaded(uploaded))
    }

    fn recently_uploaded(&self, url: &str) -> Option<Uploaded> {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
            .cloned()
    }

    fn remember(&self, url: &str, uploaded: &Uploaded) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the parts of one message share files: a small memory is enough.
        if recent.len() >= RECENT_UPLOADS {
            recent.clear();
        }
        recent.insert(url.to_owned(), uploaded.clone());
    }

    /// GETs `url`, reading at most `max_bytes`.
    async fn download(&self, url: &str) -> Result<Fetched, MediaError> {
        let host = host_of(url);
        let mut response = self.http.get(url).send().await.map_err(|err| {
            MediaError::Transient(format!("cannot download from {host}: {}", without_url(err)))
        })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            403 | 410 => return Err(MediaError::Expired),
            408 | 429 | 500..=599 => {
                return Err(MediaError::Transient(format!(
                    "{host} answered HTTP {status}"
                )))
            }
            _ => {
                return Err(MediaError::Permanent(format!(
                    "{host} answered HTTP {status}"
                )))
            }
        }
        let announced = response.content_length();
        if announced.is_some_and(|length| length > self.max_bytes) {
            return Ok(Fetched::TooLarge { size: announced });
        }
        let mimetype = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(announced.unwrap_or(0).min(self.max_bytes) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|err| {
            MediaError::Transient(format!(
                "download from {host} broke off: {}",
                without_url(err)
            ))
        })? {
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Ok(Fetched::TooLarge { size: None });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::File(Download { bytes, mimetype }))
    }

    /// Turns `part` into a notice that links to the file.
    fn too_large(&self, part: &mut Part, source: &MediaSource, size: Option<u64>) {
        let what = match source.kind {
            MediaKind::Image | MediaKind::Sticker => "photo",
            MediaKind::Video | MediaKind::Gif => "video",
            MediaKind::Audio => "voice message",
        };
        let limit = human_size(self.max_bytes);
        let body = match size {
            Some(size) => format!(
                "This {what} ({}) is larger than the bridge's limit of {limit}: {}",
                human_size(size),
                source.url
            ),
            None => format!(
                "This {what} is larger than the bridge's limit of {limit}: {}",
                source.url
            ),
        };
        let mut content = json!({"msgtype": "m.notice", "body": body});
        if let Some(relates_to) = part.content.get("m.relates_to") {
            content["m.relates_to"] = relates_to.clone();
        }
        part.event_type = "m.room.message";
        part.content = content;
    }
}

async fn upload(
    client: &HomeserverClient,
    as_user: &UserId,
    bytes: Vec<u8>,
    mimetype: &str,
    filename: &str,
) -> Result<ruma::OwnedMxcUri, MediaError> {
    client
        .upload(bytes, Some(mimetype), Some(filename), Some(as_user))
        .await
        .map_err(|err| match &err {
            ClientError::Unreachable { .. } => MediaError::Transient(err.to_string()),
            ClientError::Matrix { status, .. } if *status == 429 || *status >= 500 => {
                MediaError::Transient(err.to_string())
            }
            _ => MediaError::Permanent(err.to_string()),
        })
}

/// The part's `info` object, created when missing.
fn info_of(content: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let info = content.entry("info").or_insert_with(|| json!({}));
    if !info.is_object() {
        *info = json!({});
    }
    info.as_object_mut().expect("info was just made an object")
}

/// The file's type: what its bytes say when they say it, else the server's
/// `Content-Type` unless it is generic, else what conversion expected.
fn settle_mimetype(download: &Download, kind: MediaKind, expected: Option<&str>) -> String {
    if let Some(sniffed) = sniff(&download.bytes) {
        // Voice notes and videos share the MP4 container: the kind decides.
        if sniffed == "video/mp4" && kind == MediaKind::Audio {
            return "audio/mp4".to_owned();
        }
        return sniffed.to_owned();
    }
    let generic = ["", "application/octet-stream", "binary/octet-stream"];
    if !generic.contains(&download.mimetype.as_str()) {
        return download.mimetype.clone();
    }
    expected.unwrap_or("application/octet-stream").to_owned()
}

/// The MIME type of common media files from their first bytes.
pub(crate) fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if starts(b"\x1a\x45\xdf\xa3") {
        Some("video/webm")
    } else if starts(b"ID3") {
        Some("audio/mpeg")
    } else if bytes.get(4..8) == Some(b"ftyp") {
        match bytes.get(8..12) {
            Some(b"M4A " | b"M4B ") => Some("audio/mp4"),
            Some(b"heic" | b"heix" | b"mif1") => Some("image/heic"),
            Some(b"avif") => Some("image/avif"),
            _ => Some("video/mp4"),
        }
    } else {
        None
    }
}

/// Width and height of an image file.
fn image_dimensions(bytes: &[u8]) -> Option<(u64, u64)> {
    let size = imagesize::blob_size(bytes).ok()?;
    Some((size.width as u64, size.height as u64))
}

/// `filename` with the extension of `mimetype` (a PNG served for a `.jpg`).
pub(crate) fn renamed(filename: &str, mimetype: &str) -> String {
    let stem = filename.rsplit_once('.').map_or(filename, |(stem, _)| stem);
    match extension(mimetype) {
        "bin" => filename.to_owned(),
        extension => format!("{stem}.{extension}"),
    }
}

/// The host of a URL, for errors: the rest of a signed URL is a credential.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| "the media server".to_owned())
}

/// A reqwest error without the URL it carries.
fn without_url(err: reqwest::Error) -> String {
    err.without_url().to_string()
}

/// A size for people: `2.5 MB`, `120 KB`, `64 bytes`.
pub(crate) fn human_size(bytes: u64) -> String {
    match bytes {
        0..=999 => format!("{bytes} bytes"),
        1_000..=999_999 => format!("{} KB", bytes / 1_000),
        _ => format!("{:.1} MB", bytes as f64 / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_media() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), Some("video/mp4"));
        assert_eq!(sniff(b"\0\0\0\x18ftypM4A "), Some("audio/mp4"));
        assert_eq!(sniff(b"\x1a\x45\xdf\xa3\x9f"), Some("video/webm"));
        assert_eq!(sniff(b"ID3\x04\0"), Some("audio/mpeg"));
        assert_eq!(sniff(b"hello"), None);
    }

    #[test]
    fn renaming_follows_the_real_type() {
        assert_eq!(renamed("photo.jpg", "image/png"), "photo.png");
        assert_eq!(renamed("voice.m4a", "audio/mp4"), "voice.m4a");
        assert_eq!(renamed("file.xyz", "application/x-unknown"), "file.xyz");
    }

    #[test]
    fn errors_name_the_host_only() {
        assert_eq!(
            host_of("https://scontent.cdninstagram.com/v/x.jpg?oh=SECRET&oe=1"),
            "scontent.cdninstagram.com"
        );
        assert_eq!(human_size(2_500_000), "2.5 MB");
        assert_eq!(human_size(120_400), "120 KB");
        assert_eq!(human_size(64), "64 bytes");
    }
}
