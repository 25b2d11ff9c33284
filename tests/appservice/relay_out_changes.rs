//! End-to-end tests of the Matrix events that change something on Instagram,
//! through the running bridge, a real Synapse and the Instagram simulator, on
//! SQLite and PostgreSQL: edits, reactions (a second one replaces the first
//! on both sides), unreact, unsend, group renames and puppets invited into a
//! group; and what cannot be done is refused with a notice. Each change
//! alters the simulator's thread and its send status reaches the room.
//! `carry_out_in_process` drives the changes module itself in the test
//! process, then relays the thread back as the poll would.

use instagram_sim::Account;
use matrix_instagram::bridge::portal::ensure_portal;
use matrix_instagram::bridge::relay_in::{relay_message, relay_unsend};
use matrix_instagram::bridge::relay_out::changes::{carry_out, Change, ChangeDone, ChangeError};
use matrix_instagram::bridge::Bridge;
use matrix_instagram::store::{LoginRecord, PortalRecord};
use ruma::RoomId;
use serde_json::{json, Value};

use crate::harness::client::RoomEvent;
use crate::harness::relay::{poll, RelayFixture};
use crate::harness::synapse::random_hex;
use crate::harness::Backend;

on_both_databases!(
    carry_out_in_process,
    carry_out_in_process_sqlite,
    carry_out_in_process_postgres
);
on_both_databases!(
    edits_change_the_text_on_instagram,
    edits_change_the_text_on_instagram_sqlite,
    edits_change_the_text_on_instagram_postgres
);
on_both_databases!(
    a_second_reaction_replaces_the_first_and_unreact_removes_it,
    a_second_reaction_replaces_the_first_and_unreact_removes_it_sqlite,
    a_second_reaction_replaces_the_first_and_unreact_removes_it_postgres
);
on_both_databases!(
    redacting_unsends_only_own_messages,
    redacting_unsends_only_own_messages_sqlite,
    redacting_unsends_only_own_messages_postgres
);
on_both_databases!(
    group_portals_rename_and_add_members,
    group_portals_rename_and_add_members_sqlite,
    group_portals_rename_and_add_members_postgres
);

const SEND_STATUS: &str = "com.beeper.message_send_status";

fn puppet(pk: u64) -> String {
    format!("@instagram_{pk}:localhost")
}

/// A fixture whose bridge polls fast, with alice's 1:1 thread with a friend
/// holding one message of the friend's; the bridge runs and alice joined the
/// portal. Returns the friend, the thread, the room and the friend's event.
async fn friend_chat(backend: Backend) -> (RelayFixture, Account, String, String, String) {
    let mut fixture = RelayFixture::prepare(backend, "alice.insta").await;
    fixture.poll_fast();
    let (friend, thread, _) = fixture.friend_thread_saying("friend.one", "A Friend", "pick a time");
    fixture.e2e.start_bridge().await;
    let room = fixture.join_portal(&thread).await;
    let friend_event = wait_for_message(&fixture, &room, &puppet(friend.pk), "pick a time").await;
    (fixture, friend, thread, room, friend_event)
}

/// Waits for `sender`'s message `body` in the room; returns its event id.
async fn wait_for_message(fixture: &RelayFixture, room: &str, sender: &str, body: &str) -> String {
    let history = fixture
        .wait_for_history(room, &format!("{sender}'s {body:?}"), |events| {
            events.iter().any(|e| is_message(e, sender, body))
        })
        .await;
    let event = history
        .iter()
        .find(|e| is_message(e, sender, body))
        .expect("found above");
    event_id(event)
}

fn is_message(event: &RoomEvent, sender: &str, body: &str) -> bool {
    event.kind() == "m.room.message" && event.sender() == sender && event.body() == body
}

