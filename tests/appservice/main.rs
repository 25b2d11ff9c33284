//! Integration and end-to-end tests of the appservice, some against a real Synapse.

mod api;
mod config;
mod store;
