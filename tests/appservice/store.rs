//! The database layer against real databases: every test body runs on a
//! fresh SQLite file and on a fresh PostgreSQL database.
//!
//! PostgreSQL comes from `DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/test`;
//! each test creates its own `mi_test_<random>` database there and drops it.

use std::collections::BTreeMap;

use matrix_instagram::bridge::instagram::{LoginError, Logins};
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::model::ConversationKind;
use matrix_instagram::secrets::{CredentialCipher, CredentialKey, SecretsError};
use matrix_instagram::store::{
    login_id, LoginRecord, MessageRecord, NewOutboxEntry, NextOutboxPart, OutboxState,
    PortalRecord, PuppetRecord, ReactionRecord, Store, StoreError,
};
use rand::Rng;
use sqlx::Connection;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, empty database for one test, removed when dropped.
struct TestDb {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Held so the directory lives as long as the test.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/bridge.db", dir.path().display());
        TestDb {
            url,
            cleanup: Cleanup::Sqlite { _dir: dir },
        }
    }

    async fn postgres() -> TestDb {
        sqlx::any::install_default_drivers();
        let admin_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!(
                "PostgreSQL is required for the store tests and could not be reached at {} ({error}). \
                 Start PostgreSQL on 127.0.0.1:5432 with user `postgres` and trust auth, or set \
                 DATABASE_URL=postgres://USER[:PASSWORD]@HOST:PORT/DB for a user allowed to CREATE DATABASE.",
                matrix_instagram::store::redact_url(&admin_url)
            )
        });
        let name = format!("mi_test_{:016x}", rand::thread_rng().gen::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE for the test");
        admin.close().await.expect("closing the admin connection");
        let mut url = url::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        TestDb {
            url: url.to_string(),
            cleanup: Cleanup::Postgres { admin_url, name },
        }
    }

    async fn connect(&self) -> Store {
        Store::connect(&self.url)
            .await
            .expect("connecting to the test database")
    }

    /// The store as the running bridge has it: each read of a record it
    /// remembers must show every write before it.
    async fn connect_remembering(&self) -> Store {
        self.connect().await.remembering()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, drop_sql) = (
                admin_url.clone(),
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
            // Drop runs inside the test's runtime, which cannot be blocked on:
            // drop the database from a thread with its own runtime, also after a panic.
            let dropper = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for dropping the test database");
                runtime.block_on(async {
                    let mut admin = sqlx::AnyConnection::connect(&admin_url).await?;
                    sqlx::query(&drop_sql).execute(&mut admin).await?;
                    admin.close().await
                })
            });
            if let Ok(Err(error)) = dropper.join() {
                eprintln!("could not drop test database {name}: {error}");
            }
        }
    }
}

/// Runs one test body on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn sqlite() {
                super::run(super::TestDb::sqlite(), super::$body).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::run(super::TestDb::postgres().await, super::$body).await;
            }
        }
    )*};
}

async fn run(db: TestDb, body: impl AsyncFnOnce(&TestDb)) {
    body(&db).await;
}

on_both_backends!(
    migrations_run_twice_and_keep_data,
    transaction_dedupe_survives_reconnect,
    management_rooms_map_both_ways,
    login_roundtrip_keeps_credentials_encrypted,
    stored_credentials_are_sealed_and_updated_alone,
    outbox_enqueue_is_idempotent_and_tracks_attempts,
    message_insert_if_absent,
    message_parts_and_edit_hashes,
    relay_bookkeeping,
    complete_outbox_send_is_all_or_nothing,
    an_outbox_entry_moves_on_to_its_next_part_once,
    portals_crud,
    puppets_crud,
    reactions_crud,
    kv_get_and_set,
    kv_prefix_listing_and_delete,
    deleting_a_login_deletes_what_it_bridged,
    old_transactions_are_pruned,
);

async fn migrations_run_twice_and_keep_data(db: &TestDb) {
    let store = db.connect().await;
    store.kv_set("inbox_seq_id:@a:x", "42").await.unwrap();
    store.close().await;

    let store = db.connect().await;
    assert_eq!(
        store.kv_get("inbox_seq_id:@a:x").await.unwrap().as_deref(),
        Some("42")
    );
    // A third connection in parallel with an open one migrates nothing new.
    let again = db.connect().await;
    assert_eq!(
        again.kv_get("inbox_seq_id:@a:x").await.unwrap().as_deref(),
        Some("42")
    );
}

async fn transaction_dedupe_survives_reconnect(db: &TestDb) {
    let store = db.connect().await;
    assert!(!store.transaction_seen("txn-1").await.unwrap());
    store.record_transaction("txn-1").await.unwrap();
    store.record_transaction("txn-1").await.unwrap();
    assert!(store.transaction_seen("txn-1").await.unwrap());
    assert!(!store.transaction_seen("txn-2").await.unwrap());
    store.close().await;

    let store = db.connect().await;
    assert!(store.transaction_seen("txn-1").await.unwrap());
    assert!(!store.transaction_seen("txn-2").await.unwrap());
}

