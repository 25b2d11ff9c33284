//! The simulator plays Instagram where a poller could be fooled: opaque cursors bound to the
//! session that go stale, capped and short pages, per-viewer `seq_id`, signed media URLs
//! that expire, real media of every item kind, edits, message requests, drift mode, group
//! changes and thread activity. Each behaviour is driven through the Rust API and through
//! the `/_sim` control API.

// Each test binary uses only part of the shared client.
#[allow(dead_code)]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use instagram_sim::{Account, Simulator, PAGE_CAP};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::ApiClient;

/// A simulator with the viewer (`me`, whose client is returned) and `others`.
async fn world(others: &[&str]) -> (Simulator, Account, Vec<Account>, ApiClient) {
    let sim = Simulator::start().await;
    let me = sim.create_account("viewer", "Vera Viewer").unwrap();
    let others = others
        .iter()
        .map(|name| sim.create_account(name, &format!("{name} Person")).unwrap())
        .collect();
    let client = ApiClient::new(sim.api_base_url(), me.cookies.clone());
    (sim, me, others, client)
}

fn thread_path(thread_id: &str) -> String {
    format!("direct_v2/threads/{thread_id}/")
}

/// A `/_sim` call that must succeed; returns its JSON answer.
async fn control(sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> Value {
    let http = reqwest::Client::new();
    let url = format!("{}/_sim{path}", sim.base_url());
    let request = match method {
        "GET" => http.get(url),
        _ => http.post(url),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{method} /_sim{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn thread_page(client: &ApiClient, thread_id: &str, query: &[(&str, &str)]) -> Value {
    client.get_ok(&thread_path(thread_id), query).await["thread"].take()
}

/// Follows `oldest_cursor` from the newest page to the oldest; returns every item id and
/// the number of pages.
async fn all_item_ids(client: &ApiClient, thread_id: &str, limit: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", limit), ("direction", "older")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let page = thread_page(client, thread_id, &query).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= PAGE_CAP, "the server caps pages");
        ids.extend(
            items
                .iter()
                .map(|item| item["item_id"].as_str().unwrap().to_owned()),
        );
        if page["has_older"] != true {
            return (ids, pages);
        }
        cursor = Some(page["oldest_cursor"].as_str().unwrap().to_owned());
    }
}

fn assert_invalid_cursor(response: &support::ApiResponse) {
    assert!(response.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text
    );
    assert_eq!(
        response.json(),
        json!({"message": "Invalid cursor", "status": "fail"})
    );
}

/// A thread of `me` and `other` holding `count` texts from `other`; returns its id and
/// the item ids, oldest first.
fn thread_with_texts(
    sim: &Simulator,
    me: &Account,
    other: &Account,
    count: usize,
) -> (String, Vec<String>) {
    let thread_id = sim.create_thread(me.pk, &[other.pk], None).unwrap();
    let ids = (0..count)
        .map(|index| {
            sim.post_text(&thread_id, other.pk, &format!("message {index}"))
                .unwrap()
        })
        .collect();
    (thread_id, ids)
}

#[tokio::test]
async fn thread_cursors_are_opaque_bound_to_the_session_and_go_stale() {
    let (sim, me, others, client) = world(&["alice", "bob"]).await;
    let (thread_id, ids) = thread_with_texts(&sim, &me, &others[0], 30);
    let (other_thread, _) = thread_with_texts(&sim, &me, &others[1], 3);
    let page = thread_page(&client, &thread_id, &[("limit", "20")]).await;
    let cursor = page["oldest_cursor"].as_str().unwrap().to_owned();
    assert!(!ids.contains(&cursor), "the cursor is not an item id");
    assert_eq!(page["prev_cursor"], cursor.as_str());
    let older = [("cursor", cursor.as_str()), ("direction", "older")];
    let next = thread_page(&client, &thread_id, &older).await;
    assert_eq!(next["items"].as_array().unwrap().len(), 10);

    // Another session of the same account may not use it.
    let other_session = ApiClient::new(sim.api_base_url(), sim.new_session(me.pk).unwrap());
    assert_invalid_cursor(&other_session.get(&thread_path(&thread_id), &older).await);
    // Nor may a raw item id, nor the cursor of another thread.
    let raw = [("cursor", ids[5].as_str()), ("direction", "older")];
    assert_invalid_cursor(&client.get(&thread_path(&thread_id), &raw).await);
    assert_invalid_cursor(&client.get(&thread_path(&other_thread), &older).await);

    // Stale once its lifetime is over, or when the server drops its cursors.
    sim.set_cursor_ttl(Duration::ZERO);
    assert_invalid_cursor(&client.get(&thread_path(&thread_id), &older).await);
    sim.set_cursor_ttl(Duration::from_secs(600));
    thread_page(&client, &thread_id, &older).await;
    sim.invalidate_cursors();
    assert_invalid_cursor(&client.get(&thread_path(&thread_id), &older).await);

    // Restarting from the newest page works.
    let (all, _) = all_item_ids(&client, &thread_id, "20").await;
    assert_eq!(all.len(), 30);

    // The cursors of a thread in the inbox lead on into the thread, both ways.
    let inbox = client.get_ok("direct_v2/inbox/", &[]).await;
    let listed = inbox["inbox"]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|thread| thread["thread_id"] == thread_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["items"].as_array().unwrap().len(), 10);
    let cursor = listed["oldest_cursor"].as_str().unwrap();
    let older = thread_page(
        &client,
        &thread_id,
        &[("cursor", cursor), ("direction", "older")],
    )
    .await;
    assert_eq!(older["items"][0]["item_id"], ids[19].as_str());
    let cursor = older["newest_cursor"].as_str().unwrap();
    assert_eq!(older["has_newer"], true);
    assert_eq!(older["next_cursor"], cursor);
    let newer = thread_page(
        &client,
        &thread_id,
        &[("cursor", cursor), ("direction", "newer")],
    )
    .await;
    assert_eq!(newer["items"].as_array().unwrap().len(), 10);
    assert_eq!(newer["items"][0]["item_id"], ids[29].as_str());

    // A short lifetime runs out by itself.
    sim.set_cursor_ttl(Duration::from_millis(300));
    let page = thread_page(&client, &thread_id, &[]).await;
    let cursor = page["oldest_cursor"].as_str().unwrap().to_owned();
    let older = [("cursor", cursor.as_str()), ("direction", "older")];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = client.get(&thread_path(&thread_id), &older).await;
        if response.status == StatusCode::BAD_REQUEST {
            assert_invalid_cursor(&response);
            break;
        }
        assert!(Instant::now() < deadline, "the cursor never went stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The same through the control API.
    let settings = control(
        &sim,
        "POST",
        "/settings",
        Some(json!({"cursor_ttl_ms": 600_000})),
    )
    .await;
    assert_eq!(settings["cursor_ttl_ms"], 600_000);
    let page = thread_page(&client, &thread_id, &[]).await;
    let cursor = page["oldest_cursor"].as_str().unwrap().to_owned();
    let older = [("cursor", cursor.as_str()), ("direction", "older")];
    thread_page(&client, &thread_id, &older).await;
    control(&sim, "POST", "/cursors/invalidate", None).await;
    assert_invalid_cursor(&client.get(&thread_path(&thread_id), &older).await);
}

#[tokio::test]
async fn inbox_cursors_are_bound_to_the_session_and_the_folder() {
    let (sim, me, _, client) = world(&[]).await;
    for index in 0..25 {
        let friend = sim
            .create_account(&format!("friend{index}"), "Friend")
            .unwrap();
        let thread_id = sim.create_thread(me.pk, &[friend.pk], None).unwrap();
        sim.post_text(&thread_id, friend.pk, "hello").unwrap();
    }
    let first = client.get_ok("direct_v2/inbox/", &[("limit", "50")]).await;
    assert_eq!(
        first["inbox"]["threads"].as_array().unwrap().len(),
        PAGE_CAP
    );
    assert_eq!(first["inbox"]["has_older"], true);
    let cursor = first["inbox"]["oldest_cursor"].as_str().unwrap().to_owned();
    let older = [("cursor", cursor.as_str()), ("direction", "older")];
    let second = client.get_ok("direct_v2/inbox/", &older).await;
    assert_eq!(second["inbox"]["threads"].as_array().unwrap().len(), 5);
    assert!(second["inbox"].get("oldest_cursor").is_none());

    let other_session = ApiClient::new(sim.api_base_url(), sim.new_session(me.pk).unwrap());
    assert_invalid_cursor(&other_session.get("direct_v2/inbox/", &older).await);
    assert_invalid_cursor(&client.get("direct_v2/pending_inbox/", &older).await);
    control(&sim, "POST", "/settings", Some(json!({"cursor_ttl_ms": 0}))).await;
    assert_invalid_cursor(&client.get("direct_v2/inbox/", &older).await);
}

#[tokio::test]
async fn pages_are_capped_and_short_pages_still_lead_to_every_item() {
    let (sim, me, others, client) = world(&["alice"]).await;
    let (thread_id, ids) = thread_with_texts(&sim, &me, &others[0], 45);
    let page = thread_page(&client, &thread_id, &[("limit", "100")]).await;
    assert_eq!(page["items"].as_array().unwrap().len(), PAGE_CAP);
    let (all, pages) = all_item_ids(&client, &thread_id, "100").await;
    assert_eq!(pages, 3);
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(all, expected);

    sim.set_short_pages(true);
    let page = thread_page(&client, &thread_id, &[("limit", "20")]).await;
    let len = page["items"].as_array().unwrap().len();
    assert!(len < 20 && len > 0, "a short page: {len}");
    assert_eq!(page["has_older"], true);
    let (all, pages) = all_item_ids(&client, &thread_id, "20").await;
    assert_eq!(all, expected, "every item once, newest first");
    assert!(pages > 3, "short pages make more of them: {pages}");

    control(
        &sim,
        "POST",
        "/settings",
        Some(json!({"short_pages": false})),
    )
    .await;
    assert!(!sim.settings().short_pages);
    let (_, pages) = all_item_ids(&client, &thread_id, "20").await;
    assert_eq!(pages, 3);
    control(
        &sim,
        "POST",
        "/settings",
        Some(json!({"short_pages": true})),
    )
    .await;
    let settings = control(&sim, "GET", "/settings", None).await;
    assert_eq!(settings["short_pages"], true);
    let inbox_threads: Vec<String> = (0..22)
        .map(|index| {
            let friend = sim.create_account(&format!("f{index}"), "F").unwrap();
            let thread = sim.create_thread(me.pk, &[friend.pk], None).unwrap();
            sim.post_text(&thread, friend.pk, "hi").unwrap();
            thread
        })
        .collect();
    let inbox = client.get_ok("direct_v2/inbox/", &[("limit", "20")]).await;
    assert_eq!(inbox["inbox"]["threads"].as_array().unwrap().len(), 10);
    assert_eq!(inbox["inbox"]["has_older"], true);
    assert_eq!(inbox_threads.len(), 22);
}

#[tokio::test]
async fn seq_id_is_per_viewer_and_grows_with_every_change_it_can_see() {
    let (sim, me, others, client) = world(&["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&others[0], &others[1], &others[2]);
    let thread_id = sim.create_thread(me.pk, &[alice.pk], None).unwrap();
    let elsewhere = sim.create_thread(bob.pk, &[carol.pk], None).unwrap();
    let item = sim.post_text(&thread_id, alice.pk, "hi").unwrap();
    let inbox = client.get_ok("direct_v2/inbox/", &[]).await;
    let seq = sim.seq_id(me.pk).unwrap();
    assert_eq!(inbox["seq_id"], seq);
    let snapshot_at = inbox["snapshot_at_ms"].as_u64().unwrap();

    sim.post_text(&elsewhere, bob.pk, "not for the viewer")
        .unwrap();
    assert_eq!(
        sim.seq_id(me.pk).unwrap(),
        seq,
        "a change the viewer cannot see"
    );

    let mut last = seq;
    let changes: [&dyn Fn(); 4] = [
        &|| drop(sim.post_text(&thread_id, alice.pk, "again").unwrap()),
        &|| sim.react(&thread_id, &item, alice.pk, "😂").unwrap(),
        &|| sim.mark_seen(&thread_id, me.pk, &item).unwrap(),
        &|| sim.edit_text(&thread_id, &item, "hi!").unwrap(),
    ];
    for change in changes {
        change();
        let now = sim.seq_id(me.pk).unwrap();
        assert!(now > last, "seq_id grows: {last} -> {now}");
        last = now;
    }
    let inbox = client.get_ok("direct_v2/inbox/", &[]).await;
    assert_eq!(inbox["seq_id"], last);
    assert!(inbox["snapshot_at_ms"].as_u64().unwrap() >= snapshot_at);
    let over_http = control(&sim, "GET", &format!("/accounts/{}/seq_id", me.pk), None).await;
    assert_eq!(over_http["seq_id"], last);
}

/// The photo URL of the newest item of the thread, as the viewer fetches it now.
async fn newest_photo_url(client: &ApiClient, thread_id: &str) -> String {
    let page = thread_page(client, thread_id, &[]).await;
    page["items"][0]["media"]["image_versions2"]["candidates"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn fetch(url: &str) -> (StatusCode, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn media_urls_are_signed_and_answer_403_once_expired_or_changed() {
    let (sim, me, others, client) = world(&["alice"]).await;
    let thread_id = sim.create_thread(me.pk, &[others[0].pk], None).unwrap();
    sim.post_item(&thread_id, others[0].pk, json!({"item_type": "media"}))
        .unwrap();
    let url = newest_photo_url(&client, &thread_id).await;
    let oe = url.rsplit("oe=").next().unwrap().to_owned();
    assert!(u64::from_str_radix(&oe, 16).is_ok(), "oe is hex: {url}");
    assert!(url.contains("oh="), "{url}");
    let (status, bytes) = fetch(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[..4], b"\x89PNG");

    let later = format!("{:X}", u64::from_str_radix(&oe, 16).unwrap() + 3600);
    let tampered = [
        url.replace(&format!("oe={oe}"), &format!("oe={later}")),
        url.replace("oh=00_", "oh=00_f"),
        url.split('?').next().unwrap().to_owned(),
    ];
    for bad in tampered {
        let (status, body) = fetch(&bad).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad}");
        assert_eq!(body, b"Bad URL hash");
    }

    sim.set_media_url_ttl(Duration::ZERO);
    let expired = newest_photo_url(&client, &thread_id).await;
    let (status, body) = fetch(&expired).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, b"URL signature expired");
    control(
        &sim,
        "POST",
        "/settings",
        Some(json!({"media_url_ttl_secs": 60})),
    )
    .await;
    let fresh = newest_photo_url(&client, &thread_id).await;
    assert_eq!(
        fetch(&fresh).await.0,
        StatusCode::OK,
        "fetching the item again gives a fresh URL"
    );

    control(
        &sim,
        "POST",
        "/settings",
        Some(json!({"media_url_ttl_secs": 1})),
    )
    .await;
    let short = newest_photo_url(&client, &thread_id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&short).await.0 != StatusCode::FORBIDDEN {
        assert!(Instant::now() < deadline, "the URL never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Width and height of a PNG or GIF.
fn image_size(bytes: &[u8]) -> (u32, u32) {
    if bytes.starts_with(b"\x89PNG") {
        let read = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        return (read(16), read(20));
    }
    assert!(bytes.starts_with(b"GIF89a"), "an image");
    let read = |at: usize| u32::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    (read(6), read(8))
}

/// Top-level ISO-BMFF boxes.
fn mp4_boxes(bytes: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        boxes.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        assert!(size >= 8 && at + size <= bytes.len(), "a well-formed box");
        at += size;
    }
    boxes
}

#[tokio::test]
async fn every_item_kind_serves_real_local_media_of_known_size() {
    let (sim, me, others, client) = world(&["alice"]).await;
    let thread_id = sim.create_thread(me.pk, &[others[0].pk], None).unwrap();
    let kinds = [
        json!({"item_type": "media", "media_type": 1}),
        json!({"item_type": "media", "media_type": 2}),
        json!({"item_type": "voice_media", "waveform": [0.1, 0.5, 0.9]}),
        json!({"item_type": "animated_media"}),
        json!({"item_type": "animated_media", "is_sticker": true}),
        json!({"item_type": "media_share"}),
        json!({"item_type": "clip"}),
        json!({"item_type": "xma_clip"}),
        json!({"item_type": "story_share"}),
        json!({"item_type": "xma_story_share"}),
        json!({"item_type": "reel_share"}),
        json!({"item_type": "xma_reel_share"}),
        json!({"item_type": "xma_reel_mention"}),
        json!({"item_type": "felix_share"}),
        json!({"item_type": "xma_media_share"}),
        json!({"item_type": "profile"}),
        json!({"item_type": "xma_profile"}),
        json!({"item_type": "raven_media"}),
    ];
    let mut names = HashSet::new();
    for (index, kind) in kinds.iter().enumerate() {
        // Half through the Rust API, half through the control API.
        let item_id = if index % 2 == 0 {
            sim.post_item(&thread_id, others[0].pk, kind.clone())
                .unwrap()
        } else {
            let body = json!({"from_pk": others[0].pk, "item": kind});
            let answer = control(
                &sim,
                "POST",
                &format!("/threads/{thread_id}/items"),
                Some(body),
            )
            .await;
            answer["item_id"].as_str().unwrap().to_owned()
        };
        let page = thread_page(&client, &thread_id, &[]).await;
        let item = &page["items"][0];
        assert_eq!(item["item_id"], item_id.as_str());
        let rendered = item.to_string();
        assert!(
            !rendered.contains("cdninstagram") && !rendered.contains("giphy.com"),
            "{kind}: no remote media left"
        );
        let media = sim.item_media(&thread_id, &item_id).unwrap();
        assert!(!media.is_empty(), "{kind} has media");
        let over_http = control(
            &sim,
            "GET",
            &format!("/threads/{thread_id}/items/{item_id}/media"),
            None,
        )
        .await;
        assert_eq!(over_http.as_array().unwrap().len(), media.len());
        for file in media {
            assert!(names.insert(file.name.clone()), "{kind}: media of its own");
            let (status, bytes) = fetch(&file.url).await;
            assert_eq!(status, StatusCode::OK, "{kind}: {}", file.url);
            assert_eq!(bytes.len(), file.size);
            assert_eq!(Some(bytes.clone()), sim.media_bytes(&file.name));
            let raw = reqwest::get(format!("{}/_sim/media/{}", sim.base_url(), file.name))
                .await
                .unwrap();
            assert_eq!(raw.bytes().await.unwrap().to_vec(), bytes);
            match file.content_type.as_str() {
                "image/png" | "image/gif" => {
                    assert_eq!(
                        Some(image_size(&bytes)),
                        file.width.zip(file.height),
                        "{kind}"
                    );
                }
                "video/mp4" | "audio/mp4" => {
                    let boxes = mp4_boxes(&bytes);
                    assert_eq!(boxes[0], "ftyp", "{kind}");
                    assert!(boxes.contains(&"moov".to_owned()), "{kind}: playable");
                    assert!(file.duration_ms.is_some_and(|ms| ms > 0));
                }
                other => panic!("{kind}: unexpected {other}"),
            }
        }
    }
    // The declared sizes are the files' own.
    let page = thread_page(&client, &thread_id, &[("limit", "20")]).await;
    let items = page["items"].as_array().unwrap();
    let photo = items
        .iter()
        .find(|item| item["media"]["media_type"] == 1)
        .unwrap();
    let candidate = &photo["media"]["image_versions2"]["candidates"][0];
    let (_, bytes) = fetch(candidate["url"].as_str().unwrap()).await;
    assert_eq!(
        image_size(&bytes),
        (
            candidate["width"].as_u64().unwrap() as u32,
            candidate["height"].as_u64().unwrap() as u32
        )
    );
    let voice = items
        .iter()
        .find(|item| item["item_type"] == "voice_media")
        .unwrap();
    assert_eq!(voice["voice_media"]["media"]["audio"]["duration"], 1500);
    assert_eq!(
        voice["voice_media"]["media"]["audio"]["waveform_data"],
        json!([0.1, 0.5, 0.9])
    );
    let sticker = items
        .iter()
        .find(|item| item["animated_media"]["is_sticker"] == true)
        .unwrap();
    assert_eq!(
        sticker["animated_media"]["images"]["fixed_height"]["width"],
        "64"
    );
    let video = items
        .iter()
        .find(|item| item["media"]["media_type"] == 2)
        .unwrap();
    assert_eq!(video["media"]["video_versions"][0]["width"], 72);
    assert!(
        video["media"]["image_versions2"]["candidates"][0]["url"].is_string(),
        "a preview"
    );
}

#[tokio::test]
async fn edits_change_the_text_and_move_the_thread_activity() {
    let (sim, me, others, client) = world(&["alice"]).await;
    let alice = &others[0];
    let thread_id = sim.create_thread(me.pk, &[alice.pk], None).unwrap();
    let item_id = sim.post_text(&thread_id, alice.pk, "helo").unwrap();
    let before = thread_page(&client, &thread_id, &[]).await;
    assert!(before["items"][0].get("is_edited").is_none());
    let activity = before["last_activity_at"].as_u64().unwrap();

    sim.edit_text(&thread_id, &item_id, "hello").unwrap();
    let after = thread_page(&client, &thread_id, &[]).await;
    let item = &after["items"][0];
    assert_eq!(item["item_id"], item_id.as_str());
    assert_eq!(item["text"], "hello");
    assert_eq!(item["is_edited"], true);
    assert_eq!(item["edit_count"], 1);
    assert!(item["last_edited_at"].as_u64().unwrap() > item["timestamp"].as_u64().unwrap());
    assert!(after["last_activity_at"].as_u64().unwrap() > activity);

    control(
        &sim,
        "POST",
        &format!("/threads/{thread_id}/items/{item_id}/edit"),
        Some(json!({"text": "hello!"})),
    )
    .await;
    let item = thread_page(&client, &thread_id, &[]).await["items"][0].take();
    assert_eq!(
        (item["text"].clone(), item["edit_count"].clone()),
        (json!("hello!"), json!(2))
    );

    let like = sim
        .post_item(&thread_id, alice.pk, json!({"item_type": "like"}))
        .unwrap();
    assert!(
        sim.edit_text(&thread_id, &like, "no").is_err(),
        "only text items"
    );

    // The viewer edits its own items through the API, not others'.
    let own = sim.post_text(&thread_id, me.pk, "mine").unwrap();
    let edit = |id: &str| format!("{}items/{id}/edit/", thread_path(&thread_id));
    client
        .post_ok(&edit(&own), &[("body", "mine, edited")])
        .await;
    let snapshot = sim.thread_snapshot(&thread_id).unwrap();
    assert_eq!(snapshot["items"][0]["text"], "mine, edited");
    let refused = client.post(&edit(&item_id), &[("body", "theirs")]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["status"], "fail");
}

#[tokio::test]
async fn a_strangers_first_message_is_a_message_request_until_approved() {
    let (sim, me, others, client) = world(&["stranger", "friend"]).await;
    let (stranger, friend) = (&others[0], &others[1]);
    let (thread_id, _) = sim
        .message_user(
            stranger.pk,
            me.pk,
            json!({"item_type": "text", "text": "hi, we met at the fair"}),
        )
        .unwrap();
    let thread_ids = |body: &Value| -> Vec<String> {
        body["inbox"]["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|thread| thread["thread_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let inbox = client.get_ok("direct_v2/inbox/", &[]).await;
    assert!(!thread_ids(&inbox).contains(&thread_id));
    let pending = client.get_ok("direct_v2/pending_inbox/", &[]).await;
    assert_eq!(thread_ids(&pending), vec![thread_id.clone()]);
    assert_eq!(pending["inbox"]["threads"][0]["pending"], true);
    assert_eq!(pending["pending_requests_total"], 1);

    // A second message stays a request; the control API writes the same way.
    let answer = control(
        &sim,
        "POST",
        &format!("/accounts/{}/messages", me.pk),
        Some(json!({"from_pk": stranger.pk, "text": "are you there?"})),
    )
    .await;
    assert_eq!(answer["thread_id"], thread_id.as_str());
    let pending = client.get_ok("direct_v2/pending_inbox/", &[]).await;
    assert_eq!(
        pending["inbox"]["threads"][0]["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    client
        .post_ok(&format!("{}approve/", thread_path(&thread_id)), &[])
        .await;
    let inbox = client.get_ok("direct_v2/inbox/", &[]).await;
    assert!(thread_ids(&inbox).contains(&thread_id));

    // Someone the viewer already talks to lands in that thread, not in the requests.
    let existing = sim.create_thread(me.pk, &[friend.pk], None).unwrap();
    let (thread, _) = sim
        .message_user(
            friend.pk,
            me.pk,
            json!({"item_type": "text", "text": "hey"}),
        )
        .unwrap();
    assert_eq!(thread, existing);
    let pending = client.get_ok("direct_v2/pending_inbox/", &[]).await;
    assert!(thread_ids(&pending).is_empty());
}

#[tokio::test]
async fn drift_mode_sends_strings_drops_optional_keys_and_adds_unknown_kinds() {
    let (sim, me, others, client) = world(&["alice"]).await;
    let thread_id = sim.create_thread(me.pk, &[others[0].pk], None).unwrap();
    sim.post_text(&thread_id, others[0].pk, "before").unwrap();
    sim.set_drift(true);
    let item_id = sim.post_text(&thread_id, others[0].pk, "during").unwrap();
    let page = thread_page(&client, &thread_id, &[]).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "the text, then an item of an unknown kind");
    assert_eq!(items[0]["item_type"], "sim_future_card");
    assert!(items[0]["sim_future_card"].is_object());
    assert_eq!(items[1]["item_id"], item_id.as_str());
    for item in items {
        assert!(
            item["timestamp"].is_string() && item["user_id"].is_string(),
            "{item}"
        );
        assert!(item.get("is_sent_by_viewer").is_none());
    }
    assert!(page["users"][0]["pk"].is_string());
    assert!(page.get("inviter").is_none());

    control(&sim, "POST", "/settings", Some(json!({"drift": false}))).await;
    let page = thread_page(&client, &thread_id, &[]).await;
    assert!(page["items"][0]["timestamp"].is_u64());
    assert!(page["items"][0].get("is_sent_by_viewer").is_some());
    sim.post_text(&thread_id, others[0].pk, "after").unwrap();
    assert_eq!(
        sim.thread_snapshot(&thread_id).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// The thread's `last_activity_at` as the viewer sees it.
async fn activity(client: &ApiClient, thread_id: &str) -> u64 {
    thread_page(client, thread_id, &[]).await["last_activity_at"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn group_changes_add_action_logs_and_change_the_thread() {
    let (sim, me, others, client) = world(&["alice", "bob", "carol", "dave"]).await;
    let (alice, bob, carol, dave) = (&others[0], &others[1], &others[2], &others[3]);
    let thread_id = sim
        .create_thread(me.pk, &[alice.pk, bob.pk], Some("Trip"))
        .unwrap();
    let newest_action = |page: &Value| {
        let item = &page["items"][0];
        assert_eq!(item["item_type"], "action_log");
        item["action_log"]["description"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let pks = |page: &Value, key: &str| -> Vec<u64> {
        page[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|user| user["pk"].as_u64().unwrap())
            .collect()
    };

    let mut last = activity(&client, &thread_id).await;
    sim.add_members(&thread_id, alice.pk, &[carol.pk]).unwrap();
    let page = thread_page(&client, &thread_id, &[]).await;
    assert_eq!(
        newest_action(&page),
        "alice Person added carol Person to the group."
    );
    assert_eq!(page["items"][0]["user_id"], alice.pk);
    assert!(pks(&page, "users").contains(&carol.pk));

    sim.remove_member(&thread_id, me.pk, bob.pk).unwrap();
    let page = thread_page(&client, &thread_id, &[]).await;
    assert_eq!(
        newest_action(&page),
        "Vera Viewer removed bob Person from the group."
    );
    assert!(!pks(&page, "users").contains(&bob.pk));
    assert!(pks(&page, "left_users").contains(&bob.pk));

    sim.rename_group(&thread_id, alice.pk, "Road trip").unwrap();
    let page = thread_page(&client, &thread_id, &[]).await;
    assert_eq!(page["thread_title"], "Road trip");
    assert_eq!(
        newest_action(&page),
        "alice Person named the group Road trip."
    );

    let picture = sim.set_group_picture(&thread_id, alice.pk).unwrap();
    let page = thread_page(&client, &thread_id, &[]).await;
    assert_eq!(
        newest_action(&page),
        "alice Person changed the group photo."
    );
    let url = page["thread_image"]["image_versions2"]["candidates"][0]["url"]
        .as_str()
        .unwrap();
    let (status, bytes) = fetch(url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Some(bytes), sim.media_bytes(&picture));
    let now = page["last_activity_at"].as_u64().unwrap();
    assert!(now > last);
    last = now;

    // The same through the control API.
    let base = format!("/threads/{thread_id}");
    control(
        &sim,
        "POST",
        &format!("{base}/members"),
        Some(json!({"actor_pk": me.pk, "pks": [dave.pk]})),
    )
    .await;
    control(
        &sim,
        "POST",
        &format!("{base}/members/{}/remove", carol.pk),
        Some(json!({"actor_pk": alice.pk})),
    )
    .await;
    control(
        &sim,
        "POST",
        &format!("{base}/title"),
        Some(json!({"actor_pk": dave.pk, "title": "Trip 2"})),
    )
    .await;
    let answer = control(
        &sim,
        "POST",
        &format!("{base}/picture"),
        Some(json!({"actor_pk": dave.pk})),
    )
    .await;
    assert_ne!(answer["name"], picture.as_str());
    control(
        &sim,
        "POST",
        &format!("{base}/leave"),
        Some(json!({"pk": dave.pk})),
    )
    .await;
    let snapshot = control(&sim, "GET", &base, None).await;
    assert_eq!(snapshot["title"], "Trip 2");
    assert_eq!(snapshot["members"], json!([me.pk, alice.pk]));
    assert!(snapshot["image"]
        .as_str()
        .unwrap()
        .contains(answer["name"].as_str().unwrap()));
    let descriptions: Vec<&str> = snapshot["items"]
        .as_array()
        .unwrap()
        .iter()
        .take(5)
        .map(|item| item["action_log"]["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        [
            "dave Person left the group.",
            "dave Person changed the group photo.",
            "dave Person named the group Trip 2.",
            "alice Person removed carol Person from the group.",
            "Vera Viewer added dave Person to the group.",
        ]
    );
    assert!(snapshot["last_activity_at"].as_u64().unwrap() > last);
}

#[tokio::test]
async fn reactions_unsends_and_reads_show_in_the_thread() {
    let (sim, me, others, client) = world(&["alice"]).await;
    let alice = &others[0];
    let thread_id = sim.create_thread(me.pk, &[alice.pk], None).unwrap();
    let first = sim.post_text(&thread_id, alice.pk, "one").unwrap();
    let second = sim.post_text(&thread_id, alice.pk, "two").unwrap();

    let mut last = activity(&client, &thread_id).await;
    let changes: [&dyn Fn(); 3] = [
        &|| sim.react(&thread_id, &first, alice.pk, "👍").unwrap(),
        &|| sim.unreact(&thread_id, &first, alice.pk).unwrap(),
        &|| sim.unsend(&thread_id, &second).unwrap(),
    ];
    for change in changes {
        change();
        let now = activity(&client, &thread_id).await;
        assert!(now > last, "the thread's activity moves: {last} -> {now}");
        last = now;
    }
    let inbox = client.get_ok("direct_v2/inbox/", &[]).await;
    assert_eq!(inbox["inbox"]["threads"][0]["last_activity_at"], last);

    // Read receipts as Instagram reports them: per pk string, item id and µs strings.
    control(
        &sim,
        "POST",
        &format!("/threads/{thread_id}/items/{first}/seen"),
        Some(json!({"pk": me.pk})),
    )
    .await;
    let page = thread_page(&client, &thread_id, &[]).await;
    let seen = &page["last_seen_at"][me.pk.to_string()];
    assert_eq!(seen["item_id"], first.as_str());
    let timestamp = seen["timestamp"].as_str().unwrap();
    assert_eq!(page["items"][0]["timestamp"].to_string(), timestamp);
    assert_eq!(seen["created_at"], timestamp);
}

#[tokio::test]
async fn a_shared_profile_can_be_a_real_account() {
    let (sim, me, others, client) = world(&["alice", "bob"]).await;
    let (alice, bob) = (&others[0], &others[1]);
    let thread_id = sim.create_thread(me.pk, &[alice.pk], None).unwrap();
    sim.post_item(
        &thread_id,
        alice.pk,
        json!({"item_type": "profile", "user_pk": bob.pk}),
    )
    .unwrap();
    let body =
        json!({"from_pk": alice.pk, "item": {"item_type": "xma_profile", "user_pk": bob.pk}});
    control(
        &sim,
        "POST",
        &format!("/threads/{thread_id}/items"),
        Some(body),
    )
    .await;
    let page = thread_page(&client, &thread_id, &[]).await;
    let xma = &page["items"][0]["xma_profile"][0];
    assert_eq!(xma["header_title_text"], "bob");
    assert_eq!(xma["target_url"], "https://www.instagram.com/bob/");
    let profile = &page["items"][1]["profile"];
    assert_eq!(
        (profile["pk"].clone(), profile["username"].clone()),
        (json!(bob.pk), json!("bob"))
    );
    for url in [
        &profile["profile_pic_url"],
        &xma["header_icon_url_info"]["url"],
    ] {
        let (status, bytes) = fetch(url.as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(image_size(&bytes), (150, 150));
    }
    let refused = sim.post_item(
        &thread_id,
        alice.pk,
        json!({"item_type": "clip", "user_pk": bob.pk}),
    );
    assert!(refused.is_err(), "user_pk is for profiles only");
}
