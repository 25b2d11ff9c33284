//! Media of bridged messages, from the simulator to a real Synapse: items
//! listed through the real connector spec are converted (`bridge::convert`),
//! their files downloaded and uploaded (`bridge::media`), and read back from
//! the media repository byte for byte. CDN failures are checked against a
//! small local server: an expired URL (403/410) asks for a refetch.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use instagram_sim::Simulator;
use matrix_instagram::bridge::convert::{convert_message, ConvertContext, MediaKind, Part};
use matrix_instagram::bridge::media::{MediaBridge, MediaError};
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::connector::http::{BaseUrls, Connector};
use matrix_instagram::connector::spec::Spec;
use matrix_instagram::matrix::client::HomeserverClient;
use matrix_instagram::model::Message;
use ruma::OwnedUserId;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::harness::{Backend, E2e};

const MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The simulator with the demo seed, and the real connector pointed at it.
struct Instagram {
    sim: Simulator,
    thread: String,
    friend: u64,
    connector: Connector,
    creds: Credentials,
}

impl Instagram {
    async fn start() -> Instagram {
        let sim = Simulator::start().await;
        let seed = sim.seed_demo().expect("demo seed");
        let spec_path = crate::harness::repo_root().join("connectors/instagram.yaml");
        let spec = Spec::load(&spec_path).unwrap_or_else(|err| panic!("{err}"));
        let base_urls = BaseUrls::with_overrides(&spec.api, Some(&sim.api_base_url()), None, None);
        Instagram {
            thread: seed.direct_thread_id.clone(),
            friend: seed.friend.pk,
            connector: Connector::new(spec, base_urls),
            creds: Credentials::from_cookies(seed.demo.cookies.clone()),
            sim,
        }
    }

    /// Posts `item` as the friend and lists it back.
    async fn post(&mut self, item: Value) -> Message {
        let id = self.sim.post_item(&self.thread, self.friend, item).unwrap();
        self.refetch(&id).await
    }

    /// Lists the item `id` again (with freshly signed media URLs).
    async fn refetch(&mut self, id: &str) -> Message {
        let listed: Vec<Message> = self
            .connector
            .call(
                "list",
                json!({"conversation_id": self.thread, "limit": 5}),
                &mut self.creds,
            )
            .await
            .unwrap();
        listed
            .into_iter()
            .find(|message| message.id == *id)
            .expect("the posted item is listed")
    }
}

fn convert(message: &Message) -> Vec<Part> {
    let mentions = HashMap::new();
    convert_message(
        message,
        &ConvertContext {
            mentions: &mentions,
            reply: None,
            sender_name: "Friend",
        },
    )
}

/// A homeserver client acting as the appservice, and the bot it can act as.
fn appservice_client(e2e: &E2e) -> (HomeserverClient, OwnedUserId) {
    let as_token = e2e.config.get(&["appservice", "as_token"]).unwrap();
    let client = HomeserverClient::new(&e2e.synapse.url(), as_token.as_str().unwrap()).unwrap();
    (client, e2e.bot().try_into().unwrap())
}

