//! Every action of connectors/instagram.yaml against the simulator: the
//! normalized result (deserialized into the model where the bridge will), and
//! the simulator's state after writes.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use instagram_sim::{samples, Presence as SimPresence};
use matrix_instagram::connector::http::FileData;
use matrix_instagram::connector::session::{keep_alive, ConnectorError, KeepAliveOutcome};
use matrix_instagram::connector::spec::CheckReaction;
use matrix_instagram::connector::typed::{MediaKind, MessageWrite, OutgoingText};
use matrix_instagram::model::{Conversation, ConversationKind, Message, Presence, User};
use serde_json::{json, Value};

use crate::common::Fixture;

/// The item ids of a thread, newest first, as the simulator holds them.
fn sim_item_ids(fx: &Fixture, thread_id: &str) -> Vec<String> {
    let snapshot = fx.sim.thread_snapshot(thread_id).unwrap();
    snapshot["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["item_id"].as_str().unwrap().to_owned())
        .collect()
}

fn newest_sim_item(fx: &Fixture, thread_id: &str) -> Value {
    fx.sim.thread_snapshot(thread_id).unwrap()["items"][0].clone()
}

fn member_state(fx: &Fixture, thread_id: &str) -> Value {
    let pk = fx.seed.demo.pk.to_string();
    fx.sim.thread_snapshot(thread_id).unwrap()["member_state"][pk].clone()
}

#[tokio::test]
async fn list_conversations_maps_direct_and_group_threads() {
    let mut fx = Fixture::start().await;
    let result = fx.run("list_conversations", json!({"limit": 50})).await;
    let conversations: Vec<Conversation> = serde_json::from_value(result).unwrap();
    let seeded: HashSet<&str> = fx
        .seed
        .thread_ids
        .iter()
        .map(String::as_str)
        .filter(|id| **id != fx.seed.pending_thread_id)
        .collect();
    let listed: HashSet<&str> = conversations.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(listed, seeded);

    let direct = conversations
        .iter()
        .find(|c| c.id == fx.seed.direct_thread_id)
        .unwrap();
    assert_eq!(direct.kind, ConversationKind::Direct);
    assert_eq!(direct.name.as_deref(), Some("Alice W"));
    assert_eq!(direct.participants.len(), 1);
    assert_eq!(direct.participants[0].id, fx.seed.friend.pk.to_string());
    assert_eq!(
        direct.participants[0].handle.as_deref(),
        Some("alice.wonder")
    );
    assert!(direct.updated_at.unwrap() > Utc::now() - chrono::Duration::days(2));

    let group = conversations
        .iter()
        .find(|c| c.id == fx.seed.group_thread_id)
        .unwrap();
    assert_eq!(group.kind, ConversationKind::Group);
    assert_eq!(group.name.as_deref(), Some("Weekend plans"));
    let handles: Vec<&str> = group
        .participants
        .iter()
        .filter_map(|p| p.handle.as_deref())
        .collect();
    assert_eq!(handles, ["alice.wonder", "bob_builder", "carol.sings"]);
}

#[tokio::test]
async fn conversations_carry_newest_item_read_state_and_requests() {
    let mut fx = Fixture::start().await;
    let friend = fx.seed.friend.pk.to_string();
    let thread = fx.seed.direct_thread_id.clone();
    let newest = sim_item_ids(&fx, &thread)[0].clone();
    fx.sim
        .mark_seen(&thread, fx.seed.friend.pk, &newest)
        .unwrap();

    let page = fx
        .connector
        .list_conversations_page(&mut fx.creds, None)
        .await
        .unwrap();
    assert_eq!(page.pending_requests, Some(1), "the seed's message request");
    let direct = page.conversations.iter().find(|c| c.id == thread).unwrap();
    assert_eq!(direct.newest_item_id.as_deref(), Some(newest.as_str()));
    assert_eq!(direct.pending, Some(false));
    let seen = direct
        .last_seen
        .iter()
        .find(|seen| seen.user_id == friend)
        .expect("the friend's read state");
    assert_eq!(seen.item_id.as_deref(), Some(newest.as_str()));
    assert!(seen.timestamp.is_some());

    let requests = fx.connector.list_pending(&mut fx.creds).await.unwrap();
    let ids: Vec<&str> = requests.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [fx.seed.pending_thread_id.as_str()]);
    assert_eq!(requests[0].pending, Some(true));
    assert!(requests[0].newest_item_id.is_some());
}

