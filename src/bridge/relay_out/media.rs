//! Matrix media to Instagram: which media events can be sent
//! ([`classify`]: `m.image`, `m.video`, `m.audio`, `m.sticker`), and the send
//! itself ([`send_media`]): the file is downloaded from the media repository
//! with authenticated media, held to Instagram's limits, converted where
//! Instagram would refuse it (still pictures to JPEG) and sent with the connector's
//! typed upload-and-send calls. What cannot be sent is refused with a reason
//! the user reads in the room.

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use image::{AnimationDecoder, DynamicImage, ImageFormat, Rgba, RgbaImage};
use ruma::events::room::message::{FormattedBody, MessageType, Relation};
use ruma::events::room::MediaSource;
use ruma::events::sticker::StickerMediaSource;
use ruma::events::AnyMessageLikeEventContent;
use ruma::{OwnedMxcUri, UInt};
use serde::{Deserialize, Serialize};

use super::outbox_worker::{sending_connector, SendFailure};
use super::transcode::{self, Target};
use crate::bridge::media::{human_size, renamed, sniff};
use crate::bridge::Bridge;
use crate::connector::auth::Credentials;
use crate::connector::http::FileData;
use crate::connector::session::ConnectorError;
use crate::connector::typed::MediaKind as SendKind;
use crate::matrix::client::ClientError;
use crate::model::Message;
use crate::store::{LoginRecord, PortalRecord, StoreError};

/// The largest photo Instagram DMs take: 8 MB, and 25 MB for videos and
/// voice messages (mautrix-meta `pkg/connector/capabilities.go`,
/// `MaxImageSize` and `MaxFileSize`, the limits its Instagram mode enforces).
const PHOTO_MAX_BYTES: u64 = 8_000_000;
const VIDEO_MAX_BYTES: u64 = 25_000_000;
const VOICE_MAX_BYTES: u64 = 25_000_000;
/// Voice messages are at most a minute long (Instagram's announcement of
/// voice messages in Direct, December 2018: "up to one minute").
const VOICE_MAX_DURATION: Duration = Duration::from_secs(60);
/// The quality of pictures converted to JPEG (Instagram recompresses them anyway).
const JPEG_QUALITY: u8 = 90;
/// The largest amplitude of a Matrix waveform (MSC1767 audio, MSC3245 voice):
/// amplitudes run 0..=1024, Instagram's 0..=1.
const MATRIX_MAX_AMPLITUDE: u64 = 1024;

/// What kind of media event a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    /// An `m.sticker` event: sent as a photo.
    Sticker,
    Video,
    /// An `m.audio` with the voice flag (`org.matrix.msc3245.voice`).
    Voice,
    /// An `m.audio` without it: Instagram DMs take audio only as voice
    /// messages, so it is sent as one.
    Audio,
}

impl MediaKind {
    /// What the user calls it, in refusals.
    fn noun(self) -> &'static str {
        match self {
            MediaKind::Image => "photo",
            MediaKind::Sticker => "sticker",
            MediaKind::Video => "video",
            MediaKind::Voice | MediaKind::Audio => "voice message",
        }
    }
}

/// A media event to send, as stored in the outbox (the file itself is
/// fetched when the row is carried out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMedia {
    /// (`kind` in the outbox payload is the [`super::Outgoing`] tag.)
    #[serde(rename = "media_kind")]
    pub kind: MediaKind,
    pub mxc: OwnedMxcUri,
    /// The type the event declares (the bytes decide in the end).
    pub mimetype: Option<String>,
    /// The size the event declares, in bytes.
    pub size: Option<u64>,
    pub file_name: String,
    pub duration_ms: Option<u64>,
    /// A voice message's waveform, Matrix amplitudes (0 to 1024); sent as
    /// Instagram's ([`instagram_waveform`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waveform: Vec<u16>,
    /// The event's caption as plain Instagram text: Instagram's direct
    /// messages have none, so it is sent as a text right after the file
    /// (the worker turns the row into that text once the file is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

