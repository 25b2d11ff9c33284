//! Every Instagram item kind through the running bridge, as a Matrix user
//! sees it: posted in the simulator by a friend, polled by the bridge process,
//! and read back from Synapse: the right room, the right puppet, the content a
//! client shows (media bytes equal to the simulator's, fetched back from the
//! media repository), on SQLite and PostgreSQL.

use serde_json::{json, Value};

use crate::harness::client::RoomEvent;
use crate::harness::relay::{poll, RelayFixture};
use crate::harness::{Backend, HomeserverDatabase};

on_both_databases!(
    every_item_kind,
    every_item_kind_arrives_as_a_user_sees_it_sqlite,
    every_item_kind_arrives_as_a_user_sees_it_postgres
);

/// What the bridged events of one item must show.
enum Expect {
    /// One `m.room.message` of this msgtype whose body contains the text.
    Message(&'static str, &'static str),
    /// An `m.image`/`m.video`/`m.audio` whose file is the item's first media file.
    Media(&'static str),
    /// An `m.sticker` event carrying the item's file.
    Sticker,
    /// A text with a link to the shared thing on Instagram's web site, and a
    /// preview picture.
    Share(&'static str),
}

async fn every_item_kind(backend: Backend) {
    let mut fixture = RelayFixture::prepare(backend, "alice.kinds").await;
    fixture.poll_fast();
    let (friend, thread, first) = fixture.friend_thread_saying(
        "friend.kinds",
        "Kind Friend",
        "hello @friend.kinds, see https://example.org/a?b=c",
    );
    fixture.e2e.start_bridge().await;
    let room = fixture.join_portal(&thread).await;

    let kinds: Vec<(Value, Expect)> = vec![
        (
            json!({"item_type": "link", "text": "look https://example.com/page"}),
            Expect::Message("m.text", "https://example.com/page"),
        ),
        (
            json!({"item_type": "like"}),
            Expect::Message("m.text", "❤️"),
        ),
        (json!({"item_type": "media"}), Expect::Media("m.image")),
        (
            json!({"item_type": "media", "media_type": 2}),
            Expect::Media("m.video"),
        ),
        (
            json!({"item_type": "voice_media", "duration_ms": 2500, "waveform": [0.1, 0.9, 0.4]}),
            Expect::Media("m.audio"),
        ),
        (
            json!({"item_type": "animated_media"}),
            Expect::Media("m.video"),
        ),
        (
            json!({"item_type": "animated_media", "is_sticker": true}),
            Expect::Sticker,
        ),
        (json!({"item_type": "media_share"}), Expect::Share("/p/")),
        (json!({"item_type": "clip"}), Expect::Share("/reel/")),
        (json!({"item_type": "xma_clip"}), Expect::Share("/reel/")),
        (
            json!({"item_type": "story_share"}),
            Expect::Share("/stories/"),
        ),
        (
            json!({"item_type": "xma_media_share"}),
            Expect::Share("/p/"),
        ),
        (
            json!({"item_type": "profile", "user_pk": friend.pk}),
            Expect::Share("/friend.kinds/"),
        ),
        (
            json!({"item_type": "location"}),
            Expect::Message("m.location", ""),
        ),
        (
            json!({"item_type": "raven_media"}),
            Expect::Message("m.notice", "view-once"),
        ),
        (
            json!({"item_type": "action_log", "description": "Kind Friend named the group Plans."}),
            Expect::Message("m.notice", "named the group Plans"),
        ),
        (
            json!({"item_type": "video_call_event", "video_call_event": {
                "action": "video_call_ended", "description": "Video chat ended"}}),
            Expect::Message("m.notice", "Video chat ended"),
        ),
        (
            json!({"item_type": "sim_future_card", "sim_future_card": {"title": "?"}}),
            Expect::Message("m.notice", "sim_future_card"),
        ),
    ];
    let mut posted = Vec::new();
    for (kind, expect) in kinds {
        let item = fixture
            .sim
            .post_item(&thread, friend.pk, kind.clone())
            .unwrap_or_else(|err| panic!("posting {kind}: {err}"));
        posted.push((item, kind, expect));
    }
    let reply = fixture
        .sim
        .post_reply(&thread, friend.pk, "answering the first", &first)
        .expect("posting a reply");

    let store = fixture.store().await;
    let alice = fixture.login_id.clone();
    // A thread is relayed in order: once the last item is in, every part of
    // the earlier ones is too.
    poll("the last item bridged", || async {
        let parts = store.message_parts(&alice, &thread, &reply).await.ok()?;
        (!parts.is_empty()).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let puppet = format!("@instagram_{}:localhost", friend.pk);
    let events_of = |item: String| {
        let (store, alice, thread, room) = (&store, &alice, &thread, &room);
        let fixture = &fixture;
        async move {
            let parts = poll(&format!("item {item} bridged"), || async {
                let parts = store.message_parts(alice, thread, &item).await.ok()?;
                (!parts.is_empty()).then_some(parts)
            })
            .await
            .unwrap_or_else(|err| panic!("{err}"));
            let ids: Vec<String> = parts.iter().map(|part| part.event_id.clone()).collect();
            let history = fixture
                .wait_for_history(room, &format!("the events of item {item}"), |events| {
                    ids.iter()
                        .all(|id| events.iter().any(|e| e.event["event_id"] == id.as_str()))
                })
                .await;
            ids.iter()
                .map(|id| {
                    history
                        .iter()
                        .find(|e| e.event["event_id"] == id.as_str())
                        .cloned()
                        .expect("found above")
                })
                .collect::<Vec<RoomEvent>>()
        }
    };

    // The first text: links kept, the bridged friend's @username as a pill.
    let text = events_of(first.clone()).await;
    let first_event = text[0].event["event_id"].as_str().unwrap().to_owned();
    let content = &text[0].event["content"];
    assert_eq!(text[0].sender(), puppet, "from the friend's puppet");
    assert!(content["body"]
        .as_str()
        .unwrap()
        .contains("https://example.org/a?b=c"));
    assert!(
        content["formatted_body"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("https://matrix.to/#/{puppet}")),
        "a mention pill: {content}"
    );
    assert_eq!(content["m.mentions"]["user_ids"], json!([puppet]));

    for (item, kind, expect) in posted {
        let events = events_of(item.clone()).await;
        let main = &events[0];
        assert_eq!(
            main.sender(),
            puppet,
            "{kind} comes from the friend's puppet"
        );
        assert!(
            main.event["origin_server_ts"].as_i64().is_some(),
            "{kind} has a timestamp"
        );
        let content = &main.event["content"];
        match expect {
            Expect::Message(msgtype, text) => {
                assert_eq!(content["msgtype"], msgtype, "{kind}: {content}");
                assert!(
                    content["body"].as_str().unwrap_or_default().contains(text),
                    "{kind}: {content}"
                );
                if msgtype == "m.location" {
                    assert!(
                        content["geo_uri"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with("geo:"),
                        "{kind}: {content}"
                    );
                }
            }
            Expect::Media(msgtype) => {
                assert_eq!(content["msgtype"], msgtype, "{kind}: {content}");
                same_file(&fixture, &thread, &item, content, &kind).await;
                if msgtype == "m.audio" {
                    assert!(
                        content.get("org.matrix.msc3245.voice").is_some(),
                        "{content}"
                    );
                    assert_eq!(content["info"]["duration"], 2500, "{content}");
                }
                if kind["media_type"] == 2 {
                    assert!(content["info"]["thumbnail_url"].is_string(), "{content}");
                    assert!(content["info"]["duration"].as_u64().is_some(), "{content}");
                }
                if kind["item_type"] == "animated_media" {
                    assert_eq!(content["info"]["fi.mau.gif"], true, "{content}");
                }
            }
            Expect::Sticker => {
                assert_eq!(main.kind(), "m.sticker", "{kind}");
                same_file(&fixture, &thread, &item, content, &kind).await;
            }
            Expect::Share(path) => {
                assert_eq!(content["msgtype"], "m.text", "{kind}: {content}");
                let body = content["body"].as_str().unwrap_or_default();
                // xma shares carry Instagram's own link; others are built on
                // the configured web site.
                let on_instagram = [fixture.sim.base_url(), "https://www.instagram.com".into()]
                    .iter()
                    .any(|site| body.contains(&format!("{site}{path}")));
                assert!(on_instagram, "{kind}: {body}");
                let preview = events
                    .iter()
                    .find(|e| e.event["content"]["msgtype"] == "m.image")
                    .unwrap_or_else(|| {
                        let contents: Vec<&Value> =
                            events.iter().map(|e| &e.event["content"]).collect();
                        panic!("{kind}: a preview picture among {contents:?}")
                    });
                let mxc = preview.event["content"]["url"].as_str().unwrap();
                let bytes = fixture
                    .download(mxc)
                    .await
                    .expect("downloading the preview");
                assert!(!bytes.is_empty(), "{kind}: the preview has bytes");
            }
        }
    }

    // A reply points at the bridged event it answers.
    let answer = events_of(reply).await;
    assert_eq!(
        answer[0].event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        first_event.as_str()
    );
}

/// The file a media event points at holds the simulator's bytes of the item's
/// first media file.
async fn same_file(
    fixture: &RelayFixture,
    thread: &str,
    item: &str,
    content: &Value,
    kind: &Value,
) {
    let mxc = content["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{kind}: a media URL in {content}"));
    let uploaded = fixture.download(mxc).await.expect("downloading the media");
    let media = fixture
        .sim
        .item_media(thread, item)
        .expect("the item's media in the simulator");
    let matches = media.iter().any(|file| {
        fixture
            .sim
            .media_bytes(&file.name)
            .is_some_and(|bytes| bytes == uploaded)
    });
    assert!(
        matches,
        "{kind}: the uploaded file is one of the item's files"
    );
    assert_eq!(
        content["info"]["size"].as_u64(),
        Some(uploaded.len() as u64),
        "{kind}: the stated size"
    );
}

/// A homeserver on PostgreSQL, as Synapse is deployed (and as the relay
/// bench runs it), gets the messages as the tests' SQLite one does.
#[tokio::test]
async fn a_homeserver_on_postgres_gets_the_messages() {
    let mut fixture =
        RelayFixture::prepare_on(Backend::Sqlite, HomeserverDatabase::Postgres, "alice.pghs").await;
    let data_dir = fixture.e2e.synapse.data_dir().to_owned();
    assert!(
        !data_dir.join("homeserver.db").exists(),
        "Synapse made no SQLite database"
    );
    fixture.poll_fast();
    let (friend, thread) = fixture.friend_thread("friend.pghs", "Postgres Friend");
    fixture
        .sim
        .post_text(&thread, friend.pk, "hello through postgres")
        .expect("posting a text");
    fixture.e2e.start_bridge().await;
    let room = fixture.join_portal(&thread).await;
    let history = fixture
        .wait_for_history(&room, "the friend's text", |events| {
            events.iter().any(|e| e.body() == "hello through postgres")
        })
        .await;
    let puppet = format!("@instagram_{}:localhost", friend.pk);
    assert!(
        history
            .iter()
            .any(|e| e.body() == "hello through postgres" && e.sender() == puppet),
        "from the friend's puppet"
    );
    assert!(
        !data_dir.join("homeserver.db").exists(),
        "Synapse made no SQLite database"
    );
}

/// Media Instagram no longer serves (its signed URL expired, and so does a
/// fresh one) never loses the message: a photo becomes a notice saying what
/// it was, and a shared post keeps its text and link.
#[tokio::test]
async fn media_that_cannot_be_had_leaves_a_notice() {
    let mut fixture = RelayFixture::prepare(Backend::Sqlite, "alice.expired").await;
    fixture.poll_fast();
    let (friend, thread) = fixture.friend_thread("friend.expired", "Expired Friend");
    fixture.sim.set_media_url_ttl(std::time::Duration::ZERO);
    let photo = fixture
        .sim
        .post_item(&thread, friend.pk, json!({"item_type": "media"}))
        .expect("posting a photo");
    fixture
        .sim
        .post_item(&thread, friend.pk, json!({"item_type": "media_share"}))
        .expect("posting a shared post");
    let last = fixture
        .sim
        .post_text(&thread, friend.pk, "did you see them?")
        .expect("posting a text");
    fixture.e2e.start_bridge().await;
    let room = fixture.join_portal(&thread).await;
    let history = fixture
        .wait_for_history(&room, "the text after the media", |events| {
            events.iter().any(|e| e.body() == "did you see them?")
        })
        .await;
    let puppet = format!("@instagram_{}:localhost", friend.pk);
    let bodies: Vec<(&str, &str)> = history
        .iter()
        .filter(|e| e.kind() == "m.room.message" && e.sender() == puppet)
        .map(|e| {
            (
                e.event["content"]["msgtype"].as_str().unwrap_or(""),
                e.body(),
            )
        })
        .collect();
    assert_eq!(bodies.len(), 3, "one event each, in order: {bodies:?}");
    assert_eq!(bodies[0].0, "m.notice", "{bodies:?}");
    assert!(
        bodies[0].1.starts_with("A photo could not be bridged"),
        "{bodies:?}"
    );
    assert_eq!(bodies[1].0, "m.text", "{bodies:?}");
    assert!(bodies[1].1.starts_with("Shared a post by"), "{bodies:?}");
    assert_eq!(bodies[2], ("m.text", "did you see them?"));
    let store = fixture.store().await;
    for item in [&photo, &last] {
        let parts = store
            .message_parts(&fixture.login_id, &thread, item)
            .await
            .expect("reading the parts");
        assert_eq!(parts.len(), 1, "item {item} bridged once");
    }
}
