//! End-to-end tests of the poller against the real bridge binary, Synapse
//! and the Instagram simulator, on SQLite and PostgreSQL: portals appear
//! after login with their history, new messages arrive in order (a burst
//! bigger than a page too), edits and reactions of messages already bridged,
//! a catch-up after downtime, faults while polling, and a login that
//! Instagram logged out (one notice, polling stops).

use instagram_sim::{Account, Fault};

use crate::harness::client::RoomEvent;
use crate::harness::relay::{poll, RelayFixture};
use crate::harness::{Backend, MatrixClient};

on_both_databases!(
    history_then_new_messages_in_order,
    history_then_new_messages_in_order_sqlite,
    history_then_new_messages_in_order_postgres
);
on_both_databases!(
    first_sync_bridges_the_newest_threads,
    first_sync_bridges_the_newest_threads_sqlite,
    first_sync_bridges_the_newest_threads_postgres
);
on_both_databases!(
    sync_polls_now,
    sync_polls_now_sqlite,
    sync_polls_now_postgres
);
on_both_databases!(
    catch_up_after_downtime,
    catch_up_after_downtime_sqlite,
    catch_up_after_downtime_postgres
);
on_both_databases!(
    catch_up_reaches_beyond_the_first_inbox_page,
    catch_up_reaches_beyond_the_first_inbox_page_sqlite,
    catch_up_reaches_beyond_the_first_inbox_page_postgres
);
on_both_databases!(
    faults_while_polling_lose_nothing,
    faults_while_polling_lose_nothing_sqlite,
    faults_while_polling_lose_nothing_postgres
);
on_both_databases!(
    killed_during_a_burst_relays_every_message_once,
    killed_during_a_burst_relays_every_message_once_sqlite,
    killed_during_a_burst_relays_every_message_once_postgres
);
on_both_databases!(
    changes_to_bridged_messages_arrive_with_new_ones,
    changes_to_bridged_messages_arrive_with_new_ones_sqlite,
    changes_to_bridged_messages_arrive_with_new_ones_postgres
);
on_both_databases!(
    logged_out_login_is_told_once,
    logged_out_login_is_told_once_sqlite,
    logged_out_login_is_told_once_postgres
);

/// A fixture whose bridge polls fast (the intervals are the config's).
async fn fixture(backend: Backend) -> RelayFixture {
    let fixture = RelayFixture::prepare(backend, "alice.insta").await;
    fixture.poll_fast();
    fixture
}

/// A friend on Instagram and alice's 1:1 thread with them.
fn friend_thread(fixture: &RelayFixture, username: &str) -> (Account, String) {
    fixture.friend_thread(username, "A Friend")
}

fn post(fixture: &RelayFixture, thread: &str, from: u64, texts: impl IntoIterator<Item = String>) {
    for text in texts {
        fixture
            .sim
            .post_text(thread, from, &text)
            .expect("posting a message");
    }
}

fn numbered(label: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("{label} {n}")).collect()
}

fn puppet(pk: u64) -> String {
    format!("@instagram_{pk}:localhost")
}

/// Waits until the room holds exactly `expected` from `sender`, in order
/// (the bodies of its `m.room.message` events), and no more.
async fn wait_for_texts(fixture: &RelayFixture, room: &str, sender: &str, expected: &[String]) {
    let history = fixture
        .wait_for_history(room, &format!("{} messages", expected.len()), |events| {
            events
                .iter()
                .filter(|e| e.kind() == "m.room.message" && e.sender() == sender)
                .count()
                >= expected.len()
        })
        .await;
    let bodies: Vec<&str> = history
        .iter()
        .filter(|e| e.kind() == "m.room.message" && e.sender() == sender)
        .map(|e| e.body())
        .collect();
    assert_eq!(bodies, expected, "every message once, in order");
}

