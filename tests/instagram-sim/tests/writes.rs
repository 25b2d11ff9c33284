//! The simulator is strict about writes the way Instagram is: requests must come from the
//! app, broadcast forms must be the app's, `create_group_thread/` must be signed, a session
//! that sends too fast gets the spam warning, edits have limits, and media goes through the
//! upload host (`messenger_*`), which checks what it is given.

// Each test binary uses only part of the shared client.
#[allow(dead_code)]
mod support;

use std::io::Cursor;

use base64::Engine;
use instagram_sim::{Account, DemoSeed, Settings, Simulator, DEFAULT_SEND_LIMIT_PER_MINUTE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{app_http, send_form, ApiClient, APP_ID};

const VIDEO: &[u8] = include_bytes!("../assets/video.mp4");
const VOICE: &[u8] = include_bytes!("../assets/voice.m4a");
const GIF: &[u8] = include_bytes!("../assets/animated.gif");

async fn demo() -> (Simulator, DemoSeed, ApiClient) {
    let sim = Simulator::start().await;
    let seed = sim.seed_demo().expect("demo seed");
    let client = ApiClient::new(sim.api_base_url(), seed.demo.cookies.clone());
    (sim, seed, client)
}

fn item_count(sim: &Simulator, thread_id: &str) -> usize {
    sim.thread_snapshot(thread_id).unwrap()["items"]
        .as_array()
        .unwrap()
        .len()
}

fn text_form<'a>(thread_ids: &'a str, text: &'a str, context: &'a str) -> Vec<(&'a str, &'a str)> {
    send_form(&[("thread_ids", thread_ids), ("text", text)], context)
}

#[tokio::test]
async fn api_calls_not_made_by_the_app_get_useragent_mismatch() {
    let (sim, seed, _client) = demo().await;
    let cookie = seed
        .demo
        .cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let url = format!("{}/direct_v2/inbox/", sim.api_base_url());
    let http = reqwest::Client::new();
    let browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36";
    for (user_agent, app_id) in [
        (None, Some(APP_ID)),
        (Some(browser), Some(APP_ID)),
        (Some(support::APP_USER_AGENT), None),
    ] {
        let mut request = http.get(&url).header("Cookie", &cookie);
        if let Some(user_agent) = user_agent {
            request = request.header("User-Agent", user_agent);
        }
        if let Some(app_id) = app_id {
            request = request.header("X-IG-App-ID", app_id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"message": "useragent mismatch", "status": "fail"})
        );
    }
    let fine = app_http()
        .get(&url)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
}

