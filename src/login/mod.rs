//! Browser logins: runs `scripts/playwright-runner.ts` (the generic Playwright
//! step runner) on a connector's `auth.connect.playwright` steps, relays the
//! questions it asks (a 2FA code) to whoever drives the login (the bridge asks
//! the user in chat), and returns the cookies and values the steps extracted.
//!
//! The runner talks line-delimited JSON over stdin/stdout (the protocol is
//! described at the top of the script). Secrets (inputs such as the password,
//! answers, cookies) travel only over those pipes: they are never logged,
//! never part of an error, and redacted in every `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, Command};

pub mod discover;
mod process;

use crate::connector::http::BaseUrls;
use crate::connector::spec::Spec;
use crate::connector::template::Template;

use self::process::RunnerProcesses;

/// Overrides the default scripts directory (`<repo>/scripts`).
pub const SCRIPTS_DIR_ENV: &str = "MATRIX_INSTAGRAM_SCRIPTS_DIR";
/// Where Debian's `chromium` package puts the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
const RUNNER_FILE: &str = "playwright-runner.ts";
/// The npm packages the runner imports (in `node_modules/` beside it).
const RUNNER_PACKAGES: [&str; 2] = ["tsx", "playwright-core"];
/// How much of the runner's stderr a crash report keeps.
const STDERR_TAIL_BYTES: usize = 2000;
const REDACTED: &str = "[redacted]";

/// How a browser login failed. Messages never hold inputs, answers or cookies.
#[derive(Debug, thiserror::Error)]
pub enum BrowserLoginError {
    #[error("the browser login runner is not installed: {missing} is missing; install it with `{install}`")]
    RunnerMissing { missing: String, install: String },
    #[error("no browser at {path}; install it with `{install}`")]
    BrowserMissing { path: String, install: String },
    #[error("the connector spec {spec} has no auth.connect.playwright steps")]
    NoConnectSteps { spec: String },
    #[error("the login needs the input `{name}`")]
    MissingInput { name: String },
    #[error("could not render the connect steps of {spec}: {message}")]
    Render { spec: String, message: String },
    #[error("could not start the browser login runner ({command}): {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("could not talk to the browser login runner: {0}")]
    Pipe(std::io::Error),
    #[error("could not create the browser profile directory {path}: {source}")]
    ProfileDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the browser login did not finish within {}s (last step {})", .after.as_secs(), .last_step.as_deref().unwrap_or("none"))]
    Timeout {
        after: Duration,
        last_step: Option<String>,
    },
    #[error("the site asks to confirm this login (challenge) at step {step}: {message}")]
    Challenge { step: String, message: String },
    #[error("the expected page did not appear at step {step}: {message}")]
    PageTimeout { step: String, message: String },
    #[error("browser login step {step} failed ({kind}): {message}")]
    StepFailed {
        kind: String,
        step: String,
        message: String,
    },
    #[error("nobody answered the browser login's question `{name}`")]
    PromptUnanswered { name: String },
    #[error("the browser login runner stopped without a result ({status}); its stderr ends with:\n{stderr_tail}")]
    Crashed { status: String, stderr_tail: String },
    #[error("the browser login runner wrote an unexpected line: {0}")]
    Protocol(String),
    #[error("the browser login was cancelled")]
    Cancelled,
}

