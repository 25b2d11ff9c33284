//! Integration and end-to-end tests of the appservice, some against a real Synapse.

mod api;
mod config;
mod e2e;
mod harness;
mod item_kinds;
mod login;
mod media;
mod poller;
mod relay;
mod store;
