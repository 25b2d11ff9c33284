//! Integration and end-to-end tests of the appservice, some against a real Synapse.

mod api;
mod config;
mod demo;
mod deploy;
mod e2e;
mod harness;
mod login;
mod logs;
mod media;
mod store;