impl BrowserLoginError {
    /// The runner's failure kind (`bad_credentials`, `challenge_required`, ...),
    /// the key of the spec's `on_error:` messages.
    pub fn kind(&self) -> Option<&str> {
        match self {
            BrowserLoginError::Challenge { .. } => Some("challenge_required"),
            BrowserLoginError::PageTimeout { .. } | BrowserLoginError::Timeout { .. } => {
                Some("timeout")
            }
            BrowserLoginError::StepFailed { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// A question the login steps ask (`{prompt: two_factor_code, message: ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Prompt {
    pub name: String,
    pub message: String,
}

/// What a login job is: the browser launch options, the rendered steps and
/// the inputs they read as `{input: NAME}`.
#[derive(Clone)]
pub struct LoginJob {
    pub launch: Value,
    pub steps: Value,
    pub inputs: BTreeMap<String, String>,
}

impl fmt::Debug for LoginJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginJob")
            .field("launch", &self.launch)
            .field("steps", &self.steps)
            .field("inputs", &redacted_map(&self.inputs))
            .finish()
    }
}

impl LoginJob {
    /// The spec's connect steps rendered against `base_urls`, with `inputs`
    /// (every name the spec's `connect.playwright.inputs` declares must be there).
    pub fn from_spec(
        spec: &Spec,
        base_urls: &BaseUrls,
        inputs: BTreeMap<String, String>,
    ) -> Result<LoginJob, BrowserLoginError> {
        let connect =
            spec.auth
                .connect
                .as_ref()
                .ok_or_else(|| BrowserLoginError::NoConnectSteps {
                    spec: spec.source.clone(),
                })?;
        if let Some(name) = connect
            .playwright
            .inputs
            .iter()
            .find(|name| !inputs.contains_key(*name))
        {
            return Err(BrowserLoginError::MissingInput { name: name.clone() });
        }
        let steps = spec
            .render_connect_steps(&json!({ "api": base_urls.vars() }))
            .map_err(|err| BrowserLoginError::Render {
                spec: spec.source.clone(),
                message: err.to_string(),
            })?;
        Ok(LoginJob {
            launch: connect.playwright.launch.clone(),
            steps,
            inputs,
        })
    }
}

/// What to tell the user about a failed login: the spec's
/// `connect.playwright.on_error.<kind>.message`, else the error itself.
pub fn failure_message(spec: &Spec, err: &BrowserLoginError) -> String {
    spec.auth
        .connect
        .as_ref()
        .zip(err.kind())
        .and_then(|(connect, kind)| connect.playwright.on_error.get(kind))
        .and_then(|reaction| reaction.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| err.to_string(), str::to_owned)
}

/// The spec's `connect.playwright.on_success.message` with the extracted
/// values (`{{username}}`), if the spec has one.
pub fn success_message(spec: &Spec, result: &BrowserLoginResult) -> Option<String> {
    let text = spec
        .auth
        .connect
        .as_ref()?
        .playwright
        .on_success
        .as_ref()?
        .get("message")?
        .as_str()?;
    let vars = serde_json::to_value(&result.extracted).ok()?;
    match Template::parse(text).ok()?.render(&vars).ok()? {
        Value::String(message) => Some(message),
        other => Some(other.to_string()),
    }
}

/// What a successful login yields: the cookies of `extract_cookies` and the
/// values of `extract` steps (`username`).
#[derive(Clone, PartialEq, Eq)]
pub struct BrowserLoginResult {
    pub cookies: BTreeMap<String, String>,
    pub extracted: BTreeMap<String, String>,
}

impl fmt::Debug for BrowserLoginResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrowserLoginResult")
            .field("cookies", &redacted_map(&self.cookies))
            .field("extracted", &self.extracted)
            .finish()
    }
}

fn redacted_map(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.keys().map(|name| (name.as_str(), REDACTED)).collect()
}

/// Runs browser logins with `node` and the runner in a scripts directory.
#[derive(Debug, Clone)]
pub struct BrowserLogin {
    node: PathBuf,
    scripts_dir: PathBuf,
    chromium: PathBuf,
    timeout: Duration,
}

impl BrowserLogin {
    /// The runner in `scripts_dir`, `node` from `PATH`, Debian's Chromium and a
    /// five-minute limit (time for a user to answer a 2FA question in chat).
    pub fn new(scripts_dir: impl Into<PathBuf>) -> BrowserLogin {
        BrowserLogin {
            node: PathBuf::from("node"),
            scripts_dir: scripts_dir.into(),
            chromium: PathBuf::from(DEFAULT_CHROMIUM),
            timeout: Duration::from_secs(300),
        }
    }