/// Why a media send failed. The worker treats these variants as it treats
/// the other outbox errors.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Instagram (or the way to it) failed; the worker decides whether that
    /// is transient, ambiguous or permanent.
    #[error("{0}")]
    Instagram(ConnectorError),
    /// The bridge cannot carry this; the text is the reason the user reads.
    #[error("{0}")]
    Refused(String),
    /// The homeserver failed (the download); retried.
    #[error("the homeserver failed: {0}")]
    Matrix(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MediaError> for SendFailure {
    fn from(error: MediaError) -> SendFailure {
        match error {
            MediaError::Instagram(error) => SendFailure::Instagram(error),
            MediaError::Refused(reason) => SendFailure::Refused(reason),
            MediaError::Matrix(error) => SendFailure::Matrix(error),
            MediaError::Store(error) => SendFailure::Store(error),
        }
    }
}

/// The media to send for a media event: `Ok(None)` for events that are not
/// photos, videos, voice messages or stickers (texts, `m.file`, edits), `Err`
/// with the reason for one the bridge cannot send.
pub fn classify(content: &AnyMessageLikeEventContent) -> Result<Option<OutgoingMedia>, String> {
    match content {
        AnyMessageLikeEventContent::RoomMessage(message) => {
            // An edit's new content is the changes' business, not a new file.
            if matches!(message.relates_to, Some(Relation::Replacement(_))) {
                return Ok(None);
            }
            classify_message(&message.msgtype)
        }
        AnyMessageLikeEventContent::Sticker(sticker) => {
            let mxc = match &sticker.source {
                StickerMediaSource::Plain(mxc) => mxc.clone(),
                _ => return Err(encrypted(MediaKind::Sticker)),
            };
            let info = &sticker.info;
            let media = OutgoingMedia {
                kind: MediaKind::Sticker,
                mxc,
                mimetype: info.mimetype.clone(),
                size: info.size.map(u64::from),
                // A sticker's body describes it; it is no file name.
                file_name: "sticker".to_owned(),
                duration_ms: None,
                waveform: Vec::new(),
                caption: None,
            };
            checked(media).map(Some)
        }
        _ => Ok(None),
    }
}

fn classify_message(message: &MessageType) -> Result<Option<OutgoingMedia>, String> {
    let media = match message {
        MessageType::Image(image) => {
            let info = image.info.as_deref();
            OutgoingMedia {
                kind: MediaKind::Image,
                mxc: plain_source(&image.source, MediaKind::Image)?,
                mimetype: info.and_then(|info| info.mimetype.clone()),
                size: info.and_then(|info| info.size).map(u64::from),
                file_name: file_name(image.filename.as_deref(), &image.body, "photo"),
                duration_ms: None,
                waveform: Vec::new(),
                caption: None,
            }
        }
        MessageType::Video(video) => {
            let info = video.info.as_deref();
            OutgoingMedia {
                kind: MediaKind::Video,
                mxc: plain_source(&video.source, MediaKind::Video)?,
                mimetype: info.and_then(|info| info.mimetype.clone()),
                size: info.and_then(|info| info.size).map(u64::from),
                file_name: file_name(video.filename.as_deref(), &video.body, "video"),
                duration_ms: info.and_then(|info| info.duration).map(millis),
                waveform: Vec::new(),
                caption: None,
            }
        }
        MessageType::Audio(audio) => {
            let kind = if audio.voice.is_some() {
                MediaKind::Voice
            } else {
                MediaKind::Audio
            };
            let info = audio.info.as_deref();
            let details = audio.audio.as_ref();
            let waveform = details
                .map(|details| {
                    details
                        .waveform
                        .iter()
                        .map(|amplitude| matrix_amplitude(amplitude.get()))
                        .collect()
                })
                .unwrap_or_default();
            OutgoingMedia {
                kind,
                mxc: plain_source(&audio.source, kind)?,
                mimetype: info.and_then(|info| info.mimetype.clone()),
                size: info.and_then(|info| info.size).map(u64::from),
                file_name: file_name(audio.filename.as_deref(), &audio.body, "voice"),
                duration_ms: details
                    .map(|details| details.duration)
                    .or_else(|| info.and_then(|info| info.duration))
                    .map(millis),
                waveform,
                caption: None,
            }
        }
        _ => return Ok(None),
    };
    checked(media).map(Some)
}

/// Refuses what the event alone shows Instagram would not take.
fn checked(media: OutgoingMedia) -> Result<OutgoingMedia, String> {
    if !media.mxc.is_valid() {
        return Err(format!(
            "This {} has no valid mxc:// address, so the bridge cannot fetch it.",
            media.kind.noun()
        ));
    }
    let limits = Limits::of(media.kind);
    if let Some(size) = media.size {
        limits.check_size(media.kind, size)?;
    }
    if let Some(duration) = media.duration_ms {
        limits.check_duration(media.kind, Duration::from_millis(duration))?;
    }
    Ok(media)
}

fn plain_source(source: &MediaSource, kind: MediaKind) -> Result<OwnedMxcUri, String> {
    match source {
        MediaSource::Plain(mxc) => Ok(mxc.clone()),
        MediaSource::Encrypted(_) => Err(encrypted(kind)),
    }
}

fn encrypted(kind: MediaKind) -> String {
    format!(
        "This {} is end-to-end encrypted, and the bridge cannot decrypt it.",
        kind.noun()
    )
}

/// The caption of a photo, video or voice message, in Matrix v1.10's form: a
/// `body` beside a `filename` that differs from it. Its plain and HTML forms.
pub fn caption(message: &MessageType) -> Option<(&str, Option<&FormattedBody>)> {
    let (body, formatted, filename) = match message {
        MessageType::Image(image) => (&image.body, &image.formatted, &image.filename),
        MessageType::Video(video) => (&video.body, &video.formatted, &video.filename),
        MessageType::Audio(audio) => (&audio.body, &audio.formatted, &audio.filename),
        _ => return None,
    };
    let filename = filename.as_deref()?.trim();
    let body = body.trim();
    (!body.is_empty() && body != filename).then_some((body, formatted.as_ref()))
}

/// The file name: `filename` when the body is a caption, else the body (which
/// then names the file), else `fallback`.
fn file_name(filename: Option<&str>, body: &str, fallback: &str) -> String {
    let name = filename.unwrap_or(body).trim();
    if name.is_empty() {
        fallback.to_owned()
    } else {
        name.to_owned()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// An amplitude of a Matrix waveform, held to its range (0..=1024).
fn matrix_amplitude(amplitude: UInt) -> u16 {
    u16::try_from(u64::from(amplitude).min(MATRIX_MAX_AMPLITUDE)).expect("at most 1024 fits")
}

/// A Matrix waveform (0..=1024) in Instagram's amplitudes (0..=1).
pub fn instagram_waveform(amplitudes: &[u16]) -> Vec<f64> {
    amplitudes
        .iter()
        .map(|amplitude| (f64::from(*amplitude) / MATRIX_MAX_AMPLITUDE as f64).min(1.0))
        .collect()
}

/// Instagram's limits for one kind of media.
struct Limits {
    max_bytes: u64,
    max_duration: Option<Duration>,
}

impl Limits {
    fn of(kind: MediaKind) -> Limits {
        match kind {
            MediaKind::Image | MediaKind::Sticker => Limits {
                max_bytes: PHOTO_MAX_BYTES,
                max_duration: None,
            },
            MediaKind::Video => Limits {
                max_bytes: VIDEO_MAX_BYTES,
                max_duration: None,
            },
            MediaKind::Voice | MediaKind::Audio => Limits {
                max_bytes: VOICE_MAX_BYTES,
                max_duration: Some(VOICE_MAX_DURATION),
            },
        }
    }

    fn check_size(&self, kind: MediaKind, size: u64) -> Result<(), String> {
        if size > self.max_bytes {
            return Err(format!(
                "This {} ({}) is larger than Instagram's limit of {} MB.",
                kind.noun(),
                human_size(size),
                self.max_bytes / 1_000_000
            ));
        }
        Ok(())
    }

    fn check_duration(&self, kind: MediaKind, duration: Duration) -> Result<(), String> {
        match self.max_duration {
            Some(max) if duration > max => Err(format!(
                "This {} is {} long; Instagram takes at most {}.",
                kind.noun(),
                human_duration(duration),
                human_duration(max)
            )),
            _ => Ok(()),
        }
    }
}

/// `1:05` for 65 seconds.
fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// Downloads the file of `media`, prepares it and sends it to the portal's
/// thread with `client_context` as the send's dedupe key (through the
/// sending connector, which leaves retries to the outbox worker).
pub async fn send_media(
    bridge: &Bridge,
    login: &LoginRecord,
    creds: &mut Credentials,
    portal: &PortalRecord,
    media: &OutgoingMedia,
    client_context: &str,
) -> Result<Message, MediaError> {
    // Checked when it was accepted too, but a row queued by an older bridge may predate a limit.
    let media = checked(media.clone()).map_err(MediaError::Refused)?;
    let bytes = download(bridge, &media).await?;
    let bytes = converted(bridge, &media, bytes)
        .await
        .map_err(MediaError::Refused)?;
    let upload = prepare(&media, bytes).map_err(MediaError::Refused)?;
    tracing::debug!(
        login = %login.id,
        thread_id = %portal.thread_id,
        kind = ?upload.kind,
        size = upload.file.bytes.len(),
        "sending media to Instagram"
    );
    let thread_id = &portal.thread_id;
    let connector = sending_connector(bridge, &login.id);
    let sent = match upload.kind {
        SendKind::Voice => {
            connector
                .send_voice(
                    creds,
                    thread_id,
                    upload.file,
                    &instagram_waveform(&media.waveform),
                    Some(client_context),
                )
                .await
        }
        kind => {
            connector
                .send_media(creds, kind, thread_id, upload.file, Some(client_context))
                .await
        }
    };
    sent.map_err(MediaError::Instagram)
}

/// Fetches the file from the media repository as the bridge.
async fn download(bridge: &Bridge, media: &OutgoingMedia) -> Result<Vec<u8>, MediaError> {
    match bridge.client.download(&media.mxc).await {
        Ok((bytes, _content_type)) => Ok(bytes),
        Err(err @ ClientError::Build { .. }) => Err(MediaError::Refused(format!(
            "The bridge cannot fetch this {}: {err}.",
            media.kind.noun()
        ))),
        Err(err) => match err.status() {
            Some(404) => Err(MediaError::Refused(format!(
                "This {} is no longer in the homeserver's media repository.",
                media.kind.noun()
            ))),
            // Other refusals (403, a remote server that will not serve it) stay refusals.
            Some(status @ 400..=499) if status != 429 => Err(MediaError::Refused(format!(
                "The homeserver refuses the bridge this {} (HTTP {status} {}).",
                media.kind.noun(),
                err.errcode().unwrap_or("M_UNKNOWN")
            ))),
            _ => Err(MediaError::Matrix(err.to_string())),
        },
    }
}

/// Element's Ogg voice messages (and other audio) as M4A, WebM videos as
/// MP4, converted with ffmpeg; anything else as it is.
async fn converted(
    bridge: &Bridge,
    media: &OutgoingMedia,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let sniffed = sniff(&bytes);
    let target = match (media.kind, sniffed) {
        (
            MediaKind::Voice | MediaKind::Audio,
            Some("audio/ogg" | "audio/webm" | "audio/mpeg" | "video/webm"),
        ) => Target::VoiceM4a,
        (MediaKind::Video, Some("video/webm")) => Target::VideoMp4,
        _ => return Ok(bytes),
    };
    transcode::convert(&bridge.config.media.ffmpeg, &bytes, target)
        .await
        .map_err(|reason| {
            format!(
                "Instagram does not take {} as {}, and {reason}.",
                media.kind.noun(),
                format_name(sniffed, media.mimetype.as_deref())
            )
        })
}

/// A file ready for the connector.
#[derive(Debug)]
struct Upload {
    kind: SendKind,
    file: FileData,
}

/// Checks the downloaded bytes against Instagram's limits and formats and
/// converts what needs converting; `Err` is the reason for the user.
fn prepare(media: &OutgoingMedia, bytes: Vec<u8>) -> Result<Upload, String> {
    let limits = Limits::of(media.kind);
    limits.check_size(media.kind, bytes.len() as u64)?;
    let sniffed = sniff(&bytes);
    let (kind, mimetype, bytes) = match media.kind {
        MediaKind::Image | MediaKind::Sticker => {
            let (mimetype, picture) = picture_to_send(media.kind, sniffed, bytes)?;
            (SendKind::Photo, mimetype, picture)
        }
        MediaKind::Video => match sniffed {
            Some("video/mp4") => (SendKind::Video, "video/mp4", bytes),
            other => {
                return Err(format!(
                    "Instagram takes videos as MP4, and this one is {}; the bridge cannot convert it.",
                    format_name(other, media.mimetype.as_deref())
                ))
            }
        },
        MediaKind::Voice | MediaKind::Audio => match sniffed {
            // Voice notes are AAC in an MP4 container, whatever brand it names
            // (`converted` made one of Element's Ogg voice messages).
            Some("audio/mp4" | "video/mp4") => {
                if let Some(duration) = mp4_duration(&bytes) {
                    limits.check_duration(media.kind, duration)?;
                }
                (SendKind::Voice, "audio/mp4", bytes)
            }
            other => {
                return Err(format!(
                    "Instagram takes voice messages as M4A (AAC), and this one is {}; the bridge cannot convert it.",
                    format_name(other, media.mimetype.as_deref())
                ))
            }
        },
    };
    Ok(Upload {
        kind,
        file: FileData {
            name: renamed(&media.file_name, mimetype),
            mime_type: mimetype.to_owned(),
            bytes: Bytes::from(bytes),
        },
    })
}

/// How a refusal names a file's format: what its bytes are, else what the
/// event said.
fn format_name(sniffed: Option<&str>, declared: Option<&str>) -> String {
    match sniffed.or(declared) {
        Some(mimetype) => mimetype.to_owned(),
        None => "a format the bridge does not recognize".to_owned(),
    }
}

/// The picture as Instagram's DM photo upload takes it: JPEG as it is, an
/// animated GIF as it is (it has an upload path of its own, as in
/// mautrix-instagram), PNG, WebP and single-frame GIF converted to JPEG.
fn picture_to_send(
    kind: MediaKind,
    sniffed: Option<&str>,
    bytes: Vec<u8>,
) -> Result<(&'static str, Vec<u8>), String> {
    let format = match sniffed {
        Some("image/jpeg") => return Ok(("image/jpeg", bytes)),
        Some("image/png") => ImageFormat::Png,
        Some("image/webp") => ImageFormat::WebP,
        Some("image/gif") => ImageFormat::Gif,
        Some(other) => {
            return Err(format!(
                "Instagram takes photos as JPEG, and the bridge cannot convert this {} ({other}).",
                kind.noun()
            ))
        }
        None => {
            return Err(format!(
                "This {} is not a picture the bridge recognizes (JPEG, PNG, WebP or GIF).",
                kind.noun()
            ))
        }
    };
    if is_animated(format, &bytes) {
        if format == ImageFormat::Gif {
            return Ok(("image/gif", bytes));
        }
        return Err(format!(
            "This {} is an animated WebP, which Instagram does not take. Send it as a GIF or a video instead.",
            kind.noun()
        ));
    }
    let picture = image::load_from_memory_with_format(&bytes, format)
        .map_err(|err| format!("This {} cannot be read as a picture: {err}.", kind.noun()))?;
    let jpeg = encode_jpeg(&picture).map_err(|err| {
        format!(
            "This {} could not be converted to JPEG: {err}.",
            kind.noun()
        )
    })?;
    Ok(("image/jpeg", jpeg))
}

/// Whether a GIF or WebP has more than one frame.
fn is_animated(format: ImageFormat, bytes: &[u8]) -> bool {
    match format {
        ImageFormat::Gif => image::codecs::gif::GifDecoder::new(Cursor::new(bytes))
            .map(|decoder| decoder.into_frames().take(2).count() > 1)
            .unwrap_or(false),
        ImageFormat::WebP => image::codecs::webp::WebPDecoder::new(Cursor::new(bytes))
            .map(|decoder| decoder.has_animation())
            .unwrap_or(false),
        _ => false,
    }
}

/// JPEG of `picture`; transparent parts become white (JPEG has no alpha, and
/// black, what dropping it gives, hides dark stickers).
fn encode_jpeg(picture: &DynamicImage) -> Result<Vec<u8>, image::ImageError> {
    let rgb = if picture.color().has_alpha() {
        let mut flat = RgbaImage::from_pixel(picture.width(), picture.height(), Rgba([255; 4]));
        image::imageops::overlay(&mut flat, &picture.to_rgba8(), 0, 0);
        DynamicImage::ImageRgba8(flat).to_rgb8()
    } else {
        picture.to_rgb8()
    };
    let mut jpeg = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY);
    rgb.write_with_encoder(encoder)?;
    Ok(jpeg)
}

/// The duration an MP4 file states in its movie header (`moov/mvhd`).
fn mp4_duration(bytes: &[u8]) -> Option<Duration> {
    let moov = mp4_box(bytes, b"moov")?;
    let mvhd = mp4_box(moov, b"mvhd")?;
    let version = *mvhd.first()?;
    // After version and flags: creation and modification times, then the
    // timescale and the duration (64-bit times and duration in version 1).
    let (timescale, duration) = if version == 1 {
        (
            u32::from_be_bytes(mvhd.get(20..24)?.try_into().ok()?),
            u64::from_be_bytes(mvhd.get(24..32)?.try_into().ok()?),
        )
    } else {
        (
            u32::from_be_bytes(mvhd.get(12..16)?.try_into().ok()?),
            u64::from(u32::from_be_bytes(mvhd.get(16..20)?.try_into().ok()?)),
        )
    };
    if timescale == 0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        duration as f64 / f64::from(timescale),
    ))
}