async fn management_rooms_map_both_ways(db: &TestDb) {
    let store = db.connect().await;
    assert_eq!(store.management_room("@alice:x").await.unwrap(), None);
    assert_eq!(store.management_room_owner("!a:x").await.unwrap(), None);

    store.set_management_room("@alice:x", "!a:x").await.unwrap();
    assert_eq!(
        store.management_room("@alice:x").await.unwrap().as_deref(),
        Some("!a:x")
    );
    assert_eq!(
        store
            .management_room_owner("!a:x")
            .await
            .unwrap()
            .as_deref(),
        Some("@alice:x")
    );

    // A new management room replaces the old one.
    store.set_management_room("@alice:x", "!b:x").await.unwrap();
    assert_eq!(
        store.management_room("@alice:x").await.unwrap().as_deref(),
        Some("!b:x")
    );
    assert_eq!(store.management_room_owner("!a:x").await.unwrap(), None);

    // One room cannot be two users' management room.
    let error = store
        .set_management_room("@bob:x", "!b:x")
        .await
        .expect_err("room already belongs to alice");
    assert!(
        error
            .to_string()
            .contains("saving a user's management room"),
        "{error}"
    );

    assert!(store.delete_management_room("!b:x").await.unwrap());
    assert!(!store.delete_management_room("!b:x").await.unwrap());
    assert_eq!(store.management_room("@alice:x").await.unwrap(), None);
}

fn login(mxid: &str, cipher: &CredentialCipher, cookies: &serde_json::Value) -> LoginRecord {
    LoginRecord {
        id: mxid.to_owned(),
        mxid: mxid.to_owned(),
        ig_user_id: Some("17841400000000001".to_owned()),
        username: Some("alice.ig".to_owned()),
        credentials: cipher.seal_json(mxid, cookies).unwrap(),
        device_uuid: "6a3c1e5e-0d0c-4e7b-9a64-3f4c8a1f2b10".to_owned(),
        state: "connected".to_owned(),
    }
}

async fn login_roundtrip_keeps_credentials_encrypted(db: &TestDb) {
    let key = CredentialKey::generate();
    let cipher = CredentialCipher::new(&key);
    let cookies = serde_json::json!({"sessionid": "s3ss10n-cookie", "csrftoken": "csrf-value"});
    let alice = login("@alice:x", &cipher, &cookies);

    let store = db.connect().await;
    assert_eq!(store.login("@alice:x").await.unwrap(), None);
    store.upsert_login(&alice).await.unwrap();
    store.close().await;

    let store = db.connect().await;
    let loaded = store
        .login("@alice:x")
        .await
        .unwrap()
        .expect("stored login");
    assert_eq!(loaded, alice);
    assert!(!loaded.credentials.as_str().contains("s3ss10n"));
    let opened: serde_json::Value = CredentialCipher::new(&key)
        .open_json("@alice:x", &loaded.credentials)
        .unwrap();
    assert_eq!(opened, cookies);

    let other_key = CredentialCipher::new(&CredentialKey::generate());
    let error = other_key
        .open_json::<serde_json::Value>("@alice:x", &loaded.credentials)
        .expect_err("wrong key");
    assert!(matches!(error, SecretsError::WrongKey));

    // Upsert replaces; state changes alone; list and delete.
    let mut relogged = login(
        "@alice:x",
        &cipher,
        &serde_json::json!({"sessionid": "new"}),
    );
    relogged.state = "disconnected".to_owned();
    store.upsert_login(&relogged).await.unwrap();
    assert_eq!(store.login("@alice:x").await.unwrap(), Some(relogged));
    assert!(store
        .set_login_state("@alice:x", "connected")
        .await
        .unwrap());
    assert!(!store
        .set_login_state("@nobody:x", "connected")
        .await
        .unwrap());
    // A state change acted on once: replaced only from the value read.
    assert!(store
        .replace_login_state("@alice:x", "connected", "session_expired")
        .await
        .unwrap());
    assert!(!store
        .replace_login_state("@alice:x", "connected", "unreachable")
        .await
        .unwrap());
    assert!(store
        .replace_login_state("@alice:x", "session_expired", "connected")
        .await
        .unwrap());
    store
        .upsert_login(&login("@bob:x", &cipher, &cookies))
        .await
        .unwrap();
    let listed: Vec<(String, String)> = store
        .list_logins()
        .await
        .unwrap()
        .into_iter()
        .map(|login| (login.mxid, login.state))
        .collect();
    assert_eq!(
        listed,
        [
            ("@alice:x".to_owned(), "connected".to_owned()),
            ("@bob:x".to_owned(), "connected".to_owned())
        ]
    );
    assert!(store.delete_login("@alice:x").await.unwrap());
    assert!(!store.delete_login("@alice:x").await.unwrap());
    assert_eq!(store.login("@alice:x").await.unwrap(), None);
}

