//! Integration tests of the connector engine against the Instagram simulator.

mod actions;
mod cli;
mod common;
mod failures;
mod spec_errors;
