//! Matrix side: the appservice API server and the homeserver client.

pub mod client;
pub mod namespace;
pub mod server;
