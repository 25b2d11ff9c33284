//! The private API over real HTTP: authentication checks, pagination, sends, reactions,
//! unsend, thread state changes, uploads and media, users, presence, search, faults and
//! the rate limit.

// Each test binary uses only part of the shared client.
#[allow(dead_code)]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use instagram_sim::{Account, ClaimEcho, DemoSeed, Fault, Presence, Settings, Simulator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{app_http, send_form, ApiClient, APP_ID, APP_USER_AGENT};

async fn demo() -> (Simulator, DemoSeed, ApiClient) {
    let sim = Simulator::start().await;
    let seed = sim.seed_demo().expect("demo seed");
    let client = ApiClient::new(sim.api_base_url(), seed.demo.cookies.clone());
    (sim, seed, client)
}

fn client_for(sim: &Simulator, account: &Account) -> ApiClient {
    ApiClient::new(sim.api_base_url(), account.cookies.clone())
}

fn thread_path(thread_id: &str) -> String {
    format!("direct_v2/threads/{thread_id}/")
}

/// POSTs a thread verb such as `mute/` with the plain form the app sends.
async fn thread_verb(client: &ApiClient, thread_id: &str, verb: &str) -> Value {
    client
        .post_ok(
            &format!("{}{verb}/", thread_path(thread_id)),
            &[("_uuid", "x")],
        )
        .await
}

/// The thread as `client` sees it (first page).
async fn fetch_thread(client: &ApiClient, thread_id: &str) -> Value {
    client.get_ok(&thread_path(thread_id), &[]).await["thread"].take()
}

/// Sends a text to `recipient_users` (opening the thread if needed); returns the ack.
async fn send_text_to_recipients(
    client: &ApiClient,
    recipients: &str,
    text: &str,
    client_context: &str,
) -> Value {
    client
        .post_ok(
            "direct_v2/threads/broadcast/text/",
            &send_form(
                &[("recipient_users", recipients), ("text", text)],
                client_context,
            ),
        )
        .await
}

/// The reactions on one item of a fetched thread.
fn emojis_on(thread: &Value, item_id: &str) -> Vec<Value> {
    item_in(thread, item_id).unwrap()["reactions"]["emojis"]
        .as_array()
        .unwrap()
        .clone()
}

/// Where an item is unsent.
fn delete_path(thread_id: &str, item_id: &str) -> String {
    format!("direct_v2/threads/{thread_id}/items/{item_id}/delete/")
}

fn item_in<'a>(thread: &'a Value, item_id: &str) -> Option<&'a Value> {
    thread["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["item_id"] == item_id)
}

#[tokio::test]
async fn requests_without_a_valid_session_get_login_required() {
    let (sim, seed, client) = demo().await;
    let anonymous = ApiClient::new(sim.api_base_url(), Default::default());
    let response = anonymous.get("direct_v2/inbox/", &[]).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.json()["message"], "login_required");
    assert_eq!(response.json()["logout_reason"], 8);

    let mut forged = seed.demo.cookies.clone();
    forged.insert("sessionid".into(), "17841400000000001%3Aforged".into());
    let forged = ApiClient::new(sim.api_base_url(), forged);
    assert_eq!(
        forged.get("direct_v2/inbox/", &[]).await.status,
        StatusCode::FORBIDDEN
    );

    let current = client
        .get_ok("accounts/current_user/", &[("edit", "true")])
        .await;
    assert_eq!(current["user"]["username"], "bridge.tester");
    assert_eq!(current["user"]["pk"], seed.demo.pk);

    sim.expire_session(seed.demo.pk).unwrap();
    let response = client
        .get("accounts/current_user/", &[("edit", "true")])
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.json()["message"], "login_required");
}

#[tokio::test]
async fn posts_need_a_matching_csrf_header() {
    let (sim, seed, client) = demo().await;
    let url = format!(
        "{}/direct_v2/threads/{}/mute/",
        sim.api_base_url(),
        seed.direct_thread_id
    );
    let cookie = seed
        .demo
        .cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let http = app_http();
    for csrf in [None, Some("wrong-token")] {
        let mut request = http
            .post(&url)
            .header("User-Agent", APP_USER_AGENT)
            .header("X-IG-App-ID", APP_ID)
            .header("Cookie", &cookie)
            .body("_uuid=x");
        if let Some(csrf) = csrf {
            request = request.header("X-CSRFTOKEN", csrf);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "fail");
    }
    assert_eq!(
        sim.thread_snapshot(&seed.direct_thread_id).unwrap()["member_state"]
            [seed.demo.pk.to_string()]["muted"],
        false
    );
    client
        .post_ok(
            &format!("direct_v2/threads/{}/mute/", seed.direct_thread_id),
            &[("_uuid", "x")],
        )
        .await;
    let log = sim.request_log();
    let csrf_results: Vec<Option<bool>> = log
        .iter()
        .filter(|entry| entry.path.ends_with("/mute/"))
        .map(|entry| entry.csrf_ok)
        .collect();
    assert_eq!(csrf_results, vec![Some(false), Some(false), Some(true)]);
}

#[tokio::test]
async fn a_flagged_account_gets_challenge_required_until_cleared() {
    let (sim, seed, client) = demo().await;
    sim.flag_challenge(seed.demo.pk).unwrap();
    let response = client.get("direct_v2/inbox/", &[]).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["message"], "challenge_required");
    assert_eq!(response.json()["challenge"]["api_path"], "/challenge/");
    sim.clear_challenge(seed.demo.pk).unwrap();
    client.get_ok("direct_v2/inbox/", &[]).await;
}