async fn stored_credentials_are_sealed_and_updated_alone(db: &TestDb) {
    let store = db.connect().await;
    let key = CredentialKey::generate();
    let logins = Logins::new(store.clone(), CredentialCipher::new(&key));
    let cookies = BTreeMap::from([
        ("sessionid".to_owned(), "s3ss10n-cookie".to_owned()),
        ("ds_user_id".to_owned(), "17841400000000001".to_owned()),
    ]);
    let mut credentials = Credentials::new(cookies);
    let saved = logins
        .save_new(
            "@alice:x",
            "17841400000000001",
            Some("alice.ig".to_owned()),
            &credentials,
        )
        .await
        .unwrap();
    assert_eq!(saved.ig_user_id.as_deref(), Some("17841400000000001"));
    assert_eq!(saved.device_uuid, credentials.device_id);
    assert!(!saved.credentials.as_str().contains("s3ss10n"));
    assert_eq!(saved.id, login_id("@alice:x", "17841400000000001"));
    assert!(saved.id.starts_with("@alice:x/"), "{}", saved.id);
    assert!(
        !saved.id.contains("17841400000000001"),
        "the account id (a cookie) is not in the login id, which is logged"
    );
    let id = saved.id.as_str();
    assert_eq!(logins.credentials(id).await.unwrap(), credentials);

    store
        .set_login_state(id, "challenge_required")
        .await
        .unwrap();
    credentials.store_state("ig_www_claim", "hmac.claim".to_owned());
    logins.update_credentials(id, &credentials).await.unwrap();
    assert_eq!(logins.credentials(id).await.unwrap(), credentials);
    let record = store.login(id).await.unwrap().unwrap();
    assert_eq!(
        record.state, "challenge_required",
        "only credentials change"
    );
    assert_eq!(record.username.as_deref(), Some("alice.ig"));

    let error = logins
        .update_credentials("@bob:x", &credentials)
        .await
        .unwrap_err();
    assert!(matches!(error, LoginError::NoLogin { .. }), "{error}");
    assert_eq!(
        logins.credentials("@bob:x").await.unwrap_err().to_string(),
        "there is no Instagram login @bob:x; log in with the bot's `login` command"
    );
    let other_key = Logins::new(
        store.clone(),
        CredentialCipher::new(&CredentialKey::generate()),
    );
    let error = other_key.credentials(id).await.unwrap_err();
    assert!(
        matches!(
            error,
            LoginError::Open {
                source: SecretsError::WrongKey,
                ..
            }
        ),
        "{error}"
    );

    // Logging in again to the same account is the same login, with the
    // same device identity (uuid, phone id, Android id, user agent);
    // another account is a second login.
    let again = logins
        .save_new(
            "@alice:x",
            "17841400000000001",
            Some("alice.ig".to_owned()),
            &Credentials::new(BTreeMap::from([(
                "sessionid".to_owned(),
                "an0ther-s3ss10n".to_owned(),
            )])),
        )
        .await
        .unwrap();
    assert_eq!(again.id, id);
    assert_eq!(again.device_uuid, saved.device_uuid);
    let relogged = logins.credentials(id).await.unwrap();
    assert_eq!(
        relogged.device(),
        credentials.device(),
        "the whole device identity"
    );
    assert_eq!(relogged.cookies["sessionid"], "an0ther-s3ss10n");
    assert_eq!(again.state, "connected");
    let second = logins
        .save_new(
            "@alice:x",
            "17841400000000002",
            Some("alice.second".to_owned()),
            &Credentials::new(BTreeMap::new()),
        )
        .await
        .unwrap();
    assert_ne!(second.id, id);
    let mine: Vec<String> = store
        .logins_of("@alice:x")
        .await
        .unwrap()
        .into_iter()
        .map(|login| login.username.unwrap_or_default())
        .collect();
    assert_eq!(mine, ["alice.ig", "alice.second"]);
    assert!(store.logins_of("@bob:x").await.unwrap().is_empty());
    assert_eq!(
        store
            .login_of_account("@alice:x", "17841400000000002")
            .await
            .unwrap()
            .map(|login| login.id),
        Some(second.id)
    );
}

fn outgoing(event_id: &str, text: &str) -> NewOutboxEntry {
    NewOutboxEntry {
        event_id: event_id.to_owned(),
        room_id: "!portal:x".to_owned(),
        login_id: "@alice:x".to_owned(),
        kind: "message".to_owned(),
        payload: serde_json::json!({"text": text}),
        client_context: format!("cc-{event_id}"),
    }
}

async fn outbox_enqueue_is_idempotent_and_tracks_attempts(db: &TestDb) {
    let store = db.connect().await;
    assert!(store
        .enqueue_outbox(&outgoing("$e1", "hello"))
        .await
        .unwrap());
    // A redelivered event changes nothing, even with a different payload.
    assert!(!store
        .enqueue_outbox(&outgoing("$e1", "changed"))
        .await
        .unwrap());
    assert!(store
        .enqueue_outbox(&outgoing("$e2", "second"))
        .await
        .unwrap());

    let pending = store.pending_outbox().await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|e| e.queued.event_id.as_str()).collect();
    assert_eq!(ids, ["$e1", "$e2"]);
    let first = &pending[0];
    assert_eq!(first.queued.payload, serde_json::json!({"text": "hello"}));
    assert_eq!(first.state, OutboxState::Pending);
    assert_eq!(first.attempts, 0);
    assert_eq!(first.item_id, None);

    assert_eq!(store.begin_outbox_attempt("$e1").await.unwrap(), Some(1));
    assert!(store.record_outbox_error("$e1", "timeout").await.unwrap());
    assert_eq!(store.begin_outbox_attempt("$e1").await.unwrap(), Some(2));
    assert!(store
        .record_outbox_error("$e1", "timeout again")
        .await
        .unwrap());
    assert_eq!(store.begin_outbox_attempt("$nope").await.unwrap(), None);
    assert!(!store.record_outbox_error("$nope", "x").await.unwrap());
    // A room's pending events, in arrival order, and the rooms that have any.
    let of_room = store.pending_outbox_of_room("!portal:x").await.unwrap();
    let ids: Vec<&str> = of_room.iter().map(|e| e.queued.event_id.as_str()).collect();
    assert_eq!(ids, ["$e1", "$e2"]);
    assert_eq!(
        store.rooms_with_pending_outbox(None).await.unwrap(),
        [("@alice:x".to_owned(), "!portal:x".to_owned())]
    );
    assert!(store
        .rooms_with_pending_outbox(Some("@bob:x"))
        .await
        .unwrap()
        .is_empty());

    assert!(store.mark_outbox_sent("$e1", Some("item-9")).await.unwrap());
    let sent = store.outbox_entry("$e1").await.unwrap().unwrap();
    assert_eq!(sent.state, OutboxState::Sent);
    assert_eq!(sent.attempts, 2);
    assert_eq!(sent.item_id.as_deref(), Some("item-9"));
    assert_eq!(sent.last_error.as_deref(), Some("timeout again"));
    assert_eq!(
        store
            .outbox_by_client_context("cc-$e1")
            .await
            .unwrap()
            .map(|entry| entry.queued.event_id),
        Some("$e1".to_owned())
    );

    assert!(store
        .mark_outbox_failed("$e2", "thread is gone")
        .await
        .unwrap());
    let failed = store.outbox_entry("$e2").await.unwrap().unwrap();
    assert_eq!(failed.state, OutboxState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("thread is gone"));
    assert!(!store.mark_outbox_failed("$nope", "x").await.unwrap());
    assert!(store.pending_outbox().await.unwrap().is_empty());
    // Enqueueing a finished event again does not resurrect it.
    assert!(!store
        .enqueue_outbox(&outgoing("$e2", "second"))
        .await
        .unwrap());
    assert!(store.pending_outbox().await.unwrap().is_empty());
}

