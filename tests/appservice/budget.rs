//! Account safety end to end, against the bridge binary, Synapse and the
//! simulator: alice sends more messages than Instagram lets her session send
//! in a minute; Instagram answers `feedback_required`, each one a strike
//! escalating towards a challenge; the bridge meets each refusal with a
//! longer cool-down of the login's requests instead of retries, so the
//! escalation stops before the challenge, alice is told once, every message
//! goes out once, in order, and once the cool-downs are over she is told the
//! login is back to normal.

use std::time::{Duration, Instant};

use instagram_sim::{Fault, Settings};

use crate::harness::client::RoomEvent;
use crate::harness::relay::{poll, RelayFixture};
use crate::harness::Backend;

on_both_databases!(
    rate_limit_escalation_is_met_by_cool_downs,
    rate_limit_escalation_is_met_by_cool_downs_sqlite,
    rate_limit_escalation_is_met_by_cool_downs_postgres
);

/// A restart during a cool-down keeps it: the restarted bridge asks
/// Instagram nothing (not even whether the session is valid) until the pause
/// Instagram asked for is over, then polls again.
#[tokio::test]
async fn a_restart_keeps_the_cool_down() {
    let mut fixture = RelayFixture::prepare(Backend::Sqlite, "alice.pause").await;
    fixture.poll_fast();
    for (key, value) in [("cool_down_ms", 15_000), ("max_cool_down_ms", 15_000)] {
        fixture.configure(&["safety", key], value);
    }
    let (_, thread, _) = fixture.friend_thread_saying("friend.pause", "A Friend", "hello");
    fixture.e2e.start_bridge().await;
    fixture.join_portal(&thread).await;

    fixture.sim.inject_fault(Fault {
        path_prefix: "direct_v2/inbox/".into(),
        status: Some(429),
        ..Fault::default()
    });
    let limited_at = poll("the login rate limited", || async {
        (fixture.login().await.state == "rate_limited").then(Instant::now)
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    fixture.e2e.stop_bridge();
    fixture.sim.clear_request_log();
    fixture.e2e.start_bridge().await;
    let asked_at = poll("a request once the pause is over", || async {
        (!fixture.sim.request_log().is_empty()).then(Instant::now)
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert!(
        asked_at - limited_at >= Duration::from_secs(12),
        "the restarted bridge asked Instagram {:?} after the 15 s pause began",
        asked_at - limited_at
    );
}

/// What the rate-limited notice says.
const PAUSED: &str = "requests to Instagram are paused until";

/// What the notice at the end of the cool-downs says.
const RECONNECTED: &str = "Reconnected to Instagram";

/// Instagram's escalation, faster than the real one so a test sees it end: a
/// session may send 6 messages a minute (the spam warning, a strike, after
/// that); 3 strikes within 10 s turn all its sends into `feedback_required`,
/// 10 into a challenge.
fn strict_instagram() -> Settings {
    Settings {
        send_limit_per_minute: 6,
        strikes_for_feedback: 3,
        strikes_for_challenge: 10,
        strike_decay: Duration::from_secs(10),
        ..Settings::default()
    }
}

async fn rate_limit_escalation_is_met_by_cool_downs(backend: Backend) {
    let mut fixture = RelayFixture::prepare(backend, "alice.insta").await;
    let bot = fixture.e2e.bot().to_owned();
    // The default buckets; cool-downs scaled down like Instagram's escalation.
    for (key, value) in [
        ("reads_burst", 40),
        ("reads_per_minute", 60),
        ("writes_burst", 5),
        ("writes_per_minute", 20),
        ("cool_down_ms", 1_000),
        ("max_cool_down_ms", 32_000),
        ("forget_after_ms", 15_000),
    ] {
        fixture.configure(&["safety", key], value);
    }
    for (key, value) in [
        ("active_interval_ms", 2_000),
        ("idle_interval_ms", 4_000),
        ("parallel_fetches", 1),
    ] {
        fixture.configure(&["polling", key], value);
    }
    let (_, thread, _) = fixture.friend_thread_saying("friend.one", "A Friend", "hello");
    fixture.e2e.start_bridge().await;
    let management = fixture
        .user
        .create_dm(&bot)
        .await
        .expect("inviting the bot");
    fixture
        .user
        .wait_for_message(&management, &bot)
        .await
        .expect("the bot greets alice");
    let room = fixture.join_portal(&thread).await;
    fixture
        .wait_for_history(&room, "the friend's message", |events| {
            events.iter().any(|e| e.body() == "hello")
        })
        .await;

    fixture.sim.set_settings(strict_instagram());
    fixture.sim.clear_request_log();
    let expected: Vec<String> = (0..10).map(|n| format!("fast {n}")).collect();
    let mut events = Vec::new();
    for text in &expected {
        events.push(
            fixture
                .user
                .send_text(&room, text)
                .await
                .expect("alice sends"),
        );
    }

    let mut sent = Vec::new();
    for _ in 0..4 {
        if let Ok(items) = poll("every message on Instagram", || async {
            let items = my_texts(&fixture, &thread);
            (items.len() >= expected.len()).then_some(items)
        })
        .await
        {
            sent = items;
            break;
        }
    }
    assert_eq!(sent, expected, "every message once, in order");
    for event in &events {
        fixture
            .wait_for_history(&room, &format!("SUCCESS for {event}"), |history| {
                statuses(history, &bot, event).contains(&"SUCCESS".to_owned())
            })
            .await;
    }

    let refusals = fixture
        .sim
        .request_log()
        .iter()
        .filter(|entry| entry.pk == Some(fixture.me.pk))
        .filter(|entry| entry.status == 429 || entry.status == 400)
        .count();
    assert!(
        refusals >= 3,
        "{refusals} refusals: no escalation was tested"
    );
    assert!(
        refusals < strict_instagram().strikes_for_challenge as usize,
        "{refusals} refusals: the bridge hammered on towards a challenge"
    );
    assert!(fixture.sim.strikes(fixture.me.pk).expect("strikes") < 10);

    // Quiet for `forget_after_ms`: the login is back to normal, and alice told so.
    let mut notices = Vec::new();
    for _ in 0..2 {
        if let Ok(found) = poll("the notice that the login is back", || async {
            let bodies: Vec<String> = fixture
                .user
                .messages_from(&management, &bot)
                .await
                .ok()?
                .iter()
                .map(|e| e.body().to_owned())
                .collect();
            bodies
                .iter()
                .any(|body| body.contains(RECONNECTED))
                .then_some(bodies)
        })
        .await
        {
            notices = found;
            break;
        }
    }
    let paused: Vec<&String> = notices
        .iter()
        .filter(|body| body.contains(PAUSED))
        .collect();
    assert_eq!(paused.len(), 1, "told once: {notices:?}");
    assert!(paused[0].contains(" UTC. Nothing is lost"), "{paused:?}");
    assert_eq!(
        notices
            .iter()
            .filter(|body| body.contains(RECONNECTED))
            .count(),
        1,
        "{notices:?}"
    );
    assert_eq!(fixture.login().await.state, "connected");
}

/// The texts alice's account sent in the thread, oldest first.
fn my_texts(fixture: &RelayFixture, thread: &str) -> Vec<String> {
    let snapshot = fixture
        .sim
        .thread_snapshot(thread)
        .expect("the thread's snapshot");
    let me = fixture.me.pk.to_string();
    let mut texts: Vec<String> = snapshot["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|item| item["user_id"].to_string().trim_matches('"') == me)
        .map(|item| item["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    texts.reverse();
    texts
}

/// The send statuses the bot reported for `event`, in order.
fn statuses(history: &[RoomEvent], bot: &str, event: &str) -> Vec<String> {
    history
        .iter()
        .filter(|e| {
            e.kind() == "com.beeper.message_send_status"
                && e.sender() == bot
                && e.event["content"]["m.relates_to"]["event_id"] == event
        })
        .filter_map(|e| e.event["content"]["status"].as_str().map(str::to_owned))
        .collect()
}
