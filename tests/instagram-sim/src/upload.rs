//! Uploads, as the app makes them today (WRITE-FLOWS.md §2 "Current flow"): the raw bytes go
//! to the upload host (`rupload.facebook.com/messenger_image|messenger_gif|messenger_video|
//! messenger_audio/{entity}`) with a bearer token of a live session, which answers a
//! `media_id`; a broadcast (`photo_attachment/`, `video_attachment/`, `voice_attachment/`)
//! then sends it as `attachment_fbid`. Every upload is checked as Instagram would: the
//! headers must describe the body, images must decode, videos and audio must be real
//! containers, and a `media_id` belongs to its uploader and its kind. Videos and voice clips
//! are "Transcode not finished yet." for the first broadcasts after the upload.

use std::io::Cursor;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use crate::api::respond;
use crate::error::SimError;
use crate::gate::RequestFacts;
use crate::media::{self, Blob};
use crate::render;
use crate::world::{ItemKind, World};
use crate::SharedWorld;

/// What an upload holds, from the path it was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadKind {
    /// `messenger_image` (JPEG or PNG) and `messenger_gif` (GIF): sent by `photo_attachment/`.
    Image,
    /// `messenger_video` (MP4/MOV): sent by `video_attachment/`.
    Video,
    /// `messenger_audio` (M4A or Ogg): sent by `voice_attachment/`.
    Audio,
}

impl UploadKind {
    fn name(self) -> &'static str {
        match self {
            UploadKind::Image => "photo",
            UploadKind::Video => "video",
            UploadKind::Audio => "voice clip",
        }
    }

    /// The kind a broadcast sends (`photo_attachment`, ...).
    pub fn for_broadcast(kind: &str) -> Option<UploadKind> {
        match kind {
            "photo_attachment" => Some(UploadKind::Image),
            "video_attachment" => Some(UploadKind::Video),
            "voice_attachment" => Some(UploadKind::Audio),
            _ => None,
        }
    }
}

/// One accepted upload, by `media_id`.
pub(crate) struct UploadRecord {
    pub blob_name: String,
    pub kind: UploadKind,
    /// The account whose session uploaded it; nobody else can send it.
    pub owner: u64,
    /// Broadcasts still to be answered "Transcode not finished yet.".
    pub transcoding: u32,
}

impl World {
    /// Stores an accepted upload; returns its `media_id`.
    pub(crate) fn store_upload(&mut self, owner: u64, kind: UploadKind, blob: Blob) -> u64 {
        let media_id = 17_900_000_000_000_000 + self.next_serial();
        let blob_name = format!("{media_id}.{}", media::extension_for(&blob.content_type));
        self.blobs.insert(blob_name.clone(), blob);
        let transcoding = match kind {
            UploadKind::Image => 0,
            UploadKind::Video | UploadKind::Audio => self.settings.transcode_attempts,
        };
        self.uploads.insert(
            media_id.to_string(),
            UploadRecord {
                blob_name,
                kind,
                owner,
                transcoding,
            },
        );
        media_id
    }

