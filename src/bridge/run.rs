//! `matrix-instagram run`: loads the configuration and the connector spec it
//! names, connects the database, checks that the homeserver accepts our as_token, prepares the bot, serves
//! the appservice API and asks the homeserver to ping it, then runs until
//! SIGINT/SIGTERM. Every startup failure is one clear line on stderr.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ruma::{OwnedMxcUri, TransactionId};
use tokio::net::TcpListener;

use super::instagram::load_connector;
use super::Bridge;
use crate::config::{Config, ConfigError};
use crate::connector::http::Connector;
use crate::connector::spec::SpecError;
use crate::matrix::client::{ClientError, HomeserverClient};
use crate::matrix::namespace::{NamespaceError, UserNamespace};
use crate::matrix::server::{self, AppserviceState};
use crate::store::{Store, StoreError};

/// Why the bridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("configuration file {} not found: create one with `matrix-instagram init`", .path.display())]
    ConfigMissing { path: PathBuf },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("invalid configuration: {0}")]
    Namespace(#[from] NamespaceError),
    /// The loader's problems, each naming the file, action and field.
    #[error("cannot load the connector spec of instagram.connector: {0}")]
    Connector(#[from] SpecError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot reach the homeserver at {url}: {detail}")]
    HomeserverUnreachable { url: String, detail: String },
    #[error(
        "the homeserver rejected as_token ({detail}): is registration.yaml loaded in Synapse's \
         app_service_config_files and in sync with config.yaml?"
    )]
    TokenRejected { detail: String },
    #[error("homeserver check failed: {0}")]
    Homeserver(ClientError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the appservice server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Entry point of the `run` subcommand: prints the error and exits non-zero
/// on failure.
pub fn main_run(config_path: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {}", RunError::Runtime(e));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration file, or explains what is wrong with it.
pub fn load_config(config_path: &Path) -> Result<Config, RunError> {
    if !config_path.exists() {
        return Err(RunError::ConfigMissing {
            path: config_path.to_owned(),
        });
    }
    Config::load(config_path).map_err(RunError::Config)
}

/// Starts tracing with the configured level and format, in colour only when
/// stderr is a terminal.
fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    // Config::load has validated the filter; `info` only guards the type.
    let filter =
        EnvFilter::try_new(&config.logging.level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never in a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = if config.logging.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Only in-process runs (tests) have a subscriber already; it is kept.
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}

/// Builds the bridge and its appservice router over an open store.
pub fn build_appservice(
    config: Arc<Config>,
    store: Store,
    client: HomeserverClient,
    connector: Connector,
) -> Result<(Arc<Bridge>, Router), RunError> {
    let namespace = UserNamespace::from_config(config.clone())?;
    let bridge = Arc::new(Bridge::new(
        config.clone(),
        store.clone(),
        client,
        connector,
        namespace.clone(),
    ));
    let state = Arc::new(AppserviceState::new(
        &config.appservice.hs_token,
        namespace,
        store,
        bridge.clone(),
    ));
    bridge.supervisor.attach(&bridge);
    bridge.queues.attach(&bridge);
    let router = server::router(state, config.appservice.max_body_bytes);
    Ok((bridge, router))
}

/// Runs the bridge until SIGINT or SIGTERM.
pub async fn run(config_path: &Path) -> Result<(), RunError> {
    run_until(config_path, shutdown_signal()).await
}

/// Runs the bridge until `shutdown` completes, then stops gracefully.
pub async fn run_until(
    config_path: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let config = Arc::new(load_config(config_path)?);
    // Before tracing starts, so a broken spec is the only line on stderr.
    let connector = load_connector(&config, config_path)?;
    init_tracing(&config);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        commit = super::commands::GIT_COMMIT.unwrap_or("unknown"),
        "starting matrix-instagram"
    );
    tracing::info!(
        spec = %connector.spec().source,
        actions = connector.spec().actions.len(),
        api = %connector.base_urls().api,
        "connector loaded"
    );

    // The running bridge is its database's one writer: it may remember records.
    let store = Store::connect(&config.database.url).await?.remembering();
    let client = HomeserverClient::new(&config.homeserver.url, &config.appservice.as_token)
        .map_err(RunError::Homeserver)?;
    let (bridge, router) = build_appservice(config.clone(), store, client, connector)?;
    // Before anything can send: a pause Instagram asked for outlives a restart.
    super::budget::restore_cool_downs(&bridge).await;

    report_browser_login(&bridge);
    check_homeserver(&bridge).await?;
    prepare_bot(&bridge).await;
    let pruner = tokio::spawn(prune_transactions_periodically(bridge.store.clone()));

    let listen = config.appservice.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: listen,
            source,
        })?;
    tracing::info!(%listen, "appservice API listening");
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    });

    ping_homeserver(&bridge).await;
    if let Err(e) = super::login_waiting::tell_interrupted_logins(&bridge).await {
        tracing::warn!(error = %e, "cannot tell users about logins the restart interrupted");
    }
    bridge.supervisor.start_all().await;

    let served = server.await;
    pruner.abort();
    bridge.supervisor.shutdown().await;
    bridge.queues.close().await;
    bridge.store.close().await;
    match served {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Err(e)) => Err(RunError::Serve(e)),
        Err(join) => Err(RunError::Serve(std::io::Error::other(join))),
    }
}

