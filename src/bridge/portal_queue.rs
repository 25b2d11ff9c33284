//! One ordered worker per portal. The durable tables are the truth and the
//! bounded channel is only a doorbell: the poller offers a thread's update
//! and moves on when the worker is busy (its next poll, compared with the
//! durable progress in `poll_threads`, finds the same items again), so a slow
//! room never delays another and nothing waits on a full queue. The worker
//! relays in order (portal, items oldest first, unsends, read receipts) and
//! then advances the thread's progress. Matrix -> Instagram work
//! rings the same doorbell: the outbox table is its truth, and a rung worker
//! carries the room's pending rows out (`relay_out::outbox_worker`) after
//! the work in hand, so a room's order holds both ways.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::backfill::micros;
use super::pending_records::PendingRecords;
use super::relay_error::RelayError;
use super::relay_in::{self, SeenMarker};
use super::relay_latency;
use super::relay_out::outbox_worker;
use super::{portal, Bridge};
use crate::model::{Conversation, LastSeen, Message};
use crate::store::{LoginRecord, MessageRecord, PageItem, PortalRecord, ThreadState};

/// Updates waiting for one portal beyond the one in progress.
const QUEUE_DEPTH: usize = 4;

/// How long shutdown waits for workers to finish their current item.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a worker waits to try pending outbox rows again after the
/// database or the credentials failed it.
const OUTBOX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// What the poller found for one thread.
#[derive(Debug, Clone)]
pub struct ThreadUpdate {
    pub login_id: String,
    pub conversation: Conversation,
    /// Whether the thread is a message request (pending inbox).
    pub request: bool,
    /// Items to relay, oldest first: new ones, and the newest page's (whose
    /// edits and reactions may have changed).
    pub messages: Vec<Message>,
    /// The newest page as just fetched, when pages were fetched.
    pub newest_page: Option<Vec<PageItem>>,
    /// The catch-up stopped at `backfill.max_catchup_messages` before it
    /// reached the last relayed item: older messages of the gap are missing.
    pub history_cut: bool,
    /// Items that vanished from the newest page (unsent).
    pub unsent: Vec<String>,
    /// Other participants' read states that changed.
    pub seen: Vec<LastSeen>,
    /// When the poll response this update comes from arrived (for `relay_latency`).
    pub received: std::time::Instant,
    /// When the first request this update's view of the thread comes from was
    /// sent: a view older than a change the outbox carried out since is stale
    /// (it would undo a reaction or an edit the user just made).
    pub requested: std::time::Instant,
}

impl ThreadUpdate {
    /// An update with nothing to relay yet, seen now.
    pub fn new(login_id: String, conversation: Conversation, request: bool) -> ThreadUpdate {
        let now = std::time::Instant::now();
        ThreadUpdate {
            login_id,
            conversation,
            request,
            messages: Vec::new(),
            newest_page: None,
            history_cut: false,
            unsent: Vec::new(),
            seen: Vec::new(),
            received: now,
            requested: now,
        }
    }
}

/// Work for a portal's worker.
#[derive(Debug)]
pub enum PortalWork {
    Thread(Box<ThreadUpdate>),
    /// The outbox has pending rows for the portal (the doorbell).
    Outbox,
}

