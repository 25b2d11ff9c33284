//! The bridge-added latency of Instagram -> Matrix relaying, as one debug
//! event per relayed item (target `relay_latency`): from the poll response
//! that carried the item to the homeserver's answer. The relay benchmark
//! (`benches/relay.rs`) enables the target and reads the events from the log.

use std::future::Future;
use std::time::Instant;

/// Runs the relaying of `item_id` and, when it succeeds, logs how long it
/// took (`relay_us`) and how long since its poll response arrived
/// (`since_poll_us`, `received`).
pub async fn measured<T, E>(
    item_id: &str,
    received: Instant,
    relay: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = relay.await;
    if result.is_ok() {
        tracing::debug!(
            target: "relay_latency",
            item_id,
            since_poll_us = received.elapsed().as_micros() as u64,
            relay_us = started.elapsed().as_micros() as u64,
            "relayed"
        );
    }
    result
}