/// How long a processed homeserver transaction id is remembered. Synapse
/// retries a failed transaction with backoff for minutes to hours, never for
/// days, so older ids can no longer come back.
pub const TRANSACTION_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// How often old transaction ids are pruned while the bridge runs.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Prunes processed transaction ids older than [`TRANSACTION_RETENTION`] now
/// and then every [`PRUNE_INTERVAL`]; a failure is logged and retried later.
async fn prune_transactions_periodically(store: Store) {
    let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        ticks.tick().await;
        let cutoff = chrono::Utc::now() - TRANSACTION_RETENTION;
        match store.prune_transactions(cutoff).await {
            Ok(pruned) => tracing::debug!(pruned, "pruned old homeserver transaction ids"),
            Err(e) => tracing::warn!(error = %e, "cannot prune old homeserver transaction ids"),
        }
    }
}

/// Says once at startup whether `login` can work: a missing runner or
/// browser is a warning, not a reason to stop (the rest of the bridge works).
fn report_browser_login(bridge: &Bridge) {
    let runner = &bridge.browser_login;
    match runner.check_installed() {
        Ok(()) => tracing::info!(
            runner_dir = %runner.scripts_dir().display(),
            chromium = %runner.chromium().display(),
            "browser login ready"
        ),
        Err(e) => tracing::warn!("browser login unavailable, `login` will answer so: {e}"),
    }
}

/// Checks that the homeserver is reachable and accepts the as_token.
pub async fn check_homeserver(bridge: &Bridge) -> Result<(), RunError> {
    match bridge.client.whoami(None).await {
        Ok(user_id) => {
            if user_id.as_str() != bridge.namespace.bot().as_str() {
                tracing::warn!(
                    homeserver_says = %user_id,
                    configured = %bridge.namespace.bot(),
                    "the registration's sender_localpart differs from bot.localpart"
                );
            }
            tracing::info!(url = %bridge.client.base_url(), bot = %user_id, "homeserver accepts as_token");
            Ok(())
        }
        Err(ClientError::Unreachable { source, .. }) => Err(RunError::HomeserverUnreachable {
            url: bridge.client.base_url().to_owned(),
            detail: error_chain(&source),
        }),
        Err(
            e @ ClientError::Matrix {
                status: 401 | 403, ..
            },
        ) => Err(RunError::TokenRejected {
            detail: e.errcode().unwrap_or("M_UNKNOWN").to_owned(),
        }),
        Err(e) => Err(RunError::Homeserver(e)),
    }
}

/// The innermost cause is the informative one ("Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Registers the bot and sets its profile; failures are reported, not fatal.
pub async fn prepare_bot(bridge: &Bridge) {
    let bot = bridge.namespace.bot();
    if let Err(e) = bridge.client.register_user(bot.localpart()).await {
        tracing::warn!(error = %e, "cannot register the bot user");
    }
    let displayname = bridge.config.bot.displayname.as_str();
    if let Err(e) = bridge.client.set_displayname(bot, Some(displayname)).await {
        tracing::warn!(error = %e, "cannot set the bot's displayname");
    }
    if let Some(avatar) = &bridge.config.bot.avatar_url {
        let avatar = OwnedMxcUri::from(avatar.as_str());
        if let Err(e) = bridge.client.set_avatar_url(bot, Some(avatar)).await {
            tracing::warn!(error = %e, "cannot set the bot's avatar");
        }
    }
}

/// Asks the homeserver to ping the appservice API and reports the outcome.
pub async fn ping_homeserver(bridge: &Bridge) {
    let txn_id = TransactionId::new();
    let config = &bridge.config.appservice;
    match bridge.client.ping_appservice(&config.id, &txn_id).await {
        Ok(duration) => tracing::info!(
            duration_ms = duration.as_millis() as u64,
            address = %config.address,
            "the homeserver can reach the bridge"
        ),
        Err(e) => tracing::error!(
            "homeserver cannot reach the bridge at {}: {e}",
            config.address
        ),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