    /// `$MATRIX_INSTAGRAM_SCRIPTS_DIR`, else the `scripts/` of the source tree
    /// this binary was built from.
    pub fn default_scripts_dir() -> PathBuf {
        std::env::var_os(SCRIPTS_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"))
    }

    /// The directory of the runner.
    pub fn scripts_dir(&self) -> &Path {
        &self.scripts_dir
    }

    /// The browser the runner launches.
    pub fn chromium(&self) -> &Path {
        &self.chromium
    }

    pub fn with_timeout(mut self, timeout: Duration) -> BrowserLogin {
        self.timeout = timeout;
        self
    }

    pub fn with_node(mut self, node: impl Into<PathBuf>) -> BrowserLogin {
        self.node = node.into();
        self
    }

    pub fn with_chromium(mut self, chromium: impl Into<PathBuf>) -> BrowserLogin {
        self.chromium = chromium.into();
        self
    }

    /// Checks the runner, its npm packages and the browser are in place, so a
    /// missing piece is reported with the command that installs it.
    pub fn check_installed(&self) -> Result<(), BrowserLoginError> {
        let install_npm = format!("npm ci --prefix {}", self.scripts_dir.display());
        let runner = self.scripts_dir.join(RUNNER_FILE);
        if !runner.is_file() {
            return Err(BrowserLoginError::RunnerMissing {
                missing: runner.display().to_string(),
                install: format!(
                    "set login.runner_dir in the config (or {SCRIPTS_DIR_ENV}) to the scripts/ directory of a matrix-instagram checkout, then {install_npm}"
                ),
            });
        }
        for package in RUNNER_PACKAGES {
            let dir = self.scripts_dir.join("node_modules").join(package);
            if !dir.is_dir() {
                return Err(BrowserLoginError::RunnerMissing {
                    missing: dir.display().to_string(),
                    install: install_npm,
                });
            }
        }
        if !self.chromium.is_file() {
            return Err(BrowserLoginError::BrowserMissing {
                path: self.chromium.display().to_string(),
                install: "apt-get install -y --no-install-recommends chromium".to_owned(),
            });
        }
        Ok(())
    }

    /// Runs `job`; each question the steps ask goes to `answer`, which returns
    /// the answer or `None` when there is none (the user gave up).
    pub async fn run<A, F>(
        &self,
        job: LoginJob,
        answer: A,
    ) -> Result<BrowserLoginResult, BrowserLoginError>
    where
        A: FnMut(Prompt) -> F,
        F: Future<Output = Option<String>>,
    {
        self.run_cancellable(job, answer, std::future::pending())
            .await
    }

    /// [`run`](Self::run) that stops the runner (and its browser) when
    /// `cancel` completes, with [`BrowserLoginError::Cancelled`]. However it
    /// ends (dropped included), no process it started is left running.
    pub async fn run_cancellable<A, F, C>(
        &self,
        job: LoginJob,
        mut answer: A,
        cancel: C,
    ) -> Result<BrowserLoginResult, BrowserLoginError>
    where
        A: FnMut(Prompt) -> F,
        F: Future<Output = Option<String>>,
        C: Future<Output = ()>,
    {
        self.check_installed()?;
        let profile = ProfileDir::create()?;
        let mut secrets: Vec<String> = job.inputs.values().cloned().collect();
        let mut launch = match job.launch {
            Value::Object(launch) => launch,
            _ => serde_json::Map::new(),
        };
        launch
            .entry("executable_path")
            .or_insert_with(|| json!(self.chromium.display().to_string()));
        launch.insert(
            "user_data_dir".to_owned(),
            json!(profile.path.display().to_string()),
        );
        let job_line = json!({ "launch": launch, "steps": job.steps, "inputs": job.inputs });

        let mut child = self.spawn()?;
        // Declared after `profile`: dropped first, so the browser is gone
        // before its profile directory is removed.
        let mut processes = RunnerProcesses::new(child.id(), &profile.path);
        let mut stdin = child.stdin.take().ok_or_else(|| pipe_missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| pipe_missing("stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| pipe_missing("stderr"))?;
        let stderr_tail = tokio::spawn(read_tail(stderr));
        write_line(&mut stdin, &job_line).await?;

        let mut last_step = None;
        let conversation = async {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await.map_err(BrowserLoginError::Pipe)? {
                match serde_json::from_str::<RunnerLine>(&line) {
                    Ok(RunnerLine::Step { step, kind }) => {
                        tracing::debug!(%step, %kind, "browser login step");
                        last_step = Some(step);
                    }
                    Ok(RunnerLine::Prompt { prompt }) => {
                        let name = prompt.name.clone();
                        let reply = answer(prompt)
                            .await
                            .ok_or(BrowserLoginError::PromptUnanswered { name })?;
                        secrets.push(reply.clone());
                        write_line(&mut stdin, &json!({ "answer": reply })).await?;
                    }
                    Ok(RunnerLine::Done(done)) => return Ok(Some(done)),
                    // The line may hold anything; only its size is worth reporting.
                    Err(_) => {
                        return Err(BrowserLoginError::Protocol(format!(
                            "{} bytes that are not a runner message",
                            line.len()
                        )))
                    }
                }
            }
            Ok(None)
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(self.timeout, conversation) => Some(outcome),
            () = cancel => None,
        };
        // A runner still waiting for an answer sees the end of stdin and stops.
        drop(stdin);
        let Some(outcome) = outcome else {
            processes.stop(&mut child).await;
            return Err(BrowserLoginError::Cancelled);
        };
        let done = match outcome {
            Err(_) => {
                processes.stop(&mut child).await;
                return Err(BrowserLoginError::Timeout {
                    after: self.timeout,
                    last_step,
                });
            }
            Ok(Err(err)) => {
                processes.stop(&mut child).await;
                return Err(err);
            }
            Ok(Ok(done)) => done,
        };
        let status = finish(&mut child).await;
        processes.reaped();
        match done {
            Some(done) => done.into_result(),
            None => {
                let tail = stderr_tail.await.unwrap_or_default();
                Err(BrowserLoginError::Crashed {
                    status,
                    stderr_tail: redact(&String::from_utf8_lossy(&tail), &secrets),
                })
            }
        }
    }

    fn spawn(&self) -> Result<Child, BrowserLoginError> {
        let mut command = Command::new(&self.node);
        // `--import tsx` resolves from the working directory: the scripts dir.
        command
            .arg("--import")
            .arg("tsx")
            .arg(RUNNER_FILE)
            .current_dir(&self.scripts_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, signalled as a whole when it is stopped.
            .process_group(0)
            .kill_on_drop(true);
        command.spawn().map_err(|source| {
            let command = format!("{} --import tsx {RUNNER_FILE}", self.node.display());
            match source.kind() {
                std::io::ErrorKind::NotFound => BrowserLoginError::RunnerMissing {
                    missing: self.node.display().to_string(),
                    install: "apt-get install -y nodejs npm (Node.js 20 or newer)".to_owned(),
                },
                _ => BrowserLoginError::Spawn { command, source },
            }
        })
    }
}

/// Waits briefly for the runner to exit after its last line; describes how it ended.
async fn finish(child: &mut Child) -> String {
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(err)) => format!("unknown exit: {err}"),
        Err(_) => {
            let _ = child.kill().await;
            "killed: it did not exit after its result".to_owned()
        }
    }
}

fn pipe_missing(which: &str) -> BrowserLoginError {
    BrowserLoginError::Pipe(std::io::Error::other(format!(
        "the runner's {which} is not piped"
    )))
}

async fn write_line(stdin: &mut ChildStdin, message: &Value) -> Result<(), BrowserLoginError> {
    let mut line = message.to_string();
    line.push('\n');
    stdin
        .write_all(line.as_bytes())
        .await
        .map_err(BrowserLoginError::Pipe)?;
    stdin.flush().await.map_err(BrowserLoginError::Pipe)
}

/// Keeps the last [`STDERR_TAIL_BYTES`] of the runner's stderr.
async fn read_tail(stderr: ChildStderr) -> Vec<u8> {
    let mut reader = BufReader::new(stderr);
    let mut tail = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(read) = reader.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..read]);
        if tail.len() > STDERR_TAIL_BYTES {
            tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        }
    }
    tail
}

