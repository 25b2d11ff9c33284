//! The benchmark's world: the relay test fixture (Synapse, the simulator,
//! alice's stored Instagram login) with the bridge as a separate process,
//! alice's chats with one friend each, a second, idle login, and what the
//! benchmark reads back: the bridge's `relay_latency` and `relay_latency_out`
//! log events, the rooms' history, the simulator's threads and request log
//! and the bridge's memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use instagram_sim::{Account, Settings};
use matrix_instagram::bridge::instagram::Logins;
use matrix_instagram::connector::auth::Credentials;
use matrix_instagram::secrets::{CredentialCipher, CredentialKey};
use matrix_instagram::store::Store;
use serde_json::Value;
use serde_norway::Value as Yaml;

use super::appservice::harness::bridge::BINARY;
use super::appservice::harness::client::MatrixClient;
use super::appservice::harness::relay::RelayFixture;
use super::appservice::harness::{tail, Backend, HomeserverDatabase};
use super::stats::{LoginRequests, RequestRates};
use super::usage::Usage;
use super::Options;

/// Direct chats of the idle login.
pub const IDLE_THREADS: usize = 2;

/// Portals created per step while growing to the wanted count: the poller
/// reads one inbox page (20 threads) per poll after the first sync.
const PORTAL_BATCH: usize = 15;

/// The polling defaults the idle figure depends on (`config.rs`).
const ACTIVE_INTERVAL: Duration = Duration::from_secs(3);
const IDLE_INTERVAL: Duration = Duration::from_secs(60);
const ACTIVE_WINDOW: Duration = Duration::from_secs(300);
const JITTER: f64 = 0.2;

/// How often the busy login's chats get a message while it is observed.
const BUSY_PACE: Duration = Duration::from_secs(5);

/// One of alice's chats: a friend, the thread, its portal and the friend's puppet.
pub struct Chat {
    pub friend: Account,
    pub thread_id: String,
    pub room_id: String,
    pub puppet: String,
}

/// Bodies each chat's room must hold, in order, indexed like [`World::chats`].
pub type Bodies = Vec<Vec<String>>;

/// One `relay_latency` event of the bridge.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub since_poll_us: u64,
    /// Of `since_poll_us`: waiting for the portal's worker to take the update up,
    pub queued_us: u64,
    /// the update's preparation (portal, puppets, thread state),
    pub prepared_us: u64,
    /// the update's earlier items,
    pub earlier_us: u64,
    /// and the item's own relaying.
    pub relay_us: u64,
    /// Of `since_poll_us`, the time the worker waited for the homeserver's
    /// answers (any request, since it took the update up).
    pub homeserver_us: u64,
    /// Of `relay_us`, the time it waited for the homeserver's answers.
    pub relay_homeserver_us: u64,
    /// When the bridge logged the event (the item's relaying was done), Unix microseconds.
    pub logged_at_us: i64,
}

/// One `relay_latency_out` event of the bridge: a Matrix event carried out.
#[derive(Debug, Clone, Copy)]
pub struct OutLatency {
    /// From the transaction handler accepting the event to Instagram's answer.
    pub since_accepted_us: u64,
    /// Of `since_accepted_us`, the time Instagram took to answer the send.
    pub instagram_us: u64,
}

/// A latency event of the bridge's log.
enum LogEvent {
    /// An Instagram item relayed to Matrix, by item id.
    In(String, Latency),
    /// A Matrix event carried out on Instagram, by event id.
    Out(String, OutLatency),
}

/// What relaying a burst measured.
pub struct Burst {
    pub elapsed: Duration,
    pub latencies: Vec<Latency>,
    /// The chat of each latency event's item (indexes of [`World::chats`]).
    pub chats: Vec<usize>,
    pub bodies: Bodies,
}

