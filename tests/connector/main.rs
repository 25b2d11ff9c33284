//! Integration tests of the connector engine against the Instagram simulator.

mod actions;
mod boundary;
mod browser;
mod cli;
mod common;
mod failures;
mod items;
mod sessions;
mod spec_errors;
mod writes;