#[test]
fn conversations_tolerate_numbers_as_strings_and_missing_keys() {
    let conversation: Conversation = serde_json::from_value(json!({
        "id": 340282366841710300949128131112345678_u128.to_string(),
        "type": "group",
        "participants": [{"id": 17841400000000002_u64}],
        "unread_count": "1",
        "muted": "false",
        "newest_item_id": 32259295812882884_u64,
        "last_seen": [{"user_id": 17841400000000002_u64, "item_id": null}],
    }))
    .unwrap();
    assert_eq!(conversation.participants[0].id, "17841400000000002");
    assert_eq!(conversation.unread_count, Some(1));
    assert_eq!(conversation.muted, Some(false));
    assert_eq!(
        conversation.newest_item_id.as_deref(),
        Some("32259295812882884")
    );
    assert_eq!(conversation.last_seen[0].user_id, "17841400000000002");
    assert_eq!(conversation.pending, None);
}

#[tokio::test]
async fn list_conversations_validates_params_before_any_request() {
    let mut fx = Fixture::start().await;
    let err = fx.run_err("list_conversations", json!({"limit": 51})).await;
    assert_eq!(
        err,
        ConnectorError::InvalidParams {
            action: "list_conversations".into(),
            message: "`limit` must be at most 50".into(),
        }
    );
    let err = fx
        .run_err("list_conversations", json!({"filter": "spam"}))
        .await;
    assert!(err.to_string().contains("`filter` must be one of"), "{err}");
    assert_eq!(fx.sim.request_count("GET", "direct_v2/inbox/"), 0);
}

#[tokio::test]
async fn list_conversations_page_walks_the_whole_inbox() {
    let mut fx = Fixture::start().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page: matrix_instagram::model::ConversationPage = fx
            .connector
            .call(
                "list_conversations_page",
                json!({"cursor": cursor, "limit": 2}),
                &mut fx.creds,
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.conversations.len() <= 2);
        seen.extend(page.conversations.into_iter().map(|c| c.id));
        if !page.has_older {
            assert_eq!(page.cursor, None);
            break;
        }
        cursor = Some(page.cursor.expect("a page with older ones has a cursor"));
        assert!(pages < 20, "pagination does not end");
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates: {seen:?}");
    assert_eq!(
        seen.len(),
        fx.seed.thread_ids.len() - 1,
        "every non-pending thread"
    );
    assert!(pages >= 3);
}

#[tokio::test]
async fn list_page_walks_every_message_newest_first_without_duplicates() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let mut ids = Vec::new();
    let mut timestamps: Vec<DateTime<Utc>> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = fx
            .connector
            .list_messages_page(&mut fx.creds, &thread, cursor.as_deref())
            .await
            .unwrap();
        for message in &page.messages {
            assert_eq!(message.conversation_id, thread);
            ids.push(message.id.clone());
            timestamps.push(message.timestamp.unwrap());
        }
        match (page.has_older, page.cursor) {
            (true, Some(next)) => cursor = Some(next),
            (false, None) => break,
            other => panic!("inconsistent page end: {other:?}"),
        }
    }
    assert_eq!(
        ids,
        sim_item_ids(&fx, &thread),
        "all items, newest first, once"
    );
    assert!(timestamps.windows(2).all(|pair| pair[0] >= pair[1]));
}

