//! End-to-end tests: the real `matrix-instagram` binary against a real
//! Synapse, driven the way a user would drive it from a Matrix client. Each
//! bridge scenario runs on SQLite and on PostgreSQL.

use crate::harness::{Backend, E2e, MatrixClient, Synapse, TestDatabase};

on_both_databases!(
    management_room_commands,
    management_room_commands_sqlite,
    management_room_commands_postgres
);
on_both_databases!(
    group_room_commands_need_prefix,
    group_room_commands_need_prefix_sqlite,
    group_room_commands_need_prefix_postgres
);
on_both_databases!(
    unpermitted_user_is_refused,
    unpermitted_user_is_refused_sqlite,
    unpermitted_user_is_refused_postgres
);
on_both_databases!(
    restart_keeps_management_room,
    restart_keeps_management_room_sqlite,
    restart_keeps_management_room_postgres
);
on_both_databases!(
    init_then_run_against_synapse,
    init_then_run_against_synapse_sqlite,
    init_then_run_against_synapse_postgres
);

on_both_databases!(
    direct_chat_with_an_invitee_is_not_a_management_room,
    direct_chat_with_an_invitee_is_not_a_management_room_sqlite,
    direct_chat_with_an_invitee_is_not_a_management_room_postgres
);
on_both_databases!(
    inviting_someone_ends_the_management_room_and_its_login,
    inviting_someone_ends_the_management_room_and_its_login_sqlite,
    inviting_someone_ends_the_management_room_and_its_login_postgres
);

/// The harness itself: Synapse starts, users register and log in, a room is
/// created and a message goes from one user to the other.
#[tokio::test]
async fn harness_synapse_carries_a_message_between_users() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::harness::free_port();
    let synapse = Synapse::start(&dir.path().join("synapse"), port, None)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let mut alice = MatrixClient::register(&synapse, "alice")
        .await
        .expect("registering alice");
    let mut bob = MatrixClient::register(&synapse, "bob")
        .await
        .expect("registering bob");
    assert_eq!(alice.user_id, "@alice:localhost");
    let login = MatrixClient::login(&synapse, "alice")
        .await
        .expect("password login");
    assert_eq!(login["user_id"], "@alice:localhost");

    let room = alice.create_dm(&bob.user_id).await.expect("creating a DM");
    bob.join(&room).await.expect("bob joins");
    alice
        .wait_for_join(&room, &bob.user_id)
        .await
        .expect("alice sees bob join");
    let sent = alice.send_text(&room, "hello bob").await.expect("sending");
    let received = bob
        .wait_for_message(&room, &alice.user_id)
        .await
        .expect("bob receives");
    assert_eq!(received.body(), "hello bob");
    assert_eq!(received.event["event_id"], sent.as_str());
    assert_eq!(bob.joined_members(&room).await.expect("members").len(), 2);
}

/// The bridge's logs (debug level in these tests) hold none of its secrets.
fn assert_no_secrets_logged(e2e: &E2e) {
    let logs = e2e.bridge_logs();
    for key in [
        &["appservice", "as_token"][..],
        &["appservice", "hs_token"],
        &["encryption", "key"],
    ] {
        let value = e2e.config.get(key).expect("reading the config");
        let secret = value.as_str().expect("secrets are strings");
        assert!(
            !logs.contains(secret),
            "{} appears in the bridge log",
            key.join(".")
        );
    }
}

/// Alice invites the bot to a DM and waits for it to join and greet her;
/// returns the room (now her management room) and the greeting.
async fn open_management_room(e2e: &E2e, alice: &mut MatrixClient) -> (String, String) {
    let bot = e2e.bot().to_owned();
    let room = alice
        .create_dm(&bot)
        .await
        .expect("inviting the bot to a DM");
    alice
        .wait_for_join(&room, &bot)
        .await
        .expect("the bot joins the DM");
    let greeting = alice
        .wait_for_message(&room, &bot)
        .await
        .expect("the bot greets alice");
    (room, greeting.body().to_owned())
}

