//! Several Instagram logins of one Matrix user, end to end against the
//! bridge binary, Synapse and the simulator: each login relays its chats
//! into its own portals and space, both ways, and `logout <username>` ends
//! one of them while the other goes on.

use crate::harness::relay::{poll, RelayFixture};
use crate::harness::Backend;

on_both_databases!(
    two_logins_relay_into_their_own_spaces_and_one_logs_out,
    two_logins_relay_into_their_own_spaces_and_one_logs_out_sqlite,
    two_logins_relay_into_their_own_spaces_and_one_logs_out_postgres
);

fn puppet(pk: u64) -> String {
    format!("@instagram_{pk}:localhost")
}

/// The texts an account sent in a thread, oldest first.
fn texts_from(fixture: &RelayFixture, thread: &str, pk: u64) -> Vec<String> {
    let snapshot = fixture
        .sim
        .thread_snapshot(thread)
        .expect("the thread's snapshot");
    let mut texts: Vec<String> = snapshot["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|item| item["user_id"].to_string().trim_matches('"') == pk.to_string())
        .map(|item| item["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    texts.reverse();
    texts
}

/// Whether `space` (which alice joined) lists `room` as its child.
async fn has_child(fixture: &RelayFixture, space: &str, room: &str) -> bool {
    fixture
        .state(space, "m.space.child", room)
        .await
        .expect("reading the space")
        .is_some_and(|content| content["via"].is_array())
}

/// Waits until a room holds a message with `body` from `sender`.
async fn wait_for_text(fixture: &RelayFixture, room: &str, sender: &str, body: &str) {
    fixture
        .wait_for_history(room, &format!("{body:?} from {sender}"), |events| {
            events
                .iter()
                .any(|e| e.kind() == "m.room.message" && e.sender() == sender && e.body() == body)
        })
        .await;
}

async fn two_logins_relay_into_their_own_spaces_and_one_logs_out(backend: Backend) {
    let mut fixture = RelayFixture::prepare(backend, "multi.one").await;
    fixture.poll_fast();
    let (second, second_login) = fixture.add_login("multi.two").await;
    let first_login = fixture.login_id.clone();
    assert_ne!(first_login, second_login);

    let (bob, bob_thread) = fixture.friend_thread("multi.bob", "Bob");
    let carol = fixture.instagram_user("multi.carol", "Carol");
    let carol_thread = fixture
        .sim
        .create_thread(second.pk, &[carol.pk], None)
        .expect("carol's thread with the second account");
    fixture
        .sim
        .post_text(&bob_thread, bob.pk, "hello first")
        .unwrap();
    fixture
        .sim
        .post_text(&carol_thread, carol.pk, "hello second")
        .unwrap();
    fixture.e2e.start_bridge().await;

    // Each chat is a portal of its own login, in that login's space.
    let bob_room = fixture.join_portal_of(&first_login, &bob_thread).await;
    let carol_room = fixture.join_portal_of(&second_login, &carol_thread).await;
    assert_ne!(bob_room, carol_room);
    wait_for_text(&fixture, &bob_room, &puppet(bob.pk), "hello first").await;
    wait_for_text(&fixture, &carol_room, &puppet(carol.pk), "hello second").await;
    let store = fixture.store().await;
    assert!(store
        .portal_by_thread(&second_login, &bob_thread)
        .await
        .unwrap()
        .is_none());
    let first_space = store.login_space(&first_login).await.unwrap().unwrap();
    let second_space = store.login_space(&second_login).await.unwrap().unwrap();
    assert_ne!(first_space, second_space);
    for space in [&first_space, &second_space] {
        fixture.wait_for_invite(space).await;
        fixture.user.join(space).await.expect("joining a space");
    }
    assert!(has_child(&fixture, &first_space, &bob_room).await);
    assert!(!has_child(&fixture, &first_space, &carol_room).await);
    assert!(has_child(&fixture, &second_space, &carol_room).await);
    assert!(!has_child(&fixture, &second_space, &bob_room).await);

    // Matrix -> Instagram goes out as the portal's account.
    fixture
        .user
        .send_text(&carol_room, "from matrix to carol")
        .await
        .expect("sending");
    fixture
        .user
        .send_text(&bob_room, "from matrix to bob")
        .await
        .expect("sending");
    poll("both sends on Instagram", || async {
        let to_carol = texts_from(&fixture, &carol_thread, second.pk);
        let to_bob = texts_from(&fixture, &bob_thread, fixture.me.pk);
        (to_carol == ["from matrix to carol"] && to_bob == ["from matrix to bob"]).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));

    // Logging out of the second login stops it; the first one goes on.
    let bot = fixture.e2e.bot().to_owned();
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
    let listed = fixture
        .user
        .ask(&management, &bot, "list-logins")
        .await
        .expect("list-logins");
    assert!(
        listed.contains("@multi.one (connected)") && listed.contains("@multi.two (connected)"),
        "{listed}"
    );
    let answer = fixture
        .user
        .ask(&management, &bot, "logout multi.two")
        .await
        .expect("logout");
    assert_eq!(answer, "Logged out of @multi.two.");
    assert!(store.login(&second_login).await.unwrap().is_none());
    assert!(store.login(&first_login).await.unwrap().is_some());

    fixture
        .sim
        .post_text(&carol_thread, carol.pk, "after logout")
        .unwrap();
    fixture
        .sim
        .post_text(&bob_thread, bob.pk, "still bridged")
        .unwrap();
    wait_for_text(&fixture, &bob_room, &puppet(bob.pk), "still bridged").await;
    // Once the first login has polled twice more, the second would have too.
    fixture.sim.clear_request_log();
    fixture
        .sim
        .post_text(&bob_thread, bob.pk, "and again")
        .unwrap();
    wait_for_text(&fixture, &bob_room, &puppet(bob.pk), "and again").await;
    assert!(
        fixture
            .sim
            .request_log()
            .iter()
            .all(|request| request.pk != Some(second.pk)),
        "a logged-out login makes no requests"
    );
    let carol_history = fixture
        .user
        .room_history(&carol_room)
        .await
        .expect("carol's room");
    assert!(
        !carol_history.iter().any(|e| e.body() == "after logout"),
        "a logged-out login is not polled"
    );
}
