//! `instagram-sim --port N [--seed demo]`.
fn main() {}