#[tokio::test]
async fn www_claim_is_set_once_and_its_echo_is_logged_without_values() {
    let (sim, seed, client) = demo().await;
    let first = client
        .get("accounts/current_user/", &[("edit", "true")])
        .await;
    let claim = first
        .headers
        .get("x-ig-set-www-claim")
        .expect("claim on first response")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(claim.starts_with("hmac."));
    let second = client
        .get("accounts/current_user/", &[("edit", "true")])
        .await;
    assert!(
        second.headers.get("x-ig-set-www-claim").is_none(),
        "claim echoed, no new one"
    );
    let log = sim.request_log();
    let echoes: Vec<ClaimEcho> = log.iter().map(|entry| entry.www_claim).collect();
    assert_eq!(echoes, vec![ClaimEcho::Absent, ClaimEcho::Matches]);
    assert!(log[0].cookies.contains(&"sessionid".to_owned()));
    assert!(log[1].headers.contains(&"x-ig-www-claim".to_owned()));
    assert_eq!(log[0].pk, Some(seed.demo.pk));
    let serialized = serde_json::to_string(&log).unwrap();
    for name in ["sessionid", "csrftoken", "mid", "ig_did"] {
        assert!(
            !serialized.contains(seed.demo.cookies[name].as_str()),
            "log leaks the {name} value"
        );
    }
    assert!(!serialized.contains(&claim), "log leaks the claim");
    assert_eq!(sim.request_count("GET", "accounts/current_user/"), 2);
    assert_eq!(
        sim.request_count("GET", "/api/v1/accounts/current_user/"),
        2
    );
}

#[tokio::test]
async fn inbox_pages_cover_every_thread_once_newest_first() {
    let (sim, seed, client) = demo().await;
    let mut seen = Vec::new();
    let mut activity = Vec::new();
    let first = client
        .get_ok(
            "direct_v2/inbox/",
            &[("limit", "2"), ("thread_message_limit", "3")],
        )
        .await;
    let seq_id = first["seq_id"].to_string();
    let mut page = first;
    let mut pages = 0;
    loop {
        pages += 1;
        let inbox = &page["inbox"];
        for thread in inbox["threads"].as_array().unwrap() {
            seen.push(thread["thread_id"].as_str().unwrap().to_owned());
            activity.push(thread["last_activity_at"].as_u64().unwrap());
            let items = thread["items"].as_array().unwrap();
            assert!(items.len() <= 3, "thread_message_limit honoured");
            let ids: Vec<u128> = items
                .iter()
                .map(|item| item["item_id"].as_str().unwrap().parse().unwrap())
                .collect();
            assert!(
                ids.windows(2).all(|pair| pair[0] > pair[1]),
                "items newest first"
            );
        }
        if !inbox["has_older"].as_bool().unwrap() {
            assert!(
                inbox.get("oldest_cursor").is_none(),
                "last page has no oldest_cursor"
            );
            break;
        }
        let cursor = inbox["oldest_cursor"].as_str().unwrap().to_owned();
        page = client
            .get_ok(
                "direct_v2/inbox/",
                &[
                    ("limit", "2"),
                    ("cursor", &cursor),
                    ("direction", "older"),
                    ("seq_id", &seq_id),
                ],
            )
            .await;
    }
    assert_eq!(pages, 3);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no thread twice");
    let expected: HashSet<&String> = seed
        .thread_ids
        .iter()
        .filter(|id| **id != seed.pending_thread_id)
        .collect();
    assert_eq!(unique, expected);
    assert!(
        activity.windows(2).all(|pair| pair[0] >= pair[1]),
        "threads by recent activity"
    );
    assert_eq!(seen[0], seed.direct_thread_id);

    let pending = client.get_ok("direct_v2/pending_inbox/", &[]).await;
    let pending_threads = pending["inbox"]["threads"].as_array().unwrap();
    assert_eq!(pending_threads.len(), 1);
    assert_eq!(
        pending_threads[0]["thread_id"],
        seed.pending_thread_id.as_str()
    );
    assert_eq!(pending_threads[0]["pending"], true);
    client
        .post_ok(
            &format!("direct_v2/threads/{}/approve/", seed.pending_thread_id),
            &[("filter", "DEFAULT")],
        )
        .await;
    let inbox = client.get_ok("direct_v2/inbox/", &[("limit", "20")]).await;
    assert!(inbox["inbox"]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .any(|thread| thread["thread_id"] == seed.pending_thread_id.as_str()));
    drop(sim);
}