fn message(item_id: &str, event_id: &str) -> MessageRecord {
    MessageRecord {
        login_id: "@alice:x".to_owned(),
        thread_id: "340282366841710300949128".to_owned(),
        item_id: item_id.to_owned(),
        part_id: String::new(),
        room_id: "!portal:x".to_owned(),
        event_id: event_id.to_owned(),
        sender: "17841400000000002".to_owned(),
        timestamp: 1_700_000_000_123,
        client_context: None,
        content_hash: None,
    }
}

/// A photo with a caption: once the photo is sent, its record is written and
/// the entry becomes the caption's text, pending, with its own
/// client_context; a second report of the photo (its echo) moves nothing.
async fn an_outbox_entry_moves_on_to_its_next_part_once(db: &TestDb) {
    let store = db.connect().await;
    store
        .enqueue_outbox(&outgoing("$photo", "a photo"))
        .await
        .unwrap();
    assert_eq!(store.begin_outbox_attempt("$photo").await.unwrap(), Some(1));
    let next = NextOutboxPart {
        kind: "text".to_owned(),
        payload: serde_json::json!({"kind": "text", "text": "its caption"}),
        client_context: "cc-caption".to_owned(),
    };
    let mut photo = message("item-photo", "$photo");
    photo.client_context = Some("cc-$photo".to_owned());
    let moved = store
        .continue_outbox_send("$photo", "cc-$photo", &photo, &next)
        .await
        .unwrap()
        .expect("the entry moves on");
    assert_eq!(moved.state, OutboxState::Pending);
    assert_eq!(moved.attempts, 0, "the caption was never tried");
    assert_eq!(moved.queued.kind, "text");
    assert_eq!(moved.queued.payload, next.payload);
    assert_eq!(moved.queued.client_context, "cc-caption");
    assert_eq!(
        store
            .continue_outbox_send("$photo", "cc-$photo", &photo, &next)
            .await
            .unwrap(),
        None,
        "already moved on"
    );
    // The caption sent: the event stands for both items, the photo first.
    let mut caption = message("item-caption", "$photo");
    caption.timestamp += 1;
    assert!(store
        .complete_outbox_send("$photo", &caption)
        .await
        .unwrap());
    let items: Vec<String> = store
        .messages_by_event("!portal:x", "$photo")
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.item_id)
        .collect();
    assert_eq!(items, ["item-photo", "item-caption"]);
    assert_eq!(
        store
            .message_by_event("!portal:x", "$photo")
            .await
            .unwrap()
            .map(|record| record.item_id),
        Some("item-photo".to_owned())
    );
    // A sent entry never moves back.
    assert_eq!(
        store
            .continue_outbox_send("$photo", "cc-caption", &caption, &next)
            .await
            .unwrap(),
        None
    );
}