struct Worker {
    sender: mpsc::Sender<PortalWork>,
    /// Offered and not yet finished.
    in_flight: Arc<AtomicUsize>,
    /// Rung since the worker last read the outbox: set before the doorbell
    /// is offered, so a full channel loses no ring (the worker looks at it
    /// after each piece of work).
    outbox_rung: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// The portals' workers, by (login, thread).
#[derive(Default)]
pub struct PortalQueues {
    /// The bridge, held weakly (the bridge owns the queues): a ring from the
    /// transaction handler spawns a worker, which needs it.
    bridge: OnceLock<Weak<Bridge>>,
    workers: Mutex<HashMap<(String, String), Worker>>,
    closed: AtomicBool,
}

/// Decrements the in-flight count when an update is done (or its worker panicked).
struct Finished(Arc<AtomicUsize>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PortalQueues {
    /// Gives the queues their bridge; done once, when the bridge is built.
    pub fn attach(&self, bridge: &Arc<Bridge>) {
        // A second attach (of the same bridge) changes nothing.
        let _ = self.bridge.set(Arc::downgrade(bridge));
    }

    /// Rings the doorbell of a portal's worker (spawning it if needed): it
    /// carries the portal's pending outbox rows out after the work in hand.
    pub fn ring(&self, login_id: &str, thread_id: &str) {
        if self.closing() {
            return;
        }
        let Some(bridge) = self.bridge.get().and_then(Weak::upgrade) else {
            return;
        };
        let key = (login_id.to_owned(), thread_id.to_owned());
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let worker = workers
            .entry(key.clone())
            .and_modify(|worker| {
                if worker.sender.is_closed() {
                    *worker = spawn_worker(bridge.clone(), key.clone());
                }
            })
            .or_insert_with(|| spawn_worker(bridge.clone(), key.clone()));
        worker.outbox_rung.store(true, Ordering::SeqCst);
        // Full: a wake is queued, or the worker is busy and looks at the
        // flag when done.
        let _ = worker.sender.try_send(PortalWork::Outbox);
    }

    /// Rings the doorbell of a portal's worker after `delay` (when a pause of
    /// its login's requests is over).
    pub fn ring_after(&self, login_id: &str, thread_id: &str, delay: Duration) {
        // Held weakly: a bridge shut down meanwhile is not kept alive.
        let Some(bridge) = self.bridge.get().cloned() else {
            return;
        };
        let key = (login_id.to_owned(), thread_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(bridge) = bridge.upgrade() {
                bridge.queues.ring(&key.0, &key.1);
            }
        });
    }

    /// Whether the thread's worker has nothing offered or in progress.
    pub fn is_idle(&self, login_id: &str, thread_id: &str) -> bool {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers
            .get(&(login_id.to_owned(), thread_id.to_owned()))
            .is_none_or(|worker| worker.in_flight.load(Ordering::SeqCst) == 0)
    }

    /// Hands an update to its portal's worker, spawning the worker if needed;
    /// false when the queue is full or closed (the next poll offers it again).
    pub fn offer(&self, bridge: &Arc<Bridge>, update: ThreadUpdate) -> bool {
        if self.closed.load(Ordering::SeqCst) {
            return false;
        }
        let key = (update.login_id.clone(), update.conversation.id.clone());
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let alive = workers
            .get(&key)
            .is_some_and(|worker| !worker.sender.is_closed());
        if !alive {
            workers.insert(key.clone(), spawn_worker(bridge.clone(), key.clone()));
        }
        let Some(worker) = workers.get(&key) else {
            return false;
        };
        worker.in_flight.fetch_add(1, Ordering::SeqCst);
        match worker.sender.try_send(PortalWork::Thread(Box::new(update))) {
            Ok(()) => true,
            Err(_) => {
                worker.in_flight.fetch_sub(1, Ordering::SeqCst);
                false
            }
        }
    }

    /// Stops taking work and waits (bounded) for the workers to finish
    /// their current item; durable progress makes a late stop safe.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let workers: Vec<Worker> = {
            let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            workers.drain().map(|(_, worker)| worker).collect()
        };
        let tasks: Vec<JoinHandle<()>> = workers
            .into_iter()
            .map(|worker| {
                drop(worker.sender);
                worker.task
            })
            .collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(DRAIN_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
        }
    }

    pub(crate) fn closing(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// The worker of the portal `key` (login, thread).
fn spawn_worker(bridge: Arc<Bridge>, key: (String, String)) -> Worker {
    let (sender, mut receiver) = mpsc::channel(QUEUE_DEPTH);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let outbox_rung = Arc::new(AtomicBool::new(false));
    let counter = in_flight.clone();
    let rung = outbox_rung.clone();
    let task = tokio::spawn(async move {
        // When the outbox last carried something out in this portal.
        let mut last_carried: Option<Instant> = None;
        while let Some(work) = receiver.recv().await {
            match work {
                PortalWork::Thread(update) => {
                    let _finished = Finished(counter.clone());
                    if last_carried.is_some_and(|at| update.requested < at) {
                        // The durable progress is untouched, so the next
                        // poll fetches a fresh view of the same items.
                        tracing::debug!(
                            login = %update.login_id,
                            thread = %update.conversation.id,
                            "thread view older than the last send; dropped"
                        );
                        continue;
                    }
                    let applied =
                        relay_latency::update_measured(apply_update(&bridge, &update)).await;
                    if let Err(e) = applied {
                        tracing::warn!(
                            login = %update.login_id,
                            thread = %update.conversation.id,
                            error = %e,
                            "relaying a thread stopped; the next poll resumes it"
                        );
                    }
                }
                PortalWork::Outbox => {}
            }
            if rung.swap(false, Ordering::SeqCst) && carry_out_outbox(&bridge, &key).await {
                last_carried = Some(Instant::now());
            }
        }
    });
    Worker {
        sender,
        in_flight,
        outbox_rung,
        task,
    }
}

/// Carries the portal's pending outbox rows out; when the database or the
/// credentials fail, rings again after a pause (the rows stay pending).
/// Returns whether there were rows to carry out.
async fn carry_out_outbox(bridge: &Arc<Bridge>, (login_id, thread_id): &(String, String)) -> bool {
    let result = outbox_worker::carry_out_pending(bridge, login_id, thread_id).await;
    if let Err(e) = &result {
        tracing::warn!(
            login = %login_id,
            thread = %thread_id,
            error = %e,
            "carrying out messages to Instagram stopped; trying again shortly"
        );
        let bridge = bridge.clone();
        let (login_id, thread_id) = (login_id.clone(), thread_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(OUTBOX_RETRY_PAUSE).await;
            bridge.queues.ring(&login_id, &thread_id);
        });
    }
    // After a failure part of the rows may have gone out.
    result.unwrap_or(true)
}