/// `text` with every secret replaced, as written and as escaped inside JSON
/// (a crash may print the job line).
fn redact(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .flat_map(|secret| {
            let quoted = Value::String(secret.clone()).to_string();
            [secret.clone(), quoted[1..quoted.len() - 1].to_owned()]
        })
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), REDACTED)
        })
}

/// A line the runner writes on stdout.
#[derive(Deserialize)]
#[serde(untagged)]
enum RunnerLine {
    Step {
        step: String,
        #[serde(rename = "type")]
        kind: String,
    },
    Prompt {
        prompt: Prompt,
    },
    Done(Done),
}

/// The runner's final line: `success` with the result, or with `error`.
#[derive(Deserialize)]
struct Done {
    success: bool,
    #[serde(default)]
    cookies: BTreeMap<String, String>,
    #[serde(default)]
    extracted: BTreeMap<String, String>,
    #[serde(default)]
    error: Option<RunnerFailure>,
}

#[derive(Deserialize)]
struct RunnerFailure {
    kind: String,
    #[serde(default)]
    step: Option<String>,
    message: String,
}

impl Done {
    fn into_result(self) -> Result<BrowserLoginResult, BrowserLoginError> {
        let failure = match (self.success, self.error) {
            (true, _) => {
                return Ok(BrowserLoginResult {
                    cookies: self.cookies,
                    extracted: self.extracted,
                })
            }
            (false, Some(error)) => error,
            (false, None) => {
                return Err(BrowserLoginError::Protocol(
                    "a failure without an error".to_owned(),
                ))
            }
        };
        let step = failure.step.unwrap_or_else(|| "-".to_owned());
        let message = failure.message;
        Err(match failure.kind.as_str() {
            "challenge_required" => BrowserLoginError::Challenge { step, message },
            "timeout" => BrowserLoginError::PageTimeout { step, message },
            "prompt_unanswered" => BrowserLoginError::PromptUnanswered { name: message },
            _ => BrowserLoginError::StepFailed {
                kind: failure.kind,
                step,
                message,
            },
        })
    }
}

