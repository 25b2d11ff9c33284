//! The baseline: the same number of messages sent into the same rooms as the
//! same puppets by a bare appservice client (plain `PUT
//! /rooms/{room}/send/m.room.message/{txn}?user_id=<puppet>&ts=<ms>` with the
//! as_token), one sequential sender per room, rooms in parallel, as the
//! bridge relays. The events are the bridge's: the same content (with its
//! empty `m.mentions`, which keeps Synapse's legacy keyword mentions from
//! firing on bridged text and costs Synapse a schema validation per event)
//! and an original timestamp.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use super::world::{Bodies, PollBatch, World};

/// What the bare client took, each send's time to the homeserver's answer
/// (µs), and the bodies each room must now hold.
pub struct Bare {
    pub elapsed: Duration,
    pub send_us: Vec<u64>,
    pub bodies: Bodies,
}

/// `messages` bodies starting with `prefix`, spread over the chats round robin.
pub fn spread(chats: usize, messages: usize, prefix: &str) -> Bodies {
    let mut bodies: Bodies = vec![Vec::new(); chats];
    for index in 0..messages {
        let chat = index % chats;
        let body = format!("{prefix} t{chat} m{}", bodies[chat].len());
        bodies[chat].push(body);
    }
    bodies
}

/// One sequential sender per room, rooms in parallel; bodies start with `prefix`.
pub async fn run(world: &World, messages: usize, prefix: &str) -> Result<Bare, String> {
    let bodies = spread(world.chats.len(), messages, prefix);
    let started = Instant::now();
    let send_us = rooms_in_parallel(world, bodies.iter().cloned().enumerate()).await?;
    Ok(Bare {
        elapsed: started.elapsed(),
        send_us,
        bodies,
    })
}

/// Sends each room's bodies (`(chat index, bodies)`) in turn, the rooms in
/// parallel; returns each send's time to the homeserver's answer (µs).
async fn rooms_in_parallel(
    world: &World,
    rooms: impl Iterator<Item = (usize, Vec<String>)>,
) -> Result<Vec<u64>, String> {
    let mut senders = JoinSet::new();
    for (chat_index, room_bodies) in rooms {
        let chat = &world.chats[chat_index];
        let (http, token) = (world.http.clone(), world.as_token.clone());
        let (base, puppet) = (send_url(world, &chat.room_id), chat.puppet.clone());
        senders.spawn(async move {
            let mut send_us = Vec::with_capacity(room_bodies.len());
            for body in &room_bodies {
                send_us.push(send(&http, &token, &base, &puppet, body).await?);
            }
            Ok::<Vec<u64>, String>(send_us)
        });
    }
    let mut send_us = Vec::new();
    while let Some(sent) = senders.join_next().await {
        send_us.extend(sent.map_err(|e| format!("a bare sender panicked: {e}"))??);
    }
    Ok(send_us)
}

/// One message at a time, the rooms in turn: what a send costs the
/// homeserver when nothing else loads it.
pub async fn one_at_a_time(world: &World, messages: usize) -> Result<Bare, String> {
    let bodies = spread(world.chats.len(), messages, "solo");
    let mut send_us = Vec::with_capacity(messages);
    let started = Instant::now();
    for index in 0..messages {
        let chat_index = index % world.chats.len();
        let chat = &world.chats[chat_index];
        let body = &bodies[chat_index][index / world.chats.len()];
        let base = send_url(world, &chat.room_id);
        send_us.push(send(&world.http, &world.as_token, &base, &chat.puppet, body).await?);
    }
    Ok(Bare {
        elapsed: started.elapsed(),
        send_us,
        bodies,
    })
}

/// The paced run's sends as the bare client makes them: each poll's items
/// sent at once, rooms in parallel and a room's items in turn (as the
/// portals' workers send them), each batch at its poll's time after the
/// first (so that the homeserver's periodic work meets both runs alike);
/// what a send costs when the homeserver gets the same sends at the same
/// times as from the bridge.
pub async fn in_batches(world: &World, batches: &[PollBatch]) -> Result<Bare, String> {
    let mut bodies: Bodies = vec![Vec::new(); world.chats.len()];
    let mut send_us = Vec::new();
    let started = Instant::now();
    for batch in batches {
        tokio::time::sleep_until((started + batch.after).into()).await;
        let mut by_room: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for &chat_index in &batch.chats {
            let body = format!("batch t{chat_index} m{}", bodies[chat_index].len());
            bodies[chat_index].push(body.clone());
            by_room.entry(chat_index).or_default().push(body);
        }
        send_us.extend(rooms_in_parallel(world, by_room.into_iter()).await?);
    }
    Ok(Bare {
        elapsed: started.elapsed(),
        send_us,
        bodies,
    })
}

fn send_url(world: &World, room_id: &str) -> String {
    format!(
        "{}/_matrix/client/v3/rooms/{}/send/m.room.message",
        world.homeserver,
        urlencode(room_id)
    )
}

/// Sends `body` as `puppet`; returns the microseconds to the homeserver's answer.
async fn send(
    http: &reqwest::Client,
    token: &str,
    base: &str,
    puppet: &str,
    body: &str,
) -> Result<u64, String> {
    let sent = Instant::now();
    let txn: String = body.chars().filter(char::is_ascii_alphanumeric).collect();
    let url = format!("{base}/{}-{txn}", puppet_tag(puppet));
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_millis())
        .to_string();
    let response = http
        .put(url)
        .query(&[("user_id", puppet), ("ts", &ts)])
        .bearer_auth(token)
        .json(&json!({"msgtype": "m.text", "body": body, "m.mentions": {}}))
        .send()
        .await
        .map_err(|e| format!("bare send as {puppet}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "bare send as {puppet}: homeserver answered {}",
            response.status()
        ));
    }
    Ok(sent.elapsed().as_micros() as u64)
}

/// A transaction-id-safe form of a puppet's user id.
fn puppet_tag(puppet: &str) -> String {
    puppet.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Percent-encodes a room id for a path segment.
pub fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
