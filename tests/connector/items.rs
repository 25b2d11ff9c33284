//! Every item kind of tests/fixtures/instagram/items through the real `list`
//! mapping of connectors/instagram.yaml: media kinds give a downloadable
//! attachment, shares a link to instagram.com with owner, caption and preview,
//! locations their coordinates, view-once media a flag, notices their text,
//! unknown kinds their name, and drifted JSON (numbers as strings, keys
//! missing) still maps.

use matrix_instagram::model::{Attachment, Message, Share};
use serde_json::{json, Value};

use crate::common::{load_spec, Fixture};

fn fixture_item(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/instagram/items/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Posts each item in the demo direct thread as the friend, then reads them
/// back with `list`, in the order given.
async fn post_and_list(fx: &mut Fixture, items: &[Value]) -> Vec<Message> {
    let thread = fx.seed.direct_thread_id.clone();
    let ids: Vec<String> = items
        .iter()
        .map(|item| {
            fx.sim
                .post_item(&thread, fx.seed.friend.pk, item.clone())
                .unwrap()
        })
        .collect();
    let listed: Vec<Message> = serde_json::from_value(
        fx.run("list", json!({"conversation_id": thread, "limit": 50}))
            .await,
    )
    .unwrap();
    ids.iter()
        .map(|id| {
            listed
                .iter()
                .find(|message| &message.id == id)
                .unwrap_or_else(|| panic!("item {id} is listed"))
                .clone()
        })
        .collect()
}

/// Maps items inside a thread response with the spec's `list` mapping (for
/// shapes the simulator's control API cannot post).
fn map_in_thread(items: Vec<Value>) -> Vec<Message> {
    let spec = load_spec();
    let body = json!({"thread": {"viewer_id": 17841400000000001u64, "items": items}});
    let vars = json!({
        "params": {"conversation_id": "340282366841710300949128137443944319108"},
        "api": {"base_url": "https://i.instagram.com/api/v1", "web_base_url": "https://www.instagram.com"},
    });
    let normalized = spec.actions["list"].steps[0]
        .request
        .response
        .apply(&body, &vars)
        .unwrap_or_else(|err| panic!("{err}"));
    serde_json::from_value(normalized).unwrap()
}

fn map_one(item: Value) -> Message {
    map_in_thread(vec![item]).remove(0)
}

fn only_attachment(message: &Message) -> &Attachment {
    assert_eq!(
        message.attachments.len(),
        1,
        "{:?}: {:?}",
        message.kind,
        message.attachments
    );
    &message.attachments[0]
}

fn share_of(message: &Message) -> &Share {
    assert_eq!(
        message.content_type.as_deref(),
        Some("share"),
        "{message:?}"
    );
    message
        .share
        .as_ref()
        .unwrap_or_else(|| panic!("{:?} has a share", message.kind))
}

fn has_size(width: Option<u64>, height: Option<u64>) -> bool {
    width.is_some_and(|w| w > 0) && height.is_some_and(|h| h > 0)
}

async fn fetch(url: &str) -> (String, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (content_type, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn media_items_give_files_the_simulator_serves() {
    let mut fx = Fixture::start().await;
    let items = [
        json!({"item_type": "media"}),
        json!({"item_type": "media", "media_type": 2}),
        json!({"item_type": "voice_media", "duration_ms": 3000, "waveform": [0.5, 1.0, 0.25]}),
        json!({"item_type": "animated_media"}),
    ];
    let messages = post_and_list(&mut fx, &items).await;
    for message in &messages {
        assert_eq!(message.content_type.as_deref(), Some("media"));
    }

    let photo = only_attachment(&messages[0]);
    assert_eq!(photo.kind, "image");
    assert!(has_size(photo.width, photo.height), "{photo:?}");
    let (_, bytes) = fetch(photo.url.as_deref().unwrap()).await;
    assert!(bytes.starts_with(b"\x89PNG"));

    let video = only_attachment(&messages[1]);
    assert_eq!(video.kind, "video");
    assert_eq!(video.mime_type.as_deref(), Some("video/mp4"));
    assert!(has_size(video.width, video.height), "{video:?}");
    assert!(video.duration_ms.is_some_and(|ms| ms > 0), "{video:?}");
    let (_, bytes) = fetch(video.url.as_deref().unwrap()).await;
    assert_eq!(&bytes[4..8], b"ftyp");
    let (_, preview) = fetch(video.preview_url.as_deref().unwrap()).await;
    assert!(
        preview.starts_with(b"\x89PNG"),
        "a video's preview is a picture"
    );

    let voice = only_attachment(&messages[2]);
    assert_eq!(voice.kind, "audio");
    assert_eq!(voice.mime_type.as_deref(), Some("audio/mp4"));
    assert_eq!(voice.duration_ms, Some(3000));
    assert_eq!(voice.waveform, [0.5, 1.0, 0.25]);
    let (_, bytes) = fetch(voice.url.as_deref().unwrap()).await;
    assert_eq!(&bytes[4..8], b"ftyp");

    let gif = only_attachment(&messages[3]);
    assert_eq!(gif.kind, "gif");
    assert_eq!(gif.mime_type.as_deref(), Some("video/mp4"));
    assert!(has_size(gif.width, gif.height), "{gif:?}");
    let (_, bytes) = fetch(gif.url.as_deref().unwrap()).await;
    assert_eq!(&bytes[4..8], b"ftyp");
}

#[tokio::test]
async fn shares_link_to_instagram_with_owner_caption_and_preview() {
    let mut fx = Fixture::start().await;
    let web = fx.connector.base_urls().web.clone();
    let kinds = [
        "media_share",
        "clip",
        "felix_share",
        "story_share",
        "reel_share",
        "profile",
        "xma_media_share",
        "xma_clip",
        "xma_story_share",
        "xma_reel_share",
        "xma_reel_mention",
        "xma_profile",
    ];
    let items: Vec<Value> = kinds
        .iter()
        .map(|kind| json!({"item_type": kind}))
        .collect();
    let messages = post_and_list(&mut fx, &items).await;
    let shares: Vec<&Share> = messages.iter().map(share_of).collect();
    for (share, message) in shares.iter().zip(&messages) {
        assert!(message.attachments.is_empty(), "{message:?}");
        assert!(
            share
                .preview_url
                .as_deref()
                .is_some_and(|url| !url.is_empty()),
            "{share:?}"
        );
    }
    let summary: Vec<(Option<&str>, &str, Option<&str>)> = shares
        .iter()
        .map(|share| {
            (
                share.kind.as_deref(),
                share.url.as_str(),
                share.owner.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some("post"),
                format!("{web}/p/DAbcPost001/").as_str(),
                Some("someone.public")
            ),
            (
                Some("reel"),
                format!("{web}/reel/DBJZC8BxAcG/").as_str(),
                Some("someone.public")
            ),
            (
                Some("video"),
                format!("{web}/p/DIgtv00005/").as_str(),
                Some("someone.public")
            ),
            (
                Some("story"),
                format!("{web}/stories/someone.public/3632600000000000002/").as_str(),
                Some("someone.public")
            ),
            (
                Some("story"),
                format!("{web}/stories/bridge.tester/3632600000000000001/").as_str(),
                Some("bridge.tester")
            ),
            (
                Some("profile"),
                format!("{web}/someone.public/").as_str(),
                Some("someone.public")
            ),
            (
                Some("post"),
                "https://www.instagram.com/p/DAbcPost002/?igsh=FAKE",
                Some("someone.public")
            ),
            (
                Some("reel"),
                "https://www.instagram.com/reel/DBJZC8BxAcG/?id=3479422340176283398_4863000001",
                Some("someone.public")
            ),
            // App links to stories become website links, with the id they carry.
            (
                Some("story"),
                format!("{web}/stories/someone.public/3632600000000000003/").as_str(),
                Some("someone.public")
            ),
            (
                Some("story"),
                format!("{web}/stories/alice.wonder/3632600000000000004/").as_str(),
                Some("alice.wonder")
            ),
            (
                Some("story"),
                format!("{web}/stories/alice.wonder/3632600000000000005/").as_str(),
                Some("alice.wonder")
            ),
            (
                Some("profile"),
                "https://www.instagram.com/someone.public/",
                Some("someone.public")
            ),
        ]
    );
    let captions: Vec<Option<&str>> = shares
        .iter()
        .map(|share| share.caption.as_deref())
        .collect();
    assert_eq!(
        captions,
        [
            Some("Sunset at the pier 🌅"),
            Some("full send at the track 🏁"),
            Some("long video"),
            None,
            None,
            Some("Some Creator"),
            Some("Sunset at the pier 🌅"),
            Some("full send at the track 🏁"),
            Some("Story"),
            Some("Replied to your story"),
            Some("Mentioned you in their story"),
            Some("12.3K followers"),
        ]
    );
    // Every preview is a picture the simulator serves, with its size (but a
    // shared profile's picture, which Instagram sends without one).
    for (index, share) in shares.iter().enumerate() {
        let (_, bytes) = fetch(share.preview_url.as_deref().unwrap()).await;
        assert!(bytes.starts_with(b"\x89PNG"), "{share:?}");
        let sized = has_size(share.preview_width, share.preview_height);
        assert_eq!(sized, kinds[index] != "profile", "{share:?}");
    }
    // A reaction or reply to a story carries its own text besides the share.
    assert_eq!(messages[4].content.as_deref(), Some("😍"));
    assert_eq!(messages[9].content.as_deref(), Some("lol"));
    assert_eq!(messages[0].content, None);
}

#[tokio::test]
async fn locations_links_notices_and_unknown_kinds_are_readable() {
    let mut fx = Fixture::start().await;
    let expired_story = fixture_item("story_share_expired")["story_share"].clone();
    let expired_reel = fixture_item("reel_share_expired")["reel_share"].clone();
    let items = [
        json!({"item_type": "location"}),
        json!({"item_type": "link", "text": "menu at https://example.org/menu"}),
        json!({"item_type": "placeholder"}),
        json!({"item_type": "story_share", "story_share": expired_story}),
        json!({"item_type": "reel_share", "reel_share": expired_reel}),
        json!({"item_type": "poll_vote", "poll_vote": {"question": "pizza?"}}),
        json!({"item_type": "action_log", "description": "Alice left the group."}),
        json!({"item_type": "like"}),
    ];
    let messages = post_and_list(&mut fx, &items).await;

    assert_eq!(messages[0].content_type.as_deref(), Some("location"));
    let place = messages[0].location.as_ref().unwrap();
    assert_eq!(
        (place.latitude, place.longitude),
        (Some(28.5421), Some(-81.3775))
    );
    assert_eq!(place.name.as_deref(), Some("Orlando, Florida"));

    let readable: Vec<(Option<&str>, Option<&str>, Option<&str>)> = messages[1..]
        .iter()
        .map(|message| {
            assert!(message.attachments.is_empty() && message.share.is_none());
            (
                message.content_type.as_deref(),
                message.content.as_deref(),
                message.kind.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        readable,
        [
            (
                Some("text"),
                Some("menu at https://example.org/menu"),
                Some("link")
            ),
            (
                Some("notice"),
                Some("This message isn't available in this version of Instagram."),
                Some("placeholder")
            ),
            (
                Some("notice"),
                Some("This story is no longer available."),
                Some("story_share")
            ),
            (
                Some("text"),
                Some("haha where is this??"),
                Some("reel_share")
            ),
            (Some("unsupported"), None, Some("poll_vote")),
            (
                Some("notice"),
                Some("Alice left the group."),
                Some("action_log")
            ),
            (Some("text"), Some("❤️"), Some("like")),
        ]
    );
}

#[tokio::test]
async fn the_simulator_s_drift_mode_changes_nothing_that_matters() {
    let mut fx = Fixture::start().await;
    let kinds = [
        json!({"item_type": "text", "text": "drifting"}),
        json!({"item_type": "media"}),
        json!({"item_type": "voice_media"}),
        json!({"item_type": "media_share"}),
        json!({"item_type": "location"}),
    ];
    let steady = post_and_list(&mut fx, &kinds).await;
    fx.sim.set_drift(true);
    let drifted = post_and_list(&mut fx, &kinds).await;
    for (steady, drifted) in steady.iter().zip(&drifted) {
        assert_eq!(drifted.content_type, steady.content_type, "{drifted:?}");
        assert_eq!(drifted.content, steady.content);
        assert_eq!(drifted.sender, steady.sender);
        assert!(drifted.timestamp.is_some());
        let sizes = |message: &Message| {
            message
                .attachments
                .iter()
                .map(|a| (a.kind.clone(), a.width, a.height, a.duration_ms))
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(drifted), sizes(steady));
        assert_eq!(
            drifted.share.as_ref().map(|share| &share.url),
            steady.share.as_ref().map(|share| &share.url)
        );
        assert_eq!(drifted.location, steady.location);
    }
    // Each drifted item is followed by one of a kind nobody knows yet.
    let listed: Vec<Message> = serde_json::from_value(
        fx.run(
            "list",
            json!({"conversation_id": fx.seed.direct_thread_id, "limit": 1}),
        )
        .await,
    )
    .unwrap();
    assert_eq!(listed[0].kind.as_deref(), Some("sim_future_card"));
    assert_eq!(listed[0].content_type.as_deref(), Some("unsupported"));
}

#[tokio::test]
async fn an_edit_in_the_simulator_shows_the_new_text_and_its_count() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let original = post_and_list(&mut fx, &[json!({"item_type": "text", "text": "at 7"})])
        .await
        .remove(0);
    assert_eq!(original.edit_count, None);
    fx.sim.edit_text(&thread, &original.id, "at 8").unwrap();
    let listed: Vec<Message> = serde_json::from_value(
        fx.run("list", json!({"conversation_id": thread, "limit": 5}))
            .await,
    )
    .unwrap();
    let edited = listed
        .iter()
        .find(|message| message.id == original.id)
        .unwrap();
    assert_eq!(edited.content.as_deref(), Some("at 8"));
    assert_eq!(edited.edit_count, Some(1));
    assert_eq!(edited.timestamp, original.timestamp);
}

#[test]
fn view_once_media_is_flagged_and_not_downloaded() {
    let messages = map_in_thread(vec![
        fixture_item("raven_media"),
        fixture_item("raven_media_expired"),
    ]);
    for message in &messages {
        assert_eq!(message.content_type.as_deref(), Some("view_once"));
        assert!(message.attachments.is_empty());
    }
    let live = messages[0].view_once.as_ref().unwrap();
    assert_eq!(live.media_kind.as_deref(), Some("image"));
    assert_eq!(live.view_mode.as_deref(), Some("once"));
    assert!(!live.expired);
    assert!(messages[1].view_once.as_ref().unwrap().expired);
}

#[test]
fn replies_name_the_quoted_message_and_its_sender() {
    let reply = map_one(fixture_item("text_reply"));
    let quoted = reply.reply_to.unwrap();
    assert_eq!(quoted.message_id, "32259282530591827013512481076150272");
    assert_eq!(
        quoted.preview.as_deref(),
        Some("hey! are we still on for saturday?")
    );
    assert_eq!(quoted.sender_id.as_deref(), Some("17841400000000002"));
    assert_eq!(map_one(fixture_item("text")).reply_to, None);
}

#[test]
fn call_events_are_notices_with_their_description() {
    let mut call = fixture_item("action_log");
    let object = call.as_object_mut().unwrap();
    object.remove("action_log");
    object.insert("item_type".into(), json!("video_call_event"));
    object.insert(
        "video_call_event".into(),
        json!({"action": "video_call_ended", "vc_id": 1, "description": "Video chat ended"}),
    );
    let message = map_one(call);
    assert_eq!(message.content_type.as_deref(), Some("notice"));
    assert_eq!(message.content.as_deref(), Some("Video chat ended"));
}

#[test]
fn edits_are_counted_and_the_text_is_the_newest() {
    let mut edited = fixture_item("text");
    edited["text"] = json!("see you at 8 instead");
    edited["edit_count"] = json!("2");
    let message = map_one(edited);
    assert_eq!(message.content.as_deref(), Some("see you at 8 instead"));
    assert_eq!(message.edit_count, Some(2));
    assert_eq!(map_one(fixture_item("text")).edit_count, None);
}

/// Instagram's JSON drifts: numbers come as strings, optional keys go missing.
#[test]
fn drifted_items_still_map() {
    let mut video = fixture_item("media_video");
    let sender = video["user_id"].to_string();
    video["timestamp"] = json!(video["timestamp"].to_string());
    video["user_id"] = json!(video["user_id"].to_string());
    video["media"]["video_duration"] = json!("8.2");
    for version in video["media"]["video_versions"].as_array_mut().unwrap() {
        version["width"] = json!(version["width"].to_string());
        version["height"] = json!(version["height"].to_string());
    }
    video["media"]
        .as_object_mut()
        .unwrap()
        .remove("image_versions2");
    let mut place = fixture_item("location");
    place["location"]["lat"] = json!("28.5421");
    place["location"].as_object_mut().unwrap().remove("name");
    let mut voice = fixture_item("voice_media");
    voice["voice_media"]["media"]["audio"]
        .as_object_mut()
        .unwrap()
        .remove("waveform_data");
    let mut post = fixture_item("media_share");
    post["media_share"]
        .as_object_mut()
        .unwrap()
        .remove("caption");
    post["reactions"] = json!({"emojis": [
        {"sender_id": 17841400000000001u64, "timestamp": 1748779279126789u64},
        {"emoji": "👍", "sender_id": "17841400000000002", "timestamp": "1748779279126789"}
    ]});
    let messages = map_in_thread(vec![video, place, voice, post]);

    let video = only_attachment(&messages[0]);
    assert!(has_size(video.width, video.height), "{video:?}");
    assert!(video.duration_ms.is_some_and(|ms| ms > 0), "{video:?}");
    assert_eq!(video.duration_ms, Some(8200));
    assert_eq!(video.preview_url, None);
    assert!(messages[0].timestamp.is_some());
    assert_eq!(
        messages[0].sender.as_ref().map(|sender| sender.id.as_str()),
        Some(sender.as_str())
    );

    let place = messages[1].location.as_ref().unwrap();
    assert_eq!(place.latitude, Some(28.5421));
    assert_eq!(place.name.as_deref(), Some("Orlando"));

    assert!(only_attachment(&messages[2]).waveform.is_empty());

    let reactions: Vec<(&str, Option<&str>)> = messages[3]
        .reactions
        .iter()
        .map(|reaction| (reaction.emoji.as_str(), reaction.sender_id.as_deref()))
        .collect();
    assert_eq!(reactions, [("👍", Some("17841400000000002"))]);
    let post = share_of(&messages[3]);
    assert_eq!(post.caption, None);
    assert_eq!(post.url, "https://www.instagram.com/p/DAbcPost001/");
}

#[test]
fn a_shared_carousel_is_previewed_by_its_first_slide() {
    let mut post = fixture_item("media_share");
    let shared = post["media_share"].as_object_mut().unwrap();
    let slide = json!({"image_versions2": shared.remove("image_versions2").unwrap()});
    shared.insert("media_type".into(), json!(8));
    shared.insert("carousel_media".into(), json!([slide]));
    let message = map_one(post);
    let share = share_of(&message);
    assert!(share
        .preview_url
        .as_deref()
        .is_some_and(|url| url.contains("DAbcPost001_1080x1350")));
    assert_eq!(
        (share.preview_width, share.preview_height),
        (Some(1080), Some(1350))
    );
}

#[test]
fn legacy_likes_are_heart_reactions_with_their_senders() {
    let messages = map_in_thread(vec![fixture_item("text_with_reactions")]);
    let reactions: Vec<(&str, Option<&str>, String)> = messages[0]
        .reactions
        .iter()
        .map(|reaction| {
            (
                reaction.emoji.as_str(),
                reaction.sender_id.as_deref(),
                reaction
                    .timestamp
                    .map(|at| at.to_rfc3339())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        reactions,
        [
            (
                "😂",
                Some("17841400000000001"),
                "2025-06-01T12:01:19.126789+00:00".to_owned()
            ),
            (
                "❤️",
                Some("17841400000000003"),
                "2025-06-01T12:01:22.126789+00:00".to_owned()
            ),
            (
                "❤️",
                Some("17841400000000003"),
                "2025-06-01T12:01:15.126789+00:00".to_owned()
            ),
        ]
    );
}