async fn management_room_commands(backend: Backend) {
    let e2e = E2e::start(backend, &[("localhost", "user")]).await;
    let bot = e2e.bot().to_owned();
    let mut alice = e2e.user("alice").await;
    let (room, greeting) = open_management_room(&e2e, &mut alice).await;
    assert!(
        greeting.contains("help"),
        "the greeting should point at `help`: {greeting:?}"
    );

    let help = alice
        .ask(&room, &bot, "help")
        .await
        .expect("answer to help");
    for command in ["help", "ping", "version"] {
        assert!(
            help.contains(command),
            "`help` should list `{command}`: {help:?}"
        );
    }
    let ping = alice
        .ask(&room, &bot, "ping")
        .await
        .expect("answer to ping");
    assert!(
        ping.to_lowercase().contains("not logged in"),
        "`ping` before login: {ping:?}"
    );
    let version = alice
        .ask(&room, &bot, "version")
        .await
        .expect("answer to version");
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "`version`: {version:?}"
    );
    let unknown = alice
        .ask(&room, &bot, "frobnicate")
        .await
        .expect("answer to an unknown command");
    assert!(
        unknown.contains("Unknown command")
            && unknown.contains("help")
            && !unknown.contains("frobnicate"),
        "an unknown command should point at `help` without echoing what was typed: {unknown:?}"
    );

    // A burst sent without waiting (Synapse batches it into fewer
    // transactions) is answered once per command, in order.
    let burst = [
        "ping", "help", "nope1", "version", "ping", "nope2", "help", "version",
    ];
    for command in burst {
        alice
            .send_text(&room, command)
            .await
            .expect("sending a command of the burst");
    }
    for command in burst {
        let answer = alice
            .wait_for_message(&room, &bot)
            .await
            .expect("an answer to each command of the burst");
        let answer = answer.body();
        match command {
            "help" => assert_eq!(answer, help, "answer to `help` in the burst"),
            "version" => assert_eq!(answer, version, "answer to `version` in the burst"),
            "ping" => assert!(answer.contains("not logged in"), "{command}: {answer:?}"),
            unknown => assert!(
                answer.starts_with("Unknown command") && !answer.contains(unknown),
                "{command}: {answer:?}"
            ),
        }
    }

    let from_bot = alice
        .messages_from(&room, &bot)
        .await
        .expect("room history");
    assert_eq!(
        from_bot.len(),
        5 + burst.len(),
        "one greeting and one answer per command: {from_bot:#?}"
    );
    assert!(
        from_bot
            .iter()
            .all(|event| event.event["content"]["msgtype"] == "m.notice"),
        "the bot answers with notices"
    );
    assert_no_secrets_logged(&e2e);
}

async fn group_room_commands_need_prefix(backend: Backend) {
    let e2e = E2e::start(backend, &[("localhost", "user")]).await;
    let bot = e2e.bot().to_owned();
    let mut alice = e2e.user("alice").await;
    let bob = e2e.user("bob").await;
    // Bob joins first so the bot never sees a two-person room it could take for a DM.
    let room = alice
        .create_group(&[bob.user_id.as_str()])
        .await
        .expect("creating a group room");
    bob.join(&room).await.expect("bob joins");
    alice.invite(&room, &bot).await.expect("inviting the bot");
    alice
        .wait_for_join(&room, &bot)
        .await
        .expect("the bot joins the group room");
    let prefix = e2e
        .config
        .get(&["bot", "command_prefix"])
        .expect("reading the command prefix");
    let prefix = prefix.as_str().expect("the prefix is a string");
    let hint = alice
        .wait_for_message(&room, &bot)
        .await
        .expect("the bot says hello in the group room");
    assert!(
        hint.body().contains(&format!("{prefix} help")),
        "the hello should name the prefixed help: {:?}",
        hint.body()
    );

    let plain_help = alice.send_text(&room, "help").await.expect("plain help");
    let ping = alice
        .ask(&room, &bot, &format!("{prefix} ping"))
        .await
        .expect("an answer to the prefixed ping");
    assert!(ping.to_lowercase().contains("not logged in"), "{ping:?}");

    // Events are handled in order: had the plain `help` been answered, that
    // answer would be in the room before the ping's.
    let history = alice.room_history(&room).await.expect("room history");
    let help_at = history
        .iter()
        .position(|event| event.event["event_id"] == plain_help.as_str())
        .expect("the plain help is in the room");
    let answers: Vec<&str> = history[help_at..]
        .iter()
        .filter(|event| event.sender() == bot && event.kind() == "m.room.message")
        .map(|event| event.body())
        .collect();
    assert_eq!(
        answers,
        vec![ping.as_str()],
        "only the prefixed command is answered"
    );
    assert_no_secrets_logged(&e2e);
}

