//! End-to-end tests of the chat and inbox commands, read receipts, typing
//! and leaving a portal, against the real bridge binary, Synapse and the
//! Instagram simulator, on SQLite and PostgreSQL: each command changes the
//! simulator's thread state as Instagram would (flags, accepted requests,
//! new chats and groups) or answers what the user asked; receipts and
//! typing reach the thread; a left portal is not bridged into any more.

use instagram_sim::Presence;
use serde_json::{json, Value};

use crate::harness::relay::{poll, RelayFixture};
use crate::harness::{Backend, HarnessError, MatrixClient};

on_both_databases!(
    chat_commands_change_the_thread,
    chat_commands_change_the_thread_sqlite,
    chat_commands_change_the_thread_postgres
);
on_both_databases!(
    accept_takes_a_message_request,
    accept_takes_a_message_request_sqlite,
    accept_takes_a_message_request_postgres
);
on_both_databases!(
    inbox_commands_answer,
    inbox_commands_answer_sqlite,
    inbox_commands_answer_postgres
);
on_both_databases!(
    pm_and_create_group_start_chats,
    pm_and_create_group_start_chats_sqlite,
    pm_and_create_group_start_chats_postgres
);
on_both_databases!(
    receipts_and_typing_reach_instagram,
    receipts_and_typing_reach_instagram_sqlite,
    receipts_and_typing_reach_instagram_postgres
);
on_both_databases!(
    leaving_a_portal_stops_bridging_it,
    leaving_a_portal_stops_bridging_it_sqlite,
    leaving_a_portal_stops_bridging_it_postgres
);

async fn fixture(backend: Backend) -> RelayFixture {
    let fixture = RelayFixture::prepare(backend, "alice.insta").await;
    fixture.poll_fast();
    fixture
}

/// alice's state in a thread, as the simulator keeps it.
fn my_state(fixture: &RelayFixture, thread: &str) -> Value {
    let snapshot = fixture
        .sim
        .thread_snapshot(thread)
        .expect("the thread exists");
    snapshot["member_state"][fixture.me.pk.to_string()].clone()
}