#[tokio::test]
async fn broadcast_forms_must_be_the_apps() {
    let (sim, seed, client) = demo().await;
    let thread = &seed.direct_thread_id;
    let thread_ids = format!("[{thread}]");
    let before = item_count(&sim, thread);
    let path = "direct_v2/threads/broadcast/text/";
    let refusals: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("thread_ids", &thread_ids),
                ("text", "no action"),
                ("_uuid", "u"),
                ("client_context", "6800011111111111111"),
                ("mutation_token", "6800011111111111111"),
                ("offline_threading_id", "6800011111111111111"),
            ],
            "Invalid action",
        ),
        (
            send_form(
                &[("thread_ids", &thread_ids), ("text", "uuid context")],
                "8f0c1c3e-2f55-4a39-9d63-1f0d3e0f2a11",
            ),
            "Invalid client_context",
        ),
        (
            send_form(
                &[
                    ("thread_ids", &thread_ids),
                    ("text", "token differs"),
                    ("mutation_token", "6800011111111111112"),
                ],
                "6800011111111111111",
            ),
            "client_context, mutation_token and offline_threading_id differ",
        ),
        (
            vec![
                ("action", "send_item"),
                ("thread_ids", &thread_ids),
                ("text", "no uuid"),
                ("client_context", "6800011111111111111"),
                ("mutation_token", "6800011111111111111"),
                ("offline_threading_id", "6800011111111111111"),
            ],
            "Missing _uuid",
        ),
        (
            send_form(&[("thread_ids", &thread_ids)], "6800011111111111111"),
            "Text is missing",
        ),
        (
            send_form(&[("text", "to nobody")], "6800011111111111111"),
            "Need to specify thread ID or recipient users",
        ),
    ];
    for (form, message) in refusals {
        let response = client.post(path, &form).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(
            response.json(),
            json!({"message": message, "status": "fail"}),
            "{form:?}"
        );
    }

    // A JSON body is not the app's form.
    let json_body = app_http()
        .post(format!("{}/{path}", sim.api_base_url()))
        .header(
            "Cookie",
            format!(
                "sessionid={}; csrftoken={}",
                seed.demo.cookies["sessionid"], seed.demo.cookies["csrftoken"]
            ),
        )
        .header("X-CSRFTOKEN", seed.demo.cookies["csrftoken"].as_str())
        .json(&json!({"action": "send_item", "thread_ids": thread_ids, "text": "json", "_uuid": "u", "client_context": "1", "mutation_token": "1", "offline_threading_id": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    let body: Value = json_body.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Invalid request: the body must be form-encoded"
    );
    assert_eq!(item_count(&sim, thread), before, "nothing was sent");

    client
        .post_ok(
            path,
            &text_form(&thread_ids, "proper", "6800011111111111111"),
        )
        .await;
    assert_eq!(item_count(&sim, thread), before + 1);
}

#[tokio::test]
async fn create_group_thread_takes_only_a_signed_body() {
    let (_sim, seed, client) = demo().await;
    let bob = seed.contacts[0].pk.to_string();
    let fields = json!({"recipient_users": format!("[\"{}\",\"{bob}\"]", seed.friend.pk), "thread_title": "Signed", "_uuid": "u", "client_context": "6800011111111111111"});
    let plain: Vec<(String, String)> = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    let plain: Vec<(&str, &str)> = plain
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let refused = client.post("direct_v2/create_group_thread/", &plain).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json(),
        json!({"message": "Invalid signed_body", "status": "fail"})
    );
    let signed = format!("SIGNATURE.{fields}");
    let created = client
        .post_ok(
            "direct_v2/create_group_thread/",
            &[("signed_body", signed.as_str())],
        )
        .await;
    assert_eq!(created["thread_title"], "Signed");
    assert_eq!(created["is_group"], true);
}