#[tokio::test]
async fn list_maps_senders_replies_reactions_and_media() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let friend = fx.seed.friend.pk;
    let demo = fx.seed.demo.pk;
    let photo_id = fx
        .sim
        .post_item(
            &thread,
            friend,
            json!({"item_type": "media", "media_type": 1}),
        )
        .unwrap();
    let question = fx.sim.post_text(&thread, friend, "pizza tonight?").unwrap();
    fx.sim.react(&thread, &question, demo, "❤️").unwrap();
    let answer = fx.sim.post_reply(&thread, demo, "yes!", &question).unwrap();

    let result = fx
        .run("list", json!({"conversation_id": thread, "limit": 5}))
        .await;
    let messages: Vec<Message> = serde_json::from_value(result).unwrap();
    assert_eq!(messages[0].id, answer);
    assert_eq!(messages[0].content.as_deref(), Some("yes!"));
    assert_eq!(messages[0].is_outgoing, Some(true));
    let sender = messages[0].sender.as_ref().unwrap();
    assert_eq!(
        (sender.id.as_str(), sender.is_self),
        (demo.to_string().as_str(), Some(true))
    );
    let reply = messages[0].reply_to.as_ref().unwrap();
    assert_eq!(reply.message_id, question);
    assert_eq!(reply.preview.as_deref(), Some("pizza tonight?"));

    assert_eq!(messages[1].id, question);
    assert_eq!(messages[1].is_outgoing, Some(false));
    assert_eq!(messages[1].reply_to, None);
    assert_eq!(messages[1].reactions.len(), 1);
    assert_eq!(messages[1].reactions[0].emoji, "❤️");
    assert_eq!(messages[1].reactions[0].sender_id, Some(demo.to_string()));

    assert_eq!(messages[2].id, photo_id);
    assert_eq!(messages[2].kind.as_deref(), Some("media"));
    assert_eq!(messages[2].content_type.as_deref(), Some("media"));
    assert_eq!(messages[2].attachments.len(), 1);
    let photo = &messages[2].attachments[0];
    assert_eq!(photo.kind, "image");
    let bytes = reqwest::get(photo.url.as_deref().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "the attachment URL serves the image"
    );
}

#[tokio::test]
async fn get_conversation_and_get_find_one_thing() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.group_thread_id.clone();
    let conversation = fx
        .connector
        .get_conversation(&mut fx.creds, &thread)
        .await
        .unwrap();
    assert_eq!(conversation.kind, ConversationKind::Group);
    assert_eq!(conversation.participants.len(), 3);

    let item = fx
        .sim
        .post_text(&thread, fx.seed.friend.pk, "find me")
        .unwrap();
    let message: Message = fx
        .connector
        .call(
            "get",
            json!({"conversation_id": thread, "message_id": item}),
            &mut fx.creds,
        )
        .await
        .unwrap();
    assert_eq!(
        (message.id.as_str(), message.content.as_deref()),
        (item.as_str(), Some("find me"))
    );
    let missing = fx
        .run("get", json!({"conversation_id": thread, "message_id": "1"}))
        .await;
    assert_eq!(missing, Value::Null, "an unknown message maps to null");
    let missing = fx
        .connector
        .get_message(&mut fx.creds, &thread, "1")
        .await
        .unwrap();
    assert_eq!(missing, None);
}

