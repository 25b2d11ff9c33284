//! The bridge binary under test: its config and registration written by the
//! real `matrix-instagram init` and then pointed at the test's ports and
//! database, and the `matrix-instagram run` process.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_norway::Value;

use super::synapse::SERVER_NAME;
use super::{free_port, port_answers, tail, terminate, HarnessError, WAIT};

/// The bridge binary built by cargo for this test run.
pub const BINARY: &str = env!("CARGO_BIN_EXE_matrix-instagram");

/// A bridge config directory: config.yaml, registration.yaml and the logs of every run.
pub struct BridgeConfig {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub registration_path: PathBuf,
    /// Where the bridge's appservice API listens.
    pub listen: SocketAddr,
    pub bot_mxid: String,
    runs: AtomicUsize,
}

/// What a bridge process that ran to its end printed.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl BridgeConfig {
    /// Runs `matrix-instagram init` in `dir` for the test homeserver, a free
    /// appservice port and the test database, then turns on debug logging,
    /// points `instagram.connector` at the repository's spec and, when given,
    /// replaces the permissions. The registration is used as
    /// `init` wrote it.
    pub fn init(
        dir: &Path,
        homeserver_port: u16,
        database_url: &str,
        permissions: &[(&str, &str)],
    ) -> Result<BridgeConfig, HarnessError> {
        std::fs::create_dir_all(dir)
            .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
        let config_path = dir.join("config.yaml");
        let registration_path = dir.join("registration.yaml");
        let homeserver_url = format!("http://127.0.0.1:{homeserver_port}");
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let output = Command::new(BINARY)
            .arg("-c")
            .arg(&config_path)
            .args([
                "init",
                "--homeserver-url",
                &homeserver_url,
                "--domain",
                SERVER_NAME,
                "--listen",
                &listen.to_string(),
                "--database-url",
                database_url,
                "--registration",
            ])
            .arg(&registration_path)
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .map_err(HarnessError::io("running matrix-instagram init"))?;
        if !output.status.success() {
            return Err(HarnessError::Exited {
                what: "matrix-instagram init".to_owned(),
                status: output.status,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }

        let mut config = read_yaml(&config_path)?;
        set(
            &mut config,
            &["logging", "level"],
            Value::from("matrix_instagram=debug,info"),
        );
        // init's relative connector path would resolve inside the temp dir.
        set(
            &mut config,
            &["instagram", "connector"],
            Value::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/connectors/instagram.yaml"
            )),
        );
        if !permissions.is_empty() {
            let mut map = serde_norway::Mapping::new();
            for (who, level) in permissions {
                map.insert(Value::from(*who), Value::from(*level));
            }
            set(&mut config, &["permissions"], Value::Mapping(map));
        }
        write_yaml(&config_path, &config)?;

        let bot_localpart =
            config["bot"]["localpart"]
                .as_str()
                .ok_or_else(|| HarnessError::Unexpected {
                    doing: "reading bot.localpart from the generated config".to_owned(),
                    detail: "missing or not a string".to_owned(),
                })?;
        Ok(BridgeConfig {
            dir: dir.to_owned(),
            bot_mxid: format!("@{bot_localpart}:{SERVER_NAME}"),
            config_path,
            registration_path,
            listen,
            runs: AtomicUsize::new(0),
        })
    }

    /// Changes one value of config.yaml, e.g. `&["appservice", "as_token"]`.
    pub fn set(&self, path: &[&str], value: Value) -> Result<(), HarnessError> {
        let mut config = read_yaml(&self.config_path)?;
        set(&mut config, path, value);
        write_yaml(&self.config_path, &config)
    }

    /// Reads one value of config.yaml.
    pub fn get(&self, path: &[&str]) -> Result<Value, HarnessError> {
        let mut value = read_yaml(&self.config_path)?;
        for key in path {
            value = value[*key].clone();
        }
        Ok(value)
    }

    fn next_log(&self) -> PathBuf {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        self.dir.join(format!("bridge-run-{run}.log"))
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BINARY);
        command
            .arg("-c")
            .arg(&self.config_path)
            .arg("run")
            .current_dir(&self.dir)
            // The config names the test's own database; an inherited DATABASE_URL would override it.
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null());
        command
    }

    /// Runs `matrix-instagram run` expecting it to exit by itself within
    /// [`WAIT`] (a startup failure); kills it and fails otherwise.
    pub async fn run_to_exit(&self) -> Result<RunOutput, HarnessError> {
        let stdout_path = self.next_log();
        let stderr_path = stdout_path.with_extension("stderr.log");
        let stdout =
            File::create(&stdout_path).map_err(HarnessError::io("creating the bridge log"))?;
        let stderr =
            File::create(&stderr_path).map_err(HarnessError::io("creating the bridge log"))?;
        let mut child = self
            .command()
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(HarnessError::io("starting matrix-instagram run"))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(HarnessError::io("waiting for the bridge"))?
            {
                break status;
            }
            if started.elapsed() > WAIT {
                terminate(&mut child, Duration::from_secs(5));
                return Err(HarnessError::Timeout {
                    what: "the bridge exiting".to_owned(),
                    waited: WAIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(HarnessError::io("reading the bridge log"))
        };
        Ok(RunOutput {
            status,
            stdout: read(&stdout_path)?,
            stderr: read(&stderr_path)?,
        })
    }

    /// Every bridge log of this config, oldest run first.
    pub fn all_logs(&self) -> String {
        self.log_paths()
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The end of every bridge log of this config, each under its file name.
    pub fn logs_tail(&self, lines: usize) -> String {
        self.log_paths()
            .iter()
            .map(|path| format!("-- {} --\n{}", path.display(), tail(path, lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn log_paths(&self) -> Vec<PathBuf> {
        let runs = self.runs.load(Ordering::SeqCst);
        (1..=runs)
            .flat_map(|run| {
                let log = self.dir.join(format!("bridge-run-{run}.log"));
                [log.with_extension("stderr.log"), log]
            })
            .filter(|path| path.exists())
            .collect()
    }
}

/// A running `matrix-instagram run`; killed on drop.
pub struct Bridge {
    child: Option<Child>,
    pub log_path: PathBuf,
}

impl Bridge {
    /// Starts the bridge and waits until its appservice port answers.
    pub async fn start(config: &BridgeConfig) -> Result<Bridge, HarnessError> {
        let log_path = config.next_log();
        let log = File::create(&log_path).map_err(HarnessError::io("creating the bridge log"))?;
        let errors = log
            .try_clone()
            .map_err(HarnessError::io("cloning a file handle"))?;
        let child = config
            .command()
            .stdout(log)
            .stderr(errors)
            .spawn()
            .map_err(HarnessError::io("starting matrix-instagram run"))?;
        let mut bridge = Bridge {
            child: Some(child),
            log_path,
        };
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if let Some(child) = bridge.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(HarnessError::Exited {
                        what: "matrix-instagram run".to_owned(),
                        status,
                        output: tail(&bridge.log_path, 40),
                    });
                }
            }
            if port_answers(config.listen).await {
                return Ok(bridge);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(HarnessError::Timeout {
            what: format!("the bridge listening on {}", config.listen),
            waited: WAIT,
        })
    }

    /// Stops the bridge gracefully (SIGTERM) and waits; kills it after 15 s. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(15));
        }
    }

    /// Kills the bridge at once (SIGKILL), as a crash would, and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status, if the bridge has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_yaml(path: &Path) -> Result<Value, HarnessError> {
    let text = std::fs::read_to_string(path)
        .map_err(HarnessError::io(format!("reading {}", path.display())))?;
    serde_norway::from_str(&text).map_err(|source| HarnessError::Yaml {
        doing: format!("parse {}", path.display()),
        source,
    })
}

fn write_yaml(path: &Path, value: &Value) -> Result<(), HarnessError> {
    let text = serde_norway::to_string(value).map_err(|source| HarnessError::Yaml {
        doing: format!("serialize {}", path.display()),
        source,
    })?;
    std::fs::write(path, text).map_err(HarnessError::io(format!("writing {}", path.display())))
}

/// Sets `path` inside nested mappings, creating missing levels.
fn set(root: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *root = value;
        return;
    };
    let mut node = root;
    for key in parents {
        if !node.get(*key).is_some_and(Value::is_mapping) {
            node[*key] = Value::Mapping(serde_norway::Mapping::new());
        }
        node = node.get_mut(*key).expect("just ensured");
    }
    node[*last] = value;
}
