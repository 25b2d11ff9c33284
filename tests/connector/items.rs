//! Every item kind of tests/fixtures/instagram/items through the real `list`
//! mapping of connectors/instagram.yaml: media kinds give a usable attachment,
//! shares a `share` attachment with target, title and preview, and kinds
//! without either (expired media, placeholders, unknown types) readable content.

use matrix_instagram::model::{Attachment, Message};
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

/// Maps fixture items inside a thread response with the spec's `list` mapping
/// (for shapes the simulator's control API cannot post).
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

fn url_of(attachment: &Attachment) -> &str {
    attachment.url.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn shared_media_gives_the_media_itself() {
    let mut fx = Fixture::start().await;
    let kinds = [
        "clip",
        "felix_share",
        "story_share",
        "reel_share",
        "raven_media",
    ];
    let items: Vec<Value> = kinds
        .iter()
        .map(|kind| json!({"item_type": kind}))
        .collect();
    let messages = post_and_list(&mut fx, &items).await;

    // The simulator serves every shared video as its own 72x128, 1 s MP4.
    let clip = only_attachment(&messages[0]);
    assert_eq!(clip.kind, "video");
    assert!(url_of(clip).contains("DBJZC8BxAcG_101_video"), "{clip:?}");
    assert_eq!((clip.width, clip.height), (Some(72), Some(128)));
    assert_eq!(clip.duration_ms, Some(1000));
    assert_eq!(clip.title.as_deref(), Some("full send at the track 🏁"));

    let igtv = only_attachment(&messages[1]);
    assert_eq!(igtv.kind, "video");
    assert!(url_of(igtv).contains("DIgtv00005_101_video"), "{igtv:?}");
    assert_eq!(igtv.title.as_deref(), Some("long video"));

    let story = only_attachment(&messages[2]);
    assert_eq!(story.kind, "video");
    assert!(url_of(story).contains("DStory0002_101_video"), "{story:?}");

    let reel_reaction = only_attachment(&messages[3]);
    assert_eq!(reel_reaction.kind, "image");
    assert!(
        url_of(reel_reaction).contains("DStory0001_1080"),
        "{reel_reaction:?}"
    );
    assert_eq!(messages[3].content.as_deref(), Some("😍"));

    let raven = only_attachment(&messages[4]);
    assert_eq!(raven.kind, "image");
    // Fixture pictures are served scaled by 128/1080 (1080x1920 → 128x227).
    assert_eq!((raven.width, raven.height), (Some(128), Some(227)));
    for message in &messages {
        assert_eq!(
            message.content_type.as_deref(),
            Some("media"),
            "{message:?}"
        );
    }
}

#[tokio::test]
async fn shares_link_to_their_target_with_a_title_and_a_preview() {
    let mut fx = Fixture::start().await;
    let web = fx.connector.base_urls().web.clone();
    let kinds = [
        "media_share",
        "xma_media_share",
        "xma_clip",
        "xma_story_share",
        "xma_reel_share",
        "xma_reel_mention",
        "xma_profile",
        "profile",
    ];
    let items: Vec<Value> = kinds
        .iter()
        .map(|kind| json!({"item_type": kind}))
        .collect();
    let messages = post_and_list(&mut fx, &items).await;
    let shares: Vec<&Attachment> = messages.iter().map(only_attachment).collect();
    for (share, kind) in shares.iter().zip(kinds) {
        assert_eq!(share.kind, "share", "{kind}");
        assert!(
            share
                .preview_url
                .as_deref()
                .is_some_and(|url| url.starts_with(&format!("{web}/media/"))),
            "{kind}: {share:?}"
        );
    }
    let targets: Vec<&str> = shares.iter().map(|share| url_of(share)).collect();
    assert_eq!(
        targets,
        [
            format!("{web}/p/DAbcPost001/").as_str(),
            "https://www.instagram.com/p/DAbcPost002/?igsh=FAKE",
            "https://www.instagram.com/reel/DBJZC8BxAcG/?id=3479422340176283398_4863000001",
            "instagram://reels_share/?reel_id=4863000001&media_id=3632600000000000003_4863000001",
            "instagram://stories/17841400000000001/3632600000000000004",
            "instagram://stories/17841400000000002/3632600000000000005",
            "https://www.instagram.com/someone.public/",
            format!("{web}/someone.public/").as_str(),
        ]
    );
    let titles: Vec<&str> = shares
        .iter()
        .map(|share| share.title.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        titles,
        [
            "@someone.public — Sunset at the pier 🌅",
            "someone.public — Sunset at the pier 🌅",
            "someone.public — full send at the track 🏁",
            "someone.public — Story",
            "alice.wonder — Replied to your story",
            "alice.wonder — Mentioned you in their story",
            "someone.public — 12.3K followers",
            "Some Creator (@someone.public)",
        ]
    );
    assert!(shares[0]
        .preview_url
        .as_deref()
        .unwrap()
        .contains("DAbcPost001_1080x1350"));
    assert_eq!((shares[0].width, shares[0].height), (Some(128), Some(160)));
    assert!(shares[1]
        .preview_url
        .as_deref()
        .unwrap()
        .contains("xma_post002_n"));
    assert_eq!(shares[1].mime_type.as_deref(), Some("image/png"));
    assert_eq!((shares[2].width, shares[2].height), (Some(85), Some(151)));
    assert_eq!((shares[6].width, shares[6].height), (Some(17), Some(17)));
    // A reply to a story carries its own text besides the share.
    assert_eq!(messages[4].content.as_deref(), Some("lol"));
    assert_eq!(messages[0].content, None);
}

#[tokio::test]
async fn locations_links_and_kinds_without_media_are_readable() {
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
    ];
    let messages = post_and_list(&mut fx, &items).await;

    let place = only_attachment(&messages[0]);
    assert_eq!(place.kind, "location");
    assert_eq!(url_of(place), "geo:28.5421,-81.3775");
    assert_eq!(place.title.as_deref(), Some("Orlando, Florida"));

    let link = only_attachment(&messages[1]);
    assert_eq!(link.kind, "link");
    assert_eq!(url_of(link), "https://example.org/menu");
    assert_eq!(
        messages[1].content.as_deref(),
        Some("menu at https://example.org/menu")
    );
    assert_eq!(messages[1].content_type.as_deref(), Some("text"));

    let readable: Vec<(Option<&str>, Option<&str>, usize)> = messages[2..]
        .iter()
        .map(|message| {
            (
                message.content.as_deref(),
                message.content_type.as_deref(),
                message.attachments.len(),
            )
        })
        .collect();
    assert_eq!(
        readable,
        [
            (
                Some("This message isn't available in this version of Instagram."),
                Some("notice"),
                0
            ),
            (
                Some("This story is no longer available."),
                Some("notice"),
                0
            ),
            (Some("haha where is this??"), Some("text"), 0),
            (
                Some("Unsupported message type: poll_vote"),
                Some("notice"),
                0
            ),
        ]
    );
}

#[test]
fn expired_disappearing_media_says_so() {
    let messages = map_in_thread(vec![
        fixture_item("raven_media_expired"),
        fixture_item("raven_media"),
    ]);
    assert_eq!(
        messages[0].content.as_deref(),
        Some("This disappearing photo or video was already viewed or has expired.")
    );
    assert_eq!(messages[0].content_type.as_deref(), Some("notice"));
    assert!(messages[0].attachments.is_empty());
    assert_eq!(messages[1].content, None);
    assert_eq!(messages[1].attachments.len(), 1);
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
