//! A throwaway Synapse on a loopback port: fresh data dir, SQLite (or a
//! fresh PostgreSQL database, as deployments use), the project's config
//! template (scripts/synapse/homeserver.yaml.tmpl) and the bridge's
//! registration, from the venv made by scripts/synapse/install.sh.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;

use super::database::TestDatabase;
use super::{repo_root, tail, terminate, HarnessError, WAIT};

/// Where a test Synapse keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeserverDatabase {
    /// A file in its data dir: quick to start, what the tests use.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `DATABASE_URL`, as
    /// Synapse's deployments use (SQLite is for testing only, and its
    /// commit per event dominates a loaded homeserver's timing): the relay
    /// bench's homeserver.
    Postgres,
}

/// The Matrix server name of every test homeserver.
pub const SERVER_NAME: &str = "localhost";

/// A running Synapse; killed on drop.
pub struct Synapse {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    shared_secret: String,
    /// Dropped after the process is stopped.
    _database: Option<TestDatabase>,
}

impl Synapse {
    /// The venv holding Synapse: `SYNAPSE_VENV`, else `<repo>/.venv`.
    pub fn venv() -> PathBuf {
        std::env::var_os("SYNAPSE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv"))
    }

    /// Starts Synapse from [`Synapse::venv`]; see [`Synapse::start_from`].
    pub async fn start(
        data_dir: &Path,
        port: u16,
        registration: Option<&Path>,
    ) -> Result<Synapse, HarnessError> {
        Synapse::start_from(Synapse::venv(), data_dir, port, registration).await
    }

    /// Renders the config into `data_dir` (which must not exist yet, so the
    /// database is fresh), starts the Synapse of `venv` on `port` and waits
    /// for `/versions`.
    pub async fn start_from(
        venv: PathBuf,
        data_dir: &Path,
        port: u16,
        registration: Option<&Path>,
    ) -> Result<Synapse, HarnessError> {
        let registrations: Vec<&Path> = registration.into_iter().collect();
        Synapse::start_with_registrations(venv, data_dir, port, &registrations).await
    }

    /// [`Synapse::start_from`] with any number of appservice registrations.
    pub async fn start_with_registrations(
        venv: PathBuf,
        data_dir: &Path,
        port: u16,
        registrations: &[&Path],
    ) -> Result<Synapse, HarnessError> {
        Synapse::start_on(
            venv,
            data_dir,
            port,
            registrations,
            HomeserverDatabase::Sqlite,
        )
        .await
    }

    /// [`Synapse::start_with_registrations`] on `database`.
    pub async fn start_on(
        venv: PathBuf,
        data_dir: &Path,
        port: u16,
        registrations: &[&Path],
        database: HomeserverDatabase,
    ) -> Result<Synapse, HarnessError> {
        let python = venv.join("bin/python");
        if !venv.join("bin/synapse_homeserver").exists() {
            return Err(HarnessError::SynapseMissing { venv });
        }
        std::fs::create_dir(data_dir)
            .map_err(HarnessError::io(format!("creating {}", data_dir.display())))?;
        let shared_secret = random_hex(16);
        let app_services = format!(
            "[{}]",
            registrations
                .iter()
                .map(|path| format!("\"{}\"", path.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let placeholders = [
            ("@DATA@", data_dir.display().to_string()),
            ("@PORT@", port.to_string()),
            ("@SERVER_NAME@", SERVER_NAME.to_owned()),
            ("@SHARED_SECRET@", shared_secret.clone()),
            ("@APP_SERVICE_CONFIG_FILES@", app_services),
            ("@LOG_LEVEL@", "INFO".to_owned()),
        ];
        render(
            "homeserver.yaml.tmpl",
            &data_dir.join("homeserver.yaml"),
            &placeholders,
        )?;
        render("log.yaml.tmpl", &data_dir.join("log.yaml"), &placeholders)?;
        write_signing_key(&data_dir.join(format!("{SERVER_NAME}.signing.key")))?;
        let mut configs = vec![data_dir.join("homeserver.yaml")];
        let postgres = match database {
            HomeserverDatabase::Sqlite => None,
            HomeserverDatabase::Postgres => {
                let created = TestDatabase::create_for_synapse().await?;
                let path = data_dir.join("database.yaml");
                std::fs::write(&path, postgres_section(&python, created.url())?)
                    .map_err(HarnessError::io(format!("writing {}", path.display())))?;
                configs.push(path);
                Some(created)
            }
        };

        let output_path = data_dir.join("synapse.stdout");
        let output =
            File::create(&output_path).map_err(HarnessError::io("creating synapse.stdout"))?;
        let errors = output
            .try_clone()
            .map_err(HarnessError::io("cloning a file handle"))?;
        // A later config file's top-level keys replace the earlier's: the
        // PostgreSQL section replaces the template's SQLite one.
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver"])
            .args(configs.iter().flat_map(|path| [Path::new("-c"), path]))
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(HarnessError::io(format!("starting {}", python.display())))?;
        let mut synapse = Synapse {
            child: Some(child),
            port,
            data_dir: data_dir.to_owned(),
            shared_secret,
            _database: postgres,
        };
        synapse.wait_until_up().await?;
        Ok(synapse)
    }

    async fn wait_until_up(&mut self) -> Result<(), HarnessError> {
        let versions = format!("{}/_matrix/client/versions", self.url());
        let http = reqwest::Client::new();
        let started = Instant::now();
        // Synapse needs 3-4 s on an idle machine; schema creation on a busy one takes longer.
        let limit = WAIT * 2;
        while started.elapsed() < limit {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(HarnessError::Exited {
                        what: "Synapse".to_owned(),
                        status,
                        output: self.log_tail(40),
                    });
                }
            }
            let answered = http
                .get(&versions)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if answered {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(HarnessError::Timeout {
            what: format!("Synapse answering {versions}"),
            waited: limit,
        })
    }

    /// The homeserver process's id, while it runs (the relay bench reads its
    /// CPU time; the tests do not need it).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where its config, logs and any SQLite database are.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The client-server API base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `registration_shared_secret` for the admin register API.
    pub fn shared_secret(&self) -> &str {
        &self.shared_secret
    }

    /// Stops Synapse (SIGTERM, then SIGKILL after a grace period). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// The ends of Synapse's log and its stdout/stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "-- homeserver.log --\n{}\n-- stdout/stderr --\n{}",
            tail(&self.data_dir.join("homeserver.log"), lines),
            tail(&self.data_dir.join("synapse.stdout"), lines / 2)
        )
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Synapse's `database:` section for the PostgreSQL database at `url`;
/// an error that says what to install when the venv lacks psycopg2.
fn postgres_section(python: &Path, url: &str) -> Result<String, HarnessError> {
    let has_driver = Command::new(python)
        .args(["-c", "import psycopg2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !has_driver {
        return Err(HarnessError::Unexpected {
            doing: "starting Synapse on PostgreSQL".to_owned(),
            detail: format!(
                "{} cannot import psycopg2: run `bash scripts/synapse/install.sh`",
                python.display()
            ),
        });
    }
    let url = url::Url::parse(url).map_err(|err| HarnessError::Unexpected {
        doing: "parsing the homeserver's database URL".to_owned(),
        detail: err.to_string(),
    })?;
    let args = serde_json::json!({
        "user": url.username(),
        "password": url.password().unwrap_or_default(),
        "host": url.host_str().unwrap_or("127.0.0.1"),
        "port": url.port().unwrap_or(5432),
        "database": url.path().trim_start_matches('/'),
        "cp_min": 5,
        "cp_max": 10,
    });
    // JSON is YAML.
    Ok(serde_json::json!({"database": {"name": "psycopg2", "args": args}}).to_string())
}

fn render(
    template: &str,
    target: &Path,
    placeholders: &[(&str, String)],
) -> Result<(), HarnessError> {
    let source = repo_root().join("scripts/synapse").join(template);
    let mut text = std::fs::read_to_string(&source)
        .map_err(HarnessError::io(format!("reading {}", source.display())))?;
    for (name, value) in placeholders {
        text = text.replace(name, value);
    }
    std::fs::write(target, text).map_err(HarnessError::io(format!("writing {}", target.display())))
}

/// Writes an ed25519 signing key in Synapse's format (algorithm, key id,
/// unpadded base64 seed), which saves a `--generate-keys` run per start.
fn write_signing_key(path: &Path) -> Result<(), HarnessError> {
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let key = base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed);
    std::fs::write(path, format!("ed25519 a_test {key}\n"))
        .map_err(HarnessError::io("writing the signing key"))
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}
