//! The demo dataset (`--seed demo`): the demo account, a friend, more contacts, direct and
//! group threads holding every common item kind, a long thread that spans several pages,
//! and a pending message request.

use serde::Serialize;
use serde_json::json;

use crate::error::SimError;
use crate::world::{Account, ItemKind, World};

/// What the demo seed created.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSeed {
    /// bridge.tester, the account the bridge logs in as (password `demo-password`).
    pub demo: Account,
    /// alice.wonder, the demo account's friend (password `alice-password`).
    pub friend: Account,
    /// bob_builder, carol.sings, dave.unknown, erin.e, frank.f.
    pub contacts: Vec<Account>,
    /// demo ↔ friend: 45 items of every kind, so a 20-item page leaves older pages.
    pub direct_thread_id: String,
    /// "Weekend plans": demo, friend, bob and carol.
    pub group_thread_id: String,
    /// A request from dave.unknown, in the demo account's pending inbox.
    pub pending_thread_id: String,
    /// Every thread the seed made, newest activity first.
    pub thread_ids: Vec<String>,
}

const MINUTE_US: u64 = 60 * 1_000_000;

/// Adds an item dated `minutes_ago` minutes before `now_us`.
fn post(
    world: &mut World,
    thread_id: &str,
    from: u64,
    kind: ItemKind,
    now_us: u64,
    minutes_ago: u64,
) -> Result<u128, SimError> {
    world.append_item_at(
        thread_id,
        from,
        kind,
        None,
        None,
        Some(now_us - minutes_ago * MINUTE_US),
    )
}

fn text(body: &str) -> ItemKind {
    json!({"item_type": "text", "text": body})
}

pub(crate) fn seed_demo(world: &mut World) -> Result<DemoSeed, SimError> {
    let demo = world.create_account("bridge.tester", "Bridge Tester", Some("demo-password"))?;
    let friend = world.create_account("alice.wonder", "Alice W", Some("alice-password"))?;
    let mut contacts = Vec::new();
    for (username, full_name) in [
        ("bob_builder", "Bob B"),
        ("carol.sings", "Carol S"),
        ("dave.unknown", "Dave U"),
        ("erin.e", "Erin E"),
        ("frank.f", "Frank F"),
    ] {
        contacts.push(world.create_account(
            username,
            full_name,
            Some(&format!("{username}-password")),
        )?);
    }
    let (bob, carol, dave, erin, frank) = (
        contacts[0].pk,
        contacts[1].pk,
        contacts[2].pk,
        contacts[3].pk,
        contacts[4].pk,
    );
    let now_us = crate::world::now_ms() * 1000;
    let (me, alice) = (demo.pk, friend.pk);

    let direct = world.create_thread(me, &[alice], None)?;
    let mut minutes = 600;
    let mut first_question = None;
    for index in 0..30 {
        let (from, body) = if index % 2 == 0 {
            (
                alice,
                format!("message {index} from alice: how is it going?"),
            )
        } else {
            (me, format!("message {index} from me: all good"))
        };
        let item_id = post(world, &direct, from, text(&body), now_us, minutes)?;
        first_question.get_or_insert(item_id);
        minutes -= 10;
    }
    let kinds = [
        (
            alice,
            json!({"item_type": "link", "text": "menu is here https://example.org/menu"}),
        ),
        (alice, json!({"item_type": "media", "media_type": 1})),
        (me, json!({"item_type": "media", "media_type": 2})),
        (
            alice,
            json!({"item_type": "voice_media", "duration_ms": 4521}),
        ),
        (me, json!({"item_type": "animated_media"})),
        (alice, json!({"item_type": "like"})),
        (alice, json!({"item_type": "media_share"})),
        (alice, json!({"item_type": "xma_media_share"})),
        (alice, json!({"item_type": "placeholder"})),
        (alice, json!({"item_type": "clip"})),
        (alice, json!({"item_type": "story_share"})),
    ];
    for (from, kind) in kinds {
        post(world, &direct, from, kind, now_us, minutes)?;
        minutes -= 10;
    }
    let question = post(
        world,
        &direct,
        alice,
        text("are we still on for saturday?"),
        now_us,
        minutes,
    )?;
    minutes -= 5;
    world.append_item_at(
        &direct,
        me,
        text("yes, still on 👍"),
        None,
        Some(question),
        Some(now_us - minutes * MINUTE_US),
    )?;
    world.react(&direct, question, me, Some("❤️".into()), None)?;
    if let Some(first) = first_question {
        world.react(&direct, first, alice, Some("😂".into()), None)?;
    }
    minutes -= 5;
    post(
        world,
        &direct,
        alice,
        text("see you there 🎉"),
        now_us,
        minutes,
    )?;
    post(
        world,
        &direct,
        alice,
        text("bring the board games!"),
        now_us,
        3,
    )?;

    let group = world.create_thread_at(
        me,
        &[alice, bob, carol],
        Some("Weekend plans"),
        now_us - 180 * MINUTE_US,
    )?;
    post(
        world,
        &group,
        alice,
        text("who is in for a hike?"),
        now_us,
        120,
    )?;
    post(world, &group, bob, text("me!"), now_us, 110)?;
    post(
        world,
        &group,
        carol,
        json!({"item_type": "media", "media_type": 1}),
        now_us,
        100,
    )?;
    post(world, &group, me, text("count me in"), now_us, 20)?;

    let bob_dm = world.create_thread(me, &[bob], None)?;
    post(
        world,
        &bob_dm,
        bob,
        text("did you get my package?"),
        now_us,
        300,
    )?;
    post(world, &bob_dm, me, text("yes, thanks!"), now_us, 290)?;

    let carol_dm = world.create_thread(me, &[carol], None)?;
    post(
        world,
        &carol_dm,
        carol,
        text("new song out tomorrow"),
        now_us,
        900,
    )?;
    world.update_member_state(&carol_dm, me, |state| state.muted = true)?;

    let erin_dm = world.create_thread(erin, &[me], None)?;
    post(
        world,
        &erin_dm,
        erin,
        text("long time no see"),
        now_us,
        2000,
    )?;
    let frank_dm = world.create_thread(frank, &[me], None)?;
    post(
        world,
        &frank_dm,
        frank,
        text("happy birthday!"),
        now_us,
        3000,
    )?;

    let pending = world.create_thread(dave, &[me], None)?;
    post(
        world,
        &pending,
        dave,
        text("hi, I found you through a friend"),
        now_us,
        60,
    )?;
    world.set_pending(&pending, me, true)?;

    let mut thread_ids = vec![
        direct.clone(),
        group.clone(),
        bob_dm,
        carol_dm,
        erin_dm,
        frank_dm,
        pending.clone(),
    ];
    thread_ids.sort_by_key(|thread_id| {
        std::cmp::Reverse(
            world
                .thread(thread_id)
                .map_or(0, |thread| thread.last_activity_us()),
        )
    });
    Ok(DemoSeed {
        demo,
        friend,
        contacts,
        direct_thread_id: direct,
        group_thread_id: group,
        pending_thread_id: pending,
        thread_ids,
    })
}