#[tokio::test]
async fn send_with_reply_lands_in_the_thread_with_its_client_context() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let question = fx
        .sim
        .post_text(&thread, fx.seed.friend.pk, "coffee?")
        .unwrap();
    let sent = fx
        .connector
        .send_text(
            &mut fx.creds,
            &OutgoingText {
                conversation_id: thread.clone(),
                text: "sure, 10am".into(),
                reply_to: Some(question.clone()),
                client_context: Some("7334915788632151687".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.conversation_id, thread);
    assert_eq!(sent.content.as_deref(), Some("sure, 10am"));
    assert_eq!(sent.client_context.as_deref(), Some("7334915788632151687"));
    assert_eq!(sent.reply_to.as_ref().unwrap().message_id, question);
    assert_eq!(sent.is_outgoing, Some(true));

    let item = newest_sim_item(&fx, &thread);
    assert_eq!(item["item_id"], json!(sent.id));
    assert_eq!(item["text"], json!("sure, 10am"));
    assert_eq!(item["client_context"], json!("7334915788632151687"));
    assert_eq!(item["replied_to_message"]["item_id"], json!(question));
    assert_eq!(item["user_id"], json!(fx.seed.demo.pk));

    // Instagram does not promise to dedupe on client_context: sending again with the same
    // one is a second item (so a client must look before it repeats a send).
    let items_before = sim_item_ids(&fx, &thread).len();
    let again = fx
        .run(
            "send",
            json!({"conversation_id": thread, "text": "sure, 10am", "client_context": "7334915788632151687"}),
        )
        .await;
    assert_ne!(again["id"], json!(sent.id));
    assert_eq!(again["client_context"], json!("7334915788632151687"));
    assert_eq!(sim_item_ids(&fx, &thread).len(), items_before + 1);

    // Without a client_context one is generated and shared by the three fields.
    let plain = fx
        .run("send", json!({"conversation_id": thread, "text": "plain"}))
        .await;
    assert_eq!(plain["reply_to"]["message_id"], Value::Null);
    let item = newest_sim_item(&fx, &thread);
    assert_eq!(item["client_context"], plain["client_context"]);
    assert_eq!(item["otid"], plain["client_context"]);
    assert!(item.get("replied_to_message").is_none());
}

#[tokio::test]
async fn a_conversation_is_found_by_its_members() {
    let mut fx = Fixture::start().await;
    let newcomer = fx
        .sim
        .create_account("new.friend", "New Friend")
        .expect("creating an account");
    let members = json!({"user_ids": [newcomer.pk.to_string()]});
    let none = fx.run("get_conversation_with", members.clone()).await;
    assert_eq!(none, Value::Null, "no chat with them yet");

    let sent = fx
        .run(
            "send_to_user",
            json!({"user_id": newcomer.pk.to_string(), "text": "hello"}),
        )
        .await;
    let found = fx.run("get_conversation_with", members).await;
    assert_eq!(found["id"], sent["conversation_id"]);
    assert_eq!(found["type"], json!("direct"));
    assert!(found["participants"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == json!(newcomer.pk.to_string())));
}

#[tokio::test]
async fn send_to_user_and_send_link() {
    let mut fx = Fixture::start().await;
    let bob = fx.seed.contacts[0].pk;
    let sent = fx
        .run(
            "send_to_user",
            json!({"user_id": bob.to_string(), "text": "hi bob"}),
        )
        .await;
    let thread = sent["conversation_id"].as_str().unwrap().to_owned();
    let item = newest_sim_item(&fx, &thread);
    assert_eq!(item["text"], json!("hi bob"));
    assert_eq!(item["item_id"], sent["id"]);
    let members = fx.sim.thread_snapshot(&thread).unwrap()["members"].clone();
    assert!(members.as_array().unwrap().contains(&json!(bob)));

    let link = fx
        .run(
            "send_link",
            json!({"conversation_id": thread, "text": "look https://example.org/a", "urls": "https://example.org/a"}),
        )
        .await;
    let item = newest_sim_item(&fx, &thread);
    assert_eq!(item["item_type"], json!("link"));
    assert_eq!(item["link"]["text"], json!("look https://example.org/a"));
    assert_eq!(
        item["link"]["link_context"]["link_url"],
        json!("https://example.org/a")
    );
    let listed = fx
        .run("list", json!({"conversation_id": thread, "limit": 1}))
        .await;
    assert_eq!(listed[0]["id"], link["id"]);
    assert_eq!(listed[0]["content"], json!("look https://example.org/a"));
    assert_eq!(listed[0]["kind"], json!("link"));
}

#[tokio::test]
async fn react_and_unreact_change_the_item() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let item = fx
        .sim
        .post_text(&thread, fx.seed.friend.pk, "nice")
        .unwrap();
    fx.connector
        .write_message(&mut fx.creds, &thread, &item, MessageWrite::React("😂"))
        .await
        .unwrap();
    let reactions = newest_sim_item(&fx, &thread)["reactions"]["emojis"].clone();
    assert_eq!(reactions.as_array().unwrap().len(), 1);
    assert_eq!(reactions[0]["emoji"], json!("😂"));
    assert_eq!(reactions[0]["sender_id"], json!(fx.seed.demo.pk));

    fx.connector
        .write_message(&mut fx.creds, &thread, &item, MessageWrite::Unreact)
        .await
        .unwrap();
    let reactions = newest_sim_item(&fx, &thread)["reactions"]["emojis"].clone();
    assert!(
        reactions.as_array().is_none_or(Vec::is_empty),
        "{reactions}"
    );

    let err = fx
        .connector
        .write_message(&mut fx.creds, &thread, "1", MessageWrite::React("😂"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Platform { .. } | ConnectorError::NotFound { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn delete_unsends_own_items_only() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let sent = fx
        .run("send", json!({"conversation_id": thread, "text": "oops"}))
        .await;
    let id = sent["id"].as_str().unwrap().to_owned();
    fx.connector
        .write_message(&mut fx.creds, &thread, &id, MessageWrite::Delete)
        .await
        .unwrap();
    assert!(!sim_item_ids(&fx, &thread).contains(&id));

    let theirs = fx
        .sim
        .post_text(&thread, fx.seed.friend.pk, "mine")
        .unwrap();
    let err = fx
        .connector
        .write_message(&mut fx.creds, &thread, &theirs, MessageWrite::Delete)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Platform { .. }), "{err:?}");
    assert!(sim_item_ids(&fx, &thread).contains(&theirs));
}

#[tokio::test]
async fn thread_state_writes_change_the_simulator() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let params = json!({"conversation_id": thread});

    assert_eq!(member_state(&fx, &thread)["muted"], json!(false));
    assert_eq!(
        fx.run("mute", params.clone()).await,
        json!({"success": true})
    );
    assert_eq!(member_state(&fx, &thread)["muted"], json!(true));
    fx.run("unmute", params.clone()).await;
    assert_eq!(member_state(&fx, &thread)["muted"], json!(false));

    fx.run("mark_unread", params.clone()).await;
    assert_eq!(member_state(&fx, &thread)["marked_as_unread"], json!(true));
    let newest = sim_item_ids(&fx, &thread)[0].clone();
    fx.connector
        .write_message(&mut fx.creds, &thread, &newest, MessageWrite::MarkRead)
        .await
        .unwrap();
    let state = member_state(&fx, &thread);
    assert_eq!(state["last_seen_at"]["item_id"], json!(newest));
    assert_eq!(state["marked_as_unread"], json!(false));

    fx.connector
        .set_typing(&mut fx.creds, &thread, true)
        .await
        .unwrap();
    assert_eq!(
        member_state(&fx, &thread)["typing"]["activity_status"],
        json!(1)
    );
    fx.connector
        .set_typing(&mut fx.creds, &thread, false)
        .await
        .unwrap();
    assert_eq!(
        member_state(&fx, &thread)["typing"]["activity_status"],
        json!(0)
    );

    fx.run("archive", params.clone()).await;
    assert_eq!(member_state(&fx, &thread)["hidden"], json!(true));
    let listed = fx.run("list_conversations", json!({"limit": 50})).await;
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == json!(thread)),
        "an archived thread leaves the inbox"
    );
}