#[tokio::test]
async fn a_session_that_sends_too_fast_gets_the_spam_warning() {
    let (sim, seed, client) = demo().await;
    assert_eq!(sim.settings().send_limit_per_minute, 30);
    assert_eq!(DEFAULT_SEND_LIMIT_PER_MINUTE, 30);
    sim.set_settings(Settings {
        send_limit_per_minute: 3,
        ..sim.settings()
    });
    let thread = &seed.direct_thread_id;
    let thread_ids = format!("[{thread}]");
    let path = "direct_v2/threads/broadcast/text/";
    for index in 0..3 {
        let context = format!("680001111111111110{index}");
        client
            .post_ok(path, &text_form(&thread_ids, "quick", &context))
            .await;
    }
    // Typing is not a send.
    client
        .post_ok(
            "direct_v2/threads/broadcast/indicate_activity/",
            &[
                ("thread_id", thread.as_str()),
                ("activity_status", "1"),
                ("client_context", "6800011111111111199"),
                ("_uuid", "u"),
            ],
        )
        .await;
    let before = item_count(&sim, thread);
    let blocked = client
        .post(
            path,
            &text_form(&thread_ids, "one too many", "6800011111111111104"),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::BAD_REQUEST);
    let body = blocked.json();
    assert_eq!(body["message"], "feedback_required");
    assert_eq!(body["spam"], true);
    assert_eq!(body["feedback_title"], "Message Failed");
    assert_eq!(body["status"], "fail");
    assert_eq!(
        item_count(&sim, thread),
        before,
        "the blocked send wrote nothing"
    );
    assert_eq!(
        sim.strikes(seed.demo.pk).unwrap(),
        1,
        "a strike: sending on into the block escalates to a challenge"
    );

    // The window is per session: another session of the same account may send.
    let other = ApiClient::new(sim.api_base_url(), sim.new_session(seed.demo.pk).unwrap());
    other
        .post_ok(
            path,
            &text_form(&thread_ids, "other phone", "6800011111111111105"),
        )
        .await;

    // Over the control API, 0 turns the limit off.
    let changed: Value = reqwest::Client::new()
        .post(format!("{}/_sim/settings", sim.base_url()))
        .json(&json!({"send_limit_per_minute": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed["send_limit_per_minute"], 0);
    client
        .post_ok(
            path,
            &text_form(&thread_ids, "unlimited", "6800011111111111106"),
        )
        .await;
}

#[tokio::test]
async fn edits_are_the_senders_own_within_instagrams_limits() {
    let (sim, seed, client) = demo().await;
    let thread = &seed.direct_thread_id;
    let thread_ids = format!("[{thread}]");
    let ack = client
        .post_ok(
            "direct_v2/threads/broadcast/text/",
            &text_form(&thread_ids, "typo", "6800011111111111111"),
        )
        .await;
    let item_id = ack["payload"]["item_id"].as_str().unwrap().to_owned();
    let edit_path = format!("direct_v2/threads/{thread}/items/{item_id}/edit/");
    let wrong_context = client
        .post(
            &edit_path,
            &[
                ("original_message_client_context", "6800011111111111112"),
                ("body", "fixed"),
            ],
        )
        .await;
    assert_eq!(wrong_context.status, StatusCode::BAD_REQUEST);
    for round in 1..=5 {
        let text = format!("fixed {round}");
        client
            .post_ok(
                &edit_path,
                &[
                    ("original_message_client_context", "6800011111111111111"),
                    ("body", text.as_str()),
                ],
            )
            .await;
    }
    let item = &sim.thread_snapshot(thread).unwrap()["items"][0];
    assert_eq!(item["text"], "fixed 5");
    assert_eq!(item["edit_count"], 5);
    let sixth = client.post(&edit_path, &[("body", "fixed 6")]).await;
    assert_eq!(sixth.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        sixth.json(),
        json!({"message": "this message can no longer be edited", "status": "fail"})
    );

    let theirs = sim.post_text(thread, seed.friend.pk, "mine").unwrap();
    let refused = client
        .post(
            &format!("direct_v2/threads/{thread}/items/{theirs}/edit/"),
            &[("body", "hijacked")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        sim.thread_snapshot(thread).unwrap()["items"][0]["text"],
        "mine"
    );
}

/// `Bearer IGT:2:<base64 {ds_user_id, sessionid}>` of an account's session.
fn bearer(account: &Account) -> String {
    let token =
        json!({"ds_user_id": account.pk.to_string(), "sessionid": account.cookies["sessionid"]});
    format!(
        "Bearer IGT:2:{}",
        base64::engine::general_purpose::STANDARD.encode(token.to_string())
    )
}

/// Uploads `bytes` to the upload host as the app does; returns the answer.
async fn upload(
    sim: &Simulator,
    account: &Account,
    host_path: &str,
    entity_type: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let entity = "1748780000000_0_1234567890";
    let response = reqwest::Client::new()
        .post(format!("{}/{host_path}/{entity}", sim.base_url()))
        .header("authorization", bearer(account))
        .header("x-entity-name", entity)
        .header("x-entity-length", bytes.len().to_string())
        .header("x-entity-type", entity_type)
        .header("offset", "0")
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The `media_id` of an accepted upload, as text.
async fn media_id(
    sim: &Simulator,
    account: &Account,
    host_path: &str,
    entity_type: &str,
    bytes: &[u8],
) -> String {
    let (status, body) = upload(sim, account, host_path, entity_type, bytes).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 0);
    body["media_id"]
        .as_u64()
        .expect("media_id is a JSON integer")
        .to_string()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let picture =
        image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut bytes = Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let picture =
        image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, 40, y as u8]));
    let mut bytes = Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, image::ImageFormat::Jpeg)
        .unwrap();
    bytes.into_inner()
}

