//! The bridge-added latency of Instagram -> Matrix relaying, as one debug
//! event per relayed item (target `relay_latency`): from the poll response
//! that carried the item to the homeserver's answer, and how much of that the
//! homeserver itself took to answer the item's sends. The relay benchmark
//! (`benches/relay.rs`) enables the target and reads the events from the log.

use std::cell::Cell;
use std::future::Future;
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
