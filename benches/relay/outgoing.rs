//! Matrix -> Instagram: alice's texts, sent through Synapse's client API and
//! carried by the bridge's outbox to the simulator's threads, against a bare
//! Instagram client posting the same sends to the simulator as alice's
//! session would (the app's `broadcast/text/` form, one sequential sender per
//! thread, threads in parallel), and the bridge's `relay_latency_out` events.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::baseline::{spread, urlencode};
use super::world::{Bodies, OutLatency, World};

/// The app's User-Agent and id (connectors/instagram.yaml `headers`): the
/// simulator refuses any other client.
const APP_USER_AGENT: &str = "Instagram 275.0.0.27.98 Android (33/13; 420dpi; 1080x2400; Google/google; Pixel 7; panther; tensor; en_US; 458229258)";
const APP_ID: &str = "567067343352427";
/// The bare client's device id (`_uuid`).
const DEVICE_UUID: &str = "9b2f6c1e-5d3a-4e8b-8f0a-3c5d7e9f1a2b";
/// The path of a text send, relative to the API base.
const SEND_TEXT: &str = "direct_v2/threads/broadcast/text/";
/// First `client_context` of the bare client's sends: 19 decimal digits, as
/// Instagram's apps send, away from the range the bridge derives its own in.
const BARE_CLIENT_CONTEXT: u64 = 6_900_000_000_000_000_000;

/// What the bridge's burst measured.
pub struct Bridged {
    /// From the first Matrix send to the last item present in the threads.
    pub elapsed: Duration,
    /// From the first Matrix send to the homeserver's answer to the last one.
    pub matrix_sends: Duration,
    pub latencies: Vec<OutLatency>,
    pub bodies: Bodies,
}

/// What the bare client took, each send's time to Instagram's answer (µs),
/// the bodies each thread must now hold and the items it created.
pub struct Bare {
    pub elapsed: Duration,
    pub send_us: Vec<u64>,
    pub bodies: Bodies,
    pub items: HashSet<String>,
}

/// alice sends `messages` texts (bodies starting with `prefix`) into her
/// portals, one sequential sender per room, rooms in parallel; waits until
/// every one is in its Instagram thread and the bridge logged it.
pub async fn through_bridge(
    world: &mut World,
    messages: usize,
    prefix: &str,
) -> Result<Bridged, String> {
    let bodies = spread(world.chats.len(), messages, prefix);
    let sends_before = world.fixture.sim.request_count("POST", SEND_TEXT);
    let mut senders = JoinSet::new();
    let started = Instant::now();
    for (chat, room_bodies) in world.chats.iter().zip(&bodies) {
        let http = world.http.clone();
        let token = world.fixture.user.access_token().to_owned();
        let base = send_url(world, &chat.room_id);
        let room_bodies = room_bodies.clone();
        senders.spawn(async move {
            let mut event_ids = Vec::with_capacity(room_bodies.len());
            for body in &room_bodies {
                event_ids.push(matrix_send(&http, &token, &base, body).await?);
            }
            Ok::<Vec<String>, String>(event_ids)
        });
    }
    let mut event_ids = HashSet::new();
    while let Some(sent) = senders.join_next().await {
        event_ids.extend(sent.map_err(|e| format!("a Matrix sender panicked: {e}"))??);
    }
    let matrix_sends = started.elapsed();
    let limit = wait_limit(messages);
    let done = await_threads(world, &bodies, sends_before + messages, limit).await?;
    let latencies = world.await_outgoing(&event_ids, limit).await?;
    Ok(Bridged {
        elapsed: done - started,
        matrix_sends,
        latencies,
        bodies,
    })
}

/// alice sends `messages` texts one at a time, each once the bridge carried
/// the previous one out, the rooms in turn.
pub async fn paced(world: &mut World, messages: usize, prefix: &str) -> Result<Bridged, String> {
    let bodies = spread(world.chats.len(), messages, prefix);
    let token = world.fixture.user.access_token().to_owned();
    let mut latencies = Vec::with_capacity(messages);
    let mut matrix_sends = Duration::ZERO;
    let started = Instant::now();
    for index in 0..messages {
        let chat_index = index % world.chats.len();
        let body = &bodies[chat_index][index / world.chats.len()];
        let base = send_url(world, &world.chats[chat_index].room_id);
        let sending = Instant::now();
        let event_id = matrix_send(&world.http, &token, &base, body).await?;
        matrix_sends += sending.elapsed();
        latencies.extend(
            world
                .await_outgoing(&HashSet::from([event_id]), wait_limit(1))
                .await?,
        );
    }
    let sends = world.fixture.sim.request_count("POST", SEND_TEXT);
    let done = await_threads(world, &bodies, sends, wait_limit(messages)).await?;
    Ok(Bridged {
        elapsed: done - started,
        matrix_sends,
        latencies,
        bodies,
    })
}

