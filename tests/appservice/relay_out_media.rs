//! Matrix media to Instagram, end to end: alice uploads files to a real
//! Synapse's media repository and sends them in a portal room; the running
//! bridge downloads them, converts what Instagram would refuse and sends them
//! to the simulator, whose thread then holds the same bytes (a PNG or a
//! sticker as a JPEG of the same size) and a voice message's waveform; a
//! caption follows its photo as a text, once, and goes with it. What Instagram cannot
//! take (a file, a photo over its limit) or the bridge cannot fetch gets a
//! notice and FAIL_PERMANENT.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use serde_json::{json, Value};

use instagram_sim::Fault;

use crate::harness::relay::{poll, RelayFixture};
use crate::harness::{Backend, MatrixClient};

on_both_databases!(
    media_reaches_instagram_byte_for_byte,
    media_reaches_instagram_byte_for_byte_sqlite,
    media_reaches_instagram_byte_for_byte_postgres
);
on_both_databases!(
    media_instagram_cannot_take_gets_a_notice,
    media_instagram_cannot_take_gets_a_notice_sqlite,
    media_instagram_cannot_take_gets_a_notice_postgres
);

/// A real H.264 MP4 (72x128, 1 s) and AAC M4A (1.5 s), the simulator's own files.
const VIDEO: &[u8] = include_bytes!("../instagram-sim/assets/video.mp4");
const VOICE: &[u8] = include_bytes!("../instagram-sim/assets/voice.m4a");
/// A real animated GIF (64x64, 3 frames).
const ANIMATED_GIF: &[u8] = include_bytes!("../instagram-sim/assets/animated.gif");

/// The fixture, alice's portal of a 1:1 thread with a friend, joined.
struct Portal {
    fixture: RelayFixture,
    /// The friend's Instagram pk.
    friend: u64,
    thread: String,
    room: String,
}

async fn portal(backend: Backend) -> Portal {
    let mut fixture = RelayFixture::prepare(backend, "alice.media").await;
    fixture.poll_fast();
    let (friend, thread, _) =
        fixture.friend_thread_saying("media.friend", "Media Friend", "send me something");
    fixture.e2e.start_bridge().await;
    let room = fixture.join_portal(&thread).await;
    Portal {
        fixture,
        friend: friend.pk,
        thread,
        room,
    }
}

/// A picture of `width`x`height` in `format`, with a transparent half when
/// `format` has alpha.
fn picture(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let alpha = format != ImageFormat::Jpeg;
    let picture = RgbaImage::from_fn(width, height, |x, y| {
        let a = if alpha && x < width / 2 { 0 } else { 255 };
        Rgba([(x * 5) as u8, (y * 3) as u8, 120, a])
    });
    let picture = if alpha {
        DynamicImage::ImageRgba8(picture)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(picture).to_rgb8())
    };
    let mut bytes = Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, format)
        .expect("encoding a picture");
    bytes.into_inner()
}

/// Uploads a file to the media repository as `user`; returns its mxc URI.
async fn upload(user: &MatrixClient, bytes: &[u8], content_type: &str, filename: &str) -> String {
    let mut url = user.base_url().clone();
    url.path_segments_mut()
        .expect("http URL")
        .extend(["_matrix", "media", "v3", "upload"]);
    url.query_pairs_mut().append_pair("filename", filename);
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(user.access_token())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("uploading media");
    let status = response.status();
    let body: Value = response.json().await.expect("upload answer");
    assert!(status.is_success(), "upload: {status} {body}");
    body["content_uri"]
        .as_str()
        .expect("content_uri")
        .to_owned()
}

/// Sends an event of `kind` as `user`; returns its event id.
async fn send_event(user: &MatrixClient, room: &str, kind: &str, content: &Value) -> String {
    let txn = format!("media-{}", uuid::Uuid::new_v4());
    let mut url = user.base_url().clone();
    url.path_segments_mut()
        .expect("http URL")
        .extend(["_matrix", "client", "v3", "rooms", room, "send", kind, &txn]);
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth(user.access_token())
        .json(content)
        .send()
        .await
        .expect("sending an event");
    let status = response.status();
    let body: Value = response.json().await.expect("send answer");
    assert!(status.is_success(), "send: {status} {body}");
    body["event_id"].as_str().expect("event_id").to_owned()
}

