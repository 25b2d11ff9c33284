//! matrix-instagram: a Matrix application service bridging Instagram direct
//! messages. See ARCHITECTURE.md for the map.

pub mod bridge;
pub mod cli;
pub mod config;
pub mod connector;
pub mod login;
pub mod matrix;
pub mod model;
pub mod secrets;
pub mod store;
