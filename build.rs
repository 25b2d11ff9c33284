//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds
//! `migrations/` at compile time but does not tell cargo to watch it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