/// Broadcasts an attachment; returns the HTTP status and body.
async fn send_attachment(
    client: &ApiClient,
    kind: &str,
    thread_ids: &str,
    media_id: &str,
    context: &str,
) -> (StatusCode, Value) {
    let mut fields = vec![("thread_ids", thread_ids), ("attachment_fbid", media_id)];
    if kind == "voice_attachment" {
        fields.push(("waveform", "[0.1,0.5,0.9]"));
        fields.push(("waveform_sampling_frequency_hz", "10"));
    }
    if kind == "video_attachment" {
        fields.push(("video_result", media_id));
    }
    let response = client
        .post(
            &format!("direct_v2/threads/broadcast/{kind}/"),
            &send_form(&fields, context),
        )
        .await;
    (response.status, response.json())
}

#[tokio::test]
async fn photos_go_through_the_upload_host_and_arrive_unchanged() {
    let (sim, seed, client) = demo().await;
    let thread_ids = format!("[{}]", seed.direct_thread_id);
    for (host_path, entity_type, bytes, size) in [
        ("messenger_image", "image/jpeg", jpeg(40, 30), (40, 30)),
        ("messenger_image", "image/png", png(24, 36), (24, 36)),
        ("messenger_gif", "image/gif", GIF.to_vec(), (64, 64)),
    ] {
        let id = media_id(&sim, &seed.demo, host_path, entity_type, &bytes).await;
        let (status, ack) = send_attachment(
            &client,
            "photo_attachment",
            &thread_ids,
            &id,
            "6800011111111111111",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{ack}");
        let item_id = ack["payload"]["item_id"].as_str().unwrap();
        let media = sim.item_media(&seed.direct_thread_id, item_id).unwrap();
        assert_eq!(media.len(), 1);
        assert_eq!(sim.media_bytes(&media[0].name).unwrap(), bytes);
        assert_eq!(media[0].content_type, entity_type);
        let item = &sim.thread_snapshot(&seed.direct_thread_id).unwrap()["items"][0];
        assert_eq!(item["media"]["media_type"], 1);
        assert_eq!(item["media"]["original_width"], size.0);
        assert_eq!(item["media"]["original_height"], size.1);
        let served = reqwest::get(&media[0].url).await.unwrap();
        assert_eq!(served.bytes().await.unwrap().to_vec(), bytes);
    }
}

#[tokio::test]
async fn the_upload_host_refuses_what_instagram_would() {
    let (sim, seed, _client) = demo().await;
    let before = sim.request_count("POST", "/messenger_image/1748780000000_0_1234567890");
    let mut cut = png(20, 20);
    cut.truncate(cut.len() / 2);
    for (host_path, entity_type, bytes) in [
        (
            "messenger_image",
            "image/jpeg",
            b"\xff\xd8\xff\xe0fake-jpeg-bytes\xff\xd9".to_vec(),
        ),
        ("messenger_image", "image/png", cut),
        ("messenger_image", "image/gif", GIF.to_vec()),
        (
            "messenger_video",
            "video/mp4",
            b"\x00\x00\x00\x18ftypmp42garbage!".to_vec(),
        ),
        ("messenger_video", "video/mp4", png(4, 4)),
        ("messenger_audio", "audio/mp4", b"not audio at all".to_vec()),
        ("messenger_audio", "video/mp4", VOICE.to_vec()),
    ] {
        let (status, body) = upload(&sim, &seed.demo, host_path, entity_type, &bytes).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{host_path} {entity_type}: {body}"
        );
        assert_eq!(
            body["debug_info"]["type"], "ProcessingFailedError",
            "{body}"
        );
    }
    assert_eq!(
        sim.request_count("POST", "/messenger_image/1748780000000_0_1234567890"),
        before + 3
    );

    let bytes = png(8, 8);
    let url = format!("{}/messenger_image/1748780000000_0_1", sim.base_url());
    let http = reqwest::Client::new();
    let base = || {
        http.post(&url)
            .header("x-entity-name", "1748780000000_0_1")
            .header("x-entity-type", "image/png")
            .header("offset", "0")
            .body(bytes.clone())
    };
    // The length must be the body's.
    let wrong_length = base()
        .header("authorization", bearer(&seed.demo))
        .header("x-entity-length", (bytes.len() + 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_length.status(), StatusCode::BAD_REQUEST);
    // The upload host takes the bearer token, not cookies.
    let cookies_only = base()
        .header("x-entity-length", bytes.len().to_string())
        .header(
            "Cookie",
            format!("sessionid={}", seed.demo.cookies["sessionid"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cookies_only.status(), StatusCode::FORBIDDEN);
    sim.expire_session(seed.friend.pk).unwrap();
    let dead = base()
        .header("authorization", bearer(&seed.friend))
        .header("x-entity-length", bytes.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(dead.status(), StatusCode::FORBIDDEN);
    let body: Value = dead.json().await.unwrap();
    assert_eq!(body["message"], "login_required");
}

#[tokio::test]
async fn an_upload_belongs_to_its_uploader_and_its_kind() {
    let (sim, seed, client) = demo().await;
    sim.set_settings(Settings {
        transcode_attempts: 0,
        ..sim.settings()
    });
    let thread_ids = format!("[{}]", seed.direct_thread_id);
    let before = item_count(&sim, &seed.direct_thread_id);
    let video = media_id(&sim, &seed.demo, "messenger_video", "video/mp4", VIDEO).await;
    let (status, body) = send_attachment(
        &client,
        "photo_attachment",
        &thread_ids,
        &video,
        "6800011111111111111",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"message": "Invalid attachment_fbid", "status": "fail"})
    );
    let (status, _) = send_attachment(
        &client,
        "voice_attachment",
        &thread_ids,
        &video,
        "6800011111111111112",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let friends_photo = media_id(
        &sim,
        &seed.friend,
        "messenger_image",
        "image/png",
        &png(8, 8),
    )
    .await;
    let (status, body) = send_attachment(
        &client,
        "photo_attachment",
        &thread_ids,
        &friends_photo,
        "6800011111111111113",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"message": "Upload not found", "status": "fail"})
    );
    assert_eq!(item_count(&sim, &seed.direct_thread_id), before);
}

#[tokio::test]
async fn videos_and_voice_clips_transcode_before_they_can_be_sent() {
    let (sim, seed, client) = demo().await;
    assert_eq!(sim.settings().transcode_attempts, 1);
    let thread_ids = format!("[{}]", seed.direct_thread_id);
    for (host_path, entity_type, bytes, kind) in [
        ("messenger_video", "video/mp4", VIDEO, "video_attachment"),
        ("messenger_audio", "audio/mp4", VOICE, "voice_attachment"),
    ] {
        // The app asks where to resume first: nothing is there yet.
        let offset: Value = reqwest::Client::new()
            .get(format!(
                "{}/{host_path}/1748780000000_0_1234567890",
                sim.base_url()
            ))
            .header("authorization", bearer(&seed.demo))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(offset, json!({"offset": 0}));
        let id = media_id(&sim, &seed.demo, host_path, entity_type, bytes).await;
        let before = item_count(&sim, &seed.direct_thread_id);
        let (status, body) =
            send_attachment(&client, kind, &thread_ids, &id, "6800011111111111111").await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(
            body,
            json!({"message": "Transcode not finished yet.", "status": "fail"})
        );
        assert_eq!(item_count(&sim, &seed.direct_thread_id), before);
        let (status, ack) =
            send_attachment(&client, kind, &thread_ids, &id, "6800011111111111111").await;
        assert_eq!(status, StatusCode::OK, "{ack}");
        let item_id = ack["payload"]["item_id"].as_str().unwrap();
        let media = sim.item_media(&seed.direct_thread_id, item_id).unwrap();
        let uploaded = media
            .iter()
            .find(|file| file.content_type == entity_type)
            .expect("the uploaded file is the item's media");
        assert_eq!(sim.media_bytes(&uploaded.name).unwrap(), bytes);
    }
    let voice = &sim.thread_snapshot(&seed.direct_thread_id).unwrap()["items"][0];
    assert_eq!(voice["item_type"], "voice_media");
    assert_eq!(
        voice["voice_media"]["media"]["audio"]["waveform_data"],
        json!([0.1, 0.5, 0.9])
    );
}