/// The bytes of an `mxc://` URI, read back with authenticated media.
async fn download_mxc(e2e: &E2e, mxc: &str) -> Vec<u8> {
    let as_token = e2e.config.get(&["appservice", "as_token"]).unwrap();
    let path = mxc.strip_prefix("mxc://").expect("an mxc URI");
    let response = reqwest::Client::new()
        .get(format!(
            "{}/_matrix/client/v1/media/download/{path}",
            e2e.synapse.url()
        ))
        .bearer_auth(as_token.as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.unwrap().to_vec()
}

async fn source_bytes(url: &str) -> Vec<u8> {
    reqwest::get(url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn media_of_every_kind_lands_in_the_media_repository() {
    let e2e = E2e::prepare(Backend::Sqlite, &[]).await;
    let (client, bot) = appservice_client(&e2e);
    let mut instagram = Instagram::start().await;
    let media = MediaBridge::new(MAX_BYTES);
    let items = [
        (json!({"item_type": "media"}), "m.image", "image/png"),
        (
            json!({"item_type": "media", "media_type": 2}),
            "m.video",
            "video/mp4",
        ),
        (
            json!({"item_type": "voice_media", "duration_ms": 2500, "waveform": [0.5, 1.0]}),
            "m.audio",
            "audio/mp4",
        ),
        (
            json!({"item_type": "animated_media"}),
            "m.video",
            "video/mp4",
        ),
    ];
    for (item, msgtype, mimetype) in items {
        let message = instagram.post(item).await;
        let mut parts = convert(&message);
        assert_eq!(parts.len(), 1);
        let mut part = parts.remove(0);
        let source = part.media.clone().expect("a media part");
        media.fill(&client, &bot, &mut part).await.unwrap();

        let content = &part.content;
        assert_eq!(content["msgtype"], msgtype, "{content}");
        let info = &content["info"];
        assert_eq!(info["mimetype"], mimetype, "{content}");
        let mxc = content["url"].as_str().expect("an uploaded file");
        let uploaded = download_mxc(&e2e, mxc).await;
        assert_eq!(uploaded, source_bytes(&source.url).await, "{msgtype}");
        assert_eq!(info["size"], uploaded.len(), "{content}");
        match source.kind {
            MediaKind::Image => {
                // The file's own dimensions, whatever Instagram announced.
                assert_eq!(
                    (info["w"].as_u64(), info["h"].as_u64()),
                    png_size(&uploaded)
                );
                assert_eq!(content["body"], "photo.png");
            }
            MediaKind::Video => {
                assert!(info["duration"].as_u64().is_some(), "{content}");
                let thumbnail = info["thumbnail_url"].as_str().expect("a thumbnail");
                let thumbnail_bytes = download_mxc(&e2e, thumbnail).await;
                let preview = source.thumbnail_url.as_deref().unwrap();
                assert_eq!(thumbnail_bytes, source_bytes(preview).await);
                assert_eq!(info["thumbnail_info"]["mimetype"], "image/png");
                assert_eq!(info["thumbnail_info"]["size"], thumbnail_bytes.len());
                assert_eq!(
                    (
                        info["thumbnail_info"]["w"].as_u64(),
                        info["thumbnail_info"]["h"].as_u64()
                    ),
                    png_size(&thumbnail_bytes)
                );
            }
            MediaKind::Audio => {
                assert_eq!(info["duration"], 2500);
                assert_eq!(
                    content["org.matrix.msc1767.audio"],
                    json!({"duration": 2500, "waveform": [512, 1024]})
                );
            }
            MediaKind::Gif => assert_eq!(info["fi.mau.gif"], true),
            MediaKind::Sticker => unreachable!("no sticker posted"),
        }
    }
}

#[tokio::test]
async fn a_share_s_preview_picture_is_uploaded_once_for_both_parts() {
    let e2e = E2e::prepare(Backend::Sqlite, &[]).await;
    let (client, bot) = appservice_client(&e2e);
    let mut instagram = Instagram::start().await;
    let media = MediaBridge::new(MAX_BYTES);
    let message = instagram.post(json!({"item_type": "xma_clip"})).await;
    let mut parts = convert(&message);
    assert_eq!(parts.len(), 2);
    let source = parts[1].media.clone().unwrap();
    for part in &mut parts {
        media.fill(&client, &bot, part).await.unwrap();
    }
    let picture = parts[1].content["url"].as_str().unwrap().to_owned();
    let preview = &parts[0].content["com.beeper.linkpreviews"][0];
    assert_eq!(preview["og:image"], picture.as_str(), "{preview}");
    assert_eq!(parts[0].content.get("url"), None, "the text stays a text");
    let uploaded = download_mxc(&e2e, &picture).await;
    assert_eq!(uploaded, source_bytes(&source.url).await);
    assert_eq!(preview["matrix:image:size"], uploaded.len());
    assert_eq!(
        (
            preview["og:image:width"].as_u64(),
            preview["og:image:height"].as_u64()
        ),
        png_size(&uploaded)
    );
}

#[tokio::test]
async fn media_over_the_limit_becomes_a_notice_with_the_link() {
    let e2e = E2e::prepare(Backend::Sqlite, &[]).await;
    let (client, bot) = appservice_client(&e2e);
    let mut instagram = Instagram::start().await;
    let message = instagram.post(json!({"item_type": "media"})).await;
    let mut part = convert(&message).remove(0);
    let url = part.media.as_ref().unwrap().url.clone();
    MediaBridge::new(64)
        .fill(&client, &bot, &mut part)
        .await
        .unwrap();
    assert_eq!(part.event_type, "m.room.message");
    assert_eq!(part.content["msgtype"], "m.notice");
    let body = part.content["body"].as_str().unwrap();
    assert!(
        body.contains("larger than the bridge's limit of 64 bytes"),
        "{body}"
    );
    assert!(body.ends_with(&url), "{body}");
    assert_eq!(part.content.get("url"), None);
}

#[tokio::test]
async fn an_expired_url_asks_for_a_refetch_which_brings_a_fresh_one() {
    let e2e = E2e::prepare(Backend::Sqlite, &[]).await;
    let (client, bot) = appservice_client(&e2e);
    let mut instagram = Instagram::start().await;
    let media = MediaBridge::new(MAX_BYTES);
    // URLs signed now expire at once.
    instagram.sim.set_media_url_ttl(Duration::ZERO);
    let stale = instagram.post(json!({"item_type": "media"})).await;
    let mut part = convert(&stale).remove(0);
    let err = media.fill(&client, &bot, &mut part).await.unwrap_err();
    assert!(matches!(err, MediaError::Expired), "{err}");

    instagram.sim.set_media_url_ttl(Duration::from_secs(3600));
    let fresh = instagram.refetch(&stale.id).await;
    let mut part = convert(&fresh).remove(0);
    media.fill(&client, &bot, &mut part).await.unwrap();
    assert!(part.content["url"].as_str().unwrap().starts_with("mxc://"));
}

/// A CDN that answers each path with a fixed status and body.
async fn fake_cdn() -> String {
    let app = axum::Router::new()
        .route("/expired.jpg", get(|| async { StatusCode::FORBIDDEN }))
        .route("/gone.jpg", get(|| async { StatusCode::GONE }))
        .route("/missing.jpg", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/busy.jpg",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn cdn_failures_say_whether_to_refetch_retry_or_give_up() {
    let cdn = fake_cdn().await;
    // Nothing reaches the homeserver when the download fails.
    let client = HomeserverClient::new("http://127.0.0.1:9", "unused").unwrap();
    let bot: OwnedUserId = "@bot:localhost".try_into().unwrap();
    let media = MediaBridge::new(MAX_BYTES);
    let photo = |path: &str| Message {
        attachments: vec![serde_json::from_value(json!({
            "type": "image", "url": format!("{cdn}/{path}?oh=SIGNATURE&oe=1")
        }))
        .unwrap()],
        ..serde_json::from_value(
            json!({"id": "1", "conversation_id": "2", "content_type": "media"}),
        )
        .unwrap()
    };
    for (path, expected) in [
        ("expired.jpg", "expired"),
        ("gone.jpg", "expired"),
        ("missing.jpg", "permanent"),
        ("busy.jpg", "transient"),
    ] {
        let mut part = convert(&photo(path)).remove(0);
        let err = media.fill(&client, &bot, &mut part).await.unwrap_err();
        let kind = match &err {
            MediaError::Expired => "expired",
            MediaError::Transient(_) => "transient",
            MediaError::Permanent(_) => "permanent",
        };
        assert_eq!(kind, expected, "{path}: {err}");
        assert!(!err.to_string().contains("SIGNATURE"), "{err}");
        assert_eq!(part.content.get("url"), None);
    }
}

#[tokio::test]
async fn the_bytes_decide_the_mimetype_when_the_cdn_does_not_say() {
    let png = png_header();
    let app =
        axum::Router::new().route(
            "/file",
            get(move || {
                let png = png.clone();
                async move {
                    ([(header::CONTENT_TYPE, "application/octet-stream")], png).into_response()
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cdn = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let e2e = E2e::prepare(Backend::Sqlite, &[]).await;
    let (client, bot) = appservice_client(&e2e);
    let message: Message = serde_json::from_value(json!({
        "id": "1", "conversation_id": "2", "content_type": "media",
        "attachments": [{"type": "image", "url": format!("{cdn}/file"), "mime_type": "image/jpeg"}]
    }))
    .unwrap();
    let mut part = convert(&message).remove(0);
    MediaBridge::new(MAX_BYTES)
        .fill(&client, &bot, &mut part)
        .await
        .unwrap();
    assert_eq!(part.content["info"]["mimetype"], "image/png");
    assert_eq!(part.content["info"]["w"], 4);
    assert_eq!(part.content["info"]["h"], 3);
    assert_eq!(part.content["body"], "photo.png");
}

/// Width and height from a PNG's header chunk.
fn png_size(png: &[u8]) -> (Option<u64>, Option<u64>) {
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let word = |at: usize| u64::from(u32::from_be_bytes(png[at..at + 4].try_into().unwrap()));
    (Some(word(16)), Some(word(20)))
}

/// The start of a 4x3 PNG: signature and header chunk, all that tells its
/// type and size.
fn png_header() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&4u32.to_be_bytes());
    bytes.extend_from_slice(&3u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}