/// The bare client: `messages` sends straight to the simulator as alice's
/// session, one sequential sender per thread, threads in parallel.
pub async fn bare(world: &World, messages: usize, prefix: &str) -> Result<Bare, String> {
    let bodies = spread(world.chats.len(), messages, prefix);
    let client = BareClient::new(world)?;
    let mut senders = JoinSet::new();
    let started = Instant::now();
    for (index, (chat, thread_bodies)) in world.chats.iter().zip(&bodies).enumerate() {
        let client = client.clone();
        let thread_id = chat.thread_id.clone();
        let thread_bodies = thread_bodies.clone();
        // Each thread's sends draw their client_contexts from their own range.
        let first_context = BARE_CLIENT_CONTEXT + (index as u64) * 1_000_000;
        senders.spawn(async move {
            let mut sent = Vec::with_capacity(thread_bodies.len());
            for (n, body) in thread_bodies.iter().enumerate() {
                sent.push(
                    client
                        .send(&thread_id, body, first_context + n as u64)
                        .await?,
                );
            }
            Ok::<Vec<(String, u64)>, String>(sent)
        });
    }
    let mut send_us = Vec::with_capacity(messages);
    let mut items = HashSet::new();
    while let Some(sent) = senders.join_next().await {
        for (item, micros) in sent.map_err(|e| format!("a bare sender panicked: {e}"))?? {
            items.insert(item);
            send_us.push(micros);
        }
    }
    Ok(Bare {
        elapsed: started.elapsed(),
        send_us,
        bodies,
        items,
    })
}

/// The bare client, one send at a time, the threads in turn: what a send
/// costs when nothing else loads the simulator.
pub async fn bare_one_at_a_time(
    world: &World,
    messages: usize,
    prefix: &str,
) -> Result<Bare, String> {
    let bodies = spread(world.chats.len(), messages, prefix);
    let client = BareClient::new(world)?;
    let mut send_us = Vec::with_capacity(messages);
    let mut items = HashSet::new();
    let started = Instant::now();
    for index in 0..messages {
        let chat_index = index % world.chats.len();
        let body = &bodies[chat_index][index / world.chats.len()];
        let context = BARE_CLIENT_CONTEXT + 500_000_000 + index as u64;
        let (item, micros) = client
            .send(&world.chats[chat_index].thread_id, body, context)
            .await?;
        items.insert(item);
        send_us.push(micros);
    }
    Ok(Bare {
        elapsed: started.elapsed(),
        send_us,
        bodies,
        items,
    })
}

/// Checks that every chat's thread holds its bodies, sent by alice, exactly
/// once and in order (among the items that carry the same prefix).
pub fn verify_threads(world: &World, bodies: &Bodies, who: &str) -> Result<(), String> {
    match thread_progress(world, bodies)? {
        Progress::Complete => Ok(()),
        Progress::Wrong(message) => Err(format!("{message} ({who})")),
        Progress::Partial(message) => Err(format!("{message} ({who}): messages are missing")),
    }
}

/// How far the threads are from holding what was sent.
enum Progress {
    Complete,
    /// Every thread holds a beginning of its bodies; the text says which lags.
    Partial(String),
    /// A thread holds something else: a message twice, out of order, or one too many.
    Wrong(String),
}

fn thread_progress(world: &World, bodies: &Bodies) -> Result<Progress, String> {
    let alice = world.fixture.me.pk;
    let mut partial = None;
    for (chat, wanted) in world.chats.iter().zip(bodies) {
        let Some(prefix) = wanted.first().and_then(|b| b.split(' ').next()) else {
            continue;
        };
        let prefix = format!("{prefix} ");
        let snapshot = world
            .fixture
            .sim
            .thread_snapshot(&chat.thread_id)
            .map_err(|e| format!("reading thread {}: {e}", chat.thread_id))?;
        // The snapshot lists items newest first.
        let mut found: Vec<&str> = snapshot["items"]
            .as_array()
            .ok_or_else(|| format!("thread {} has no items list", chat.thread_id))?
            .iter()
            .filter(|item| item["user_id"].as_u64() == Some(alice))
            .filter_map(|item| item["text"].as_str())
            .filter(|text| text.starts_with(&prefix))
            .collect();
        found.reverse();
        let begins_right =
            found.len() <= wanted.len() && found.iter().zip(wanted).all(|(a, b)| a == b);
        if !begins_right {
            return Ok(Progress::Wrong(format!(
                "thread {} does not hold alice's messages once each and in order: {} wanted, {} \
                 found; first found: {:?}",
                chat.thread_id,
                wanted.len(),
                found.len(),
                found.iter().take(5).collect::<Vec<_>>()
            )));
        }
        if found.len() < wanted.len() && partial.is_none() {
            partial = Some(format!(
                "thread {} holds {} of {} messages",
                chat.thread_id,
                found.len(),
                wanted.len()
            ));
        }
    }
    Ok(partial.map_or(Progress::Complete, Progress::Partial))
}