impl Burst {
    /// The items each poll response carried, poll by poll: the items whose
    /// responses arrived within `window` of each other (one poll's thread
    /// fetches) form one batch, which arrived `after` the first.
    pub fn batches(&self, window: Duration) -> Vec<PollBatch> {
        let mut arrivals: Vec<(i64, usize)> = self
            .latencies
            .iter()
            .zip(&self.chats)
            .map(|(l, chat)| (l.logged_at_us - l.since_poll_us as i64, *chat))
            .collect();
        arrivals.sort_unstable();
        let first = arrivals.first().map_or(0, |(at, _)| *at);
        let mut batches: Vec<PollBatch> = Vec::new();
        let mut last = None;
        for (at, chat) in arrivals {
            match (last, batches.last_mut()) {
                (Some(previous), Some(batch)) if at - previous <= window.as_micros() as i64 => {
                    batch.chats.push(chat)
                }
                _ => batches.push(PollBatch {
                    after: Duration::from_micros((at - first).max(0) as u64),
                    chats: vec![chat],
                }),
            }
            last = Some(at);
        }
        batches
    }

    /// From the first poll response that carried an item of the burst to the
    /// last item relayed: the relaying alone, without the wait for that poll
    /// (which the polling interval decides).
    pub fn relaying(&self) -> Duration {
        let first_seen = self
            .latencies
            .iter()
            .map(|l| l.logged_at_us - l.since_poll_us as i64)
            .min();
        let last_done = self.latencies.iter().map(|l| l.logged_at_us).max();
        match (first_seen, last_done) {
            (Some(seen), Some(done)) => Duration::from_micros((done - seen).max(0) as u64),
            _ => Duration::ZERO,
        }
    }
}

/// The items one poll response carried: their chats (indexes of
/// [`World::chats`]), and when it arrived after the run's first.
pub struct PollBatch {
    pub after: Duration,
    pub chats: Vec<usize>,
}

/// The bridge's memory.
pub struct Rss {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub struct World {
    pub fixture: RelayFixture,
    pub chats: Vec<Chat>,
    idle: Account,
    idle_login: String,
    idle_activity: Instant,
    pid: u32,
    log: LogReader,
    pub homeserver: String,
    pub as_token: String,
    pub http: reqwest::Client,
    friends: usize,
}

fn fail<E: std::fmt::Display>(doing: &str) -> impl Fn(E) -> String + '_ {
    move |error| format!("{doing}: {error}")
}

impl World {
    /// Synapse, the simulator, alice's login with `options.threads` chats
    /// (one opening message each), the idle login, and the bridge process,
    /// once every chat has its portal and opening message.
    pub async fn start(options: &Options) -> Result<World, String> {
        // The homeserver on PostgreSQL, as deployed: on SQLite its commit
        // per event decides how both runs' sends are answered.
        let fixture =
            RelayFixture::prepare_on(Backend::Sqlite, HomeserverDatabase::Postgres, "alice.bench")
                .await;
        // alice's session sends far more than Instagram's spam limit allows
        // (feedback_required past `send_limit_per_minute`), and with the bare
        // client's sends on the same session it makes more requests a minute
        // than the session budget (`session_requests_per_window`) lets through
        // before 429s escalate to a challenge: the bench measures the relay,
        // not the limits. For the same reason `RelayFixture` lifts the
        // bridge's own request budget (`safety:`), which would pace her sends to
        // 20 a minute.
        fixture.sim.set_settings(Settings {
            send_limit_per_minute: 0,
            session_requests_per_window: 0,
            ..fixture.sim.settings()
        });
        // JSON logs to read the latency events; the bridge's default level otherwise.
        for (key, value) in [
            ("format", "json"),
            ("level", "info,relay_latency=debug,relay_latency_out=debug"),
        ] {
            fixture
                .e2e
                .config
                .set(&["logging", key], Yaml::from(value))
                .map_err(|e| e.to_string())?;
        }
        let config = &fixture.e2e.config;
        let as_token = config
            .get(&["appservice", "as_token"])
            .map_err(|e| e.to_string())?
            .as_str()
            .ok_or("appservice.as_token is not a string")?
            .to_owned();
        let homeserver = fixture.e2e.synapse.url();

        let mut world = World {
            idle: fixture
                .sim
                .create_account("idle.bench", "Idle Login")
                .map_err(|e| e.to_string())?,
            idle_login: String::new(),
            idle_activity: Instant::now(),
            fixture,
            chats: Vec::new(),
            pid: 0,
            log: LogReader::default(),
            homeserver,
            as_token,
            http: reqwest::Client::new(),
            friends: 0,
        };
        let opening = world.add_chats(options.threads)?;
        world.add_idle_login().await?;

        world.fixture.e2e.start_bridge().await;
        let bridge = world.fixture.e2e.bridge.as_ref().ok_or("no bridge")?;
        world.log.path = bridge.log_path.clone();
        world.pid = bridge_pid(&world.fixture.e2e.config.config_path)?;
        world.await_items(&opening, setup_wait()).await?;
        world.find_portals().await?;
        world.await_background_updates().await?;
        Ok(world)
    }