/// Tells the room, once per gap (the txn id derives from the oldest message
/// caught up), that older messages of a long gap were not bridged.
async fn announce_gap(
    bridge: &Bridge,
    login: &LoginRecord,
    portal: &PortalRecord,
    oldest_caught_up: &Message,
) -> Result<(), RelayError> {
    let room_id = relay_in::portal_room(portal)?;
    let body = format!(
        "Instagram had more new messages in this chat than the bridge catches up on at once \
         (backfill.max_catchup_messages: {}); the older ones are not bridged here. Open \
         Instagram to read them.",
        bridge.config.backfill.max_catchup_messages
    );
    let txn = relay_in::txn_id(&[&login.id, &portal.thread_id, &oldest_caught_up.id, "gap"]);
    portal::send_bot_notice(
        bridge,
        &room_id,
        &txn,
        &body,
        "posting the catch-up gap notice",
    )
    .await
}

/// Relays one thread update in order, recording progress as it goes.
/// A transient failure stops it; the next poll fetches the rest again.
async fn apply_update(bridge: &Bridge, update: &ThreadUpdate) -> Result<(), RelayError> {
    let picked = Instant::now();
    let store = &bridge.store;
    let login_id = &update.login_id;
    let thread_id = &update.conversation.id;
    let Some(login) = store.login(login_id).await? else {
        return Ok(());
    };
    let portal =
        portal::ensure_portal(bridge, &login, &update.conversation, update.request).await?;
    let mut state = store
        .thread_state(login_id, thread_id)
        .await?
        .unwrap_or_else(|| ThreadState {
            login_id: login_id.clone(),
            thread_id: thread_id.clone(),
            ..ThreadState::default()
        });
    if !state.bridged || state.request != update.request {
        state.bridged = true;
        state.request = update.request;
        store.save_thread_state(&state).await?;
    }

    if let (true, Some(first)) = (update.history_cut, update.messages.first()) {
        announce_gap(bridge, &login, &portal, first).await?;
    }
    let item_ids: Vec<&str> = update.messages.iter().map(|m| m.id.as_str()).collect();
    let mut records = store.item_records(login_id, thread_id, &item_ids).await?;
    let progress = state.last_item_at;
    let timeline = relay_latency::Timeline {
        received: update.received,
        picked,
        prepared: Instant::now(),
    };
    // The newest item handled, written once when the items are done or
    // stopped: the message records, not the progress, keep an item from
    // being relayed twice, so a crash mid-update only costs refetching it.
    let mut reached: Option<(&str, i64)> = None;
    let mut pending = PendingRecords::default();
    let items = async {
        for message in &update.messages {
            if bridge.queues.closing() {
                return Ok(false);
            }
            let recorded = records.remove(&message.id).unwrap_or_default();
            let relayed = relay_in::is_relayed(message, &recorded);
            if !relayed {
                relay_latency::measured(
                    &message.id,
                    &timeline,
                    relay_item(
                        bridge,
                        &login,
                        &portal,
                        message,
                        recorded.parts,
                        &mut pending,
                    ),
                )
                .await?;
            }
            // An item bridged before a crash kept the progress from moving past it.
            let behind = |at: i64| progress.is_none_or(|progress| at > progress);
            if let Some(at) = micros(message).filter(|at| !relayed || behind(*at)) {
                reached = Some((&message.id, at));
            }
        }
        Ok::<bool, RelayError>(true)
    }
    .await;
    // The progress may pass only items whose records are written.
    pending.settle().await?;
    if let Some((item_id, at)) = reached {
        store
            .advance_thread(login_id, thread_id, item_id, at)
            .await?;
    }
    if !items? {
        return Ok(());
    }
    for item_id in &update.unsent {
        skip_permanent(
            relay_in::relay_unsend(bridge, &portal, item_id).await,
            item_id,
        )?;
    }
    let mut seen = Vec::new();
    for marker in &update.seen {
        let at = SeenMarker {
            item_id: marker.item_id.clone(),
            at: marker.timestamp,
        };
        skip_permanent(
            relay_in::relay_read(bridge, &portal, &marker.user_id, &at).await,
            &marker.user_id,
        )?;
        if let Some(item_id) = &marker.item_id {
            seen.push((marker.user_id.clone(), item_id.clone()));
        }
    }

    // Read again: advance_thread moved the progress forward.
    let mut state = store
        .thread_state(login_id, thread_id)
        .await?
        .unwrap_or(state);
    if let Some(page) = &update.newest_page {
        state.newest_page = page.clone();
    }
    state.activity_at = update
        .conversation
        .updated_at
        .map(|at| at.timestamp_micros());
    state.seen.extend(seen);
    store.save_thread_state(&state).await?;
    Ok(())
}

async fn relay_item(
    bridge: &Bridge,
    login: &crate::store::LoginRecord,
    portal: &PortalRecord,
    message: &Message,
    recorded_parts: Vec<MessageRecord>,
    pending: &mut PendingRecords,
) -> Result<(), RelayError> {
    skip_permanent(
        relay_in::relay_recorded(bridge, login, portal, message, recorded_parts, pending).await,
        &message.id,
    )
}

/// A permanent failure skips the one thing (it would fail again forever);
/// a transient one stops the update.
fn skip_permanent(result: Result<(), RelayError>, what: &str) -> Result<(), RelayError> {
    match result {
        Err(e) if !e.is_transient() => {
            tracing::warn!(what, error = %e, "cannot relay; skipped");
            Ok(())
        }
        other => other,
    }
}