/// Waits until the threads hold every body (checked once the simulator has
/// seen `sends` text sends, a cheap counter); returns when they did. Fails at
/// once when a thread holds something else.
async fn await_threads(
    world: &World,
    bodies: &Bodies,
    sends: usize,
    limit: Duration,
) -> Result<Instant, String> {
    let started = Instant::now();
    loop {
        if world.fixture.sim.request_count("POST", SEND_TEXT) >= sends {
            match thread_progress(world, bodies)? {
                Progress::Complete => return Ok(Instant::now()),
                Progress::Wrong(message) => return Err(message),
                Progress::Partial(message) if started.elapsed() > limit => {
                    return Err(format!(
                        "{message} after {limit:?}; the bridge lost or stalled on the others"
                    ))
                }
                Progress::Partial(_) => {}
            }
        } else if started.elapsed() > limit {
            let progress = match thread_progress(world, bodies)? {
                Progress::Partial(message) | Progress::Wrong(message) => message,
                Progress::Complete => "every thread is complete".to_owned(),
            };
            return Err(format!(
                "the simulator saw fewer text sends than messages within {limit:?}: {progress}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn wait_limit(messages: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(200) * messages as u32
}

fn send_url(world: &World, room_id: &str) -> String {
    format!(
        "{}/_matrix/client/v3/rooms/{}/send/m.room.message",
        world.homeserver,
        urlencode(room_id)
    )
}

/// Sends `body` as alice through the client API; returns the event id.
async fn matrix_send(
    http: &reqwest::Client,
    token: &str,
    base: &str,
    body: &str,
) -> Result<String, String> {
    let txn: String = body.chars().filter(char::is_ascii_alphanumeric).collect();
    let response = http
        .put(format!("{base}/{txn}"))
        .bearer_auth(token)
        .json(&json!({"msgtype": "m.text", "body": body}))
        .send()
        .await
        .map_err(|e| format!("alice sending {body:?}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "alice sending {body:?}: homeserver answered {}",
            response.status()
        ));
    }
    let sent: Value = response
        .json()
        .await
        .map_err(|e| format!("alice sending {body:?}: {e}"))?;
    sent["event_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("alice sending {body:?}: no event_id in the answer"))
}

/// alice's Instagram session as a plain HTTP client.
#[derive(Clone)]
struct BareClient {
    http: reqwest::Client,
    url: String,
    cookie: String,
    csrftoken: String,
}

impl BareClient {
    fn new(world: &World) -> Result<BareClient, String> {
        let cookies = &world.fixture.me.cookies;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "user-agent",
            APP_USER_AGENT.parse().map_err(|_| "bad User-Agent")?,
        );
        headers.insert("x-ig-app-id", APP_ID.parse().map_err(|_| "bad app id")?);
        Ok(BareClient {
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .map_err(|e| format!("building the bare Instagram client: {e}"))?,
            url: format!("{}/{SEND_TEXT}", world.fixture.sim.api_base_url()),
            cookie: cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; "),
            csrftoken: cookies.get("csrftoken").cloned().unwrap_or_default(),
        })
    }

    /// Sends `body` to the thread; returns the new item's id and the
    /// microseconds to Instagram's answer.
    async fn send(
        &self,
        thread_id: &str,
        body: &str,
        client_context: u64,
    ) -> Result<(String, u64), String> {
        let context = client_context.to_string();
        let threads = format!("[{thread_id}]");
        let form = [
            ("action", "send_item"),
            ("thread_ids", threads.as_str()),
            ("text", body),
            ("send_attribution", "direct_thread"),
            ("is_shh_mode", "0"),
            ("client_context", context.as_str()),
            ("mutation_token", context.as_str()),
            ("offline_threading_id", context.as_str()),
            ("_uuid", DEVICE_UUID),
        ];
        let sent = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .header("cookie", &self.cookie)
            .header("x-csrftoken", &self.csrftoken)
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("bare Instagram send to {thread_id}: {e}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("bare Instagram send to {thread_id}: {e}"))?;
        let micros = sent.elapsed().as_micros() as u64;
        if !status.is_success() || answer["status"] != "ok" {
            return Err(format!(
                "bare Instagram send to {thread_id}: Instagram answered {status} {answer}"
            ));
        }
        let item = answer["payload"]["item_id"]
            .as_str()
            .ok_or_else(|| format!("bare Instagram send to {thread_id}: no item_id in {answer}"))?;
        Ok((item.to_owned(), micros))
    }
}
