//! The spec's writes against a simulator that is strict the way Instagram is: numeric
//! `client_context`s, the app's User-Agent, a signed `create_group_thread`, the upload host
//! with decoded media and transcoding videos, the spam warning, and edits.

use std::time::Duration;

use bytes::Bytes;
use instagram_sim::{samples, Settings};
use matrix_instagram::connector::http::{BaseUrls, Connector, FileData};
use matrix_instagram::connector::session::ConnectorError;
use matrix_instagram::connector::spec::Spec;
use matrix_instagram::connector::typed::{MediaKind, MessageWrite, OutgoingText};
use serde_json::{json, Value};

use crate::common::{fast_retries, spec_path, Fixture};

/// The fixture's connector with the real spec changed by `edit` (a text replacement that
/// must apply).
fn connector_with(fx: &Fixture, from: &str, to: &str) -> Connector {
    let text = std::fs::read_to_string(spec_path()).unwrap();
    assert!(text.contains(from), "the spec no longer contains {from:?}");
    let spec = Spec::parse("connectors/edited.yaml", &text.replacen(from, to, 1))
        .unwrap_or_else(|err| panic!("the edited spec loads:\n{err}"));
    let base_urls = BaseUrls::with_overrides(&spec.api, Some(&fx.sim.api_base_url()), None, None);
    Connector::new(spec, base_urls)
        .with_retry_policy(fast_retries())
        .with_timeout(Duration::from_secs(5))
}

fn items(fx: &Fixture, thread: &str) -> Vec<Value> {
    fx.sim.thread_snapshot(thread).unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn text(conversation_id: &str, text: &str) -> OutgoingText {
    OutgoingText {
        conversation_id: conversation_id.to_owned(),
        text: text.to_owned(),
        ..OutgoingText::default()
    }
}

#[tokio::test]
async fn every_write_sends_a_numeric_client_context_instagram_accepts() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let sent = fx
        .connector
        .send_text(&mut fx.creds, &text(&thread, "generated context"))
        .await
        .unwrap();
    let context = sent.client_context.clone().unwrap();
    let token: u64 = context.parse().expect("a decimal client_context");
    assert!((6_800_011_111_111_111_111..=6_800_099_999_999_999_999).contains(&token));
    assert_eq!(items(&fx, &thread)[0]["client_context"], context.as_str());

    fx.connector
        .write_message_with_context(
            &mut fx.creds,
            &thread,
            &sent.id,
            MessageWrite::React("🔥"),
            Some("6800012345678900077"),
        )
        .await
        .unwrap();
    let reaction = &items(&fx, &thread)[0]["reactions"]["emojis"][0];
    assert_eq!(reaction["emoji"], "🔥");
    assert_eq!(reaction["client_context"], "6800012345678900077");
    fx.connector
        .write_message(&mut fx.creds, &thread, &sent.id, MessageWrite::Unreact)
        .await
        .unwrap();
    fx.connector
        .write_message(&mut fx.creds, &thread, &sent.id, MessageWrite::MarkRead)
        .await
        .unwrap();
    fx.connector
        .set_typing(&mut fx.creds, &thread, true)
        .await
        .unwrap();
    let failed: Vec<_> = fx
        .sim
        .request_log()
        .into_iter()
        .filter(|entry| entry.status != 200)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test]
