//! The bridge-added latency of relaying, as one debug event per relayed
//! item. Instagram -> Matrix (target `relay_latency`): from the poll response
//! that carried the item to the homeserver's answer, and how much of that the
//! homeserver itself took to answer the item's sends. Matrix -> Instagram
//! (target `relay_latency_out`): from the transaction handler accepting the
//! event to Instagram's answer, and how long that answer took. The relay
//! benchmark (`benches/relay.rs`) enables the targets and reads the events
//! from the log.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

tokio::task_local! {
    /// Microseconds the homeserver took to answer the current item's sends.
    static HOMESERVER_US: Cell<u64>;
}

/// Runs the relaying of `item_id` and, when it succeeds, logs how long it
/// took (`relay_us`), how long since its poll response arrived
/// (`since_poll_us`) and how much of it was spent waiting for the
/// homeserver's answers (`homeserver_us`).
pub async fn measured<T, E>(
    item_id: &str,
    received: Instant,
    relay: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let (result, homeserver_us) = HOMESERVER_US
        .scope(Cell::new(0), async {
            let result = relay.await;
            (result, HOMESERVER_US.with(Cell::get))
        })
        .await;
    if result.is_ok() {
        tracing::debug!(
            target: "relay_latency",
            item_id,
            since_poll_us = received.elapsed().as_micros() as u64,
            relay_us = started.elapsed().as_micros() as u64,
            homeserver_us,
            "relayed"
        );
    }
    result
}

/// Counts `spent` waiting for a homeserver answer toward the item being
/// relayed, if one is being measured.
pub fn homeserver_answered(spent: Duration) {
    let _ = HOMESERVER_US.try_with(|total| total.set(total.get() + spent.as_micros() as u64));
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
