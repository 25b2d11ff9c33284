//! End-to-end tests of Matrix -> Instagram through the outbox, against the
//! real bridge binary, Synapse and the Instagram simulator, on SQLite and
//! PostgreSQL: what alice writes in a portal lands in the simulator's thread
//! with the right text, reply target and client_context, once (its echo is
//! not bridged back); the send status and the bot's receipt reach the room;
//! faults during sends lose and repeat nothing and are told plainly (rate
//! limits and spam warnings wait out the login's cool-down); and a
//! bridge killed while 300 messages go out, or whose sends are written and
//! then lose their answer, sends each exactly once, in order.

use std::time::{Duration, Instant};

use instagram_sim::{Account, Fault, Settings};
use matrix_instagram::bridge::relay_out::client_context;
use serde_json::{json, Value};

use crate::harness::client::RoomEvent;
use crate::harness::relay::{poll, RelayFixture};
use crate::harness::Backend;

on_both_databases!(
    texts_land_in_the_thread_once,
    texts_land_in_the_thread_once_sqlite,
    texts_land_in_the_thread_once_postgres
);
on_both_databases!(
    faults_during_sends_lose_and_repeat_nothing,
    faults_during_sends_lose_and_repeat_nothing_sqlite,
    faults_during_sends_lose_and_repeat_nothing_postgres
);
on_both_databases!(
    dropped_connections_while_sending_lose_and_repeat_nothing,
    dropped_connections_while_sending_lose_and_repeat_nothing_sqlite,
    dropped_connections_while_sending_lose_and_repeat_nothing_postgres
);
on_both_databases!(
    killed_while_sending_sends_every_message_once,
    killed_while_sending_sends_every_message_once_sqlite,
    killed_while_sending_sends_every_message_once_postgres
);

/// The send path of a text.
const SEND_TEXT: &str = "direct_v2/threads/broadcast/text/";

/// Instagram's DM spam warning.
const FEEDBACK_REQUIRED: &str = r#"{"message":"feedback_required","spam":true,"feedback_title":"Message Failed","feedback_message":"This message contains content that has been blocked by our security systems.","status":"fail"}"#;

/// A fixture whose bridge polls fast and retries sends after short waits.
async fn fixture(backend: Backend) -> RelayFixture {
    let fixture = RelayFixture::prepare(backend, "alice.insta").await;
    fixture.poll_fast();
    for (key, value) in [
        ("max_attempts", 4),
        ("initial_backoff_ms", 200),
        ("max_backoff_ms", 1_000),
        ("request_timeout_ms", 3_000),
    ] {
        fixture.configure(&["sending", key], value);
    }
    fixture
}

/// A friend on Instagram and alice's 1:1 thread with them, with a first
/// message from the friend (so the portal is created).
fn friend_thread(fixture: &RelayFixture, username: &str) -> (Account, String, String) {
    fixture.friend_thread_saying(username, "A Friend", &format!("hello from {username}"))
}