async fn a_client_that_is_not_the_app_gets_useragent_mismatch() {
    let mut fx = Fixture::start().await;
    let browser = connector_with(
        &fx,
        r#"User-Agent: "Instagram 275.0.0.27.98 Android"#,
        r#"User-Agent: "Mozilla/5.0 (X11; Linux x86_64) Instagram 275.0.0.27.98 Android"#,
    );
    let err = browser
        .execute("list_conversations", json!({}), &mut fx.creds)
        .await
        .unwrap_err();
    match &err {
        ConnectorError::Platform {
            status: 400,
            message,
            ..
        } => assert_eq!(message, "useragent mismatch"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn create_group_is_signed_and_an_unsigned_one_is_refused() {
    let mut fx = Fixture::start().await;
    let users = json!([
        fx.seed.friend.pk.to_string(),
        fx.seed.contacts[0].pk.to_string()
    ]);
    let unsigned = connector_with(&fx, "      body_encoding: signed\n", "");
    let err = unsigned
        .execute(
            "create_group",
            json!({"user_ids": users, "title": "Unsigned"}),
            &mut fx.creds,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Platform { status: 400, message, .. } if message == "Invalid signed_body"),
        "{err:?}"
    );
    let group = fx
        .run(
            "create_group",
            json!({"user_ids": users, "title": "Signed"}),
        )
        .await;
    assert_eq!(group["name"], "Signed");
    assert_eq!(group["type"], "group");
}

#[tokio::test]
async fn sending_too_fast_is_a_permanent_action_block() {
    let mut fx = Fixture::start().await;
    fx.sim.set_settings(Settings {
        send_limit_per_minute: 2,
        ..fx.sim.settings()
    });
    let thread = fx.seed.direct_thread_id.clone();
    for index in 0..2 {
        fx.connector
            .send_text(&mut fx.creds, &text(&thread, &format!("quick {index}")))
            .await
            .unwrap();
    }
    let before = items(&fx, &thread).len();
    let err = fx
        .connector
        .send_text(&mut fx.creds, &text(&thread, "one too many"))
        .await
        .unwrap_err();
    match &err {
        ConnectorError::ActionBlocked { message, .. } => assert_eq!(
            message,
            "This message contains content that has been blocked by our security systems."
        ),
        other => panic!("{other:?}"),
    }
    assert!(!err.needs_login());
    assert_eq!(
        fx.sim
            .request_count("POST", "direct_v2/threads/broadcast/text/"),
        3,
        "a block is not retried"
    );
    assert_eq!(items(&fx, &thread).len(), before);
}

fn file(name: &str, mime_type: &str, bytes: Vec<u8>) -> FileData {
    FileData {
        name: name.to_owned(),
        mime_type: mime_type.to_owned(),
        bytes: Bytes::from(bytes),
    }
}

#[tokio::test]
async fn uploaded_media_lands_byte_for_byte_and_fake_images_are_refused() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    for (kind, upload, bytes) in [
        (
            MediaKind::Photo,
            "/messenger_image/",
            samples::png(33, 21, 5),
        ),
        (MediaKind::Photo, "/messenger_gif/", samples::gif(4)),
        (MediaKind::Video, "/messenger_video/", samples::mp4(6)),
        (MediaKind::Voice, "/messenger_audio/", samples::m4a(7)),
    ] {
        let mime_type = match kind {
            MediaKind::Photo if upload == "/messenger_gif/" => "image/gif",
            MediaKind::Photo => "image/png",
            MediaKind::Video => "video/mp4",
            MediaKind::Voice => "audio/mp4",
        };
        let sent = fx
            .connector
            .send_media(
                &mut fx.creds,
                kind,
                &thread,
                file("upload", mime_type, bytes.clone()),
                None,
            )
            .await
            .unwrap_or_else(|err| panic!("{kind:?}: {err}"));
        let media = fx.sim.item_media(&thread, &sent.id).unwrap();
        let uploaded = media
            .iter()
            .find(|info| info.content_type == mime_type)
            .unwrap_or_else(|| panic!("{kind:?}: {media:?}"));
        assert_eq!(
            fx.sim.media_bytes(&uploaded.name).unwrap(),
            bytes,
            "{kind:?}"
        );
        assert!(
            fx.sim
                .request_log()
                .iter()
                .any(|entry| entry.path.starts_with(upload) && entry.status == 200),
            "{kind:?} went to {upload}"
        );
    }

    let before = items(&fx, &thread).len();
    let err = fx
        .connector
        .send_media(
            &mut fx.creds,
            MediaKind::Photo,
            &thread,
            file(
                "fake.jpg",
                "image/jpeg",
                b"\xff\xd8\xff\xe0 not a jpeg".to_vec(),
            ),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Platform { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(items(&fx, &thread).len(), before, "nothing was sent");
    assert_eq!(
        fx.sim
            .request_count("POST", "direct_v2/threads/broadcast/photo_attachment/"),
        2,
        "the broadcast never ran for the refused upload"
    );
}

#[tokio::test]
async fn a_video_is_sent_again_while_it_transcodes() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    fx.sim.set_settings(Settings {
        transcode_attempts: 2,
        ..fx.sim.settings()
    });
    let path = "direct_v2/threads/broadcast/video_attachment/";
    let sent = fx
        .connector
        .send_media(
            &mut fx.creds,
            MediaKind::Video,
            &thread,
            file("clip.mp4", "video/mp4", samples::mp4(8)),
            Some("6800012345678900001"),
        )
        .await
        .unwrap();
    assert_eq!(fx.sim.request_count("POST", path), 3, "two 202s, then sent");
    let statuses: Vec<u16> = fx
        .sim
        .request_log()
        .iter()
        .filter(|entry| entry.path.ends_with(path))
        .map(|entry| entry.status)
        .collect();
    assert_eq!(statuses, [202, 202, 200]);
    let sent_items: Vec<Value> = items(&fx, &thread)
        .into_iter()
        .filter(|item| item["client_context"] == "6800012345678900001")
        .collect();
    assert_eq!(sent_items.len(), 1);
    assert_eq!(sent_items[0]["item_id"], sent.id.as_str());

    // A video that never finishes: the send gives up after the spec's 10 attempts.
    fx.sim.set_settings(Settings {
        transcode_attempts: 50,
        ..fx.sim.settings()
    });
    fx.sim.clear_request_log();
    let patient = connector_with(
        &fx,
        "            attempts: 10\n            delay: \"1s\"",
        "            attempts: 3\n            delay: \"10ms\"",
    );
    let err = patient
        .send_media(
            &mut fx.creds,
            MediaKind::Video,
            &thread,
            file("stuck.mp4", "video/mp4", samples::mp4(9)),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Platform { status: 202, message, .. } if message == "Transcode not finished yet."),
        "{err:?}"
    );
    assert_eq!(fx.sim.request_count("POST", path), 3);
}

#[tokio::test]
async fn edit_changes_the_text_within_instagrams_limits() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let sent = fx
        .connector
        .send_text(&mut fx.creds, &text(&thread, "helo"))
        .await
        .unwrap();
    let context = sent.client_context.clone().unwrap();
    fx.connector
        .edit_message(&mut fx.creds, &thread, &sent.id, "hello", Some(&context))
        .await
        .unwrap();
    let item = &items(&fx, &thread)[0];
    assert_eq!(item["text"], "hello");
    assert_eq!(item["edit_count"], 1);
    let listed: Vec<matrix_instagram::model::Message> = fx
        .connector
        .call(
            "list",
            json!({"conversation_id": thread, "limit": 1}),
            &mut fx.creds,
        )
        .await
        .unwrap();
    assert_eq!(listed[0].content.as_deref(), Some("hello"));
    assert_eq!(listed[0].edit_count, Some(1));

    // Without the original client_context it works too; the sixth edit is refused.
    for round in 2..=5 {
        fx.run(
            "edit",
            json!({"conversation_id": thread, "message_id": sent.id, "text": format!("hello {round}")}),
        )
        .await;
    }
    let err = fx
        .run_err(
            "edit",
            json!({"conversation_id": thread, "message_id": sent.id, "text": "hello 6"}),
        )
        .await;
    assert!(
        matches!(&err, ConnectorError::Platform { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(items(&fx, &thread)[0]["text"], "hello 5");

    // Someone else's message cannot be edited.
    let theirs = fx
        .sim
        .post_text(&thread, fx.seed.friend.pk, "not yours")
        .unwrap();
    let err = fx
        .run_err(
            "edit",
            json!({"conversation_id": thread, "message_id": theirs, "text": "hijacked"}),
        )
        .await;
    assert!(
        matches!(&err, ConnectorError::Platform { status: 400, .. }),
        "{err:?}"
    );
}