/// An item bridged as several events: one record per part, the main part
/// first; edits update the main part's text hash; lookups by time; the
/// records of several items read at once.
async fn message_parts_and_edit_hashes(db: &TestDb) {
    let store = db.connect().await;
    let preview = MessageRecord {
        part_id: "preview".to_owned(),
        event_id: "$preview".to_owned(),
        ..message("item-1", "$ev1")
    };
    let main = MessageRecord {
        content_hash: Some("hash-1".to_owned()),
        ..message("item-1", "$ev1")
    };
    assert!(store.insert_message(&preview).await.unwrap());
    assert!(store.insert_message(&main).await.unwrap());
    assert!(!store.insert_message(&main).await.unwrap(), "once per part");
    let (login, thread) = (&main.login_id, &main.thread_id);
    let parts = store.message_parts(login, thread, "item-1").await.unwrap();
    assert_eq!(parts, vec![main.clone(), preview.clone()]);
    assert_eq!(
        store
            .message_by_item(login, thread, "item-1")
            .await
            .unwrap(),
        Some(main.clone())
    );

    store
        .set_message_content_hash(&main, "hash-2")
        .await
        .unwrap();
    let edited = store
        .message_by_item(login, thread, "item-1")
        .await
        .unwrap();
    assert_eq!(edited.unwrap().content_hash.as_deref(), Some("hash-2"));

    let later = MessageRecord {
        timestamp: main.timestamp + 10,
        ..message("item-2", "$ev2")
    };
    store.insert_message(&later).await.unwrap();
    let at = |ms| store.message_at_or_before(login, thread, ms);
    assert_eq!(at(main.timestamp - 1).await.unwrap(), None);
    assert_eq!(
        at(main.timestamp + 5).await.unwrap().map(|m| m.item_id),
        Some("item-1".to_owned())
    );
    assert_eq!(at(later.timestamp).await.unwrap(), Some(later.clone()));

    // What is recorded of several items at once, reactions included; an
    // item of another thread is not among them.
    let reaction = ReactionRecord {
        login_id: login.clone(),
        thread_id: thread.clone(),
        item_id: "item-2".to_owned(),
        sender: "1784".to_owned(),
        room_id: later.room_id.clone(),
        event_id: "$react".to_owned(),
        emoji: "❤️".to_owned(),
    };
    store.upsert_reaction(&reaction).await.unwrap();
    let elsewhere = MessageRecord {
        thread_id: "another thread".to_owned(),
        ..message("item-3", "$ev3")
    };
    store.insert_message(&elsewhere).await.unwrap();
    let records = store
        .item_records(login, thread, &["item-1", "item-2", "item-3"])
        .await
        .unwrap();
    let main = MessageRecord {
        content_hash: Some("hash-2".to_owned()),
        ..main.clone()
    };
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records["item-1"].parts, vec![main, preview]);
    assert!(records["item-1"].reactions.is_empty());
    assert_eq!(records["item-2"].parts, vec![later]);
    assert_eq!(records["item-2"].reactions, vec![reaction]);
    assert!(store
        .item_records(login, thread, &[])
        .await
        .unwrap()
        .is_empty());
}

/// Room creations, login spaces, read receipts, puppets by username, and
/// portal room updates that leave the poller's progress alone.
async fn relay_bookkeeping(db: &TestDb) {
    let store = db.connect().await;
    assert!(!store.room_creation_pending("@alice:x", "t1").await.unwrap());
    store.start_room_creation("@alice:x", "t1").await.unwrap();
    store.start_room_creation("@alice:x", "t1").await.unwrap();
    assert!(store.room_creation_pending("@alice:x", "t1").await.unwrap());
    assert!(!store.room_creation_pending("@bob:x", "t1").await.unwrap());
    store.finish_room_creation("@alice:x", "t1").await.unwrap();
    assert!(!store.room_creation_pending("@alice:x", "t1").await.unwrap());

    assert_eq!(store.login_space("@alice:x").await.unwrap(), None);
    store.set_login_space("@alice:x", "!space:x").await.unwrap();
    assert_eq!(
        store.login_space("@alice:x").await.unwrap().as_deref(),
        Some("!space:x")
    );

    assert_eq!(
        store.read_receipt("@alice:x", "t1", "42").await.unwrap(),
        None
    );
    store
        .set_read_receipt("@alice:x", "t1", "42", "$a")
        .await
        .unwrap();
    store
        .set_read_receipt("@alice:x", "t1", "42", "$b")
        .await
        .unwrap();
    assert_eq!(
        store
            .read_receipt("@alice:x", "t1", "42")
            .await
            .unwrap()
            .as_deref(),
        Some("$b")
    );

    let bob = PuppetRecord {
        ig_user_id: "1784".to_owned(),
        mxid: "@instagram_1784:x".to_owned(),
        username: Some("Bob.B".to_owned()),
        displayname: None,
        avatar_url: None,
        name_set: false,
        avatar_set: false,
        registered: true,
        avatar_id: Some("https://cdn/p.jpg".to_owned()),
        avatar_hash: Some("abc".to_owned()),
    };
    store.upsert_puppet(&bob).await.unwrap();
    assert_eq!(
        store
            .puppets_by_usernames(&["bob.b", "carol"])
            .await
            .unwrap(),
        vec![bob]
    );
    assert!(store.puppets_by_usernames(&[]).await.unwrap().is_empty());

    let first = portal("t1", "!r1:x");
    store.upsert_portal(&first).await.unwrap();
    let mut changed = portal("t1", "!r1:x");
    changed.kind = ConversationKind::Direct;
    changed.encrypted = false;
    changed.name = Some("Renamed".to_owned());
    changed.request = true;
    changed.request_notice_sent = true;
    changed.avatar_id = Some("https://cdn/g.jpg".to_owned());
    changed.avatar_url = Some("mxc://x/g".to_owned());
    changed.in_space = true;
    changed.members_hash = Some("abc".to_owned());
    store.update_portal_room(&changed).await.unwrap();
    let stored = store
        .portal_by_thread("@alice:x", "t1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored,
        PortalRecord {
            kind: first.kind,
            encrypted: first.encrypted,
            created_at: stored.created_at,
            ..changed
        }
    );
}