/// The payload of the first box of type `name` among the boxes in `bytes`.
fn mp4_box<'a>(mut bytes: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
    while bytes.len() >= 8 {
        let size = u32::from_be_bytes(bytes[0..4].try_into().ok()?) as usize;
        let (header, size) = match size {
            0 => (8, bytes.len()),
            1 => (
                16,
                usize::try_from(u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?)).ok()?,
            ),
            size => (8, size),
        };
        if size < header || size > bytes.len() {
            return None;
        }
        if &bytes[4..8] == name {
            return Some(&bytes[header..size]);
        }
        bytes = &bytes[size..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::relay_out::Outgoing;
    use ruma::events::room::message::RoomMessageEventContent;
    use serde_json::{json, Value};

    const PLAIN_MXC: &str = "mxc://example.org/abcdef";
    const VIDEO: &[u8] = include_bytes!("../../../tests/instagram-sim/assets/video.mp4");
    const VOICE: &[u8] = include_bytes!("../../../tests/instagram-sim/assets/voice.m4a");
    const ANIMATED_GIF: &[u8] = include_bytes!("../../../tests/instagram-sim/assets/animated.gif");

    fn message(content: Value) -> AnyMessageLikeEventContent {
        AnyMessageLikeEventContent::RoomMessage(
            serde_json::from_value::<RoomMessageEventContent>(content).unwrap(),
        )
    }

    fn sticker(content: Value) -> AnyMessageLikeEventContent {
        AnyMessageLikeEventContent::Sticker(serde_json::from_value(content).unwrap())
    }

    fn media(kind: MediaKind, file_name: &str) -> OutgoingMedia {
        OutgoingMedia {
            kind,
            mxc: PLAIN_MXC.into(),
            mimetype: None,
            size: None,
            file_name: file_name.to_owned(),
            duration_ms: None,
            waveform: Vec::new(),
            caption: None,
        }
    }

    fn picture(width: u32, height: u32, format: ImageFormat, alpha: bool) -> Vec<u8> {
        let picture = if alpha {
            DynamicImage::ImageRgba8(RgbaImage::from_fn(width, height, |x, _| {
                Rgba([200, 10, 10, if x < width / 2 { 0 } else { 255 }])
            }))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
                image::Rgb([(x * 7) as u8, (y * 5) as u8, 90])
            }))
        };
        let mut bytes = Cursor::new(Vec::new());
        picture.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn images_videos_and_stickers_are_media() {
        let image = classify(&message(json!({
            "msgtype": "m.image", "body": "cat.png", "url": PLAIN_MXC,
            "info": {"mimetype": "image/png", "size": 1234, "w": 10, "h": 20}
        })))
        .unwrap()
        .unwrap();
        assert_eq!(
            image,
            OutgoingMedia {
                kind: MediaKind::Image,
                mxc: PLAIN_MXC.into(),
                mimetype: Some("image/png".into()),
                size: Some(1234),
                file_name: "cat.png".into(),
                duration_ms: None,
                waveform: vec![],
                caption: None,
            }
        );

        let video = classify(&message(json!({
            "msgtype": "m.video", "body": "look at this", "filename": "clip.mp4", "url": PLAIN_MXC,
            "info": {"mimetype": "video/mp4", "size": 2_000_000, "duration": 4500}
        })))
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                video.kind,
                video.file_name.as_str(),
                video.duration_ms,
                video.size
            ),
            (MediaKind::Video, "clip.mp4", Some(4500), Some(2_000_000))
        );

        let sticker = classify(&sticker(json!({
            "body": "a waving cat", "url": PLAIN_MXC,
            "info": {"mimetype": "image/webp", "size": 4000, "w": 256, "h": 256}
        })))
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                sticker.kind,
                sticker.mimetype.as_deref(),
                sticker.file_name.as_str()
            ),
            (MediaKind::Sticker, Some("image/webp"), "sticker")
        );
    }

    #[test]
    fn a_body_beside_a_different_filename_is_a_caption() {
        let msgtype = |content: Value| -> MessageType {
            match message(content) {
                AnyMessageLikeEventContent::RoomMessage(message) => message.msgtype,
                other => panic!("not a message: {other:?}"),
            }
        };
        let captioned = msgtype(json!({
            "msgtype": "m.image", "body": " look at *this* ", "filename": "cat.png", "url": PLAIN_MXC,
            "format": "org.matrix.custom.html", "formatted_body": "look at <em>this</em>"
        }));
        let (body, formatted) = caption(&captioned).expect("a caption");
        assert_eq!(body, "look at *this*");
        assert_eq!(
            formatted.map(|f| f.body.as_str()),
            Some("look at <em>this</em>")
        );
        for uncaptioned in [
            json!({"msgtype": "m.image", "body": "cat.png", "url": PLAIN_MXC}),
            json!({"msgtype": "m.image", "body": "cat.png", "filename": "cat.png", "url": PLAIN_MXC}),
            json!({"msgtype": "m.video", "body": " ", "filename": "clip.mp4", "url": PLAIN_MXC}),
            json!({"msgtype": "m.file", "body": "notes", "filename": "notes.txt", "url": PLAIN_MXC}),
        ] {
            assert!(
                caption(&msgtype(uncaptioned.clone())).is_none(),
                "{uncaptioned}"
            );
        }
    }

    #[test]
    fn voice_messages_keep_duration_and_waveform() {
        let voice = classify(&message(json!({
            "msgtype": "m.audio", "body": "Voice message.ogg", "url": PLAIN_MXC,
            "info": {"mimetype": "audio/mp4", "size": 9000, "duration": 2000},
            "org.matrix.msc1767.audio": {"duration": 2100, "waveform": [0, 256, 512, 1024]},
            "org.matrix.msc3245.voice": {}
        })))
        .unwrap()
        .unwrap();
        assert_eq!(voice.kind, MediaKind::Voice);
        assert_eq!(voice.duration_ms, Some(2100), "the voice block's duration");
        assert_eq!(voice.waveform, vec![0, 256, 512, 1024]);

        let audio = classify(&message(json!({
            "msgtype": "m.audio", "body": "song.m4a", "url": PLAIN_MXC,
            "info": {"mimetype": "audio/mp4", "duration": 30000}
        })))
        .unwrap()
        .unwrap();
        assert_eq!(
            (audio.kind, audio.duration_ms, audio.waveform.len()),
            (MediaKind::Audio, Some(30000), 0)
        );
    }

    #[test]
    fn outbox_payloads_read_back_as_written() {
        let mut voice = media(MediaKind::Voice, "Voice message.m4a");
        voice.duration_ms = Some(1500);
        voice.waveform = vec![0, 512, 1024];
        let payload = serde_json::to_value(Outgoing::Media(voice.clone())).unwrap();
        assert_eq!(payload["kind"], "media");
        assert_eq!(payload["media_kind"], "voice");
        let read: Outgoing = serde_json::from_value(payload).unwrap();
        assert_eq!(read, Outgoing::Media(voice));
    }

    #[test]
    fn waveforms_scale_to_instagrams_range() {
        assert_eq!(
            instagram_waveform(&[0, 1, 512, 1024, 5000]),
            vec![0.0, 1.0 / 1024.0, 0.5, 1.0, 1.0]
        );
        assert_eq!(matrix_amplitude(UInt::from(5000u32)), 1024);
    }

    #[test]
    fn texts_files_and_edits_are_not_media() {
        for content in [
            json!({"msgtype": "m.text", "body": "hi"}),
            json!({"msgtype": "m.file", "body": "report.pdf", "url": PLAIN_MXC}),
            json!({"msgtype": "m.image", "body": "* new.png", "url": PLAIN_MXC,
                   "m.new_content": {"msgtype": "m.image", "body": "new.png", "url": PLAIN_MXC},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": "$original"}}),
        ] {
            assert_eq!(classify(&message(content.clone())), Ok(None), "{content}");
        }
    }

    #[test]
    fn encrypted_invalid_and_over_limit_media_are_refused() {
        let encrypted = classify(&message(json!({
            "msgtype": "m.image", "body": "secret.jpg",
            "file": {"url": PLAIN_MXC, "key": {"kty": "oct", "key_ops": ["encrypt", "decrypt"],
                     "alg": "A256CTR", "k": "aWF6-32KGYaC3A_FEUCk1Bt0JA37zP0WVcX_cjm8Ubs", "ext": true},
                     "iv": "X85+XgHN+HEAAAAAAAAAAA", "hashes": {"sha256": "5qG4fFnbbVdlAV6pnc1D6V6+QSfTvUbWIC7mCUeI7gA"}, "v": "v2"}
        })));
        assert_eq!(
            encrypted,
            Err("This photo is end-to-end encrypted, and the bridge cannot decrypt it.".into())
        );
        assert_eq!(
            classify(&message(
                json!({"msgtype": "m.image", "body": "x.jpg", "url": "mxc://nothing"})
            )),
            Err("This photo has no valid mxc:// address, so the bridge cannot fetch it.".into())
        );
        assert_eq!(
            classify(&message(json!({
                "msgtype": "m.image", "body": "huge.jpg", "url": PLAIN_MXC,
                "info": {"mimetype": "image/jpeg", "size": 9_200_000}
            }))),
            Err("This photo (9.2 MB) is larger than Instagram's limit of 8 MB.".into())
        );
        assert_eq!(
            classify(&message(json!({
                "msgtype": "m.video", "body": "film.mp4", "url": PLAIN_MXC,
                "info": {"mimetype": "video/mp4", "size": 25_000_001}
            }))),
            Err("This video (25.0 MB) is larger than Instagram's limit of 25 MB.".into())
        );
        assert_eq!(
            classify(&message(json!({
                "msgtype": "m.audio", "body": "long.m4a", "url": PLAIN_MXC,
                "info": {"mimetype": "audio/mp4", "duration": 65_000},
                "org.matrix.msc3245.voice": {}
            }))),
            Err("This voice message is 1:05 long; Instagram takes at most 1:00.".into())
        );
    }

    #[test]
    fn jpeg_is_sent_as_it_is() {
        let jpeg = picture(30, 20, ImageFormat::Jpeg, false);
        let upload = prepare(&media(MediaKind::Image, "photo.jpg"), jpeg.clone()).unwrap();
        assert_eq!(upload.kind, SendKind::Photo);
        assert_eq!(upload.file.bytes, jpeg);
        assert_eq!(
            (upload.file.name.as_str(), upload.file.mime_type.as_str()),
            ("photo.jpg", "image/jpeg")
        );
    }

    #[test]
    fn png_webp_and_still_gif_become_jpeg_of_the_same_size() {
        for (format, alpha, name) in [
            (ImageFormat::Png, false, "cat.png"),
            (ImageFormat::Png, true, "sticker.png"),
            (ImageFormat::WebP, true, "sticker.webp"),
            (ImageFormat::Gif, false, "still.gif"),
        ] {
            let bytes = picture(37, 23, format, alpha);
            let upload = prepare(&media(MediaKind::Sticker, name), bytes).unwrap();
            assert_eq!(upload.kind, SendKind::Photo);
            assert_eq!(upload.file.mime_type, "image/jpeg");
            assert!(upload.file.name.ends_with(".jpg"), "{}", upload.file.name);
            let decoded =
                image::load_from_memory_with_format(&upload.file.bytes, ImageFormat::Jpeg)
                    .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!((decoded.width(), decoded.height()), (37, 23), "{name}");
            if alpha {
                // The transparent left half is white, the opaque right half red.
                let rgb = decoded.to_rgb8();
                let white = rgb.get_pixel(3, 10);
                let red = rgb.get_pixel(33, 10);
                assert!(white.0.iter().all(|c| *c > 240), "{name}: {white:?}");
                assert!(red.0[0] > 180 && red.0[1] < 60, "{name}: {red:?}");
            }
        }
    }

    #[test]
    fn animated_gifs_are_sent_as_they_are() {
        let upload = prepare(&media(MediaKind::Image, "dance.gif"), ANIMATED_GIF.to_vec()).unwrap();
        assert_eq!(
            (
                upload.kind,
                upload.file.mime_type.as_str(),
                upload.file.name.as_str(),
                &upload.file.bytes[..]
            ),
            (SendKind::Photo, "image/gif", "dance.gif", ANIMATED_GIF)
        );
    }

    #[test]
    fn unknown_pictures_are_refused() {
        assert_eq!(
            prepare(&media(MediaKind::Image, "x.jpg"), b"not a picture".to_vec()).unwrap_err(),
            "This photo is not a picture the bridge recognizes (JPEG, PNG, WebP or GIF)."
        );
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0".to_vec();
        assert_eq!(
            prepare(&media(MediaKind::Image, "x.heic"), heic).unwrap_err(),
            "Instagram takes photos as JPEG, and the bridge cannot convert this photo (image/heic)."
        );
    }

    #[test]
    fn videos_must_be_mp4_and_voice_m4a() {
        let upload = prepare(&media(MediaKind::Video, "clip.mp4"), VIDEO.to_vec()).unwrap();
        assert_eq!(
            (
                upload.kind,
                upload.file.mime_type.as_str(),
                &upload.file.bytes[..]
            ),
            (SendKind::Video, "video/mp4", VIDEO)
        );
        let mut webm = media(MediaKind::Video, "clip.webm");
        webm.mimetype = Some("video/webm".into());
        assert_eq!(
            prepare(&webm, b"\x1a\x45\xdf\xa3 webm".to_vec()).unwrap_err(),
            "Instagram takes videos as MP4, and this one is video/webm; the bridge cannot convert it."
        );

        let upload = prepare(&media(MediaKind::Voice, "Voice message"), VOICE.to_vec()).unwrap();
        assert_eq!(
            (
                upload.kind,
                upload.file.mime_type.as_str(),
                upload.file.name.as_str()
            ),
            (SendKind::Voice, "audio/mp4", "Voice message.m4a")
        );
        assert_eq!(
            prepare(&media(MediaKind::Voice, "v.ogg"), b"OggS\0\x02opus".to_vec()).unwrap_err(),
            "Instagram takes voice messages as M4A (AAC), and this one is audio/ogg; the bridge cannot convert it."
        );
    }

    #[test]
    fn limits_hold_for_the_downloaded_bytes() {
        // The event may not say how large the file is, or say it wrong.
        let mut jpeg = picture(8, 8, ImageFormat::Jpeg, false);
        jpeg.resize(8_500_000, 0);
        assert_eq!(
            prepare(&media(MediaKind::Image, "big.jpg"), jpeg).unwrap_err(),
            "This photo (8.5 MB) is larger than Instagram's limit of 8 MB."
        );
        assert_eq!(mp4_duration(VOICE), Some(Duration::from_millis(1500)));
        assert_eq!(mp4_duration(VIDEO), Some(Duration::from_secs(1)));
        assert_eq!(mp4_duration(b"\0\0\0\x08free"), None);
    }
}