    /// Waits until the homeserver has no database background updates left
    /// (a new database has a series of them): whichever run came first
    /// would otherwise share the homeserver with them.
    async fn await_background_updates(&self) -> Result<(), String> {
        let admin = MatrixClient::register_as(&self.fixture.e2e.synapse, "benchadmin", true)
            .await
            .map_err(fail("registering the homeserver's admin"))?;
        let url = format!(
            "{}/_synapse/admin/v1/background_updates/status",
            self.homeserver
        );
        let started = Instant::now();
        loop {
            let status: Value = self
                .http
                .get(&url)
                .bearer_auth(admin.access_token())
                .send()
                .await
                .map_err(fail("asking for the background updates"))?
                .json()
                .await
                .map_err(fail("reading the background updates"))?;
            let running = status["current_updates"]
                .as_object()
                .is_some_and(|updates| !updates.is_empty());
            if !running {
                return Ok(());
            }
            if started.elapsed() > setup_wait() {
                return Err(format!(
                    "the homeserver's background updates still run: {status}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// New chats of alice with new friends, each with one message; returns the item ids.
    fn add_chats(&mut self, count: usize) -> Result<HashSet<String>, String> {
        let sim = &self.fixture.sim;
        let mut items = HashSet::new();
        for _ in 0..count {
            self.friends += 1;
            let n = self.friends;
            let friend = sim
                .create_account(&format!("friend.{n}"), &format!("Friend {n}"))
                .map_err(|e| e.to_string())?;
            let thread_id = sim
                .create_thread(self.fixture.me.pk, &[friend.pk], None)
                .map_err(|e| e.to_string())?;
            let item = sim
                .post_text(&thread_id, friend.pk, &format!("hello from friend {n}"))
                .map_err(|e| e.to_string())?;
            items.insert(item);
            self.chats.push(Chat {
                friend,
                thread_id,
                room_id: String::new(),
                puppet: String::new(),
            });
        }
        Ok(items)
    }

    /// A second Matrix user whose stored login has quiet direct chats.
    async fn add_idle_login(&mut self) -> Result<(), String> {
        let sim = &self.fixture.sim;
        for n in 0..IDLE_THREADS {
            let other = sim
                .create_account(&format!("idle.friend.{n}"), "Idle Friend")
                .map_err(|e| e.to_string())?;
            let thread_id = sim
                .create_thread(self.idle.pk, &[other.pk], None)
                .map_err(|e| e.to_string())?;
            sim.post_text(&thread_id, other.pk, "long time no see")
                .map_err(|e| e.to_string())?;
        }
        self.idle_activity = Instant::now();
        let user = self.fixture.e2e.user("idler").await;
        let key = self
            .fixture
            .e2e
            .config
            .get(&["encryption", "key"])
            .map_err(|e| e.to_string())?;
        let key = CredentialKey::from_base64(key.as_str().ok_or("encryption.key is not a string")?)
            .map_err(|e| e.to_string())?;
        Logins::new(self.store().await?, CredentialCipher::new(&key))
            .save_new(
                &user.user_id,
                &self.idle.pk.to_string(),
                Some(self.idle.username.clone()),
                &Credentials::from_cookies(self.idle.cookies.clone()),
            )
            .await
            .map(|login| self.idle_login = login.id)
            .map_err(|e| format!("storing the idle login: {e}"))
    }

    async fn store(&self) -> Result<Store, String> {
        Store::connect(self.fixture.e2e.database.url())
            .await
            .map_err(|e| format!("opening the bridge's database: {e}"))
    }

    /// Fills in the room and puppet of chats that have none yet.
    async fn find_portals(&mut self) -> Result<(), String> {
        let store = self.store().await?;
        let alice = self.fixture.login_id.clone();
        for chat in self.chats.iter_mut().filter(|chat| chat.room_id.is_empty()) {
            let portal = store
                .portal_by_thread(&alice, &chat.thread_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no portal for thread {}", chat.thread_id))?;
            let puppet = store
                .puppet(&chat.friend.pk.to_string())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no puppet for {}", chat.friend.username))?;
            chat.room_id = portal.room_id;
            chat.puppet = puppet.mxid;
        }
        Ok(())
    }

    /// Waits until the bridge logged every item of `items` as relayed;
    /// returns their latency events and when the last one was seen.
    async fn await_items(
        &mut self,
        items: &HashSet<String>,
        limit: Duration,
    ) -> Result<(HashMap<String, Latency>, Instant), String> {
        let started = Instant::now();
        let mut found: HashMap<String, Latency> = HashMap::new();
        loop {
            for event in self.log.new_events()? {
                let LogEvent::In(item, latency) = event else {
                    continue;
                };
                if items.contains(&item) {
                    found.entry(item).or_insert(latency);
                }
            }
            if found.len() == items.len() {
                return Ok((found, Instant::now()));
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "the bridge relayed {} of {} messages within {limit:?}; the relay lost or \
                     stalled on the others",
                    found.len(),
                    items.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the bridge logged every Matrix event of `events` as
    /// carried out on Instagram; returns their latency events.
    pub async fn await_outgoing(
        &mut self,
        events: &HashSet<String>,
        limit: Duration,
    ) -> Result<Vec<OutLatency>, String> {
        let started = Instant::now();
        let mut found: HashMap<String, OutLatency> = HashMap::new();
        loop {
            for event in self.log.new_events()? {
                let LogEvent::Out(event_id, latency) = event else {
                    continue;
                };
                if events.contains(&event_id) {
                    found.entry(event_id).or_insert(latency);
                }
            }
            if found.len() == events.len() {
                return Ok(found.into_values().collect());
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "the bridge carried {} of {} Matrix events out within {limit:?}; the outbox \
                     lost or stalled on the others",
                    found.len(),
                    events.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the bridge relayed the Instagram items `items` (whatever
    /// their sender).
    pub async fn await_relayed(&mut self, items: &HashSet<String>) -> Result<(), String> {
        let limit = setup_wait() + Duration::from_millis(200) * items.len() as u32;
        self.await_items(items, limit).await.map(|_| ())
    }

    /// alice joins the portals of her chats (the bridge invited her).
    pub async fn join_portals(&self) -> Result<(), String> {
        for chat in &self.chats {
            if self.fixture.user.join(&chat.room_id).await.is_err() {
                self.fixture.wait_for_invite(&chat.room_id).await;
                self.fixture
                    .user
                    .join(&chat.room_id)
                    .await
                    .map_err(fail("alice joining a portal"))?;
            }
        }
        Ok(())
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the bridge process, so that
    /// it does not relay what a bare client sends while that is measured.
    pub fn signal_bridge(&self, signal: &str) -> Result<(), String> {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .map_err(fail("running kill"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {} failed: {status}", self.pid))
        }
    }

    /// Posts `messages` across alice's chats (round robin, from each chat's
    /// friend, bodies starting with `prefix`), all at once or one every
    /// `pace`, and waits for the bridge to relay them all.
    pub async fn relay(
        &mut self,
        messages: usize,
        prefix: &str,
        pace: Option<Duration>,
    ) -> Result<Burst, String> {
        let mut bodies: Bodies = vec![Vec::new(); self.chats.len()];
        let mut items = HashSet::new();
        let mut chat_of = HashMap::new();
        let started = Instant::now();
        for index in 0..messages {
            if let Some(pace) = pace.filter(|_| index > 0) {
                tokio::time::sleep(pace).await;
            }
            let chat_index = index % self.chats.len();
            let chat = &self.chats[chat_index];
            let body = format!("{prefix} t{chat_index} m{}", bodies[chat_index].len());
            let item = self
                .fixture
                .sim
                .post_text(&chat.thread_id, chat.friend.pk, &body)
                .map_err(|e| e.to_string())?;
            chat_of.insert(item.clone(), chat_index);
            items.insert(item);
            bodies[chat_index].push(body);
        }
        let limit = Duration::from_secs(60) + Duration::from_millis(200) * messages as u32;
        let (found, done) = self.await_items(&items, limit).await?;
        let (chats, latencies) = found
            .into_iter()
            .map(|(item, latency)| (chat_of[&item], latency))
            .unzip();
        Ok(Burst {
            elapsed: done - started,
            latencies,
            chats,
            bodies,
        })
    }

    /// Checks that every chat's room holds its bodies exactly once and in
    /// order (among the messages that carry the same prefix).
    pub async fn verify_rooms(&self, bodies: &Bodies, who: &str) -> Result<(), String> {
        for (chat, wanted) in self.chats.iter().zip(bodies) {
            let Some(prefix) = wanted.first().and_then(|b| b.split(' ').next()) else {
                continue;
            };
            let prefix = format!("{prefix} ");
            let history = self.room_bodies(chat).await?;
            let found: Vec<&String> = history.iter().filter(|b| b.starts_with(&prefix)).collect();
            if found.len() != wanted.len() || found.iter().zip(wanted).any(|(a, b)| *a != b) {
                return Err(format!(
                    "room {} (thread {}) does not hold what {who} sent, once each and in order: \
                     {} wanted, {} found; first found: {:?}",
                    chat.room_id,
                    chat.thread_id,
                    wanted.len(),
                    found.len(),
                    found.iter().take(5).collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }

    /// The bodies of the room's messages sent by the chat's puppet, oldest first.
    async fn room_bodies(&self, chat: &Chat) -> Result<Vec<String>, String> {
        let mut bodies = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let mut url = url::Url::parse(&self.homeserver).map_err(|e| e.to_string())?;
            url.path_segments_mut()
                .map_err(|()| "homeserver URL has no path".to_owned())?
                .extend([
                    "_matrix",
                    "client",
                    "v3",
                    "rooms",
                    &chat.room_id,
                    "messages",
                ]);
            url.query_pairs_mut()
                .append_pair("dir", "b")
                .append_pair("limit", "500")
                .append_pair("user_id", &chat.puppet);
            if let Some(from) = &from {
                url.query_pairs_mut().append_pair("from", from);
            }
            let page: Value = self
                .http
                .get(url)
                .bearer_auth(&self.as_token)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("reading the history of {}: {e}", chat.room_id))?
                .json()
                .await
                .map_err(|e| format!("reading the history of {}: {e}", chat.room_id))?;
            let events = page["chunk"].as_array().cloned().unwrap_or_default();
            bodies.extend(
                events
                    .iter()
                    .filter(|e| {
                        e["type"] == "m.room.message" && e["sender"] == chat.puppet.as_str()
                    })
                    .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)),
            );
            match page["end"].as_str() {
                Some(end) if !events.is_empty() => from = Some(end.to_owned()),
                _ => break,
            }
        }
        bodies.reverse();
        Ok(bodies)
    }

    /// Adds chats (each with a message) in batches until the bridge has
    /// `portals` portals, then reads its memory.
    pub async fn grow_portals(&mut self, portals: usize) -> Result<Rss, String> {
        let mut have = self.chats.len() + IDLE_THREADS;
        while have < portals {
            let batch = (portals - have).min(PORTAL_BATCH);
            let items = self.add_chats(batch)?;
            self.await_items(&items, setup_wait()).await?;
            have += batch;
        }
        let store = self.store().await?;
        let mut count = 0;
        for login in [&self.fixture.login_id, &self.idle_login] {
            count += store
                .portals_of_login(login)
                .await
                .map_err(|e| e.to_string())?
                .len();
        }
        if count != portals {
            return Err(format!("the bridge has {count} portals, not {portals}"));
        }
        // Let the last batch's work (receipts, state) settle before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.rss()
    }

    /// What the homeserver, the bridge and this process have used so far.
    pub fn usage(&self) -> Result<Usage, String> {
        let homeserver = self
            .fixture
            .e2e
            .synapse
            .pid()
            .ok_or("the homeserver is not running")?;
        Usage::take(homeserver, self.pid)
    }

    fn rss(&self) -> Result<Rss, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(fail("reading the bridge's /proc status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/{}/status", self.pid))
        };
        Ok(Rss {
            rss_kb: field("VmRSS:")?,
            hwm_kb: field("VmHWM:")?,
        })
    }

    /// Observes two logins' requests in the simulator's log with the
    /// default polling settings: the idle login (its chats quiet; a full run
    /// first waits until they have been quiet for the active window and the
    /// interval has grown to the idle one) and alice's, busy: one of her
    /// chats gets a message every [`BUSY_PACE`] from before the observation
    /// to its end.
    pub async fn request_rates(&self, options: &Options) -> Result<RequestRates, String> {
        let idle_regime = !options.quick;
        let mut posted = 0;
        let mut next_post = Instant::now();
        // Posts to the busy login's next chat when it is time to.
        let mut keep_busy = || -> Result<(), String> {
            if Instant::now() < next_post {
                return Ok(());
            }
            let chat = &self.chats[posted % self.chats.len()];
            self.fixture
                .sim
                .post_text(&chat.thread_id, chat.friend.pk, &format!("busy {posted}"))
                .map_err(fail("posting to the busy login's chat"))?;
            posted += 1;
            next_post += BUSY_PACE;
            Ok(())
        };
        let settled = if idle_regime {
            let mut ramp = Duration::ZERO;
            let mut interval = ACTIVE_INTERVAL;
            while interval < IDLE_INTERVAL {
                ramp += interval;
                interval *= 2;
            }
            let settle = (ACTIVE_INTERVAL + ramp).mul_f64(1.0 + JITTER) + Duration::from_secs(5);
            let idle_from = self.idle_activity + ACTIVE_WINDOW + settle;
            println!(
                "waiting {:.0} s for the idle login to reach its idle interval, then observing both \
                 logins for {:.0} s",
                idle_from.saturating_duration_since(Instant::now()).as_secs_f64(),
                options.idle.as_secs_f64()
            );
            idle_from
        } else {
            // The busy login's first message is seen by its next poll.
            Instant::now() + ACTIVE_INTERVAL.mul_f64(1.0 + JITTER)
        };
        while Instant::now() < settled {
            keep_busy()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sim = &self.fixture.sim;
        let logins = [self.idle.pk, self.fixture.me.pk];
        let mut seen = sim.request_log().len();
        let started = Instant::now();
        // Per login: (when observed, path) of its requests.
        let mut requests: [Vec<(Instant, String)>; 2] = [Vec::new(), Vec::new()];
        while started.elapsed() < options.idle {
            keep_busy()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let log = sim.request_log();
            if log.len() >= instagram_sim::REQUEST_LOG_CAPACITY {
                return Err("the simulator's request log is full".to_owned());
            }
            let now = Instant::now();
            for (pk, requests) in logins.iter().zip(requests.iter_mut()) {
                requests.extend(
                    log[seen..]
                        .iter()
                        .filter(|entry| entry.pk == Some(*pk))
                        .map(|entry| (now, entry.path.clone())),
                );
            }
            seen = log.len();
        }
        let [idle, busy] = requests;
        Ok(RequestRates {
            idle: login_requests(&idle, idle_regime, options.idle)?,
            busy: login_requests(&busy, true, options.idle)?,
        })
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log.path, lines)
    }
}

/// One login's requests over whole poll intervals (first inbox poll to the
/// last one); `regime` says whether it was observed in the regime measured.
fn login_requests(
    requests: &[(Instant, String)],
    regime: bool,
    observed: Duration,
) -> Result<LoginRequests, String> {
    let polls: Vec<usize> = requests
        .iter()
        .enumerate()
        .filter(|(_, (_, path))| path.ends_with("/direct_v2/inbox/"))
        .map(|(index, _)| index)
        .collect();
    if regime && polls.len() < 2 {
        return Err(format!(
            "a login polled {} times in {observed:?}: too few to measure",
            polls.len(),
        ));
    }
    let (window, span) = match (polls.first(), polls.last()) {
        (Some(&first), Some(&last)) if last > first => {
            (&requests[first..last], requests[last].0 - requests[first].0)
        }
        _ => (&requests[..0], Duration::ZERO),
    };
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    for (_, path) in window {
        *by_path.entry(path.clone()).or_default() += 1;
    }
    Ok(LoginRequests {
        requests: window.len(),
        by_path: by_path.into_iter().collect(),
        span,
        polls: polls.len(),
        regime,
    })
}

/// The longest the bridge may take for a handful of chats or portals.
fn setup_wait() -> Duration {
    Duration::from_secs(60)
}

/// The pid of the `matrix-instagram run` process of this config.
fn bridge_pid(config_path: &Path) -> Result<u32, String> {
    let config = config_path.to_string_lossy();
    let entries = std::fs::read_dir("/proc").map_err(fail("listing /proc"))?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        if args.first().is_some_and(|a| a == BINARY) && args.iter().any(|a| *a == config) {
            return Ok(pid);
        }
    }
    Err(format!("no bridge process runs with {config}"))
}

/// Reads the bridge's JSON log as it grows, yielding `relay_latency` events.
#[derive(Default)]
struct LogReader {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogReader {
    fn new_events(&mut self) -> Result<Vec<LogEvent>, String> {
        let mut file = std::fs::File::open(&self.path).map_err(fail("opening the bridge log"))?;
        file.seek(SeekFrom::Start(self.offset))
            .map_err(fail("reading the bridge log"))?;
        let mut text = String::new();
        let read = file
            .read_to_string(&mut text)
            .map_err(fail("reading the bridge log"))?;
        self.offset += read as u64;
        self.partial.push_str(&text);
        let Some(end) = self.partial.rfind('\n') else {
            return Ok(Vec::new());
        };
        let complete: String = self.partial.drain(..=end).collect();
        Ok(complete.lines().filter_map(latency_event).collect())
    }
}

fn latency_event(line: &str) -> Option<LogEvent> {
    if !line.contains("\"relay_latency") {
        return None;
    }
    let event: Value = serde_json::from_str(line).ok()?;
    let fields = &event["fields"];
    if event["target"] == "relay_latency_out" {
        return Some(LogEvent::Out(
            fields["event_id"].as_str()?.to_owned(),
            OutLatency {
                since_accepted_us: fields["since_accepted_us"].as_u64()?,
                instagram_us: fields["instagram_us"].as_u64()?,
            },
        ));
    }
    if event["target"] != "relay_latency" {
        return None;
    }
    Some(LogEvent::In(
        fields["item_id"].as_str()?.to_owned(),
        Latency {
            since_poll_us: fields["since_poll_us"].as_u64()?,
            queued_us: fields["queued_us"].as_u64()?,
            prepared_us: fields["prepared_us"].as_u64()?,
            earlier_us: fields["earlier_us"].as_u64()?,
            relay_us: fields["relay_us"].as_u64()?,
            homeserver_us: fields["homeserver_us"].as_u64()?,
            relay_homeserver_us: fields["relay_homeserver_us"].as_u64()?,
            logged_at_us: chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str()?)
                .ok()?
                .timestamp_micros(),
        },
    ))
}
