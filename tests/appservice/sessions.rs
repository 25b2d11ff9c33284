//! End-to-end tests of a login's states against the real bridge binary,
//! Synapse and the Instagram simulator: a session Instagram ends while the
//! bridge polls (one notice, polling stops, Matrix messages held, all
//! delivered once after `login-cookies`), a session found ended by
//! `auth.validate` at startup, `ping` showing the state and the last
//! successful poll, Instagram unreachable for a run of polls and back, and
//! the keep-alive check finding an ended session.
//! The bridge's log never holds a cookie value.

use std::collections::BTreeMap;

use instagram_sim::{Account, Fault, Simulator};
use matrix_instagram::store::OutboxState;

use crate::harness::client::RoomEvent;
use crate::harness::relay::{poll, RelayFixture};
use crate::harness::{Backend, MatrixClient};

on_both_databases!(
    an_ended_session_holds_everything_until_the_next_login,
    an_ended_session_holds_everything_until_the_next_login_sqlite,
    an_ended_session_holds_everything_until_the_next_login_postgres
);

const INBOX: &str = "direct_v2/inbox/";
const CURRENT_USER: &str = "accounts/current_user/";
/// The spec's `session.keep_alive` request.
const KEEP_ALIVE: &str = "direct_v2/get_presence/";
const EXPIRED_NOTICE: &str = "Your Instagram session has ended";

/// A fixture whose bridge polls fast.
async fn fixture(backend: Backend) -> RelayFixture {
    let fixture = RelayFixture::prepare(backend, "alice.insta").await;
    fixture.poll_fast();
    fixture
}

/// A friend on Instagram and alice's 1:1 thread with them, with a first
/// message from the friend (so the portal is created).
fn friend_thread(fixture: &RelayFixture) -> (Account, String) {
    let (friend, thread, _) = fixture.friend_thread_saying("friend.one", "A Friend", "hello");
    (friend, thread)
}

/// alice opens a DM with the bot (her management room) and waits for its greeting.
async fn management_room(alice: &mut MatrixClient, bot: &str) -> String {
    let room = alice.create_dm(bot).await.expect("inviting the bot");
    alice
        .wait_for_message(&room, bot)
        .await
        .expect("the bot greets alice");
    room
}