async fn message_insert_if_absent(db: &TestDb) {
    let store = db.connect().await;
    let first = message("item-1", "$ev1");
    assert!(store.insert_message(&first).await.unwrap());
    assert!(!store
        .insert_message(&message("item-1", "$other"))
        .await
        .unwrap());
    assert_eq!(
        store
            .message_by_item(&first.login_id, &first.thread_id, "item-1")
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.message_by_event("!portal:x", "$ev1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.message_by_event("!portal:x", "$other").await.unwrap(),
        None
    );

    let mut echoed = message("item-2", "$ev2");
    echoed.client_context = Some("cc-$ev2".to_owned());
    assert!(store.insert_message(&echoed).await.unwrap());
    assert_eq!(
        store
            .message_by_event("!portal:x", "$ev2")
            .await
            .unwrap()
            .and_then(|m| m.client_context),
        Some("cc-$ev2".to_owned())
    );

    // One Matrix event may stand for two items (a photo and its caption);
    // looked up by event, the older comes first.
    let mut later = message("item-3", "$ev1");
    later.timestamp += 1;
    assert!(store.insert_message(&later).await.unwrap());
    let items: Vec<String> = store
        .messages_by_event("!portal:x", "$ev1")
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.item_id)
        .collect();
    assert_eq!(items, ["item-1", "item-3"]);
}

async fn complete_outbox_send_is_all_or_nothing(db: &TestDb) {
    let store = db.connect().await;
    store
        .enqueue_outbox(&outgoing("$out1", "hi"))
        .await
        .unwrap();
    let mut sent = message("item-10", "$out1");
    sent.client_context = Some("cc-$out1".to_owned());
    assert!(store.complete_outbox_send("$out1", &sent).await.unwrap());
    let entry = store.outbox_entry("$out1").await.unwrap().unwrap();
    assert_eq!(entry.state, OutboxState::Sent);
    assert_eq!(entry.item_id.as_deref(), Some("item-10"));
    assert_eq!(
        store.message_by_event("!portal:x", "$out1").await.unwrap(),
        Some(sent)
    );

    // No such entry: nothing is recorded.
    assert!(!store
        .complete_outbox_send("$unknown", &message("item-11", "$unknown"))
        .await
        .unwrap());
    assert_eq!(
        store
            .message_by_event("!portal:x", "$unknown")
            .await
            .unwrap(),
        None
    );

    // The message cannot be recorded (its table is gone): the outbox entry
    // stays pending, so the send is not lost.
    store
        .enqueue_outbox(&outgoing("$out2", "hey"))
        .await
        .unwrap();
    let mut connection = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE messages RENAME TO messages_elsewhere")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    store
        .complete_outbox_send("$out2", &message("item-13", "$out2"))
        .await
        .expect_err("no table to record the message in");
    let entry = store.outbox_entry("$out2").await.unwrap().unwrap();
    assert_eq!(entry.state, OutboxState::Pending);
    assert_eq!(entry.attempts, 0);
}

fn portal(thread_id: &str, room_id: &str) -> PortalRecord {
    PortalRecord {
        login_id: "@alice:x".to_owned(),
        owner: "@alice:x".to_owned(),
        thread_id: thread_id.to_owned(),
        room_id: room_id.to_owned(),
        kind: ConversationKind::Group,
        name: Some("Friends".to_owned()),
        avatar_url: None,
        encrypted: true,
        request: false,
        request_notice_sent: false,
        avatar_id: None,
        in_space: false,
        members_hash: None,
        created_at: 0,
    }
}

async fn portals_crud(db: &TestDb) {
    let store = db.connect_remembering().await;
    store.upsert_portal(&portal("t1", "!r1:x")).await.unwrap();
    let stored = store
        .portal_by_thread("@alice:x", "t1")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.created_at > 0);
    assert_eq!(
        stored,
        PortalRecord {
            created_at: stored.created_at,
            ..portal("t1", "!r1:x")
        }
    );
    assert_eq!(
        store.portal_by_room("!r1:x").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.portal_by_thread("@bob:x", "t1").await.unwrap(), None);

    let mut renamed = portal("t1", "!r1:x");
    renamed.kind = ConversationKind::Direct;
    renamed.name = None;
    renamed.encrypted = false;
    store.upsert_portal(&renamed).await.unwrap();
    let updated = store.portal_by_room("!r1:x").await.unwrap().unwrap();
    assert_eq!(updated.kind, ConversationKind::Direct);
    assert_eq!(updated.name, None);
    assert!(!updated.encrypted);
    assert_eq!(updated.created_at, stored.created_at);
    assert_eq!(
        store.portal_by_thread("@alice:x", "t1").await.unwrap(),
        Some(updated.clone()),
        "read by thread as by room"
    );

    let mut room = updated.clone();
    room.name = Some("Renamed".to_owned());
    room.in_space = true;
    room.members_hash = Some("h".to_owned());
    store.update_portal_room(&room).await.unwrap();
    assert_eq!(
        store.portal_by_thread("@alice:x", "t1").await.unwrap(),
        Some(room)
    );

    renamed.name = Some("Renamed again".to_owned());
    store.upsert_portal(&renamed).await.unwrap();
    store.upsert_portal(&portal("t2", "!r2:x")).await.unwrap();
    let threads: Vec<(String, Option<String>)> = store
        .portals_of_login("@alice:x")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.thread_id, p.name))
        .collect();
    assert_eq!(
        threads,
        [
            ("t1".to_owned(), Some("Renamed again".to_owned())),
            ("t2".to_owned(), Some("Friends".to_owned()))
        ]
    );
    assert!(store.delete_portal("@alice:x", "t1").await.unwrap());
    assert!(!store.delete_portal("@alice:x", "t1").await.unwrap());
    assert_eq!(store.portal_by_room("!r1:x").await.unwrap(), None);
    assert_eq!(
        store.portal_by_thread("@alice:x", "t1").await.unwrap(),
        None
    );
}