async fn history_then_new_messages_in_order(backend: Backend) {
    let mut fixture = fixture(backend).await;
    // Message requests are polled at start, then when the inbox's count of them changes.
    fixture.configure(&["polling", "requests_interval_ms"], 600_000);
    let (friend, thread) = friend_thread(&fixture, "friend.one");
    let mut expected = numbered("before", 0..3);
    post(&fixture, &thread, friend.pk, expected.clone());

    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;

    // A burst bigger than a page (20 items) between two polls is followed back.
    let burst = numbered("burst", 0..45);
    post(&fixture, &thread, friend.pk, burst.clone());
    expected.extend(burst);
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;

    // A second thread appearing later gets its portal too.
    let (other, second) = friend_thread(&fixture, "friend.two");
    post(&fixture, &second, other.pk, numbered("hello", 0..2));
    let room = join_portal(&fixture, &second).await;
    wait_for_texts(&fixture, &room, &puppet(other.pk), &numbered("hello", 0..2)).await;

    // A stranger's message request (pending inbox) becomes a portal marked as one.
    let (stranger, request) = friend_thread(&fixture, "a.stranger");
    fixture
        .sim
        .set_pending(&request, fixture.me.pk, true)
        .expect("making the thread a request");
    post(&fixture, &request, stranger.pk, numbered("may I", 0..1));
    let portal = fixture.wait_for_portal(&request).await;
    assert!(portal.request, "the portal is a message request");
    let room = join_portal(&fixture, &request).await;
    wait_for_texts(
        &fixture,
        &room,
        &puppet(stranger.pk),
        &numbered("may I", 0..1),
    )
    .await;
}

