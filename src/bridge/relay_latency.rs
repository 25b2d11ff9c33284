//! The bridge-added latency of relaying, as one debug event per relayed
//! item. Instagram -> Matrix (target `relay_latency`): from the poll response
//! that carried the item to the homeserver's answer, split by stage, and how
//! much of that the bridge spent waiting for the homeserver's answers. Matrix -> Instagram
//! (target `relay_latency_out`): from the transaction handler accepting the
//! event to Instagram's answer, and how long that answer took. The relay
//! benchmark (`benches/relay.rs`) enables the targets and reads the events
//! from the log.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::matrix::client::{counting_waits, waited_so_far};

/// Runs a thread update on its portal's worker, counting the time it waits
/// for the homeserver (every request: the portal's and puppets' upkeep as
/// well as the items' sends), for the `relay_latency` events of its items.
pub async fn update_measured<T>(work: impl Future<Output = T>) -> T {
    counting_waits(work).await
}

/// When one thread update reached each stage on its portal's worker.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// The poll response that carried the update arrived.
    pub received: Instant,
    /// The worker took the update up.
    pub picked: Instant,
    /// The portal, its puppets and the thread's state were ready; the items
    /// followed.
    pub prepared: Instant,
}

/// Runs the relaying of `item_id` and, when it succeeds, logs how long
/// since its poll response arrived (`since_poll_us`) and where that went:
/// waiting for the portal's worker (`queued_us`), the update's preparation
/// (`prepared_us`: portal, puppets, thread state), the update's earlier
/// items (`earlier_us`), the item's own relaying (`relay_us`); and how much
/// of it all the worker spent waiting for the homeserver's answers since it
/// took the update up (`homeserver_us`; `relay_homeserver_us` of it in the
/// item's own relaying).
pub async fn measured<T, E>(
    item_id: &str,
    timeline: &Timeline,
    relay: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let waited_before = waited_so_far();
    let result = relay.await;
    if result.is_ok() {
        let micros = |spent: Duration| spent.as_micros() as u64;
        let waited = waited_so_far();
        tracing::debug!(
            target: "relay_latency",
            item_id,
            since_poll_us = micros(timeline.received.elapsed()),
            queued_us = micros(timeline.picked.saturating_duration_since(timeline.received)),
            prepared_us = micros(timeline.prepared.saturating_duration_since(timeline.picked)),
            earlier_us = micros(started.saturating_duration_since(timeline.prepared)),
            relay_us = micros(started.elapsed()),
            homeserver_us = micros(waited),
            relay_homeserver_us = micros(waited.saturating_sub(waited_before)),
            "relayed"
        );
    }
    result
}

/// Matrix -> Instagram: when each outgoing event was accepted by the
/// transaction handler, kept only while `relay_latency_out` is enabled and
/// until the event is done (nothing survives a restart).
static ACCEPTED: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Mutex::default);

fn accepted_events() -> MutexGuard<'static, HashMap<String, Instant>> {
    ACCEPTED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Notes that the outgoing event `event_id` was accepted at `at` (its
/// transaction was being handled), if the `relay_latency_out` events are wanted.
pub fn outgoing_accepted(event_id: &str, at: Instant) {
    if tracing::enabled!(target: "relay_latency_out", tracing::Level::DEBUG) {
        accepted_events().insert(event_id.to_owned(), at);
    }
}

/// Instagram answered the send of `event_id` (the request took `instagram`):
/// logs the time since the event was accepted (`since_accepted_us`) and the
/// request's (`instagram_us`), when its acceptance is known.
pub fn outgoing_carried(event_id: &str, instagram: Duration) {
    let Some(accepted) = accepted_events().remove(event_id) else {
        return;
    };
    tracing::debug!(
        target: "relay_latency_out",
        event_id,
        since_accepted_us = accepted.elapsed().as_micros() as u64,
        instagram_us = instagram.as_micros() as u64,
        "carried out"
    );
}

/// The outgoing event `event_id` is done without a measured send (given up,
/// or found sent by an earlier attempt).
pub fn outgoing_done(event_id: &str) {
    accepted_events().remove(event_id);
}