async fn puppets_crud(db: &TestDb) {
    let store = db.connect_remembering().await;
    assert_eq!(store.puppet("1784").await.unwrap(), None);
    let mut puppet = PuppetRecord {
        ig_user_id: "1784".to_owned(),
        mxid: "@instagram_1784:x".to_owned(),
        username: Some("bob".to_owned()),
        displayname: Some("Bob (Instagram)".to_owned()),
        avatar_url: None,
        name_set: false,
        avatar_set: false,
        registered: true,
        avatar_id: None,
        avatar_hash: None,
    };
    store.upsert_puppet(&puppet).await.unwrap();
    assert_eq!(store.puppet("1784").await.unwrap(), Some(puppet.clone()));
    puppet.name_set = true;
    puppet.avatar_url = Some("mxc://x/abc".to_owned());
    puppet.avatar_set = true;
    store.upsert_puppet(&puppet).await.unwrap();
    assert_eq!(store.puppet("1784").await.unwrap(), Some(puppet.clone()));
    assert_eq!(
        store.puppet_by_mxid("@instagram_1784:x").await.unwrap(),
        Some(puppet)
    );
}

async fn reactions_crud(db: &TestDb) {
    let store = db.connect().await;
    let mut reaction = ReactionRecord {
        login_id: "@alice:x".to_owned(),
        thread_id: "t1".to_owned(),
        item_id: "item-1".to_owned(),
        sender: "1784".to_owned(),
        room_id: "!r1:x".to_owned(),
        event_id: "$react1".to_owned(),
        emoji: "❤️".to_owned(),
    };
    store.upsert_reaction(&reaction).await.unwrap();
    assert_eq!(
        store
            .reaction("@alice:x", "t1", "item-1", "1784")
            .await
            .unwrap(),
        Some(reaction.clone())
    );
    // The same sender reacting again replaces the reaction.
    reaction.event_id = "$react2".to_owned();
    reaction.emoji = "😂".to_owned();
    store.upsert_reaction(&reaction).await.unwrap();
    assert_eq!(
        store.reaction_by_event("!r1:x", "$react1").await.unwrap(),
        None
    );
    assert_eq!(
        store.reaction_by_event("!r1:x", "$react2").await.unwrap(),
        Some(reaction)
    );
    assert!(store
        .delete_reaction("@alice:x", "t1", "item-1", "1784")
        .await
        .unwrap());
    assert!(!store
        .delete_reaction("@alice:x", "t1", "item-1", "1784")
        .await
        .unwrap());
    assert_eq!(
        store
            .reaction("@alice:x", "t1", "item-1", "1784")
            .await
            .unwrap(),
        None
    );
}

async fn kv_get_and_set(db: &TestDb) {
    let store = db.connect().await;
    assert_eq!(store.kv_get("seq").await.unwrap(), None);
    store.kv_set("seq", "1").await.unwrap();
    store.kv_set("seq", "2").await.unwrap();
    assert_eq!(store.kv_get("seq").await.unwrap().as_deref(), Some("2"));
}

async fn kv_prefix_listing_and_delete(db: &TestDb) {
    let store = db.connect().await;
    for (key, value) in [
        ("login_x:@b:x", "2"),
        ("login_x:@a:x", "1"),
        ("loginAx:@c:x", "wildcard"),
        ("other", "3"),
    ] {
        store.kv_set(key, value).await.unwrap();
    }
    let listed = store.kv_with_prefix("login_x:").await.unwrap();
    assert_eq!(
        listed,
        vec![
            ("login_x:@a:x".to_owned(), "1".to_owned()),
            ("login_x:@b:x".to_owned(), "2".to_owned())
        ]
    );
    store.kv_delete("login_x:@a:x").await.unwrap();
    store.kv_delete("never-set").await.unwrap();
    assert_eq!(store.kv_get("login_x:@a:x").await.unwrap(), None);
    assert_eq!(store.kv_with_prefix("login_x:").await.unwrap().len(), 1);
    assert_eq!(store.kv_get("other").await.unwrap().as_deref(), Some("3"));
}

#[tokio::test]
async fn sqlite_memory_database_is_shared_by_the_pool() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.record_transaction("t").await.unwrap();
    assert!(store.transaction_seen("t").await.unwrap());
}

