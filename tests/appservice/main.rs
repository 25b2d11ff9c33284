//! Integration and end-to-end tests of the appservice, some against a real Synapse.

/// Defines the `_sqlite` and `_postgres` test of one scenario (declared
/// before the modules, which see it by textual scope).
macro_rules! on_both_databases {
    ($scenario:ident, $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $scenario(crate::harness::Backend::Sqlite).await;
        }

        #[tokio::test]
        async fn $postgres() {
            $scenario(crate::harness::Backend::Postgres).await;
        }
    };
}

mod api;
mod budget;
mod commands;
mod config;
mod demo;
mod deploy;
mod e2e;
mod harness;
mod item_kinds;
mod login;
mod logins;
mod logs;
mod media;
mod outbox;
mod poller;
mod relay;
mod relay_out_changes;
mod relay_out_media;
mod sessions;
mod store;