fn puppet(pk: u64) -> String {
    format!("@instagram_{pk}:localhost")
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

/// The id of the event whose body is `body`, once it is in the room.
async fn event_with_body(fixture: &RelayFixture, room: &str, body: &str) -> String {
    let history = fixture
        .wait_for_history(room, &format!("{body:?} in the room"), |events| {
            events.iter().any(|e| e.body() == body)
        })
        .await;
    event_id(history.iter().find(|e| e.body() == body).expect("found"))
}

fn event_id(event: &RoomEvent) -> String {
    event.event["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The items alice's account sent in a thread, oldest first.
fn my_items(fixture: &RelayFixture, thread: &str) -> Vec<Value> {
    let snapshot = fixture
        .sim
        .thread_snapshot(thread)
        .expect("the thread's snapshot");
    let me = fixture.me.pk.to_string();
    let mut items: Vec<Value> = snapshot["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|item| item["user_id"].to_string().trim_matches('"') == me)
        .collect();
    items.reverse();
    items
}

fn texts(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until alice's account has sent an item with text `last` in the
/// thread; returns all of its items then.
async fn wait_for_my_text(fixture: &RelayFixture, thread: &str, last: &str) -> Vec<Value> {
    poll(&format!("{last:?} on Instagram"), || async {
        let items = my_items(fixture, thread);
        texts(&items)
            .iter()
            .any(|text| text == last)
            .then_some(items)
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"))
}

/// The send statuses the bot reported for `event`, in order.
fn statuses(history: &[RoomEvent], bot: &str, event: &str) -> Vec<Value> {
    history
        .iter()
        .filter(|e| {
            e.kind() == "com.beeper.message_send_status"
                && e.sender() == bot
                && e.event["content"]["m.relates_to"]["event_id"] == event
        })
        .map(|e| e.event["content"].clone())
        .collect()
}

/// Waits until the bot reported `status` for `event`; returns the room's history.
async fn wait_for_status(
    fixture: &RelayFixture,
    room: &str,
    event: &str,
    status: &str,
) -> Vec<RoomEvent> {
    let bot = fixture.e2e.bot().to_owned();
    fixture
        .wait_for_history(room, &format!("{status} for {event}"), |events| {
            statuses(events, &bot, event)
                .iter()
                .any(|content| content["status"] == status)
        })
        .await
}

/// The bot's notices in reply to `event`.
fn notices_about(history: &[RoomEvent], bot: &str, event: &str) -> Vec<String> {
    history
        .iter()
        .filter(|e| {
            e.sender() == bot
                && e.event["content"]["msgtype"] == "m.notice"
                && e.event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event
        })
        .map(|e| e.body().to_owned())
        .collect()
}

async fn texts_land_in_the_thread_once(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let bot = fixture.e2e.bot().to_owned();
    let (friend, thread, hello_item) = friend_thread(&fixture, "friend.one");
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let hello_event = event_with_body(&fixture, &room, "hello from friend.one").await;
    let friend_puppet = puppet(friend.pk);

    let sends = [
        json!({"msgtype": "m.text", "body": "plain words"}),
        json!({"msgtype": "m.notice", "body": "a notice"}),
        json!({"msgtype": "m.emote", "body": "waves"}),
        json!({
            "msgtype": "m.text",
            "body": "**bold** and A Friend",
            "format": "org.matrix.custom.html",
            "formatted_body": format!(
                "<strong>bold</strong> and <a href=\"https://matrix.to/#/{friend_puppet}\">A Friend</a>"
            ),
        }),
        json!({
            "msgtype": "m.text",
            "body": format!("> <{friend_puppet}> hello from friend.one\n\nmy answer"),
            "format": "org.matrix.custom.html",
            "formatted_body": format!(
                "<mx-reply><blockquote><a href=\"https://matrix.to/#/{room}/{hello_event}\">In reply to</a> \
                 <a href=\"https://matrix.to/#/{friend_puppet}\">A Friend</a><br>hello from friend.one\
                 </blockquote></mx-reply>my answer"
            ),
            "m.relates_to": {"m.in_reply_to": {"event_id": hello_event}},
        }),
    ];
    let mut events = Vec::new();
    for content in &sends {
        let event = fixture
            .user
            .send_event(&room, "m.room.message", content)
            .await
            .expect("alice sends");
        events.push(event);
    }
    let expected = [
        "plain words",
        "a notice",
        "/me waves",
        "bold and @friend.one",
        "my answer",
    ];
    let items = wait_for_my_text(&fixture, &thread, "my answer").await;
    assert_eq!(texts(&items), expected, "each text once, in order");
    for (item, event) in items.iter().zip(&events) {
        assert_eq!(
            item["client_context"].as_str(),
            Some(client_context(event).as_str()),
            "the client_context derives from the event id"
        );
    }
    assert_eq!(
        items[4]["replied_to_message"]["item_id"].as_str(),
        Some(hello_item.as_str()),
        "the Matrix reply is an Instagram reply to the bridged item"
    );

    for event in &events {
        let history = wait_for_status(&fixture, &room, event, "SUCCESS").await;
        let reported = statuses(&history, &bot, event);
        assert_eq!(reported.len(), 1, "one status: {reported:?}");
        assert_eq!(reported[0]["network"], "instagram");
        assert_eq!(reported[0]["m.relates_to"]["rel_type"], "m.reference");
    }
    fixture
        .wait_for_receipt(&room, &bot, events.last().expect("sent"))
        .await;
    let store = fixture.store().await;
    for (event, item) in events.iter().zip(&items) {
        let record = store
            .message_by_event(&room, event)
            .await
            .expect("reading the message table")
            .expect("the sent event is mapped to its item");
        assert_eq!(Some(record.item_id.as_str()), item["item_id"].as_str());
    }

    // What the bridge cannot carry gets a notice and FAIL_PERMANENT.
    let file = fixture
        .user
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.file", "body": "notes.txt", "url": "mxc://localhost/abc"}),
        )
        .await
        .expect("alice sends a file");
    let history = wait_for_status(&fixture, &room, &file, "FAIL_PERMANENT").await;
    let failed = statuses(&history, &bot, &file);
    assert_eq!(failed[0]["reason"], "com.beeper.unsupported_event");
    assert_eq!(
        failed[0]["message"],
        "Instagram direct messages cannot carry files."
    );
    let history = fixture
        .wait_for_history(&room, "the notice about the file", |events| {
            !notices_about(events, &bot, &file).is_empty()
        })
        .await;
    assert_eq!(
        notices_about(&history, &bot, &file),
        ["Your message was not sent to Instagram: Instagram direct messages cannot carry files."]
    );

    // The friend answers; once that is bridged, the polls have seen alice's
    // items: none came back into the room, and none was sent twice.
    fixture
        .sim
        .post_text(&thread, friend.pk, "got them")
        .expect("the friend answers");
    event_with_body(&fixture, &room, "got them").await;
    let history = fixture.user.room_history(&room).await.expect("history");
    let echoed: Vec<&str> = history
        .iter()
        .filter(|e| e.kind() == "m.room.message" && e.sender() != fixture.user.user_id)
        .map(RoomEvent::body)
        .filter(|body| expected.contains(body))
        .collect();
    assert!(echoed.is_empty(), "echoes bridged back: {echoed:?}");
    assert_eq!(texts(&my_items(&fixture, &thread)), expected);
}

/// A fault on the next send of a text.
fn send_fault(fault: Fault) -> Fault {
    Fault {
        path_prefix: SEND_TEXT.to_owned(),
        method: Some("POST".to_owned()),
        ..fault
    }
}

async fn send(fixture: &mut RelayFixture, room: &str, body: &str) -> String {
    fixture
        .user
        .send_text(room, body)
        .await
        .unwrap_or_else(|err| panic!("sending {body:?}: {err}"))
}

async fn faults_during_sends_lose_and_repeat_nothing(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let bot = fixture.e2e.bot().to_owned();
    let (friend, thread, _) = friend_thread(&fixture, "friend.one");
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    event_with_body(&fixture, &room, "hello from friend.one").await;

    // A rate limit, then it passes: the message waits out the login's
    // cool-down (one FAIL_RETRIABLE saying so), then SUCCESS.
    fixture.sim.inject_fault(send_fault(Fault {
        status: Some(429),
        ..Fault::default()
    }));
    let limited = send(&mut fixture, &room, "through a rate limit").await;
    let history = wait_for_status(&fixture, &room, &limited, "SUCCESS").await;
    let reported: Vec<Value> = statuses(&history, &bot, &limited)
        .into_iter()
        .map(|content| content["status"].clone())
        .collect();
    assert_eq!(reported, ["FAIL_RETRIABLE", "SUCCESS"]);
    let paused = &statuses(&history, &bot, &limited)[0];
    assert!(
        paused["message"]
            .as_str()
            .is_some_and(|m| m.contains("asked this account to slow down")),
        "{paused:?}"
    );

    // Written, then a 500 or a dropped connection: the bridge finds the item
    // by its client_context instead of sending it again.
    fixture.sim.inject_fault(send_fault(Fault {
        status: Some(500),
        after_write: true,
        ..Fault::default()
    }));
    let written = send(&mut fixture, &room, "written then 500").await;
    wait_for_status(&fixture, &room, &written, "SUCCESS").await;
    fixture.sim.inject_fault(send_fault(Fault {
        drop_connection: true,
        after_write: true,
        ..Fault::default()
    }));
    let dropped = send(&mut fixture, &room, "written then dropped").await;
    wait_for_status(&fixture, &room, &dropped, "SUCCESS").await;

    // Written, then a slow 500 while the friend writes more than a page:
    // the bridge reads back past the newest page and finds the item.
    fixture.sim.inject_fault(send_fault(Fault {
        status: Some(500),
        after_write: true,
        delay: Duration::from_secs(2),
        ..Fault::default()
    }));
    let buried = send(&mut fixture, &room, "written then buried").await;
    poll("the buried message written", || async {
        let items = my_items(&fixture, &thread);
        texts(&items)
            .contains(&"written then buried".to_owned())
            .then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    for n in 0..25 {
        fixture
            .sim
            .post_text(&thread, friend.pk, &format!("burying {n}"))
            .expect("the friend writes");
    }
    wait_for_status(&fixture, &room, &buried, "SUCCESS").await;

    // Instagram's spam warning (feedback_required): not given up, the
    // message waits out the cool-down and goes.
    fixture.sim.inject_fault(send_fault(Fault {
        status: Some(400),
        body: Some(FEEDBACK_REQUIRED.to_owned()),
        ..Fault::default()
    }));
    let flagged = send(&mut fixture, &room, "flagged").await;
    let history = wait_for_status(&fixture, &room, &flagged, "SUCCESS").await;
    let reported: Vec<Value> = statuses(&history, &bot, &flagged)
        .into_iter()
        .map(|content| content["status"].clone())
        .collect();
    assert_eq!(reported, ["FAIL_RETRIABLE", "SUCCESS"]);

    // Rate-limited again and again: held through the growing cool-downs, its
    // tries not used up, never given up.
    fixture.sim.inject_fault(send_fault(Fault {
        status: Some(429),
        times: 6,
        ..Fault::default()
    }));
    let persistent = send(&mut fixture, &room, "rate limited again and again").await;
    let history = wait_for_status(&fixture, &room, &persistent, "SUCCESS").await;
    assert!(
        !statuses(&history, &bot, &persistent)
            .iter()
            .any(|content| content["status"] == "FAIL_PERMANENT"),
        "never given up"
    );
    assert!(notices_about(&history, &bot, &persistent).is_empty());
    // Two sends through the rate limit, one each for the three written
    // ones, two for the flagged one, seven for the persistent one: a
    // cool-down sends nothing until it ends.
    assert_eq!(fixture.sim.request_count("POST", SEND_TEXT), 2 + 3 + 2 + 7);
    fixture.sim.clear_faults();

    // Sending resumes.
    let resumed = send(&mut fixture, &room, "back to normal").await;
    wait_for_status(&fixture, &room, &resumed, "SUCCESS").await;

    // The session expires: the messages wait (the room is told once), and
    // go out in order after alice logs in again.
    fixture
        .sim
        .expire_session(fixture.me.pk)
        .expect("expiring the session");
    let held = send(&mut fixture, &room, "while logged out").await;
    wait_for_status(&fixture, &room, &held, "FAIL_RETRIABLE").await;
    let also_held = send(&mut fixture, &room, "also while logged out").await;
    let history = wait_for_status(&fixture, &room, &also_held, "FAIL_RETRIABLE").await;
    let history = if notices_about(&history, &bot, &held).is_empty() {
        fixture
            .wait_for_history(&room, "the logged-out notice", |events| {
                !notices_about(events, &bot, &held).is_empty()
            })
            .await
    } else {
        history
    };
    let told = notices_about(&history, &bot, &held);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("send `login` to the bot"), "{told:?}");
    assert!(notices_about(&history, &bot, &also_held).is_empty());
    let login = fixture.login().await;
    assert_eq!(login.state, "session_expired");

    fixture.e2e.stop_bridge();
    fixture.log_in_again().await;
    fixture.e2e.start_bridge().await;
    wait_for_status(&fixture, &room, &held, "SUCCESS").await;
    wait_for_status(&fixture, &room, &also_held, "SUCCESS").await;

    let items = wait_for_my_text(&fixture, &thread, "also while logged out").await;
    assert_eq!(
        texts(&items),
        [
            "through a rate limit",
            "written then 500",
            "written then dropped",
            "written then buried",
            "flagged",
            "rate limited again and again",
            "back to normal",
            "while logged out",
            "also while logged out",
        ],
        "nothing lost, nothing twice"
    );
}

async fn killed_while_sending_sends_every_message_once(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (threads, rooms) = five_portals(&mut fixture).await;

    // 300 messages across the portals, interleaved; the bridge is killed
    // while it carries the first 100 out, and the rest are sent while it is
    // down.
    let expected: Vec<String> = (0..60).map(|n| format!("out {n}")).collect();
    for text in &expected[..20] {
        for room in &rooms {
            send(&mut fixture, room, text).await;
        }
    }
    poll("the sends under way", || async {
        let landed: usize = threads
            .iter()
            .map(|thread| my_items(&fixture, thread).len())
            .sum();
        (landed >= 20).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    fixture.e2e.kill_bridge();
    for text in &expected[20..] {
        for room in &rooms {
            send(&mut fixture, room, text).await;
        }
    }
    fixture.e2e.start_bridge().await;

    for thread in &threads {
        let items = wait_for_backlog(&fixture, thread, "out 59").await;
        assert_eq!(texts(&items), expected, "every message once, in order");
    }
    for room in &rooms {
        let history = fixture.user.room_history(room).await.expect("history");
        let echoed = history
            .iter()
            .filter(|e| e.kind() == "m.room.message" && e.body().starts_with("out "))
            .filter(|e| e.sender() != fixture.user.user_id)
            .count();
        assert_eq!(echoed, 0, "no echo bridged back");
    }
}

/// Five portals with alice joined, their threads and rooms; Instagram's
/// spam limit on sends is lifted (300 messages in a minute would meet it).
async fn five_portals(fixture: &mut RelayFixture) -> (Vec<String>, Vec<String>) {
    fixture.sim.set_settings(Settings {
        send_limit_per_minute: 0,
        ..fixture.sim.settings()
    });
    let threads: Vec<String> = (0..5)
        .map(|n| friend_thread(fixture, &format!("friend.{n}")).1)
        .collect();
    fixture.e2e.start_bridge().await;
    let mut rooms = Vec::new();
    for thread in &threads {
        rooms.push(join_portal(fixture, thread).await);
    }
    (threads, rooms)
}

async fn dropped_connections_while_sending_lose_and_repeat_nothing(backend: Backend) {
    let mut fixture = fixture(backend).await;
    // The faults below strike the next sends of any portal, so one message
    // may meet several in a row: enough tries that none is given up.
    fixture.configure(&["sending", "max_attempts"], 20);
    let (threads, rooms) = five_portals(&mut fixture).await;
    // Sends written and then answered by a dropped connection or a 500, and
    // sends whose connection drops before they are written.
    for (status, drop_connection, after_write) in [
        (None, true, true),
        (Some(500), false, true),
        (None, true, false),
    ] {
        fixture.sim.inject_fault(send_fault(Fault {
            status,
            drop_connection,
            after_write,
            times: 20,
            ..Fault::default()
        }));
    }
    let expected: Vec<String> = (0..60).map(|n| format!("out {n}")).collect();
    for text in &expected {
        for room in &rooms {
            send(&mut fixture, room, text).await;
        }
    }
    for thread in &threads {
        let items = wait_for_backlog(&fixture, thread, "out 59").await;
        assert_eq!(texts(&items), expected, "every message once, in order");
    }
    // Every fault struck: 60 sends were repeated after a lookup, 40 of them
    // were found written instead.
    assert_eq!(fixture.sim.request_count("POST", SEND_TEXT), 300 + 20);
}

/// How long a backlog may take to go out after a restart: Synapse delivers
/// the events it queued while the bridge was down one stored transaction at
/// a time, so hundreds of them take minutes on a busy machine.
const BACKLOG_WAIT: Duration = Duration::from_secs(300);

/// Waits (up to [`BACKLOG_WAIT`]) until alice's account has sent an item
/// with text `last` in the thread; returns all of its items then.
async fn wait_for_backlog(fixture: &RelayFixture, thread: &str, last: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let items = my_items(fixture, thread);
        if texts(&items).iter().any(|text| text == last) {
            return items;
        }
        assert!(
            started.elapsed() < BACKLOG_WAIT,
            "{last:?} did not reach Instagram within {BACKLOG_WAIT:?}; alice's items: {:?}",
            texts(&items)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