#[tokio::test]
async fn presence_reports_what_the_simulator_holds() {
    let mut fx = Fixture::start().await;
    let friend = fx.seed.friend.pk;
    let bob = fx.seed.contacts[0].pk;
    let seen_ms = 1_748_780_390_000;
    fx.sim
        .set_presence(
            friend,
            SimPresence {
                is_active: true,
                last_activity_at_ms: seen_ms,
            },
        )
        .unwrap();
    fx.sim
        .set_presence(
            bob,
            SimPresence {
                is_active: false,
                last_activity_at_ms: seen_ms - 60_000,
            },
        )
        .unwrap();
    let presence = fx
        .connector
        .presence(&mut fx.creds, &[friend.to_string(), bob.to_string()])
        .await
        .unwrap();
    assert_eq!(
        presence,
        vec![
            Presence {
                user_id: friend.to_string(),
                is_active: true,
                last_active_at: Some("2025-06-01T12:19:50Z".parse().unwrap()),
            },
            Presence {
                user_id: bob.to_string(),
                is_active: false,
                last_active_at: Some("2025-06-01T12:18:50Z".parse().unwrap()),
            },
        ]
    );
}

#[tokio::test]
async fn send_media_uploads_then_sends_and_the_item_serves_the_bytes() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let cases = [
        (
            MediaKind::Photo,
            "photo.png",
            "image/png",
            samples::png(30, 40, 1),
            "image",
            "media",
            "7334915000000000041",
        ),
        (
            MediaKind::Video,
            "clip.mp4",
            "video/mp4",
            samples::mp4(2),
            "video",
            "media",
            "7334915000000000042",
        ),
        (
            MediaKind::Voice,
            "note.m4a",
            "audio/mp4",
            samples::m4a(3),
            "audio",
            "voice_media",
            "7334915000000000043",
        ),
    ];
    for (kind, name, mime_type, bytes, attachment_kind, item_type, client_context) in cases {
        let bytes = Bytes::from(bytes);
        let file = FileData {
            name: name.into(),
            mime_type: mime_type.into(),
            bytes: bytes.clone(),
        };
        let sent = fx
            .connector
            .send_media(&mut fx.creds, kind, &thread, file, Some(client_context))
            .await
            .unwrap_or_else(|err| panic!("{kind:?}: {err}"));
        assert_eq!(sent.client_context.as_deref(), Some(client_context));

        let listed: Vec<Message> = fx
            .connector
            .call(
                "list",
                json!({"conversation_id": thread, "limit": 1}),
                &mut fx.creds,
            )
            .await
            .unwrap();
        assert_eq!(listed[0].id, sent.id);
        assert_eq!(listed[0].kind.as_deref(), Some(item_type));
        let attachment = listed[0]
            .attachments
            .iter()
            .find(|a| a.kind == attachment_kind)
            .unwrap_or_else(|| panic!("{kind:?}: {:?}", listed[0].attachments));
        let served = reqwest::get(attachment.url.as_deref().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            served, bytes,
            "{kind:?}: the item serves the uploaded bytes"
        );
    }
}

