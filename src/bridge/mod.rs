//! The bridge core: the bot, management rooms and commands, and (later)
//! portals, puppets and relaying. It speaks the normalized model and Matrix.

pub mod backfill;
pub mod bot;
pub mod budget;
pub mod commands;
pub mod convert;
pub mod departure;
pub mod double_puppet;
pub mod ephemeral;
pub mod instagram;
pub mod login;
pub mod login_cookies;
pub mod login_session;
pub mod login_state;
pub mod login_waiting;
pub mod management;
pub mod media;
pub mod pending_records;
pub mod pictures;
pub mod poller;
pub mod portal;
pub mod portal_queue;
pub mod puppet;
pub mod relay_error;
pub mod relay_in;
pub mod relay_latency;
pub mod relay_out;
pub mod router;
pub mod run;
pub mod schedule;
pub mod supervisor;
pub mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use ruma::events::AnyTimelineEvent;
use ruma::serde::Raw;
use serde_json::Value;

use crate::config::Config;
use crate::connector::http::Connector;
use crate::login::discover::Search;
use crate::login::BrowserLogin;
use crate::matrix::client::HomeserverClient;
use crate::matrix::namespace::UserNamespace;
use crate::matrix::server::{AppserviceHandler, ProvisionError, RetryTransaction};
use crate::store::Store;

use self::commands::CommandRegistry;
use self::double_puppet::DoublePuppet;
use self::login::LoginFlows;
use self::media::MediaBridge;
use self::pictures::Pictures;
use self::portal_queue::PortalQueues;
use self::supervisor::Supervisor;

/// The running bridge: configuration, database, homeserver client, the
/// Instagram connector and the bot's commands. Shared behind an `Arc` by the
/// appservice server.
pub struct Bridge {
    pub config: Arc<Config>,
    pub store: Store,
    pub client: HomeserverClient,
    /// The connector spec of `instagram.connector`, at the configured base URLs.
    pub connector: Connector,
    pub namespace: UserNamespace,
    pub commands: CommandRegistry,
    /// Runs the connector's browser login (`scripts/playwright-runner.ts`).
    pub browser_login: BrowserLogin,
    /// Logins in progress (in memory: a restart loses them).
    pub login_flows: LoginFlows,
    pub started_at: Instant,
    /// Downloads item media from Instagram and uploads it to the homeserver.
    pub media: MediaBridge,
    /// Profile and group pictures, uploaded once per distinct picture.
    pub pictures: Pictures,
    /// Acts as the users themselves, when `double_puppet.as_token` is set.
    pub double_puppet: Option<DoublePuppet>,
    /// Each login's request budget (see [`budget`]).
    pub budgets: budget::LoginBudgets,
    /// The logins' pollers.
    pub supervisor: Arc<Supervisor>,
    /// The portals' ordered workers.
    pub queues: PortalQueues,
    /// The portals' read receipt and typing tasks.
    pub ephemeral: ephemeral::EphemeralWorkers,
    /// Held while a login's space is created: the portals' workers run in
    /// parallel, and each would otherwise create a space of its own.
    pub space_creation: tokio::sync::Mutex<()>,
}

impl Bridge {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        client: HomeserverClient,
        connector: Connector,
        namespace: UserNamespace,
    ) -> Bridge {
        let mut commands = CommandRegistry::with_builtins();
        login::register(&mut commands);
        login_cookies::register(&mut commands);
        sync::register(&mut commands);
        commands::chat::register(&mut commands);
        commands::inbox::register(&mut commands);
        commands::new_chat::register(&mut commands);
        let double_puppet = DoublePuppet::from_config(&config).unwrap_or_else(|error| {
            tracing::error!(%error, "double puppeting is off: cannot set up its client");
            None
        });
        Bridge {
            browser_login: browser_login(&config),
            media: MediaBridge::new(config.media.max_bytes),
            pictures: Pictures::new(),
            double_puppet,
            login_flows: LoginFlows::persisted(store.clone()),
            budgets: budget::LoginBudgets::new(&config.safety),
            config,
            store,
            client,
            connector,
            namespace,
            commands,
            started_at: Instant::now(),
            supervisor: Arc::default(),
            queues: PortalQueues::default(),
            space_creation: tokio::sync::Mutex::new(()),
            ephemeral: ephemeral::EphemeralWorkers::default(),
        }
    }
}

/// The browser login runner and Chromium, from `login.*` or found where
/// [`Search`] looks. Its overall limit leaves a question its whole
/// `login.question_timeout_ms` besides the time of the steps.
fn browser_login(config: &Config) -> BrowserLogin {
    const STEPS_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(120);
    let question = std::time::Duration::from_millis(config.login.question_timeout_ms);
    Search::from_environment(
        config.login.runner_dir.as_ref().map(PathBuf::from),
        config.login.chromium.as_ref().map(PathBuf::from),
    )
    .browser_login()
    .with_timeout(question + STEPS_ALLOWANCE)
}

#[async_trait]
impl AppserviceHandler for Bridge {
    async fn handle_event(&self, event: AnyTimelineEvent) -> Result<(), RetryTransaction> {
        router::route_event(self, event).await
    }

    fn ignores(&self, event: &AnyTimelineEvent, raw: &Raw<AnyTimelineEvent>) -> bool {
        router::is_own_echo(self, event, raw)
    }

    async fn handle_ephemeral(&self, event: Value) {
        ephemeral::handle(self, &event).await;
    }

    async fn provision_user(&self, user_id: &str) -> Result<(), ProvisionError> {
        let localpart = user_id
            .strip_prefix('@')
            .and_then(|rest| rest.split_once(':'))
            .map(|(localpart, _)| localpart)
            .unwrap_or_default();
        self.client
            .register_user(localpart)
            .await
            .map_err(|e| ProvisionError {
                user_id: user_id.to_owned(),
                reason: e.to_string(),
            })
    }
}