    /// The item kind a broadcast of `attachment_fbid` by `from` makes, built around the
    /// uploaded bytes. Someone else's upload is not found; an upload of another kind is
    /// refused; a video or voice clip still transcoding answers 202.
    pub(crate) fn attachment_kind(
        &mut self,
        from: u64,
        attachment_fbid: &str,
        wanted: UploadKind,
        voice: Option<(Value, Value)>,
    ) -> Result<ItemKind, SimError> {
        let not_found = || SimError::UploadNotFound {
            attachment_fbid: attachment_fbid.into(),
        };
        let upload = self
            .uploads
            .get_mut(attachment_fbid.trim())
            .filter(|upload| upload.owner == from)
            .ok_or_else(not_found)?;
        if upload.kind != wanted {
            return Err(SimError::WrongUploadKind {
                attachment_fbid: attachment_fbid.into(),
                wanted: wanted.name(),
            });
        }
        if upload.transcoding > 0 {
            upload.transcoding -= 1;
            return Err(SimError::TranscodeNotFinished {
                attachment_fbid: attachment_fbid.into(),
            });
        }
        let blob_name = upload.blob_name.clone();
        let media_pk = 3_632_500_000_000_000_000u64 + self.next_serial();
        let uploaded = self.media_url(&blob_name);
        match wanted {
            UploadKind::Audio => {
                let (waveform, frequency) = voice.unwrap_or((json!([]), json!(10)));
                let mut payload = render::item_payload_template("voice_media", "voice_media");
                payload["media"]["audio"]["waveform_sampling_frequency_hz"] = frequency;
                let payload =
                    self.voice_payload(payload, from, media_pk, uploaded, Some(waveform), None)?;
                Ok(json!({"item_type": "voice_media", "voice_media": payload}))
            }
            UploadKind::Video => {
                let (width, height) = media::VIDEO_SIZE;
                let thumb = self.store_blob(
                    format!("{media_pk}_thumb.png"),
                    media::png(width, height, media_pk),
                );
                let payload = crate::world::media_payload(
                    render::item_payload_template("media_video", "media"),
                    &format!("{media_pk}_{from}"),
                    &[(thumb, width, height)],
                    Some((uploaded, (width, height), media::VIDEO_DURATION_MS)),
                );
                Ok(json!({"item_type": "media", "media_type": 2, "media": payload}))
            }
            UploadKind::Image => {
                let (width, height) = self
                    .blobs
                    .get(&blob_name)
                    .and_then(|blob| blob.width.zip(blob.height))
                    .unwrap_or((1080, 1080));
                let payload = crate::world::media_payload(
                    render::item_payload_template("media_image", "media"),
                    &format!("{media_pk}_{from}"),
                    &[(uploaded, width, height)],
                    None,
                );
                Ok(json!({"item_type": "media", "media_type": 1, "media": payload}))
            }
        }
    }
}

/// The account of a live session named by `authorization: Bearer IGT:2:<base64 JSON
/// {ds_user_id, sessionid}>` (the upload host takes no cookies).
fn bearer_owner(world: &World, headers: &HeaderMap) -> Result<u64, SimError> {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer IGT:2:"))
        .ok_or(SimError::LoginRequired)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| SimError::LoginRequired)?;
    let fields: Value = serde_json::from_slice(&decoded).map_err(|_| SimError::LoginRequired)?;
    let session = fields["sessionid"]
        .as_str()
        .and_then(|sessionid| world.sessions.get(sessionid))
        .ok_or(SimError::LoginRequired)?;
    let ds_user_id = match &fields["ds_user_id"] {
        Value::String(text) => text.parse().ok(),
        other => other.as_u64(),
    };
    if ds_user_id != Some(session.pk) {
        return Err(SimError::LoginRequired);
    }
    Ok(session.pk)
}

fn refused(message: impl Into<String>) -> SimError {
    SimError::UploadRefused {
        message: message.into(),
    }
}

/// The headers every upload must carry, checked against the path and the body.
fn check_upload_headers(
    headers: &HeaderMap,
    entity: &str,
    body: &[u8],
) -> Result<String, SimError> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if header("offset") != Some("0") {
        return Err(refused("offset must be 0"));
    }
    if header("x-entity-name") != Some(entity) {
        return Err(refused("x-entity-name does not match the upload"));
    }
    let length = header("x-entity-length").and_then(|text| text.parse::<usize>().ok());
    if length != Some(body.len()) {
        return Err(refused("x-entity-length does not match the body"));
    }
    let entity_type = header("x-entity-type")
        .filter(|value| !value.is_empty())
        .ok_or_else(|| refused("x-entity-type is missing"))?;
    Ok(entity_type.to_owned())
}

/// Decodes an image fully (fake bytes fail); returns its dimensions.
fn check_image(bytes: &[u8], gif: bool) -> Result<(u32, u32), SimError> {
    let format = image::guess_format(bytes).map_err(|_| refused("not an image"))?;
    let allowed = if gif {
        format == image::ImageFormat::Gif
    } else {
        matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Png)
    };
    if !allowed {
        return Err(refused("unsupported image format"));
    }
    let decoded = image::ImageReader::with_format(Cursor::new(bytes), format)
        .decode()
        .map_err(|_| refused("the image could not be decoded"))?;
    Ok((decoded.width(), decoded.height()))
}