#[tokio::test]
async fn send_photo_goes_to_the_upload_host_with_its_headers() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let file = FileData {
        name: "pic.png".into(),
        mime_type: "image/png".into(),
        bytes: Bytes::from(samples::png(12, 10, 7)),
    };
    let sent = fx
        .connector
        .send_media(&mut fx.creds, MediaKind::Photo, &thread, file, None)
        .await
        .unwrap();
    assert_eq!(newest_sim_item(&fx, &thread)["item_id"], sent.id.as_str());
    let upload = fx
        .sim
        .request_log()
        .into_iter()
        .find(|entry| entry.path.starts_with("/messenger_image/fb_uploader_"))
        .unwrap();
    for header in [
        "authorization",
        "x-entity-name",
        "x-entity-length",
        "x-entity-type",
        "offset",
    ] {
        assert!(upload.headers.iter().any(|h| h == header), "{header} sent");
    }
    assert_eq!(upload.status, 200);
}

#[tokio::test]
async fn a_file_parameter_given_as_a_path_is_refused_not_read() {
    let mut fx = Fixture::start().await;
    let thread = fx.seed.direct_thread_id.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.jpg");
    std::fs::write(&path, b"\xff\xd8\xff bytes of a file on the bridge's disk").unwrap();
    fx.sim.clear_request_log();
    let err = fx
        .connector
        .execute(
            "send_photo",
            json!({"conversation_id": thread, "photo": path.to_str().unwrap()}),
            &mut fx.creds,
        )
        .await
        .unwrap_err();
    match &err {
        ConnectorError::InvalidParams { action, message } => {
            assert_eq!(action, "send_photo");
            assert_eq!(
                message,
                "`photo` is a file: its bytes must be handed over, not a value"
            );
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
    assert!(
        fx.sim.request_log().is_empty(),
        "nothing was sent: {:?}",
        fx.sim.request_log()
    );
}

#[tokio::test]
async fn users_search_unread_and_current_user() {
    let mut fx = Fixture::start().await;
    let user = fx
        .connector
        .lookup_user(&mut fx.creds, "alice.wonder")
        .await
        .unwrap();
    assert_eq!(
        (user.id, user.name.as_deref()),
        (fx.seed.friend.pk.to_string(), Some("Alice W"))
    );
    let err = fx
        .connector
        .lookup_user(&mut fx.creds, "no.such.user")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::NotFound { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Instagram says it does not exist: User not found"
    );
    let requests = fx.sim.request_log().len();
    let err = fx
        .connector
        .lookup_user(&mut fx.creds, "../../accounts/current_user")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameters for lookup_user: `username` must match the pattern ^[A-Za-z0-9._]{1,30}$"
    );
    assert_eq!(
        fx.sim.request_log().len(),
        requests,
        "refused before any request"
    );

    let by_id: User = fx
        .connector
        .call(
            "get_user",
            json!({"user_id": fx.seed.friend.pk}),
            &mut fx.creds,
        )
        .await
        .unwrap();
    assert_eq!(by_id.handle.as_deref(), Some("alice.wonder"));

    let me = fx.connector.current_user(&mut fx.creds).await.unwrap();
    assert_eq!(me.handle.as_deref(), Some("bridge.tester"));
    let validated = fx.connector.validate(&mut fx.creds).await.unwrap();
    assert_eq!(
        validated,
        json!({"user_id": fx.seed.demo.pk.to_string(), "username": "bridge.tester"})
    );

    let thread = fx.seed.group_thread_id.clone();
    let needle = fx
        .sim
        .post_text(&thread, fx.seed.friend.pk, "the zebra crossing")
        .unwrap();
    let found: Vec<Message> = fx
        .connector
        .call("search", json!({"query": "zebra"}), &mut fx.creds)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].id.as_str(), found[0].conversation_id.as_str()),
        (needle.as_str(), thread.as_str())
    );

    let unread: Vec<Message> = fx
        .connector
        .call("get_unread", json!({}), &mut fx.creds)
        .await
        .unwrap();
    let newest = unread.iter().find(|m| m.conversation_id == thread).unwrap();
    assert_eq!(
        newest.id, needle,
        "the newest item of an unread thread, with its thread id"
    );
    assert!(unread.iter().all(|m| !m.conversation_id.is_empty()));
}