#[tokio::test]
async fn inbox_unread_filter_and_thread_shapes() {
    let (_sim, seed, client) = demo().await;
    let inbox = client
        .get_ok(
            "direct_v2/inbox/",
            &[("selected_filter", "unread"), ("limit", "20")],
        )
        .await;
    let threads = inbox["inbox"]["threads"].as_array().unwrap();
    assert!(!threads.is_empty());
    assert!(threads.iter().all(|thread| thread["read_state"] == 1));
    let direct = threads
        .iter()
        .find(|thread| thread["thread_id"] == seed.direct_thread_id.as_str())
        .unwrap();
    assert_eq!(direct["thread_title"], "Alice W");
    assert_eq!(direct["is_group"], false);
    assert_eq!(direct["canonical"], true);
    assert_eq!(direct["viewer_id"], seed.demo.pk);
    let users = direct["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "users exclude the viewer");
    assert_eq!(users[0]["pk"], seed.friend.pk);
    assert!(direct["thread_id"].as_str().unwrap().len() == 39);
    assert!(direct["last_seen_at"][seed.demo.pk.to_string()]["item_id"].is_string());
    let item = &direct["items"][0];
    let item_id: u128 = item["item_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        item_id >> 64,
        u128::from(item["timestamp"].as_u64().unwrap()),
        "item_id = timestamp_us << 64"
    );
    assert_eq!(item["item_id"].as_str().unwrap().len(), 35);
    assert_eq!(inbox["viewer"]["pk"], seed.demo.pk);
}

#[tokio::test]
async fn thread_pages_go_strictly_older_until_has_older_is_false() {
    let (sim, seed, client) = demo().await;
    let path = thread_path(&seed.direct_thread_id);
    let mut collected: Vec<u128> = Vec::new();
    let mut page = client
        .get_ok(
            &path,
            &[("limit", "7"), ("visual_message_return_type", "unseen")],
        )
        .await["thread"]
        .take();
    assert_eq!(page["has_newer"], false);
    loop {
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        let ids: Vec<u128> = items
            .iter()
            .map(|item| item["item_id"].as_str().unwrap().parse().unwrap())
            .collect();
        // Cursors are opaque: not the item ids they stand for.
        for cursor in ["newest_cursor", "oldest_cursor"] {
            assert!(page[cursor].is_string());
            assert!(ids.iter().all(|id| page[cursor] != id.to_string().as_str()));
        }
        if let Some(last) = collected.last() {
            assert!(ids[0] < *last, "strictly older than the cursor");
        }
        collected.extend(ids);
        if !page["has_older"].as_bool().unwrap() {
            assert_eq!(page["prev_cursor"], "MINCURSOR");
            break;
        }
        assert_eq!(page["prev_cursor"], page["oldest_cursor"]);
        let cursor = page["oldest_cursor"].as_str().unwrap().to_owned();
        page = client
            .get_ok(
                &path,
                &[("limit", "7"), ("cursor", &cursor), ("direction", "older")],
            )
            .await["thread"]
            .take();
        assert_eq!(page["has_newer"], true);
    }
    assert!(
        collected.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first, no duplicates"
    );
    let snapshot = sim.thread_snapshot(&seed.direct_thread_id).unwrap();
    assert_eq!(collected.len(), snapshot["items"].as_array().unwrap().len());
    assert!(collected.len() >= 40);
}

#[tokio::test]
async fn thread_pages_hold_every_item_kind_with_downloadable_media() {
    let (_sim, seed, client) = demo().await;
    let path = thread_path(&seed.direct_thread_id);
    let mut items = Vec::new();
    let mut query = vec![("limit".to_owned(), "100".to_owned())];
    loop {
        let query_pairs: Vec<(&str, &str)> = query
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let page = client.get_ok(&path, &query_pairs).await["thread"].take();
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= 20, "the server caps the page");
        items.extend(page_items.iter().cloned());
        if page["has_older"] != true {
            break;
        }
        query = vec![
            ("limit".to_owned(), "100".to_owned()),
            (
                "cursor".to_owned(),
                page["oldest_cursor"].as_str().unwrap().to_owned(),
            ),
            ("direction".to_owned(), "older".to_owned()),
        ];
    }
    let kinds: HashSet<&str> = items
        .iter()
        .map(|item| item["item_type"].as_str().unwrap())
        .collect();
    for kind in [
        "text",
        "link",
        "media",
        "voice_media",
        "animated_media",
        "like",
        "media_share",
        "xma_media_share",
        "placeholder",
        "clip",
        "story_share",
    ] {
        assert!(kinds.contains(kind), "seed has a {kind} item");
    }
    let http = app_http();
    let mut urls = Vec::new();
    for item in &items {
        if let Some(url) = item["media"]["image_versions2"]["candidates"][0]["url"].as_str() {
            urls.push((url.to_owned(), "image/png"));
        }
        if let Some(url) = item["media"]["video_versions"][0]["url"].as_str() {
            urls.push((url.to_owned(), "video/mp4"));
        }
        if let Some(url) = item["voice_media"]["media"]["audio"]["audio_src"].as_str() {
            urls.push((url.to_owned(), "audio/mp4"));
        }
    }
    assert!(urls.len() >= 4);
    for (url, content_type) in urls {
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert!(!response.bytes().await.unwrap().is_empty());
    }
    let reply = items
        .iter()
        .find(|item| item["replied_to_message"].is_object())
        .expect("a reply");
    assert_eq!(
        reply["replied_to_message"]["text"],
        "are we still on for saturday?"
    );
}