impl Portal {
    /// Uploads `bytes` and sends them in the portal as `content` (whose
    /// `url` is filled in); returns the event id.
    async fn send_media(
        &self,
        kind: &str,
        mut content: Value,
        bytes: &[u8],
        content_type: &str,
    ) -> String {
        let filename = content["filename"]
            .as_str()
            .or(content["body"].as_str())
            .unwrap_or("file")
            .to_owned();
        let mxc = upload(&self.fixture.user, bytes, content_type, &filename).await;
        content["url"] = json!(mxc);
        send_event(&self.fixture.user, &self.room, kind, &content).await
    }

    /// The final send status of `event_id` (SUCCESS or FAIL_PERMANENT).
    async fn final_status(&self, event_id: &str) -> Value {
        let history = self
            .fixture
            .wait_for_history(
                &self.room,
                &format!("the send status of {event_id}"),
                |events| {
                    events
                        .iter()
                        .any(|event| is_final_status_of(&event.event, event_id))
                },
            )
            .await;
        history
            .into_iter()
            .find(|event| is_final_status_of(&event.event, event_id))
            .map(|event| event.event["content"].clone())
            .expect("the status was just seen")
    }

    /// The Instagram item the bridge made of `event_id`, from the simulator.
    async fn item_of(&self, event_id: &str) -> Value {
        let store = self.fixture.store().await;
        let record = poll(&format!("the item of {event_id}"), || async {
            store
                .message_by_event(&self.room, event_id)
                .await
                .ok()
                .flatten()
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        let snapshot = self.fixture.sim.thread_snapshot(&self.thread).unwrap();
        snapshot["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["item_id"] == record.item_id.as_str())
            .unwrap_or_else(|| panic!("item {} is in the thread", record.item_id))
            .clone()
    }

    /// The bytes of the item's media file of `content_type` on the simulator.
    fn media_of(&self, item: &Value, content_type: &str) -> Vec<u8> {
        let item_id = item["item_id"].as_str().unwrap();
        let media = self.fixture.sim.item_media(&self.thread, item_id).unwrap();
        let file = media
            .iter()
            .find(|file| file.content_type == content_type)
            .unwrap_or_else(|| panic!("a {content_type} file in {media:?}"));
        self.fixture.sim.media_bytes(&file.name).unwrap()
    }
}

fn is_final_status_of(event: &Value, event_id: &str) -> bool {
    event["type"] == "com.beeper.message_send_status"
        && event["content"]["m.relates_to"]["event_id"] == event_id
        && event["content"]["status"] != "FAIL_RETRIABLE"
}

async fn media_reaches_instagram_byte_for_byte(backend: Backend) {
    let mut portal = portal(backend).await;
    let me = portal.fixture.me.pk;

    // A JPEG goes as it is.
    let jpeg = picture(48, 32, ImageFormat::Jpeg);
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "photo.jpg",
                   "info": {"mimetype": "image/jpeg", "size": jpeg.len(), "w": 48, "h": 32}}),
            &jpeg,
            "image/jpeg",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let item = portal.item_of(&event).await;
    assert_eq!(item["user_id"], json!(me));
    assert_eq!(item["item_type"], "media");
    assert_eq!(portal.media_of(&item, "image/jpeg"), jpeg);

    // A captioned photo: Instagram has no captions, so the caption (its
    // HTML made plain) follows the photo as a text, and is not bridged back.
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "look at **this**", "filename": "photo.jpg",
                   "format": "org.matrix.custom.html", "formatted_body": "look at <b>this</b>",
                   "info": {"mimetype": "image/jpeg", "size": jpeg.len(), "w": 48, "h": 32}}),
            &jpeg,
            "image/jpeg",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let store = portal.fixture.store().await;
    let records = store.messages_by_event(&portal.room, &event).await.unwrap();
    assert_eq!(records.len(), 2, "the photo and its caption: {records:?}");
    let newest: Vec<Value> = portal.fixture.sim.thread_snapshot(&portal.thread).unwrap()["items"]
        .as_array()
        .unwrap()[..2]
        .to_vec();
    let (caption, photo) = (&newest[0], &newest[1]);
    assert_eq!(photo["item_id"], records[0].item_id.as_str());
    assert_eq!(portal.media_of(photo, "image/jpeg"), jpeg);
    assert_eq!(caption["item_id"], records[1].item_id.as_str());
    assert_eq!(
        (caption["item_type"].as_str(), caption["text"].as_str()),
        (Some("text"), Some("look at this"))
    );
    assert_eq!(caption["user_id"], json!(me));
    let captioned = event;

    // Both sends written, then their answers lost (a 500, a dropped
    // connection): each is found in the thread, neither sent twice.
    let photo_path = "direct_v2/threads/broadcast/photo_attachment/";
    let text_path = "direct_v2/threads/broadcast/text/";
    let sends = |path: &str| portal.fixture.sim.request_count("POST", path);
    let (photos_before, texts_before) = (sends(photo_path), sends(text_path));
    for (path, fault) in [
        (
            photo_path,
            Fault {
                status: Some(500),
                ..Fault::default()
            },
        ),
        (
            text_path,
            Fault {
                drop_connection: true,
                ..Fault::default()
            },
        ),
    ] {
        portal.fixture.sim.inject_fault(Fault {
            path_prefix: path.to_owned(),
            method: Some("POST".to_owned()),
            after_write: true,
            ..fault
        });
    }
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "once, despite it all", "filename": "photo.jpg",
                   "info": {"mimetype": "image/jpeg", "size": jpeg.len(), "w": 48, "h": 32}}),
            &jpeg,
            "image/jpeg",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    assert_eq!(
        (sends(photo_path), sends(text_path)),
        (photos_before + 1, texts_before + 1),
        "one send of each"
    );
    let items = portal.fixture.sim.thread_snapshot(&portal.thread).unwrap()["items"].clone();
    assert_eq!(items[0]["text"], "once, despite it all");
    assert_eq!(items[1]["item_type"], "media");
    let both = store.messages_by_event(&portal.room, &event).await.unwrap();
    assert_eq!(both.len(), 2);

    // The caption unsent in the app leaves the photo in the room (two of
    // the friend's messages later, the worker has handled the unsend).
    portal
        .fixture
        .sim
        .unsend(&portal.thread, &both[1].item_id)
        .expect("unsending the caption");
    for text in ["after the unsend", "and once more"] {
        portal
            .fixture
            .sim
            .post_text(&portal.thread, portal.friend, text)
            .expect("the friend writes");
        portal
            .fixture
            .wait_for_history(&portal.room, text, |events| {
                events.iter().any(|e| e.body() == text)
            })
            .await;
    }
    let photo_event = portal
        .fixture
        .user
        .event(&portal.room, &event)
        .await
        .unwrap();
    assert_eq!(
        photo_event["content"]["filename"], "photo.jpg",
        "not redacted: {photo_event}"
    );

    // A PNG (with transparency) arrives as a JPEG of the same size.
    let png = picture(40, 30, ImageFormat::Png);
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "drawing.png",
                   "info": {"mimetype": "image/png", "size": png.len(), "w": 40, "h": 30}}),
            &png,
            "image/png",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let item = portal.item_of(&event).await;
    let sent = portal.media_of(&item, "image/jpeg");
    let decoded = image::load_from_memory_with_format(&sent, ImageFormat::Jpeg)
        .expect("Instagram holds a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (40, 30));

    // A sticker (WebP) is sent as a photo.
    let webp = picture(64, 64, ImageFormat::WebP);
    let event = portal
        .send_media(
            "m.sticker",
            json!({"body": "a square", "info": {"mimetype": "image/webp", "w": 64, "h": 64}}),
            &webp,
            "image/webp",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let item = portal.item_of(&event).await;
    assert_eq!(item["item_type"], "media");
    let sent = portal.media_of(&item, "image/jpeg");
    let decoded = image::load_from_memory_with_format(&sent, ImageFormat::Jpeg)
        .expect("Instagram holds a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (64, 64));

    // An animated GIF goes as it is.
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "dance.gif",
                   "info": {"mimetype": "image/gif", "size": ANIMATED_GIF.len(), "w": 64, "h": 64}}),
            ANIMATED_GIF,
            "image/gif",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let item = portal.item_of(&event).await;
    assert_eq!(portal.media_of(&item, "image/gif"), ANIMATED_GIF);

    // A video, byte for byte.
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.video", "body": "clip.mp4",
                   "info": {"mimetype": "video/mp4", "size": VIDEO.len(), "duration": 1000, "w": 72, "h": 128}}),
            VIDEO,
            "video/mp4",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let item = portal.item_of(&event).await;
    assert_eq!(portal.media_of(&item, "video/mp4"), VIDEO);

    // A voice message keeps its waveform.
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.audio", "body": "Voice message.m4a",
                   "info": {"mimetype": "audio/mp4", "size": VOICE.len(), "duration": 1500},
                   "org.matrix.msc1767.audio": {"duration": 1500, "waveform": [0, 256, 512, 768, 1024, 128]},
                   "org.matrix.msc3245.voice": {}}),
            VOICE,
            "audio/mp4",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let item = portal.item_of(&event).await;
    assert_eq!(item["item_type"], "voice_media");
    assert_eq!(
        item["voice_media"]["media"]["audio"]["waveform_data"],
        json!([0.0, 0.25, 0.5, 0.75, 1.0, 0.125])
    );
    assert_eq!(portal.media_of(&item, "audio/mp4"), VOICE);

    // Element records voice messages as Ogg/Opus: converted to M4A with ffmpeg.
    let ogg = ogg_voice();
    let event = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.audio", "body": "Voice message.ogg",
                   "info": {"mimetype": "audio/ogg", "size": ogg.len(), "duration": 1000},
                   "org.matrix.msc1767.audio": {"duration": 1000, "waveform": [512, 512]},
                   "org.matrix.msc3245.voice": {}}),
            &ogg,
            "audio/ogg",
        )
        .await;
    assert_eq!(portal.final_status(&event).await["status"], "SUCCESS");
    let item = portal.item_of(&event).await;
    assert_eq!(item["item_type"], "voice_media");
    let m4a = portal.media_of(&item, "audio/mp4");
    assert_eq!(&m4a[4..8], b"ftyp", "an MP4 container");
    assert!(m4a.windows(4).any(|w| w == b"mp4a"), "AAC audio");

    // Polls have passed since: the caption's echo was not bridged back.
    let history = portal
        .fixture
        .user
        .room_history(&portal.room)
        .await
        .unwrap();
    let with_caption = history
        .iter()
        .filter(|event| event.body() == "look at **this**" || event.body() == "look at this")
        .count();
    assert_eq!(with_caption, 1, "only alice's own photo event");

    // Redacting the captioned photo unsends the photo and the caption.
    let items: Vec<String> = records.iter().map(|r| r.item_id.clone()).collect();
    portal
        .fixture
        .user
        .redact(&portal.room, &captioned)
        .await
        .expect("redacting the photo");
    poll("the photo and its caption unsent", || async {
        let snapshot = portal.fixture.sim.thread_snapshot(&portal.thread).unwrap();
        let left = snapshot["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| items.iter().any(|id| item["item_id"] == id.as_str()));
        (!left).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}

/// A second of a tone as Ogg/Opus, as Element records voice messages (made by ffmpeg).
fn ogg_voice() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("voice.ogg");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:duration=1", "-c:a", "libopus"])
        .arg(&path)
        .status()
        .expect("ffmpeg must be installed for this test (.ci/run installs it)");
    assert!(status.success(), "ffmpeg made no Ogg sample");
    std::fs::read(&path).expect("reading the Ogg sample")
}

async fn media_instagram_cannot_take_gets_a_notice(backend: Backend) {
    let portal = portal(backend).await;
    let bot = portal.fixture.e2e.bot().to_owned();
    let items_before = portal.fixture.sim.thread_snapshot(&portal.thread).unwrap()["items"]
        .as_array()
        .unwrap()
        .len();

    let file = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.file", "body": "report.pdf", "info": {"mimetype": "application/pdf"}}),
            b"%PDF-1.4 a report",
            "application/pdf",
        )
        .await;
    let status = portal.final_status(&file).await;
    assert_eq!(status["status"], "FAIL_PERMANENT", "{status}");

    // The event does not say its size: the bridge finds it over the limit
    // once downloaded.
    let mut large = picture(64, 64, ImageFormat::Jpeg);
    large.resize(8_500_000, 0);
    let too_large = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "huge.jpg", "info": {"mimetype": "image/jpeg"}}),
            &large,
            "image/jpeg",
        )
        .await;
    let status = portal.final_status(&too_large).await;
    assert_eq!(status["status"], "FAIL_PERMANENT", "{status}");

    // A file the media repository does not have.
    let missing = send_event(
        &portal.fixture.user,
        &portal.room,
        "m.room.message",
        &json!({"msgtype": "m.image", "body": "gone.jpg", "url": "mxc://localhost/NoSuchMedia",
                "info": {"mimetype": "image/jpeg"}}),
    )
    .await;
    let status = portal.final_status(&missing).await;
    assert_eq!(status["status"], "FAIL_PERMANENT", "{status}");
    let gone = "This photo is no longer in the homeserver's media repository.";

    let reason = "This photo (8.5 MB) is larger than Instagram's limit of 8 MB.";
    let history = portal
        .fixture
        .wait_for_history(
            &portal.room,
            "the bot's notices of the refused photos",
            |events| {
                [reason, gone].iter().all(|text| {
                    events.iter().any(|event| {
                        event.sender() == bot
                            && event.kind() == "m.room.message"
                            && event.body().contains(text)
                    })
                })
            },
        )
        .await;
    let notices: Vec<&str> = history
        .iter()
        .filter(|event| {
            event.sender() == bot
                && event.kind() == "m.room.message"
                && event.event["content"]["msgtype"] == "m.notice"
        })
        .map(|event| event.body())
        .collect();
    assert!(
        notices.iter().any(|body| body.contains("file")),
        "a notice for the file: {notices:?}"
    );
    assert!(
        notices.iter().any(|body| body.contains(reason)),
        "a notice for the photo: {notices:?}"
    );
    assert!(
        notices.iter().any(|body| body.contains(gone)),
        "a notice for the missing photo: {notices:?}"
    );
    let items_after = portal.fixture.sim.thread_snapshot(&portal.thread).unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(items_after, items_before, "nothing reached Instagram");

    // The photo goes, Instagram refuses its caption: the notice says which.
    portal.fixture.sim.inject_fault(Fault {
        path_prefix: "direct_v2/threads/broadcast/text/".to_owned(),
        method: Some("POST".to_owned()),
        status: Some(400),
        body: Some(r#"{"message":"This message could not be sent.","status":"fail"}"#.to_owned()),
        ..Fault::default()
    });
    let jpeg = picture(48, 32, ImageFormat::Jpeg);
    let captioned = portal
        .send_media(
            "m.room.message",
            json!({"msgtype": "m.image", "body": "a refused caption", "filename": "photo.jpg",
                   "info": {"mimetype": "image/jpeg", "size": jpeg.len()}}),
            &jpeg,
            "image/jpeg",
        )
        .await;
    let status = portal.final_status(&captioned).await;
    assert_eq!(status["status"], "FAIL_PERMANENT", "{status}");
    let told = "Your file was sent to Instagram, but its caption was not";
    portal
        .fixture
        .wait_for_history(
            &portal.room,
            "the notice of the refused caption",
            |events| {
                events
                    .iter()
                    .any(|event| event.sender() == bot && event.body().starts_with(told))
            },
        )
        .await;
    let items = portal.fixture.sim.thread_snapshot(&portal.thread).unwrap()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), items_before + 1);
    assert_eq!(portal.media_of(&items[0], "image/jpeg"), jpeg);
}