/// Each poll that finds something new brings the thread's whole newest
/// page; its messages already bridged are not sent again, but an edit or a
/// reaction on one of them arrives, and so does a changed reaction.
async fn changes_to_bridged_messages_arrive_with_new_ones(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let sim = &fixture.sim;
    let (friend, thread) = friend_thread(&fixture, "friend.changes");
    let bodies = numbered("said", 0..3);
    let items: Vec<String> = bodies
        .iter()
        .map(|body| sim.post_text(&thread, friend.pk, body).expect("posting"))
        .collect();
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let sender = puppet(friend.pk);
    wait_for_texts(&fixture, &room, &sender, &bodies).await;

    sim.edit_text(&thread, &items[0], "said 0, better").unwrap();
    sim.react(&thread, &items[1], friend.pk, "❤️").unwrap();
    sim.post_text(&thread, friend.pk, "said 3").unwrap();
    let event_of = |history: &[RoomEvent], body: &str| -> String {
        history
            .iter()
            .find(|e| e.kind() == "m.room.message" && e.body() == body)
            .map(|e| e.event["event_id"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no event for {body:?}"))
    };
    let reactions = |history: &[RoomEvent]| -> Vec<RoomEvent> {
        history
            .iter()
            .filter(|e| e.kind() == "m.reaction" && e.sender() == sender)
            .cloned()
            .collect()
    };
    let history = fixture
        .wait_for_history(
            &room,
            "the edit, the reaction and the new message",
            |events| {
                events.iter().any(|e| e.body() == "said 3")
                    && events.iter().any(|e| e.body() == "* said 0, better")
                    && !reactions(events).is_empty()
            },
        )
        .await;
    let edit = history
        .iter()
        .find(|e| e.body() == "* said 0, better")
        .unwrap();
    assert_eq!(edit.sender(), sender);
    assert_eq!(
        edit.event["content"]["m.relates_to"]["rel_type"],
        "m.replace"
    );
    assert_eq!(
        edit.event["content"]["m.relates_to"]["event_id"],
        event_of(&history, "said 0").as_str()
    );
    let heart = reactions(&history);
    assert_eq!(heart.len(), 1, "one reaction: {heart:?}");
    let relates = &heart[0].event["content"]["m.relates_to"];
    assert_eq!(relates["key"], "❤️");
    assert_eq!(relates["event_id"], event_of(&history, "said 1").as_str());

    sim.react(&thread, &items[1], friend.pk, "😂").unwrap();
    let history = fixture
        .wait_for_history(&room, "the changed reaction", |events| {
            let now = reactions(events);
            now.len() == 2
                && now
                    .iter()
                    .any(|e| e.event["unsigned"]["redacted_because"].is_object())
        })
        .await;
    let laugh = reactions(&history)
        .into_iter()
        .find(|e| e.event["content"]["m.relates_to"]["key"] == "😂")
        .expect("the new reaction");
    assert_eq!(
        laugh.event["content"]["m.relates_to"]["event_id"],
        event_of(&history, "said 1").as_str()
    );
    let messages: Vec<&str> = history
        .iter()
        .filter(|e| e.kind() == "m.room.message" && e.sender() == sender)
        .filter(|e| e.event["content"]["m.relates_to"]["rel_type"] != "m.replace")
        .map(|e| e.body())
        .collect();
    assert_eq!(
        messages,
        numbered("said", 0..4),
        "every message once, in order"
    );
}

async fn first_sync_bridges_the_newest_threads(backend: Backend) {
    let mut fixture = fixture(backend).await;
    fixture.configure(&["backfill", "initial_threads"], 2);
    // Created and written to oldest first: the first is the least recent.
    let threads: Vec<(Account, String)> = (0..3)
        .map(|n| friend_thread(&fixture, &format!("friend.{n}")))
        .collect();
    for (friend, thread) in &threads {
        post(&fixture, thread, friend.pk, numbered("old", 0..2));
    }
    fixture.e2e.start_bridge().await;
    for (friend, thread) in &threads[1..] {
        let room = join_portal(&fixture, thread).await;
        wait_for_texts(&fixture, &room, &puppet(friend.pk), &numbered("old", 0..2)).await;
    }
    let store = fixture.store().await;
    let (quiet_friend, quiet) = &threads[0];
    let portal = store
        .portal_by_thread(&fixture.login_id, quiet)
        .await
        .expect("reading portals");
    assert_eq!(portal, None, "the oldest thread waits for activity");

    post(&fixture, quiet, quiet_friend.pk, numbered("new", 0..1));
    let room = join_portal(&fixture, quiet).await;
    let mut expected = numbered("old", 0..2);
    expected.extend(numbered("new", 0..1));
    wait_for_texts(&fixture, &room, &puppet(quiet_friend.pk), &expected).await;
}

/// More chats than one inbox page (20) become active between two polls of
/// a running bridge: every one of them gets its portal and message.
#[tokio::test]
async fn a_busy_moment_beyond_the_first_inbox_page_loses_nothing() {
    let mut fixture = fixture(Backend::Sqlite).await;
    fixture.poll_seldom();
    let bot = fixture.e2e.bot().to_owned();
    let (friend, thread) = friend_thread(&fixture, "friend.first");
    post(&fixture, &thread, friend.pk, numbered("first", 0..1));
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    wait_for_texts(
        &fixture,
        &room,
        &puppet(friend.pk),
        &numbered("first", 0..1),
    )
    .await;

    // 25 new chats while the poller waits; one `sync` poll must find them all.
    let busy: Vec<(Account, String)> = (0..25)
        .map(|n| friend_thread(&fixture, &format!("busy.{n}")))
        .collect();
    for (friend, thread) in &busy {
        post(&fixture, thread, friend.pk, numbered("busy", 0..1));
    }
    let management = management_room(&mut fixture.user, &bot).await;
    let reply = fixture
        .user
        .ask(&management, &bot, "sync")
        .await
        .expect("an answer to sync");
    assert_eq!(reply, "Syncing with Instagram now.");
    for (_, thread) in &busy {
        fixture.wait_for_portal(thread).await;
    }
}

async fn sync_polls_now(backend: Backend) {
    let mut fixture = fixture(backend).await;
    fixture.poll_seldom();
    let bot = fixture.e2e.bot().to_owned();
    let (friend, thread) = friend_thread(&fixture, "friend.one");
    post(&fixture, &thread, friend.pk, numbered("first", 0..1));
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let mut expected = numbered("first", 0..1);
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;

    post(&fixture, &thread, friend.pk, numbered("second", 0..1));
    let reply = fixture
        .user
        .ask(&room, &bot, "!ig sync")
        .await
        .expect("an answer to sync");
    assert_eq!(reply, "Syncing with Instagram now.");
    expected.extend(numbered("second", 0..1));
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;

    let management = management_room(&mut fixture.user, &bot).await;
    post(&fixture, &thread, friend.pk, numbered("third", 0..1));
    let reply = fixture
        .user
        .ask(&management, &bot, "sync")
        .await
        .expect("an answer to sync");
    assert_eq!(reply, "Syncing with Instagram now.");
    expected.extend(numbered("third", 0..1));
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;
}

/// A gap longer than `backfill.max_catchup_messages`: its newest messages
/// arrive in order and the room is told, once, that older ones are missing.
#[tokio::test]
async fn a_gap_beyond_the_catch_up_cap_is_announced() {
    let mut fixture = fixture(Backend::Sqlite).await;
    fixture.configure(&["backfill", "max_catchup_messages"], 25);
    let (friend, thread) = friend_thread(&fixture, "friend.gap");
    post(&fixture, &thread, friend.pk, numbered("first", 0..1));
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    wait_for_texts(
        &fixture,
        &room,
        &puppet(friend.pk),
        &numbered("first", 0..1),
    )
    .await;

    fixture.e2e.stop_bridge();
    post(&fixture, &thread, friend.pk, numbered("missed", 0..60));
    fixture.e2e.start_bridge().await;
    let bot = fixture.e2e.bot().to_owned();
    let history = fixture
        .wait_for_history(&room, "the newest missed message", |events| {
            events.iter().any(|e| e.body() == "missed 59")
        })
        .await;
    let bodies: Vec<&str> = history
        .iter()
        .filter(|e| e.kind() == "m.room.message" && e.sender() == puppet(friend.pk))
        .map(|e| e.body())
        .collect();
    let (first, caught_up) = bodies.split_first().expect("messages");
    assert_eq!(*first, "first 0");
    assert!(
        caught_up.len() >= 25 && caught_up.len() < 60,
        "the newest messages up to the cap: {bodies:?}"
    );
    let expected = numbered("missed", 60 - caught_up.len()..60);
    assert_eq!(caught_up, expected.as_slice(), "in order, none twice");
    let notices: Vec<&str> = history
        .iter()
        .filter(|e| e.sender() == bot && e.body().contains("max_catchup_messages"))
        .map(|e| e.body())
        .collect();
    assert_eq!(notices.len(), 1, "told once: {notices:?}");
}

async fn catch_up_after_downtime(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (friend, thread) = friend_thread(&fixture, "friend.one");
    post(&fixture, &thread, friend.pk, numbered("first", 0..1));
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let mut expected = numbered("first", 0..1);
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;

    fixture.e2e.stop_bridge();
    let missed = numbered("missed", 0..100);
    post(&fixture, &thread, friend.pk, missed.clone());
    expected.extend(missed);
    fixture.e2e.start_bridge().await;
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;
}

async fn catch_up_reaches_beyond_the_first_inbox_page(backend: Backend) {
    let mut fixture = fixture(backend).await;
    fixture.configure(&["backfill", "initial_threads"], 1);
    let (friend, bridged) = friend_thread(&fixture, "friend.bridged");
    post(&fixture, &bridged, friend.pk, numbered("before", 0..1));
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &bridged).await;
    let mut expected = numbered("before", 0..1);
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;

    fixture.e2e.stop_bridge();
    post(&fixture, &bridged, friend.pk, numbered("during", 0..1));
    expected.extend(numbered("during", 0..1));
    // 20 chats (a whole inbox page) are active after it while the bridge is down.
    let busy: Vec<(Account, String)> = (0..20)
        .map(|n| friend_thread(&fixture, &format!("busy.{n}")))
        .collect();
    for (other, thread) in &busy {
        post(&fixture, thread, other.pk, numbered("busy", 0..1));
    }
    fixture.e2e.start_bridge().await;
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;
}

async fn faults_while_polling_lose_nothing(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (friend, thread) = friend_thread(&fixture, "friend.one");
    post(&fixture, &thread, friend.pk, numbered("calm", 0..1));
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let mut expected = numbered("calm", 0..1);
    wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;

    let faults = [
        Fault {
            path_prefix: "direct_v2/inbox/".into(),
            status: Some(429),
            times: 6,
            ..Fault::default()
        },
        Fault {
            path_prefix: "direct_v2/threads/".into(),
            status: Some(500),
            times: 6,
            ..Fault::default()
        },
        Fault {
            path_prefix: "direct_v2/inbox/".into(),
            malformed_body: true,
            times: 3,
            ..Fault::default()
        },
        Fault {
            path_prefix: "direct_v2/threads/".into(),
            malformed_body: true,
            times: 3,
            ..Fault::default()
        },
        // Longer than polling.request_timeout_ms: the requests time out.
        Fault {
            path_prefix: "direct_v2/threads/".into(),
            delay: std::time::Duration::from_secs(3),
            times: 2,
            ..Fault::default()
        },
        Fault {
            path_prefix: "direct_v2/inbox/".into(),
            delay: std::time::Duration::from_secs(3),
            times: 2,
            ..Fault::default()
        },
    ];
    for (round, fault) in faults.into_iter().enumerate() {
        fixture.sim.inject_fault(fault);
        let texts = numbered(&format!("round {round}"), 0..5);
        post(&fixture, &thread, friend.pk, texts.clone());
        expected.extend(texts);
        wait_for_texts(&fixture, &room, &puppet(friend.pk), &expected).await;
    }
}

async fn killed_during_a_burst_relays_every_message_once(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let threads: Vec<(Account, String)> = (0..5)
        .map(|n| friend_thread(&fixture, &format!("friend.{n}")))
        .collect();
    for (friend, thread) in &threads {
        post(&fixture, thread, friend.pk, numbered("start", 0..1));
    }
    fixture.e2e.start_bridge().await;
    let mut rooms = Vec::new();
    for (friend, thread) in &threads {
        let room = join_portal(&fixture, thread).await;
        wait_for_texts(
            &fixture,
            &room,
            &puppet(friend.pk),
            &numbered("start", 0..1),
        )
        .await;
        rooms.push(room);
    }

    // 300 messages across the threads, interleaved; the bridge dies mid-way.
    for n in 0..60 {
        for (friend, thread) in &threads {
            post(&fixture, thread, friend.pk, [format!("burst {n}")]);
        }
    }
    poll("the relay under way", || async {
        let mut relayed = 0;
        for room in &rooms {
            let history = fixture.user.room_history(room).await.ok()?;
            relayed += history
                .iter()
                .filter(|e| e.kind() == "m.room.message" && e.body().starts_with("burst"))
                .count();
        }
        (relayed >= 20).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    fixture.e2e.kill_bridge();
    fixture.e2e.start_bridge().await;

    let mut expected = numbered("start", 0..1);
    expected.extend(numbered("burst", 0..60));
    for ((friend, _), room) in threads.iter().zip(&rooms) {
        wait_for_texts(&fixture, room, &puppet(friend.pk), &expected).await;
    }
}

async fn logged_out_login_is_told_once(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let bot = fixture.e2e.bot().to_owned();
    let (friend, thread) = friend_thread(&fixture, "friend.one");
    post(&fixture, &thread, friend.pk, numbered("hi", 0..1));
    fixture.e2e.start_bridge().await;
    let management = management_room(&mut fixture.user, &bot).await;
    join_portal(&fixture, &thread).await;

    fixture.sim.expire_session(fixture.me.pk).expect("expiring");
    let store = fixture.store().await;
    let mxid = fixture.login_id.clone();
    poll("the login marked as logged out", || async {
        let login = store.login(&mxid).await.ok()??;
        (login.state == "session_expired").then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    let notice = fixture
        .user
        .wait_for_message(&management, &bot)
        .await
        .expect("the bot tells alice");
    assert!(notice.body().contains("send `login`") || notice.body().contains("Send `login`"));

    // A restart neither polls the logged-out login nor tells alice again.
    fixture.e2e.stop_bridge();
    let inbox_polls = fixture.sim.request_count("GET", "direct_v2/inbox/");
    fixture.e2e.start_bridge().await;
    let reply = fixture
        .user
        .ask(&management, &bot, "sync")
        .await
        .expect("an answer to sync");
    assert!(reply.contains("login"), "{reply}");
    let notices: Vec<String> = fixture
        .user
        .messages_from(&management, &bot)
        .await
        .expect("the management room's history")
        .iter()
        .map(|e| e.body().to_owned())
        .filter(|body| {
            body.starts_with("@alice.insta: ")
                && body.contains("Bridging of your Instagram messages has stopped")
        })
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        fixture.sim.request_count("GET", "direct_v2/inbox/"),
        inbox_polls,
        "no poll after the restart"
    );
}

/// Waits for the portal of `thread` and joins it (retrying until the invite
/// is there); returns the room.
async fn join_portal(fixture: &RelayFixture, thread: &str) -> String {
    let portal = fixture.wait_for_portal(thread).await;
    poll(&format!("alice joining {}", portal.room_id), || async {
        fixture.user.join(&portal.room_id).await.ok()
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    portal.room_id
}

/// Alice opens a DM with the bot (her management room) and waits for its greeting.
async fn management_room(alice: &mut MatrixClient, bot: &str) -> String {
    let room = alice.create_dm(bot).await.expect("inviting the bot");
    alice
        .wait_for_message(&room, bot)
        .await
        .expect("the bot greets alice");
    room
}