/// The browser profile directory of one login, removed when dropped (also
/// when the login is abandoned and the runner killed).
struct ProfileDir {
    path: PathBuf,
}

impl ProfileDir {
    fn create() -> Result<ProfileDir, BrowserLoginError> {
        let path =
            std::env::temp_dir().join(format!("matrix-instagram-browser-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&path).map_err(|source| BrowserLoginError::ProfileDir {
            path: path.display().to_string(),
            source,
        })?;
        Ok(ProfileDir { path })
    }
}

impl Drop for ProfileDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_inputs_and_cookies() {
        let job = LoginJob {
            launch: json!({}),
            steps: json!([]),
            inputs: BTreeMap::from([("password".to_owned(), "hunter2".to_owned())]),
        };
        let result = BrowserLoginResult {
            cookies: BTreeMap::from([("sessionid".to_owned(), "s3cret-session".to_owned())]),
            extracted: BTreeMap::from([("username".to_owned(), "someone".to_owned())]),
        };
        let shown = format!("{job:?} {result:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret-session"),
            "{shown}"
        );
        assert!(
            shown.contains("password") && shown.contains("someone"),
            "{shown}"
        );
    }

    #[test]
    fn runner_failures_become_typed_errors() {
        let challenge: Done = serde_json::from_str(
            r#"{"success":false,"error":{"kind":"challenge_required","step":"8","message":"at /challenge/"}}"#,
        )
        .unwrap();
        assert!(matches!(
            challenge.into_result(),
            Err(BrowserLoginError::Challenge { step, .. }) if step == "8"
        ));
        let rejected: Done = serde_json::from_str(
            r#"{"success":false,"error":{"kind":"bad_credentials","step":"6","message":"wrong"}}"#,
        )
        .unwrap();
        let err = rejected.into_result().unwrap_err();
        assert_eq!(err.kind(), Some("bad_credentials"));
        let success: Done = serde_json::from_str(
            r#"{"success":true,"cookies":{"sessionid":"x"},"extracted":{"username":"u"}}"#,
        )
        .unwrap();
        assert_eq!(success.into_result().unwrap().extracted["username"], "u");
    }

    #[test]
    fn stderr_tails_are_redacted() {
        let secrets = vec!["hunter2".to_owned(), String::new(), "a\"b".to_owned()];
        assert_eq!(
            redact("typed hunter2 into #password", &secrets),
            "typed [redacted] into #password"
        );
        assert_eq!(
            redact(r#"{"password":"a\"b"}"#, &secrets),
            r#"{"password":"[redacted]"}"#
        );
    }
}