/// Waits for the portal of `thread` and joins it; returns the room.
async fn join_portal(fixture: &RelayFixture, thread: &str) -> String {
    let portal = fixture.wait_for_portal(thread).await;
    poll(&format!("alice joining {}", portal.room_id), || async {
        fixture.user.join(&portal.room_id).await.ok()
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    portal.room_id
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

async fn ask(fixture: &mut RelayFixture, room: &str, command: &str) -> String {
    let bot = fixture.e2e.bot().to_owned();
    fixture
        .user
        .ask(room, &bot, command)
        .await
        .unwrap_or_else(|err| panic!("asking {command}: {err}"))
}

/// A client-server request as alice on `segments` (path segments, encoded).
async fn as_alice(
    fixture: &RelayFixture,
    method: reqwest::Method,
    segments: &[&str],
    body: Value,
) -> Result<Value, HarnessError> {
    let mut url = fixture.user.base_url().clone();
    url.path_segments_mut()
        .expect("http URL has a path")
        .extend(["_matrix", "client", "v3"])
        .extend(segments);
    let doing = format!("{method} {}", segments.join("/"));
    let http = |source| HarnessError::Http {
        doing: doing.clone(),
        source,
    };
    let response = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(fixture.user.access_token())
        .json(&body)
        .send()
        .await
        .map_err(http)?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(http)?;
    if status != 200 {
        return Err(HarnessError::Matrix {
            doing,
            status,
            body: text,
        });
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn send_receipt(fixture: &RelayFixture, room: &str, event_id: &str) {
    as_alice(
        fixture,
        reqwest::Method::POST,
        &["rooms", room, "receipt", "m.read", event_id],
        json!({}),
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}

async fn set_typing(fixture: &RelayFixture, room: &str, typing: bool) {
    let user = fixture.user.user_id.clone();
    as_alice(
        fixture,
        reqwest::Method::PUT,
        &["rooms", room, "typing", &user],
        json!({"typing": typing, "timeout": 30_000}),
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}

/// The Matrix event of an Instagram item, once bridged.
async fn event_of(fixture: &RelayFixture, thread: &str, item: &str) -> String {
    let store = fixture.store().await;
    let found = poll(&format!("item {item} bridged"), || async {
        store
            .message_by_item(&fixture.login_id, thread, item)
            .await
            .ok()
            .flatten()
    })
    .await;
    found.unwrap_or_else(|err| panic!("{err}")).event_id
}

/// Waits until alice's state in the thread satisfies `done`.
async fn wait_for_state(
    fixture: &RelayFixture,
    thread: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let found = poll(what, || async {
        let state = my_state(fixture, thread);
        done(&state).then_some(state)
    })
    .await;
    found.unwrap_or_else(|err| panic!("{err}"))
}

async fn chat_commands_change_the_thread(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (friend, thread) = fixture.friend_thread("friend.one", "Friend One");
    fixture
        .sim
        .post_text(&thread, friend.pk, "hi")
        .expect("posting");
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let state = my_state(&fixture, &thread);
    assert_eq!(state["muted"], false);
    assert_eq!(state["archived"], false);

    assert_eq!(
        ask(&mut fixture, &room, "!ig mute").await,
        "Muted this chat on Instagram."
    );
    assert_eq!(my_state(&fixture, &thread)["muted"], true);
    assert_eq!(
        ask(&mut fixture, &room, "!ig unmute").await,
        "Unmuted this chat on Instagram."
    );
    assert_eq!(my_state(&fixture, &thread)["muted"], false);
    assert_eq!(
        ask(&mut fixture, &room, "!ig mark-unread").await,
        "Marked this chat unread on Instagram."
    );
    assert_eq!(my_state(&fixture, &thread)["marked_as_unread"], true);
    assert_eq!(
        ask(&mut fixture, &room, "!ig archive").await,
        "Archived this chat on Instagram."
    );
    assert_eq!(my_state(&fixture, &thread)["archived"], true);
    assert_eq!(
        ask(&mut fixture, &room, "!ig mute now").await,
        "Usage: `!ig mute`. In a chat: mute its notifications on Instagram."
    );

    // Outside a chat the command says where it works.
    let bot = fixture.e2e.bot().to_owned();
    let management = management_room(&mut fixture.user, &bot).await;
    let reply = ask(&mut fixture, &management, "mute").await;
    assert!(
        reply.starts_with("`mute` works in the room of an Instagram chat: send `!ig mute` there."),
        "{reply}"
    );

    // An Instagram failure is a plain sentence, not a response dump.
    fixture.sim.inject_fault(instagram_sim::Fault {
        path_prefix: "/api/v1/direct_v2/threads/".to_owned(),
        method: Some("POST".to_owned()),
        status: Some(429),
        body: Some(
            json!({"message": "Please wait a few minutes before you try again.", "status": "fail"})
                .to_string(),
        ),
        times: 10,
        ..Default::default()
    });
    // It also pauses the login's requests (a cool-down): the answer says until when.
    let reply = ask(&mut fixture, &room, "!ig mute").await;
    assert!(
        reply.starts_with(
            "`mute` failed: Instagram asked your account to slow down (too many requests); \
             the bridge sends nothing to Instagram for this login until "
        ) && reply.ends_with(" UTC. Try again then"),
        "{reply}"
    );
    fixture.sim.clear_faults();
    assert_eq!(my_state(&fixture, &thread)["muted"], false);
}

async fn accept_takes_a_message_request(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let stranger = fixture.instagram_user("stranger", "A Stranger");
    let thread = fixture
        .sim
        .create_thread(stranger.pk, &[fixture.me.pk], None)
        .expect("creating the thread");
    fixture
        .sim
        .set_pending(&thread, fixture.me.pk, true)
        .expect("a request");
    fixture
        .sim
        .post_text(&thread, stranger.pk, "hello, may I ask something?")
        .expect("posting");
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let bot = fixture.e2e.bot().to_owned();
    let notice = fixture
        .user
        .wait_for_message(&room, &bot)
        .await
        .expect("the message request notice");
    assert!(
        notice
            .body()
            .ends_with("Send `!ig accept` in this room to accept the request."),
        "{}",
        notice.body()
    );
    let store = fixture.store().await;
    let portal = store
        .portal_by_thread(&fixture.login_id, &thread)
        .await
        .unwrap()
        .expect("the portal");
    assert!(portal.request, "the portal is a message request");
    assert_eq!(my_state(&fixture, &thread)["pending"], true);

    assert_eq!(
        ask(&mut fixture, &room, "!ig accept").await,
        "Accepted the message request: the chat is in your Instagram inbox now."
    );
    assert_eq!(my_state(&fixture, &thread)["pending"], false);
    let portal = store
        .portal_by_thread(&fixture.login_id, &thread)
        .await
        .unwrap()
        .expect("the portal");
    assert!(!portal.request, "the portal is no longer a request");
    let state = store
        .thread_state(&fixture.login_id, &thread)
        .await
        .unwrap()
        .expect("the poller's view of the thread");
    assert!(
        !state.request,
        "the poller no longer counts it as a request"
    );
    assert_eq!(
        ask(&mut fixture, &room, "!ig accept").await,
        "This chat is not a message request: it is already in your Instagram inbox."
    );
}

async fn inbox_commands_answer(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (one, first) = fixture.friend_thread("friend.one", "Friend One");
    let (two, second) = fixture.friend_thread("friend.two", "Friend Two");
    fixture
        .sim
        .post_text(&second, fixture.me.pk, "see you at noon")
        .expect("posting");
    fixture
        .sim
        .mark_seen(&second, fixture.me.pk, &newest_item(&fixture, &second))
        .expect("alice read it");
    let pineapple = fixture
        .sim
        .post_text(&first, one.pk, "a pineapple pizza tonight?")
        .expect("posting");
    fixture
        .sim
        .set_presence(
            two.pk,
            Presence {
                is_active: true,
                last_activity_at_ms: 1_700_000_000_000,
            },
        )
        .expect("presence");
    fixture
        .sim
        .set_presence(
            one.pk,
            Presence {
                is_active: false,
                last_activity_at_ms: 1_700_000_000_000,
            },
        )
        .expect("presence");
    fixture.e2e.start_bridge().await;
    let first_room = join_portal(&fixture, &first).await;
    let pineapple_event = event_of(&fixture, &first, &pineapple).await;
    let bot = fixture.e2e.bot().to_owned();
    let management = management_room(&mut fixture.user, &bot).await;

    let list = ask(&mut fixture, &management, "list").await;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "Your Instagram chats (page 1):", "{list}");
    assert!(
        lines[1].starts_with("1. Friend One · 1 unread · https://matrix.to/#/"),
        "{list}"
    );
    assert!(
        lines[1].ends_with(&encode(&first_room)),
        "links the portal: {list}"
    );
    assert!(
        lines[2].starts_with("2. Friend Two · https://matrix.to/#/"),
        "{list}"
    );
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(
        ask(&mut fixture, &management, "list 2").await,
        "There is no page 2: your inbox has fewer chats."
    );
    assert_eq!(
        ask(&mut fixture, &management, "list zero").await,
        "`zero` is not a page number (1 to 25).\nUsage: `list [page]`. List your Instagram \
         chats, newest first, with unread counts (20 a page)."
    );

    let unread = ask(&mut fixture, &management, "unread").await;
    assert!(
        unread.starts_with(
            "Unread Instagram chats (1):\n• Friend One: “a pineapple pizza tonight?” · https://matrix.to/#/"
        ),
        "{unread}"
    );

    let search = ask(&mut fixture, &management, "search pineapple pizza").await;
    assert!(
        search.starts_with("Messages matching “pineapple pizza”:\n• @friend.one ("),
        "{search}"
    );
    assert!(
        search.contains(&format!(
            ": “a pineapple pizza tonight?” · https://matrix.to/#/{}/{}",
            encode(&first_room),
            encode(&pineapple_event)
        )),
        "the result links its bridged event: {search}"
    );
    assert_eq!(
        ask(&mut fixture, &management, "search durian").await,
        "No Instagram message matches “durian”."
    );

    assert_eq!(
        ask(&mut fixture, &management, "presence @friend.two").await,
        "@friend.two is active on Instagram now."
    );
    assert_eq!(
        ask(&mut fixture, &management, "presence friend.one").await,
        "@friend.one is not active now; last active 2023-11-14 22:13 UTC."
    );
    assert_eq!(
        ask(&mut fixture, &management, "presence nobody.here").await,
        "`presence` failed: there is no Instagram user @nobody.here"
    );
    assert_eq!(
        ask(&mut fixture, &management, "presence 'not a name'").await,
        "`not a name` is not an Instagram username (letters, digits, `.` and `_`, at most 30).\n\
         Usage: `presence <username>`. Show whether an Instagram user is active now, or when \
         they last were."
    );
    assert_eq!(
        ask(&mut fixture, &management, "presence").await,
        "Usage: `presence <username>`. Show whether an Instagram user is active now, or when \
         they last were."
    );

    // The inbox is not shown in a chat's room, which others may see.
    assert_eq!(
        ask(&mut fixture, &first_room, "!ig list").await,
        "`list` failed: `list` shows your Instagram inbox, so it works only in your management \
         room (your direct chat with me)"
    );
}

/// The newest item of a thread, as the simulator holds it.
fn newest_item(fixture: &RelayFixture, thread: &str) -> String {
    let snapshot = fixture.sim.thread_snapshot(thread).expect("the thread");
    snapshot["items"][0]["item_id"]
        .as_str()
        .expect("an item")
        .to_owned()
}

/// How a matrix.to link encodes an id.
fn encode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

async fn pm_and_create_group_start_chats(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (one, existing) = fixture.friend_thread("friend.one", "Friend One");
    let two = fixture.instagram_user("friend.two", "Friend Two");
    fixture
        .sim
        .post_text(&existing, one.pk, "old news")
        .expect("posting");
    fixture.e2e.start_bridge().await;
    let existing_room = fixture.wait_for_portal(&existing).await.room_id;
    let bot = fixture.e2e.bot().to_owned();
    let management = management_room(&mut fixture.user, &bot).await;
    let store = fixture.store().await;
    let alice = fixture.login_id.clone();

    assert_eq!(
        ask(&mut fixture, &management, "pm friend.two").await,
        "You have no chat with @friend.two on Instagram yet, and Instagram starts a chat with its \
         first message: send `pm friend.two <message>`."
    );
    let reply = ask(&mut fixture, &management, "pm friend.two hello from Matrix").await;
    assert!(
        reply.starts_with(
            "Opened your chat with @friend.two and sent your message; you are invited to its room: https://matrix.to/#/"
        ),
        "{reply}"
    );
    let portals = store.portals_of_login(&alice).await.unwrap();
    let dm = portals
        .iter()
        .find(|portal| portal.thread_id != existing)
        .expect("a portal for the new chat");
    let snapshot = fixture
        .sim
        .thread_snapshot(&dm.thread_id)
        .expect("the new thread");
    assert_eq!(snapshot["is_group"], false);
    let mut members: Vec<u64> = serde_json::from_value(snapshot["members"].clone()).unwrap();
    members.sort_unstable();
    let mut expected = vec![fixture.me.pk, two.pk];
    expected.sort_unstable();
    assert_eq!(members, expected);
    assert_eq!(snapshot["items"][0]["text"], "hello from Matrix");
    assert!(reply.ends_with(&encode(&dm.room_id)), "{reply}");
    fixture.wait_for_invite(&dm.room_id).await;

    let reply = ask(&mut fixture, &management, "pm @friend.one").await;
    assert_eq!(
        reply,
        format!(
            "Opened your chat with @friend.one; you are invited to its room: https://matrix.to/#/{}",
            encode(&existing_room)
        )
    );
    assert_eq!(
        ask(&mut fixture, &management, "pm ghost.user hi").await,
        "`pm` failed: there is no Instagram user @ghost.user"
    );

    let reply = ask(
        &mut fixture,
        &management,
        "create-group \"Weekend trip\" friend.one @friend.two",
    )
    .await;
    assert!(
        reply.starts_with(
            "Created the Instagram group “Weekend trip” with @friend.one, @friend.two; you are invited to its room: https://matrix.to/#/"
        ),
        "{reply}"
    );
    let portals = store.portals_of_login(&alice).await.unwrap();
    let group = portals
        .iter()
        .find(|portal| portal.thread_id != existing && portal.thread_id != dm.thread_id)
        .expect("a portal for the group");
    let snapshot = fixture
        .sim
        .thread_snapshot(&group.thread_id)
        .expect("the group");
    assert_eq!(snapshot["is_group"], true);
    assert_eq!(snapshot["title"], "Weekend trip");
    let mut members: Vec<u64> = serde_json::from_value(snapshot["members"].clone()).unwrap();
    members.sort_unstable();
    let mut expected = vec![fixture.me.pk, one.pk, two.pk];
    expected.sort_unstable();
    assert_eq!(members, expected);
    assert!(reply.ends_with(&encode(&group.room_id)), "{reply}");
    fixture.wait_for_invite(&group.room_id).await;

    assert_eq!(
        ask(&mut fixture, &management, "create-group Trip ghost.user").await,
        "`create-group` failed: there is no Instagram user @ghost.user"
    );
    assert_eq!(
        ask(&mut fixture, &management, "create-group Trip").await,
        "Usage: `create-group <title> <username...>`. Create an Instagram group with these users \
         and open its room (quote a title with spaces)."
    );
    assert_eq!(
        store.portals_of_login(&alice).await.unwrap().len(),
        3,
        "failed commands create nothing"
    );
}

async fn receipts_and_typing_reach_instagram(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (friend, thread) = fixture.friend_thread("friend.one", "Friend One");
    let first = fixture
        .sim
        .post_text(&thread, friend.pk, "first")
        .expect("posting");
    let second = fixture
        .sim
        .post_text(&thread, friend.pk, "second")
        .expect("posting");
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let first_event = event_of(&fixture, &thread, &first).await;
    event_of(&fixture, &thread, &second).await;
    assert!(my_state(&fixture, &thread)["last_seen_at"].is_null());

    send_receipt(&fixture, &room, &first_event).await;
    wait_for_state(
        &fixture,
        &thread,
        "alice's read mark at the first item",
        |state| state["last_seen_at"]["item_id"] == first.as_str(),
    )
    .await;

    // A receipt on an event that is no Instagram item (the bot's answer)
    // reads up to the newest item before it.
    let bot = fixture.e2e.bot().to_owned();
    ask(&mut fixture, &room, "!ig help").await;
    let answer = fixture
        .user
        .room_history(&room)
        .await
        .expect("the room's history")
        .into_iter()
        .rev()
        .find(|event| event.sender() == bot && event.kind() == "m.room.message")
        .expect("the bot's answer");
    let answer_id = answer.event["event_id"]
        .as_str()
        .expect("an event id")
        .to_owned();
    send_receipt(&fixture, &room, &answer_id).await;
    wait_for_state(
        &fixture,
        &thread,
        "alice's read mark at the second item",
        |state| state["last_seen_at"]["item_id"] == second.as_str(),
    )
    .await;

    let typing_path = "/api/v1/direct_v2/threads/broadcast/indicate_activity/";
    let before = fixture.sim.request_count("POST", typing_path);
    set_typing(&fixture, &room, true).await;
    wait_for_state(&fixture, &thread, "alice typing on Instagram", |state| {
        state["typing"]["activity_status"] == 1
    })
    .await;
    // Typing again at once is not sent again (Instagram's clients resend every 10 s).
    set_typing(&fixture, &room, true).await;
    set_typing(&fixture, &room, false).await;
    wait_for_state(
        &fixture,
        &thread,
        "alice stopping typing on Instagram",
        |state| state["typing"]["activity_status"] == 0,
    )
    .await;
    assert_eq!(
        fixture.sim.request_count("POST", typing_path) - before,
        2,
        "one start and one stop"
    );
}

async fn leaving_a_portal_stops_bridging_it(backend: Backend) {
    let mut fixture = fixture(backend).await;
    let (friend, thread) = fixture.friend_thread("friend.one", "Friend One");
    fixture
        .sim
        .post_text(&thread, friend.pk, "before")
        .expect("posting");
    fixture.e2e.start_bridge().await;
    let room = join_portal(&fixture, &thread).await;
    let alice = fixture.login_id.clone();
    let store = fixture.store().await;

    as_alice(
        &fixture,
        reqwest::Method::POST,
        &["rooms", &room, "leave"],
        json!({}),
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    poll("the portal forgotten", || async {
        store
            .portal_by_thread(&alice, &thread)
            .await
            .ok()
            .filter(Option::is_none)
            .map(|_| ())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));

    // New activity makes a fresh portal and invites alice again; the left
    // room gets nothing.
    let after = fixture
        .sim
        .post_text(&thread, friend.pk, "after")
        .expect("posting");
    let portal = fixture.wait_for_portal(&thread).await;
    assert_ne!(portal.room_id, room, "a fresh room");
    fixture.wait_for_invite(&portal.room_id).await;
    let record = poll("the new message bridged", || async {
        store
            .message_by_item(&alice, &thread, &after)
            .await
            .ok()
            .flatten()
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        record.room_id, portal.room_id,
        "bridged into the fresh room"
    );
}
