//! Instagram -> Matrix relaying end to end: the relay functions (portals,
//! puppets, messages, reactions, edits, unsends, receipts, presence) against
//! the real Synapse and the Instagram simulator, fed with what the real
//! connector spec reads from the simulator, on SQLite and PostgreSQL. The
//! bridge runs in the test process over the same config and database; the
//! bridge process is not started, so nothing else relays at the same time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use matrix_instagram::bridge::portal::ensure_portal;
use matrix_instagram::bridge::puppet::ensure_puppet;
use matrix_instagram::bridge::relay_in::{
    relay_message, relay_presence, relay_read, relay_unsend, SeenMarker,
};
use matrix_instagram::bridge::Bridge;
use matrix_instagram::model::{Conversation, Message, Participant, Presence};
use matrix_instagram::store::{LoginRecord, PortalRecord};
use serde_json::json;

use crate::harness::client::RoomEvent;
use crate::harness::relay::{poll, RelayFixture};
use crate::harness::Backend;

on_both_databases!(
    direct_chat_relay,
    direct_chat_relay_sqlite,
    direct_chat_relay_postgres
);
on_both_databases!(
    group_chat_relay,
    group_chat_relay_sqlite,
    group_chat_relay_postgres
);
on_both_databases!(
    the_running_bridge_relays_a_group_and_a_request,
    the_running_bridge_relays_a_group_and_a_request_sqlite,
    the_running_bridge_relays_a_group_and_a_request_postgres
);
on_both_databases!(
    double_puppeted_own_messages,
    double_puppeted_own_messages_sqlite,
    double_puppeted_own_messages_postgres
);

/// The in-process bridge with alice's login, reading Instagram as she does.
struct Relay {
    fixture: RelayFixture,
    bridge: Arc<Bridge>,
    login: LoginRecord,
}

impl Relay {
    async fn start(backend: Backend, username: &str) -> Relay {
        Relay::over(RelayFixture::prepare(backend, username).await).await
    }

    async fn over(fixture: RelayFixture) -> Relay {
        let bridge = fixture.in_process().await;
        let login = fixture.login().await;
        Relay {
            fixture,
            bridge,
            login,
        }
    }

    /// The thread as the connector reads it.
    async fn conversation(&self, thread_id: &str) -> Conversation {
        let mut credentials = self.fixture.credentials().await;
        self.bridge
            .connector
            .get_conversation(&mut credentials, thread_id)
            .await
            .unwrap_or_else(|err| panic!("reading thread {thread_id}: {err}"))
    }

    /// The thread's newest messages as the connector reads them, oldest first.
    async fn messages(&self, thread_id: &str) -> Vec<Message> {
        let mut credentials = self.fixture.credentials().await;
        let page = self
            .bridge
            .connector
            .list_messages_page(&mut credentials, thread_id, None)
            .await
            .unwrap_or_else(|err| panic!("reading messages of {thread_id}: {err}"));
        let mut messages = page.messages;
        messages.reverse();
        messages
    }

    async fn portal(&self, thread_id: &str, request: bool) -> PortalRecord {
        let conversation = self.conversation(thread_id).await;
        ensure_portal(&self.bridge, &self.login, &conversation, request)
            .await
            .unwrap_or_else(|err| panic!("ensure_portal: {err}"))
    }

    /// Relays the thread's newest page, oldest first; returns it.
    async fn relay(&self, portal: &PortalRecord) -> Vec<Message> {
        let messages = self.messages(&portal.thread_id).await;
        for message in &messages {
            relay_message(&self.bridge, &self.login, portal, message)
                .await
                .unwrap_or_else(|err| panic!("relaying {}: {err}", message.id));
        }
        messages
    }

    /// The Matrix event of an item's main part.
    async fn event_of(&self, thread_id: &str, item_id: &str) -> String {
        self.fixture
            .store()
            .await
            .message_by_item(&self.login.id, thread_id, item_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("item {item_id} was not bridged"))
            .event_id
    }

    fn puppet(&self, pk: u64) -> String {
        format!("@instagram_{pk}:localhost")
    }
}