async fn unpermitted_user_is_refused(backend: Backend) {
    let e2e = E2e::start(backend, &[("@alice:localhost", "user")]).await;
    let bot = e2e.bot().to_owned();
    let mut mallory = e2e.user("mallory").await;
    let room = mallory.create_dm(&bot).await.expect("inviting the bot");
    // A refusal is a notice (join, refuse, leave) or an invite rejected with a reason.
    let refusal = mallory
        .wait_for(&format!("the bot refusing in {room}"), |event| {
            event.room_id == room
                && event.sender() == bot
                && (event.kind() == "m.room.message"
                    || (event.kind() == "m.room.member"
                        && event.event["content"]["membership"] == "leave"))
        })
        .await
        .expect("a refusal");
    let text = match refusal.kind() {
        "m.room.message" => refusal.body().to_owned(),
        _ => refusal.event["content"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    assert!(
        text.to_lowercase().contains("not allowed"),
        "a polite refusal: {text:?}"
    );
    let help_event = mallory
        .send_text(&room, "help")
        .await
        .expect("mallory sends help");

    // Barrier: the bridge handles events in order, so once alice (permitted)
    // has her answer, mallory's `help` was seen or never delivered.
    let mut alice = e2e.user("alice").await;
    let (alice_room, _) = open_management_room(&e2e, &mut alice).await;
    let ping = alice
        .ask(&alice_room, &bot, "ping")
        .await
        .expect("alice is served");
    assert!(ping.to_lowercase().contains("not logged in"), "{ping:?}");

    let history = mallory
        .room_history(&room)
        .await
        .expect("mallory's room history");
    let help_at = history
        .iter()
        .position(|event| event.event["event_id"] == help_event.as_str())
        .expect("mallory's help is in her room");
    let bot_messages: Vec<_> = history
        .iter()
        .filter(|event| event.sender() == bot && event.kind() == "m.room.message")
        .collect();
    assert!(
        bot_messages.len() <= 1,
        "nothing but the refusal: {bot_messages:#?}"
    );
    assert!(
        !history[help_at..]
            .iter()
            .any(|event| event.sender() == bot && event.kind() == "m.room.message"),
        "mallory's `help` must get no answer: {:#?}",
        &history[help_at..]
    );
    assert_eq!(
        alice.joined_rooms().await.expect("alice's rooms"),
        vec![alice_room]
    );
    assert!(
        !mallory
            .joined_members(&room)
            .await
            .expect("members of mallory's room")
            .contains(&bot),
        "the bot does not stay in an unpermitted user's room"
    );
    assert_no_secrets_logged(&e2e);
}

async fn restart_keeps_management_room(backend: Backend) {
    let mut e2e = E2e::start(backend, &[("localhost", "user")]).await;
    let bot = e2e.bot().to_owned();
    let mut alice = e2e.user("alice").await;
    let (room, greeting) = open_management_room(&e2e, &mut alice).await;
    let help_before = alice
        .ask(&room, &bot, "help")
        .await
        .expect("help before the restart");

    e2e.stop_bridge();
    // Sent while the bridge is down: Synapse queues it, marks the appservice
    // down, and delivers it once the restarted bridge pings the homeserver.
    alice
        .send_text(&room, "ping")
        .await
        .expect("ping while the bridge is down");
    e2e.start_bridge().await;
    let ping = alice
        .wait_for_message(&room, &bot)
        .await
        .expect("the ping sent while the bridge was down is answered")
        .body()
        .to_owned();
    assert!(ping.to_lowercase().contains("not logged in"), "{ping:?}");

    let help_after = alice
        .ask(&room, &bot, "help")
        .await
        .expect("help after the restart");
    assert_eq!(
        help_after, help_before,
        "the same management room answers the same way"
    );

    let from_bot = alice
        .messages_from(&room, &bot)
        .await
        .expect("room history");
    let bodies: Vec<&str> = from_bot.iter().map(|event| event.body()).collect();
    assert_eq!(
        bodies,
        vec![
            greeting.as_str(),
            help_before.as_str(),
            ping.as_str(),
            help_after.as_str()
        ],
        "one greeting, one answer per command, nothing replayed"
    );
    assert_eq!(
        alice.joined_rooms().await.expect("alice's rooms"),
        vec![room],
        "no new room"
    );
    assert_no_secrets_logged(&e2e);
}

async fn init_then_run_against_synapse(backend: Backend) {
    let mut e2e = E2e::prepare(backend, &[]).await;

    let as_token = e2e
        .config
        .get(&["appservice", "as_token"])
        .expect("reading as_token");
    let wrong = "wrong-as-token-that-synapse-does-not-know";
    e2e.config
        .set(&["appservice", "as_token"], wrong.into())
        .expect("writing a wrong as_token");
    let failed = e2e
        .config
        .run_to_exit()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(
        !failed.status.success(),
        "a rejected as_token must fail the start: {failed:?}"
    );
    assert!(
        failed.stderr.contains("as_token"),
        "stderr should name as_token: {failed:?}"
    );
    assert!(
        !failed.stderr.contains("panicked") && !failed.stderr.to_lowercase().contains("backtrace"),
        "a clear error, not a panic: {failed:?}"
    );
    assert!(
        !failed.stderr.contains(wrong) && !failed.stdout.contains(wrong),
        "the token is a secret"
    );

    e2e.config
        .set(&["appservice", "as_token"], as_token)
        .expect("restoring as_token");
    e2e.start_bridge().await;
    let deadline = std::time::Instant::now() + crate::harness::WAIT;
    while !homeserver_ping_logged(&e2e.bridge_logs()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no successful homeserver ping logged:\n{}",
            e2e.bridge_logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logs = e2e.bridge_logs();
    assert!(!logs.contains("panicked"), "{logs}");
    let migrations = e2e
        .database
        .applied_migrations()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(
        migrations > 0,
        "the bridge migrated the test's own database"
    );
    let bridge = e2e.bridge.as_mut().expect("bridge started");
    assert_eq!(bridge.exited(), None, "the bridge keeps running");
    assert_no_secrets_logged(&e2e);
}

/// Whether the bridge logged that the homeserver answered its appservice
/// ping: the success line carries the round trip's `duration_ms`.
fn homeserver_ping_logged(logs: &str) -> bool {
    logs.lines().any(|line| {
        line.contains("duration_ms") && !line.contains("ERROR") && !line.contains("WARN")
    })
}

/// Without Synapse installed the tests fail and say how to install it.
#[tokio::test]
async fn harness_missing_synapse_names_the_install_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-venv");
    let result = Synapse::start_from(missing, &dir.path().join("synapse"), 1, None).await;
    let message = result.err().expect("no Synapse to start").to_string();
    assert!(
        message.contains("bash scripts/synapse/install.sh"),
        "{message}"
    );
}

/// Without PostgreSQL the `_postgres` tests fail and say how to provide it,
/// without showing the password.
#[tokio::test]
async fn harness_unreachable_postgres_is_explained() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let result =
        TestDatabase::create_on_postgres("postgres://postgres:hunter2@127.0.0.1:1/test".to_owned())
            .await;
    let message = result.err().expect("nothing listens on port 1").to_string();
    assert!(message.contains("PostgreSQL is not reachable"), "{message}");
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

/// The bot's command prefix, from the bridge's config.
fn command_prefix(e2e: &E2e) -> String {
    let prefix = e2e
        .config
        .get(&["bot", "command_prefix"])
        .expect("reading the command prefix");
    prefix.as_str().expect("the prefix is a string").to_owned()
}

/// The bodies of the bot's messages in a room, oldest first.
async fn bot_messages(user: &MatrixClient, room: &str, bot: &str) -> Vec<String> {
    user.messages_from(room, bot)
        .await
        .expect("room history")
        .iter()
        .map(|event| event.body().to_owned())
        .collect()
}

/// Alice creates a room marked as a direct chat with the bot and Bob invited
/// in the same request: others can read it, so it is not a management room.
/// Ordinary text gets no answer, `login` does not start there, and her real
/// management room stays hers.
async fn direct_chat_with_an_invitee_is_not_a_management_room(backend: Backend) {
    let e2e = E2e::start(backend, &[("localhost", "user")]).await;
    let bot = e2e.bot().to_owned();
    let prefix = command_prefix(&e2e);
    let mut alice = e2e.user("alice").await;
    let bob = e2e.user("bob").await;
    let (real, greeting) = open_management_room(&e2e, &mut alice).await;

    let shared = alice
        .create_direct_room(&[bot.as_str(), bob.user_id.as_str()])
        .await
        .expect("creating a direct chat with the bot and bob");
    alice
        .wait_for_join(&shared, &bot)
        .await
        .expect("the bot joins the shared room");
    let hello = alice
        .wait_for_message(&shared, &bot)
        .await
        .expect("the bot says hello")
        .body()
        .to_owned();
    assert!(
        hello.contains("Other people are in this room or invited to it")
            && hello.contains("cannot be your management room")
            && hello.contains(&format!("{prefix} help")),
        "the hello should say why this is not a management room: {hello:?}"
    );

    alice
        .send_text(&shared, "hello everyone")
        .await
        .expect("ordinary text");
    alice
        .send_text(&shared, "login")
        .await
        .expect("plain login");
    // Events of a room are handled in order: had the plain messages been
    // taken as commands, their answers would come before this one.
    let prefixed_login = alice
        .ask(&shared, &bot, &format!("{prefix} login"))
        .await
        .expect("an answer to the prefixed login");
    assert!(
        prefixed_login.starts_with("Log in from your management room"),
        "no answer to plain text, no login in a shared room: {prefixed_login:?}"
    );
    assert_eq!(
        bot_messages(&alice, &shared, &bot).await,
        vec![hello, prefixed_login],
        "the bot said nothing else in the shared room"
    );

    // No login started anywhere, and the real management room still takes
    // commands without prefix.
    let cancel = alice
        .ask(&real, &bot, "cancel")
        .await
        .expect("an answer in the real management room");
    assert!(
        cancel.starts_with("You have no login in progress"),
        "{cancel:?}"
    );
    assert_eq!(
        bot_messages(&alice, &real, &bot).await,
        vec![greeting, cancel],
        "the real management room was not handed over"
    );
    assert!(
        alice
            .joined_members(&real)
            .await
            .expect("members of the real management room")
            .contains(&bot),
        "the bot stays in the real management room"
    );
    assert_no_secrets_logged(&e2e);
}

/// Alice's management room stops being one when she invites Bob while a
/// login waits for her password: the bot warns her there, cancels the login
/// (her next message is not taken as a password), and a new direct chat
/// with only the bot becomes her management room.
async fn inviting_someone_ends_the_management_room_and_its_login(backend: Backend) {
    let e2e = E2e::start(backend, &[("localhost", "user")]).await;
    let bot = e2e.bot().to_owned();
    let prefix = command_prefix(&e2e);
    let mut alice = e2e.user("alice").await;
    let bob = e2e.user("bob").await;
    let (room, _) = open_management_room(&e2e, &mut alice).await;
    let ask_username = alice.ask(&room, &bot, "login").await.expect("login");
    assert!(ask_username.contains("username"), "{ask_username:?}");
    let ask_password = alice
        .ask(&room, &bot, "someone.on.instagram")
        .await
        .expect("the username");
    assert!(ask_password.contains("password"), "{ask_password:?}");

    alice
        .invite(&room, &bob.user_id)
        .await
        .expect("inviting bob into the management room");
    let warning = alice
        .wait_for_message(&room, &bot)
        .await
        .expect("the bot warns alice")
        .body()
        .to_owned();
    for words in [
        format!("{} was invited to this room", bob.user_id),
        "no longer your management room".to_owned(),
        "Do not send passwords, two-factor codes".to_owned(),
        "I cancelled the login you started here.".to_owned(),
        format!("`{prefix} help`"),
    ] {
        assert!(warning.contains(&words), "{words:?} in {warning:?}");
    }

    let not_a_password = "would have been my password";
    let sent = alice
        .send_text(&room, not_a_password)
        .await
        .expect("text after the invite");
    let cancel = alice
        .ask(&room, &bot, &format!("{prefix} cancel"))
        .await
        .expect("an answer to the prefixed cancel");
    assert!(
        cancel.starts_with("You have no login in progress"),
        "the login was cancelled, and the text before was not answered: {cancel:?}"
    );
    let history = alice.room_history(&room).await.expect("room history");
    let kept = history
        .iter()
        .find(|event| event.event["event_id"] == sent.as_str())
        .expect("alice's text is in the room");
    assert_eq!(
        kept.body(),
        not_a_password,
        "the text was not taken (and redacted) as a password"
    );
    let plain_help = alice.send_text(&room, "help").await.expect("plain help");
    let ping = alice
        .ask(&room, &bot, &format!("{prefix} ping"))
        .await
        .expect("an answer to the prefixed ping");
    assert!(ping.contains("not logged in"), "{ping:?}");
    let history = alice.room_history(&room).await.expect("room history");
    let help_at = history
        .iter()
        .position(|event| event.event["event_id"] == plain_help.as_str())
        .expect("the plain help is in the room");
    let answers: Vec<&str> = history[help_at..]
        .iter()
        .filter(|event| event.sender() == bot && event.kind() == "m.room.message")
        .map(|event| event.body())
        .collect();
    assert_eq!(answers, vec![ping.as_str()], "commands need the prefix now");

    let (new_room, greeting) = open_management_room(&e2e, &mut alice).await;
    assert!(
        greeting.contains("This room is now your management room"),
        "{greeting:?}"
    );
    let new_cancel = alice.ask(&new_room, &bot, "cancel").await.expect("cancel");
    assert!(
        new_cancel.starts_with("You have no login in progress"),
        "{new_cancel:?}"
    );
    assert_no_secrets_logged(&e2e);
}