/// alice joins the portal of `thread` once it exists.
async fn join_portal(fixture: &RelayFixture, thread: &str) -> String {
    let portal = fixture.wait_for_portal(thread).await;
    poll(&format!("alice joining {}", portal.room_id), || async {
        fixture.user.join(&portal.room_id).await.ok()
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    portal.room_id
}

/// Waits until alice's login is in `state`.
async fn wait_for_state(fixture: &RelayFixture, state: &str) {
    let store = fixture.store().await;
    let mxid = fixture.login_id.clone();
    poll(&format!("the login in state {state}"), || async {
        let login = store.login(&mxid).await.ok()??;
        (login.state == state).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}

/// The bot's messages in the management room containing `text`.
async fn bot_messages_with(fixture: &RelayFixture, room: &str, text: &str) -> Vec<String> {
    fixture
        .user
        .messages_from(room, fixture.e2e.bot())
        .await
        .expect("the management room's history")
        .iter()
        .map(|e| e.body().to_owned())
        .filter(|body| body.contains(text))
        .collect()
}

/// Waits for the bot's message in the management room containing `text`.
async fn wait_for_bot_message(fixture: &mut RelayFixture, room: &str, text: &str) -> String {
    let bot = fixture.e2e.bot().to_owned();
    fixture
        .user
        .wait_for(&format!("the bot saying {text:?}"), |event: &RoomEvent| {
            event.room_id == room && event.sender() == bot && event.body().contains(text)
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"))
        .body()
        .to_owned()
}

/// The bodies of the room's messages from `sender`, in order.
async fn texts_from(fixture: &RelayFixture, room: &str, sender: &str) -> Vec<String> {
    fixture
        .user
        .room_history(room)
        .await
        .expect("the room's history")
        .iter()
        .filter(|e| e.kind() == "m.room.message" && e.sender() == sender)
        .map(|e| e.body().to_owned())
        .collect()
}

/// Fails if the bridge's log holds any of the cookie values.
fn assert_no_cookie_in_log(fixture: &RelayFixture, cookies: &[&BTreeMap<String, String>]) {
    let log = fixture.e2e.bridge_logs();
    assert!(log.contains("poller started"), "the log was not captured");
    for value in cookies.iter().flat_map(|cookies| cookies.values()) {
        assert!(
            value.len() < 8 || !log.contains(value.as_str()),
            "a cookie value is in the bridge's log"
        );
    }
}

async fn an_ended_session_holds_everything_until_the_next_login(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let bot = fixture.e2e.bot().to_owned();
    let (friend, thread) = friend_thread(&fixture);
    let friend_puppet = format!("@instagram_{}:localhost", friend.pk);
    fixture.e2e.start_bridge().await;
    let management = management_room(&mut fixture.user, &bot).await;
    let room = join_portal(&fixture, &thread).await;
    fixture
        .wait_for_history(&room, "the first message", |events| {
            events.iter().any(|e| e.body() == "hello")
        })
        .await;

    let store = fixture.store().await;
    let mxid = fixture.login_id.clone();
    poll("a successful poll recorded", || async {
        store.last_poll_success(&mxid).await.ok()?
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let ping = fixture
        .user
        .ask(&management, &bot, "ping")
        .await
        .expect("an answer to ping");
    assert!(
        ping.contains("Logged in as @alice.insta (connected). Last successful poll 20")
            && ping.contains(" UTC ("),
        "{ping}"
    );

    fixture.sim.expire_session(fixture.me.pk).expect("expiring");
    let notice = wait_for_bot_message(&mut fixture, &management, EXPIRED_NOTICE).await;
    assert!(
        notice.contains("Send `login` or `login-cookies` here"),
        "{notice}"
    );
    wait_for_state(&fixture, "session_expired").await;
    let ping = fixture
        .user
        .ask(&management, &bot, "ping")
        .await
        .expect("an answer to ping");
    assert!(
        ping.contains("Logged in as @alice.insta (session expired)."),
        "{ping}"
    );

    // Meanwhile alice writes from Matrix and her friend on Instagram.
    let held = fixture
        .user
        .send_text(&room, "sent while logged out")
        .await
        .expect("sending");
    fixture
        .sim
        .post_text(&thread, friend.pk, "written while alice was logged out")
        .expect("posting a message");
    poll("the held message in the outbox", || async {
        store.outbox_entry(&held).await.ok()?
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let reply = fixture
        .user
        .ask(&management, &bot, "sync")
        .await
        .expect("an answer to sync");
    assert!(reply.contains("login"), "{reply}");
    let entry = store.outbox_entry(&held).await.unwrap().expect("queued");
    assert_eq!(entry.state, OutboxState::Pending);
    let inbox_polls = fixture.sim.request_count("GET", INBOX);

    // A fresh login through the bot.
    let cookies = fixture
        .sim
        .new_session(fixture.me.pk)
        .expect("a new session");
    let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    fixture
        .user
        .send_text(&management, &format!("login-cookies {}", header.join("; ")))
        .await
        .expect("pasting cookies");
    wait_for_bot_message(&mut fixture, &management, "Connected to Instagram").await;
    wait_for_state(&fixture, "connected").await;

    let on_instagram = poll("the held message on Instagram", || async {
        let snapshot = fixture.sim.thread_snapshot(&thread).ok()?;
        let texts: Vec<String> = snapshot["items"]
            .as_array()?
            .iter()
            .filter_map(|item| item["text"].as_str().map(str::to_owned))
            .collect();
        texts
            .iter()
            .any(|text| text == "sent while logged out")
            .then_some(texts)
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    fixture
        .wait_for_history(&room, "the friend's message", |events| {
            events
                .iter()
                .any(|e| e.body() == "written while alice was logged out")
        })
        .await;
    assert!(
        fixture.sim.request_count("GET", INBOX) > inbox_polls,
        "polling resumed"
    );
    poll("the held message marked sent", || async {
        let entry = store.outbox_entry(&held).await.ok()??;
        (entry.state == OutboxState::Sent).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));

    let sent = on_instagram
        .iter()
        .filter(|text| *text == "sent while logged out")
        .count();
    assert_eq!(sent, 1, "{on_instagram:?}");
    assert_eq!(
        texts_from(&fixture, &room, &friend_puppet).await,
        ["hello", "written while alice was logged out"]
    );
    assert_eq!(
        bot_messages_with(&fixture, &management, EXPIRED_NOTICE)
            .await
            .len(),
        1
    );
    let history = fixture.user.room_history(&room).await.expect("history");
    assert!(
        !history.iter().any(|e| {
            e.kind() == "com.beeper.message_send_status"
                && e.event["content"]["status"] == "FAIL_PERMANENT"
        }),
        "the held message never failed for good"
    );
    assert_no_cookie_in_log(&fixture, &[&fixture.me.cookies, &cookies]);
}

#[tokio::test]
async fn a_session_ended_while_the_bridge_was_down_is_found_at_startup() {
    let mut fixture = fixture(Backend::Sqlite).await;
    let bot = fixture.e2e.bot().to_owned();
    fixture.e2e.start_bridge().await;
    let management = management_room(&mut fixture.user, &bot).await;
    fixture.e2e.stop_bridge();

    fixture.sim.expire_session(fixture.me.pk).expect("expiring");
    let inbox_polls = fixture.sim.request_count("GET", INBOX);
    let validations = fixture.sim.request_count("GET", CURRENT_USER);
    fixture.e2e.start_bridge().await;
    let notice = wait_for_bot_message(&mut fixture, &management, EXPIRED_NOTICE).await;
    assert!(notice.contains("`login-cookies`"), "{notice}");
    wait_for_state(&fixture, "session_expired").await;
    assert!(fixture.sim.request_count("GET", CURRENT_USER) > validations);
    let reply = fixture
        .user
        .ask(&management, &bot, "sync")
        .await
        .expect("an answer to sync");
    assert!(reply.contains("login"), "{reply}");
    assert_eq!(
        fixture.sim.request_count("GET", INBOX),
        inbox_polls,
        "no poll of a login whose session ended"
    );
    assert_eq!(
        bot_messages_with(&fixture, &management, EXPIRED_NOTICE)
            .await
            .len(),
        1
    );
    assert_no_cookie_in_log(&fixture, &[&fixture.me.cookies]);
}

#[tokio::test]
async fn instagram_unreachable_for_a_run_of_polls_and_back() {
    let mut fixture = fixture(Backend::Sqlite).await;
    fixture.configure(&["polling", "unreachable_after_failures"], 2);
    let bot = fixture.e2e.bot().to_owned();
    let (_, thread) = friend_thread(&fixture);
    fixture.e2e.start_bridge().await;
    let management = management_room(&mut fixture.user, &bot).await;
    join_portal(&fixture, &thread).await;

    // Each poll tries the inbox four times (the spec's retry rule): two
    // polls fail, then Instagram answers again.
    let failing_polls = 2;
    fixture.sim.inject_fault(Fault {
        path_prefix: INBOX.to_owned(),
        status: Some(500),
        times: 4 * failing_polls,
        ..Fault::default()
    });
    let failed_inbox = |sim: &Simulator| {
        sim.request_log()
            .iter()
            .filter(|entry| entry.path.ends_with(INBOX) && entry.status == 500)
            .count()
    };
    poll("a first failed poll", || async {
        (failed_inbox(&fixture.sim) >= 4).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let notice = wait_for_bot_message(&mut fixture, &management, "cannot be reached").await;
    assert!(notice.contains("nothing you need to do"), "{notice}");
    assert_eq!(
        failed_inbox(&fixture.sim),
        4 * failing_polls,
        "marked after the run"
    );
    wait_for_bot_message(&mut fixture, &management, "Reconnected to Instagram").await;
    wait_for_state(&fixture, "connected").await;
    assert_eq!(
        bot_messages_with(&fixture, &management, "cannot be reached")
            .await
            .len(),
        1
    );
    assert_eq!(
        bot_messages_with(&fixture, &management, "Reconnected")
            .await
            .len(),
        1
    );
    let ping = fixture
        .user
        .ask(&management, &bot, "ping")
        .await
        .expect("an answer to ping");
    assert!(ping.contains("(connected). Last successful poll"), "{ping}");
}

#[tokio::test]
async fn the_keep_alive_check_finds_an_ended_session() {
    let mut fixture = fixture(Backend::Sqlite).await;
    // Polls so seldom that only the keep-alive check, every second here, can
    // notice the end.
    fixture.poll_seldom();
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/connectors/instagram.yaml"
    ))
    .expect("reading the built-in spec");
    let every_second = spec.replacen("interval: \"4h\"", "interval: \"1s\"", 1);
    assert_ne!(every_second, spec, "the spec's keep-alive interval moved");
    let path = fixture.e2e.config.dir.join("instagram.yaml");
    std::fs::write(&path, every_second).expect("writing the spec");
    fixture.configure(
        &["instagram", "connector"],
        path.to_string_lossy().into_owned(),
    );
    let bot = fixture.e2e.bot().to_owned();
    fixture.e2e.start_bridge().await;
    let management = management_room(&mut fixture.user, &bot).await;
    let keep_alive_checks = |sim: &Simulator| {
        sim.request_log()
            .iter()
            .filter(|entry| entry.path.ends_with(KEEP_ALIVE))
            .map(|entry| entry.status)
            .collect::<Vec<u16>>()
    };
    let store = fixture.store().await;
    let mxid = fixture.login_id.clone();
    poll("the first poll done and a keep-alive check", || async {
        store.last_poll_success(&mxid).await.ok()??;
        (!keep_alive_checks(&fixture.sim).is_empty()).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let inbox_polls = fixture.sim.request_count("GET", INBOX);

    fixture.sim.expire_session(fixture.me.pk).expect("expiring");
    let notice = wait_for_bot_message(&mut fixture, &management, EXPIRED_NOTICE).await;
    assert!(notice.contains("`login-cookies`"), "{notice}");
    wait_for_state(&fixture, "session_expired").await;
    let checks = keep_alive_checks(&fixture.sim);
    assert_eq!(checks.last(), Some(&403), "{checks:?}");
    assert_eq!(
        fixture.sim.request_count("GET", INBOX),
        inbox_polls,
        "found by the keep-alive check, not a poll"
    );
}
