//! Sessions as Instagram plays them: a per-session request budget whose offences escalate
//! from 429 to `feedback_required` to a challenge and cool down only with time; a
//! csrftoken and www-claim that rotate and are refused once stale; sessions ended by a
//! logout variant or by the account logging in elsewhere; `checkpoint_required`; and a
//! session bound to the device it was first used from.
//! Driven through the Rust API and the `/_sim` control API.

// These tests read statuses and bodies, not the shared client's response headers.
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use instagram_sim::{Account, SessionEnd, Settings, Simulator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{app_http, send_form, ApiClient};

const INBOX: &str = "direct_v2/inbox/";
const SEND_TEXT: &str = "direct_v2/threads/broadcast/text/";

async fn world() -> (Simulator, Account, Account) {
    let sim = Simulator::start().await;
    let me = sim.create_account("viewer", "Vera Viewer").unwrap();
    let friend = sim.create_account("friend", "Fred Friend").unwrap();
    (sim, me, friend)
}

/// A `/_sim` POST that must succeed.
async fn control(sim: &Simulator, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/_sim{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "POST /_sim{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn send_text(client: &ApiClient, to: &Account, text: &str) -> support::ApiResponse {
    let recipients = format!("[[{}]]", to.pk);
    client
        .post(
            SEND_TEXT,
            &send_form(
                &[("recipient_users", &recipients), ("text", text)],
                &format!("68{:017}", text.len()),
            ),
        )
        .await
}

fn fixture_body(name: &str) -> Value {
    let path = format!(
        "{}/../fixtures/instagram/errors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fixture["body"].clone()
}

#[tokio::test]
async fn offences_escalate_from_429_to_feedback_required_to_a_challenge() {
    let (sim, me, friend) = world().await;
    sim.set_settings(Settings {
        session_requests_per_window: 3,
        rate_window: Duration::from_millis(300),
        strikes_for_feedback: 2,
        strikes_for_challenge: 4,
        strike_decay: Duration::from_secs(3600),
        ..Settings::default()
    });
    let client = ApiClient::new(sim.api_base_url(), me.cookies.clone());
    for _ in 0..3 {
        client.get_ok(INBOX, &[]).await;
    }
    for _ in 0..2 {
        let refused = client.get(INBOX, &[]).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.json()["message"],
            "Please wait a few minutes before you try again."
        );
    }
    assert_eq!(sim.strikes(me.pk).unwrap(), 2);

    tokio::time::sleep(Duration::from_millis(350)).await;
    client.get_ok(INBOX, &[]).await;
    let blocked = send_text(&client, &friend, "hello").await;
    assert_eq!(blocked.status, StatusCode::BAD_REQUEST, "{}", blocked.text);
    assert_eq!(blocked.json()["message"], "feedback_required");
    assert_eq!(blocked.json()["spam"], true);

    let challenged = send_text(&client, &friend, "hello again").await;
    assert_eq!(challenged.status, StatusCode::BAD_REQUEST);
    assert_eq!(challenged.json()["message"], "challenge_required");
    let other_session = ApiClient::new(sim.api_base_url(), sim.new_session(me.pk).unwrap());
    let flagged = other_session.get(INBOX, &[]).await;
    assert_eq!(
        flagged.json()["message"],
        "challenge_required",
        "the account is flagged, not just the session"
    );
    assert_eq!(
        sim.request_log()
            .iter()
            .filter(|e| e.path.ends_with("broadcast/text/") && e.status == 200)
            .count(),
        0,
        "no send went through"
    );

    sim.clear_challenge(me.pk).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.get_ok(INBOX, &[]).await;
}

#[tokio::test]
async fn strikes_cool_down_with_time_and_sends_work_again() {
    let (sim, me, friend) = world().await;
    control(
        &sim,
        "/settings",
        json!({
            "session_requests_per_window": 2,
            "rate_window_ms": 200,
            "strikes_for_feedback": 1,
            "strikes_for_challenge": 0,
            "strike_decay_ms": 600,
        }),
    )
    .await;
    let client = ApiClient::new(sim.api_base_url(), me.cookies.clone());
    client.get_ok(INBOX, &[]).await;
    client.get_ok(INBOX, &[]).await;
    assert_eq!(
        client.get(INBOX, &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let blocked = send_text(&client, &friend, "too soon").await;
    assert_eq!(blocked.json()["message"], "feedback_required");
    let strikes = reqwest::get(format!(
        "{}/_sim/accounts/{}/strikes",
        sim.base_url(),
        me.pk
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(strikes["strikes"], 2);

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sim.strikes(me.pk).unwrap(), 0);
    let sent = send_text(&client, &friend, "after the pause").await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert_eq!(sent.json()["status"], "ok");
}

/// The answer to a request that sends exactly these cookies and claim (a client that does
/// or does not keep what the server sets).
async fn request_with(
    sim: &Simulator,
    method: &str,
    cookies: &BTreeMap<String, String>,
    claim: &str,
    recipient: u64,
) -> reqwest::Response {
    let cookie = cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let http = app_http();
    let recipients = format!("[[{recipient}]]");
    let request = match method {
        "GET" => http.get(format!("{}/{INBOX}", sim.api_base_url())),
        _ => http
            .post(format!("{}/{SEND_TEXT}", sim.api_base_url()))
            .header("X-CSRFTOKEN", &cookies["csrftoken"])
            .form(&send_form(
                &[("recipient_users", &recipients), ("text", "hi")],
                "6811111111111111111",
            )),
    };
    request
        .header("Cookie", cookie)
        .header("X-IG-WWW-Claim", claim)
        .send()
        .await
        .unwrap()
}

fn set_csrftoken(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("csrftoken="))
        .map(|rest| rest.split(';').next().unwrap().to_owned())
}

fn set_claim(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-ig-set-www-claim")
        .map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn rotated_cookies_and_claim_must_be_sent_back_after_the_grace_period() {
    let (sim, me, friend) = world().await;
    let first = request_with(&sim, "GET", &me.cookies, "0", friend.pk).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(set_csrftoken(&first), None, "nothing rotated yet");
    let old_claim = set_claim(&first).expect("the first answer gives a claim");

    control(
        &sim,
        "/settings",
        json!({"rotation_period_ms": 200, "rotation_grace_ms": 400}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let rotated = request_with(&sim, "GET", &me.cookies, &old_claim, friend.pk).await;
    assert_eq!(
        rotated.status(),
        StatusCode::OK,
        "old values pass during the grace period"
    );
    let new_csrftoken = set_csrftoken(&rotated).expect("a Set-Cookie with the new csrftoken");
    assert_ne!(new_csrftoken, me.cookies["csrftoken"]);
    let new_claim = set_claim(&rotated).expect("the new claim");
    assert_ne!(new_claim, old_claim);
    control(&sim, "/settings", json!({"rotation_period_ms": 0})).await;

    tokio::time::sleep(Duration::from_millis(450)).await;
    let stale_claim = request_with(&sim, "GET", &me.cookies, &old_claim, friend.pk).await;
    assert_eq!(stale_claim.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        stale_claim.json::<Value>().await.unwrap()["message"],
        "login_required"
    );
    let stale_csrf = request_with(&sim, "POST", &me.cookies, &new_claim, friend.pk).await;
    assert_eq!(stale_csrf.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        set_csrftoken(&stale_csrf).as_deref(),
        Some(new_csrftoken.as_str()),
        "the refusal repeats the value to send"
    );

    let mut kept = me.cookies.clone();
    kept.insert("csrftoken".into(), new_csrftoken);
    let fresh_get = request_with(&sim, "GET", &kept, &new_claim, friend.pk).await;
    assert_eq!(fresh_get.status(), StatusCode::OK);
    assert_eq!(set_claim(&fresh_get), None, "the claim was echoed");
    assert_eq!(set_csrftoken(&fresh_get), None, "the cookie was kept");
    let fresh_post = request_with(&sim, "POST", &kept, &new_claim, friend.pk).await;
    assert_eq!(fresh_post.status(), StatusCode::OK);
}

#[tokio::test]
async fn ended_sessions_answer_their_logout_variant_and_new_logins_work() {
    let (sim, me, _) = world().await;
    for (end, fixture) in [
        (SessionEnd::Expired, "login_required_403"),
        (SessionEnd::LoggedInElsewhere, "user_has_logged_out_403"),
        (SessionEnd::PasswordChanged, "login_required_legacy_403"),
    ] {
        let cookies = sim.new_session(me.pk).unwrap();
        let client = ApiClient::new(sim.api_base_url(), cookies);
        client.get_ok(INBOX, &[]).await;
        sim.kill_sessions(me.pk, end).unwrap();
        let ended = client.get(INBOX, &[]).await;
        assert_eq!(ended.status, StatusCode::FORBIDDEN, "{end:?}");
        assert_eq!(ended.json(), fixture_body(fixture), "{end:?}");
    }

    let cookies = sim.new_session(me.pk).unwrap();
    let client = ApiClient::new(sim.api_base_url(), cookies);
    client.get_ok(INBOX, &[]).await;
    control(
        &sim,
        &format!("/accounts/{}/kill_sessions", me.pk),
        json!({}),
    )
    .await;
    let elsewhere = client.get(INBOX, &[]).await.json();
    assert_eq!(elsewhere["message"], "user_has_logged_out");
    assert_eq!(elsewhere["logout_reason"], 3);

    let after = ApiClient::new(sim.api_base_url(), sim.new_session(me.pk).unwrap());
    after.get_ok(INBOX, &[]).await;
}

#[tokio::test]
async fn checkpoint_blocks_every_call_until_cleared() {
    let (sim, me, _) = world().await;
    let client = ApiClient::new(sim.api_base_url(), me.cookies.clone());
    sim.flag_checkpoint(me.pk).unwrap();
    let locked = client.get(INBOX, &[]).await;
    assert_eq!(locked.status, StatusCode::BAD_REQUEST);
    let body = locked.json();
    assert_eq!(body["message"], "checkpoint_required");
    assert_eq!(body["lock"], true);
    assert!(body["checkpoint_url"]
        .as_str()
        .unwrap()
        .contains("/challenge/"));

    control(
        &sim,
        &format!("/accounts/{}/checkpoint", me.pk),
        json!({"flagged": false}),
    )
    .await;
    client.get_ok(INBOX, &[]).await;
    control(&sim, &format!("/accounts/{}/checkpoint", me.pk), json!({})).await;
    assert_eq!(
        client.get(INBOX, &[]).await.json()["message"],
        "checkpoint_required"
    );
}

/// An inbox request over `cookies` from the device `device_id`.
async fn inbox_from(
    sim: &Simulator,
    cookies: &BTreeMap<String, String>,
    device_id: &str,
) -> reqwest::Response {
    let cookie = cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    app_http()
        .get(format!("{}/{INBOX}", sim.api_base_url()))
        .header("Cookie", cookie)
        .header("X-IG-Device-ID", device_id)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_session_shown_from_another_device_is_challenged() {
    let (sim, me, _) = world().await;
    let phone = "6b0d4f4e-1c43-4b5e-9d7e-2f1f5a0c9e01";
    let other_phone = "0e9f5d1c-7a2b-4c3d-8e4f-5a6b7c8d9e02";
    for _ in 0..2 {
        let response = inbox_from(&sim, &me.cookies, phone).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let stolen = inbox_from(&sim, &me.cookies, other_phone).await;
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    let body: Value = stolen.json().await.unwrap();
    assert_eq!(body["message"], "challenge_required");
    // The session still works from its own phone; another session of the
    // account may be used from the other phone.
    let own = inbox_from(&sim, &me.cookies, phone).await;
    assert_eq!(own.status(), StatusCode::OK);
    let second = sim.new_session(me.pk).unwrap();
    let fresh = inbox_from(&sim, &second, other_phone).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let log = sim.request_log();
    let devices: Vec<Option<&str>> = log
        .iter()
        .map(|entry| entry.device.device_id.as_deref())
        .collect();
    assert_eq!(
        devices,
        [
            Some(phone),
            Some(phone),
            Some(other_phone),
            Some(phone),
            Some(other_phone)
        ]
    );
}