#[tokio::test]
async fn keep_alive_reports_a_live_then_a_dead_session() {
    let mut fx = Fixture::start().await;
    assert_eq!(
        keep_alive(&fx.connector, &mut fx.creds).await,
        KeepAliveOutcome::Alive
    );
    assert_eq!(fx.sim.request_count("GET", "direct_v2/get_presence/"), 1);
    assert_eq!(
        fx.connector.spec().keep_alive.as_ref().unwrap().interval,
        Some(Duration::from_secs(4 * 3600))
    );
    fx.sim.expire_session(fx.seed.demo.pk).unwrap();
    match keep_alive(&fx.connector, &mut fx.creds).await {
        KeepAliveOutcome::LoggedOut { reaction, error } => {
            assert_eq!(reaction, CheckReaction::MarkDisconnected);
            assert!(matches!(
                error,
                ConnectorError::SessionExpired { status: 403, .. }
            ));
        }
        other => panic!("expected a logged-out outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn message_requests_can_be_listed_and_approved() {
    let mut fx = Fixture::start().await;
    let pending = fx.seed.pending_thread_id.clone();
    let requests: Vec<Conversation> = fx
        .connector
        .call("list_pending", json!({}), &mut fx.creds)
        .await
        .unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].id, pending);
    assert_eq!(
        requests[0].participants[0].handle.as_deref(),
        Some("dave.unknown")
    );

    fx.run("approve", json!({"conversation_id": pending})).await;
    assert_eq!(member_state(&fx, &pending)["pending"], json!(false));
    assert_eq!(fx.run("list_pending", json!({})).await, json!([]));
    let inbox = fx.run("list_conversations", json!({"limit": 50})).await;
    assert!(inbox
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == json!(pending)));
}

