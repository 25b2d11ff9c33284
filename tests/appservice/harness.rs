//! Test support for the end-to-end tests: a throwaway Synapse, the bridge
//! binary, a fresh bridge database (SQLite or PostgreSQL) and a small Matrix
//! client, combined into one [`E2e`] fixture that cleans up after itself.

pub mod bridge;
pub mod client;
pub mod database;
pub mod relay;
pub mod synapse;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use instagram_sim::Simulator;
use matrix_instagram::bridge::instagram::Logins;
use matrix_instagram::secrets::{CredentialCipher, CredentialKey};
use matrix_instagram::store::Store;

pub use bridge::{Bridge, BridgeConfig};
pub use client::MatrixClient;
pub use database::{Backend, TestDatabase};
pub use synapse::{HomeserverDatabase, Synapse};

/// The longest any single wait in the harness lasts: a generous bound for a
/// loaded 2-core machine, never a sleep that a test relies on.
pub const WAIT: Duration = Duration::from_secs(30);

/// Why a harness step failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "Synapse is not installed in {venv}: run `bash scripts/synapse/install.sh` \
         (or point SYNAPSE_VENV at a venv holding matrix-synapse)"
    )]
    SynapseMissing { venv: PathBuf },
    #[error(
        "PostgreSQL is not reachable at {url}: {source}. Start it (for example \
             `pg_ctlcluster --skip-systemctl-redirect 15 main start`) or set DATABASE_URL \
             to a server where the test may create databases"
    )]
    PostgresUnreachable { url: String, source: sqlx::Error },
    #[error("database query failed while {doing}: {source}")]
    Database { doing: String, source: sqlx::Error },
    #[error("I/O error while {doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
    #[error("cannot {doing}: {source}")]
    Yaml {
        doing: String,
        source: serde_norway::Error,
    },
    #[error("{what} exited with {status}; output:\n{output}")]
    Exited {
        what: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("{what} did not happen within {waited:?}")]
    Timeout { what: String, waited: Duration },
    #[error("HTTP request failed while {doing}: {source}")]
    Http {
        doing: String,
        source: reqwest::Error,
    },
    #[error("homeserver answered {status} while {doing}: {body}")]
    Matrix {
        doing: String,
        status: u16,
        body: String,
    },
    #[error("unexpected response while {doing}: {detail}")]
    Unexpected { doing: String, detail: String },
}

impl HarnessError {
    pub(crate) fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let doing = doing.into();
        move |source| HarnessError::Io { doing, source }
    }
}

/// The repository root (where Cargo.toml and scripts/ are).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where [`free_port`] hands out ports: below Linux's ephemeral range
/// (32768-60999), so that neither the kernel's choice for `bind(0)` nor the
/// local port of an outgoing connection can take a port between the moment
/// it is handed out and the moment a child process binds it (the demo binds
/// its ports only after a build of a minute or more).
const HANDED_OUT_PORTS: std::ops::Range<u16> = 20000..32000;

/// A loopback port that was free a moment ago and that this process has not
/// handed out before. Each test binary starts at its own place in
/// [`HANDED_OUT_PORTS`] (from its pid), so concurrent runs rarely meet;
/// another process could still take the port first, which the fixtures
/// report as a startup failure.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(HANDED_OUT_PORTS.end - HANDED_OUT_PORTS.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = HANDED_OUT_PORTS.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {HANDED_OUT_PORTS:?}")
}

/// The last `lines` lines of a log file, or a note that it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("({} unreadable: {err})", path.display()),
    }
}