/// An ISO base media file (MP4, MOV, M4A): top-level boxes that fill the file exactly,
/// `ftyp` first and a `moov` among them.
fn is_iso_media(bytes: &[u8]) -> bool {
    let mut offset = 0usize;
    let mut kinds = Vec::new();
    while offset < bytes.len() {
        let Some(header) = bytes.get(offset..offset + 8) else {
            return false;
        };
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let size = match size {
            0 => bytes.len() - offset,
            1 => match bytes.get(offset + 8..offset + 16) {
                Some(large) => u64::from_be_bytes(large.try_into().unwrap_or([0; 8])) as usize,
                None => return false,
            },
            size => size,
        };
        if size < 8 || offset + size > bytes.len() {
            return false;
        }
        kinds.push([header[4], header[5], header[6], header[7]]);
        offset += size;
    }
    kinds.first() == Some(b"ftyp") && kinds.contains(b"moov")
}

/// An Ogg stream: pages starting with `OggS`, version 0.
fn is_ogg(bytes: &[u8]) -> bool {
    bytes.len() > 27 && bytes.starts_with(b"OggS") && bytes[4] == 0
}

/// `POST /messenger_image|messenger_gif|messenger_video|messenger_audio/{entity}`: checks
/// and stores the bytes; answers `{"media_id": <int>, "id": 0}`. `GET` on a video or audio
/// upload answers `{"offset": 0}` (where a resumed upload would start).
pub(crate) async fn messenger_upload(
    State(shared): State<SharedWorld>,
    Path(entity): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host_path = uri.path().trim_start_matches('/');
    let (kind, gif) = match host_path.split('/').next().unwrap_or("") {
        "messenger_image" => (UploadKind::Image, false),
        "messenger_gif" => (UploadKind::Image, true),
        "messenger_video" => (UploadKind::Video, false),
        _ => (UploadKind::Audio, false),
    };
    let mut facts = RequestFacts::default();
    let result = (|| {
        let mut world = crate::lock(&shared);
        let owner = bearer_owner(&world, &headers)?;
        facts.pk = Some(owner);
        if method == Method::GET {
            return Ok(json!({"offset": 0}));
        }
        let entity_type = check_upload_headers(&headers, &entity, &body)?;
        let mut blob = Blob::raw(entity_type.clone(), body.to_vec());
        match kind {
            UploadKind::Image => {
                let (width, height) = check_image(&body, gif)?;
                blob.width = Some(width);
                blob.height = Some(height);
            }
            UploadKind::Video => {
                if !entity_type.starts_with("video/") || !is_iso_media(&body) {
                    return Err(refused("not an MP4 video"));
                }
            }
            UploadKind::Audio => {
                if !entity_type.starts_with("audio/") || !(is_iso_media(&body) || is_ogg(&body)) {
                    return Err(refused("not an M4A or Ogg audio clip"));
                }
            }
        }
        let media_id = world.store_upload(owner, kind, blob);
        Ok(json!({"media_id": media_id, "id": 0}))
    })();
    respond(result, facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_media_needs_boxes_that_fill_the_file() {
        let video = media::video(1).bytes;
        assert!(is_iso_media(&video));
        assert!(is_iso_media(&media::voice(1).bytes));
        assert!(!is_iso_media(&video[..video.len() - 3]), "cut short");
        let mut fake = b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00".to_vec();
        assert!(!is_iso_media(&fake), "no moov");
        fake.extend_from_slice(b"garbage!");
        assert!(!is_iso_media(&fake));
        assert!(!is_iso_media(b"\x00\x00\x00\x08free"));
    }

    #[test]
    fn images_must_decode() {
        assert_eq!(
            check_image(&media::png(5, 3, 1).bytes, false).unwrap(),
            (5, 3)
        );
        assert_eq!(
            check_image(&media::gif(1).bytes, true).unwrap(),
            media::GIF_SIZE
        );
        assert!(
            check_image(&media::gif(1).bytes, false).is_err(),
            "a GIF goes to messenger_gif"
        );
        let mut broken = media::png(5, 3, 1).bytes;
        broken.truncate(40);
        assert!(check_image(&broken, false).is_err());
        assert!(check_image(b"\xff\xd8\xff\xe0 not really a jpeg", false).is_err());
    }
}