#[tokio::test]
async fn groups_can_be_created_renamed_extended_and_left() {
    let mut fx = Fixture::start().await;
    let friend = fx.seed.friend.pk.to_string();
    let bob = fx.seed.contacts[0].pk.to_string();
    let carol = fx.seed.contacts[1].pk.to_string();

    let group: Conversation = fx
        .connector
        .call(
            "create_group",
            json!({"user_ids": [friend, bob], "title": "Climbing"}),
            &mut fx.creds,
        )
        .await
        .unwrap();
    assert_eq!(group.kind, ConversationKind::Group);
    assert_eq!(group.name.as_deref(), Some("Climbing"));
    let members: Vec<&str> = group.participants.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(members, [friend.as_str(), bob.as_str()]);
    // The simulator decodes the signed body into its fields.
    let fields = fx.sim.request_log().last().unwrap().form_fields.clone();
    assert_eq!(
        fields,
        [
            "_uid",
            "_uuid",
            "client_context",
            "recipient_users",
            "thread_title"
        ]
    );

    let renamed: Conversation = fx
        .connector
        .call(
            "rename",
            json!({"conversation_id": group.id, "title": "Bouldering"}),
            &mut fx.creds,
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Bouldering"));
    assert_eq!(
        fx.sim.thread_snapshot(&group.id).unwrap()["title"],
        json!("Bouldering")
    );

    let extended: Conversation = fx
        .connector
        .call(
            "add_users",
            json!({"conversation_id": group.id, "user_ids": carol}),
            &mut fx.creds,
        )
        .await
        .unwrap();
    assert_eq!(extended.participants.len(), 3);

    fx.run("leave", json!({"conversation_id": group.id})).await;
    let members = fx.sim.thread_snapshot(&group.id).unwrap()["members"].clone();
    assert!(!members
        .as_array()
        .unwrap()
        .contains(&json!(fx.seed.demo.pk)));
}

#[tokio::test]
async fn search_users_finds_by_name() {
    let mut fx = Fixture::start().await;
    let users: Vec<User> = fx
        .connector
        .call("search_users", json!({"query": "alice"}), &mut fx.creds)
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].id, fx.seed.friend.pk.to_string());
    assert_eq!(users[0].handle.as_deref(), Some("alice.wonder"));
}

#[tokio::test]
async fn mark_unread_shows_in_the_unread_count() {
    let mut fx = Fixture::start().await;
    let group = fx.seed.group_thread_id.clone();
    let before = fx
        .connector
        .get_conversation(&mut fx.creds, &group)
        .await
        .unwrap();
    assert_eq!(before.unread_count, Some(0));
    fx.run("mark_unread", json!({"conversation_id": group}))
        .await;
    let after = fx
        .connector
        .get_conversation(&mut fx.creds, &group)
        .await
        .unwrap();
    assert_eq!(after.unread_count, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connector_serves_many_logins_from_spawned_tasks() {
    let fx = Fixture::start().await;
    let mut tasks = Vec::new();
    for account in [&fx.seed.demo, &fx.seed.friend, &fx.seed.contacts[0]] {
        let connector = fx.connector.clone();
        let mut creds =
            matrix_instagram::connector::auth::Credentials::from_cookies(account.cookies.clone());
        tasks.push(tokio::spawn(async move {
            connector
                .current_user(&mut creds)
                .await
                .map(|user| user.handle)
        }));
    }
    let mut handles = Vec::new();
    for task in tasks {
        handles.push(task.await.unwrap().unwrap());
    }
    assert_eq!(
        handles,
        [
            Some("bridge.tester".to_owned()),
            Some("alice.wonder".to_owned()),
            Some("bob_builder".to_owned())
        ]
    );
}