fn find<'a>(history: &'a [RoomEvent], event_id: &str) -> Option<&'a RoomEvent> {
    history.iter().find(|e| e.event["event_id"] == event_id)
}

fn is_redacted(event: &RoomEvent) -> bool {
    event.event["unsigned"]["redacted_because"].is_object()
}

fn millis(time: Option<DateTime<Utc>>) -> i64 {
    time.expect("items have timestamps").timestamp_millis()
}

/// A 1:1 thread: the portal (DM flags, no own name, bridge info, the space),
/// the puppet's name and picture, text, a reply, reactions, an edit, an
/// unsend, a message from alice's own app, read receipts and presence;
/// relaying everything again changes nothing.
async fn direct_chat_relay(backend: Backend) {
    let relay = Relay::start(backend, "alice.ig").await;
    let fixture = &relay.fixture;
    let sim = &fixture.sim;
    let bob = fixture.instagram_user("bob.builder", "Bob Builder");
    let thread = sim.create_thread(fixture.me.pk, &[bob.pk], None).unwrap();
    let first = sim.post_text(&thread, bob.pk, "hello alice").unwrap();

    let portal = relay.portal(&thread, false).await;
    assert!(!portal.request && portal.in_space);
    let room = fixture.join_portal(&thread).await;
    assert_eq!(room, portal.room_id);
    let bob_puppet = relay.puppet(bob.pk);

    // The room: a direct chat the bot created, named by clients after Bob's puppet.
    let history = fixture.user.room_history(&room).await.unwrap();
    let invite = history
        .iter()
        .find(|e| {
            e.kind() == "m.room.member"
                && e.event["state_key"] == fixture.user.user_id.as_str()
                && e.event["content"]["membership"] == "invite"
        })
        .expect("alice's invite is in the room");
    assert_eq!(invite.event["content"]["is_direct"], true);
    assert_eq!(invite.sender(), fixture.e2e.bot());
    let create = fixture.state(&room, "m.room.create", "").await.unwrap();
    assert!(create.is_some());
    assert_eq!(fixture.state(&room, "m.room.name", "").await.unwrap(), None);
    let functional = fixture
        .state(&room, "io.element.functional_members", "")
        .await
        .unwrap()
        .expect("functional members");
    assert_eq!(functional["service_members"], json!([fixture.e2e.bot()]));
    let state_key = format!("net.matrix-instagram://instagram/{thread}");
    for kind in ["m.bridge", "uk.half-shot.bridge"] {
        let info = fixture
            .state(&room, kind, &state_key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{kind} state"));
        assert_eq!(info["bridgebot"], fixture.e2e.bot());
        assert_eq!(info["protocol"]["id"], "instagram");
        assert_eq!(info["channel"]["id"], thread.as_str());
        assert_eq!(info["channel"]["displayname"], "Bob Builder");
    }
    // The bot created the room: it holds the top power level (room
    // version 12 gives creators unlimited power instead of listing them).
    let creation = history
        .iter()
        .find(|e| e.kind() == "m.room.create")
        .expect("the create event");
    assert_eq!(creation.sender(), fixture.e2e.bot());
    let power = fixture
        .state(&room, "m.room.power_levels", "")
        .await
        .unwrap()
        .unwrap();
    let bot_level = &power["users"][fixture.e2e.bot()];
    assert!(
        bot_level.is_null() || *bot_level == 100,
        "the bot keeps the top level: {power}"
    );
    let members = fixture.user.joined_members(&room).await.unwrap();
    assert!(members.contains(&bob_puppet), "{members:?}");

    // The space holds the portal.
    let space = fixture
        .store()
        .await
        .login_space(&relay.login.id)
        .await
        .unwrap()
        .expect("alice's space");
    fixture.wait_for_invite(&space).await;
    fixture.user.join(&space).await.unwrap();
    let space_create = fixture
        .state(&space, "m.room.create", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(space_create["type"], "m.space");
    let child = fixture
        .state(&space, "m.space.child", &room)
        .await
        .unwrap()
        .expect("the portal is a child of the space");
    assert_eq!(child["via"], json!(["localhost"]));

    // Bob's puppet: name from the template, picture uploaded with the same bytes.
    let profile = fixture.profile(&bob_puppet).await.unwrap();
    assert_eq!(profile["displayname"], "Bob Builder (Instagram)");
    let avatar = profile["avatar_url"].as_str().expect("an avatar");
    let conversation = relay.conversation(&thread).await;
    let picture_url = conversation
        .participants
        .iter()
        .find(|p| p.id == bob.pk.to_string())
        .and_then(|p| p.avatar_url.clone())
        .expect("bob's picture URL");
    let picture = reqwest::get(&picture_url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(fixture.download(avatar).await.unwrap(), picture.to_vec());
    // The same picture again is not uploaded again, even at a re-signed URL.
    relay.portal(&thread, false).await;
    let again = fixture.profile(&bob_puppet).await.unwrap();
    assert_eq!(again["avatar_url"], avatar);
    let bob_now = conversation
        .participants
        .iter()
        .find(|p| p.id == bob.pk.to_string())
        .unwrap()
        .clone();
    let resigned = Participant {
        avatar_url: Some(format!("{picture_url}?oe=65A0&oh=other")),
        ..bob_now.clone()
    };
    ensure_puppet(&relay.bridge, &resigned).await.unwrap();
    let again = fixture.profile(&bob_puppet).await.unwrap();
    assert_eq!(again["avatar_url"], avatar);
    // A new name and a new picture on Instagram follow.
    let other_picture = sim.signed_media_url(&format!("profile_{}.png", fixture.me.pk));
    let changed = Participant {
        name: Some("Robert Builder".to_owned()),
        avatar_url: Some(other_picture.clone()),
        ..bob_now
    };
    ensure_puppet(&relay.bridge, &changed).await.unwrap();
    let changed = fixture.profile(&bob_puppet).await.unwrap();
    assert_eq!(changed["displayname"], "Robert Builder (Instagram)");
    let new_avatar = changed["avatar_url"].as_str().unwrap();
    assert_ne!(new_avatar, avatar);
    let other_bytes = reqwest::get(&other_picture)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        fixture.download(new_avatar).await.unwrap(),
        other_bytes.to_vec()
    );
    // The next update from Instagram brings Bob's own name and picture back.
    relay.portal(&thread, false).await;
    let restored = fixture.profile(&bob_puppet).await.unwrap();
    assert_eq!(restored["displayname"], "Bob Builder (Instagram)");

    // Text, a reply, and a message alice sent from the Instagram app.
    let reply = sim
        .post_reply(&thread, bob.pk, "did you see this?", &first)
        .unwrap();
    let own = sim
        .post_text(&thread, fixture.me.pk, "from my phone")
        .unwrap();
    let messages = relay.relay(&portal).await;
    let first_event = relay.event_of(&thread, &first).await;
    let reply_event = relay.event_of(&thread, &reply).await;
    let own_event = relay.event_of(&thread, &own).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    let hello = find(&history, &first_event).expect("the first message");
    assert_eq!(hello.sender(), bob_puppet);
    assert_eq!(hello.body(), "hello alice");
    assert_eq!(hello.event["content"]["msgtype"], "m.text");
    let first_message = messages.iter().find(|m| m.id == first).unwrap();
    assert_eq!(
        hello.event["origin_server_ts"],
        millis(first_message.timestamp),
        "the original timestamp"
    );
    let answer = find(&history, &reply_event).expect("the reply");
    assert_eq!(
        answer.event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        first_event.as_str()
    );
    let mine = find(&history, &own_event).expect("alice's own message");
    assert_eq!(mine.sender(), relay.puppet(fixture.me.pk));
    assert_eq!(mine.body(), "from my phone");

    // Reactions: one per user; a change redacts the old one; removal redacts.
    sim.react(&thread, &first, bob.pk, "❤️").unwrap();
    relay.relay(&portal).await;
    let reactions = |history: &[RoomEvent]| -> Vec<RoomEvent> {
        history
            .iter()
            .filter(|e| e.kind() == "m.reaction" && e.sender() == bob_puppet)
            .cloned()
            .collect()
    };
    let history = fixture.user.room_history(&room).await.unwrap();
    let heart = reactions(&history);
    assert_eq!(heart.len(), 1, "{heart:#?}");
    assert_eq!(
        heart[0].event["content"]["m.relates_to"],
        json!({"rel_type": "m.annotation", "event_id": first_event, "key": "❤️"})
    );
    sim.react(&thread, &first, bob.pk, "😂").unwrap();
    relay.relay(&portal).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    let both = reactions(&history);
    assert_eq!(both.len(), 2, "{both:#?}");
    assert!(
        is_redacted(&both[0]),
        "the heart is redacted: {:#?}",
        both[0]
    );
    assert_eq!(both[1].event["content"]["m.relates_to"]["key"], "😂");
    sim.unreact(&thread, &first, bob.pk).unwrap();
    relay.relay(&portal).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    assert!(reactions(&history).iter().all(is_redacted));

    // An unsend redacts.
    sim.unsend(&thread, &own).unwrap();
    relay_unsend(&relay.bridge, &portal, &own).await.unwrap();
    let history = fixture.user.room_history(&room).await.unwrap();
    assert!(is_redacted(find(&history, &own_event).unwrap()));

    // Relaying the thread again adds nothing.
    let before = fixture.user.room_history(&room).await.unwrap().len();
    relay.relay(&portal).await;
    relay.portal(&thread, false).await;
    let after = fixture.user.room_history(&room).await.unwrap();
    assert_eq!(after.len(), before, "nothing is bridged twice");

    // An edit (the item's text differs on a later read; the simulator
    // cannot edit yet, so the read item is changed here) becomes an m.replace.
    let mut edited = relay
        .messages(&thread)
        .await
        .into_iter()
        .find(|m| m.id == reply)
        .unwrap();
    edited.content = Some("did you see this one?".to_owned());
    relay_message(&relay.bridge, &relay.login, &portal, &edited)
        .await
        .unwrap();
    relay_message(&relay.bridge, &relay.login, &portal, &edited)
        .await
        .unwrap();
    let history = fixture.user.room_history(&room).await.unwrap();
    let edits: Vec<&RoomEvent> = history
        .iter()
        .filter(|e| e.event["content"]["m.relates_to"]["rel_type"] == "m.replace")
        .collect();
    assert_eq!(edits.len(), 1, "one edit, once: {edits:#?}");
    assert_eq!(edits[0].sender(), bob_puppet);
    assert_eq!(
        edits[0].event["content"]["m.relates_to"]["event_id"],
        reply_event.as_str()
    );
    assert_eq!(
        edits[0].event["content"]["m.new_content"]["body"],
        "did you see this one?"
    );

    // Read receipts from the puppet, from Instagram's last_seen: none for
    // bob's own message (sending it marked it read), one for alice's next one.
    let bob_reads = |item: &str| {
        sim.mark_seen(&thread, bob.pk, item).unwrap();
        async {
            let conversation = relay.conversation(&thread).await;
            let seen = conversation
                .last_seen
                .iter()
                .find(|s| s.user_id == bob.pk.to_string())
                .expect("bob's read state");
            relay_read(
                &relay.bridge,
                &portal,
                &seen.user_id,
                &SeenMarker {
                    item_id: seen.item_id.clone(),
                    at: seen.timestamp,
                },
            )
            .await
            .unwrap();
        }
    };
    bob_reads(&reply).await;
    // relay_read has returned: a receipt it sent would be in Synapse now.
    let receipts = fixture.read_receipts(&room).await.unwrap();
    assert!(
        !receipts.iter().any(|(user, _)| *user == bob_puppet),
        "a receipt of bob's for his own message: {receipts:?}"
    );
    let question = sim
        .post_text(&thread, fixture.me.pk, "are you there?")
        .unwrap();
    relay.relay(&portal).await;
    let question_event = relay.event_of(&thread, &question).await;
    bob_reads(&question).await;
    fixture
        .wait_for_receipt(&room, &bob_puppet, &question_event)
        .await;

    // Presence of the puppet.
    relay_presence(
        &relay.bridge,
        &Presence {
            user_id: bob.pk.to_string(),
            is_active: true,
            last_active_at: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(fixture.presence(&bob_puppet).await.unwrap(), "online");
}

/// A group: the portal has the thread's title and members, a mention
/// becomes a pill, a rename, a new member and one who left change the room;
/// a message request gets its notice once.
async fn group_chat_relay(backend: Backend) {
    let relay = Relay::start(backend, "alice.group").await;
    let fixture = &relay.fixture;
    let sim = &fixture.sim;
    let bob = fixture.instagram_user("bob.group", "Bob Group");
    let carol = fixture.instagram_user("carol.group", "");
    let thread = sim
        .create_thread(fixture.me.pk, &[bob.pk, carol.pk], Some("Weekend plans"))
        .unwrap();
    let portal = relay.portal(&thread, false).await;
    let room = fixture.join_portal(&thread).await;
    let (bob_puppet, carol_puppet) = (relay.puppet(bob.pk), relay.puppet(carol.pk));

    let name = fixture.state(&room, "m.room.name", "").await.unwrap();
    assert_eq!(name.unwrap()["name"], "Weekend plans");
    let history = fixture.user.room_history(&room).await.unwrap();
    let invite = history
        .iter()
        .find(|e| {
            e.kind() == "m.room.member" && e.event["state_key"] == fixture.user.user_id.as_str()
        })
        .unwrap();
    assert_ne!(invite.event["content"]["is_direct"], true);
    let members = fixture.user.joined_members(&room).await.unwrap();
    assert!(members.contains(&bob_puppet) && members.contains(&carol_puppet));
    // No full name: the username.
    let carol_profile = fixture.profile(&carol_puppet).await.unwrap();
    assert_eq!(carol_profile["displayname"], "carol.group (Instagram)");

    // A mention of a bridged user is a pill.
    let text = "@bob.group are you in?";
    let mention = sim.post_text(&thread, carol.pk, text).unwrap();
    relay.relay(&portal).await;
    let event_id = relay.event_of(&thread, &mention).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    let content = &find(&history, &event_id).unwrap().event["content"];
    assert_eq!(content["body"], text);
    assert_eq!(content["format"], "org.matrix.custom.html");
    let pill = format!("<a href=\"https://matrix.to/#/{bob_puppet}\">Bob Group (Instagram)</a>");
    assert!(
        content["formatted_body"]
            .as_str()
            .unwrap()
            .starts_with(&pill),
        "{content}"
    );
    assert_eq!(content["m.mentions"]["user_ids"], json!([bob_puppet]));

    // Group changes: alice renames the group and adds dan; carol leaves.
    let dan = fixture.instagram_user("dan.group", "Dan Group");
    let mut credentials = fixture.credentials().await;
    let connector = &relay.bridge.connector;
    connector
        .execute(
            "rename",
            json!({"conversation_id": thread, "title": "Weekend plans 2"}),
            &mut credentials,
        )
        .await
        .unwrap();
    connector
        .execute(
            "add_users",
            json!({"conversation_id": thread, "user_ids": [dan.pk.to_string()]}),
            &mut credentials,
        )
        .await
        .unwrap();
    let mut conversation = relay.conversation(&thread).await;
    conversation
        .participants
        .retain(|p| p.id != carol.pk.to_string());
    ensure_portal(&relay.bridge, &relay.login, &conversation, false)
        .await
        .unwrap();
    let name = fixture.state(&room, "m.room.name", "").await.unwrap();
    assert_eq!(name.unwrap()["name"], "Weekend plans 2");
    let members = fixture.user.joined_members(&room).await.unwrap();
    assert!(members.contains(&relay.puppet(dan.pk)), "{members:?}");
    assert!(!members.contains(&carol_puppet), "{members:?}");
    assert!(members.contains(&bob_puppet), "{members:?}");

    // Bob gives the group a picture: uploaded once, even when its URL is
    // signed again.
    let picture = sim.set_group_picture(&thread, bob.pk).unwrap();
    let picture_bytes = sim.media_bytes(&picture).expect("the group picture");
    let mut conversation = relay.conversation(&thread).await;
    assert!(
        conversation.picture_url.is_some(),
        "the inbox shows the picture"
    );
    conversation
        .participants
        .retain(|p| p.id != carol.pk.to_string());
    for variant in ["stp=dst-jpg_s96x96", "stp=dst-jpg_s150x150"] {
        conversation.picture_url = Some(sim.signed_media_url(&format!("{picture}?{variant}")));
        ensure_portal(&relay.bridge, &relay.login, &conversation, false)
            .await
            .unwrap();
    }
    let history = fixture.user.room_history(&room).await.unwrap();
    let avatars: Vec<&RoomEvent> = history
        .iter()
        .filter(|e| e.kind() == "m.room.avatar")
        .collect();
    assert_eq!(avatars.len(), 1, "{avatars:#?}");
    let mxc = avatars[0].event["content"]["url"].as_str().unwrap();
    assert_eq!(fixture.download(mxc).await.unwrap(), picture_bytes.to_vec());

    // A message request: marked, and explained once.
    let erin = fixture.instagram_user("erin.stranger", "Erin Stranger");
    let request = sim.create_thread(erin.pk, &[fixture.me.pk], None).unwrap();
    sim.set_pending(&request, fixture.me.pk, true).unwrap();
    sim.post_text(&request, erin.pk, "hi, we met at the conference")
        .unwrap();
    let request_portal = relay.portal(&request, true).await;
    assert!(request_portal.request && request_portal.request_notice_sent);
    relay.portal(&request, true).await;
    let request_room = fixture.join_portal(&request).await;
    relay.relay(&request_portal).await;
    let history = fixture.user.room_history(&request_room).await.unwrap();
    let notices: Vec<&RoomEvent> = history
        .iter()
        .filter(|e| e.sender() == fixture.e2e.bot() && e.kind() == "m.room.message")
        .collect();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0].event["content"]["msgtype"], "m.notice");
    assert!(
        notices[0].body().contains("`!ig accept`"),
        "{}",
        notices[0].body()
    );
    assert!(history
        .iter()
        .any(|e| e.body() == "hi, we met at the conference"));
    // Both portals are in the one space.
    let space = fixture
        .store()
        .await
        .login_space(&relay.login.id)
        .await
        .unwrap()
        .unwrap();
    fixture.wait_for_invite(&space).await;
    fixture.user.join(&space).await.unwrap();
    for room_id in [&room, &request_room] {
        assert!(fixture
            .state(&space, "m.space.child", room_id)
            .await
            .unwrap()
            .is_some());
    }

    // A crash between createRoom and saving the room id: the next run finds
    // the room instead of creating a second one.
    let store = fixture.store().await;
    store
        .delete_portal(&relay.login.id, &request)
        .await
        .unwrap();
    store
        .start_room_creation(&relay.login.id, &request)
        .await
        .unwrap();
    let recovered = relay.portal(&request, true).await;
    assert_eq!(recovered.room_id, request_room);
    assert!(!store
        .room_creation_pending(&relay.login.id, &request)
        .await
        .unwrap());
    let history = fixture.user.room_history(&request_room).await.unwrap();
    let notices = history
        .iter()
        .filter(|e| e.sender() == fixture.e2e.bot() && e.kind() == "m.room.message")
        .count();
    assert_eq!(notices, 1, "the request notice is not repeated");
}

/// With double puppeting, what alice sends and reads in the Instagram app
/// comes from her own Matrix account, which joins portals by itself and
/// lists a 1:1 portal as a direct chat with the other person's puppet.
async fn double_puppeted_own_messages(backend: Backend) {
    let fixture = RelayFixture::prepare_double_puppeting(backend, "alice.double").await;
    let relay = Relay::over(fixture).await;
    let fixture = &relay.fixture;
    let sim = &fixture.sim;
    let alice = fixture.user.user_id.clone();
    let bob = fixture.instagram_user("bob.double", "Bob Double");
    let thread = sim.create_thread(fixture.me.pk, &[bob.pk], None).unwrap();
    let first = sim.post_text(&thread, bob.pk, "hi").unwrap();
    let own = sim.post_text(&thread, fixture.me.pk, "hi bob").unwrap();
    sim.react(&thread, &first, fixture.me.pk, "👍").unwrap();

    let portal = relay.portal(&thread, false).await;
    let joined = fixture.user.joined_rooms().await.unwrap();
    assert!(
        joined.contains(&portal.room_id),
        "alice joined by herself: {joined:?}"
    );
    let direct = fixture.account_data("m.direct").await.unwrap();
    assert_eq!(
        direct[relay.puppet(bob.pk)],
        json!([portal.room_id]),
        "a direct chat with Bob's puppet: {direct}"
    );
    relay.relay(&portal).await;
    let first_event = relay.event_of(&thread, &first).await;
    let own_event = relay.event_of(&thread, &own).await;
    let history = fixture.user.room_history(&portal.room_id).await.unwrap();
    let mine = find(&history, &own_event).expect("alice's message");
    assert_eq!(mine.sender(), alice);
    assert_eq!(mine.body(), "hi bob");
    assert_eq!(
        mine.event["content"]["fi.mau.double_puppet_source"],
        "matrix-instagram"
    );
    let reaction = history
        .iter()
        .find(|e| e.kind() == "m.reaction")
        .expect("alice's reaction");
    assert_eq!(reaction.sender(), alice);
    assert_eq!(
        reaction.event["content"]["m.relates_to"]["event_id"],
        first_event.as_str()
    );
    assert!(
        !history
            .iter()
            .any(|e| e.sender() == relay.puppet(fixture.me.pk)),
        "no puppet speaks for alice"
    );

    sim.mark_seen(&thread, fixture.me.pk, &first).unwrap();
    let seen = SeenMarker {
        item_id: Some(first.clone()),
        at: None,
    };
    relay_read(&relay.bridge, &portal, &fixture.me.pk.to_string(), &seen)
        .await
        .unwrap();
    fixture
        .wait_for_receipt(&portal.room_id, &alice, &first_event)
        .await;
}

/// The same through the bridge process and its poller: a group's portal
/// (name, bridge info, space, puppets), a reply and a mention; then a
/// stranger's message request while it runs.
async fn the_running_bridge_relays_a_group_and_a_request(backend: Backend) {
    let mut fixture = RelayFixture::prepare(backend, "alice.running").await;
    fixture.poll_fast();
    let sim = &fixture.sim;
    let bob = fixture.instagram_user("bob.running", "Bob Running");
    let carol = fixture.instagram_user("carol.running", "Carol Running");
    let thread = sim
        .create_thread(fixture.me.pk, &[bob.pk, carol.pk], Some("Book club"))
        .unwrap();
    let hello = sim.post_text(&thread, carol.pk, "hello club").unwrap();
    sim.post_reply(&thread, bob.pk, "welcome @carol.running", &hello)
        .unwrap();
    fixture.e2e.start_bridge().await;

    let room = fixture.join_portal(&thread).await;
    let (bob_puppet, carol_puppet) = (
        format!("@instagram_{}:localhost", bob.pk),
        format!("@instagram_{}:localhost", carol.pk),
    );
    let history = fixture
        .wait_for_history(&room, "both messages", |events| {
            events
                .iter()
                .filter(|e| {
                    e.kind() == "m.room.message"
                        && (e.body() == "hello club" || e.body().starts_with("welcome"))
                })
                .count()
                >= 2
        })
        .await;
    let first = history
        .iter()
        .find(|e| e.body() == "hello club")
        .expect("carol's message");
    assert_eq!(first.sender(), carol_puppet);
    let reply = history
        .iter()
        .find(|e| e.body().starts_with("welcome"))
        .expect("bob's reply");
    assert_eq!(reply.sender(), bob_puppet);
    let content = &reply.event["content"];
    assert_eq!(
        content["m.relates_to"]["m.in_reply_to"]["event_id"],
        first.event["event_id"]
    );
    assert_eq!(content["m.mentions"]["user_ids"], json!([carol_puppet]));

    let name = fixture.state(&room, "m.room.name", "").await.unwrap();
    assert_eq!(name.unwrap()["name"], "Book club");
    let info = fixture
        .state(
            &room,
            "m.bridge",
            &format!("net.matrix-instagram://instagram/{thread}"),
        )
        .await
        .unwrap()
        .expect("bridge info");
    assert_eq!(info["channel"]["displayname"], "Book club");
    let profile = fixture.profile(&bob_puppet).await.unwrap();
    assert_eq!(profile["displayname"], "Bob Running (Instagram)");
    let login = fixture.login().await;
    let space = fixture
        .store()
        .await
        .login_space(&login.id)
        .await
        .unwrap()
        .expect("alice's space");
    fixture.wait_for_invite(&space).await;
    fixture.user.join(&space).await.unwrap();
    assert!(fixture
        .state(&space, "m.space.child", &room)
        .await
        .unwrap()
        .is_some());

    // A stranger writes: a message request, explained in its portal.
    let erin = fixture.instagram_user("erin.running", "Erin Running");
    let request = sim.create_thread(erin.pk, &[fixture.me.pk], None).unwrap();
    sim.set_pending(&request, fixture.me.pk, true).unwrap();
    sim.post_text(&request, erin.pk, "hello stranger").unwrap();
    let request_room = fixture.join_portal(&request).await;
    let history = fixture
        .wait_for_history(&request_room, "the request and its notice", |events| {
            events.iter().any(|e| e.body() == "hello stranger")
                && events.iter().any(|e| e.body().contains("`!ig accept`"))
        })
        .await;
    let notice = history
        .iter()
        .find(|e| e.body().contains("`!ig accept`"))
        .unwrap();
    assert_eq!(notice.sender(), fixture.e2e.bot());
    let portal = fixture.wait_for_portal(&request).await;
    assert!(portal.request);
}

/// A reply whose original was never bridged quotes it with its author's name.
#[tokio::test]
async fn a_reply_to_an_unbridged_message_quotes_its_author() {
    let relay = Relay::start(Backend::Sqlite, "alice.quote").await;
    let fixture = &relay.fixture;
    let sim = &fixture.sim;
    let bob = fixture.instagram_user("bob.quoted", "Bob Quoted");
    let thread = sim.create_thread(fixture.me.pk, &[bob.pk], None).unwrap();
    let original = sim
        .post_text(&thread, bob.pk, "the original words")
        .unwrap();
    sim.post_reply(&thread, bob.pk, "the answer", &original)
        .unwrap();
    let portal = relay.portal(&thread, false).await;
    let room = fixture.join_portal(&thread).await;

    let reply = relay.messages(&thread).await.pop().expect("the reply");
    relay_message(&relay.bridge, &relay.login, &portal, &reply)
        .await
        .unwrap_or_else(|err| panic!("relaying the reply: {err}"));
    let event_id = relay.event_of(&thread, &reply.id).await;
    let history = fixture.user.room_history(&room).await.unwrap();
    let body = find(&history, &event_id).expect("the reply's event").body();
    assert!(
        body.starts_with("> Bob Quoted (Instagram): the original words"),
        "{body}"
    );
    assert!(body.ends_with("the answer"), "{body}");
}

/// Portals created at the same moment (the portals' workers run in
/// parallel) share one space: alice is invited to exactly one.
#[tokio::test]
async fn portals_made_at_once_share_one_space() {
    let relay = Relay::start(Backend::Sqlite, "alice.spaces").await;
    let fixture = &relay.fixture;
    let mut conversations = Vec::new();
    for n in 0..4 {
        let (_, thread, _) = fixture.friend_thread_saying(&format!("friend.{n}"), "A Friend", "hi");
        conversations.push(relay.conversation(&thread).await);
    }
    let creations: Vec<_> = conversations
        .into_iter()
        .map(|conversation| {
            let (bridge, login) = (relay.bridge.clone(), relay.login.clone());
            tokio::spawn(async move {
                ensure_portal(&bridge, &login, &conversation, false)
                    .await
                    .map(|portal| portal.room_id)
            })
        })
        .collect();
    for creation in creations {
        creation
            .await
            .expect("the task ran")
            .unwrap_or_else(|err| panic!("ensure_portal: {err}"));
    }
    let spaces = poll("the invites to the portals", || async {
        let invites = fixture.invites().await.ok()?;
        (invites.len() >= 5).then_some(invites)
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"))
    .into_iter()
    .filter(|(_, state)| {
        state
            .iter()
            .any(|e| e["type"] == "m.room.create" && e["content"]["type"] == "m.space")
    })
    .count();
    assert_eq!(spaces, 1, "one space for the login");
}