fn event_id(event: &RoomEvent) -> String {
    event.event["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Sends an event of any type as alice; returns its event id.
async fn send_event(fixture: &RelayFixture, room: &str, kind: &str, content: Value) -> String {
    let txn = format!("c{}", random_hex(8));
    let url = endpoint(fixture, &["rooms", room, "send", kind, &txn]);
    let answer = as_alice(fixture, reqwest::Client::new().put(url).json(&content)).await;
    answer["event_id"].as_str().unwrap_or_default().to_owned()
}

/// alice redacts an event; returns the redaction's event id.
async fn redact(fixture: &RelayFixture, room: &str, event: &str) -> String {
    let txn = format!("r{}", random_hex(8));
    let url = endpoint(fixture, &["rooms", room, "redact", event, &txn]);
    let answer = as_alice(fixture, reqwest::Client::new().put(url).json(&json!({}))).await;
    answer["event_id"].as_str().unwrap_or_default().to_owned()
}

/// alice sets a state event; returns its event id.
async fn set_state(fixture: &RelayFixture, room: &str, kind: &str, content: Value) -> String {
    let url = endpoint(fixture, &["rooms", room, "state", kind, ""]);
    let answer = as_alice(fixture, reqwest::Client::new().put(url).json(&content)).await;
    answer["event_id"].as_str().unwrap_or_default().to_owned()
}

/// alice invites `user_id`; returns the membership event's id.
async fn invite(fixture: &RelayFixture, room: &str, user_id: &str) -> String {
    fixture
        .user
        .invite(room, user_id)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let history = fixture
        .wait_for_history(room, &format!("the invite of {user_id}"), |events| {
            events.iter().any(|e| is_invite(e, user_id))
        })
        .await;
    event_id(
        history
            .iter()
            .rev()
            .find(|e| is_invite(e, user_id))
            .expect("found above"),
    )
}

fn is_invite(event: &RoomEvent, user_id: &str) -> bool {
    event.kind() == "m.room.member"
        && event.event["state_key"] == user_id
        && event.event["content"]["membership"] == "invite"
}

fn endpoint(fixture: &RelayFixture, segments: &[&str]) -> url::Url {
    let mut url = fixture.user.base_url().clone();
    url.path_segments_mut()
        .expect("http URL has a path")
        .extend(["_matrix", "client", "v3"])
        .extend(segments);
    url
}

async fn as_alice(fixture: &RelayFixture, request: reqwest::RequestBuilder) -> Value {
    let response = request
        .bearer_auth(fixture.user.access_token())
        .send()
        .await
        .unwrap_or_else(|err| panic!("a request as alice: {err}"));
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert!(status.is_success(), "a request as alice: {status} {body}");
    body
}

/// The final send status of `event` (SUCCESS or FAIL_PERMANENT) once the
/// bot reported it.
async fn send_status(fixture: &RelayFixture, room: &str, event: &str) -> Value {
    let found = poll(&format!("the send status of {event}"), || async {
        let history = fixture.user.room_history(room).await.ok()?;
        history
            .iter()
            .filter(|e| e.kind() == SEND_STATUS)
            .filter(|e| e.event["content"]["m.relates_to"]["event_id"] == event)
            .map(|e| e.event["content"].clone())
            .find(|status| status["status"] != "FAIL_RETRIABLE")
    })
    .await;
    found.unwrap_or_else(|err| panic!("{err}"))
}

async fn assert_done(fixture: &RelayFixture, room: &str, event: &str, what: &str) {
    let status = send_status(fixture, room, event).await;
    assert_eq!(status["status"], "SUCCESS", "{what}: {status}");
}

/// Asserts that `event` failed for good, with a notice saying `reason`.
async fn assert_refused(fixture: &RelayFixture, room: &str, event: &str, reason: &str) {
    let status = send_status(fixture, room, event).await;
    assert_eq!(status["status"], "FAIL_PERMANENT", "{status}");
    fixture
        .wait_for_history(room, &format!("a notice {reason:?}"), |events| {
            events
                .iter()
                .any(|e| e.event["content"]["msgtype"] == "m.notice" && e.body().contains(reason))
        })
        .await;
}

/// The simulator's thread: its items (newest first), title and members.
fn thread_state(fixture: &RelayFixture, thread: &str) -> Value {
    fixture
        .sim
        .thread_snapshot(thread)
        .unwrap_or_else(|err| panic!("reading the thread: {err}"))
}

/// The thread's text items as (sender pk, text), oldest first.
fn texts(fixture: &RelayFixture, thread: &str) -> Vec<(u64, String)> {
    let state = thread_state(fixture, thread);
    let mut texts: Vec<(u64, String)> = state["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["item_type"] == "text")
        .map(|item| {
            (
                item["user_id"].as_u64().unwrap_or_default(),
                item["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    texts.reverse();
    texts
}

/// The emoji reactions on the thread's text item `text`, as (sender pk, emoji).
fn reactions(fixture: &RelayFixture, thread: &str, text: &str) -> Vec<(u64, String)> {
    let state = thread_state(fixture, thread);
    let item = state["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["text"] == text)
        .unwrap_or_else(|| panic!("no item {text:?} in {state}"))
        .clone();
    item["reactions"]["emojis"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|reaction| {
            (
                reaction["sender_id"].as_u64().unwrap_or_default(),
                reaction["emoji"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Waits until the room has seen the friend's `body` (sent on Instagram
/// after a change): every poll before it saw the change too.
async fn after_the_next_poll(fixture: &RelayFixture, thread: &str, friend: &Account, room: &str) {
    let body = format!("later {}", random_hex(4));
    fixture
        .sim
        .post_text(thread, friend.pk, &body)
        .expect("posting a message");
    wait_for_message(fixture, room, &puppet(friend.pk), &body).await;
}

async fn edits_change_the_text_on_instagram(backend: Backend) {
    let (mut fixture, friend, thread, room, friend_event) = friend_chat(backend).await;
    let me = fixture.me.pk;
    let sent = fixture
        .user
        .send_text(&room, "see you at 7")
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_done(&fixture, &room, &sent, "the message").await;

    let edit = send_event(
        &fixture,
        &room,
        "m.room.message",
        json!({
            "msgtype": "m.text",
            "body": "* see you at 8",
            "m.new_content": {"msgtype": "m.text", "body": "see you at 8"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent},
        }),
    )
    .await;
    assert_done(&fixture, &room, &edit, "the edit").await;
    assert_eq!(
        texts(&fixture, &thread),
        [
            (friend.pk, "pick a time".to_owned()),
            (me, "see you at 8".to_owned())
        ],
        "the message is edited in place on Instagram"
    );

    // Someone else's message cannot be edited: nothing changes.
    let forged = send_event(
        &fixture,
        &room,
        "m.room.message",
        json!({
            "msgtype": "m.text",
            "body": "* never",
            "m.new_content": {"msgtype": "m.text", "body": "never"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": friend_event},
        }),
    )
    .await;
    assert_refused(
        &fixture,
        &room,
        &forged,
        "Instagram cannot edit this message",
    )
    .await;
    assert_eq!(texts(&fixture, &thread)[0].1, "pick a time");

    // The poll sees the edited item as the bridge left it: no edit comes back.
    after_the_next_poll(&fixture, &thread, &friend, &room).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    let edits: Vec<&RoomEvent> = history
        .iter()
        .filter(|e| e.event["content"]["m.relates_to"]["rel_type"] == "m.replace")
        .collect();
    assert!(
        edits.iter().all(|e| e.sender() == fixture.user.user_id),
        "no edit bridged back from Instagram: {edits:?}"
    );
}

async fn a_second_reaction_replaces_the_first_and_unreact_removes_it(backend: Backend) {
    let (fixture, friend, thread, room, friend_event) = friend_chat(backend).await;
    let me = fixture.me.pk;
    let react = |key: &'static str| {
        send_event(
            &fixture,
            &room,
            "m.reaction",
            json!({"m.relates_to": {
                "rel_type": "m.annotation", "event_id": friend_event, "key": key,
            }}),
        )
    };

    let thumbs = react("👍").await;
    assert_done(&fixture, &room, &thumbs, "the first reaction").await;
    assert_eq!(
        reactions(&fixture, &thread, "pick a time"),
        [(me, "👍".to_owned())]
    );

    let heart = react("❤️").await;
    assert_done(&fixture, &room, &heart, "the second reaction").await;
    assert_eq!(
        reactions(&fixture, &thread, "pick a time"),
        [(me, "❤️".to_owned())],
        "Instagram keeps one reaction per user"
    );
    fixture
        .wait_for_history(&room, "the first reaction redacted", |events| {
            events.iter().any(|e| {
                event_id(e) == thumbs && e.event["unsigned"]["redacted_because"].is_object()
            })
        })
        .await;

    let removal = redact(&fixture, &room, &heart).await;
    assert_done(&fixture, &room, &removal, "the unreact").await;
    assert!(reactions(&fixture, &thread, "pick a time").is_empty());

    // The poll bridges none of this back as reactions of alice's puppet.
    after_the_next_poll(&fixture, &thread, &friend, &room).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    let own_puppet = puppet(me);
    assert!(
        !history
            .iter()
            .any(|e| e.kind() == "m.reaction" && e.sender() == own_puppet),
        "no reaction bridged back"
    );
}

async fn redacting_unsends_only_own_messages(backend: Backend) {
    let (mut fixture, friend, thread, room, friend_event) = friend_chat(backend).await;
    let sent = fixture
        .user
        .send_text(&room, "wrong chat, sorry")
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_done(&fixture, &room, &sent, "the message").await;
    assert_eq!(texts(&fixture, &thread).len(), 2);

    let unsend = redact(&fixture, &room, &sent).await;
    assert_done(&fixture, &room, &unsend, "the unsend").await;
    assert_eq!(
        texts(&fixture, &thread),
        [(friend.pk, "pick a time".to_owned())],
        "the message is gone from Instagram"
    );

    // A moderator in Matrix may redact the friend's message; Instagram
    // unsends only one's own.
    make_moderator(&fixture, &room).await;
    let redaction = redact(&fixture, &room, &friend_event).await;
    assert_refused(
        &fixture,
        &room,
        &redaction,
        "Only your own messages can be unsent on Instagram",
    )
    .await;
    assert_eq!(
        texts(&fixture, &thread),
        [(friend.pk, "pick a time".to_owned())]
    );

    // The poll does not take the unsend for one to redact again.
    after_the_next_poll(&fixture, &thread, &friend, &room).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    let redactions_of_sent = history
        .iter()
        .filter(|e| e.kind() == "m.room.redaction")
        .filter(|e| e.event["redacts"] == sent || e.event["content"]["redacts"] == sent)
        .count();
    assert_eq!(redactions_of_sent, 1, "only alice's own redaction");
}

/// The bot (room admin) gives alice power level 50 in the room.
async fn make_moderator(fixture: &RelayFixture, room: &str) {
    let bridge = fixture.in_process().await;
    let room_id = RoomId::parse(room).expect("a room id");
    let mut levels = bridge
        .client
        .state_event(&room_id, "m.room.power_levels", "", None)
        .await
        .unwrap_or_else(|err| panic!("{err}"))
        .expect("the room has power levels");
    levels["users"][&fixture.user.user_id] = json!(50);
    bridge
        .client
        .send_raw_state(&room_id, "m.room.power_levels", "", &levels, None)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
}

async fn group_portals_rename_and_add_members(backend: Backend) {
    let mut fixture = RelayFixture::prepare(backend, "alice.insta").await;
    fixture.poll_fast();
    let friend = fixture.instagram_user("friend.one", "A Friend");
    let newcomer = fixture.instagram_user("new.comer", "New Comer");
    let group = fixture
        .sim
        .create_thread(fixture.me.pk, &[friend.pk], Some("Trip"))
        .expect("creating the group");
    fixture
        .sim
        .post_text(&group, friend.pk, "who else?")
        .expect("posting a message");
    let direct = fixture
        .sim
        .create_thread(fixture.me.pk, &[friend.pk], None)
        .expect("creating the 1:1 thread");
    fixture
        .sim
        .post_text(&direct, friend.pk, "just us")
        .expect("posting a message");
    fixture.e2e.start_bridge().await;
    let room = fixture.join_portal(&group).await;
    wait_for_message(&fixture, &room, &puppet(friend.pk), "who else?").await;

    let invited = invite(&fixture, &room, &puppet(newcomer.pk)).await;
    assert_done(&fixture, &room, &invited, "the invite").await;
    let members = thread_state(&fixture, &group)["members"].clone();
    assert!(
        members
            .as_array()
            .is_some_and(|m| m.contains(&json!(newcomer.pk))),
        "the newcomer is in the Instagram group: {members}"
    );
    let joined = poll("the newcomer's puppet joining", || async {
        let members = fixture.user.joined_members(&room).await.ok()?;
        members.contains(&puppet(newcomer.pk)).then_some(())
    })
    .await;
    joined.unwrap_or_else(|err| panic!("{err}"));

    let renamed = set_state(&fixture, &room, "m.room.name", json!({"name": "Trip 2027"})).await;
    assert_done(&fixture, &room, &renamed, "the rename").await;
    assert_eq!(thread_state(&fixture, &group)["title"], "Trip 2027");

    // A 1:1 chat has no members to add on Instagram.
    let direct_room = fixture.join_portal(&direct).await;
    let refused = invite(&fixture, &direct_room, &puppet(newcomer.pk)).await;
    assert_refused(
        &fixture,
        &direct_room,
        &refused,
        "Instagram cannot add people to a one-to-one chat",
    )
    .await;
    let members = thread_state(&fixture, &direct)["members"].clone();
    assert!(
        !members
            .as_array()
            .is_some_and(|m| m.contains(&json!(newcomer.pk))),
        "the 1:1 thread is unchanged: {members}"
    );
}

/// The changes module with alice's login, without the bridge process: each
/// change is carried out directly, then the thread's newest page relayed as
/// the next poll would relay it.
struct InProcess<'a> {
    fixture: &'a RelayFixture,
    bridge: std::sync::Arc<Bridge>,
    login: LoginRecord,
    portal: PortalRecord,
}

impl InProcess<'_> {
    async fn carry_out(&self, change: Change) -> Result<ChangeDone, ChangeError> {
        let mut credentials = self.fixture.credentials().await;
        carry_out(
            &self.bridge,
            &self.login,
            &mut credentials,
            &self.portal,
            &self.login.mxid,
            &change,
            "6800011111111111111",
        )
        .await
    }

    /// Relays the thread's newest page as a poll would.
    async fn relay_page(&self) {
        let mut credentials = self.fixture.credentials().await;
        let page = self
            .bridge
            .connector
            .list_messages_page(&mut credentials, &self.portal.thread_id, None)
            .await
            .unwrap_or_else(|err| panic!("reading the thread: {err}"));
        for message in page.messages.iter().rev() {
            relay_message(&self.bridge, &self.login, &self.portal, message)
                .await
                .unwrap_or_else(|err| panic!("relaying {}: {err}", message.id));
        }
    }

    async fn event_of(&self, item_id: &str) -> String {
        self.fixture
            .store()
            .await
            .message_by_item(&self.login.id, &self.portal.thread_id, item_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("item {item_id} was not bridged"))
            .event_id
    }
}

fn refusal(result: Result<ChangeDone, ChangeError>) -> String {
    match result {
        Err(ChangeError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn carry_out_in_process(backend: Backend) {
    let fixture = RelayFixture::prepare(backend, "alice.insta").await;
    let bridge = fixture.in_process().await;
    let login = fixture.login().await;
    let (sim, me) = (&fixture.sim, fixture.me.pk);
    let friend = fixture.instagram_user("friend.one", "A Friend");
    let thread = sim.create_thread(me, &[friend.pk], None).unwrap();
    let question = sim.post_text(&thread, friend.pk, "pick a time").unwrap();
    // alice answers from the Instagram app.
    let answer = sim.post_text(&thread, me, "see you at 7").unwrap();
    let mut credentials = fixture.credentials().await;
    let conversation = bridge
        .connector
        .get_conversation(&mut credentials, &thread)
        .await
        .unwrap_or_else(|err| panic!("reading the thread: {err}"));
    let portal = ensure_portal(&bridge, &login, &conversation, false)
        .await
        .unwrap_or_else(|err| panic!("ensure_portal: {err}"));
    let room = fixture.join_portal(&thread).await;
    let chat = InProcess {
        fixture: &fixture,
        bridge,
        login,
        portal,
    };
    chat.relay_page().await;
    let question_event = chat.event_of(&question).await;
    let answer_event = chat.event_of(&answer).await;

    // Edit: alice's own text changes; the next poll bridges no edit back.
    let edit = Change::Edit {
        target_event: answer_event.clone(),
        text: "see you at 8".to_owned(),
    };
    assert_eq!(
        chat.carry_out(edit).await.unwrap(),
        ChangeDone::Edited {
            item_id: answer.clone()
        }
    );
    assert_eq!(texts(&fixture, &thread)[1], (me, "see you at 8".to_owned()));
    let edit_of_question = Change::Edit {
        target_event: question_event.clone(),
        text: "never".to_owned(),
    };
    assert_eq!(
        refusal(chat.carry_out(edit_of_question).await),
        "Instagram cannot edit this message"
    );
    assert_eq!(texts(&fixture, &thread)[0].1, "pick a time");

    // React twice: the second replaces the first on both sides.
    let react = |key: &'static str| {
        send_event(
            &fixture,
            &room,
            "m.reaction",
            json!({"m.relates_to": {
                "rel_type": "m.annotation", "event_id": question_event, "key": key,
            }}),
        )
    };
    let thumbs = react("👍").await;
    let change = Change::React {
        target_event: question_event.clone(),
        key: "👍".to_owned(),
        reaction_event: thumbs.clone(),
    };
    chat.carry_out(change).await.unwrap();
    assert_eq!(
        reactions(&fixture, &thread, "pick a time"),
        [(me, "👍".to_owned())]
    );
    let heart = react("❤️").await;
    let change = Change::React {
        target_event: question_event.clone(),
        key: "❤️".to_owned(),
        reaction_event: heart.clone(),
    };
    chat.carry_out(change).await.unwrap();
    assert_eq!(
        reactions(&fixture, &thread, "pick a time"),
        [(me, "❤️".to_owned())]
    );
    let history = fixture.user.room_history(&room).await.unwrap();
    let first = history.iter().find(|e| event_id(e) == thumbs).unwrap();
    assert!(
        first.event["unsigned"]["redacted_because"].is_object(),
        "the replaced reaction is redacted in Matrix"
    );

    chat.relay_page().await;
    let history = fixture.user.room_history(&room).await.unwrap();
    assert!(
        !history.iter().any(|e| {
            e.event["content"]["m.relates_to"]["rel_type"] == "m.replace"
                || (e.kind() == "m.reaction" && e.sender() != fixture.user.user_id)
        }),
        "neither the edit nor the reaction comes back from Instagram"
    );

    // Unreact, then unsend alice's message; the friend's cannot be unsent.
    let unreact = Change::Redact {
        target_event: heart.clone(),
    };
    assert_eq!(
        chat.carry_out(unreact).await.unwrap(),
        ChangeDone::Unreacted {
            item_id: question.clone()
        }
    );
    assert!(reactions(&fixture, &thread, "pick a time").is_empty());
    let unsend_question = Change::Redact {
        target_event: question_event.clone(),
    };
    assert_eq!(
        refusal(chat.carry_out(unsend_question).await),
        "Only your own messages can be unsent on Instagram"
    );
    let unsend = Change::Redact {
        target_event: answer_event.clone(),
    };
    assert_eq!(
        chat.carry_out(unsend).await.unwrap(),
        ChangeDone::Unsent {
            item_id: answer.clone()
        }
    );
    assert_eq!(
        texts(&fixture, &thread),
        [(friend.pk, "pick a time".to_owned())]
    );
    // The poll that misses the item relays no unsend of its own (here,
    // where alice's redaction was not sent, it would redact her message).
    relay_unsend(&chat.bridge, &chat.portal, &answer)
        .await
        .unwrap_or_else(|err| panic!("relay_unsend: {err}"));
    let history = fixture.user.room_history(&room).await.unwrap();
    assert!(
        !history.iter().any(|e| e.kind() == "m.room.redaction"
            && (e.event["redacts"] == answer_event
                || e.event["content"]["redacts"] == answer_event)),
        "no second redaction of the unsent message"
    );
    // A redaction of something never bridged has nothing to do.
    let unknown = Change::Redact {
        target_event: "$unknown:localhost".to_owned(),
    };
    assert_eq!(
        chat.carry_out(unknown).await.unwrap(),
        ChangeDone::NothingToDo
    );

    // A 1:1 chat has no title and no members to add on Instagram.
    let rename = Change::Rename {
        title: "Us".to_owned(),
    };
    assert!(refusal(chat.carry_out(rename).await).contains("only group chats can be renamed"));
    let newcomer = fixture.instagram_user("new.comer", "New Comer");
    let invite = Change::Invite {
        user_mxid: puppet(newcomer.pk),
        ig_user_id: newcomer.pk.to_string(),
    };
    assert!(refusal(chat.carry_out(invite.clone()).await).contains("one-to-one"));

    // A group: renamed, and the invited puppet's user added (the puppet joins).
    let group = sim.create_thread(me, &[friend.pk], Some("Trip")).unwrap();
    let conversation = chat
        .bridge
        .connector
        .get_conversation(&mut credentials, &group)
        .await
        .unwrap_or_else(|err| panic!("reading the group: {err}"));
    let group_chat = InProcess {
        portal: ensure_portal(&chat.bridge, &chat.login, &conversation, false)
            .await
            .unwrap_or_else(|err| panic!("ensure_portal: {err}")),
        ..chat
    };
    fixture.join_portal(&group).await;
    let rename = Change::Rename {
        title: "Trip 2027".to_owned(),
    };
    assert_eq!(
        group_chat.carry_out(rename).await.unwrap(),
        ChangeDone::Renamed
    );
    assert_eq!(thread_state(&fixture, &group)["title"], "Trip 2027");
    let saved = fixture
        .store()
        .await
        .portal_by_thread(&group_chat.login.id, &group)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.name.as_deref(), Some("Trip 2027"), "the portal knows");

    group_chat.carry_out(invite).await.unwrap();
    let members = thread_state(&fixture, &group)["members"].clone();
    assert!(
        members
            .as_array()
            .is_some_and(|m| m.contains(&json!(newcomer.pk))),
        "the newcomer is in the group: {members}"
    );
    let joined = fixture
        .user
        .joined_members(&group_chat.portal.room_id)
        .await
        .unwrap();
    assert!(joined.contains(&puppet(newcomer.pk)), "{joined:?}");
    let profile = fixture.profile(&puppet(newcomer.pk)).await.unwrap();
    assert_eq!(profile["displayname"], "New Comer (Instagram)");
}