/// Whether something accepts TCP connections at `addr`.
pub async fn port_answers(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// Sends SIGTERM to a child and waits up to `grace` for it, then kills it.
pub(crate) fn terminate(child: &mut std::process::Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // `kill` the program: std has no portable SIGTERM and this avoids unsafe libc calls.
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|status| status.success());
    if sent {
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Everything one end-to-end scenario needs: a temp dir, the bridge's fresh
/// database, a bridge config from `matrix-instagram init`, Synapse with the
/// bridge's registration, and the running bridge.
///
/// Dropping it stops Synapse BEFORE the bridge (Synapse would otherwise record
/// the appservice as down), and prints both logs when the test is failing.
pub struct E2e {
    pub synapse: Synapse,
    pub bridge: Option<Bridge>,
    pub config: BridgeConfig,
    /// Lives until the processes are stopped, then drops the PostgreSQL database.
    pub database: TestDatabase,
    dir: Option<tempfile::TempDir>,
}

impl E2e {
    /// Starts Synapse and the bridge on `backend`; `permissions` replaces the
    /// config's permissions map (user id or domain → level).
    pub async fn start(backend: Backend, permissions: &[(&str, &str)]) -> E2e {
        let mut e2e = E2e::prepare(backend, permissions).await;
        e2e.start_bridge().await;
        e2e
    }

    /// Like [`E2e::start`] but leaves the bridge stopped.
    pub async fn prepare(backend: Backend, permissions: &[(&str, &str)]) -> E2e {
        E2e::prepare_with(backend, permissions, |_| Vec::new()).await
    }

    /// [`E2e::prepare`]; `more_registrations` may change the bridge config
    /// and returns further appservice registrations for Synapse to load.
    pub async fn prepare_with(
        backend: Backend,
        permissions: &[(&str, &str)],
        more_registrations: impl FnOnce(&BridgeConfig) -> Vec<PathBuf>,
    ) -> E2e {
        E2e::prepare_on(
            backend,
            HomeserverDatabase::Sqlite,
            permissions,
            more_registrations,
        )
        .await
    }

    /// [`E2e::prepare_with`], the homeserver on `homeserver`.
    pub async fn prepare_on(
        backend: Backend,
        homeserver: HomeserverDatabase,
        permissions: &[(&str, &str)],
        more_registrations: impl FnOnce(&BridgeConfig) -> Vec<PathBuf>,
    ) -> E2e {
        let dir = tempfile::Builder::new()
            .prefix("mi-e2e-")
            .tempdir()
            .expect("creating the test's temp dir");
        let database = TestDatabase::create(backend, dir.path())
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let homeserver_port = free_port();
        let config = BridgeConfig::init(
            &dir.path().join("bridge"),
            homeserver_port,
            database.url(),
            permissions,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let more = more_registrations(&config);
        let registrations: Vec<&Path> = std::iter::once(config.registration_path.as_path())
            .chain(more.iter().map(PathBuf::as_path))
            .collect();
        let synapse = Synapse::start_on(
            Synapse::venv(),
            &dir.path().join("synapse"),
            homeserver_port,
            &registrations,
            homeserver,
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        E2e {
            synapse,
            bridge: None,
            config,
            database,
            dir: Some(dir),
        }
    }

    /// Starts the bridge (again) on the same config and database.
    pub async fn start_bridge(&mut self) {
        assert!(self.bridge.is_none(), "the bridge is already running");
        let bridge = Bridge::start(&self.config)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        self.bridge = Some(bridge);
    }

    /// Stops the bridge gracefully (SIGTERM) and waits for it to exit.
    pub fn stop_bridge(&mut self) {
        if let Some(mut bridge) = self.bridge.take() {
            bridge.stop();
        }
    }

    /// Kills the bridge (SIGKILL), as a crash would.
    pub fn kill_bridge(&mut self) {
        if let Some(mut bridge) = self.bridge.take() {
            bridge.kill();
        }
    }

    /// Registers a fresh user through the shared-secret admin API and logs in.
    pub async fn user(&self, localpart: &str) -> MatrixClient {
        MatrixClient::register(&self.synapse, localpart)
            .await
            .unwrap_or_else(|err| panic!("registering {localpart}: {err}"))
    }

    /// The bot's Matrix user id.
    pub fn bot(&self) -> &str {
        &self.config.bot_mxid
    }

    /// Points the bridge (before it starts) at the simulator's API, web and upload hosts.
    pub fn use_simulator(&self, sim: &Simulator) {
        for (key, url) in [
            ("api_base_url", sim.api_base_url()),
            ("web_base_url", sim.base_url()),
            ("upload_base_url", sim.base_url()),
        ] {
            self.config
                .set(&["instagram", key], serde_norway::Value::from(url))
                .unwrap_or_else(|err| panic!("{err}"));
        }
    }

    /// The bridge's database, opened by the test.
    pub async fn store(&self) -> Store {
        Store::connect(self.database.url())
            .await
            .expect("opening the bridge's database")
    }

    /// The bridge's stored logins, sealed with the config's key.
    pub async fn logins(&self) -> Logins {
        let key = self
            .config
            .get(&["encryption", "key"])
            .expect("reading encryption.key");
        let key = CredentialKey::from_base64(key.as_str().expect("the key is a string"))
            .expect("a valid key");
        Logins::new(self.store().await, CredentialCipher::new(&key))
    }

    /// Every bridge log written so far (all runs), for assertions on log lines.
    pub fn bridge_logs(&self) -> String {
        self.config.all_logs()
    }
}

impl Drop for E2e {
    fn drop(&mut self) {
        self.synapse.stop();
        if let Some(bridge) = self.bridge.as_mut() {
            bridge.stop();
        }
        if std::thread::panicking() {
            eprintln!("==== Synapse log tail ====\n{}", self.synapse.log_tail(60));
            eprintln!("==== bridge log tail ====\n{}", self.config.logs_tail(80));
            if let Some(dir) = self.dir.take() {
                eprintln!("==== test files kept in {} ====", dir.keep().display());
            }
        }
    }
}