#[tokio::test]
async fn sending_a_reply_shows_in_the_thread_and_a_repeat_is_a_new_item_unless_deduped() {
    let (sim, seed, client) = demo().await;
    let incoming = sim
        .post_text(&seed.direct_thread_id, seed.friend.pk, "lunch today?")
        .unwrap();
    let thread_ids = format!("[{}]", seed.direct_thread_id);
    let form = [
        ("action", "send_item"),
        ("thread_ids", thread_ids.as_str()),
        ("text", "sure, noon"),
        ("client_context", "7334915788632151687"),
        ("mutation_token", "7334915788632151687"),
        ("offline_threading_id", "7334915788632151687"),
        ("_uuid", "3f1c1a2e-0000-4000-8000-000000000001"),
        ("replied_to_item_id", incoming.as_str()),
        ("replied_to_client_context", "whatever"),
    ];
    let ack = client
        .post_ok("direct_v2/threads/broadcast/text/", &form)
        .await;
    assert_eq!(ack["action"], "item_ack");
    assert_eq!(ack["status_code"], "200");
    assert_eq!(ack["payload"]["client_context"], "7334915788632151687");
    assert_eq!(ack["payload"]["thread_id"], seed.direct_thread_id.as_str());
    assert_eq!(
        ack["message_metadata"][0]["participant_ids"],
        json!([seed.friend.pk.to_string()])
    );
    let item_id = ack["payload"]["item_id"].as_str().unwrap().to_owned();
    let timestamp: u128 = ack["payload"]["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(item_id.parse::<u128>().unwrap(), timestamp << 64);

    let thread = fetch_thread(&client, &seed.direct_thread_id).await;
    let items = thread["items"].as_array().unwrap();
    assert_eq!(items[0]["item_id"], item_id.as_str(), "newest first");
    assert_eq!(items[1]["item_id"], incoming.as_str());
    let sent = &items[0];
    assert_eq!(sent["text"], "sure, noon");
    assert_eq!(sent["is_sent_by_viewer"], true);
    assert_eq!(sent["client_context"], "7334915788632151687");
    assert_eq!(sent["otid"], "7334915788632151687");
    assert_eq!(sent["replied_to_message"]["item_id"], incoming.as_str());
    assert_eq!(sent["replied_to_message"]["text"], "lunch today?");
    assert_eq!(items[1]["is_sent_by_viewer"], false);

    // Instagram does not promise to dedupe: by default a repeated send is a second item.
    let repeated = client
        .post_ok("direct_v2/threads/broadcast/text/", &form)
        .await;
    let second_id = repeated["payload"]["item_id"].as_str().unwrap().to_owned();
    assert_ne!(
        second_id, item_id,
        "a repeated client_context is a new item"
    );
    let snapshot = sim.thread_snapshot(&seed.direct_thread_id).unwrap();
    let with_context: Vec<&Value> = snapshot["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["client_context"] == "7334915788632151687")
        .collect();
    assert_eq!(with_context.len(), 2, "{snapshot}");

    // With deduplication switched on, the retry is recognized.
    sim.set_settings(Settings {
        dedupe_client_context: true,
        ..sim.settings()
    });
    let retry = client
        .post_ok("direct_v2/threads/broadcast/text/", &form)
        .await;
    assert_eq!(
        retry["payload"]["item_id"],
        item_id.as_str(),
        "same client_context, the first item with it"
    );
    assert_eq!(
        sim.thread_snapshot(&seed.direct_thread_id).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        snapshot["items"].as_array().unwrap().len(),
        "the retry added nothing"
    );

    let missing = [
        ("thread_ids", thread_ids.as_str()),
        ("text", "x"),
        ("replied_to_item_id", "1"),
    ];
    assert_eq!(
        client
            .post("direct_v2/threads/broadcast/text/", &missing)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn sending_to_recipient_users_opens_or_reuses_the_direct_thread() {
    let (sim, seed, client) = demo().await;
    let erin = seed
        .contacts
        .iter()
        .find(|account| account.username == "erin.e")
        .unwrap();
    let recipients = format!("[[{}]]", erin.pk);
    let ack = send_text_to_recipients(&client, &recipients, "hi erin", "1").await;
    assert_eq!(ack["payload"]["canonical"], true);
    let thread_id = ack["payload"]["thread_id"].as_str().unwrap();
    let by_participants = client
        .get_ok(
            "direct_v2/threads/get_by_participants/",
            &[("recipient_users", &format!("[{}]", erin.pk))],
        )
        .await;
    assert_eq!(by_participants["thread"]["thread_id"], thread_id);
    let new_contact = sim.create_account("zoe.new", "Zoe N").unwrap();
    let none_yet = client
        .get_ok(
            "direct_v2/threads/get_by_participants/",
            &[("recipient_users", &format!("[{}]", new_contact.pk))],
        )
        .await;
    assert!(none_yet.get("thread").is_none());
    let recipients = format!("[[\"{}\"]]", new_contact.pk);
    let ack = send_text_to_recipients(&client, &recipients, "hello zoe", "2").await;
    let new_thread = ack["payload"]["thread_id"].as_str().unwrap();
    let zoe = client_for(&sim, &new_contact);
    let zoe_thread = fetch_thread(&zoe, new_thread).await;
    assert_eq!(zoe_thread["items"][0]["text"], "hello zoe");
    assert_eq!(zoe_thread["items"][0]["is_sent_by_viewer"], false);
    assert_eq!(zoe_thread["thread_title"], "Bridge Tester");
    assert_eq!(zoe_thread["read_state"], 1);
}

#[tokio::test]
async fn links_become_link_items() {
    let (_sim, seed, client) = demo().await;
    let thread_ids = format!("[\"{}\"]", seed.direct_thread_id);
    let ack = client
        .post_ok(
            "direct_v2/threads/broadcast/link/",
            &send_form(
                &[
                    ("thread_ids", thread_ids.as_str()),
                    ("link_text", "look https://example.org/a"),
                    ("link_urls", "[\"https://example.org/a\"]"),
                ],
                "55",
            ),
        )
        .await;
    let thread = fetch_thread(&client, &seed.direct_thread_id).await;
    let item = item_in(&thread, ack["payload"]["item_id"].as_str().unwrap()).unwrap();
    assert_eq!(item["item_type"], "link");
    assert!(item.get("text").is_none(), "link text sits in link.text");
    assert_eq!(item["link"]["text"], "look https://example.org/a");
    assert_eq!(
        item["link"]["link_context"]["link_url"],
        "https://example.org/a"
    );
    assert_eq!(item["link"]["client_context"], "55");
}

#[tokio::test]
async fn reactions_land_on_the_item_and_can_be_removed() {
    let (sim, seed, client) = demo().await;
    let target = sim
        .post_text(&seed.direct_thread_id, seed.friend.pk, "react to me")
        .unwrap();
    let thread_ids = format!("[{}]", seed.direct_thread_id);
    let react = |status: &'static str, emoji: &'static str| {
        [
            ("action", "send_item"),
            ("item_type", "reaction"),
            ("reaction_type", "like"),
            ("reaction_status", status),
            ("node_type", "item"),
            ("item_id", target.as_str()),
            ("emoji", emoji),
            ("thread_ids", thread_ids.as_str()),
            ("client_context", "99"),
            ("mutation_token", "99"),
            ("offline_threading_id", "99"),
            ("_uuid", "3f1c1a2e-0000-4000-8000-000000000001"),
        ]
        .map(|(name, value)| (name, value.to_owned()))
    };
    let form = react("created", "🔥");
    let form: Vec<(&str, &str)> = form
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    client
        .post_ok("direct_v2/threads/broadcast/reaction/", &form)
        .await;
    sim.react(&seed.direct_thread_id, &target, seed.friend.pk, "😂")
        .unwrap();
    let thread = fetch_thread(&client, &seed.direct_thread_id).await;
    let emojis = emojis_on(&thread, &target);
    assert_eq!(emojis.len(), 2);
    let mine = emojis
        .iter()
        .find(|reaction| reaction["sender_id"] == seed.demo.pk)
        .unwrap();
    assert_eq!(mine["emoji"], "🔥");

    let form = react("deleted", "🔥");
    let form: Vec<(&str, &str)> = form
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    client
        .post_ok("direct_v2/threads/broadcast/reaction/", &form)
        .await;
    let thread = fetch_thread(&client, &seed.direct_thread_id).await;
    let emojis = emojis_on(&thread, &target);
    assert_eq!(emojis.len(), 1);
    assert_eq!(emojis[0]["sender_id"], seed.friend.pk);

    let missing = send_form(
        &[
            ("thread_ids", thread_ids.as_str()),
            ("item_id", "32259282530591827013512481076150272"),
            ("emoji", "🔥"),
            ("reaction_status", "created"),
        ],
        "100",
    );
    let response = client
        .post("direct_v2/threads/broadcast/reaction/", &missing)
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["status"], "fail");
}

#[tokio::test]
async fn unsend_removes_own_items_only() {
    let (sim, seed, client) = demo().await;
    let thread_ids = format!("[{}]", seed.direct_thread_id);
    let ack = client
        .post_ok(
            "direct_v2/threads/broadcast/text/",
            &send_form(
                &[("thread_ids", thread_ids.as_str()), ("text", "oops")],
                "1",
            ),
        )
        .await;
    let mine = ack["payload"]["item_id"].as_str().unwrap().to_owned();
    let theirs = sim
        .post_text(&seed.direct_thread_id, seed.friend.pk, "not yours")
        .unwrap();
    let response = client
        .post(
            &delete_path(&seed.direct_thread_id, &theirs),
            &[("_uuid", "x")],
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["status"], "fail");
    let body = client
        .post_ok(
            &delete_path(&seed.direct_thread_id, &mine),
            &[("_uuid", "x")],
        )
        .await;
    assert_eq!(body, json!({"status": "ok"}));
    let thread = fetch_thread(&client, &seed.direct_thread_id).await;
    assert!(
        item_in(&thread, &mine).is_none(),
        "the unsent item vanished"
    );
    assert!(item_in(&thread, &theirs).is_some());
    sim.unsend(&seed.direct_thread_id, &theirs).unwrap();
    let thread = fetch_thread(&client, &seed.direct_thread_id).await;
    assert!(item_in(&thread, &theirs).is_none());
}

#[tokio::test]
async fn thread_actions_change_the_snapshot() {
    let (sim, seed, client) = demo().await;
    let thread = &seed.direct_thread_id;
    let me = seed.demo.pk.to_string();
    let state = |sim: &Simulator| sim.thread_snapshot(thread).unwrap()["member_state"][&me].clone();
    assert_eq!(state(&sim)["muted"], false);

    thread_verb(&client, thread, "mute").await;
    assert_eq!(state(&sim)["muted"], true);
    let page = client.get_ok(&thread_path(thread), &[]).await;
    assert_eq!(page["thread"]["muted"], true);
    thread_verb(&client, thread, "unmute").await;
    assert_eq!(state(&sim)["muted"], false);

    thread_verb(&client, thread, "mark_unread").await;
    assert_eq!(state(&sim)["marked_as_unread"], true);

    let thread_id_field = thread.as_str();
    client
        .post_ok(
            "direct_v2/threads/broadcast/indicate_activity/",
            &[
                ("thread_id", thread_id_field),
                ("activity_status", "1"),
                ("client_context", "5"),
                ("_uuid", "3f1c1a2e-0000-4000-8000-000000000001"),
            ],
        )
        .await;
    assert_eq!(state(&sim)["typing"]["activity_status"], 1);
    client
        .post_ok(
            "direct_v2/threads/broadcast/indicate_activity/",
            &[
                ("thread_id", thread_id_field),
                ("activity_status", "0"),
                ("client_context", "6"),
                ("_uuid", "3f1c1a2e-0000-4000-8000-000000000001"),
            ],
        )
        .await;
    assert_eq!(state(&sim)["typing"]["activity_status"], 0);

    let newest = sim
        .post_text(thread, seed.friend.pk, "did you see this?")
        .unwrap();
    assert_eq!(state(&sim)["unread"], true);
    let seen = client
        .post_ok(
            &format!("direct_v2/threads/{thread}/items/{newest}/seen/"),
            &[("action", "mark_seen"), ("thread_id", thread_id_field)],
        )
        .await;
    assert_eq!(seen["action"], "item_ack");
    let after = state(&sim);
    assert_eq!(after["last_seen_at"]["item_id"], newest.as_str());
    assert_eq!(after["unread"], false);
    assert_eq!(after["marked_as_unread"], false);
    let page = client.get_ok(&thread_path(thread), &[]).await;
    assert_eq!(
        page["thread"]["last_seen_at"][&me]["item_id"],
        newest.as_str()
    );
    assert_eq!(page["thread"]["read_state"], 0);

    thread_verb(&client, thread, "hide").await;
    assert_eq!(state(&sim)["hidden"], true);
    let inbox = client.get_ok("direct_v2/inbox/", &[("limit", "50")]).await;
    assert!(!inbox["inbox"]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["thread_id"] == thread.as_str()));
    sim.post_text(thread, seed.friend.pk, "hello again")
        .unwrap();
    let inbox = client.get_ok("direct_v2/inbox/", &[("limit", "50")]).await;
    assert_eq!(
        inbox["inbox"]["threads"][0]["thread_id"],
        thread.as_str(),
        "a new message brings it back on top"
    );

    let unknown = client
        .get(
            "direct_v2/threads/340282366841710300000000000000000000001/",
            &[],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["message"], "Thread does not exist");
    let unknown_mute = client
        .post(
            "direct_v2/threads/340282366841710300000000000000000000001/mute/",
            &[],
        )
        .await;
    assert_eq!(unknown_mute.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn groups_are_created_renamed_extended_and_left() {
    let (sim, seed, client) = demo().await;
    let bob = seed.contacts[0].pk;
    let signed = format!(
        "SIGNATURE.{}",
        json!({"recipient_users": [seed.friend.pk.to_string(), bob.to_string()], "thread_title": "Book club", "_uuid": "x", "client_context": "1"})
    );
    let created = client
        .post_ok(
            "direct_v2/create_group_thread/",
            &[("signed_body", signed.as_str())],
        )
        .await;
    assert_eq!(created["is_group"], true);
    assert_eq!(created["thread_title"], "Book club");
    assert_eq!(created["items"][0]["item_type"], "action_log");
    let thread_id = created["thread_id"].as_str().unwrap().to_owned();

    let renamed = client
        .post_ok(
            &format!("direct_v2/threads/{thread_id}/update_title/"),
            &[("title", "Book club 2")],
        )
        .await;
    assert_eq!(renamed["thread"]["thread_title"], "Book club 2");
    assert_eq!(
        renamed["thread"]["items"][0]["action_log"]["description"],
        "Bridge Tester named the group Book club 2."
    );

    let carol = seed.contacts[1].pk;
    let user_ids = format!("[\"{carol}\"]");
    let extended = client
        .post_ok(
            &format!("direct_v2/threads/{thread_id}/add_user/"),
            &[("user_ids", user_ids.as_str())],
        )
        .await;
    assert_eq!(extended["thread"]["users"].as_array().unwrap().len(), 3);

    client
        .post_ok(
            &format!("direct_v2/threads/{thread_id}/leave/"),
            &[("_uuid", "x")],
        )
        .await;
    let snapshot = sim.thread_snapshot(&thread_id).unwrap();
    assert_eq!(snapshot["left_users"], json!([seed.demo.pk]));
    assert_eq!(
        client.get(&thread_path(&thread_id), &[]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn legacy_uploads_answer_an_upload_id_and_no_media_id() {
    let (sim, seed, _client) = demo().await;
    let cookie = seed
        .demo
        .cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let http = app_http();
    let upload = |kind: &'static str| {
        http.post(format!(
            "{}/rupload_ig{kind}/1748780000000_0_123456",
            sim.base_url()
        ))
        .header("Cookie", cookie.as_str())
        .header("X-CSRFTOKEN", seed.demo.cookies["csrftoken"].as_str())
        .header(
            "X-Instagram-Rupload-Params",
            json!({"upload_id": "1748780000000", "media_type": 1}).to_string(),
        )
        .header("X-Entity-Name", "1748780000000_0_123456")
        .header("X-Entity-Length", "4")
        .header("X-Entity-Type", "image/jpeg")
        .header("Offset", "0")
        .body(b"\xff\xd8\xff\xd9".to_vec())
        .send()
    };
    let photo: Value = upload("photo").await.unwrap().json().await.unwrap();
    assert_eq!(
        photo,
        json!({"upload_id": "1748780000000", "xsharing_nonces": {}, "status": "ok"})
    );
    let video: Value = upload("video").await.unwrap().json().await.unwrap();
    assert_eq!(video, json!({"xsharing_nonces": {}, "status": "ok"}));
}

#[tokio::test]
async fn users_presence_and_search() {
    let (sim, seed, client) = demo().await;
    let info = client.get_ok("users/alice.wonder/usernameinfo/", &[]).await;
    assert_eq!(info["user"]["pk"], seed.friend.pk);
    assert_eq!(info["user"]["full_name"], "Alice W");
    let unknown = client.get("users/nobody.here/usernameinfo/", &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.json(),
        json!({"message": "User not found", "status": "fail"})
    );
    let by_pk = client
        .get_ok(&format!("users/{}/info/", seed.friend.pk), &[])
        .await;
    assert_eq!(by_pk["user"]["username"], "alice.wonder");
    let found = client
        .get_ok("users/search/", &[("q", "ali"), ("count", "30")])
        .await;
    assert_eq!(found["num_results"], 1);
    assert_eq!(found["users"][0]["username"], "alice.wonder");

    sim.set_presence(
        seed.friend.pk,
        Presence {
            is_active: true,
            last_activity_at_ms: 1_748_780_390_000,
        },
    )
    .unwrap();
    let request_data = format!("[{}]", seed.friend.pk);
    let presence = client
        .post_ok(
            "direct_v2/fetch_and_subscribe_presence/",
            &[
                ("request_data", request_data.as_str()),
                ("subscriptions_off", "false"),
            ],
        )
        .await;
    let alice = &presence["user_presence"][seed.friend.pk.to_string()];
    assert_eq!(alice["is_active"], true);
    assert_eq!(alice["last_activity_at_ms"], 1_748_780_390_000u64);
    assert_eq!(alice["user_id"], seed.friend.pk.to_string());
    let keep_alive = client.get_ok("direct_v2/get_presence/", &[]).await;
    assert_eq!(
        keep_alive["user_presence"][seed.friend.pk.to_string()]["is_active"],
        true
    );
    assert_eq!(
        keep_alive["user_presence"][seed.contacts[0].pk.to_string()]["is_active"],
        false
    );

    let results = client
        .get_ok("direct_v2/search_secondary/", &[("query", "board games")])
        .await;
    let items = results["message_search_results"]["message_search_result_items"]
        .as_array()
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["matched_message_info"]["item_info"]["text"],
        "bring the board games!"
    );
    assert_eq!(
        items[0]["thread"]["thread_id"],
        seed.direct_thread_id.as_str()
    );
}

#[tokio::test]
async fn faults_answer_the_next_requests_then_stop() {
    let (sim, _seed, client) = demo().await;
    sim.inject_fault(Fault {
        path_prefix: "direct_v2/inbox/".into(),
        status: Some(500),
        headers: vec![("Retry-After".into(), "7".into())],
        times: 2,
        ..Fault::default()
    });
    for _ in 0..2 {
        let response = client.get("direct_v2/inbox/", &[]).await;
        assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.json()["message"], "Unknown Server Error.");
        assert_eq!(response.headers["retry-after"], "7");
    }
    client.get_ok("direct_v2/inbox/", &[]).await;
    client.get_ok("accounts/current_user/", &[]).await;

    sim.inject_fault(Fault {
        path_prefix: "/api/v1/accounts/".into(),
        method: Some("GET".into()),
        malformed_body: true,
        ..Fault::default()
    });
    let response = client.get("accounts/current_user/", &[]).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<Value>(&response.text).is_err(),
        "truncated JSON"
    );

    sim.inject_fault(Fault {
        path_prefix: "accounts/current_user/".into(),
        delay: Duration::from_millis(300),
        ..Fault::default()
    });
    let started = Instant::now();
    client.get_ok("accounts/current_user/", &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    sim.inject_fault(Fault {
        path_prefix: "direct_v2/threads/broadcast/text/".into(),
        status: Some(400),
        body: Some(r#"{"message":"feedback_required","spam":true,"status":"fail"}"#.into()),
        ..Fault::default()
    });
    let response = client
        .post(
            "direct_v2/threads/broadcast/text/",
            &[("thread_ids", "[1]"), ("text", "x")],
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["message"], "feedback_required");
}

/// The texts of a thread's items sent by `pk`, newest first.
fn texts_from(sim: &Simulator, thread_id: &str, pk: u64) -> Vec<String> {
    sim.thread_snapshot(thread_id).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["user_id"] == pk && item["item_type"] == "text")
        .map(|item| item["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn faults_after_the_write_keep_the_item_and_lose_the_answer() {
    let (sim, seed, client) = demo().await;
    let thread_ids = format!("[{}]", seed.direct_thread_id);
    let send_form = |text: &'static str, context: &'static str| {
        vec![
            ("action", "send_item"),
            ("thread_ids", thread_ids.clone().leak() as &str),
            ("text", text),
            ("client_context", context),
            ("mutation_token", context),
            ("offline_threading_id", context),
            ("_uuid", "3f1c1a2e-0000-4000-8000-000000000001"),
        ]
    };

    // Write, then 500: the item is there although the answer says the server failed.
    sim.inject_fault(Fault {
        path_prefix: "direct_v2/threads/broadcast/text/".into(),
        status: Some(500),
        after_write: true,
        ..Fault::default()
    });
    let response = client
        .post(
            "direct_v2/threads/broadcast/text/",
            &send_form("written then 500", "6800011111111111001"),
        )
        .await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.json()["message"], "Unknown Server Error.");
    assert_eq!(
        texts_from(&sim, &seed.direct_thread_id, seed.demo.pk)[0],
        "written then 500"
    );

    // Write, then drop the connection: the client gets no answer at all.
    sim.inject_fault(Fault {
        path_prefix: "direct_v2/threads/broadcast/text/".into(),
        after_write: true,
        drop_connection: true,
        ..Fault::default()
    });
    let cookie = seed
        .demo
        .cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let dropped = app_http()
        .post(format!(
            "{}/direct_v2/threads/broadcast/text/",
            sim.api_base_url()
        ))
        .header("Cookie", cookie.as_str())
        .header("X-CSRFTOKEN", seed.demo.cookies["csrftoken"].as_str())
        .form(&send_form("written then dropped", "6800011111111111002"))
        .send()
        .await;
    let error = dropped.expect_err("no response when the connection is dropped");
    assert!(!error.is_status() && !error.is_connect(), "{error:?}");
    let texts = texts_from(&sim, &seed.direct_thread_id, seed.demo.pk);
    assert_eq!(texts[0], "written then dropped");
    assert_eq!(
        texts
            .iter()
            .filter(|text| *text == "written then dropped")
            .count(),
        1
    );
    let logged = sim.request_log();
    assert_eq!(logged.last().unwrap().status, 0, "logged as unanswered");
    assert_eq!(logged.last().unwrap().pk, Some(seed.demo.pk));

    // Dropped before the write: nothing is sent.
    sim.inject_fault(Fault {
        path_prefix: "direct_v2/threads/broadcast/text/".into(),
        drop_connection: true,
        ..Fault::default()
    });
    let before = app_http()
        .post(format!(
            "{}/direct_v2/threads/broadcast/text/",
            sim.api_base_url()
        ))
        .header("Cookie", cookie.as_str())
        .header("X-CSRFTOKEN", seed.demo.cookies["csrftoken"].as_str())
        .form(&send_form("never written", "6800011111111111003"))
        .send()
        .await;
    assert!(before.is_err());
    assert!(!texts_from(&sim, &seed.direct_thread_id, seed.demo.pk)
        .contains(&"never written".to_owned()));

    // The control API takes the same faults.
    let http = app_http();
    let injected = http
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({
            "path_prefix": "direct_v2/threads/broadcast/text/",
            "status": 503,
            "after_write": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), StatusCode::OK);
    let response = client
        .post(
            "direct_v2/threads/broadcast/text/",
            &send_form("written then 503", "6800011111111111004"),
        )
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        texts_from(&sim, &seed.direct_thread_id, seed.demo.pk)[0],
        "written then 503"
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_once_exceeded() {
    let (sim, _seed, client) = demo().await;
    sim.set_rate_limit(3, Duration::from_secs(60));
    for _ in 0..3 {
        client.get_ok("accounts/current_user/", &[]).await;
    }
    let response = client.get("accounts/current_user/", &[]).await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.json(),
        json!({"message": "Please wait a few minutes before you try again.", "status": "fail"})
    );
    sim.set_rate_limit(2, Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(250)).await;
    client.get_ok("accounts/current_user/", &[]).await;
    sim.clear_rate_limit();
    for _ in 0..5 {
        client.get_ok("accounts/current_user/", &[]).await;
    }
}

#[tokio::test]
async fn the_control_api_works_over_http() {
    let sim = Simulator::start().await;
    let http = app_http();
    let control = |path: &str| format!("{}/_sim/{path}", sim.base_url());
    let alice: Value = http
        .post(control("accounts"))
        .json(&json!({"username": "a.one", "full_name": "A One"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bob: Value = http
        .post(control("accounts"))
        .json(&json!({"username": "b.two", "full_name": "B Two", "password": "pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bob["password"], "pw");
    let thread: Value = http
        .post(control("threads"))
        .json(&json!({"owner_pk": alice["pk"], "other_pks": [bob["pk"]]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let thread_id = thread["thread_id"].as_str().unwrap();
    let item: Value = http
        .post(control(&format!("threads/{thread_id}/items")))
        .json(&json!({"from_pk": bob["pk"], "text": "hi from control"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item_id = item["item_id"].as_str().unwrap();
    let photo: Value = http
        .post(control(&format!("threads/{thread_id}/items")))
        .json(&json!({"from_pk": bob["pk"], "item": {"item_type": "media", "media_type": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(photo["item_id"].is_string());
    let reacted = http
        .post(control(&format!(
            "threads/{thread_id}/items/{item_id}/react"
        )))
        .json(&json!({"from_pk": alice["pk"], "emoji": "👍"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reacted.status(), StatusCode::OK);
    let snapshot: Value = http
        .get(control(&format!("threads/{thread_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        snapshot["items"][1]["reactions"]["emojis"][0]["emoji"],
        "👍"
    );
    let missing = http.get(control("threads/1")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    http.post(control("faults"))
        .json(&json!({"path_prefix": "direct_v2/inbox/", "status": 429, "times": 1}))
        .send()
        .await
        .unwrap();
    let cookies: std::collections::BTreeMap<String, String> =
        serde_json::from_value(alice["cookies"].clone()).unwrap();
    let client = ApiClient::new(sim.api_base_url(), cookies);
    let response = client.get("direct_v2/inbox/", &[]).await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    let inbox = client.get_ok("direct_v2/inbox/", &[]).await;
    assert_eq!(
        inbox["inbox"]["threads"][0]["items"][0]["item_type"],
        "media"
    );
    let count: Value = http
        .get(control("requests/count"))
        .query(&[("method", "GET"), ("path", "direct_v2/inbox/")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["count"], 2);
    let seeded: Value = http
        .post(control("seed/demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["demo"]["username"], "bridge.tester");
}

#[tokio::test]
async fn a_bearer_authorization_header_works_like_the_cookies() {
    use base64::Engine;
    let (sim, seed, _client) = demo().await;
    let token = json!({"ds_user_id": seed.demo.pk.to_string(), "sessionid": seed.demo.cookies["sessionid"]});
    let bearer = format!(
        "Bearer IGT:2:{}",
        base64::engine::general_purpose::STANDARD.encode(token.to_string())
    );
    let http = app_http();
    let response = http
        .get(format!(
            "{}/accounts/current_user/?edit=true",
            sim.api_base_url()
        ))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["pk"], seed.demo.pk);
    let muted = http
        .post(format!(
            "{}/direct_v2/threads/{}/mute/",
            sim.api_base_url(),
            seed.direct_thread_id
        ))
        .header("Authorization", &bearer)
        .body("_uuid=x")
        .send()
        .await
        .unwrap();
    assert_eq!(muted.status(), StatusCode::OK, "no CSRF without cookies");
    let forged = http
        .get(format!("{}/accounts/current_user/", sim.api_base_url()))
        .header("Authorization", "Bearer IGT:2:bm90LWpzb24=")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn items_of_unknown_kinds_are_posted_verbatim_or_refused() {
    let (sim, seed, client) = demo().await;
    let call = json!({"action": "video_call_ended", "vc_id": "17870000000000001", "description": "Video chat ended"});
    let item_id = sim
        .post_item(
            &seed.direct_thread_id,
            seed.friend.pk,
            json!({"item_type": "video_call_event", "video_call_event": call}),
        )
        .unwrap();
    let thread = fetch_thread(&client, &seed.direct_thread_id).await;
    let item = item_in(&thread, &item_id).unwrap();
    assert_eq!(item["item_type"], "video_call_event");
    assert_eq!(item["video_call_event"], call);
    assert!(item.get("text").is_none());
    let refused = sim.post_item(
        &seed.direct_thread_id,
        seed.friend.pk,
        json!({"item_type": "hologram"}),
    );
    assert!(matches!(
        refused,
        Err(instagram_sim::SimError::UnknownItemKind { .. })
    ));
    let outsider = sim.create_account("out.sider", "Out Sider").unwrap();
    let refused = sim.post_text(&seed.direct_thread_id, outsider.pk, "let me in");
    assert!(matches!(
        refused,
        Err(instagram_sim::SimError::NotAMember { .. })
    ));
}
