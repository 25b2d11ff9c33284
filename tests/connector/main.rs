//! Integration tests of the connector engine against the Instagram simulator.