#[tokio::test]
async fn sqlite_files_use_write_ahead_logging() {
    let db = TestDb::sqlite();
    db.connect().await.close().await;
    let mut connection = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn database_from_a_newer_bridge_is_a_clear_migration_error() {
    let db = TestDb::sqlite();
    db.connect().await.close().await;
    let mut connection = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer bridge', 1, x'00', 0)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();

    let error = Store::connect(&db.url)
        .await
        .expect_err("unknown migration applied");
    assert!(matches!(error, StoreError::Migrate { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("cannot migrate database sqlite://"),
        "{message}"
    );
    assert!(message.contains("99990101000000"), "{message}");
}

#[tokio::test]
async fn plain_sqlite_path_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("created.db");
    let store = Store::connect(path.to_str().unwrap()).await.unwrap();
    store.kv_set("k", "v").await.unwrap();
    assert!(path.exists());
}

#[tokio::test]
async fn unwritable_sqlite_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/missing-dir/bridge.db", dir.path().display());
    let error = Store::connect(&url)
        .await
        .expect_err("directory does not exist");
    assert!(matches!(error, StoreError::Connect { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("cannot open database sqlite://"),
        "{message}"
    );
    assert!(message.contains("missing-dir/bridge.db"), "{message}");
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let error = Store::connect("postgres://bridge:hunter2@127.0.0.1:1/ig")
        .await
        .expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(
        message.starts_with("cannot open database postgres://bridge:***@127.0.0.1:1/ig"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

/// What `login_id` has bridged: one portal, message, reaction and outbox entry.
async fn bridged_data(store: &Store, login_id: &str, room_id: &str) {
    let cipher = CredentialCipher::new(&CredentialKey::generate());
    store
        .upsert_login(&login(login_id, &cipher, &serde_json::json!({})))
        .await
        .unwrap();
    store
        .upsert_portal(&PortalRecord {
            login_id: login_id.to_owned(),
            ..portal("t1", room_id)
        })
        .await
        .unwrap();
    store
        .insert_message(&MessageRecord {
            login_id: login_id.to_owned(),
            room_id: room_id.to_owned(),
            ..message("item-1", "$ev1")
        })
        .await
        .unwrap();
    store
        .upsert_reaction(&ReactionRecord {
            login_id: login_id.to_owned(),
            thread_id: "t1".to_owned(),
            item_id: "item-1".to_owned(),
            sender: "1784".to_owned(),
            room_id: room_id.to_owned(),
            event_id: "$react1".to_owned(),
            emoji: "❤️".to_owned(),
        })
        .await
        .unwrap();
    store
        .enqueue_outbox(&NewOutboxEntry {
            login_id: login_id.to_owned(),
            room_id: room_id.to_owned(),
            ..outgoing(&format!("$out-{login_id}"), "hi")
        })
        .await
        .unwrap();
}

/// Whether each kind of record of `bridged_data` is present: (login,
/// portal, message, reaction, outbox entry).
async fn bridged_records(
    store: &Store,
    login_id: &str,
    room_id: &str,
) -> (bool, bool, bool, bool, bool) {
    (
        store.login(login_id).await.unwrap().is_some(),
        store.portal_by_room(room_id).await.unwrap().is_some(),
        store
            .message_by_event(room_id, "$ev1")
            .await
            .unwrap()
            .is_some(),
        store
            .reaction_by_event(room_id, "$react1")
            .await
            .unwrap()
            .is_some(),
        store
            .outbox_entry(&format!("$out-{login_id}"))
            .await
            .unwrap()
            .is_some(),
    )
}

async fn deleting_a_login_deletes_what_it_bridged(db: &TestDb) {
    let store = db.connect_remembering().await;
    bridged_data(&store, "@alice:x", "!alice-portal:x").await;
    bridged_data(&store, "@bob:x", "!bob-portal:x").await;
    let by_thread = |login: &'static str| {
        let store = store.clone();
        async move {
            let portals = store.portals_of_login(login).await.unwrap();
            let mut found = Vec::new();
            for portal in portals {
                found.extend(
                    store
                        .portal_by_thread(login, &portal.thread_id)
                        .await
                        .unwrap(),
                );
            }
            found
        }
    };
    let alices = by_thread("@alice:x").await;
    assert_eq!(alices.len(), 1, "{alices:?}");
    let everything = (true, true, true, true, true);
    assert_eq!(
        bridged_records(&store, "@alice:x", "!alice-portal:x").await,
        everything
    );

    assert!(store.delete_login("@alice:x").await.unwrap());
    assert_eq!(
        bridged_records(&store, "@alice:x", "!alice-portal:x").await,
        (false, false, false, false, false)
    );
    assert!(store.portals_of_login("@alice:x").await.unwrap().is_empty());
    assert_eq!(
        store
            .portal_by_thread("@alice:x", &alices[0].thread_id)
            .await
            .unwrap(),
        None,
        "a deleted login's portals are not remembered"
    );
    assert_eq!(by_thread("@bob:x").await.len(), 1);
    // Another user's login is untouched.
    assert_eq!(
        bridged_records(&store, "@bob:x", "!bob-portal:x").await,
        everything
    );
    let pending: Vec<String> = store
        .pending_outbox()
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.queued.login_id)
        .collect();
    assert_eq!(pending, ["@bob:x"]);
    assert!(!store.delete_login("@alice:x").await.unwrap());
}

/// Waits until the millisecond clock the store uses has moved on.
async fn next_millisecond() {
    let start = chrono::Utc::now().timestamp_millis();
    while chrono::Utc::now().timestamp_millis() <= start {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

async fn old_transactions_are_pruned(db: &TestDb) {
    let store = db.connect().await;
    store.record_transaction("old-1").await.unwrap();
    store.record_transaction("old-2").await.unwrap();
    store.record_event("$old").await.unwrap();
    next_millisecond().await;
    let cutoff = chrono::Utc::now();
    next_millisecond().await;
    store.record_transaction("recent").await.unwrap();
    store.record_event("$recent").await.unwrap();

    assert_eq!(store.prune_transactions(cutoff).await.unwrap(), 3);
    assert!(!store.transaction_seen("old-1").await.unwrap());
    assert!(!store.transaction_seen("old-2").await.unwrap());
    assert!(!store.event_seen("$old").await.unwrap());
    assert!(store.transaction_seen("recent").await.unwrap());
    assert!(store.event_seen("$recent").await.unwrap());
    assert_eq!(store.prune_transactions(cutoff).await.unwrap(), 0);
}
